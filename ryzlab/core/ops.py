"""numpy in, numpy out: packing ternary weights and running the GEMM/GEMV kernels.

Every call into C goes through :class:`PreparedGemm` (one shape, kernel, thread count and
schedule, owning its workspace and output) or :class:`DecodeChain`; both hand C every
buffer's length, and C checks it again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import native as _native
from . import validate
from .kernels import KernelInfo, info, resolve


def schedules() -> dict[str, int]:
    """Threading schedules of :func:`gemm` and their C codes (``RYZ_SCHED_*`` in ryzlab.h).

    Only "blocks" is ryzlab's; "dynamic1" and "critical" reproduce the fix guide's priority-3
    code as baselines (see kernels_c/README.md)."""
    lib = _native.lib()
    return {"blocks": lib.RYZ_SCHED_BLOCKS, "dynamic1": lib.RYZ_SCHED_DYNAMIC1, "critical": lib.RYZ_SCHED_CRITICAL}


#: Schedule names accepted by :func:`gemm` (codes: :func:`schedules`).
SCHEDULES = ("blocks", "dynamic1", "critical")


def packed_bytes(kernel: KernelInfo, M: int, K: int) -> int:
    """Bytes the packed M x K weights of ``kernel`` occupy (padding included)."""
    size = _native.lib().ryz_packed_bytes(kernel.index, M, K)
    _native.check(size, f"packed size of {M} x {K} for {kernel.name}")
    return int(size)


@dataclass(frozen=True, eq=False)
class PackedWeights:
    """Ternary weights packed once (offline) into the layout one kernel reads.

    Built by :func:`pack`.  The fields are checked against each other and the buffer when the
    object is made (``dataclasses.replace`` included), and C checks the byte count again at
    every call, so an inconsistent object raises instead of reading out of bounds."""

    kernel: str
    M: int
    K: int
    data: np.ndarray  # uint8, the packed bytes
    bits_per_weight: float

    def __post_init__(self) -> None:
        if not isinstance(self.kernel, str):
            raise TypeError(f"PackedWeights.kernel must be a kernel name, got {self.kernel!r}")
        k = info(self.kernel)
        M = validate.dimension(self.M, "PackedWeights.M")
        K = validate.k_dimension(self.K, "PackedWeights.K")
        data = self.data
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 1 or not data.flags.c_contiguous:
            raise TypeError("PackedWeights.data must be a 1-D C-contiguous uint8 numpy array "
                            f"(as ryzlab.pack makes it), got {type(data).__name__} {getattr(data, 'dtype', '')}")
        need = packed_bytes(k, M, K)
        if data.nbytes != need:
            raise ValueError(f"PackedWeights.data holds {data.nbytes} bytes, but {self.kernel} weights of "
                             f"shape {M} x {K} take {need}: the object does not describe its buffer")
        if self.bits_per_weight != k.bits_per_weight:
            raise ValueError(f"PackedWeights.bits_per_weight is {self.bits_per_weight}, but {self.kernel} "
                             f"stores {k.bits_per_weight} bits per weight")

    @property
    def nbytes(self) -> int:
        """Bytes a product streams for the weights (padding included)."""
        return int(self.data.nbytes)

    def __repr__(self) -> str:
        return (
            f"PackedWeights(kernel={self.kernel!r}, M={self.M}, K={self.K}, "
            f"bits_per_weight={self.bits_per_weight}, nbytes={self.nbytes})"
        )


def pack(weights: np.ndarray, kernel: str | None = None) -> PackedWeights:
    """Pack dense int8 M x K ternary weights for ``kernel`` (default: the dispatched one)."""
    k = resolve(kernel)
    w = validate.ternary_weights(weights)
    M, K = w.shape
    validate.dimension(M, "M")
    validate.k_dimension(K)
    out = np.empty(packed_bytes(k, M, K), dtype=np.uint8)
    _native.check(
        _native.lib().ryz_pack(k.index, _native.ptr(w, "signed char"), w.nbytes, M, K,
                               _native.ptr(out, "unsigned char"), out.nbytes),
        f"packing for {k.name}",
    )
    return PackedWeights(k.name, M, K, out, k.bits_per_weight)


def _packed_for(weights: np.ndarray | PackedWeights, kernel: str | None) -> PackedWeights:
    if isinstance(weights, PackedWeights):
        if kernel is not None and kernel != weights.kernel:
            raise ValueError(
                f"weights were packed for kernel {weights.kernel!r}, not {kernel!r}: "
                f"pack them again with ryzlab.pack(w, kernel={kernel!r})"
            )
        resolve(weights.kernel)  # this CPU must run it
        return weights
    return pack(weights, resolve(kernel).name)


def schedule_code(schedule: str) -> int:
    """The C code of a schedule name; raises ValueError naming the valid ones."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}, got {schedule!r}")
    return schedules()[schedule]


