"""App secrets as environment variables: where a sealed value belongs, and how a
runtime worker opens the sealed secrets of a routing snapshot.

Shared by the control plane (which seals, see :mod:`edge.platform.vault`) and
the runtime (which opens): nothing here touches the database.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import TYPE_CHECKING

from edge.keyring import Keyring, SecretKeyError

if TYPE_CHECKING:
    from edge.snapshot import FunctionRecord, RoutingSnapshot


def place(app: str, environment: str, name: str) -> str:
    """Where a secret belongs; sealed values are bound to it."""
    return f"{app}/{environment}/{name}"


def unseal(snapshot: RoutingSnapshot, keyring: Keyring) -> tuple[RoutingSnapshot, dict[str, str]]:
    """The snapshot with each environment's secrets opened into its functions' env.

    A function's ``content_hash`` then also covers a keyed fingerprint of the
    secrets, so a change of secrets starts new pools (the hot swap of a deploy)
    while unchanged ones keep their warm pools.

    Returns:
        The snapshot, and failures by ``app/environment/(secrets)`` for the
        environments whose secrets this host's key cannot open.
    """
    failures: dict[str, str] = {}
    environments = []
    for live in snapshot.environments:
        if not live.secrets:
            environments.append(live)
            continue
        try:
            values = {
                name: keyring.open(place(live.app, live.environment, name), sealed)
                for name, sealed in live.secrets
            }
        except SecretKeyError as exc:
            failures[f"{live.app}/{live.environment}/(secrets)"] = str(exc)
            environments.append(replace(live, secrets=()))
            continue
        fingerprint = keyring.fingerprint(values)
        functions = tuple(_with_secrets(f, values, fingerprint) for f in live.functions)
        environments.append(replace(live, functions=functions, secrets=()))
    return replace(snapshot, environments=tuple(environments)), failures


def _with_secrets(
    record: FunctionRecord, values: dict[str, str], fingerprint: str
) -> FunctionRecord:
    digest = hashlib.sha256(f"{record.content_hash}:{fingerprint}".encode()).hexdigest()
    return replace(record, env={**record.env, **values}, content_hash=digest)
