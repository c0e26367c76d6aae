"""Where edge.toml and function code are read from: a folder or a git tree.

Both sources read by relative POSIX path and never follow symlinks: the
manifest validator uses :meth:`Source.kind` to refuse entries that are, or
pass through, a symlink or a submodule.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Literal, Protocol

from dulwich.objects import S_ISGITLINK, Blob, Tree

Kind = Literal["file", "dir", "symlink"]


class Source(Protocol):
    """Files of one commit or folder, read by relative POSIX path."""

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or ``None`` if there is no regular file there."""

    def kind(self, path: str) -> Kind | None:
        """What is at ``path`` (``None`` if nothing)."""


def _safe_parts(path: str) -> list[str] | None:
    """The components of a plain relative POSIX path, or ``None`` if it is not one."""
    parts = path.split("/")
    if "\\" in path or "\0" in path or any(p in ("", ".", "..") for p in parts):
        return None
    return parts


class DirSource:
    """A working folder (``edge dev``, tests).

    APPSEC: never follows symlinks. :meth:`kind` says ``"symlink"`` when the
    path or any folder on the way is one, and :meth:`read` then returns ``None``.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def kind(self, path: str) -> Kind | None:
        """What is at ``path``: ``"file"``, ``"dir"``, ``"symlink"`` or ``None``."""
        parts = _safe_parts(path)
        if parts is None:
            return None
        current = self.root
        mode = 0
        for part in parts:
            if mode and not stat.S_ISDIR(mode):
                return None
            current = current / part
            try:
                mode = os.lstat(current).st_mode
            except OSError:
                return None
            if stat.S_ISLNK(mode):
                return "symlink"
        return _mode_kind(mode)

    def read(self, path: str) -> bytes | None:
        """The bytes of the regular file at ``path``, else ``None``."""
        if self.kind(path) != "file":
            return None
        try:
            fd = os.open(self.root / path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return handle.read()


class GitTreeSource:
    """A tree in a dulwich object store (the ``update`` hook).

    Symlinks (mode 0o120000) are ``"symlink"``; submodules (gitlinks) are
    neither file nor folder, so :meth:`kind` returns ``None`` for them.
    """

    def __init__(self, object_store: Any, tree_id: bytes) -> None:
        self.object_store = object_store
        self.tree_id = tree_id

    def kind(self, path: str) -> Kind | None:
        """What is at ``path``: ``"file"``, ``"dir"``, ``"symlink"`` or ``None``."""
        return self._lookup(path)[0]

    def read(self, path: str) -> bytes | None:
        """The bytes of the regular file at ``path``, else ``None``."""
        kind, sha = self._lookup(path)
        if kind != "file" or sha is None:
            return None
        blob = self._get(sha)
        return blob.as_raw_string() if isinstance(blob, Blob) else None

    def _get(self, sha: bytes) -> Any:
        try:
            return self.object_store[sha]
        except KeyError:
            return None

    def _lookup(self, path: str) -> tuple[Kind | None, bytes | None]:
        parts = _safe_parts(path)
        if parts is None:
            return None, None
        kind: Kind | None = "dir"
        sha: bytes = self.tree_id
        for part in parts:
            if kind != "dir":  # a symlink or a submodule on the way
                return ("symlink" if kind == "symlink" else None), None
            tree = self._get(sha)
            try:
                mode, sha = tree[part.encode("utf-8")] if isinstance(tree, Tree) else (0, b"")
            except (KeyError, UnicodeEncodeError):
                return None, None
            kind = None if S_ISGITLINK(mode) else _mode_kind(mode)
        return kind, sha


def _mode_kind(mode: int) -> Kind | None:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else None
