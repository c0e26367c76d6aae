"""Per-app locks shared by every control-plane process on a host (``flock``).

One push, deploy or rollback per app at a time. A lock dies with its holder,
so a lock that can be taken at once proves that no push of the app is in
flight (what :mod:`edge.platform.pending` relies on).
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class AppLocks:
    """The lock files under ``folder``; reentrant within a thread."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._held = threading.local()

    def _held_apps(self) -> set[str]:
        apps: set[str] = self._held.__dict__.setdefault("apps", set())
        return apps

    @contextmanager
    def hold(self, app: str) -> Iterator[None]:
        """Wait for the app's lock and hold it (at once if this thread holds it)."""
        with self._locked(app, blocking=True):
            yield

    @contextmanager
    def attempt(self, app: str) -> Iterator[bool]:
        """Hold the app's lock if it is free now; yields whether it is held."""
        with self._locked(app, blocking=False) as held:
            yield held

    @contextmanager
    def _locked(self, app: str, *, blocking: bool) -> Iterator[bool]:
        held = self._held_apps()
        if app in held:
            yield True
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f"{app}.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            held.add(app)
            try:
                yield True
            finally:
                held.discard(app)
                fcntl.flock(handle, fcntl.LOCK_UN)
