"""The experiment notebooks: committed cleared, executable in quick mode, and reportable.

All notebooks run once (quick mode, papermill, one module-scoped fixture: each kernel start
costs seconds) into a temporary results root; the tests then read what they wrote.  No
timing is asserted, only that every table, figure and the fix-sequence rows exist.
The browser test is opt-in: ``pytest -m browser`` (and Chromium installed).
"""

from __future__ import annotations

import ast
import base64
import io
import logging
import os
import re
import shutil
import subprocess

import nbformat
import pandas as pd
import papermill
import pytest

from ryzlab.lab import report
from ryzlab.lab import results
from ryzlab.lab import roofline
from ryzlab.lab import runner

NOTEBOOKS = runner.discover()

#: Tables each notebook must write in its run (beyond the fix_sequence rows).
TABLES = {
    "00_machine": ["roofline"],
    "01_simd_activation": ["simd_activation"],
    "02_tmac_encoding": ["tmac_encoding_error", "tmac_table_sizes", "lut_vs_mad"],
    "03_multithreading": ["mt_decode", "mt_gemm", "mt_amdahl"],
    "06_prefill": ["prefill_gemm", "prefill_crossover", "prefill_model"],
    "07_model_check": ["model_check_logits", "model_check_heads"],
    "08_beyond_2bit": ["beyond_gemv", "beyond_decode", "beyond_alternation", "beyond_accuracy"],
}
FIX_STEPS = {"P1 SIMD activation", "P2 T-MAC encoding"}
RUN_ID = "test-quick"


def _parameters_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if c.cell_type == "code")


def test_notebooks_exist():
    stems = [p.stem for p in NOTEBOOKS]
    assert [s for s in stems if s in TABLES] == list(TABLES), f"missing or out of order: {list(TABLES)} in {stems}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_cleared_with_parameters(path, caplog):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), \
        "the first cell is the markdown title"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {i} has outputs: clear them before committing"
            assert cell.execution_count is None, f"cell {i} has an execution count"
    params = _parameters_cell(nb)
    assert "parameters" in params.metadata.get("tags", []), "the first code cell must be tagged 'parameters'"
    assigned = {
        t.id: node.value for node in ast.parse(params.source).body if isinstance(node, ast.Assign)
        for t in node.targets if isinstance(t, ast.Name)
    }
    assert ast.literal_eval(assigned["run_id"]) is None
    assert ast.literal_eval(assigned["quick"]) is False
    # papermill can read every parameter (what `papermill --help-notebook` shows).
    with caplog.at_level(logging.WARNING, logger="papermill"):
        seen = papermill.inspect_notebook(str(path))
    assert set(seen) == set(assigned)
    assert not [r for r in caplog.records if "Unable to parse" in r.getMessage()]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """Every notebook executed once in quick mode into a temporary results root."""
    root = tmp_path_factory.mktemp("results")
    executed = runner.run_notebooks(quick=True, run_id=RUN_ID, root=root, progress=False)
    return root, executed


def test_quick_run_writes_tables_figures_and_fix_sequence(quick_run):
    root, executed = quick_run
    assert [p.stem for p in executed] == [p.stem for p in NOTEBOOKS]
    for path in executed:
        nb = nbformat.read(path, as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert not errors, f"{path.stem}: {errors[0]['ename']}: {errors[0]['evalue']}"
        pngs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                if "image/png" in o.get("data", {})]
        assert pngs, f"{path.stem} shows no figure"
    for notebook, tables in TABLES.items():
        for table in tables:
            csv = root / "tables" / table / f"{RUN_ID}.csv"
            assert csv.is_file(), f"{notebook} did not write table {table!r}"
            frame = pd.read_csv(csv)
            assert len(frame) and (frame["run_id"] == RUN_ID).all()
        assert list((root / "figures").glob(f"{notebook}_*.png")), f"{notebook} saved no figure"
    # The machine's ceilings are stored under the run's root (RYZLAB_RESULTS set by the runner).
    assert roofline.path(root).is_file()
    fixes = results.load("fix_sequence", root)
    assert FIX_STEPS <= set(fixes["step"])
    assert set(report.FIX_SEQUENCE_COLUMNS) <= set(fixes.columns)
    exact = fixes.loc[fixes["step"] == "P2 T-MAC encoding", "measured"]
    assert (exact == 0).all(), "ryzlab's LUT kernels must be exact"
    errors = pd.read_csv(root / "tables" / "tmac_encoding_error" / f"{RUN_ID}.csv")
    assert errors.loc[errors["source"] == "ryzlab", "exact"].all()
    assert not errors.loc[errors["case"].str.startswith("random") & (errors["source"] != "ryzlab"), "exact"].any()


def _chromium() -> str | None:
    return next((p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
                 if p and os.access(p, os.X_OK)), None)


_IMG_CHECK = """<script>
window.addEventListener("load", () => {
  for (const img of document.images) {
    img.setAttribute("data-loaded", img.complete && img.naturalWidth > 0 ? "yes" : "no");
  }
  document.body.setAttribute("data-images-checked", String(document.images.length));
});
</script>"""


@pytest.mark.browser  # deselected by default (pyproject addopts); run with `pytest -m browser`
@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed (/usr/bin/chromium)")
def test_report_renders_in_headless_chromium(quick_run, tmp_path):
    from PIL import Image

    chromium = _chromium()

    root, _ = quick_run
    page = report.build_report(RUN_ID, out=tmp_path / "report.html", root=root)
    html = page.read_text(encoding="utf-8")
    sources = re.findall(r"""<img\b[^>]*?\bsrc=["']([^"']+)""", html, flags=re.IGNORECASE)
    assert sources, "the report has no images"
    for src in sources:
        assert src.startswith("data:image/"), f"image not embedded: {src[:80]}"
        if src.startswith("data:image/png;base64,"):
            Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()

    # A copy with a load-time check of every image, rendered by a real browser.
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", _IMG_CHECK + "</body>"), encoding="utf-8")
    shot = tmp_path / "report.png"
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000"]
    dom = subprocess.run([*flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert f'data-images-checked="{len(sources)}"' in dom.stdout, "the page's load event never ran"
    assert dom.stdout.count('data-loaded="yes"') == len(sources), "some images failed to load"
    assert 'data-loaded="no"' not in dom.stdout

    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,3000", page.as_uri()],
                   capture_output=True, text=True, timeout=120, check=True)
    assert shot.is_file() and shot.stat().st_size > 20_000
    with Image.open(shot) as im:
        lo, hi = im.convert("L").getextrema()
    assert hi - lo > 100, "the screenshot is blank"
