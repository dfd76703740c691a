"""Batch execution of the experiment notebooks with papermill.

Each notebook runs in a fresh kernel (papermill starts one per notebook), so thread settings
and imported state cannot leak from one experiment into the next.  Every notebook's
``parameters`` cell defines at least ``run_id = None`` and ``quick = False``; the runner
injects both, plus any ``-p NAME VALUE`` parameters.  The kernel's environment carries
``RYZLAB_RESULTS`` (absolute) so the notebook writes where the runner points.

Executed copies go to ``results/runs/<run_id>/<notebook>.ipynb``, next to the run's
``context.json``; while a notebook executes its copy is ``runs/<run_id>/partial/``.
Execution is sequential and stops at the first failing notebook, or at Ctrl-C.

The run's progress lives in its context.json, rewritten atomically at every step:

``status``          ``running``, ``complete``, ``interrupted`` (Ctrl-C) or ``failed``; a run
                    killed outright stays ``running`` (``pid`` then names a dead process)
``planned``         the run's notebooks (names), in order
``finished``        those whose executed copy is complete
``current``         the notebook executing, interrupted or failed (else null)
``notebook_paths``  name -> source notebook, ``quick`` and ``parameters`` (for resuming)
``error``           the failure's message (``failed`` only); ``pid``, ``updated``, ``resumed``

``python -m ryzlab run --resume RUN_ID`` (``resume_run``) executes the planned notebooks
that did not finish.  Every table row a notebook writes carries its name (``notebook``
column, see ``results.write_table``), and those rows are dropped before the notebook
executes again, so a resumed run's tables equal an uninterrupted run's.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import papermill
import yaml
from jupyter_client.manager import AsyncKernelManager
from papermill.exceptions import PapermillExecutionError
from tqdm import tqdm
from traitlets import CaselessStrEnum

from . import results
from .record import run_context
from ..errors import RyzlabError

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
KERNEL_NAME = "python3"
"""Jupyter kernel papermill starts.  jupyter_client runs the ``python3`` kernelspec with the
interpreter that runs papermill, so notebooks see the same environment as the runner."""

_RESERVED = ("run_id", "quick")
_SWEEP_KEYS = {"notebooks", "runs", "grid"}


class NotebookExecutionError(RyzlabError, RuntimeError):
    """A notebook failed; the message names it and its partially executed copy."""


def discover(directory: str | os.PathLike | None = None) -> list[Path]:
    """The experiment notebooks ``NN_*.ipynb`` in ``directory`` (default ``NOTEBOOK_DIR``),
    in numeric order."""
    return sorted(Path(directory or NOTEBOOK_DIR).glob("[0-9][0-9]_*.ipynb"))


def resolve_notebook(spec: str | os.PathLike) -> Path:
    """A notebook given as a path, or as a name or prefix of one in ``NOTEBOOK_DIR``
    (``01``, ``01_simd_activation``, ``01_simd_activation.ipynb``)."""
    path = Path(spec)
    if path.is_file():
        return path.resolve()
    name = path.name.removesuffix(".ipynb")
    available = discover()
    exact = [p for p in available if p.stem == name]
    matches = exact or [p for p in available if p.stem.startswith(name)]
    if len(matches) != 1:
        problem = "matches several notebooks" if matches else "matches no notebook"
        names = ", ".join(p.stem for p in (matches or available)) or "none"
        raise ValueError(f"{str(spec)!r} {problem} in {NOTEBOOK_DIR} (candidates: {names})")
    return matches[0]


def parse_parameters(pairs: Sequence[Sequence[str]]) -> dict:
    """Turn CLI ``(NAME, VALUE)`` string pairs into parameters, each VALUE read as YAML:
    ``4`` -> 4, ``[1,2]`` -> [1, 2], ``true`` -> True, ``avx2`` -> 'avx2'.  Quote to force
    a string: ``"'01'"``."""
    params = {}
    for name, value in pairs:
        if not name.isidentifier():
            raise ValueError(f"parameter name must be a Python identifier, got {name!r}")
        params[name] = yaml.safe_load(value)
    return params


def expand_sweep(spec: dict) -> tuple[list[str], list[dict]]:
    """Expand a sweep specification into ``(notebooks, runs)``; each run is a parameter dict.

    ``spec`` has an optional ``notebooks`` list and exactly one of ``runs`` (a list of
    parameter dicts, used as given) or ``grid`` (``{name: [values, ...]}``, expanded to the
    Cartesian product in the order written, the last name varying fastest).
    """
    if not isinstance(spec, dict) or not spec.keys() <= _SWEEP_KEYS:
        raise ValueError(f"a sweep is a mapping with keys among {sorted(_SWEEP_KEYS)}")
    if ("runs" in spec) == ("grid" in spec):
        raise ValueError("a sweep needs exactly one of 'runs' (list) or 'grid' (mapping)")
    notebooks = [str(n) for n in spec.get("notebooks") or []]
    if "runs" in spec:
        runs = spec["runs"]
        if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
            raise ValueError("sweep 'runs' must be a list of {parameter: value} mappings")
        return notebooks, [dict(r) for r in runs]
    grid = spec["grid"]
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ValueError("sweep 'grid' must map each parameter to a non-empty list of values")
    runs = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    return notebooks, runs


def load_sweep(path: str | os.PathLike) -> tuple[list[str], list[dict]]:
    """Read a sweep YAML file and expand it (see ``expand_sweep``)."""
    return expand_sweep(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


@contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    # The kernel is a child process: it inherits os.environ as it is when papermill starts it.
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _describe(exc: Exception) -> str:
    if isinstance(exc, PapermillExecutionError):
        return f"{exc.ename}: {exc.evalue} (cell [{exc.exec_count}])"
    return f"{type(exc).__name__}: {exc}"


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped a batch.  ``str()`` is the one line the CLI prints: the run,
    how many of its notebooks finished and the command that resumes it.  A KeyboardInterrupt,
    so code that does not handle it stops as on any Ctrl-C."""

    def __init__(self, message: str, run_id: str | None = None):
        super().__init__(message)
        self.run_id = run_id


