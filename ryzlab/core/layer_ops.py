"""numpy in, numpy out: the float steps of a transformer layer in C (kernels_c/attention.c,
kernels_c/rows_ops.c), validated before any pointer reaches C.

* :func:`attention`: causal grouped-query attention over a float32 KV cache, for one query
  position (decode) or T of them (prefill); :func:`attention_isa` says which code path runs.
* :class:`RopeAttention`: RoPE + KV-cache write + attention of one layer in one C call, bound
  once to the model's buffers (prefill calls it every layer; decode hands its
  :meth:`~RopeAttention.decode_struct` to the token's :class:`~ryzlab.core.ops.DecodeChain`).
* :func:`rmsnorm_quant_rows`, :func:`dequant_rows`: the decode step's RMSNorm + int8 and
  dequantising epilogues over many tokens, each row exactly as a decode step computes it.
"""

from __future__ import annotations

import numpy as np

from . import native as _native
from . import validate


def _f32(a: object, name: str, ndim: int | None = None, writable: bool = False) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != np.float32:
        raise TypeError(f"{name} must have dtype float32, got {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous, got strides {a.strides}")
    if writable and not a.flags.writeable:
        raise ValueError(f"{name} must be writable")
    return a


def attention_isa() -> str:
    """The attention code path on this CPU (under the ISA cap): "avx512" or "sse2"."""
    return _native.string(_native.lib().ryz_attention_isa())


def _fptr(a: np.ndarray):
    return _native.ptr(a, "float")


def _wptr(a: np.ndarray, ctype: str):
    """A pointer C writes through (cffi refuses a read-only buffer)."""
    return _native.ffi.from_buffer(f"{ctype}[]", a, require_writable=True)


def attention(q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray, p0: int, threads: int = 1) -> np.ndarray:
    """Causal GQA attention: ``q`` (T, heads, head_dim) float32 at positions p0 .. p0+T-1
    against one layer's caches (kv_heads, max_context, head_dim) float32, which must already
    hold positions [0, p0 + T).  Query head h reads KV head h // (heads // kv_heads); query t
    attends to positions [0, p0 + t].  Returns (T, heads, head_dim) float32."""
    q = _f32(q, "q", 3)
    k_cache, v_cache = _f32(k_cache, "k_cache", 3), _f32(v_cache, "v_cache", 3)
    if k_cache.shape != v_cache.shape:
        raise ValueError(f"k_cache and v_cache differ in shape: {k_cache.shape} vs {v_cache.shape}")
    T, heads, d = q.shape
    kvh, maxc, dk = k_cache.shape
    if dk != d:
        raise ValueError(f"q has head_dim {d}, the caches {dk}")
    if heads % kvh:
        raise ValueError(f"heads ({heads}) must be a multiple of kv_heads ({kvh})")
    if isinstance(p0, bool) or not isinstance(p0, (int, np.integer)) or not 0 <= p0 <= maxc - T:
        raise ValueError(f"p0 must be an int in [0, {maxc - T}] (max_context {maxc} - T {T}), got {p0!r}")
    threads = validate.threads(threads)
    out = np.empty_like(q)
    rc = _native.lib().ryz_attention(_fptr(q), q.size, heads * d, _fptr(k_cache), k_cache.size, _fptr(v_cache),
                                     v_cache.size, maxc, T, int(p0), heads, kvh, d, _fptr(out), out.size,
                                     heads * d, threads)
    _native.check(rc, "attention")
    return out


