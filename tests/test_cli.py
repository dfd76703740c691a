"""python -m ryzlab: info and bench, human and JSON output, errors as exit code 2."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import ryzlab


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ryzlab", *args], capture_output=True, text=True, timeout=300)


def test_info_human_and_json():
    human = run("info")
    assert human.returncode == 0, human.stderr
    assert "kernel chosen" in human.stdout and ryzlab.kernels()[0] in human.stdout
    data = json.loads(run("info", "--json").stdout)
    assert data["kernel_chosen"] == ryzlab.kernels()[0]
    assert data["kernels_available"] == ryzlab.kernels()
    assert data["library"].endswith(".so") and "gcc" in data["build"]
    assert {"avx2", "avx512vnni"} <= set(data["cpu_features"])


def test_bench_json_small_shape():
    out = run("bench", "--kernel", "lut_scalar", "--shape", "64x256", "--n", "1", "--samples", "3", "--json")
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)["results"][0]
    assert row["kernel"] == "lut_scalar" and row["cache_state"] == "cold" and row["n_buffers"] > 1
    measured = [row[k] for k in ("median_s", "gbps", "gops")]
    assert all(math.isfinite(v) and v > 0 for v in measured) and row["n_samples"] == 3


def test_bench_with_bandwidth_human():
    out = run("bench", "--shape", "128x512", "--samples", "3", "--bandwidth")
    assert out.returncode == 0, out.stderr
    assert "% of read BW" in out.stdout and ryzlab.kernels()[0] in out.stdout


def test_bench_errors_are_clear():
    out = run("bench", "--kernel", "nope", "--shape", "8x8")
    assert out.returncode == 2 and "unknown kernel" in out.stderr
    out = run("bench", "--shape", "8by8")
    assert out.returncode == 2 and "MxK" in out.stderr


def test_bench_model_tiny_json_and_human():
    """Correctness of the command only (no timing asserts): keys, counts, finite positive rates."""
    out = run("bench-model", "--model", "tiny", "--prompt", "9", "--gen", "3", "--threads", "2", "--reps", "2",
              "--warmup", "0", "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    for key in ("pp_tok_s", "tg_tok_s", "pp_spread", "tg_spread", "threads", "kernel", "model", "bytes_per_token",
                "read_gbps", "tg_roofline_tok_s", "tg_pct_of_roofline", "macs_per_token", "compute_probe"):
        assert key in r, key
    assert r["model"] == "tiny" and r["prompt"] == 9 and r["gen"] == 3 and r["threads"] == 2 and r["reps"] == 2
    assert len(r["pp_samples_s"]) == 2 and len(r["generated"]) == 3
    assert all(math.isfinite(r[k]) and r[k] > 0 for k in ("pp_tok_s", "tg_tok_s", "read_gbps", "bytes_per_token"))
    if r["compute_probe"]:
        assert r["pp_ceiling_tok_s"] > 0 and r["compute_gmacs"] > 0
    human = run("bench-model", "--model", "tiny", "--prompt", "4", "--gen", "2", "--threads", "1", "--reps", "1")
    assert human.returncode == 0, human.stderr
    assert "pp4" in human.stdout and "tg2" in human.stdout and "tok/s" in human.stdout
    bad = run("bench-model", "--model", "nope", "--prompt", "4")
    assert bad.returncode == 2 and "unknown model" in bad.stderr


def test_head_choices_match_the_model():
    """--head is restated in the parser (no model import for --help): it must list the heads."""
    from ryzlab.cli import build_parser
    from ryzlab.model.heads import HEADS

    for command in (["decode"], ["bench-model"], ["generate", "--model", "m", "--prompt-ids", "1"]):
        for head in HEADS:
            assert build_parser().parse_args([*command, "--head", head]).head == head


def test_ctrl_c_is_one_line(monkeypatch, capsys):
    from ryzlab import cli

    def interrupted(args):
        raise KeyboardInterrupt

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser.set_defaults(func=interrupted)
    for action in parser._subparsers._group_actions[0].choices.values():
        action.set_defaults(func=interrupted)
    assert cli.main(["info"]) == 130
    assert capsys.readouterr().err.strip() == "ryzlab info: interrupted"
