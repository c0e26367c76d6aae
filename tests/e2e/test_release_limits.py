"""Decompression bombs and disk: inflated-size limits and the collection of old artifacts.

One stack with small limits (3 MB per file, 8 MB per release, 2 releases kept)
so the bombs stay cheap to build: a file of zeros compresses a thousandfold.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from stack import Stack, Workdir, make_stack

from edge.redisserver import RedisServer

HELLO = {
    "edge.toml": '[functions.hello]\nentry = "hello.py"\nroutes = ["/"]\n',
    "hello.py": "def handle(request):\n    return 'v1'\n",
}
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = Path(tmp_path_factory.mktemp("small-limits"))
    redis = RedisServer(tmp / "redis.sock", tmp / "redis")
    redis.start()
    stack = make_stack(
        tmp,
        f"sqlite:///{tmp / 'edge.db'}",
        redis.url,
        EDGE_MAX_FILE_MB="3",
        EDGE_MAX_RELEASE_MB="8",
        EDGE_KEEP_RELEASES="2",
    )
    try:
        stack.start("platform")
        stack.start("runtime")
        yield stack
    finally:
        stack.close()
        redis.stop()


def deployed(stack: Stack, tmp_path: Path) -> tuple[str, Workdir]:
    app = "lim-" + uuid.uuid4().hex[:8]
    work = Workdir(tmp_path / app)
    work.commit("v1", HELLO)
    assert "v1 live at" in work.push(stack.remote(app)).stderr
    return app, work


def versions(stack: Stack, app: str, env: str = "production") -> list[dict]:
    resp = httpx.get(
        f"http://127.0.0.1:{stack.config.platform_port}/v1/apps/{app}/releases",
        params={"env": env},
        headers={"Authorization": f"Bearer {stack.token}"},
    )
    return sorted(resp.json()["releases"], key=lambda r: r["version"])


def worker_peaks(stack: Stack) -> int:
    """The summed peak RSS (VmHWM, bytes) of the control plane's gunicorn workers."""
    master = stack.processes["platform"].pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    total = 0
    for pid in children:
        status = Path(f"/proc/{pid}/status").read_text()
        hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        total += int(hwm.split()[1]) * 1024
    return total


def test_a_file_that_inflates_past_the_limit_is_refused_before_it_is_inflated(
    small: Stack, tmp_path: Path
) -> None:
    app, work = deployed(small, tmp_path)
    (work.path / "zeros.bin").write_bytes(bytes(96 * MIB))  # about 100 KB once compressed
    work.commit("bomb")
    before = worker_peaks(small)
    out = work.push(small.remote(app), check=False)
    assert out.returncode != 0
    assert "inflates to 96.0 MB, over the 3 MB limit for one file (EDGE_MAX_FILE_MB)" in (
        out.stderr
    ), out.stderr
    assert "! [remote rejected] main -> main (unpacker error: nothing was changed)" in out.stderr
    assert worker_peaks(small) - before < 48 * MIB  # dulwich would hold it whole: 96+ MB
    assert [r["version"] for r in versions(small, app)] == [1]
    assert small.get(small.host(app), "/").text == "v1"


def test_a_release_over_the_size_limit_is_rejected_in_update(small: Stack, tmp_path: Path) -> None:
    app, work = deployed(small, tmp_path)
    for i in range(4):  # 4 x 2.5 MB: each file fits, together they do not
        (work.path / f"data{i}.bin").write_bytes(bytes([i]) + bytes(5 * MIB // 2))
    work.commit("too much")
    out = work.push(small.remote(app), check=False)
    assert out.returncode != 0
    assert (
        "! [remote rejected] main -> main (the files add up to 10.0 MB uncompressed, "
        "over the 8 MB limit for a release (EDGE_MAX_RELEASE_MB)"
    ) in out.stderr, out.stderr
    assert [r["version"] for r in versions(small, app)] == [1]


def test_artifacts_no_release_can_come_back_to_are_collected(small: Stack, tmp_path: Path) -> None:
    app, work = deployed(small, tmp_path)
    folder = small.home / "releases" / app
    for version in ("v2", "v3", "v4"):
        work.commit(version, {"hello.py": f"def handle(request):\n    return '{version}'\n"})
        work.push(small.remote(app))
    listed = versions(small, app)
    assert [r["version"] for r in listed] == [1, 2, 3, 4]
    on_disk = {p.name for p in folder.iterdir() if p.is_dir()}
    assert on_disk == {r["artifact"] for r in listed[2:]}  # 2 kept (EDGE_KEEP_RELEASES)

    rollback = _edge(small, "rollback", app, "--to", "1")
    assert rollback.returncode != 0
    assert "older than the 2 releases kept (EDGE_KEEP_RELEASES)" in rollback.stderr
    assert small.get(small.host(app), "/").text == "v4"
    assert _edge(small, "rollback", app, "--to", "3").returncode == 0
    assert small.get(small.host(app), "/").text == "v3"

    work.git("checkout", "-q", "-b", "preview")
    work.commit("preview", {"preview-only.txt": "only in the preview\n"})
    work.push(small.remote(app), "preview")
    preview = versions(small, app, "preview")[0]["artifact"]
    assert (folder / preview).is_dir()
    assert "torn down" in work.push(small.remote(app), ":preview").stderr
    assert not (folder / preview).exists()
    assert not (folder / f"{preview}.tar").exists()
    assert small.get(small.host(app), "/").text == "v3"


def _edge(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        env={**stack.env, "EDGE_TOKEN": stack.token},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
