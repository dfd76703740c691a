"""The kernel registry as Python sees it: CPU features, runnable kernels, dispatch.

The registry itself lives in C (``kernels_c/kernels.def``); this module only reads it.
Dispatch picks the highest-ranked kernel this CPU supports.  ``RYZLAB_KERNEL`` or a
``kernel=`` argument forces one, and ``RYZLAB_MAX_ISA`` / :func:`limit_isa` make the library
behave as a lesser CPU (scalar, avx2) so that lower dispatch tiers can be tested here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from . import native as _native
from ..errors import UnsupportedKernelError

#: Feature sets kept by each ISA cap of :func:`limit_isa`.
ISA_LEVELS: dict[str, tuple[str, ...]] = {
    "scalar": (),
    "avx2": ("avx2", "fma"),
    "avx512": (),  # no cap
}


@dataclass(frozen=True)
class KernelInfo:
    """One kernel of the registry."""

    index: int
    name: str
    isa: str
    method: str  # "ref", "lut" or "mad"
    features: tuple[str, ...]  # CPU features it needs
    format: str  # weight format it reads
    bits_per_weight: float
    rank: int
    row_tile: int
    k_align: int

    @property
    def supported(self) -> bool:
        """Whether this CPU (under the current ISA cap) can run it."""
        return bool(_native.lib().ryz_kernel_supported(self.index))


def _feature_names() -> list[str]:
    lib = _native.lib()
    names, bit = [], 0
    while (p := lib.ryz_cpu_feature_name(bit)) != _native.ffi.NULL:
        names.append(_native.string(p))
        bit += 1
    return names


def _apply_env_cap() -> None:
    level = os.environ.get("RYZLAB_MAX_ISA")
    if level:
        _set_cap(level)


def _set_cap(level: str | None) -> None:
    names = _feature_names()
    if level is None or level == "avx512":
        mask = (1 << 64) - 1
    elif level in ISA_LEVELS:
        mask = sum(1 << names.index(f) for f in ISA_LEVELS[level])
    else:
        raise ValueError(f"ISA level must be one of {sorted(ISA_LEVELS)}, got {level!r}")
    _native.lib().ryz_set_feature_mask(mask)


_cap_applied = False


def _ready():
    global _cap_applied
    lib = _native.lib()
    if not _cap_applied:
        _cap_applied = True
        _apply_env_cap()
    return lib


def cpu_features() -> dict[str, bool]:
    """CPU features detected at run time (cpuid + xgetbv), under the current ISA cap."""
    mask = _ready().ryz_cpu_features()
    return {name: bool(mask >> bit & 1) for bit, name in enumerate(_feature_names())}


def registry() -> list[KernelInfo]:
    """Every kernel compiled into the library, runnable here or not, in registry order."""
    lib = _ready()
    out = []
    for i in range(lib.ryz_kernel_count()):
        d = lib.ryz_kernel(i)
        features = _native.string(d.features)
        out.append(
            KernelInfo(
                index=i,
                name=_native.string(d.name),
                isa=_native.string(d.isa),
                method=_native.string(d.method),
                features=tuple(features.split("+")) if features else (),
                format=_native.string(d.format),
                bits_per_weight=d.bits_per_weight,
                rank=d.rank,
                row_tile=d.row_tile,
                k_align=d.k_align,
            )
        )
    return out


def kernels() -> list[str]:
    """Names of the kernels this CPU can run, best (dispatch's choice) first."""
    runnable = [k for k in registry() if k.supported]
    return [k.name for k in sorted(runnable, key=lambda k: -k.rank)]


def info(name: str) -> KernelInfo:
    """The registry entry of a kernel, whether or not this CPU can run it."""
    for k in registry():
        if k.name == name:
            return k
    names = ", ".join(k.name for k in registry())
    raise UnsupportedKernelError(f"unknown kernel {name!r}; the registry has: {names}")


def resolve(kernel: str | None = None) -> KernelInfo:
    """The kernel a call will use: ``kernel``, else ``RYZLAB_KERNEL``, else the best one.

    Raises :class:`UnsupportedKernelError` when it does not exist or this CPU lacks what it
    needs (never an illegal-instruction crash).
    """
    if kernel is not None and not isinstance(kernel, str):
        raise TypeError(f"kernel must be a kernel name (str) or None, got {kernel!r}")
    name = kernel or os.environ.get("RYZLAB_KERNEL") or kernels()[0]
    k = info(name)
    if not k.supported:
        have = ", ".join(f for f, on in cpu_features().items() if on) or "baseline x86-64 only"
        cap = os.environ.get("RYZLAB_MAX_ISA")
        where = f"this CPU (capped at {cap!r} by RYZLAB_MAX_ISA)" if cap else "this CPU"
        raise UnsupportedKernelError(
            f"kernel {name!r} needs CPU features {'+'.join(k.features)}, but {where} has "
            f"{have}; runnable kernels: {', '.join(kernels())}"
        )
    return k


@contextlib.contextmanager
def limit_isa(level: str) -> Iterator[None]:
    """Within the block, act as a CPU that has only ``level`` ("scalar", "avx2", "avx512").

    Used to test dispatch tiers this machine would never choose.
    """
    _ready()
    _set_cap(level)
    try:
        yield
    finally:
        _set_cap(os.environ.get("RYZLAB_MAX_ISA"))
