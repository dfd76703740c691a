"""Attention in C (kernels_c/attention.c) against numpy, and the row-batched float steps
(kernels_c/rows_ops.c) against the decode step's one-token functions.

Tolerance for attention: 1e-5 of max|output|; C and numpy sum the q.k products and the softmax
denominator in different orders (float32 rounding, ~1e-7 relative), and the AVX-512 path
computes exp with its own polynomial (about 1 ulp); nothing else differs.  Both code paths
(AVX-512 and the SSE2 fallback, by capping the ISA) are checked."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ryzlab.core import native as _native
from ryzlab.core.kernels import cpu_features, limit_isa
from ryzlab.core.layer_ops import RopeAttention, attention, attention_isa, dequant_rows, rmsnorm_quant_rows
from ryzlab.model.ops import MIN_ABSMAX

RTOL = 1e-5


@pytest.fixture(params=["avx512", "avx2"])
def attention_path(request):
    """Run the test on the AVX-512 attention (skipped where the CPU lacks AVX-512F) and on
    the SSE2 fallback (ISA capped to AVX2)."""
    if request.param == "avx512" and not cpu_features()["avx512f"]:
        pytest.skip("this CPU has no AVX-512F")
    with limit_isa(request.param):
        assert attention_isa() == ("avx512" if request.param == "avx512" else "sse2")
        yield request.param


def numpy_attention(q, kc, vc, p0):
    """model/reference.py's per-head loop, causal over T query positions."""
    T, heads, d = q.shape
    group = heads // kc.shape[0]
    out = np.zeros_like(q)
    for t in range(T):
        n = p0 + t + 1
        for h in range(heads):
            K, V = kc[h // group, :n], vc[h // group, :n]
            s = (K @ q[t, h]) * np.float32(1.0 / math.sqrt(d))
            p = np.exp(s - s.max())
            p /= p.sum()
            out[t, h] = p @ V
    return out


def _case(rng, T, p0, heads, kvh, d, maxc):
    q = rng.standard_normal((T, heads, d)).astype(np.float32)
    kc = rng.standard_normal((kvh, maxc, d)).astype(np.float32) * 2
    vc = rng.standard_normal((kvh, maxc, d)).astype(np.float32)
    return q, kc, vc


@pytest.mark.parametrize("T,p0,heads,kvh,d,maxc", [
    (1, 0, 4, 2, 50, 8),        # decode at position 0 (softmax of one score)
    (1, 9, 4, 4, 33, 16),       # odd head_dim, no grouping
    (1, 2500, 20, 5, 128, 2600),  # 2B-4T heads at a long context
    (1, 700, 8, 1, 7, 701),     # one KV head for 8 query heads, last position of the cache
    (5, 3, 6, 2, 17, 8),        # prefill from a non-zero position, odd head_dim, group 3
    (64, 0, 4, 2, 50, 64),      # a whole prompt
    (40, 900, 4, 1, 64, 1000),  # prefill after a long context
])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_attention_matches_numpy(T, p0, heads, kvh, d, maxc, threads, attention_path):
    q, kc, vc = _case(np.random.default_rng(T * 1000 + p0), T, p0, heads, kvh, d, maxc)
    got = attention(q, kc, vc, p0, threads)
    want = numpy_attention(q, kc, vc, p0)
    assert np.abs(got - want).max() <= RTOL * np.abs(want).max()


@pytest.mark.parametrize("heads,kvh,d", [(8, 2, 40), (6, 2, 17), (4, 4, 33), (20, 5, 128)])
def test_attention_independent_of_threads_split_and_batching(heads, kvh, d, attention_path):
    """Bit-identical for every thread count, both work splits, and prefill (T rows) against
    T one-row calls: each output element is computed by one thread in one fixed order."""
    rng = np.random.default_rng(1)
    T, p0, maxc = 24, 100, 130
    q, kc, vc = _case(rng, T, p0, heads, kvh, d, maxc)
    base = attention(q, kc, vc, p0, 1)
    for threads in (2, 3, 16, 64):  # 64: fewer (position, KV head) items than 2 x threads
        np.testing.assert_array_equal(attention(q, kc, vc, p0, threads), base)
    rows = np.concatenate([attention(q[t:t + 1], kc, vc, p0 + t, threads) for t, threads in
                           zip(range(T), [1, 4] * T)])
    np.testing.assert_array_equal(rows, base)


def test_attention_refuses_bad_input():
    rng = np.random.default_rng(2)
    q, kc, vc = _case(rng, 2, 0, 4, 2, 8, 4)
    with pytest.raises(ValueError, match="p0"):
        attention(q, kc, vc, 3)  # positions 3, 4 beyond max_context 4
    with pytest.raises(ValueError, match="multiple"):
        attention(np.ascontiguousarray(q[:, :3]), kc, vc, 0)
    with pytest.raises(TypeError, match="float32"):
        attention(q.astype(np.float64), kc, vc, 0)
    with pytest.raises(ValueError, match="threads"):
        attention(q, kc, vc, 0, threads=10**6)
    lib, ffi = _native.lib(), _native.ffi
    f = lambda a: _native.ptr(a, "float")  # noqa: E731
    out = np.zeros_like(q)

    def raw(**kw):
        a = dict(q=f(q), q_len=q.size, q_stride=32, k=f(kc), k_len=kc.size, v=f(vc), v_len=vc.size, maxc=4, T=2,
                 p0=0, heads=4, kvh=2, d=8, out=f(out), out_len=out.size, out_stride=32, threads=1)
        a.update(kw)
        return lib.ryz_attention(*a.values())

    assert raw() == 0
    assert raw(q=ffi.NULL) == lib.RYZ_EARG
    assert raw(q_len=q.size - 1) == lib.RYZ_EWS
    assert raw(out_len=10) == lib.RYZ_EWS
    assert raw(k_len=kc.size - 1) == lib.RYZ_EWS
    assert raw(q_stride=31) == lib.RYZ_EWS
    assert raw(p0=3) == lib.RYZ_EARG
    assert raw(heads=3) == lib.RYZ_EARG
    assert raw(T=0) == lib.RYZ_EARG
    assert raw(threads=lib.RYZ_MAX_THREADS + 1) == lib.RYZ_ELIMIT
    assert raw(maxc=2**40, k_len=2**62) == lib.RYZ_ELIMIT


def test_rope_attention_writes_cache_and_matches_parts():
    rng = np.random.default_rng(3)
    T, p0, heads, kvh, d, maxc = 6, 2, 4, 2, 10, 12
    qkv = rng.standard_normal((T, (heads + 2 * kvh) * d)).astype(np.float32)
    kc = rng.standard_normal((kvh, maxc, d)).astype(np.float32)
    vc = rng.standard_normal((kvh, maxc, d)).astype(np.float32)
    ang = np.arange(maxc)[:, None] * 10000.0 ** (-2.0 * np.arange(d // 2) / d)
    cos, sin = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
    out = np.zeros((T, heads * d), np.float32)
    # numpy: rotate-half RoPE per row, cache write, attention
    x = qkv[:, :(heads + kvh) * d].reshape(T, heads + kvh, d)
    c, s = cos[p0:p0 + T, None, :], sin[p0:p0 + T, None, :]
    x1, x2 = x[..., :d // 2], x[..., d // 2:]
    roped = np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)
    kc_want, vc_want = kc.copy(), vc.copy()
    kc_want[:, p0:p0 + T] = roped[:, heads:].transpose(1, 0, 2)
    vc_want[:, p0:p0 + T] = qkv[:, (heads + kvh) * d:].reshape(T, kvh, d).transpose(1, 0, 2)
    want = attention(np.ascontiguousarray(roped[:, :heads]), kc_want, vc_want, p0, 1)

    RopeAttention(qkv, kc, vc, cos, sin, out, heads)(T, p0, 2)
    np.testing.assert_array_equal(kc, kc_want)
    np.testing.assert_array_equal(vc, vc_want)
    np.testing.assert_array_equal(out.reshape(T, heads, d), want)
    np.testing.assert_array_equal(qkv[:, :heads * d].reshape(T, heads, d), roped[:, :heads])
    ra = RopeAttention(qkv, kc, vc, cos, sin, out, heads)
    from ryzlab.errors import KernelCallError
    with pytest.raises(KernelCallError):
        ra(T, maxc - T + 1, 1)  # past the end of the cache
    with pytest.raises(KernelCallError):
        ra(T + 1, 0, 1)  # more rows than the buffers hold


def test_rows_ops_equal_one_token_functions():
    lib, ffi = _native.lib(), _native.ffi
    rng = np.random.default_rng(4)
    rows, n, M = 300, 257, 246  # enough elements for 3 threads (rows_ops.c runs small jobs on fewer)
    x = rng.standard_normal((rows, n)).astype(np.float32) * np.float32(3)
    w = (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)
    q, scales = np.zeros((rows, n), np.int8), np.zeros(rows, np.float32)
    rmsnorm_quant_rows(x, w, 1e-5, MIN_ABSMAX, q, scales, threads=3)
    scale = ffi.new("float *")
    for r in range(rows):
        qr = np.zeros(n, np.int8)
        lib.ryz_rmsnorm_quant(_native.ptr(x[r], "float"), _native.ptr(w, "float"), n, 1e-5, MIN_ABSMAX,
                              _native.ptr(qr, "signed char"), scale)
        np.testing.assert_array_equal(q[r], qr)
        assert scales[r] == scale[0]
    y = rng.integers(-(2**20), 2**20, (rows, M), dtype=np.int32)
    rs = rng.uniform(0.01, 0.1, M).astype(np.float32)
    d = y.astype(np.float32) * (rs / scales[:, None])
    out = np.zeros((rows, M), np.float32)
    dequant_rows(y, rs, scales, out, "store", 2)
    np.testing.assert_array_equal(out, d)
    dequant_rows(y, rs, scales, out, "accumulate", 2)
    np.testing.assert_array_equal(out, d + d)
    gate = np.zeros((rows, M // 2), np.float32)
    dequant_rows(y, rs, scales, gate, "sqrelu_gate", 2)
    g = np.maximum(d[:, :M // 2], 0)
    np.testing.assert_array_equal(gate, g * g * d[:, M // 2:])
    with pytest.raises(ValueError):
        dequant_rows(y, rs, scales, out, "sqrelu_gate")
    with pytest.raises(ValueError, match="epilogue"):
        dequant_rows(y, rs, scales, out, "nope")
    assert lib.ryz_dequant_rows(_native.ptr(y, "int"), y.size - 1, _native.ptr(rs, "float"), M,
                                _native.ptr(scales, "float"), rows, rows, M, _native.ptr(out, "float"), out.size,
                                0, 1) == lib.RYZ_EWS
    assert lib.ryz_rmsnorm_quant_rows(_native.ptr(x, "float"), x.size, _native.ptr(w, "float"), n, rows, n, 1e-5,
                                      MIN_ABSMAX, _native.ptr(q, "signed char"), q.size - 1,
                                      _native.ptr(scales, "float"), rows, 1) == lib.RYZ_EWS
