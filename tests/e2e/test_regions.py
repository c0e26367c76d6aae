"""Two runtime nodes in two regions, one control plane: routing by region, bundles fetched."""

from __future__ import annotations

import uuid
from pathlib import Path

from stack import Stack, Workdir, free_port

from edge.config import Config
from edge.redisserver import RedisServer

MANIFEST = """
[functions.everywhere]
entry = "hello.py"
routes = ["/"]
regions = ["us-east", "ap-tokyo"]

[functions.tokyo]
entry = "tokyo.py"
routes = ["/tokyo"]
regions = ["ap-tokyo"]
"""


def test_a_second_node_in_another_region_fetches_releases_and_serves_its_functions(
    own_stack: tuple[Stack, RedisServer], tmp_path: Path
) -> None:
    east, _ = own_stack
    east.start("platform")
    east.start("runtime")
    home = tmp_path / "tokyo-home"
    home.mkdir()
    env = {
        **east.env,
        "EDGE_HOME": str(home),
        "EDGE_REGION": "ap-tokyo",
        "EDGE_RUNTIME_PORT": str(free_port()),
        "EDGE_TOKEN": east.token,
        "EDGE_PLATFORM_URL": f"http://127.0.0.1:{east.config.platform_port}",
        # Another host has its own home: it is given the control plane's key.
        "EDGE_SECRET_KEY": (east.home / "secret.key").read_text().strip(),
    }
    tokyo = Stack(home, env, Config.from_env(env), east.token)
    try:
        tokyo.start("runtime")
        app = "geo-" + uuid.uuid4().hex[:6]
        work = Workdir(tmp_path / app)
        work.commit(
            "two regions",
            {
                "edge.toml": MANIFEST,
                "hello.py": "import os\ndef handle(request):\n    return 'hello'\n",
                "tokyo.py": "def handle(request):\n    return 'konnichiwa'\n",
            },
        )
        out = work.push(east.remote(app))
        assert "v1 live at" in out.stderr, out.stderr  # both nodes acknowledged
        assert "not signed" not in out.stderr, out.stderr
        host = east.host(app)
        assert east.get(host, "/").text == "hello"
        assert tokyo.get(host, "/").text == "hello"
        assert tokyo.get(host, "/tokyo").text == "konnichiwa"
        # us-east does not run it: the Tokyo node answers through the fallback.
        elsewhere = east.get(host, "/tokyo")
        assert elsewhere.text == "konnichiwa" and elsewhere.headers["x-edge-region"] == "ap-tokyo"
        # Once Tokyo is gone, no live region runs it: the 404 naming its regions.
        tokyo.stop("runtime")
        nowhere = east.get(host, "/tokyo")
        assert nowhere.status_code == 404 and "ap-tokyo" in nowhere.json()["message"]
        # The Tokyo node has no shared disk: it fetched and verified the bundle.
        assert list((home / "releases" / app).glob("*/tokyo.py"))
    finally:
        tokyo.close()
