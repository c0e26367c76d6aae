"""Platform faults look the same whatever language the function is written in.

One app with a Python and a JavaScript function per fault (a timeout, a memory
bomb, a crash), deployed by a real git push to a real runtime: each pair must
answer with the same status, the same JSON shape
``{"error", "message", "request_id"}``, the same fault name and the same
wording, differing only in the function's name and the crash's own reason.
"""

from __future__ import annotations

import os
import signal
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from stack import Stack, Workdir, wait_for

TIMEOUT_MS = 500
MEMORY_MB = 64

MANIFEST = f"""
[functions.py-spin]
entry = "functions/faults.py:spin"
routes = ["/py/spin"]
timeout_ms = {TIMEOUT_MS}

[functions.js-spin]
entry = "functions/spin.js"
routes = ["/js/spin"]
timeout_ms = {TIMEOUT_MS}

[functions.py-bomb]
entry = "functions/faults.py:bomb"
routes = ["/py/bomb"]
memory_mb = {MEMORY_MB}

[functions.js-bomb]
entry = "functions/bomb.js"
routes = ["/js/bomb"]
memory_mb = {MEMORY_MB}

[functions.py-crash]
entry = "functions/faults.py:crash"
routes = ["/py/crash"]

[functions.py-headers]
entry = "functions/faults.py:headers"
routes = ["/py/headers"]

[functions.js-headers]
entry = "functions/headers.js"
routes = ["/js/headers"]

[functions.js-hang]
entry = "functions/spin.js"
routes = ["/js/hang"]
timeout_ms = 20000
"""
FAULTS = """
import ctypes

def spin(request):
    while True:
        pass

def bomb(request):
    keep = []
    while True:
        keep.append(bytearray(1024 * 1024))

def crash(request):
    ctypes.string_at(0)

def headers(request):
    from edge import Response
    if request.query.get("bad"):
        return Response("x", headers={"x-name": "snow \u2603"})
    return Response("ok", headers=FORGED)

FORGED = {"x-edge-request-id": "forged", "x-edge-release": "v999", "x-mine": "1"}
"""
HEADERS = """
const FORGED = { "x-edge-request-id": "forged", "x-edge-release": "v999", "x-mine": "1" };
export default { fetch() { return new Response("ok", { headers: FORGED }); } };
"""
SPIN = "export default { fetch() { while (true) {} } };\n"
BOMB = (
    "export default { fetch() { const keep = []; "
    "while (true) { keep.push(new Array(1e6).fill(1.5)); } } };\n"
)


@pytest.fixture(scope="module")
def app(runtime_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> str:
    name = "shapes-" + uuid.uuid4().hex[:8]
    work = Workdir(Path(tmp_path_factory.mktemp("shapes")) / name)
    work.commit(
        "faults in both languages",
        {
            "edge.toml": MANIFEST,
            "functions/faults.py": FAULTS,
            "functions/spin.js": SPIN,
            "functions/bomb.js": BOMB,
            "functions/headers.js": HEADERS,
        },
    )
    out = work.push(runtime_stack.remote(name))
    assert "v1 live at" in out.stderr, out.stderr
    return name


def fault(resp: httpx.Response) -> dict[str, str]:
    body = resp.json()
    assert sorted(body) == ["error", "message", "request_id"], body
    assert body["request_id"] == resp.headers["x-edge-request-id"]
    assert resp.headers["content-type"] == "application/json"
    return {"status": str(resp.status_code), "error": body["error"], "message": body["message"]}


def v8_hosts(stack: Stack) -> dict[int, int]:
    """The V8 host processes of the stack's runtime (its gunicorn master's session),
    with the CPU time each has used, in clock ticks."""
    session = stack.processes["runtime"].pid
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == session and b"edge.runtime.js.host" in cmdline:
            found[int(entry.name)] = int(fields[11]) + int(fields[12])
    return found


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("spin", ("504", "timeout", "function {lang}-spin timed out after 500 ms")),
        ("bomb", ("502", "memory", "function {lang}-bomb: memory limit of 64 MB exceeded")),
    ],
)
def test_python_and_js_answer_a_limit_alike(
    runtime_stack: Stack, app: str, kind: str, expected: tuple[str, str, str]
) -> None:
    host = runtime_stack.host(app)
    for lang in ("py", "js"):
        got = fault(runtime_stack.get(host, f"/{lang}/{kind}"))
        status, error, message = expected
        assert got == {"status": status, "error": error, "message": message.format(lang=lang)}


def test_python_and_js_answer_a_crash_alike(runtime_stack: Stack, app: str) -> None:
    host = runtime_stack.host(app)
    python = fault(runtime_stack.get(host, "/py/crash"))
    assert python == {
        "status": "502",
        "error": "crash",
        "message": "function py-crash crashed: SIGSEGV",
    }

    # A JavaScript function crashes when its V8 host dies under it: the host
    # found spinning (its CPU time climbing) is the one running the request.
    before = v8_hosts(runtime_stack)
    answer: list[httpx.Response] = []
    waiting = threading.Thread(target=lambda: answer.append(runtime_stack.get(host, "/js/hang")))
    waiting.start()
    spinning: list[int] = []

    def found_spinning() -> bool:
        now = v8_hosts(runtime_stack)
        spinning[:] = [pid for pid, ticks in now.items() if ticks - before.get(pid, 0) >= 30]
        return bool(spinning)

    wait_for(found_spinning, message="a V8 host to be running js-hang")
    os.kill(spinning[0], signal.SIGKILL)
    waiting.join(timeout=30)
    assert answer, "the request never returned"
    javascript = fault(answer[0])
    assert javascript == {
        "status": "502",
        "error": "crash",
        "message": "function js-hang crashed: the V8 host process died",
    }


@pytest.mark.parametrize("lang", ["py", "js"])
def test_a_function_cannot_set_the_platforms_headers(
    runtime_stack: Stack, app: str, lang: str
) -> None:
    resp = runtime_stack.get(runtime_stack.host(app), f"/{lang}/headers")
    assert resp.status_code == 200 and resp.text == "ok"
    assert resp.headers["x-mine"] == "1"
    assert resp.headers.get_list("x-edge-request-id") == [resp.headers["x-edge-request-id"]]
    assert len(resp.headers["x-edge-request-id"]) == 16  # the platform's id, not "forged"
    assert resp.headers.get_list("x-edge-release") == ["v1"]


def test_a_header_http_cannot_carry_is_an_invalid_response(runtime_stack: Stack, app: str) -> None:
    resp = runtime_stack.get(runtime_stack.host(app), "/py/headers?bad=1")
    assert fault(resp) == {
        "status": "502",
        "error": "invalid_response",
        "message": "function py-headers sent an invalid response (the reason is in its logs)",
    }
