"""JavaScript functions through JsPool and a real V8 host process.

Every test runs its scenario under ``asyncio.run`` with its own V8Host, and
closes it (killing the host process) before returning.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from edge.runtime.invocation import FunctionLoadError, FunctionVersion, Invocation, Outcome
from edge.runtime.js.client import V8Host, host_env
from edge.runtime.js.modules import check_js, check_js_many
from edge.runtime.js.pool import JsPool

ECHO = """\
let served = 0;
export default {
  async fetch(request, env, ctx) {
    served++;
    const url = new URL(request.url);
    const body = request.method === "POST" ? await request.json() : null;
    return Response.json(
      { method: request.method, path: url.pathname, q: url.searchParams.get("q"),
        body, id: ctx.params.id, table: env.TABLE, agent: request.headers.get("User-Agent"),
        served },
      { status: 201, headers: { "x-served-by": "edge", "set-cookie": "a=1" } },
    );
  },
};
"""


def write(root: Path, name: str, source: str) -> str:
    path = root / "functions" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    return f"functions/{name}"


def version(root: Path, path: str, **overrides: Any) -> FunctionVersion:
    fields: dict[str, Any] = {
        "key": f"{path}-{overrides.get('timeout_ms', 2000)}",
        "app": "shop",
        "environment": "production",
        "release": 1,
        "name": Path(path).stem,
        "runtime": "js",
        "root": root,
        "path": path,
        "handler": "",
        "env": {"TABLE": "users"},
        "memory_mb": 64,
        "timeout_ms": 2000,
    }
    fields.update(overrides)
    return FunctionVersion(**fields)


def request(
    path: str = "/",
    *,
    method: str = "GET",
    body: bytes = b"",
    params: dict[str, str] | None = None,
    query: str = "",
    headers: list[tuple[str, str]] | None = None,
) -> Invocation:
    url = f"http://shop.edge.localhost{path}" + (f"?{query}" if query else "")
    return Invocation(
        method=method,
        url=url,
        path=path,
        query_string=query,
        headers=headers or [("host", "shop.edge.localhost")],
        body=body,
        params=params or {},
        request_id="req-1",
    )


def run(scenario: Callable[[V8Host], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        host = V8Host()
        try:
            return await scenario(host)
        finally:
            await host.close()

    return asyncio.run(main())


async def started(root: Path, name: str, source: str, host: V8Host, **overrides: Any) -> JsPool:
    pool = JsPool(version(root, write(root, name, source), **overrides), host)
    await pool.start()
    return pool


def header(outcome: Outcome, name: str) -> list[str]:
    return [v for k, v in outcome.headers if k == name]


def test_json_headers_status_params_env_and_warm_state(tmp_path: Path) -> None:
    async def scenario(host: V8Host) -> list[Outcome]:
        pool = await started(tmp_path, "echo.js", ECHO, host)
        first = await pool.invoke(
            request(
                "/api/users/42",
                method="POST",
                body=b'{"name": "ada"}',
                params={"id": "42"},
                query="q=hello%20world",
                headers=[("user-agent", "curl/8")],
            )
        )
        second = await pool.invoke(request("/api/users"))
        await pool.close()
        return [first, second]

    first, second = run(scenario)
    assert first.status == 201 and first.error is None
    assert header(first, "content-type") == ["application/json"]
    assert header(first, "x-served-by") == ["edge"] and header(first, "set-cookie") == ["a=1"]
    data = json.loads(first.body)
    assert data == {
        "method": "POST",
        "path": "/api/users/42",
        "q": "hello world",
        "body": {"name": "ada"},
        "id": "42",
        "table": "users",
        "agent": "curl/8",
        "served": 1,
    }
    assert json.loads(second.body)["served"] == 2, "the isolate is reused across requests"
    assert not first.cold and not second.cold
    assert first.memory_peak_kb > 0


def test_sync_handlers_promises_and_timers(tmp_path: Path) -> None:
    sync = 'export default { fetch(request) { return new Response("sync", { status: 202 }) } };\n'
    promise = """\
