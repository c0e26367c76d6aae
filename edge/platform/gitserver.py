"""Git over smart HTTP at ``/git/<app>.git``, served by dulwich.

A WSGI app in front of dulwich's ``HTTPGitApplication`` that authenticates the
API token (HTTP Basic, token as password), maps the validated app name to its
repository, enforces the push size limit, and swaps in a receive-pack handler
whose ``update`` step validates the new commit and whose ``post-receive`` step
deploys it, streaming progress to the pusher as ``remote:`` lines.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from dulwich.objects import ObjectID
from dulwich.protocol import SIDE_BAND_CHANNEL_PROGRESS
from dulwich.refs import Ref
from dulwich.server import Backend, ReceivePackHandler
from dulwich.web import HTTPGitApplication

from edge.errors import EdgeError
from edge.platform.auth import authenticate_environ, challenge
from edge.platform.deploy import Deployer
from edge.platform.repos import AppRepos, check_app_name
from edge.platform.store import TokenInfo

logger = logging.getLogger(__name__)

STALE = b"the branch moved while you pushed (another push landed first): fetch, then push again"
DRAIN_BYTES = 1 << 30  # what an oversized push may still send (and we discard)
GIT_PATH = re.compile(r"^/git/(?P<app>[^/]*)\.git(?P<rest>/.*)?$")
StartResponse = Callable[..., Any]


class AppBackend(Backend):
    """A dulwich backend bound to one already-validated app.

    Field note: dulwich hands ``open_repository`` the URL path with its leading
    ``/``, which ``FileSystemBackend`` refuses; we map the app name ourselves.
    """

    def __init__(self, repos: AppRepos, app: str) -> None:
        self.repos = repos
        self.app = app

    def open_repository(self, path: str) -> Any:
        return self.repos.open(self.app)


class EdgeReceivePack(ReceivePackHandler):
    """receive-pack that validates each ref in ``update`` and deploys after.

    Built per request through :func:`receive_handler`, which binds the deployer,
    the (validated) app and the pusher's token name.
    """

    def __init__(
        self,
        backend: Backend,
        args: Any,
        proto: Any,
        stateless_rpc: bool = False,
        advertise_refs: bool = False,
        *,
        deployer: Deployer,
        app: str,
        pusher: str,
    ) -> None:
        super().__init__(backend, args, proto, stateless_rpc, advertise_refs)
        self.deployer = deployer
        self.app = app
        self.pusher = pusher

    def _progress(self, text: str) -> None:
        if self._client_capabilities is None:
            return
        try:
            self.proto.write_sideband(SIDE_BAND_CHANNEL_PROGRESS, text.encode() + b"\n")
        except OSError:  # the pusher went away; the deploy goes on
            logger.info("pusher disconnected during %s deploy", self.app)

    def handle(self) -> None:
        # The whole push (validation, ref moves, deploy) holds the app's lock:
        # concurrent pushes to one app queue instead of racing on ref files.
        with self.deployer.app_lock(self.app):
            super().handle()

    def _apply_pack(
        self, refs: list[tuple[ObjectID, ObjectID, Ref]]
    ) -> Iterator[tuple[bytes, bytes]]:
        for ref, status in super()._apply_pack(refs):
            yield ref, STALE if status == b"failed to write" else status

    def _on_update(self, ref_name: Ref, old_sha: ObjectID, new_sha: ObjectID) -> bytes | None:
        try:
            self.deployer.validate(
                self.repo,
                self.app,
                ref_name,
                old_sha,
                new_sha,
                progress=self._progress,
                pusher=self.pusher,
            )
        except EdgeError as exc:
            problems = getattr(exc, "problems", [str(exc)])
            for problem in problems:
                self._progress(f"error: {problem}")
            summary = (
                problems[0]
                if len(problems) == 1
                else (f"{problems[0]} (and {len(problems) - 1} more problems, listed above)")
            )
            return summary.encode()
        return None

    def _on_post_receive(self, client_refs: list[tuple[ObjectID, ObjectID, Ref]]) -> None:
        for old_sha, new_sha, ref_name in client_refs:
            self.deployer.deploy(
                self.repo,
                self.app,
                ref_name,
                old_sha,
                new_sha,
                pusher=self.pusher,
                progress=self._progress,
            )


def receive_handler(deployer: Deployer, app: str, pusher: str) -> Callable[..., EdgeReceivePack]:
    """The handler constructor dulwich calls for ``git-receive-pack`` of one push."""
    return functools.partial(EdgeReceivePack, deployer=deployer, app=app, pusher=pusher)


class _LimitedInput:
    """Counts what a push sends and stops it past the configured limit.

    Past the limit the rest of the request is read and thrown away (up to
    :data:`DRAIN_BYTES`) before the push is refused: a client still sending
    when the server answers gets a broken pipe instead of the reason.
    """

    def __init__(self, stream: Any, limit: int) -> None:
        self.stream = stream
        self.limit = limit
        self.seen = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.seen += len(data)
        if self.seen > self.limit:
            self._drain()
            raise OSError(
                f"push exceeds the {self.limit // (1024 * 1024)} MB limit "
                "(EDGE_MAX_PUSH_MB); remove large files from the repository"
            )
        return bytes(data)

    def _drain(self) -> None:
        drained = 0
        while drained < DRAIN_BYTES:
            chunk = self.stream.read(1 << 16)
            if not chunk:
                return
            drained += len(chunk)


class GitServer:
    """The WSGI application serving every app repository.

    Args:
        repos: the app repositories.
        deployer: validates and deploys pushes.
        authenticate: token -> its TokenInfo (or None), from the store.
        max_push_bytes: the largest push accepted.
    """

    def __init__(
        self,
        repos: AppRepos,
        deployer: Deployer,
        authenticate: Callable[[str], TokenInfo | None],
        max_push_bytes: int,
    ) -> None:
        self.repos = repos
        self.deployer = deployer
        self.authenticate = authenticate
        self.max_push_bytes = max_push_bytes

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        match = GIT_PATH.match(environ.get("PATH_INFO", ""))
        app = match["app"] if match else ""
        try:
            check_app_name(app)
        except EdgeError as exc:
            reason = f"{exc}\n" if match else "not a repository path: use /git/<app>.git\n"
            return _text(start_response, "404 Not Found", reason)
        writing = _is_push(environ)
        identity = authenticate_environ(environ, self.authenticate)
        if identity is None:
            return challenge(start_response)
        if not identity.can_access(app):
            return _text(
                start_response,
                "403 Forbidden",
                f"token {identity.name!r} has no access to app {app!r}\n",
            )
        if not self.repos.exists(app):
            if not writing:
                return _text(
                    start_response,
                    "404 Not Found",
                    f"app {app!r} does not exist yet: push to it to create it\n",
                )
            self.repos.create(app)
        if writing and int(environ.get("CONTENT_LENGTH") or 0) > self.max_push_bytes:
            return _text(
                start_response,
                "413 Request Entity Too Large",
                f"push exceeds the {self.max_push_bytes // (1024 * 1024)} MB limit\n",
            )
        return self._dulwich(environ, start_response, app, identity)

    def _dulwich(
        self, environ: dict[str, Any], start_response: StartResponse, app: str, identity: TokenInfo
    ) -> Iterable[bytes]:
        environ = dict(environ)
        # Field note: gunicorn has already de-chunked wsgi.input; dulwich would
        # try again and fail with "Invalid chunk size" if it saw this header.
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["PATH_INFO"] = GIT_PATH.match(environ["PATH_INFO"])["rest"] or "/"  # type: ignore[index]
        environ["wsgi.input"] = _LimitedInput(environ["wsgi.input"], self.max_push_bytes)
        handler = receive_handler(self.deployer, app, identity.name)
        git_app = HTTPGitApplication(
            AppBackend(self.repos, app), handlers={b"git-receive-pack": handler}
        )
        return git_app(environ, start_response)


def _is_push(environ: dict[str, Any]) -> bool:
    return "git-receive-pack" in environ.get("QUERY_STRING", "") or environ.get(
        "PATH_INFO", ""
    ).endswith("/git-receive-pack")


def _text(start_response: StartResponse, status: str, body: str) -> list[bytes]:
    data = body.encode()
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))]
    )
    return [data]
