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


def direct_count(conn: http.client.HTTPConnection, host: str) -> int:
    """This connection's worker's count of direct requests (/healthz is not one)."""
    status, _, data = fetch(conn, "127.0.0.1", "/healthz")
    assert status == 200
    return int(json.loads(data)["direct_requests"])


def stable(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in VARYING}


def test_kept_alive_function_requests_take_the_direct_path_and_answer_as_gunicorns_does(
    conn: http.client.HTTPConnection, host: str
) -> None:
    before = direct_count(conn, host)
    payload = b"\x00\xffbody" * 1000
    answers = [
        fetch(conn, host, "/echo/hi?a=1&b=%20x", headers={"x-test": "one"}),
        fetch(conn, host, "/echo", method="POST", body=payload, headers={"x-test": "two"}),
        fetch(conn, host, "/echo", method="DELETE"),
    ]
    assert direct_count(conn, host) == before + 3
    status, headers, data = answers[0]
    assert status == 200
    assert json.loads(data) == {
        "method": "GET",
        "url": f"http://{host}/echo/hi?a=1&b=%20x",
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
        conn, host, "/echo/hi?a=1&b=%20x", headers={"x-test": "one", "Connection": "close"}
    )
    assert closing[0] == status and closing[2] == data
    assert closing[1]["connection"] == "close"
    assert stable(closing[1]) == stable(headers)
    assert headers["server"] == closing[1]["server"]


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


def test_pipelined_requests_are_answered_in_order_with_http_framing(
    runtime_stack: Stack, host: str
) -> None:
    """204 has neither length nor body, 304 keeps its length without the body
    (RFC 9110 6.4.2, 15.4.5), others carry theirs: three requests in one write."""
    request = "GET /status/{code} HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
    with socket.create_connection(("127.0.0.1", runtime_stack.config.runtime_port)) as sock:
        sock.sendall("".join(request.format(code=c) for c in (204, 304, 201, 204)).encode())
        answers = read_responses(sock, 4)
    assert [a[0] for a in answers] == ["204", "304", "201", "204"]
    no_content, not_modified, created, _ = answers
    assert "content-length" not in no_content[1] and "transfer-encoding" not in no_content[1]
    assert not_modified[1]["content-length"] == "1" and not_modified[2] == b""
    assert created[1]["content-length"] == "1" and created[2] == b"x"
    assert all(a[1]["x-kind"] == "status" for a in answers)


def test_large_and_streamed_bodies_arrive_whole_on_a_kept_alive_connection(
    conn: http.client.HTTPConnection, host: str
) -> None:
    before = direct_count(conn, host)
    for _ in range(2):
        status, headers, data = fetch(conn, host, "/big")
        assert status == 200 and data == bytes(range(256)) * 1200
        assert headers["content-length"] == str(len(data))
        status, headers, data = fetch(conn, host, "/stream?n=40")
        assert status == 200 and headers["transfer-encoding"] == "chunked"
        assert data == "".join(f"part {i}\n" for i in range(40)).encode()
        status, headers, data = fetch(conn, host, "/stream?n=0")
        assert status == 200 and data == b""
    assert direct_count(conn, host) == before + 6


def test_a_request_longer_than_the_keepalive_time_is_answered_then_idle_closes(
    runtime_stack: Stack, host: str
) -> None:
    request = f"GET /slow?s={{s}} HTTP/1.1\r\nHost: {host}\r\n\r\n"
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
