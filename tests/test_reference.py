"""The numpy oracle: exactness against independent loops, and rejection of bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ryzlab import reference


def loop_gemm(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Pure-python triple loop, independent of numpy's matmul: y[n, m] = sum_k w[m,k] x[n,k]."""
    m_rows, k_len = w.shape
    n_rows = x.shape[0]
    y = [[0] * m_rows for _ in range(n_rows)]
    for n in range(n_rows):
        for m in range(m_rows):
            for k in range(k_len):
                y[n][m] += int(w[m, k]) * int(x[n, k])
    return np.array(y, dtype=np.int64)


def test_guide_step_2_2_example() -> None:
    # Weights and activations of the fix guide's 4 x 4 x 4 T-MAC correctness test.
    w = np.array([1, -1, 0, 1, 0, 1, -1, 0, 1, 0, 1, -1, -1, 1, 0, 1], dtype=np.int8).reshape(4, 4)
    x = np.array(
        [10, -5, 8, -3, 15, -8, 12, 6, -10, 4, -7, 9, 5, -6, 11, -4], dtype=np.int8
    ).reshape(4, 4)
    y = reference.gemm(w, x)
    assert y.dtype == np.int32 and y.shape == (4, 4)
    np.testing.assert_array_equal(y, loop_gemm(w, x))
    # Spot check by hand: token 0 against row 0 is 10 + 5 + 0 - 3.
    assert y[0, 0] == 12


@pytest.mark.parametrize(
    ("m", "k", "n"), [(1, 1, 1), (1, 7, 3), (5, 1, 2), (3, 9, 1), (7, 13, 5), (17, 33, 3)]
)
def test_small_and_odd_shapes(m: int, k: int, n: int) -> None:
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    w = rng.integers(-1, 2, size=(m, k), dtype=np.int8)
    x = rng.integers(-128, 128, size=(n, k), dtype=np.int8)
    y = reference.gemm(w, x)
    assert y.dtype == np.int32 and y.shape == (n, m)
    np.testing.assert_array_equal(y, loop_gemm(w, x))


def test_int8_extremes() -> None:
    k = 4096
    w = -np.ones((2, k), dtype=np.int8)
    w[1] = 1
    x = np.full((2, k), -128, dtype=np.int8)
    x[1] = 127
    y = reference.gemm(w, x)
    np.testing.assert_array_equal(y, [[128 * k, -128 * k], [-127 * k, 127 * k]])
    assert y[0, 0] == 524288


def test_one_dimensional_activations_give_one_dimensional_output() -> None:
    rng = np.random.default_rng(1)
    w = rng.integers(-1, 2, size=(6, 10), dtype=np.int8)
    x = rng.integers(-128, 128, size=10, dtype=np.int8)
    y = reference.gemm(w, x)
    assert y.shape == (6,) and y.dtype == np.int32
    np.testing.assert_array_equal(y, reference.gemm(w, x.reshape(1, 10))[0])


def test_k_that_could_overflow_int32_is_rejected() -> None:
    k = reference.MAX_K + 1
    with pytest.raises(ValueError, match="overflow"):
        reference.gemm(np.zeros((1, k), dtype=np.int8), np.zeros(k, dtype=np.int8))


def rows(k: int, values: st.SearchStrategy[int]) -> st.SearchStrategy[list[list[int]]]:
    return st.lists(st.lists(values, min_size=k, max_size=k), min_size=1, max_size=8)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 8).flatmap(
        lambda k: st.tuples(rows(k, st.sampled_from([-1, 0, 1])), rows(k, st.integers(-128, 127)))
    )
)
def test_matches_triple_loop(data: tuple[list[list[int]], list[list[int]]]) -> None:
    w = np.array(data[0], dtype=np.int8)
    x = np.array(data[1], dtype=np.int8)
    np.testing.assert_array_equal(reference.gemm(w, x), loop_gemm(w, x))


W = np.array([[1, 0, -1, 1], [0, 0, 1, -1]], dtype=np.int8)
X = np.array([[3, -128, 127, 0]], dtype=np.int8)


@pytest.mark.parametrize(
    ("weights", "activations", "error", "match"),
    [
        (W.astype(np.int16), X, TypeError, "weights must have dtype int8, got int16"),
        (W.astype(np.float32), X, TypeError, "weights must have dtype int8, got float32"),
        (W, X.astype(np.int16), TypeError, "activations must have dtype int8, got int16"),
        (W, X.astype(np.float64), TypeError, "activations must have dtype int8, got float64"),
        (W.tolist(), X, TypeError, "weights must be a numpy.ndarray"),
        (W[0], X, ValueError, r"weights must be 2-D \(M x K\)"),
        (W, X.reshape(1, 1, 4), ValueError, "activations must be 1-D"),
        (W, X[:, :3].copy(), ValueError, "activations have K = 3 but the weights have K = 4"),
        (W[:, ::2], X[:, :2].copy(), ValueError, "weights must be C-contiguous"),
        (np.asfortranarray(W), X, ValueError, "weights must be C-contiguous"),
        (W, np.asfortranarray(np.vstack([X, X])), ValueError, "activations must be C-contiguous"),
        (W * 2, X, ValueError, r"ternary .* found 2"),
        (W * -2, X, ValueError, r"ternary .* found -2"),
        (np.zeros((0, 4), dtype=np.int8), X, ValueError, "weights must not be empty"),
        (W, np.zeros((0, 4), dtype=np.int8), ValueError, "activations must not be empty"),
    ],
)
def test_bad_input_is_rejected(
    weights: object, activations: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        reference.gemm(weights, activations)  # type: ignore[arg-type]