@dataclass(frozen=True)
class _Job:
    run_id: str
    params: dict
    notebook: Path
    quick: bool

    @property
    def name(self) -> str:
        return self.notebook.stem


def resume_command(run_id: str) -> str:
    """The shell command that finishes an interrupted or failed run."""
    return f"python -m ryzlab run --resume {run_id}"


# --- executing one notebook, interruptibly --------------------------------------------------
#
# nbclient installs its own SIGINT handler while it runs a notebook in the main thread, and
# that handler swallows Ctrl-C (the notebook runs on).  So papermill runs in a worker thread,
# where nbclient installs none, and the main thread only waits: Ctrl-C raises
# KeyboardInterrupt there, the main thread kills the kernel (its own process group, started
# by jupyter_client in a new session, so the terminal's Ctrl-C never reaches it), and the
# worker then ends with nbclient's DeadKernelError.

_LIVE: set["_KernelManager"] = set()
_ABORT = threading.Event()


class _KernelManager(AsyncKernelManager):
    """nbclient's default kernel manager with two changes.  The kernel talks over IPC
    (Unix sockets next to the connection file) instead of TCP on localhost, which is also
    why ipykernel no longer logs "Kernel is running over TCP without encryption" for every
    notebook.  And every started kernel is registered, so ``_kill_kernels`` can reach it."""

    transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

    async def start_kernel(self, **kwargs):  # type: ignore[override]
        _LIVE.add(self)
        await super().start_kernel(**kwargs)
        if _ABORT.is_set():  # Ctrl-C arrived while the kernel was starting
            self.kill_now()

    def kill_now(self) -> None:
        provisioner = self.provisioner
        pgid = getattr(provisioner, "pgid", None)
        pid = getattr(provisioner, "pid", None)
        try:
            if pgid:
                os.killpg(pgid, signal.SIGKILL)
            elif pid:
                os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _execute(job: _Job, out: Path) -> None:
    """Execute ``job``'s notebook with papermill into ``out`` (runs in the worker thread)."""
    papermill.execute_notebook(
        job.notebook, out,
        parameters={**job.params, "run_id": job.run_id, "quick": job.quick},
        kernel_name=KERNEL_NAME, language="python", cwd=job.notebook.parent,
        progress_bar=False, kernel_manager_class=_KernelManager,
    )


