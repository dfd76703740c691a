"""BROKEN T-MAC encodings from the Phase 3 fix guide, reproduced for experiments ONLY.

Nothing here is a kernel: no dispatch path reaches this module, and its results are wrong by
design.  It exists so that notebooks can measure the guide's errors next to the correct T-MAC
construction (tables built from the activations, indexed by weight codes; see design.md s.1).

All three work on groups of ``LOOKUP_WIDTH`` = 8 consecutive k (the guide's ``lookup_width``),
build a float table of 256 entries per (output row m, group g) from the *weights*, and sum one
looked-up entry per group.  A short last group is zero-padded, which is what the guide's loop
over ``actual_width`` amounts to.

1. :func:`sign_bit_table_gemm` -- the original ``generate_row_table()``.
   ``table[m][g][idx] = sum_i w[m, 8g+i] * (+1 if bit i of idx else -1)``.  At compute time the
   index is formed from the activations' *sign bits*; convention here: bit i is set when
   ``x[n, 8g+i] >= 0``.  The result is ``sum_k w * sign(x)`` (with sign(0) = +1): magnitudes
   are thrown away, so it is not ``sum_k w * x``.

2. :func:`broadcast_gemm` -- the other path of the original code: ``y[n, m] =
   (sum_k w[m, k]) * (sum_k x[n, k])``.  Every weight is multiplied by every activation, not
   just the one at the same k.

3. :func:`guide_fix_gemm` -- the guide's proposed fix (Priority 2, Step 2.1), faithfully:
   ``table[m][g][idx] = sum_{i in group} w[m, 8g+i] * int8(idx)``, i.e. the *same* activation
   value for every position of the group.  The guide never says how ``idx`` is formed at
   compute time; its comment "Use idx directly as activation value for elem 0" makes the most
   plausible reading ``idx = uint8 byte of x[n, 8g]`` (the group's first activation).  That
   gives ``sum_g (sum_{i in group} w[m, 8g+i]) * x[n, 8g]``: the broadcast error again, inside
   each group, and the other seven activations of the group are never read.

Two error metrics are provided, and neither reproduces the guide's "291-430 %" (the guide does
not say how those figures were obtained).  On :data:`GUIDE_SHAPES` with seed 0
(:func:`measure_guide_errors`):

* :func:`relative_error` is the guide's test metric exactly (Step 2.2):
  ``max |approx - exact| / (|exact| + 1e-8)``.  Exact outputs near zero dominate it, and an
  exact zero turns an error of 1 into 1e8: it gives 133 % / 1.7e11 % (sign-bit),
  5.0e4 % / 1.3e14 % (broadcast), 1.3e4 % / 1.2e13 % (guide fix) on the small / large shape.
* :func:`relative_error_norm` is ``||approx - exact||_F / ||exact||_F``: 99 % / 99 % (sign-bit),
  860 % / 2200 % (broadcast), 130 % / 131 % (guide fix).  Same order as the guide's figures,
  but not the same values.
"""

from __future__ import annotations

import numpy as np

from . import reference, validate

#: Activations per table group (the guide's ``config_.lookup_width``); 8 bits index 256 entries.
LOOKUP_WIDTH: int = 8

#: (M, K, N) shapes at which the "291-430 %" errors were reported: [8 x 64] x [64 x 16] and
#: [128 x 512] x [512 x 128] (from the project's notes; the guide's text shows only 4 x 4 x 4).
GUIDE_SHAPES: list[tuple[int, int, int]] = [(8, 64, 16), (128, 512, 128)]

_BITS = (np.arange(256)[:, None] >> np.arange(LOOKUP_WIDTH)[None, :]) & 1  # (256, 8)


def _grouped(a: np.ndarray) -> np.ndarray:
    """(R, K) -> (R, G, LOOKUP_WIDTH) int64, zero-padding the last group."""
    pad = -a.shape[1] % LOOKUP_WIDTH
    padded = np.pad(a.astype(np.int64), ((0, 0), (0, pad)))
    return padded.reshape(a.shape[0], -1, LOOKUP_WIDTH)


