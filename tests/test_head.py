"""The int8 LM head: exact integer dot products on both tiers, row access, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import ryzlab
from ryzlab.core import head


def _case(rng, M, K):
    q = rng.integers(-128, 128, (M, K), dtype=np.int8)
    x = rng.integers(-128, 128, K, dtype=np.int8)
    return q, x, (q.astype(np.int64) @ x.astype(np.int64)).astype(np.int32)


@pytest.mark.parametrize("level", ["avx512", "scalar"])
def test_exact_on_each_tier(level):
    rng = np.random.default_rng(0)
    with ryzlab.limit_isa(level):
        if level == "scalar":
            assert head.isa() == "scalar"
        for M, K in [(1, 1), (3, 63), (5, 64), (130, 65), (1001, 2560)]:
            q, x, expected = _case(rng, M, K)
            h = head.Int8Head.from_int8(q, np.ones(M, np.float32))
            for threads in (1, 2, 3):
                np.testing.assert_array_equal(h.gemv_int(x, threads), expected, err_msg=f"{level} {M}x{K}")


@pytest.mark.parametrize("var, bytes_ahead", [("RYZLAB_HEAD8_PREFETCH", "0"), ("RYZLAB_HEAD8_PREFETCH", "16384"),
                                              ("RYZLAB_HEAD4_PREFETCH", "0"), ("RYZLAB_HEAD4_PREFETCH", "2048"),
                                              ("RYZLAB_HEAD4_PREFETCH", "16384")])
def test_both_prefetch_paths_exact(monkeypatch, var, bytes_ahead):
    """The AVX-512 heads prefetch by CPU vendor (none or 2 KiB on AMD, 16 KiB elsewhere): every
    distance the variable forces gives the same integers."""
    if head.isa() != "avx512vnni":
        pytest.skip("the prefetching loops are the AVX-512 VNNI tier's")
    monkeypatch.setenv(var, bytes_ahead)
    rng = np.random.default_rng(9)
    for M, K in [(3, 63), (130, 320), (1001, 2560)]:
        if var == "RYZLAB_HEAD8_PREFETCH":
            q, x, expected = _case(rng, M, K)
            h = head.Int8Head.from_int8(q, np.ones(M, np.float32))
            got = [h.gemv_int(x, threads) for threads in (1, 3)]
        else:
            G = head.INT4_GROUPS[0]
            q, s = _case4(rng, M, K, G)
            h = head.Int4Head.from_int4(q, s, G)
            x = rng.integers(-128, 128, K, dtype=np.int8)
            expected = head.int4_reference(q, s, x, G)
            got = [h.gemv(x, threads) for threads in (1, 3)]
        for g in got:
            np.testing.assert_array_equal(g, expected, err_msg=f"{var}={bytes_ahead} {M}x{K}")


def test_rows_and_scales():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((37, 100)).astype(np.float32)
    q, scales = head.quantize_rows(w)
    np.testing.assert_allclose(q * scales[:, None], w, atol=float(scales.max()) / 2 + 1e-7)
    h = head.Int8Head.from_int8(q, scales)
    for m in (0, 17, 36):
        np.testing.assert_array_equal(h.row(m), q[m])
    with pytest.raises(IndexError):
        h.row(37)
    x = rng.integers(-127, 128, 100, dtype=np.int8)
    np.testing.assert_array_equal(h.gemv_int(x), q.astype(np.int64) @ x)
    assert h.nbytes >= 37 * 100 + 4 * 37


def test_bad_input():
    q = np.zeros((4, 8), np.int8)
    with pytest.raises(TypeError):
        head.Int8Head.from_int8(q.astype(np.int16), np.ones(4))
    with pytest.raises(ValueError, match="scales"):
        head.Int8Head.from_int8(q, np.ones(3))
    h = head.Int8Head.from_int8(q, np.ones(4))
    with pytest.raises(ValueError, match="K = 9"):
        h.gemv_int(np.zeros(9, np.int8))
    with pytest.raises(ValueError, match="one token"):
        h.gemv_int(np.zeros((2, 8), np.int8))


# ---- the int4 head


def _case4(rng, M, K, G):
    q = rng.integers(-8, 8, (M, K), dtype=np.int8)
    q[0, 0], q[-1, -1] = -8, 7
    s = (rng.standard_normal((M, -(-K // G))) * 0.02).astype(np.float16)
    s[0, 0] = np.float16(6e-8)  # a subnormal fp16 scale
    return q, s


@pytest.mark.parametrize("level", ["avx512", "avx2", "scalar"])
@pytest.mark.parametrize("G", head.INT4_GROUPS)
def test_int4_equals_reference_on_each_tier(level, G):
    """Bit-for-bit equal to the numpy twin (same integers, same float32 order) on every tier,
    for odd M and K, every thread count 1..8 and every int8 activation, -128 included."""
    rng = np.random.default_rng(G)
    with ryzlab.limit_isa(level):
        assert head.isa_int4() == ("avx512vnni" if level == "avx512" and head.isa() == "avx512vnni" else "scalar")
        for M, K in [(1, 1), (3, 63), (17, 65), (33, 129), (130, 200), (1001, 2560)]:
            q, s = _case4(rng, M, K, G)
            h = head.Int4Head.from_int4(q, s, G)
            xs = [rng.integers(-128, 128, K, dtype=np.int8), np.full(K, -128, np.int8), np.full(K, 127, np.int8)]
            for x in xs:
                ref = head.int4_reference(q, s, x, G)
                for threads in range(1, 9):
                    np.testing.assert_array_equal(h.gemv(x, threads), ref, err_msg=f"{level} G{G} {M}x{K} t{threads}")


def test_int4_every_activation_value():
    """Each int8 value times each int4 value, through the group identity (sum(c x) - 8 sum(x))."""
    G, K = 32, 256
    x = np.arange(-128, 128, dtype=np.int8)
    q = np.repeat(np.arange(-8, 8, dtype=np.int8)[:, None], K, axis=1)
    s = np.ones((16, K // G), np.float16)
    h = head.Int4Head.from_int4(q, s, G)
    np.testing.assert_array_equal(h.gemv(x), (q.astype(np.int64) @ x.astype(np.int64)).astype(np.float32))


def test_int4_quantisation_rows_and_chunks():
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((100, 150)) * rng.uniform(0.1, 2, (100, 1))).astype(np.float32)
    for G in head.INT4_GROUPS:
        q, s = head.quantize_groups(w, G)
        assert q.dtype == np.int8 and q.min() >= -8 and q.max() <= 7 and s.shape == (100, -(-150 // G)) and s.dtype == np.float16
        deq = q * np.repeat(s.astype(np.float32), G, axis=1)[:, :150]
        step = np.repeat(np.abs(s.astype(np.float32)), G, axis=1)[:, :150]
        err = np.abs(deq - w)
        # half a step, except the values clipped to +7 at the far side of a negative scale (one step)
        assert np.all(err[q != 7] <= step[q != 7] * 0.5 * (1 + 1e-3)) and np.all(err <= step * (1 + 1e-3))
        h = head.Int4Head.from_float(w, G, rows=32)  # in chunks of 32 rows
        np.testing.assert_array_equal(h.data, head.Int4Head.from_int4(q, s, G).data)
        for m in (0, 50, 99):
            np.testing.assert_array_equal(h.row(m), deq[m])
        assert h.bits_per_weight > 4 + 16 / G  # padding of a small K
    # K a multiple of 2 G: exactly 4 + 16 / G bits per weight
    assert head.Int4Head.from_int4(np.zeros((16, 128), np.int8), np.zeros((16, 4), np.float16), 32).bits_per_weight == 4.5
    assert head.Int4Head.from_int4(np.zeros((16, 128), np.int8), np.zeros((16, 2), np.float16), 64).bits_per_weight == 4.25
    zero = head.quantize_groups(np.zeros((2, 40), np.float32), 32)
    assert not zero[0].any() and not zero[1].astype(np.float32).any()


def test_int4_bad_input():
    q, s = np.zeros((4, 64), np.int8), np.ones((4, 2), np.float16)
    with pytest.raises(ValueError, match="group"):
        head.Int4Head.from_int4(q, s, 16)
    with pytest.raises(TypeError):
        head.Int4Head.from_int4(q.astype(np.int16), s, 32)
    with pytest.raises(ValueError, match="scales"):
        head.Int4Head.from_int4(q, s.astype(np.float32), 32)
    with pytest.raises(ryzlab.KernelCallError):
        head.Int4Head.from_int4(np.full((4, 64), 8, np.int8), s, 32)  # outside [-8, 7]
    with pytest.raises(ryzlab.KernelCallError):
        head.Int4Head.from_int4(q, np.full((4, 2), np.inf, np.float16), 32)
    with pytest.raises(ValueError, match="multiples of 16"):
        head.Int4Head.from_chunks(40, 64, 32, [(np.zeros((8, 64), np.int8), np.ones((8, 2), np.float16))] * 5)
    with pytest.raises(ValueError, match="takes"):
        head.Int4Head(4, 64, 32, np.zeros(10, np.uint8))
    # M = 4 and M = 5 pack to the same bytes (one 16-row tile): the trailer tells them apart
    forged = head.Int4Head(5, 64, 32, head.Int4Head.from_int4(q, s, 32).data)
    with pytest.raises(ryzlab.KernelCallError, match="packed"):
        forged.gemv(np.zeros(64, np.int8))
    with pytest.raises(ryzlab.KernelCallError, match="packed"):
        forged.row(4)
    h = head.Int4Head.from_int4(q, s, 32)
    with pytest.raises(ValueError, match="K = 9"):
        h.gemv(np.zeros(9, np.int8))
    with pytest.raises(IndexError):
        h.row(4)
    with pytest.raises(ValueError, match="float32"):
        h.prepare(np.zeros(64, np.int8), np.zeros(4, np.int32))


def test_int4_c_checks_its_arguments():
    """The C entry points refuse what Python would never pass."""
    lib, ffi = ryzlab.core.native.lib(), ryzlab.core.native.ffi
    assert lib.ryz_head4_packed_bytes(4, 64, 16) == lib.RYZ_EARG
    assert lib.ryz_head4_packed_bytes(4, lib.RYZ_MAX_K + 1, 32) == lib.RYZ_ELIMIT
    h = head.Int4Head.from_int4(np.zeros((4, 64), np.int8), np.ones((4, 2), np.float16), 32)
    x, y = np.zeros(64, np.int8), np.zeros(4, np.float32)
    ws = np.zeros(lib.ryz_head4_workspace_bytes(64, 32), np.uint8)
    p = lambda a, t: ffi.from_buffer(f"{t}[]", a)  # noqa: E731
    args = [p(h.data, "unsigned char"), h.data.nbytes, 4, 64, 32, p(x, "signed char"), 64, p(y, "float"), 4,
            p(ws, "unsigned char"), ws.nbytes, 1]
    assert lib.ryz_head4_gemv(*args) == lib.RYZ_OK
    for i, bad, code in [(1, h.data.nbytes - 1, lib.RYZ_EPACKED), (6, 63, lib.RYZ_EWS), (8, 3, lib.RYZ_EWS),
                         (10, ws.nbytes - 1, lib.RYZ_EWS), (11, 0, lib.RYZ_EARG), (11, lib.RYZ_MAX_THREADS + 1, lib.RYZ_ELIMIT),
                         (0, ffi.NULL, lib.RYZ_EARG)]:
        a = list(args)
        a[i] = bad
        assert lib.ryz_head4_gemv(*a) == code, (i, bad)
    assert lib.ryz_head4_row(p(h.data, "unsigned char"), h.data.nbytes, 4, 64, 32, 4, p(y, "float"), 64) == lib.RYZ_EARG
