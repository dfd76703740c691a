"""The BitNet decoder (ryzlab.model) against its float reference, and the decode CLI.

Tolerance for logits: |model - reference| <= 1e-4 * max|reference logit|.  Both compute the
integer products exactly (int32 kernels vs float64 matmuls of the same int8 activations) and
the same float32 scalings, so they differ only where float32 ops are ordered differently:
RoPE (table vs angles computed on the fly) and attention (batched matmul vs a per-head loop),
about 1e-7 relative.  Such a difference can, rarely, move one int8 activation across a
rounding boundary (+-1 out of 127), which changes logits by ~1e-5 relative; 1e-4 covers that
with margin while a packing, fusion, RoPE or cache error is O(1) relative.  The greedy
tokens must match exactly, and one GEMV's int32 output is checked bit-exact per kernel.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import ryzlab
from ryzlab.core import native as _native_mod
from ryzlab import cli
from ryzlab.core import quant
from ryzlab.model import decoder as model_mod
from ryzlab.errors import RyzlabError
from ryzlab.model.ops import MIN_ABSMAX as _MIN_ABSMAX, rmsnorm as _rmsnorm
from ryzlab.model import CONFIGS, Model
from ryzlab.model.weights import TERNARY_PROBABILITIES, random_ternary

RTOL = 1e-4
STEPS = 32


@pytest.fixture(scope="module")
def reference_run():
    """Reference logits and greedy tokens of tiny for STEPS steps from token 7."""
    ref = Model.reference("tiny", seed=3, max_context=64)
    logits, tokens, tok = [], [], 7
    for _ in range(STEPS):
        lg = ref.step(tok)
        tok = int(np.argmax(lg))
        logits.append(lg)
        tokens.append(tok)
    return logits, tokens


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kernel", ryzlab.kernels())
def test_step_matches_reference(kernel, threads, reference_run):
    ref_logits, ref_tokens = reference_run
    m = Model.generate("tiny", seed=3, kernel=kernel, max_context=64)
    assert m.kernel == kernel
    tok, tokens = 7, []
    for i in range(STEPS):
        lg = m.step(tok, threads)
        assert lg.dtype == np.float32 and lg.shape == (CONFIGS["tiny"].vocab,)
        err = np.abs(lg - ref_logits[i]).max()
        assert err <= RTOL * np.abs(ref_logits[i]).max(), f"step {i}: max |diff| {err}"
        tok = int(np.argmax(lg))
        tokens.append(tok)
    assert tokens == ref_tokens
    # The last down projection's int32 output is exact against the dense weights.
    ref = Model.reference("tiny", seed=3)
    w_down = ref.layers[-1]["down"][0]
    np.testing.assert_array_equal(m.layers[-1]["down"].y, (w_down @ m._xf.astype(np.float64)).astype(np.int32))


def test_attention_splits_and_threads_agree_exactly():
    """Attention's two work splits (tiny has 2 KV heads: 1 thread takes (position, KV head)
    items, 2 and 3 threads the phases split) and every thread count, 64 on this machine's cores
    included (row tiles claimed by whichever thread gets there), give the same bits."""
    out = []
    for threads in (1, 2, 3, 64):
        m = Model.generate("tiny", seed=3, max_context=64)
        out.append(np.stack([m.step(t, threads) for t in (7, 1, 2, 3, 4, 5)]))
    for other in out[1:]:
        np.testing.assert_array_equal(out[0], other)


def test_generate_tokens_is_greedy_and_matches_reference():
    m = Model.generate("tiny", seed=1, max_context=32)
    ref = Model.reference("tiny", seed=1, max_context=32)
    out = m.generate_tokens([1, 2, 3], 10, threads=2)
    assert out == ref.generate_tokens([1, 2, 3], 10)
    assert m.pos == 3 + 10 - 1  # the last new token is not fed back
    assert all(isinstance(t, int) and 0 <= t < CONFIGS["tiny"].vocab for t in out)


def _f32(a):
    return _native_mod.ptr(a, "float")


def test_fused_norm_quant_matches_numpy():
    """C RMSNorm + quantisation against _rmsnorm + quant.quantize_activations: the sum of
    squares is accumulated in double in C and in float32 by numpy's dot, so the norm factor,
    and with it the scale, may differ by a few float32 ulps (relative 1e-6), and an int8 value
    by one, rarely."""
    lib, ffi = _native_mod.lib(), _native_mod.ffi
    rng = np.random.default_rng(0)
    scale = ffi.new("float *")
    cases = [rng.standard_normal(257).astype(np.float32) * s for s in (1e-7, 1e-3, 1.0, 1e3)]
    cases += [np.zeros(200, np.float32), np.arange(-100, 100, dtype=np.float32) / 2.0]
    for x in cases:
        w = (1 + 0.02 * rng.standard_normal(x.size)).astype(np.float32)
        q = np.empty(x.size, np.int8)
        lib.ryz_rmsnorm_quant(_f32(x), _f32(w), x.size, 1e-5, _MIN_ABSMAX, _native_mod.ptr(q, "signed char"), scale)
        q_ref, s_ref = quant.quantize_activations(_rmsnorm(x, w, 1e-5))
        assert abs(scale[0] - float(s_ref)) <= 1e-6 * float(s_ref)
        diff = np.abs(q.astype(int) - q_ref)
        assert diff.max() <= 1 and (diff > 0).mean() <= 0.01


def test_fused_dequant_steps_are_bit_exact():
    lib = _native_mod.lib()
    rng = np.random.default_rng(1)
    n = 301
    y = rng.integers(-(2**20), 2**20, 2 * n, dtype=np.int32)
    rs = rng.uniform(0.01, 0.1, 2 * n).astype(np.float32)
    xs = np.float32(3.7)
    expected = y.astype(np.float32) * (rs / xs)
    out = np.empty(2 * n, np.float32)
    lib.ryz_dequant(_native_mod.ptr(y, "int"), _f32(rs), float(xs), 2 * n, _f32(out), 0)
    np.testing.assert_array_equal(out, expected)
    h = rng.standard_normal(2 * n).astype(np.float32)
    h_expected = h + expected
    lib.ryz_dequant(_native_mod.ptr(y, "int"), _f32(rs), float(xs), 2 * n, _f32(h), 1)
    np.testing.assert_array_equal(h, h_expected)
    gate, up = expected[:n].copy(), expected[n:]
    np.maximum(gate, 0, out=gate)
    f = np.empty(n, np.float32)
    lib.ryz_dequant_sqrelu_gate(_native_mod.ptr(y, "int"), _f32(rs), float(xs), n, _f32(f))
    np.testing.assert_array_equal(f, gate * gate * up)


def test_ternary_distribution():
    w = random_ternary(np.random.default_rng(0), 1000, 1000)
    assert w.dtype == np.int8 and w.shape == (1000, 1000)
    for v, p in TERNARY_PROBABILITIES.items():
        assert abs((w == v).mean() - p) < 0.002
    assert abs(TERNARY_PROBABILITIES[0] - 0.31) < 0.01 and TERNARY_PROBABILITIES[1] == TERNARY_PROBABILITIES[-1]


def test_weights_depend_on_seed_not_kernel():
    kernels = ryzlab.kernels()
    a = Model.generate("tiny", seed=5, kernel=kernels[0], max_context=8)
    b = Model.generate("tiny", seed=5, kernel=kernels[-1], max_context=8)
    c = Model.generate("tiny", seed=6, kernel=kernels[0], max_context=8)
    la, lb, lc = a.step(3), b.step(3), c.step(3)
    assert np.abs(la - lb).max() <= RTOL * np.abs(la).max()
    assert not np.allclose(la, lc)


def test_context_handling():
    cfg = CONFIGS["tiny"]
    m = Model.generate("tiny", seed=0, max_context=4)
    assert m.k_cache.shape == (cfg.layers, cfg.kv_heads, 4, cfg.head_dim)
    cache = m.k_cache
    first = m.step(1)
    for _ in range(3):
        m.step(1)
    assert m.pos == 4 and m.k_cache is cache  # written in place, never reallocated
    with pytest.raises(RyzlabError, match="context is full"):
        m.step(1)
    m.reset()
    assert m.pos == 0
    np.testing.assert_array_equal(m.step(1), first)  # same token at position 0: same logits
    with pytest.raises(RyzlabError, match="max_context"):
        m.generate_tokens([1, 2], 4)  # needs 5 positions from position 1
    m.prefill_synthetic(2, seed=0)
    assert m.pos == 2 and np.abs(m.k_cache[:, :, :2]).sum() > 0
    with pytest.raises(ValueError, match="context"):
        m.prefill_synthetic(4)
    for bad in (-1, cfg.vocab):
        with pytest.raises(ValueError, match="token"):
            m.step(bad)
    with pytest.raises(TypeError, match="token"):
        m.step(1.0)


def test_bytes_per_token_and_timings():
    cfg = CONFIGS["tiny"]
    m = Model.generate("tiny", seed=0, max_context=16)
    b0 = m.bytes_per_token()
    assert b0["ternary"] == sum(L[n].packed.nbytes for L in m.layers for n in ("qkv", "o", "gate_up", "down"))
    assert b0["ternary"] >= cfg.ternary_weights * 2 / 8  # at least 2 bits per weight
    assert b0["head"] == m.head.nbytes >= cfg.vocab * cfg.hidden
    per_pos = cfg.layers * 2 * cfg.kv_heads * cfg.head_dim * 4
    assert b0["kv"] == per_pos  # the first step reads its own key and value
    m.step(1)
    m.step(2)
    assert m.bytes_per_token()["kv"] == 3 * per_pos
    assert b0["total"] == b0["ternary"] + b0["head"] + b0["kv"]
    assert set(m.timings) == {"ternary_gemv", "attention", "lm_head", "other"} and m.steps == 2
    assert all(v >= 0 for v in m.timings.values()) and m.timings["ternary_gemv"] > 0
    m.reset_timings()
    assert m.steps == 0 and sum(m.timings.values()) == 0


def test_configs_and_reference_refusal():
    c = CONFIGS["bitnet-2b-4t"]
    assert c.ternary_weights == 2_084_044_800  # design.md section 7: 2.084 billion
    assert (c.q_out, c.kv_out, c.group) == (2560, 640, 4)
    for cfg in CONFIGS.values():
        assert cfg.head_dim % 2 == 0 and cfg.heads * cfg.head_dim == cfg.hidden
    with pytest.raises(ValueError, match="tiny"):
        Model.reference("bitnet-2b-4t")
    with pytest.raises(ValueError, match="unknown model 'nope'.*bitnet-2b-4t"):
        Model.generate("nope")


KEYS = {"model", "kernel", "threads", "context", "tokens", "tok_s", "ms_per_token", "bytes_ternary", "bytes_head",
        "bytes_kv", "bytes_total", "read_gbps", "roofline_tok_s", "pct_of_roofline", "pct_ternary_of_read_bw",
        "peak_rss_bytes", "breakdown_ms", "breakdown_pct", "generation_s"}


def test_cli_decode_json():
    out = subprocess.run([sys.executable, "-m", "ryzlab", "decode", "--model", "tiny", "--tokens", "3", "--json",
                          "--threads", "1", "--context", "5"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert KEYS <= set(r)
    assert r["model"] == "tiny" and r["tokens"] == 3 and r["context"] == 5 and len(r["generated"]) == 3 + r["warmup"]
    reported = [r[k] for k in ("tok_s", "roofline_tok_s", "read_gbps")]
    assert all(np.isfinite(v) and v > 0 for v in reported)
    assert abs(sum(r["breakdown_pct"].values()) - 100) < 1e-6
    assert r["bytes_total"] == pytest.approx(r["bytes_ternary"] + r["bytes_head"] + r["bytes_kv"])


def test_cli_decode_bad_model(capsys):
    assert cli.main(["decode", "--model", "nope", "--tokens", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'nope'" in err and "bitnet-2b-4t" in err


def test_heads_agree_and_unknown_head_is_refused():
    """The f32 head is the exact float path; the int8 head approximates it closely."""
    f32, i8 = Model.generate("tiny", seed=3, head="f32"), Model.generate("tiny", seed=3, head="int8")
    for tok in (5, 17, 900):
        a, b = f32.step(tok), i8.step(tok)
        assert a.dtype == np.float32 and a.shape == (CONFIGS["tiny"].vocab,)
        assert np.max(np.abs(a - b)) < 0.05 * np.max(np.abs(a))
    assert f32.bytes_per_token()["head"] == 4 * CONFIGS["tiny"].vocab * CONFIGS["tiny"].hidden
    with pytest.raises(ValueError, match="head must be one of"):
        Model.generate("tiny", head="int3")


def test_int4_head_in_the_model():
    """The int4 head: kind, bytes, embedding rows from the packed head, logits close to f32."""
    from ryzlab.core.head import int4_reference, quantize_groups
    from ryzlab.model.heads import HEADS, INT4_GROUP, Int4LMHead, make_head
    from ryzlab.model.weights import RandomWeights

    cfg = CONFIGS["tiny"]
    assert "int4" in HEADS
    m = Model.generate("tiny", seed=3, head="int4")
    f32 = Model.generate("tiny", seed=3, head="f32")
    assert m.head.kind == "int4" and m.head.group == INT4_GROUP
    assert m.bytes_per_token()["head"] == m.head.nbytes < f32.head.nbytes / 4
    w = RandomWeights(cfg, 3).head_f32()
    q, s = quantize_groups(w, INT4_GROUP)
    np.testing.assert_array_equal(m.head.embedding_row(7), q[7] * np.repeat(s[7].astype(np.float32), INT4_GROUP)[:cfg.hidden])
    # the logits are the C GEMV over the quantised activations, divided by their scale
    h = np.random.default_rng(0).standard_normal(cfg.hidden).astype(np.float32)
    z = m.head.logits(h, m.final_norm, cfg.norm_eps, 2)
    np.testing.assert_array_equal(z, int4_reference(q, s, m.head._xq, INT4_GROUP) / np.float32(m.head._scale[0]))
    zf = f32.head.logits(h, f32.final_norm, cfg.norm_eps, 1)
    assert np.sqrt(np.mean((z - zf) ** 2)) < 0.3 * np.sqrt(np.mean(zf ** 2))
    assert len(m.generate_tokens([1, 2], 3, threads=2)) == 3
    # built from the int8 head where a source has only that, and from chunks when it has them
    class Int8Only:
        config, description, embedding_row = cfg, "int8 only", None

        def head_int8(self):
            return RandomWeights(cfg, 3).head_int8()

    np.testing.assert_array_equal(make_head("int4", Int8Only()).packed.data, m.head.packed.data)
    with pytest.raises(TypeError):
        Int4LMHead(np.zeros(3))
    # "int4-g64": the same head with groups of 64, fewer bytes
    g64 = Model.generate("tiny", seed=3, head="int4-g64")
    assert g64.head.kind == "int4-g64" and g64.head.group == 64 and "int4-g64" in HEADS
    assert g64.head.nbytes < m.head.nbytes
    q64, s64 = quantize_groups(w, 64)
    np.testing.assert_array_equal(g64.head.embedding_row(7), q64[7] * np.repeat(s64[7].astype(np.float32), 64)[:cfg.hidden])
    with pytest.raises(ValueError, match="head must be one of"):
        make_head("int4-g16", Int8Only())


def test_embedding_like_head_source():
    from ryzlab.model.weights import HEAD_BLOCK_ROWS, RandomWeights

    cfg = CONFIGS["tiny"]
    src = RandomWeights(cfg, 1, head_rows="embedding")
    w = src.head_f32()
    assert w.shape == (cfg.vocab, cfg.hidden) and w.dtype == np.float32
    np.testing.assert_array_equal(np.concatenate(list(src.head_f32_chunks())), w)
    assert all(c.shape[0] % 16 == 0 for c in list(src.head_f32_chunks())[:-1]) and HEAD_BLOCK_ROWS % 16 == 0
    q, s = src.head_int8()
    np.testing.assert_allclose(q * s[:, None], w, atol=float(s.max()))
    row_norms = np.linalg.norm(w, axis=1)
    assert row_norms.std() / row_norms.mean() > 0.1  # rows differ in scale, unlike a fixed-norm draw
    # the default random head is unchanged
    np.testing.assert_array_equal(RandomWeights(cfg, 1).head_int8()[0], RandomWeights(cfg, 1, "uniform").head_int8()[0])
    with pytest.raises(ValueError, match="head_rows"):
        RandomWeights(cfg, 1, head_rows="trained")


@pytest.mark.parametrize("feed", ["greedy", "random"])
def test_head_agreement_table(feed):
    from ryzlab.measure.head_accuracy import format_table, head_agreement

    rows = head_agreement("tiny", steps=12, heads=("int8", "int4-g64", "int4-g32", "f32"), feed=feed, threads=2)
    assert [r["head"] for r in rows] == ["int8", "int4-g64", "int4-g32", "f32"]
    for r in rows:
        assert 0.0 <= r["top1_agreement"] <= 1.0 and r["steps"] == 12
        assert 0.0 <= r["kl_median"] <= r["kl_max"] and r["kl_mean"] >= 0.0 and np.isfinite(r["kl_max"])
        assert 0.0 <= r["logit_rel_rmse"] < 0.5
    f32 = rows[3]  # the float head against itself: identical
    assert f32["top1_agreement"] == 1.0 and f32["kl_max"] < 1e-9 and f32["logit_rel_rmse"] == 0.0
    assert rows[2]["bits_per_weight"] < rows[0]["bits_per_weight"] and rows[1]["bytes"] <= rows[2]["bytes"]
    if feed == "random":
        assert rows[0]["distinct_tokens"] > 6
    assert "int4-g64" in format_table(rows)
    with pytest.raises(ValueError, match="unknown head"):
        head_agreement("tiny", steps=1, heads=("int3",))


def test_cli_decode_head_option():
    out = subprocess.run([sys.executable, "-m", "ryzlab", "decode", "--model", "tiny", "--tokens", "2", "--json",
                          "--threads", "1", "--head", "int4"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    m = Model.generate("tiny", head="int4")
    assert r["head"] == "int4" and r["bytes_head"] == m.head.nbytes
    assert r["bytes_total"] == pytest.approx(r["bytes_ternary"] + r["bytes_head"] + r["bytes_kv"])
    with pytest.raises(ValueError, match="head"):
        from ryzlab.measure.decode import measure_decode

        measure_decode(m, threads=1, tokens=1, head="int8")


@pytest.mark.parametrize("head", ["int8", "int4"])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_head_in_the_token_call_equals_the_python_head(head, threads):
    """The int8 and int4 heads run at the end of the token's C call (rows claimed by any
    thread, scaled in C); their logits are bit-identical to the head's own call on the same
    residual stream, and the caller keeps its copy when the next step runs."""
    m = Model.generate("tiny", seed=5, head=head, max_context=16)
    first = m.step(3, threads)
    kept = first.copy()
    for tok in (1, 4, 2):
        got = m.step(tok, threads)
        want = m.head.logits(m._h, m.final_norm, m.config.norm_eps, threads)
        np.testing.assert_array_equal(got, want)
        assert m.last_timings["lm_head"] > 0
    np.testing.assert_array_equal(first, kept)


def test_token_call_refuses_a_bad_head():
    """A tampered head description is refused before any thread starts."""
    from ryzlab.errors import KernelCallError

    m = Model.generate("tiny", seed=5, head="int8", max_context=16)
    h = m._token.head
    for field, value in (("kind", 7), ("logits_len", 3), ("packed_bytes", 5), ("row_scales", _native_mod.ffi.NULL)):
        old = getattr(h, field)
        setattr(h, field, value)
        with pytest.raises(KernelCallError):
            m.step(1, 2)
        setattr(h, field, old)
    h.act.in_len = 3  # the residual stream shorter than hidden
    with pytest.raises(KernelCallError):
        m.step(1, 2)
    h.act.in_len = m.config.hidden
    m.reset()
    assert np.isfinite(m.step(1, 2)).all()
