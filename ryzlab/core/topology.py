"""Machine topology as this process sees it: CPU model, physical cores, cache sizes.

Read from /proc and /sys; everything degrades to a fallback rather than failing.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

_SYS_CPU = Path("/sys/devices/system/cpu")
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
