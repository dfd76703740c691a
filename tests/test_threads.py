"""Thread control of ryzlab.gemm: per-call only, validated, schedules named, default = cores."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import problem

import ryzlab
from ryzlab import reference
from ryzlab.core import native as _native
from ryzlab.core import ops as api
from ryzlab.core import topology as context


@pytest.fixture
def small():
    return problem(np.random.default_rng(7), 37, 300, 3)


def test_threads_do_not_leak(small):
    """threads=3 applies to that call only: the OpenMP default and numpy are unaffected."""
    w, x = small
    before = _native.lib().ryz_omp_max_threads()
    for t in sorted({3, before + 1}):  # before + 1: a leak is visible whatever the default is
        np.testing.assert_array_equal(ryzlab.gemm(w, x, threads=t), reference.gemm(w, x))
        assert _native.lib().ryz_omp_max_threads() == before, f"threads={t} leaked into the OpenMP default"
    np.testing.assert_array_equal(ryzlab.gemm(w, x, threads=1), reference.gemm(w, x))
    assert _native.lib().ryz_omp_max_threads() == before
    a = np.arange(64 * 64, dtype=np.float64).reshape(64, 64) / 4096
    assert np.allclose(a @ np.eye(64), a)
    assert np.allclose(np.linalg.solve(a + 64 * np.eye(64), (a + 64 * np.eye(64)) @ np.ones(64)), np.ones(64))


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError),
                                        ("2", TypeError)])
def test_bad_thread_counts_rejected(small, bad, error):
    w, x = small
    with pytest.raises(error, match="threads"):
        ryzlab.gemm(w, x, threads=bad)


def test_numpy_integer_threads_accepted(small):
    w, x = small
    np.testing.assert_array_equal(ryzlab.gemm(w, x, threads=np.int64(2)), reference.gemm(w, x))


def test_unknown_schedule_names_the_valid_ones(small):
    w, x = small
    with pytest.raises(ValueError) as exc:
        ryzlab.gemm(w, x, threads=2, schedule="static")
    message = str(exc.value)
    assert "static" in message
    for name in ryzlab.SCHEDULES:
        assert repr(name) in message


class _SpyLib:
    """Delegates to the real library and records the thread count each ryz_gemm call gets."""

    def __init__(self, real):
        self._real, self.threads = real, []

    def __getattr__(self, name):
        return getattr(self._real, name)

    def ryz_gemm(self, *args):
        self.threads.append(args[12])  # (kernel, packed, packed_bytes, M, K, x, x_bytes, N, y, y_bytes, ws, ws_bytes, threads, schedule)
        return self._real.ryz_gemm(*args)


@pytest.fixture
def spy(monkeypatch):
    spy = _SpyLib(_native.lib())
    monkeypatch.setattr(_native, "lib", lambda: spy)
    return spy


def test_default_threads_is_physical_cores(small, spy):
    w, x = small
    assert api.default_threads() == context.physical_cores()
    np.testing.assert_array_equal(ryzlab.gemm(w, x), reference.gemm(w, x))
    ryzlab.gemm(w, x, threads=2)
    assert spy.threads == [context.physical_cores(), 2]


def test_default_threads_follows_the_core_count(small, spy, monkeypatch):
    """The default is read from context.physical_cores() at each call (not cached, not 2)."""
    w, x = small
    monkeypatch.setattr(context, "physical_cores", lambda: 5)
    assert api.default_threads() == 5
    np.testing.assert_array_equal(ryzlab.gemm(w, x), reference.gemm(w, x))
    assert spy.threads == [5]


def test_compute_bench_samples_seconds_per_op():
    """The probe a GEMM's scaling is compared with (notebook 03): samples are seconds per op,
    so 1-thread / t-thread samples is a speedup; unknown probes are refused by name."""
    from ryzlab.measure import harness

    lib = _native.lib()
    names = [_native.string(lib.ryz_probe_name(i)) for i in range(lib.ryz_probe_count())
             if lib.ryz_probe_supported(i)]
    if not names:
        pytest.skip("no compute probe runs on this CPU")
    benches = {t: harness.ComputeBench(names[0], t, min_sample_s=0.001) for t in (1, 2)}
    for b in benches.values():
        assert b.sample() == b._seconds[0] / b._ops[0]  # seconds per op, not per call
    # every thread runs the calibrated iterations, so ops per iteration scale with threads
    # and a ratio of samples compares equal work rates
    assert benches[2]._ops[0] / benches[2].iters == 2 * benches[1]._ops[0] / benches[1].iters
    with pytest.raises(ValueError, match="known:"):
        harness.ComputeBench("no_such_probe")
