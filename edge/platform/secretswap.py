"""A secret change, deployed: store it sealed, then hot-swap the environment onto it.

No push is involved: the environment gets a new release, "secrets changed",
with the code of the release it serves now, and goes live through the same
path as a deploy (routes version, runtime acknowledgements, rollback of a
release that fails to start).
"""

from __future__ import annotations

from edge.errors import NotFoundError
from edge.platform.deploy import Deployer, Progress
from edge.platform.store import ReleaseInfo
from edge.platform.vault import SECRETS_CHANGED, check_secret_value
from edge.secretenv import place


def change_secret(
    deployer: Deployer,
    app: str,
    env: str,
    name: str,
    value: str | None,
    *,
    by: str,
    progress: Progress,
) -> ReleaseInfo | None:
    """Set a secret (``value=None``: unset it) and hot-swap the environment onto it.

    If the new release fails to start, the secret gets its previous value back
    and the previous release keeps serving.

    Returns:
        The new release, or ``None`` when the environment has no release yet
        (its first push brings the secret).

    Raises:
        EdgeError: a bad app, environment, name or value.
        NotFoundError: unsetting a secret that is not set.
    """
    store = deployer.store
    if value is not None:
        check_secret_value(name, value)
        store.get_or_create_app(app, created_by=by)
    verb = "set" if value is not None else "unset"
    with deployer.app_lock(app):
        sealed = None if value is None else deployer.keyring.seal(place(app, env, name), value)
        previous = store.put_secret(app, env, name, sealed, by=by)
        if value is None and previous is None:
            raise NotFoundError(
                f"{app} ({env}) has no secret {name}; `edge secrets list {app}` lists them"
            )
        deployer.event(app, env, f"secret {name} {verb} by {by}")
        progress(f"-----> secret {name} {verb} for {app} ({env})")
        release = _release(
            deployer, app, env, by=by, names={name} if value else set(), progress=progress
        )
        if release is not None and release.status == "failed":
            store.put_secret(app, env, name, previous, by=by)
            deployer.notify(store.routes_version())
            progress(f"-----> secret {name} is back to what it was before")
        return release


def _release(
    deployer: Deployer, app: str, env: str, *, by: str, names: set[str], progress: Progress
) -> ReleaseInfo | None:
    try:
        active = deployer.store.active_release(app, env)
    except NotFoundError:  # a preview whose branch was never pushed
        active = None
    if active is None:
        progress(f"-----> {app} ({env}) has no release yet: its first push brings the secret")
        return None
    release = deployer.store.create_release(
        app,
        env,
        commit_sha=active.commit_sha,
        artifact=active.artifact,
        manifest_json=active.manifest_json,
        functions=list(active.functions),
        packages=active.packages,
        created_by=by,
        author=by,
        message=SECRETS_CHANGED,
    )
    progress(
        f"-----> Release v{release.version} recorded ({SECRETS_CHANGED}; "
        f"the code of v{active.version})"
    )
    deployer.say_overrides(app, env, list(active.functions), names, progress)
    return deployer.go_live(app, env, release, progress)
