"""Notebook 04 (decode): tok/s of a BitNet b1.58 model through the guide's fix sequence, against
context length, and where a token's time goes.

Rows are :func:`ryzlab.measure.decode.measure_decode` results flattened: the per-category
breakdown becomes ``ms_<category>`` columns (mean milliseconds per token).
"""

from __future__ import annotations

import gc
from collections.abc import Sequence

import pandas as pd

from ..core.kernels import kernels
from ..measure.decode import measure_decode
from ..model import TIMING_CATEGORIES, Model

#: The guide's CLAIMS (end-to-end tok/s after each of its fixes), not measurements.
GUIDE_CLAIMS = {"before": 0.42, "SIMD": 2.5, "LUT": 5.0, "+ threads": 10.0}
#: Untimed tokens before each measurement.
WARMUP = 2
#: The scalar fallback is slow: at most this many timed tokens, after one warm-up token.
BEFORE_TOKENS, BEFORE_WARMUP = 3, 1


def best_lut_simd() -> str | None:
    """The best runnable SIMD kernel that uses lookup tables (not the scalar fallback)."""
    return next((k for k in kernels() if k.startswith("lut_") and k != "lut_scalar"), None)


def _row(label: str, r: dict) -> dict:
    flat = {k: v for k, v in r.items() if k not in ("breakdown_ms", "breakdown_pct", "generated")}
    flat.update({f"ms_{c}": r["breakdown_ms"][c] for c in TIMING_CATEGORIES})
    return {"step": label, **flat}


def fix_sequence(model: str, threads: int, tokens: int, contexts: Sequence[int],
                 seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables ``decode_fix_sequence`` and ``decode_context``.

    The fix sequence runs at context 0: ``before`` (``lut_scalar``, 1 thread), ``SIMD`` (the
    dispatched kernel, 1 thread), ``LUT`` (:func:`best_lut_simd`, 1 thread; absent without one)
    and ``+ threads`` (dispatched, ``threads``), with ``guide_claim_tok_s`` and
    ``speedup_vs_before``.  The context sweep reuses the dispatched kernel's model at ``threads``.
    Each kernel packs its own model, freed before the next is generated, so memory stays bounded.
    """
    dispatched, best_lut = kernels()[0], best_lut_simd()
    before_tokens = min(tokens, BEFORE_TOKENS)
    fix_rows, ctx_rows = [], []

    m = Model.generate(model, seed=seed, kernel="lut_scalar", max_context=BEFORE_WARMUP + before_tokens)
    fix_rows.append(_row("before", measure_decode(m, threads=1, tokens=before_tokens, warmup=BEFORE_WARMUP, seed=seed)))
    del m
    gc.collect()

    m = Model.generate(model, seed=seed, kernel=dispatched, max_context=max(contexts) + WARMUP + tokens)
    fix_rows.append(_row("SIMD", measure_decode(m, threads=1, tokens=tokens, warmup=WARMUP, seed=seed)))
    fix_rows.append(_row("+ threads", measure_decode(m, threads=threads, tokens=tokens, warmup=WARMUP, seed=seed)))
    for c in contexts:
        ctx_rows.append(_row(f"context {c}", measure_decode(m, threads=threads, tokens=tokens, warmup=WARMUP,
                                                            context=c, seed=seed)))
    del m
    gc.collect()

    if best_lut:
        m = Model.generate(model, seed=seed, kernel=best_lut, max_context=WARMUP + tokens)
        fix_rows.append(_row("LUT", measure_decode(m, threads=1, tokens=tokens, warmup=WARMUP, seed=seed)))
        del m
        gc.collect()

    order = list(GUIDE_CLAIMS)
    fix = pd.DataFrame(fix_rows).sort_values("step", key=lambda s: s.map(order.index)).reset_index(drop=True)
    fix["guide_claim_tok_s"] = fix["step"].map(GUIDE_CLAIMS)
    fix["speedup_vs_before"] = fix["tok_s"] / fix.loc[fix["step"] == "before", "tok_s"].iloc[0]
    return fix, pd.DataFrame(ctx_rows)


def breakdown(parts: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Table ``decode_breakdown``: for each named part's rows and each timing category, the mean
    ms per token (``ms_per_token``) and its share of the sum of the categories (``pct``, %)."""
    both = pd.concat([frame.assign(part=name) for name, frame in parts.items()])
    return pd.DataFrame([
        {"part": r["part"], "step": r["step"], "kernel": r["kernel"], "threads": r["threads"], "context": r["context"],
         "category": c, "ms_per_token": r[f"ms_{c}"],
         "pct": 100 * r[f"ms_{c}"] / sum(r[f"ms_{k}"] for k in TIMING_CATEGORIES)}
        for _, r in both.iterrows() for c in TIMING_CATEGORIES])