def default_threads() -> int:
    """Physical cores available to this process: the default thread count."""
    from .topology import physical_cores

    return physical_cores()


def workspace_bytes(kernel: KernelInfo, M: int, N: int, K: int) -> int:
    """Workspace bytes a product of ``kernel`` needs for N tokens (activation tables, padding)."""
    size = _native.lib().ryz_workspace_bytes(kernel.index, M, N, K)
    _native.check(size, f"workspace size for {kernel.name}")
    return int(size)


class PreparedGemm:
    """One product shape, prepared once: packed weights, N tokens, threads and schedule, with
    its workspace and int32 output (N x M) allocated here and reused by every call.

    The one place that calls ``ryz_gemm`` and ``ryz_bench``: :func:`gemm`, the benchmark
    harness and the tests all go through it."""

    def __init__(self, packed: PackedWeights, n: int = 1, threads: int | None = None, schedule: str = "blocks"):
        if not isinstance(packed, PackedWeights):
            raise TypeError(f"expected PackedWeights (from ryzlab.pack), got {type(packed).__name__}")
        self.kernel = resolve(packed.kernel)
        self.packed = packed
        self.n = validate.dimension(n, "N")
        self.threads = default_threads() if threads is None else validate.threads(threads)
        self.schedule = schedule_code(schedule)
        self.ws = np.zeros(workspace_bytes(self.kernel, packed.M, self.n, packed.K), dtype=np.uint8)
        self.y = np.empty((self.n, packed.M), dtype=np.int32)

    def _args(self, x: np.ndarray) -> tuple:
        p = self.packed
        return (_native.ptr(x, "signed char"), x.nbytes, self.n, _native.ptr(self.y, "int"), self.y.nbytes,
                _native.ptr(self.ws, "unsigned char"), self.ws.nbytes, self.threads, self.schedule), p

    def _check_x(self, x: np.ndarray) -> np.ndarray:
        x2, _ = validate.activations(x, self.packed.K)
        if x2.shape[0] != self.n:
            raise ValueError(f"prepared for N = {self.n} tokens, got activations of shape {x.shape}")
        return x2

    def __call__(self, x: np.ndarray, weights: PackedWeights | None = None) -> np.ndarray:
        """``Y = X . W^T`` (int32, N x M) into the prepared output, which is returned (reused
        by the next call: copy it to keep it).  ``weights``: other packed weights of the same
        kernel and shape to use for this call (one preparation serves every layer's matrix
        of that shape)."""
        x2 = self._check_x(x)
        rest, p = self._args(x2)
        if weights is not None:
            if not isinstance(weights, PackedWeights) or (weights.kernel, weights.M, weights.K) != (p.kernel, p.M, p.K):
                raise ValueError(f"weights must be PackedWeights of kernel {p.kernel!r} and shape {p.M} x {p.K}")
            p = weights
        _native.check(
            _native.lib().ryz_gemm(self.kernel.index, _native.ptr(p.data, "unsigned char"), p.nbytes, p.M, p.K, *rest),
            f"gemm with {self.kernel.name}",
        )
        return self.y

    def bench(self, x: np.ndarray, copies: list[PackedWeights], iters: int) -> float:
        """Seconds for ``iters`` products in C's timing loop, cycling through ``copies`` (same
        kernel and shape as the prepared weights; rotating copies beyond the last-level cache
        keeps the weights cold)."""
        x2 = self._check_x(x)
        for c in copies:
            if not isinstance(c, PackedWeights) or (c.kernel, c.M, c.K) != (self.packed.kernel, self.packed.M, self.packed.K):
                raise ValueError("every copy must be PackedWeights of the prepared kernel and shape")
        ffi = _native.ffi
        bufs = ffi.new("unsigned char *[]", [_native.ptr(c.data, "unsigned char") for c in copies])
        seconds = ffi.new("double *")
        rest, p = self._args(x2)
        _native.check(
            _native.lib().ryz_bench(self.kernel.index, bufs, len(copies), p.nbytes, p.M, p.K, *rest,
                                    validate.positive_int(iters, "iters"), seconds),
            f"bench of {self.kernel.name}",
        )
        return float(seconds[0])


