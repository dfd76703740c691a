"""Notebook 00 (the machine): the run context, the roofline ceilings (stored or measured) with a
DRAM re-check in this run, and the decode bound they imply.

Bandwidths are GB/s; compute ceilings are probe Gop/s in the table and harness Gop/s (2 ops per
weight and token, :func:`ryzlab.lab.plots.compute_ceiling_gops`) in :func:`decode_bound`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import pandas as pd

from ..core.kernels import registry
from ..measure import harness
from ..model import get_config
from . import roofline
from .plots import compute_ceiling_gops

#: The guide's finish line, in tok/s ("10+ tok/s").
GUIDE_TARGET_TOK_S = 10


def context_summary(ctx: dict) -> pd.DataFrame:
    """The run context (``results.read_context``) as a two-column table for people."""
    features = ctx.get("cpu_features") or {}
    return pd.DataFrame([
        ("CPU", ctx.get("cpu_model")),
        ("physical cores / logical CPUs", f"{ctx.get('physical_cores')} / {ctx.get('logical_cpus')}"),
        ("L1d / L2 / L3 (KiB, one core's view)",
         " / ".join(str(ctx.get(k) // 1024) if ctx.get(k) else "?" for k in ("l1d_bytes", "l2_bytes", "l3_bytes"))),
        ("CPU features (runtime cpuid + xgetbv)", ", ".join(f for f, on in features.items() if on) or "baseline x86-64"),
        ("features absent", ", ".join(f for f, on in features.items() if not on) or "none"),
        ("kernels, dispatch order", ", ".join(ctx.get("kernels") or [])),
        ("compiler", ctx.get("compiler")),
        ("flags", ctx.get("cflags")),
        ("commit", f"{ctx.get('git_commit')}" + (" (dirty)" if ctx.get("git_dirty") else "")),
    ], columns=["", "value"])


def ceilings(thread_counts: Sequence[int], samples: int, recompute: bool) -> tuple[pd.DataFrame, bool, str]:
    """This machine's ceilings at ``thread_counts`` (:func:`roofline.load_or_measure`), with
    ``source`` ("measured" in this call or "stored") and ``stored_at`` (UTC ISO 8601) columns;
    also whether they were measured now, and when they were stored."""
    store = roofline.path()
    before = store.stat().st_mtime if store.exists() else None
    roof = roofline.load_or_measure(recompute=recompute, threads=thread_counts, samples=samples)
    after = store.stat().st_mtime
    measured_now = before is None or after != before
    stored_at = datetime.fromtimestamp(after, timezone.utc).isoformat(timespec="seconds")
    roof = roof[roof["threads"].isin(thread_counts)].reset_index(drop=True)
    roof["source"] = "measured" if measured_now else "stored"
    roof["stored_at"] = stored_at
    return roof, measured_now, stored_at


def dram_recheck(samples: int, min_sample_s: float, stored_at: str) -> dict:
    """A ceiling-table row (probe ``read_dram_recheck``, source ``this_run``): the 1-thread DRAM
    read bandwidth measured again now, to show whether the stored ceiling still holds."""
    check = harness.read_bandwidth(threads=1, samples=samples, min_sample_s=min_sample_s).row
    return {"probe": "read_dram_recheck", "kind": "recheck", "level": "dram", "threads": 1, "value": check["gbps"],
            "unit": "GB/s", "spread": check["spread"], "unstable": check["unstable"], "source": "this_run",
            "stored_at": stored_at}


def best_compute(roof: pd.DataFrame, threads: int) -> pd.Series:
    """The compute ceiling with the most harness Gop/s (column ``gops``) at ``threads``."""
    c = roof[(roof["kind"] == "compute") & (roof["threads"] == threads)]
    c = c.assign(gops=[compute_ceiling_gops(p, v) for p, v in zip(c["probe"], c["value"])])
    return c.loc[c["gops"].idxmax()]


def decode_regime(ridge: float, intensity: float) -> str:
    """Where decode at ``intensity`` sits against a roofline ridge at ``ridge`` (both ops per
    weight byte), as a sentence fragment: memory-bound, compute-bound or at the ridge."""
    if ridge > 2 * intensity:
        return (f"{ridge / intensity:.1f}× left of the ridge: **memory-bound**. A kernel that issues its instructions "
                f"at a fraction of peak can still saturate DRAM, so the decode speed is set by the bytes streamed")
    if ridge < intensity / 2:
        return (f"{intensity / ridge:.1f}× right of the ridge: **compute-bound** on one thread, even at the peak rate "
                f"of a single instruction")
    return (f"**at the ridge** (ridge ÷ intensity = {ridge / intensity:.2f}). One core saturates DRAM only if it "
            f"sustains close to the peak rate of its single busiest instruction for every weight. Each extra "
            f"instruction per weight (unpacking, adds, table loads) leaves a single-thread kernel compute-bound, "
            f"below the DRAM slope")


def decode_bound(roof: pd.DataFrame, top: int, model: str = "bitnet-2b-4t") -> dict:
    """What the ceilings say about decoding ``model`` (linear layers only) with the most compact
    LUT/MAD weight format, on 1 and ``top`` threads.

    Keys: ``bits`` (per weight), ``intensity`` (ops per weight byte), ``weights_per_token``,
    ``bytes_per_token``, ``dram1``/``dram_top`` (GB/s), ``best``/``best_top`` (the
    :func:`best_compute` rows), ``ridge``/``ridge_top`` (ops per weight byte), ``regime`` (text
    on 1 thread) and ``ceiling_tok_s`` (``dram_top`` / bytes per token).
    """
    weights = get_config(model).ternary_weights
    bits = min(k.bits_per_weight for k in registry() if k.method in ("lut", "mad"))
    intensity = 2 * 8 / bits  # ops per weight byte at N = 1
    dram1, dram_top = roofline.ceiling(roof, "read_dram", 1), roofline.ceiling(roof, "read_dram", top)
    best, best_top = best_compute(roof, 1), best_compute(roof, top)
    ridge = best["gops"] / dram1
    return {"bits": bits, "intensity": intensity, "weights_per_token": weights,
            "bytes_per_token": weights * bits / 8, "dram1": dram1, "dram_top": dram_top, "best": best,
            "best_top": best_top, "ridge": ridge, "ridge_top": best_top["gops"] / dram_top,
            "regime": decode_regime(ridge, intensity), "ceiling_tok_s": dram_top * 1e9 / (weights * bits / 8)}
