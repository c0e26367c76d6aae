"""Streamed responses: throughput (MB/s) and time to the first chunk, per language.

One client downloads a stream of 64 KiB blocks as fast as it reads; the same
blocks streamed by bare falcon (``resp.stream``) in the same run are the
baseline of the ratio. Time to first chunk is from sending the request to the
first body byte of a two-chunk stream, on a kept-alive connection.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bench.client import connect

BLOCK = 65536
READ = 1024 * 1024
TTFC_SAMPLES = 200


@dataclass
class StreamSamples:
    """One system's stream measurements.

    Attributes:
        mb: megabytes downloaded for the throughput figure.
        mb_per_s: that download's rate.
        ttfc_ms: time to the first body byte, per request.
    """

    mb: int
    mb_per_s: float = 0.0
    ttfc_ms: list[float] = field(default_factory=list)


def download(port: int, path: str, host: str | None) -> float:
    """Read the whole response to ``GET path``; returns MB/s of its body."""
    conn = connect(port, timeout=120)
    try:
        conn.request("GET", path, headers={"Host": host} if host else {})
        began = time.perf_counter()
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"GET {path} answered {resp.status}: {resp.read()[:300]!r}")
        size = 0
        while data := resp.read(READ):
            size += len(data)
        return size / (1024 * 1024) / (time.perf_counter() - began)
    finally:
        conn.close()


def first_chunks(port: int, path: str, host: str | None, samples: int) -> list[float]:
    """Milliseconds to the first body byte of ``samples`` requests on one connection."""
    conn = connect(port)
    times = []
    try:
        for _ in range(samples):
            began = time.perf_counter()
            conn.request("GET", path, headers={"Host": host} if host else {})
            resp = conn.getresponse()
            first = resp.read(1)
            times.append((time.perf_counter() - began) * 1000)
            if resp.status != 200 or not first:
                raise RuntimeError(f"GET {path} answered {resp.status}")
            resp.read()
    finally:
        conn.close()
    return times


def measure_streams(
    port: int, host: str, falcon_port: int, sizes: dict[str, int]
) -> dict[str, StreamSamples]:
    """Edge's Python and JS streams and falcon's, keyed ``py``/``js``/``falcon-<lang>``.

    Args:
        port: the runtime's port; ``host`` its Host header for app ``bench``.
        falcon_port: bare falcon's port.
        sizes: megabytes to download per language (``py``, ``js``).
    """
    results: dict[str, StreamSamples] = {}
    for language, mb in sizes.items():
        blocks = mb * 1024 * 1024 // BLOCK
        edge = results[language] = StreamSamples(mb)
        edge.mb_per_s = download(port, f"/stream/{language}?n={blocks}", host)
        edge.ttfc_ms = first_chunks(port, f"/stream/{language}?n=2", host, TTFC_SAMPLES)
        bare = results[f"falcon-{language}"] = StreamSamples(mb)
        bare.mb_per_s = download(falcon_port, f"/stream?n={blocks}", None)
        bare.ttfc_ms = first_chunks(falcon_port, "/stream?n=2", None, TTFC_SAMPLES)
    return results
