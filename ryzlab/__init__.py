"""ryzlab: a performance research workbench for ternary-weight (BitNet b1.58) kernels.

Public API (numpy in, numpy out)::

    ryzlab.cpu_features()            # {"avx2": True, "avx512vnni": True, ...}
    ryzlab.kernels()                 # runnable kernels, dispatch's choice first
    p = ryzlab.pack(w)               # w: int8 M x K in {-1, 0, 1}
    y = ryzlab.gemm(p, x)            # x: int8 N x K (or K); y: int32 N x M (or M), exact
    ryzlab.reference.gemm(w, x)      # the numpy oracle

    m = ryzlab.load("path/to/bitnet-b1.58-2B-4T")   # or a .gguf file, or a shape name
    m.forward(ids)                   # float32 logits (T, vocab) at every position
    m.generate(ids, 32)              # new token ids (greedy; temperature/top_k/seed/stream)

The package is layered by data flow, each layer importing only those before it:
``core`` (kernels) -> ``model`` (the BitNet decoder) -> ``measure`` (timing, peers) ->
``lab`` (runs, results, report) -> ``cli``.
"""

from .core import reference
from .core.kernels import KernelInfo, cpu_features, kernels, limit_isa, registry
from .core.ops import SCHEDULES, PackedWeights, gemm, pack
from .errors import KernelCallError, LibraryNotBuiltError, RyzlabError, UnsupportedKernelError



def load(path, *, kernel=None, head="int8", threads=None, max_context=4096):
    """A BitNet b1.58 model over a checkpoint (Hugging Face directory or GGUF file), or over
    random weights for a shape name of ``ryzlab.model.CONFIGS``.  See
    :func:`ryzlab.model.sources.load` (imported only when called)."""
    from .model.sources import load as _load

    return _load(path, kernel=kernel, head=head, threads=threads, max_context=max_context)


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
    "load",
    "pack",
    "reference",
    "registry",
]
