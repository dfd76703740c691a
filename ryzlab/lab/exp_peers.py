"""Notebook 05 (peers): ryzlab against llama.cpp (decode steps in alternation) and numpy float32.

Rows of the ``peers`` table: ``system``, ``variant``, ``head`` (the LM head's type), ``scope`` ("full decode" or "ternary
GEMVs only"), ``threads``, ``tok_s`` (tokens per second), ``ms_per_token`` (median),
``spread`` (IQR / median of the step times), ``bytes_per_token``, ``read_gbps`` (GB/s, ryzlab
rows only) and ``pct_of_roofline`` (%, ryzlab rows only).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.topology import last_level_cache_bytes
from ..measure import decode, harness, peers, stats
from ..model import Config, Model, blas_threads

#: Both runtimes keep idle worker threads spinning for a while after a step (OpenMP's
#: spin-wait, ggml's polling threadpool); on a small machine that steals the cores the other
#: system is being timed on, so each timed step starts after this untimed pause (seconds).
SETTLE_S = 0.02
#: numpy GEMV: untimed and timed products per layer shape.
NUMPY_WARMUP, NUMPY_TIMED = 3, 9


class _Settled:
    """A decode step as a bench for :func:`harness.interleave`: an untimed pause, then the
    step's own seconds."""

    def __init__(self, step: Callable[[], float]):
        self._step = step

    def sample(self) -> float:
        time.sleep(SETTLE_S)
        return self._step()


class _RyzlabSteps:
    """ryzlab's greedy decode one step at a time; keeps each step's ternary-GEMV seconds."""

    def __init__(self, model: Model, threads: int, seed: int):
        model.reset()
        self._model, self._threads = model, threads
        self._token = int(np.random.default_rng(seed).integers(model.config.vocab))
        self.gemv_s: list[float] = []

    def __call__(self) -> float:
        t0 = time.perf_counter()
        logits = self._model.step(self._token, self._threads)
        seconds = time.perf_counter() - t0
        self._token = int(np.argmax(logits))
        self.gemv_s.append(self._model.last_timings["ternary_gemv"])
        return seconds


def write_ggufs(cfg: Config, qtypes: Sequence[str], directory: str | Path, seed: int) -> dict[str, Path]:
    """One llama.cpp GGUF of ``cfg``'s shapes per type in ``qtypes``, written to ``directory``."""
    ggufs = {}
    for qtype in qtypes:
        t0 = time.perf_counter()
        ggufs[qtype] = peers.write_gguf(Path(directory) / f"{cfg.name}-{qtype}.gguf", cfg, qtype=qtype, seed=seed)
        print(f"wrote {ggufs[qtype].name}: {ggufs[qtype].stat().st_size / 1e6:.0f} MB "
              f"in {time.perf_counter() - t0:.1f} s")
    return ggufs


