"""The files of a release, read from a git tree (a push) or a folder (``edge dev``).

They are exported as a read-only artifact by :class:`edge.artifacts.Artifacts`.
APPSEC: symlinks and submodules in the tree are not exported (a symlink could
point anywhere on the host).
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path
from typing import Any

from dulwich.object_store import iter_tree_contents
from dulwich.objects import ObjectID

from edge.artifacts import SourceFile

SKIPPED_FOLDERS = frozenset({".git", ".edge", "__pycache__", "node_modules", ".venv"})


def _blob_bytes(object_store: Any, sha: bytes) -> bytes:
    return bytes(object_store[sha].as_raw_string())


def git_files(object_store: Any, tree_id: bytes) -> list[SourceFile]:
    """The regular files of a git tree, sorted by path (symlinks, submodules left out)."""
    return sorted(
        (
            SourceFile(
                entry.path.decode("utf-8", errors="surrogateescape"),
                bool(entry.mode & 0o111),
                functools.partial(_blob_bytes, object_store, entry.sha),
            )
            for entry in iter_tree_contents(object_store, ObjectID(tree_id))
            if entry.mode is not None and stat.S_ISREG(entry.mode)
        ),
        key=lambda f: f.path,
    )


def folder_files(root: Path) -> list[SourceFile]:
    """The regular files under a working folder (``edge dev``), sorted by path.

    Symlinks are never followed, and tool folders (``.git``, ``.venv``,
    ``__pycache__``...) are skipped.
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_FOLDERS)
        for name in filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                found.append(
                    SourceFile(
                        path.relative_to(root).as_posix(),
                        bool(info.st_mode & 0o111),
                        path.read_bytes,
                    )
                )
    return sorted(found, key=lambda f: f.path)
