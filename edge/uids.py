"""The uids and gids function processes run as, when the platform runs as root.

Shared by the artifact exporter (release folders belong to the app's group) and
the function sandbox (templates drop to the app's uid before importing code).

APPSEC: each installation on a host owns a block of :data:`BLOCK` ids, reserved
in a host-wide registry (:data:`REGISTRY`, under a lock shared by every install)
keyed by its ``EDGE_HOME``, so app #1 of one install never shares a uid with
app #1 of another (which could then read its code and signal its processes).
``EDGE_UID_BASE`` picks a block explicitly; an overlap with another live install
is refused at start. Block 0 is never handed out: it is what tools and tests
without an install use.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path

from edge.errors import ConfigError

FUNCTION_ID_BASE = 200_000
BLOCK = 100_000  # ids per install: app ids 1 .. BLOCK - 1
MAX_BASE = 2**31 - BLOCK
REGISTRY = Path("/var/lib/edge/uid-ranges.json")


def function_ids(app: str, app_id: int = 0, base: int = FUNCTION_ID_BASE) -> tuple[int, int]:
    """The uid and gid the functions of ``app`` run as (when the platform is root).

    With ``app_id`` (the app's id in the store, which every node and the
    exporter see alike) ids never collide within an install; without it (tools
    and tests that have no store) they are derived from the name.

    Args:
        app: the app name (a DNS label).
        app_id: the app's store id, or 0 when unknown.
        base: the install's block (:func:`reserve_base`).

    Returns:
        ``(uid, gid)``, equal, in ``[base, base + BLOCK)``.
    """
    if 0 < app_id < BLOCK:
        return base + app_id, base + app_id
    digest = hashlib.sha256(app.encode()).digest()
    n = base + 1 + int.from_bytes(digest[:8], "big") % (BLOCK - 1)
    return n, n


def reserve_base(home: Path, wanted: int = 0, registry: Path = REGISTRY) -> int:
    """The block of this install (``home``), reserved in the host's registry.

    Installs whose home no longer exists give their block back.

    Args:
        home: the install's ``EDGE_HOME``.
        wanted: ``EDGE_UID_BASE``, or 0 to keep this install's block (or take
            the lowest free one).
        registry: the host-wide registry file.

    Raises:
        ConfigError: ``wanted`` is out of range or overlaps another install's block.
    """
    key = str(home.resolve())
    registry.parent.mkdir(parents=True, exist_ok=True)
    with open(registry.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        taken = {h: b for h, b in _read(registry).items() if h != key and Path(h).is_dir()}
        base = wanted or _read(registry).get(key) or _lowest_free(taken)
        _check(base, taken, wanted)
        _write(registry, {**taken, key: base})
    return base


def _check(base: int, taken: dict[str, int], wanted: int) -> None:
    if not FUNCTION_ID_BASE + BLOCK <= base <= MAX_BASE:
        raise ConfigError(
            f"EDGE_UID_BASE={base}: must be between {FUNCTION_ID_BASE + BLOCK} and {MAX_BASE}"
        )
    for home, other in taken.items():
        if abs(other - base) < BLOCK:
            source = f"EDGE_UID_BASE={wanted}" if wanted else f"uid block {base}"
            raise ConfigError(
                f"{source} overlaps the function uids {other}..{other + BLOCK - 1} of the "
                f"install at {home}: choose a base at least {BLOCK} away, or unset "
                "EDGE_UID_BASE to get a free block"
            )


def _lowest_free(taken: dict[str, int]) -> int:
    base = FUNCTION_ID_BASE + BLOCK
    while any(abs(other - base) < BLOCK for other in taken.values()):
        base += BLOCK
    return base


def _read(registry: Path) -> dict[str, int]:
    try:
        entries = json.loads(registry.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(entries, dict):
        return {}
    return {str(h): b for h, b in entries.items() if isinstance(b, int)}


def _write(registry: Path, entries: dict[str, int]) -> None:
    staged = registry.with_suffix(".tmp")
    staged.write_text(json.dumps(entries, indent=1, sort_keys=True))
    os.chmod(staged, 0o644)
    staged.replace(registry)
