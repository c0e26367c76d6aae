"""Three runtime nodes in three regions on one machine: the node registry, pushes that
wait only for the app's regions, cross-region fallback, failover and recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from stack import Stack, Workdir, make_stack, runtime_node, wait_for

from edge.redisserver import RedisServer

REGIONS = ("us-east", "ap-tokyo", "eu-west")
HELLO = "def handle(request):\n    return {'ran': 'here', 'body': request.text()}\n"
STREAM = "def handle(request):\n    return (f'chunk {i}\\n' for i in range(5))\n"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Stack]]:
    """The platform and a us-east node, plus one-worker nodes in ap-tokyo and eu-west."""
    tmp = Path(tmp_path_factory.mktemp("nodes"))
    redis = RedisServer(tmp / "redis.sock", tmp / "redis")
    redis.start()
    # A deploy wait shorter than a frozen worker's heartbeat lives (10-15 s): a push
    # that waited for a frozen node of another region would say "did not confirm".
    east = make_stack(
        tmp / "east", f"sqlite:///{tmp / 'edge.db'}", redis.url, EDGE_DEPLOY_TIMEOUT="8"
    )
    stacks = {"us-east": east}
    try:
        east.start("platform")
        east.start("runtime")
        for region in REGIONS[1:]:
            node = runtime_node(east, tmp / region, region, EDGE_RUNTIME_WORKERS="1")
            stacks[region] = node
            node.start("runtime")
        yield stacks
    finally:
        for stack in stacks.values():
            stack.close()
        redis.stop()


def edge_cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **stack.env,
        "EDGE_TOKEN": stack.token,
        "EDGE_PLATFORM_URL": f"http://127.0.0.1:{stack.config.platform_port}",
    }
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def listed(east: Stack) -> dict[str, dict[str, object]]:
    data = json.loads(edge_cli(east, "nodes", "--json").stdout)
    return {str(n["region"]): n for n in data["nodes"]}


def deploy(east: Stack, tmp: Path, regions: list[str]) -> tuple[str, str]:
    app = "geo-" + uuid.uuid4().hex[:6]
    work = Workdir(tmp / app)
    manifest = "".join(
        f'[functions.{name}]\nentry = "{name}.py"\nroutes = ["/{name}"]\nregions = {regions!r}\n'
        for name in ("hello", "stream")
    )
    files = {"edge.toml": manifest.replace("'", '"'), "hello.py": HELLO, "stream.py": STREAM}
    work.commit("hello", files)
    return east.host(app), work.push(east.remote(app)).stderr


def test_every_node_is_listed_with_its_region_url_and_health(nodes: dict[str, Stack]) -> None:
    east = nodes["us-east"]
    found = wait_for(lambda: len(listed(east)) == 3 and listed(east), message="three nodes")
    assert isinstance(found, dict)
    for region, stack in nodes.items():
        assert found[region]["health"] == "live"
        assert found[region]["url"] == stack.runtime_url
    assert found["us-east"]["workers"] == 2 and found["ap-tokyo"]["workers"] == 1
    text = edge_cli(east, "nodes").stdout
    assert "ap-tokyo" in text and "live" in text and nodes["eu-west"].runtime_url in text
    api = f"http://127.0.0.1:{east.config.platform_port}/v1"
    assert httpx.get(f"{api}/nodes").status_code == 401
    app_token = edge_cli(east, "token", "create", "--app", "shop").stdout.strip()
    forbidden = httpx.get(f"{api}/nodes", headers={"Authorization": f"Bearer {app_token}"})
    assert forbidden.status_code == 403 and "admin token" in forbidden.json()["error"]
    assert "/v1/nodes" in httpx.get(f"{api}/openapi.json").json()["paths"]


def test_the_dashboard_lists_the_nodes_for_admins(nodes: dict[str, Stack]) -> None:
    east = nodes["us-east"]
    with httpx.Client(base_url=f"http://127.0.0.1:{east.config.platform_port}") as browser:
        csrf = browser.get("/login").cookies["edge_login_csrf"]
        signed = browser.post("/login", data={"csrf": csrf, "token": east.token})
        assert signed.status_code == 303, signed.text
        page = browser.get("/nodes")
    assert page.status_code == 200, page.text
    for stack in nodes.values():
        assert stack.runtime_url in page.text
    assert page.text.count('data-health="live"') == 3
    assert 'href="/nodes"' in page.text


def test_a_function_of_another_region_is_answered_by_a_node_that_runs_it(
    nodes: dict[str, Stack], tmp_path: Path
) -> None:
    east, tokyo = nodes["us-east"], nodes["ap-tokyo"]
    host, _ = deploy(east, tmp_path, ["us-east"])
    local = east.get(host, "/hello")
    assert local.headers["x-edge-region"] == "us-east" and "x-edge-via" not in local.headers
    # The push waited for us-east only: the Tokyo node learns the routes just after.
    wait_for(lambda: tokyo.get(host, "/hello").status_code == 200, message="tokyo routes")
    far = tokyo.call("POST", host, "/hello", content=b"from tokyo")
    assert far.status_code == 200, far.text
    assert far.json() == {"ran": "here", "body": "from tokyo"}
    assert far.headers["x-edge-region"] == "us-east" and far.headers["x-edge-via"] == "ap-tokyo"
    streamed = tokyo.get(host, "/stream")  # a streamed answer is passed on as a stream
    assert streamed.text == "".join(f"chunk {i}\n" for i in range(5))
    assert streamed.headers["transfer-encoding"] == "chunked"
    assert streamed.headers["x-edge-region"] == "us-east" and streamed.headers["x-edge-via"]
    # The loop guard: a request that was forwarded once is never forwarded again.
    looped = tokyo.get(host, "/hello", headers={"x-edge-forwarded": "eu-west"})
    assert looped.status_code == 404 and looped.json()["error"] == "wrong_region"
    nowhere, _ = deploy(east, tmp_path, ["sa-east"])
    missing = wait_for(
        lambda: (r := tokyo.get(nowhere, "/hello")).json()["error"] == "wrong_region" and r,
        message="the Tokyo node to know the sa-east app",
    )
    assert isinstance(missing, httpx.Response)
    assert missing.status_code == 404 and "sa-east" in missing.json()["message"]


def test_a_push_waits_only_for_the_nodes_of_the_apps_regions(
    nodes: dict[str, Stack], tmp_path: Path
) -> None:
    east, europe = nodes["us-east"], nodes["eu-west"]
    frozen = europe.processes["runtime"].pid
    os.killpg(frozen, signal.SIGSTOP)  # heartbeats stay live for a while, acks never come
    try:
        _, out = deploy(east, tmp_path, ["us-east", "ap-tokyo"])
    finally:
        os.killpg(frozen, signal.SIGCONT)
    assert "v1 live at" in out, out


def test_fallback_fails_over_to_the_next_region_and_comes_back(
    nodes: dict[str, Stack], tmp_path: Path
) -> None:
    tokyo = nodes["ap-tokyo"]
    host, _ = deploy(nodes["us-east"], tmp_path, ["us-east", "eu-west"])

    def region() -> str:
        answer = tokyo.get(host, "/hello")
        assert answer.status_code == 200, answer.text
        return answer.headers["x-edge-region"]

    wait_for(lambda: tokyo.get(host, "/hello").status_code == 200, message="tokyo routes")
    first = region()
    second = "eu-west" if first == "us-east" else "us-east"
    nodes[first].stop("runtime")
    assert region() == second  # the next request already goes to the next region
    assert listed(nodes["us-east"])[first]["health"] == "gone"
    nodes[first].start("runtime")
    nodes[second].stop("runtime")
    try:
        assert region() == first  # back in service as soon as it returned
    finally:
        nodes[second].start("runtime")
