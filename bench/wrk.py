"""Running wrk and reading its ``--latency`` report."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from bench.settings import Settings

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_PERCENTILE = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured.

    Attributes:
        rps: requests per second.
        p50_ms: median latency.
        p99_ms: 99th percentile latency.
        errors: non-2xx/3xx responses plus connect/read/write errors and timeouts.
    """

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def parse(text: str) -> WrkResult:
    """Read requests/s, p50, p99 and errors from wrk's ``--latency`` output.

    Raises:
        ValueError: the text is not a wrk report with a latency distribution.
    """
    rps = _RPS.search(text)
    percentiles = {m[1]: float(m[2]) * _UNIT_MS[m[3]] for m in _PERCENTILE.finditer(text)}
    if rps is None or set(percentiles) != {"50", "99"}:
        raise ValueError(f"not a wrk --latency report:\n{text}")
    errors = sum(int(n) for n in _NON_2XX.findall(text))
    socket_errors = _SOCKET_ERRORS.search(text)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return WrkResult(float(rps[1]), percentiles["50"], percentiles["99"], errors)


def wrk_command(
    settings: Settings,
    duration: float,
    url: str,
    host: str | None = None,
    script: str | None = None,
) -> list[str]:
    """The wrk argv for ``url`` (with a ``Host`` header when ``host`` is given and a
    Lua ``script`` when one is)."""
    argv = [
        "wrk",
        f"-t{settings.threads}",
        f"-c{settings.connections}",
        f"-d{duration:g}s",
        "--latency",
    ]
    if host:
        argv += ["-H", f"Host: {host}"]
    if script:
        argv += ["-s", script]
    return [*argv, url]


def run_wrk(
    settings: Settings,
    url: str,
    host: str | None = None,
    duration: float | None = None,
    script: str | None = None,
) -> WrkResult:
    """One wrk run of ``duration`` seconds (the configured one by default)."""
    seconds = settings.duration if duration is None else duration
    result = subprocess.run(
        wrk_command(settings, seconds, url, host, script),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr.strip()}")
    return parse(result.stdout)


def wrk_version() -> str:
    """wrk's version, e.g. ``debian/4.1.0-3+b2 [epoll]``."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: run `make bench`, which installs it")
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return " ".join((out.stdout or out.stderr).split()[1:3])
