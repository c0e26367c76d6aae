"""Real git clients as CI systems and developers use them, against the real git server.

Shallow clones, gzip'ed fetch negotiations, forced and atomic pushes, dulwich's
own client and protocol v2: each of these broke the server once.
"""

from __future__ import annotations

import io
import subprocess
import uuid
from pathlib import Path

import httpx
from dulwich import porcelain
from stack import Stack, Workdir

HELLO = {
    "edge.toml": '[functions.hello]\nentry = "hello.py"\nroutes = ["/"]\n',
    "hello.py": "def handle(request):\n    return {{'version': '{version}'}}\n",
}


def files(version: str) -> dict[str, str]:
    return {"edge.toml": HELLO["edge.toml"], "hello.py": HELLO["hello.py"].format(version=version)}


def app_name() -> str:
    return "git-" + uuid.uuid4().hex[:8]


def served(stack: Stack, app: str, branch: str | None = None) -> str | None:
    resp = stack.get(stack.host(app, branch), "/")
    return resp.json().get("version") if resp.status_code == 200 else None


def versions(stack: Stack, app: str, env: str = "production") -> list[int]:
    resp = httpx.get(
        f"http://127.0.0.1:{stack.config.platform_port}/v1/apps/{app}/releases",
        params={"env": env},
        headers={"Authorization": f"Bearer {stack.token}"},
    )
    resp.raise_for_status()
    return sorted(r["version"] for r in resp.json()["releases"])


def test_push_from_a_shallow_clone_deploys(runtime_stack: Stack, tmp_path: Path) -> None:
    """`git clone --depth 1` + commit + push, as CI does, to an app with history."""
    stack, app = runtime_stack, app_name()
    work = Workdir(tmp_path / "full")
    for version in ("one", "two", "three"):
        work.commit(version, files(version))
    assert "v1 live at" in work.push(stack.remote(app)).stderr
    shallow = Workdir.clone(stack.remote(app), tmp_path / "shallow", "--depth", "1")
    assert shallow.git("rev-parse", "--is-shallow-repository").stdout.strip() == "true"
    shallow.commit("four", files("four"))
    out = shallow.push(stack.remote(app), check=False)
    assert out.returncode == 0, out.stderr
    assert "v2 live at" in out.stderr
    assert served(stack, app) == "four"


