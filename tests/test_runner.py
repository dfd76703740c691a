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


# --- interrupting and resuming ------------------------------------------------------------
#
# Most of these replace the papermill call (runner._execute) with a fake that writes what a
# notebook writes, so no kernel starts; one test sends a real SIGINT to `python -m ryzlab run`.

import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from ryzlab.lab import results  # noqa: E402
from ryzlab.lab.runner import RunInterrupted, resume_run  # noqa: E402


def status(root, rid):
    return json.loads((root / "runs" / rid / "context.json").read_text())


def tables(root, rid):
    """Every table of run ``rid`` without its run_id column: what must not depend on how the
    run was executed (interrupted and resumed, or in one go)."""
    return {p.parent.name: pd.read_csv(p, dtype=str, keep_default_na=False).drop(columns="run_id")
            for p in sorted((root / "tables").glob(f"*/{rid}.csv"))}


class FakeNotebooks:
    """Stands in for papermill: each 'notebook' writes two tables, the second half of its
    rows after a point where it can be interrupted (KeyboardInterrupt) or fail."""

    def __init__(self, monkeypatch, interrupt=None, fail=None):
        self.interrupt, self.fail, self.calls = interrupt, fail, []
        monkeypatch.setattr(runner, "_execute", self)

    def __call__(self, job, out):
        self.calls.append(job.name)
        nbformat.write(nbformat.v4.new_notebook(), out)
        results.write_table("shared", [{"nb": job.name, "part": 1, "x": job.params.get("x")}],
                            job.run_id)
        results.write_table(f"own_{job.name[:2]}", [{"quick": job.quick}], job.run_id)
        if job.name == self.interrupt:
            self.interrupt = None
            raise KeyboardInterrupt
        if job.name == self.fail:
            self.fail = None
            raise RuntimeError("boom")
        results.write_table("shared", [{"nb": job.name, "part": 2, "x": job.params.get("x")}],
                            job.run_id)


@pytest.fixture
def three(tmp_path):
    return [write_notebook(tmp_path / f"0{i}_nb{i}.ipynb") for i in (1, 2, 3)]


def test_interrupt_records_progress_and_resume_matches_uninterrupted(three, root, monkeypatch):
    FakeNotebooks(monkeypatch)
    run_notebooks(three, parameters={"x": 7}, quick=True, run_id="whole", root=root,
                  progress=False)
    assert status(root, "whole")["status"] == "complete"

    fake = FakeNotebooks(monkeypatch, interrupt="02_nb2")
    with pytest.raises(RunInterrupted) as err:
        run_notebooks(three, parameters={"x": 7}, quick=True, run_id="cut", root=root,
                      progress=False)
    assert str(err.value) == ("interrupted run cut in 02_nb2: 1 of 3 notebooks finished; "
                              "resume with: python -m ryzlab run --resume cut")
    ctx = status(root, "cut")
    assert ctx["status"] == "interrupted" and ctx["current"] == "02_nb2"
    assert ctx["planned"] == ["01_nb1", "02_nb2", "03_nb3"] and ctx["finished"] == ["01_nb1"]
    assert ctx["quick"] is True and ctx["parameters"] == {"x": 7}
    run = root / "runs" / "cut"
    assert (run / "partial" / "02_nb2.ipynb").exists() and not (run / "02_nb2.ipynb").exists()
    # The interrupted notebook's rows are gone already; its own table had no others.
    assert set(tables(root, "cut")["shared"]["nb"]) == {"01_nb1"}
    assert "own_02" not in tables(root, "cut")

    executed = resume_run("cut", root=root, progress=False)
    assert [p.name for p in executed] == ["02_nb2.ipynb", "03_nb3.ipynb"]
    assert fake.calls == ["01_nb1", "02_nb2", "02_nb2", "03_nb3"]
    ctx = status(root, "cut")
    assert ctx["status"] == "complete" and ctx["finished"] == ctx["planned"]
    assert ctx["current"] is None and len(ctx["resumed"]) == 1
    assert not (run / "partial").exists()
    whole, cut = tables(root, "whole"), tables(root, "cut")
    assert whole.keys() == cut.keys()
    for name in whole:
        pd.testing.assert_frame_equal(whole[name], cut[name])
    assert resume_run("cut", root=root, progress=False) == []  # nothing left to do


def test_killed_run_resumes_without_duplicate_rows(three, root, monkeypatch):
    """SIGKILL leaves status 'running', a partial copy and the notebook's rows: resume
    must drop both before executing it again."""
    FakeNotebooks(monkeypatch)
    run_notebooks(three, run_id="whole", root=root, progress=False)
    FakeNotebooks(monkeypatch, interrupt="03_nb3")
    with pytest.raises(RunInterrupted):
        run_notebooks(three, run_id="killed", root=root, progress=False)
    # What a kill leaves instead: no bookkeeping, the rows still there.
    results.update_context("killed", root, status="running", pid=2**22 + 1)
    with monkeypatch.context() as m:
        m.setenv(results.NOTEBOOK_ENV, "03_nb3")
        results.write_table("shared", [{"nb": "03_nb3", "part": 1, "x": None}], "killed", root)
    (root / "runs" / "killed" / "03_nb3.ipynb").write_text("{half a notebo")

    resume_run("killed", root=root, progress=False)
    assert status(root, "killed")["status"] == "complete"
    nbformat.read(root / "runs" / "killed" / "03_nb3.ipynb", as_version=4)
    whole, killed = tables(root, "whole"), tables(root, "killed")
    for name in whole:
        pd.testing.assert_frame_equal(whole[name], killed[name])


