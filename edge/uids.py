"""The uid and gid each app's functions run as, when the platform runs as root.

Shared by the artifact exporter (release folders belong to the app's group) and
the function sandbox (templates drop to the app's uid before importing code).
"""

from __future__ import annotations

import hashlib

# APPSEC: function uids/gids live in a range no real account uses; one per app.
FUNCTION_ID_BASE = 200_000
FUNCTION_ID_SPAN = 800_000


def function_ids(app: str, app_id: int = 0) -> tuple[int, int]:
    """The uid and gid the functions of ``app`` run as (when the platform is root).

    Deterministic, so every runtime node and the artifact exporter agree
    without coordination. With ``app_id`` (the app's id in the store, which
    every node and the exporter see alike) ids never collide; without it (tools
    and tests that have no store) they are derived from the name, and two apps
    collide with probability about ``n**2 / (2 * FUNCTION_ID_SPAN)`` for ``n`` apps.

    Args:
        app: the app name (a DNS label).
        app_id: the app's store id, or 0 when unknown.

    Returns:
        ``(uid, gid)``, equal, in ``[FUNCTION_ID_BASE, FUNCTION_ID_BASE + FUNCTION_ID_SPAN)``.
    """
    if 0 < app_id < FUNCTION_ID_SPAN:
        return FUNCTION_ID_BASE + app_id, FUNCTION_ID_BASE + app_id
    digest = hashlib.sha256(app.encode()).digest()
    n = FUNCTION_ID_BASE + int.from_bytes(digest[:8], "big") % FUNCTION_ID_SPAN
    return n, n
