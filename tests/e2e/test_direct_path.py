"""The direct path: keep-alive HTTP/1.1 function requests answered at the protocol.

``edge.runtime.connection.EdgeProtocol`` answers a function request that
arrives on an idle kept-alive connection itself (``edge.runtime.replies.DirectReply``)
instead of through gunicorn's ASGI loop. These tests hold it to what gunicorn's
path does for the same request (a ``Connection: close`` request still takes
that path): the same status, headers and body; the HTTP framing rules for
204, 304, large and streamed bodies; pipelined requests answered in order; and
the keep-alive timer, which must neither close a connection under a request
that runs longer than it nor leave an idle one open.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from stack import Stack, Workdir

MANIFEST = """
app = "{app}"

[functions.echo]
entry = "functions/echo.py"
routes = ["/echo", "/echo/:word"]
min_warm = 1

[functions.status]
entry = "functions/status.py"
routes = ["/status/:code"]

[functions.big]
entry = "functions/big.py"
routes = ["/big"]

[functions.stream]
entry = "functions/stream.py"
routes = ["/stream"]

[functions.slow]
entry = "functions/slow.py"
routes = ["/slow"]
timeout_ms = 10000

[functions.jsecho]
entry = "functions/echo.js"
routes = ["/js/echo", "/js/echo/:word"]

[functions.jsstatus]
entry = "functions/status.js"
routes = ["/js/status/:code"]

[functions.jsbig]
entry = "functions/big.js"
routes = ["/js/big"]

[functions.jsstream]
entry = "functions/stream.js"
routes = ["/js/stream"]

[functions.jsslow]
entry = "functions/slow.js"
routes = ["/js/slow"]
timeout_ms = 10000
"""
ECHO = """
import hashlib

def handle(request):
    return {
        "method": request.method,
        "url": request.url,
        "params": dict(request.params),
        "query": dict(request.query),
        "size": len(request.body),
        "sha": hashlib.sha256(request.body).hexdigest(),
        "agent": request.headers.get("x-test"),
    }
"""
STATUS = """
from edge import Response

def handle(request):
    return Response("x", status=int(request.params["code"]), headers={"x-kind": "status"})
"""
BIG = """
def handle(request):
    return bytes(range(256)) * 1200  # 300 KB, past the ASGI path's 256 KB slice
"""
STREAM = """
def handle(request):
    def body():
        for i in range(int(request.query.get("n", "5"))):
            yield f"part {i}\\n"
    return body()
"""
SLOW = """
import time

def handle(request):
    time.sleep(float(request.query["s"]))
    return "slept"
