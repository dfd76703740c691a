"""Plotting helpers shared by the notebooks: a roofline and grouped bars.

Each function draws on ``ax`` (a new figure if None) and returns the Figure; style comes from
:func:`ryzlab.figures.apply_style`.

Units on the roofline.  The harness counts ``gops`` as 2*M*N*K / time: two operations (a
multiply and an add) per weight and token.  The compute probes count other things, so their
ceilings are converted to the harness's operations:

* int8 MAC probes (``mac_*``: vpdpbusd, pmaddubsw) count one multiply-accumulate per int8
  product: 2 ops per MAC, so the ceiling is 2 x the probe's Gop/s.
* lookup probes (``lookup_*``: vpshufb, vpermb) count one byte looked up.  ryzlab's LUT kernels
  look up one byte per weight pair in each of two byte planes (low and high byte of the int16
  table entry): 2 lookups per 2 weights, i.e. one lookup per weight = 2 ops per lookup, so the
  ceiling is also 2 x the probe's Gop/s.  (It ignores the adds that sum the looked-up bytes,
  so it is an upper bound on what a LUT kernel can reach.)

The x axis is operational intensity in ops per *weight* byte (activations and tables are
small and cache-resident): a point is (gops / gbps, gops), taken from harness rows.  Decode
(N = 1) on 2-bit weights sits at 2 ops x 4 weights per byte = 8 ops/byte.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

#: Harness operations per probe operation, by probe-name prefix (see the module docstring).
OPS_PER_PROBE_OP = {"mac": 2.0, "lookup": 2.0}

_MARKERS = "osD^v<>phX*"


def compute_ceiling_gops(probe: str, value: float) -> float:
    """A compute probe's ceiling in the harness's Gop/s (2 ops per weight and token)."""
    prefix = probe.split("_", 1)[0]
    if prefix not in OPS_PER_PROBE_OP:
        raise ValueError(f"unknown compute probe kind {prefix!r} in {probe!r}; "
                         f"known: {sorted(OPS_PER_PROBE_OP)}")
    return OPS_PER_PROBE_OP[prefix] * value


def _axes(ax: Axes | None, figsize: tuple[float, float] | None = None) -> Axes:
    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize)
    return ax


def roofline(
    roof: pd.DataFrame,
    threads: int,
    points: pd.DataFrame | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Log-log roofline at ``threads``: Gop/s against ops per weight byte.

    ``roof``: ceilings as stored by :mod:`ryzlab.roofline` (columns probe, kind, threads,
    value; GB/s for ``kind == "bandwidth"``, probe Gop/s for ``kind == "compute"``).
    Bandwidth ceilings are slopes (Gop/s = GB/s x ops/byte), clipped at the highest compute
    ceiling; compute ceilings are flat lines (converted, see the module docstring).
    ``points``: harness rows (columns kernel, gops, gbps), drawn one marker per kernel.
    """
    ax = _axes(ax, (9.0, 5.0))
    here = roof[roof["threads"] == threads]
    if here.empty:
        raise KeyError(f"no ceilings at {threads} thread(s); measured: {sorted(set(roof['threads']))}")
    bandwidth = here[here["kind"] == "bandwidth"].sort_values("value")
    compute = here[here["kind"] == "compute"].copy()
    compute["gops"] = [compute_ceiling_gops(p, v) for p, v in zip(compute["probe"], compute["value"])]
    compute = compute.sort_values("gops")
    top = float(compute["gops"].max()) if not compute.empty else None

    xs = [1.0, 1000.0]
    if top is not None:
        xs += [top / bw for bw in bandwidth["value"]]
    if points is not None and not points.empty:
        xs += list(points["gops"] / points["gbps"])
    lo, hi = min(xs) / 4, max(xs) * 4
    x = np.geomspace(lo, hi, 256)

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (_, r) in enumerate(bandwidth.iterrows()):
        y = r["value"] * x
        if top is not None:
            y = np.minimum(y, top)
        ax.plot(x, y, color="0.2", lw=2.0 - 0.6 * i, ls="-" if i == 0 else "-.",
                label=f"{r['level']} read {r['value']:.1f} GB/s")
    for i, (_, r) in enumerate(compute.iterrows()):
        ax.axhline(r["gops"], color=colors[i % len(colors)], lw=1.2, ls="--",
                   label=f"{r['probe']} {r['gops']:.0f} Gop/s")

    if points is not None and not points.empty:
        for i, (kernel, grp) in enumerate(points.groupby("kernel", sort=False)):
            ax.scatter(grp["gops"] / grp["gbps"], grp["gops"], marker=_MARKERS[i % len(_MARKERS)],
                       s=45, zorder=3, color=colors[(i + len(compute)) % len(colors)],
                       edgecolor="black", linewidth=0.5, label=kernel)

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("operational intensity (ops per weight byte)")
    ax.set_ylabel("Gop/s (2 ops per weight and token)")
    ax.set_title(title or f"roofline, {threads} thread(s)")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    return ax.figure


