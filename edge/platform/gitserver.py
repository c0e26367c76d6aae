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
from typing import Any, cast

from dulwich.errors import GitProtocolError
from dulwich.objects import Commit, ObjectID, valid_hexsha
from dulwich.protocol import SIDE_BAND_CHANNEL_PROGRESS, Protocol
from dulwich.refs import Ref
from dulwich.repo import Repo
from dulwich.server import Backend, ReceivePackHandler, UploadPackHandler
from dulwich.web import GunzipFilter, HTTPGitApplication, LimitedInputFilter

from edge.errors import EdgeError
from edge.platform import recovery
from edge.platform.auth import authenticate_environ, challenge
from edge.platform.deploy import Deployer, DeployError
from edge.platform.packguard import PackGuard
from edge.platform.pending import ZERO_SHA, PendingDeploys
from edge.platform.repos import AppRepos, check_app_name
from edge.platform.store import TokenInfo

logger = logging.getLogger(__name__)

SHALLOW_HISTORY = (
    b"ERR this app's history was pushed from a shallow clone and ends at a commit "
    b"whose parents were never pushed: clone it with `git clone --depth 1`, "
    b"or push the full history (`git fetch --unshallow`, then push)"
)
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
        self.shallow_lines = _ShallowLines(proto)
        super().__init__(
            backend, args, cast(Protocol, self.shallow_lines), stateless_rpc, advertise_refs
        )
        self.deployer = deployer
        self.app = app
        self.pusher = pusher
        self.failed_deploys: dict[bytes, bytes] = {}
        self.pending = PendingDeploys(self.repo)
        self.marked: list[str] = []

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
            try:
                super().handle()
            finally:  # the push ended, either way: its refs are no longer in flight
                for ref in self.marked:
                    self.pending.clear(ref)

    def _apply_pack(
        self, refs: list[tuple[ObjectID, ObjectID, Ref]]
    ) -> Iterator[tuple[bytes, bytes]]:
        unpacked = False
        for ref, status in super()._apply_pack(refs):
            if ref == b"unpack" and status == b"ok":
                unpacked = True
                self._record_shallow()
            yield ref, STALE if status == b"failed to write" else status
        if not unpacked:  # dulwich reports no refs then; git would say "failed to report"
            for _old, _new, ref_name in refs:
                yield ref_name, b"unpacker error: nothing was changed"

    def _record_shallow(self) -> None:
        """Mark the pushed shallow roots whose parents this repository lacks.

        What git does with ``receive.shallowUpdate``: a push from a depth-1
        clone of another repository brings commits whose parents never
        arrive; the ``shallow`` file tells dulwich's walkers where history ends.
        """
        repo = cast(Repo, self.repo)
        store = repo.object_store
        present = [store[sha] for sha in self.shallow_lines.shallow if sha in store]
        roots = {
            commit.id
            for commit in present
            if isinstance(commit, Commit) and any(p not in store for p in commit.parents)
        }
        if roots:
            repo.update_shallow(roots, None)

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
            if new_sha != ZERO_SHA:  # the ref may move now: in flight until the push ends
                self.pending.mark(ref_name.decode(), old_sha, new_sha)
                self.marked.append(ref_name.decode())
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
            try:
                self.deployer.deploy(
                    self.repo,
                    self.app,
                    ref_name,
                    old_sha,
                    new_sha,
                    pusher=self.pusher,
                    progress=self._progress,
                )
            except DeployError as exc:  # the deployer moved the ref back
                self.failed_deploys[ref_name] = str(exc).encode()

    def _report_status(self, status: Any) -> None:
        """git's report, where a ref whose deploy failed is rejected, not ``ok``."""
        super()._report_status(
            [
                (name, self.failed_deploys.get(name, msg) if msg == b"ok" else msg)
                for name, msg in status
            ]
        )


class EdgeUploadPack(UploadPackHandler):
    """upload-pack that answers a clone reaching past a shallow push with a clear error.

    After a push from a depth-1 clone of another repository, the commits' parents
    are not here (the repository's ``shallow`` file lists them); dulwich's walk
    would fail with a KeyError and the client would see HTTP 500.
    """

    def handle(self) -> None:
        try:
            super().handle()
        except KeyError:
            if not cast(Repo, self.repo).get_shallow():
                raise
            self.proto.write_pkt_line(SHALLOW_HISTORY)


