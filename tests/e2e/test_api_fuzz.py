"""Schemathesis against a real control plane's ``/v1/openapi.json`` (#14 item 8).

A real platform and runtime (gunicorn, Redis, PostgreSQL) with one app pushed by
git; schemathesis generates valid and invalid requests for every operation,
stateless and then stateful (following the document's links from the apps
list), with an admin token, and requires: no 5xx, every status, content type,
header and body as documented, invalid input refused with a 4xx. Bounded:
a fixed number of examples per operation and of stateful steps, no shrinking.

Nothing is excluded: log follow streams (``follow=1``) end by themselves here
because the stack's ``EDGE_MAX_STREAM_S`` is one second; bundles are served to
the admin token; git's smart-HTTP endpoints are not in the document.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.schemas import OpenApiSchema
from stack import Stack, Workdir, fresh_postgres_database, make_stack

from edge.platform.openapi import OPENAPI
from edge.redisserver import RedisServer

FILES = {
    "edge.toml": '[functions.hi]\nentry = "hi.py"\nroutes = ["/hi"]\n',
    "hi.py": "def handle(request):\n    print('hello')\n    return 'hi'\n",
}
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "ignored_auth",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
]
EXAMPLES = 12  # per operation and generation mode
BOUNDED = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=10),  # per call; with the examples, bounds the run
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack with app ``shop`` at v2 (so a rollback has somewhere to go).

    On PostgreSQL, which refuses what SQLite stores (NUL characters), so more
    bad input that slips through is found.
    """
    tmp = Path(tmp_path_factory.mktemp("fuzz"))
    redis = RedisServer(tmp / "redis.sock", tmp / "redis")
    redis.start()
    try:
        with fresh_postgres_database() as url:
            stack = make_stack(tmp, url, redis.url, EDGE_MAX_STREAM_S="1")
            try:
                yield _with_app(stack, tmp)
            finally:
                stack.close()
    finally:
        redis.stop()


def _with_app(stack: Stack, tmp: Path) -> Stack:
    stack.start("platform")
    stack.start("runtime")
    work = Workdir(tmp / "shop")
    work.commit("v1", FILES)
    assert "v1 live at" in work.push(stack.remote("shop")).stderr
    work.commit("v2", {"hi.py": FILES["hi.py"].replace("'hi'", "'hi 2'")})
    assert "v2 live at" in work.push(stack.remote("shop")).stderr
    stack.get(stack.host("shop"), "/hi")  # a log line and metrics to list
    return stack


@pytest.fixture(scope="module")
def api_schema(fuzzed: Stack) -> OpenApiSchema:
    """The served document, with the admin token and the app's real names mixed in.

    Random app names only ever reach a 404, so most cases (a dictionary binding)
    use the pushed app, its secrets, versions and release bundle instead.
    """
    base = f"http://127.0.0.1:{fuzzed.config.platform_port}"
    auth = {"Authorization": f"Bearer {fuzzed.token}"}
    releases = fuzzed.http.get(f"{base}/v1/apps/shop/releases", headers=auth).json()["releases"]
    real = {
        "path.app": ["shop"],
        "path.name": ["DATABASE_URL", "API_KEY"],
        "path.digest": [r["artifact"] for r in releases],
        "body.to": [r["version"] for r in releases],
        "query.function": ["hi"],
        "path.key": ["greeting", "a/b"],
    }
    config = schemathesis.Config.from_dict(
        {
            # The document's security scheme `token`, so the auth checks know it is real.
            "auth": {"openapi": {"token": {"bearer": fuzzed.token}}},
            "request-timeout": 10,
            "dictionaries": {key: {"values": values} for key, values in real.items()},
            "parameters": {key: {"dictionary": key, "probability": 0.7} for key in real},
            "checks": {"enabled": False} | {name: {"enabled": True} for name in CHECKS},
        }
    )
    return schemathesis.openapi.from_url(f"{base}/v1/openapi.json", config=config)


# One test per operation and mode, named from the document the server serves (the
# same object). schemathesis's own pytest plugin (`from_fixture(...).parametrize()`)
# does not run under pytest 9 (it sets the removed `Function._nodeid`).
OPERATIONS = sorted(op["operationId"] for path in OPENAPI["paths"].values() for op in path.values())


@pytest.mark.parametrize(
    ("operation_id", "mode"),
    [
        (operation_id, mode)
        for operation_id in OPERATIONS
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        # GET /v1/apps takes no input, so there is nothing to make invalid.
        if (operation_id, mode) != ("listApps", GenerationMode.NEGATIVE)
    ],
)
def test_every_operation_conforms(
    api_schema: OpenApiSchema, operation_id: str, mode: GenerationMode
) -> None:
    operation = api_schema.find_operation_by_id(operation_id)

    @given(case=operation.as_strategy(generation_mode=mode))
    @BOUNDED
    def conforms(case: schemathesis.Case) -> None:
        case.call_and_validate()

    conforms()


def test_chained_calls_conform(api_schema: OpenApiSchema) -> None:
    """Sequences of calls along the document's links, e.g. apps -> releases -> rollback."""
    steps: list[tuple[str, int]] = []

    class Recorded(api_schema.as_state_machine()):  # type: ignore[misc]
        def after_call(self, response: schemathesis.Response, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            steps.append((case.operation.label, response.status_code))

    Recorded.run(settings=settings(BOUNDED, max_examples=15, stateful_step_count=6))
    answered = {label for label, status in steps if status == 200}
    # The chains reached the app and changed it (a vacuous run would pass the checks too).
    assert {"GET /v1/apps", "POST /v1/apps/{app}/rollback"} <= answered, steps


def test_a_chunked_body_is_read(fuzzed: Stack) -> None:
    """A body without Content-Length (chunked) is checked like any other."""
    url = f"http://127.0.0.1:{fuzzed.config.platform_port}/v1/apps/shop/rollback"
    auth = {"Authorization": f"Bearer {fuzzed.token}", "Content-Type": "application/json"}
    resp = fuzzed.http.post(url, content=iter([b'{"to":', b" 0}"]), headers=auth)
    assert resp.status_code == 400, resp.text
    assert "'to'" in resp.json()["error"]
