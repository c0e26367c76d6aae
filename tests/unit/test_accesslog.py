"""The access log writes the same JSON lines ``json.dumps`` would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.runtime.accesslog import FIELDS, AccessLog

ENTRIES = [
    (
        1764252000.123456,
        "00ab12cd00000001",
        "shop.edge.localhost",
        "GET",
        "/",
        200,
        0.412,
        False,
        "local",
        "shop",
        "production",
        7,
        "index",
        None,
        17,
    ),
    # What a client controls (the path) is escaped: quotes, backslashes, control
    # characters and non-ASCII text.
    (
        1764252000.5,
        "00ab12cd00000002",
        "dev--shop.edge.localhost",
        "POST",
        '/a"b\\c\x00\n\u00e9\U0001f600',
        504,
        30000.0,
        True,
        "eu-west",
        "shop",
        "dev",
        12,
        "slow",
        "timeout",
        0,
    ),
]


@pytest.mark.parametrize("values", ENTRIES)
def test_a_line_is_what_json_dumps_writes(tmp_path: Path, values: tuple[object, ...]) -> None:
    log = AccessLog(str(tmp_path / "access.log"))
    log.record(values)
    log.close()
    line = (tmp_path / "access.log").read_text()
    expected = dict(zip(FIELDS, values, strict=True))
    assert line == json.dumps(expected, separators=(",", ":")) + "\n"
    assert json.loads(line) == expected
