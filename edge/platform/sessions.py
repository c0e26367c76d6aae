"""Dashboard sign-in sessions: an opaque cookie that maps, in Redis, to a token.

A browser never keeps the API token itself: signing in trades it for a random
session id, sent back as an ``HttpOnly``, ``SameSite=Strict`` cookie. Redis
holds, under the sha256 of that id, the sha256 of the token (never the token),
the session's CSRF secret and an expiry (:data:`SESSION_TTL`). Every request
re-reads the token by its hash from the store, so revoking the token ends all
of its sessions at once; logging out deletes the session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import redis

from edge.platform.models import TokenInfo

SESSION_COOKIE = "edge_session"
LOGIN_CSRF_COOKIE = "edge_login_csrf"
SESSION_TTL = 12 * 3600
KEY_PREFIX = "edge:session:"


@dataclass(frozen=True)
class Session:
    """A signed-in browser: whose token (by hash) and its CSRF secret."""

    id: str
    token_hash: str
    csrf: str

    def csrf_ok(self, submitted: str | None) -> bool:
        """Whether a form carried this session's CSRF token (constant-time compare)."""
        return bool(submitted) and hmac.compare_digest(self.csrf, submitted or "")


def _key(session_id: str) -> str:
    # APPSEC: the id is stored hashed, so reading Redis does not let one sign in.
    return KEY_PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """Dashboard sessions in Redis (created at sign-in, gone at logout or expiry)."""

    def __init__(self, client: redis.Redis, ttl: int = SESSION_TTL) -> None:
        self.client = client
        self.ttl = ttl

    def create(self, token_hash: str) -> Session:
        """A new session for the token whose sha256 is ``token_hash``."""
        session = Session(secrets.token_urlsafe(32), token_hash, secrets.token_urlsafe(32))
        self.client.hset(_key(session.id), mapping={"token": token_hash, "csrf": session.csrf})
        self.client.expire(_key(session.id), self.ttl)
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with that id, or ``None`` (unknown, expired, logged out)."""
        if not session_id or len(session_id) > 100:
            return None
        raw: dict[bytes, bytes] = self.client.hgetall(_key(session_id))  # type: ignore[assignment]
        if b"token" not in raw or b"csrf" not in raw:
            return None
        return Session(session_id, raw[b"token"].decode(), raw[b"csrf"].decode())

    def delete(self, session_id: str) -> None:
        """End a session (logout, or its token was revoked)."""
        self.client.delete(_key(session_id))

    def signed_in(
        self, session_id: str | None, authenticate_hash: Callable[[str], TokenInfo | None]
    ) -> tuple[Session, TokenInfo] | None:
        """The session and its token's identity, if both are still valid.

        A session whose token was revoked is deleted here, on first sight.
        """
        session = self.get(session_id)
        if session is None:
            return None
        identity = authenticate_hash(session.token_hash)
        if identity is None:
            self.delete(session.id)
            return None
        return session, identity
