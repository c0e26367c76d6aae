"""The deploy pipeline: validate a pushed commit, then turn it into a live release.

``validate`` runs in the ``update`` step (objects stored, ref not yet moved) and
raises to reject the ref; ``deploy`` runs after the ref moved: under a per-app
lock it records release vN, exports the artifact, points the environment at
it, tells the runtime and waits (bounded) for every worker to serve it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import redis
from dulwich.objects import Commit

from edge import commands
from edge.artifacts import Artifacts
from edge.config import Config
from edge.errors import ConflictError, EdgeError, ManifestError
from edge.keyring import Keyring
from edge.logstream import emit_sync, platform_event
from edge.manifest import Manifest, load_manifest
from edge.platform import retention
from edge.platform.artifacts import folder_files, git_files
from edge.platform.deploylog import DeployLog
from edge.platform.environments import environment_for_branch, hostname, public_url
from edge.platform.envretention import collect_environments
from edge.platform.functions import compile_python
from edge.platform.locks import AppLocks
from edge.platform.pending import PushedRef, undo_ref
from edge.platform.preflight import Preflight
from edge.platform.store import ReleaseInfo, Store
from edge.platform.trees import TreeLimits, check_tree, stored
from edge.platform.vault import overridden
from edge.runtime.js.modules import check_js_many
from edge.snapshot import PRODUCTION, PRODUCTION_BRANCH, FunctionRecord
from edge.sources import DirSource, GitTreeSource, Source

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


class DeployError(EdgeError):
    """A deploy failed after its ref moved; the ref was moved back (see :meth:`Deployer.deploy`)."""


class Deployer:
    """Validates and deploys pushes for every app.

    Args:
        config: the platform configuration.
        store: the release store.
        redis_client: where deploy events go (``None``: no runtime to tell).
        artifacts: where release folders are exported.
        keyring: seals secrets and verifies the runtime's acknowledgements.
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        redis_client: redis.Redis | None,
        artifacts: Artifacts,
        keyring: Keyring,
    ) -> None:
        self.config = config
        self.store = store
        self.redis = redis_client
        self.artifacts = artifacts
        self.steps = DeployLog(redis_client)
        self.keyring = keyring
        self.locks = AppLocks(config.home / "locks")
        self.preflight = Preflight(config, store, artifacts, keyring)

    # -- update: validation ------------------------------------------------

    def validate(
        self,
        repo: Any,
        app: str,
        ref_name: bytes,
        old: bytes,
        new: bytes,
        *,
        object_store: Any = None,
        progress: Progress | None = None,
        pusher: str = "push",
    ) -> list[str]:
        """Check one ref update; returns progress lines, raises EdgeError to reject.

        Besides edge.toml and compiling, this installs the Python packages and
        imports every changed Python function in its sandbox (``Preflight``):
        nothing that would fail after the ref moves is let through. Lines of a
        long step (an install) go to ``progress`` as they come, when given.
        """
        pushed = PushedRef(ref_name.decode(), old, new)
        if pushed.branch is None:
            raise EdgeError(
                f"{pushed.ref}: only branches deploy; push a branch "
                "(main for production, any other for a preview)"
            )
        if pushed.deleted:
            if pushed.branch == PRODUCTION_BRANCH:
                raise EdgeError(
                    "deleting main would take production down; "
                    "use `edge rollback` or push a new commit instead"
                )
            return []
        store = object_store if object_store is not None else repo.object_store
        env = environment_for_branch(pushed.branch, app)
        lines: list[str] = []
        say = progress or lines.append
        limits = TreeLimits(self.config.max_release_bytes, self.config.max_file_bytes)
        try:
            commit = stored(store, new)
            if not isinstance(commit, Commit):
                raise EdgeError(f"{new.decode()} is not a commit the push brought; push a branch")
            check_tree(store, commit.tree, limits)
            manifest = self.checked_manifest(GitTreeSource(store, commit.tree), app)
            names = ", ".join(f.name for f in manifest.functions)
            say(f"-----> edge.toml valid: {len(manifest.functions)} function(s): {names}")
            self.preflight.check_host(app, env, pushed.branch)
            files = git_files(store, commit.tree)
            self.preflight.prepare(app, env, files, manifest, say, check=True, by=pusher)
        except EdgeError as exc:
            message = f"push of {pushed.branch} {new.decode()[:7]} rejected: {exc}"
            self.event(app, env, message, level="error")
            self.steps.rejected(app, env, message)
            raise
        return lines

    def checked_manifest(self, source: Source, app: str) -> Manifest:
        """Validate edge.toml and compile every entry; raises ManifestError with all problems."""
        manifest = load_manifest(source, max_memory_mb=self.config.max_memory_mb)
        problems: list[str] = []
        if manifest.app is not None and manifest.app != app:
            problems.append(
                f"edge.toml: app: {manifest.app!r} does not match the repository "
                f"{app!r}; change it to {app!r} or push to /git/{manifest.app}.git"
            )
        problems.extend(compile_python(source, manifest))
        js = {
            f.path: (source.read(f.path) or b"").decode("utf-8", "replace")
            for f in manifest.functions
            if f.runtime == "js"
        }
        if js:
            problems.extend(check_js_many(js).values())
        if problems:
            raise ManifestError(problems)
        return manifest

    # -- post-receive: deployment ------------------------------------------

    def deploy(
        self,
        repo: Any,
        app: str,
        ref_name: bytes,
        old: bytes,
        new: bytes,
        *,
        pusher: str,
        progress: Progress,
    ) -> ReleaseInfo | None:
        """Deploy one accepted ref update, reporting progress and failures to the pusher.

        A ref never points at a commit that is not deployed: when the release
        fails (or the deploy breaks before the environment serves it), the ref
        is moved back to ``old`` before :class:`DeployError` is raised, so the
        same push can simply be made again.

        Raises:
            DeployError: the deploy failed; the previous release keeps serving.
        """
        pushed = PushedRef(ref_name.decode(), old, new)
        if pushed.branch is None:
            return None
        env = environment_for_branch(pushed.branch, app)
        with self.steps.track(app, env, progress) as step, self.app_lock(app):
            if pushed.deleted:
                try:
                    self._teardown(app, env, step)
                except EdgeError as exc:
                    step(f"error: teardown of {pushed.branch} failed: {exc}")
                self.collect(app)
                return None
            try:
                release = self._release(repo, app, env, pushed, pusher=pusher, progress=step)
                reason = (release.status_reason or "failed") if release.status == "failed" else None
            except Exception as exc:  # any failure must move the ref back
                reason = self._failure(app, env, pushed, exc)
            if reason is None:
                self.collect(app)
                return release
            undo_ref(repo, pushed)
            step(
                f"error: deploy of {pushed.branch} failed: {reason}; the branch was left at "
                f"{pushed.old.decode()[:7]}: fix it and push again"
            )
            raise DeployError(f"deploy failed: {reason}")

    def _failure(self, app: str, env: str, pushed: PushedRef, exc: Exception) -> str | None:
        """Why a deploy broke, or ``None`` if the environment serves the commit anyway."""
        if not isinstance(exc, EdgeError):
            logger.exception("deploy of %s/%s %s failed", app, env, pushed.new.decode()[:7])
        try:
            active = self.store.active_release(app, env)
        except EdgeError:
            active = None
        if active is not None and active.commit_sha == pushed.new.decode():
            return None
        if isinstance(exc, EdgeError):
            return str(exc)
        return f"internal error ({type(exc).__name__}), logged by the control plane"

    def _release(
        self, repo: Any, app: str, env: str, pushed: PushedRef, *, pusher: str, progress: Progress
    ) -> ReleaseInfo:
        commit = repo.object_store[pushed.new]
        manifest = load_manifest(
            GitTreeSource(repo.object_store, commit.tree), max_memory_mb=self.config.max_memory_mb
        )
        progress(f"-----> Deploying {app} ({env}) from {pushed.branch} {pushed.new.decode()[:7]}")
        self.store.get_or_create_app(app, created_by=pusher)
        files = git_files(repo.object_store, commit.tree)
        digest, packages, functions, _ = self.preflight.prepare(
            app, env, files, manifest, progress, check=False
        )
        self.store.get_or_create_environment(app, env, branch=pushed.branch or "")
        release = self.store.create_release(
            app,
            env,
            commit_sha=pushed.new.decode(),
            artifact=digest,
            manifest_json=json.dumps(manifest.to_json()),
            functions=functions,
            packages=packages,
            created_by=pusher,
            author=commit.author.decode("utf-8", "replace"),
            message=commit.message.decode("utf-8", "replace").strip().splitlines()[0]
            if commit.message.strip()
            else "",
        )
        progress(
            f"-----> Release v{release.version} recorded "
            f"(artifact {digest[:12]}, {len(functions)} function(s))"
        )
        self.say_overrides(app, env, functions, None, progress)
        return self.go_live(app, env, release, progress)

    def go_live(self, app: str, env: str, release: ReleaseInfo, progress: Progress) -> ReleaseInfo:
        """Point the environment at ``release``, tell the runtime, wait for it."""
        previous = self.store.active_release(app, env)
        routes_version = self.store.point_environment(release.id)
        regions = {region for f in release.functions for region in f.regions}
        ack = self.notify(routes_version, regions)
        failures = ack.failures() if ack else {}
        mine = {name: msg for name, msg in failures.items() if name.startswith(f"{app}/{env}/")}
        if mine:
            for name, message in mine.items():
                progress(f"error: function {name.rsplit('/', 1)[-1]} failed to start: {message}")
            self.store.mark_failed(release.id, "; ".join(mine.values()))
            self.event(
                app,
                env,
                f"v{release.version} failed: {'; '.join(mine.values())}",
                release=release.version,
                level="error",
            )
            if previous is not None:
                self.notify(self.store.point_environment(previous.id))
                progress(f"-----> v{release.version} failed; v{previous.version} keeps serving")
            return self.store.get_release(app, env, release.version)
        url = public_url(self.config, app, env)
        self.event(
            app,
            env,
            f"v{release.version} deployed ({release.commit_sha[:7]})"
            + (f", rolled back to v{release.rollback_of}" if release.rollback_of else ""),
            release=release.version,
        )
        if ack is not None and ack.ignored:
            progress(
                f"warning: ignored {len(ack.ignored)} runtime report(s) not signed with this "
                "platform's key; a runtime node on another host needs EDGE_SECRET_KEY set to "
                "the control plane's key"
            )
        if ack is not None and ack.live:
            self.store.mark_active(release.id)
            progress(f"-----> v{release.version} live at {url}")
        elif ack is not None and ack.workers == [] and not ack.waiting:
            self.store.mark_active(release.id)
            progress(
                f"-----> v{release.version} recorded; no runtime node of "
                f"{', '.join(sorted(regions))} is running: it will be served at {url} "
                "as soon as one starts"
            )
        else:
            waiting = ", ".join(ack.waiting) if ack else "all (Redis unreachable)"
            progress(
                f"-----> v{release.version} recorded, but runtime workers did not confirm "
                f"within {self.config.deploy_timeout:g}s (waiting: {waiting}); it will be "
                f"served at {url} as soon as they catch up"
            )
        return self.store.get_release(app, env, release.version)

    def notify(
        self, routes_version: int, regions: Collection[str] | None = None
    ) -> commands.AckResult | None:
        """Tell the runtime; wait for the live workers (of ``regions``, if given) to swap."""
        if self.redis is None:
            return None
        try:
            commands.send_routes_changed(self.redis, routes_version)
            ack = commands.wait_for_version(
                self.redis, routes_version, self.config.deploy_timeout, self.keyring, regions
            )
        except redis.RedisError as exc:
            logger.warning("could not notify the runtime of routes v%s: %s", routes_version, exc)
            return None
        if ack.ignored:
            logger.warning(
                "ignored runtime reports not signed with this platform's key: %s "
                "(a runtime node needs EDGE_SECRET_KEY set to the control plane's key; "
                "anything else writing %s* keys is a forgery)",
                ", ".join(repr(name[:80]) for name in ack.ignored[:5]),
                commands.WORKER_PREFIX,
            )
        return ack

    def _teardown(self, app: str, env: str, progress: Progress) -> None:
        routes_version = self.store.delete_environment(app, env)
        self.notify(routes_version)
        self.event(app, env, f"preview {env} torn down")
        progress(f"-----> preview {hostname(self.config, app, env)} torn down")

    def deploy_folder(self, folder: Path, app: str, *, by: str, progress: Progress) -> ReleaseInfo:
        """Deploy a working folder as production of ``app``, with no git (``edge dev``).

        Raises:
            EdgeError: the folder does not validate; nothing changes then.
        """
        with self.app_lock(app), self.steps.track(app, PRODUCTION, progress) as step:
            manifest = self.checked_manifest(DirSource(folder), app)
            self.store.get_or_create_app(app, created_by=by)
            self.store.get_or_create_environment(app, PRODUCTION, branch=PRODUCTION_BRANCH)
            files = folder_files(folder)
            digest, packages, functions, _ = self.preflight.prepare(
                app, PRODUCTION, files, manifest, step, check=True, by=by
            )
            self.say_overrides(app, PRODUCTION, functions, None, progress)
            release = self.store.create_release(
                app,
                PRODUCTION,
                commit_sha=f"dev-{digest[:12]}",
                artifact=digest,
                manifest_json=json.dumps(manifest.to_json()),
                functions=functions,
                packages=packages,
                created_by=by,
                author=by,
                message="edge dev: working folder",
            )
            step(
                f"-----> Release v{release.version} from {folder} "
                f"({len(manifest.functions)} function(s))"
            )
            live = self.go_live(app, PRODUCTION, release, step)
            self.collect(app)
            return live

    def say_overrides(
        self,
        app: str,
        env: str,
        functions: list[FunctionRecord],
        names: set[str] | None,
        progress: Progress,
    ) -> None:
        """Tell the pusher which edge.toml variables a secret overrides (the secret wins)."""
        if names is None:
            names = {secret.name for secret in self.store.list_secrets(app, env)}
        for name, where in overridden(functions, names).items():
            progress(
                f"-----> secret {name} overrides the edge.toml env value of the same name "
                f"(in {', '.join(where)}): the secret wins"
            )

    def rollback(self, app: str, *, to: int | None, by: str, progress: Progress) -> ReleaseInfo:
        """Repoint production to an earlier release, recorded as a new release."""
        with self.app_lock(app), self.steps.track(app, PRODUCTION, progress) as step:
            target = self.store.rollback_target(app, PRODUCTION, to)
            if not self.artifacts.bundle_path(app, target.artifact).is_file():
                raise ConflictError(
                    f"v{target.version} of {app} is older than the "
                    f"{self.config.keep_releases} releases kept (EDGE_KEEP_RELEASES) and its "
                    "files were deleted; push its commit again (git revert) instead"
                )
            release = self.store.create_release(
                app,
                PRODUCTION,
                commit_sha=target.commit_sha,
                artifact=target.artifact,
                manifest_json=target.manifest_json,
                functions=list(target.functions),
                packages=target.packages,
                created_by=by,
                author=target.author,
                message=f"Rollback to v{target.version}",
                rollback_of=target.version,
            )
            step(f"-----> Rolling back {app} to v{target.version} as v{release.version}")
            secrets = [secret.name for secret in self.store.list_secrets(app, PRODUCTION)]
            if secrets:
                step(
                    f"-----> with the current secrets ({', '.join(secrets)}): "
                    "a rollback never brings back old secret values"
                )
            live = self.go_live(app, PRODUCTION, release, step)
            self.collect(app)
            return live

    def collect(self, app: str) -> None:
        """Delete the artifacts of ``app`` and the package environments no release
        can come back to (never raises)."""
        retention.collect(self.store, self.artifacts, app, self.config.keep_releases)
        collect_environments(self.store, self.preflight.environments, self.config.keep_releases)

    def event(
        self, app: str, env: str, message: str, *, release: int = 0, level: str = "info"
    ) -> None:
        """A platform event in the app's log stream (never fails a deploy)."""
        if self.redis is not None:
            emit_sync(
                self.redis,
                platform_event(app, env, message, release=release, level=level),
                self.config.log_stream_len,
            )

    def app_lock(self, app: str) -> AbstractContextManager[None]:
        """One push or deploy per app at a time, across processes on this host.

        Reentrant within a thread: a push holds it from the first ref update to
        the end of its deploy, and the deploy takes it again.
        """
        return self.locks.hold(app)
