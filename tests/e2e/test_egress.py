"""Outbound fetch() from JavaScript, and the egress policy for both languages.

The stack runs on a TCP Redis with a password (as the README recommends for
several hosts) and ``EDGE_EGRESS_ALLOW=127.0.0.0/8``: all of loopback is opened,
so the tests also show that the platform's own Redis and control plane stay
shut whatever the allow list says. The "outside world" is a real HTTP server
in the test process, on loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from stack import Stack, Workdir, make_stack
from test_redis_acl import acl_redis  # noqa: F401 - the TCP Redis with a password

from edge.egress import EgressPolicy
from edge.runtime import firewall
from edge.uids import BLOCK

MANIFEST = """
[functions.out]
entry = "out.js"
routes = ["/js"]

[functions.sock]
entry = "sock.py"
routes = ["/py"]
"""

OUT_JS = """
export default {
  async fetch(request) {
    const { url, init, times } = await request.json();
    if (times) {
      const one = () => fetch(url).then((r) => r.status);
      return Response.json({ statuses: await Promise.all(Array.from({ length: times }, one)) });
    }
    try {
      const r = await fetch(url, init);
      return Response.json({
        status: r.status, redirected: r.redirected, url: r.url,
        headers: Object.fromEntries(r.headers), body: await r.text(),
      });
    } catch (e) {
      return Response.json({ error: e.name, message: e.message });
    }
  },
};
"""

SOCK_PY = """
import os
import subprocess
import socket


def handle(request):
    if "kv" in request.query:
        from edge import kv

        return {"n": kv.incr(request.query["kv"])}
    target = (request.query["host"], int(request.query["port"]))
    try:
        with socket.create_connection(target, timeout=8) as conn:  # under the 10 s limit
            conn.sendall(request.query.get("send", "PING").encode() + b"\\r\\n")
            return {"connected": True, "answer": conn.recv(200).decode(errors="replace")}
    except OSError as exc:
        return {"connected": False, "error": type(exc).__name__, "uid": os.getuid()}
