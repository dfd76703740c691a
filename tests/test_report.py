import argparse
import base64
import io
import os
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


def test_latest_run_goes_by_start_date_not_name(root):
    """A run named with --run-id ("zz-baseline") that started earlier is not the latest."""
    for run, date in (("zz-baseline", "2026-12-04T16:07:28+00:00"), ("20261204T171940.484Z-c6cf92",
                                                                    "2026-12-04T17:19:40+00:00")):
        executed_notebook(results.run_dir(run) / "01_probe.ipynb")
        results.write_context(run, {"date": date})
    assert report.latest_run() == "20261204T171940.484Z-c6cf92"


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


def test_incomplete_run_gets_a_banner_and_is_not_the_default(root, tmp_path, capsys):
    executed_notebook(results.run_dir("20250101T000000.000Z-aaaaaa") / "01_probe.ipynb")
    results.write_context("20250101T000000.000Z-aaaaaa", {"status": "complete"})
    newer = "20250102T000000.000Z-bbbbbb"
    executed_notebook(results.run_dir(newer) / "01_probe.ipynb")
    results.write_context(newer, {
        "cpu_model": "Test CPU", "status": "interrupted", "current": "02_more",
        "planned": ["01_probe", "02_more", "03_last"], "finished": ["01_probe"],
        "notebook_paths": {"01_probe": "/x/01_probe.ipynb"}})
    assert report.latest_run() == "20250101T000000.000Z-aaaaaa"
    assert report.run_status(newer)["missing"] == ["02_more", "03_last"]

    html = report.build_report(newer, out=tmp_path / "r.html").read_text()
    banner = html[html.index('class="ryzlab-incomplete"'):]
    banner = banner[:banner.index("</div>")]
    assert "Incomplete run: status interrupted" in banner and "1 of 3 notebooks" in banner
    assert "<code>02_more</code>, <code>03_last</code>" in banner
    assert f"python -m ryzlab run --resume {newer}" in banner
    assert html.index("ryzlab-incomplete") < html.index("Summary: the fix sequence")
    assert "Test CPU" in html and "notebook_paths" not in html  # bookkeeping stays out

    # The CLI reports the latest complete run, and says what it skipped.
    assert report.cli(build_parser().parse_args(["report"])) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(root / "report.html") and newer in captured.err
    assert 'class="ryzlab-incomplete"' not in (root / "report.html").read_text()
    assert report.cli(build_parser().parse_args(["report", "--run-id", newer])) == 0
    assert "interrupted" in capsys.readouterr().err

    # Only incomplete runs: the newest of them, with its banner.
    results.write_context("20250101T000000.000Z-aaaaaa", {"status": "failed"})
    assert report.latest_run() == newer


def test_report_file_is_readable_by_others(root):
    executed_notebook(results.run_dir("r1") / "01_probe.ipynb")
    old = os.umask(0o022)
    try:
        path = report.build_report("r1")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_save_figure_is_atomic(root, monkeypatch):
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    paths = save_figure(fig, "probe")
    before = {p: p.read_bytes() for p in paths}
    assert all(p.stat().st_mode & 0o044 for p in paths)  # not mkstemp's 0600

    def killed(src, dst):
        raise KeyboardInterrupt("killed mid-save")

    ax.plot([1, 0])
    with monkeypatch.context() as m:
        m.setattr(os, "replace", killed)
        with pytest.raises(KeyboardInterrupt):
            save_figure(fig, "probe")
    plt.close(fig)
    assert {p: p.read_bytes() for p in paths} == before
    assert sorted(p.name for p in (root / "figures").iterdir()) == ["probe.png", "probe.svg"]
