"""Prompt processing and generation speed of a BitNet model shape, llama-bench style, each next
to its ceiling measured in the same run.

``python -m ryzlab bench-model --model bitnet-2b-4t --prompt 512 --gen 128 --threads 16``

One repetition (:func:`bench_model`): reset the model to position 0, prefill ``prompt`` random
tokens (:meth:`Model.prefill`, GEMMs with N = prompt; timed: **pp**), then ``gen`` greedy decode
steps from there (:meth:`Model.step`; timed together: **tg**).  After each repetition one sample
of the compute probe and :data:`READ_SAMPLES_PER_REP` of the read probe (on a buffer of one
generated token's bytes: :meth:`ReadBench.for_working_set`) run at the same
thread count, so the ceilings see the same minutes as the model.  ``warmup`` untimed repetitions come first.

* pp tok/s = prompt / prefill seconds; its ceiling is compute: the int8 multiply-accumulate rate
  of the probe (``mac_vpdpbusd_avx512``, or the kernel's own ISA: ``mac_maddubs_avx2`` for
  ``mad_avx2``; the best int8 MAC probe this CPU has for LUT and scalar kernels) divided by the
  ternary MACs per token (one per ternary weight; attention and the one LM-head row are left
  out).  A kernel may exceed it where it skips work the probe does (it is a roofline, not a
  bound on LUT arithmetic).
* tg tok/s = gen / seconds of the gen steps; its ceiling is bandwidth: read GB/s / bytes per
  token (packed ternary weights, int8 head, float32 KV cache at the mean context of the
  generated tokens), as ``python -m ryzlab decode`` reports it.

Medians over repetitions; ``*_spread`` is the interquartile range over the median of the
per-repetition times (:mod:`ryzlab.measure.stats`).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from ..core import native as _native
from ..core import validate
from ..core.kernels import resolve
from ..core.topology import physical_cores
from ..model import CONFIGS, TIMING_CATEGORIES, Model, load
from ..model.decoder import PREFILL_CATEGORIES
from . import stats
from .decode import peak_rss_bytes
from .harness import ComputeBench, ReadBench, compute_probe

#: Read-probe samples after each repetition (their median over all repetitions is the bandwidth).
READ_SAMPLES_PER_REP = 5
#: int8 MAC probes by preference (the ceiling of LUT and scalar kernels: the best this CPU has).
MAC_PROBES = ("mac_vpdpbusd_avx512", "mac_maddubs_avx2")


def compute_probe_for(kernel: str) -> str | None:
    """The int8 MAC probe pp is compared against for ``kernel`` (None: the CPU has none): the
    kernel's own instruction's probe for MAD kernels (:func:`harness.compute_probe`), else the
    best int8 MAC probe this CPU supports."""
    lib = _native.lib()
    supported = {_native.string(lib.ryz_probe_name(i)) for i in range(lib.ryz_probe_count())
                 if lib.ryz_probe_supported(i)}
    own = compute_probe(kernel)
    if own in supported and own in MAC_PROBES:
        return own
    return next((p for p in MAC_PROBES if p in supported), None)


def _count(name: str, v: object, low: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
        raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
    return int(v)


def bench_model(model_name: str, prompt: int = 512, gen: int = 128, threads: int | None = None,
                kernel: str | None = None, reps: int = 3, warmup: int = 1, seed: int = 0,
                head: str = "int8") -> dict:
    """pp and tg of ``model_name`` (a name of :data:`ryzlab.model.CONFIGS`, random weights from
    ``seed``, or a checkpoint path for :func:`ryzlab.load`) with LM head ``head``; see the module
    doc.  Returns a flat, JSON-serialisable dict: the setup, ``pp_tok_s``
    / ``tg_tok_s`` (medians) with ``*_spread``, ``*_unstable`` and per-repetition samples, the
    ceilings (``pp_ceiling_tok_s``, ``pp_pct_of_ceiling``, ``compute_probe``, ``compute_gmacs``,
    ``macs_per_token``; ``tg_roofline_tok_s``, ``tg_pct_of_roofline``, ``read_gbps``,
    ``bytes_per_token`` and its parts), the mean per-category breakdowns in ms
    (``pp_breakdown_ms`` per prefill, ``tg_breakdown_ms`` per generated token), the generated
    tokens of the last repetition, ``generation_s`` and ``peak_rss_bytes``."""
    prompt, gen = _count("prompt", prompt, 1), _count("gen", gen, 1)
    reps, warmup = _count("reps", reps, 1), _count("warmup", warmup, 0)
    threads = physical_cores() if threads is None else validate.threads(threads)
    k = resolve(kernel).name
    if model_name in CONFIGS:
        model = Model.generate(model_name, seed=seed, kernel=k, max_context=prompt + gen, head=head)
    else:
        model = load(model_name, kernel=k, max_context=prompt + gen, head=head)
    cfg = model.config
    tokens = [int(t) for t in np.random.default_rng([seed, 11]).integers(cfg.vocab, size=prompt)]

    probe_name = compute_probe_for(k)
    # iterations calibrated on one thread (50 ms of work per thread and sample): see ComputeBench
    compute = (ComputeBench(probe_name, threads, iters=ComputeBench(probe_name, 1, min_sample_s=0.05).iters)
               if probe_name else None)
    b = model.bytes_per_token()
    kv = cfg.kv_bytes_per_position() * (prompt + (gen + 1) / 2)  # mean over the gen steps' contexts
    bytes_tok = b["ternary"] + b["head"] + kv
    read = ReadBench.for_working_set(threads, bytes_tok)  # the caches a generated token meets

    pp_s, tg_s, mac_s, read_s, pp_cats, tg_cats, generated = [], [], [], [], [], [], []
    for r in range(warmup + reps):
        model.reset()
        model.reset_timings()
        t = time.perf_counter()
        logits = model.prefill(tokens, threads)
        dt_pp = time.perf_counter() - t
        pp_timings = dict(model.prefill_timings)
        tok, out = int(np.argmax(logits)), []
        t = time.perf_counter()
        for _ in range(gen):
            tok = int(np.argmax(model.step(tok, threads)))
            out.append(tok)
        dt_tg = time.perf_counter() - t
        if r < warmup:
            continue
        pp_s.append(dt_pp)
        tg_s.append(dt_tg)
        pp_cats.append(pp_timings)
        generated = out
        tg_cats.append({c: v / model.steps for c, v in model.timings.items()})
        if compute:
            mac_s.append(compute.sample())
        # several samples per repetition: one slow sample (a host hiccup) read half the usual
        # bandwidth in one notebook 06 run and put tg at 108 % of its "roofline"
        read_s.extend(read.sample() for _ in range(READ_SAMPLES_PER_REP))

    pp, tg = stats.summarize(pp_s), stats.summarize(tg_s)
    pp_tok_s, tg_tok_s = prompt / pp["median_s"], gen / tg["median_s"]
    macs = cfg.ternary_weights
    read_gbps = read.nbytes / float(np.median(read_s)) / 1e9
    r = {
        "model": cfg.name, "kernel": k, "head": head, "threads": int(threads), "prompt": prompt, "gen": gen, "reps": reps,
        "warmup": warmup, "seed": seed,
        "pp_tok_s": pp_tok_s, "pp_spread": pp["spread"], "pp_unstable": pp["unstable"],
        "pp_samples_s": pp_s,
        "tg_tok_s": tg_tok_s, "tg_spread": tg["spread"], "tg_unstable": tg["unstable"],
        "tg_samples_s": tg_s,
        "macs_per_token": macs, "compute_probe": probe_name,
        "compute_gmacs": (1e-9 / float(np.median(mac_s))) if mac_s else None,
        "read_gbps": read_gbps,
        "bytes_per_token": bytes_tok, "bytes_ternary": b["ternary"], "bytes_head": b["head"], "bytes_kv": kv,
        "tg_roofline_tok_s": read_gbps * 1e9 / bytes_tok,
        "pp_breakdown_ms": {c: 1e3 * float(np.mean([x[c] for x in pp_cats])) for c in PREFILL_CATEGORIES},
        "tg_breakdown_ms": {c: 1e3 * float(np.mean([x[c] for x in tg_cats])) for c in TIMING_CATEGORIES},
        "generated": generated,
        "generation_s": model.generation_s,
        "peak_rss_bytes": peak_rss_bytes(),
    }
    r["pp_ceiling_tok_s"] = r["compute_gmacs"] * 1e9 / macs if mac_s else None
    r["pp_pct_of_ceiling"] = 100.0 * pp_tok_s / r["pp_ceiling_tok_s"] if mac_s else None
    r["tg_pct_of_roofline"] = 100.0 * tg_tok_s / r["tg_roofline_tok_s"]
    return r


def _print(r: dict) -> None:
    print(f"{r['model']}: kernel {r['kernel']}, {r['threads']} thread(s), {r['reps']} repetition(s) after "
          f"{r['warmup']} warm-up; model generated in {r['generation_s']:.1f} s, peak RSS "
          f"{r['peak_rss_bytes'] / 2**30:.2f} GiB")
    print(f"{'test':>8} {'tok/s':>10} {'spread':>7} {'ceiling':>10} {'% of it':>8}  ceiling from")
    if r["pp_ceiling_tok_s"]:
        pp_c, pp_pct = f"{r['pp_ceiling_tok_s']:10.2f}", f"{r['pp_pct_of_ceiling']:7.1f}%"
        pp_from = (f"compute: {r['compute_probe']} {r['compute_gmacs']:.1f} GMAC/s / "
                   f"{r['macs_per_token'] / 1e9:.3f} G ternary MAC/token")
    else:
        pp_c, pp_pct, pp_from = f"{'-':>10}", f"{'-':>8}", "no int8 MAC probe on this CPU"
    flag = lambda u: " !" if u else ""  # noqa: E731
    print(f"{'pp' + str(r['prompt']):>8} {r['pp_tok_s']:10.2f} {100 * r['pp_spread']:6.1f}% {pp_c} {pp_pct}  "
          f"{pp_from}{flag(r['pp_unstable'])}")
    print(f"{'tg' + str(r['gen']):>8} {r['tg_tok_s']:10.2f} {100 * r['tg_spread']:6.1f}% "
          f"{r['tg_roofline_tok_s']:10.2f} {r['tg_pct_of_roofline']:7.1f}%  bandwidth: {r['read_gbps']:.1f} GB/s / "
          f"{r['bytes_per_token'] / 1e6:.1f} MB/token (ternary {r['bytes_ternary'] / 1e6:.1f} + head "
          f"{r['bytes_head'] / 1e6:.1f} + KV {r['bytes_kv'] / 1e6:.1f}){flag(r['tg_unstable'])}")
    print("pp per prefill  " + "   ".join(f"{c} {v:.1f} ms" for c, v in r["pp_breakdown_ms"].items()))
    print("tg per token    " + "   ".join(f"{c} {v:.2f} ms" for c, v in r["tg_breakdown_ms"].items()))
    if r["pp_unstable"] or r["tg_unstable"]:
        print("! unstable: interquartile spread above 10 % of the median")


def cli(args: argparse.Namespace) -> int:
    """The ``bench-model`` command (parser in ryzlab.cli)."""
    r = bench_model(args.model, prompt=args.prompt, gen=args.gen, threads=args.threads, kernel=args.kernel, head=args.head,
                    reps=args.reps, warmup=args.warmup, seed=args.seed)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        _print(r)
    return 0
