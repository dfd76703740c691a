import argparse
import base64
import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pytest  # noqa: E402

from ryzlab.lab import results  # noqa: E402
from ryzlab.cli import build_parser
from ryzlab.lab import report
from ryzlab.lab.figures import apply_style, save_figure  # noqa: E402


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("RYZLAB_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


def png_bytes() -> bytes:
    apply_style()
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [1, 4, 9])
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=30)
    plt.close(fig)
    return buf.getvalue()


def executed_notebook(path):
    """What papermill leaves behind, built directly: no kernel needed."""
    params = nbformat.v4.new_code_cell("run_id = None\nquick = False")
    params.metadata["tags"] = ["parameters"]
    code = nbformat.v4.new_code_cell("SECRET_SOURCE = 1\nprint('hello-output')\nfig")
    code.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="hello-output\n"),
        nbformat.v4.new_output("display_data", data={
            "image/png": base64.b64encode(png_bytes()).decode(), "text/plain": "<Figure>"}),
    ]
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Probe experiment\n\nThe prose stays."),
        params, code,
    ])
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def test_report_shows_outputs_not_inputs(root):
    executed_notebook(results.run_dir("r1") / "01_probe.ipynb")
    results.write_context("r1", {"cpu_model": "Test CPU 9000", "kernels": ["k1", "k2"],
                                 "versions": {"numpy": "2.0"}})
    results.write_table("fix_sequence", [
        {"step": "P1", "guide_claim": "claimed-3x", "measured": 1.4, "unit": "x", "note": ""},
    ], "r1")

    path = report.build_report()
    assert path == root / "report.html"
    html = path.read_text()
    assert "hello-output" in html and "The prose stays." in html and "01_probe" in html
    assert "SECRET_SOURCE" not in html and "run_id = None" not in html
    assert "claimed-3x" in html and "Not measured yet" not in html
    assert "Test CPU 9000" in html and "versions.numpy" in html and "k1, k2" in html
    # Self-contained: the figure is inline and no image points at a file or URL.
    assert re.search(r'<img[^>]+src="data:image/png;base64,', html)
    assert not report._EXTERNAL_IMG.findall(html)


def test_report_without_fix_sequence_and_custom_out(root, tmp_path):
    executed_notebook(results.run_dir("r1") / "01_probe.ipynb")
    out = report.build_report("r1", out=tmp_path / "r.html")
    html = out.read_text()
    assert "Not measured yet" in html and "No context.json" in html


def test_latest_run_needs_executed_notebooks(root):
    with pytest.raises(FileNotFoundError, match="ryzlab run"):
        report.latest_run()
    executed_notebook(results.run_dir("20250101T000000.000Z-aaaaaa") / "01_probe.ipynb")
    results.write_context("20250102T000000.000Z-bbbbbb", {})  # newer, but nothing executed
    assert report.latest_run() == "20250101T000000.000Z-aaaaaa"
    with pytest.raises(FileNotFoundError):
        report.build_report("nonexistent")


def test_save_figure_writes_png_and_svg(root):
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    paths = save_figure(fig, "probe")
    plt.close(fig)
    assert [p.name for p in paths] == ["probe.png", "probe.svg"]
    assert all(p.parent == root / "figures" and p.stat().st_size > 0 for p in paths)


def test_cli():
    args = build_parser().parse_args(["report", "--run-id", "r1", "--out", "x.html"])
    assert (args.run_id, str(args.out)) == ("r1", "x.html")
