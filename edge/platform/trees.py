"""A pushed tree, checked in the ``update`` step before its ref may move.

APPSEC: dulwich does not fsck what a push brings, so a crafted tree can hold
names git itself would refuse (``..``, ``x/../../../tmp/evil.txt`` as one
entry, bytes that are not UTF-8) and blobs that inflate a thousandfold.
Every entry of every folder is checked here, and every file's size is read
from its object header (:mod:`edge.platform.objectsize`) without inflating
it: what passes can be exported as a release; what fails rejects the ref
with every problem listed, each path shown escaped.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from typing import Any

from dulwich.objects import Tree

from edge.errors import ManifestError
from edge.platform.objectsize import object_size

MIB = 1024 * 1024
MAX_NAME_BYTES = 255  # what Linux file systems allow for one name
MAX_PATH_BYTES = 1024
MAX_LISTED = 20  # problems listed in full; the rest are counted


@dataclass(frozen=True)
class TreeLimits:
    """How large a release may be once its blobs are inflated."""

    max_release_bytes: int
    max_file_bytes: int


def shown(path: bytes) -> str:
    """``path`` as printable text: undecodable bytes and control characters escaped."""
    text = path.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def stored(store: Any, sha: bytes) -> Any:
    """The object ``sha`` of ``store``, or ``None`` when the push did not bring it."""
    try:
        return store[sha]
    except KeyError:
        return None


def check_tree(store: Any, tree_id: bytes, limits: TreeLimits) -> int:
    """Check every path and file size of a tree; returns the inflated total in bytes.

    Raises:
        ManifestError: one problem per bad entry, and one for the total.
    """
    problems: list[str] = []
    total = 0
    for path, sha in _files(store, tree_id, problems):
        try:
            size = object_size(store, sha)
        except KeyError:
            problems.append(f"'{shown(path)}': its blob {sha.decode()} is missing from the push")
            continue
        if size > limits.max_file_bytes:
            problems.append(
                f"'{shown(path)}' is {_mb(size)} MB uncompressed, over the "
                f"{limits.max_file_bytes // MIB} MB limit for one file (EDGE_MAX_FILE_MB): "
                "keep large files out of the repository"
            )
        total += size
    if total > limits.max_release_bytes:
        problems.append(
            f"the files add up to {_mb(total)} MB uncompressed, over the "
            f"{limits.max_release_bytes // MIB} MB limit for a release (EDGE_MAX_RELEASE_MB): "
            "remove large or generated files from the repository"
        )
    if problems:
        extra = len(problems) - MAX_LISTED
        raise ManifestError(
            problems[:MAX_LISTED] + ([f"... and {extra} more"] if extra > 0 else [])
        )
    return total


def _files(store: Any, tree_id: bytes, problems: list[str]) -> list[tuple[bytes, bytes]]:
    """(path, blob id) of every regular file; bad entries go to ``problems``."""
    found: list[tuple[bytes, bytes]] = []
    folders = [(b"", tree_id)]
    while folders:
        prefix, sha = folders.pop()
        tree = stored(store, sha)
        if not isinstance(tree, Tree):
            problems.append(f"folder '{shown(prefix) or '.'}' is missing from the push")
            continue
        for entry in tree.iteritems():
            path = prefix + entry.path
            problem = _name_problem(entry.path, path)
            if problem:
                problems.append(f"tree entry '{shown(path)}': {problem}")
            elif stat.S_ISDIR(entry.mode):
                folders.append((path + b"/", entry.sha))
            elif stat.S_ISREG(entry.mode):
                found.append((path, entry.sha))
    return sorted(found)


def _name_problem(name: bytes, path: bytes) -> str | None:
    """Why one tree entry name cannot become a file of a release, if it cannot."""
    if name in (b"", b".", b".."):
        return "a file or folder cannot be named '.', '..' or nothing; rename it"
    if b"/" in name or b"\0" in name:
        return "a name cannot contain '/' or NUL (a crafted tree); recreate the commit with git"
    if name.lower() == b".git":
        return "a folder named .git cannot be part of a release; remove it"
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return "the name is not valid UTF-8; rename it (e.g. `git mv`) using UTF-8"
    if len(name) > MAX_NAME_BYTES or len(path) > MAX_PATH_BYTES:
        return f"names are limited to {MAX_NAME_BYTES} bytes and paths to {MAX_PATH_BYTES}"
    return None


def _mb(size: int) -> str:
    return f"{size / MIB:.1f}"
