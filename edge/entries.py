"""A function's entry in edge.toml (``path[:handler]``): the file, the handler,
the runtime, and whether the repo really holds that file.

APPSEC: an entry path stays inside the repo; the file and every folder above it
must be real (no symlinks).
"""

from __future__ import annotations

import keyword
from pathlib import PurePosixPath
from typing import Literal

from edge.sources import Source
from edge.tomlquote import show

Runtime = Literal["python", "js"]
RUNTIMES: dict[str, Runtime] = {".py": "python", ".js": "js", ".mjs": "js"}


def parse_entry(entry: str) -> tuple[str, str, Runtime]:
    """(normalised path, handler, runtime), or ``ValueError`` with the rule broken."""
    path, sep, handler = entry.rpartition(":") if ":" in entry else (entry, "", "")
    runtime = RUNTIMES.get(PurePosixPath(path).suffix)
    if runtime is None:
        raise ValueError("must end in .py, .js or .mjs (then optionally :name for Python)")
    if runtime == "js" and sep:
        raise ValueError("takes no :name (a JS entry must `export default { fetch }`)")
    if runtime == "python":
        handler = handler if sep else "handle"
        if not handler.isidentifier() or keyword.iskeyword(handler):
            raise ValueError(f"names handler {show(handler)}, not a Python identifier")
    return normalise_entry_path(path), handler, runtime


def normalise_entry_path(path: str) -> str:
    """APPSEC: entry paths stay inside the repo."""
    if path.startswith("/"):
        raise ValueError("must be relative to the repo root, not absolute")
    if "\\" in path:
        raise ValueError("must use '/' between folders, not '\\'")
    if any(ord(char) < 32 or ord(char) == 127 for char in path):
        raise ValueError("must not contain control characters")
    parts = path.split("/")
    if "" in parts:
        raise ValueError("has an empty path component ('//' or a trailing '/')")
    if ".." in parts:
        raise ValueError("must not contain '..' (entries stay inside the repo)")
    return "/".join(part for part in parts if part != ".")


def entry_file_problem(source: Source, path: str) -> str | None:
    """APPSEC: the entry and every folder above it are real, inside the repo."""
    parts = path.split("/")
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        kind = source.kind(prefix)
        if kind == "symlink":
            return f"{prefix} is a symlink (entry files must be regular files in the repo)"
        if kind is None:
            return f"{prefix} not found in the repo (commit it or fix the path)"
        if depth < len(parts) and kind != "dir":
            return f"{prefix} is not a folder"
    return None if kind == "file" else f"{path} is not a regular file"
