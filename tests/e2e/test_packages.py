"""Per-app Python packages end to end: real pushes, uv, hermetic wheels, the runtime.

The wheels are built here and served from a local folder through
EDGE_PYTHON_FIND_LINKS, with no index (EDGE_PYTHON_INDEX_URL=none).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from stack import Stack, Workdir, free_port, make_stack
from wheels import build_wheel

from edge.config import Config
from edge.redisserver import RedisServer

MANIFEST = """
[functions.version]
entry = "version.py"
routes = ["/version"]

[functions.probe]
entry = "probe.py"
routes = ["/probe"]
"""
VERSION = """
import edgebar

def handle(request):
    return {"edgebar": edgebar.VERSION, "code": CODE}

CODE = "a"
"""
PROBE = """
import importlib

def handle(request):
    found = {}
    for name in ("falcon", "msgpack", "sqlalchemy", "redis", "edge.platform", "edge.runtime"):
        try:
            importlib.import_module(name)
            found[name] = "imported"
        except ModuleNotFoundError as exc:
            found[name] = type(exc).__name__
    from edge import Response, kv
    found["edge"] = f"{Response.__name__} {kv.__name__}"
    return found
"""


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(tmp_path_factory.mktemp("wheels"))
    for version in ("1.0", "2.0"):
        build_wheel(folder, "edgebar", version, f'VERSION = "{version}"\n')
    build_wheel(folder, "falcon", "0.0.1", 'VERSION = "app falcon"\n')
    folder.chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, wheels: Path) -> Iterator[Stack]:
    tmp = Path(tmp_path_factory.mktemp("packages"))
    redis = RedisServer(tmp / "redis.sock", tmp / "redis")
    redis.start()
    stack = make_stack(
        tmp,
        f"sqlite:///{tmp / 'edge.db'}",
        redis.url,
        EDGE_PYTHON_INDEX_URL="none",
        EDGE_PYTHON_FIND_LINKS=str(wheels),
    )
    try:
        stack.start("platform")
        stack.start("runtime")
        yield stack
    finally:
        stack.close()
        redis.stop()


def app_name() -> str:
    return f"pk{uuid.uuid4().hex[:8]}"


def deploy(stack: Stack, tmp: Path, app: str, requirements: str) -> Workdir:
    work = Workdir(tmp / app)
    work.commit(
        "v1",
        {
            "edge.toml": MANIFEST,
            "version.py": VERSION,
            "probe.py": PROBE,
            "requirements.txt": requirements,
        },
    )
    out = work.push(stack.remote(app))
    assert "live at" in out.stderr, out.stderr
    return work


def served(stack: Stack, app: str, branch: str | None = None) -> dict[str, str]:
    response = stack.get(stack.host(app, branch), "/version")
    assert response.status_code == 200, response.text
    result: dict[str, str] = response.json()
    return result


def envs(stack: Stack) -> set[str]:
    return {p.name for p in (stack.home / "envs").iterdir() if not p.name.startswith(".")}


def edge_cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        env={**stack.env, "EDGE_TOKEN": stack.token},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_wheel_installed_code_push_reuses_bump_changes_rollback_restores(
    stack: Stack, tmp_path: Path
) -> None:
    app = app_name()
    work = deploy(stack, tmp_path, app, "edgebar==1.0\n")
    assert served(stack, app) == {"edgebar": "1.0", "code": "a"}
    before = envs(stack)

    work.commit("code only", {"version.py": VERSION.replace('CODE = "a"', 'CODE = "b"')})
    out = work.push(stack.remote(app))
    assert "reusing environment" in out.stderr, out.stderr
    assert "installing requirements.txt" not in out.stderr
    checked = [line for line in out.stderr.splitlines() if "loaded in a sandbox:" in line]
    assert [line.split("sandbox:")[1].strip() for line in checked] == ["version"]  # not probe
    assert served(stack, app) == {"edgebar": "1.0", "code": "b"}
    assert envs(stack) == before

    work.commit("bump", {"requirements.txt": "edgebar==2.0\n"})
    out = work.push(stack.remote(app))
    assert "installing requirements.txt" in out.stderr
    assert served(stack, app) == {"edgebar": "2.0", "code": "b"}

    cli = edge_cli(stack, "rollback", app, "--to", "1")
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert served(stack, app) == {"edgebar": "1.0", "code": "a"}


def test_platform_packages_are_not_importable_unless_listed(stack: Stack, tmp_path: Path) -> None:
    app = app_name()
    work = deploy(stack, tmp_path, app, "edgebar==1.0\n")
    probe = stack.get(stack.host(app), "/probe").json()
    assert probe == {
        "falcon": "ModuleNotFoundError",
        "msgpack": "ModuleNotFoundError",
        "sqlalchemy": "ModuleNotFoundError",
        "redis": "ModuleNotFoundError",
        "edge.platform": "ModuleNotFoundError",
        "edge.runtime": "ModuleNotFoundError",
        "edge": "Response edge.kv",
    }
    work.commit("list falcon", {"requirements.txt": "edgebar==1.0\nfalcon==0.0.1\n"})
    work.push(stack.remote(app))
    assert stack.get(stack.host(app), "/probe").json()["falcon"] == "imported"


def test_two_apps_two_versions_and_a_preview_with_other_packages(
    stack: Stack, tmp_path: Path
) -> None:
    one, two = app_name(), app_name()
    work = deploy(stack, tmp_path, one, "edgebar==1.0\n")
    deploy(stack, tmp_path, two, "edgebar==2.0\n")
    assert served(stack, one)["edgebar"] == "1.0"
    assert served(stack, two)["edgebar"] == "2.0"

    work.git("checkout", "-q", "-b", "newbar")
    work.commit("preview on 2.0", {"requirements.txt": "edgebar==2.0\n"})
    out = work.push(stack.remote(one), "newbar")
    assert "live at" in out.stderr, out.stderr
    assert served(stack, one, "newbar")["edgebar"] == "2.0"
    assert served(stack, one)["edgebar"] == "1.0"


def test_unresolvable_requirement_is_rejected_before_the_ref_moves(
    stack: Stack, tmp_path: Path
) -> None:
    app = app_name()
    work = deploy(stack, tmp_path, app, "edgebar==1.0\n")
    head = work.git("ls-remote", stack.remote(app), "main").stdout.split()[0]
    work.commit("bad", {"requirements.txt": "edgebar-x==9.9.9\n"})
    out = work.push(stack.remote(app), check=False)
    assert out.returncode != 0
    assert "[remote rejected] main -> main (requirements.txt:" in out.stderr, out.stderr
    assert "edgebar-x" in out.stderr.split("[remote rejected]")[1]
    assert work.git("ls-remote", stack.remote(app), "main").stdout.split()[0] == head
    assert served(stack, app)["edgebar"] == "1.0"

    work.commit("an option", {"requirements.txt": "--index-url http://evil.example/\n"})
    out = work.push(stack.remote(app), check=False)
    assert "options are not allowed here" in out.stderr


def test_import_error_rejects_the_push(stack: Stack, tmp_path: Path) -> None:
    app = app_name()
    work = deploy(stack, tmp_path, app, "edgebar==1.0\n")
    work.commit("breaks", {"version.py": "import nothere_pkg\n" + VERSION})
    out = work.push(stack.remote(app), check=False)
    assert out.returncode != 0
    assert (
        "[remote rejected] main -> main (version.py: does not load: "
        "ModuleNotFoundError: No module named 'nothere_pkg')"
    ) in out.stderr, out.stderr
    assert served(stack, app)["code"] == "a"

    work.git("reset", "-q", "--hard", "HEAD~1")
    work.commit("raises", {"version.py": VERSION + "\nraise RuntimeError('no config')\n"})
    out = work.push(stack.remote(app), check=False)
    assert "RuntimeError: no config" in out.stderr, out.stderr
    assert served(stack, app)["code"] == "a"


def test_preview_branches_that_share_a_host_are_refused(stack: Stack, tmp_path: Path) -> None:
    app = app_name()
    work = deploy(stack, tmp_path, app, "edgebar==1.0\n")
    work.git("branch", "feature-x")
    work.git("branch", "feature/x")
    assert "live at" in work.push(stack.remote(app), "feature-x").stderr
    out = work.push(stack.remote(app), "feature/x", check=False)
    assert out.returncode != 0
    assert "feature-x--" in out.stderr and "already uses" in out.stderr, out.stderr


def test_a_node_on_another_host_builds_the_environment_it_lacks(
    stack: Stack, tmp_path: Path
) -> None:
    home = tmp_path / "node-home"
    home.mkdir()
    env = {
        **stack.env,
        "EDGE_HOME": str(home),
        "EDGE_RUNTIME_PORT": str(free_port()),
        "EDGE_TOKEN": stack.token,
        "EDGE_PLATFORM_URL": f"http://127.0.0.1:{stack.config.platform_port}",
        "EDGE_SECRET_KEY": (stack.home / "secret.key").read_text().strip(),
    }
    node = Stack(home, env, Config.from_env(env), stack.token)
    try:
        node.start("runtime")
        app = app_name()
        deploy(stack, tmp_path, app, "edgebar==2.0\n")  # acknowledged by both nodes
        assert served(node, app)["edgebar"] == "2.0"
        built = {p.name for p in (home / "envs").glob("[0-9a-f]*")}
        assert built and built <= envs(stack)  # the same digests as the control plane's
    finally:
        node.close()
