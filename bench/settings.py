"""The bench's knobs, read once from ``BENCH_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Settings:
    """What one bench run does; every field has a ``BENCH_<NAME>`` variable.

    Attributes:
        duration: seconds of each wrk run.
        threads: wrk threads (``-t``).
        connections: wrk connections (``-c``).
        rounds: measurement rounds; the table shows medians over them.
        warmup: seconds of the one wrk warm-up run per system.
        workers: server processes of every system (runtime workers, gunicorn
            workers, workerd processes).
        min_warm: warm instances per runtime worker of the hello Python
            function, also its ``max_instances`` so none is reaped between
            rounds. Fewer than ``connections / workers / 3`` means 503s: a pool
            queues at most ``2 * max_instances`` requests.
        cold_functions: distinct functions per language for cold starts.
        cold_passes: times each of them is made cold and hit.
        cold_gap: seconds between the first requests of a cold pass (the
            back-to-back burst rows use 0).
        idle_ttl: the runtime's ``EDGE_IDLE_TTL``: how soon idle instances of
            ``min_warm = 0`` functions go, which is what makes the next request cold.
        pushes: git pushes timed for push-to-live.
        kv_requests: warm requests per function of the KV get round trip.
    """

    duration: int = 10
    threads: int = 2
    connections: int = 32
    rounds: int = 3
    warmup: int = 2
    workers: int = 2
    min_warm: int = 8
    cold_functions: int = 10
    cold_passes: int = 5
    cold_gap: float = 0.1
    idle_ttl: float = 1.0
    pushes: int = 5
    kv_requests: int = 1000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Defaults overridden by ``BENCH_DURATION``, ``BENCH_ROUNDS``, ... when set."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in fields(cls):
            raw = env.get(f"BENCH_{field.name.upper()}")
            if raw:
                values[field.name] = float(raw) if field.type == "float" else int(raw)
        return cls(**values)  # type: ignore[arg-type]

    def overrides(self) -> str:
        """The ``BENCH_*=value`` assignments that differ from the defaults."""
        default = Settings()
        return " ".join(
            f"BENCH_{f.name.upper()}={getattr(self, f.name)}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        )
