"""Function uid blocks: one per install on a host, reserved in a shared registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import ConfigError
from edge.uids import BLOCK, FUNCTION_ID_BASE, function_ids, reserve_base


def homes(tmp_path: Path, *names: str) -> list[Path]:
    found = []
    for name in names:
        (tmp_path / name).mkdir()
        found.append(tmp_path / name)
    return found


def test_two_installs_get_disjoint_blocks_and_keep_them(tmp_path: Path) -> None:
    registry = tmp_path / "registry" / "uid-ranges.json"
    one, two = homes(tmp_path, "one", "two")
    first, second = reserve_base(one, registry=registry), reserve_base(two, registry=registry)
    assert abs(first - second) >= BLOCK
    assert first > FUNCTION_ID_BASE  # block 0 is for tools and tests, never an install
    assert reserve_base(one, registry=registry) == first  # a restart keeps its block
    # App #1 of each install runs as a different uid.
    assert function_ids("shop", 1, first) != function_ids("shop", 1, second)


def test_an_overlapping_uid_base_is_refused(tmp_path: Path) -> None:
    registry = tmp_path / "uid-ranges.json"
    one, two = homes(tmp_path, "one", "two")
    taken = reserve_base(one, registry=registry)
    with pytest.raises(ConfigError, match=r"EDGE_UID_BASE=\d+ overlaps .* install at .*one"):
        reserve_base(two, taken + BLOCK // 2, registry=registry)
    with pytest.raises(ConfigError, match="must be between"):
        reserve_base(two, FUNCTION_ID_BASE, registry=registry)
    assert reserve_base(two, taken + BLOCK, registry=registry) == taken + BLOCK


def test_a_removed_install_gives_its_block_back(tmp_path: Path) -> None:
    registry = tmp_path / "uid-ranges.json"
    one, two = homes(tmp_path, "one", "two")
    first = reserve_base(one, registry=registry)
    one.rmdir()
    assert reserve_base(two, registry=registry) == first


def test_ids_stay_inside_the_block() -> None:
    base = FUNCTION_ID_BASE + 7 * BLOCK
    for app, app_id in (("shop", 1), ("shop", BLOCK - 1), ("by-name", 0), ("huge", BLOCK)):
        uid, gid = function_ids(app, app_id, base)
        assert uid == gid and base < uid < base + BLOCK