def gemm(
    weights: np.ndarray | PackedWeights,
    activations: np.ndarray,
    kernel: str | None = None,
    threads: int | None = None,
    schedule: str = "blocks",
) -> np.ndarray:
    """Exact ternary product Y = X . W^T as int32.

    ``weights``: dense int8 M x K in {-1, 0, 1} (packed on the fly) or :class:`PackedWeights`.
    ``activations``: int8 N x K, or K for one token (then Y has shape (M,)).  K is at most
    2^23 (:func:`ryzlab.core.validate.max_k`), where every kernel's int32 sums are still exact.
    ``threads``: OpenMP threads for this call only (default: physical cores, at most 1024);
    the setting never leaks into later calls or other libraries.
    """
    packed = _packed_for(weights, kernel)
    x, one_row = validate.activations(activations, packed.K)
    y = PreparedGemm(packed, x.shape[0], threads, schedule)(x)
    return y[0] if one_row else y


class DecodeChain:
    """Steps "(attention ->) RMSNorm -> int8 -> ternary GEMV -> epilogue" that one
    ``ryz_decode_steps`` call runs in a single OpenMP region (kernels_c/decode_steps.c): a whole
    decode token.  Built once: every step reads and writes preallocated buffers, so a call
    allocates nothing in Python.

    ``steps``: tuples ``(in float32 (K,), norm float32 (K,), xq int8 (K,), packed, y int32 (M,),
    row_scales float32 (M,), out float32, epilogue[, attention])`` with epilogue "store",
    "accumulate" or "sqrelu_gate" (``RYZ_EPI_*``) and ``attention`` None or a
    :class:`~ryzlab.core.layer_ops.RopeAttention` run (one row, at the call's position) before
    the step.  ``ws`` serves every step (:func:`workspace_bytes`).  ``head``: None, or a
    ``ryz_decode_head *`` (``decode_struct`` of a prepared int8 or int4 head) that ends the call
    with the token's logits."""

    _FIELDS = {"in": "float", "norm": "float", "xq": "signed char", "y": "int", "row_scales": "float", "out": "float"}
    _ACT = ("in", "norm", "xq")  # fields of the step's ryz_norm_quant_io

    def __init__(self, steps: list[tuple], ws: np.ndarray, head=None):
        lib, ffi = _native.lib(), _native.ffi
        self.head = ffi.NULL if head is None else head
        epilogues = {"store": lib.RYZ_EPI_STORE, "accumulate": lib.RYZ_EPI_ACCUMULATE,
                     "sqrelu_gate": lib.RYZ_EPI_SQRELU_GATE}
        self.count = len(steps)
        self.c = ffi.new("ryz_decode_step[]", self.count)
        self._keep = [ws]
        for c, step in zip(self.c, steps):
            x, norm, xq, packed, y, row_scales, out, epilogue = step[:8]
            attention = step[8] if len(step) > 8 else None
            arrays = {"in": x, "norm": norm, "xq": xq, "y": y, "row_scales": row_scales, "out": out}
            for field, a in arrays.items():
                where = c.act if field in self._ACT else c
                setattr(where, field, _native.ptr(a, self._FIELDS[field]))
                setattr(where, f"{field}_len", a.size)
            self._keep.append(arrays)
            c.kernel = resolve(packed.kernel).index
            c.packed, c.packed_bytes = _native.ptr(packed.data, "unsigned char"), packed.nbytes
            c.M, c.K = packed.M, packed.K
            c.ws, c.ws_bytes = _native.ptr(ws, "unsigned char"), ws.nbytes
            c.epilogue = epilogues[epilogue]
            if attention is not None:
                c.attn = attention.decode_struct()
                self._keep.append(attention)
            self._keep.append(packed)

    def run(self, pos: int, eps: float, min_absmax: float, threads: int, seconds) -> None:
        """Run the steps, attention at position ``pos``; ``seconds`` (a cffi ``double[4]``):
        [0] += time in the GEMVs, [1] += in attention, [2] += in the head, [3] += the rest."""
        rc = _native.lib().ryz_decode_steps(self.c, self.count, self.head, pos, eps, min_absmax, threads, seconds)
        if rc < 0:
            _native.check(rc, "decode steps")
