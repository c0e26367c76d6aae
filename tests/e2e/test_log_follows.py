"""Log follow streams cannot starve git and the API of the control plane's threads."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import redis
from stack import Stack, Workdir, wait_for

from edge.platform.store import Store
from edge.redisserver import RedisServer

HELLO = {
    "edge.toml": '[functions.hello]\nentry = "hello.py"\nroutes = ["/"]\n',
    "hello.py": "def handle(request):\n    return 'hi'\n",
}
STREAMS = 200
TOKENS = 10


def tokens_for(stack: Stack, app: str, count: int) -> list[str]:
    store = Store.from_url(stack.config.database_url)
    try:
        return [store.create_token(f"follower-{i}-{app}", apps=[app]) for i in range(count)]
    finally:
        store.close()


def open_follow(stack: Stack, app: str, token: str, last_id: str | None = None) -> socket.socket:
    """A follow request on a raw socket (the test holds it open, like a tail that never ends)."""
    sock = socket.create_connection(("127.0.0.1", stack.config.platform_port), timeout=20)
    resume = f"Last-Event-ID: {last_id}\r\n" if last_id else ""
    sock.sendall(
        f"GET /v1/apps/{app}/logs?follow=1 HTTP/1.1\r\nHost: edge\r\n"
        f"Authorization: Bearer {token}\r\n{resume}\r\n".encode()
    )
    return sock


def follow_status(stack: Stack, app: str, token: str) -> str:
    """The status line a new follow stream gets now."""
    with open_follow(stack, app, token) as sock:
        return read_head(sock).split("\r\n", 1)[0]


def read_head(sock: socket.socket) -> str:
    """The status line and headers; with a Content-Length (a refusal), the body too."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: *([0-9]+)", head)
    while length and len(body) < int(length[1]):
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode("latin-1")


def heartbeat_within(sock: socket.socket, seconds: float) -> bool:
    """Whether a stream sends a heartbeat comment within ``seconds``."""
    received = b""
    deadline = time.monotonic() + seconds
    while b"keep-alive" not in received and time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            break
        if not chunk:
            break
        received += chunk
    return b"keep-alive" in received


def test_200_follow_streams_leave_git_and_the_api_answering(
    runtime_stack: Stack, tmp_path: Path
) -> None:
    stack = runtime_stack
    app = "tail-" + uuid.uuid4().hex[:8]
    work = Workdir(tmp_path / app)
    work.commit("v1", HELLO)
    work.push(stack.remote(app))
    tokens = tokens_for(stack, app, TOKENS)
    base = f"http://127.0.0.1:{stack.config.platform_port}"
    socks = [open_follow(stack, app, tokens[i % TOKENS]) for i in range(STREAMS)]
    try:
        heads = [read_head(sock) for sock in socks]
        statuses = Counter(head.split(" ", 2)[1] for head in heads)
        assert set(statuses) == {"200", "429"}, statuses
        per_worker, workers = stack.config.max_follows, 2
        assert statuses["200"] <= per_worker * workers, statuses
        refused = next(head for head in heads if " 429 " in head)
        assert "retry-after: 5" in refused.lower()
        assert "EDGE_MAX_FOLLOWS" in refused  # the body names the cap
        started = time.monotonic()
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        other = httpx.get(
            f"{base}/v1/apps", headers={"Authorization": f"Bearer {stack.token}"}, timeout=5
        )
        assert other.status_code == 200
        listed = work.git("ls-remote", stack.remote(app)).stdout
        assert "refs/heads/main" in listed
        work.commit("v2", {"hello.py": "def handle(request):\n    return 'v2'\n"})
        assert "v2 live at" in work.push(stack.remote(app)).stderr
        assert time.monotonic() - started < 30
        admitted = next(s for s, head in zip(socks, heads, strict=True) if " 200 " in head)
        assert heartbeat_within(admitted, seconds=5)
    finally:
        for sock in socks:
            sock.close()
    # Streams whose clients left free their slots: a new one is admitted again.
    wait_for(
        lambda: " 200 " in follow_status(stack, app, tokens[0]),
        timeout=15,
        message="a follow stream to be admitted after the others closed",
    )


def test_a_stream_ends_at_its_maximum_age_and_the_cli_resumes_it(
    own_stack: tuple[Stack, RedisServer], tmp_path: Path
) -> None:
    stack, _ = own_stack
    stack.env["EDGE_MAX_STREAM_S"] = "2"
    stack.start("platform")
    app = "age-" + uuid.uuid4().hex[:8]
    work = Workdir(tmp_path / app)
    work.commit("v1", HELLO)
    work.push(stack.remote(app))

    sock = open_follow(stack, app, stack.token)
    received = b""
    deadline = time.monotonic() + 15
    while b"event: end" not in received and time.monotonic() < deadline:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    sock.close()
    assert b"maximum stream age (EDGE_MAX_STREAM_S)" in received

    follower = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "logs", app, "-f"],
        env={**stack.env, "EDGE_TOKEN": stack.token},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    output = follower.stdout
    assert output is not None
    threading.Thread(target=lambda: lines.extend(iter(output.readline, "")), daemon=True).start()
    leases = redis.Redis.from_url(stack.env["EDGE_REDIS_URL"])
    try:
        wait_for(lambda: any("v1 deployed" in line for line in lines), message="the backlog")
        first = wait_for(lambda: _leases(leases), message="the CLI's stream lease")
        wait_for(
            lambda: _leases(leases) not in (set(), first),
            timeout=15,
            message="the CLI to reopen its stream after EDGE_MAX_STREAM_S",
        )
        work.commit("v2", {"hello.py": "def handle(request):\n    return 'v2'\n"})
        work.push(stack.remote(app))
        wait_for(
            lambda: any("v2 deployed" in line for line in lines),
            timeout=15,
            message="v2's event through the resumed stream",
        )
        assert follower.poll() is None, "".join(lines)
        assert sum("v1 deployed" in line for line in lines) == 1  # resumed, not replayed
    finally:
        leases.close()
        follower.terminate()
        follower.wait(timeout=10)
        output.close()


def _leases(client: redis.Redis) -> set[bytes]:
    """The ids of the follow streams held open now, by any token."""
    return {m for key in client.scan_iter("edge:follows:*") for m in client.zrange(key, 0, -1)}
