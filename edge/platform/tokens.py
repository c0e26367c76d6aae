"""API tokens in the store: created once, kept only as a hash, scoped to apps or admin."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edge.errors import EdgeError, NotFoundError
from edge.platform.models import Token, TokenApp, TokenInfo, as_utc, utcnow
from edge.snapshot import check_label

TOKEN_PREFIX = "edge_"  # noqa: S105 (a prefix, not a secret)
# Recording every authentication would turn each API call into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(token: str) -> str:
    """The sha256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenMethods:
    """The token part of :class:`edge.platform.store.Store` (which supplies the sessions)."""

    def _read(self, *, snapshot: bool = False) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def create_token(self, name: str, *, admin: bool = False, apps: Iterable[str] = ()) -> str:
        """Create an API token and return its secret, which is never stored.

        Args:
            name: who or what the token is for (shown as ``created_by``).
            admin: may act on every app and create tokens.
            apps: the apps a non-admin token may act on (they need not exist yet).

        Returns:
            The plaintext token, ``edge_`` + 43 url-safe characters.

        Raises:
            EdgeError: the name is empty or an app name is not a DNS label.
        """
        scope = sorted(set(apps))
        for app in scope:
            check_label("app", app)
        if not name.strip():
            raise EdgeError("token name: must not be empty")
        # APPSEC: only the hash is stored; the secret is shown once, here.
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._write() as session:
            token = Token(
                name=name,
                token_hash=hash_token(secret),
                admin=admin,
                created_at=utcnow(),
                last_used_at=None,
            )
            session.add(token)
            session.flush()
            session.add_all(TokenApp(token_id=token.id, app=app) for app in scope)
        return secret

    def authenticate(self, token: str) -> TokenInfo | None:
        """The token's identity and scope, or ``None`` if it is unknown or revoked."""
        return self.authenticate_hash(hash_token(token))

    def authenticate_hash(self, token_hash: str) -> TokenInfo | None:
        """As :meth:`authenticate`, by the token's sha256 (a dashboard session keeps only that)."""
        with self._read() as session:
            row = session.scalar(sa.select(Token).where(Token.token_hash == token_hash))
            if row is None:
                return None
            apps = session.scalars(sa.select(TokenApp.app).where(TokenApp.token_id == row.id))
            info = TokenInfo(id=row.id, name=row.name, admin=row.admin, apps=frozenset(apps))
            last_used = None if row.last_used_at is None else as_utc(row.last_used_at)
        now = utcnow()
        if last_used is None or now - last_used > LAST_USED_RESOLUTION:
            with self._write() as session:
                session.execute(
                    sa.update(Token).where(Token.id == info.id).values(last_used_at=now)
                )
        return info

    def list_tokens(self) -> list[TokenInfo]:
        """Every token's identity and scope (never the secret, which is not stored)."""
        with self._read() as session:
            scopes: dict[int, set[str]] = {}
            for token_id, app in session.execute(sa.select(TokenApp.token_id, TokenApp.app)):
                scopes.setdefault(token_id, set()).add(app)
            rows = session.scalars(sa.select(Token).order_by(Token.id))
            return [
                TokenInfo(
                    id=row.id,
                    name=row.name,
                    admin=row.admin,
                    apps=frozenset(scopes.get(row.id, ())),
                )
                for row in rows
            ]

    def revoke_token(self, token_id: int) -> None:
        """Delete a token: it stops authenticating at once.

        Raises:
            NotFoundError: no token has that id.
        """
        with self._write() as session:
            token = session.get(Token, token_id)
            if token is None:
                raise NotFoundError(f"token #{token_id} not found")
            session.execute(sa.delete(TokenApp).where(TokenApp.token_id == token_id))
            session.delete(token)
