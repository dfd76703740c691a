"""The public boundary: inputs that once crashed or lied now raise, and a fuzzer finds no signal."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ryzlab
from ryzlab.core.head import Int8Head
from ryzlab.core.validate import max_k, max_threads


@pytest.fixture
def packed():
    rng = np.random.default_rng(0)
    w = rng.integers(-1, 2, (64, 300), dtype=np.int8)
    return w, ryzlab.pack(w), rng.integers(-128, 128, 300, dtype=np.int8)


@pytest.mark.parametrize("change", [{"M": 4_000_000}, {"K": 10**6}, {"M": 0}, {"K": max_k() + 1}])
def test_replace_with_other_sizes_is_refused(packed, change):
    _, p, _ = packed
    with pytest.raises(ValueError):
        dataclasses.replace(p, **change)


def test_replace_with_short_buffer_is_refused(packed):
    _, p, _ = packed
    with pytest.raises(ValueError, match="does not describe its buffer"):
        dataclasses.replace(p, data=p.data[:100])
    with pytest.raises(TypeError):
        dataclasses.replace(p, data=p.data.view(np.int8))


@pytest.mark.parametrize("field, value", [("M", 4_000_000), ("K", 10**6), ("data", "short")])
def test_forged_fields_are_refused_by_c(packed, field, value):
    """Fields written behind validation's back: C learns the buffer's length and refuses."""
    w, p, x = packed
    if value == "short":
        value = p.data[:100]
    object.__setattr__(p, field, value)
    with pytest.raises((ryzlab.KernelCallError, ValueError)):
        ryzlab.gemm(p, np.zeros(p.K, np.int8) if field == "K" and p.K < 10**6 else x)


def test_head_is_checked_like_packed_weights():
    rng = np.random.default_rng(1)
    h = Int8Head.from_int8(rng.integers(-127, 128, (40, 70), dtype=np.int8), np.ones(40, np.float32))
    x = rng.integers(-128, 128, 70, dtype=np.int8)
    for change in ({"M": 4_000_000}, {"data": h.data[:100]}, {"scales": np.ones(3, np.float32)}):
        with pytest.raises((ValueError, TypeError)):
            dataclasses.replace(h, **change)
    object.__setattr__(h, "M", 4_000_000)
    with pytest.raises(ryzlab.KernelCallError, match="byte count"):
        h.gemv_int(x)


@pytest.mark.parametrize("threads", [10**7, max_threads() + 1])
def test_absurd_thread_count_is_a_value_error(packed, threads):
    _, p, x = packed
    with pytest.raises(ValueError, match="threads must be <= 1024"):
        ryzlab.gemm(p, x, threads=threads)


def test_thread_limit_itself_works(packed):
    w, p, x = packed
    np.testing.assert_array_equal(ryzlab.gemm(p, x, threads=max_threads()), ryzlab.reference.gemm(w, x))


def test_k_above_the_exact_limit_is_a_value_error():
    """The true result of this product is -2^32; int32 would wrap it to -2^31 silently."""
    k = 1 << 25
    with pytest.raises(ValueError, match="2\\^23"):
        ryzlab.gemm(np.ones((1, k), np.int8), np.full((1, k), -128, np.int8))


def test_fuzz_finds_no_signal():
    """Hostile arguments in a child process: a documented exception or the exact result."""
    script = Path(__file__).with_name("fuzz_boundary.py")
    examples = os.environ.get("RYZLAB_FUZZ_EXAMPLES", "150")
    done = subprocess.run([sys.executable, str(script), examples], capture_output=True, text=True, timeout=600)
    last = [line for line in done.stdout.splitlines() if line.startswith("example:")][-1:]
    assert done.returncode == 0, (
        f"fuzzer exited with {done.returncode} (negative: killed by signal {-done.returncode}); "
        f"last example {last}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    )
