"""The machine and software a bench run measured on."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` ("unknown" elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def edge_revision() -> str:
    """``git describe --always --dirty`` of the repository ("unknown" outside git)."""
    result = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def machine_facts(**versions: str) -> dict[str, str]:
    """nproc, CPU, kernel, load, Python, date, the Edge revision, plus ``versions``."""
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu_model(),
        "kernel": f"{platform.system()} {platform.release()}",
        "load average at start": load_average(),
        "python": platform.python_version(),
        "edge": edge_revision(),
        **versions,
    }