export default {
  fetch(request) {
    return new Promise((resolve) => setTimeout(() => resolve(new Response("timer")), 20));
  },
};
"""
    chained = """\
const wait = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async fetch(request, env, ctx) {
    ctx.waitUntil(wait(5));
    const parts = await Promise.all([1, 2, 3].map(async (n) => { await wait(n); return n * 2; }));
    return new Response(parts.join(","));
  },
};
"""

    async def scenario(host: V8Host) -> list[Outcome]:
        pools = [
            await started(tmp_path, f"{name}.js", src, host)
            for name, src in (("sync", sync), ("promise", promise), ("chained", chained))
        ]
        return [await pool.invoke(request()) for pool in pools]

    outcomes = run(scenario)
    assert [(o.status, o.body) for o in outcomes] == [
        (202, b"sync"),
        (200, b"timer"),
        (200, b"2,4,6"),
    ]


@pytest.mark.parametrize(
    ("wait", "count"),
    [
        ("await new Promise((r) => setTimeout(r, (n * 7) % 13));", 60),
        # A continuation after a host call (settled by a later d()) runs with no
        # request current: its log line is told apart by the request-named async
        # function on its stack (js/dispatch.js, fromAsyncStack).
        ('await crypto.subtle.digest("SHA-256", new TextEncoder().encode(String(n)));', 30),
    ],
    ids=["timer", "host call"],
)
def test_many_requests_in_flight_get_their_own_responses(
    tmp_path: Path, wait: str, count: int
) -> None:
    source = f"""\
export default {{
  async fetch(request) {{
    const n = Number(new URL(request.url).searchParams.get("n"));
    {wait}
    console.log("request", n);
    return new Response(String(n * n));
  }},
}};
"""

    async def scenario(host: V8Host) -> list[Outcome]:
        # A generous limit: this is about ordering, and CI machines are shared.
        pool = await started(tmp_path, "square.js", source, host, timeout_ms=20_000)
        return await asyncio.gather(*(pool.invoke(request(query=f"n={n}")) for n in range(count)))

    outcomes = run(scenario)
    assert [o.body for o in outcomes] == [str(n * n).encode() for n in range(count)]
    assert [[log.message for log in o.logs] for o in outcomes] == [
        [f"request {n}"] for n in range(count)
    ], "each log line reaches its own request"


def test_a_function_that_replaces_the_json_globals_is_still_served(tmp_path: Path) -> None:
    """The dispatcher parses each batch and serialises its results with the
    JSON functions it captured before any function code ran."""
    source = """\
JSON.parse = () => { throw new Error("my parse"); };
JSON.stringify = () => "my stringify";
export default {
  async fetch(request) {
    return new Response(`${request.method} ${new URL(request.url).pathname}`);
  },
};
"""

    async def scenario(host: V8Host) -> list[Outcome]:
        pool = await started(tmp_path, "json.js", source, host)
        return await asyncio.gather(*(pool.invoke(request(f"/n{n}")) for n in range(5)))

    outcomes = run(scenario)
    assert [(o.status, o.body) for o in outcomes] == [
        (200, f"GET /n{n}".encode()) for n in range(5)
    ]


def test_console_levels_are_captured_per_invocation(tmp_path: Path) -> None:
    source = """\
console.log("loading");
export default {
  fetch(request) {
    console.log("plain", { a: 1 }, [1, 2]);
    console.info("info %s=%d", "x", 42);
    console.warn("careful");
    console.error(new Error("bad thing"));
    console.debug("details");
    return new Response("ok");
  },
};
"""

    async def scenario(host: V8Host) -> list[Outcome]:
        pool = await started(tmp_path, "logs.js", source, host)
        return [await pool.invoke(request()), await pool.invoke(request())]

    first, second = run(scenario)
    levels = [(log.level, log.message.splitlines()[0]) for log in second.logs]
    assert levels == [
        ("info", "plain { a: 1 } [ 1, 2 ]"),
        ("info", "info x=42"),
        ("warning", "careful"),
        ("error", "Error: bad thing"),
        ("debug", "details"),
    ]
    assert first.logs[0].message == "loading", "module-level logs reach the first response"
    assert all(abs(log.ts - time.time()) < 60 for log in first.logs)


def test_thrown_exception_is_a_generic_500_with_the_stack_in_logs(tmp_path: Path) -> None:
    source = """\
