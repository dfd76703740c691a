"""Summary statistics of timing samples.

The median is the headline number because it resists the occasional preemption on a shared
machine; the interquartile range says how much to trust it.  A run whose IQR exceeds
``UNSTABLE_SPREAD`` of its median is flagged ``unstable`` rather than silently reported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

UNSTABLE_SPREAD = 0.10
"""IQR / median (a fraction) above which a measurement is flagged unstable."""


def spread(samples: Sequence[float]) -> float:
    """Interquartile range over median of ``samples`` (any unit; the result is a fraction).

    Quartiles use numpy's default linear interpolation, as in :func:`summarize`.
    """
    q1, median, q3 = np.percentile(np.asarray(samples, dtype=np.float64), [25, 50, 75])
    return float((q3 - q1) / median)


def summarize(samples_s: Sequence[float]) -> dict:
    """Summarise timing samples given in seconds.

    Returns a dict with ``n_samples`` (int); ``median_s``, ``min_s``, ``max_s``, ``q1_s``,
    ``q3_s``, ``iqr_s`` (seconds); ``spread`` (IQR / median, a fraction) and ``unstable``
    (``spread > UNSTABLE_SPREAD``).  Quartiles use numpy's default linear interpolation.

    Raises ValueError if there are no samples or any sample is not a positive finite number
    (a zero or negative duration means the clock or the caller is broken).
    """
    if len(samples_s) == 0:
        raise ValueError("need at least one timing sample, got none")
    bad = [s for s in samples_s if not (math.isfinite(s) and s > 0)]
    if bad:
        raise ValueError(f"timing samples must be positive finite seconds, got {bad[0]!r}")
    a = np.asarray(samples_s, dtype=np.float64)
    q1, median, q3 = (float(q) for q in np.percentile(a, [25, 50, 75]))
    iqr_over_median = spread(a)
    return {
        "n_samples": int(a.size),
        "median_s": median,
        "min_s": float(a.min()),
        "max_s": float(a.max()),
        "q1_s": q1,
        "q3_s": q3,
        "iqr_s": q3 - q1,
        "spread": iqr_over_median,
        "unstable": bool(iqr_over_median > UNSTABLE_SPREAD),
    }
