"""A runaway function only ever takes down itself: faults against a real runtime.

One stack for the module (control plane + runtime under gunicorn with 2
workers, real Redis, SQLite at ``$EDGE_HOME/edge.db``), one app deployed by a
real ``git push``: a healthy neighbour ``ok`` and a function per fault. During
every fault a few threads hammer ``ok`` over fresh connections (so both
workers serve it, including the one running the fault) and must see no
failure at all; after every fault the runtime's gunicorn workers are the ones
that were there when the stack started.

The sandbox checks (env, secrets, code folder) hold because the platform runs
as root and every template drops to its app's own uid
(``edge.runtime.python.process.sandbox.function_ids``) before importing function code; the
stack's ``EDGE_HOME`` is laid out the way ``edge up`` lays it out (``0711``,
owner-only admin token) below a folder any uid may traverse, so nothing but
the platform's own file permissions stands between a function and the files.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import httpx
import pytest
from function_harness import processes_of
from stack import Stack, Workdir, make_stack, wait_for

from edge.errors import NotFoundError
from edge.platform.store import Store
from edge.redisserver import RedisServer
from edge.runtime.python.process.sandbox import Limits
from edge.uids import function_ids, reserve_base
from edge.up import admin_token

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="uid separation and RLIMIT_NPROC need a root platform"
)

APP = "faults-" + uuid.uuid4().hex[:6]
IMPORTER = "importer-" + uuid.uuid4().hex[:6]
TIMEOUT_MS = 1000
MEMORY_MB = 64
MAX_BODY_MB = 1
BOMB_COMM = "edge-forkbomb"
# In the runtime's environment, to prove that none of it reaches a function.
PLANTED_SECRETS = {
    "DATABASE_URL": "postgresql://admin:hunter2@db.internal/prod",
    "AWS_SECRET_ACCESS_KEY": "planted-aws-secret",
}

MANIFEST = f"""
app = "{APP}"

[env]
GREETING = "hello"

[functions.ok]
entry = "functions/ok.py"
routes = ["/ok"]
min_warm = 3

[functions.spin]
entry = "functions/faults.py:spin"
routes = ["/spin"]
timeout_ms = {TIMEOUT_MS}

[functions.sleep]
entry = "functions/faults.py:sleep"
routes = ["/sleep"]
timeout_ms = {TIMEOUT_MS}

[functions.bomb]
entry = "functions/faults.py:bomb"
routes = ["/bomb"]
memory_mb = {MEMORY_MB}

[functions.segfault]
entry = "functions/faults.py:segfault"
routes = ["/segfault"]

[functions.os-exit]
entry = "functions/faults.py:exit1"
routes = ["/os-exit"]

[functions.fork-bomb]
entry = "functions/faults.py:fork_bomb"
routes = ["/fork-bomb"]
timeout_ms = {TIMEOUT_MS}

[functions.fd-leak]
entry = "functions/faults.py:fd_leak"
routes = ["/fd-leak"]

[functions.snoop]
entry = "functions/faults.py:snoop"
routes = ["/snoop"]
env = {{ DB_PATH = "@DB@", TOKEN_PATH = "@TOKEN@", SETTINGS_PATH = "@SETTINGS@" }}

