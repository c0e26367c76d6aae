"""The control-plane store on real SQLite and real PostgreSQL (each test: a fresh database)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from edge.errors import ConflictError, EdgeError, NotFoundError
from edge.keyring import Keyring, decode_key, new_key
from edge.manifest import FunctionSpec
from edge.platform.store import FunctionRecord, ReleaseInfo, Store
from edge.platform.tokens import hash_token
from edge.routes import RoutePattern
from edge.secretenv import place, unseal


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store.from_url(database_url)
    store.migrate()
    yield store
    store.close()


def function(name: str = "users", *routes: str, content_hash: str = "h1") -> FunctionRecord:
    return FunctionRecord(
        name=name,
        runtime="python",
        entry=f"functions/{name}.py:handle",
        path=f"functions/{name}.py",
        handler="handle",
        memory_mb=64,
        timeout_ms=5000,
        regions=["us-east", "ap-tokyo"],
        env={"TABLE": name},
        min_warm=1,
        max_instances=8,
        content_hash=content_hash,
        routes=routes or (f"/api/{name}",),
    )


def release(
    store: Store,
    app: str = "shop",
    env: str = "production",
    *,
    functions: list[FunctionRecord] | None = None,
    artifact: str = "a" * 64,
    message: str = "Add users",
    rollback_of: int | None = None,
) -> ReleaseInfo:
    return store.create_release(
        app,
        env,
        commit_sha="c0ffee" * 6 + "abcd",
        artifact=artifact,
        manifest_json='{"app": "shop"}',
        functions=functions or [function()],
        created_by="ci",
        author="Ada <ada@example.com>",
        message=message,
        rollback_of=rollback_of,
    )


def app_with_envs(store: Store, app: str = "shop", *envs: tuple[str, str]) -> None:
    store.get_or_create_app(app, created_by="admin")
    for name, branch in (("production", "main"), *envs):
        store.get_or_create_environment(app, name, branch)


def dump(database_url: str) -> str:
    """Every row of every table, as text."""
    engine = sa.create_engine(database_url)
    metadata = sa.MetaData()
    metadata.reflect(engine)
    with engine.connect() as conn:
        rows = [
            repr(row)
            for table in metadata.tables.values()
            for row in conn.execute(sa.select(table))
        ]
    engine.dispose()
    return "\n".join(rows)


# -- tokens --------------------------------------------------------------------


def test_token_secret_is_returned_once_and_never_stored(store: Store, database_url: str) -> None:
    secret = store.create_token("ci", apps=["shop"])
    assert secret.startswith("edge_") and len(secret) > 40
    assert store.authenticate(secret) is not None
    contents = dump(database_url)
    assert secret not in contents
    assert secret.removeprefix("edge_") not in contents
    assert hash_token(secret) in contents
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        for file in path.parent.glob(path.name + "*"):  # the database, its WAL and SHM
            assert secret.encode() not in file.read_bytes()


def test_tokens_authenticate_with_their_scope(store: Store) -> None:
    admin = store.create_token("root", admin=True)
    scoped = store.create_token("shop-ci", apps=["shop", "blog"])

    admin_info = store.authenticate(admin)
    assert admin_info is not None
    assert admin_info.name == "root" and admin_info.admin
    assert admin_info.can_access("anything")

    info = store.authenticate(scoped)
    assert info is not None
    assert not info.admin and info.apps == frozenset({"shop", "blog"})
    assert info.can_access("shop") and info.can_access("blog")
    assert not info.can_access("bank")

    assert store.authenticate(scoped + "x") is None
    assert store.authenticate("") is None


def test_authenticate_records_last_use(store: Store, database_url: str) -> None:
    secret = store.create_token("ci")
    engine = sa.create_engine(database_url)
    query = sa.text("SELECT last_used_at FROM tokens")
    with engine.connect() as conn:
        assert conn.execute(query).scalar() is None
    store.authenticate(secret)
    with engine.connect() as conn:
        assert conn.execute(query).scalar() is not None
    engine.dispose()


def test_revoked_token_stops_working(store: Store) -> None:
    secret = store.create_token("ci", apps=["shop"])
    info = store.authenticate(secret)
    assert info is not None
    store.revoke_token(info.id)
    assert store.authenticate(secret) is None
    with pytest.raises(NotFoundError, match=f"token #{info.id} not found"):
        store.revoke_token(info.id)


def test_token_scope_must_name_valid_apps(store: Store) -> None:
    with pytest.raises(EdgeError, match="app name 'Shop_1'"):
        store.create_token("ci", apps=["Shop_1"])


# -- apps and environments -----------------------------------------------------


def test_get_or_create_app_is_idempotent(store: Store) -> None:
    first = store.get_or_create_app("shop", created_by="alice")
    again = store.get_or_create_app("shop", created_by="bob")
    assert again.id == first.id and again.created_by == "alice"
    assert first.created_at.tzinfo is not None
    assert store.get_app("shop") == first


def test_unknown_names_say_what_was_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="app 'nope' not found; `edge apps` lists them"):
        store.get_app("nope")
    with pytest.raises(NotFoundError, match="app 'nope' not found"):
        store.list_releases("nope")
    app_with_envs(store)
    with pytest.raises(NotFoundError, match="environment 'feature-x' of app 'shop' not found"):
        store.active_release("shop", "feature-x")
    with pytest.raises(
        NotFoundError,
        match=r"release v9 of shop/production not found; "
        r"`edge releases shop` lists them",
    ):
        store.get_release("shop", "production", 9)
    with pytest.raises(NotFoundError, match="release #12345 not found"):
        store.activate_release(12345)


def test_bad_app_name_is_rejected(store: Store) -> None:
    with pytest.raises(EdgeError, match="is not a DNS label"):
        store.get_or_create_app("-bad-", created_by="admin")
    assert store.list_apps() == []


def test_list_apps_shows_live_environments_and_active_versions(store: Store) -> None:
    app_with_envs(store, "shop", ("feature-x", "feature/x"))
    app_with_envs(store, "blog")
    store.activate_release(release(store).id)
    store.activate_release(release(store).id)
    release(store)  # v3 is still deploying

    apps = store.list_apps()
    assert [app.name for app in apps] == ["blog", "shop"]
    blog, shop = apps
    assert [(e.name, e.active_version) for e in blog.environments] == [("production", None)]
    assert [(e.name, e.branch, e.active_version, e.last_version) for e in shop.environments] == [
        ("feature-x", "feature/x", None, 0),
        ("production", "main", 2, 3),
    ]
    assert store.list_environments("shop") == list(shop.environments)


def test_environment_name_taken_by_another_branch_is_a_conflict(store: Store) -> None:
    app_with_envs(store, "shop", ("feature-x", "feature/x"))
    with pytest.raises(ConflictError, match="already serves branch 'feature/x'"):
        store.get_or_create_environment("shop", "feature-x", "feature-x")
    again = store.get_or_create_environment("shop", "feature-x", "feature/x")
    assert again.branch == "feature/x" and again.deleted_at is None


def test_delete_environment_disables_its_release_and_undeletes_on_push(store: Store) -> None:
    app_with_envs(store, "shop", ("feature-x", "feature/x"))
    preview = store.activate_release(release(store, env="feature-x").id)
    before = store.routes_version()

    assert store.delete_environment("shop", "feature-x") == before + 1
    assert store.routes_version() == before + 1
    assert [e.name for e in store.list_environments("shop")] == ["production"]
    assert store.get_release("shop", "feature-x", 1).status == "disabled"
    assert store.active_release("shop", "feature-x") is None
    with pytest.raises(NotFoundError, match="environment 'feature-x' of app 'shop'"):
        store.delete_environment("shop", "feature-x")
    with pytest.raises(NotFoundError):
        release(store, env="feature-x")

    env = store.get_or_create_environment("shop", "feature-x", "feature-x")
    assert env.deleted_at is None and env.branch == "feature-x" and env.last_version == 1
    assert release(store, env="feature-x").version == 2  # history kept, no reuse
    assert preview.version == 1


def test_production_cannot_be_deleted(store: Store) -> None:
    app_with_envs(store)
    with pytest.raises(ConflictError, match="only previews"):
        store.delete_environment("shop", "production")
    assert [e.name for e in store.list_environments("shop")] == ["production"]


# -- releases ------------------------------------------------------------------


def test_release_lifecycle_supersedes_the_previous_release(store: Store) -> None:
    app_with_envs(store)
    v1 = release(
        store,
        functions=[
            function("users", "/api/users", "GET /api/users/:id"),
            function("auth", "POST /login"),
        ],
    )
    assert (v1.version, v1.status, v1.app, v1.environment) == (1, "deploying", "shop", "production")
    assert [f.name for f in v1.functions] == ["auth", "users"]
    assert store.active_release("shop", "production") is None

    assert store.activate_release(v1.id).status == "active"
    v2 = release(store, message="Faster users")
    active = store.activate_release(v2.id)
    assert (active.version, active.status, active.message) == (2, "active", "Faster users")

    assert store.get_release("shop", "production", 1).status == "superseded"
    assert store.active_release("shop", "production") == active
    listed = store.list_releases("shop")
    assert [(r.version, r.status) for r in listed] == [(2, "active"), (1, "superseded")]
    assert listed[1].functions == store.get_release("shop", "production", 1).functions
    assert listed[1].functions[1].routes == ("/api/users", "GET /api/users/:id")
    assert [r.version for r in store.list_releases("shop", limit=1)] == [2]


def test_a_release_never_confirmed_is_superseded_by_the_next_confirmed_one(
    store: Store,
) -> None:
    app_with_envs(store)
    unconfirmed = release(store)
    before = store.routes_version()
    assert store.point_environment(unconfirmed.id) == before + 1  # served, status unchanged
    assert store.get_release("shop", "production", 1).status == "deploying"
    confirmed = release(store)
    store.point_environment(confirmed.id)
    assert store.mark_active(confirmed.id).status == "active"
    statuses = [(r.version, r.status) for r in store.list_releases("shop")]
    assert statuses == [(2, "active"), (1, "superseded")]


def test_release_round_trips_every_field(store: Store) -> None:
    app_with_envs(store)
    created = release(store)
    got = store.get_release("shop", "production", 1)
    assert got == created
    assert got.commit_sha == "c0ffee" * 6 + "abcd" and got.artifact == "a" * 64
    assert got.manifest_json == '{"app": "shop"}'
    assert (got.created_by, got.author, got.message) == ("ci", "Ada <ada@example.com>", "Add users")
    assert got.created_at.tzinfo is not None and got.rollback_of is None
    assert got.functions == (function(),)


def test_failed_release_keeps_its_reason_and_cannot_go_live(store: Store) -> None:
    app_with_envs(store)
    live = store.activate_release(release(store).id)
    broken = release(store)
    before = store.routes_version()
    store.mark_failed(broken.id, "users: failed to start: ImportError")
    failed = store.get_release("shop", "production", 2)
    assert (failed.status, failed.status_reason) == (
        "failed",
        "users: failed to start: ImportError",
    )
    with pytest.raises(ConflictError, match=r"failed .*ImportError"):
        store.activate_release(broken.id)
    assert store.routes_version() == before
    assert store.active_release("shop", "production") == live


def test_rollback_release_records_the_version_it_restores(store: Store) -> None:
    app_with_envs(store)
    v1 = store.activate_release(release(store, artifact="1" * 64).id)
    store.activate_release(release(store, artifact="2" * 64).id)
    v3 = store.activate_release(release(store, artifact=v1.artifact, rollback_of=1).id)
    assert (v3.version, v3.rollback_of, v3.artifact) == (3, 1, "1" * 64)
    with pytest.raises(NotFoundError, match="release v7 of shop/production"):
        release(store, rollback_of=7)
    assert store.get_or_create_environment("shop", "production", "main").last_version == 3


def test_routes_version_bumps_only_when_serving_changes(store: Store) -> None:
    assert store.routes_version() == 0
    app_with_envs(store, "shop", ("feature-x", "feature/x"))
    v1 = release(store)
    assert store.routes_version() == 0
    store.activate_release(v1.id)
    assert store.routes_version() == 1
    store.activate_release(v1.id)  # already live: nothing changes
    assert store.routes_version() == 1
    store.activate_release(release(store).id)
    assert store.routes_version() == 2
    store.activate_release(v1.id)  # rollback by reactivation
    assert store.routes_version() == 3
    assert store.get_release("shop", "production", 2).status == "superseded"
    store.delete_environment("shop", "feature-x")
    assert store.routes_version() == 4


def test_function_record_from_manifest_spec() -> None:
    spec = FunctionSpec(
        name="users",
        entry="functions/users.py:handle",
        path="functions/users.py",
        handler="handle",
        runtime="python",
        routes=(
            RoutePattern("/api/users", None, ("api", "users")),
            RoutePattern("GET /api/users/:id", "GET", ("api", "users", ":id")),
        ),
        memory_mb=64,
        timeout_ms=5000,
        regions=("us-east", "ap-tokyo"),
        env=(("TABLE", "users"),),
        min_warm=1,
        max_instances=8,
    )
    record = FunctionRecord.from_spec(spec, "h1")
    assert record == function("users", "/api/users", "GET /api/users/:id")


def test_routes_are_stored_with_method_and_path(store: Store, database_url: str) -> None:
    app_with_envs(store)
    release(store, functions=[function("users", "/api/users", "GET /api/users/:id")])
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT function_name, pattern, method, path FROM routes ORDER BY position")
        ).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [
        ("users", "/api/users", None, "/api/users"),
        ("users", "GET /api/users/:id", "GET", "/api/users/:id"),
    ]


# -- runtime -------------------------------------------------------------------


def test_routing_snapshot_holds_every_live_environment(store: Store) -> None:
    app_with_envs(store, "shop", ("feature-x", "feature/x"), ("old", "old"))
    app_with_envs(store, "blog")
    shop = store.activate_release(
        release(
            store,
            functions=[
                function("users", "/api/users", "GET /api/users/:id"),
                function("auth", "/login"),
            ],
        ).id
    )
    preview = store.activate_release(
        release(
            store,
            env="feature-x",
            artifact="f" * 64,
            functions=[function("users", "/v2/users", content_hash="h2")],
        ).id
    )
    store.activate_release(release(store, env="old").id)
    store.delete_environment("shop", "old")
    release(store, "blog")  # deploying only: not served

    snapshot = store.routing_snapshot()
    assert snapshot.version == store.routes_version() == 4
    assert [(e.app, e.environment, e.version, e.release_id) for e in snapshot.environments] == [
        ("shop", "feature-x", 1, preview.id),
        ("shop", "production", 1, shop.id),
    ]
    feature, production = snapshot.environments
    assert feature.artifact == "f" * 64
    assert feature.functions == (function("users", "/v2/users", content_hash="h2"),)
    assert [(f.name, f.routes) for f in production.functions] == [
        ("auth", ("/login",)),
        ("users", ("/api/users", "GET /api/users/:id")),
    ]


def test_routing_snapshot_of_an_empty_platform(store: Store) -> None:
    snapshot = store.routing_snapshot()
    assert (snapshot.version, snapshot.environments) == (0, ())


# -- concurrency ---------------------------------------------------------------

THREADS, PER_THREAD = 8, 10


@pytest.mark.parametrize("shared", [True, False], ids=["one-store", "store-per-thread"])
def test_concurrent_releases_get_distinct_gapless_versions(
    store: Store, database_url: str, shared: bool
) -> None:
    app_with_envs(store)

    def create_many(_: int) -> list[int]:
        mine = store if shared else Store.from_url(database_url)
        try:
            return [release(mine).version for _ in range(PER_THREAD)]
        finally:
            if not shared:
                mine.close()

    with ThreadPoolExecutor(THREADS) as pool:
        versions = [v for batch in pool.map(create_many, range(THREADS)) for v in batch]
    assert sorted(versions) == list(range(1, THREADS * PER_THREAD + 1))
    listed = store.list_releases("shop", limit=1000)
    assert [r.version for r in listed] == list(range(THREADS * PER_THREAD, 0, -1))


CHILD = """
import sys
from edge.platform.store import FunctionRecord, Store
store = Store.from_url(sys.argv[1])
for _ in range(10):
    r = store.create_release("shop", "production", commit_sha="c", artifact="a",
                             manifest_json="{}", functions=[], created_by="ci",
                             author="a", message="m")
    print(r.version)
