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
import html
import re
import sys
import warnings
from pathlib import Path

import nbformat
import pandas as pd
from nbconvert import HTMLExporter

from . import results
from .runner import NOTEBOOK_DIR, resume_command

FIX_SEQUENCE_COLUMNS = ["step", "guide_claim", "measured", "unit", "note"]
#: The runner's bookkeeping in context.json: shown in the banner, not the machine table.
_PROGRESS_KEYS = {"planned", "finished", "current", "notebook_paths", "error", "pid",
                  "updated", "resumed"}
_EXTERNAL_IMG = re.compile(r"""<img\b[^>]*?\bsrc=["'](?!data:)([^"']+)""", re.IGNORECASE)


def _executed(run_id: str, root: str | os.PathLike | None) -> list[Path]:
    return sorted(results.run_dir(run_id, root).glob("*.ipynb"))


def run_status(run_id: str, root: str | os.PathLike | None = None) -> dict:
    """The progress the runner recorded for ``run_id``: ``status`` (``complete``,
    ``running``, ``interrupted``, ``failed``; None for a run without that record, e.g.
    notebooks run by hand), ``planned``, ``finished``, ``missing`` (planned, not finished),
    ``current``, ``error``."""
    try:
        ctx = results.read_context(run_id, root)
    except (FileNotFoundError, ValueError):
        ctx = {}
    planned = list(ctx.get("planned") or [])
    finished = list(ctx.get("finished") or [])
    return {"status": ctx.get("status"), "planned": planned, "finished": finished,
            "missing": [n for n in planned if n not in finished],
            "current": ctx.get("current"), "error": ctx.get("error"), "pid": ctx.get("pid")}


def is_complete(run_id: str, root: str | os.PathLike | None = None) -> bool:
    """True unless the runner recorded the run as not (yet) complete."""
    return run_status(run_id, root)["status"] in (None, "complete")


def _started(run_id: str, root: str | os.PathLike | None) -> str:
    """When the run started: its context's UTC ``date`` (ISO 8601, so it sorts as text), or ""."""
    try:
        return str(results.read_context(run_id, root).get("date", ""))
    except FileNotFoundError:
        return ""


def _runs_with_notebooks(root: str | os.PathLike | None) -> list[str]:
    """Runs with executed notebooks, oldest first: by start date, then by id (``--run-id``
    names need not sort by time)."""
    names = {p.parent.name for p in (results.results_dir(root) / "runs").glob("*/*.ipynb")}
    runs = sorted(names, key=lambda r: (_started(r, root), r))
    if not runs:
        raise FileNotFoundError(
            f"no executed notebooks under {results.results_dir(root) / 'runs'}; "
            "run `python -m ryzlab run` first"
        )
    return runs


def latest_run(root: str | os.PathLike | None = None) -> str:
    """The newest complete run with executed notebooks (runs interrupted, failed or still
    running are skipped); if no run is complete, the newest run with executed notebooks.
    FileNotFoundError if there is none."""
    runs = _runs_with_notebooks(root)
    complete = [r for r in runs if is_complete(r, root)]
    return (complete or runs)[-1]


def _markdown(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(text)


def _html(markup: str) -> nbformat.NotebookNode:
    # A code cell with only an HTML output (the exporter hides the empty input).
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": markup})]
    return cell


def _banner(run_id: str, root: str | os.PathLike | None) -> list[nbformat.NotebookNode]:
    """A conspicuous box at the top of an incomplete run's report."""
    st = run_status(run_id, root)
    if st["status"] in (None, "complete"):
        return []
    esc = html.escape
    why = {
        "interrupted": f"interrupted (Ctrl-C) in <code>{esc(str(st['current']))}</code>",
        "failed": f"failed in <code>{esc(str(st['current']))}</code>",
        "running": f"still running (pid {st['pid']}), or killed before it could record why",
    }.get(st["status"], esc(str(st["status"])))
    missing = ", ".join(f"<code>{esc(n)}</code>" for n in st["missing"]) or "none"
    error = f"<br>Error: {esc(st['error'])}" if st["status"] == "failed" and st["error"] else ""
    return [_html(
        '<div class="ryzlab-incomplete" style="border: 3px solid #b00020; '
        'background: #fdecea; color: #000; padding: 12px 16px; margin: 8px 0; '
        'font-size: 1.05em">'
        f"<strong>Incomplete run: status {esc(str(st['status']))}.</strong> "
        f"The run {why}: {len(st['finished'])} of {len(st['planned'])} notebooks finished; "
        f"missing: {missing}.{error}<br>"
        f"Finish it with <code>{esc(resume_command(run_id))}</code>, then rebuild this "
        f"report with <code>python -m ryzlab report --run-id {esc(run_id)}</code>."
        "</div>"
    )]


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
    flat = pd.json_normalize({k: v for k, v in ctx.items() if k not in _PROGRESS_KEYS}).iloc[0]
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
    nb.cells += _banner(run_id, root)
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
    """Write the HTML report of ``run_id`` (default: ``latest_run()``, the newest complete
    run) to ``out`` (default ``<results>/report.html``, mode 0o644 under umask 022); return
    its path.  An incomplete run's report opens with a banner saying what is missing.

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
        run_id = args.run_id or latest_run()
        path = build_report(run_id, args.out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"ryzlab report: error: {exc}", file=sys.stderr)
        return 1
    st = run_status(run_id)
    if st["status"] not in (None, "complete"):
        print(f"ryzlab report: run {run_id} is {st['status']} (missing: "
              f"{', '.join(st['missing']) or 'none'}); finish it with: "
              f"{resume_command(run_id)}", file=sys.stderr)
    elif args.run_id is None:
        runs = _runs_with_notebooks(None)
        newer = runs[runs.index(run_id) + 1:]
        if newer:
            print(f"ryzlab report: skipped newer incomplete run(s) {', '.join(newer)}; "
                  "report one with --run-id", file=sys.stderr)
    print(path)
    return 0
