"""One look for every figure, and saving them next to the tables.

Figures shown in a notebook are also embedded in its executed copy (inline PNG), which is
what the HTML report uses; ``save_figure`` additionally writes standalone files.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib as mpl
from matplotlib.figure import Figure

from .results import _check_name, atomic_path, results_dir

_STYLE = {
    "figure.figsize": (7.0, 4.0),
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.bbox": "tight",
}


def apply_style() -> None:
    """Set matplotlib rcParams for readable, gridded figures (call once per notebook)."""
    mpl.rcParams.update(_STYLE)


def save_figure(fig: Figure, name: str, root: str | os.PathLike | None = None) -> list[Path]:
    """Save ``fig`` as ``figures/<name>.png`` (120 dpi) and ``.svg`` under the results root.

    Returns the two paths.  The figure stays open so the notebook still displays it.  Each
    file is written atomically (temp file, then rename), so a run killed mid-save leaves
    the previous figure, never half of one.
    """
    out = results_dir(root) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    base = out / _check_name(name, "figure name")
    paths = [base.with_name(f"{base.name}.png"), base.with_name(f"{base.name}.svg")]
    for path, kwargs in zip(paths, ({"dpi": 120}, {})):
        with atomic_path(path) as tmp:
            # The temp name ends in .tmp: name the format, matplotlib cannot infer it.
            fig.savefig(tmp, format=path.suffix[1:], **kwargs)
    return paths
