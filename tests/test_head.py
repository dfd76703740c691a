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