def speedup_bars(
    frame: pd.DataFrame,
    x: str,
    hue: str,
    y: str = "speedup",
    ax: Axes | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    log: bool = False,
    baseline: float | None = 1.0,
    fmt: str | None = "{:.1f}",
) -> Figure:
    """Grouped bars: one group per value of ``x``, one bar per value of ``hue``, height ``y``.

    Groups and bars keep their order of first appearance in ``frame``.  ``baseline`` draws a
    reference line (1.0: "as fast as the baseline"; None: no line).  ``fmt`` labels each bar
    with its value (None: no labels).  Zero or missing heights on a log axis are labelled
    "0" at the bottom instead of drawn.
    """
    ax = _axes(ax)
    xs = list(dict.fromkeys(frame[x]))
    hues = list(dict.fromkeys(frame[hue]))
    width = 0.8 / max(1, len(hues))
    values = pd.to_numeric(frame[y], errors="coerce")
    positive = values[values > 0]
    # On a log axis bars grow from just below the smallest positive value, so every bar shows.
    bottom = float(positive.min()) / 3 if log and not positive.empty else 0.0
    for j, h in enumerate(hues):
        sub = frame[frame[hue] == h].set_index(x)[y]
        heights = np.array([float(sub.get(v, np.nan)) for v in xs])
        pos = np.arange(len(xs)) - 0.4 + width * (j + 0.5)
        drawn = np.where(heights > 0, heights, np.nan) if log else heights
        bars = ax.bar(pos, drawn - bottom, width, bottom=bottom, label=str(h))
        if fmt is not None:
            for b, hgt in zip(bars, heights):
                if np.isnan(hgt):
                    continue
                if log and hgt <= 0:
                    ax.annotate("0", (b.get_x() + b.get_width() / 2, 0), xycoords=("data", "axes fraction"),
                                ha="center", va="bottom", fontsize=7)
                else:
                    ax.annotate(fmt.format(hgt), (b.get_x() + b.get_width() / 2, hgt), ha="center",
                                va="bottom", fontsize=7, rotation=90 if len(hues) > 3 else 0)
    if baseline is not None:
        ax.axhline(baseline, color="0.3", lw=1, ls=":")
    if log:
        ax.set_yscale("log")
        if bottom > 0:
            ax.set_ylim(bottom=bottom)
    ax.set_xticks(np.arange(len(xs)), [str(v) for v in xs])
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel or y)
    if title:
        ax.set_title(title)
    ax.legend(title=hue, fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return ax.figure


def decode_scaling(dec: pd.DataFrame, kernel_names: list[str], thread_list: list[int]) -> Figure:
    """Notebook 03's decode figure: per kernel, weight GB/s against threads next to the DRAM
    read probe on the same threads (top), and the share of that bandwidth in % (bottom).

    ``dec``: rows of :func:`ryzlab.lab.exp_threads.decode_scaling`.
    """
    fig, axes = plt.subplots(2, len(kernel_names), figsize=(6.2 * len(kernel_names), 8), squeeze=False)
    for col, name in enumerate(kernel_names):
        d = dec[dec["kernel"] == name]
        ax_g, ax_p = axes[0, col], axes[1, col]
        for shape, s in d.groupby("shape", sort=False):
            ax_g.plot(s["threads"], s["gbps"], marker="o", label=shape)
            ax_p.plot(s["threads"], s["pct_of_read_bw"], marker="o", label=shape)
        bw = d.groupby("threads")["read_gbps"].median()
        ax_g.plot(bw.index, bw.values, "k--", marker="s", label="DRAM read, same threads")
        ax_p.axhline(100, color="k", ls="--", lw=1, label="read bandwidth")
        ax_g.set(title=f"{name}: decode weight stream", xlabel="threads", ylabel="GB/s", ylim=(0, None))
        ax_p.set(title=f"{name}: share of the read bandwidth", xlabel="threads", ylabel="% of read bandwidth",
                 ylim=(0, max(110, d["pct_of_read_bw"].max() * 1.1)))
        for ax in (ax_g, ax_p):
            ax.set_xticks(thread_list)
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def gemm_scaling(gem: pd.DataFrame, kernel_names: list[str], thread_list: list[int], shape: tuple[int, int]) -> Figure:
    """Notebook 03's GEMM figure: one panel per N, each kernel's speedup over 1 thread (solid)
    and its compute probe's (dashed), against the linear ideal.

    ``gem``: rows of :func:`ryzlab.lab.exp_threads.gemm_scaling`; ``shape``: its M x K.
    """
    gemm_n = list(dict.fromkeys(gem["N"]))
    fig, axes = plt.subplots(1, len(gemm_n), figsize=(6.2 * len(gemm_n), 4.4), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, n in zip(axes[0], gemm_n):
        ax.plot(thread_list, thread_list, "k:", label="ideal (linear)")
        for i, name in enumerate(kernel_names):
            s = gem[(gem["kernel"] == name) & (gem["N"] == n)]
            c = colors[i % len(colors)]
            ax.plot(s["threads"], s["speedup_vs_1t"], marker="o", color=c, label=name)
            if s["probe"].notna().any():
                ax.plot(s["threads"], s["probe_speedup"], ls="--", marker="x", color=c,
                        label=f"probe {s['probe'].iloc[0]}")
        ax.set(title=f"GEMM {shape[0]}×{shape[1]}, N = {n}, warm", xlabel="threads",
               ylabel="speedup vs 1 thread (×)", xticks=thread_list, ylim=(0, None))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def schedule_bars(sch: pd.DataFrame, case_labels: dict[str, str]) -> Figure:
    """Notebook 03's schedule figure: time / time of ``blocks`` for each schedule, grouped by
    (kernel, case, threads); ``case_labels`` names each case on the x axis.

    ``sch``: rows of :func:`ryzlab.lab.exp_threads.schedule_comparison`.
    """
    schedules = list(dict.fromkeys(sch["schedule"]))
    groups = list(dict.fromkeys(zip(sch["kernel"], sch["case"], sch["threads"])))
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(groups)), 4.4))
    width = 0.8 / len(schedules)
    for j, s in enumerate(schedules):
        vals = [sch[(sch["kernel"] == k) & (sch["case"] == c) & (sch["threads"] == t) & (sch["schedule"] == s)]
                ["slowdown_vs_blocks"].iloc[0] for k, c, t in groups]
        xs = np.arange(len(groups)) + (j - (len(schedules) - 1) / 2) * width
        bars = ax.bar(xs, vals, width, label=s + (" (ours)" if s == "blocks" else " (guide)"))
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.axhline(1, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(groups)), [f"{k}\n{case_labels[c]}\nT={t}" for k, c, t in groups], fontsize=8)
    ax.set(ylabel="time ÷ time of 'blocks' (×)", title="schedule comparison (higher = slower than ours)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def tok_s_vs_claims(fix: pd.DataFrame, title: str) -> Figure:
    """Notebook 04's fix-sequence figure (log tok/s): measured median per step, the guide's
    claim (hatched) and the roofline of the same run (a tick), each bar labelled with its tok/s
    and % of roofline.  ``fix``: :func:`ryzlab.lab.exp_decode.fix_sequence`'s first table."""
    fig, ax = plt.subplots(figsize=(9, 5))
    x = np.arange(len(fix))
    ax.bar(x - 0.2, fix["tok_s"], 0.4, label="measured (median)", color="C0")
    ax.bar(x + 0.2, fix["guide_claim_tok_s"], 0.4, label="guide's claim", color="none", edgecolor="C3", hatch="//")
    ax.scatter(x, fix["roofline_tok_s"], marker="_", s=900, color="k", zorder=3,
               label="roofline: read bandwidth ÷ bytes/token (this run)")
    for i, r in fix.iterrows():
        ax.annotate(f"{r['tok_s']:.2f}\n({r['pct_of_roofline']:.0f} %)", (i - 0.2, r["tok_s"]), ha="center",
                    va="bottom", fontsize=8)
    ax.set_xticks(x, [f"{r['step']}\n{r['kernel']}, {r['threads']} thr" for _, r in fix.iterrows()])
    ax.set_yscale("log")
    ax.set_ylabel("tokens / second (log)")
    ax.set_title(title)
    ax.set_ylim(top=ax.get_ylim()[1] * 2)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize=8, frameon=False)
    return fig