def decode_rounds(model: str, ggufs: dict[str, Path], thread_list: Sequence[int], tokens: int,
                  seed: int, configs: Sequence[tuple[str | None, str]] = ((None, "int8"),),
                  ) -> tuple[pd.DataFrame, dict[tuple[str, int], float]]:
    """ryzlab (each (kernel, head) of ``configs``; kernel None: the dispatched one) and each
    llama.cpp GGUF decoding one token per round, in rotating order (:func:`harness.interleave`),
    ``decode.DEFAULT_WARMUP`` rounds untimed.

    Returns the ``peers`` rows (per ryzlab configuration its full decode and its ternary GEMVs
    alone against the DRAM read bandwidth sampled before and after the rounds; each llama.cpp
    type), and per (llama.cpp type, threads) the median over rounds of llama.cpp step time /
    the first ryzlab configuration's step time.
    """
    warmup = decode.DEFAULT_WARMUP
    models = {}
    for kernel, head in configs:
        m = Model.generate(model, seed=seed, kernel=kernel, head=head, max_context=warmup + tokens + 1)
        models[m.kernel if head == "int8" else f"{m.kernel} + {head} head"] = m
    first = next(iter(models))
    rows, per_round = [], {}
    for t in thread_list:
        ours = {v: _RyzlabSteps(m, t, seed) for v, m in models.items()}
        decoders = {q: peers.LlamaDecoder(p, t) for q, p in ggufs.items()}
        probe = harness.ReadBench(t)
        bw = [probe.sample() for _ in range(3)]
        per = harness.interleave({**{v: _Settled(o) for v, o in ours.items()},
                                  **{q: _Settled(d.step) for q, d in decoders.items()}}, warmup + tokens)
        bw += [probe.sample() for _ in range(3)]
        for d in decoders.values():
            d.close()
        read_gbps = probe.summary(bw)["gbps"]
        per = {k: v[warmup:] for k, v in per.items()}
        for k, v in per.items():
            med = float(np.median(v))
            if k in models:
                b, head = models[k].bytes_per_token(), models[k].head.kind
                gemv_s = float(np.median(ours[k].gemv_s[warmup:]))
                rows.append({"system": "ryzlab", "variant": k, "head": head, "scope": "full decode", "threads": t,
                             "tok_s": 1 / med, "ms_per_token": 1e3 * med, "spread": stats.spread(v),
                             "bytes_per_token": b["total"], "read_gbps": read_gbps,
                             "pct_of_roofline": 100 * (b["total"] / med / 1e9) / read_gbps})
                rows.append({"system": "ryzlab", "variant": k, "head": head, "scope": "ternary GEMVs only",
                             "threads": t, "tok_s": 1 / gemv_s, "ms_per_token": 1e3 * gemv_s, "spread": np.nan,
                             "bytes_per_token": b["ternary"], "read_gbps": read_gbps,
                             "pct_of_roofline": 100 * (b["ternary"] / gemv_s / 1e9) / read_gbps})
            else:
                rows.append({"system": "llama.cpp", "variant": k, "head": "Q8_0", "scope": "full decode",
                             "threads": t, "tok_s": 1 / med, "ms_per_token": 1e3 * med, "spread": stats.spread(v),
                             "bytes_per_token": ggufs[k].stat().st_size, "read_gbps": np.nan,
                             "pct_of_roofline": np.nan})
                per_round[(k, t)] = harness.median_ratio(v, per[first])
        print(f"{t} thread(s): " + ", ".join(f"{k} {1 / np.median(v):.1f} tok/s" for k, v in per.items())
              + f"; read bandwidth {read_gbps:.1f} GB/s")
    del models, ours
    gc.collect()
    return pd.DataFrame(rows), per_round


def numpy_gemv(cfg: Config, thread_list: Sequence[int], seed: int) -> pd.DataFrame:
    """``peers`` rows of numpy float32 GEMVs through BLAS on ``cfg``'s ternary layer shapes, one
    token's worth (median per shape, times the layer count), with matrices rotated so that
    they do not fit the last-level cache."""
    rng = np.random.default_rng(seed)
    llc = last_level_cache_bytes()
    rows = []
    for t in thread_list:
        per_layer_s, nbytes = 0.0, 0
        with blas_threads(t):
            for M, K in cfg.linear_shapes().values():
                copies = [rng.standard_normal((M, K), dtype=np.float32) for _ in range(max(1, -(-2 * llc // (4 * M * K))))]
                x = rng.standard_normal(K, dtype=np.float32)
                times = []
                for i in range(NUMPY_WARMUP + NUMPY_TIMED):
                    t0 = time.perf_counter()
                    copies[i % len(copies)] @ x
                    times.append(time.perf_counter() - t0)
                per_layer_s += float(np.median(times[NUMPY_WARMUP:]))
                nbytes += 4 * M * K
                del copies
        per_token_s = cfg.layers * per_layer_s
        rows.append({"system": "numpy float32", "variant": "BLAS GEMV", "scope": "ternary GEMVs only", "threads": t,
                     "tok_s": 1 / per_token_s, "ms_per_token": 1e3 * per_token_s, "spread": np.nan,
                     "bytes_per_token": cfg.layers * nbytes, "read_gbps": np.nan, "pct_of_roofline": np.nan})
        print(f"numpy float32, {t} thread(s): {1e3 * per_token_s:.1f} ms per token for the ternary layers")
    return pd.DataFrame(rows)


def ratios(df: pd.DataFrame, per_round: dict[tuple[str, int], float]) -> pd.DataFrame:
    """The peer rows of ``df`` with ``ryzlab_over_peer`` (the first ryzlab configuration's tok/s /
    peer tok/s, same scope and threads): the median of per-round ratios where the peer was interleaved (llama.cpp), else
    the ratio of the medians (numpy, timed apart)."""
    ryz = df[df["system"] == "ryzlab"]
    ours = ryz[ryz["variant"] == ryz["variant"].iloc[0]].set_index(["scope", "threads"])["tok_s"]
    return df[df["system"] != "ryzlab"].assign(
        ryzlab_over_peer=lambda f: [per_round.get((var, t), ours[(s, t)] / v)
                                    for var, s, t, v in zip(f["variant"], f["scope"], f["threads"], f["tok_s"])])
