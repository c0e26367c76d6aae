"""Package environments are collected once no release that may come back refers to them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.packages import Environments, Settings
from edge.platform.envretention import collect_environments
from edge.platform.store import FunctionRecord, Store


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store.from_url(database_url)
    store.migrate()
    yield store
    store.close()


def record() -> FunctionRecord:
    return FunctionRecord(
        name="f",
        runtime="python",
        entry="f.py",
        path="f.py",
        handler="handle",
        memory_mb=64,
        timeout_ms=1000,
        regions=["us-east"],
        env={},
        min_warm=0,
        max_instances=1,
        content_hash="h",
        routes=("/f",),
    )


def deploy(store: Store, app: str, env: str, packages: str) -> None:
    store.get_or_create_app(app, created_by="t")
    store.get_or_create_environment(app, env, branch=env)
    release = store.create_release(
        app,
        env,
        commit_sha="c" * 40,
        artifact="a" * 64,
        manifest_json="{}",
        functions=[record()],
        packages=packages,
        created_by="t",
        author="t",
        message="m",
    )
    store.point_environment(release.id)


def sealed_env(environments: Environments, digest: str) -> None:
    folder = environments.path(digest) / "pkg"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    for path in (folder / "__init__.py", folder, folder.parent):
        os.chmod(path, 0o444 if path.is_file() else 0o555)


def test_unreferenced_environments_go_once_idle(store: Store, tmp_path: Path) -> None:
    environments = Environments(tmp_path / "envs", Settings(), tmp_path / "cache")
    for digest in ("old1", "new1", "other", "stray", "fresh"):
        sealed_env(environments, digest)
    deploy(store, "shop", "production", "old1")
    deploy(store, "shop", "production", "new1")  # keep=1: old1 can no longer come back
    deploy(store, "blog", "production", "other")  # another app's keeps its own

    assert collect_environments(store, environments, keep=1, grace_s=3600) == []
    os.utime(environments.path("fresh"))  # used by a push just now: kept through the grace
    for digest in ("old1", "stray"):
        os.utime(environments.path(digest), (1, 1))
    assert collect_environments(store, environments, keep=1, grace_s=3600) == ["old1", "stray"]
    assert environments.digests() == {"new1", "other", "fresh"}
    assert collect_environments(store, environments, keep=2, grace_s=0) == ["fresh"]