export default {
  async fetch(request) {
    const secret = "s3cret-value";
    throw new Error("boom: " + secret.length);
  },
};
"""

    async def scenario(host: V8Host) -> Outcome:
        pool = await started(tmp_path, "boom.js", source, host)
        return await pool.invoke(request())

    outcome = run(scenario)
    assert outcome.status == 500 and outcome.error == "exception"
    body = json.loads(outcome.body)
    assert body["error"] == "exception" and body["request_id"] == "req-1"
    assert body["message"] == (
        "function boom raised an uncaught exception (the traceback is in its logs)"
    )
    stack = outcome.logs[-1]
    assert stack.level == "error"
    assert "Error: boom: 12" in stack.message and "functions/boom.js:4:" in stack.message


def test_response_bodies_pass_through_and_read_once(tmp_path: Path) -> None:
    source = """\
export default {
  async fetch(request) {
    const inner = new Response("inner body", { status: 203, headers: { "x-inner": "1" } });
    const copy = new Response(inner.body, inner);
    const text = await inner.clone().text();
    const again = await inner.text().then(() => inner.text()).catch((e) => e.message);
    return new Response(`${text}|${again}|${await copy.text()}`, copy);
  },
};
"""

    async def scenario(host: V8Host) -> Outcome:
        pool = await started(tmp_path, "pass.js", source, host)
        return await pool.invoke(request())

    outcome = run(scenario)
    assert outcome.status == 203 and header(outcome, "x-inner") == ["1"]
    assert outcome.body == b"inner body|Body has already been used|inner body"


def test_text_bodies_of_one_batch_reach_their_own_requests(tmp_path: Path) -> None:
    """Text bodies leave V8 after the batch's JSON, cut apart by their lengths in
    UTF-16 units: astral characters count two, and a lone surrogate leaves as
    U+FFFD (as a Response's text is encoded in Workers), also one left at the
    end of a body whose neighbour in the batch starts with the other half."""
    source = r"""
const TEXTS = ["plain", "", "héllo wörld €", "astral 😀 and 😀", "ends high \ud83d",
  "\ude00 starts low", "{\"q\":\"a \\\"quote\\\"\\n\"}"];
export default {
  fetch(request) {
    const n = Number(new URL(request.url).searchParams.get("n"));
    return new Response(TEXTS[n % TEXTS.length]);
  },
};
"""
    expected = [
        "plain", "", "héllo wörld €", "astral 😀 and 😀", "ends high \ufffd",
        "\ufffd starts low", '{"q":"a \\"quote\\"\\n"}',
    ]  # fmt: skip

    async def scenario(host: V8Host) -> list[Outcome]:
        pool = await started(tmp_path, "texts.js", source, host, timeout_ms=20_000)
        return await asyncio.gather(*(pool.invoke(request(query=f"n={n}")) for n in range(35)))

    outcomes = run(scenario)
    assert [(o.status, o.body) for o in outcomes] == [
        (200, expected[n % len(expected)].encode()) for n in range(35)
    ]


def test_request_bodies_do_not_pile_up_in_the_isolate(tmp_path: Path) -> None:
    """A batch past the inbox (edge.runtime.js.entry) enters V8 as a new script
    with its bodies inlined; none may stay behind it. With V8's compilation cache
    on, every source stayed alive and an isolate taking 48 KB bodies that way
    reached a 32 MB limit within ~700 requests (then answered 502 for memory).
    Here two requests of 40 KB enter together, past the inbox."""
    source = """\
export default {
  async fetch(request) {
    return new Response(String((await request.text()).length));
  },
};
"""

    async def scenario(host: V8Host) -> list[Outcome]:
        pool = await started(tmp_path, "bodies.js", source, host, memory_mb=32)
        outcomes = []
        for n in range(750):
            bodies = [(f"{n:07d}{k}" * 5000).encode() for k in (0, 1)]  # a new source each time
            both = [request(method="POST", body=body) for body in bodies]
            outcomes += await asyncio.gather(*(pool.invoke(i) for i in both))
        return outcomes

    outcomes = run(scenario)
    failed = [(n, o.status, o.error) for n, o in enumerate(outcomes) if o.status != 200]
    assert not failed, f"{len(failed)} requests failed, the first {failed[:3]}"
    assert {o.body for o in outcomes} == {b"40000"}
    assert max(o.memory_peak_kb for o in outcomes) < 32 * 1024


def test_batches_in_the_inbox_and_past_it_reach_their_own_requests(tmp_path: Path) -> None:
    """A batch enters V8 through the dispatcher's inbox as ASCII JSON (every other
    character escaped), or as a script when it does not fit: bodies of any text,
    one batch of small ones, one whose bodies together pass the inbox, and one
    body past it alone all reach their own requests unchanged."""
    source = """\