def _execute_interruptibly(job: _Job, out: Path) -> None:
    """``_execute`` in a worker thread.  Its exception, if any, is re-raised here; on Ctrl-C
    the kernel is killed and the worker given a few seconds to wind down, quietly."""
    outcome: dict[str, BaseException] = {}
    done = threading.Event()  # not Thread.is_alive(): an interrupted join() can misreport it

    def work() -> None:
        try:
            _execute(job, out)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            outcome["exc"] = exc
        finally:
            done.set()

    _ABORT.clear()
    _LIVE.clear()
    threading.Thread(target=work, name=f"ryzlab-run-{job.name}", daemon=True).start()
    try:
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        _ABORT.set()
        # nbclient and papermill log the kernel's death ("Kernel died while waiting for
        # execute reply"); the interruption is reported once, by the caller.
        previous = logging.root.manager.disable
        logging.disable(logging.CRITICAL)
        try:
            for km in list(_LIVE):
                km.kill_now()
            done.wait(10)
        finally:
            logging.disable(previous)
        raise
    finally:
        _LIVE.clear()
    if "exc" in outcome:
        raise outcome["exc"]


# --- runs: planning, progress in context.json, resuming ----------------------------------

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _begin_run(rid: str, jobs: Sequence[_Job], root: Path) -> None:
    """Record in the run's context.json that ``jobs`` (this run's share of the batch) start
    now; capture the machine context first if the run is new."""
    mine = [j for j in jobs if j.run_id == rid]
    tracking = {"status": "running", "pid": os.getpid(), "current": None, "error": None,
                "updated": _now()}
    try:
        ctx = results.read_context(rid, root)
    except FileNotFoundError:
        ctx = {**run_context(), "quick": mine[0].quick, "parameters": mine[0].params,
               "planned": [], "finished": [], "notebook_paths": {}}
    planned = list(ctx.get("planned") or [])
    planned += [j.name for j in mine if j.name not in planned]
    paths = {**(ctx.get("notebook_paths") or {}), **{j.name: str(j.notebook) for j in mine}}
    if ctx.get("status") in ("interrupted", "failed", "running"):
        tracking["resumed"] = [*ctx.get("resumed", []), _now()]
    ctx.setdefault("quick", mine[0].quick)
    ctx.setdefault("parameters", mine[0].params)
    ctx.setdefault("finished", [])
    results.write_context(rid, {**ctx, **tracking, "planned": planned, "notebook_paths": paths}, root)


def _progress(rid: str, root: Path) -> tuple[list[str], list[str]]:
    ctx = results.read_context(rid, root)
    return list(ctx.get("planned") or []), list(ctx.get("finished") or [])


def _interrupted(job: _Job | None, later_runs: int, root: Path) -> RunInterrupted:
    """Record the interruption of ``job``'s run and build the exception the CLI reports."""
    if job is None:
        return RunInterrupted("interrupted before any notebook started; nothing to resume")
    rid = job.run_id
    try:
        results.update_context(rid, root, status="interrupted", current=job.name, updated=_now())
        planned, finished = _progress(rid, root)
    except FileNotFoundError:  # interrupted while its context was being captured
        return RunInterrupted(f"interrupted run {rid} before its first notebook started; "
                              "nothing to resume", rid)
    # The interrupted notebook's rows would be duplicated when it runs again (resume drops
    # them too, which also covers a run killed outright).
    results.discard_rows(rid, job.name, root)
    more = f"; {later_runs} more sweep run(s) not started" if later_runs else ""
    return RunInterrupted(
        f"interrupted run {rid} in {job.name}: {len(finished)} of {len(planned)} notebooks "
        f"finished{more}; resume with: {resume_command(rid)}", rid)


