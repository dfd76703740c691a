"""The HTML report: one self-contained page with the outputs of a run's notebooks.

The page is one notebook composed in memory (title, fix-sequence summary, every executed
notebook's markdown and outputs, the machine context) and exported with nbconvert with all
code inputs hidden.  Figures arrive as the notebooks' inline PNG outputs, which nbconvert
embeds as base64, so the single HTML file can be mailed or archived on its own.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
import warnings
from pathlib import Path

import nbformat
import pandas as pd
from nbconvert import HTMLExporter

from . import results
from .runner import NOTEBOOK_DIR

FIX_SEQUENCE_COLUMNS = ["step", "guide_claim", "measured", "unit", "note"]
_EXTERNAL_IMG = re.compile(r"""<img\b[^>]*?\bsrc=["'](?!data:)([^"']+)""", re.IGNORECASE)


def _executed(run_id: str, root: str | os.PathLike | None) -> list[Path]:
    return sorted(results.run_dir(run_id, root).glob("*.ipynb"))


def latest_run(root: str | os.PathLike | None = None) -> str:
    """The newest run id that has executed notebooks; FileNotFoundError if there is none."""
    runs = sorted((results.results_dir(root) / "runs").glob("*/*.ipynb"))
    if not runs:
        raise FileNotFoundError(
            f"no executed notebooks under {results.results_dir(root) / 'runs'}; "
            "run `python -m ryzlab run` first"
        )
    return max(p.parent.name for p in runs)


def _markdown(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(text)


def _table(frame: pd.DataFrame) -> nbformat.NotebookNode:
    # A code cell with only an output: the exporter hides the (empty) input.
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output(
        "display_data",
        data={"text/html": frame.to_html(index=False, na_rep="", border=0),
              "text/plain": frame.to_string(index=False)},
    )]
    return cell


def _summary(run_id: str, root: str | os.PathLike | None) -> list[nbformat.NotebookNode]:
    cells = [_markdown("## Summary: the fix sequence")]
    fixes = results.load("fix_sequence", root)
    if fixes.empty:
        return cells + [_markdown("_Not measured yet: no run has written the "
                                  "`fix_sequence` table._")]
    # This run's own rows when it measured them, else the newest run that did.
    source = run_id if (fixes["run_id"] == run_id).any() else fixes["run_id"].max()
    rows = fixes[fixes["run_id"] == source]
    note = "" if source == run_id else f" (from run `{source}`, not this run)"
    cols = [c for c in FIX_SEQUENCE_COLUMNS if c in rows.columns]
    return cells + [_markdown(f"Each step of the guide's fix sequence, measured{note}."),
                    _table(rows[cols])]


def _notebook_cells(path: Path) -> list[nbformat.NotebookNode]:
    nb = nbformat.read(path, as_version=4)
    cells = [_markdown(f"## {path.stem}")]
    for cell in nb.cells:
        # Code cells without outputs (parameters, imports) would render as nothing.
        if cell.cell_type == "markdown" or (cell.cell_type == "code" and cell.get("outputs")):
            cells.append(copy.deepcopy(cell))
    return cells


def _machine(run_id: str, root: str | os.PathLike | None) -> list[nbformat.NotebookNode]:
    cells = [_markdown("## Machine")]
    try:
        ctx = results.read_context(run_id, root)
    except FileNotFoundError:
        return cells + [_markdown("_No context.json was recorded for this run._")]
    flat = pd.json_normalize(ctx).iloc[0]
    values = [", ".join(map(str, v)) if isinstance(v, list) else v for v in flat]
    return cells + [_table(pd.DataFrame({"key": flat.index, "value": values}))]


def compose(run_id: str, root: str | os.PathLike | None = None) -> nbformat.NotebookNode:
    """The report of ``run_id`` as an in-memory notebook (what ``build_report`` exports)."""
    notebooks = _executed(run_id, root)
    nb = nbformat.v4.new_notebook()
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells.append(_markdown(
        f"# ryzlab report\n\nRun `{run_id}`: "
        f"{len(notebooks)} executed notebook(s). Code is hidden; the notebooks under "
        f"`results/runs/{run_id}/` hold it."
    ))
    nb.cells += _summary(run_id, root)
    for path in notebooks:
        nb.cells += _notebook_cells(path)
    nb.cells += _machine(run_id, root)
    # Cells copied from several notebooks may share ids; the report is one notebook.
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"report-{i}"
    return nb


def build_report(
    run_id: str | None = None,
    out: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
) -> Path:
    """Write the HTML report of ``run_id`` (default: the latest run with executed notebooks)
    to ``out`` (default ``<results>/report.html``); return its path.

    Warns if any image is not embedded (the page would then not be self-contained).
    """
    run_id = run_id or latest_run(root)
    if not results.run_dir(run_id, root).is_dir():
        raise FileNotFoundError(f"no run {run_id!r} under {results.results_dir(root) / 'runs'}")
    exporter = HTMLExporter(
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
        embed_images=True,
    )
    # Markdown images are resolved relative to the notebooks they came from.
    resources = {"metadata": {"name": f"ryzlab report {run_id}", "path": str(NOTEBOOK_DIR)}}
    html, _ = exporter.from_notebook_node(compose(run_id, root), resources=resources)
    if external := _EXTERNAL_IMG.findall(html):
        warnings.warn(f"report images not embedded (page not self-contained): {external}",
                      stacklevel=2)
    path = Path(out) if out is not None else results.results_dir(root) / "report.html"
    return results.atomic_write_text(path, html)


def cli(args: argparse.Namespace) -> int:
    """The ``report`` command (parser in ryzlab.cli)."""
    try:
        path = build_report(args.run_id, args.out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"ryzlab report: error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0
