"""Tidy results on disk: one CSV per (table, run), one context.json per run.

Layout under the results root (``$RYZLAB_RESULTS``, default ``<repo>/results``)::

    runs/<run_id>/context.json        machine and software context, captured once per run,
                                      plus the run's progress (status, planned, finished)
    runs/<run_id>/<notebook>.ipynb    executed notebooks (written by ryzlab.runner)
    runs/<run_id>/partial/            notebooks while they execute (moved up when done)
    tables/<table>/<run_id>.csv       one file per table and run
    figures/<name>.png|.svg           (written by ryzlab.figures)
    report.html                       (written by ryzlab.report)

Each run writes only its own files, so an interrupted run cannot damage an earlier run's
results, and every write is atomic (temp file, fsync, rename), so a reader sees either the
old or the new file, never half of one.  Temp files end in ``.tmp`` and never match ``*.csv``.
Files get the permissions ``open()`` would give (0o644 under umask 022).

Tables are tidy: one row per observation, one column per variable, and every row carries
``run_id``.  Column names state their unit: ``median_s`` (seconds), ``gbps`` (GB/s, 1e9
bytes per second), ``gops`` (1e9 operations per second), ``bytes``, ``tok_s`` (tokens per
second); ratios are plain names (``speedup``, ``spread``).  Run ids sort chronologically.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .record import run_context

_REPO_ROOT = Path(__file__).resolve().parents[2]
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _check_name(value: str, what: str) -> str:
    # Names become path components: refuse anything that could escape the results tree.
    if not isinstance(value, str) or not _SAFE_NAME.fullmatch(value):
        raise ValueError(
            f"{what} must be letters, digits, '.', '_' or '-' (not starting with '.' "
            f"or '-'), got {value!r}"
        )
    return value


def results_dir(root: str | os.PathLike | None = None) -> Path:
    """The results root: ``root`` if given, else ``$RYZLAB_RESULTS``, else ``<repo>/results``."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get("RYZLAB_RESULTS", _REPO_ROOT / "results"))


def run_dir(run_id: str, root: str | os.PathLike | None = None) -> Path:
    """Directory of one run's context.json and executed notebooks (not created here)."""
    return results_dir(root) / "runs" / _check_name(run_id, "run_id")


