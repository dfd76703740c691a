"""Float operations the decoders share: RMSNorm, RoPE tables, token checks, BLAS threads."""

from __future__ import annotations

import functools
import math

import numpy as np
from threadpoolctl import ThreadpoolController

from .config import Config

def rmsnorm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """``x / sqrt(mean(x*x) + eps) * weight``: float32 out, the mean in float64."""
    x = x.astype(np.float32, copy=False)
    r = np.float32(1.0 / math.sqrt(float(np.dot(x, x)) / x.size + eps))
    y = x * r
    y *= weight
    return y


#: The quantiser's lower bound on max|x|, as float32 (ryzlab.quant.quantize_activations).
MIN_ABSMAX = float(np.float32(1e-5))


def rope_tables(cfg: Config, max_context: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 cos and sin, shape (max_context, head_dim / 2), rotate-half convention."""
    half = cfg.head_dim // 2
    freqs = cfg.rope_theta ** (-np.arange(half, dtype=np.float64) * 2.0 / cfg.head_dim)
    ang = np.arange(max_context, dtype=np.float64)[:, None] * freqs[None, :]
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)




@functools.cache
def _threadpools() -> ThreadpoolController:
    # Inspecting the loaded libraries is the slow part: once per process (numpy's BLAS is
    # loaded with numpy, before any model exists).
    return ThreadpoolController()


def blas_threads(n: int):
    """Context manager: numpy's BLAS limited to ``n`` threads inside the block (restored after).

    A decode step runs its numpy parts (attention, norms) on one thread: the BLAS thread pool
    otherwise competes with the kernels' OpenMP threads (its idle workers spin), which on a
    2-core machine made attention at context 2048 ~30x slower."""
    return _threadpools().limit(limits=n, user_api="blas")


def check_token(token: object, vocab: int) -> int:
    if isinstance(token, (bool, np.bool_)) or not isinstance(token, (int, np.integer)):
        raise TypeError(f"token must be an int, got {type(token).__name__}")
    if not 0 <= int(token) < vocab:
        raise ValueError(f"token must be in [0, {vocab}), got {token}")
    return int(token)
