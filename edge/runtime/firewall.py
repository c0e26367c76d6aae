"""The egress policy for Python functions, from the kernel: nftables rules.

Python functions open their own sockets, so the policy cannot be checked in
Python. When the runtime runs as root, every function (and every app's V8 host)
runs under a uid in the install's block (:mod:`edge.uids`), and an ``inet`` table with an ``output``
hook matches those uids (``meta skuid``): the platform's Redis and control
plane are refused first, then ``EDGE_EGRESS_ALLOW`` is accepted, then every
non-public range (loopback, link-local, private, shared, multicast, reserved)
is refused. DNS (port 53) stays reachable, since the resolver is often local.
A refused TCP connect gets a reset (``ConnectionRefusedError``), anything else
an ICMP error.

The table (one per runtime node: ``edge_egress_<port>_<pid>``, the pid of the
runtime's master) is installed when ``edge runtime`` starts and deleted when it
stops. A runtime killed with SIGKILL cannot delete its table, and a stale table
still matches the uid block, so it would refuse what a later runtime of the same
install allows: each start first deletes the tables whose runtime is gone. Without root (or without
``nft``) nothing is installed, and Python egress is not restricted: the README
says so.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator

from edge.config import Config
from edge.egress import EgressPolicy, Rule
from edge.uids import BLOCK

logger = logging.getLogger(__name__)

NFT_TIMEOUT_S = 10
NON_PUBLIC_V4 = (
    "0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12, "
    "192.0.0.0/24, 192.0.2.0/24, 192.168.0.0/16, 198.18.0.0/15, 198.51.100.0/24, "
    "203.0.113.0/24, 224.0.0.0/3"
)
NON_PUBLIC_V6 = (
    "::/127, ::ffff:0:0/96, 64:ff9b:1::/48, 100::/64, 2001:db8::/32, fc00::/7, fe80::/10, ff00::/8"
)


PREFIX = "edge_egress_"
# ``edge_egress_<port>_<pid>``; before the pid was part of it, ``edge_egress_<port>``.
_NAME = re.compile(rf"{PREFIX}(\d+)(?:_(\d+))?")


def table_name(config: Config, pid: int) -> str:
    return f"{PREFIX}{config.runtime_port}_{pid}"


def stale_tables(names: list[str]) -> list[str]:
    """The Edge tables among ``names`` whose runtime is gone (or that an earlier
    Edge, which did not name its pid, left)."""
    stale = []
    for name in names:
        match = _NAME.fullmatch(name)
        if match is None:
            continue
        pid = match.group(2)
        if pid is None or not _alive(int(pid)):
            stale.append(name)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    return True


def _tables() -> list[str]:
    """The names of the ``inet`` tables now installed."""
    listing = json.loads(_nft_run(["-j", "list", "tables", "inet"]))
    return [item["table"]["name"] for item in listing.get("nftables", []) if "table" in item]


def _match(rule: Rule) -> list[str]:
    """nft match expressions for ``rule`` (host names resolved now, one per address)."""
    if rule.network is not None:
        nets = [rule.network]
    else:
        try:
            infos = socket.getaddrinfo(rule.host or "", None, type=socket.SOCK_STREAM)
        except OSError:
            logger.warning("egress rule %s: cannot resolve %s; skipped", rule, rule.host)
            return []
        nets = [ipaddress.ip_network(str(i[4][0]).split("%")[0]) for i in infos]
    port = f" tcp dport {rule.port}" if rule.port is not None else ""
    return [f"{'ip' if n.version == 4 else 'ip6'} daddr {n}{port}" for n in dict.fromkeys(nets)]


def ruleset(policy: EgressPolicy, table: str, uid_base: int) -> str:
    """The nft script that (re)creates ``table`` for ``policy``, matching the
    install's block of function uids (``uid_base`` .. + ``BLOCK``)."""
    uids = f"meta skuid {uid_base}-{uid_base + BLOCK - 1}"
    lines = [
        f"add table inet {table}",
        f"delete table inet {table}",
        f"table inet {table} {{",
        "  chain output {",
        "    type filter hook output priority 0; policy accept;",
        f"    {uids} meta l4proto {{ tcp, udp }} th dport 53 accept",
    ]
    for rule in policy.never:
        lines += [f"    {uids} {m} reject with tcp reset" for m in _match(rule) if "dport" in m]
    for rule in policy.allow:
        lines += [f"    {uids} {m} accept" for m in _match(rule)]
    lines += [
        f"    {uids} meta l4proto tcp ip daddr {{ {NON_PUBLIC_V4} }} reject with tcp reset",
        f"    {uids} ip daddr {{ {NON_PUBLIC_V4} }} reject",
        f"    {uids} meta l4proto tcp ip6 daddr {{ {NON_PUBLIC_V6} }} reject with tcp reset",
        f"    {uids} ip6 daddr {{ {NON_PUBLIC_V6} }} reject",
        "  }",
        "}",
    ]
    return "\n".join(dict.fromkeys(lines)) + "\n"


def _nft(script: str) -> None:
    _nft_run(["-f", "-"], script)


def _nft_run(args: list[str], script: str | None = None) -> str:
    nft = shutil.which("nft") or "/usr/sbin/nft"
    done = subprocess.run(
        [nft, *args],
        input=script,
        text=True,
        check=True,
        capture_output=True,
        timeout=NFT_TIMEOUT_S,
    )
    return done.stdout


def _delete_stale() -> None:
    """Delete the tables of runtimes that are gone (see the module docstring)."""
    try:
        stale = stale_tables(_tables())
        if stale:
            _nft("".join(f"delete table inet {name}\n" for name in stale))
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError) as exc:
        logger.warning("could not delete stale egress tables: %s", exc)
        return
    for name in stale:
        logger.warning("deleted egress table %s: the runtime that installed it is gone", name)


@contextlib.contextmanager
def installed(config: Config, policy: EgressPolicy) -> Iterator[bool]:
    """Install the rules for the duration of the block; yields whether they are on."""
    if os.geteuid() != 0 or not (shutil.which("nft") or os.path.exists("/usr/sbin/nft")):
        logger.warning("not root or no nft: Python functions' egress is not restricted")
        yield False
        return
    _delete_stale()
    table = table_name(config, os.getpid())
    try:
        _nft(ruleset(policy, table, config.function_uid_base))
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        logger.error("could not install the egress rules (%s); Python egress is open", detail)
        yield False
        return
    owner = os.getpid()
    try:
        yield True
    finally:
        # Processes forked inside the block (gunicorn's workers) leave through it
        # too: only the one that installed the rules removes them.
        if os.getpid() == owner:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                _nft(f"delete table inet {table}\n")
