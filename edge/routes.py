"""Route patterns and the router that matches requests against them.

Pattern syntax, optionally prefixed by an HTTP method and a space::

    /exact            static path
    /users/:id        one named segment  -> params {"id": "42"}
    /api/*            wildcard tail, last segment only -> params {"*": "a/b"}
    GET /x            only GET (HEAD also matches a GET route)

Precedence (one rule): compare segment by segment from the left; at the first
difference static beats param beats wildcard; if one pattern is a prefix of the
other in that sense, the longer one wins; at equal paths a method-specific
pattern beats an any-method one. Two equal patterns in one app are an error.

Choices made where the rule above is silent:

* A wildcard tail may be empty: ``/api/*`` matches ``/api/x``, ``/api/x/y``
  and ``/api`` itself (with ``{"*": ""}``). An empty tail consumes nothing, so
  for the path ``/api`` the exact pattern ``/api`` beats ``/api/*`` (otherwise
  ``/api`` could never be reached next to ``/api/*``).
* A param matches exactly one non-empty segment.
* Trailing slash: the pattern ``/a/`` is stored as ``/a``, and the request
  path ``/a/`` matches ``/a``.
* A pattern whose method does not allow the request's method does not match,
  so a less specific pattern may still serve the request. For ``HEAD`` a
  ``HEAD`` route beats a ``GET`` route, which beats an any-method route.
* Static segments may hold letters, digits, ``-._~`` and ``%XX`` escapes.
  They are stored canonically (escapes of unreserved characters decoded, other
  escapes in upper case), and request paths are canonicalised the same way
  before matching, so ``/%7Eme`` and ``/~me`` are the same route.
* :meth:`Router.match` takes the raw (still percent-encoded) request path, as
  in the request line or ASGI's ``raw_path``, without the query string. Param
  and wildcard values are percent-decoded.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import unquote

T = TypeVar("T")

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
MAX_PATTERN_LENGTH = 1024

_PARAM = ":"
_WILDCARD = "*"
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_HEX = frozenset(string.hexdigits)
_SPACES = re.compile(r"[ \t]+")
# Any character that makes a request path differ from its canonical form.
_NEEDS_CANONICAL = re.compile(r"[^A-Za-z0-9\-._~/]").search
_CHAR_HINTS = {
    ":": "a param is a whole segment, like ':id'",
    "*": "a wildcard is a whole last segment: '/*'",
    "?": "routes match paths only, not query strings",
    "#": "routes match paths only, not fragments",
    "%": "'%' must start an escape like %2F",
}


class RouteError(ValueError):
    """A pattern is malformed or two patterns are equal; the message says which rule."""


@dataclass(frozen=True)
class RoutePattern:
    """One parsed pattern.

    Attributes:
        text: the pattern as written, e.g. ``"GET /api/users/:id"``.
        method: upper-case method, or ``None`` for any method.
        segments: path segments, e.g. ``("api", "users", ":id")``; a final
            ``"*"`` is the wildcard tail; ``()`` is ``/``. Static segments are
            in canonical form (see the module docstring).
    """

    text: str
    method: str | None
    segments: tuple[str, ...]

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the ``:name`` segments, left to right (without the ``*``)."""
        return tuple(s[1:] for s in self.segments if s.startswith(_PARAM))

    @property
    def is_static(self) -> bool:
        """True if the pattern has no param and no wildcard."""
        return all(not _is_dynamic(s) for s in self.segments)

    def shape(self) -> tuple[str | None, tuple[str, ...]]:
        """A key equal for two patterns exactly when they conflict.

        Param names do not count: ``/u/:id`` and ``/u/:name`` have one shape.
        """
        return self.method, tuple(_PARAM if s.startswith(_PARAM) else s for s in self.segments)


def parse_route(text: str) -> RoutePattern:
    """Parse one pattern.

    Args:
        text: e.g. ``"/api/users/:id"`` or ``"GET /api/*"``.

    Returns:
        The parsed pattern.

    Raises:
        RouteError: the pattern is malformed; the message quotes it and names
            the rule broken.
    """
    if len(text) > MAX_PATTERN_LENGTH:
        raise RouteError(f"{_show(text)}: longer than {MAX_PATTERN_LENGTH} characters")
    method, path = _split_method(text)
    return RoutePattern(text, method, _split_path(text, path))


