"""The node registry's records: signed, filed under their own name, live or gone."""

from __future__ import annotations

import pytest

from edge.commands import WorkerStatus
from edge.config import Config
from edge.errors import ConfigError
from edge.keyring import Keyring, decode_key, new_key
from edge.nodes import GONE, GONE_KEEP_S, LIVE, NodeRecord, assemble, open_node, seal_node

KEY = new_key()


def keyring(key: str = KEY) -> Keyring:
    return Keyring([decode_key(key, "test")])


def record(node: str = "tokyo-1:8080", ts: float = 1000.0) -> NodeRecord:
    return NodeRecord(node, "ap-tokyo", "http://10.77.20.1:8080", 7, ts)


def test_a_record_opens_only_when_signed_with_the_key_and_under_its_own_name() -> None:
    sealed = seal_node(record(), keyring())
    assert open_node(sealed, "tokyo-1:8080", keyring()) == record()
    assert open_node(sealed, "east-1:8080", keyring()) is None  # copied under another name
    assert open_node(seal_node(record(), keyring(new_key())), "tokyo-1:8080", keyring()) is None
    assert open_node(b"not json", "tokyo-1:8080", keyring()) is None


def test_a_node_is_live_while_a_worker_of_it_reports_and_gone_after() -> None:
    raw = {
        b"tokyo-1:8080": seal_node(record(), keyring()),
        b"old:8080": seal_node(record("old:8080", ts=1.0), keyring()),
        b"forged:8080": seal_node(record("forged:8080"), keyring(new_key())),
    }
    workers = [WorkerStatus("tokyo-1:8080:123", "ap-tokyo", 9)]
    nodes, expired = assemble(raw, workers, keyring(), now=1010.0)
    assert [(n.node, n.health, n.version, n.workers) for n in nodes] == [
        ("old:8080", GONE, 7, 0),
        ("tokyo-1:8080", LIVE, 9, 1),
    ]
    assert expired == []
    gone, _ = assemble(raw, [], keyring(), now=1010.0)
    assert {n.node: n.health for n in gone}["tokyo-1:8080"] == GONE
    _, expired = assemble(raw, [], keyring(), now=1.0 + GONE_KEEP_S + 1)
    assert expired == ["old:8080"]


def test_a_public_url_that_is_not_a_base_url_is_refused_with_the_fix() -> None:
    assert Config.from_env({"EDGE_RUNTIME_PORT": "9000"}).public_url == "http://127.0.0.1:9000"
    given = Config.from_env({"EDGE_PUBLIC_URL": "http://10.77.20.1:8080/"})
    assert given.public_url == "http://10.77.20.1:8080"
    with pytest.raises(ConfigError, match=r"EDGE_PUBLIC_URL.*base URL"):
        Config.from_env({"EDGE_PUBLIC_URL": "10.77.20.1:8080"})
