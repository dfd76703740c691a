"""LM heads: the float32 reference and its quantised variants, chosen with ``head=``.

The head of BitNet b1.58 is a float matrix (tied with the embedding: vocabulary x hidden, 329
million weights for 2B-4T), so quantising it is a choice with an accuracy cost, measured in
notebook 07.  Every head computes ``logits = W . RMSNorm(h)`` for one token:

* ``"f32"``: the exact float path (numpy float32 GEMV): the reference for golden checks.
* ``"int8"``: per-row absmax int8 weights, the normed activations quantised per token to int8,
  an exact integer GEMV (``ryz_head_gemv``), then both scales: 1 byte per weight.
* ``"int4"``: 4-bit weights with one fp16 scale per group of :data:`INT4_GROUP` weights along
  the hidden dimension (Q4_0-style round-to-nearest quantisation of the float rows,
  :func:`ryzlab.core.head.quantize_groups`), the same int8 activations, an exact integer dot
  product per group and the group scales applied in float32 (``ryz_head4_gemv``): 4 + 16/32 =
  4.5 bits per weight, 185 MB instead of 329 MB for 2B-4T.
* ``"int4-g64"``: the same with groups of 64: 4.25 bits per weight, 174 MB, the smallest head.

Why ``"int4"`` has groups of 32 and fp16 scales: on the embedding-like head (``RandomWeights(...,
head_rows="embedding")``, measured with :func:`ryzlab.measure.head_accuracy.head_agreement`;
numbers in kernels_c/README.md) groups of 64 save 6 % of the head's bytes (4.25 bits) but
raise the logit error from 10 % to 12 % RMS and the KL divergence to the float head by 1.3-3.5x.
fp16 rounds a scale by at most 2^-11 relative, far below the 4-bit step (1/8 of the group's
largest magnitude), so float32 scales would add bytes and no accuracy.  A per-group search for
the MSE-best scale instead of round-to-nearest gained only 4 % in weight RMS error (not kept).
"""

from __future__ import annotations

import numpy as np

from ..core import native as _native
from ..core.head import Int4Head, Int8Head, quantize_groups
from .ops import MIN_ABSMAX, rmsnorm

#: Head kinds of :func:`make_head`.
HEADS = ("int8", "int4", "int4-g64", "f32")
#: Weights per fp16 scale of the int4 head (see the module docstring).
INT4_GROUP = 32
#: The int4 head kinds and their groups: ``"int4-g64"`` trades accuracy for 5.6 % fewer head
#: bytes (4.25 bits per weight), the smallest head there is.
INT4_KINDS = {"int4": INT4_GROUP, "int4-g64": 64}


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

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.nbytes / (self.vocab * self.hidden)

    def embedding_row(self, token: int) -> np.ndarray:
        """Row ``token`` as float32 (tied embedding): the int8 row times its scale."""
        return self.packed.row(token).astype(np.float32) * self.packed.scales[token]

    def decode_struct(self, h: np.ndarray, norm: np.ndarray, logits: np.ndarray):
        """The head as the end of a decode token's C call: the same logits as :meth:`logits`,
        bit for bit, written to ``logits``."""
        return self._gemv.decode_struct(h, norm, logits)

    def logits(self, h: np.ndarray, norm: np.ndarray, eps: float, threads: int) -> np.ndarray:
        """Float32 logits (vocab,) of the residual stream ``h`` (hidden,) after the final norm."""
        rc = _native.lib().ryz_rmsnorm_quant(_native.ptr(h, "float"), _native.ptr(norm, "float"), self.hidden,
                                             eps, MIN_ABSMAX, _native.ptr(self._xq, "signed char"), self._scale)
        _native.check(rc, "final norm")
        self._gemv(threads)
        return self._y.astype(np.float32) * (self.packed.scales / self._scale[0])


