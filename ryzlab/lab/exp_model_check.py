"""Notebook 07 (model check): ``ryzlab.load`` against transformers on the golden fixtures, the
quantised heads against the float32 head, and generation with a real checkpoint.

Tables: ``model_check_logits`` (one row per fixture file, kernel, head and prompt position:
``err_pct`` = max |logit - transformers' logit| as % of transformers' max |logit|, and whether
the argmax matches), ``model_check_heads`` (per model and position: top-1 agreement, KL of the
next-token distributions in nats and the logit error of a quantised head against the f32 head)
and ``model_check_generation`` (pp and tg tok/s per prompt of a real checkpoint).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..measure.head_accuracy import log_softmax
from ..model import load
from ..model.checkpoint import open_checkpoint

#: The golden fixtures (tools/make_golden.py) and every file of their weights.
GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "golden"
SOURCES = {
    "tiny96": ["tiny96", "tiny96-bf16", "tiny96/model-i2_s.gguf"],
    "small256": ["small256", "small256/model-i2_s.gguf", "small256/model-tq2_0.gguf", "small256/model-tq1_0.gguf"],
}
#: Greedy tokens transformers stored per fixture.
GREEDY_STEPS = 16


def golden(kernels: Sequence[str], heads: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every fixture file through every kernel and head against transformers' stored logits
    and greedy tokens (1 thread).  Returns the ``model_check_logits`` rows and a summary per
    (fixture, format, head): ``max_err_pct``, ``argmax_agreement``, ``kernels`` and
    ``greedy_tokens_matched`` (the fewest over kernels, of :data:`GREEDY_STEPS`)."""
    rows, greedy_rows = [], []
    for fixture, rels in SOURCES.items():
        e = np.load(GOLDEN / fixture / "expected.npz")
        ids, ref = e["input_ids"], e["logits"]
        for rel in rels:
            fmt = open_checkpoint(GOLDEN / rel).format
            for kernel in kernels:
                for head in heads:
                    m = load(GOLDEN / rel, kernel=kernel, head=head, max_context=64)
                    lg = m.forward(ids, threads=1)
                    greedy = m.generate(ids, GREEDY_STEPS, threads=1)
                    err = 100 * np.abs(lg - ref).max(axis=-1) / np.abs(ref).max(axis=-1)
                    rows += [{"fixture": fixture, "file": rel, "format": fmt, "kernel": kernel, "head": head,
                              "position": pos, "err_pct": float(err[pos]),
                              "argmax_match": bool(lg[pos].argmax() == ref[pos].argmax())} for pos in range(len(ids))]
                    greedy_rows.append({"fixture": fixture, "format": fmt, "head": head,
                                        "greedy_tokens_matched": int(np.sum(np.array(greedy) == e["greedy"]))})
    logits = pd.DataFrame(rows)
    keys = ["fixture", "format", "head"]
    summary = (logits.groupby(keys).agg(max_err_pct=("err_pct", "max"), argmax_agreement=("argmax_match", "mean"),
                                        kernels=("kernel", "nunique"))
               .join(pd.DataFrame(greedy_rows).groupby(keys)["greedy_tokens_matched"].min()).reset_index())
    return logits, summary


def head_rows(name: str, reference, other, ids: Sequence[int], threads: int = 1) -> list[dict]:
    """Per position of ``ids``: ``other``'s logits against ``reference``'s (two loaded models of
    the same weights, e.g. int8 and f32 heads): top-1 agreement, KL(p_ref || p_other) in nats
    and max |logit difference| as % of the reference's max |logit|."""
    a, b = reference.forward(ids, threads=threads), other.forward(ids, threads=threads)
    la, lb = log_softmax(a), log_softmax(b)
    kl = np.sum(np.exp(la) * (la - lb), axis=-1)
    return [{"model": name, "position": i, "top1_agree": bool(a[i].argmax() == b[i].argmax()), "kl_nats": float(kl[i]),
             "err_pct": 100 * float(np.abs(a[i] - b[i]).max() / np.abs(a[i]).max())} for i in range(len(ids))]


def golden_heads(heads: Sequence[str] = ("int8", "int4")) -> pd.DataFrame:
    """:func:`head_rows` of each quantised head against the f32 head on every fixture's prompt."""
    rows = []
    for fixture in SOURCES:
        ids = np.load(GOLDEN / fixture / "expected.npz")["input_ids"]
        ref = load(GOLDEN / fixture, head="f32", max_context=64)
        for head in heads:
            rows += [{**r, "head": head} for r in head_rows(fixture, ref, load(GOLDEN / fixture, head=head, max_context=64), ids)]
    return pd.DataFrame(rows)


def checkpoint_run(path: str | Path, prompts: Sequence[str], max_new_tokens: int,
                   threads: int | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """With a real checkpoint: the int8 head against the f32 head on each prompt
    (:func:`head_rows`), then greedy generation per prompt with the int8 head, timed
    (``model_check_generation``: pp and tg tok/s, the text)."""
    path = Path(path).expanduser()
    m = load(path, head="int8", threads=threads)
    tok = m.tokenizer
    if tok is None:
        raise ValueError(f"{path} carries no tokenizer; generation from text needs one")
    m32 = load(path, head="f32", threads=threads)
    heads = pd.DataFrame([{**r, "head": "int8"} for p in prompts
                          for r in head_rows(f"{m.config.name}: {p!r}", m32, m, tok.encode(p).ids, threads=threads)])
    del m32
    gen = []
    for prompt in prompts:
        ids = tok.encode(prompt).ids
        t0 = time.perf_counter()
        out = m.generate(ids, max_new_tokens)
        g = m.last_generation
        gen.append({"model": m.config.name, "kernel": m.kernel, "head": m.head.kind, "prompt": prompt,
                    "prompt_tokens": g["prompt_tokens"], "new_tokens": len(out),
                    "pp_tok_s": g["prompt_tokens"] / g["prompt_s"],
                    "tg_tok_s": g["decode_steps"] / g["decode_s"] if g["decode_s"] else np.nan,
                    "wall_s": time.perf_counter() - t0, "text": tok.decode(out, skip_special_tokens=True)})
    return heads, pd.DataFrame(gen)
