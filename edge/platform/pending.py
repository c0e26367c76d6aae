"""A push's ref updates (:class:`PushedRef`), and the ones whose deploy has not ended
yet, so that a push that dies mid-deploy is undone.

git's order is: objects stored, ``update`` accepts, the ref moves, then
``post-receive`` deploys. If the control-plane process dies between the ref
move and the release (SIGKILL, OOM, a host reboot), the ref points at a
commit that was never deployed and a re-push says "Everything up-to-date".
receive-pack therefore writes a marker per accepted ref in ``update`` and
removes it when the push ends; a marker found while no push holds the app's
lock belongs to a push that died (:func:`edge.platform.recovery.recover` moves its
ref back).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ZERO_SHA = b"0" * 40


@dataclass(frozen=True)
class PushedRef:
    """One ref update of a push, decoded."""

    ref: str
    old: bytes
    new: bytes

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None

    @property
    def deleted(self) -> bool:
        return self.new == ZERO_SHA


def undo_ref(repo: Any, pushed: PushedRef) -> None:
    """Move the ref back where it was, unless another push has moved it since."""
    ref = pushed.ref.encode()
    if pushed.old == ZERO_SHA:
        repo.refs.remove_if_equals(ref, pushed.new)
    else:
        repo.refs.set_if_equals(ref, pushed.new, pushed.old)


class PendingDeploys:
    """The markers of one repository, in ``<repo>/edge-pending/``."""

    def __init__(self, repo: Any) -> None:
        self.folder = Path(repo.controldir()) / "edge-pending"

    def _path(self, ref: str) -> Path:
        return self.folder / hashlib.sha256(ref.encode()).hexdigest()[:32]

    def mark(self, ref: str, old: bytes, new: bytes) -> None:
        """Record that ``ref`` moves from ``old`` to ``new`` and is not deployed yet."""
        self.folder.mkdir(exist_ok=True)
        staged = self._path(ref).with_suffix(".tmp")
        staged.write_text(json.dumps({"ref": ref, "old": old.decode(), "new": new.decode()}))
        os.replace(staged, self._path(ref))

    def clear(self, ref: str) -> None:
        self._path(ref).unlink(missing_ok=True)

    def refs(self) -> list[tuple[str, bytes, bytes]]:
        """The pending ref updates as (ref, old, new)."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.iterdir()):
            if path.suffix == ".tmp":
                continue
            entry = json.loads(path.read_text())
            found.append((entry["ref"], entry["old"].encode(), entry["new"].encode()))
        return found
