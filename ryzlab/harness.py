"""The measurement harness: verify, warm up, calibrate, sample, summarise.

Every timing runs inside C (``ryz_bench`` loops a kernel ``iters`` times), so cffi call
overhead never enters a sample.  For memory-bound cases the weights are cold: the loop
cycles through copies of the packed weights whose total exceeds twice the last-level cache,
so each product streams its weights from DRAM as a decode step does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import _native, reference, stats
from .api import PackedWeights, pack, schedule_code
from .context import last_level_cache_bytes
from .errors import KernelCallError
from .kernels import resolve

#: A sample lasts at least this long (seconds), so timer resolution and call jitter vanish.
MIN_SAMPLE_S = 0.010
#: Copies of the weights are rotated until they total this many last-level caches.
COLD_LLC_FACTOR = 2
MAX_BUFFERS = 4096


@dataclass
class Timing:
    """One measured configuration: its summary row and its raw samples (seconds per call)."""

    row: dict
    samples_s: list[float] = field(default_factory=list)


def random_problem(M: int, K: int, N: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Uniform ternary weights (M x K) and full-range int8 activations (N x K), -128 included."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-1, 2, size=(M, K), dtype=np.int8)
    x = rng.integers(-128, 128, size=(N, K), dtype=np.int8)
    return w, x


def _rotation(packed: PackedWeights, cold: bool) -> list[np.ndarray]:
    if not cold:
        return [packed.data]
    n = min(MAX_BUFFERS, math.ceil(COLD_LLC_FACTOR * last_level_cache_bytes() / packed.nbytes) + 1)
    return [packed.data] + [packed.data.copy() for _ in range(n - 1)]


def _calibrate(run: Callable[[int], float], floor: int, min_sample_s: float) -> int:
    iters = max(1, floor)
    while True:
        t = run(iters)
        if t >= min_sample_s:
            return iters
        iters = max(iters + 1, math.ceil(iters * 1.3 * min_sample_s / max(t, 1e-9)))


def time_gemm(
    kernel: str | None,
    M: int,
    K: int,
    N: int = 1,
    threads: int = 1,
    schedule: str = "blocks",
    cold: bool | None = None,
    samples: int = 10,
    min_sample_s: float = MIN_SAMPLE_S,
    seed: int = 0,
) -> Timing:
    """Time one kernel on an M x K ternary matrix times N int8 tokens.

    The output is checked against the numpy oracle first (a mismatch raises
    :class:`KernelCallError`).  ``cold`` defaults to N == 1 (decode).  The summary row has
    per-call seconds (median_s, min_s, q1_s, q3_s, iqr_s, spread, unstable), weight_bytes
    streamed per call, gbps (weight bytes / median) and gops (2*M*N*K / median).
    """
    k = resolve(kernel)
    cold = N == 1 if cold is None else cold
    w, x = random_problem(M, K, N, seed)
    packed = pack(w, k.name)
    lib, ffi = _native.lib(), _native.ffi
    ws_bytes = lib.ryz_workspace_bytes(k.index, M, N, K)
    _native.check(ws_bytes, "ryz_workspace_bytes")
    ws = np.zeros(ws_bytes, dtype=np.uint8)
    y = np.empty((N, M), dtype=np.int32)
    bufs = _rotation(packed, cold)
    ptrs = ffi.new("unsigned char *[]", [_native.ptr(b, "unsigned char") for b in bufs])
    xp, yp, wsp = _native.ptr(x, "signed char"), _native.ptr(y, "int"), _native.ptr(ws, "unsigned char")
    sched = schedule_code(schedule)
    seconds = ffi.new("double *")

    def run(iters: int) -> float:
        _native.check(
            lib.ryz_bench(k.index, ptrs, len(bufs), M, K, xp, N, yp, wsp, ws_bytes, threads, sched, iters, seconds),
            f"bench of {k.name}",
        )
        return seconds[0]

    run(1)
    if not np.array_equal(y, reference.gemm(w, x)):
        raise KernelCallError(f"{k.name} disagrees with the oracle on M={M} K={K} N={N}: not timed")
    iters = _calibrate(run, len(bufs) if cold else 1, min_sample_s)
    run(iters)  # warm-up sample, discarded
    per_call = [run(iters) / iters for _ in range(samples)]
    summary = stats.summarize(per_call)
    row = {
        "kernel": k.name,
        "isa": k.isa,
        "method": k.method,
        "format": k.format,
        "bits_per_weight": k.bits_per_weight,
        "M": M,
        "K": K,
        "N": N,
        "threads": threads,
        "schedule": schedule,
        "cache_state": "cold" if cold else "warm",
        "n_buffers": len(bufs),
        "iters_per_sample": iters,
        "seed": seed,
        "weight_bytes": packed.nbytes,
        **summary,
        "gbps": packed.nbytes / summary["median_s"] / 1e9,
        "gops": 2.0 * M * N * K / summary["median_s"] / 1e9,
    }
    return Timing(row, per_call)


def read_bandwidth(
    threads: int = 1, nbytes: int | None = None, samples: int = 10, min_sample_s: float = MIN_SAMPLE_S
) -> Timing:
    """Read bandwidth (GB/s) of ``threads`` threads summing a buffer of ``nbytes``.

    The default buffer is four last-level caches: DRAM bandwidth.  A buffer well inside L2
    measures cache bandwidth instead (``cache_state`` says which).
    """
    llc = last_level_cache_bytes()
    nbytes = 4 * llc if nbytes is None else int(nbytes)
    buf = np.ones(nbytes, dtype=np.uint8)  # touched, so page faults stay out of the timing
    lib, ffi = _native.lib(), _native.ffi
    seconds, checksum = ffi.new("double *"), ffi.new("unsigned long long *")
    bp = _native.ptr(buf, "unsigned char")

    def run(passes: int) -> float:
        _native.check(lib.ryz_read_bandwidth(bp, nbytes, threads, passes, seconds, checksum), "read probe")
        return seconds[0]

    passes = _calibrate(run, 1, min_sample_s)
    run(passes)
    per_pass = [run(passes) / passes for _ in range(samples)]
    summary = stats.summarize(per_pass)
    row = {
        "probe": "read_bandwidth",
        "threads": threads,
        "bytes": nbytes,
        "cache_state": "dram" if nbytes > llc else "cache",
        "passes_per_sample": passes,
        **summary,
        "gbps": nbytes / summary["median_s"] / 1e9,
    }
    return Timing(row, per_pass)