class Int4LMHead:
    """int4 weights, fp16 scales per group along the hidden dimension, on the int4 GEMV; the
    final RMSNorm and the int8 quantisation of the activations fused in C as for int8."""

    def __init__(self, packed: Int4Head):
        if not isinstance(packed, Int4Head):
            raise TypeError(f"expected an Int4Head, got {type(packed).__name__}")
        self.packed = packed
        self.vocab, self.hidden, self.group = packed.M, packed.K, packed.group
        self.kind = next(k for k, g in INT4_KINDS.items() if g == self.group)
        self._xq = np.zeros(self.hidden, np.int8)
        self._y = np.empty(self.vocab, np.float32)
        self._gemv = self.packed.prepare(self._xq, self._y)
        self._scale = _native.ffi.new("float *")

    @classmethod
    def from_source(cls, source, group: int = INT4_GROUP) -> Int4LMHead:
        """Quantise the float rows of ``source`` a block at a time (``head_f32_chunks`` where the
        source has it, else slices of ``head_f32()``, else the int8 head dequantised)."""
        cfg = source.config
        if hasattr(source, "head_f32_chunks"):
            chunks = source.head_f32_chunks()
        elif hasattr(source, "head_f32"):
            w = source.head_f32()
            chunks = (w[i:i + 4096] for i in range(0, w.shape[0], 4096))
        else:
            q, s = source.head_int8()
            chunks = (q[i:i + 4096].astype(np.float32) * s[i:i + 4096, None] for i in range(0, q.shape[0], 4096))
        return cls(Int4Head.from_chunks(cfg.vocab, cfg.hidden, group, (quantize_groups(w, group) for w in chunks)))

    @property
    def nbytes(self) -> int:
        """Bytes one token streams: packed int4 weights and their fp16 scales."""
        return self.packed.nbytes

    @property
    def bits_per_weight(self) -> float:
        return self.packed.bits_per_weight

    def embedding_row(self, token: int) -> np.ndarray:
        """Row ``token`` as float32 (tied embedding): int4 values times their group scales."""
        return self.packed.row(token)

    def decode_struct(self, h: np.ndarray, norm: np.ndarray, logits: np.ndarray):
        """The head as the end of a decode token's C call: the same logits as :meth:`logits`,
        bit for bit, written to ``logits``."""
        return self._gemv.decode_struct(h, norm, logits)

    def logits(self, h: np.ndarray, norm: np.ndarray, eps: float, threads: int) -> np.ndarray:
        """Float32 logits (vocab,): the GEMV's group-scaled sums divided by the activation scale."""
        rc = _native.lib().ryz_rmsnorm_quant(_native.ptr(h, "float"), _native.ptr(norm, "float"), self.hidden,
                                             eps, MIN_ABSMAX, _native.ptr(self._xq, "signed char"), self._scale)
        _native.check(rc, "final norm")
        self._gemv(threads)
        return self._y / np.float32(self._scale[0])


class F32LMHead:
    """The float32 matrix as it is: the reference path."""

    kind = "f32"

    def __init__(self, w: np.ndarray):
        self.w = np.ascontiguousarray(w, dtype=np.float32)
        self.vocab, self.hidden = self.w.shape

    @property
    def nbytes(self) -> int:
        return int(self.w.nbytes)

    @property
    def bits_per_weight(self) -> float:
        return 32.0

    def embedding_row(self, token: int) -> np.ndarray:
        return self.w[token].copy()

    def logits(self, h: np.ndarray, norm: np.ndarray, eps: float, threads: int) -> np.ndarray:
        return self.w @ rmsnorm(h, norm, eps)


def make_head(kind: str, source) -> Int8LMHead | Int4LMHead | F32LMHead:
    """The head ``kind`` (one of :data:`HEADS`) of a weight source (see ``RandomWeights``)."""
    if kind == "int8":
        chunks = getattr(source, "head_int8_chunks", None)
        if chunks is not None:  # a checkpoint's head, quantised and packed block by block
            cfg = source.config
            return Int8LMHead(None, None, packed=Int8Head.from_row_chunks(cfg.vocab, cfg.hidden, chunks()))
        q, scales = source.head_int8()
        return Int8LMHead(q, scales)
    if kind in INT4_KINDS:
        return Int4LMHead.from_source(source, INT4_KINDS[kind])
    if kind == "f32":
        return F32LMHead(source.head_f32())
    raise ValueError(f"head must be one of {', '.join(HEADS)}, got {kind!r}")
