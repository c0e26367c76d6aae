"""Abuse limits of the git server: push size, names, authentication everywhere."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import httpx
from stack import Stack, Workdir

from edge.redisserver import RedisServer

HELLO = {
    "edge.toml": '[functions.hello]\nentry = "hello.py"\nroutes = ["/"]\n',
    "hello.py": "def handle(request):\n    return 'hi'\n",
}


def test_oversized_push_is_refused_and_changes_nothing(
    own_stack: tuple[Stack, RedisServer], tmp_path: Path
) -> None:
    stack, _ = own_stack
    stack.env["EDGE_MAX_PUSH_MB"] = "1"
    stack.start("platform")
    stack.start("runtime")
    app = "big-" + uuid.uuid4().hex[:6]
    work = Workdir(tmp_path / app)
    work.commit("small", HELLO)
    assert "v1 live at" in work.push(stack.remote(app)).stderr
    (work.path / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024))  # incompressible
    work.commit("big")
    out = work.push(stack.remote(app), check=False)
    assert out.returncode != 0
    assert "1 MB limit" in out.stderr, out.stderr
    listed = httpx.get(
        f"http://127.0.0.1:{stack.config.platform_port}/v1/apps/{app}/releases",
        headers={"Authorization": f"Bearer {stack.token}"},
    ).json()["releases"]
    assert [r["version"] for r in listed] == [1]


def test_bad_repository_names_and_traversal_are_refused(runtime_stack: Stack) -> None:
    base = f"http://127.0.0.1:{runtime_stack.config.platform_port}"
    auth = {"Authorization": f"Bearer {runtime_stack.token}"}
    for path in (
        "/git/../edge.db",
        "/git/..%2Fedge.git/info/refs",
        "/git/Shop.git/info/refs",
        "/git/a--b.git/info/refs",
        "/git/-x.git/info/refs",
        "/git/x/../../y.git/HEAD",
    ):
        resp = httpx.get(base + path, headers=auth, params={"service": "git-upload-pack"})
        assert resp.status_code == 404, path
        assert b"SQLite" not in resp.content


def test_every_git_endpoint_needs_a_token(runtime_stack: Stack, tmp_path: Path) -> None:
    app = "auth-" + uuid.uuid4().hex[:6]
    work = Workdir(tmp_path / app)
    work.commit("v1", HELLO)
    work.push(runtime_stack.remote(app))
    base = f"http://127.0.0.1:{runtime_stack.config.platform_port}/git/{app}.git"
    for method, path in (
        ("GET", "/info/refs?service=git-upload-pack"),
        ("GET", "/info/refs?service=git-receive-pack"),
        ("GET", "/HEAD"),
        ("POST", "/git-upload-pack"),
        ("POST", "/git-receive-pack"),
    ):
        resp = httpx.request(method, base + path)
        assert resp.status_code == 401, (method, path)
        assert resp.headers["www-authenticate"].startswith("Basic")


def test_function_outside_this_region_answers_404_naming_its_regions(
    runtime_stack: Stack, tmp_path: Path
) -> None:
    app = "geo-" + uuid.uuid4().hex[:6]
    work = Workdir(tmp_path / app)
    work.commit(
        "regions",
        {
            "edge.toml": HELLO["edge.toml"] + '\n[functions.tokyo]\nentry = "hello.py"\n'
            'routes = ["/tokyo"]\nregions = ["ap-tokyo", "eu-west"]\n',
            "hello.py": HELLO["hello.py"],
        },
    )
    work.push(runtime_stack.remote(app))
    resp = runtime_stack.get(runtime_stack.host(app), "/tokyo")
    assert resp.status_code == 404
    assert "ap-tokyo, eu-west" in resp.json()["message"]
    assert resp.json()["regions"] == ["ap-tokyo", "eu-west"]
    assert runtime_stack.get(runtime_stack.host(app), "/").text == "hi"
