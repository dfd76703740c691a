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
