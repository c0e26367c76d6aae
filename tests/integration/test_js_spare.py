"""The V8 host's spare context: cold starts find the Web API prelude evaluated.

Each test runs a real V8 host process (``V8Host``) under ``asyncio.run`` and
closes it before returning. Nothing here asserts a duration: whether a cold
start found the spare ready is what the host reports (the ``spare`` flag of a
load, and its ``stats``), and isolation and limits are checked by behaviour.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from edge.runtime.js.client import V8Host

SPARE_WAIT_S = 30.0

COUNTER = """\
let served = 0;
export default { async fetch() { served++; return Response.json({ served }); } };
"""

# Leaves state everywhere a later function could look: its own top level, the
# global object, and objects the prelude made (Response, URL, crypto).
POLLUTER = """\
globalThis.leakedAtLoad = "from the polluter";
Response.prototype.leaked = "from the polluter";
URL.leaked = 1;
crypto.leaked = 1;
export default {
  async fetch() {
    globalThis.leakedInFetch = "from the polluter";
    return Response.json({ seen: typeof leakedAtLoad });
  },
};
"""

LOOKER = """\
export default {
  async fetch() {
    return Response.json({
      atLoad: typeof globalThis.leakedAtLoad,
      inFetch: typeof globalThis.leakedInFetch,
      onResponse: typeof Response.prototype.leaked,
      onUrl: typeof URL.leaked,
      onCrypto: typeof crypto.leaked,
    });
  },
};
"""

# Holds ?mb=N megabytes of JavaScript heap (unboxed doubles, 8 bytes each).
HOLDER = """\
export default {
  async fetch(request) {
    const mb = Number(new URL(request.url).searchParams.get("mb"));
    const keep = [];
    for (let i = 0; i < mb; i++) keep.push(new Array(131072).fill(i + 0.5));
    return Response.json({ held: keep.length });
  },
};
"""


def spec(name: str, source: str, memory_mb: int = 64) -> dict[str, Any]:
    return {
        "name": name,
        "filename": f"functions/{name}.js",
        "source": source,
        "memory_mb": memory_mb,
        "timeout_ms": 5000,
        "env": {},
    }


def run(scenario: Callable[[V8Host], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        host = V8Host()
        try:
            return await scenario(host)
        finally:
            await host.close()

    return asyncio.run(main())


async def spare_ready(host: V8Host) -> dict[str, Any]:
    """Poll the host's stats until its spare is ready (the host is idle)."""
    deadline = asyncio.get_running_loop().time() + SPARE_WAIT_S
    while True:
        stats = await host.stats()
        if stats["spare_ready"]:
            return stats
        assert asyncio.get_running_loop().time() < deadline, f"no spare got ready: {stats}"
        await asyncio.sleep(0.01)


async def load(host: V8Host, name: str, source: str, **overrides: Any) -> dict[str, Any]:
    host.register(name, {**spec(name, source), **overrides})
    info, cold = await host.load(name)
    assert cold, "the first load is a cold start"
    return info


async def get(host: V8Host, name: str, query: str = "") -> tuple[int, Any]:
    url = f"http://shop.edge.localhost/{name}" + (f"?{query}" if query else "")
    reply = await host.invoke(name, ["GET", url, [], b"", {}])
    status, body = reply[2], reply[4]
    return status, json.loads(body) if status == 200 else reply[6]


def test_cold_starts_take_a_spare_with_the_prelude_already_evaluated() -> None:
    async def scenario(host: V8Host) -> Any:
        before = await spare_ready(host)
        first = await load(host, "first", COUNTER)
        answer = await get(host, "first")
        # The next spare is prepared shortly after one is taken.
        after_first = await spare_ready(host)
        second = await load(host, "second", COUNTER)
        return before, first, answer, after_first, second, await host.stats()

    before, first, answer, after_first, second, stats = run(scenario)
    assert before["spares_taken"] == 0 and before["isolates"] == 0
    assert first["spare"] is True and first["cold_ms"] > 0
    assert answer == (200, {"served": 1})
    assert after_first["spares_taken"] == 1 and after_first["isolates"] == 1
    assert second["spare"] is True
    assert (stats["spares_taken"], stats["spares_taken_ready"]) == (2, 2)


def test_a_burst_of_cold_starts_is_served_without_a_ready_spare() -> None:
    """Loads faster than spares are prepared fall back to building the context inline."""

    async def scenario(host: V8Host) -> Any:
        await spare_ready(host)
        names = [f"burst{i}" for i in range(4)]
        infos = await asyncio.gather(*(load(host, name, COUNTER) for name in names))
        answers = [await get(host, name) for name in names]
        return infos, answers, await host.stats()

    infos, answers, stats = run(scenario)
    assert [info["spare"] for info in infos].count(True) == 1, infos
    assert answers == [(200, {"served": 1})] * 4
    assert (stats["spares_taken"], stats["spares_taken_ready"]) == (4, 1)


