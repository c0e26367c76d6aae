"""Route patterns and the router that matches requests against them.

INTERFACE (implemented by the manifest/routes work; others code against it):

Pattern syntax, optionally prefixed by an HTTP method and a space::

    /exact            static path
    /users/:id        one named segment  -> params {"id": "42"}
    /api/*            wildcard tail, last segment only -> params {"*": "a/b"}
    GET /x            only GET (HEAD also matches a GET route)

Precedence (one rule): compare segment by segment from the left; at the first
difference static beats param beats wildcard; if one pattern is a prefix of the
other in that sense, the longer one wins; at equal paths a method-specific
pattern beats an any-method one. Two equal patterns in one app are an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class RouteError(ValueError):
    """A pattern is malformed or two patterns are equal; the message says which rule."""


@dataclass(frozen=True)
class RoutePattern:
    """One parsed pattern.

    Attributes:
        text: the pattern as written, e.g. ``"GET /api/users/:id"``.
        method: upper-case method, or ``None`` for any method.
        segments: path segments, e.g. ``("api", "users", ":id")``; a final
            ``"*"`` is the wildcard tail; ``()`` is ``/``.
    """

    text: str
    method: str | None
    segments: tuple[str, ...]


def parse_route(text: str) -> RoutePattern:
    """Parse one pattern; raises :class:`RouteError` naming the rule broken."""
    raise NotImplementedError


class Router(Generic[T]):
    """Matches (method, path) against patterns by the precedence rule above.

    Built once per route-table snapshot and immutable afterwards.
    """

    def __init__(self, entries: Iterable[tuple[RoutePattern, T]]) -> None:
        raise NotImplementedError

    def match(self, method: str, path: str) -> tuple[T, dict[str, str]] | None:
        """The target and params of the most specific pattern, or ``None``."""
        raise NotImplementedError
