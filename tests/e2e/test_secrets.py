"""Secrets end to end: the real CLI, a real git push, the gunicorn runtime, real Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from stack import Stack, Workdir, free_port, wait_for

from edge.config import Config
from edge.redisserver import RedisServer

MANIFEST = """
[env]
API_BASE = "https://api.example.com"

[functions.py]
entry = "py.py"
routes = ["/py"]

[functions.js]
entry = "js.js"
routes = ["/js"]
"""
PY = """
def handle(request):
    return {"secret": request.env.get("DB_PASSWORD"), "base": request.env.get("API_BASE"),
            "code": CODE}

CODE = "a"
"""
JS = (
    "export default { fetch(request, env) {\n"
    "  return Response.json({ secret: env.DB_PASSWORD ?? null, base: env.API_BASE });\n"
    "} };\n"
)


def edge(
    stack: Stack, *args: str, stdin: str = "", check: bool = True
) -> subprocess.CompletedProcess[str]:
    """The real ``edge`` command against the stack's control plane, as a user runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        input=stdin,
        env={**stack.env, "EDGE_TOKEN": stack.token},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def deploy(
    stack: Stack, tmp_path: Path, files: dict[str, str] | None = None
) -> tuple[str, Workdir]:
    app = "sec-" + uuid.uuid4().hex[:6]
    work = Workdir(tmp_path / app)
    work.commit("v1", files or {"edge.toml": MANIFEST, "py.py": PY, "js.js": JS})
    out = work.push(stack.remote(app))
    assert "v1 live at" in out.stderr, out.stderr
    return app, work


def seen(stack: Stack, app: str, path: str, branch: str | None = None) -> object:
    response = stack.get(stack.host(app, branch), path)
    assert response.status_code == 200, response.text
    return response.json()["secret"]


def files_containing(root: Path, needle: bytes) -> list[Path]:
    """Every regular file under ``root`` whose bytes contain ``needle``."""
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def redis_keys_containing(client: redis.Redis, needle: bytes) -> list[str]:
    found = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            values = [client.get(key) or b""]
        elif kind == "stream":
            values = [repr(entry).encode() for entry in client.xrange(key)]
        elif kind == "hash":
            values = [repr(client.hgetall(key)).encode()]
        elif kind == "list":
            values = list(client.lrange(key, 0, -1))
        elif kind == "set":
            values = list(client.smembers(key))
        else:
            values = [repr(client.zrange(key, 0, -1, withscores=True)).encode()]
        if any(needle in value for value in values) or needle in key:
            found.append(key.decode())
    return found


def test_a_secret_set_by_cli_reaches_python_and_js_without_a_push_and_is_never_stored_plain(
    runtime_stack: Stack, tmp_path: Path
) -> None:
    stack = runtime_stack
    app, _ = deploy(stack, tmp_path)
    assert seen(stack, app, "/py") is None
    value = "pw-" + uuid.uuid4().hex

    started = time.monotonic()
    out = edge(stack, "secrets", "set", app, "DB_PASSWORD", stdin=value + "\n")
    wait_for(
        lambda: seen(stack, app, "/py") == value and seen(stack, app, "/js") == value,
        timeout=2.0 - (time.monotonic() - started),
        message="the secret in both functions within 2 s of `edge secrets set`",
    )
    assert "secret DB_PASSWORD set" in out.stdout and "v2 live at" in out.stdout, out.stdout
    assert stack.get(stack.host(app), "/py").json()["base"] == "https://api.example.com"

    listed = edge(stack, "secrets", "list", app)
    assert "DB_PASSWORD" in listed.stdout and value not in listed.stdout
    as_json = json.loads(edge(stack, "secrets", "list", app, "--json").stdout)
    assert [s["name"] for s in as_json["secrets"]] == ["DB_PASSWORD"]
    assert value not in json.dumps(as_json)
    releases = json.loads(edge(stack, "releases", app, "--json").stdout)["releases"]
    assert releases[0]["message"] == "secrets changed" and releases[0]["status"] == "active"
    assert value not in json.dumps(releases)

    # At rest: not in the database, the bundles, the logs, nor any other file or Redis key.
    assert files_containing(stack.home.parent, value.encode()) == []
    client = redis.Redis.from_url(stack.config.redis_url)
    try:
        assert redis_keys_containing(client, value.encode()) == []
    finally:
        client.close()

    started = time.monotonic()
    out = edge(stack, "secrets", "unset", app, "DB_PASSWORD")
    assert "secret DB_PASSWORD unset" in out.stdout, out.stdout
    wait_for(
        lambda: seen(stack, app, "/py") is None and seen(stack, app, "/js") is None,
        timeout=2.0 - (time.monotonic() - started),
        message="the secret gone from both functions within 2 s of `edge secrets unset`",
    )
    assert "DB_PASSWORD" not in edge(stack, "secrets", "list", app).stdout
    again = edge(stack, "secrets", "unset", app, "DB_PASSWORD", check=False)
    assert again.returncode == 1 and "has no secret DB_PASSWORD" in again.stderr