def _run_jobs(jobs: Sequence[_Job], root: Path, progress: bool) -> list[Path]:
    executed: list[Path] = []
    job: _Job | None = None
    with _environ("RYZLAB_RESULTS", str(root)):
        bar = tqdm(jobs, desc="notebooks", unit="nb", disable=not progress)
        try:
            for i, job in enumerate(bar):
                rid = job.run_id
                bar.set_postfix_str(f"{job.name} [{rid}]")
                if i == 0 or jobs[i - 1].run_id != rid:
                    _begin_run(rid, jobs, root)
                results.update_context(rid, root, current=job.name, updated=_now())
                out = results.run_dir(rid, root) / f"{job.name}.ipynb"
                partial = out.parent / "partial" / out.name
                # A clean slate: no copy, no rows from an earlier (interrupted, failed) try.
                out.unlink(missing_ok=True)
                partial.unlink(missing_ok=True)
                results.discard_rows(rid, job.name, root)
                partial.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with _environ(results.NOTEBOOK_ENV, job.name):
                        _execute_interruptibly(job, partial)
                except Exception as exc:
                    bar.close()
                    if partial.exists():
                        os.replace(partial, out)
                    copy = f"partially executed copy: {out}" if out.exists() else "no copy written"
                    skipped = ", ".join(j.name for j in jobs[i + 1:]) or "none"
                    message = (
                        f"notebook {job.notebook.name} failed in run {rid}: {_describe(exc)}; "
                        f"{copy}. Stopped at the first failure; not run: {skipped}. "
                        f"Once fixed, finish the run with: {resume_command(rid)}"
                    )
                    results.update_context(rid, root, status="failed", error=message,
                                           updated=_now())
                    raise NotebookExecutionError(message) from exc
                os.replace(partial, out)
                with suppress(OSError):
                    partial.parent.rmdir()  # only if empty
                planned, finished = _progress(rid, root)
                finished.append(job.name)
                last = i + 1 == len(jobs) or jobs[i + 1].run_id != rid
                done = last and set(planned) <= set(finished)
                results.update_context(rid, root, finished=finished, current=None,
                                       updated=_now(),
                                       status="complete" if done else "running")
                executed.append(out)
        except KeyboardInterrupt as exc:
            if isinstance(exc, RunInterrupted):
                raise
            # A second Ctrl-C must not cut the bookkeeping short.
            in_main = threading.current_thread() is threading.main_thread()
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
            try:
                bar.leave = False  # clear the bar: the one line printed is the message
                bar.close()
                later = len({j.run_id for j in jobs if j.run_id != job.run_id}
                            - {j.run_id for j in jobs[: jobs.index(job)]}) if job else 0
                raise _interrupted(job, later, root) from None
            finally:
                if in_main:
                    signal.signal(signal.SIGINT, previous)
    return executed


def run_notebooks(
    notebooks: Sequence[str | os.PathLike] | None = None,
    parameters: dict | None = None,
    quick: bool = False,
    run_id: str | None = None,
    sweep: str | os.PathLike | None = None,
    progress: bool = True,
    root: str | os.PathLike | None = None,
) -> list[Path]:
    """Execute notebooks with papermill, one after another, each in a fresh kernel.

    ``notebooks``: paths or name prefixes (default: the sweep's list, else all of
    ``discover()``).  ``parameters`` are injected into every notebook along with
    ``run_id`` and ``quick``.  Without ``sweep`` all notebooks form one run (``run_id``, or a
    new id); with ``sweep`` (a YAML file, see ``expand_sweep``) each parameter combination
    is its own run with a new id (a name is either swept or given in ``parameters``, not
    both).  ``root`` is the results root (default
    ``results.results_dir()``).  Each run's context.json is captured before its first
    notebook and then tracks the run's progress (``status``, ``planned``, ``finished``).

    Returns the executed copies' paths.  Stops at the first failure with
    ``NotebookExecutionError`` naming the notebook and its partially executed copy, and at
    Ctrl-C with ``RunInterrupted``; ``resume_run`` finishes either.
    """
    parameters = dict(parameters or {})
    if reserved := [k for k in _RESERVED if k in parameters]:
        raise ValueError(f"{reserved} are set by run_notebooks' own arguments, not parameters")
    if sweep is None:
        sweep_notebooks, combos = [], [{}]
    else:
        if run_id is not None:
            raise ValueError("a sweep gives every combination its own run id; drop run_id")
        sweep_notebooks, combos = load_sweep(sweep)
        if clash := sorted({k for c in combos for k in c} & (parameters.keys() | set(_RESERVED))):
            raise ValueError(f"parameters {clash} are both swept and given directly")
    specs = notebooks or sweep_notebooks
    paths = [resolve_notebook(n) for n in specs] if specs else discover()
    if not paths:
        raise ValueError(f"no notebooks to run (none given, none found in {NOTEBOOK_DIR})")

    root_dir = results.results_dir(root).resolve()
    jobs = []
    for combo in combos:
        rid = results.new_run_id() if run_id is None else run_id
        for nb in paths:
            out = results.run_dir(rid, root_dir) / f"{nb.stem}.ipynb"
            if out.exists():
                # Re-executing into the same run would append duplicate rows to its tables.
                raise ValueError(f"{nb.stem} was already executed in run {rid} ({out}); "
                                 f"to finish an interrupted or failed run: {resume_command(rid)}")
            jobs.append(_Job(rid, {**parameters, **combo}, nb, quick))
    return _run_jobs(jobs, root_dir, progress)


