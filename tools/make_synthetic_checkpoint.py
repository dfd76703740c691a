"""Write a random BitNet b1.58 checkpoint in the Hugging Face layout; optionally measure
``ryzlab.load``'s peak RSS on it.

    .venv/bin/python tools/make_synthetic_checkpoint.py /tmp/bitnet-2b-4t-synthetic --config bitnet-2b-4t
    .venv/bin/python tools/make_synthetic_checkpoint.py /tmp/bitnet-2b-4t-synthetic --measure-only

The full 2B-4T shape is 1.18 GB on disk (write it under /tmp, never into the repository).
``--measure`` loads it in a fresh Python process (``ryzlab.load(dir)``, int8 head) and prints
its peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) next to the packed model bytes
(packed ternary matrices + the packed int8 head with its row scales), as JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

_MEASURE = r"""
import json, resource, sys, time
import ryzlab
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t = time.perf_counter()
m = ryzlab.load(sys.argv[1], kernel=sys.argv[2] if len(sys.argv) > 2 else None, head="int8")
load_s = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
tok = m.generate([1, 2, 3], 2, threads=1)
packed = m.ternary_bytes + m.head.nbytes
print(json.dumps({"path": sys.argv[1], "kernel": m.kernel, "load_s": round(load_s, 2),
                  "rss_before_load_bytes": rss0, "peak_rss_bytes": peak,
                  "peak_rss_after_2_tokens_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "packed_ternary_bytes": m.ternary_bytes, "packed_head_bytes": m.head.nbytes,
                  "packed_model_bytes": packed, "peak_over_packed": round(peak / packed, 3),
                  "peak_minus_interpreter_over_packed": round((peak - rss0) / packed, 3)}))
"""


def measure(path: Path, kernel: str | None = None) -> dict:
    cmd = [sys.executable, "-c", _MEASURE, str(path)] + ([kernel] if kernel else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--config", default="bitnet-2b-4t", help="a shape of ryzlab.model.CONFIGS (default bitnet-2b-4t)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--measure", action="store_true", help="then measure ryzlab.load's peak RSS on it")
    ap.add_argument("--measure-only", action="store_true", help="measure an existing checkpoint")
    ap.add_argument("--kernel", default=None, help="kernel to pack for when measuring (default: dispatch's)")
    args = ap.parse_args()
    if not args.measure_only:
        from ryzlab.model.synthetic import write_checkpoint

        t = time.perf_counter()
        d = write_checkpoint(args.out_dir, args.config, args.seed)
        size = (d / "model.safetensors").stat().st_size
        print(f"wrote {d} ({size / 1e9:.2f} GB) in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    if args.measure or args.measure_only:
        print(json.dumps(measure(args.out_dir, args.kernel), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
