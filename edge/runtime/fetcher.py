"""``fetch()`` for JavaScript functions, performed by the runtime worker.

Why the worker and not the V8 host: the host runs untrusted code (it drops to
``nobody`` and holds no settings), while the egress policy, the platform's
addresses and the per-request accounting live in the worker. The worker
resolves the name, checks every address against :class:`~edge.egress.EgressPolicy`,
connects to the address it checked (so a DNS answer cannot change between
check and connect), speaks HTTP/1.1 with ``h11``, and follows redirects itself
so that every hop is checked again.

Limits: :data:`MAX_BODY_BYTES` for the request and the response bodies,
:data:`MAX_CONCURRENT` subrequests in flight per request (more wait their
turn), :data:`MAX_REDIRECTS` hops; the whole fetch is bounded by the function's
``timeout_ms``, and the function's own deadline keeps running meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import h11

from edge.egress import EgressPolicy, IPAddress
from edge.runtime.invocation import FunctionVersion

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_CONCURRENT = 6
MAX_REDIRECTS = 20
READ_BYTES = 64 * 1024
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNSAFE = re.compile(r"[\x00\r\n]")
# Framing and routing are the platform's business, not the function's.
_DROPPED = frozenset(
    {"connection", "content-length", "host", "keep-alive", "te", "transfer-encoding", "upgrade"}
)
Counter = Callable[[FunctionVersion, str], None]


class FetchError(Exception):
    """The fetch cannot be done; the message becomes the JavaScript TypeError's."""


@dataclass
class Hop:
    """One request on the way: where, how, and what was asked."""

    url: str
    method: str
    headers: list[tuple[str, str]]
    body: bytes


def _fail(message: str) -> dict[str, Any]:
    return {"ok": False, "error": "fetch", "message": message}


def parse_request(args: Any) -> tuple[Hop, str]:
    """Check an untrusted fetch request from JavaScript (APPSEC: every field)."""
    if not isinstance(args, dict):
        raise FetchError("malformed request")
    url, method, headers = args.get("url"), args.get("method"), args.get("headers")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise FetchError(f"only http: and https: URLs can be fetched, not {str(url)[:100]!r}")
    if not isinstance(method, str) or not _TOKEN.fullmatch(method):
        raise FetchError("invalid method")
    if not isinstance(headers, list):
        raise FetchError("malformed headers")
    pairs = []
    for item in headers:
        if not (
            isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)
        ):
            raise FetchError("malformed headers")
        name, value = item
        if not _TOKEN.fullmatch(name) or _UNSAFE.search(value):
            raise FetchError(f"invalid header {name[:100]!r}")
        if name.lower() not in _DROPPED:
            pairs.append((name, value))
    redirect = args.get("redirect", "follow")
    if redirect not in ("follow", "manual", "error"):
        raise FetchError("redirect must be follow, manual or error")
    return Hop(url, method.upper(), pairs, _body(args.get("body"))), str(redirect)


def _body(raw: Any) -> bytes:
    if raw is None:
        return b""
    if not isinstance(raw, str) or len(raw) > (MAX_BODY_BYTES + 2) // 3 * 4:
        raise FetchError(f"the request body is over {MAX_BODY_BYTES} bytes")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise FetchError("malformed body") from None