def test_shallow_clone_of_another_repository_deploys_to_a_new_app(
    runtime_stack: Stack, tmp_path: Path
) -> None:
    """The CI case: a depth-1 checkout of the team's own repository, pushed to Edge."""
    stack, app = runtime_stack, app_name()
    origin = Workdir(tmp_path / "origin")
    for version in ("one", "two"):
        origin.commit(version, files(version))
    shallow = Workdir.clone(f"file://{origin.path}", tmp_path / "ci", "--depth", "1")
    out = shallow.push(stack.remote(app), "HEAD:main", check=False)
    assert out.returncode == 0, out.stderr
    assert "v1 live at" in out.stderr
    assert served(stack, app) == "two"
    tip = shallow.git("rev-parse", "HEAD").stdout.strip()
    assert (stack.home / "repos" / f"{app}.git" / "shallow").read_text().split() == [tip]
    full = subprocess.run(
        ["git", "clone", "-q", stack.remote(app), str(tmp_path / "full")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert full.returncode != 0
    assert "pushed from a shallow clone" in full.stderr, full.stderr
    assert "git clone --depth 1" in full.stderr
    Workdir.clone(stack.remote(app), tmp_path / "depth1", "--depth", "1")
    shallow.commit("three", files("three"))
    assert "v2 live at" in shallow.push(stack.remote(app), "HEAD:main").stderr
    assert served(stack, app) == "three"


def test_fetch_into_a_clone_with_many_local_commits(runtime_stack: Stack, tmp_path: Path) -> None:
    """Many local commits make git gzip its upload-pack request (over 1 KiB of haves)."""
    stack, app = runtime_stack, app_name()
    work = Workdir(tmp_path / "work")
    work.commit("one", files("one"))
    work.push(stack.remote(app))
    local = Workdir.clone(stack.remote(app), tmp_path / "local")
    local.git("checkout", "-q", "-b", "experiments")
    for i in range(60):  # newer than anything shared: offered first, none of them known
        local.env["GIT_COMMITTER_DATE"] = f"@{2_000_000_000 + i} +0000"
        local.git("commit", "-q", "--allow-empty", "-m", f"local {i}")
    work.commit("two", files("two"))
    work.push(stack.remote(app))
    local.env.update(GIT_TRACE_CURL="1", GIT_TRACE_CURL_NO_DATA="1")
    fetched = local.git("fetch", "origin", check=False)
    assert "Content-Encoding: gzip" in fetched.stderr  # else this test proves nothing
    assert fetched.returncode == 0, fetched.stderr[-2000:]
    remote_main = local.git("rev-parse", "origin/main").stdout.strip()
    assert remote_main == work.git("rev-parse", "HEAD").stdout.strip()


def test_force_push_replaces_history_and_deploys(runtime_stack: Stack, tmp_path: Path) -> None:
    stack, app = runtime_stack, app_name()
    work = Workdir(tmp_path / "work")
    work.commit("one", files("one"))
    work.commit("two", files("two"))
    work.push(stack.remote(app))
    work.git("reset", "-q", "--hard", "HEAD~1")
    work.commit("rewritten", files("rewritten"))
    refused = work.push(stack.remote(app), check=False)
    assert refused.returncode != 0 and "non-fast-forward" in refused.stderr + refused.stdout
    out = work.push(stack.remote(app), "--force", "main")
    assert "v2 live at" in out.stderr
    assert served(stack, app) == "rewritten"


def test_atomic_push_of_two_branches_is_all_or_nothing(
    runtime_stack: Stack, tmp_path: Path
) -> None:
    stack, app = runtime_stack, app_name()
    work = Workdir(tmp_path / "work")
    work.commit("one", files("one"))
    work.git("branch", "preview")
    out = work.push(stack.remote(app), "--atomic", "main", "preview")
    assert "v1 live at" in out.stderr and f"preview--{app}" in out.stderr
    assert served(stack, app) == "one" and served(stack, app, "preview") == "one"

    work.commit("two", files("two"))
    work.git("checkout", "-q", "preview")
    work.commit("broken", {"hello.py": "def handle(request)\n"})
    out = work.push(stack.remote(app), "--atomic", "main", "preview", check=False)
    assert out.returncode != 0
    assert "hello.py:1: SyntaxError" in out.stderr
    assert "atomic push failed" in out.stderr
    assert served(stack, app) == "one" and versions(stack, app) == [1]
    ls = work.git("ls-remote", stack.remote(app)).stdout
    assert work.git("rev-parse", "main~1").stdout.strip() + "\trefs/heads/main" in ls


def test_push_by_dulwichs_own_client(runtime_stack: Stack, tmp_path: Path) -> None:
    stack, app = runtime_stack, app_name()
    work = Workdir(tmp_path / "work")
    work.commit("one", files("one"))
    errstream = io.BytesIO()
    porcelain.push(
        str(work.path),
        stack.remote(app),
        [b"refs/heads/main:refs/heads/main"],
        outstream=io.BytesIO(),
        errstream=errstream,
    )
    assert b"v1 live at" in errstream.getvalue(), errstream.getvalue()
    assert served(stack, app) == "one"


def test_ls_remote_with_protocol_v2_requested(runtime_stack: Stack, tmp_path: Path) -> None:
    stack, app = runtime_stack, app_name()
    work = Workdir(tmp_path / "work")
    head = work.commit("one", files("one"))
    work.git("branch", "side")
    work.push(stack.remote(app), "main", "side")
    out = work.git("-c", "protocol.version=2", "ls-remote", stack.remote(app))
    listed = dict(reversed(line.split("\t")) for line in out.stdout.splitlines())
    assert listed["refs/heads/main"] == head
    assert listed["refs/heads/side"] == head
    v2 = Workdir.clone(stack.remote(app), tmp_path / "v2", "-c", "protocol.version=2")
    assert "one" in (v2.path / "hello.py").read_text()
