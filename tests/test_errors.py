"""Bad input is a clear Python exception before any pointer reaches C: never a crash."""

from __future__ import annotations

import numpy as np
import pytest

import ryzlab

W = np.zeros((4, 8), dtype=np.int8)
X = np.zeros((2, 8), dtype=np.int8)


@pytest.mark.parametrize(
    "weights, exc, match",
    [
        (W.astype(np.int16), TypeError, "int8"),
        (W.astype(np.float32), TypeError, "int8"),
        (W.tolist(), TypeError, "numpy.ndarray"),
        (W[0], ValueError, "2-D"),
        (W[None], ValueError, "2-D"),
        (np.zeros((0, 8), np.int8), ValueError, "empty"),
        (np.zeros((4, 16), np.int8)[:, ::2], ValueError, "C-contiguous"),
        (np.asfortranarray(np.zeros((4, 8), np.int8)), ValueError, "C-contiguous"),
        (np.full((4, 8), 2, np.int8), ValueError, "ternary"),
        (np.full((4, 8), -128, np.int8), ValueError, "ternary"),
    ],
)
def test_bad_weights(kernel, weights, exc, match):
    with pytest.raises(exc, match=match):
        ryzlab.gemm(weights, X, kernel=kernel)
    with pytest.raises(exc, match=match):
        ryzlab.pack(weights, kernel=kernel)


@pytest.mark.parametrize(
    "acts, exc, match",
    [
        (X.astype(np.int32), TypeError, "int8"),
        (np.zeros((2, 9), np.int8), ValueError, "K = 9"),
        (np.zeros(7, np.int8), ValueError, "K = 7"),
        (np.zeros((1, 2, 8), np.int8), ValueError, "1-D .* or 2-D"),
        (np.zeros((0, 8), np.int8), ValueError, "empty"),
        (np.zeros((2, 16), np.int8)[:, ::2], ValueError, "C-contiguous"),
        (np.zeros((8, 2), np.int8).T, ValueError, "C-contiguous"),
    ],
)
def test_bad_activations(kernel, acts, exc, match):
    with pytest.raises(exc, match=match):
        ryzlab.gemm(W, acts, kernel=kernel)


def test_packed_for_another_kernel():
    names = ryzlab.kernels()
    p = ryzlab.pack(W, kernel=names[0])
    with pytest.raises(ValueError, match=f"packed for kernel '{names[0]}'"):
        ryzlab.gemm(p, X, kernel=names[-1])


@pytest.mark.parametrize("threads, exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)])
def test_bad_threads(threads, exc):
    with pytest.raises(exc, match="threads"):
        ryzlab.gemm(W, X, threads=threads)


def test_bad_schedule_and_kernel_type():
    with pytest.raises(ValueError, match="blocks"):
        ryzlab.gemm(W, X, schedule="guided")
    with pytest.raises(TypeError, match="kernel name"):
        ryzlab.gemm(W, X, kernel=3)