class Fetcher:
    """Performs the fetches of one worker's JavaScript functions.

    Args:
        policy: the egress policy.
        count: told ``(version, "subrequests" | "subrequest_errors")``.
    """

    def __init__(self, policy: EgressPolicy, count: Counter | None = None) -> None:
        self._policy = policy
        self._count = count
        self._slots: dict[tuple[str, int], tuple[asyncio.Semaphore, list[int]]] = {}
        self._tls = ssl.create_default_context()

    async def fetch(self, version: FunctionVersion, rid: int, args: Any) -> dict[str, Any]:
        """The JSON-able reply to one ``fetch`` host call of request ``rid``."""
        self._tally(version, "subrequests")
        try:
            hop, redirect = parse_request(args)
            value = await asyncio.wait_for(
                self._limited(version.key, rid, hop, redirect), version.timeout_ms / 1000
            )
            return {"ok": True, "value": value}
        except FetchError as exc:
            self._tally(version, "subrequest_errors")
            return _fail(str(exc))
        except TimeoutError:
            self._tally(version, "subrequest_errors")
            return _fail(f"no answer within the function's timeout ({version.timeout_ms} ms)")
        except (OSError, h11.ProtocolError, ssl.SSLError, ValueError) as exc:
            self._tally(version, "subrequest_errors")
            return _fail(f"{urlsplit(args['url']).netloc}: {exc}")

    async def _limited(self, key: str, rid: int, hop: Hop, redirect: str) -> dict[str, Any]:
        async with self._slot(key, rid):  # waiting for a slot counts against the deadline
            return await self._follow(hop, redirect)

    def _tally(self, version: FunctionVersion, name: str) -> None:
        if self._count is not None:
            self._count(version, name)

    def _slot(self, key: str, rid: int) -> _Slot:
        entry = self._slots.get((key, rid))
        if entry is None:
            entry = self._slots[(key, rid)] = (asyncio.Semaphore(MAX_CONCURRENT), [0])
        return _Slot(self._slots, (key, rid), *entry)

    async def _follow(self, hop: Hop, redirect: str) -> dict[str, Any]:
        for hops in range(MAX_REDIRECTS + 1):
            status, reason, headers, body = await self._send(hop)
            location = next((v for k, v in headers if k.lower() == "location"), None)
            if status not in REDIRECTS or location is None or redirect == "manual":
                return {
                    "status": status,
                    "statusText": reason,
                    "headers": [[k.lower(), v] for k, v in headers],
                    "body": base64.b64encode(body).decode("ascii") if body else None,
                    "url": hop.url,
                    "redirected": hops > 0,
                }
            if redirect == "error":
                raise FetchError(f"{hop.url} redirected, and the request's redirect mode is error")
            hop = _next_hop(hop, status, urljoin(hop.url, location))
        raise FetchError(f"more than {MAX_REDIRECTS} redirects")

    async def _send(self, hop: Hop) -> tuple[int, str, list[tuple[str, str]], bytes]:
        parts = urlsplit(hop.url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        ip = await self._checked_address(host, port)
        tls = self._tls if parts.scheme == "https" else None
        reader, writer = await asyncio.open_connection(
            str(ip), port, ssl=tls, server_hostname=host if tls else None
        )
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            return await _exchange(reader, writer, hop, parts.netloc, target)
        finally:
            writer.close()

    async def _checked_address(self, host: str, port: int) -> IPAddress:
        """The first address of ``host`` the policy allows (FetchError if none)."""
        try:
            addresses = [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=1)
            except OSError as exc:
                raise FetchError(f"cannot resolve {host}: {exc}") from None
            addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        refusal = "no address"
        for ip in addresses:
            why = self._policy.refusal(host, ip, port)
            if why is None:
                return ip
            refusal = why
        raise FetchError(refusal)


class _Slot:
    """One subrequest's place among its request's :data:`MAX_CONCURRENT`."""

    def __init__(
        self,
        table: dict[tuple[str, int], tuple[asyncio.Semaphore, list[int]]],
        key: tuple[str, int],
        semaphore: asyncio.Semaphore,
        users: list[int],
    ) -> None:
        self._table, self._key, self._sem, self._users = table, key, semaphore, users

    async def __aenter__(self) -> None:
        self._users[0] += 1
        try:
            await self._sem.acquire()
        except BaseException:
            self._leave()
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._sem.release()
        self._leave()

    def _leave(self) -> None:
        self._users[0] -= 1
        if not self._users[0]:
            self._table.pop(self._key, None)


def _next_hop(hop: Hop, status: int, url: str) -> Hop:
    """The request a redirect asks for (the fetch standard's method rules)."""
    if (status == 303 and hop.method != "HEAD") or (status in (301, 302) and hop.method == "POST"):
        headers = [(k, v) for k, v in hop.headers if not k.lower().startswith("content-")]
        return Hop(url, "GET", headers, b"")
    return Hop(url, hop.method, hop.headers, hop.body)


async def _exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    hop: Hop,
    authority: str,
    target: str,
) -> tuple[int, str, list[tuple[str, str]], bytes]:
    conn = h11.Connection(h11.CLIENT)
    headers = [("host", authority), *hop.headers, ("connection", "close")]
    if hop.body or hop.method in ("POST", "PUT", "PATCH"):
        headers.append(("content-length", str(len(hop.body))))
    if not any(k.lower() == "accept-encoding" for k, _ in hop.headers):
        headers.append(("accept-encoding", "identity"))
    try:
        data = conn.send(h11.Request(method=hop.method, target=target, headers=headers)) or b""
        if hop.body:
            data += conn.send(h11.Data(data=hop.body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
    except h11.LocalProtocolError as exc:
        raise FetchError(f"invalid request: {exc}") from None
    writer.write(data)
    await writer.drain()
    return await _read_response(conn, reader)


async def _read_response(
    conn: h11.Connection, reader: asyncio.StreamReader
) -> tuple[int, str, list[tuple[str, str]], bytes]:
    response: h11.Response | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(READ_BYTES))
        elif isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY_BYTES:
                raise FetchError(f"the response body is over {MAX_BODY_BYTES} bytes, the limit")
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            break
    if response is None:
        raise FetchError("the server closed the connection without a response")
    pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers]
    return response.status_code, response.reason.decode("latin-1"), pairs, bytes(body)