"""


class Upstream:
    """What the echo server saw of concurrent ``/slow`` requests."""

    lock = threading.Lock()
    current = 0
    most = 0


class Echo(BaseHTTPRequestHandler):
    """Answers with what it received; ``/redirect?to=URL`` redirects there, ``/big``
    sends 17 MiB, ``/slow`` holds the connection a while (a slow upstream)."""

    def _answer(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/big":
            self._send(b"x" * (17 << 20))
            return
        if parts.path == "/slow":
            self._slow()
            return
        if parts.path == "/redirect":
            self.send_response(302)
            self.send_header("location", parse_qs(parts.query)["to"][0])
            self.send_header("content-length", "0")
            self.end_headers()
            return
        length = int(self.headers.get("content-length") or 0)
        body = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": self.rfile.read(length).decode(),
            }
        ).encode()
        self._send(body, 201 if self.command == "POST" else 200)

    def _send(self, body: bytes, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("x-echo", "yes")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _slow(self) -> None:
        with Upstream.lock:
            Upstream.current += 1
            Upstream.most = max(Upstream.most, Upstream.current)
        time.sleep(0.3)  # a slow upstream, not a synchronisation
        with Upstream.lock:
            Upstream.current -= 1
        self._send(b"{}")

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def echo() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def egress_stack(
    acl_redis: str,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    tmp = Path(tmp_path_factory.mktemp("egress-stack"))
    stack = make_stack(
        tmp, f"sqlite:///{tmp / 'edge.db'}", acl_redis, EDGE_EGRESS_ALLOW="127.0.0.0/8"
    )
    try:
        stack.start("platform")
        stack.start("runtime")
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module")
def app(egress_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> str:
    name = "out-" + uuid.uuid4().hex[:6]
    work = Workdir(Path(tmp_path_factory.mktemp("egress-app")) / name)
    work.commit("v1", {"edge.toml": MANIFEST, "out.js": OUT_JS, "sock.py": SOCK_PY})
    out = work.push(egress_stack.remote(app=name))
    assert "v1 live at" in out.stderr, out.stderr
    return name


def js_fetch(stack: Stack, app: str, url: str, init: dict | None = None) -> dict:
    response = stack.call("POST", stack.host(app), "/js", json={"url": url, "init": init or {}})
    assert response.status_code == 200, response.text
    return response.json()


def test_response_size_and_concurrent_subrequests_are_capped(
    egress_stack: Stack, app: str, echo: str
) -> None:
    got = js_fetch(egress_stack, app, f"{echo}/big")
    assert got["error"] == "TypeError" and "over 16777216 bytes" in got["message"], got
    response = egress_stack.call(
        "POST", egress_stack.host(app), "/js", json={"url": f"{echo}/slow", "times": 10}
    )
    assert response.json() == {"statuses": [200] * 10}, response.text
    assert Upstream.most == 6  # at most 6 in flight per request; the others waited


def test_kv_works_on_redis_with_acl_credentials(egress_stack: Stack, app: str) -> None:
    """The README's ACL user (edge:* keys, no dangerous commands) runs KV's Lua script."""
    for expected in (1, 2):
        response = egress_stack.get(egress_stack.host(app), "/py", params={"kv": "acl-counter"})
        assert response.json() == {"n": expected}, response.text


def redis_port(stack: Stack) -> int:
    return int(
        redis.Redis.from_url(stack.config.redis_url).connection_pool.connection_kwargs["port"]
    )


def test_fetch_get_and_post_with_headers_and_body(egress_stack: Stack, app: str, echo: str) -> None:
    got = js_fetch(egress_stack, app, f"{echo}/hello?x=1", {"headers": {"x-test": "abc"}})
    assert got["status"] == 200 and got["headers"]["x-echo"] == "yes", got
    sent = json.loads(got["body"])
    assert sent["method"] == "GET" and sent["path"] == "/hello?x=1"
    assert sent["headers"]["x-test"] == "abc"
    assert sent["headers"]["host"] == echo.removeprefix("http://")

    init = {"method": "POST", "headers": {"content-type": "application/json"}, "body": '{"n": 1}'}
    got = js_fetch(egress_stack, app, f"{echo}/items", init)
    assert got["status"] == 201, got
    sent = json.loads(got["body"])
    assert sent["method"] == "POST" and sent["body"] == '{"n": 1}'
    assert sent["headers"]["content-type"] == "application/json"


def test_redirects_are_followed_and_checked_on_every_hop(
    egress_stack: Stack, app: str, echo: str
) -> None:
    got = js_fetch(egress_stack, app, f"{echo}/redirect?to=/landed")
    assert got["status"] == 200 and got["redirected"] is True, got
    assert got["url"] == f"{echo}/landed" and json.loads(got["body"])["path"] == "/landed"

    manual = js_fetch(egress_stack, app, f"{echo}/redirect?to=/landed", {"redirect": "manual"})
    assert manual["status"] == 302 and manual["headers"]["location"] == "/landed", manual

    plane = f"http://127.0.0.1:{egress_stack.config.platform_port}/healthz"
    for denied in ("http://169.254.169.254/latest/meta-data/", plane):
        got = js_fetch(egress_stack, app, f"{echo}/redirect?to={denied}")
        assert got["error"] == "TypeError" and "egress" in got["message"], got


def test_platform_redis_and_metadata_are_refused(egress_stack: Stack, app: str) -> None:
    plane = egress_stack.config.platform_port
    targets = [
        f"http://127.0.0.1:{plane}/healthz",  # the control plane, though 127/8 is allowed
        f"http://localhost:{plane}/v1/apps",  # by name, too
        f"http://127.0.0.2:{plane}/healthz",  # any loopback address reaches it
        f"http://127.0.0.1:{redis_port(egress_stack)}/",  # the platform's Redis
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "http://10.1.2.3/",  # private, not in EDGE_EGRESS_ALLOW
    ]
    for url in targets:
        got = js_fetch(egress_stack, app, url)
        assert got["error"] == "TypeError" and "egress" in got["message"], (url, got)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="nftables rules need root")


def py_connect(stack: Stack, app: str, port: int, send: str = "PING") -> dict:
    response = stack.get(
        stack.host(app), "/py", params={"host": "127.0.0.1", "port": port, "send": send}
    )
    assert response.status_code == 200, response.text
    return response.json()


@needs_root
def test_python_functions_cannot_reach_the_platform(
    egress_stack: Stack, app: str, echo: str
) -> None:
    echo_port = int(echo.rsplit(":", 1)[1])
    echoed = py_connect(egress_stack, app, echo_port, "GET / HTTP/1.0\r\n")
    assert echoed["connected"] is True, echoed
    plane = py_connect(egress_stack, app, egress_stack.config.platform_port)
    assert plane["connected"] is False and plane["error"] == "ConnectionRefusedError", plane
    base = egress_stack.config.function_uid_base
    assert base <= plane["uid"] < base + BLOCK  # a function uid, which the rules match
    store = py_connect(egress_stack, app, redis_port(egress_stack), "XRANGE edge:logs - +")
    assert store["connected"] is False, store


@needs_root
def test_a_killed_runtimes_table_is_deleted_by_the_next_start(
    egress_stack: Stack, app: str, echo: str
) -> None:
    """A runtime killed with SIGKILL leaves its nft table; it matches the same uids
    and refuses what the live runtime allows, until a start deletes it."""
    echo_port = int(echo.rsplit(":", 1)[1])
    gone = subprocess.Popen(["true"])
    gone.wait()  # a runtime pid that no longer runs
    stale = f"{firewall.PREFIX}1_{gone.pid}"
    live = f"{firewall.PREFIX}2_{os.getpid()}"
    base = egress_stack.config.function_uid_base
    try:
        # The stale one matches this install's uids; the live one (this process's
        # pid) another block, so that only the stale one is in the way.
        for table, uids in ((stale, base), (live, base + BLOCK)):
            script = firewall.ruleset(EgressPolicy(), table, uids)
            subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True)
        refused = py_connect(egress_stack, app, echo_port, "GET / HTTP/1.0\r\n")
        assert refused["connected"] is False, "the stale table refuses the allowed echo"
        egress_stack.stop("runtime")
        egress_stack.start("runtime")
        tables = subprocess.run(
            ["nft", "list", "tables"], capture_output=True, text=True, check=True
        ).stdout.split()
        assert stale not in tables and live in tables
        echoed = py_connect(egress_stack, app, echo_port, "GET / HTTP/1.0\r\n")
        assert echoed["connected"] is True, echoed
    finally:
        for table in (stale, live):
            subprocess.run(["nft", "delete", "table", "inet", table], check=False)


@needs_root
def test_a_function_cannot_fail_another_apps_deploy(
    egress_stack: Stack, app: str, tmp_path: Path
) -> None:
    """The forgery of test_redis_acl, from inside a function: it cannot even connect."""
    victim = "victim-" + uuid.uuid4().hex[:6]
    forged = json.dumps({"worker": "evil", "version": 10**9, "failed": {victim: "forged"}})
    attempt = py_connect(
        egress_stack, app, redis_port(egress_stack), f"SET edge:workers:evil '{forged}'"
    )
    assert attempt["connected"] is False, attempt
    work = Workdir(tmp_path / victim)
    work.commit("v1", {"edge.toml": MANIFEST, "out.js": OUT_JS, "sock.py": SOCK_PY})
    out = work.push(egress_stack.remote(victim)).stderr
    assert "v1 live at" in out and "failed" not in out, out


@needs_root
def test_the_rules_live_exactly_as_long_as_the_runtime(own_stack: tuple[Stack, object]) -> None:
    stack, _ = own_stack
    prefix = f"edge_egress_{stack.config.runtime_port}_"

    def tables() -> str:
        return subprocess.run(
            ["nft", "list", "tables"], capture_output=True, text=True, check=True
        ).stdout

    assert prefix not in tables()
    table = f"{prefix}{stack.start('runtime').pid}"  # named for the runtime's master
    assert f"table inet {table}" in tables()
    rules = subprocess.run(
        ["nft", "list", "table", "inet", table], capture_output=True, text=True, check=True
    ).stdout
    base = stack.config.function_uid_base
    assert f"meta skuid {base}-{base + BLOCK - 1}" in rules and "169.254.0.0/16" in rules
    stack.stop("runtime")
    assert prefix not in tables()