def test_functions_cold_started_one_after_another_share_no_globals() -> None:
    async def scenario(host: V8Host) -> Any:
        await spare_ready(host)
        await load(host, "polluter", POLLUTER)
        polluted = await get(host, "polluter")
        await spare_ready(host)  # prepared while the polluter was loaded and had run
        info = await load(host, "looker", LOOKER)
        return polluted, info, await get(host, "looker")

    polluted, info, looked = run(scenario)
    assert polluted == (200, {"seen": "string"}), "the polluter sees its own global"
    assert info["spare"] is True
    assert looked == (
        200,
        {
            "atLoad": "undefined",
            "inFetch": "undefined",
            "onResponse": "undefined",
            "onUrl": "undefined",
            "onCrypto": "undefined",
        },
    )


def test_a_function_from_a_spare_gets_its_own_memory_limit() -> None:
    """A spare's heap limit is the smallest a function may have (16 MB) until it
    is taken: the taker's ``memory_mb`` must replace it, higher or lower."""

    async def scenario(host: V8Host) -> Any:
        await spare_ready(host)
        roomy = await load(host, "roomy", HOLDER, memory_mb=96)
        fits = await get(host, "roomy", "mb=40")
        await spare_ready(host)
        tight = await load(host, "tight", HOLDER, memory_mb=24)
        small = await get(host, "tight", "mb=4")
        bomb = await get(host, "tight", "mb=200")
        return roomy, fits, tight, small, bomb

    roomy, fits, tight, small, bomb = run(scenario)
    assert roomy["spare"] is True and tight["spare"] is True
    assert fits == (200, {"held": 40}), "40 MB fit in 96 MB, not in the spare's 16 MB"
    assert small == (200, {"held": 4})
    assert bomb == (500, "memory"), "200 MB is past the 24 MB limit"


def test_each_isolate_thread_keeps_one_python_thread_state_until_it_is_freed() -> None:
    """V8 reports results from each isolate's own thread; that thread keeps the
    Python thread state of its first callback (edge.runtime.js.threadstate), and
    the state goes when the isolate is freed, however many come and go."""

    async def scenario(host: V8Host) -> Any:
        await spare_ready(host)
        await load(host, "counter", COUNTER)
        for _ in range(20):
            await get(host, "counter")
        serving = await spare_ready(host)
        for i in range(8):
            name = f"churn{i}"
            await load(host, name, COUNTER)
            await get(host, name)
            host.unload(name)
            await spare_ready(host)
        for _ in range(20):
            await get(host, "counter")
        return serving, await spare_ready(host)

    serving, after = run(scenario)
    # The function's isolate and the spare: one state each, kept across 20 requests.
    assert serving["isolate_thread_states"] == 2, serving
    # Eight more isolates were started, served and freed: none left a state behind.
    assert after["isolate_thread_states"] == 2, after
    assert after["spares_taken"] == 9


# What a function could find of the requests a spare rehearses (js/dispatch.js).
REHEARSAL_LOOKER = """\
let served = 0;
export default {
  fetch(request) {
    served++;
    return Response.json({
      served,
      url: request.url,
      rehearse: typeof __edgeInternal.rehearse,
      entries: typeof __edgeInternal.entries,
      random: Array.from(crypto.getRandomValues(new Uint8Array(16))).join(","),
    });
  },
};
"""


def test_a_spares_rehearsal_leaves_nothing_behind() -> None:
    """A spare runs two platform requests and a module load of its own through
    the dispatcher before it is taken; the function's own first requests get
    their own answers, crypto.* is seeded anew for each function (the rehearsal
    seeds it with a constant), and it cannot run the rehearsal again, nor reach
    the host's entry functions and buffers (edge.runtime.js.entry), taken before
    any function code ran."""

    async def scenario(host: V8Host) -> Any:
        loaded = []
        for name in ("looker", "other"):
            await spare_ready(host)
            info = await load(host, name, REHEARSAL_LOOKER)
            loaded.append((info, [await get(host, name, f"n={i}") for i in range(3)]))
        return loaded

    loaded = run(scenario)
    randoms = []
    for name, (info, answers) in zip(("looker", "other"), loaded, strict=True):
        assert info["spare"] is True
        randoms += [body.pop("random") for _, body in answers]
        assert answers == [
            (
                200,
                {
                    "served": i + 1,
                    "url": f"http://shop.edge.localhost/{name}?n={i}",
                    "rehearse": "undefined",
                    "entries": "undefined",
                },
            )
            for i in range(3)
        ]
    assert len(set(randoms)) == len(randoms), randoms
