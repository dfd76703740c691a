"""``python -m ryzlab``: the top layer.  Every subcommand imports its modules only when it runs,
so ``info`` and ``bench`` work without papermill or nbconvert importable."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

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


_RUN_EPILOG = """\
examples:
  python -m ryzlab run                          all notebooks, default parameters
  python -m ryzlab run --quick                  all notebooks, small sizes (minutes)
  python -m ryzlab run 01 03_threads            two notebooks by name prefix or name
  python -m ryzlab run notebooks/02_lut.ipynb   a notebook by path
  python -m ryzlab run 03 -p threads "[1,2,4]" -p kernel lut_avx2
  python -m ryzlab run 03 --sweep sweeps/threads.yaml

-p values are read as YAML: 4 is an int, [1,2] a list, true a bool; quote to keep a
string, e.g. -p tag "'01'".  A sweep file looks like
  notebooks: [03]                      # optional; notebooks on the command line win
  grid: {threads: [1, 2], kernel: [lut_avx2, mad_avx2]}   # Cartesian product, or
  runs: [{threads: 1}, {threads: 2, kernel: mad_avx2}]   # explicit list
and every combination becomes its own run.  Executed notebooks land in
results/runs/<run_id>/; build the HTML report afterwards with `python -m ryzlab report`.

Ctrl-C stops a run (exit code 130) and prints the command that finishes it:
  python -m ryzlab run --resume 20250101T120000.123Z-a1b2c3
