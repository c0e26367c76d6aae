"""Who may read ``/metrics`` on each side (#14 item 8): a token, or the metrics socket."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from stack import Stack, Workdir, free_port, make_stack

from edge.platform.store import Store
from edge.redisserver import RedisServer

FILES = {
    "edge.toml": '[functions.hi]\nentry = "hi.py"\nroutes = ["/metrics", "/hi"]\n',
    "hi.py": "def handle(request):\n    return 'from the function'\n",
}


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, int, str]]:
    """A stack whose runtime also binds EDGE_METRICS_BIND, with one app deployed."""
    tmp = Path(tmp_path_factory.mktemp("metrics-access"))
    redis = RedisServer(tmp / "redis.sock", tmp / "redis")
    redis.start()
    port = free_port()
    stack = make_stack(
        tmp, f"sqlite:///{tmp / 'edge.db'}", redis.url, EDGE_METRICS_BIND=f"127.0.0.1:{port}"
    )
    stack.env["EDGE_TOKEN"] = stack.token  # the runtime node's token
    try:
        stack.start("platform")
        stack.start("runtime")
        app = "scr-" + uuid.uuid4().hex[:8]
        work = Workdir(tmp / app)
        work.commit("app", FILES)
        assert "v1 live at" in work.push(stack.remote(app)).stderr
        yield stack, port, app
    finally:
        stack.close()
        redis.stop()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_runtime_metrics_need_the_node_token_on_the_function_port(
    scraped: tuple[Stack, int, str],
) -> None:
    stack, _, _ = scraped
    url = f"{stack.runtime_url}/metrics"
    for headers in ({}, _bearer("not-the-token"), {"Authorization": f"Basic {stack.token}"}):
        resp = httpx.get(url, headers=headers, timeout=10)
        assert resp.status_code == 401, resp.text
        assert "edge_function" not in resp.text
        assert "EDGE_METRICS_BIND" in resp.json()["message"]
    resp = httpx.get(url, headers=_bearer(stack.token), timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")


def test_metrics_socket_serves_metrics_and_health_but_no_functions(
    scraped: tuple[Stack, int, str],
) -> None:
    stack, port, app = scraped
    base = f"http://127.0.0.1:{port}"
    assert stack.get(stack.host(app), "/hi").text == "from the function"
    assert httpx.get(f"{base}/metrics", timeout=10).status_code == 200
    assert httpx.get(f"{base}/healthz", timeout=10).json()["ok"] is True
    for path in ("/hi", "/metrics"):  # the app's own /metrics route is not reachable here
        resp = httpx.get(f"{base}{path}", headers={"Host": stack.host(app)}, timeout=10)
        assert "from the function" not in resp.text
    resp = httpx.get(f"{base}/hi", headers={"Host": stack.host(app)}, timeout=10)
    assert resp.status_code == 404
    assert "EDGE_METRICS_BIND" in resp.json()["message"]


def test_control_plane_metrics_need_an_admin_token(scraped: tuple[Stack, int, str]) -> None:
    stack, _, app = scraped
    url = f"http://127.0.0.1:{stack.config.platform_port}/metrics"
    store = Store.from_url(stack.config.database_url)
    try:
        app_token = store.create_token("app-only", apps=[app])
    finally:
        store.close()
    assert httpx.get(url, timeout=10).status_code == 401
    assert httpx.get(url, headers=_bearer(app_token), timeout=10).status_code == 403
    resp = httpx.get(url, headers=_bearer(stack.token), timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