def _still_running(ctx: dict) -> int | None:
    """The pid of the ``python -m ryzlab run`` still executing this run, if there is one."""
    pid = ctx.get("pid")
    if ctx.get("status") != "running" or not isinstance(pid, int) or pid == os.getpid():
        return None
    if ctx.get("hostname") not in (None, socket.gethostname()):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if b"ryzlab" in cmdline else None


def resume_run(
    run_id: str,
    progress: bool = True,
    root: str | os.PathLike | None = None,
) -> list[Path]:
    """Finish an interrupted, failed or killed run: execute the notebooks it planned but did
    not finish, with the parameters and quick flag recorded in its context.json.

    Each is executed cleanly: its partial or failed copy is removed and the rows it had
    written to the run's tables are dropped first (``results.discard_rows``), so the
    finished run's tables equal an uninterrupted run's.  Returns the executed copies; a
    complete run returns ``[]``.
    """
    root_dir = results.results_dir(root).resolve()
    try:
        ctx = results.read_context(run_id, root_dir)
    except FileNotFoundError:
        raise ValueError(f"no run {run_id!r} under {root_dir / 'runs'}") from None
    planned = ctx.get("planned")
    if not planned:
        raise ValueError(f"run {run_id} was not started by `python -m ryzlab run` (its "
                         "context.json lists no planned notebooks); nothing to resume")
    if pid := _still_running(ctx):
        raise ValueError(f"run {run_id} is still running (pid {pid}); stop it first")
    finished = set(ctx.get("finished") or [])
    jobs = []
    for name in (n for n in planned if n not in finished):
        path = Path((ctx.get("notebook_paths") or {}).get(name, NOTEBOOK_DIR / f"{name}.ipynb"))
        if not path.is_file():
            raise ValueError(f"run {run_id} needs notebook {name}, but {path} is gone")
        jobs.append(_Job(run_id, dict(ctx.get("parameters") or {}), path, bool(ctx.get("quick"))))
    if not jobs:
        if ctx.get("status") != "complete":
            results.update_context(run_id, root_dir, status="complete", current=None,
                                   updated=_now())
        return []
    return _run_jobs(jobs, root_dir, progress)


def cli(args: argparse.Namespace) -> int:
    """The ``run`` command (parser in ryzlab.cli)."""
    try:
        if args.resume:
            if args.notebooks or args.param or args.quick or args.sweep or args.run_id:
                raise ValueError("--resume reruns the run's own notebooks with its recorded "
                                 "parameters and quick flag; give nothing else")
            executed = resume_run(args.resume)
            if not executed:
                print(f"run {args.resume} is complete; nothing to resume", file=sys.stderr)
        else:
            executed = run_notebooks(
                args.notebooks or None,
                parameters=parse_parameters(args.param or []),
                quick=args.quick, run_id=args.run_id, sweep=args.sweep,
            )
    except RunInterrupted as exc:
        print(f"ryzlab run: {exc}", file=sys.stderr)
        return 130
    except (NotebookExecutionError, ValueError, FileNotFoundError) as exc:
        print(f"ryzlab run: error: {exc}", file=sys.stderr)
        return 1
    for path in executed:
        print(path)
    return 0
