"""The LM head: an int8 x int8 GEMV with per-row scales (vocabulary x hidden).

BitNet keeps the embedding / output matrix out of ternary quantisation; here it is stored
as int8 with one float scale per row (absmax), 1 byte per weight, and multiplied by the
per-token int8 activations on the fastest int8 path of the CPU (vpdpbusd where AVX-512 VNNI
exists, scalar otherwise; :func:`isa` says which).  Logits are exact integer dot products
times the two scales.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import native as _native
from . import validate


def isa() -> str:
    """The path the head runs on this CPU: "avx512vnni" or "scalar"."""
    return _native.string(_native.lib().ryz_head_isa())


def quantize_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row absmax int8 quantisation of a float matrix: (int8 M x K, float32 scales (M,)).

    ``w[m] ~= q[m] * scales[m]``.
    """
    if not isinstance(w, np.ndarray) or w.ndim != 2 or w.dtype.kind != "f":
        raise TypeError(f"expected a 2-D float array, got {type(w).__name__} {getattr(w, 'dtype', '')}")
    scales = np.maximum(np.abs(w).max(axis=1), 1e-8).astype(np.float32) / 127.0
    q = np.clip(np.rint(w / scales[:, None]), -127, 127).astype(np.int8)
    return q, scales


@dataclass(frozen=True, eq=False)
class Int8Head:
    """A packed int8 matrix with per-row scales, for repeated GEMVs."""

    M: int
    K: int
    data: np.ndarray  # packed bytes (uint8)
    scales: np.ndarray  # float32 (M,)

    @classmethod
    def from_int8(cls, q: np.ndarray, scales: np.ndarray) -> Int8Head:
        """Pack int8 weights (M x K, C-contiguous) with their per-row float scales."""
        if not isinstance(q, np.ndarray) or q.ndim != 2:
            raise ValueError(f"weights must be a 2-D int8 array, got {getattr(q, 'shape', type(q).__name__)}")
        if q.dtype != np.int8 or not q.flags.c_contiguous:
            raise TypeError(f"weights must be C-contiguous int8, got {q.dtype}")
        M, K = q.shape
        scales = np.ascontiguousarray(scales, dtype=np.float32)
        if scales.shape != (M,):
            raise ValueError(f"scales must have shape ({M},), got {scales.shape}")
        lib = _native.lib()
        size = lib.ryz_head_packed_bytes(M, K)
        _native.check(size, f"int8 head of shape {M} x {K} (K must be < 65536)")
        data = np.empty(size, dtype=np.uint8)
        _native.check(lib.ryz_head_pack(_native.ptr(q, "signed char"), M, K, _native.ptr(data, "unsigned char"), size),
                      "packing the int8 head")
        return cls(M, K, data, scales)

    def row(self, m: int) -> np.ndarray:
        """Row ``m``'s K int8 weights, a view into the packed bytes (the embedding lookup)."""
        if not 0 <= m < self.M:
            raise IndexError(f"row {m} outside 0..{self.M - 1}")
        start = m * _native.lib().ryz_head_row_bytes(self.K)
        return self.data[start:start + self.K].view(np.int8)

    @property
    def nbytes(self) -> int:
        """Bytes streamed per GEMV: the packed weights and the row scales."""
        return int(self.data.nbytes + self.scales.nbytes)

    def gemv_int(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """Exact int32 dot products of every row with int8 activations ``x`` (K,)."""
        x2, _ = validate.activations(x, self.K)
        if x2.shape[0] != 1:
            raise ValueError(f"the head multiplies one token: expected shape ({self.K},), got {x.shape}")
        t = validate.positive_int(threads, "threads")
        ws = np.empty(self.K + 192, dtype=np.uint8)
        y = np.empty(self.M, dtype=np.int32)
        _native.check(
            _native.lib().ryz_head_gemv(_native.ptr(self.data, "unsigned char"), self.M, self.K,
                                        _native.ptr(x2, "signed char"), _native.ptr(y, "int"),
                                        _native.ptr(ws, "unsigned char"), ws.nbytes, t),
            "int8 head GEMV",
        )
        return y

    def __call__(self, x_q: np.ndarray, x_scale: float, threads: int = 1) -> np.ndarray:
        """Float32 logits for int8 activations ``x_q`` quantised with ``x_q ~= x * x_scale``."""
        return self.gemv_int(x_q, threads).astype(np.float32) * (self.scales / np.float32(x_scale))