def _split_method(text: str) -> tuple[str | None, str]:
    parts = _SPACES.split(text.strip(" \t")) if text.strip(" \t") else []
    if not parts:
        raise RouteError("empty route: write a path such as '/api/users'")
    if len(parts) > 2:
        raise RouteError(f"{_show(text)}: too many spaces (write 'METHOD /path')")
    method = None
    if len(parts) == 2 and parts[0].startswith("/"):
        raise RouteError(f"{_show(text)}: a path cannot contain spaces (use %20)")
    if len(parts) == 2:
        method = parts[0].upper()
        if not method.isascii() or method not in METHODS:
            raise RouteError(
                f"{_show(text)}: unknown method {_show(parts[0])} (use one of {', '.join(METHODS)})"
            )
    path = parts[-1]
    if not path.startswith("/"):
        raise RouteError(f"{_show(text)}: the path must start with '/'")
    return method, path


def _split_path(text: str, path: str) -> tuple[str, ...]:
    if path != "/" and path.endswith("/"):
        path = path[:-1]
    if path == "/":
        return ()
    raw = path[1:].split("/")
    segments = tuple(_segment(text, seg, last=i == len(raw) - 1) for i, seg in enumerate(raw))
    names = [s for s in segments if s.startswith(_PARAM)]
    for name in names:
        if names.count(name) > 1:
            raise RouteError(f"{_show(text)}: param {name!r} is used twice")
    return segments


def _segment(text: str, seg: str, *, last: bool) -> str:
    if not seg:
        raise RouteError(f"{_show(text)}: empty segment ('//')")
    if seg == _WILDCARD:
        if not last:
            raise RouteError(f"{_show(text)}: '*' must be the last segment")
        return seg
    if seg.startswith(_PARAM):
        if not _PARAM_NAME.fullmatch(seg[1:]):
            raise RouteError(
                f"{_show(text)}: param name {_show(seg[1:])} must be an "
                "identifier (letters, digits, '_'; not starting with a digit)"
            )
        return seg
    canonical = _canonical_segment(text, seg)
    if canonical in (".", ".."):
        raise RouteError(f"{_show(text)}: '.' and '..' segments are not allowed")
    return canonical


