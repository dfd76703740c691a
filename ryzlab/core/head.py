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
    """A packed int8 matrix with per-row scales, for repeated GEMVs.  Built by
    :meth:`from_int8`; the fields are checked against the buffer when the object is made."""

    M: int
    K: int
    data: np.ndarray  # packed bytes (uint8)
    scales: np.ndarray  # float32 (M,)

    def __post_init__(self) -> None:
        M = validate.dimension(self.M, "Int8Head.M")
        K = validate.positive_int(self.K, "Int8Head.K")
        d = self.data
        if not isinstance(d, np.ndarray) or d.dtype != np.uint8 or d.ndim != 1 or not d.flags.c_contiguous:
            raise TypeError("Int8Head.data must be a 1-D C-contiguous uint8 numpy array (as from_int8 makes it)")
        need = packed_bytes(M, K)
        if d.nbytes != need:
            raise ValueError(f"Int8Head.data holds {d.nbytes} bytes, but a {M} x {K} head takes {need}")
        sc = self.scales
        if not isinstance(sc, np.ndarray) or sc.dtype != np.float32 or sc.shape != (M,) or not sc.flags.c_contiguous:
            raise ValueError(f"Int8Head.scales must be a C-contiguous float32 array of shape ({M},)")

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
        data = np.empty(packed_bytes(M, K), dtype=np.uint8)
        _native.check(_native.lib().ryz_head_pack(_native.ptr(q, "signed char"), q.nbytes, M, K,
                                                  _native.ptr(data, "unsigned char"), data.nbytes),
                      "packing the int8 head")
        return cls(M, K, data, scales)

    @classmethod
    def from_row_chunks(cls, M: int, K: int, chunks) -> Int8Head:
        """Pack an M x K head given as consecutive row blocks: ``chunks`` yields ``(q, scales)``
        (int8 (m, K), float32 (m,)) in row order, covering all M rows.  Only the packed head
        and one block are in memory at a time (a vocabulary-sized head need not exist as one
        int8 matrix first).  Each block is packed by ``ryz_head_pack`` and its rows and row
        sums copied into place: the result equals :meth:`from_int8` of the stacked rows."""
        M, K = validate.dimension(M, "M"), validate.positive_int(K, "K")
        total = packed_bytes(M, K)
        kp = int(_native.lib().ryz_head_row_bytes(K))
        data = np.zeros(total, dtype=np.uint8)  # padding rows stay zero, as ryz_head_pack leaves them
        sums = data[total - 4 * M:]
        scales = np.empty(M, dtype=np.float32)
        row = 0
        for q, s in chunks:
            part = cls.from_int8(q, s)
            m = part.M
            if part.K != K or row + m > M:
                raise ValueError(f"row block of shape {q.shape} does not fit a {M} x {K} head at row {row}")
            data[row * kp:(row + m) * kp] = part.data[:m * kp]
            sums[4 * row:4 * (row + m)] = part.data[part.data.size - 4 * m:]
            scales[row:row + m] = part.scales
            row += m
        if row != M:
            raise ValueError(f"row blocks cover {row} rows, the head has {M}")
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

    def prepare(self, x: np.ndarray, y: np.ndarray) -> PreparedHead:
        """A GEMV reading int8 ``x`` (K,) and writing int32 ``y`` (M,), both owned by the caller."""
        return PreparedHead(self, x, y)

    def gemv_int(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """Exact int32 dot products of every row with int8 activations ``x`` (K,)."""
        x2, _ = validate.activations(x, self.K)
        if x2.shape[0] != 1:
            raise ValueError(f"the head multiplies one token: expected shape ({self.K},), got {x.shape}")
        t = validate.threads(threads)
        y = np.empty(self.M, dtype=np.int32)
        self.prepare(x2.reshape(self.K), y)(t)
        return y


def packed_bytes(M: int, K: int) -> int:
    """Bytes of a packed M x K int8 head (K < 65536)."""
    size = _native.lib().ryz_head_packed_bytes(M, K)
    _native.check(size, f"int8 head of shape {M} x {K} (K must be < 65536)")
    return int(size)


class PreparedHead:
    """The head's GEMV with its buffers bound once: the decode loop calls it every token."""

    def __init__(self, head: Int8Head, x: np.ndarray, y: np.ndarray):
        if not (isinstance(x, np.ndarray) and x.dtype == np.int8 and x.shape == (head.K,) and x.flags.c_contiguous):
            raise ValueError(f"x must be a C-contiguous int8 array of shape ({head.K},)")
        if not (isinstance(y, np.ndarray) and y.dtype == np.int32 and y.shape == (head.M,) and y.flags.c_contiguous):
            raise ValueError(f"y must be a C-contiguous int32 array of shape ({head.M},)")
        lib = _native.lib()
        ws_bytes = lib.ryz_head_workspace_bytes(head.K)
        _native.check(ws_bytes, "int8 head workspace size")
        self._keep = (head, x, y, np.zeros(ws_bytes, dtype=np.uint8))
        ws = self._keep[3]
        self._args = (_native.ptr(head.data, "unsigned char"), head.data.nbytes, head.M, head.K,
                      _native.ptr(x, "signed char"), x.nbytes, _native.ptr(y, "int"), y.nbytes,
                      _native.ptr(ws, "unsigned char"), ws.nbytes)

    def __call__(self, threads: int) -> None:
        """Run the GEMV into ``y`` with ``threads`` threads (1 .. the library's limit)."""
        rc = _native.lib().ryz_head_gemv(*self._args, threads)
        if rc < 0:
            _native.check(rc, "int8 head GEMV")
