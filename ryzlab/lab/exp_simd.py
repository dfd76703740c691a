"""Notebook 01 (SIMD activation): which kernel dispatch picks and why, and each kernel's speed
against the scalar fallback and against the DRAM read bandwidth."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..core.kernels import cpu_features, kernels, limit_isa, registry
from ..core.ops import gemm
from ..errors import UnsupportedKernelError
from ..measure import harness

#: The guide's "before" (the scalar fallback) and the naive oracle kernel: every speedup's base.
BASELINES = ("lut_scalar", "ref")
#: The CPU tiers that dispatch is shown on: scalar-only, AVX2 (a Zen 3 like the guide's), AVX-512.
TIERS = ("scalar", "avx2", "avx512")


def registry_table() -> pd.DataFrame:
    """Every registry kernel, highest dispatch rank first: ISA, method, weight format,
    bits/weight, the CPU features it needs and whether this CPU can run it."""
    return pd.DataFrame([{"kernel": k.name, "rank": k.rank, "isa": k.isa, "method": k.method, "format": k.format,
                          "bits/weight": k.bits_per_weight, "needs": "+".join(k.features) or "-",
                          "runnable here": k.supported} for k in registry()]).sort_values("rank", ascending=False)


def isa_tiers() -> pd.DataFrame:
    """What dispatch chooses when the library acts as each CPU of :data:`TIERS`."""
    tiers = []
    for level in TIERS:
        with limit_isa(level):
            runnable = kernels()
            tiers.append({"CPU acts as": level,
                          "features kept": ", ".join(f for f, on in cpu_features().items() if on) or "-",
                          "dispatch chooses": runnable[0], "runnable, best first": ", ".join(runnable)})
    return pd.DataFrame(tiers)


def refused_under(level: str, isa: str, seed: int) -> list[str]:
    """Call every ``isa`` kernel with the library capped at ``level``: one line per kernel
    saying how the call was refused (an error, not an illegal instruction)."""
    w, x = harness.random_problem(64, 256, 1, seed)
    out = []
    with limit_isa(level):
        for name in [k.name for k in registry() if k.isa == isa]:
            try:
                gemm(w, x, kernel=name)
                out.append(f"{name}: ran (unexpected under an {level.upper()} cap)")
            except UnsupportedKernelError as exc:
                out.append(f"{name} under an {level.upper()} cap -> UnsupportedKernelError: {exc}")
    return out


def time_kernels(kernel_names: Sequence[str], cases: Sequence[tuple[int, int, int]], threads: int, samples: int,
                 min_sample_s: float, seed: int) -> pd.DataFrame:
    """Table ``simd_activation`` (plus a ``case`` label): every kernel on every (M, K, N).

    N = 1 is decode: cold weights, each sample paired with a DRAM read-probe sample
    (``read_gbps``, ``pct_of_read_bw``); N > 1 is timed warm.  ``speedup_vs_scalar`` and
    ``speedup_vs_ref`` divide the median time of the :data:`BASELINES` on the same case, which
    ``kernel_names`` must include; ``dispatched`` marks dispatch's choice.
    """
    # One probe buffer for all cases: the DRAM bandwidth drifts, so each kernel's samples are
    # paired with probe samples of the same seconds rather than with one earlier measurement.
    probe = harness.ReadBench(threads=threads, min_sample_s=min_sample_s)
    rows = []
    for m, k, n in cases:
        for name in kernel_names:
            if n == 1:
                t = harness.time_gemm_vs_bandwidth(name, m, k, threads=threads, samples=samples,
                                                   min_sample_s=min_sample_s, seed=seed, probe=probe)
            else:
                t = harness.time_gemm(name, m, k, N=n, threads=threads, samples=samples,
                                      min_sample_s=min_sample_s, seed=seed)
            rows.append(t.row)
    df = pd.DataFrame(rows)
    df["case"] = [f"{m}×{k}" + ("" if n == 1 else f" N={n}") for m, k, n in zip(df["M"], df["K"], df["N"])]
    base = df.set_index(["M", "K", "N", "kernel"])["median_s"]
    for col, b in (("speedup_vs_scalar", BASELINES[0]), ("speedup_vs_ref", BASELINES[1])):
        df[col] = [base[(m, k, n, b)] / s for m, k, n, s in zip(df["M"], df["K"], df["N"], df["median_s"])]
    df["dispatched"] = df["kernel"] == kernels()[0]
    return df
