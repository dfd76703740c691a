"""Notebook 08 (beyond 2 bits): fewer bytes per token, and what they cost in accuracy.

Tables:

* ``beyond_gemv``: the ternary layers of one decode token (the model's four matrix shapes, each
  as often as a token multiplies it), per kernel, cold weights; samples of every kernel and of the
  read probe alternate round by round.  ``ternary_ms`` is the median over rounds of the token's
  summed GEMV time, ``gbps_own`` = the kernel's own packed bytes / that time, ``pct_of_read_bw``
  = the median over rounds of that rate ÷ the probe's in the same round, ``speedup_vs_2bit``
  = the median over rounds of the 2-bit kernel's time ÷ this kernel's, and ``gbps_warm`` the
  kernel's own bytes per second from cache-resident weights: its decoding ceiling.
* ``beyond_decode``: full decode of the model per (kernel, head) (:func:`measure.decode.
  measure_decode`): tok/s, bytes per token and % of its own roofline; the first configuration
  (2-bit, int8 head: today's default) and each of the small ones the notebook names (the
  1.6-bit kernel with each int4 head) alternate token by token, so their speed ratio
  ``vs_default`` (the default's step time ÷ the configuration's, > 1 when it is faster) is a
  median of per-round ratios (:data:`ALTERNATION_ROUNDS_PER_TOKEN` rounds per timed token); a
  read-probe sample joins each round, and ``vs_default_read_gbps`` is their median: the ratio
  depends on the host's bandwidth at the time (the 1.6-bit kernel is bound by its decoding
  where a core gets more than ~24 GB/s), so ``vs_default_dram_bound`` and ``vs_default_burst``
  split the rounds at the kernel's decoding ceiling (:func:`decode_configs`).
* ``beyond_alternation``: those rounds one by one (``ratio``, ``read_gbps``).
* ``beyond_accuracy``: each head against the float32 head (:func:`measure.head_accuracy.
  head_agreement`): top-1 agreement and KL divergence over decode steps.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..core.kernels import info
from ..measure import harness
from ..measure.decode import measure_decode
from ..measure.head_accuracy import head_agreement
from ..model import Model, get_config


class _LayerToken:
    """One decode token's ternary GEMVs of a kernel as one bench: each shape's GEMV bench (cold
    weights, or one cache-resident copy) sampled, weighted by how often a token multiplies that
    shape."""

    def __init__(self, kernel: str, shapes: dict[tuple[int, int], int], threads: int, min_sample_s: float, seed: int,
                 cold: bool = True):
        self.benches = {s: harness.GemmBench(kernel, s[0], s[1], 1, threads, cold=cold, seed=seed,
                                             min_sample_s=min_sample_s) for s in shapes}
        self.counts = shapes
        self.bytes = sum(b.weight_bytes * shapes[s] for s, b in self.benches.items())

    def sample(self) -> float:
        return sum(b.sample() * self.counts[s] for s, b in self.benches.items())


def layer_shapes(model: str) -> dict[tuple[int, int], int]:
    """(M, K) of the fused matrices the decoder multiplies, and how many per token."""
    cfg = get_config(model)
    counts: dict[tuple[int, int], int] = {}
    for shape in cfg.linear_shapes().values():
        counts[shape] = counts.get(shape, 0) + cfg.layers
    return counts


def ternary_gemv(model: str, kernel_names: Sequence[str], threads: int, samples: int, min_sample_s: float,
                 seed: int) -> pd.DataFrame:
    """The ``beyond_gemv`` table; the first kernel is the 2-bit reference."""
    shapes = layer_shapes(model)
    benches = {k: _LayerToken(k, shapes, threads, min_sample_s, seed) for k in kernel_names}
    probe = harness.ReadBench(threads, min_sample_s=min_sample_s)
    per = harness.interleave({**benches, "read": probe}, samples)
    warm = harness.interleave({k: _LayerToken(k, shapes, threads, min_sample_s, seed, cold=False)
                               for k in kernel_names}, samples)
    ref = kernel_names[0]
    rows = []
    for k, b in benches.items():
        t = per[k]
        rows.append({"model": model, "kernel": k, "bits_per_weight": info(k).bits_per_weight, "threads": threads,
                     "bytes_per_token": b.bytes, "ternary_ms": 1e3 * float(np.median(t)),
                     "gbps_own": b.bytes / float(np.median(t)) / 1e9,
                     "gbps_warm": b.bytes / float(np.median(warm[k])) / 1e9,
                     "read_gbps": probe.summary(per["read"])["gbps"], "read_method": probe.method,
                     "pct_of_read_bw": 100.0 * float(np.median([(b.bytes / a) / (probe.nbytes / p)
                                                                 for a, p in zip(t, per["read"])])),
                     "speedup_vs_2bit": harness.median_ratio(per[ref], t)})
    return pd.DataFrame(rows)


#: Rounds of the token-by-token alternation per timed token of a configuration: a round costs
#: two tokens and a probe pass (~50 ms for 2B-4T on 2 threads), and with 16 rounds the ratio
#: moved by several percent between runs (16- and 32-round runs with the probe at 35-43 GB/s
#: gave 1.31-1.35, 2026-12-07).
ALTERNATION_ROUNDS_PER_TOKEN = 4


def decode_configs(model: str, configs: Sequence[tuple[str, str]], threads: int, tokens: int, seed: int,
                   alternated: Sequence[tuple[str, str]] | None = None,
                   ceiling_gbps: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``beyond_decode`` and ``beyond_alternation`` tables for (kernel, head) pairs; see the
    module doc.  Each pair of ``alternated`` (default: the last pair) is also alternated token
    by token with the first for ``vs_default``; with ``ceiling_gbps`` (GB/s: what the small
    configurations' kernel decodes from cache-resident weights), ``vs_default_dram_bound`` is
    the median ratio over the ``dram_bound_rounds`` rounds whose probe read at most that, and
    ``vs_default_burst`` over the others."""
    rows = []
    for kernel, head in configs:
        r = measure_decode(model, threads=threads, tokens=tokens, kernel=kernel, seed=seed, head=head)
        rows.append({"model": model, "kernel": kernel, "bits_per_weight": info(kernel).bits_per_weight, "head": head,
                     "threads": threads, **{c: r[c] for c in ("tok_s", "ms_per_token", "spread", "bytes_ternary",
                                                               "bytes_head", "bytes_kv", "bytes_total", "read_gbps",
                                                               "roofline_tok_s", "pct_of_roofline",
                                                               "pct_ternary_of_read_bw")}})
    frame = pd.DataFrame(rows)
    for c in ("vs_default", "vs_default_read_gbps", "vs_default_dram_bound", "dram_bound_rounds", "vs_default_burst"):
        frame[c] = np.nan
    rounds = []
    if len(configs) > 1:
        frame.loc[0, "vs_default"] = 1.0
        for c in alternated or configs[-1:]:
            alt = alternate(model, configs[0], c, threads, ALTERNATION_ROUNDS_PER_TOKEN * tokens, seed)
            alt.insert(0, "head", c[1])
            alt.insert(0, "kernel", c[0])
            rounds.append(alt)
            i = list(configs).index(tuple(c))
            frame.loc[i, ["vs_default", "vs_default_read_gbps"]] = alt["ratio"].median(), alt["read_gbps"].median()
            if ceiling_gbps is not None:
                low = alt["read_gbps"] <= ceiling_gbps
                frame.loc[i, ["vs_default_dram_bound", "dram_bound_rounds", "vs_default_burst"]] = (
                    alt["ratio"][low].median(), int(low.sum()), alt["ratio"][~low].median())
    return frame, (pd.concat(rounds, ignore_index=True) if rounds else pd.DataFrame())