"""
# The same functions in JavaScript: a warm isolate's requests are answered with
# no task (FunctionPath.answer_soon), as the V8 host's replies are read.
ECHO_JS = """
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const body = new Uint8Array(await request.arrayBuffer());
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", body));
    return Response.json({
      method: request.method,
      url: request.url,
      params: ctx.params,
      query: Object.fromEntries(url.searchParams),
      size: body.length,
      sha: Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""),
      agent: request.headers.get("x-test"),
    });
  },
};
"""
STATUS_JS = """
export default {
  fetch(request, env, ctx) {
    const status = Number(ctx.params.code);
    const body = status === 204 || status === 304 ? null : "x";  // null-body statuses
    return new Response(body, { status, headers: { "x-kind": "status" } });
  },
};
"""
BIG_JS = """
const big = new Uint8Array(256 * 1200).map((_, i) => i % 256);
export default { fetch() { return new Response(big); } };
"""
STREAM_JS = """
export default {
  fetch(request) {
    const n = Number(new URL(request.url).searchParams.get("n") ?? "5");
    const encoder = new TextEncoder();
    let i = 0;
    return new Response(new ReadableStream({
      pull(controller) {
        if (i < n) controller.enqueue(encoder.encode(`part ${i++}\\n`));
        else controller.close();
      },
    }));
  },
};
"""
SLOW_JS = """
export default {
  async fetch(request) {
    const s = Number(new URL(request.url).searchParams.get("s"));
    await new Promise((resolve) => setTimeout(resolve, s * 1000));
    return new Response("slept");
  },
};
"""
LANGUAGES = pytest.mark.parametrize("prefix", ["", "/js"], ids=["python", "js"])
# Headers that differ per request, whichever path answers.
VARYING = {"date", "x-edge-request-id", "x-edge-duration-ms", "x-edge-cold-start", "connection"}
KEEPALIVE_S = 5  # edge.runtime.server: gunicorn's keepalive


@pytest.fixture(scope="module")
def host(runtime_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> str:
    app = "direct-" + uuid.uuid4().hex[:6]
    work = Workdir(Path(tmp_path_factory.mktemp("direct")) / app)
    work.commit(
        "direct path",
        {
            "edge.toml": MANIFEST.format(app=app),
            "functions/echo.py": ECHO,
            "functions/status.py": STATUS,
            "functions/big.py": BIG,
            "functions/stream.py": STREAM,
            "functions/slow.py": SLOW,
            "functions/echo.js": ECHO_JS,
            "functions/status.js": STATUS_JS,
            "functions/big.js": BIG_JS,
            "functions/stream.js": STREAM_JS,
            "functions/slow.js": SLOW_JS,
        },
    )
    out = work.push(runtime_stack.remote(app))
    assert "v1 live at" in out.stderr, out.stderr
    return runtime_stack.host(app)


@pytest.fixture
def conn(runtime_stack: Stack) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection(
        "127.0.0.1", runtime_stack.config.runtime_port, timeout=30
    )
    try:
        yield connection
    finally:
        connection.close()


def fetch(
    conn: http.client.HTTPConnection,
    host: str,
    path: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def direct_count(conn: http.client.HTTPConnection, host: str) -> tuple[int, int]:
    """This connection's worker's count of direct requests (/healthz is not one),
    and of those answered with no task."""
    status, _, data = fetch(conn, "127.0.0.1", "/healthz")
    assert status == 200
    counts = json.loads(data)
    return int(counts["direct_requests"]), int(counts["direct_callbacks"])


def counted(requests: int) -> tuple[int, int]:
    """What :func:`direct_count` grows by for ``requests`` warm requests, each
    answered with no task (a JavaScript isolate loaded, a Python instance at hand)."""
    return requests, requests


def grew(before: tuple[int, int], after: tuple[int, int]) -> tuple[int, int]:
    return after[0] - before[0], after[1] - before[1]


def stable(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in VARYING}


@LANGUAGES
def test_kept_alive_function_requests_take_the_direct_path_and_answer_as_gunicorns_does(
    conn: http.client.HTTPConnection, host: str, prefix: str
) -> None:
    fetch(conn, host, f"{prefix}/echo")  # warm: a first request may load the function
    before = direct_count(conn, host)
    payload = b"\x00\xffbody" * 1000
    answers = [
        fetch(conn, host, f"{prefix}/echo/hi?a=1&b=%20x", headers={"x-test": "one"}),
        fetch(conn, host, f"{prefix}/echo", method="POST", body=payload, headers={"x-test": "two"}),
        fetch(conn, host, f"{prefix}/echo", method="DELETE"),
    ]
    assert grew(before, direct_count(conn, host)) == counted(3)
    status, headers, data = answers[0]
    assert status == 200
    assert json.loads(data) == {
        "method": "GET",
        "url": f"http://{host}{prefix}/echo/hi?a=1&b=%20x",
        "params": {"word": "hi"},
        "query": {"a": "1", "b": " x"},
        "size": 0,
        "sha": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "agent": "one",
    }
    assert json.loads(answers[1][2])["size"] == len(payload)
    assert json.loads(answers[2][2])["method"] == "DELETE"
    # gunicorn's path, for the same request: Connection: close keeps it there.
    closing = fetch(
        conn, host, f"{prefix}/echo/hi?a=1&b=%20x", headers={"x-test": "one", "Connection": "close"}
    )
    assert closing[0] == status and closing[2] == data
    assert closing[1]["connection"] == "close"
    assert stable(closing[1]) == stable(headers)
    assert headers["server"] == closing[1]["server"]


@LANGUAGES
def test_targets_and_headers_read_on_the_direct_path_as_on_gunicorns(
    conn: http.client.HTTPConnection, host: str, prefix: str
) -> None:
    """Once a connection's forwarded-header trust is known, a request with no
    header the policy acts on skips gunicorn's request object; one with such a
    header goes through it. Each reads as gunicorn's own path reads it."""
    fetch(conn, host, f"{prefix}/echo")  # warm; the connection's trust is worked out
    cases = [
        (f"{prefix}/echo/caf%C3%A9?q=%2F&r=%zz", {"x-test": "encoded"}),  # the fast way
        (f"{prefix}/echo/u", {"x_test": "underscored", "x-test": "dashed"}),  # "_": the policy
        (f"{prefix}/echo/f", {"X-Forwarded-Proto": "https", "x-test": "forwarded"}),
    ]
    for target, headers in cases:
        before = direct_count(conn, host)
        direct = fetch(conn, host, target, headers=headers)
        assert grew(before, direct_count(conn, host)) == counted(1)
        gunicorns = fetch(conn, host, target, headers={**headers, "Connection": "close"})
        assert direct[0] == gunicorns[0] == 200, direct
        assert json.loads(direct[2]) == json.loads(gunicorns[2])
    assert json.loads(direct[2])["agent"] == "forwarded"