def context_sweep(ctx: pd.DataFrame, label: str, title: str) -> Figure:
    """Notebook 04's context figure: measured tok/s (``label``) and the roofline against the
    cached positions, each point labelled with its % of roofline."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(ctx["context"], ctx["tok_s"], "o-", label=label)
    ax.plot(ctx["context"], ctx["roofline_tok_s"], "k--", label="roofline (this run)")
    for _, r in ctx.iterrows():
        ax.annotate(f"{r['pct_of_roofline']:.0f} %", (r["context"], r["tok_s"]), textcoords="offset points",
                    xytext=(0, -14), ha="center", fontsize=8)
    ax.set_xlabel("context (cached positions)")
    ax.set_ylabel("tokens / second")
    ax.set_ylim(0, None)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def stacked_shares(breakdown: pd.DataFrame, categories: list[str], title: str) -> Figure:
    """Notebook 04's breakdown figure: one panel per ``part``, one bar per ``step`` stacking each
    category's ``pct`` of a token, with the total ``ms_per_token`` written above the bar.
    ``breakdown``: :func:`ryzlab.lab.exp_decode.breakdown`."""
    parts = list(dict.fromkeys(breakdown["part"]))
    fig, axes = plt.subplots(1, len(parts), figsize=(12, 4.5), squeeze=False)
    for ax, part in zip(axes[0], parts):
        sub = breakdown[breakdown["part"] == part]
        steps = list(dict.fromkeys(sub["step"]))
        bottom = np.zeros(len(steps))
        for i, c in enumerate(categories):
            v = sub[sub["category"] == c].set_index("step").loc[steps, "pct"].to_numpy()
            ax.bar(steps, v, bottom=bottom, label=c, color=f"C{i}")
            bottom += v
        totals = sub.groupby("step", sort=False)["ms_per_token"].sum().loc[steps]
        for i, t in enumerate(totals):
            ax.annotate(f"{t:.1f} ms", (i, 100), ha="center", va="bottom", fontsize=8)
        ax.set_title(part, fontsize=10)
        ax.set_ylabel("% of a token's time (mean)")
        ax.set_ylim(0, 110)
        ax.tick_params(axis="x", labelrotation=20)
    axes[0][-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def n_sweep(sweep: pd.DataFrame, title: str) -> Figure:
    """% of the compute probe's peak (y) against tokens per product N (log x), one line per
    kernel: where the GEMM stops being bound by its weights and becomes bound by arithmetic."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (kernel, g) in enumerate(sweep.groupby("kernel", sort=False)):
        g = g.sort_values("N")
        ax.plot(g["N"], g["gops"], marker=_MARKERS[i % len(_MARKERS)], label=kernel)
        if g["pct_of_peak"].notna().any():
            bx.plot(g["N"], g["pct_of_peak"], marker=_MARKERS[i % len(_MARKERS)], label=kernel)
    for a in (ax, bx):
        a.set_xscale("log", base=2)
        a.set_xlabel("tokens per product N")
    ax.set_ylabel("Gop/s (2·M·N·K / s)")
    bx.set_ylabel("% of the compute probe (same rounds)")
    bx.axhline(100, color="grey", lw=0.8, ls="--")
    ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def pp_tg(model: pd.DataFrame, title: str) -> Figure:
    """Prompt-processing and generation tok/s per system, ryzlab's ceilings drawn as ticks."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = [f"{s}\n{v}" for s, v in zip(model["system"], model["variant"])]
    for ax, col, ceiling, name in ((axes[0], "pp_tok_s", "pp_ceiling_tok_s", "prompt processing (pp)"),
                                   (axes[1], "tg_tok_s", "tg_roofline_tok_s", "generation (tg)")):
        ax.bar(labels, model[col], color=["C0"] + ["C1"] * (len(model) - 1))
        ceil = model[ceiling].iloc[0] if ceiling in model and pd.notna(model[ceiling].iloc[0]) else None
        if ceil:
            ax.axhline(ceil, color="grey", ls="--", lw=0.8, label="ryzlab's ceiling")
            ax.legend(fontsize=8)
        ax.set_ylabel("tok/s")
        ax.set_title(name)
    fig.suptitle(title)
    return fig


def pareto(decode: pd.DataFrame, accuracy: pd.DataFrame, title: str) -> Figure:
    """Bytes per token (x) against decode tok/s (y), one point per (kernel, head), labelled with
    the head's top-1 agreement and KL divergence against the float32 head."""
    fig, ax = plt.subplots(figsize=(8, 5))
    acc = accuracy.set_index("head") if len(accuracy) else None
    for i, r in decode.reset_index(drop=True).iterrows():
        ax.scatter(r["bytes_total"] / 1e6, r["tok_s"], s=60, marker=_MARKERS[i % len(_MARKERS)],
                   label=f"{r['kernel']} ({r['bits_per_weight']:g} b/w) + {r['head']} head")
        note = "exact (reference)" if r["head"] == "f32" else (
            f"top-1 {acc.loc[r['head'], 'top1_agreement']:.1%}, KL {acc.loc[r['head'], 'kl_mean']:.1e}"
            if acc is not None and r["head"] in acc.index else "")
        ax.annotate(note, (r["bytes_total"] / 1e6, r["tok_s"]), textcoords="offset points", xytext=(6, 4), fontsize=7)
    ax.set_xlabel("MB streamed per token")
    ax.set_ylabel("decode tok/s")
    ax.legend(fontsize=7, loc="best")
    ax.set_title(title)
    return fig


