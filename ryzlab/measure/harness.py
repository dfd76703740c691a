"""The measurement harness: verify, warm up, calibrate, sample, summarise.

Every timing runs inside C (``ryz_bench`` loops a kernel ``iters`` times), so cffi call
overhead never enters a sample.  For memory-bound cases the weights are cold: the loop
cycles through copies of the packed weights whose total exceeds twice the last-level cache,
so each product streams its weights from DRAM as a decode step does.

On a shared machine DRAM bandwidth drifts from second to second, so a kernel's fraction of
the bandwidth is measured by interleaving: a read-probe sample, then a kernel sample, and
the median of the per-pair ratios (:func:`time_gemm_vs_bandwidth`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from ..core import native as _native
from ..core import reference
from . import stats
from ..core.ops import PreparedGemm, pack
from ..core.topology import last_level_cache_bytes
from ..errors import KernelCallError
from ..core.kernels import info, resolve
from ..model.ops import blas_threads

#: A sample lasts at least this long (seconds), so timer resolution and call jitter vanish.
MIN_SAMPLE_S = 0.010
#: Cold weights rotate over copies totalling at least this many last-level caches, and the DRAM
#: read probe reads a buffer of as many (ReadBench): both then stream with the same reuse
#: distance.  With 2 LLCs of weights against the probe's 4, the Zen 4 VM's 32 MiB L3 kept part
#: of the weights' cycle, and the 2-bit GEMV showed 106-110 % of the probe on 2 threads
#: (notebook 03, run 20261205T153148.705Z-8f6c4f).
COLD_LLC_FACTOR = 4
MAX_BUFFERS = 4096
#: Quick mode (a check that the notebooks run, not a measurement): at most this many samples,
#: each half as long.
QUICK_SAMPLES = 3

#: The compute probe (``kernels_c/probes.def``) issuing the instruction that the inner loop of
#: each (method, ISA) of kernel is built on.  Scalar and reference kernels have none.
_PROBE_OF = {("mad", "avx512"): "mac_vpdpbusd_avx512", ("mad", "avx2"): "mac_maddubs_avx2",
             ("lut", "avx512"): "lookup_vpermb_avx512", ("lut", "avx2"): "lookup_pshufb_avx2"}


@dataclass
class Timing:
    """One measured configuration: its summary row and its raw samples (seconds per call)."""

    row: dict
    samples_s: list[float] = field(default_factory=list)


def compute_probe(kernel: str) -> str | None:
    """The compute probe of ``kernel``'s inner instruction (e.g. ``mac_vpdpbusd_avx512`` for a
    VNNI multiply-add kernel), or None where no probe matches (scalar, ``ref``)."""
    k = info(kernel)
    return _PROBE_OF.get((k.method, k.isa))


def sampling(quick: bool, samples: int) -> tuple[int, float]:
    """``(samples, min_sample_s)`` for a notebook run: as given, or cut down in quick mode
    (``min_sample_s`` in seconds)."""
    if quick:
        return min(samples, QUICK_SAMPLES), MIN_SAMPLE_S / 2
    return samples, MIN_SAMPLE_S


def random_problem(M: int, K: int, N: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Uniform ternary weights (M x K) and full-range int8 activations (N x K), -128 included."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-1, 2, size=(M, K), dtype=np.int8)
    x = rng.integers(-128, 128, size=(N, K), dtype=np.int8)
    return w, x


def _calibrate(run: Callable[[int], float], floor: int, min_sample_s: float) -> int:
    iters = max(1, floor)
    while True:
        t = run(iters)
        if t >= min_sample_s:
            return iters
        iters = max(iters + 1, math.ceil(iters * 1.3 * min_sample_s / max(t, 1e-9)))


class GemmBench:
    """A kernel on one problem, verified against the oracle and calibrated, ready to sample.

    ``cold`` defaults to N == 1 (decode): weights rotate over copies larger than the LLC.
    """

    def __init__(self, kernel: str | None, M: int, K: int, N: int = 1, threads: int = 1,
                 schedule: str = "blocks", cold: bool | None = None, seed: int = 0,
                 min_sample_s: float = MIN_SAMPLE_S):
        k = resolve(kernel)
        cold = N == 1 if cold is None else cold
        w, x = random_problem(M, K, N, seed)
        packed = pack(w, k.name)
        call = PreparedGemm(packed, N, threads, schedule)
        n_bufs = min(MAX_BUFFERS, math.ceil(COLD_LLC_FACTOR * last_level_cache_bytes() / packed.nbytes) + 1) if cold else 1
        copies = [packed] + [replace(packed, data=packed.data.copy()) for _ in range(n_bufs - 1)]
        y = call.y

        def run(iters: int) -> float:
            return call.bench(x, copies, iters)

        self._run = run
        run(1)
        with blas_threads(1):  # a woken BLAS pool spins on the cores the timed threads need
            want = reference.gemm(w, x)
        if not np.array_equal(y, want):
            raise KernelCallError(f"{k.name} disagrees with the oracle on M={M} K={K} N={N}: not timed")
        self.iters = _calibrate(run, n_bufs if cold else 1, min_sample_s)
        run(self.iters)  # warm-up sample, discarded
        self.weight_bytes = packed.nbytes
        self.row = {
            "kernel": k.name, "isa": k.isa, "method": k.method, "format": k.format,
            "bits_per_weight": k.bits_per_weight, "M": M, "K": K, "N": N, "threads": threads,
            "schedule": schedule, "omp_proc_bind": os.environ.get("OMP_PROC_BIND"),
            "omp_places": os.environ.get("OMP_PLACES"),
            "cache_state": "cold" if cold else "warm", "n_buffers": n_bufs,
            "iters_per_sample": self.iters, "seed": seed, "weight_bytes": packed.nbytes,
        }
        self.ops = 2.0 * M * N * K

    def sample(self) -> float:
        """Seconds per product, averaged over one calibrated sample."""
        return self._run(self.iters) / self.iters

    def summary(self, samples_s: list[float]) -> dict:
        """The row for these samples: context, statistics, GB/s of weights and GOPS."""
        s = stats.summarize(samples_s)
        return {**self.row, **s, "gbps": self.weight_bytes / s["median_s"] / 1e9, "gops": self.ops / s["median_s"] / 1e9}


#: Ways the read probe reads memory (``RYZ_READ_*`` in ryzlab.h, kernels_c/probe_bandwidth.c).
READ_METHODS = ("plain", "prefetch", "streams")


def aligned_bytes(nbytes: int, align: int = 64) -> np.ndarray:
    """A uint8 array of ``nbytes`` whose data starts on an ``align``-byte boundary."""
    raw = np.ones(nbytes + align, dtype=np.uint8)  # touched: page faults stay out of timings
    off = (-raw.ctypes.data) % align
    return raw[off:off + nbytes]


class ReadBench:
    """The read-bandwidth probe on a buffer of ``nbytes`` (default :data:`COLD_LLC_FACTOR` LLCs: DRAM).

    The probe reads memory in each of :data:`READ_METHODS` (one plain stream; one stream with
    software prefetch as the kernels do; four prefetched streams per thread) and keeps the
    fastest, chosen from interleaved trial samples: the ceiling is what this machine can
    stream, not what one loop style reaches.  ``method`` forces one."""

    def __init__(self, threads: int = 1, nbytes: int | None = None, min_sample_s: float = MIN_SAMPLE_S,
                 method: str | None = None, trials: int = 3):
        llc = last_level_cache_bytes()
        self.nbytes = COLD_LLC_FACTOR * llc if nbytes is None else int(nbytes)
        self._buf = aligned_bytes(self.nbytes)
        lib, ffi = _native.lib(), _native.ffi
        seconds, checksum = ffi.new("double *"), ffi.new("unsigned long long *")
        bp = _native.ptr(self._buf, "unsigned char")
        codes = {"plain": lib.RYZ_READ_PLAIN, "prefetch": lib.RYZ_READ_PREFETCH, "streams": lib.RYZ_READ_STREAMS}
        if method is not None and method not in codes:
            raise ValueError(f"method must be one of {READ_METHODS}, got {method!r}")

        def runner(code: int):
            def run(passes: int) -> float:
                _native.check(lib.ryz_read_bandwidth(bp, self.nbytes, threads, code, passes, seconds, checksum),
                              "read probe")
                return seconds[0]
            return run

        self._hold = (seconds, checksum, bp)
        candidates = [method] if method else list(READ_METHODS)
        runs = {m: runner(codes[m]) for m in candidates}
        passes = {m: _calibrate(runs[m], 1, min_sample_s) for m in candidates}
        trial = {m: [] for m in candidates}
        for _ in range(trials if len(candidates) > 1 else 0):
            for m in candidates:
                trial[m].append(runs[m](passes[m]) / passes[m])
        self.method = min(candidates, key=lambda m: float(np.median(trial[m])) if trial[m] else 0.0)
        self._run, self.passes = runs[self.method], passes[self.method]
        self._run(self.passes)
        self.row = {"probe": "read_bandwidth", "threads": threads, "bytes": self.nbytes, "read_method": self.method,
                    "cache_state": "dram" if self.nbytes > llc else "cache", "passes_per_sample": self.passes}
        self.trial_gbps = {m: self.nbytes / float(np.median(t)) / 1e9 for m, t in trial.items() if t}

    @classmethod
    def for_working_set(cls, threads: int, nbytes: float) -> ReadBench:
        """The probe on a buffer of one working set's size (a decode token's bytes), rounded up
        to whole lines per thread: it then meets the caches that working set meets.  The ceiling
        of a token is the bandwidth for *its* reuse distance: on a 2-vCPU Emerald Rapids VM
        with a 300 MiB L3 an 852 MB buffer read 1.5 % faster than the default 1.26 GB and a
        605 MB one 6.6 % faster (8 alternating samples each, 2026-12-05), part of the stream
        staying in L3; with the default buffer tg128 once showed 101 % of its "roofline"."""
        lines = max(int(math.ceil(nbytes / 64)), threads)
        return cls(threads, nbytes=64 * lines)

    def sample(self) -> float:
        """Seconds per pass over the buffer."""
        return self._run(self.passes) / self.passes

    def summary(self, samples_s: list[float]) -> dict:
        s = stats.summarize(samples_s)
        return {**self.row, **s, "gbps": self.nbytes / s["median_s"] / 1e9}


class ComputeBench:
    """A compute probe (``kernels_c/probes.def``, e.g. ``mac_vpdpbusd_avx512``) on ``threads``
    threads, calibrated, ready to sample alongside kernels (:func:`interleave`).

    ``iters``: iterations per sample (every thread runs them all) instead of calibrating; a
    count calibrated on one thread keeps a many-thread sample from being all fork/join where
    the machine is oversubscribed (the first try then already lasts ``min_sample_s``)."""

    def __init__(self, probe: str, threads: int = 1, min_sample_s: float = MIN_SAMPLE_S, iters: int | None = None):
        lib, ffi = _native.lib(), _native.ffi
        names = [_native.string(lib.ryz_probe_name(i)) for i in range(lib.ryz_probe_count())]
        if probe not in names:
            raise ValueError(f"unknown compute probe {probe!r}; known: {', '.join(names)}")
        index = names.index(probe)
        self._seconds, self._ops = ffi.new("double *"), ffi.new("double *")

        def run(iters: int) -> float:
            _native.check(lib.ryz_probe_run(index, threads, iters, self._seconds, self._ops), f"probe {probe}")
            return self._seconds[0]

        self._run = run
        self.iters = _calibrate(run, 1000, min_sample_s) if iters is None else int(iters)
        run(self.iters)  # warm-up sample, discarded
        self.row = {"probe": probe, "unit": _native.string(lib.ryz_probe_unit(index)), "threads": threads,
                    "iters_per_sample": self.iters}

    def sample(self) -> float:
        """Seconds per operation (one int8 multiply-accumulate or one byte looked up) over one
        calibrated sample, i.e. 1 / rate: a ratio of two samples is a speedup."""
        return self._run(self.iters) / self._ops[0]

    def summary(self, samples_s: list[float]) -> dict:
        s = stats.summarize(samples_s)
        return {**self.row, "spread": s["spread"], "unstable": s["unstable"], "gops": 1e-9 / s["median_s"]}


def time_gemm(kernel: str | None, M: int, K: int, N: int = 1, threads: int = 1, schedule: str = "blocks",
              cold: bool | None = None, samples: int = 10, min_sample_s: float = MIN_SAMPLE_S,
              seed: int = 0) -> Timing:
    """Time one kernel on an M x K ternary matrix times N int8 tokens.

    The output is checked against the numpy oracle first (a mismatch raises
    :class:`KernelCallError`).  The row has per-call seconds (median_s, min_s, q1_s, q3_s,
    iqr_s, spread, unstable), weight_bytes streamed per call, gbps (weight bytes / median)
    and gops (2*M*N*K / median).
    """
    bench = GemmBench(kernel, M, K, N, threads, schedule, cold, seed, min_sample_s)
    per_call = [bench.sample() for _ in range(samples)]
    return Timing(bench.summary(per_call), per_call)


def read_bandwidth(threads: int = 1, nbytes: int | None = None, samples: int = 10,
                   min_sample_s: float = MIN_SAMPLE_S) -> Timing:
    """Read bandwidth (GB/s) of ``threads`` threads summing a buffer of ``nbytes``.

    The default buffer is four last-level caches: DRAM bandwidth.  A buffer well inside L2
    measures cache bandwidth instead (``cache_state`` says which).
    """
    bench = ReadBench(threads, nbytes, min_sample_s)
    per_pass = [bench.sample() for _ in range(samples)]
    return Timing(bench.summary(per_pass), per_pass)


def time_gemm_vs_bandwidth(kernel: str | None, M: int, K: int, N: int = 1, threads: int = 1,
                           schedule: str = "blocks", samples: int = 10, seed: int = 0,
                           min_sample_s: float = MIN_SAMPLE_S, probe: ReadBench | None = None) -> Timing:
    """:func:`time_gemm` with cold weights, interleaved with DRAM read-probe samples.

    Adds ``read_gbps`` (median probe bandwidth over the same seconds) and
    ``pct_of_read_bw`` (median over sample pairs of kernel GB/s / probe GB/s, in %).
    Pass ``probe`` to reuse one probe buffer across kernels.
    """
    bench = GemmBench(kernel, M, K, N, threads, schedule, True, seed, min_sample_s)
    probe = probe or ReadBench(threads, None, min_sample_s)
    per_call, per_pass = [], []
    for _ in range(samples):
        per_pass.append(probe.sample())
        per_call.append(bench.sample())
    ratios = [(bench.weight_bytes / c) / (probe.nbytes / p) for c, p in zip(per_call, per_pass)]
    row = bench.summary(per_call)
    row["read_gbps"] = probe.summary(per_pass)["gbps"]
    row["pct_of_read_bw"] = 100.0 * float(np.median(ratios))
    return Timing(row, per_call)


def interleave(benches: dict, samples: int) -> dict:
    """Sample prepared benches round after round, in rotating order; per-bench sample lists.

    On a shared machine, configurations compared as ratios (threads against 1 thread,
    schedules against ours) must see the same seconds: the ratio of the i-th samples of two
    benches is taken within one round, and its median is robust to drift between rounds.
    """
    keys = list(benches)
    per = {k: [] for k in keys}
    for i in range(samples):
        for k in keys[i % len(keys):] + keys[:i % len(keys)]:
            per[k].append(benches[k].sample())
    return per


def median_ratio(num: list[float], den: list[float]) -> float:
    """Median over rounds of num[i] / den[i] (samples from :func:`interleave`)."""
    return float(np.median([a / b for a, b in zip(num, den)]))
