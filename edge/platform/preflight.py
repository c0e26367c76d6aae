"""What the ``update`` step decides beyond edge.toml, before the ref moves.

* **Packages**: ``requirements.txt`` is installed (or its environment reused)
  with ``uv`` (``edge.packages``); a resolver or install failure rejects the
  ref with uv's own message, which names the package.
* **Load check**: every Python function whose code, configuration or packages
  changed since the environment's active release is imported in a template's
  sandbox (``edge.platform.loadcheck``) from the exported release folder; an
  import error rejects the ref with the import's own message. Unchanged
  functions are not imported again.
* **Export**: the release folder is exported here (content-addressed, so the
  deploy after the ref moved finds it done); a tree that cannot be exported
  rejects the ref.
* **Preview hosts**: two branches that map to one preview host
  (``feature/x`` and ``feature-x``) cannot both deploy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from edge.artifacts import Artifacts, SourceFile
from edge.config import Config
from edge.errors import EdgeError, ManifestError, NotFoundError
from edge.keyring import Keyring, SecretKeyError
from edge.manifest import Manifest
from edge.packages import REQUIREMENTS
from edge.platform.functions import function_records
from edge.platform.loadcheck import check_python, template_spec
from edge.platform.store import Store
from edge.secretenv import place
from edge.snapshot import PRODUCTION, FunctionRecord, site_host
from edge.uids import function_ids

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


class Preflight:
    """The checks of one push that need the store, the disk or a sandbox.

    Args:
        config: the platform configuration.
        store: the release store (active releases, environments, secrets).
        artifacts: where release folders are exported.
        keyring: opens the environment's secrets for the load check.
    """

    def __init__(
        self, config: Config, store: Store, artifacts: Artifacts, keyring: Keyring
    ) -> None:
        self.config = config
        self.store = store
        self.artifacts = artifacts
        self.keyring = keyring
        self.environments = config.package_environments()

    def prepare(
        self,
        app: str,
        env: str,
        files: list[SourceFile],
        manifest: Manifest,
        progress: Progress,
        *,
        check: bool,
        by: str = "push",
    ) -> tuple[str, str, list[FunctionRecord], int]:
        """Install packages, export the artifact, and (``check``) load-check it.

        Used by the ``update`` step (``check=True``) and again by the deploy
        after the ref moved (both steps are idempotent: the environment is
        reused and the export is content-addressed).

        Returns:
            The artifact digest, the package environment digest (``""``: none),
            the function records and the app's id.
        """
        packages = self.packages(files, progress)
        app_id = self.store.get_or_create_app(app, created_by=by).id
        try:
            digest = self.artifacts.export(files, app, app_id)
        except OSError as exc:
            logger.exception("export of a release of %s failed", app)
            raise EdgeError(f"the release cannot be exported: {exc.strerror or exc}") from None
        functions = function_records(files, manifest, packages)
        if check:
            root = self.artifacts.path(app, digest)
            self.load_check(
                app,
                env,
                app_id=app_id,
                root=root,
                functions=functions,
                packages=packages,
                progress=progress,
            )
        return digest, packages, functions, app_id

    def packages(self, files: list[SourceFile], progress: Progress) -> str:
        """The digest of the tree's package environment, built if needed; ``""`` for none.

        Raises:
            ManifestError: uv's message (resolution, install, size or time limit).
        """
        requirements = next((f for f in files if f.path == REQUIREMENTS), None)
        if requirements is None:
            return ""
        return self.environments.ensure(requirements.data, progress)

    def check_host(self, app: str, env: str, branch: str) -> None:
        """Refuse a preview branch whose host another live branch already serves."""
        if env == PRODUCTION:
            return
        try:
            environments = self.store.list_environments(app)
        except NotFoundError:
            return
        for other in environments:
            if other.name == env and other.branch != branch:
                host = site_host(app, env, self.config.domain)
                raise EdgeError(
                    f"branch {branch!r} would be served at {host}, which branch "
                    f"{other.branch!r} already uses; rename the branch, or delete "
                    f"{other.branch!r} first (git push edge :{other.branch})"
                )

    def load_check(
        self,
        app: str,
        env: str,
        *,
        app_id: int,
        root: Path,
        functions: list[FunctionRecord],
        packages: str,
        progress: Progress,
    ) -> None:
        """Import every changed Python function in its sandbox.

        Raises:
            ManifestError: one line per function that does not load.
        """
        unchanged = self._unchanged(app, env)
        changed = [
            f for f in functions if f.runtime == "python" and f.content_hash not in unchanged
        ]
        if not changed:
            return
        secrets = self._secrets(app, env)
        specs = {
            f.name: template_spec(
                app=app,
                uid=function_ids(app, app_id, self.config.function_uid_base)[0],
                name=f.name,
                root=root,
                path=f.path,
                handler=f.handler,
                env={**f.env, **secrets},
                memory_mb=f.memory_mb,
                packages=self.environments.path(packages) if packages else None,
                kind=f.kind,
            )
            for f in changed
        }
        failures = check_python(specs)
        problems = []
        for function in changed:
            message = failures.get(function.name)
            if message is None:
                continue
            for line in message.splitlines():
                progress(f"       {line}")
            last = message.strip().splitlines()[-1] if message.strip() else "failed"
            problems.append(f"{function.entry}: does not load: {last}")
        if problems:
            raise ManifestError(problems)
        names = ", ".join(f.name for f in changed)
        progress(f"-----> loaded in a sandbox: {names}")

    def _unchanged(self, app: str, env: str) -> set[str]:
        try:
            active = self.store.active_release(app, env)
        except NotFoundError:
            return set()
        return {f.content_hash for f in active.functions} if active is not None else set()

    def _secrets(self, app: str, env: str) -> dict[str, str]:
        """The environment's secrets, opened (a function may read one at import)."""
        try:
            sealed = self.store.sealed_secrets_of(app, env)
        except NotFoundError:
            return {}
        opened = {}
        for name, value in sealed:
            try:
                opened[name] = self.keyring.open(place(app, env, name), value)
            except SecretKeyError:
                continue
        return opened
