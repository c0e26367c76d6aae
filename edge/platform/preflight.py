"""What the ``update`` step decides beyond edge.toml, before the ref moves.

* **Packages**: ``requirements.txt`` is installed (or its environment reused)
  with ``uv`` (``edge.packages``); a resolver or install failure rejects the
  ref with uv's own message, which names the package.
* **Load check**: every Python function whose code, configuration or packages
  changed since the environment's active release is imported in a template's
  sandbox (``edge.platform.loadcheck``) from the exported release folder; an
  import error rejects the ref with the import's own message. Unchanged
  functions are not imported again.
* **Preview hosts**: two branches that map to one preview host
  (``feature/x`` and ``feature-x``) cannot both deploy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edge.artifacts import SourceFile
from edge.config import Config
from edge.errors import EdgeError, ManifestError, NotFoundError
from edge.keyring import Keyring, SecretKeyError
from edge.packages import REQUIREMENTS
from edge.platform.loadcheck import check_python, template_spec
from edge.platform.store import Store
from edge.secretenv import place
from edge.snapshot import PRODUCTION, FunctionRecord, site_host
from edge.uids import function_ids

Progress = Callable[[str], None]


class Preflight:
    """The checks of one push that need the store, the disk or a sandbox.

    Args:
        config: the platform configuration.
        store: the release store (active releases, environments, secrets).
        keyring: opens the environment's secrets for the load check.
    """

    def __init__(self, config: Config, store: Store, keyring: Keyring) -> None:
        self.config = config
        self.store = store
        self.keyring = keyring
        self.environments = config.package_environments()

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