class RopeAttention:
    """One layer's "RoPE q and k, write k and v to the cache, attend" (``ryz_rope_attention``)
    bound to fixed buffers: ``qkv`` (rows, heads*d + 2*kv_heads*d) float32, the layer's caches
    (kv_heads, max_context, d), the RoPE tables (max_context, d/2) and ``out`` (rows, heads*d).
    Calls run on the first T rows of qkv and out."""

    def __init__(self, qkv: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray, cos: np.ndarray,
                 sin: np.ndarray, out: np.ndarray, heads: int):
        qkv, out = _f32(qkv, "qkv", writable=True), _f32(out, "out", writable=True)
        k_cache = _f32(k_cache, "k_cache", 3, writable=True)
        v_cache = _f32(v_cache, "v_cache", 3, writable=True)
        cos, sin = _f32(cos, "cos", 2), _f32(sin, "sin", 2)
        kvh, maxc, d = k_cache.shape
        if v_cache.shape != k_cache.shape or cos.shape != (maxc, d // 2) or sin.shape != cos.shape:
            raise ValueError("caches and RoPE tables must be (kv_heads, max_context, d) and (max_context, d/2)")
        row = (heads + 2 * kvh) * d
        if qkv.size % row or out.size % (heads * d) or qkv.size // row != out.size // (heads * d):
            raise ValueError(f"qkv must hold rows of {row} floats and out as many rows of {heads * d}")
        self.rows, self.max_context = qkv.size // row, maxc
        self._keep = (qkv, k_cache, v_cache, cos, sin, out)
        self._pre = (_wptr(qkv, "float"), qkv.size)
        self._mid = (_fptr(cos), _fptr(sin), cos.size, _wptr(k_cache, "float"), k_cache.size,
                     _wptr(v_cache, "float"), v_cache.size, maxc, heads, kvh, d, _wptr(out, "float"), out.size)
        self._fn = _native.lib().ryz_rope_attention
        self._struct = None

    def decode_struct(self):
        """The same binding as a ``ryz_decode_attn *`` for a decode chain (one row per call)."""
        if self._struct is None:
            (cos, sin, table_len, k, k_len, v, v_len, maxc, heads, kvh, d, out, out_len) = self._mid
            self._struct = _native.ffi.new("ryz_decode_attn *", {
                "qkv": self._pre[0], "qkv_len": self._pre[1], "cos": cos, "sin": sin, "table_len": table_len,
                "k_cache": k, "k_len": k_len, "v_cache": v, "v_len": v_len, "max_context": maxc, "heads": heads,
                "kv_heads": kvh, "head_dim": d, "out": out, "out_len": out_len})
        return self._struct

    def __call__(self, T: int, p0: int, threads: int) -> None:
        """Rows [0, T) at positions p0 .. p0+T-1 (C checks the bounds again)."""
        rc = self._fn(*self._pre, T, p0, *self._mid, threads)
        if rc < 0:
            _native.check(rc, "rope + attention")


def rmsnorm_quant_rows(x: np.ndarray, w: np.ndarray, eps: float, min_absmax: float, q: np.ndarray,
                       scales: np.ndarray, threads: int = 1) -> None:
    """Each row of ``x`` (rows, n) float32 RMS-normalised with weight ``w`` (n,) and quantised
    per row (absmax int8) into ``q`` (rows, n) int8 with scales (rows,) float32."""
    x, w, scales = _f32(x, "x", 2), _f32(w, "w", 1), _f32(scales, "scales", 1, writable=True)
    rows, n = x.shape
    if not (isinstance(q, np.ndarray) and q.dtype == np.int8 and q.shape == x.shape and q.flags.c_contiguous):
        raise ValueError(f"q must be a C-contiguous int8 array of shape {x.shape}")
    if w.shape != (n,) or scales.shape != (rows,):
        raise ValueError(f"w must have shape ({n},) and scales ({rows},)")
    rc = _native.lib().ryz_rmsnorm_quant_rows(_fptr(x), x.size, _fptr(w), w.size, rows, n, eps, min_absmax,
                                              _wptr(q, "signed char"), q.size, _wptr(scales, "float"),
                                              scales.size, validate.threads(threads))
    _native.check(rc, "RMSNorm + quantisation of rows")


def epilogue_code(epilogue: str) -> int:
    lib = _native.lib()
    codes = {"store": lib.RYZ_EPI_STORE, "accumulate": lib.RYZ_EPI_ACCUMULATE, "sqrelu_gate": lib.RYZ_EPI_SQRELU_GATE}
    if epilogue not in codes:
        raise ValueError(f"epilogue must be one of {sorted(codes)}, got {epilogue!r}")
    return codes[epilogue]


def dequant_rows(y: np.ndarray, row_scales: np.ndarray, x_scales: np.ndarray, out: np.ndarray, epilogue: str,
                 threads: int = 1) -> None:
    """int32 ``y`` (rows, M) times ``row_scales`` (M,) / ``x_scales`` (rows,) into ``out``:
    stored or accumulated (rows, M), or the squared-ReLU gate of the fused gate|up halves
    (rows, M/2)."""
    code = epilogue_code(epilogue)
    if not (isinstance(y, np.ndarray) and y.dtype == np.int32 and y.ndim == 2 and y.flags.c_contiguous):
        raise ValueError("y must be a 2-D C-contiguous int32 array")
    rows, M = y.shape
    row_scales, x_scales = _f32(row_scales, "row_scales", 1), _f32(x_scales, "x_scales", 1)
    out = _f32(out, "out", 2, writable=True)
    want = (rows, M // 2) if epilogue == "sqrelu_gate" else (rows, M)
    if row_scales.shape != (M,) or x_scales.shape != (rows,) or out.shape != want:
        raise ValueError(f"row_scales must be ({M},), x_scales ({rows},) and out {want}")
    rc = _native.lib().ryz_dequant_rows(_native.ptr(y, "int"), y.size, _fptr(row_scales), M, _fptr(x_scales), rows,
                                        rows, M, _wptr(out, "float"), out.size, code, validate.threads(threads))
    _native.check(rc, "dequantisation of rows")
