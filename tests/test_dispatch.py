"""Registry and dispatch: runtime detection, forced kernels, forced lower tiers, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import ryzlab
from ryzlab import reference
from ryzlab.core.kernels import info, registry, resolve

REQUIRED_FEATURES = {"avx2", "avx512f", "avx512bw", "avx512vnni", "avx512vbmi"}


def test_cpu_features_reports_required_keys():
    features = ryzlab.cpu_features()
    assert REQUIRED_FEATURES <= set(features)
    assert all(isinstance(v, bool) for v in features.values())


def test_kernels_best_first_and_runnable():
    names = ryzlab.kernels()
    ranks = [info(n).rank for n in names]
    assert ranks == sorted(ranks, reverse=True)
    assert {"ref", "lut_scalar"} <= set(names)  # baseline kernels run on any x86-64
    assert resolve(None).name == names[0]


def test_registry_describes_every_kernel():
    for k in registry():
        assert k.method in {"ref", "lut", "mad"}
        assert k.bits_per_weight in (1.6, 2.0, 8.0)
        assert k.isa in {"scalar", "avx2", "avx512"}
        assert (k.isa == "scalar") == (k.features == ())


@pytest.mark.parametrize("level, forbidden", [("avx2", "avx512"), ("scalar", "avx")])
def test_forced_lower_tier(level, forbidden):
    """Act as a CPU without AVX-512 (a Zen 3 laptop like the guide's) or without any SIMD."""
    rng = np.random.default_rng(0)
    w = rng.integers(-1, 2, (33, 300), dtype=np.int8)
    x = rng.integers(-128, 128, (2, 300), dtype=np.int8)
    with ryzlab.limit_isa(level):
        names = ryzlab.kernels()
        assert names and not any(forbidden in info(n).isa for n in names)
        assert not any(ryzlab.cpu_features()[f] for f in ryzlab.cpu_features() if f.startswith(forbidden))
        np.testing.assert_array_equal(ryzlab.gemm(w, x), reference.gemm(w, x))  # dispatched tier
        for k in registry():
            if forbidden in k.isa:
                with pytest.raises(ryzlab.UnsupportedKernelError, match="needs CPU features"):
                    ryzlab.gemm(w, x, kernel=k.name)
    assert ryzlab.kernels()[0] == resolve(None).name  # the cap is lifted on exit


def test_packed_weights_refused_under_a_lower_tier():
    w = np.zeros((4, 64), dtype=np.int8)
    best = ryzlab.kernels()[0]
    if info(best).isa == "scalar":
        pytest.skip("no SIMD kernel on this CPU")
    p = ryzlab.pack(w)
    with ryzlab.limit_isa("scalar"), pytest.raises(ryzlab.UnsupportedKernelError):
        ryzlab.gemm(p, np.zeros(64, dtype=np.int8))


def test_kernel_keyword_and_environment(monkeypatch):
    monkeypatch.setenv("RYZLAB_KERNEL", "lut_scalar")
    assert resolve(None).name == "lut_scalar"
    assert ryzlab.pack(np.zeros((2, 8), dtype=np.int8)).kernel == "lut_scalar"
    assert resolve("ref").name == "ref"  # the keyword wins over the environment


def test_unknown_kernel_names_the_registry():
    with pytest.raises(ryzlab.UnsupportedKernelError, match="registry has: .*ref"):
        ryzlab.gemm(np.zeros((2, 2), np.int8), np.zeros(2, np.int8), kernel="nope")


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_environment_cap_in_a_fresh_process():
    out = _python("import ryzlab; print(ryzlab.kernels()[0])", RYZLAB_MAX_ISA="avx2")
    assert out.returncode == 0, out.stderr
    assert "avx512" not in out.stdout


def test_missing_library_is_a_clear_error():
    code = "import ryzlab\ntry:\n    ryzlab.kernels()\nexcept ryzlab.LibraryNotBuiltError as e:\n    print('CLEAR', e)"
    out = _python(code, RYZLAB_LIB="/nonexistent/libryzlab.so")
    assert out.returncode == 0, out.stderr
    assert "CLEAR" in out.stdout and "make build" in out.stdout


def test_numpy_parts_work_without_the_library():
    code = ("import numpy as np, ryzlab\n"
            "print(ryzlab.reference.gemm(np.ones((2, 3), np.int8), np.ones(3, np.int8)).tolist())")
    out = _python(code, RYZLAB_LIB="/nonexistent/libryzlab.so")
    assert out.returncode == 0 and "[3, 3]" in out.stdout, out.stderr


def test_registry_has_every_tier():
    """A lost registry line must fail loudly, not shrink every registry-driven test."""
    names = {k.name for k in ryzlab.registry()}
    for tier in ("ref", "lut_scalar", "lut_avx2", "mad_avx2", "lut_avx512", "mad_avx512vnni",
                 "mad_t5_scalar", "mad_t5_avx2", "mad_t5_avx512vnni"):
        assert tier in names
