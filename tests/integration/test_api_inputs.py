"""Every /v1 input is checked: a bad one is a 400 naming the field and the rule, never a 500.

The control plane's real WSGI app runs in this process on a real store (SQLite
and PostgreSQL: PostgreSQL refuses NUL characters that SQLite stores) and a
real Redis.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import pytest
from stack import fresh_postgres_database

from edge.config import Config
from edge.platform.app import create_app
from edge.platform.services import build_platform
from edge.platform.store import FunctionRecord
from edge.redisserver import RedisServer

APP = "shop"


def _function() -> FunctionRecord:
    return FunctionRecord(
        name="users",
        runtime="python",
        entry="users.py:handle",
        path="users.py",
        handler="handle",
        memory_mb=64,
        timeout_ms=5000,
        regions=["us-east"],
        env={},
        min_warm=0,
        max_instances=8,
        content_hash="users",
        routes=("/users",),
    )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[falcon.testing.TestClient, dict[str, str]]]:
    """The API on a store with app ``shop`` at v2 in production; an admin token's headers."""
    tmp = Path(tmp_path_factory.mktemp(f"api-inputs-{request.param}"))
    redis = RedisServer(tmp / "redis.sock", tmp / "redis")
    redis.start()
    try:
        if request.param == "sqlite":
            yield from _api(tmp, f"sqlite:///{tmp / 'edge.db'}", redis.url)
        else:
            with fresh_postgres_database() as url:
                yield from _api(tmp, url, redis.url)
    finally:
        redis.stop()


def _api(
    tmp: Path, database_url: str, redis_url: str
) -> Iterator[tuple[falcon.testing.TestClient, dict[str, str]]]:
    config = Config.from_env(
        {
            "EDGE_HOME": str(tmp / "home"),
            "EDGE_DATABASE_URL": database_url,
            "EDGE_REDIS_URL": redis_url,
            "EDGE_DEPLOY_TIMEOUT": "1",
        }
    )
    platform = build_platform(config)
    platform.store.migrate()
    try:
        store = platform.store
        token = store.create_token("admin", admin=True)
        store.get_or_create_app(APP, created_by="seed")
        store.get_or_create_environment(APP, "production", branch="main")
        for version in (1, 2):
            release = store.create_release(
                APP,
                "production",
                commit_sha=f"{version:040x}",
                artifact=f"{version:064x}",
                manifest_json="{}",
                functions=[_function()],
                created_by="seed",
                author="Seed <seed@example.com>",
                message=f"release {version}",
            )
            store.activate_release(release.id)
        client = falcon.testing.TestClient(create_app(platform))
        yield client, {"Authorization": f"Bearer {token}"}
    finally:
        platform.close()


def _releases(client: falcon.testing.TestClient, auth: dict[str, str]) -> list[int]:
    result = client.simulate_get(f"/v1/apps/{APP}/releases", headers=auth)
    assert result.status_code == 200
    return [r["version"] for r in result.json["releases"]]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("[1]", "JSON object"),
        ("2", "JSON object"),
        ('"x"', "JSON object"),
        ('{"to": 100000000000000000000000000000}', "'to': must be between 1 and"),
        ('{"to": -1}', "'to': must be between 1 and"),
        ('{"to": true}', "'to': must be a whole number"),
        ('{"to": "1"}', "'to': must be a whole number"),
        ('{"to": 1.5}', "'to': must be a whole number"),
        ('{"version": 1}', "unknown field 'version'"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"to": 1', "not valid JSON"),
    ],
)
def test_a_bad_rollback_body_is_refused_and_rolls_nothing_back(
    api: tuple[falcon.testing.TestClient, dict[str, str]], body: str, named: str
) -> None:
    client, auth = api
    before = _releases(client, auth)
    result = client.simulate_post(
        f"/v1/apps/{APP}/rollback",
        body=body,
        headers={**auth, "Content-Type": "application/json"},
    )
    assert result.status_code == 400, result.text
    assert named in result.json["error"]
    assert _releases(client, auth) == before