def new_run_id() -> str:
    """A fresh run id: UTC time to the millisecond plus a random suffix, e.g.
    ``20250101T120000.123Z-a1b2c3``.  Ids sort chronologically as strings."""
    now = datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%S}.{now.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


def _file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o666 less the umask (0o644 under umask 022).
    ``tempfile.mkstemp`` creates 0o600, which would leave results unreadable to others."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``path``; write the file there.  On normal exit the temp
    file is fsynced, given ordinary permissions (``_file_mode``) and renamed over ``path``
    (``os.replace``), and the directory fsynced.  On any failure the temp file is removed
    and ``path`` is untouched: a reader, or a run killed at any instant, never sees half a
    file.  Temp names are ``.<name>.<random>.tmp``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        os.fchmod(fd, _file_mode())
        os.close(fd)
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # Make the rename itself durable, not just the file contents.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see ``atomic_path``); return ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")
    return Path(path)


NOTEBOOK_ENV = "RYZLAB_NOTEBOOK"
"""Set by the runner to the executing notebook's name; ``write_table`` records it in a
``notebook`` column so a re-executed notebook's earlier rows can be found and dropped."""


def write_table(
    table: str,
    rows: pd.DataFrame | list[dict],
    run_id: str,
    root: str | os.PathLike | None = None,
) -> Path:
    """Add ``rows`` to ``table`` for ``run_id``; return the CSV's path.

    A ``run_id`` column is set on every row (first column).  Under the runner
    (``$RYZLAB_NOTEBOOK`` set) a ``notebook`` column (second) names the notebook that wrote
    the rows.  A second call for the same table and run appends: the existing rows are
    read, the new ones concatenated (columns are unioned) and the whole file replaced
    atomically.  One process per run is assumed: two concurrent writers of the same
    (table, run) could lose each other's rows.
    """
    frame = pd.DataFrame(rows)
    if "run_id" in frame.columns and not (frame["run_id"] == run_id).all():
        raise ValueError(f"rows carry a run_id other than {run_id!r}")
    frame = frame.drop(columns="run_id", errors="ignore")
    frame.insert(0, "run_id", run_id)
    if notebook := os.environ.get(NOTEBOOK_ENV):
        if "notebook" in frame.columns and not (frame["notebook"] == notebook).all():
            raise ValueError(f"rows carry a notebook other than {notebook!r} (the runner's)")
        frame = frame.drop(columns="notebook", errors="ignore")
        frame.insert(1, "notebook", notebook)
    _check_name(run_id, "run_id")
    path = results_dir(root) / "tables" / _check_name(table, "table") / f"{run_id}.csv"
    if path.exists():
        # Existing rows are kept as the exact text they were written as: re-parsing and
        # re-formatting could change floats, leading zeros or empty cells.
        existing = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame = pd.concat([existing, frame], ignore_index=True)
    return atomic_write_text(path, frame.to_csv(index=False))


def discard_rows(run_id: str, notebook: str, root: str | os.PathLike | None = None) -> list[Path]:
    """Remove the rows ``notebook`` wrote (its ``notebook`` column) from every table of
    ``run_id``, so that re-executing it does not duplicate them; return the files changed.

    Each file is rewritten atomically, the other rows kept as their exact text; a file left
    without rows is deleted.  Idempotent: the runner calls it before every execution.
    """
    changed = []
    for path in sorted((results_dir(root) / "tables").glob(f"*/{_check_name(run_id, 'run_id')}.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "notebook" not in frame.columns or not (mine := frame["notebook"] == notebook).any():
            continue
        if mine.all():
            path.unlink()
        else:
            atomic_write_text(path, frame[~mine].to_csv(index=False))
        changed.append(path)
    return changed


def load(table: str, root: str | os.PathLike | None = None) -> pd.DataFrame:
    """All runs' rows of ``table``, oldest run first; an empty DataFrame if there are none."""
    paths = sorted((results_dir(root) / "tables" / _check_name(table, "table")).glob("*.csv"))
    if not paths:
        return pd.DataFrame()
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)


def write_context(run_id: str, ctx: dict, root: str | os.PathLike | None = None) -> Path:
    """Store ``ctx`` as ``runs/<run_id>/context.json`` (atomically); return its path."""
    text = json.dumps(ctx, indent=2, default=str) + "\n"
    return atomic_write_text(run_dir(run_id, root) / "context.json", text)


def update_context(run_id: str, root: str | os.PathLike | None = None, **changes) -> dict:
    """Set ``changes`` in the stored context of ``run_id`` (atomically); return the result."""
    ctx = {**read_context(run_id, root), **changes}
    write_context(run_id, ctx, root)
    return ctx


def read_context(run_id: str, root: str | os.PathLike | None = None) -> dict:
    """The stored context of ``run_id``; raises FileNotFoundError if it was never written."""
    return json.loads((run_dir(run_id, root) / "context.json").read_text(encoding="utf-8"))


def ensure_run(run_id: str | None = None, root: str | os.PathLike | None = None) -> str:
    """Return ``run_id`` (a new one if None), capturing its context.json if not yet there.

    The runner captures the context before executing notebooks; a notebook run by hand
    calls this with its ``run_id = None`` parameter to get a run of its own.
    """
    run_id = run_id or new_run_id()
    if not (run_dir(run_id, root) / "context.json").exists():
        write_context(run_id, run_context(), root)
    return run_id


def load_contexts(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per run with a context.json, oldest first; nested keys flattened with '.'
    (e.g. ``versions.numpy``, ``cpu_features.avx2``).  Empty DataFrame if there are none."""
    paths = sorted((results_dir(root) / "runs").glob("*/context.json"))
    if not paths:
        return pd.DataFrame()
    records = [
        {"run_id": p.parent.name, **json.loads(p.read_text(encoding="utf-8"))} for p in paths
    ]
    return pd.json_normalize(records)