"""


def test_concurrent_releases_from_separate_processes(store: Store, database_url: str) -> None:
    app_with_envs(store)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0] * 4, outcomes
    versions = sorted(int(line) for out, _ in outcomes for line in out.split())
    assert versions == list(range(1, 41))


def test_sqlite_database_uses_write_ahead_logging(sqlite_url: str) -> None:
    store = Store.from_url(sqlite_url)
    store.migrate()
    store.close()
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


# -- secrets -------------------------------------------------------------------


def keyring() -> Keyring:
    return Keyring([decode_key(new_key(), "test")])


def test_secrets_are_stored_sealed_and_listed_by_name(store: Store, database_url: str) -> None:
    app_with_envs(store)
    ring = keyring()
    before = store.routes_version()
    sealed = ring.seal(place("shop", "production", "DB"), "plain-value-42")
    assert store.put_secret("shop", "production", "DB", sealed, by="ci") is None
    assert store.routes_version() == before + 1  # what the runtime serves changed
    store.put_secret("shop", "feature-x", "DB", ring.seal("shop/feature-x/DB", "p"), by="ci")
    assert "plain-value-42" not in dump(database_url)
    assert [(s.name, s.updated_by) for s in store.list_secrets("shop", "production")] == [
        ("DB", "ci")
    ]
    assert store.put_secret("shop", "production", "DB", None, by="ci") == sealed
    assert store.list_secrets("shop", "production") == []
    assert [s.name for s in store.list_secrets("shop", "feature-x")] == ["DB"]
    with pytest.raises(EdgeError, match="secret name '9X'"):
        store.put_secret("shop", "production", "9X", sealed, by="ci")
    with pytest.raises(NotFoundError, match="app 'nope' not found"):
        store.list_secrets("nope", "production")


def test_the_runtime_opens_secrets_into_the_env_and_a_new_pool_identity(store: Store) -> None:
    app_with_envs(store)
    store.activate_release(release(store).id)
    plain = store.routing_snapshot().environments[0].functions[0]
    ring = keyring()
    for name, value in (("TABLE", "from-secret"), ("DB", "pw")):
        sealed = ring.seal(place("shop", "production", name), value)
        store.put_secret("shop", "production", name, sealed, by="ci")

    snapshot = store.routing_snapshot()
    assert "pw" not in repr(snapshot)
    opened, failures = unseal(snapshot, ring)
    assert failures == {}
    record = opened.environments[0].functions[0]
    assert record.env == {"TABLE": "from-secret", "DB": "pw"}  # the secret wins over [env]
    assert record.content_hash != plain.content_hash  # new values, new pools
    assert unseal(store.routing_snapshot(), ring)[0] == opened  # same values, same pools

    wrong, failures = unseal(snapshot, keyring())
    assert list(failures) == ["shop/production/(secrets)"]
    assert "EDGE_SECRET_KEY" in failures["shop/production/(secrets)"]
    assert wrong.environments[0].functions[0].env == {"TABLE": "users"}
