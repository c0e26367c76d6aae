"""Cold starts: requests that find no warm instance, read from the runtime's headers.

Each cold-start function has ``min_warm = 0``; once it has idled past
``EDGE_IDLE_TTL`` the runtime's reaper (every ``REAP_S``) stops its instance (a
Python process) or unloads its isolate (JS), so the next request is cold. One
pass hits every function once on a fresh connection, then once more on the
same connection (warm, for contrast); passes are separated by the reaping delay.
Within a pass, first requests are ``gap`` seconds apart: a host prepares the next
spare isolate (a Python template its next instance) after a cold start, so cold
starts spaced like sporadic traffic and cold starts back to back (``gap = 0``, a
burst) are different figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bench.client import connect, request
from edge.runtime.worker import REAP_S


@dataclass
class ColdSamples:
    """Cold requests of one language.

    Attributes:
        server_ms: ``x-edge-cold-start-ms`` of each cold request (the runtime's view).
        client_ms: the same requests as the client saw them, send to last byte.
        warm_ms: the request right after each cold one, same function and connection.
        requests: first requests sent; ``len(server_ms)`` of them were cold.
    """

    server_ms: list[float] = field(default_factory=list)
    client_ms: list[float] = field(default_factory=list)
    warm_ms: list[float] = field(default_factory=list)
    requests: int = 0


def measure_cold(
    port: int,
    host: str,
    paths: dict[str, list[str]],
    passes: int,
    idle_ttl: float,
    gap: float = 0.0,
) -> dict[str, ColdSamples]:
    """``passes`` rounds of one first request to every path, per language key of ``paths``,
    each first request ``gap`` seconds after the previous pair."""
    samples = {language: ColdSamples() for language in paths}
    for _ in range(passes):
        # Why a sleep: the instances must idle past the TTL and meet a reaper tick;
        # nothing can be polled without sending the very request we want cold.
        time.sleep(idle_ttl + REAP_S + 0.5)
        for language, routes in paths.items():
            for path in routes:
                time.sleep(gap)  # the spacing under test, not a synchronisation
                _first_and_second(port, host, path, samples[language])
    return samples


def _first_and_second(port: int, host: str, path: str, samples: ColdSamples) -> None:
    conn = connect(port)
    try:
        first = request(conn, path, host)
        second = request(conn, path, host)
    finally:
        conn.close()
    if first.status != 200 or second.status != 200:
        raise RuntimeError(
            f"GET {path} answered {first.status}/{second.status}: {first.body[:300]!r}"
        )
    samples.requests += 1
    if first.headers.get("x-edge-cold-start") == "true":
        samples.server_ms.append(float(first.headers["x-edge-cold-start-ms"]))
        samples.client_ms.append(first.ms)
        samples.warm_ms.append(second.ms)


def spaced_and_burst(
    port: int, host: str, paths: dict[str, list[str]], passes: int, idle_ttl: float, gap: float
) -> dict[str, ColdSamples]:
    """:func:`measure_cold` with first requests ``gap`` apart, then back to back;
    the burst's keys are the languages with `` (burst)`` after them."""
    spaced = measure_cold(port, host, paths, passes, idle_ttl, gap)
    burst = measure_cold(port, host, paths, passes, idle_ttl, 0.0)
    return {**spaced, **{f"{language} (burst)": s for language, s in burst.items()}}