def test_failed_run_is_recorded_and_resumable(three, root, monkeypatch):
    FakeNotebooks(monkeypatch, fail="02_nb2")
    with pytest.raises(NotebookExecutionError, match="--resume r1"):
        run_notebooks(three, run_id="r1", root=root, progress=False)
    ctx = status(root, "r1")
    assert ctx["status"] == "failed" and ctx["current"] == "02_nb2"
    assert "RuntimeError: boom" in ctx["error"] and ctx["finished"] == ["01_nb1"]
    with pytest.raises(ValueError, match="--resume r1"):  # not by running it again
        run_notebooks(three[1:2], run_id="r1", root=root, progress=False)
    resume_run("r1", root=root, progress=False)
    ctx = status(root, "r1")
    assert ctx["status"] == "complete" and ctx["error"] is None
    shared = tables(root, "r1")["shared"]
    assert shared.groupby("nb").size().to_dict() == {"01_nb1": 2, "02_nb2": 2, "03_nb3": 2}


def test_resume_refusals(three, root, monkeypatch, capsys):
    with pytest.raises(ValueError, match="no run"):
        resume_run("nope", root=root)
    results.write_context("by-hand", {"cpu_model": "x"}, root)
    with pytest.raises(ValueError, match="nothing to resume"):
        resume_run("by-hand", root=root)
    # A run still executing elsewhere is left alone.
    FakeNotebooks(monkeypatch, interrupt="01_nb1")
    with pytest.raises(RunInterrupted):
        run_notebooks(three, run_id="busy", root=root, progress=False)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "ryzlab"])
    try:
        results.update_context("busy", root, status="running", pid=other.pid)
        with pytest.raises(ValueError, match=f"still running \\(pid {other.pid}\\)"):
            resume_run("busy", root=root)
    finally:
        other.kill()
        other.wait()
    args = build_parser().parse_args(["run", "--resume", "busy", "01"])
    assert runner.cli(args) == 1 and "give nothing else" in capsys.readouterr().err


def test_cli_reports_an_interrupt_in_one_line(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise RunInterrupted("interrupted run r1 in 01_x: 0 of 1 notebooks finished; "
                             "resume with: python -m ryzlab run --resume r1", "r1")

    monkeypatch.setattr(runner, "run_notebooks", interrupted)
    assert runner.cli(build_parser().parse_args(["run"])) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ryzlab run: interrupted run r1")


BLOCKING = [
    "from ryzlab.lab import results\n"
    "results.write_table('shared', [{'nb': 2, 'part': 1}], run_id)\n"
    "results.write_table('second', [{'v': 1}], run_id)",
    # Blocks while the test's file exists: the test interrupts here.
    "import os, pathlib, time\n"
    "block = pathlib.Path(os.environ.get('RYZLAB_TEST_BLOCK', '/nonexistent'))\n"
    "if block.exists():\n"
    "    (block.parent / 'started').touch()\n"
    "    time.sleep(120)",
    "results.write_table('shared', [{'nb': 2, 'part': 2}], run_id)\n"
    "results.write_table('second', [{'v': 2}], run_id)",
]


def test_sigint_stops_a_real_run_which_resumes(tmp_path, root):
    """Ctrl-C on `python -m ryzlab run`: one line, exit code 130, status interrupted;
    `--resume` finishes the run with the tables an uninterrupted run writes (spelled out
    here: three kernel starts instead of five; the fake-notebook tests above compare with
    an uninterrupted run directly)."""
    first = write_notebook(tmp_path / "01_first.ipynb",
                           "from ryzlab.lab import results\n"
                           "results.write_table('shared', [{'nb': 1, 'part': 1, 'x': x}], run_id)")
    second = write_notebook(tmp_path / "02_second.ipynb", *BLOCKING)
    block = tmp_path / "block"
    block.touch()
    env = {**os.environ, "RYZLAB_RESULTS": str(root), "RYZLAB_TEST_BLOCK": str(block)}
    cmd = [sys.executable, "-m", "ryzlab", "run"]
    proc = subprocess.Popen([*cmd, str(first), str(second), "-p", "x", "3", "--run-id", "cut"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    while not (tmp_path / "started").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the notebook never started"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode == 130, err
    # tqdm's bar (cleared on a terminal) aside, stderr is the one line.
    lines = [ln for ln in err.replace("\r", "\n").splitlines()
             if ln.strip() and not ln.startswith("notebooks:")]
    assert lines == ["ryzlab run: interrupted run cut in 02_second: 1 of 2 notebooks finished; "
                     "resume with: python -m ryzlab run --resume cut"], err
    assert "without encryption" not in err and out == b""
    ctx = status(root, "cut")
    assert ctx["status"] == "interrupted" and ctx["finished"] == ["01_first"]
    assert ctx["parameters"] == {"x": 3}
    assert "second" not in tables(root, "cut")

    block.unlink()
    done = subprocess.run([*cmd, "--resume", "cut"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(root.resolve() / "runs" / "cut" / "02_second.ipynb")]
    assert "without encryption" not in done.stderr
    assert status(root, "cut")["status"] == "complete"
    cut = tables(root, "cut")
    assert cut.keys() == {"shared", "second"}
    assert cut["shared"].to_dict("list") == {
        "notebook": ["01_first", "02_second", "02_second"],
        "nb": ["1", "2", "2"], "part": ["1", "1", "2"], "x": ["3", "", ""]}
    assert cut["second"].to_dict("list") == {"notebook": ["02_second"] * 2, "v": ["1", "2"]}
