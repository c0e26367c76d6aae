"""The pure parts of the bindings: the egress policy, KV checks, the nftables script."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess

import pytest

from edge.egress import EgressPolicy, parse_allow
from edge.errors import ConfigError
from edge.kvstore import KVError, Limits, Namespace, plan
from edge.runtime.firewall import ruleset, stale_tables

NS = Namespace("shop", "production")


def refusal(policy: EgressPolicy, host: str, ip: str, port: int) -> str | None:
    return policy.refusal(host, ipaddress.ip_address(ip), port)


@pytest.fixture
def policy() -> EgressPolicy:
    return EgressPolicy.for_platform(
        "127.0.0.1:9000, 10.0.0.0/8, [fd00::/8]:5432, db.internal:5432",
        "redis://edge:pw@127.0.0.1:6390/0",
        "http://127.0.0.1:8081",
        "127.0.0.1",
        8081,
    )


@pytest.mark.parametrize(
    ("host", "ip", "port"),
    [
        ("x", "169.254.169.254", 80),  # cloud metadata
        ("x", "127.0.0.2", 9000),  # another loopback address than the one opened
        ("x", "192.168.1.10", 80),
        ("x", "100.64.0.1", 80),  # shared (CGNAT)
        ("x", "::1", 9000),
        ("x", "fe80::1", 80),
        ("x", "::ffff:169.254.169.254", 80),  # v4-mapped
        ("x", "224.0.0.1", 80),
    ],
)
def test_non_public_addresses_are_refused_unless_allowed(
    policy: EgressPolicy, host: str, ip: str, port: int
) -> None:
    why = refusal(policy, host, ip, port)
    assert why is not None and "egress" in why and "EDGE_EGRESS_ALLOW" in why


@pytest.mark.parametrize(
    ("host", "ip", "port"),
    [
        ("example.com", "93.184.216.34", 443),
        ("x", "127.0.0.1", 9000),
        ("x", "10.9.8.7", 6379),
        ("x", "fd00::5", 5432),
        ("db.internal", "192.168.0.5", 5432),  # by name, as the URL says
        ("x", "::ffff:127.0.0.1", 9000),
    ],
)
def test_public_and_allowed_addresses_pass(
    policy: EgressPolicy, host: str, ip: str, port: int
) -> None:
    assert refusal(policy, host, ip, port) is None


@pytest.mark.parametrize(
    ("ip", "port"), [("127.0.0.1", 6390), ("127.0.0.9", 8081), ("::1", 8081), ("127.0.0.1", 8081)]
)
def test_the_platform_is_never_reachable_whatever_the_allow_list(ip: str, port: int) -> None:
    everything = EgressPolicy.for_platform(
        "0.0.0.0/0, ::/0", "redis://127.0.0.1:6390", "http://127.0.0.1:8081", "127.0.0.1", 8081
    )
    why = refusal(everything, "x", ip, port)
    assert why is not None and "platform's own" in why
    assert refusal(everything, "x", "127.0.0.1", 8080) is None  # opened by the allow list


@pytest.mark.parametrize("bad", ["db.internal", "10.0.0.0/8:99999", "a b:80", "host:http"])
def test_bad_allow_entries_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError, match="EDGE_EGRESS_ALLOW"):
        parse_allow(bad)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"op": "drop"}, "invalid"),
        ("not a dict", "invalid"),
        ({"op": "get", "key": ""}, "invalid"),
        ({"op": "get", "key": 7}, "invalid"),
        ({"op": "get", "key": "é" * 257}, "limit"),  # 514 bytes of UTF-8
        ({"op": "put", "key": "k", "value": "text, not bytes"}, "invalid"),
        ({"op": "put", "key": "k", "value": b"x" * 1025}, "limit"),
        ({"op": "put", "key": "k", "value": b"x", "ttl": -1}, "invalid"),
        ({"op": "put", "key": "k", "value": b"x", "ttl": float("nan")}, "invalid"),
        ({"op": "incr", "key": "k", "by": 1.5}, "invalid"),
        ({"op": "incr", "key": "k", "by": 2**63}, "invalid"),
        ({"op": "list", "limit": 0}, "invalid"),
        ({"op": "list", "prefix": None}, "invalid"),
    ],
)
def test_kv_operations_are_checked_before_redis(message: object, code: str) -> None:
    with pytest.raises(KVError) as caught:
        plan(NS, message, Limits(max_value_bytes=1024))
    assert caught.value.code == code


def test_a_key_cannot_leave_its_namespace() -> None:
    op = plan(NS, {"op": "get", "key": "../other:production:v:k"}, Limits())
    assert op.command == ("GET", b"edge:kv:shop:production:v:../other:production:v:k")
    listing = plan(NS, {"op": "list", "prefix": "a", "cursor": "0"}, Limits())
    assert b"[a" in listing.command and b"[a\xff" in listing.command  # a cursor before the prefix


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft"), reason="nft -c needs root and nftables"
)
def test_the_nftables_script_is_valid(policy: EgressPolicy) -> None:
    script = ruleset(policy, "edge_egress_unit", 300_000)
    check = subprocess.run(
        ["nft", "-c", "-f", "-"], input=script, text=True, capture_output=True, check=False
    )
    assert check.returncode == 0, check.stderr
    assert "tcp dport 6390 reject with tcp reset" in script
    assert "meta skuid 300000-399999 " in script
    assert script.index("dport 8081 reject") < script.index("ip daddr 10.0.0.0/8 accept")


def test_only_tables_whose_runtime_is_gone_are_stale() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    names = [
        f"edge_egress_8080_{os.getpid()}",  # a live runtime's
        f"edge_egress_8081_{gone.pid}",  # a killed one's
        "edge_egress_8082",  # an earlier Edge's, which did not name its pid
        "edge_egress_unit",
        "filter",
    ]
    assert stale_tables(names) == [f"edge_egress_8081_{gone.pid}", "edge_egress_8082"]
