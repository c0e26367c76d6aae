"""edge.toml v1: the schema, its validation, and the frozen result.

The file readers (``DirSource``, ``GitTreeSource``) live in :mod:`edge.sources`.

:func:`parse_manifest` checks the text alone; :func:`load_manifest` reads it
from a :class:`Source` (a folder or a git tree) and also checks that every
entry file is a regular file inside it. Both collect every problem and raise
one :class:`~edge.errors.ManifestError` whose lines read like::

    edge.toml: functions.users.timeout_ms: 60000 > 30000 (the maximum; lower it)

Choices others rely on:

* ``app`` is ``None`` when absent (the platform then uses the repo name).
* The built-in ``memory_mb`` default (128) is lowered to the operator's cap
  when the cap is smaller; a value written in edge.toml above the cap is an error.
* ``regions`` keep the order written; ``env`` is sorted by name.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

from edge.entries import Runtime, entry_file_problem, parse_entry
from edge.errors import ManifestError
from edge.routes import RouteError, RoutePattern, parse_route
from edge.snapshot import LABEL_RULE, is_label
from edge.sources import Source
from edge.tomlquote import child_path, show

MANIFEST_FILE = "edge.toml"
MAX_MANIFEST_BYTES = 1 << 20

MIN_MEMORY_MB = 16
MAX_TIMEOUT_MS = 30_000
MAX_INSTANCES_CAP = 64
BUILTIN_DEFAULTS: MappingProxyType[str, Any] = MappingProxyType(
    {
        "memory_mb": 128,
        "timeout_ms": 10_000,
        "regions": ("us-east",),
        "min_warm": 0,
        "max_instances": 8,
    }
)

_POLICY_KEYS = ("memory_mb", "timeout_ms", "regions", "min_warm", "max_instances")
_TOP_KEYS = ("app", "env", "defaults", "functions")
_FUNCTION_KEYS = (
    "entry",
    "routes",
    "memory_mb",
    "timeout_ms",
    "regions",
    "env",
    "min_warm",
    "max_instances",
    "kind",
)
KINDS = ("handler", "wsgi", "asgi")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
        kind: a Python entry's kind when declared (``"handler"``, ``"wsgi"`` or
            ``"asgi"``); ``""``: detected when the function loads.
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
    kind: str = ""

    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form; routes are kept as their text, env as an object."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return data | {
            "routes": [r.text for r in self.routes],
            "regions": list(self.regions),
            "env": dict(self.env),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FunctionSpec:
        """The inverse of :meth:`to_json` (trusts its input: it comes from the store)."""
        return cls(
            **data
            | {
                "routes": tuple(parse_route(text) for text in data["routes"]),
                "regions": tuple(data["regions"]),
                "env": tuple(sorted(data["env"].items())),
            }
        )


@dataclass(frozen=True)
class Manifest:
    """A validated edge.toml."""

    app: str | None
    functions: tuple[FunctionSpec, ...]

    def function(self, name: str) -> FunctionSpec:
        """The function called ``name``; raises ``KeyError`` if there is none."""
        for spec in self.functions:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form that :meth:`from_json` turns back into an equal Manifest."""
        return {
            "version": 1,
            "app": self.app,
            "functions": [spec.to_json() for spec in self.functions],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        """The inverse of :meth:`to_json`; raises ``ValueError`` for another version."""
        if data.get("version") != 1:
            raise ValueError(f"unsupported manifest JSON version {data.get('version')!r}")
        return cls(data["app"], tuple(FunctionSpec.from_json(f) for f in data["functions"]))


def app_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an app name, or ``None`` if it can."""
    if not is_label(name):
        return f"{show(name)} is not a valid app name ({LABEL_RULE})"
    if "--" in name:
        return f"{show(name)} must not contain '--' (preview hosts are <branch>--<app>)"
    return None


def parse_manifest(
    text: str, *, max_memory_mb: int = 512, filename: str = MANIFEST_FILE
) -> Manifest:
    """Validate edge.toml text alone (no file checks).

    Args:
        text: the document.
        max_memory_mb: the operator's cap on ``memory_mb``.
        filename: how problem lines name the file.

    Raises:
        ManifestError: with one line per problem found.
    """
    check = _Check(filename, max_memory_mb)
    manifest = check.run(text)
    if manifest is None:
        raise ManifestError(check.problems)
    return manifest


def load_manifest(source: Source, *, max_memory_mb: int = 512) -> Manifest:
    """Read and validate edge.toml and check every entry file exists inside the
    source as a regular file (no symlinks).

    Args:
        source: the commit's tree or a folder.
        max_memory_mb: the operator's cap on ``memory_mb``.

    Raises:
        ManifestError: with one line per problem, file checks included.
    """
    check = _Check(MANIFEST_FILE, max_memory_mb)
    manifest = check.run(_read_manifest(source))
    for key_path, path in check.entry_paths:
        problem = entry_file_problem(source, path)
        if problem:
            check.add(key_path, problem)
    if manifest is None or check.problems:
        raise ManifestError(check.problems)
    return manifest


def _read_manifest(source: Source) -> str:
    kind = source.kind(MANIFEST_FILE)
    if kind in ("symlink", "dir"):
        raise ManifestError(f"{MANIFEST_FILE}: is a {kind}; commit a regular file at the repo root")
    data = source.read(MANIFEST_FILE) if kind == "file" else None
    if data is None:
        raise ManifestError(f"{MANIFEST_FILE}: not found; add an {MANIFEST_FILE} at the repo root")
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(
            f"{MANIFEST_FILE}: {len(data)} bytes > {MAX_MANIFEST_BYTES} (the maximum; shrink it)"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{MANIFEST_FILE}: not valid UTF-8 (byte {exc.start})") from None


class _Check:
    """One validation run: walks the document and collects problem lines."""

    def __init__(self, filename: str, max_memory_mb: int) -> None:
        self.filename = filename
        self.max_memory_mb = max_memory_mb
        self.problems: list[str] = []
        self.entry_paths: list[tuple[str, str]] = []
        self.route_shapes: dict[tuple[str | None, tuple[str, ...]], tuple[str, str]] = {}

    def add(self, key_path: str, message: str) -> None:
        self.problems.append(f"{self.filename}: {key_path}: {message}")

    def run(self, text: str) -> Manifest | None:
        try:
            doc = tomllib.loads(text)
        except RecursionError:
            self.problems.append(f"{self.filename}: invalid TOML: nested too deeply")
            return None
        except ValueError as exc:  # TOMLDecodeError, or an integer with too many digits
            reason = str(exc).splitlines()[0] if str(exc) else "unreadable"
            self.problems.append(f"{self.filename}: invalid TOML: {reason[:120]}")
            return None
        manifest = self.document(doc)
        return None if self.problems else manifest

    def document(self, doc: dict[str, Any]) -> Manifest | None:
        self.unknown_keys(doc, _TOP_KEYS, "")
        app = self.app(doc["app"]) if "app" in doc else None
        env = self.env(doc.get("env", {}), "env")
        defaults = self.defaults(doc.get("defaults", {}))
        specs = self.functions(doc.get("functions"), env, defaults)
        if self.problems:
            return None
        return Manifest(app, tuple(FunctionSpec(**spec) for spec in specs))

    def unknown_keys(self, table: dict[str, Any], allowed: tuple[str, ...], path: str) -> None:
        for key in table:
            if key in allowed:
                continue
            close = difflib.get_close_matches(key[:64].lower(), allowed, n=1)
            hint = f"did you mean {close[0]}?" if close else f"allowed: {', '.join(allowed)}"
            self.add(child_path(path, key), f"unknown key ({hint})")

    def table(self, value: object, path: str, example: str) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.add(path, f"{show(value)} must be a table, e.g. {example}")
        return None

    def app(self, value: object) -> str | None:
        if not isinstance(value, str):
            self.add("app", f"{show(value)} must be a string")
            return None
        problem = app_name_problem(value)
        if problem:
            self.add("app", problem)
        return value

    def env(self, value: object, path: str) -> dict[str, str]:
        table = self.table(value, path, '{ NAME = "value" }')
        if table is None:
            return {}
        for name, item in table.items():
            key_path = child_path(path, name)
            if not _ENV_NAME.fullmatch(name):
                self.add(
                    key_path,
                    "invalid variable name (use letters, digits and '_', "
                    "not starting with a digit)",
                )
            if not isinstance(item, str):
                self.add(key_path, f"{show(item)} must be a string (quote it)")
            elif "\0" in item:
                self.add(key_path, "must not contain a NUL character")
        return {k: v for k, v in table.items() if isinstance(v, str)}

    def defaults(self, value: object) -> dict[str, Any]:
        merged = dict(BUILTIN_DEFAULTS)
        merged["memory_mb"] = min(merged["memory_mb"], self.max_memory_mb)
        table = self.table(value, "defaults", "[defaults] with memory_mb = 128")
        if table is None:
            return merged
        self.unknown_keys(table, _POLICY_KEYS, "defaults")
        merged.update(self.policy(table, "defaults"))
        self.warm_within_max(merged, "defaults")
        return merged

    def policy(self, table: dict[str, Any], path: str) -> dict[str, Any]:
        """The policy keys present in ``table``; invalid ones map to ``None``."""
        checks = {
            "memory_mb": lambda p, v: self.integer(
                p, v, MIN_MEMORY_MB, self.max_memory_mb, "the operator's cap"
            ),
            "timeout_ms": lambda p, v: self.integer(p, v, 1, MAX_TIMEOUT_MS),
            "regions": self.regions,
            "min_warm": lambda p, v: self.integer(p, v, 0, MAX_INSTANCES_CAP),
            "max_instances": lambda p, v: self.integer(p, v, 1, MAX_INSTANCES_CAP),
        }
        return {
            key: check(child_path(path, key), table[key])
            for key, check in checks.items()
            if key in table
        }

    def integer(
        self, path: str, value: object, low: int, high: int, high_name: str = "the maximum"
    ) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            digits = isinstance(value, str) and value.strip().isascii() and value.strip().isdigit()
            hint = f" (write {str(value).strip()} without quotes)" if digits else ""
            self.add(path, f"{show(value)} must be an integer{hint}")
            return None
        if value < low:
            self.add(path, f"{value} < {low} (the minimum; raise it)")
            return None
        if value > high:
            self.add(path, f"{value} > {high} ({high_name}; lower it)")
            return None
        return value

    def regions(self, path: str, value: object) -> tuple[str, ...] | None:
        if not isinstance(value, list) or not value:
            self.add(
                path, f'{show(value)} must be a non-empty list of region names, e.g. ["us-east"]'
            )
            return None
        ok = True
        for i, region in enumerate(value):
            if not isinstance(region, str) or not is_label(region):
                self.add(child_path(path, i), f"{show(region)} is not a region name ({LABEL_RULE})")
                ok = False
            elif value.index(region) < i:
                self.add(
                    child_path(path, i), f"{show(region)} repeats {path}[{value.index(region)}]"
                )
                ok = False
        return tuple(value) if ok else None

    def warm_within_max(self, policy: dict[str, Any], path: str) -> None:
        warm, most = policy["min_warm"], policy["max_instances"]
        if isinstance(warm, int) and isinstance(most, int) and warm > most:
            self.add(
                path,
                f"min_warm {warm} > max_instances {most} (lower min_warm or raise max_instances)",
            )

    def functions(
        self, value: object, env: dict[str, str], defaults: dict[str, Any]
    ) -> list[dict[str, Any]]:
        if value is None:
            self.add("functions", "missing; add a [functions.<name>] table with entry and routes")
            return []
        table = self.table(value, "functions", "[functions.hello]")
        if table is None:
            return []
        if not table:
            self.add("functions", "empty; add a [functions.<name>] table with entry and routes")
        specs = [self.function(name, body, env, defaults) for name, body in table.items()]
        return [spec for spec in specs if spec is not None]

    def function(
        self, name: str, value: object, env: dict[str, str], defaults: dict[str, Any]
    ) -> dict[str, Any] | None:
        path = child_path("functions", name)
        if not is_label(name):
            self.add(path, f"invalid function name ({LABEL_RULE})")
        table = self.table(value, path, f"[{path}] with entry and routes")
        if table is None:
            return None
        self.unknown_keys(table, _FUNCTION_KEYS, path)
        spec: dict[str, Any] = {"name": name, **self.entry(table, path)}
        spec["routes"] = self.routes(table, path)
        policy = self.policy(table, path)
        if "min_warm" in policy or "max_instances" in policy:
            self.warm_within_max({**defaults, **policy}, path)
        spec.update({**defaults, **policy})
        merged_env = {**env, **self.env(table.get("env", {}), child_path(path, "env"))}
        spec["env"] = tuple(sorted(merged_env.items()))
        if "kind" in table:
            spec["kind"] = self.kind(table["kind"], child_path(path, "kind"), spec.get("runtime"))
        return spec

    def kind(self, value: object, path: str, runtime: str | None) -> str:
        if runtime == "js":
            self.add(path, "only Python entries take a kind (a JS entry is a module)")
            return ""
        if value not in KINDS:
            close = difflib.get_close_matches(str(value)[:16].lower(), KINDS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "use one of them"
            self.add(
                path,
                f"{show(value)} is not a kind (handler: a function of the request; "
                f"wsgi: a WSGI app such as Flask; asgi: an ASGI app such as FastAPI); {hint}",
            )
            return ""
        return str(value)

    def entry(self, table: dict[str, Any], path: str) -> dict[str, Any]:
        key_path = child_path(path, "entry")
        value = table.get("entry")
        if value is None:
            self.add(key_path, 'missing, e.g. entry = "functions/hello.py"')
            return {}
        if not isinstance(value, str):
            self.add(key_path, f"{show(value)} must be a string")
            return {}
        try:
            file_path, handler, runtime = parse_entry(value)
        except ValueError as exc:
            self.add(key_path, f"{show(value)} {exc}")
            return {}
        self.entry_paths.append((key_path, file_path))
        return {"entry": value, "path": file_path, "handler": handler, "runtime": runtime}

    def routes(self, table: dict[str, Any], path: str) -> tuple[RoutePattern, ...]:
        key_path = child_path(path, "routes")
        value = table.get("routes")
        if not isinstance(value, list) or not value:
            shown = "missing" if value is None else f"{show(value)} is not a non-empty list"
            self.add(key_path, f'{shown}; add at least one route, e.g. routes = ["/hello"]')
            return ()
        routes = []
        for i, text in enumerate(value):
            if not isinstance(text, str):
                self.add(child_path(key_path, i), f"{show(text)} must be a string")
                continue
            try:
                route = parse_route(text)
            except RouteError as exc:
                self.add(child_path(key_path, i), str(exc))
                continue
            self.unique(route, child_path(key_path, i))
            routes.append(route)
        return tuple(routes)

    def unique(self, route: RoutePattern, key_path: str) -> None:
        """Equal patterns anywhere in the manifest are an error naming both places."""
        first_path, first_text = self.route_shapes.setdefault(route.shape(), (key_path, route.text))
        if first_path != key_path:
            self.add(
                key_path,
                f"{show(route.text)} is the same route as {show(first_text)} ({first_path})",
            )
