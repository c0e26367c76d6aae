"""Pushes that died mid-deploy: the next git request for the app undoes them.

A push moves its ref before it deploys (``edge.platform.pending`` explains why a
marker records each such move). A marker found while no push holds the app's
lock belongs to a push whose process died (SIGKILL, OOM, a host reboot): its
ref moves back, so the same push can simply be made again. If it died after
pointing the environment at its release, before the runtime confirmed it, the
release is failed and the environment's previous active release serves again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from edge.errors import EdgeError
from edge.platform.environments import environment_for_branch
from edge.platform.pending import PendingDeploys, PushedRef, undo_ref
from edge.platform.store import ReleaseInfo

if TYPE_CHECKING:
    from edge.platform.deploy import Deployer

logger = logging.getLogger(__name__)


def recover(deployer: Deployer, repo: Any, app: str) -> None:
    """Undo the ref moves of pushes whose process died before their deploy ended.

    Their markers are stale only while no push of the app holds its lock:
    a push in flight keeps its own.
    """
    pending = PendingDeploys(repo)
    if not pending.refs():
        return
    with deployer.locks.attempt(app) as free:
        if not free:
            return
        for ref, old, new in pending.refs():
            _recover(deployer, repo, app, PushedRef(ref, old, new))
            pending.clear(ref)


def _recover(deployer: Deployer, repo: Any, app: str, pushed: PushedRef) -> None:
    env = environment_for_branch(pushed.branch or "", app)
    try:
        active = deployer.store.active_release(app, env)
    except EdgeError:
        active = None
    if active is not None and active.commit_sha == pushed.new.decode():
        if active.status != "deploying":
            return  # its deploy ended (live) before the push's process died
        # It died in go_live: the environment points at the release, but the
        # runtime never confirmed it. Left so, the branch would stay at a
        # commit no deploy finished, and a re-push would find nothing to send.
        _abandon(deployer, app, env, active)
    undo_ref(repo, pushed)
    logger.warning(
        "push of %s %s to %s died mid-deploy: ref moved back", pushed.ref, pushed.new[:7], app
    )
    deployer.event(
        app,
        env,
        f"push of {pushed.branch} {pushed.new.decode()[:7]} was interrupted before its "
        f"deploy finished; the branch is back at {pushed.old.decode()[:7]}: push again",
        level="error",
    )


def _abandon(deployer: Deployer, app: str, env: str, release: ReleaseInfo) -> None:
    """Fail a release whose deploy died before the runtime confirmed it, and
    serve the environment's previous active release again (if it has one)."""
    store = deployer.store
    previous = next((r for r in store.list_releases(app, env) if r.status == "active"), None)
    store.mark_failed(
        release.id, "the control plane stopped before the runtime confirmed the release"
    )
    if previous is not None:
        deployer.notify(store.point_environment(previous.id))