def test_a_preview_has_its_own_secrets_and_a_secret_beats_an_env_value_at_push(
    runtime_stack: Stack, tmp_path: Path
) -> None:
    stack = runtime_stack
    app, work = deploy(stack, tmp_path)
    edge(stack, "secrets", "set", app, "API_BASE", "--env", "feature-x", stdin="https://preview")
    work.git("checkout", "-q", "-b", "feature-x")
    out = work.push(stack.remote(app), "feature-x")
    assert "secret API_BASE overrides the edge.toml env value" in out.stderr, out.stderr
    preview = stack.get(stack.host(app, "feature-x"), "/js").json()
    assert preview["base"] == "https://preview"
    assert stack.get(stack.host(app), "/js").json()["base"] == "https://api.example.com"
    listed = edge(stack, "secrets", "list", app, "--env", "feature-x", "--json").stdout
    assert [s["name"] for s in json.loads(listed)["secrets"]] == ["API_BASE"]
    assert json.loads(edge(stack, "secrets", "list", app, "--json").stdout)["secrets"] == []


def test_rollback_brings_back_old_code_with_the_current_secrets(
    runtime_stack: Stack, tmp_path: Path
) -> None:
    stack = runtime_stack
    app, work = deploy(stack, tmp_path)  # v1: code a
    edge(stack, "secrets", "set", app, "DB_PASSWORD", stdin="one")  # v2
    work.commit("v3", {"py.py": PY.replace('CODE = "a"', 'CODE = "b"')})
    assert "v3 live at" in work.push(stack.remote(app)).stderr
    edge(stack, "secrets", "set", app, "DB_PASSWORD", stdin="two")  # v4
    assert stack.get(stack.host(app), "/py").json() == {
        "secret": "two",
        "base": "https://api.example.com",
        "code": "b",
    }

    out = edge(stack, "rollback", app)  # the previous code: v2 (v1's code, secrets changed)
    assert "to v2 as v5" in out.stdout, out.stdout
    assert "with the current secrets (DB_PASSWORD)" in out.stdout, out.stdout
    served = stack.get(stack.host(app), "/py").json()
    assert (served["code"], served["secret"]) == ("a", "two")  # old code, current secret

    edge(stack, "secrets", "unset", app, "DB_PASSWORD")  # v6
    edge(stack, "rollback", app, "--to", "4")  # v7: v4 had the secret "two"; it stays unset
    served = stack.get(stack.host(app), "/py").json()
    assert (served["code"], served["secret"]) == ("b", None)


def test_bad_secret_names_and_values_are_refused_and_change_nothing(
    runtime_stack: Stack, tmp_path: Path
) -> None:
    stack = runtime_stack
    app, _ = deploy(stack, tmp_path)
    bad_name = edge(stack, "secrets", "set", app, "1DB", stdin="x", check=False)
    assert bad_name.returncode == 1 and "secret name '1DB'" in bad_name.stderr
    empty = edge(stack, "secrets", "set", app, "DB", stdin="", check=False)
    assert empty.returncode == 1 and "no value for DB on stdin" in empty.stderr
    releases = json.loads(edge(stack, "releases", app, "--json").stdout)["releases"]
    assert [r["version"] for r in releases] == [1]


