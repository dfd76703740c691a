"""The notebooks' experiment modules (ryzlab.lab.exp_*): tables, columns and the logic of their
readings on tiny sizes.  Nothing here asserts a speed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ryzlab
from ryzlab import reference
from ryzlab.core import legacy
from ryzlab.core.kernels import info
from ryzlab.lab import exp_decode, exp_machine, exp_peers, exp_simd, exp_threads, exp_tmac
from ryzlab.measure import harness

FAST = 1e-4  # min_sample_s: calibrated samples this short keep the timed paths quick


@pytest.fixture
def small_llc(monkeypatch):
    """A 256 KiB last-level cache: "cold" buffers and DRAM probes shrink to a few MiB, so the
    timed paths run in a blink (what they measure is then cache, which these tests ignore)."""
    for module in (harness, exp_peers):
        monkeypatch.setattr(module, "last_level_cache_bytes", lambda: 256 << 10)


# --- harness / stats helpers the notebooks share ----------------------------------------

def test_compute_probe_names_a_known_probe_for_simd_kernels():
    from ryzlab.core import native
    lib = native.lib()
    probes = {native.string(lib.ryz_probe_name(i)) for i in range(lib.ryz_probe_count())}
    for k in ryzlab.registry():
        p = harness.compute_probe(k.name)
        if k.isa in ("avx2", "avx512") and k.method in ("lut", "mad"):
            assert p in probes, k.name
        else:
            assert p is None, k.name


def test_sampling_cuts_quick_runs_only():
    assert harness.sampling(False, 10) == (10, harness.MIN_SAMPLE_S)
    assert harness.sampling(True, 10) == (harness.QUICK_SAMPLES, harness.MIN_SAMPLE_S / 2)
    assert harness.sampling(True, 1) == (1, harness.MIN_SAMPLE_S / 2)


# --- 00 machine ------------------------------------------------------------------------

def _roof() -> pd.DataFrame:
    rows = []
    for t, dram, mac in ((1, 10.0, 50.0), (2, 15.0, 100.0)):
        rows += [{"probe": "read_dram", "kind": "bandwidth", "threads": t, "value": dram},
                 {"probe": "mac_maddubs_avx2", "kind": "compute", "threads": t, "value": mac},
                 {"probe": "lookup_pshufb_avx2", "kind": "compute", "threads": t, "value": mac / 2}]
    return pd.DataFrame(rows)


def test_decode_bound_from_ceilings():
    d = exp_machine.decode_bound(_roof(), 2)
    assert d["best"]["probe"] == "mac_maddubs_avx2" and d["best"]["gops"] == 100.0
    assert d["ridge"] == 10.0 and d["ridge_top"] == 200.0 / 15.0
    assert d["intensity"] == 16 / d["bits"]
    assert d["ceiling_tok_s"] == pytest.approx(15e9 / d["bytes_per_token"])
    assert d["weights_per_token"] == ryzlab.model.CONFIGS["bitnet-2b-4t"].ternary_weights


@pytest.mark.parametrize(("ridge", "word"), [(40.0, "memory-bound"), (2.0, "compute-bound"), (8.0, "at the ridge")])
def test_decode_regime(ridge, word):
    assert word in exp_machine.decode_regime(ridge, 8.0)


def test_context_summary_tolerates_gaps():
    table = exp_machine.context_summary({"cpu_features": {"avx2": True, "avx512f": False}, "l2_bytes": 2 << 20})
    assert list(table.columns) == ["", "value"] and len(table) == 9
    assert "? / 2048 / ?" in set(table["value"])


# --- 01 SIMD ---------------------------------------------------------------------------

def test_registry_and_tiers_tables():
    reg = exp_simd.registry_table()
    assert list(reg["rank"]) == sorted(reg["rank"], reverse=True)
    tiers = exp_simd.isa_tiers()
    assert list(tiers["CPU acts as"]) == list(exp_simd.TIERS)
    assert tiers["dispatch chooses"].iloc[0] in {k.name for k in ryzlab.registry() if k.isa == "scalar"}


def test_refused_under_a_cap():
    lines = exp_simd.refused_under("avx2", "avx512", 0)
    assert len(lines) == sum(k.isa == "avx512" for k in ryzlab.registry())
    assert all("UnsupportedKernelError" in line for line in lines)


def test_time_kernels_table(small_llc):
    names = list(dict.fromkeys([ryzlab.kernels()[0], *exp_simd.BASELINES]))
    df = exp_simd.time_kernels(names, [(64, 256, 1), (64, 256, 4)], 1, 2, FAST, 0)
    assert len(df) == 2 * len(names)
    assert {"case", "speedup_vs_scalar", "speedup_vs_ref", "dispatched", "pct_of_read_bw"}.issubset(df.columns)
    assert (df.loc[df["kernel"] == "lut_scalar", "speedup_vs_scalar"] == 1).all()
    assert list(df["case"].unique()) == ["64×256", "64×256 N=4"]
    assert df.loc[df["N"] == 4, "pct_of_read_bw"].isna().all()


# --- 02 T-MAC --------------------------------------------------------------------------

def test_numpy_twin_is_exact():
    w, x = harness.random_problem(7, 64, 3, 1)
    assert np.array_equal(exp_tmac.lut_gemm_numpy(w, x), reference.gemm(w, x))
    assert exp_tmac.activation_tables(x).shape == (3, 32, 16)


def test_encoding_errors_on_the_guide_shapes():
    cases = exp_tmac.error_cases(legacy.GUIDE_SHAPES, 0)
    assert len(cases) == len(legacy.GUIDE_SHAPES) + 5
    err = exp_tmac.encoding_errors(cases, exp_tmac.lut_kernels())
    assert len(err) == len(cases) * (len(exp_tmac.ENCODINGS) + len(exp_tmac.lut_kernels()))
    assert err.loc[err["source"] == "ryzlab", "exact"].all()
    assert exp_tmac.check_against_legacy(err, legacy.GUIDE_SHAPES, 0)
    assert not exp_tmac.check_against_legacy(err, [(8, 64, 4)], 0)


def test_table_sizes():
    sizes = exp_tmac.table_sizes({"a": [16, 64], "b": [32, 128]}, 3, exp_tmac.lut_kernels()[0])
    assert list(sizes["layer"]) == ["a", "b", "model (3 layers)"]
    a = sizes.iloc[0]
    assert a["guide_table_bytes"] == 16 * 8 * 256 * 4 and a["ryzlab_table_bytes"] == 16 * 64
    assert a["weight_bytes_2bit"] == 16 * 64 // 4 and a["workspace_bytes"] > 0
    assert sizes.iloc[-1]["ryzlab_table_bytes"] == 3 * (16 * 64 + 16 * 128)


def test_lut_vs_mad_summary(small_llc):
    speed, summary, bw = exp_tmac.lut_vs_mad([[64, 256]], 1, FAST, 0)
    pairs = [p for p in exp_tmac.LUT_MAD_PAIRS if set(p) <= set(ryzlab.kernels())]
    assert len(speed) == 4 * len(pairs) and bw > 0
    assert len(summary) == 2 * len(pairs)
    assert {"lut_speedup_over_mad", "lut_pct_of_read_bw", "mad_pct_of_read_bw"}.issubset(summary.columns)


@pytest.mark.parametrize(("cold", "warm", "verdict", "why"), [
    (1.0, 1.02, "same speed", "Neither state"),
    (1.0, 2.0, "same speed", "Warm, they differ"),
    (1.5, 1.5, "LUT faster", "same warm and cold"),
    (0.5, 0.25, "MAD faster", "narrows"),
    (2.0, 1.3, "LUT faster", "widens"),
])
def test_lut_vs_mad_reading(cold, warm, verdict, why):
    v, w = exp_tmac.lut_vs_mad_reading(cold, warm)
    assert verdict in v and why in w


# --- 03 threads ------------------------------------------------------------------------

def test_kernel_choice():
    dispatched, names = exp_threads.kernel_choice()
    assert dispatched == ryzlab.kernels()[0] == names[0] and len(names) == len(set(names))
    assert exp_threads.kernel_choice(["ref", "ref"]) == (dispatched, ["ref"])


def test_schedules_exact_and_compared(small_llc):
    name = ryzlab.kernels()[0]
    assert exp_threads.check_schedules_exact([name], [1, 2], 0, (37, 70, 3)) == [1, 2, 3]
    sch = exp_threads.schedule_comparison([name], [("gemm", 64, 256, 4)], [1, 2], 2, FAST, 0, 2)
    assert len(sch) == 2 * len(ryzlab.SCHEDULES)
    assert (sch.loc[sch["schedule"] == "blocks", "slowdown_vs_blocks"] == 1).all()
    assert {"default_threads", "case", "shape", "oversubscribed"} <= set(sch.columns)


def test_gemm_scaling_table(small_llc):
    names = [ryzlab.kernels()[0], "ref"]
    gem = exp_threads.gemm_scaling(names, [64, 256], [4], [1, 2], 2, FAST, 0, 1)
    assert len(gem) == 4
    one = gem[gem["threads"] == 1]
    assert (one["speedup_vs_1t"] == 1).all() and (one["efficiency"] == 1).all()
    assert gem.loc[gem["kernel"] == "ref", "probe_speedup"].isna().all()
    assert list(gem["oversubscribed"]) == [False, True, False, True]


def test_guide_report_verdicts():
    gb = pd.DataFrame({"kernel": ["k"] * 2, "schedule": ["blocks"] * 2, "threads": [1, 2], "time_ms": [2.0, 1.6],
                       "gops": [1.0, 1.25], "speedup_vs_1t": [1.0, 1.25], "efficiency": [1.0, 0.625]})
    text, verdicts = exp_threads.guide_report(gb)
    assert verdicts == {("k", "blocks"): (62.5, True, False)}
    assert "Scaling efficiency: 62.5%" in text and "not met" in text


# --- 04 decode -------------------------------------------------------------------------

def test_fix_sequence_and_breakdown_on_the_tiny_model(small_llc):
    fix, ctx = exp_decode.fix_sequence("tiny", 1, 1, [0, 4], 0)
    assert set(fix["step"]) <= set(exp_decode.GUIDE_CLAIMS) and fix["step"].iloc[0] == "before"
    assert fix["speedup_vs_before"].iloc[0] == 1 and list(ctx["context"]) == [0, 4]
    bd = exp_decode.breakdown({"fix": fix, "ctx": ctx})
    assert len(bd) == (len(fix) + len(ctx)) * len(ryzlab.model.TIMING_CATEGORIES)
    assert np.allclose(bd.groupby(["part", "step"])["pct"].sum(), 100)


# --- 05 peers --------------------------------------------------------------------------

def test_ratios_prefer_per_round_medians():
    df = pd.DataFrame({"system": ["ryzlab", "ryzlab", "llama.cpp", "numpy float32"],
                       "variant": ["k", "k", "TQ2_0", "BLAS GEMV"],
                       "scope": ["full decode", "ternary GEMVs only", "full decode", "ternary GEMVs only"],
                       "threads": [1, 1, 1, 1], "tok_s": [10.0, 40.0, 5.0, 4.0]})
    r = exp_peers.ratios(df, {("TQ2_0", 1): 1.5})
    assert list(r["ryzlab_over_peer"]) == [1.5, 10.0]


def test_decode_rounds_per_configuration(monkeypatch, small_llc):
    """Every ryzlab (kernel, head) gets its own rows (without llama.cpp: no GGUF), and the
    first one is what ratios() compares with."""
    monkeypatch.setattr(exp_peers, "SETTLE_S", 0.0)
    t5 = next(k for k in ryzlab.kernels() if info(k).bits_per_weight < 2)
    rows, per_round = exp_peers.decode_rounds("tiny", {}, [1], 2, 0, configs=[(None, "int8"), (t5, "int4")])
    assert per_round == {}
    assert list(rows["variant"].unique()) == [ryzlab.kernels()[0], f"{t5} + int4 head"]
    assert list(rows["head"].unique()) == ["int8", "int4"]
    full = rows[rows["scope"] == "full decode"].set_index("variant")["bytes_per_token"]
    assert full.iloc[1] < full.iloc[0]
    both = pd.concat([rows, pd.DataFrame({"system": ["llama.cpp"], "variant": ["TQ2_0"], "scope": ["full decode"],
                                          "threads": [1], "tok_s": [1.0]})], ignore_index=True)
    assert exp_peers.ratios(both, {})["ryzlab_over_peer"].iloc[0] == rows["tok_s"].iloc[0]


def test_settled_steps_interleave_in_rotation(monkeypatch):
    monkeypatch.setattr(exp_peers, "SETTLE_S", 0.0)
    order = []
    benches = {k: exp_peers._Settled(lambda k=k: order.append(k) or 1.0) for k in ("a", "b")}
    per = harness.interleave(benches, 3)
    assert order == ["a", "b", "b", "a", "a", "b"] and per == {"a": [1.0] * 3, "b": [1.0] * 3}


def test_numpy_gemv_rows(small_llc):
    rows = exp_peers.numpy_gemv(ryzlab.model.CONFIGS["tiny"], [1], 0)
    assert list(rows["system"]) == ["numpy float32"]
    assert rows["bytes_per_token"].iloc[0] == 4 * ryzlab.model.CONFIGS["tiny"].ternary_weights
