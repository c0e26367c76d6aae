"""App repositories on disk: one bare git repository per app.

Both dulwich (pushes over HTTP) and stock git (a push to the path on the
control-plane host) use these repositories; each gets the executable hooks
from the top-level ``hooks/`` folder, so both paths validate and deploy alike.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dulwich.refs import Ref
from dulwich.repo import Repo

from edge.errors import EdgeError, NotFoundError
from edge.manifest import app_name_problem

HOOKS_DIR = Path(__file__).resolve().parents[2] / "hooks"
HOOK_NAMES = ("update", "post-receive")


def check_app_name(name: str) -> str:
    """Return ``name`` if it is a valid app name, else raise with the rule."""
    problem = app_name_problem(name)
    if problem is not None:
        raise EdgeError(f"app name {problem} (e.g. 'shop')")
    return name


class AppRepos:
    """The bare repositories under ``$EDGE_HOME/repos``.

    Args:
        root: the folder holding ``<app>.git`` repositories.
        max_push_bytes: the largest pack a push may send (git's
            ``receive.maxInputSize``, honoured by dulwich and stock git).
    """

    def __init__(self, root: Path, max_push_bytes: int) -> None:
        self.root = root
        self.max_push_bytes = max_push_bytes

    def path(self, app: str) -> Path:
        # APPSEC: the name is validated before it is joined, so no traversal.
        return self.root / f"{check_app_name(app)}.git"

    def exists(self, app: str) -> bool:
        return (self.path(app) / "HEAD").is_file()

    def open(self, app: str) -> Repo:
        if not self.exists(app):
            raise NotFoundError(f"app {app!r} has no repository yet: push to it to create it")
        return Repo(str(self.path(app)))

    def create(self, app: str) -> Repo:
        """Create the app's bare repository (idempotent) with HEAD on ``main``."""
        path = self.path(app)
        if self.exists(app):
            return Repo(str(path))
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        repo = Repo.init_bare(str(path), mkdir=True)
        # Field note: init_bare points HEAD at master; clones would check out nothing.
        repo.refs.set_symbolic_ref(Ref(b"HEAD"), Ref(b"refs/heads/main"))
        config = repo.get_config()
        config.set((b"receive",), b"maxInputSize", str(self.max_push_bytes).encode())
        config.set((b"receive",), b"denyDeletes", b"false")
        config.set((b"receive",), b"denyNonFastForwards", b"false")
        config.write_to_path()
        self.install_hooks(path)
        return repo

    def install_hooks(self, repo_path: Path) -> None:
        """Copy ``hooks/*`` into the repo, pointing them at this interpreter."""
        target = repo_path / "hooks"
        target.mkdir(exist_ok=True)
        for name in HOOK_NAMES:
            source = (HOOKS_DIR / name).read_text().splitlines(keepends=True)
            source[0] = f"#!{sys.executable}\n"
            hook = target / name
            hook.write_text("".join(source))
            hook.chmod(0o755)
