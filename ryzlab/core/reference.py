"""The numpy oracle: the exact integer product every kernel is compared to.

It is deliberately the plainest possible computation (one matrix product), so that its
correctness is evident by reading it.  The product runs in float64 so that BLAS does it (an
int64 product has no BLAS path and takes seconds on GEMM shapes): every operand and every
partial sum is an integer of magnitude <= 128 * K < 2**53, which float64 holds exactly, in
any summation order.
"""

from __future__ import annotations

import numpy as np

from . import validate

#: Largest K whose int32 result cannot overflow: |y| <= 128 * K must stay <= 2**31 - 1.
#: (At K = 2**24 exactly, 2**24 products of -128 and -1 sum to 2**31, one past int32.)
MAX_K: int = (2**31 - 1) // 128


def gemm(weights: np.ndarray, activations: np.ndarray) -> np.ndarray:
    """Exact ternary GEMM: ``Y = X @ W.T``.

    Args:
        weights: dense int8 matrix, shape (M, K), values in {-1, 0, 1}, C-contiguous.
        activations: int8, shape (N, K) or (K,), C-contiguous.

    Returns:
        int32 array of shape (N, M), or (M,) when ``activations`` is 1-D.  Values are exact
        integer dot products (no scales applied).

    Raises:
        TypeError, ValueError: invalid inputs (see ``ryzlab.validate``), or K > ``MAX_K``.
    """
    w = validate.ternary_weights(weights)
    k = w.shape[1]
    x, was_1d = validate.activations(activations, k)
    if k > MAX_K:
        raise ValueError(f"K = {k} could overflow the int32 result; K must be <= {MAX_K}")
    # Exact (see the module docstring), and |y| <= 128 * MAX_K fits int32.
    y = (x.astype(np.float64) @ w.T.astype(np.float64)).astype(np.int32)
    return y[0] if was_1d else y
