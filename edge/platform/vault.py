"""App secrets in the store: sealed values by app, environment and name.

The store never sees a plain value: the control plane seals a value with the
platform key before storing it (:class:`edge.keyring.Keyring`), the routing
snapshot carries the sealed values, and each runtime worker opens them
(:func:`edge.secretenv.unseal`) into the environment variables of that
environment's functions, where a secret wins over an ``[env]`` value of the same
name.

Secrets are not versioned with releases: every release of an environment,
including one brought back by a rollback, runs with the environment's current
secrets, so a rotated or removed credential never comes back by accident.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edge.errors import EdgeError
from edge.platform import rows as q
from edge.platform.models import Secret, as_utc, utcnow
from edge.snapshot import FunctionRecord, check_label

SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
MAX_SECRET_BYTES = 64 * 1024
SECRETS_CHANGED = "secrets changed"


def check_secret_name(name: str) -> None:
    """Raise :class:`EdgeError` unless ``name`` can be an environment variable's name."""
    if not SECRET_NAME.fullmatch(name):
        raise EdgeError(
            f"secret name {name!r}: use letters, digits and '_', not starting with a digit "
            "(at most 255 characters), e.g. DATABASE_URL"
        )


def check_secret_value(name: str, value: str) -> None:
    """Raise :class:`EdgeError` unless ``value`` can be an environment variable's value."""
    if not value:
        raise EdgeError(f"secret {name}: the value is empty; to remove it, unset it")
    if "\0" in value:
        raise EdgeError(f"secret {name}: the value must not contain a NUL character")
    if len(value.encode()) > MAX_SECRET_BYTES:
        raise EdgeError(f"secret {name}: the value is over {MAX_SECRET_BYTES // 1024} KiB")


@dataclass(frozen=True)
class SecretInfo:
    """A secret as listed: its name and when and by whom it last changed, never its value."""

    name: str
    environment: str
    updated_at: datetime
    updated_by: str


class SecretMethods:
    """The secret part of :class:`edge.platform.store.Store` (which supplies the sessions)."""

    def _read(self, *, snapshot: bool = False) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def put_secret(
        self, app: str, environment: str, name: str, sealed: str | None, *, by: str
    ) -> str | None:
        """Store a sealed value (``None`` removes the secret); bumps ``routes_version``.

        Returns:
            The sealed value it replaced, or ``None`` if there was none.

        Raises:
            NotFoundError: there is no such app.
            EdgeError: the environment or secret name is invalid.
        """
        check_label("environment", environment)
        check_secret_name(name)
        with self._write() as session:
            app_id = q.app_row(session, app).id
            row = session.scalar(
                sa.select(Secret).where(
                    Secret.app_id == app_id,
                    Secret.environment == environment,
                    Secret.name == name,
                )
            )
            previous = None if row is None else row.sealed
            if sealed is None and row is not None:
                session.delete(row)
            elif sealed is not None and row is None:
                session.add(
                    Secret(
                        app_id=app_id,
                        environment=environment,
                        name=name,
                        sealed=sealed,
                        updated_at=utcnow(),
                        updated_by=by,
                    )
                )
            elif sealed is not None and row is not None:
                row.sealed, row.updated_at, row.updated_by = sealed, utcnow(), by
            q.bump_routes_version(session)
            return previous

    def sealed_secrets_of(self, app: str, environment: str) -> tuple[tuple[str, str], ...]:
        """One environment's (name, sealed value) pairs (for the push-time load check).

        Raises:
            NotFoundError: there is no such app.
        """
        with self._read() as session:
            app_id = q.app_row(session, app).id
            return sealed_secrets(session).get((app_id, environment), ())

    def list_secrets(self, app: str, environment: str) -> list[SecretInfo]:
        """The secrets of one environment, by name (values are never returned).

        Raises:
            NotFoundError: there is no such app.
        """
        with self._read() as session:
            app_id = q.app_row(session, app).id
            rows = session.scalars(
                sa.select(Secret)
                .where(Secret.app_id == app_id, Secret.environment == environment)
                .order_by(Secret.name)
            )
            return [
                SecretInfo(row.name, row.environment, as_utc(row.updated_at), row.updated_by)
                for row in rows
            ]


def sealed_secrets(session: Session) -> dict[tuple[int, str], tuple[tuple[str, str], ...]]:
    """Every environment's (name, sealed value) pairs, by (app id, environment name)."""
    found: dict[tuple[int, str], list[tuple[str, str]]] = {}
    for app_id, environment, name, sealed in session.execute(
        sa.select(Secret.app_id, Secret.environment, Secret.name, Secret.sealed).order_by(
            Secret.app_id, Secret.environment, Secret.name
        )
    ):
        found.setdefault((app_id, environment), []).append((name, sealed))
    return {key: tuple(pairs) for key, pairs in found.items()}


def overridden(
    functions: tuple[FunctionRecord, ...] | list[FunctionRecord], names: set[str]
) -> dict[str, list[str]]:
    """For each secret name that an edge.toml variable also defines, the functions concerned."""
    clashes: dict[str, list[str]] = {}
    for name in sorted(names):
        found = [f.name for f in functions if name in f.env]
        if found:
            clashes[name] = found
    return clashes
