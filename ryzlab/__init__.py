"""ryzlab: a performance research workbench for ternary-weight (BitNet b1.58) kernels.

Public API (numpy in, numpy out)::

    ryzlab.cpu_features()            # {"avx2": True, "avx512vnni": True, ...}
    ryzlab.kernels()                 # runnable kernels, dispatch's choice first
    p = ryzlab.pack(w)               # w: int8 M x K in {-1, 0, 1}
    y = ryzlab.gemm(p, x)            # x: int8 N x K (or K); y: int32 N x M (or M), exact
    ryzlab.reference.gemm(w, x)      # the numpy oracle

The package is layered by data flow, each layer importing only those before it:
``core`` (kernels) -> ``model`` (the BitNet decoder) -> ``measure`` (timing, peers) ->
``lab`` (runs, results, report) -> ``cli``.
"""

from .core import reference
from .core.kernels import KernelInfo, cpu_features, kernels, limit_isa, registry
from .core.ops import SCHEDULES, PackedWeights, gemm, pack
from .errors import KernelCallError, LibraryNotBuiltError, RyzlabError, UnsupportedKernelError

__all__ = [
    "SCHEDULES",
    "KernelCallError",
    "KernelInfo",
    "LibraryNotBuiltError",
    "PackedWeights",
    "RyzlabError",
    "UnsupportedKernelError",
    "cpu_features",
    "gemm",
    "kernels",
    "limit_isa",
    "pack",
    "reference",
    "registry",
]
