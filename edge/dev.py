"""``edge dev``: a working folder, live, re-validated and hot-swapped on every save.

Runs what ``edge up`` runs (embedded Redis, SQLite, control plane, runtime),
then deploys the folder directly (no git) and again whenever a file changes.
A save that does not validate prints its problems; the last good version keeps
serving. The same validation, limits and runtime as a real push: what works
here works after ``git push``.
"""

from __future__ import annotations

import logging
import threading
import tomllib
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from edge.config import Config
from edge.errors import EdgeError
from edge.platform.artifacts import SKIPPED_FOLDERS
from edge.platform.deploy import Deployer
from edge.platform.environments import public_url
from edge.platform.repos import check_app_name
from edge.platform.services import build_platform
from edge.snapshot import PRODUCTION
from edge.up import ProcessGroup

logger = logging.getLogger(__name__)

DEBOUNCE_S = 0.2


class Changes(FileSystemEventHandler):
    """Sets an event when anything but tool folders (.git, .edge, caches) changes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.changed = threading.Event()

    def on_any_event(self, event: FileSystemEvent) -> None:
        path = Path(str(event.src_path))
        try:
            parts = path.relative_to(self.root).parts
        except ValueError:
            return
        if event.event_type in ("opened", "closed_no_write") or SKIPPED_FOLDERS & set(parts):
            return
        self.changed.set()


def deploy(deployer: Deployer, folder: Path, app: str) -> bool:
    """One deploy of the folder; prints progress or the problems. True when live."""
    try:
        deployer.deploy_folder(folder, app, by="edge dev", progress=print)
    except EdgeError as exc:
        for problem in getattr(exc, "problems", [str(exc)]):
            print(f"error: {problem}")
        print("-----> not deployed: the previous version keeps serving; save again to retry")
        return False
    return True


def watch(deployer: Deployer, folder: Path, app: str, stopping: threading.Event) -> None:
    """Redeploy after each burst of changes until ``stopping`` is set."""
    changes = Changes(folder)
    observer = Observer()
    observer.schedule(changes, str(folder), recursive=True)
    observer.start()
    try:
        while not stopping.is_set():
            if not changes.changed.wait(0.5):
                continue
            # Editors write in bursts (temp file, rename, chmod): wait for quiet.
            while changes.changed.wait(DEBOUNCE_S):
                changes.changed.clear()
                if stopping.is_set():
                    return
            deploy(deployer, folder, app)
    finally:
        observer.stop()
        observer.join()


def _manifest_app(folder: Path) -> str | None:
    """The ``app`` that edge.toml names, if it can be read at all."""
    try:
        with (folder / "edge.toml").open("rb") as handle:
            value = tomllib.load(handle).get("app")
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return value if isinstance(value, str) else None


def run(config: Config, folder: Path, app: str | None) -> int:
    folder = folder.resolve()
    name = check_app_name(app or _manifest_app(folder) or folder.name.lower())
    processes = ProcessGroup(config)
    processes.install_signal_handlers()
    try:
        processes.start()
        platform = build_platform(config)
        try:
            deploy(platform.deployer, folder, name)
            print(
                f"\nedge dev: {folder} is {public_url(config, name, PRODUCTION)}"
                " - watching for changes (Ctrl-C stops)",
                flush=True,
            )
            watcher = threading.Thread(
                target=watch,
                name="edge-dev-watch",
                daemon=True,
                args=(platform.deployer, folder, name, processes.stopping),
            )
            watcher.start()
            processes.wait()
            watcher.join(timeout=5)
        finally:
            platform.close()
    finally:
        processes.stop()
    return 0
