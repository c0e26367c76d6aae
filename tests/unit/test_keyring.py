"""The platform key: sealing secrets, signing runtime reports, the key file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from edge.commands import WORKER_PREFIX, WORKER_TTL, WorkerStatus, open_status, seal_status
from edge.config import Config
from edge.errors import ConfigError
from edge.keyring import KEY_FILE, Keyring, SecretKeyError, decode_key, new_key


def keyring(*keys: str) -> Keyring:
    return Keyring([decode_key(k, "test") for k in keys])


def test_a_sealed_value_opens_only_in_its_place_and_with_its_key() -> None:
    key = new_key()
    sealed = keyring(key).seal("shop/production/DB", "hunter2")
    assert "hunter2" not in sealed
    assert keyring(key).open("shop/production/DB", sealed) == "hunter2"
    assert keyring(key).seal("shop/production/DB", "hunter2") != sealed  # fresh nonce
    with pytest.raises(SecretKeyError, match="EDGE_SECRET_KEY"):
        keyring(key).open("other/production/DB", sealed)  # copied to another app
    with pytest.raises(SecretKeyError):
        keyring(new_key()).open("shop/production/DB", sealed)
    with pytest.raises(SecretKeyError):
        keyring(key).open("shop/production/DB", "v1.not-base64!")


def test_rotation_seals_with_the_first_key_and_opens_with_any() -> None:
    old, new = new_key(), new_key()
    sealed_old = keyring(old).seal("a/production/X", "1")
    rotated = keyring(new, old)
    assert rotated.open("a/production/X", sealed_old) == "1"
    assert keyring(new).open("a/production/X", rotated.seal("a/production/X", "2")) == "2"
    assert rotated.verify(b"report", keyring(old).sign(b"report"))


def test_signatures_verify_only_with_the_same_key() -> None:
    key = new_key()
    signature = keyring(key).sign(b"body")
    assert keyring(key).verify(b"body", signature)
    assert not keyring(key).verify(b"body!", signature)
    assert not keyring(new_key()).verify(b"body", signature)


def test_fingerprints_are_keyed_and_follow_the_values() -> None:
    key = new_key()
    ring = keyring(key)
    assert ring.fingerprint({"A": "1"}) == keyring(key).fingerprint({"A": "1"})
    assert ring.fingerprint({"A": "1"}) != ring.fingerprint({"A": "2"})
    assert ring.fingerprint({"A": "1"}) != keyring(new_key()).fingerprint({"A": "1"})


def test_the_key_file_is_created_once_private_and_reused(tmp_path: Path) -> None:
    config = Config.from_env({"EDGE_HOME": str(tmp_path / "home")})
    sealed = Keyring.from_config(config).seal("a/production/X", "v")
    path = tmp_path / "home" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Keyring.from_config(config).open("a/production/X", sealed) == "v"
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE]  # no temporary left


def test_edge_secret_key_wins_and_a_bad_one_says_how_to_make_one(tmp_path: Path) -> None:
    key = new_key()
    config = Config.from_env({"EDGE_HOME": str(tmp_path), "EDGE_SECRET_KEY": key})
    assert key not in repr(config)
    Keyring.from_config(config)
    assert not (tmp_path / KEY_FILE).exists()
    bad = Config.from_env({"EDGE_HOME": str(tmp_path), "EDGE_SECRET_KEY": "short"})
    with pytest.raises(ConfigError, match=r"EDGE_SECRET_KEY: not a key.*urandom\(32\)"):
        Keyring.from_config(bad)


def test_a_worker_report_is_accepted_only_signed_fresh_and_under_its_own_name() -> None:
    ring = keyring(new_key())
    status = WorkerStatus("host:8080:1", "us-east", 7, {"a/production/f": "boom"})
    body = seal_status(status, ring, now=1000.0)
    assert open_status(body, WORKER_PREFIX + "host:8080:1", ring, now=1001.0) == status
    assert open_status(body, WORKER_PREFIX + "other", ring, now=1001.0) is None
    assert (
        open_status(body, WORKER_PREFIX + "host:8080:1", ring, now=1000.0 + 10 * WORKER_TTL) is None
    )
    assert open_status(body, WORKER_PREFIX + "host:8080:1", keyring(new_key()), now=1001.0) is None
    unsigned = '{"worker": "host:8080:1", "region": "us-east", "version": 9}'
    assert open_status(unsigned, WORKER_PREFIX + "host:8080:1", ring, now=1001.0) is None
