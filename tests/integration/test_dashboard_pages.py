"""Dashboard pages on a big store: 50 apps, 1,000 releases, real SQLite and Redis.

The pages run in this process (the control plane's real WSGI app on the real
store and Redis), so the time measured is the server's alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import pytest

from edge.config import Config
from edge.logstream import emit_sync, platform_event
from edge.platform.app import create_app
from edge.platform.services import Platform, build_platform
from edge.platform.sessions import SESSION_TTL
from edge.platform.store import FunctionRecord
from edge.platform.tokens import hash_token
from edge.redisserver import RedisServer

APPS = 50
RELEASES_PER_APP = 20  # 1,000 in all
BUDGET_S = 0.100


def function(name: str) -> FunctionRecord:
    return FunctionRecord(
        name=name,
        runtime="python",
        entry=f"{name}.py:handle",
        path=f"{name}.py",
        handler="handle",
        memory_mb=64,
        timeout_ms=5000,
        regions=["us-east"],
        env={},
        min_warm=0,
        max_instances=8,
        content_hash=name,
        routes=(f"/{name}",),
    )


def seed(platform: Platform) -> str:
    store = platform.store
    token = store.create_token("admin", admin=True)
    for a in range(APPS):
        app = f"app{a:02d}"
        store.get_or_create_app(app, created_by="seed")
        store.get_or_create_environment(app, "production", branch="main")
        store.get_or_create_environment(app, "feature-x", branch="feature-x")
        for r in range(RELEASES_PER_APP):
            env = "production" if r % 4 else "feature-x"
            release = store.create_release(
                app,
                env,
                commit_sha=f"{r:040x}",
                artifact=f"{r:064x}",
                manifest_json="{}",
                functions=[function("users"), function("orders")],
                created_by="seed",
                author="Seed <seed@example.com>",
                message=f"release {r}",
            )
            store.activate_release(release.id)
        emit_sync(platform.redis, platform_event(app, "production", "v20 deployed"), 1000)
    return token


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[falcon.testing.TestClient, str]]:
    tmp = Path(tmp_path_factory.mktemp("dashboard-big"))
    redis = RedisServer(tmp / "redis.sock", tmp / "redis")
    redis.start()
    config = Config.from_env(
        {
            "EDGE_HOME": str(tmp / "home"),
            "EDGE_DATABASE_URL": f"sqlite:///{tmp / 'edge.db'}",
            "EDGE_REDIS_URL": redis.url,
        }
    )
    platform = build_platform(config)
    platform.store.migrate()
    try:
        token = seed(platform)
        client = falcon.testing.TestClient(create_app(platform))
        client.app.platform = platform  # type: ignore[attr-defined]
        yield client, sign_in(client, token)
    finally:
        platform.close()
        redis.stop()


def sign_in(client: falcon.testing.TestClient, token: str) -> str:
    form = client.simulate_get("/login")
    csrf = form.cookies["edge_login_csrf"].value
    result = client.simulate_post(
        "/login",
        body=f"csrf={csrf}&token={token}",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"edge_login_csrf={csrf}",
        },
    )
    assert result.status_code == 303, result.text
    return result.cookies["edge_session"].value


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/apps/app07",
        "/apps/app07?env=feature-x",
        "/apps/app07/logs",
        "/apps/app07/deploys",
        "/apps/app07/rollback?to=3",
    ],
)
def test_pages_answer_within_100_ms_with_50_apps_and_1000_releases(
    seeded: tuple[falcon.testing.TestClient, str], path: str
) -> None:
    client, session = seeded
    headers = {"Cookie": f"edge_session={session}"}
    assert client.simulate_get(path, headers=headers).status_code == 200  # warm caches
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        result = client.simulate_get(path, headers=headers)
        timings.append(time.perf_counter() - start)
        assert result.status_code == 200
    assert "app07" in result.text or path == "/"
    timings.sort()
    assert timings[2] < BUDGET_S, f"{path}: {[round(t * 1000, 1) for t in timings]} ms"


def test_the_apps_page_lists_every_app(seeded: tuple[falcon.testing.TestClient, str]) -> None:
    client, session = seeded
    text = client.simulate_get("/", headers={"Cookie": f"edge_session={session}"}).text
    assert text.count('<tr data-app="') == APPS
    assert "feature-x--app49" in text  # each preview with its URL


def test_a_session_reads_the_api_but_never_changes_anything(
    seeded: tuple[falcon.testing.TestClient, str],
) -> None:
    client, session = seeded
    cookie = {"Cookie": f"edge_session={session}"}
    series = client.simulate_get("/v1/apps/app07/metrics/series?minutes=5", headers=cookie)
    assert series.status_code == 200
    assert series.json == {"app": "app07", "minutes": 5, "functions": []}
    refused = client.simulate_post("/v1/apps/app07/rollback", json={"to": 1}, headers=cookie)
    assert refused.status_code == 401
    assert "/v1/apps/{app}/metrics/series" in client.simulate_get("/v1/openapi.json").json["paths"]


def test_sessions_expire_and_end_at_logout(
    seeded: tuple[falcon.testing.TestClient, str], tmp_path: Path
) -> None:
    client, _ = seeded
    platform: Platform = client.app.platform  # type: ignore[attr-defined]
    token = platform.store.create_token("short-lived", apps=["app01"])
    session = sign_in(client, token)
    cookie = {"Cookie": f"edge_session={session}"}
    ttl = platform.redis.ttl(f"edge:session:{hash_token(session)}")
    assert 0 < ttl <= SESSION_TTL  # type: ignore[operator]
    page = client.simulate_get("/", headers=cookie)
    assert page.text.count('<tr data-app="') == 1
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    out = client.simulate_post(
        "/logout",
        body=f"csrf={csrf}",
        headers={**cookie, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert out.status_code == 303
    assert client.simulate_get("/", headers=cookie).headers["location"].startswith("/login")


def test_a_bad_token_or_a_forged_sign_in_form_is_refused(
    seeded: tuple[falcon.testing.TestClient, str],
) -> None:
    client, _ = seeded
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    csrf = client.simulate_get("/login").cookies["edge_login_csrf"].value
    bad = client.simulate_post(
        "/login",
        body=f"csrf={csrf}&token=edge_nope",
        headers={**form, "Cookie": f"edge_login_csrf={csrf}"},
    )
    assert bad.status_code == 401
    assert "not valid" in bad.text
    forged = client.simulate_post("/login", body="csrf=x&token=edge_nope", headers=form)
    assert forged.status_code == 403
    assert "edge_session" not in forged.cookies


def test_redis_down_gives_a_clear_503(tmp_path: Path) -> None:
    config = Config.from_env(
        {
            "EDGE_HOME": str(tmp_path / "home"),
            "EDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'edge.db'}",
            "EDGE_REDIS_URL": f"unix://{tmp_path / 'no-redis.sock'}",
        }
    )
    platform = build_platform(config)
    platform.store.migrate()
    try:
        token = platform.store.create_token("admin", admin=True)
        platform.store.get_or_create_app("shop", created_by="admin")
        client = falcon.testing.TestClient(create_app(platform))
        page = client.simulate_get("/", headers={"Cookie": "edge_session=abc"})
        assert page.status_code == 503
        assert "Redis is unreachable" in page.text
        assert page.headers["content-type"].startswith("text/html")
        api = client.simulate_get(
            "/v1/apps/shop/metrics", headers={"Authorization": f"Bearer {token}"}
        )
        assert api.status_code == 503
        assert "Redis is unreachable" in api.json["error"]
    finally:
        platform.close()
