"""Percentiles of small samples."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile (``pct`` in 0-100) of a non-empty sample.

    With fewer than 100 samples the p99 is the maximum: the table says how many.
    """
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]
