"""The machine's ceilings: read bandwidth and peak int8 multiply-accumulate / lookup rates.

Measured with C probes (``kernels_c/probe_*.c``), stored per machine under
``results/machine/<machine_id>/roofline.csv`` and reused by every experiment; pass
``recompute=True`` to measure again.  Rows are tidy: ``probe``, ``kind`` ("bandwidth" or
"compute"), ``level`` ("dram", "cache" or the ISA), ``threads``, ``value`` and ``unit``
("GB/s" for bandwidth; "Gop/s" for compute, where one op is one int8 multiply-accumulate or
one byte looked up).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import pandas as pd

from ..core import native as _native
from . import results
from ..core.topology import cache_sizes, cpu_model, physical_cores
from ..measure.harness import ComputeBench, read_bandwidth


def machine_id() -> str:
    """A stable name for this machine: host name plus a hash of CPU model and core count."""
    key = f"{cpu_model()}|{physical_cores()}|{os.uname().nodename}"
    return f"{os.uname().nodename}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _probe_rate(probe: str, threads: int, samples: int) -> dict:
    bench = ComputeBench(probe, threads)
    r = bench.summary([bench.sample() for _ in range(samples)])
    return {"value": r["gops"], "spread": r["spread"], "unstable": r["unstable"]}


def measure(threads: Sequence[int] | None = None, samples: int = 10) -> pd.DataFrame:
    """Measure every ceiling for each thread count (default: 1 and all physical cores)."""
    threads = sorted(set(threads or (1, physical_cores())))
    lib = _native.lib()
    l2 = cache_sizes().get("l2_bytes") or 1 << 20
    rows = []
    for t in threads:
        for level, nbytes in (("dram", None), ("cache", t * l2 // 2)):
            r = read_bandwidth(threads=t, nbytes=nbytes, samples=samples).row
            rows.append({"probe": f"read_{level}", "kind": "bandwidth", "level": level, "threads": t,
                         "value": r["gbps"], "unit": "GB/s", "spread": r["spread"], "unstable": r["unstable"],
                         "read_method": r["read_method"]})
        for i in range(lib.ryz_probe_count()):
            if not lib.ryz_probe_supported(i):
                continue
            name = _native.string(lib.ryz_probe_name(i))
            rows.append({"probe": name, "kind": "compute", "level": name.rsplit("_", 1)[-1], "threads": t,
                         "unit": "Gop/s", **_probe_rate(name, t, samples)})
    return pd.DataFrame(rows)


def path(root=None):
    """Where this machine's ceilings are stored."""
    return results.results_dir(root) / "machine" / machine_id() / "roofline.csv"


def load_or_measure(recompute: bool = False, threads: Sequence[int] | None = None, root=None,
                    samples: int = 10) -> pd.DataFrame:
    """This machine's stored ceilings, measuring (and storing) them if absent or asked to.

    Stored ceilings are reused only if they cover the requested thread counts.
    """
    p = path(root)
    wanted = set(threads or (1, physical_cores()))
    if p.exists() and not recompute:
        stored = pd.read_csv(p)
        if wanted <= set(stored["threads"]):
            return stored
    frame = measure(sorted(wanted), samples=samples)
    p.parent.mkdir(parents=True, exist_ok=True)
    results.atomic_write_text(p, frame.to_csv(index=False))
    return frame


def ceiling(roof: pd.DataFrame, probe: str, threads: int) -> float:
    """One ceiling's value (GB/s or Gop/s) at a thread count."""
    hit = roof[(roof["probe"] == probe) & (roof["threads"] == threads)]
    if hit.empty:
        raise KeyError(f"no {probe!r} ceiling at {threads} thread(s); measured: "
                       f"{sorted(set(zip(roof['probe'], roof['threads'])))}")
    return float(hit["value"].iloc[0])