export default {
  async fetch(request) {
    const text = await request.text();
    return Response.json({ n: request.headers.get("x-n"), length: text.length, text });
  },
};
"""
    texts = ["plain", "héllo wörld €", 'astral 😀 \u2028 "quoted" \\ \x00\x1f', "ÿ" * 40]
    texts += ["é" * 20_000, "x" * 30_000, "😀" * 5_000, "z" * 70_000, "ü" * 50_000]

    async def scenario(host: V8Host) -> list[Outcome]:
        pool = await started(tmp_path, "inbox.js", source, host)
        invocations = [
            request(method="POST", body=text.encode(), headers=[("x-n", str(n))])
            for n, text in enumerate(texts)
        ]
        together = await asyncio.gather(*(pool.invoke(i) for i in invocations))
        alone = [await pool.invoke(i) for i in invocations]
        return [*together, *alone]

    outcomes = run(scenario)
    for n, outcome in enumerate(outcomes):
        assert outcome.status == 200, (n, outcome.logs)
        sent = texts[n % len(texts)]
        assert json.loads(outcome.body) == {
            "n": str(n % len(texts)),
            "length": len(sent.encode("utf-16-le")) // 2,
            "text": sent,
        }


def test_a_text_body_reads_once_as_well_formed_text(tmp_path: Path) -> None:
    """A body made from a string is read without a UTF-8 round trip, with the
    same answers: BOM stripped, lone surrogates replaced, read only once."""
    source = r"""
export default {
  async fetch(request) {
    const before = request.bodyUsed;
    const text = await request.text();
    const again = await request.text().catch((e) => e.message);
    const made = new Response("\ufeff\ud800x\ufeff");
    const parsed = await new Response('{"a": [1, "é"]}').json();
    return Response.json({ before, text, used: request.bodyUsed, again,
      made: [...await made.text()].map((c) => c.codePointAt(0)), parsed });
  },
};
"""

    async def scenario(host: V8Host) -> Outcome:
        pool = await started(tmp_path, "text.js", source, host)
        body = "\ufeffhéllo 😀".encode()
        return await pool.invoke(request(method="POST", body=body))

    outcome = run(scenario)
    assert outcome.status == 200, outcome.logs
    assert json.loads(outcome.body) == {
        "before": False,
        "text": "héllo 😀",
        "used": True,
        "again": "Body has already been used",
        "made": [0xFFFD, ord("x"), 0xFEFF],
        "parsed": {"a": [1, "é"]},
    }


def test_non_response_return_is_a_500(tmp_path: Path) -> None:
    source = 'export default { fetch() { return { not: "a response" } } };\n'

    async def scenario(host: V8Host) -> Outcome:
        pool = await started(tmp_path, "wrong.js", source, host)
        return await pool.invoke(request())

    outcome = run(scenario)
    assert outcome.status == 500
    assert "expected a Response" in outcome.logs[-1].message


def test_binary_bodies_round_trip(tmp_path: Path) -> None:
    source = """\
