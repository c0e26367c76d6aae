"""Which Python package environments are kept on disk, and the collection of the rest.

Environments are shared by every app whose ``requirements.txt`` is identical,
so one is kept while *any* release that may still be served or rolled back to
refers to it (the same rule as for artifacts, ``edge.platform.retention``:
what each live environment serves, and its newest ``EDGE_KEEP_RELEASES``
releases), or while a push used it within the last ``GRACE_S`` seconds (a push
of another app may have built or reused it and not recorded its release yet:
collection holds only the collecting app's lock).
"""

from __future__ import annotations

import logging

from edge.errors import EdgeError
from edge.packages import Environments
from edge.platform.store import Store

logger = logging.getLogger(__name__)

GRACE_S = 3600.0


def kept_environments(store: Store, keep: int) -> set[str]:
    """The environment digests some release of some app can still come back to."""
    kept: set[str] = set()
    for app in store.list_apps():
        for env in app.environments:
            releases = store.list_releases(app.name, env.name, keep)
            kept.update(release.packages for release in releases)
            active = store.active_release(app.name, env.name)
            if active is not None:
                kept.add(active.packages)
    kept.discard("")
    return kept


def collect_environments(
    store: Store, environments: Environments, keep: int, grace_s: float = GRACE_S
) -> list[str]:
    """Delete the environments no release refers to and no push used lately.

    A failure is logged, never raised: collection never fails a deploy.
    """
    try:
        kept = kept_environments(store, keep)
        unused = sorted(
            digest
            for digest in environments.digests() - kept
            if environments.idle_seconds(digest) >= grace_s
        )
        for digest in unused:
            environments.remove(digest)
    except (OSError, EdgeError):
        logger.warning("collecting package environments failed", exc_info=True)
        return []
    if unused:
        logger.info("collected %d package environment(s)", len(unused))
    return unused
