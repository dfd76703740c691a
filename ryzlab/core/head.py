"""The LM head: an int8 x int8 GEMV with per-row scales (vocabulary x hidden).

BitNet keeps the embedding / output matrix out of ternary quantisation; here it is stored
as int8 with one float scale per row (absmax), 1 byte per weight, and multiplied by the
per-token int8 activations on the fastest int8 path of the CPU (vpdpbusd where AVX-512 VNNI
exists, scalar otherwise; :func:`isa` says which).  Logits are exact integer dot products
times the two scales.

:class:`Int4Head` is the compact variant: 4-bit weights with one fp16 scale per group of 32 or
64 weights along K (4.5 or 4.25 bits per weight), the same int8 activations, an exact integer
product per group and the group scales applied in float32 (``ryz_head4_gemv``; the arithmetic
and layout are in kernels_c/head_i4.c and kernels_c/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import native as _native
from . import validate


def _one_token(x: np.ndarray, K: int) -> np.ndarray:
    """``x`` checked as one token's int8 activations, as a (K,) array."""
    x2, _ = validate.activations(x, K)
    if x2.shape[0] != 1:
        raise ValueError(f"the head multiplies one token: expected shape ({K},), got {x.shape}")
    return x2.reshape(K)


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
        xk, t = _one_token(x, self.K), validate.threads(threads)
        y = np.empty(self.M, dtype=np.int32)
        self.prepare(xk, y)(t)
        return y


def packed_bytes(M: int, K: int) -> int:
    """Bytes of a packed M x K int8 head (K < 65536)."""
    size = _native.lib().ryz_head_packed_bytes(M, K)
    _native.check(size, f"int8 head of shape {M} x {K} (K must be < 65536)")
    return int(size)


def _decode_head(prepared, kind: str, h: np.ndarray, norm: np.ndarray, logits: np.ndarray, group: int = 0,
                 row_scales: np.ndarray | None = None):
    """A ``ryz_decode_head *`` for a prepared head GEMV (its packed head, activation buffer and
    workspace), reading ``h`` and ``norm`` and writing ``logits``; the arrays stay referenced
    by ``prepared``."""
    head, x, _, ws = prepared._keep
    for name, a, n in (("h", h, head.K), ("norm", norm, head.K), ("logits", logits, head.M)):
        if not (isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == (n,) and a.flags.c_contiguous):
            raise ValueError(f"{name} must be a C-contiguous float32 array of shape ({n},)")
    prepared._decode_keep = (h, norm, logits, row_scales)
    lib, ffi = _native.lib(), _native.ffi
    act = {"in": _native.ptr(h, "float"), "in_len": h.size, "norm": _native.ptr(norm, "float"), "norm_len": norm.size,
           "xq": _native.ptr(x, "signed char"), "xq_len": x.size}
    fields = {"act": act, "kind": getattr(lib, kind),
              "packed": _native.ptr(head.data, "unsigned char"), "packed_bytes": head.data.nbytes, "M": head.M,
              "K": head.K, "group": group, "ws": _native.ptr(ws, "unsigned char"), "ws_bytes": ws.nbytes,
              "logits": _native.ptr(logits, "float"), "logits_len": logits.size}
    if row_scales is not None:
        fields.update(row_scales=_native.ptr(row_scales, "float"), row_scales_len=row_scales.size)
    return ffi.new("ryz_decode_head *", fields)


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

    def decode_struct(self, h: np.ndarray, norm: np.ndarray, logits: np.ndarray):
        """This GEMV as the head of a decode token's C call (:class:`~ryzlab.core.ops.DecodeChain`):
        the final norm of ``h``, the GEMV and the row scales, float32 ``logits`` out."""
        return _decode_head(self, "RYZ_HEAD_INT8", h, norm, logits, row_scales=self._keep[0].scales)


# ---- the int4 head: 4-bit weights, one fp16 scale per group of 32 or 64 along K

#: Group sizes the int4 head supports (weights per fp16 scale along K).
INT4_GROUPS = (32, 64)


