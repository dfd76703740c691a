"""BitNet b1.58 quantisation: absmean ternary weights, per-token absmax int8 activations.

Follows the BitNet b1.58 paper (Ma et al., 2024) and its reference code:

* weights:      scale = mean(|W|) (clamped to eps), Wq = clip(round(W / scale), -1, 1),
                W ~= Wq * scale;
* activations:  per token (row), scale = 127 / max(|x|) (max clamped to eps),
                xq = clip(round(x * scale), -128, 127), x ~= xq / scale.

``np.round`` rounds halves to even, as ``torch.round`` does in the reference code.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import reference, validate

#: A ternary GEMM: (int8 weights M x K, int8 activations N x K or K) -> int32 (N, M) or (M,).
Gemm = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _float_array(x: object, name: str, ndims: tuple[int, ...]) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must have a floating-point dtype, got {x.dtype}")
    if x.ndim not in ndims:
        want = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"{name} must be {want}, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite, found NaN or infinity")
    return x


def ternarize(w: np.ndarray, eps: float = 1e-5) -> tuple[np.ndarray, float]:
    """Absmean ternarisation of float weights.

    Args:
        w: float weights, shape (M, K).
        eps: lower bound on the scale, so an all-zero matrix does not divide by zero.

    Returns:
        ``(q, scale)``: ``q`` is a C-contiguous int8 (M, K) array with values in {-1, 0, 1};
        ``scale = max(mean(|w|), eps)`` in the units of ``w``.  ``q * scale`` approximates ``w``.
    """
    w = _float_array(w, "weights", (2,))
    scale = max(float(np.abs(w, dtype=np.float64).mean()), eps)
    q = np.clip(np.round(w.astype(np.float64) / scale), -1, 1)
    return np.ascontiguousarray(q, dtype=np.int8), scale


def quantize_activations(x: np.ndarray, eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """Per-token absmax int8 quantisation of float activations.

    Args:
        x: float activations, shape (N, K) (one token per row) or (K,) (one token).
        eps: lower bound on each row's max(|x|), so an all-zero row does not divide by zero.

    Returns:
        ``(q, scale)``: ``q`` is int8 with the shape of ``x``; ``scale`` is float32 of shape
        (N,) (or () for 1-D input), in quantised units per unit of ``x``: ``q / scale``
        approximates ``x``.

    BitNet clips to [-128, 127], but ``round(x * 127 / max|x|)`` already lies in [-127, 127],
    so this quantiser never emits -128.  Kernels are still tested with -128, because other
    quantisers (asymmetric or calibrated ones) do produce it.
    """
    x = _float_array(x, "activations", (1, 2))
    absmax = np.maximum(np.abs(x).max(axis=-1), eps)
    scale = (127.0 / absmax.astype(np.float64)).astype(np.float32)
    # Quantise with the float32 scale that is returned, so q / scale is the exact inverse map.
    scaled = x.astype(np.float64) * np.expand_dims(scale.astype(np.float64), -1)
    q = np.clip(np.round(scaled), -128, 127).astype(np.int8)
    return q, scale


def linear(
    x: np.ndarray, w_q: np.ndarray, w_scale: float, gemm: Gemm | None = None
) -> np.ndarray:
    """BitNet linear layer: quantise ``x`` per token, integer GEMM, apply both scales.

    Args:
        x: float activations, shape (N, K) or (K,).
        w_q: ternary int8 weights, shape (M, K), e.g. from :func:`ternarize`.
        w_scale: the weights' scale from :func:`ternarize` (positive, finite).
        gemm: the integer GEMM to use (default :func:`ryzlab.reference.gemm`).

    Returns:
        float32 array of shape (N, M), or (M,) for 1-D ``x``, in the units of ``x`` times the
        units of the unquantised weights: ``y = y_int / x_scale * w_scale``.
    """
    x = _float_array(x, "activations", (1, 2))
    w = validate.ternary_weights(w_q)
    if x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"activations have K = {x.shape[-1]} but the weights have K = {w.shape[1]}"
        )
    if isinstance(w_scale, bool) or not isinstance(w_scale, (int, float, np.floating, np.integer)):
        raise TypeError(f"w_scale must be a real number, got {type(w_scale).__name__}")
    if not (np.isfinite(w_scale) and w_scale > 0):
        raise ValueError(f"w_scale must be finite and > 0, got {w_scale}")
    x_q, x_scale = quantize_activations(x)
    y_int = (gemm or reference.gemm)(w, x_q)
    y = y_int.astype(np.float64) / np.expand_dims(x_scale.astype(np.float64), -1) * w_scale
    return y.astype(np.float32)
