import json
import os
import time

import pandas as pd
import pytest

from ryzlab.core import topology
from ryzlab.lab import record as context
from ryzlab.lab import results


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A private results root; the environment points at it so defaults never hit results/."""
    monkeypatch.setenv("RYZLAB_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


def test_results_dir_follows_environment(root):
    assert results.results_dir() == root
    assert results.results_dir("/elsewhere") == results.results_dir("/elsewhere")


def test_run_ids_are_unique_and_sortable():
    ids = [results.new_run_id() for _ in range(50)]
    assert len(set(ids)) == 50
    time.sleep(0.002)  # ids within one millisecond order randomly; later ones sort after
    assert results.new_run_id() > max(ids)
    results.run_dir(ids[0])  # a valid path component


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden", "-x"])
def test_unsafe_names_are_refused(root, bad):
    with pytest.raises(ValueError):
        results.write_table(bad, [{"a": 1}], "r1")
    with pytest.raises(ValueError):
        results.write_table("t", [{"a": 1}], bad)


def test_write_adds_run_id_and_appends(root):
    path = results.write_table("bw", [{"bytes": 1024, "gbps": 10.1}], "r1")
    assert path == root / "tables" / "bw" / "r1.csv"
    results.write_table("bw", pd.DataFrame({"bytes": [2048], "gbps": [0.1 + 0.2]}), "r1")
    df = pd.read_csv(path)
    assert list(df.columns) == ["run_id", "bytes", "gbps"]
    assert df["run_id"].tolist() == ["r1", "r1"]
    assert df["gbps"].tolist() == [10.1, 0.1 + 0.2]  # floats survive the append exactly


def test_append_keeps_earlier_rows_text_exactly(root):
    path = results.write_table("t", [{"tag": "007", "x": None, "y": 1e-300}], "r1")
    first = path.read_text()
    results.write_table("t", [{"tag": "8", "x": 1.5, "y": 2.0}], "r1")
    assert path.read_text().startswith(first)


def test_conflicting_run_id_column_is_refused(root):
    with pytest.raises(ValueError, match="run_id"):
        results.write_table("t", [{"run_id": "other", "a": 1}], "r1")


def test_load_concatenates_runs(root):
    results.write_table("t", [{"a": 1}, {"a": 2}], "r1")
    results.write_table("t", [{"a": 3, "b": "x"}], "r2")
    df = results.load("t")
    assert df["run_id"].tolist() == ["r1", "r1", "r2"]
    assert df["a"].tolist() == [1, 2, 3]
    assert "b" in df.columns
    assert results.load("missing").empty


def test_interrupted_write_leaves_earlier_data_intact(root, monkeypatch):
    results.write_table("t", [{"a": 1}], "r1")
    results.write_table("t", [{"a": 2}], "r2")
    before = {p.name: p.read_bytes() for p in (root / "tables" / "t").iterdir()}

    def crash(src, dst):
        raise KeyboardInterrupt("killed mid-write")

    with monkeypatch.context() as m:
        m.setattr(os, "replace", crash)
        with pytest.raises(KeyboardInterrupt):
            results.write_table("t", [{"a": 3}], "r2")  # append to an existing run's table
        with pytest.raises(KeyboardInterrupt):
            results.write_table("t", [{"a": 4}], "r3")  # a new run's first rows

    after = {p.name: p.read_bytes() for p in (root / "tables" / "t").iterdir()}
    assert after == before  # no temp file left behind, earlier bytes unchanged
    assert results.load("t")["a"].tolist() == [1, 2]


def test_leftover_temp_file_is_invisible_to_load(root, monkeypatch):
    # A process killed between write and rename leaves its temp file; load must skip it.
    results.write_table("t", [{"a": 1}], "r1")
    with monkeypatch.context() as m:
        m.setattr(os, "replace", lambda src, dst: None)  # killed before the rename
        results.write_table("t", [{"a": 2}], "r1")
    names = sorted(p.name for p in (root / "tables" / "t").iterdir())
    assert len(names) == 2 and names[0].endswith(".tmp") and names[1] == "r1.csv"
    assert results.load("t")["a"].tolist() == [1]


def test_context_roundtrip_and_flattening(root):
    ctx = {"cpu_model": "X", "versions": {"numpy": "2.0"}, "kernels": ["a", "b"]}
    results.write_context("r1", ctx)
    results.write_context("r2", {**ctx, "cpu_model": "Y"})
    assert results.read_context("r1") == ctx
    df = results.load_contexts()
    assert df["run_id"].tolist() == ["r1", "r2"]
    assert df["cpu_model"].tolist() == ["X", "Y"]
    assert df["versions.numpy"].tolist() == ["2.0", "2.0"]


def test_ensure_run_captures_context_once(root):
    run_id = results.ensure_run()
    path = results.run_dir(run_id) / "context.json"
    first = path.read_text()
    assert results.ensure_run(run_id) == run_id and path.read_text() == first


def test_run_context_is_json_and_complete():
    ctx = context.run_context()
    json.dumps(ctx)
    for key in ("cpu_model", "cpu_features", "logical_cpus", "physical_cores", "l3_bytes",
                "compiler", "cflags", "library_sha256", "git_commit", "git_dirty",
                "versions", "env", "date", "hostname"):
        assert key in ctx
    assert 1 <= ctx["physical_cores"] <= ctx["logical_cpus"]
    assert set(ctx["env"]) == {"OMP_NUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES", "RYZLAB_KERNEL"}
    assert topology.last_level_cache_bytes() > 0


@pytest.mark.parametrize(("text", "size"), [("32K", 32768), ("1024K", 1 << 20),
                                            ("32768K", 32 << 20), ("2M", 2 << 20)])
def test_cache_size_parsing(text, size):
    assert topology._parse_size(text) == size


def test_runner_rows_name_their_notebook_and_can_be_discarded(root, monkeypatch):
    results.write_table("t", [{"a": "007"}], "r1")  # written by hand: no notebook column
    monkeypatch.setenv(results.NOTEBOOK_ENV, "01_x")
    results.write_table("t", [{"a": 1}, {"a": 2}], "r1")
    results.write_table("only01", [{"b": 1}], "r1")
    results.write_table("t", [{"a": 9}], "r2")
    monkeypatch.setenv(results.NOTEBOOK_ENV, "02_y")
    path = results.write_table("t", pd.DataFrame({"a": [3], "notebook": ["02_y"]}), "r1")
    with pytest.raises(ValueError, match="notebook"):
        results.write_table("t", [{"a": 4, "notebook": "01_x"}], "r1")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["run_id", "a", "notebook"]  # the hand-written file's first
    assert frame["notebook"].tolist() == ["", "01_x", "01_x", "02_y"]

    other_run = (root / "tables" / "t" / "r2.csv").read_bytes()
    changed = results.discard_rows("r1", "01_x")
    assert sorted(p.parent.name for p in changed) == ["only01", "t"]
    assert path.read_text().splitlines() == ["run_id,a,notebook", "r1,007,", "r1,3,02_y"]
    assert not (root / "tables" / "only01" / "r1.csv").exists()  # no rows left: no file
    assert (root / "tables" / "t" / "r2.csv").read_bytes() == other_run
    assert results.discard_rows("r1", "01_x") == []  # idempotent


def test_written_files_are_readable_by_others(root):
    old = os.umask(0o022)
    try:
        paths = [results.write_table("t", [{"a": 1}], "r1"),
                 results.write_table("t", [{"a": 2}], "r1"),
                 results.write_context("r1", {"x": 1}),
                 results.atomic_write_text(root / "report.html", "<html></html>")]
    finally:
        os.umask(old)
    assert {oct(p.stat().st_mode & 0o777) for p in paths} == {"0o644"}
    assert not list(root.rglob("*.tmp"))


def test_update_context_rewrites_one_key(root):
    results.write_context("r1", {"cpu_model": "X", "status": "running"})
    assert results.update_context("r1", status="complete") == {"cpu_model": "X",
                                                                "status": "complete"}
    assert results.read_context("r1")["status"] == "complete"