def _lookup(tables: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Sum one entry per group: tables (M, G, 256), idx (N, G) -> float64 (N, M)."""
    groups = np.arange(tables.shape[1])
    # (M, N, G): for every m, the entry of each token's index in each group.
    picked = tables[:, groups[None, :], idx]
    return picked.sum(axis=2).T


def _checked(weights: np.ndarray, activations: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    w = validate.ternary_weights(weights)
    x, was_1d = validate.activations(activations, w.shape[1])
    return w, x, was_1d


def sign_bit_table_gemm(weights: np.ndarray, activations: np.ndarray) -> np.ndarray:
    """The original sign-bit table (broken): returns ``sum_k w * sign(x)``, sign(0) = +1.

    Args and shapes as :func:`ryzlab.reference.gemm`; returns float64 (N, M) or (M,).
    """
    w, x, was_1d = _checked(weights, activations)
    signs = (2 * _BITS - 1).astype(np.float64)  # bit 1 -> +1, bit 0 -> -1, as in the guide
    tables = _grouped(w).astype(np.float64) @ signs.T  # (M, G, 256)
    # Padding activations are 0, so their bit is set, but their weight is 0: no contribution.
    idx = ((_grouped(x) >= 0).astype(np.int64) << np.arange(LOOKUP_WIDTH)).sum(axis=2)
    y = _lookup(tables, idx)
    return y[0] if was_1d else y


def broadcast_gemm(weights: np.ndarray, activations: np.ndarray) -> np.ndarray:
    """The original broadcast path (broken): returns ``(sum_k w) * (sum_k x)`` per (n, m).

    Args and shapes as :func:`ryzlab.reference.gemm`; returns float64 (N, M) or (M,).
    """
    w, x, was_1d = _checked(weights, activations)
    w_sum = w.astype(np.float64).sum(axis=1)
    x_sum = x.astype(np.float64).sum(axis=1)
    y = np.outer(x_sum, w_sum)
    return y[0] if was_1d else y


def guide_fix_gemm(weights: np.ndarray, activations: np.ndarray) -> np.ndarray:
    """The guide's proposed fix (broken): ``sum_g (sum_{i in g} w_i) * x_first(g)``.

    Args and shapes as :func:`ryzlab.reference.gemm`; returns float64 (N, M) or (M,).
    """
    w, x, was_1d = _checked(weights, activations)
    act_of_idx = np.arange(256).astype(np.uint8).view(np.int8).astype(np.float64)
    # Every position of the group is multiplied by the same int8(idx), as in Step 2.1.
    tables = _grouped(w).sum(axis=2)[:, :, None].astype(np.float64) * act_of_idx
    idx = _grouped(x)[:, :, 0].astype(np.int8).view(np.uint8).astype(np.int64)
    y = _lookup(tables, idx)
    return y[0] if was_1d else y


def relative_error(approx: np.ndarray, exact: np.ndarray) -> float:
    """The guide's metric (Step 2.2): ``max(|approx - exact| / (|exact| + 1e-8))``, a ratio.

    Exact outputs at or near zero dominate it; see the module docstring.
    """
    a = np.asarray(approx, dtype=np.float64)
    e = np.asarray(exact, dtype=np.float64)
    return float(np.max(np.abs(a - e) / (np.abs(e) + 1e-8)))


def relative_error_norm(approx: np.ndarray, exact: np.ndarray) -> float:
    """Frobenius-norm relative error ``||approx - exact|| / ||exact||``, a ratio.

    Insensitive to single near-zero outputs; it does not reproduce the guide's "291-430 %"
    either (see the module docstring).
    """
    a = np.asarray(approx, dtype=np.float64)
    e = np.asarray(exact, dtype=np.float64)
    return float(np.linalg.norm(a - e) / np.linalg.norm(e))


_ENCODINGS = {
    "sign_bit_table": sign_bit_table_gemm,
    "broadcast": broadcast_gemm,
    "guide_fix": guide_fix_gemm,
}


def measure_guide_errors(seed: int = 0) -> list[dict]:
    """Both error metrics of every broken encoding on every shape in :data:`GUIDE_SHAPES`.

    Weights are uniform over {-1, 0, 1}, activations uniform over the int8 range [-128, 127],
    drawn from ``np.random.default_rng(seed)``; all encodings of a shape see the same data.

    Returns:
        one dict per (shape, encoding) with keys ``encoding``, ``M``, ``K``, ``N``,
        ``rel_error_max`` (:func:`relative_error`) and ``rel_error_norm``
        (:func:`relative_error_norm`); errors are ratios (1.0 = 100 %).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for m, k, n in GUIDE_SHAPES:
        w = rng.integers(-1, 2, size=(m, k), dtype=np.int8)
        x = rng.integers(-128, 128, size=(n, k), dtype=np.int8)
        exact = reference.gemm(w, x)
        for name, encoding in _ENCODINGS.items():
            approx = encoding(w, x)
            rows.append(
                {
                    "encoding": name,
                    "M": m,
                    "K": k,
                    "N": n,
                    "rel_error_max": relative_error(approx, exact),
                    "rel_error_norm": relative_error_norm(approx, exact),
                }
            )
    return rows
