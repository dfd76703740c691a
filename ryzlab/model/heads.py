"""LM heads: the float32 reference and its quantised variants, chosen with ``head=``.

The head of BitNet b1.58 is a float matrix (tied with the embedding: vocabulary x hidden, 329
million weights for 2B-4T), so quantising it is a choice with an accuracy cost, measured in
notebook 07.  Every head computes ``logits = W . RMSNorm(h)`` for one token:

* ``"f32"``: the exact float path (numpy float32 GEMV): the reference for golden checks.
* ``"int8"``: per-row absmax int8 weights, the normed activations quantised per token to int8,
  an exact integer GEMV (``ryz_head_gemv``), then both scales: 1 byte per weight.
"""

from __future__ import annotations

import numpy as np

from ..core import native as _native
from ..core.head import Int8Head
from .ops import MIN_ABSMAX, rmsnorm

#: Head kinds of :func:`make_head`.
HEADS = ("int8", "f32")


class Int8LMHead:
    """int8 rows with per-row scales on the int8 GEMV; RMSNorm and quantisation fused in C."""

    kind = "int8"

    def __init__(self, q: np.ndarray | None, scales: np.ndarray | None, packed: Int8Head | None = None):
        self.packed = Int8Head.from_int8(q, scales) if packed is None else packed
        self.vocab, self.hidden = self.packed.M, self.packed.K
        self._xq = np.zeros(self.hidden, np.int8)
        self._y = np.empty(self.vocab, np.int32)
        self._gemv = self.packed.prepare(self._xq, self._y)
        self._scale = _native.ffi.new("float *")

    @property
    def nbytes(self) -> int:
        """Bytes one token streams: packed rows and row scales."""
        return self.packed.nbytes

    def embedding_row(self, token: int) -> np.ndarray:
        """Row ``token`` as float32 (tied embedding): the int8 row times its scale."""
        return self.packed.row(token).astype(np.float32) * self.packed.scales[token]

    def logits(self, h: np.ndarray, norm: np.ndarray, eps: float, threads: int) -> np.ndarray:
        """Float32 logits (vocab,) of the residual stream ``h`` (hidden,) after the final norm."""
        rc = _native.lib().ryz_rmsnorm_quant(_native.ptr(h, "float"), _native.ptr(norm, "float"), self.hidden,
                                             eps, MIN_ABSMAX, _native.ptr(self._xq, "signed char"), self._scale)
        _native.check(rc, "final norm")
        self._gemv(threads)
        return self._y.astype(np.float32) * (self.packed.scales / self._scale[0])


class F32LMHead:
    """The float32 matrix as it is: the reference path."""

    kind = "f32"

    def __init__(self, w: np.ndarray):
        self.w = np.ascontiguousarray(w, dtype=np.float32)
        self.vocab, self.hidden = self.w.shape

    @property
    def nbytes(self) -> int:
        return int(self.w.nbytes)

    def embedding_row(self, token: int) -> np.ndarray:
        return self.w[token].copy()

    def logits(self, h: np.ndarray, norm: np.ndarray, eps: float, threads: int) -> np.ndarray:
        return self.w @ rmsnorm(h, norm, eps)


def make_head(kind: str, source) -> Int8LMHead | F32LMHead:
    """The head ``kind`` (one of :data:`HEADS`) of a weight source (see ``RandomWeights``)."""
    if kind == "int8":
        chunks = getattr(source, "head_int8_chunks", None)
        if chunks is not None:  # a checkpoint's head, quantised and packed block by block
            cfg = source.config
            return Int8LMHead(None, None, packed=Int8Head.from_row_chunks(cfg.vocab, cfg.hidden, chunks()))
        q, scales = source.head_int8()
        return Int8LMHead(q, scales)
    if kind == "f32":
        return F32LMHead(source.head_f32())
    raise ValueError(f"head must be one of {', '.join(HEADS)}, got {kind!r}")