[functions.scribble]
entry = "functions/faults.py:scribble"
routes = ["/scribble"]
"""

OK = 'def handle(request):\n    return {"ok": True, "value": 42}\n'

FAULTS = f'''
import ctypes, errno, os, resource, time

LEAKED = []


def spin(request):
    while True:
        pass


def sleep(request):
    time.sleep(30)


def bomb(request):
    chunks = []
    while True:
        chunks.append(bytearray(1024 * 1024))


def segfault(request):
    ctypes.string_at(0)


def exit1(request):
    os._exit(1)


def fork_bomb(request):
    # Guard: without RLIMIT_NPROC (a platform not running as root) this would
    # take the machine down; and every process gives up by itself after 15 s.
    soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    if soft == resource.RLIM_INFINITY or soft > 4096:
        return "refused: no RLIMIT_NPROC"
    ctypes.CDLL(None).prctl(15, b"{BOMB_COMM}", 0, 0, 0)  # PR_SET_NAME, for cleanup
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.fork()
        except OSError:
            pass
    os._exit(0)


def fd_leak(request):
    opened = 0
    while True:
        try:
            LEAKED.append(open(os.devnull, "rb"))
            opened += 1
        except OSError as exc:
            return {{"opened": opened, "error": errno.errorcode.get(exc.errno, str(exc.errno)),
                     "limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}}


def _read(path):
    try:
        with open(path, "rb") as handle:
            return {{"read": len(handle.read())}}
    except OSError as exc:
        return {{"error": type(exc).__name__}}


def _environs_with(marker):
    """Every /proc/<pid>/environ this process can read that mentions marker."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{{name}}/environ", "rb") as handle:
                    if marker in handle.read():
                        found.append(int(name))
            except OSError:
                pass
    return found


def snoop(request):
    try:
        with open("/proc/self/environ", "rb") as handle:
            own = [item.split(b"=", 1)[0].decode() for item in handle.read().split(b"\\0") if item]
    except OSError as exc:
        own = type(exc).__name__
    return {{"environ": dict(os.environ), "request_env": request.env, "proc_self_environ": own,
             "environs_with_edge": _environs_with(b"EDGE_"),
             "environs_with_secret": _environs_with(b"hunter2"),
             "db": _read(os.environ["DB_PATH"]), "token": _read(os.environ["TOKEN_PATH"]),
             "settings": _read(os.environ["SETTINGS_PATH"]), "uid": os.getuid(),
             "gid": os.getgid(), "groups": os.getgroups()}}


def _attempt(action):
    try:
        action()
        return "done"
    except OSError as exc:
        return type(exc).__name__


def scribble(request):
    here = os.path.dirname(os.path.abspath(__file__))
    return {{
        "new_file": _attempt(lambda: open(os.path.join(here, "planted.py"), "w").close()),
        "append_own_code": _attempt(lambda: open(__file__, "a").close()),
        "chmod_own_code": _attempt(lambda: os.chmod(__file__, 0o777)),
        "unlink_own_code": _attempt(lambda: os.unlink(__file__)),
        "mkdir": _attempt(lambda: os.mkdir(os.path.join(here, "planted"))),
        "cwd_file": _attempt(lambda: open("planted.txt", "w").close()),
        "code_dir": here,
    }}
