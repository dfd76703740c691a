"""``python -m ryzlab``: info, bench, and the workbench commands (run, report)."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from collections.abc import Sequence

from . import _native
from .errors import RyzlabError


def _shape(text: str) -> tuple[int, int]:
    try:
        m, k = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape must look like MxK (e.g. 6912x2560), got {text!r}") from None
    if m < 1 or k < 1:
        raise argparse.ArgumentTypeError(f"shape dimensions must be >= 1, got {text!r}")
    return m, k


def int_at_least(low: int):
    """An argparse type: an int >= ``low`` (subcommands of other modules use it too)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


_positive = int_at_least(1)


def cmd_info(args: argparse.Namespace) -> int:
    from .context import physical_cores, run_context
    from .kernels import kernels, registry, resolve

    ctx = run_context()
    available = kernels()
    chosen = resolve(None).name
    info = {
        "cpu_model": ctx.get("cpu_model"),
        "cpu_features": ctx.get("cpu_features"),
        "physical_cores": physical_cores(),
        "kernels_available": available,
        "kernel_chosen": chosen,
        "registry": [
            {"name": k.name, "isa": k.isa, "method": k.method, "features": "+".join(k.features),
             "format": k.format, "bits_per_weight": k.bits_per_weight, "rank": k.rank, "supported": k.supported}
            for k in registry()
        ],
        "library": str(_native.library_path()),
        "build": _native.build_info(),
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    features = ", ".join(f for f, on in (info["cpu_features"] or {}).items() if on) or "baseline x86-64"
    print(f"CPU            {info['cpu_model']} ({info['physical_cores']} physical cores)")
    print(f"features       {features}")
    print(f"kernel chosen  {chosen}")
    print(f"library        {info['library']}")
    print(f"build          {info['build']}")
    print("\nkernels (dispatch order for the runnable ones):")
    print(f"  {'name':16} {'isa':7} {'method':6} {'format':12} {'bits/w':>6}  {'needs':42} runnable")
    by_rank = sorted(info["registry"], key=lambda r: (not r["supported"], -r["rank"]))
    for r in by_rank:
        print(f"  {r['name']:16} {r['isa']:7} {r['method']:6} {r['format']:12} {r['bits_per_weight']:6.1f}  "
              f"{r['features'] or '-':42} {'yes' if r['supported'] else 'no'}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import numpy as np

    from .harness import ReadBench, time_gemm, time_gemm_vs_bandwidth
    from .kernels import kernels

    names = kernels() if args.kernel == "all" else [args.kernel]
    m, k = args.shape
    rows = []
    probe = ReadBench(threads=args.threads) if args.bandwidth else None
    for name in names:
        if probe:
            t = time_gemm_vs_bandwidth(name, m, k, N=args.n, threads=args.threads, schedule=args.schedule,
                                       samples=args.samples, seed=args.seed, probe=probe)
        else:
            t = time_gemm(name, m, k, N=args.n, threads=args.threads, schedule=args.schedule,
                          cold=args.cold, samples=args.samples, seed=args.seed)
        rows.append(t.row)
    bandwidth = {"gbps": float(np.median([r["read_gbps"] for r in rows])), "threads": args.threads} if probe else None
    if args.json:
        print(json.dumps({"bandwidth": bandwidth, "results": rows}, indent=2))
        return 0
    if bandwidth:
        print(f"DRAM read bandwidth ({args.threads} thread(s)), sampled between the kernel's samples: "
              f"{bandwidth['gbps']:.1f} GB/s; % of read BW is the median of per-pair ratios")
    print(f"{'kernel':16} {'M x K':>11} {'N':>4} {'thr':>3} {'cache':5} {'median':>10} {'spread':>7} "
          f"{'GB/s':>7} {'GOPS':>8}" + ("  % of read BW" if bandwidth else ""))
    for r in rows:
        flag = " !" if r["unstable"] else ""
        print(f"{r['kernel']:16} {r['M']:>5}x{r['K']:<5} {r['N']:>4} {r['threads']:>3} {r['cache_state']:5} "
              f"{r['median_s'] * 1e6:>8.1f}us {100 * r['spread']:>6.1f}% {r['gbps']:>7.2f} {r['gops']:>8.1f}"
              + (f"  {r['pct_of_read_bw']:>6.1f}%" if bandwidth else "") + flag)
    if any(r["unstable"] for r in rows):
        print("! unstable: interquartile spread above 10 % of the median")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ryzlab",
        description="ryzlab: performance research workbench for ternary (BitNet b1.58) kernels.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="CPU, kernels available and chosen, library and build flags")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "bench",
        help="time one kernel (timing loop in C, cold weights for N = 1)",
        description="Time a kernel on random ternary weights; the output is checked against the "
        "numpy oracle before timing.  Example: python -m ryzlab bench --kernel all --shape 6912x2560 "
        "--n 1 --bandwidth",
    )
    p.add_argument("--kernel", default=None, help="kernel name, or 'all' for every runnable kernel "
                   "(default: dispatch's choice)")
    p.add_argument("--shape", type=_shape, default=(2560, 2560), metavar="MxK",
                   help="weight matrix rows x columns (default 2560x2560)")
    p.add_argument("--n", type=_positive, default=1, help="tokens (activation rows); 1 = decode GEMV")
    p.add_argument("--threads", type=_positive, default=1, help="OpenMP threads (default 1)")
    p.add_argument("--schedule", default="blocks", choices=["blocks", "dynamic1", "critical"],
                   help="threading schedule: ours (blocks) or the fix guide's two variants")
    cache = p.add_mutually_exclusive_group()
    cache.add_argument("--cold", dest="cold", action="store_const", const=True, default=None,
                       help="rotate weight copies beyond the last-level cache (default for N = 1)")
    cache.add_argument("--warm", dest="cold", action="store_const", const=False,
                       help="reuse one copy of the weights (cache-resident when it fits)")
    p.add_argument("--samples", type=_positive, default=10, help="timed samples, each >= 10 ms (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bandwidth", action="store_true",
                   help="also measure DRAM read bandwidth with the same threads and report %% of it")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_bench)

    # The workbench commands live with their modules; each adds its own subcommand.
    for module in ("runner", "report", "decode"):
        if importlib.util.find_spec(f"ryzlab.{module}") is not None:
            importlib.import_module(f"ryzlab.{module}").add_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "bench" and args.kernel is None:
        from .kernels import resolve

        args.kernel = resolve(None).name
    try:
        return args.func(args) or 0
    except (RyzlabError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
