"""The worker checks what the V8 host replies, as it checks a Python instance's.

APPSEC: the V8 host runs untrusted code. It checks a function's headers itself,
but a host that code escaped from could send anything; the worker must not
write a CR or LF, or a header of the platform's, that it was handed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from function_harness import invocation

from edge.runtime.invocation import FunctionVersion, Outcome
from edge.runtime.js.pool import JsPool


class ForgingHost:
    """Stands in for a V8 host that answers every request with ``headers``."""

    def __init__(self, headers: Any) -> None:
        self.headers = headers
        self.cancelled: list[int] = []

    def register(self, key: str, spec: dict[str, Any], version: FunctionVersion) -> None:
        pass

    async def load(self, key: str) -> tuple[dict[str, Any], bool]:
        return {"cold_ms": 0.0}, False

    async def invoke(self, key: str, frame: list[Any]) -> list[Any]:
        return ["resp", 7, 200, self.headers, b"forged", [], None, 100, 0.0]

    def cancel(self, key: str, rid: int) -> None:
        self.cancelled.append(rid)


def answer(tmp_path: Path, headers: Any) -> Outcome:
    (tmp_path / "f.js").write_text("export default { fetch() { return new Response('') } };\n")
    version = FunctionVersion(
        key="k",
        app="shop",
        environment="production",
        release=1,
        name="f",
        runtime="js",
        root=tmp_path,
        path="f.js",
        handler="",
        env={},
        memory_mb=64,
        timeout_ms=1000,
    )
    pool = JsPool(version, ForgingHost(headers))  # type: ignore[arg-type]
    return asyncio.run(pool.invoke(invocation()))


@pytest.mark.parametrize(
    "headers",
    [
        [["x-a", "1\r\nset-cookie: stolen=1"]],
        [["x-a\r\nx-b", "1"]],
        [["x-a", "\n"]],
        [["x-a", "1", "extra"]],
        [["x-a", 1]],
        "not a list",
    ],
)
def test_a_forged_header_is_an_invalid_response_not_written(tmp_path: Path, headers: Any) -> None:
    outcome = answer(tmp_path, headers)
    assert (outcome.status, outcome.error) == (502, "invalid_response")
    assert b"stolen" not in outcome.body


def test_headers_of_the_platform_and_of_framing_are_dropped(tmp_path: Path) -> None:
    outcome = answer(
        tmp_path,
        [["x-edge-request-id", "forged"], ["content-length", "0"], ["x-ok", "yes"]],
    )
    assert (outcome.status, outcome.body) == (200, b"forged")
    assert outcome.headers == [("x-ok", "yes")]
