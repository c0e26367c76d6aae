"""Python packages: push-to-live with an unchanged requirements.txt, and the ML example.

* **Push-to-live with requirements**: app ``livereq`` is app ``live`` plus a
  ``requirements.txt`` naming a small wheel built here (served through
  ``EDGE_PYTHON_FIND_LINKS``); each push changes code only, so the
  environment is reused. Compare with the plain push-to-live row.
* **ML example** (``examples/ml-iris``: numpy + scikit-learn): the first push
  with the stack's empty uv cache (packages downloaded from the index), a
  second app with the same packages but a different ``requirements.txt``
  (a new environment from uv's warm cache), the template's import time (the
  example reports it), cold starts of an instance with the libraries loaded,
  inference latency, and private memory per warm instance (``smaps_rollup``).

``python -m bench.packages`` measures only these rows (``make bench`` includes them).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench.apps import live_app
from bench.client import connect, get, request
from bench.coldstart import ColdSamples, measure_cold
from bench.edgestack import EdgeStack, start_edge
from bench.gitwork import Workdir
from bench.procs import Processes, exit_on_signals
from bench.pushlive import PushSamples, measure_push
from bench.report import BLANK, cold_rows, ms, push_row, row
from bench.settings import Settings
from bench.stats import percentile

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ml-iris"
WHEEL = "edgebar_bench-1.0-py3-none-any.whl"
INFERENCES = 300
SAMPLE = "/predict?x=6.3,2.9,5.6,1.8"


@dataclass
class MlSamples:
    """What the ML example measured."""

    push_cold_ms: float = 0.0
    push_warm_ms: float = 0.0
    import_ms: float = 0.0
    env_mb: float = 0.0
    infer_ms: list[float] = field(default_factory=list)
    private_mb: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    cold: ColdSamples = field(default_factory=ColdSamples)


def write_wheel(folder: Path) -> None:
    """A one-module wheel for the push-to-live app (the tests' builder, inlined)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from wheels import build_wheel  # noqa: PLC0415 - the tests' helper

    build_wheel(folder, "edgebar-bench", "1.0", 'VERSION = "1.0"\n')


def requirements_app(number: int) -> dict[str, str]:
    """App ``livereq``: app ``live`` plus a requirements.txt that never changes."""
    files = live_app(number)
    files["edge.toml"] = files["edge.toml"].replace('app = "live"', 'app = "livereq"')
    return {**files, "requirements.txt": "edgebar-bench==1.0\n"}


def measure_push_with_requirements(stack: EdgeStack, tmp: Path, pushes: int) -> PushSamples:
    work = Workdir(tmp / "work-livereq")
    stack.deploy(work, "livereq", requirements_app(0), "push 0")
    return measure_push(stack, work, pushes, app="livereq", files=requirements_app)


def example_files(min_warm: int) -> dict[str, str]:
    files = {p.name: p.read_text() for p in EXAMPLE.iterdir() if p.is_file()}
    files["edge.toml"] = files["edge.toml"].replace("min_warm = 1", f"min_warm = {min_warm}")
    return files


def measure_ml(stack: EdgeStack, tmp: Path, settings: Settings) -> MlSamples:
    samples = MlSamples()
    began = time.perf_counter()
    stack.deploy(Workdir(tmp / "work-ml"), "ml", example_files(1), "ml example")
    samples.push_cold_ms = (time.perf_counter() - began) * 1000
    warm = example_files(0)
    warm["requirements.txt"] += "# the same packages, another environment\n"
    began = time.perf_counter()
    stack.deploy(Workdir(tmp / "work-ml-warm"), "mlwarm", warm, "ml example, warm cache")
    samples.push_warm_ms = (time.perf_counter() - began) * 1000
    info = json.loads(get(stack.runtime_port, "/", host=stack.host("ml")).body)
    samples.import_ms = float(info["import_ms"])
    envs = [p for p in (stack.config.home / "envs").iterdir() if not p.name.startswith(".")]
    samples.env_mb = max(_tree_mb(p) for p in envs)
    _infer(stack, samples)
    samples.cold = measure_cold(
        stack.runtime_port,
        stack.host("mlwarm"),
        {"ML": [SAMPLE]},
        settings.cold_passes,
        settings.idle_ttl,
    )["ML"]
    return samples


def _infer(stack: EdgeStack, samples: MlSamples) -> None:
    conn = connect(stack.runtime_port)
    pids = set()
    try:
        for _ in range(INFERENCES):
            reply = request(conn, SAMPLE, stack.host("ml"))
            if reply.status != 200 or b"virginica" not in reply.body:
                raise RuntimeError(f"ml answered {reply.status}: {reply.body[:200]!r}")
            samples.infer_ms.append(reply.ms)
            pids.add(int(reply.headers["x-instance-pid"]))
    finally:
        conn.close()
    for pid in pids:
        rollup = _smaps_rollup(pid)
        samples.private_mb.append((rollup["Private_Clean"] + rollup["Private_Dirty"]) / 1024)
        samples.rss_mb.append(rollup["Rss"] / 1024)


def _smaps_rollup(pid: int) -> dict[str, int]:
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                values[parts[0].rstrip(":")] = int(parts[1])
    return values


def _tree_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / (1 << 20)


def rows(with_requirements: PushSamples, ml: MlSamples) -> list[str]:
    """The table rows of this module."""
    pushed = push_row(with_requirements).replace(
        "Edge push-to-live (`git push`", "Edge push-to-live, unchanged requirements.txt (`git push`"
    )
    lines = [
        pushed,
        row(
            "ML example: first push (numpy + scikit-learn, empty uv cache)",
            BLANK,
            BLANK,
            ms(ml.push_cold_ms),
            BLANK,
            f"installs {ml.env_mb:.0f} MB from the index, loads in a sandbox, goes live",
        ),
        row(
            "ML example: push of a new environment from uv's warm cache",
            BLANK,
            BLANK,
            ms(ml.push_warm_ms),
            BLANK,
            "same packages, another requirements.txt",
        ),
        row(
            "ML example: template import (numpy, scikit-learn, model)",
            BLANK,
            BLANK,
            ms(ml.import_ms),
            BLANK,
            "measured inside the template, once per function version and worker",
        ),
    ]
    lines += [line.replace("Edge ML", "ML example:") for line in cold_rows("ML", ml.cold)]
    lines.append(
        row(
            "ML example: inference, client-observed (warm, keep-alive)",
            BLANK,
            BLANK,
            ms(percentile(ml.infer_ms, 50)),
            ms(percentile(ml.infer_ms, 99)),
            f"{len(ml.infer_ms)} sequential requests; private memory per warm instance "
            f"{_median(ml.private_mb):.1f} MB of {_median(ml.rss_mb):.0f} MB RSS "
            f"({len(ml.private_mb)} instances; the rest is shared with the template)",
        )
    )
    return lines


def _median(values: list[float]) -> float:
    return percentile(values, 50) if values else 0.0


def main() -> int:
    exit_on_signals()
    settings = Settings.from_env()
    with ExitStack() as cleanup:
        tmp = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="edge-bench-")))
        services = cleanup.enter_context(ExitStack())
        procs = cleanup.enter_context(Processes(tmp))
        stack = start_edge(tmp, settings, procs, services)
        write_wheel(tmp / "wheels")
        plain = Workdir(tmp / "work-live")
        stack.deploy(plain, "live", live_app(0), "push 0")
        without = measure_push(stack, plain, settings.pushes)
        with_requirements = measure_push_with_requirements(stack, tmp, settings.pushes)
        ml = measure_ml(stack, tmp, settings)
    print("\n".join([push_row(without), *rows(with_requirements, ml)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
