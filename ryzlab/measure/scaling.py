"""Amdahl's law fitted to measured speedups: how much of a run stays serial.

With a serial fraction ``s``, ``T`` threads give ``S(T) = 1 / (s + (1 - s) / T)``.  Each
measured point gives ``1/S = s + (1 - s)/T``, linear in ``s``: ``1/S - 1/T = s (1 - 1/T)``, so
least squares over the points is a closed form.  The fit is only as good as the machine is
quiet: a contended core looks like serial time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def amdahl_speedup(threads: np.ndarray | float, serial_fraction: float) -> np.ndarray:
    """Speedup over 1 thread that Amdahl's law predicts at ``threads`` for ``serial_fraction``."""
    t = np.asarray(threads, dtype=np.float64)
    return 1.0 / (serial_fraction + (1.0 - serial_fraction) / t)


def fit_serial_fraction(threads: Sequence[float], speedups: Sequence[float]) -> float:
    """Least-squares serial fraction in [0, 1] from (threads, speedup over 1 thread) points.

    Points at 1 thread carry no information and are ignored; at least one point with more
    threads is required."""
    t = np.asarray(threads, dtype=np.float64)
    s = np.asarray(speedups, dtype=np.float64)
    if t.shape != s.shape or t.ndim != 1:
        raise ValueError(f"threads and speedups must be 1-D of equal length, got {t.shape} and {s.shape}")
    keep = t > 1
    if not keep.any():
        raise ValueError("need at least one measurement with more than one thread")
    if (s[keep] <= 0).any():
        raise ValueError("speedups must be positive")
    a = 1.0 - 1.0 / t[keep]
    b = 1.0 / s[keep] - 1.0 / t[keep]
    return float(np.clip(np.dot(a, b) / np.dot(a, a), 0.0, 1.0))
