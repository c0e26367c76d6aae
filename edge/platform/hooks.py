"""Entry point of the ``hooks/`` scripts, for pushes that stock git receives.

A push to the repository path on the control-plane host (``git push
/path/to/<app>.git main``) runs git's own receive-pack, which calls these hooks;
they validate and deploy exactly as a push over HTTP does. Settings come from
the environment, else from ``$EDGE_HOME/platform.json`` that ``edge platform``
writes (EDGE_HOME itself is the repository's grandparent folder).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from dulwich.object_store import DiskObjectStore, OverlayObjectStore
from dulwich.repo import Repo

from edge.config import Config
from edge.errors import EdgeError
from edge.platform.deploy import DeployError
from edge.platform.services import build_platform


def _config(git_dir: Path) -> Config:
    env = dict(os.environ)
    env.setdefault("EDGE_HOME", str(git_dir.resolve().parent.parent))
    saved = Path(env["EDGE_HOME"]) / "platform.json"
    if saved.is_file():
        for key, value in json.loads(saved.read_text()).items():
            env.setdefault(key, value)
    return Config.from_env(env)


def _object_store(repo: Repo) -> object:
    """The repo's objects plus git's quarantine of the incoming pack, if any.

    Stock git keeps a push's objects in a quarantine folder until the hooks
    accept it; they are visible only through GIT_QUARANTINE_PATH.
    """
    quarantine = os.environ.get("GIT_QUARANTINE_PATH")
    if not quarantine:
        return repo.object_store
    return OverlayObjectStore([DiskObjectStore(quarantine), repo.object_store])


def main(hook: str, args: list[str]) -> int:
    git_dir = Path(os.environ.get("GIT_DIR", "."))
    repo = Repo(str(git_dir))
    app = git_dir.resolve().name.removesuffix(".git")
    platform = build_platform(_config(git_dir))
    pusher = os.environ.get("USER", "local")
    try:
        if hook == "update":
            ref, old, new = args
            try:
                lines = platform.deployer.validate(
                    repo,
                    app,
                    ref.encode(),
                    old.encode(),
                    new.encode(),
                    object_store=_object_store(repo),
                    progress=lambda line: print(line, flush=True),
                    pusher=pusher,
                )
            except EdgeError as exc:
                for problem in getattr(exc, "problems", [str(exc)]):
                    print(f"error: {problem}", file=sys.stderr)
                return 1
            for line in lines:
                print(line)
            return 0
        failed = False
        for line in sys.stdin:
            old, new, ref = line.split()
            try:
                platform.deployer.deploy(
                    repo,
                    app,
                    ref.encode(),
                    old.encode(),
                    new.encode(),
                    pusher=pusher,
                    progress=print,
                )
            except DeployError:  # reported, and the ref moved back, by the deployer
                failed = True
        return 1 if failed else 0
    finally:
        platform.close()
