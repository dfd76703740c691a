"""The record of a run: the machine and software context, captured once and stored as ``context.json``.

Everything here degrades to ``None`` rather than failing: a context with a gap is still
worth recording, and capture must work before the kernel library is built.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from ..core.topology import cache_sizes, cpu_model, physical_cores

_REPO_ROOT = Path(__file__).resolve().parents[2]
_VERSIONED = ("numpy", "pandas", "cffi", "matplotlib", "papermill")
_THREAD_ENV = ("OMP_NUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES", "RYZLAB_KERNEL")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(_REPO_ROOT), *args],
            capture_output=True, text=True, timeout=10, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _git_state() -> dict[str, object]:
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def _library() -> dict[str, object]:
    """Kernel library facts, None where unavailable (e.g. the library is not built)."""
    out: dict[str, object] = {
        "cpu_features": None, "kernels": None, "build_info": None,
        "compiler": None, "cflags": None, "library_sha256": None,
    }
    try:
        from ..core import native as _native
        from ..core.kernels import cpu_features, kernels

        out["cpu_features"] = cpu_features()
        out["kernels"] = kernels()
        info = out["build_info"] = _native.build_info()
        # build_info reads "<compiler>; flags: <flags>"; keep both halves for filtering.
        compiler, sep, flags = info.partition("; flags: ")
        out["compiler"] = compiler.strip()
        out["cflags"] = flags.strip() if sep else None
        library = Path(_native.library_path()).read_bytes()
        out["library_sha256"] = hashlib.sha256(library).hexdigest()
    except Exception:  # noqa: BLE001 - a failure here only leaves gaps in the record
        pass
    return out


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_context() -> dict:
    """Capture the context of a run as a JSON-serialisable dict.

    Keys: ``date`` (UTC ISO 8601), ``hostname``, ``platform``, ``cpu_model``,
    ``cpu_features``, ``kernels`` (runnable, dispatch's choice first), ``logical_cpus``
    (usable by this process), ``physical_cores``, ``l1d_bytes``/``l2_bytes``/``l3_bytes``,
    ``build_info``/``compiler``/``cflags``, ``library_sha256``, ``git_commit``,
    ``git_dirty``, ``versions`` (dict), ``env`` (thread-related environment variables).
    """
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "logical_cpus": len(os.sched_getaffinity(0)),
        "physical_cores": physical_cores(),
        **cache_sizes(),
        **_library(),
        **_git_state(),
        "versions": _versions(),
        "env": {name: os.environ.get(name) for name in _THREAD_ENV},
    }
