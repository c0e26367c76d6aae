"""edge.toml v1: the schema, its validation, and the frozen result.

INTERFACE (implemented by the manifest work; others code against it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from edge.routes import RoutePattern

MANIFEST_FILE = "edge.toml"
Runtime = Literal["python", "js"]


@dataclass(frozen=True)
class FunctionSpec:
    """One function, with defaults applied and env merged.

    Attributes:
        name: DNS label, the key under ``[functions]``.
        entry: as written, e.g. ``"functions/users.py:handle"``.
        path: the entry file, a normalised relative POSIX path.
        handler: the Python callable's name (``"handle"`` by default); ``""`` for JS.
        runtime: ``"python"`` or ``"js"``.
        routes: parsed route patterns, in manifest order.
        memory_mb, timeout_ms, regions, min_warm, max_instances: limits and policy.
        env: ``[env]`` merged with ``functions.X.env``, as sorted (name, value) pairs.
    """

    name: str
    entry: str
    path: str
    handler: str
    runtime: Runtime
    routes: tuple[RoutePattern, ...]
    memory_mb: int
    timeout_ms: int
    regions: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    min_warm: int
    max_instances: int

    def env_dict(self) -> dict[str, str]:
        return dict(self.env)


@dataclass(frozen=True)
class Manifest:
    """A validated edge.toml."""

    app: str | None
    functions: tuple[FunctionSpec, ...]

    def function(self, name: str) -> FunctionSpec:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form that :meth:`from_json` turns back into an equal Manifest."""
        raise NotImplementedError

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        raise NotImplementedError


class Source(Protocol):
    """Files of one commit or folder, read by relative POSIX path."""

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or ``None`` if there is no regular file there."""

    def kind(self, path: str) -> Literal["file", "dir", "symlink"] | None:
        """What is at ``path`` (``None`` if nothing)."""


class DirSource:
    """A working folder (``edge dev``, tests)."""

    def __init__(self, root: Path) -> None:
        self.root = root


class GitTreeSource:
    """A tree in a dulwich object store (the ``update`` hook)."""

    def __init__(self, object_store: Any, tree_id: bytes) -> None:
        self.object_store = object_store
        self.tree_id = tree_id


def parse_manifest(text: str, *, max_memory_mb: int = 512, filename: str = MANIFEST_FILE
                   ) -> Manifest:
    """Validate edge.toml text alone (no file checks); raises ``ManifestError``."""
    raise NotImplementedError


def load_manifest(source: Source, *, max_memory_mb: int = 512) -> Manifest:
    """Read and validate edge.toml and check every entry file exists inside the
    source as a regular file (no symlinks); raises ``ManifestError``."""
    raise NotImplementedError
