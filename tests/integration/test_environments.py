"""Package environments built by the real uv from wheels in a local folder (no index)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from wheels import build_wheel

from edge.errors import ManifestError
from edge.packages import Environments, Settings


def environments(tmp: Path, **limits: float) -> Environments:
    wheels = tmp / "wheels"
    build_wheel(wheels, "edgebar", "1.0", 'VERSION = "1.0"\n')
    build_wheel(wheels, "edgebig", "1.0", f"DATA = {'x' * (3 << 20)!r}\n")
    settings = Settings(index_url="none", find_links=str(wheels), **limits)  # type: ignore[arg-type]
    return Environments(tmp / "envs", settings, tmp / "cache")


def test_built_once_sealed_and_reused(tmp_path: Path) -> None:
    envs = environments(tmp_path)
    said: list[str] = []
    digest = envs.ensure(b"edgebar==1.0\n", said.append)
    assert any("Installed 1 package" in line for line in said), said
    module = envs.path(digest) / "edgebar" / "__init__.py"
    assert module.read_text() == 'VERSION = "1.0"\n'
    assert stat.S_IMODE(module.stat().st_mode) == 0o444
    assert stat.S_IMODE(envs.path(digest).stat().st_mode) == 0o555
    assert list((envs.path(digest) / "edgebar" / "__pycache__").glob("*.pyc"))  # compiled once
    again: list[str] = []
    assert envs.ensure(b"edgebar==1.0\n", again.append) == digest
    assert again == [f"-----> Python packages: reusing environment {digest[:12]}"]


def test_resolution_failure_names_the_package(tmp_path: Path) -> None:
    envs = environments(tmp_path)
    with pytest.raises(ManifestError) as failed:
        envs.ensure(b"edgebar-x==9.9.9\n", lambda line: None)
    (problem,) = failed.value.problems
    assert problem.startswith("requirements.txt: No solution found when resolving dependencies")
    assert "edgebar-x" in problem and "\n" not in problem
    assert envs.digests() == set()


def test_size_and_time_limits(tmp_path: Path) -> None:
    envs = environments(tmp_path, max_mb=1)
    with pytest.raises(
        ManifestError, match=r"take \d+ MB, over the limit of 1 MB \(EDGE_MAX_ENV_MB\)"
    ):
        envs.ensure(b"edgebig==1.0\n", lambda line: None)
    assert envs.digests() == set()
    slow = environments(tmp_path / "slow", timeout_s=0.001)
    with pytest.raises(ManifestError, match=r"longer than 0.001 s \(EDGE_ENV_INSTALL_TIMEOUT\)"):
        slow.ensure(b"edgebar==1.0\n", lambda line: None)
    assert not [p for p in os.listdir(slow.root) if not p.startswith(".")]
