"""The C pieces of a decode step (kernels_c/decode_steps.c, decode_ops.c) against the same
operations done one call at a time: a chain in one parallel region must give bit-identical
results to norm -> ryzlab.gemm -> dequant, for every kernel and thread count."""

from __future__ import annotations

import numpy as np
import pytest

import ryzlab
from ryzlab.core import native as _native
from ryzlab.core.kernels import cpu_features, limit_isa, resolve
from ryzlab.core.layer_ops import RopeAttention
from ryzlab.core.ops import DecodeChain, workspace_bytes
from ryzlab.errors import KernelCallError
from ryzlab.model.ops import MIN_ABSMAX as _MIN_ABSMAX

EPS = 1e-5


def _ptr(a: np.ndarray):
    return _native.ptr(a, {np.float32: "float", np.int8: "signed char", np.int32: "int",
                           np.uint8: "unsigned char"}[a.dtype.type])


def _steps(kernel: str, rng: np.random.Generator, ffn: int = 133):
    """A chain shaped like a layer's tail: h += o(norm h); f = gate(norm h); out = down(norm f),
    with K and M that are no multiple of any block.  ffn = 192, a multiple of every kernel's
    row tile, makes the gate|up halves whole tiles: the chain then claims them in pairs and
    gates in every thread (decode_steps.c); with 133 thread 0 gates after the barrier."""
    hidden, out_rows = 301, 57
    h = rng.standard_normal(hidden).astype(np.float32)
    f = np.zeros(ffn, np.float32)
    out = np.zeros(out_rows, np.float32)
    plan = [(h, hidden, h, "accumulate"), (h, 2 * ffn, f, "sqrelu_gate"), (f, out_rows, out, "store")]
    steps = []
    for x, M, dest, epilogue in plan:
        K = x.size
        w = rng.integers(-1, 2, size=(M, K), dtype=np.int8)
        steps.append({"in": x, "norm": (1 + 0.1 * rng.standard_normal(K)).astype(np.float32),
                      "xq": np.zeros(K, np.int8), "packed": ryzlab.pack(w, kernel),
                      "y": np.zeros(M, np.int32), "row_scales": rng.uniform(0.01, 0.1, M).astype(np.float32),
                      "out": dest, "epilogue": epilogue})
    return h, f, out, steps


def _run_chain(kernel: str, steps: list[dict], threads: int) -> None:
    """Through the package's DecodeChain, as the model runs it."""
    ws_bytes = max(workspace_bytes(resolve(kernel), s["packed"].M, 1, s["packed"].K) for s in steps)
    chain = DecodeChain([(s["in"], s["norm"], s["xq"], s["packed"], s["y"], s["row_scales"], s["out"], s["epilogue"])
                         for s in steps], np.zeros(ws_bytes, np.uint8))
    seconds = _native.ffi.new("double[4]")
    chain.run(0, EPS, _MIN_ABSMAX, threads, seconds)
    assert min(seconds) >= 0 and seconds[1] == seconds[2] == 0  # no attention step, no head


def _raw_chain(index: int, steps: list[dict], threads: int = 1) -> int:
    """Straight into C, with whatever the steps say (NULLs, bad codes, short lengths): the
    return code of ryz_decode_steps."""
    lib, ffi = _native.lib(), _native.ffi
    ws_bytes = max(lib.ryz_workspace_bytes(index, s["packed"].M, 1, s["packed"].K) for s in steps)
    ws = np.zeros(ws_bytes, np.uint8)
    c = ffi.new("ryz_decode_step[]", len(steps))
    keep = []
    codes = {"store": lib.RYZ_EPI_STORE, "accumulate": lib.RYZ_EPI_ACCUMULATE, "sqrelu_gate": lib.RYZ_EPI_SQRELU_GATE}
    for cs, s in zip(c, steps):
        for name in ("in", "norm", "xq", "y", "row_scales", "out"):
            a, where = s[name], cs.act if name in ("in", "norm", "xq") else cs
            setattr(where, name, ffi.NULL if a is None else _ptr(a))
            setattr(where, f"{name}_len", s.get(f"{name}_len", 0 if a is None else a.size))
            keep.append(a)
        cs.packed, cs.packed_bytes = _ptr(s["packed"].data), s.get("packed_bytes", s["packed"].nbytes)
        cs.ws, cs.ws_bytes = _ptr(ws), ws_bytes
        cs.kernel, cs.M, cs.K = index, s["packed"].M, s["packed"].K
        cs.epilogue = codes.get(s["epilogue"], s["epilogue"])
        cs.attn = s.get("attn", ffi.NULL)
    return lib.ryz_decode_steps(c, len(steps), ffi.NULL, s.get("pos", 0), EPS, _MIN_ABSMAX, threads,
                                ffi.new("double[4]"))