def _canonical_segment(text: str, seg: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(seg):
        char = seg[i]
        if char == "%" and len(seg) >= i + 3 and seg[i + 1] in _HEX and seg[i + 2] in _HEX:
            out.append(_canonical_escape(int(seg[i + 1 : i + 3], 16)))
            i += 3
            continue
        if char not in _UNRESERVED:
            hint = _CHAR_HINTS.get(char, "use letters, digits, -._~ or %XX escapes")
            raise RouteError(f"{_show(text)}: {char!r} is not allowed in a segment ({hint})")
        out.append(char)
        i += 1
    return "".join(out)


def _canonical_escape(byte: int) -> str:
    char = chr(byte)
    return char if char in _UNRESERVED else f"%{byte:02X}"


def _canonical_request_path(path: str) -> str:
    """RFC 3986 normalisation: unreserved escapes decoded, everything else escaped."""
    data = path.encode("utf-8", "surrogatepass")
    out: list[str] = []
    i = 0
    while i < len(data):
        byte = data[i]
        escape = data[i + 1 : i + 3]
        if byte == 0x25 and len(escape) == 2 and all(chr(b) in _HEX for b in escape):
            out.append(_canonical_escape(int(escape, 16)))
            i += 3
            continue
        char = chr(byte)
        out.append(char if char == "/" or char in _UNRESERVED else f"%{byte:02X}")
        i += 1
    return "".join(out)


def _is_dynamic(segment: str) -> bool:
    return segment == _WILDCARD or segment.startswith(_PARAM)


def _show(text: str) -> str:
    """Short, single-line and terminal-safe (JSON escapes control characters)."""
    return json.dumps(text if len(text) <= 60 else text[:57] + "...")


@dataclass(frozen=True)
class _Entry(Generic[T]):
    target: T
    pattern: RoutePattern
    names: tuple[str, ...]


class _Endpoints(Generic[T]):
    """The targets of all patterns ending at one trie node, by method."""

    __slots__ = ("any", "by_method")

    def __init__(self) -> None:
        self.by_method: dict[str, _Entry[T]] = {}
        self.any: _Entry[T] | None = None

    def add(self, entry: _Entry[T]) -> None:
        if entry.pattern.method is None:
            self.any = entry
        else:
            self.by_method[entry.pattern.method] = entry

    def pick(self, method: str) -> _Entry[T] | None:
        entry = self.by_method.get(method)
        if entry is None and method == "HEAD":
            entry = self.by_method.get("GET")
        return self.any if entry is None else entry


class _Node(Generic[T]):
    """One level of the segment trie."""

    __slots__ = ("end", "param", "static", "wildcard")

    def __init__(self) -> None:
        self.static: dict[str, _Node[T]] = {}
        self.param: _Node[T] | None = None
        self.wildcard: _Endpoints[T] | None = None
        self.end: _Endpoints[T] | None = None

    def insert(self, entry: _Entry[T]) -> None:
        node = self
        for segment in entry.pattern.segments:
            if segment == _WILDCARD:
                node.wildcard = node.wildcard or _Endpoints()
                node.wildcard.add(entry)
                return
            if segment.startswith(_PARAM):
                node.param = node.param or _Node()
                node = node.param
            else:
                node = node.static.setdefault(segment, _Node())
        node.end = node.end or _Endpoints()
        node.end.add(entry)

    def find(
        self, segs: list[str], i: int, method: str, values: list[str]
    ) -> tuple[_Entry[T], str | None] | None:
        """Depth-first, static before param before wildcard: the first hit is the best."""
        if i == len(segs):
            entry = self.end.pick(method) if self.end else None
            if entry is not None:
                return entry, None
        else:
            found = self._find_below(segs, i, method, values)
            if found is not None:
                return found
        entry = self.wildcard.pick(method) if self.wildcard else None
        return None if entry is None else (entry, "/".join(segs[i:]))

    def _find_below(
        self, segs: list[str], i: int, method: str, values: list[str]
    ) -> tuple[_Entry[T], str | None] | None:
        child = self.static.get(segs[i])
        if child is not None:
            found = child.find(segs, i + 1, method, values)
            if found is not None:
                return found
        if self.param is not None and segs[i]:
            values.append(segs[i])
            found = self.param.find(segs, i + 1, method, values)
            if found is not None:
                return found
            values.pop()
        return None


class Router(Generic[T]):
    """Matches (method, path) against patterns by the precedence rule above.

    Purely static patterns live in one dict keyed by path; the others in a
    segment trie searched depth-first. Built once per route-table snapshot and
    immutable afterwards.
    """

    def __init__(self, entries: Iterable[tuple[RoutePattern, T]]) -> None:
        """Index the patterns.

        Args:
            entries: (pattern, target) pairs; the target is what :meth:`match` returns.

        Raises:
            RouteError: two patterns are equal (same method and segment shapes);
                the message names both.
        """
        self._exact: dict[str, _Endpoints[T]] = {}
        self._trie: _Node[T] | None = None
        seen: dict[tuple[str | None, tuple[str, ...]], RoutePattern] = {}
        for pattern, target in entries:
            other = seen.setdefault(pattern.shape(), pattern)
            if other is not pattern:
                raise RouteError(
                    f"{_show(other.text)} and {_show(pattern.text)} "
                    "are the same route (param names do not count)"
                )
            self._add(_Entry(target, pattern, pattern.param_names))

    def _add(self, entry: _Entry[T]) -> None:
        if entry.pattern.is_static:
            path = "/" + "/".join(entry.pattern.segments)
            self._exact.setdefault(path, _Endpoints()).add(entry)
            return
        if self._trie is None:
            self._trie = _Node()
        self._trie.insert(entry)

    def match(self, method: str, path: str) -> tuple[T, dict[str, str]] | None:
        """The target and params of the most specific pattern, or ``None``.

        Args:
            method: the request method, upper case.
            path: the raw request path (percent-encoded, no query string).
        """
        normal = _normalise_request_path(path)
        if normal is None:
            return None
        endpoints = self._exact.get(normal)
        if endpoints is not None:
            entry = endpoints.pick(method)
            if entry is not None:
                return entry.target, {}
        if self._trie is None:
            return None
        values: list[str] = []
        segs = normal[1:].split("/") if normal != "/" else []
        found = self._trie.find(segs, 0, method, values)
        if found is None:
            return None
        entry, tail = found
        params = {name: unquote(value) for name, value in zip(entry.names, values, strict=True)}
        if tail is not None:
            params[_WILDCARD] = unquote(tail)
        return entry.target, params


def _normalise_request_path(path: str) -> str | None:
    if not path:
        return "/"
    if not path.startswith("/"):
        return None
    if _NEEDS_CANONICAL(path):
        path = _canonical_request_path(path)
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path
