"""Runner tests.  Only two tests start a kernel (a few seconds each); the rest check the
argument handling that happens before any notebook executes."""

import argparse
import json

import nbformat
import pytest

from ryzlab.cli import build_parser
from ryzlab.lab import runner
from ryzlab.lab.runner import (
    NotebookExecutionError,
    expand_sweep,
    parse_parameters,
    resolve_notebook,
    run_notebooks,
)

PARAMETERS = "x = 1\nrun_id = None\nquick = False"


def write_notebook(path, *code):
    nb = nbformat.v4.new_notebook()
    # No kernelspec metadata on purpose: the runner must cope (papermill needs a language).
    params = nbformat.v4.new_code_cell(PARAMETERS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(c) for c in code)]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("RYZLAB_RESULTS", str(tmp_path / "elsewhere"))  # must be overridden
    return tmp_path / "results"


def test_parameters_arrive_in_the_notebook(tmp_path, root):
    record = "\n".join([
        "import json, os, pathlib",
        "out = pathlib.Path(os.environ['RYZLAB_RESULTS']) / 'seen.json'",
        "out.write_text(json.dumps({'x': x, 'run_id': run_id, 'quick': quick,",
        "                           'cwd': os.getcwd()}))",
    ])
    nb = write_notebook(tmp_path / "01_probe.ipynb", record)
    executed = run_notebooks([nb], parameters={"x": [5, 6]}, quick=True, run_id="r1",
                             root=root, progress=False)
    assert executed == [root / "runs" / "r1" / "01_probe.ipynb"]
    seen = json.loads((root / "seen.json").read_text())
    assert seen == {"x": [5, 6], "run_id": "r1", "quick": True, "cwd": str(tmp_path)}
    ctx = json.loads((root / "runs" / "r1" / "context.json").read_text())
    assert ctx["quick"] is True and ctx["parameters"] == {"x": [5, 6]}
    # Re-executing into the same run would duplicate its table rows.
    with pytest.raises(ValueError, match="already executed"):
        run_notebooks([nb], run_id="r1", root=root, progress=False)


def test_failure_stops_and_names_the_notebook(tmp_path, root):
    bad = write_notebook(tmp_path / "01_bad.ipynb", "raise RuntimeError('boom')")
    good = write_notebook(tmp_path / "02_good.ipynb", "open('ran', 'w').close()")
    with pytest.raises(NotebookExecutionError) as err:
        run_notebooks([bad, good], run_id="r1", root=root, progress=False)
    message = str(err.value)
    partial = root / "runs" / "r1" / "01_bad.ipynb"
    assert "01_bad.ipynb" in message and "RuntimeError: boom" in message
    assert str(partial) in message and partial.exists()
    assert "not run: 02_good" in message
    assert not (tmp_path / "ran").exists()
    assert not (root / "runs" / "r1" / "02_good.ipynb").exists()


def test_cli_parameters_are_yaml():
    args = build_parser().parse_args(["run", "01", "-p", "threads", "[1,2]", "-p", "kernel", "lut_avx2",
                              "-p", "tag", "'01'", "-p", "scale", "0.5", "--quick"])
    assert args.notebooks == ["01"] and args.quick
    assert parse_parameters(args.param) == {
        "threads": [1, 2], "kernel": "lut_avx2", "tag": "01", "scale": 0.5,
    }
    with pytest.raises(ValueError, match="identifier"):
        parse_parameters([("not-a-name", "1")])


def test_sweep_grid_is_cartesian_product():
    notebooks, runs = expand_sweep({"notebooks": ["03"],
                                    "grid": {"threads": [1, 2], "kernel": ["a", "b", "c"]}})
    assert notebooks == ["03"]
    assert runs == [{"threads": t, "kernel": k} for t in (1, 2) for k in "abc"]


def test_sweep_runs_are_used_as_given():
    assert expand_sweep({"runs": [{"threads": 1}, {"threads": 2, "k": "x"}]}) == (
        [], [{"threads": 1}, {"threads": 2, "k": "x"}])


@pytest.mark.parametrize("spec", [
    {}, {"runs": [], "grid": {}}, {"grid": {"t": []}}, {"grid": {"t": 1}},
    {"runs": [1]}, {"runs": [{}], "typo": 1}, [1, 2],
])
def test_bad_sweeps_are_refused(spec):
    with pytest.raises(ValueError):
        expand_sweep(spec)


def test_sweep_conflicts_are_refused_before_running(tmp_path, root):
    sweep = tmp_path / "s.yaml"
    sweep.write_text("grid:\n  x: [1, 2]\n")
    nb = write_notebook(tmp_path / "01_probe.ipynb")
    with pytest.raises(ValueError, match="both swept and given"):
        run_notebooks([nb], parameters={"x": 3}, sweep=sweep, root=root, progress=False)
    with pytest.raises(ValueError, match="own run id"):
        run_notebooks([nb], sweep=sweep, run_id="r1", root=root, progress=False)
    with pytest.raises(ValueError, match="run_id"):
        run_notebooks([nb], parameters={"run_id": "x"}, root=root, progress=False)
    assert not root.exists()


def test_notebooks_resolve_by_name_or_prefix(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", tmp_path)
    for name in ("01_simd_activation", "02_lut", "02_lut_legacy", "10_model"):
        write_notebook(tmp_path / f"{name}.ipynb")
    (tmp_path / "scratch.ipynb").touch()
    assert [p.stem for p in runner.discover()] == [
        "01_simd_activation", "02_lut", "02_lut_legacy", "10_model"]
    assert resolve_notebook("01").stem == "01_simd_activation"
    assert resolve_notebook("01_simd_activation.ipynb").stem == "01_simd_activation"
    assert resolve_notebook("02_lut").stem == "02_lut"  # exact name beats longer prefixes
    assert resolve_notebook(tmp_path / "scratch.ipynb").name == "scratch.ipynb"
    with pytest.raises(ValueError, match="several"):
        resolve_notebook("02")
    with pytest.raises(ValueError, match="no notebook"):
        resolve_notebook("99")
