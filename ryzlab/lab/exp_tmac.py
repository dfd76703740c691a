"""Notebook 02 (T-MAC encoding): the guide's lookup tables against ryzlab's exact ones (error,
table bytes) and a correct LUT kernel against multiply-add (MAD) of the same ISA.

Errors are in % (``*_pct``), sizes in bytes, times in seconds, bandwidths in GB/s.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..core import legacy, reference
from ..core.kernels import info, kernels
from ..core.ops import gemm, workspace_bytes
from ..measure import harness, stats

#: The guide's reported error range of its tables, in %.
GUIDE_CLAIM_PCT = (291, 430)
#: The guide's encodings as reproduced in :mod:`ryzlab.core.legacy`.
ENCODINGS = {"sign_bit_table": legacy.sign_bit_table_gemm, "broadcast": legacy.broadcast_gemm,
             "guide_fix": legacy.guide_fix_gemm}
#: LUT kernels and the MAD kernel of the same ISA, highest ISA first.
LUT_MAD_PAIRS = (("lut_avx512", "mad_avx512vnni"), ("lut_avx2", "mad_avx2"))
#: Table columns summed into the whole-model row of :func:`table_sizes`.
_SIZE_COLUMNS = ("guide_table_bytes", "ryzlab_table_bytes", "weight_bytes_2bit", "workspace_bytes")


def lut_kernels() -> list[str]:
    """The runnable LUT kernels, dispatch order."""
    return [name for name in kernels() if info(name).method == "lut"]


def activation_tables(x: np.ndarray) -> np.ndarray:
    """ryzlab's per-token tables in numpy: (N, K) int8, K even -> (N, K/2, 16) int32, where
    entry c of pair p is (c&3 - 1)*x[2p] + (c>>2 - 1)*x[2p+1]."""
    pairs = x.astype(np.int32).reshape(x.shape[0], -1, 2)
    c = np.arange(16)
    return ((c & 3) - 1) * pairs[..., :1] + ((c >> 2) - 1) * pairs[..., 1:]


def lut_gemm_numpy(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The numpy twin of the LUT kernels: (M, K) ternary times (N, K) int8, K even -> (N, M)
    int32, by looking up weight-pair codes in two byte planes of :func:`activation_tables`."""
    codes = (w[:, 0::2] + 1) | (w[:, 1::2] + 1) << 2  # (M, K/2) weight-pair codes
    t = activation_tables(x)  # (N, K/2, 16)
    lo, hi = (t & 0xFF).astype(np.uint8), (t >> 8).astype(np.int8)  # the two byte planes
    p = np.arange(codes.shape[1])
    looked_lo = lo[:, p[None, :], codes].astype(np.int32)  # (N, M, K/2)
    looked_hi = hi[:, p[None, :], codes].astype(np.int32)
    return (looked_lo.sum(-1) + 256 * looked_hi.sum(-1)).astype(np.int32)


