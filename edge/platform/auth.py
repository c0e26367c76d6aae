"""API tokens on the wire: HTTP Basic (git; token as password) or Bearer (API, CLI)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from typing import Any

from edge.platform.store import TokenInfo


def token_from_header(header: str | None) -> str | None:
    """The token in an ``Authorization`` header (Basic password or Bearer)."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip() or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, password = decoded.partition(":")
        return password or user or None
    return None


def authenticate_environ(
    environ: dict[str, Any], authenticate: Callable[[str], TokenInfo | None]
) -> TokenInfo | None:
    token = token_from_header(environ.get("HTTP_AUTHORIZATION"))
    return authenticate(token) if token else None


def challenge(start_response: Callable[..., Any]) -> Iterable[bytes]:
    """401 with the header that makes git ask for credentials."""
    body = b"authentication required: use an Edge API token as the password\n"
    start_response(
        "401 Unauthorized",
        [
            ("WWW-Authenticate", 'Basic realm="edge"'),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]