export default {
  async fetch(request) {
    const bytes = new Uint8Array(await request.arrayBuffer());
    const headers = { "content-type": "application/octet-stream" };
    return new Response(bytes.reverse().buffer, { headers });
  },
};
"""
    payload = bytes(range(256)) * 64 + b"\xff\xfe\x00\x80"

    async def scenario(host: V8Host) -> list[Outcome]:
        pool = await started(tmp_path, "bin.js", source, host)
        text = "héllo wörld €".encode()
        return [await pool.invoke(request(method="POST", body=body)) for body in (payload, text)]

    binary, text = run(scenario)
    assert binary.body == payload[::-1]
    assert text.body == "héllo wörld €".encode()[::-1]


def test_web_apis(tmp_path: Path) -> None:
    source = """\
export default {
  async fetch(request) {
    const enc = new TextEncoder().encode("π≈3.14 𝄞");
    const ids = new Set(Array.from({ length: 100 }, () => crypto.randomUUID()));
    const h = new Headers({ "X-A": "1" });
    h.append("x-a", "2");
    const params = new URLSearchParams({ b: "2", a: "1 2" });
    params.sort();
    const clone = structuredClone({ d: new Date(0), m: new Map([[1, [2]]]) });
    const rnd = crypto.getRandomValues(new Uint8Array(8));
    const outbound = await fetch("https://example.com/").catch((e) => e.message);
    return Response.json({
      text: new TextDecoder().decode(enc), bytes: enc.length, ids: ids.size,
      uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
        .test([...ids][0]),
      b64: btoa("hi!") + atob("aGkh"), header: h.get("X-a"), has: h.has("x-A"),
      params: params.toString(), host: new URL("../x?y#z", "https://Ex.COM:443/a/b").href,
      clone: [clone.d.getTime(), clone.m.get(1)[0]], rnd: rnd.length, outbound,
    });
  },
};
"""

    async def scenario(host: V8Host) -> Outcome:
        pool = await started(tmp_path, "apis.js", source, host)
        return await pool.invoke(request())

    data = json.loads(run(scenario).body)
    assert data == {
        "text": "π≈3.14 𝄞",
        "bytes": 14,
        "ids": 100,
        "uuid": True,
        "b64": "aGkhhi!",
        "header": "1, 2",
        "has": True,
        "params": "a=1+2&b=2",
        "host": "https://ex.com/x?y#z",
        "clone": [0, 2],
        "rnd": 8,
        "outbound": "fetch failed: no bindings in this runtime",  # a V8Host without on_call
    }


def test_syntax_error_fails_start_with_the_line(tmp_path: Path) -> None:
    source = "export default {\n  fetch() {\n    return new Response(1;\n  }\n};\n"

    async def scenario(host: V8Host) -> str:
        with pytest.raises(FunctionLoadError) as info:
            await started(tmp_path, "broken.js", source, host)
        return str(info.value)

    message = run(scenario)
    assert message.startswith("functions/broken.js:3: SyntaxError"), message


def test_module_errors_fail_start(tmp_path: Path) -> None:
    throws = "const x = undefinedName + 1;\nexport default { fetch() {} };\n"
    no_fetch = "export default { handle() {} };\n"

    async def scenario(host: V8Host) -> list[str]:
        messages = []
        for name, src in (("throws.js", throws), ("nofetch.js", no_fetch)):
            with pytest.raises(FunctionLoadError) as info:
                await started(tmp_path, name, src, host)
            messages.append(str(info.value))
        return messages

    throws_msg, no_fetch_msg = run(scenario)
    assert "functions/throws.js" in throws_msg and "undefinedName is not defined" in throws_msg
    assert "has no fetch(request, env, ctx) method" in no_fetch_msg


def test_a_module_is_served_once_its_top_level_awaits_are_over(tmp_path: Path) -> None:
    """A module body that ran to its end at once is bound in the call that ran
    it; one that awaits at its top level (after its default export here) is not
    served until it has finished, nor is one that throws after an await."""
    waits = (
        "let ready = false;\n"
        "export default { fetch() { return new Response(ready ? 'ready' : 'early'); } };\n"
        "await new Promise((resolve) => setTimeout(resolve, 50));\n"
        "await crypto.subtle.digest('SHA-256', new Uint8Array(4));\n"
        "ready = true;\n"
    )
    throws = (
        "export default { fetch() { return new Response('served'); } };\n"
        "await null;\n"
        "throw new Error('failed after an await');\n"
    )

    async def scenario(host: V8Host) -> tuple[Outcome, str]:
        pool = await started(tmp_path, "waits.js", waits, host)
        outcome = await pool.invoke(request())
        with pytest.raises(FunctionLoadError) as info:
            await started(tmp_path, "throws.js", throws, host)
        return outcome, str(info.value)

    outcome, message = run(scenario)
    assert (outcome.status, outcome.body) == (200, b"ready")
    assert message.startswith("functions/throws.js:") and "failed after an await" in message


def test_idle_isolate_is_reaped_and_cold_started_again(tmp_path: Path) -> None:
    source = 'export default { fetch() { return new Response("up") } };\n'

    async def scenario(host: V8Host) -> tuple[int, Outcome]:
        pool = await started(tmp_path, "idle.js", source, host, min_warm=0)
        await pool.invoke(request())
        reaped = pool.reap_idle(time.monotonic() + 3600, ttl=60)
        return reaped, await pool.invoke(request())

    reaped, outcome = run(scenario)
    assert reaped == 1
    assert outcome.status == 200 and outcome.cold and outcome.cold_ms > 0


def test_first_request_loads_an_unstarted_pool(tmp_path: Path) -> None:
    source = 'export default { fetch() { return new Response("lazy") } };\n'

    async def scenario(host: V8Host) -> list[Outcome]:
        pool = JsPool(version(tmp_path, write(tmp_path, "lazy.js", source)), host)
        return [await pool.invoke(request()), await pool.invoke(request())]

    first, second = run(scenario)
    assert (first.status, first.body, first.cold) == (200, b"lazy", True)
    assert first.cold_ms > 0
    assert (second.status, second.cold) == (200, False)


def test_host_environment_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_API_TOKEN", "platform-secret")
    source = 'export default { fetch() { return new Response("x") } };\n'

    async def scenario(host: V8Host) -> bytes:
        await started(tmp_path, "env.js", source, host)
        assert host.pid is not None
        return Path(f"/proc/{host.pid}/environ").read_bytes()

    environ = run(scenario)
    assert b"platform-secret" not in environ and b"EDGE_" not in environ
    assert all(not key.startswith("EDGE_") for key in host_env())
    assert os.environ["EDGE_API_TOKEN"] == "platform-secret"


def test_check_js_messages() -> None:
    good = "export default { async fetch() { return new Response('ok') } };\n"
    errors = check_js_many(
        {
            "functions/good.js": good,
            "functions/hello.js": "export default {\n  fetch() {\n    }\n  }}\n};\n",
            "functions/imports.js": "// util\nimport { x } from './x.js';\nexport default {};\n",
            "functions/none.js": "const fetch = () => 1;\n",
            "functions/tla.js": "const v = await Promise.resolve(1);\n" + good,
            "functions/min.js": "var a={fetch(){}};export{a as default};\n",
            "functions/keys.js": "const o = {\n  importance: 1,\n  imported: 2,\n};\n" + good,
            "functions/tight.js": 'import{x}from"./x.js";\nexport default {};\n',
        }
    )
    assert errors == {
        "functions/hello.js": "functions/hello.js:4: SyntaxError: Unexpected token '}'",
        "functions/imports.js": (
            "functions/imports.js:2: import statements are not supported; "
            "bundle the module into one file (e.g. esbuild --bundle --format=esm)"
        ),
        "functions/tight.js": (
            "functions/tight.js:1: import statements are not supported; "
            "bundle the module into one file (e.g. esbuild --bundle --format=esm)"
        ),
        "functions/min.js": (
            "functions/min.js: no `export default` found at the start of a line "
            "(is the module minified onto one line?)"
        ),
        "functions/none.js": (
            "functions/none.js: no `export default` found; a function module "
            "must end in `export default { async fetch(request, env, ctx) { ... } }`"
        ),
    }
    assert check_js(good, "functions/good.js") is None
    assert check_js("export default {\n  fetch() { const x = ; }\n};\n", "f.js") == (
        "f.js:2: SyntaxError: Unexpected token ';'"
    )
