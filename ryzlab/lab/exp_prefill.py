"""Notebook 06 (prefill): the GEMM against the compute peak as N grows, the LUT/MAD crossover,
and prompt processing (pp) / generation (tg) of a model shape next to llama.cpp.

Tables: ``prefill_gemm`` (one row per kernel and N: ``gops`` = 2·M·N·K / median seconds,
``macs_per_s`` = M·N·K / median seconds, the kernel's compute probe sampled in the same rounds
(``probe_gmacs``) and ``pct_of_peak`` = the median over rounds of the kernel's MAC rate ÷ the
probe's), ``prefill_crossover`` (per ISA and N: the faster of the best LUT and the best MAD
kernel and their ratio) and ``prefill_model`` (pp and tg tok/s of ryzlab and of llama.cpp).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.kernels import info
from ..measure import harness, peers, stats
from ..measure.bench_model import bench_model, compute_probe_for
from ..model import get_config
from . import exp_peers


def gemm_sweep(kernel_names: Sequence[str], shape: Sequence[int], ns: Sequence[int], threads: int,
               samples: int, min_sample_s: float, seed: int) -> pd.DataFrame:
    """Each kernel at each N (warm weights), interleaved round by round with its compute probe
    on the same threads (:func:`compute_probe_for`); see the module doc for the columns."""
    m, k = shape
    rows = []
    for name in kernel_names:
        probe = compute_probe_for(name)
        for n in ns:
            bench = harness.GemmBench(name, m, k, n, threads, cold=False, seed=seed, min_sample_s=min_sample_s)
            benches = {"gemm": bench}
            if probe:
                benches["probe"] = harness.ComputeBench(probe, threads, min_sample_s)
            per = harness.interleave(benches, samples)
            row = bench.summary(per["gemm"])
            macs = m * n * k
            row.update({"shape": f"{m}×{k}", "macs_per_s": macs / row["median_s"], "probe": probe,
                        "probe_gmacs": None, "pct_of_peak": None})
            if probe:
                row["probe_gmacs"] = benches["probe"].summary(per["probe"])["gops"]
                # a probe sample is seconds per MAC: (MACs / t_gemm) / (1 / t_mac) per round
                row["pct_of_peak"] = 100.0 * float(np.median([macs * p / g for g, p in zip(per["gemm"], per["probe"])]))
            rows.append(row)
    return pd.DataFrame(rows)


def crossover(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per ISA tier and N: the fastest LUT and the fastest MAD kernel, which one wins and by
    how much (``lut_over_mad`` = LUT seconds / MAD seconds: above 1, MAD is faster)."""
    frame = sweep.assign(isa=[info(k).isa for k in sweep["kernel"]], method=[info(k).method for k in sweep["kernel"]])
    rows = []
    for (isa, n), g in frame.groupby(["isa", "N"], sort=True):
        lut, mad = g[g["method"] == "lut"], g[g["method"] == "mad"]
        if lut.empty or mad.empty:
            continue
        bl, bm = lut.loc[lut["median_s"].idxmin()], mad.loc[mad["median_s"].idxmin()]
        rows.append({"isa": isa, "N": int(n), "lut_kernel": bl["kernel"], "mad_kernel": bm["kernel"],
                     "lut_over_mad": bl["median_s"] / bm["median_s"],
                     "faster": "mad" if bm["median_s"] < bl["median_s"] else "lut"})
    return pd.DataFrame(rows)


def ryzlab_pp_tg(model: str, prompt: int, gen: int, threads: int, reps: int, seed: int,
                 kernel: str | None = None) -> dict:
    """:func:`ryzlab.measure.bench_model.bench_model` of ``model``: pp and tg with their ceilings."""
    return bench_model(model, prompt=prompt, gen=gen, threads=threads, kernel=kernel, reps=reps, seed=seed)


def llama_pp_tg(model: str, directory: str | Path, qtypes: Sequence[str], prompt: int, gen: int,
                threads: int, reps: int, seed: int) -> list[dict]:
    """llama.cpp pp (``prompt`` tokens from position 0) and tg (``gen`` greedy steps) of the
    same shape per GGUF type, medians over ``reps``; empty when llama.cpp is not installed."""
    ok, _ = peers.available()
    if not ok:
        return []
    cfg = get_config(model)
    rows = []
    for qtype, path in exp_peers.write_ggufs(cfg, qtypes, directory, seed).items():
        dec = peers.LlamaDecoder(path, threads, context=prompt + gen + 8)
        pp_s, tg_s = [], []
        for _ in range(reps + 1):  # the first repetition warms up
            pp_s.append(dec.prompt(prompt, seed))
            t = time.perf_counter()
            for _ in range(gen):
                dec.step()
            tg_s.append(time.perf_counter() - t)
        dec.close()
        pp, tg = stats.summarize(pp_s[1:]), stats.summarize(tg_s[1:])
        rows.append({"system": "llama.cpp", "variant": qtype, "version": dec.version, "threads": threads,
                     "prompt": prompt, "gen": gen, "pp_tok_s": prompt / pp["median_s"], "pp_spread": pp["spread"],
                     "tg_tok_s": gen / tg["median_s"], "tg_spread": tg["spread"]})
        path.unlink(missing_ok=True)
    return rows


def model_table(ours: dict, llama: Sequence[dict]) -> pd.DataFrame:
    """The ``prefill_model`` rows: ryzlab's pp/tg with their ceilings, then each llama.cpp type,
    with ``pp_vs_ryzlab`` / ``tg_vs_ryzlab`` = ryzlab tok/s ÷ the row's."""
    keep = ("threads", "prompt", "gen", "pp_tok_s", "pp_spread", "tg_tok_s", "tg_spread", "pp_ceiling_tok_s",
            "pp_pct_of_ceiling", "compute_probe", "compute_gmacs", "tg_roofline_tok_s", "tg_pct_of_roofline",
            "read_gbps", "bytes_per_token")
    rows = [{"system": "ryzlab", "variant": ours["kernel"], "model": ours["model"], **{k: ours[k] for k in keep}}]
    rows += [{"model": ours["model"], **r} for r in llama]
    frame = pd.DataFrame(rows)
    frame["pp_vs_ryzlab"] = ours["pp_tok_s"] / frame["pp_tok_s"]
    frame["tg_vs_ryzlab"] = ours["tg_tok_s"] / frame["tg_tok_s"]
    return frame
