"""Crafted trees and failed deploys: a ref moves only to a commit that is deployed.

dulwich does not fsck pushes, so these trees are built the way an attacker
would (``git hash-object --literally``) and pushed with the real git client.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from stack import Stack, Workdir, wait_for

HELLO = {
    "edge.toml": '[functions.hello]\nentry = "hello.py"\nroutes = ["/"]\n',
    "hello.py": "def handle(request):\n    return 'v1'\n",
}


def versions(stack: Stack, app: str) -> list[int]:
    resp = httpx.get(
        f"http://127.0.0.1:{stack.config.platform_port}/v1/apps/{app}/releases",
        headers={"Authorization": f"Bearer {stack.token}"},
    )
    return sorted(r["version"] for r in resp.json()["releases"])


def remote_main(work: Workdir, remote: str) -> str:
    return work.git("ls-remote", remote, "refs/heads/main").stdout.split("\t")[0]


def hash_object(work: Workdir, kind: str, data: bytes) -> str:
    result = subprocess.run(
        ["git", "hash-object", "-w", "--literally", "-t", kind, "--stdin"],
        cwd=work.path,
        input=data,
        capture_output=True,
        check=True,
    )
    return result.stdout.decode().strip()


def tree(work: Workdir, entries: list[tuple[bytes, bytes, str]]) -> str:
    """A tree object of (mode, name, hex id) entries, names taken verbatim."""
    raw = b"".join(
        mode + b" " + name + b"\0" + bytes.fromhex(sha)
        for mode, name, sha in sorted(entries, key=lambda e: e[1])
    )
    return hash_object(work, "tree", raw)


def commit_crafted(work: Workdir, extra: list[tuple[bytes, bytes, str]]) -> None:
    """Commit the good files plus ``extra`` entries at the top of the tree, on main."""
    good = [
        (b"100644", name.encode(), hash_object(work, "blob", text.encode()))
        for name, text in HELLO.items()
    ]
    top = tree(work, good + extra)
    sha = work.git("commit-tree", top, "-p", "HEAD", "-m", "crafted").stdout.strip()
    work.git("update-ref", "refs/heads/main", sha)


@pytest.fixture
def deployed(runtime_stack: Stack, tmp_path: Path) -> tuple[Stack, str, Workdir, str]:
    app = "tree-" + uuid.uuid4().hex[:8]
    work = Workdir(tmp_path / app)
    good = work.commit("v1", HELLO)
    assert "v1 live at" in work.push(runtime_stack.remote(app)).stderr
    return runtime_stack, app, work, good


def evil_entries(work: Workdir) -> dict[str, tuple[list[tuple[bytes, bytes, str]], str]]:
    blob = hash_object(work, "blob", b"pwned\n")
    inner = tree(work, [(b"100644", b"evil.txt", blob)])
    nested = tree(work, [(b"100644", b"caf\xe9.txt", blob)])  # latin-1, not UTF-8
    return {
        "dotdot": ([(b"40000", b"..", inner)], "tree entry '..': a file or folder cannot be"),
        "slashes": (
            [(b"100644", b"x/../../../tmp/evil.txt", blob)],
            "tree entry 'x/../../../tmp/evil.txt': a name cannot contain '/'",
        ),
        "latin1": (
            [(b"40000", b"static", nested)],
            "tree entry 'static/caf\\xe9.txt': the name is not valid UTF-8",
        ),
    }


@pytest.mark.parametrize("case", ["dotdot", "slashes", "latin1"])
def test_a_crafted_tree_is_rejected_with_the_path_escaped(
    deployed: tuple[Stack, str, Workdir, str], case: str
) -> None:
    stack, app, work, good = deployed
    entries, message = evil_entries(work)[case]
    commit_crafted(work, entries)
    out = work.push(stack.remote(app), check=False)
    assert out.returncode != 0
    assert f"! [remote rejected] main -> main ({message}" in out.stderr, out.stderr
    assert remote_main(work, stack.remote(app)) == good
    assert versions(stack, app) == [1]
    assert stack.get(stack.host(app), "/").text == "v1"
    assert not Path("/tmp/evil.txt").exists()


def test_a_deploy_that_crashes_leaves_the_branch_where_it_was(
    deployed: tuple[Stack, str, Workdir, str],
) -> None:
    """Before: the ref moved, the deploy crashed, and a re-push said "Everything up-to-date"."""
    stack, app, work, good = deployed
    work.commit("v2", {"hello.py": "def handle(request):\n    return 'v2'\n"})
    releases = stack.home / "releases" / app
    parked = releases.with_name(app + ".parked")
    releases.rename(parked)
    releases.write_text("not a folder: the export of v2 fails")
    try:
        out = work.push(stack.remote(app), check=False)
    finally:
        releases.unlink()
        parked.rename(releases)
    assert out.returncode != 0
    # The export runs in the update step (before the ref moves) since #11.
    assert "! [remote rejected] main -> main (the release cannot be exported" in out.stderr
    assert remote_main(work, stack.remote(app)) == good
    assert stack.get(stack.host(app), "/").text == "v1"
    again = work.push(stack.remote(app))
    assert "v2 live at" in again.stderr, again.stderr
    assert stack.get(stack.host(app), "/").text == "v2"


def test_a_push_whose_control_plane_dies_mid_deploy_can_be_made_again(
    deployed: tuple[Stack, str, Workdir, str],
) -> None:
    """Before: the worker died after the ref moved, and a re-push said "Everything up-to-date"."""
    stack, app, work, good = deployed
    for i in range(40):  # 40 MB that does not compress: the export takes a moment
        (work.path / f"data{i}.bin").write_bytes(os.urandom(1 << 20))
    work.commit("v2", {"hello.py": "def handle(request):\n    return 'v2'\n"})
    releases = stack.home / "releases" / app
    pushing = subprocess.Popen(
        ["git", "push", stack.remote(app), "main"],
        cwd=work.path,
        env=work.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: any(p.name.startswith(".bundle-") for p in releases.iterdir()),
            timeout=60,
            interval=0.005,
            message="the export of v2 to begin",
        )
        for pid in platform_workers(stack):
            os.kill(pid, signal.SIGKILL)
        assert pushing.wait(timeout=60) != 0
    finally:
        if pushing.poll() is None:
            pushing.kill()
            pushing.wait()
    health = f"http://127.0.0.1:{stack.config.platform_port}/healthz"
    wait_for(lambda: httpx.get(health).status_code == 200, message="new platform workers")
    assert remote_main(work, stack.remote(app)) == good
    assert stack.get(stack.host(app), "/").text == "v1"
    again = work.push(stack.remote(app))
    assert "v2 live at" in again.stderr, again.stderr
    assert stack.get(stack.host(app), "/").text == "v2"


def platform_workers(stack: Stack) -> list[int]:
    master = stack.processes["platform"].pid
    return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