@pytest.mark.parametrize(
    "head",
    [
        "GET /echo HTTP/1.1\r\nHost: {host}\r\nHost: {host}\r\n",
        "GET /echo HTTP/1.1\r\nHost: {host}\r\nContent-Type: a/b\r\nContent-Type: c/d\r\n",
        "POST /echo HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: gzip\r\n",
    ],
    ids=["two-hosts", "two-content-types", "not-chunked"],
)
def test_a_request_gunicorn_refuses_is_refused_on_a_kept_alive_connection(
    runtime_stack: Stack, host: str, head: str
) -> None:
    """400 and closed, even after a request that made the connection's trust
    known. gunicorn's C parser refuses these itself; the direct path's own checks
    (gunicorn's backstop, for a parser that lets them through) are held in
    tests/unit/test_direct_scan.py."""
    first = f"GET /echo HTTP/1.1\r\nHost: {host}\r\n\r\n"
    bad = head.format(host=host) + "\r\n"
    with socket.create_connection(("127.0.0.1", runtime_stack.config.runtime_port)) as sock:
        sock.settimeout(30)
        sock.sendall(first.encode())
        assert read_responses(sock, 1)[0][0] == "200"
        sock.sendall(bad.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400"), data[:200]


def read_responses(sock: socket.socket, count: int) -> list[tuple[str, dict[str, str], bytes]]:
    """``count`` responses framed by content-length (or none), from a raw socket."""
    data = b""
    out: list[tuple[str, dict[str, str], bytes]] = []
    deadline = time.monotonic() + 30
    while len(out) < count:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            lines = data[:head_end].decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            status = lines[0].split()[1]
            has_body = status not in ("204", "304")
            length = int(headers.get("content-length", "0")) if has_body else 0
            if len(data) >= head_end + 4 + length:
                out.append((status, headers, data[head_end + 4 : head_end + 4 + length]))
                data = data[head_end + 4 + length :]
                continue
        assert time.monotonic() < deadline, f"incomplete responses: {data[:300]!r}"
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {len(out)} responses"
        data += chunk
    assert data == b"", f"bytes past the last response: {data[:200]!r}"
    return out


@LANGUAGES
def test_pipelined_requests_are_answered_in_order_with_http_framing(
    runtime_stack: Stack, host: str, prefix: str
) -> None:
    """204 has neither length nor body, 304 keeps its length without the body
    (RFC 9110 6.4.2, 15.4.5), others carry theirs: three requests in one write.
    (A JavaScript Response may not have a body with 204 or 304: its length is 0.)"""
    request = "GET " + prefix + "/status/{code} HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
    with socket.create_connection(("127.0.0.1", runtime_stack.config.runtime_port)) as sock:
        sock.sendall("".join(request.format(code=c) for c in (204, 304, 201, 204)).encode())
        answers = read_responses(sock, 4)
    assert [a[0] for a in answers] == ["204", "304", "201", "204"]
    no_content, not_modified, created, _ = answers
    assert "content-length" not in no_content[1] and "transfer-encoding" not in no_content[1]
    length = "0" if prefix else "1"
    assert not_modified[1]["content-length"] == length and not_modified[2] == b""
    assert created[1]["content-length"] == "1" and created[2] == b"x"
    assert all(a[1]["x-kind"] == "status" for a in answers)


@LANGUAGES
def test_large_and_streamed_bodies_arrive_whole_on_a_kept_alive_connection(
    conn: http.client.HTTPConnection, host: str, prefix: str
) -> None:
    for path in ("/big", "/stream?n=1"):  # warm: a first request may load the function
        fetch(conn, host, prefix + path)
    before = direct_count(conn, host)
    for _ in range(2):
        status, headers, data = fetch(conn, host, f"{prefix}/big")
        assert status == 200 and data == bytes(range(256)) * 1200
        assert headers["content-length"] == str(len(data))
        status, headers, data = fetch(conn, host, f"{prefix}/stream?n=40")
        assert status == 200 and headers["transfer-encoding"] == "chunked"
        assert data == "".join(f"part {i}\n" for i in range(40)).encode()
        status, headers, data = fetch(conn, host, f"{prefix}/stream?n=0")
        assert status == 200 and data == b""
    assert grew(before, direct_count(conn, host)) == counted(6)


@LANGUAGES
def test_a_big_response_to_a_client_that_reads_slowly_arrives_whole(
    runtime_stack: Stack, host: str, prefix: str
) -> None:
    """32 pipelined 300 KB responses (9.6 MB, past what the kernel's buffers
    take on loopback) to a client that reads nothing for a second: the write
    buffer passes its high-water mark, and an answer waits for it to drain
    before the connection takes its next request (a JavaScript answer, written
    with no task, makes one for that wait)."""
    count = 32
    request = f"GET {prefix}/big HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # before the handshake
        sock.connect(("127.0.0.1", runtime_stack.config.runtime_port))
        sock.sendall(request * count)
        # Not a wait for a condition but the client's stall itself: read at once,
        # and the kernel's buffers keep up (checked: no drain wait in three runs).
        time.sleep(1.0)
        answers = read_responses(sock, count)
    big = bytes(range(256)) * 1200
    assert [(a[0], a[2] == big) for a in answers] == [("200", True)] * count


@LANGUAGES
def test_a_request_longer_than_the_keepalive_time_is_answered_then_idle_closes(
    runtime_stack: Stack, host: str, prefix: str
) -> None:
    request = f"GET {prefix}/slow?s={{s}} HTTP/1.1\r\nHost: {host}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", runtime_stack.config.runtime_port)) as sock:
        sock.settimeout(30)
        sock.sendall(request.format(s=0).encode())
        assert read_responses(sock, 1)[0][2] == b"slept"
        sock.sendall(request.format(s=KEEPALIVE_S + 1.5).encode())  # the timer fires meanwhile
        assert read_responses(sock, 1)[0][2] == b"slept"
        idle = time.monotonic()
        assert sock.recv(1) == b""  # the server closes the idle connection
        waited = time.monotonic() - idle
    assert KEEPALIVE_S - 0.5 < waited < KEEPALIVE_S + 3, waited
