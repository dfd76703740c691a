"""A/B builds of libryzlab.so in one process: a decode token's C calls, alternating.

    make build LIBDIR=/tmp/a OBJDIR=/tmp/a/obj EXTRA_CFLAGS=-DRYZ_CHUNK_BYTES=16384
    make build LIBDIR=/tmp/b OBJDIR=/tmp/b/obj
    .venv/bin/python tools/ab_libs.py /tmp/a/libryzlab.so /tmp/b/libryzlab.so --kernel mad_t5_avx512vnni

Generates the model once (random weights, the package's own library), then times one part of
a token through each library in turn, the order reversed every other round: ``--part
layers``, ``ryz_decode_steps`` over all the layers (ternary GEMVs with their norms and
epilogues, and attention at position ``--pos``), or ``--part head``, the LM head's GEMV
(``--head int8``, ``int4`` or ``int4-g64``).  ``--cold`` reads twice the last-level cache between calls: on
a host whose L3 holds much of the part (the 2B-4T int4 head is 185 MB; an Emerald Rapids VM
reports a 300 MiB L3) back-to-back calls time a half-warm cache, not DRAM.  Prints each library's median seconds, the median over rounds of
(first library's time / this one's), and the part's bytes per second.  Same-process alternation
cancels most of a shared host's drift, which separate runs do not (the read bandwidth of this
project's VMs moves by 30 % within minutes).  Every library must have the ABI of the package's
``ryzlab.h`` (a build of the same tree with other -D knobs, or of a commit with the same
header).
"""

from __future__ import annotations

import argparse
import time

from collections.abc import Callable

import numpy as np

from ryzlab.core import native
from ryzlab.core.topology import last_level_cache_bytes
from ryzlab.measure.harness import ReadBench
from ryzlab.model import Model
from ryzlab.model.ops import MIN_ABSMAX


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("libs", nargs="+", help="paths of libryzlab.so builds (the first is the reference)")
    ap.add_argument("--model", default="bitnet-2b-4t")
    ap.add_argument("--kernel", default=None, help="kernel name (default: dispatch's choice)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pos", type=int, default=10, help="KV position the attention runs at")
    ap.add_argument("--part", choices=["layers", "head"], default="layers")
    ap.add_argument("--head", choices=["int8", "int4", "int4-g64"], default="int8")
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--cold", action="store_true", help="evict the caches before every timed call")
    args = ap.parse_args()

    m = Model.generate(args.model, seed=0, kernel=args.kernel, head=args.head, max_context=args.pos + 4)
    for _ in range(args.pos + 1):
        m.step(1, args.threads)  # fills the cache up to pos
    libs = [native.ffi.dlopen(p) for p in args.libs]
    chain, seconds, gemv = m._token, native.ffi.new("double[4]"), m.head._gemv
    entry = "ryz_head_gemv" if args.head == "int8" else "ryz_head4_gemv"

    def run(lib) -> int:
        if args.part == "head":
            return getattr(lib, entry)(*gemv._args, args.threads)
        return lib.ryz_decode_steps(chain.c, chain.count, native.ffi.NULL, args.pos, m.config.norm_eps, MIN_ABSMAX,
                                    args.threads, seconds)

    evict = cache_evictor(args.threads) if args.cold else (lambda: None)
    times: list[list[float]] = [[] for _ in libs]
    for r in range(args.rounds):
        order = list(range(len(libs))) if r % 2 == 0 else list(reversed(range(len(libs))))
        for i in order:
            evict()
            t = time.perf_counter()
            rc = run(libs[i])
            times[i].append(time.perf_counter() - t)
            native.check(rc, f"{args.part} through {args.libs[i]}")
    nbytes = m.bytes_per_token()["ternary" if args.part == "layers" else "head"]
    print(f"{args.model}, kernel {m.kernel}, {args.head} head, {args.threads} thread(s), part {args.part}"
          f"{f', attention at position {args.pos}' if args.part == 'layers' else ''}, {args.rounds} alternating rounds"
          f"{', caches evicted before each call' if args.cold else ''}")
    print_ratios(args.libs, times, nbytes)
    return 0


def cache_evictor(threads: int) -> Callable[[], None]:
    """A call that reads a buffer of twice the last-level cache on ``threads`` threads (one
    pass of the read probe's stream method), leaving the caches full of other data."""
    return ReadBench(threads, 2 * last_level_cache_bytes(), min_sample_s=0.0, method="streams").sample


def print_ratios(paths: list[str], times: list[list[float]], nbytes: float) -> None:
    """Per build: median seconds, the median over rounds of (first build's time / this one's),
    and ``nbytes`` per median time (shared with tools/ab_attention.py)."""
    ref = np.array(times[0])
    for path, t in zip(paths, times):
        t = np.array(t)
        print(f"{path:40s} median {1e3 * np.median(t):8.2f} ms   first/this {np.median(ref / t):.3f}   "
              f"{nbytes / np.median(t) / 1e9:5.1f} GB/s")


if __name__ == "__main__":
    raise SystemExit(main())
