"""Three sites in network namespaces, joined by links with a one-way delay.

::

              100 ms each way              7.5 ms each way
    us-east  <----------------->  client  <----------------->  ap-tokyo
    (10.77.10.1)    10.77.1.0/30             10.77.2.0/30      (10.77.20.1)
        ^                                                          ^
        +------------------- 100 ms each way ---------------------+
                                10.77.3.0/30

Each site has a service address on its loopback (``EAST_IP``, ``TOKYO_IP``) and
routes to the others' over the direct link. Every address lives inside the
namespaces created here (10.77.0.0/16); the host's own network is never touched,
and nothing here can reach past these namespaces (there is no default route).

A link is a veth pair with ``tc qdisc ... netem delay`` on both ends. On a kernel
built without netem, it is a pair of TUN devices fed by :mod:`bench.delayline`,
which delays every packet the same way in user space (``mode`` says which).
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.procs import Processes

EAST_IP = "10.77.10.1"
TOKYO_IP = "10.77.20.1"
NETEM = "tc netem"
DELAY_LINE = "user-space delay line (this kernel has no netem)"


@dataclass(frozen=True)
class Delays:
    """One-way delays in milliseconds."""

    client_east: float = 100.0
    client_tokyo: float = 7.5
    tokyo_east: float = 100.0


@dataclass(frozen=True)
class Link:
    a: str  # site names: "east", "tokyo", "client"
    b: str
    subnet: int  # the third octet: 10.77.<subnet>.1 (a) and .2 (b)
    delay_ms: float

    def address(self, side: str) -> str:
        return f"10.77.{self.subnet}.{1 if side == self.a else 2}"

    def ifname(self, side: str) -> str:
        """The interface at ``side``, named for the site at the other end."""
        return f"to-{self.b if side == self.a else self.a}"


def ip(*args: str) -> None:
    """Run ``ip args...``; a failure names the command and what it said."""
    _run(["ip", *args])


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result


class Topology:
    """The namespaces ``<prefix>east``, ``<prefix>tokyo``, ``<prefix>client`` and their links.

    Args:
        prefix: namespace name prefix (unique per run).
        delays: the one-way delays.
        procs: where the delay line process (if needed) is started and stopped.
    """

    def __init__(self, prefix: str, delays: Delays, procs: Processes) -> None:
        self.prefix = prefix
        self.procs = procs
        self.links = (
            Link("client", "east", 1, delays.client_east),
            Link("client", "tokyo", 2, delays.client_tokyo),
            Link("tokyo", "east", 3, delays.tokyo_east),
        )
        self.service = {"east": EAST_IP, "tokyo": TOKYO_IP}
        self.created: list[str] = []
        self.mode = ""

    def ns(self, site: str) -> str:
        return f"{self.prefix}{site}"

    def exec(self, site: str) -> list[str]:
        """The argv prefix that runs a command inside ``site``'s namespace."""
        return ["ip", "netns", "exec", self.ns(site)]

    def up(self) -> str:
        """Create everything; returns how the delays are made (``mode``)."""
        for site in ("east", "tokyo", "client"):
            ip("netns", "add", self.ns(site))
            self.created.append(self.ns(site))
            ip("-n", self.ns(site), "link", "set", "lo", "up")
        for site, address in self.service.items():
            ip("-n", self.ns(site), "addr", "add", f"{address}/32", "dev", "lo")
        self.mode = NETEM if self._has_netem() else DELAY_LINE
        if self.mode == NETEM:
            for link in self.links:
                self._veth(link)
        else:
            self._delay_line()
        for link in self.links:
            self._address(link)
        self._routes()
        return self.mode

    def down(self) -> None:
        """Delete the namespaces (their interfaces go with them)."""
        while self.created:
            name = self.created.pop()
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)

    def _has_netem(self) -> bool:
        ns = self.ns("east")
        ip("-n", ns, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1")
        try:
            tc = ["tc", "-n", ns, "qdisc", "add", "dev", "probe0", "root", "netem", "delay", "1ms"]
            return subprocess.run(tc, capture_output=True, check=False).returncode == 0
        finally:
            ip("-n", ns, "link", "del", "probe0")

    def _veth(self, link: Link) -> None:
        ip(
            *("-n", self.ns(link.a), "link", "add", link.ifname(link.a), "type", "veth"),
            *("peer", "name", link.ifname(link.b), "netns", self.ns(link.b)),
        )
        for side in (link.a, link.b):
            netem = ("root", "netem", "delay", f"{link.delay_ms}ms")
            _run(["tc", "-n", self.ns(side), "qdisc", "add", "dev", link.ifname(side), *netem])

    def _delay_line(self) -> None:
        specs = [
            f"{self.ns(link.a)}:{link.ifname(link.a)}:{self.ns(link.b)}:{link.ifname(link.b)}:"
            f"{link.delay_ms}"
            for link in self.links
        ]
        proc = self.procs.start("delayline", [sys.executable, "-m", "bench.delayline", *specs])
        log = Path(self.procs.logs / "delayline.log")
        deadline = time.monotonic() + 20
        while "ready" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the delay line did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)

    def _address(self, link: Link) -> None:
        for side in (link.a, link.b):
            ns, dev = self.ns(side), link.ifname(side)
            ip("-n", ns, "addr", "add", f"{link.address(side)}/30", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")

    def _routes(self) -> None:
        for link in self.links:
            for side, other in ((link.a, link.b), (link.b, link.a)):
                if other in self.service:
                    ip(
                        *("-n", self.ns(side), "route", "add", f"{self.service[other]}/32"),
                        *("via", link.address(other), "dev", link.ifname(side)),
                    )

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()
