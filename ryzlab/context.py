"""The machine and software context of a run, captured once and stored as ``context.json``.

Everything here degrades to ``None`` rather than failing: a context with a gap is still
worth recording, and capture must work before the kernel library is built.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import socket
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

_SYS_CPU = Path("/sys/devices/system/cpu")
_REPO_ROOT = Path(__file__).resolve().parent.parent
_VERSIONED = ("numpy", "pandas", "cffi", "matplotlib", "papermill")
_THREAD_ENV = ("OMP_NUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES", "RYZLAB_KERNEL")
_DEFAULT_LLC_BYTES = 32 * 1024 * 1024
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _parse_size(text: str) -> int:
    """Parse a sysfs cache size such as ``"32K"`` or ``"32768K"`` into bytes."""
    m = re.fullmatch(r"(\d+)\s*([KMG]?)i?B?", text.strip(), flags=re.IGNORECASE)
    if m is None:
        raise ValueError(f"unrecognised cache size {text!r}")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2).upper()]


def cpu_model() -> str | None:
    """The CPU's marketing name from /proc/cpuinfo (``None`` if unavailable)."""
    info = _read(Path("/proc/cpuinfo")) or ""
    m = re.search(r"^model name\s*:\s*(.+)$", info, flags=re.MULTILINE)
    return m.group(1).strip() if m else (platform.processor() or None)


def physical_cores() -> int:
    """Physical cores this process may run on (its affinity mask), not counting SMT siblings.

    Falls back to the number of usable logical CPUs when the topology is unreadable.
    """
    cpus = os.sched_getaffinity(0)
    cores = set()
    for cpu in cpus:
        topo = _SYS_CPU / f"cpu{cpu}" / "topology"
        package, core = _read(topo / "physical_package_id"), _read(topo / "core_id")
        if package is None or core is None:
            return len(cpus)
        cores.add((package, core))
    return len(cores)


def cache_sizes() -> dict[str, int | None]:
    """Sizes in bytes of CPU 0's caches: ``l1d_bytes``, ``l2_bytes``, ``l3_bytes`` (or None).

    These are the caches one core sees (on chiplet CPUs the L3 of its own complex).
    """
    sizes: dict[str, int | None] = {"l1d_bytes": None, "l2_bytes": None, "l3_bytes": None}
    for index in sorted((_SYS_CPU / "cpu0" / "cache").glob("index*")):
        level, kind, size = (_read(index / f) for f in ("level", "type", "size"))
        if level is None or kind is None or size is None or kind == "Instruction":
            continue
        key = "l1d_bytes" if level == "1" else f"l{level}_bytes"
        if key in sizes:
            sizes[key] = _parse_size(size)
    return sizes


def last_level_cache_bytes() -> int:
    """Size in bytes of the largest cache level CPU 0 sees; 32 MiB if unknown.

    Memory-bound benchmarks rotate over more weight bytes than this so that they measure DRAM.
    """
    known = [v for v in cache_sizes().values() if v is not None]
    return max(known) if known else _DEFAULT_LLC_BYTES


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
        import ryzlab
        from ryzlab import _native

        out["cpu_features"] = ryzlab.cpu_features()
        out["kernels"] = ryzlab.kernels()
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