def alternate(model: str, a: tuple[str, str], b: tuple[str, str], threads: int, tokens: int,
              seed: int) -> pd.DataFrame:
    """The two models decoding one token per round in rotating order (both in memory at once)
    with a read-probe sample (a buffer of a's token bytes): per round, each step's seconds, the
    probe's GB/s and ``ratio`` = a's step time / b's."""
    ma = Model.generate(model, seed=seed, kernel=a[0], head=a[1], max_context=tokens + 4)
    mb = Model.generate(model, seed=seed, kernel=b[0], head=b[1], max_context=tokens + 4)

    class Steps:
        def __init__(self, m: Model):
            self.m, self.tok = m, 1

        def sample(self) -> float:
            t = time.perf_counter()
            logits = self.m.step(self.tok, threads)
            seconds = time.perf_counter() - t
            self.tok = int(np.argmax(logits))
            return seconds

    sa, sb = Steps(ma), Steps(mb)
    sa.sample(), sb.sample()  # warm-up
    probe = harness.ReadBench.for_working_set(threads, sum(ma.bytes_per_token().values()))
    per = harness.interleave({"a": sa, "b": sb, "read": probe}, tokens)
    a_s, b_s = np.array(per["a"]), np.array(per["b"])
    return pd.DataFrame({"round": np.arange(tokens), "default_s": a_s, "config_s": b_s, "ratio": a_s / b_s,
                         "read_gbps": probe.nbytes / np.array(per["read"]) / 1e9})


def accuracy(model: str, heads: Sequence[str], steps: int, seed: int) -> pd.DataFrame:
    """The ``beyond_accuracy`` table (random feed: a new context at every step)."""
    rows = head_agreement(model, steps=steps, heads=tuple(h for h in heads if h != "f32"), seed=seed, feed="random")
    return pd.DataFrame(rows)
