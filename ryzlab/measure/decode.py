"""End-to-end decode timing of a BitNet b1.58 model shape, next to its memory roofline.

``python -m ryzlab decode --model bitnet-2b-4t --threads 2 --tokens 16 --context 1024``

What one measurement does (:func:`measure_decode`):

1. Generates the model (random weights from ``seed``, packed for the kernel; see
   :mod:`ryzlab.model`) with room for ``context + warmup + tokens`` positions.
2. Fills the KV cache with ``context`` positions of random keys and values
   (:meth:`Model.prefill_synthetic`): decode at context C is timed without running C
   forward passes first.  Decode cost depends on how many positions are cached, not on
   their values; the tokens produced are not those a real prompt would give.
3. Runs ``warmup`` untimed tokens, then ``tokens`` timed greedy tokens (each step timed
   whole and by category), each followed by one sample of the read bandwidth at the same
   thread count (:meth:`ReadBench.for_working_set`: a buffer of one token's bytes, so the
   probe meets the caches the token meets); the bandwidth is the median of those samples (samples
   before and after the tokens are reported too).  On a shared machine the bandwidth drifts,
   so shares of it are medians over tokens of each token's rate over the faster of the two
   samples around it (the one before it and the one after): the host's bursts of bandwidth
   come and go within a token, and a token that ran in one while the sample after it did not
   showed 103 % of "its" bandwidth (notebook 08, 2026-12-07) when only the later sample counted.
4. Reports tok/s = 1 / median step time (a step is one token); the bytes one token streams
   (packed ternary weights, the LM head chosen with ``--head`` (int8 by default), float32 KV cache at the step's context; mean over the
   timed tokens); roofline tok/s = bandwidth / bytes per token, i.e. the speed if every byte
   came from memory at the measured read bandwidth and nothing else cost time; the share of it
   reached; the ternary layers alone (ternary bytes / median time in the ternary GEMVs,
   vs the bandwidth); the per-category breakdown (mean ms per token and % of the mean step);
   and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from ..core import validate
from ..core.head import isa as head_isa
from ..core.head import isa_int4
from ..core.topology import physical_cores
from ..model import CONFIGS, TIMING_CATEGORIES, Model, get_config, load
from ..model.heads import INT4_KINDS
from . import stats
from .harness import ReadBench

DEFAULT_WARMUP = 2


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def measure_decode(model_name: str | Model, threads: int | None = None, tokens: int = 16,
                   kernel: str | None = None, context: int = 0, seed: int = 0, *,
                   warmup: int = DEFAULT_WARMUP, bandwidth_samples: int = 5, head: str | None = None) -> dict:
    """Time greedy decode of ``tokens`` tokens at KV context ``context``; see the module doc.

    ``model_name`` is a name of :data:`ryzlab.model.CONFIGS` (the model is generated here and
    dropped on return), the path of a checkpoint (:func:`ryzlab.load`; ``seed`` only picks the
    first token), or an already built :class:`Model` (reset and reused: its kernel and seed
    apply, and its max_context must hold ``context + warmup + tokens``).  ``head``: the LM head
    (:data:`ryzlab.model.heads.HEADS`; default int8, or the given model's).

    Returns a flat dict (JSON-serialisable): the setup (model, kernel, head, head_isa, threads,
    context, tokens, warmup, seed, max_context), ``generation_s``, ``prefill_s``, step times
    (``ms_per_token`` median, ``ms_per_token_min``, ``spread``, ``unstable``), ``tok_s``,
    ``bytes_ternary``/``bytes_head``/``bytes_kv``/``bytes_total`` per token, ``read_gbps`` (and
    ``read_gbps_before``/``_after``), ``roofline_tok_s``, ``pct_of_roofline``,
    ``ternary_gbps``, ``pct_ternary_of_read_bw``, ``breakdown_ms`` and ``breakdown_pct`` (per
    category), ``generated`` (token ids) and ``peak_rss_bytes``.
    """
    for name, v, low in (("tokens", tokens, 1), ("warmup", warmup, 0), ("context", context, 0),
                         ("bandwidth_samples", bandwidth_samples, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
    threads = physical_cores() if threads is None else validate.threads(threads)
    need = context + warmup + tokens
    if isinstance(model_name, Model):
        model = model_name
        if kernel is not None and kernel != model.kernel:
            raise ValueError(f"the model was packed for {model.kernel!r}, not {kernel!r}")
        if head is not None and head != model.head.kind:
            raise ValueError(f"the model has the {model.head.kind!r} head, not {head!r}")
        if need > model.max_context:
            raise ValueError(f"context {context} + {warmup} warm-up + {tokens} tokens = {need} positions "
                             f"exceed the model's max_context {model.max_context}")
    elif isinstance(model_name, str) and model_name not in CONFIGS and Path(model_name).exists():
        model = load(model_name, kernel=kernel, max_context=need, head="int8" if head is None else head)  # a checkpoint
    else:
        get_config(model_name)  # a clear error before anything slow
        model = Model.generate(model_name, seed=seed, kernel=kernel, max_context=need,
                               head="int8" if head is None else head)
    cfg = model.config

    model.reset()
    t = time.perf_counter()
    model.prefill_synthetic(context, seed)
    prefill_s = time.perf_counter() - t
    model.reset_timings()

    b = model.bytes_per_token()
    probe = ReadBench.for_working_set(threads, b["ternary"] + b["head"] + b["kv"])
    bw_before = [probe.sample() for _ in range(bandwidth_samples)]
    tok = int(np.random.default_rng(seed).integers(cfg.vocab))
    generated, step_s, cats, kv_bytes, bw_between = [], [], [], [], []
    for i in range(warmup + tokens):
        timed = i >= warmup
        if timed:
            kv_bytes.append(model.bytes_per_token()["kv"])
        t = time.perf_counter()
        logits = model.step(tok, threads)
        dt = time.perf_counter() - t
        tok = int(np.argmax(logits))
        generated.append(tok)
        if timed:
            step_s.append(dt)
            cats.append(dict(model.last_timings))
            bw_between.append(probe.sample())  # bandwidth of the same seconds: drift cancels
    bw_after = [probe.sample() for _ in range(bandwidth_samples)]

    gbps = lambda s: probe.nbytes / float(np.median(s)) / 1e9  # noqa: E731
    read_gbps = gbps(bw_between)
    summary = stats.summarize(step_s)
    b = model.bytes_per_token()
    bytes_kv = float(np.mean(kv_bytes))
    bytes_total = b["ternary"] + b["head"] + bytes_kv
    tok_s = 1.0 / summary["median_s"]
    roofline_tok_s = read_gbps * 1e9 / bytes_total
    gemv_s = float(np.median([c["ternary_gemv"] for c in cats]))
    ternary_gbps = b["ternary"] / gemv_s / 1e9
    # Shares of the bandwidth: median over tokens of (this token's rate / the faster probe sample
    # of the two around it).
    around = [min(p, q) for p, q in zip([min(bw_before)] + bw_between[:-1], bw_between)]
    pct_roof = 100.0 * float(np.median([(bytes_total / t) / (probe.nbytes / p) for t, p in zip(step_s, around)]))
    pct_ternary = 100.0 * float(np.median([(b["ternary"] / c["ternary_gemv"]) / (probe.nbytes / p)
                                           for c, p in zip(cats, around)]))
    mean_ms = {c: 1e3 * float(np.mean([x[c] for x in cats])) for c in TIMING_CATEGORIES}
    total_ms = sum(mean_ms.values())
    return {
        "model": cfg.name, "kernel": model.kernel, "head": model.head.kind,
        "head_isa": (head_isa if model.head.kind == "int8" else isa_int4 if model.head.kind in INT4_KINDS
                     else lambda: "numpy")(),
        "threads": int(threads),
        "context": int(context), "tokens": int(tokens), "warmup": int(warmup), "seed": model.seed,
        "max_context": model.max_context,
        "generation_s": model.generation_s, "prefill_s": prefill_s,
        "ms_per_token": 1e3 * summary["median_s"], "ms_per_token_min": 1e3 * summary["min_s"],
        "spread": summary["spread"], "unstable": bool(summary["unstable"]), "tok_s": tok_s,
        "bytes_ternary": b["ternary"], "bytes_head": b["head"], "bytes_kv": bytes_kv, "bytes_total": bytes_total,
        "read_gbps": read_gbps, "read_gbps_before": gbps(bw_before), "read_gbps_after": gbps(bw_after),
        "roofline_tok_s": roofline_tok_s, "pct_of_roofline": pct_roof,
        "ternary_gbps": ternary_gbps, "pct_ternary_of_read_bw": pct_ternary,
        "breakdown_ms": mean_ms,
        "breakdown_pct": {c: 100.0 * v / total_ms for c, v in mean_ms.items()},
        "generated": generated,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def _print(r: dict) -> None:
    mb = 1e6
    print(f"{r['model']}: kernel {r['kernel']} ({r['head']} head: {r['head_isa']}), {r['threads']} thread(s), "
          f"context {r['context']}, {r['tokens']} timed tokens after {r['warmup']} warm-up")
    print(f"generation {r['generation_s']:.1f} s, synthetic KV prefill {r['prefill_s']:.2f} s, "
          f"peak RSS {r['peak_rss_bytes'] / 2**30:.2f} GiB")
    flag = "  ! unstable (IQR > 10 % of the median)" if r["unstable"] else ""
    print(f"decode       {r['tok_s']:.2f} tok/s   {r['ms_per_token']:.1f} ms/token (median; min "
          f"{r['ms_per_token_min']:.1f}, spread {100 * r['spread']:.0f} %){flag}")
    print(f"bytes/token  {r['bytes_total'] / mb:.1f} MB = ternary {r['bytes_ternary'] / mb:.1f} + head "
          f"{r['bytes_head'] / mb:.1f} + KV {r['bytes_kv'] / mb:.1f}")
    print(f"read BW      {r['read_gbps']:.1f} GB/s ({r['threads']} thread(s), sampled after every timed token; "
          f"{r['read_gbps_before']:.1f} before, {r['read_gbps_after']:.1f} after)")
    print(f"roofline     {r['roofline_tok_s']:.2f} tok/s  -> reached {r['pct_of_roofline']:.0f} % "
          "(median over tokens of each token's share of the faster bandwidth sample around it)")
    print(f"ternary      {r['ternary_gbps']:.1f} GB/s in the ternary GEMVs = {r['pct_ternary_of_read_bw']:.0f} % "
          f"of the read bandwidth")
    print("per token    " + "   ".join(f"{c} {r['breakdown_ms'][c]:.1f} ms ({r['breakdown_pct'][c]:.0f} %)"
                                       for c in TIMING_CATEGORIES))


def cli(args: argparse.Namespace) -> int:
    """The ``decode`` command (parser in ryzlab.cli)."""
    r = measure_decode(args.model, threads=args.threads, tokens=args.tokens, kernel=args.kernel,
                       context=args.context, seed=args.seed, warmup=args.warmup, head=args.head)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        _print(r)
    return 0
