"""A minimal HTTP/1.1 client over ``http.client`` (no pool, no retries, no redirects)."""

from __future__ import annotations

import http.client
import socket
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    """One response, and how long it took from sending the request to the last byte."""

    status: int
    headers: dict[str, str]
    body: bytes
    ms: float


def request(
    conn: http.client.HTTPConnection,
    path: str,
    host: str | None = None,
    body: bytes | None = None,
) -> Reply:
    """``GET path`` (``POST`` with a JSON ``body``) on an open connection (kept alive)."""
    headers = {"Host": host} if host else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    began = time.perf_counter()
    conn.request("GET" if body is None else "POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    ms = (time.perf_counter() - began) * 1000
    return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body, ms)


def connect(port: int, timeout: float = 10.0) -> http.client.HTTPConnection:
    """A connected loopback connection with Nagle off, as wrk's are."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.connect()
    assert conn.sock is not None
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def get(port: int, path: str, host: str | None = None, timeout: float = 10.0) -> Reply:
    """``GET path`` on a connection of its own."""
    conn = connect(port, timeout)
    try:
        return request(conn, path, host)
    finally:
        conn.close()


def post(port: int, path: str, body: bytes, host: str | None = None) -> Reply:
    """``POST path`` with a JSON body on a connection of its own."""
    conn = connect(port)
    try:
        return request(conn, path, host, body)
    finally:
        conn.close()


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
