"""`git push` deploys, end to end: real git client, real gunicorn, real Redis, both databases."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa
from dulwich.repo import Repo
from stack import Stack, Workdir, wait_for

from edge.platform.models import Release
from edge.platform.pending import PendingDeploys
from edge.platform.store import Store

MANIFEST = """
[functions.hello]
entry = "functions/hello.py"
routes = ["/", "/hello/:name"]
env = {{ GREETING = "{greeting}" }}
"""

HELLO = """
def handle(request):
    return {{"greeting": request.env["GREETING"], "name": request.params.get("name"),
             "version": "{version}"}}
"""


def app_name() -> str:
    return "app-" + uuid.uuid4().hex[:8]


def hello_files(version: str, greeting: str = "hi") -> dict[str, str]:
    return {
        "edge.toml": MANIFEST.format(greeting=greeting),
        "functions/hello.py": HELLO.format(version=version),
    }


def served_version(stack: Stack, app: str, branch: str | None = None) -> str | None:
    resp = stack.get(stack.host(app, branch), "/")
    return resp.json().get("version") if resp.status_code == 200 else None


def releases(stack: Stack, app: str, env: str = "production") -> list[dict]:
    resp = stack.http.get(
        f"http://127.0.0.1:{stack.config.platform_port}/v1/apps/{app}/releases",
        params={"env": env},
        headers={"Authorization": f"Bearer {stack.token}"},
    )
    resp.raise_for_status()
    return resp.json()["releases"]


def deploy(stack: Stack, tmp_path: Path, app: str, version: str) -> Workdir:
    work = Workdir(tmp_path / app)
    work.commit(version, hello_files(version))
    out = work.push(stack.remote(app), "main")
    assert "v1 live at http://" in out.stderr, out.stderr
    return work


def test_first_push_creates_app_and_second_push_deploys_v2(stack: Stack, tmp_path: Path) -> None:
    app = app_name()
    work = Workdir(tmp_path / "w")
    work.commit("first", hello_files("one", greeting="hey"))
    first = work.push(stack.remote(app))
    assert "Release v1 recorded" in first.stderr
    assert f"v1 live at http://{app}.edge.localhost:{stack.config.runtime_port}/" in first.stderr
    resp = stack.get(stack.host(app), "/hello/ada")
    assert resp.status_code == 200
    assert resp.json() == {"greeting": "hey", "name": "ada", "version": "one"}
    assert resp.headers["x-edge-release"] == "v1"

    work.commit("second", hello_files("two"))
    second = work.push(stack.remote(app))
    assert "v2 live at" in second.stderr
    assert served_version(stack, app) == "two"
    listed = releases(stack, app)
    assert [(r["version"], r["status"]) for r in listed] == [(2, "active"), (1, "superseded")]
    assert listed[0]["author"].startswith("Test Pusher")
    assert [f["name"] for f in listed[0]["functions"]] == ["hello"]


def test_invalid_manifest_is_rejected_and_previous_release_keeps_serving(
    stack: Stack, tmp_path: Path
) -> None:
    app = app_name()
    work = deploy(stack, tmp_path, app, "good")
    work.commit("too slow", {"edge.toml": MANIFEST.format(greeting="x") + "timeout_ms = 60000\n"})
    out = work.push(stack.remote(app), check=False)
    assert out.returncode != 0
    assert (
        "! [remote rejected] main -> main (edge.toml: functions.hello.timeout_ms: 60000 > 30000"
    ) in out.stderr
    assert served_version(stack, app) == "good"
    assert [r["version"] for r in releases(stack, app)] == [1]


def test_python_syntax_error_is_rejected_with_file_and_line(stack: Stack, tmp_path: Path) -> None:
    app = app_name()
    work = deploy(stack, tmp_path, app, "good")
    work.commit("broken", {"functions/hello.py": "def handle(request)\n    return 1\n"})
    out = work.push(stack.remote(app), check=False)
    assert out.returncode != 0
    assert "! [remote rejected] main -> main (functions/hello.py:1: SyntaxError" in out.stderr
    assert served_version(stack, app) == "good"
    # The rejected ref did not move: a clone still has the good commit.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", stack.remote(app), str(clone)], check=True)
    assert "good" in (clone / "functions/hello.py").read_text()


def test_preview_branch_gets_its_own_url_and_goes_away_when_deleted(
    stack: Stack, tmp_path: Path
) -> None:
    app = app_name()
    work = deploy(stack, tmp_path, app, "prod")
    work.git("checkout", "-q", "-b", "Feature/X_1")
    work.commit("preview", hello_files("preview"))
    out = work.push(stack.remote(app), "Feature/X_1")
    assert f"live at http://feature-x-1--{app}.edge.localhost:" in out.stderr
    assert served_version(stack, app, "feature-x-1") == "preview"
    assert served_version(stack, app) == "prod"

    out = work.push(stack.remote(app), ":Feature/X_1")
    assert "torn down" in out.stderr
    resp = stack.get(stack.host(app, "feature-x-1"), "/")
    assert resp.status_code == 404
    assert served_version(stack, app) == "prod"


def test_git_revert_redeploys_old_code_and_rollback_is_instant(
    stack: Stack, tmp_path: Path
) -> None:
    app = app_name()
    work = deploy(stack, tmp_path, app, "one")
    work.commit("two", hello_files("two"))
    work.push(stack.remote(app))
    work.git("revert", "--no-edit", "HEAD")
    out = work.push(stack.remote(app))
    assert "v3 live at" in out.stderr
    assert served_version(stack, app) == "one"

    cli = subprocess.run(
        [sys.executable, "-m", "edge.cli", "rollback", app, "--to", "2"],
        env={**stack.env, "EDGE_TOKEN": stack.token},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    assert "v4 live at" in cli.stdout
    assert served_version(stack, app) == "two"
    listed = releases(stack, app)
    assert listed[0]["version"] == 4 and listed[0]["rollback_of"] == 2
    assert listed[0]["status"] == "active"

    shown = subprocess.run(
        [sys.executable, "-m", "edge.cli", "releases", app],
        env={**stack.env, "EDGE_TOKEN": stack.token},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "rollback to v2" in shown.stdout


def test_concurrent_deploys_get_distinct_ordered_versions(stack: Stack, tmp_path: Path) -> None:
    """Two pushes to main and a rollback at once: releases never share a version, and
    a push whose base moved under it is refused cleanly, as git itself does."""
    app = app_name()
    base = deploy(stack, tmp_path, app, "base")
    base.commit("second", hello_files("second"))
    base.push(stack.remote(app))
    works = []
    for i in range(2):
        work = Workdir(tmp_path / f"w{i}")
        work.commit(f"c{i}", hello_files(f"c{i}"))
        works.append(work)
    pushes: list[subprocess.CompletedProcess[str]] = []
    rollback: list[httpx.Response] = []
    threads = [
        threading.Thread(
            target=lambda w=w: pushes.append(
                w.push(stack.remote(app), "main", "--force", check=False)
            )
        )
        for w in works
    ]
    threads.append(
        threading.Thread(
            target=lambda: rollback.append(
                stack.http.post(
                    f"http://127.0.0.1:{stack.config.platform_port}/v1/apps/{app}/rollback",
                    json={"to": 1},
                    headers={"Authorization": f"Bearer {stack.token}"},
                )
            )
        )
    )
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert rollback[0].status_code == 200, rollback[0].text
    landed = [p for p in pushes if p.returncode == 0]
    assert landed, [p.stderr for p in pushes]
    for push in pushes:
        assert push.returncode == 0 or "fetch, then push again" in push.stderr, push.stderr
    listed = releases(stack, app)
    versions = sorted(r["version"] for r in listed)
    assert versions == list(range(1, 3 + len(landed) + 1))
    newest = max(listed, key=lambda r: r["version"])
    assert newest["status"] == "active"
    expected = "base" if newest["rollback_of"] == 1 else newest["message"]
    assert served_version(stack, app) == expected


def test_wrong_token_is_rejected_and_nothing_is_stored(stack: Stack, tmp_path: Path) -> None:
    app = app_name()
    work = Workdir(tmp_path / "w")
    work.commit("first", hello_files("one"))
    out = work.push(stack.remote(app, token="edge_not-a-real-token"), check=False)
    assert out.returncode != 0
    assert "Authentication failed" in out.stderr or "401" in out.stderr
    other_app_token = _token(stack, "--app", "someone-else")
    out = work.push(stack.remote(app, token=other_app_token), check=False)
    assert out.returncode != 0
    assert "403" in out.stderr
    assert not (stack.home / "repos" / f"{app}.git").exists()
    store = Store.from_url(stack.config.database_url)
    try:
        assert app not in [a.name for a in store.list_apps()]
    finally:
        store.close()
    assert stack.get(stack.host(app), "/").status_code == 404


def test_app_token_can_push_its_own_app(stack: Stack, tmp_path: Path) -> None:
    app = app_name()
    token = _token(stack, "--app", app)
    work = Workdir(tmp_path / "w")
    work.commit("first", hello_files("mine"))
    out = work.push(stack.remote(app, token=token))
    assert "v1 live at" in out.stderr
    assert served_version(stack, app) == "mine"


def test_stock_git_push_to_the_repository_path_deploys(stack: Stack, tmp_path: Path) -> None:
    app = app_name()
    work = deploy(stack, tmp_path, app, "http")
    work.commit("local", hello_files("local"))
    repo_path = stack.home / "repos" / f"{app}.git"
    out = work.git("push", str(repo_path), "main", check=False)
    assert out.returncode == 0, out.stderr
    assert "v2 live at" in out.stderr
    wait_for(lambda: served_version(stack, app) == "local", message="the stock-git deploy")
    work.commit("bad", {"edge.toml": "[functions.hello]\nentry = 'missing.py'\nroutes=['/']\n"})
    out = work.git("push", str(repo_path), "main", check=False)
    assert out.returncode != 0
    assert "missing.py" in out.stderr
    assert served_version(stack, app) == "local"


def _token(stack: Stack, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "edge.cli", "token", "create", *args],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = result.stdout.strip()
    assert token.startswith("edge_") and "\n" not in token
    return token


def test_openapi_and_health(stack: Stack) -> None:
    base = f"http://127.0.0.1:{stack.config.platform_port}"
    assert stack.http.get(f"{base}/healthz").json()["ok"] is True
    spec = stack.http.get(f"{base}/v1/openapi.json").json()
    assert "/v1/apps/{app}/rollback" in spec["paths"]
    runtime = json.loads(stack.http.get(f"{stack.runtime_url}/healthz").text)
    assert runtime["ok"] is True
    # The worker froze what it built at startup (edge.runtime.server.load_app), so a
    # full collection never scans it.
    assert runtime["gc_frozen"] > 10_000, runtime


def test_a_revoked_token_stops_working_at_once(stack: Stack, tmp_path: Path) -> None:
    app = app_name()
    token = _token(stack, "--app", app, "--name", f"ci-{app}")
    work = Workdir(tmp_path / "w")
    work.commit("first", hello_files("one"))
    assert "v1 live at" in work.push(stack.remote(app, token=token)).stderr
    listed = subprocess.run(
        [sys.executable, "-m", "edge.cli", "token", "list", "--json"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    entry = next(t for t in json.loads(listed.stdout) if t["name"] == f"ci-{app}")
    assert entry["scope"] == app and token not in listed.stdout
    subprocess.run(
        [sys.executable, "-m", "edge.cli", "token", "revoke", str(entry["id"])],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    work.commit("second", hello_files("two"))
    out = work.push(stack.remote(app, token=token), check=False)
    assert out.returncode != 0
    assert served_version(stack, app) == "one"


def test_a_push_that_died_before_the_runtime_confirmed_it_is_undone_by_the_next(
    stack: Stack, tmp_path: Path
) -> None:
    """What a control plane killed mid-``go_live`` leaves: the branch moved, the
    environment pointing at a release still ``deploying``, and the push's marker.
    The next push moves the branch back, fails that release, serves the previous
    one again, then deploys the commit anew (the chaos suite kills a real push;
    this sets the same state up without its timing)."""
    app = app_name()
    work = deploy(stack, tmp_path, app, "1")
    first = work.git("rev-parse", "HEAD").stdout.strip()
    second = work.commit("2", hello_files("2"))
    assert "v2 live at" in work.push(stack.remote(app), "main").stderr
    engine = sa.create_engine(stack.config.database_url)
    try:
        with engine.begin() as db:
            for version, status in ((1, "active"), (2, "deploying")):
                db.execute(
                    sa.update(Release)
                    .where(Release.commit_sha == (first, second)[version - 1])
                    .values(status=status)
                )
    finally:
        engine.dispose()
    repo = Repo(str(stack.config.repos_dir / f"{app}.git"))
    PendingDeploys(repo).mark("refs/heads/main", first.encode(), second.encode())

    retried = work.push(stack.remote(app), "main")

    assert "v3 live at http://" in retried.stderr, retried.stderr
    assert served_version(stack, app) == "2"
    statuses = {r["version"]: r["status"] for r in releases(stack, app)}
    assert statuses == {1: "superseded", 2: "failed", 3: "active"}
    assert not PendingDeploys(repo).refs()