@pytest.mark.parametrize(
    ("path", "query", "named"),
    [
        ("logs", "since=inf", "since="),
        ("logs", "since=nan", "since="),
        ("logs", "since=1e400", "since="),
        ("logs", "since=-5m", "since="),
        ("logs", "since=9999999d", "since="),
        ("logs", "since=soon", "since="),
        ("logs", "limit=100000000000000000000000000", "limit="),
        ("logs", "limit=0", "limit="),
        ("logs", "limit=ten", "limit="),
        ("logs", "limit=", "limit="),
        ("logs", "follow=", "follow="),
        ("logs", "follow=maybe", "follow="),
        ("logs", "function=%00", "function="),
        ("logs", "function=Not_A_Label", "function="),
        ("logs", "env=%00", "env="),
        ("releases", "limit=99999999999999999999", "limit="),
        ("releases", "env=a%00b", "env="),
        ("releases", "env=" + "x" * 300, "env="),
        ("secrets", "env=%01", "env="),
        ("metrics", "env=%00", "env="),
        ("metrics/series", "minutes=0", "minutes="),
        ("metrics/series", "minutes=1e3", "minutes="),
        ("metrics/series", "histogram=2", "histogram="),
        ("metrics/series", "function=%00", "function="),
    ],
)
def test_a_bad_query_parameter_is_a_400_naming_it(
    api: tuple[falcon.testing.TestClient, dict[str, str]], path: str, query: str, named: str
) -> None:
    client, auth = api
    result = client.simulate_get(f"/v1/apps/{APP}/{path}", query_string=query, headers=auth)
    assert result.status_code == 400, result.text
    assert result.json["error"].startswith(named)


@pytest.mark.parametrize(
    ("method", "path", "body", "named"),
    [
        ("GET", "/v1/apps/Bad%00App/releases", None, "app name"),
        ("PUT", f"/v1/apps/{APP}/secrets/1BAD", '{"value": "v"}', "secret name"),
        ("PUT", f"/v1/apps/{APP}/secrets/GOOD", '["v"]', "JSON object"),
        ("PUT", f"/v1/apps/{APP}/secrets/GOOD", '{"value": 1}', "'value'"),
        ("PUT", f"/v1/apps/{APP}/secrets/GOOD", '{"value": "v", "x": 1}', "unknown field 'x'"),
        ("DELETE", f"/v1/apps/{APP}/secrets/%00", None, "secret name"),
        ("GET", f"/v1/bundles/{APP}/x%00y", None, "digest"),
        ("GET", f"/v1/apps/{APP}/kv?limit=0", None, "limit="),
        ("GET", f"/v1/apps/{APP}/kv?env=%00", None, "env="),
        ("PUT", f"/v1/apps/{APP}/kv/k", "[1]", "JSON object"),
        ("PUT", f"/v1/apps/{APP}/kv/k", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("PUT", f"/v1/apps/{APP}/kv/k", '{"value": "v", "tll": 5}', "unknown field 'tll'"),
    ],
)
def test_bad_paths_and_bodies_are_400s(
    api: tuple[falcon.testing.TestClient, dict[str, str]],
    method: str,
    path: str,
    body: str | None,
    named: str,
) -> None:
    client, auth = api
    result = client.simulate_request(method, path, body=body, headers=auth)
    assert result.status_code == 400, result.text
    assert named in result.json["error"]
    assert json.loads(result.text).keys() == {"error"}


def test_a_bad_last_event_id_is_refused_even_without_follow(
    api: tuple[falcon.testing.TestClient, dict[str, str]],
) -> None:
    client, auth = api
    result = client.simulate_get(
        f"/v1/apps/{APP}/logs", headers={**auth, "Last-Event-ID": "not-an-id"}
    )
    assert result.status_code == 400
    assert result.json["error"].startswith("Last-Event-ID")


def test_empty_text_parameters_mean_not_given(
    api: tuple[falcon.testing.TestClient, dict[str, str]],
) -> None:
    client, auth = api
    result = client.simulate_get(
        f"/v1/apps/{APP}/releases", query_string="env=&limit=1", headers=auth
    )
    assert result.status_code == 200
    assert result.json["environment"] == "production"
    assert [r["version"] for r in result.json["releases"]] == [2]
    logs = client.simulate_get(
        f"/v1/apps/{APP}/logs", query_string="function=&env=&since=", headers=auth
    )
    assert logs.status_code == 200, logs.text


def test_a_kv_value_may_be_larger_than_other_bodies(
    api: tuple[falcon.testing.TestClient, dict[str, str]],
) -> None:
    """KV bodies are capped by EDGE_KV_MAX_VALUE_MB (1 MiB here), not the API's 512 KiB."""
    client, auth = api
    value = "x" * 900_000
    put = client.simulate_put(f"/v1/apps/{APP}/kv/big", json={"value": value}, headers=auth)
    assert put.status_code == 200, put.text
    got = client.simulate_get(f"/v1/apps/{APP}/kv/big", headers=auth)
    assert got.json["value"] == value
    over = client.simulate_put(
        f"/v1/apps/{APP}/kv/big", json={"value": "x" * (1024 * 1024 + 1)}, headers=auth
    )
    assert over.status_code == 413, over.text