def test_a_secret_that_breaks_the_function_is_taken_back(
    runtime_stack: Stack, tmp_path: Path
) -> None:
    stack = runtime_stack
    picky = "import os\nif os.environ.get('MODE') == 'crash':\n    raise RuntimeError('MODE')\n"
    app, _ = deploy(stack, tmp_path, {"edge.toml": MANIFEST, "py.py": picky + PY, "js.js": JS})
    out = edge(stack, "secrets", "set", app, "MODE", stdin="crash", check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "failed to start" in out.stdout and "v1 keeps serving" in out.stdout, out.stdout
    assert "secret MODE is back to what it was before" in out.stdout, out.stdout
    assert json.loads(edge(stack, "secrets", "list", app, "--json").stdout)["secrets"] == []
    assert stack.get(stack.host(app), "/py").json()["code"] == "a"


def test_the_api_documents_secrets_checks_tokens_and_never_answers_a_value(
    runtime_stack: Stack, tmp_path: Path
) -> None:
    stack = runtime_stack
    base = f"http://127.0.0.1:{stack.config.platform_port}"
    spec = stack.http.get(f"{base}/v1/openapi.json").json()["paths"]
    assert set(spec["/v1/apps/{app}/secrets"]) == {"get"}
    assert set(spec["/v1/apps/{app}/secrets/{name}"]) == {"put", "delete"}

    app, _ = deploy(stack, tmp_path)
    other = edge(stack, "token", "create", "--app", "someone-else").stdout.strip()
    mine = edge(stack, "token", "create", "--app", app).stdout.strip()
    url = f"{base}/v1/apps/{app}/secrets/KEY"
    denied = stack.http.put(url, json={"value": "v"}, headers={"Authorization": f"Bearer {other}"})
    assert denied.status_code == 403, denied.text
    auth = {"Authorization": f"Bearer {mine}"}
    assert stack.http.put(url, json={"value": 42}, headers=auth).status_code == 400
    answer = stack.http.put(url, json={"value": "api-value-7"}, headers=auth)
    assert answer.status_code == 200 and answer.json()["release"]["status"] == "active"
    listed = stack.http.get(f"{base}/v1/apps/{app}/secrets", headers=auth)
    assert [s["name"] for s in listed.json()["secrets"]] == ["KEY"]
    for body in (answer.text, listed.text):
        assert "api-value-7" not in body
    assert stack.http.delete(url, headers=auth).status_code == 200
    assert stack.http.delete(url, headers=auth).status_code == 404


def test_a_runtime_node_on_another_host_opens_secrets_with_the_shared_key(
    own_stack: tuple[Stack, RedisServer], tmp_path: Path
) -> None:
    east, _ = own_stack
    east.start("platform")
    east.start("runtime")
    home = tmp_path / "west-home"  # no shared disk: no secret.key of its own
    home.mkdir()
    env = {
        **east.env,
        "EDGE_HOME": str(home),
        "EDGE_RUNTIME_PORT": str(free_port()),
        "EDGE_TOKEN": east.token,
        "EDGE_SECRET_KEY": (east.home / "secret.key").read_text().strip(),
    }
    west = Stack(home, env, Config.from_env(env), east.token)
    try:
        west.start("runtime")
        app, _ = deploy(east, tmp_path)
        out = edge(east, "secrets", "set", app, "DB_PASSWORD", stdin="shared")
        assert "v2 live at" in out.stdout and "not signed" not in out.stdout, out.stdout
        assert seen(west, app, "/py") == "shared" and seen(west, app, "/js") == "shared"
        assert not (home / "secret.key").exists()
    finally:
        west.close()


PEEK = """
import os

def handle(request):
    try:
        open(request.env["KEY_PATH"], "rb").read()
        key = "read"
    except OSError as exc:
        key = type(exc).__name__
    leaked = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                if b"EDGE_" in handle.read():
                    leaked.append(pid)
        except OSError:
            pass
    return {"key": key, "leaked": leaked, "own": [k for k in os.environ if k.startswith("EDGE_")]}
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="function uids apart from the platform's need root")
def test_a_function_cannot_read_the_platform_key(runtime_stack: Stack, tmp_path: Path) -> None:
    stack = runtime_stack
    key_path = stack.home / "secret.key"
    manifest = (
        f'[env]\nKEY_PATH = "{key_path}"\n[functions.peek]\nentry = "peek.py"\nroutes = ["/"]\n'
    )
    app, _ = deploy(stack, tmp_path, {"edge.toml": manifest, "peek.py": PEEK})
    assert key_path.is_file()
    peek = stack.get(stack.host(app), "/").json()
    assert peek == {"key": "PermissionError", "leaked": [], "own": []}
