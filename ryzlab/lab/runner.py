"""Batch execution of the experiment notebooks with papermill.

Each notebook runs in a fresh kernel (papermill starts one per notebook), so thread settings
and imported state cannot leak from one experiment into the next.  Every notebook's
``parameters`` cell defines at least ``run_id = None`` and ``quick = False``; the runner
injects both, plus any ``-p NAME VALUE`` parameters.  The kernel's environment carries
``RYZLAB_RESULTS`` (absolute) so the notebook writes where the runner points.

Executed copies go to ``results/runs/<run_id>/<notebook>.ipynb``, next to the run's
``context.json``.  Execution is sequential and stops at the first failing notebook.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import papermill
import yaml
from papermill.exceptions import PapermillExecutionError
from tqdm import tqdm

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
    notebook.

    Returns the executed copies' paths.  Stops at the first failure with
    ``NotebookExecutionError`` naming the notebook and its partially executed copy.
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
                raise ValueError(f"{nb.stem} was already executed in run {rid} ({out})")
            jobs.append((rid, {**parameters, **combo}, nb, out))

    executed: list[Path] = []
    with _environ("RYZLAB_RESULTS", str(root_dir)):
        bar = tqdm(jobs, desc="notebooks", unit="nb", disable=not progress)
        for i, (rid, params, nb, out) in enumerate(bar):
            bar.set_postfix_str(f"{nb.stem} [{rid}]")
            if not (out.parent / "context.json").exists():
                ctx = {**run_context(), "quick": quick, "parameters": params}
                results.write_context(rid, ctx, root_dir)
            try:
                papermill.execute_notebook(
                    nb, out,
                    parameters={**params, "run_id": rid, "quick": quick},
                    kernel_name=KERNEL_NAME, language="python", cwd=nb.parent,
                    progress_bar=False,
                )
            except Exception as exc:
                bar.close()
                copy = f"partially executed copy: {out}" if out.exists() else "no copy written"
                skipped = ", ".join(n.stem for _, _, n, _ in jobs[i + 1:]) or "none"
                raise NotebookExecutionError(
                    f"notebook {nb.name} failed in run {rid}: {_describe(exc)}; {copy}. "
                    f"Stopped at the first failure; not run: {skipped}."
                ) from exc
            executed.append(out)
    return executed


def cli(args: argparse.Namespace) -> int:
    """The ``run`` command (parser in ryzlab.cli)."""
    try:
        executed = run_notebooks(
            args.notebooks or None,
            parameters=parse_parameters(args.param or []),
            quick=args.quick, run_id=args.run_id, sweep=args.sweep,
        )
    except (NotebookExecutionError, ValueError, FileNotFoundError) as exc:
        print(f"ryzlab run: error: {exc}", file=sys.stderr)
        return 1
    for path in executed:
        print(path)
    return 0
