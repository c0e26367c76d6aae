"""Which release artifacts are kept on disk, and the collection of the rest.

An artifact is kept while a release can come back to it: what each live
environment serves, and the newest ``EDGE_KEEP_RELEASES`` releases of each
live environment (what ``edge rollback --to N`` may bring back). Artifacts of
torn-down previews and of older releases are deleted; their release rows stay
as history, and a rollback to one of them is refused with the reason.
"""

from __future__ import annotations

import logging

from edge.artifacts import Artifacts
from edge.errors import EdgeError
from edge.platform.store import Store

logger = logging.getLogger(__name__)


def kept_artifacts(store: Store, app: str, keep: int) -> set[str]:
    """The digests that some release of ``app`` can still come back to."""
    kept: set[str] = set()
    for env in store.list_environments(app):
        kept.update(release.artifact for release in store.list_releases(app, env.name, keep))
        active = store.active_release(app, env.name)
        if active is not None:
            kept.add(active.artifact)
    return kept


def collect(store: Store, artifacts: Artifacts, app: str, keep: int) -> list[str]:
    """Delete the artifacts of ``app`` no release can come back to; returns their digests.

    Call it under the app's deploy lock, so no release of the app is being
    created meanwhile. A failure is logged, never raised: collection never
    fails a deploy.
    """
    try:
        unused = sorted(artifacts.digests(app) - kept_artifacts(store, app, keep))
        for digest in unused:
            artifacts.remove(app, digest)
    except (OSError, EdgeError):
        logger.warning("collecting the artifacts of %s failed", app, exc_info=True)
        return []
    if unused:
        logger.info("collected %d artifact(s) of %s", len(unused), app)
    return unused
