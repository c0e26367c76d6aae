"""The Edge apps the bench deploys, as ``{path: text}`` file maps."""

from __future__ import annotations

from bench.realistic import REAL_JS, REAL_PY

HELLO_PY = """\
from edge import Response


def handle(request):
    return Response("hello world", headers={"content-type": "text/plain"})
"""

HELLO_JS = """\
export default {
  async fetch(request) {
    return new Response("hello world", { headers: { "content-type": "text/plain" } });
  },
};
"""

STREAM_PY = """\
def handle(request):
    block = b"x" * 65536
    return (block for _ in range(int(request.query.get("n", "1"))))
"""

# ReadableStream is not in the prelude yet: dispatch.js's streaming hook takes
# any async iterable (see js/dispatch.js).
STREAM_JS = """\
export default {
  async fetch(request) {
    const n = Number(new URL(request.url).searchParams.get("n") || "1");
    const block = new Uint8Array(65536).fill(120);
    const headers = { "content-type": "application/octet-stream" };
    const response = new Response(null, { headers });
    __edgeInternal.setStreamBody(response, (async function* () {
      for (let i = 0; i < n; i++) yield block;
    })());
    return response;
  },
};
"""

LIVE_PY = """\
def handle(request):
    return {{"push": {push}}}
"""


def _function(name: str, entry: str, route: str, method: str = "GET", **policy: int) -> str:
    lines = [f"[functions.{name}]", f'entry = "{entry}"', f'routes = ["{method} {route}"]']
    lines += [f"{key} = {value}" for key, value in policy.items()]
    return "\n".join(lines) + "\n"


def bench_app(min_warm: int, cold_functions: int) -> dict[str, str]:
    """App ``bench``: the hello functions (always warm) and the cold-start functions.

    ``GET /py`` and ``GET /js`` are the hello functions, ``POST /real/py`` and
    ``POST /real/js`` the realistic ones (:mod:`bench.realistic`), ``GET /stream/<lang>?n=N``
    stream N blocks of 64 KiB; ``GET /cold/<lang>/<i>``
    are ``cold_functions`` Python and as many JS functions with ``min_warm = 0``.
    """
    parts = [
        'app = "bench"\n',
        _function(
            "hello-py", "functions/hello.py", "/py", min_warm=min_warm, max_instances=min_warm
        ),
        _function("hello-js", "functions/hello.js", "/js", min_warm=1),
        _function(
            "real-py",
            "functions/real.py",
            "/real/py",
            "POST",
            min_warm=min_warm,
            max_instances=min_warm,
        ),
        _function("real-js", "functions/real.js", "/real/js", "POST", min_warm=1),
        _function("stream-py", "functions/stream.py", "/stream/py", min_warm=1),
        _function("stream-js", "functions/stream.js", "/stream/js", min_warm=1),
    ]
    files = {
        "functions/hello.py": HELLO_PY,
        "functions/hello.js": HELLO_JS,
        "functions/real.py": REAL_PY,
        "functions/real.js": REAL_JS,
        "functions/stream.py": STREAM_PY,
        "functions/stream.js": STREAM_JS,
    }
    for i in range(cold_functions):
        # Each needs an entry file of its own: functions with the same files and
        # settings share one content hash, hence one pool (and its warm instances).
        for language, comment in (("py", "#"), ("js", "//")):
            entry = f"functions/cold_{language}_{i}.{language}"
            parts.append(_function(f"cold-{language}-{i}", entry, f"/cold/{language}/{i}"))
            files[entry] = (
                f"{comment} cold-start function {i}\n" + files[f"functions/hello.{language}"]
            )
    return {"edge.toml": "\n".join(parts), **files}


def cold_paths(language: str, cold_functions: int) -> list[str]:
    """The routes of the cold-start functions of ``language`` ("py" or "js")."""
    return [f"/cold/{language}/{i}" for i in range(cold_functions)]


def live_app(push: int) -> dict[str, str]:
    """App ``live``: one warm function answering ``{"push": <push>}`` at ``GET /``."""
    manifest = 'app = "live"\n\n' + _function("live", "functions/live.py", "/", min_warm=1)
    return {"edge.toml": manifest, "functions/live.py": LIVE_PY.format(push=push)}