def isa_int4() -> str:
    """The path the int4 head runs on this CPU: "avx512vnni" or "scalar"."""
    return _native.string(_native.lib().ryz_head4_isa())


def _check_group(group: int) -> int:
    if isinstance(group, bool) or group not in INT4_GROUPS:
        raise ValueError(f"group must be one of {INT4_GROUPS}, got {group!r}")
    return int(group)


def quantize_groups(w: np.ndarray, group: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-group int4 quantisation of a float matrix (Q4_0 style): (int8 q (M, K) in [-8, 7],
    float16 scales (M, ceil(K / group))).

    Per group, ``d = v / -8`` where ``v`` is the group's value of largest magnitude (with its
    sign), rounded to fp16; ``q = clip(rint(w / d), -8, 7)`` (0 where ``d`` is 0), so ``v``
    itself is exactly ``-8 * d`` and all 16 levels are used.  ``w[m, k] ~= q[m, k] * d[m, k //
    group]``.  A partial last group uses its own values only.  Raises ValueError where a scale
    overflows fp16 (a group magnitude above 8 * 65504).
    """
    if not isinstance(w, np.ndarray) or w.ndim != 2 or w.dtype.kind != "f":
        raise TypeError(f"expected a 2-D float array, got {type(w).__name__} {getattr(w, 'dtype', '')}")
    G = _check_group(group)
    M, K = w.shape
    ng = -(-K // G)
    wp = np.zeros((M, ng * G), np.float32)
    wp[:, :K] = w
    wg = wp.reshape(M, ng, G)
    idx = np.abs(wg).argmax(axis=2)
    v = np.take_along_axis(wg, idx[:, :, None], axis=2)[:, :, 0]
    with np.errstate(over="ignore"):
        d16 = (v / np.float32(-8.0)).astype(np.float16)
    if not np.isfinite(d16).all():
        raise ValueError("a group's magnitude overflows the fp16 scale (|w| > 8 * 65504)")
    d = d16.astype(np.float32)
    safe = np.where(d == 0, np.float32(1), d)
    q = np.where(d[:, :, None] == 0, 0, np.clip(np.rint(wg / safe[:, :, None]), -8, 7)).astype(np.int8)
    return np.ascontiguousarray(q.reshape(M, ng * G)[:, :K]), d16


def int4_reference(q: np.ndarray, scales: np.ndarray, x: np.ndarray, group: int) -> np.ndarray:
    """numpy twin of ``ryz_head4_gemv``: float32 (M,) = sum over groups g, in order, of
    ``float32(scale_g * dot_g)``, accumulated in float32, where ``dot_g`` is the exact integer
    product of int4 ``q`` (M, K) and int8 ``x`` (K,) over the group and ``scales`` are the
    (M, ceil(K / group)) fp16 scales.  Both C tiers do the same operations in the same order,
    so they equal this bit for bit."""
    G = _check_group(group)
    M, K = q.shape
    ng = -(-K // G)
    qp = np.zeros((M, ng * G), np.int64)
    qp[:, :K] = q
    xp = np.zeros(ng * G, np.int64)
    xp[:K] = x
    dots = np.einsum("mgk,gk->mg", qp.reshape(M, ng, G), xp.reshape(ng, G))
    p = np.asarray(scales, np.float16).astype(np.float32) * dots.astype(np.float32)
    acc = np.zeros(M, np.float32)
    for g in range(ng):
        acc = acc + p[:, g]
    return acc


def int4_packed_bytes(M: int, K: int, group: int) -> int:
    """Bytes of a packed M x K int4 head with groups of ``group`` (weights and fp16 scales)."""
    size = _native.lib().ryz_head4_packed_bytes(M, K, _check_group(group))
    _native.check(size, f"int4 head of shape {M} x {K}")
    return int(size)


def _aligned_bytes(n: int) -> np.ndarray:
    # 64-byte aligned, so every zmm load of the stream is aligned (the kernel copes without)
    buf = np.empty(n + 64, dtype=np.uint8)
    off = (-buf.ctypes.data) % 64
    return buf[off:off + n]


@dataclass(frozen=True, eq=False)
class Int4Head:
    """A packed int4 matrix (fp16 scale per group of ``group`` weights along K) for repeated
    GEMVs: float32 out, see ``ryz_head4_gemv`` in ryzlab.h.  Built by :meth:`from_int4`,
    :meth:`from_float` or :meth:`from_chunks`; the fields are checked when the object is made.
    Bits per weight (scales included): 4 + 16 / group when K is a multiple of 2 * group."""

    M: int
    K: int
    group: int
    data: np.ndarray  # packed bytes (uint8): tiles of 16 rows, scales inside the stream

    def __post_init__(self) -> None:
        M = validate.dimension(self.M, "Int4Head.M")
        K = validate.k_dimension(self.K, "Int4Head.K")
        G = _check_group(self.group)
        d = self.data
        if not isinstance(d, np.ndarray) or d.dtype != np.uint8 or d.ndim != 1 or not d.flags.c_contiguous:
            raise TypeError("Int4Head.data must be a 1-D C-contiguous uint8 numpy array (as from_int4 makes it)")
        need = int4_packed_bytes(M, K, G)
        if d.nbytes != need:
            raise ValueError(f"Int4Head.data holds {d.nbytes} bytes, but a {M} x {K} int4 head (group {G}) takes {need}")

    @classmethod
    def from_chunks(cls, M: int, K: int, group: int, chunks) -> Int4Head:
        """Pack row chunks ``(q, scales)`` given in row order (q: int8 (r, K) in [-8, 7],
        C-contiguous; scales: float16 (r, ceil(K / group))): every chunk but the last must hold
        a multiple of 16 rows, and together they must hold M rows.  Only the packed bytes and
        one chunk are in memory at a time."""
        G = _check_group(group)
        M = validate.dimension(M, "M")
        K = validate.k_dimension(K, "K")
        ng = -(-K // G)
        data = _aligned_bytes(int4_packed_bytes(M, K, G))
        lib, m0 = _native.lib(), 0
        for q, scales in chunks:
            if not isinstance(q, np.ndarray) or q.dtype != np.int8 or q.ndim != 2 or q.shape[1] != K:
                raise TypeError(f"int4 weights must be a 2-D int8 array with K = {K} columns, got "
                                f"{getattr(q, 'dtype', type(q).__name__)} {getattr(q, 'shape', '')}")
            q = np.ascontiguousarray(q)
            r = q.shape[0]
            if not isinstance(scales, np.ndarray) or scales.dtype != np.float16 or scales.shape != (r, ng):
                raise ValueError(f"scales must be float16 of shape ({r}, {ng}), got "
                                 f"{getattr(scales, 'dtype', type(scales).__name__)} {getattr(scales, 'shape', '')}")
            if m0 + r > M or (m0 + r < M and r % lib.RYZ_HEAD4_TILE):
                raise ValueError(f"chunk of {r} rows at row {m0}: chunks must hold multiples of "
                                 f"{lib.RYZ_HEAD4_TILE} rows (except the last) and {M} rows in all")
            s16 = np.ascontiguousarray(scales).view(np.uint16)
            _native.check(lib.ryz_head4_pack(_native.ptr(q, "signed char"), q.size, _native.ptr(s16, "unsigned short"),
                                             s16.size, m0, r, M, K, G, _native.ptr(data, "unsigned char"), data.nbytes),
                          "packing the int4 head (weights must be in [-8, 7], scales finite)")
            m0 += r
        if m0 != M:
            raise ValueError(f"the chunks held {m0} rows, expected {M}")
        return cls(M, K, G, data)

    @classmethod
    def from_int4(cls, q: np.ndarray, scales: np.ndarray, group: int) -> Int4Head:
        """Pack int4 values (int8 (M, K) in [-8, 7]) with their fp16 group scales."""
        if not isinstance(q, np.ndarray) or q.ndim != 2:
            raise ValueError(f"weights must be a 2-D int8 array, got {getattr(q, 'shape', type(q).__name__)}")
        return cls.from_chunks(q.shape[0], q.shape[1], group, [(q, scales)])

    @classmethod
    def from_float(cls, w, group: int, rows: int = 4096) -> Int4Head:
        """Quantise (:func:`quantize_groups`) and pack a float matrix ``w`` (M, K), ``rows``
        rows at a time (a multiple of 16)."""
        if not isinstance(w, np.ndarray) or w.ndim != 2:
            raise TypeError("w must be a 2-D float numpy array")
        M, K = w.shape
        step = max(16, rows // 16 * 16)
        return cls.from_chunks(M, K, group, (quantize_groups(w[i:i + step], group) for i in range(0, M, step)))

    def row(self, m: int) -> np.ndarray:
        """Row ``m`` dequantised (float32 (K,), q * scale): the embedding lookup."""
        if not 0 <= m < self.M:
            raise IndexError(f"row {m} outside 0..{self.M - 1}")
        out = np.empty(self.K, np.float32)
        _native.check(_native.lib().ryz_head4_row(_native.ptr(self.data, "unsigned char"), self.data.nbytes, self.M,
                                                  self.K, self.group, m, _native.ptr(out, "float"), out.size),
                      "reading an int4 head row")
        return out

    @property
    def nbytes(self) -> int:
        """Bytes streamed per GEMV: packed weights and their scales (padding included)."""
        return int(self.data.nbytes)

    @property
    def bits_per_weight(self) -> float:
        """Packed bits per weight, scales and padding included (the 64-byte shape trailer not)."""
        return 8.0 * (self.nbytes - _native.lib().RYZ_HEAD4_TRAILER) / (self.M * self.K)

    def prepare(self, x: np.ndarray, y: np.ndarray) -> PreparedInt4Head:
        """A GEMV reading int8 ``x`` (K,) and writing float32 ``y`` (M,), both owned by the caller."""
        return PreparedInt4Head(self, x, y)

    def gemv(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """float32 (M,): per row, the group-scaled exact integer products summed in float32."""
        xk, t = _one_token(x, self.K), validate.threads(threads)
        y = np.empty(self.M, dtype=np.float32)
        self.prepare(xk, y)(t)
        return y


class PreparedInt4Head:
    """The int4 head's GEMV with its buffers bound once: the decode loop calls it every token."""

    def __init__(self, head: Int4Head, x: np.ndarray, y: np.ndarray):
        if not (isinstance(x, np.ndarray) and x.dtype == np.int8 and x.shape == (head.K,) and x.flags.c_contiguous):
            raise ValueError(f"x must be a C-contiguous int8 array of shape ({head.K},)")
        if not (isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == (head.M,) and y.flags.c_contiguous):
            raise ValueError(f"y must be a C-contiguous float32 array of shape ({head.M},)")
        lib = _native.lib()
        ws_bytes = lib.ryz_head4_workspace_bytes(head.K, head.group)
        _native.check(ws_bytes, "int4 head workspace size")
        self._keep = (head, x, y, np.zeros(ws_bytes, dtype=np.uint8))
        ws = self._keep[3]
        self._args = (_native.ptr(head.data, "unsigned char"), head.data.nbytes, head.M, head.K, head.group,
                      _native.ptr(x, "signed char"), x.size, _native.ptr(y, "float"), y.size,
                      _native.ptr(ws, "unsigned char"), ws.nbytes)

    def __call__(self, threads: int) -> None:
        """Run the GEMV into ``y`` with ``threads`` threads (1 .. the library's limit)."""
        rc = _native.lib().ryz_head4_gemv(*self._args, threads)
        if rc < 0:
            _native.check(rc, "int4 head GEMV")

    def decode_struct(self, h: np.ndarray, norm: np.ndarray, logits: np.ndarray):
        """This GEMV as the head of a decode token's C call (:class:`~ryzlab.core.ops.DecodeChain`):
        the final norm of ``h``, the GEMV and the activation scale, float32 ``logits`` out."""
        return _decode_head(self, "RYZ_HEAD_INT4", h, norm, logits, group=self._keep[0].group)
