"""Validation of user inputs, done before any pointer reaches C.

Bad input raises ``TypeError`` (wrong type or dtype) or ``ValueError`` (shape, range,
layout) with a message that says what was expected.  Nothing is silently converted:
int8 is required, not coerced, because a silent cast could wrap values.
"""

from __future__ import annotations

import numpy as np


def _array(obj: object, name: str) -> np.ndarray:
    if not isinstance(obj, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(obj).__name__}")
    return obj


def _int8_contiguous(a: np.ndarray, name: str) -> None:
    if a.dtype != np.int8:
        raise TypeError(f"{name} must have dtype int8, got {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(
            f"{name} must be C-contiguous (use np.ascontiguousarray), got strides {a.strides}"
        )


def ternary_weights(w: object) -> np.ndarray:
    """Check a dense M x K int8 weight matrix with values in {-1, 0, 1}; return it."""
    w = _array(w, "weights")
    if w.ndim != 2:
        raise ValueError(f"weights must be 2-D (M x K), got shape {w.shape}")
    _int8_contiguous(w, "weights")
    lo, hi = int(w.min()), int(w.max())
    if lo < -1 or hi > 1:
        bad = w[(w < -1) | (w > 1)][0]
        raise ValueError(f"weights must be ternary (values in {{-1, 0, 1}}), found {int(bad)}")
    return w


def activations(x: object, k: int) -> tuple[np.ndarray, bool]:
    """Check int8 activations of shape (N, K) or (K,) against the weights' K.

    Returns the 2-D view (N x K) and whether the input was 1-D (so the result is too).
    """
    x = _array(x, "activations")
    if x.ndim not in (1, 2):
        raise ValueError(f"activations must be 1-D (K,) or 2-D (N x K), got shape {x.shape}")
    _int8_contiguous(x, "activations")
    if x.shape[-1] != k:
        raise ValueError(
            f"activations have K = {x.shape[-1]} but the weights have K = {k} "
            f"(expected shape (N, {k}) or ({k},))"
        )
    return (x.reshape(1, k), True) if x.ndim == 1 else (x, False)


def positive_int(value: object, name: str) -> int:
    """Check a count such as ``threads``: an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _lib():
    from . import native

    return native.lib()


def max_k() -> int:
    """Largest K the library accepts (``RYZ_MAX_K``, 2^23): every kernel's int32 partial sums
    stay exact up to it, and the true result (at most 128 * K) fits int32."""
    return int(_lib().RYZ_MAX_K)


def max_threads() -> int:
    """Largest thread count the library accepts (``RYZ_MAX_THREADS``)."""
    return int(_lib().RYZ_MAX_THREADS)


def dimension(value: object, name: str) -> int:
    """Check a matrix dimension (M, N): an int in [1, 2^31 - 1]."""
    v = positive_int(value, name)
    limit = int(_lib().RYZ_MAX_MN)
    if v > limit:
        raise ValueError(f"{name} must be <= {limit}, got {v}")
    return v


def k_dimension(value: object, name: str = "K") -> int:
    """Check the reduction length K: an int in [1, :func:`max_k`]."""
    v = positive_int(value, name)
    if v > max_k():
        raise ValueError(
            f"{name} = {v} is above the library's limit of {max_k()} (2^23): beyond it the int32 "
            "accumulators of the kernels could not hold every partial sum exactly; split the "
            "product along K and add the int64 results"
        )
    return v


def threads(value: object) -> int:
    """Check a thread count: an int in [1, :func:`max_threads`]."""
    v = positive_int(value, "threads")
    if v > max_threads():
        raise ValueError(f"threads must be <= {max_threads()} (the library's limit), got {v}")
    return v