def error_cases(shapes: Sequence[Sequence[int]], seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(case, weights, activations)``: random data on each (M, K, N) of ``shapes`` (the same
    draws, in the same order, as :func:`legacy.measure_guide_errors`), then edge cases on the
    first shape (extreme activations, all-zero weights, K not a multiple of 8, one token)."""
    rng = np.random.default_rng(seed)
    cases = [(f"random {m}×{k}×{n}", rng.integers(-1, 2, size=(m, k), dtype=np.int8),
              rng.integers(-128, 128, size=(n, k), dtype=np.int8)) for m, k, n in shapes]
    m, k, n = shapes[0]
    w, x = harness.random_problem(m, k, n, seed)
    k_odd = k - 3 if k > 8 else k + 5
    w_odd, x_odd = harness.random_problem(m, k_odd, n, seed)
    return cases + [
        ("x = -128 everywhere", w, np.full_like(x, -128)),
        ("x = 127, w = +1", np.ones_like(w), np.full_like(x, 127)),
        ("all-zero weights", np.zeros_like(w), x),
        (f"K = {k_odd} (not a multiple of 8)", w_odd, x_odd),
        ("one token (N = 1)", w, x[:1]),
    ]


def encoding_errors(cases: Sequence[tuple[str, np.ndarray, np.ndarray]], lut_names: Sequence[str]) -> pd.DataFrame:
    """Table ``tmac_encoding_error``: both error metrics (%) of each guide encoding and each
    ryzlab LUT kernel on each case; the kernels must be exact (asserted)."""
    rows = []
    for case, w, x in cases:
        exact = reference.gemm(w, x)
        outputs = {name: ("guide (legacy)", f(w, x)) for name, f in ENCODINGS.items()}
        for name in lut_names:
            y = gemm(w, x, kernel=name, threads=1)
            assert np.array_equal(y, exact), f"{name} is not exact on {case}"
            outputs[name] = ("ryzlab", y)
        for name, (source, approx) in outputs.items():
            # The guide's metric divides by exact outputs that are 0, and the norm metric by an
            # all-zero output: both are reported as they come (inf / NaN), not as warnings.
            with np.errstate(invalid="ignore", divide="ignore"):
                e_max, e_norm = legacy.relative_error(approx, exact), legacy.relative_error_norm(approx, exact)
            rows.append({"case": case, "M": w.shape[0], "K": w.shape[1], "N": x.shape[0], "method": name,
                         "source": source, "rel_error_max_pct": 100 * e_max,
                         "rel_error_norm_pct": 100 * e_norm if np.isfinite(e_norm) else np.nan,
                         "exact": bool(np.array_equal(np.asarray(approx), exact)),
                         "zero_outputs": int((exact == 0).sum()), "outputs": int(exact.size)})
    return pd.DataFrame(rows)


def check_against_legacy(err: pd.DataFrame, shapes: Sequence[Sequence[int]], seed: int) -> bool:
    """Assert that :func:`encoding_errors` on :func:`error_cases` agrees with
    :func:`legacy.measure_guide_errors`; False (nothing checked) unless ``shapes`` are the guide's."""
    if [tuple(s) for s in shapes] != legacy.GUIDE_SHAPES:
        return False
    mine = err[err["source"] == "guide (legacy)"].head(len(legacy.GUIDE_SHAPES) * len(ENCODINGS))
    for r, ref_row in zip(mine.itertuples(), legacy.measure_guide_errors(seed)):
        assert np.isclose(r.rel_error_norm_pct, 100 * ref_row["rel_error_norm"])
        assert np.isclose(r.rel_error_max_pct, 100 * ref_row["rel_error_max"])
    return True


def table_sizes(layers: dict[str, Sequence[int]], n_layers: int, lut_kernel: str | None) -> pd.DataFrame:
    """Table ``tmac_table_sizes``: per layer (out x in = M x K) the bytes of the guide's fixed
    per-row tables (M x ceil(K/8) x 256 float32), of ryzlab's per-token tables (16·K), of the
    2-bit weights and of the workspace ``lut_kernel`` asks for (N = 1); then the whole model."""
    ws = info(lut_kernel) if lut_kernel else None
    sizes = pd.DataFrame([{
        "layer": layer, "M": m, "K": k,
        "guide_table_bytes": m * -(-k // legacy.LOOKUP_WIDTH) * 2 ** legacy.LOOKUP_WIDTH * np.dtype(np.float32).itemsize,
        "ryzlab_table_bytes": (k // 2) * 16 * 2,
        "weight_bytes_2bit": m * k * 2 // 8,
        "workspace_bytes": workspace_bytes(ws, m, 1, k) if ws else np.nan,
        "workspace_kernel": ws.name if ws else "",
    } for layer, (m, k) in layers.items()])
    total = {"layer": f"model ({n_layers} layers)", "M": np.nan, "K": np.nan,
             **{c: n_layers * sizes[c].sum() for c in _SIZE_COLUMNS},
             "workspace_kernel": sizes["workspace_kernel"].iloc[0]}
    sizes = pd.concat([sizes, pd.DataFrame([total])], ignore_index=True)
    sizes["guide_over_ryzlab"] = sizes["guide_table_bytes"] / sizes["ryzlab_table_bytes"]
    sizes["guide_over_weights"] = sizes["guide_table_bytes"] / sizes["weight_bytes_2bit"]
    return sizes


def lut_vs_mad(shapes: Sequence[Sequence[int]], samples: int, min_sample_s: float,
               seed: int) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """Each runnable pair of :data:`LUT_MAD_PAIRS` on each decode shape (N = 1, 1 thread), cold
    and warm.

    Returns table ``lut_vs_mad`` (harness rows plus ``pair``, ``shape``, ``read_gbps`` and
    ``pct_of_read_bw`` against one DRAM read measurement of this call), its summary per (pair,
    shape, cache state): ``lut_speedup_over_mad`` (MAD time / LUT time), ``lut_pct_of_read_bw``,
    ``mad_pct_of_read_bw``; and that read bandwidth in GB/s.
    """
    runnable = set(kernels())
    pairs = [(lut, mad) for lut, mad in LUT_MAD_PAIRS if lut in runnable and mad in runnable]
    bw = harness.read_bandwidth(threads=1, samples=samples, min_sample_s=min_sample_s).row["gbps"]
    speed = pd.DataFrame([
        {**harness.time_gemm(name, m, k, N=1, threads=1, cold=cold, samples=samples, min_sample_s=min_sample_s,
                             seed=seed).row, "pair": f"{lut} vs {mad}", "shape": f"{m}×{k}"}
        for lut, mad in pairs for m, k in shapes for cold in (True, False) for name in (lut, mad)])
    speed["read_gbps"] = bw
    speed["pct_of_read_bw"] = 100 * speed["gbps"] / bw
    key = ["pair", "shape", "cache_state"]
    t = speed.pivot_table(index=key, columns="method", values="median_s")
    ratio = (t["mad"] / t["lut"]).rename("lut_speedup_over_mad").reset_index()
    pct = speed.pivot_table(index=key, columns="method", values="pct_of_read_bw").reset_index()
    summary = ratio.merge(pct.rename(columns={"lut": "lut_pct_of_read_bw", "mad": "mad_pct_of_read_bw"}))
    return speed, summary, bw


def lut_vs_mad_reading(cold: float, warm: float) -> tuple[str, str]:
    """How to read a LUT-over-MAD speedup measured cold and warm: a verdict on the cold (decode)
    ratio and the reason the two states agree or differ.  Ratios within ``stats.UNSTABLE_SPREAD``
    of each other (on a log scale) count as equal."""
    tol = np.log1p(stats.UNSTABLE_SPREAD)
    same_cold, same_warm = abs(np.log(cold)) <= tol, abs(np.log(warm)) <= tol
    verdict = "the same speed within the noise band" if same_cold else ("LUT faster" if cold > 1 else "MAD faster")
    if same_cold and same_warm:
        why = "Neither state separates them: on this CPU the encoding does not decide the speed."
    elif same_cold:
        why = ("Warm, they differ: a compute difference, which DRAM hides in decode because both wait for "
               "their weights.")
    elif abs(np.log(cold / warm)) <= tol:
        why = ("The ratio is the same warm and cold, so the difference is compute. The slower kernel is "
               "compute-bound even while its weights stream from DRAM, so it does not saturate the bandwidth.")
    elif abs(np.log(cold)) < abs(np.log(warm)):
        why = (f"The gap narrows from warm to cold ({warm:.2f}× → {cold:.2f}×): DRAM absorbs part of a compute "
               f"difference.")
    else:
        why = (f"The gap widens from warm to cold ({warm:.2f}× → {cold:.2f}×): the kernels also differ in how well "
               f"they stream from DRAM, not only in compute.")
    return verdict, why