def _run_separately(kernel: str, steps: list[dict]) -> None:
    lib, ffi = _native.lib(), _native.ffi
    scale = ffi.new("float *")
    for s in steps:
        K, M = s["packed"].K, s["packed"].M
        assert lib.ryz_rmsnorm_quant(_ptr(s["in"]), _ptr(s["norm"]), K, EPS, _MIN_ABSMAX, _ptr(s["xq"]), scale) == 0
        y = ryzlab.gemm(s["packed"], s["xq"][None, :], threads=1)[0].astype(np.int32)
        if s["epilogue"] == "sqrelu_gate":
            assert lib.ryz_dequant_sqrelu_gate(_ptr(y), _ptr(s["row_scales"]), scale[0], M // 2, _ptr(s["out"])) == 0
        else:
            assert lib.ryz_dequant(_ptr(y), _ptr(s["row_scales"]), scale[0], M, _ptr(s["out"]),
                                   int(s["epilogue"] == "accumulate")) == 0


@pytest.mark.parametrize("ffn", [133, 192])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_chain_equals_separate_calls(kernel, threads, ffn):
    h, f, out, steps = _steps(kernel, np.random.default_rng(threads), ffn)
    h_ref, f_ref, out_ref, steps_ref = _steps(kernel, np.random.default_rng(threads), ffn)
    _run_chain(kernel, steps, threads)
    _run_separately(kernel, steps_ref)
    for got, want in ((h, h_ref), (f, f_ref), (out, out_ref)):
        np.testing.assert_array_equal(got, want)
    assert np.abs(out).max() > 0


def test_chain_rejects_bad_steps():
    kernel = resolve(None).name
    rng = np.random.default_rng(0)
    _, _, _, steps = _steps(kernel, rng)
    lib, ffi = _native.lib(), _native.ffi
    seconds = ffi.new("double[4]")
    assert lib.ryz_decode_steps(ffi.NULL, 1, ffi.NULL, 0, EPS, _MIN_ABSMAX, 1, seconds) < 0
    assert lib.ryz_decode_steps(ffi.new("ryz_decode_step[]", 9), 9, ffi.NULL, 0, EPS, _MIN_ABSMAX, 1, seconds) < 0
    assert lib.ryz_decode_steps(ffi.new("ryz_decode_step[]", 2), 1 << 20, ffi.NULL, 0, EPS, _MIN_ABSMAX, 1,
                                seconds) < 0
    index = resolve(kernel).index
    assert _raw_chain(index, steps) == 0
    assert _raw_chain(index, [dict(steps[0], epilogue=7)]) == lib.RYZ_EARG
    odd_gate = [dict(steps[2], epilogue="sqrelu_gate")]  # 57 rows: no gate|up halves
    assert _raw_chain(index, odd_gate) == lib.RYZ_EARG
    for name in ("in", "norm", "xq", "y", "row_scales", "out"):
        assert _raw_chain(index, [dict(steps[0], **{name: None})]) < 0, name
        assert _raw_chain(index, [dict(steps[0], **{f"{name}_len": 1})]) == lib.RYZ_EWS, name
    for bad in (steps[0]["packed"].nbytes - 1, steps[0]["packed"].nbytes + 1):
        assert _raw_chain(index, [dict(steps[0], packed_bytes=bad)]) == lib.RYZ_EPACKED
    assert _raw_chain(index, steps, threads=lib.RYZ_MAX_THREADS + 1) == lib.RYZ_ELIMIT


def test_chain_refuses_kernel_the_cpu_lacks():
    name = resolve(None).name
    if resolve(name).isa == "scalar":
        pytest.skip("the dispatched kernel is already baseline x86-64")
    _, _, _, steps = _steps(name, np.random.default_rng(0))
    index = resolve(name).index
    with limit_isa("scalar"):
        assert _raw_chain(index, steps, 2) == _native.lib().RYZ_ECPU  # not SIGILL


def test_rope_matches_numpy_rotate_half():
    lib = _native.lib()
    rng = np.random.default_rng(5)
    rows, d = 7, 128
    x = rng.standard_normal((rows, d)).astype(np.float32)
    ang = 37 * 500000.0 ** (-2.0 * np.arange(d // 2) / d)
    c, s = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
    x1, x2 = x[:, : d // 2], x[:, d // 2:]
    want = np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)
    assert lib.ryz_rope(_ptr(x), rows, d, _ptr(c), _ptr(s)) == 0
    np.testing.assert_array_equal(x, want)
    assert lib.ryz_rope(_ptr(x), rows, d - 1, _ptr(c), _ptr(s)) < 0


def _norm_quant(x: np.ndarray, w: np.ndarray, min_absmax: float = _MIN_ABSMAX) -> tuple[np.ndarray, float]:
    lib, ffi = _native.lib(), _native.ffi
    q, scale = np.zeros(x.size, np.int8), ffi.new("float *")
    assert lib.ryz_rmsnorm_quant(_ptr(x), _ptr(w), x.size, EPS, min_absmax, _ptr(q), scale) == 0
    return q, scale[0]


@pytest.mark.parametrize("n", [1, 7, 8, 31, 32, 33, 100, 2560, 6913])
def test_rmsnorm_quant_avx512_equals_baseline(n):
    """The AVX-512 RMSNorm + int8 (rmsnorm_quant_avx512.c) gives the baseline's bits, and both
    match the numpy formulation (float32 products, the sum of squares in double)."""
    if not cpu_features()["avx512f"]:
        pytest.skip("this CPU has no AVX-512F")
    rng = np.random.default_rng(n)
    cases = [rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4), np.zeros(n),
             (np.arange(n) - n / 2) / 4]  # many exact halves after scaling
    for x in (c.astype(np.float32) for c in cases):
        w = (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)
        q, s = _norm_quant(x, w)
        with limit_isa("avx2"):
            q_base, s_base = _norm_quant(x, w)
        np.testing.assert_array_equal(q, q_base)
        assert s == s_base
        r = np.float32(1.0 / np.sqrt(np.sum(x.astype(np.float64) ** 2) / n + EPS))
        y = (x * r) * w
        s_np = np.float32(127.0 / max(float(np.abs(y).max()), _MIN_ABSMAX))
        assert s == pytest.approx(s_np, rel=1e-6)
        assert np.abs(q.astype(int) - np.rint(y.astype(np.float64) * float(s))).max() <= 1


def _attention_layer(kernel: str, pos: int, seed: int):
    """A layer's "attention -> o (+ residual)" with its own cache, RoPE tables and buffers."""
    rng = np.random.default_rng(seed)
    heads, kvh, d, maxc, hidden = 4, 2, 32, 1024, 53
    qkv = rng.standard_normal((heads + 2 * kvh) * d).astype(np.float32)
    kc, vc = (rng.standard_normal((kvh, maxc, d)).astype(np.float32) for _ in range(2))
    ang = np.arange(maxc)[:, None] * 10000.0 ** (-2.0 * np.arange(d // 2) / d)
    cos, sin = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
    a, h = np.zeros(heads * d, np.float32), rng.standard_normal(hidden).astype(np.float32)
    step = {"in": a, "norm": (1 + 0.1 * rng.standard_normal(heads * d)).astype(np.float32),
            "xq": np.zeros(heads * d, np.int8),
            "packed": ryzlab.pack(rng.integers(-1, 2, size=(hidden, heads * d), dtype=np.int8), kernel),
            "y": np.zeros(hidden, np.int32), "row_scales": rng.uniform(0.01, 0.1, hidden).astype(np.float32),
            "out": h, "epilogue": "accumulate"}
    return RopeAttention(qkv, kc, vc, cos, sin, a, heads), (qkv, kc, vc, a, h), step


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("pos", [0, 5, 900])  # 900: enough work for every thread to attend
def test_chain_attention_step_equals_separate_calls(kernel, threads, pos):
    """A step's attention inside the chain's region gives the bits of ryz_rope_attention
    followed by the step, and writes the same cache rows."""
    attn, got, step = _attention_layer(kernel, pos, pos + threads)
    ref_attn, want, ref_step = _attention_layer(kernel, pos, pos + threads)
    chain = DecodeChain([(step["in"], step["norm"], step["xq"], step["packed"], step["y"], step["row_scales"],
                          step["out"], step["epilogue"], attn)], np.zeros(1 << 16, np.uint8))
    seconds = _native.ffi.new("double[4]")
    chain.run(pos, EPS, _MIN_ABSMAX, threads, seconds)
    assert seconds[1] > 0
    ref_attn(1, pos, 1)
    _run_separately(kernel, [ref_step])
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_chain_attention_step_checks_bounds():
    kernel = resolve(None).name
    attn, _, step = _attention_layer(kernel, 0, 0)
    chain = DecodeChain([(step["in"], step["norm"], step["xq"], step["packed"], step["y"], step["row_scales"],
                          step["out"], step["epilogue"], attn)], np.zeros(1 << 16, np.uint8))
    seconds = _native.ffi.new("double[4]")
    for pos in (1024, 1 << 40, -1):  # past the cache, absurd, negative
        with pytest.raises(KernelCallError):
            chain.run(pos, EPS, _MIN_ABSMAX, 2, seconds)
    attn.decode_struct().qkv_len = 10  # a qkv buffer too short for one row
    with pytest.raises(KernelCallError):
        chain.run(0, EPS, _MIN_ABSMAX, 2, seconds)
