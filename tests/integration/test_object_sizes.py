"""Inflated sizes read from headers, against what real git says, loose and packed with deltas."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest
from dulwich.repo import Repo

from edge.platform.objectsize import object_size
from edge.platform.packguard import ObjectTooLarge, PackGuard, PushRefused

MIB = 1024 * 1024


def git(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(
        ["git", "-C", str(repo), *args], input=data, capture_output=True, check=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with similar files (git deltifies them when packing) and 8 MB of zeros."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q")
    base = os.urandom(40_000).hex()
    for i in range(4):
        (path / f"f{i}.txt").write_text(base + str(i) * 2000 * i)
    (path / "zeros.bin").write_bytes(bytes(8 * MIB))
    git(path, "add", "-A")
    git(path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "files")
    return path


def sizes_match_git(path: Path) -> None:
    listed = git(path, "rev-list", "--objects", "--all").decode().split()
    with Repo(str(path)) as repo:
        for sha in (s for s in listed if len(s) == 40):
            expected = int(git(path, "cat-file", "-s", sha))
            assert object_size(repo.object_store, sha.encode()) == expected, sha


def test_sizes_of_loose_and_packed_objects_match_git(repo: Path) -> None:
    sizes_match_git(repo)
    git(repo, "gc", "-q", "--aggressive")
    verify = git(repo, "verify-pack", "-v", *map(str, (repo / ".git/objects/pack").glob("*.idx")))
    assert b" blob " in verify and any(
        line.count(b" ") >= 6 for line in verify.splitlines() if b" blob " in line
    ), "expected deltified blobs"
    sizes_match_git(repo)


def push_body(repo: Path) -> bytes:
    pack = git(repo, "pack-objects", "--stdout", "-q", "--revs", data=b"HEAD\n")
    line = b"0" * 40 + b" " + b"1" * 40 + b" refs/heads/main\0report-status"
    return b"%04x" % (len(line) + 4) + line + b"0000" + pack


def read_all(guard: PackGuard) -> int:
    total = 0
    while chunk := guard.read(4096):
        total += len(chunk)
    return total


def test_the_guard_passes_a_push_within_the_limit_unchanged(repo: Path) -> None:
    body = push_body(repo)
    assert read_all(PackGuard(io.BytesIO(body), 9 * MIB)) == len(body)


def test_the_guard_refuses_an_object_that_inflates_past_the_limit(repo: Path) -> None:
    drained: list[bool] = []
    guard = PackGuard(io.BytesIO(push_body(repo)), 4 * MIB, on_refuse=lambda s: drained.append(1))
    with pytest.raises(ObjectTooLarge, match=r"inflates to 8\.0 MB, over the 4 MB limit"):
        read_all(guard)
    assert drained


def test_the_guard_refuses_a_malformed_push() -> None:
    with pytest.raises(PushRefused, match="bad pkt-line length"):
        read_all(PackGuard(io.BytesIO(b"zzzz" + bytes(100)), MIB))
