"""numpy in, numpy out: packing ternary weights and running the GEMM/GEMV kernels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import native as _native
from . import validate
from .kernels import KernelInfo, resolve

#: Threading schedules of :func:`gemm`.  Only "blocks" is ryzlab's; the other two reproduce
#: the fix guide's priority-3 code as baselines (see kernels_c/internal.h).
SCHEDULES = {"blocks": 0, "dynamic1": 1, "critical": 2}


@dataclass(frozen=True, eq=False)
class PackedWeights:
    """Ternary weights packed once (offline) into the layout one kernel reads."""

    kernel: str
    M: int
    K: int
    data: np.ndarray  # uint8, the packed bytes
    bits_per_weight: float

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
    lib = _native.lib()
    size = lib.ryz_packed_bytes(k.index, M, K)
    _native.check(size, "ryz_packed_bytes")
    out = np.empty(size, dtype=np.uint8)
    _native.check(
        lib.ryz_pack(k.index, _native.ptr(w, "signed char"), M, K, _native.ptr(out, "unsigned char"), size),
        f"packing for {k.name}",
    )
    return PackedWeights(k.name, M, K, out, k.bits_per_weight)


def _packed_for(weights: np.ndarray | PackedWeights, kernel: str | None) -> tuple[KernelInfo, PackedWeights]:
    if isinstance(weights, PackedWeights):
        if kernel is not None and kernel != weights.kernel:
            raise ValueError(
                f"weights were packed for kernel {weights.kernel!r}, not {kernel!r}: "
                f"pack them again with ryzlab.pack(w, kernel={kernel!r})"
            )
        return resolve(weights.kernel), weights
    k = resolve(kernel)
    return k, pack(weights, k.name)


def schedule_code(schedule: str) -> int:
    """The C code of a schedule name; raises ValueError naming the valid ones."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}, got {schedule!r}")
    return SCHEDULES[schedule]


def default_threads() -> int:
    """Physical cores available to this process: the default thread count."""
    from .topology import physical_cores

    return physical_cores()


def gemm(
    weights: np.ndarray | PackedWeights,
    activations: np.ndarray,
    kernel: str | None = None,
    threads: int | None = None,
    schedule: str = "blocks",
) -> np.ndarray:
    """Exact ternary product Y = X . W^T as int32.

    ``weights``: dense int8 M x K in {-1, 0, 1} (packed on the fly) or :class:`PackedWeights`.
    ``activations``: int8 N x K, or K for one token (then Y has shape (M,)).
    ``threads``: OpenMP threads for this call only (default: physical cores); the setting
    never leaks into later calls or other libraries.
    """
    k, packed = _packed_for(weights, kernel)
    x, one_row = validate.activations(activations, packed.K)
    t = default_threads() if threads is None else validate.positive_int(threads, "threads")
    sched = schedule_code(schedule)
    M, K, N = packed.M, packed.K, x.shape[0]
    lib = _native.lib()
    ws_bytes = lib.ryz_workspace_bytes(k.index, M, N, K)
    _native.check(ws_bytes, "ryz_workspace_bytes")
    ws = np.empty(ws_bytes, dtype=np.uint8)
    y = np.empty((N, M), dtype=np.int32)
    _native.check(
        lib.ryz_gemm(
            k.index, _native.ptr(packed.data, "unsigned char"), M, K, _native.ptr(x, "signed char"), N,
            _native.ptr(y, "int"), _native.ptr(ws, "unsigned char"), ws_bytes, t, sched,
        ),
        f"gemm with {k.name}",
    )
    return y[0] if one_row else y