"""


def _add_head(p: argparse.ArgumentParser) -> None:
    # the choices are ryzlab.model.heads.HEADS, restated so that --help needs no model import
    p.add_argument("--head", choices=("int8", "int4", "int4-g64", "f32"), default="int8",
                   help="LM head: int8 rows (default), int4 with fp16 scales per 32 weights (int4-g64: per "
                   "64, fewer bytes, less accurate), or the exact float32 head (as transformers)")


def _lazy(module: str):
    """A handler that imports ``module`` when the command runs and calls its ``cli(args)``."""

    def handler(args: argparse.Namespace) -> int:
        return importlib.import_module(module).cli(args)

    return handler


def cmd_info(args: argparse.Namespace) -> int:
    from .core import native as _native
    from .core.kernels import kernels, registry, resolve
    from .core.topology import physical_cores
    from .lab.record import run_context

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

    from .core.kernels import kernels
    from .measure.harness import ReadBench, time_gemm, time_gemm_vs_bandwidth

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


def _ids(text: str) -> list[int]:
    try:
        ids = [int(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"token ids must look like 1,2,3, got {text!r}") from None
    if not ids or min(ids) < 0:
        raise argparse.ArgumentTypeError(f"token ids must be non-negative integers, got {text!r}")
    return ids


def _nonnegative_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (v >= 0 and v != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return v


def cmd_generate(args: argparse.Namespace) -> int:
    from .model.sources import load
    from .model.text import TextStream, render_chat, special_token

    m = load(args.model, kernel=args.kernel, head=args.head, threads=args.threads, max_context=args.max_context)
    tok = m.tokenizer
    ck = m.checkpoint
    if args.prompt_ids is not None:
        ids = args.prompt_ids
    else:
        if tok is None:
            raise RyzlabError(f"{args.model} has no tokenizer: give the prompt as token ids, --prompt-ids 1,2,3")
        if args.chat:
            bos = special_token(tok, ck.config.bos_id if ck else None)
            eos = special_token(tok, ck.config.eos_ids[0] if ck and ck.config.eos_ids else None)
            text = render_chat(m.chat_template, [{"role": "user", "content": args.prompt}], bos_token=bos,
                               eos_token=eos)
            ids = tok.encode(text, add_special_tokens=False).ids
        else:
            ids = tok.encode(args.prompt).ids
    stop = set(ck.config.eos_ids) if ck is not None and not args.ignore_eos else set()
    if tok is not None and args.chat:
        eot = tok.token_to_id("<|eot_id|>")
        if eot is not None and not args.ignore_eos:
            stop.add(eot)
    stream = TextStream(tok) if tok is not None and args.prompt_ids is None else None
    out = []
    for t in m.generate(ids, args.max_tokens, temperature=args.temperature, top_k=args.top_k, seed=args.seed,
                        stream=True):
        if t in stop:
            break
        out.append(t)
        piece = stream.push(t) if stream else f"{t} "
        print(piece, end="", flush=True)
    print(stream.flush() if stream else "", flush=True)
    g = m.last_generation
    pp = g["prompt_tokens"] / g["prompt_s"] if g["prompt_s"] > 0 else float("nan")
    tg = g["decode_steps"] / g["decode_s"] if g["decode_s"] > 0 else float("nan")
    print(f"{m.config.name}: kernel {m.kernel}, head {m.head.kind}, {m._api_threads(None)} thread(s); "
          f"prompt {g['prompt_tokens']} tokens, generated {len(out)}", file=sys.stderr)
    print(f"pp {pp:.1f} tok/s ({g['prompt_tokens']} tokens in {g['prompt_s']:.3f} s)   "
          f"tg {tg:.1f} tok/s ({g['decode_steps']} tokens in {g['decode_s']:.3f} s)", file=sys.stderr)
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

    # The workbench commands: their modules (papermill, nbconvert, the model) load only when run.
    p = sub.add_parser(
        "run",
        help="execute the experiment notebooks with papermill",
        description="Execute notebooks (fresh kernel each, in order) and store the executed "
        "copies under results/runs/<run_id>/.",
        epilog=_RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("notebooks", nargs="*", metavar="NOTEBOOK",
                   help="path, name or name prefix (e.g. 01); default: all notebooks")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="set a notebook parameter (VALUE read as YAML); repeatable")
    p.add_argument("--quick", action="store_true",
                   help="pass quick=True: small sizes and few samples, for a fast check")
    p.add_argument("--sweep", metavar="FILE", help="YAML sweep; one run per combination")
    p.add_argument("--run-id", metavar="ID",
                   help="run id to use (default: a new timestamped id)")
    p.add_argument("--resume", metavar="RUN_ID",
                   help="finish an interrupted or failed run: execute the notebooks it did not "
                   "finish, with its recorded parameters (give no other arguments)")
    p.set_defaults(func=_lazy("ryzlab.lab.runner"))
    p = sub.add_parser(
        "report",
        help="build the self-contained HTML report of a run",
        description="Collect the outputs (figures, tables, text; no code) of a run's "
        "executed notebooks, the fix-sequence summary and the machine context into one "
        "HTML file.",
        epilog="examples:\n  python -m ryzlab report\n"
        "  python -m ryzlab report --run-id 20250101T120000.123Z-a1b2c3 --out /tmp/r.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run-id", metavar="ID",
                   help="run to report (default: the latest complete run; an incomplete "
                   "run's report opens with a banner saying what is missing)")
    p.add_argument("--out", metavar="PATH", type=Path,
                   help="output file (default: results/report.html)")
    p.set_defaults(func=_lazy("ryzlab.lab.report"))

    p = sub.add_parser(
        "decode",
        help="time greedy decode of a BitNet model shape (random weights) or checkpoint against its roofline",
        description="Generate a BitNet b1.58 model with random weights (or load a checkpoint: --model PATH), "
        "fill a synthetic KV cache of "
        "--context positions, and time --tokens greedy decode steps after warm-up.  Prints tok/s, "
        "bytes per token, the roofline from the DRAM read bandwidth measured in the same run at the "
        "same thread count, and the per-op breakdown.",
    )
    p.add_argument("--model", default="bitnet-2b-4t",
                   help="model shape (random weights): bitnet-2b-4t, bitnet-3b, bitnet-large, tiny; or a "
                   "checkpoint: Hugging Face directory or .gguf file (default bitnet-2b-4t)")
    p.add_argument("--threads", type=_positive, default=None, help="threads (default: physical cores)")
    p.add_argument("--tokens", type=_positive, default=16, help="timed tokens (default 16)")
    p.add_argument("--warmup", type=int_at_least(0), default=2,
                   help=f"untimed tokens first (default {2})")
    p.add_argument("--kernel", default=None, help="ternary kernel (default: dispatch's choice)")
    p.add_argument("--context", type=int_at_least(0), default=0, help="synthetic KV-cache length to decode at (default 0)")
    _add_head(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_lazy("ryzlab.measure.decode"))

    p = sub.add_parser(
        "bench-model",
        help="prompt processing (pp) and generation (tg) tok/s of a BitNet model shape, llama-bench style",
        description="Generate a BitNet b1.58 model with random weights, then per repetition: prefill "
        "--prompt random tokens (pp: GEMMs over the whole prompt) and decode --gen greedy tokens after "
        "it (tg).  Prints the median tok/s of each with its spread over repetitions, pp against the "
        "compute roofline (ternary MACs per token / the int8 MAC rate of the compute probe) and tg "
        "against the bandwidth roofline (bytes per token / DRAM read bandwidth), both probes measured "
        "in the same run at the same thread count.",
        epilog="examples:\n"
        "  python -m ryzlab bench-model --model bitnet-2b-4t --prompt 512 --gen 128 --threads 16\n"
        "  python -m ryzlab bench-model --model tiny --prompt 16 --gen 4 --reps 2 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default="bitnet-2b-4t",
                   help="model shape (bitnet-2b-4t, bitnet-3b, bitnet-large, tiny; random weights) or a "
                   "checkpoint directory / .gguf file (default bitnet-2b-4t)")
    _add_head(p)
    p.add_argument("--prompt", type=_positive, default=512, help="prompt tokens prefilled per repetition (default 512)")
    p.add_argument("--gen", type=_positive, default=128, help="tokens generated after the prompt (default 128)")
    p.add_argument("--threads", type=_positive, default=None, help="threads (default: physical cores)")
    p.add_argument("--kernel", default=None, help="ternary kernel (default: dispatch's choice)")
    p.add_argument("--reps", type=_positive, default=3, help="timed repetitions (default 3)")
    p.add_argument("--warmup", type=int_at_least(0), default=1, help="untimed repetitions first (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_lazy("ryzlab.measure.bench_model"))

    p = sub.add_parser(
        "generate",
        help="generate text with a real BitNet b1.58 checkpoint (or a random-weight shape)",
        description="Load a checkpoint (Hugging Face BitNet directory or GGUF file: I2_S, TQ2_0, TQ1_0), "
        "stream the generated text, then print prompt (pp) and generation (tg) tok/s on stderr.",
        epilog="examples:\n"
        "  python -m ryzlab generate --model bitnet-b1.58-2B-4T --prompt 'What is BitNet?' --chat\n"
        "  python -m ryzlab generate --model tests/fixtures/golden/tiny96 --prompt-ids 1,2,3 --max-tokens 8",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="checkpoint directory or .gguf file (or a shape name)")
    prompt = p.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", help="prompt text (needs the checkpoint's tokenizer)")
    prompt.add_argument("--prompt-ids", type=_ids, metavar="IDS", help="prompt as token ids, e.g. 1,2,3")
    p.add_argument("--max-tokens", type=_positive, default=64, help="new tokens at most (default 64)")
    p.add_argument("--threads", type=_positive, default=None, help="threads (default: physical cores)")
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the checkpoint's chat template")
    p.add_argument("--kernel", default=None, help="ternary kernel (default: dispatch's choice)")
    _add_head(p)
    p.add_argument("--temperature", type=_nonnegative_float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-k", type=_positive, default=None, help="sample from the k most likely tokens")
    p.add_argument("--seed", type=int, default=None, help="sampling seed")
    p.add_argument("--max-context", type=_positive, default=4096, help="KV cache positions (default 4096)")
    p.add_argument("--ignore-eos", action="store_true", help="do not stop at end-of-sequence tokens")
    p.set_defaults(func=cmd_generate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "bench" and args.kernel is None:
        from .core.kernels import resolve

        args.kernel = resolve(None).name
    try:
        return args.func(args) or 0
    except (RyzlabError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # `run` reports its own interruptions; this is any other moment
        print(f"ryzlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
