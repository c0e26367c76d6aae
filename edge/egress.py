"""The egress policy: which addresses function code may connect to.

Shared by the runtime (JavaScript ``fetch()`` checks every resolved address
and every redirect against it) and by the nftables rules that apply it to
Python function processes (:mod:`edge.runtime.firewall`).

* By default only public (globally routable) addresses are reachable: no
  loopback, link-local (cloud metadata at 169.254.169.254), private, shared
  (CGNAT), multicast or reserved ranges.
* ``EDGE_EGRESS_ALLOW`` opens more: a comma-separated list of ``host:port``
  (a name as the function writes it in the URL, or an IP), ``CIDR`` or
  ``CIDR:port`` (IPv6 in brackets: ``[fd00::/8]:5432``).
* Never reachable, whatever the allow list says: the platform's own Redis
  and control plane (:meth:`EgressPolicy.for_platform`).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from edge.errors import ConfigError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
ANYWHERE: tuple[IPNetwork, ...] = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


@dataclass(frozen=True)
class Rule:
    """One address rule: a network or a host name, and a port (``None``: any)."""

    network: IPNetwork | None = None
    host: str | None = None
    port: int | None = None

    def matches(self, host: str, ip: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host is not None:
            return self.host == host.lower().rstrip(".")
        return (
            self.network is not None and ip.version == self.network.version and ip in self.network
        )

    def __str__(self) -> str:
        where = self.host or str(self.network)
        return where if self.port is None else f"{where}:{self.port}"


def _port(text: str, item: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"EDGE_EGRESS_ALLOW: {item!r}: the port must be 1..65535")
    return int(text)


def parse_rule(item: str) -> Rule:
    """One ``EDGE_EGRESS_ALLOW`` entry (see the module docstring)."""
    text = item.strip()
    port: int | None = None
    if text.startswith("["):  # [v6] or [v6/len] with an optional :port
        inner, _, rest = text[1:].partition("]")
        if rest:
            port = _port(rest.removeprefix(":"), item)
        text = inner
    elif text.count(":") == 1:
        text, raw = text.split(":")
        port = _port(raw, item)
    try:
        return Rule(network=ipaddress.ip_network(text, strict=False), port=port)
    except ValueError:
        pass
    if port is None:
        raise ConfigError(
            f"EDGE_EGRESS_ALLOW: {item!r}: a host name needs a port (host:port); "
            "or give an address range (CIDR)"
        )
    if not text or any(c in text for c in "/ @"):
        raise ConfigError(f"EDGE_EGRESS_ALLOW: {item!r}: not a host:port or CIDR[:port]")
    return Rule(host=text.lower().rstrip("."), port=port)


def parse_allow(value: str) -> tuple[Rule, ...]:
    return tuple(parse_rule(item) for item in value.split(",") if item.strip())


def is_public(ip: IPAddress) -> bool:
    """Globally routable, and not multicast (``ipaddress.is_global`` admits some)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _resolve(host: str) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _never_rules(host: str, port: int) -> list[Rule]:
    """Rules that shut ``host:port`` off: every address it resolves to, and all of
    loopback when it is local (any loopback address reaches a local server)."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - a wildcard bind: that port anywhere
        return [Rule(network=net, port=port) for net in ANYWHERE]
    rules = [Rule(host=host.lower(), port=port)]
    for ip in _resolve(host):
        rules.append(Rule(network=ipaddress.ip_network(ip), port=port))
        if ip.is_loopback:
            rules += [Rule(network=net, port=port) for net in LOOPBACK]
    return rules


@dataclass(frozen=True)
class EgressPolicy:
    """Which ``(host, ip, port)`` a function may connect to."""

    allow: tuple[Rule, ...] = ()
    never: tuple[Rule, ...] = field(default=())

    @classmethod
    def for_platform(
        cls, allow: str, redis_url: str, platform_url: str, bind: str, platform_port: int
    ) -> EgressPolicy:
        """The policy of a runtime node: ``allow`` (``EDGE_EGRESS_ALLOW``), and never
        the platform's Redis (on TCP) or control plane, wherever they listen."""
        never: list[Rule] = []
        redis = urlsplit(redis_url)
        if redis.scheme in ("redis", "rediss") and redis.hostname:
            never += _never_rules(redis.hostname, redis.port or 6379)
        plane = urlsplit(platform_url)
        if plane.hostname:
            never += _never_rules(plane.hostname, plane.port or 80)
        never += _never_rules(bind, platform_port)
        return cls(parse_allow(allow), tuple(dict.fromkeys(never)))

    def refusal(self, host: str, ip: IPAddress, port: int) -> str | None:
        """Why ``ip`` (resolved from ``host``) on ``port`` is refused; ``None`` if allowed."""
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        where = f"{host}:{port}" + ("" if host == str(ip) else f" ({ip})")
        if any(rule.matches(host, ip, port) for rule in self.never):
            return f"egress to {where} is refused: it is the platform's own Redis or control plane"
        if is_public(ip) or any(rule.matches(host, ip, port) for rule in self.allow):
            return None
        return (
            f"egress to {where} is refused: only public addresses are reachable "
            "(EDGE_EGRESS_ALLOW opens others)"
        )
