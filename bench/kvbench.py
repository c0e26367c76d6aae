"""KV get round trip: what one ``KV.get`` adds to a warm request, per language.

App ``kvbench`` has, per language, a function that does one KV get of a small
existing key and returns the value, and the same function answering the same
bytes without the get. Both are timed client-side, warm and sequential, each on
a keep-alive connection of its own, in interleaved blocks so that the machine's
noise falls on both alike; the row reports the get's cost as the difference of
the medians (and their ratio). A direct redis-py ``GET`` of the same key on the
same Redis, from the bench process, is timed in the same blocks: the floor
under any KV round trip.

``.venv/bin/python -m bench.kvbench`` runs only this part, on a platform of its
own (``BENCH_KV_REQUESTS`` sets the requests per function).
"""

from __future__ import annotations

import http.client
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import redis

from bench.client import connect, get, request
from bench.edgestack import EdgeStack, scratch_stack
from bench.gitwork import Workdir
from bench.procs import exit_on_signals
from bench.report import KV_LANGUAGES, kv_rows
from bench.settings import Settings
from edge.kvstore import Namespace, encode_key

KEY = "bench-key"
VALUE = "v" * 64
BLOCK = 100  # requests of each kind in a row before switching to the next kind

KV_PY = f"""\
from edge import Response, kv


def handle(request):
    return Response(kv.get_bytes({KEY!r}), headers={{"content-type": "text/plain"}})
"""

PLAIN_PY = f"""\
from edge import Response

VALUE = {VALUE!r}.encode()


def handle(request):
    return Response(VALUE, headers={{"content-type": "text/plain"}})
"""

SEED_PY = f"""\
from edge import kv


def handle(request):
    kv.put({KEY!r}, {VALUE!r})
    return "stored"
"""

KV_JS = f"""\
export default {{
  async fetch(request, env) {{
    const value = await env.KV.get({KEY!r});
    return new Response(value, {{ headers: {{ "content-type": "text/plain" }} }});
  }},
}};
"""

PLAIN_JS = f"""\
const VALUE = {VALUE!r};

export default {{
  async fetch(request, env) {{
    return new Response(VALUE, {{ headers: {{ "content-type": "text/plain" }} }});
  }},
}};
"""


@dataclass
class KVSamples:
    """Client-side milliseconds of one language's pair of functions.

    Attributes:
        with_get: the function that does one KV get.
        without_get: the same answer, no KV get.
    """

    with_get: list[float] = field(default_factory=list)
    without_get: list[float] = field(default_factory=list)


@dataclass
class KVResults:
    """Per language key ("py", "js") its samples; ``direct_ms``: redis-py GETs."""

    languages: dict[str, KVSamples]
    direct_ms: list[float]


def kv_app() -> dict[str, str]:
    """App ``kvbench``: ``GET /kv/<lang>``, ``GET /plain/<lang>``, ``GET /seed``."""
    parts = ['app = "kvbench"\n']
    files = {}
    sources = {
        "kv-py": ("py", KV_PY, "/kv/py"),
        "plain-py": ("py", PLAIN_PY, "/plain/py"),
        "kv-js": ("js", KV_JS, "/kv/js"),
        "plain-js": ("js", PLAIN_JS, "/plain/js"),
        "seed": ("py", SEED_PY, "/seed"),
    }
    for name, (ext, source, route) in sources.items():
        entry = f"functions/{name.replace('-', '_')}.{ext}"
        parts.append(
            f'[functions.{name}]\nentry = "{entry}"\nroutes = ["GET {route}"]\nmin_warm = 1\n'
        )
        files[entry] = source
    return {"edge.toml": "\n".join(parts), **files}


def deploy_kv(stack: EdgeStack, workdir: Workdir) -> None:
    """Push app ``kvbench``, store the key through a function, check every answer."""
    stack.deploy(workdir, "kvbench", kv_app(), "KV bench functions")
    host = stack.host("kvbench")
    seeded = get(stack.runtime_port, "/seed", host=host)
    if seeded.status != 200:
        raise RuntimeError(f"/seed answered {seeded.status}: {seeded.body[:300]!r}")
    for path in ("/kv/py", "/plain/py", "/kv/js", "/plain/js"):
        reply = get(stack.runtime_port, path, host=host)
        if reply.status != 200 or reply.body != VALUE.encode():
            raise RuntimeError(f"{path} answered {reply.status}: {reply.body[:300]!r}")


def measure_kv(stack: EdgeStack, requests: int) -> KVResults:
    """``requests`` warm sequential requests per function, and as many direct GETs."""
    host = stack.host("kvbench")
    client = redis.Redis.from_url(stack.config.redis_url)
    value_key = encode_key(Namespace("kvbench", "production").value_key(KEY))
    if client.get(value_key) != VALUE.encode():
        raise RuntimeError(f"Redis holds no {KEY!r} under {value_key!r}")
    results = KVResults({lang: KVSamples() for lang in KV_LANGUAGES}, [])
    kinds = [(lang, kind) for lang in KV_LANGUAGES for kind in ("kv", "plain")]
    conns = {pair: connect(stack.runtime_port) for pair in kinds}
    calls = {
        (lang, kind): partial(_get, conn, f"/{kind}/{lang}", host)
        for (lang, kind), conn in conns.items()
    }
    direct = partial(client.get, value_key)
    try:
        for call in (direct, *calls.values()):
            _block(call, BLOCK)  # warm-up, not recorded
        for _ in range(max(1, requests // BLOCK)):
            results.direct_ms += _block(direct, BLOCK)
            for (lang, kind), call in calls.items():
                samples = results.languages[lang]
                (samples.with_get if kind == "kv" else samples.without_get).extend(
                    _block(call, BLOCK)
                )
    finally:
        for conn in conns.values():
            conn.close()
        client.close()
    return results


def _get(conn: http.client.HTTPConnection, path: str, host: str) -> None:
    reply = request(conn, path, host)
    if reply.status != 200:
        raise RuntimeError(f"{path} answered {reply.status}: {reply.body[:300]!r}")


def _block(call: Callable[[], object], n: int) -> list[float]:
    """Milliseconds of ``n`` sequential calls."""
    taken = []
    for _ in range(n):
        began = time.perf_counter()
        call()
        taken.append((time.perf_counter() - began) * 1000)
    return taken


def main() -> int:
    exit_on_signals()
    settings = Settings.from_env()
    with scratch_stack(settings) as (stack, tmp, _):
        deploy_kv(stack, Workdir(tmp / "work-kvbench"))
        results = measure_kv(stack, settings.kv_requests)
    print("\n".join(kv_rows(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