def alternation(rounds: pd.DataFrame, decode: pd.DataFrame, ceiling_gbps: float, title: str) -> Figure:
    """Per alternation round: the read probe's GB/s (x) against the default's step time ÷ the
    configuration's (y), one series per configuration; dashed: its bytes' ratio (what a purely
    bandwidth-bound pair would give), dotted: the kernel's decoding ceiling."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    default = decode.iloc[0]
    for i, ((kernel, head), g) in enumerate(rounds.groupby(["kernel", "head"], sort=False)):
        row = decode[(decode["kernel"] == kernel) & (decode["head"] == head)].iloc[0]
        color = f"C{i}"
        ax.scatter(g["read_gbps"], g["ratio"], s=14, marker=_MARKERS[i % len(_MARKERS)], color=color,
                   label=f"{kernel} + {head} head (median {g['ratio'].median():.2f}×)")
        ax.axhline(default["bytes_total"] / row["bytes_total"], color=color, lw=0.8, ls="--")
    # a preempted or page-faulting step makes a lone round 0.4x or 3x: keep the axes on the rest
    lo, hi = np.percentile(rounds["ratio"], [2, 98])
    lo, hi = min(lo, 1.0) - 0.1, max(hi, default["bytes_total"] / decode["bytes_total"].min()) + 0.1
    ax.set_ylim(lo, hi)
    outside = int(((rounds["ratio"] < lo) | (rounds["ratio"] > hi)).sum())
    ax.axvline(ceiling_gbps, color="grey", lw=0.8, ls=":")
    ax.annotate("1.6-bit decoding ceiling", (ceiling_gbps, lo), textcoords="offset points", xytext=(4, 4), fontsize=7,
                color="grey")
    ax.set_xlabel("read probe in the same round (GB/s)")
    ax.set_ylabel("default step time ÷ configuration's")
    ax.legend(fontsize=7, loc="best")
    ax.set_title(title + (f"\n({outside} of {len(rounds)} rounds outside the axes)" if outside else ""), fontsize=10)
    return fig


def logit_error(logits: pd.DataFrame, fixtures: list[str], kernels: list[str], bound_pct: float = 1.0) -> Figure:
    """Per fixture (Hugging Face packed file): logit error against transformers (% of max|logit|,
    log y) at every prompt position, one line per (head, kernel); dotted: the test bound."""
    fig, axes = plt.subplots(1, len(fixtures), figsize=(6.2 * len(fixtures), 4.4), sharey=True)
    axes = np.atleast_1d(axes)
    markers = dict(zip(kernels, _MARKERS))
    for ax, fixture in zip(axes, fixtures):
        part = logits[(logits["fixture"] == fixture) & (logits["file"] == fixture)]
        for (head, kernel), g in part.groupby(["head", "kernel"]):
            ax.plot(g["position"], g["err_pct"].clip(lower=1e-7), marker=markers.get(kernel, "o"), markersize=4, lw=1,
                    ls="-" if head == "f32" else "--", label=f"{head} head, {kernel}")
        ax.axhline(bound_pct, color="grey", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel("prompt position")
        ax.set_title(f"{fixture} (Hugging Face packed)")
    axes[0].set_ylabel("max |logit diff| / max |logit|  (%)")
    axes[-1].legend(fontsize=7, ncol=2)
    fig.suptitle(f"ryzlab vs transformers: logit error at every position (dotted: the {bound_pct:g} % test bound)")
    return fig


def head_kl(heads: pd.DataFrame) -> Figure:
    """KL(p_f32 || p_head) in nats (log y) at every position, one line per (model, head)."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for (name, head), g in heads.groupby(["model", "head"], sort=False):
        ax.plot(g["position"], g["kl_nats"].clip(lower=1e-12), marker="o", markersize=4, label=f"{name}, {head} head")
    ax.set_yscale("log")
    ax.set_xlabel("position")
    ax.set_ylabel("KL(p_f32 || p_head)  (nats)")
    ax.set_title("quantised heads vs the float head: next-token distributions")
    ax.legend(fontsize=7)
    return fig
