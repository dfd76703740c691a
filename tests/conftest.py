"""Shared fixtures: the kernels of the registry, each skipped where this CPU lacks its ISA."""

from __future__ import annotations

import os

import numpy as np
import pytest

import ryzlab
from ryzlab.core.kernels import info as kernel_info

ALL_KERNELS = [k.name for k in ryzlab.registry()]
#: Under `make sanitize` everything runs ~10x slower; random sweeps shrink accordingly.
SANITIZE = bool(os.environ.get("RYZLAB_SANITIZE"))


@pytest.fixture(params=ALL_KERNELS)
def kernel(request) -> str:
    name = request.param
    info = kernel_info(name)
    if not info.supported:
        pytest.skip(f"{name} needs {'+'.join(info.features)}, which this CPU lacks")
    return name


def problem(rng: np.random.Generator, M: int, K: int, N: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform ternary weights and full-range int8 activations (-128 included)."""
    w = rng.integers(-1, 2, size=(M, K), dtype=np.int8)
    x = rng.integers(-128, 128, size=(N, K), dtype=np.int8)
    return w, x