def receive_handler(deployer: Deployer, app: str, pusher: str) -> Callable[..., EdgeReceivePack]:
    """The handler constructor dulwich calls for ``git-receive-pack`` of one push."""
    return functools.partial(EdgeReceivePack, deployer=deployer, app=app, pusher=pusher)


def drain(stream: Any) -> None:
    """Read and discard what a refused client still sends (up to :data:`DRAIN_BYTES`),
    so that git shows the reason instead of a broken pipe."""
    drained = 0
    while drained < DRAIN_BYTES:
        chunk = stream.read(1 << 16)
        if not chunk:
            return
        drained += len(chunk)


class _ShallowLines:
    """The client protocol, minus the ``shallow <sha>`` lines of a shallow clone's push.

    Field note: a push from a shallow clone sends them before its ref updates,
    and dulwich's receive-pack refuses them as "Invalid ref update line".
    Every other call goes to the wrapped protocol.
    """

    def __init__(self, proto: Any) -> None:
        self.proto = proto
        self.shallow: set[ObjectID] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.proto, name)

    def read_pkt_line(self) -> bytes | None:
        line: bytes | None = self.proto.read_pkt_line()
        while line is not None and line.startswith(b"shallow "):
            sha = line[len(b"shallow ") :].strip()
            if not valid_hexsha(sha):
                raise GitProtocolError(f"invalid shallow line from client: {line!r}")
            self.shallow.add(ObjectID(sha))
            line = self.proto.read_pkt_line()
        return line


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
            drain(self.stream)
            raise OSError(
                f"push exceeds the {self.limit // (1024 * 1024)} MB limit "
                "(EDGE_MAX_PUSH_MB); remove large files from the repository"
            )
        return bytes(data)


class GitServer:
    """The WSGI application serving every app repository.

    Args:
        repos: the app repositories.
        deployer: validates and deploys pushes.
        authenticate: token -> its TokenInfo (or None), from the store.
        max_push_bytes: the largest push accepted.
        max_object_bytes: the largest inflated object a push may bring.
    """

    def __init__(
        self,
        repos: AppRepos,
        deployer: Deployer,
        authenticate: Callable[[str], TokenInfo | None],
        max_push_bytes: int,
        max_object_bytes: int,
    ) -> None:
        self.repos = repos
        self.deployer = deployer
        self.authenticate = authenticate
        self.max_push_bytes = max_push_bytes
        self.max_object_bytes = max_object_bytes

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
        recovery.recover(self.deployer, self.repos.open(app), app)
        handler = receive_handler(self.deployer, app, identity.name)
        git_app = HTTPGitApplication(
            AppBackend(self.repos, app),
            handlers={b"git-receive-pack": handler, b"git-upload-pack": EdgeUploadPack},
        )
        # dulwich's make_wsgi_chain, with the inflated body limited too:
        # git gzips upload-pack requests over 1 KiB (a fetch from a clone
        # with many local commits), and HTTPGitApplication alone cannot read
        # them. APPSEC: a small gzip body may inflate without bound.
        inflated = _InflatedBody(git_app, self.max_push_bytes, self.max_object_bytes)
        chain = LimitedInputFilter(GunzipFilter(inflated))
        return chain(environ, start_response)


class _InflatedBody:
    """WSGI filter on the (gunzipped) body: it counts against the push limit too,
    and a push's pack is scanned so no object inflates past the file limit."""

    def __init__(
        self, app: Callable[..., Iterable[bytes]], limit: int, max_object_bytes: int
    ) -> None:
        self.app = app
        self.limit = limit
        self.max_object_bytes = max_object_bytes

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        body = _LimitedInput(environ["wsgi.input"], self.limit)
        if environ.get("REQUEST_METHOD") == "POST" and _is_push(environ):
            environ["wsgi.input"] = PackGuard(body, self.max_object_bytes, on_refuse=drain)
        else:
            environ["wsgi.input"] = body
        return self.app(environ, start_response)


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
