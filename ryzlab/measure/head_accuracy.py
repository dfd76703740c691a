"""How closely a quantised LM head follows the float32 head: top-1 agreement and KL divergence
over decode steps.

``python -m ryzlab.measure.head_accuracy --model tiny --steps 300``

:func:`head_agreement` builds one model with the float32 head (random ternary layers; by default
the head drawn like a trained embedding, ``RandomWeights(..., head_rows="embedding")``, because
the default uniform rows are unlike a trained embedding) and, from the same source, the heads to
compare.  It decodes ``steps`` tokens with the float32 model (greedy by default) and at every
step feeds the *same* final hidden state to every head: the comparison isolates the head, with
the hidden states (and the tokens fed back) those of the float32 model.  (A model run end to
end on a quantised head also embeds its tokens with the quantised rows, since the embedding is
tied; that is a different, compounding question.)

Per head it reports: top-1 agreement (share of steps whose argmax equals the float32 head's),
KL(p_f32 || p_head) of the next-token distributions (softmax of the logits at temperature 1, in
float64): mean, median and max over steps, the relative RMS error of the logits, and the head's
bytes and bits per weight.

Random models fall into a loop of one to a few tokens under greedy decoding (tiny: 2 distinct
tokens in 300 steps), so greedy steps see few distinct states; ``distinct_tokens`` says how many
tokens were fed.  ``feed="sample"`` samples the next token from the float32 distribution (seeded;
random models' distributions are peaked, so this loops too), ``feed="random"`` feeds uniformly
random tokens (seeded): a random context, a different state at every step, the most informative
choice for a random model.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from ..core import validate
from ..model import Model, get_config
from ..model.heads import HEADS, INT4_GROUP, make_head
from ..model.weights import HEAD_ROWS, RandomWeights


#: How :func:`head_agreement` picks the next token.
FEEDS = ("greedy", "sample", "random")


def _parse_head(name: str) -> str:
    """A head kind of :data:`HEADS`, or ``"int4-g32"`` (another name of ``"int4"``)."""
    if name == f"int4-g{INT4_GROUP}":
        return "int4"
    if name in HEADS:
        return name
    raise ValueError(f"unknown head {name!r}: expected one of {', '.join(HEADS)} or int4-g{INT4_GROUP}")


def log_softmax(z: np.ndarray) -> np.ndarray:
    """log(softmax(z)) along the last axis, in float64 (max subtracted first)."""
    z = z.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def head_agreement(config="tiny", steps: int = 200, heads=("int8", "int4"), *, seed: int = 0,
                   head_rows: str = "embedding", threads: int = 1, feed: str = "greedy",
                   kernel: str | None = None) -> list[dict]:
    """Compare quantised heads with the float32 head over ``steps`` decode steps (module doc).

    ``config``: a model name or :class:`~ryzlab.model.Config`; ``heads``: names as in
    :func:`_parse_head`; ``head_rows``: the head of :class:`RandomWeights`; ``feed``: the next
    token, ``"greedy"`` (the float32 argmax), ``"sample"`` or ``"random"``.  Returns one dict per
    head: ``head``, ``bits_per_weight``, ``bytes``, ``steps``, ``top1_agreement`` (0..1),
    ``kl_mean``, ``kl_median``, ``kl_max`` (nats), ``logit_rel_rmse`` (RMS of the logit error over
    the RMS of the float32 logits, pooled over steps) and ``distinct_tokens`` (fed to the steps).
    """
    steps = validate.positive_int(steps, "steps")
    if feed not in FEEDS:
        raise ValueError(f"feed must be one of {', '.join(FEEDS)}, got {feed!r}")
    threads = validate.threads(threads)
    if head_rows not in HEAD_ROWS:
        raise ValueError(f"head_rows must be one of {', '.join(HEAD_ROWS)}, got {head_rows!r}")
    parsed = [(name, _parse_head(name)) for name in heads]
    cfg = get_config(config) if isinstance(config, str) else config
    source = RandomWeights(cfg, seed, head_rows)
    model = Model.build(source, kernel, max_context=steps, head="f32")
    others = [(name, make_head(kind, source)) for name, kind in parsed]

    rng = np.random.default_rng([seed, 11])
    tok = int(rng.integers(cfg.vocab))
    fed, agree = [], np.zeros(len(others))
    kl = [[] for _ in others]
    err2, ref2 = np.zeros(len(others)), 0.0
    for _ in range(steps):
        fed.append(tok)
        ref = model.step(tok, threads)
        lp = log_softmax(ref)
        p = np.exp(lp)
        top = int(np.argmax(ref))
        ref2 += float(np.dot(ref.astype(np.float64), ref))
        for i, (_, h) in enumerate(others):
            # the float32 model's final hidden state, read by every head (Model._h: after a
            # step it holds the residual stream the head just read)
            z = h.logits(model._h, model.final_norm, cfg.norm_eps, threads)
            agree[i] += int(np.argmax(z)) == top
            kl[i].append(float(np.dot(p, lp - log_softmax(z))))
            d = z.astype(np.float64) - ref
            err2[i] += float(np.dot(d, d))
        tok = top if feed == "greedy" else int(rng.choice(cfg.vocab, p=p) if feed == "sample" else rng.integers(cfg.vocab))
    rows = []
    for i, (name, h) in enumerate(others):
        k = np.array(kl[i])
        rows.append({"head": name, "bits_per_weight": float(h.bits_per_weight), "bytes": int(h.nbytes),
                     "steps": steps, "top1_agreement": float(agree[i] / steps), "kl_mean": float(k.mean()),
                     "kl_median": float(np.median(k)), "kl_max": float(k.max()),
                     "logit_rel_rmse": float(np.sqrt(err2[i] / ref2)) if ref2 > 0 else 0.0,
                     "distinct_tokens": len(set(fed)), "feed": feed})
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows of :func:`head_agreement` as a plain-text table."""
    lines = [f"{'head':10s} {'bits/w':>7s} {'MB':>8s} {'top-1':>7s} {'KL mean':>9s} {'KL median':>9s} "
             f"{'KL max':>9s} {'rel RMSE':>9s}"]
    for r in rows:
        lines.append(f"{r['head']:10s} {r['bits_per_weight']:7.3f} {r['bytes'] / 1e6:8.1f} "
                     f"{100 * r['top1_agreement']:6.1f}% {r['kl_mean']:9.2e} {r['kl_median']:9.2e} "
                     f"{r['kl_max']:9.2e} {r['logit_rel_rmse']:9.2e}")
    if rows:
        lines.append(f"{rows[0]['steps']} steps ({rows[0]['feed']}), {rows[0]['distinct_tokens']} distinct tokens fed")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ryzlab.measure.head_accuracy", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="tiny", help="model shape (default tiny)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--heads", nargs="+", default=["int8", "int4-g32", "int4-g64"])
    ap.add_argument("--head-rows", choices=HEAD_ROWS, default="embedding")
    ap.add_argument("--feed", choices=FEEDS, default="greedy", help="next token: greedy (default), sample, random")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    rows = head_agreement(a.model, a.steps, a.heads, seed=a.seed, head_rows=a.head_rows, threads=a.threads,
                          feed=a.feed)
    print(json.dumps(rows, indent=2) if a.json else format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
