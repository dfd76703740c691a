"""A/B builds of libryzlab.so on decode attention alone: ``ryz_attention`` (one query position)
over every layer's KV cache of the 2B-4T shape, cold (the caches of 30 layers are far larger
than the last-level cache), alternating the builds round by round in one process.

    python tools/ab_attention.py build/a/libryzlab.so build/b/libryzlab.so --pos 2000 --threads 2

Prints, per build, the median time of one pass over the layers, the median of the per-round
time ratios against the first build, and the K and V bytes read per second.  The outputs of
all builds must be bit-identical (checked).  The order of the builds is reversed every other
round, as in tools/ab_libs.py.  Random caches and queries: attention's cost does
not depend on the values."""

from __future__ import annotations

import argparse
import time

import numpy as np

from ab_libs import print_ratios  # tools/ is the script's directory, first on sys.path
from ryzlab.core import native


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("libs", nargs="+", help="paths of libryzlab.so builds (the first is the reference)")
    ap.add_argument("--pos", type=int, default=2000, help="the query's position (it attends to pos + 1 rows)")
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    heads, kv_heads, d = 20, 5, 128  # bitnet-2b-4t
    maxc = args.pos + 1
    native.lib()  # the declarations
    ffi = native.ffi
    libs = [ffi.dlopen(p) for p in args.libs]
    rng = np.random.default_rng(0)
    k = [rng.standard_normal((kv_heads, maxc, d), dtype=np.float32) for _ in range(args.layers)]
    v = [rng.standard_normal((kv_heads, maxc, d), dtype=np.float32) for _ in range(args.layers)]
    q = rng.standard_normal(heads * d, dtype=np.float32)
    outs = [np.zeros(heads * d, np.float32) for _ in libs]
    ptr = lambda a: ffi.cast("float *", a.ctypes.data)  # noqa: E731

    def one_pass(lib, out) -> float:
        t = time.perf_counter()
        for kl, vl in zip(k, v):
            rc = lib.ryz_attention(ptr(q), q.size, heads * d, ptr(kl), kl.size, ptr(vl), vl.size, maxc, 1, args.pos,
                                   heads, kv_heads, d, ptr(out), out.size, heads * d, args.threads)
            if rc != 0:
                raise SystemExit(f"ryz_attention returned {rc}")
        return time.perf_counter() - t

    for lib, out in zip(libs, outs):
        one_pass(lib, out)  # warm-up: page faults, thread pool
    times = [[] for _ in libs]
    for r in range(args.rounds):
        order = range(len(libs)) if r % 2 == 0 else reversed(range(len(libs)))
        for i in order:
            times[i].append(one_pass(libs[i], outs[i]))
    for path, out in zip(args.libs, outs):
        if not np.array_equal(out, outs[0]):
            raise SystemExit(f"{path}: output differs from {args.libs[0]}")
    kv_bytes = 2 * args.layers * kv_heads * (args.pos + 1) * d * 4
    print(f"decode attention at position {args.pos}, {args.layers} layers, {args.threads} thread(s), "
          f"{args.rounds} alternating rounds, {kv_bytes / 1e6:.0f} MB of K and V per pass")
    print_ratios(args.libs, times, kv_bytes)


if __name__ == "__main__":
    main()
