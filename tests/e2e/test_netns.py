"""`make regions` in small: three sites in network namespaces with delayed links, a
us-east-only function reached from Tokyo through the fallback, then served in Tokyo,
and a killed Tokyo node whose traffic moves to us-east. Root and `ip netns` only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from stack import ROOT


def _why_not() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs Linux and root to create network namespaces (make regions does too)"
    if shutil.which("ip") is None:
        return "needs iproute2 (`ip netns`): scripts/ensure-system-packages.sh installs it"
    if subprocess.run(["ip", "netns", "list"], capture_output=True, check=False).returncode:
        return "`ip netns` does not work here"
    return None


@pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")
def test_tokyo_is_served_through_the_fallback_then_locally_and_fails_over_to_us_east() -> None:
    args = ["--client-east-ms", "10", "--client-tokyo-ms", "1", "--tokyo-east-ms", "10"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.regions", *args, "--samples", "5", "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-4000:]
    result = json.loads(out)
    direct, fallback, local = result["rows"]
    assert direct["regions"] == {"us-east": 5} and not any(direct["via"])
    assert fallback["regions"] == {"us-east": 5} and fallback["via"] == {"ap-tokyo": 5}
    assert local["regions"] == {"ap-tokyo": 5} and not any(local["via"])
    assert result["nearest_node"]["before"] == result["nearest_node"]["after"]
    assert "10.77.20.1" in result["nearest_node"]["after"]  # the Tokyo node is nearest
    moved = result["failover"]
    assert set(moved["before"]) == {"ap-tokyo"}
    assert moved["after"]["us-east"] > 0 and len(moved["failed_after"]) <= 1  # in flight
    assert {n["region"]: n["health"] for n in result["nodes_after_kill"]} == {
        "ap-tokyo": "gone",
        "us-east": "live",
    }
    # Everything it made is gone: no namespace of this run is left.
    left = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert f"edge{proc.pid}-" not in left