'''


@dataclass
class Faults:
    """The running stack and the deployed fault app."""

    stack: Stack
    master: int
    workers: set[int]

    @property
    def host(self) -> str:
        return self.stack.host(APP)

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return self.stack.get(self.host, path, **kwargs)

    def assert_workers_unchanged(self) -> None:
        assert worker_pids(self.master) == self.workers, (
            "a gunicorn worker was restarted:\n" + self.stack.log("runtime")[-3000:]
        )


def worker_pids(master: int) -> set[int]:
    """The gunicorn workers: children of the runtime's master process."""
    return {pid for pid in _pids() if _ppid(pid) == master}


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def app_uid(stack: Stack, app: str) -> int | None:
    """The uid an app's functions run as: from its id in the store and the uid block
    the stack's install holds on this host (None if unknown)."""
    store = Store.from_url(stack.config.database_url)
    try:
        return function_ids(app, store.get_app(app).id, reserve_base(stack.home))[0]
    except NotFoundError:
        return None
    finally:
        store.close()


def bomb_processes(faults: Faults) -> list[int]:
    uid = app_uid(faults.stack, APP)
    return [pid for pid in processes_of(uid) if _comm(pid) == BOMB_COMM] if uid else []


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    tmp = Path(tmp_path_factory.mktemp("faults"))
    # pytest's temp root is 0700: below it no function uid could reach any
    # platform file whatever its mode. Put EDGE_HOME where only its own modes count.
    base = Path(tempfile.mkdtemp(prefix="edge-faults-"))
    os.chmod(base, 0o711)
    redis = RedisServer(tmp / "redis.sock", tmp / "redis")
    redis.start()
    stack = None
    try:
        home = base / "home"
        stack = make_stack(
            base,
            f"sqlite:///{home / 'edge.db'}",
            redis.url,
            EDGE_MAX_BODY_MB=str(MAX_BODY_MB),
            **PLANTED_SECRETS,
        )
        os.chmod(home, 0o711)  # as `edge up` leaves it
        store = Store.from_url(stack.config.database_url)
        try:
            stack.token = admin_token(stack.config, store)  # $EDGE_HOME/admin.token, 0600
        finally:
            store.close()
        stack.start("platform")
        master = stack.start("runtime").pid
        workers = wait_for(
            lambda: len(w := worker_pids(master)) == 2 and w, message="two runtime workers"
        )
        assert isinstance(workers, set)
        result = Faults(stack, master, workers)
        _deploy(result, tmp / "app")
        yield result
    finally:
        uids = [app_uid(stack, app) for app in (APP, IMPORTER)] if stack else []
        if stack is not None:
            stack.close()
        # Function processes are in sessions of their own: make sure none outlives the stack.
        for uid in uids:
            if uid is not None:
                kill_all(processes_of(uid))
        redis.stop()
        shutil.rmtree(base, ignore_errors=True)


def _deploy(faults: Faults, folder: Path) -> None:
    home = faults.stack.home
    manifest = (
        MANIFEST.replace("@DB@", str(home / "edge.db"))
        .replace("@TOKEN@", str(home / "admin.token"))
        .replace("@SETTINGS@", str(home / "platform.json"))
    )
    work = Workdir(folder)
    work.commit(
        "faults", {"edge.toml": manifest, "functions/ok.py": OK, "functions/faults.py": FAULTS}
    )
    out = work.push(faults.stack.remote(APP))
    assert "v1 live at" in out.stderr, out.stderr
    assert faults.get("/ok").json() == {"ok": True, "value": 42}


@dataclass
class Load:
    """Threads calling the neighbour ``ok``, each request on a fresh connection."""

    faults: Faults
    issued: int = 0
    done: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        url = self.faults.stack.runtime_url + "/ok"
        headers = {"Host": self.faults.host}
        # No keep-alive: fresh connections spread over both gunicorn workers.
        with httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            while not self.stop.is_set():
                with self.lock:
                    self.issued += 1
                try:
                    resp = client.get(url, headers=headers)
                    problem = (
                        None
                        if resp.status_code == 200 and resp.json() == {"ok": True, "value": 42}
                        else f"{resp.status_code} {resp.text[:300]}"
                    )
                except (httpx.HTTPError, ValueError) as exc:
                    problem = repr(exc)
                with self.lock:
                    self.done += 1
                    if problem:
                        self.failures.append(problem)

    def counts(self) -> tuple[int, int]:
        """Requests issued and finished so far."""
        with self.lock:
            return self.issued, self.done


@contextmanager
def neighbour_keeps_serving(faults: Faults, threads: int = 3) -> Iterator[None]:
    """Load ``ok`` around the block; then: zero failures, the same gunicorn workers."""
    load = Load(faults)
    workers = [threading.Thread(target=load.run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    try:
        wait_for(lambda: load.counts()[1] >= 20, message="the neighbour's load to be running")
        issued_before, done_before = load.counts()
        yield
        issued_during, _ = load.counts()
        # Every request sent during the fault, and some after it, must have succeeded.
        wait_for(
            lambda: load.counts()[1] >= issued_during + 20,
            message="the neighbour's load after the fault",
        )
    finally:
        load.stop.set()
        for worker in workers:
            worker.join()
    assert load.failures == [], load.failures[:5]
    # A request overlapped the fault if it was in flight when the fault began or
    # was sent while it lasted (on a loaded machine a quick fault may see only the former).
    overlapping = (issued_before - done_before) + (issued_during - issued_before)
    assert overlapping > 0, "no request reached the neighbour during the fault"
    faults.assert_workers_unchanged()


def message(resp: httpx.Response) -> str:
    return str(resp.json()["message"])


# -- time -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["spin", "sleep"])
def test_a_function_past_its_timeout_is_killed_with_504(faults: Faults, name: str) -> None:
    with neighbour_keeps_serving(faults):
        first = faults.get(f"/{name}")
        second = faults.get(f"/{name}")  # a fresh instance, killed again
    for resp in (first, second):
        assert resp.status_code == 504, resp.text
        assert message(resp) == f"function {name} timed out after {TIMEOUT_MS} ms"
        assert 1.0 <= resp.elapsed.total_seconds() < 5.0  # killed at the limit, not later
    assert second.headers["x-edge-cold-start"] == "true"


# -- memory and crashes ----------------------------------------------------


def test_a_memory_bomb_is_502_memory_limit_exceeded(faults: Faults) -> None:
    with neighbour_keeps_serving(faults):
        resp = faults.get("/bomb")
    assert resp.status_code == 502, resp.text
    assert message(resp) == f"function bomb: memory limit of {MEMORY_MB} MB exceeded"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("segfault", "function segfault crashed: SIGSEGV"),
        ("os-exit", "function os-exit exited with status 1"),
    ],
)
def test_a_crash_is_502_with_the_reason(faults: Faults, name: str, reason: str) -> None:
    with neighbour_keeps_serving(faults):
        first = faults.get(f"/{name}")
        again = faults.get(f"/{name}")  # the dead instance was replaced
    for resp in (first, again):
        assert resp.status_code == 502, resp.text
        assert resp.json()["error"] == "crash"
        assert message(resp) == reason


# -- processes and files ---------------------------------------------------


def test_a_fork_bomb_is_contained_to_the_apps_process_limit(faults: Faults) -> None:
    uid = app_uid(faults.stack, APP)
    assert uid is not None
    nproc = Limits().nproc
    peak = 0

    def bombing() -> int:
        nonlocal peak
        peak = max(peak, len(processes_of(uid)))
        return len(bomb_processes(faults))

    try:
        with neighbour_keeps_serving(faults), ThreadPoolExecutor(1) as pool:
            call = pool.submit(faults.get, "/fork-bomb")
            wait_for(lambda: bombing() >= 100, timeout=10, message="the fork bomb to go off")
            while not call.done():
                bombing()
            resp = call.result()
            # The instance's process group is killed with it: nothing of the bomb is left.
            wait_for(lambda: not bombing(), timeout=10, message="the bomb's processes to die")
    finally:
        kill_all(bomb_processes(faults))
    assert resp.status_code == 504, resp.text
    assert message(resp) == f"function fork-bomb timed out after {TIMEOUT_MS} ms"
    assert peak <= nproc, f"{peak} processes of the app's uid, over RLIMIT_NPROC {nproc}"


def test_an_fd_leak_stops_at_the_open_files_limit(faults: Faults) -> None:
    nofile = Limits().nofile
    with neighbour_keeps_serving(faults):
        resp = faults.get("/fd-leak")
        again = faults.get("/fd-leak")  # the leaky instance (or a fresh one) still answers
    assert resp.status_code == 200 and again.status_code == 200, (resp.text, again.text)
    assert again.json()["error"] == "EMFILE"
    got = resp.json()
    assert got["error"] == "EMFILE" and got["limit"] == nofile
    # fds 0-2, the instance socket and a few directory pins are open already.
    assert nofile - 16 <= got["opened"] < nofile


def test_a_function_sees_only_its_own_env_and_cannot_read_platform_secrets(faults: Faults) -> None:
    """The function runs as its app's uid (the platform is root and drops to
    ``function_ids(app)`` before importing it), so the platform's files are
    only readable through their permissions, which allow the owner (root)
    alone: the admin token and platform.json are 0600. Its environment is its
    manifest's variables only: the zygote was exec'ed with a scrubbed env."""
    with neighbour_keeps_serving(faults):
        resp = faults.get("/snoop")
    assert resp.status_code == 200, resp.text
    seen = resp.json()
    home = faults.stack.home
    own = {
        "GREETING": "hello",
        "DB_PATH": str(home / "edge.db"),
        "TOKEN_PATH": str(home / "admin.token"),
        "SETTINGS_PATH": str(home / "platform.json"),
    }
    assert seen["environ"] == own
    assert seen["request_env"] == own
    uid = app_uid(faults.stack, APP)
    assert (seen["uid"], seen["gid"], seen["groups"]) == (uid, uid, [])
    # /proc/self/environ is the zygote's exec-time env: scrubbed (or unreadable,
    # since function processes are not dumpable).
    environ = seen["proc_self_environ"]
    if isinstance(environ, list):
        assert not [k for k in environ if k.startswith("EDGE_") or k in PLANTED_SECRETS]
    else:
        assert environ == "PermissionError"
    assert seen["environs_with_edge"] == [] and seen["environs_with_secret"] == []
    assert seen["token"] == {"error": "PermissionError"}
    assert seen["settings"] == {"error": "PermissionError"}


def test_a_function_cannot_read_the_platform_database(faults: Faults) -> None:
    """Same setup as above: the database file is root's, the function is not root."""
    with neighbour_keeps_serving(faults):
        resp = faults.get("/snoop")
    assert resp.status_code == 200, resp.text
    assert resp.json()["db"] == {"error": "PermissionError"}


def test_a_function_cannot_write_into_its_code(faults: Faults) -> None:
    with neighbour_keeps_serving(faults):
        resp = faults.get("/scribble")
    assert resp.status_code == 200, resp.text
    seen = resp.json()
    code_dir = Path(seen.pop("code_dir"))
    assert seen == dict.fromkeys(seen, "PermissionError")
    assert len(seen) == 6
    assert (code_dir / "faults.py").is_file() and not (code_dir / "planted.py").exists()
    assert faults.stack.home / "releases" in code_dir.parents


# -- requests ----------------------------------------------------------------


def test_a_request_body_over_the_limit_is_413(faults: Faults) -> None:
    limit = MAX_BODY_MB * 1024 * 1024

    def post(content: object) -> httpx.Response:
        # A connection of its own: see the next test for what happens to a reused one.
        return httpx.post(
            faults.stack.runtime_url + "/ok",
            headers={"Host": faults.host},
            content=content,
            timeout=30,
        )  # type: ignore[arg-type]

    with neighbour_keeps_serving(faults):
        at_limit = post(b"x" * limit)
        declared = post(b"x" * (limit + 1))
        chunked = post(iter([b"x" * limit, b"x"]))  # no content-length: counted as it streams
    assert at_limit.status_code == 200
    for resp in (declared, chunked):
        assert resp.status_code == 413, resp.text
        assert resp.json()["message"] == f"request body exceeds the {MAX_BODY_MB} MB limit"


def _read_response(reader: BinaryIO) -> str | None:
    """One HTTP/1.1 response's head (its body is read and dropped); None on EOF.

    ``reader`` is the socket's buffered file (``sock.makefile("rb")``): a second
    response that arrives in the same segment as the first stays buffered for
    the next call (read straight from the socket, it was dropped with the first
    body's excess, and the test then waited for it until keep-alive closed).
    """
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = reader.readline()
        if not line:
            return None
        head += line
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    if len(reader.read(length)) < length:
        return None
    return head.decode("latin-1")


def test_a_connection_that_got_413_is_closed_cleanly_or_stays_usable(faults: Faults) -> None:
    limit = MAX_BODY_MB * 1024 * 1024
    port = faults.stack.config.runtime_port
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        reader = sock.makefile("rb")
        sock.sendall(
            f"POST /ok HTTP/1.1\r\nHost: {faults.host}\r\n"
            f"Content-Length: {limit + 1}\r\n\r\n".encode()
            + b"x" * (limit + 1)
        )
        head = _read_response(reader)
        assert head is not None and head.startswith("HTTP/1.1 413")
        if "connection: close" in head.lower():
            return  # announced: a client opens a new connection
        sock.sendall(f"GET /ok HTTP/1.1\r\nHost: {faults.host}\r\n\r\n".encode())
        second = _read_response(reader)
    assert second is not None and second.startswith("HTTP/1.1 200"), (
        "the connection was closed after the 413 without 'Connection: close'"
    )


def test_a_large_request_queued_behind_a_slow_one_on_its_connection_is_answered(
    faults: Faults,
) -> None:
    """HTTP/1.1 pipelining, or a keep-alive client that sends its next request the
    moment a response arrives: the next request's bytes come in while the one before
    is still being answered. A 200 KB body there must wait its turn, not close the
    connection (gunicorn's C parser keeps at most 64 KB behind a finished request)."""
    port = faults.stack.config.runtime_port
    body = b"x" * (200 * 1024)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        reader = sock.makefile("rb")
        sock.sendall(
            f"GET /sleep HTTP/1.1\r\nHost: {faults.host}\r\n\r\n".encode()
            + f"POST /ok HTTP/1.1\r\nHost: {faults.host}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        first = _read_response(reader)
        second = _read_response(reader)
    assert first is not None and first.startswith("HTTP/1.1 504"), first
    assert second is not None and second.startswith("HTTP/1.1 200"), (
        "the request behind the slow one got no answer"
    )


# -- deploys -----------------------------------------------------------------


def test_a_release_that_fails_at_import_is_refused_and_v1_keeps_serving(
    faults: Faults, tmp_path: Path
) -> None:
    """The push-time load check imports the function in a template's sandbox: an
    import error rejects the ref with the import's own message, before anything moves."""
    stack = faults.stack
    app = IMPORTER
    work = Workdir(tmp_path / app)
    manifest = '[functions.main]\nentry = "main.py"\nroutes = ["/"]\n'
    work.commit(
        "v1", {"edge.toml": manifest, "main.py": "def handle(request):\n    return {'v': 1}\n"}
    )
    assert "v1 live at" in work.push(stack.remote(app)).stderr
    host = stack.host(app)
    assert stack.get(host, "/").json() == {"v": 1}
    work.commit(
        "v2",
        {
            "main.py": "raise RuntimeError('no config at import')\n"
            "def handle(request):\n    return {'v': 2}\n"
        },
    )
    with neighbour_keeps_serving(faults):
        pushed = work.push(stack.remote(app), check=False)
    out = pushed.stderr
    assert "RuntimeError: no config at import" in out, out
    assert pushed.returncode != 0 and "! [remote rejected] main -> main" in out, out
    remote_main = work.git("ls-remote", stack.remote(app), "main").stdout.split()[0]
    assert remote_main == work.git("rev-parse", "HEAD~1").stdout.strip()
    releases = stack.http.get(
        f"http://127.0.0.1:{stack.config.platform_port}/v1/apps/{app}/releases",
        headers={"Authorization": f"Bearer {stack.token}"},
    ).json()["releases"]
    assert [(r["version"], r["status"]) for r in releases] == [(1, "active")], releases
    for _ in range(20):  # both workers
        assert httpx.get(stack.runtime_url + "/", headers={"Host": host}).json() == {"v": 1}
