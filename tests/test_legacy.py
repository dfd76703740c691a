"""The fix guide's broken T-MAC encodings: they compute what we say they do, and are wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ryzlab
from ryzlab import reference
from ryzlab.core import legacy

BROKEN = [legacy.sign_bit_table_gemm, legacy.broadcast_gemm, legacy.guide_fix_gemm]


@pytest.fixture(scope="module")
def guide_errors() -> list[dict]:
    return legacy.measure_guide_errors(seed=0)


def test_measure_guide_errors_covers_every_encoding_and_shape(guide_errors: list[dict]) -> None:
    assert len(guide_errors) == 3 * len(legacy.GUIDE_SHAPES)
    assert {(r["encoding"], r["M"], r["K"], r["N"]) for r in guide_errors} == {
        (e, m, k, n)
        for e in ("sign_bit_table", "broadcast", "guide_fix")
        for m, k, n in legacy.GUIDE_SHAPES
    }


def test_broken_encodings_are_over_100_percent_wrong(guide_errors: list[dict]) -> None:
    for row in guide_errors:
        # The guide's own metric: its acceptance threshold is 1 %; these are above 100 %.
        assert row["rel_error_max"] > 1.0, row
        # The norm metric: sign-bit comes out just under 100 % (its outputs are ~1 % of the
        # exact ones), the others above.  None is anywhere near correct.
        assert row["rel_error_norm"] > 0.9, row


@pytest.mark.parametrize("encoding", BROKEN)
def test_broken_encodings_are_not_exact(encoding) -> None:  # noqa: ANN001
    rng = np.random.default_rng(4)
    w = rng.integers(-1, 2, size=(8, 64), dtype=np.int8)
    x = rng.integers(-128, 128, size=(16, 64), dtype=np.int8)
    y = encoding(w, x)
    assert y.dtype == np.float64 and y.shape == (16, 8)
    assert not np.array_equal(y, reference.gemm(w, x))


def test_encodings_compute_the_documented_formulas() -> None:
    # K = 13: one full group of 8 and a short group of 5 (zero-padded).
    rng = np.random.default_rng(5)
    w = rng.integers(-1, 2, size=(3, 13), dtype=np.int8)
    x = rng.integers(-128, 128, size=(4, 13), dtype=np.int8)
    w64, x64 = w.astype(np.int64), x.astype(np.int64)
    signs = np.where(x64 >= 0, 1, -1)
    np.testing.assert_array_equal(legacy.sign_bit_table_gemm(w, x), signs @ w64.T)
    np.testing.assert_array_equal(
        legacy.broadcast_gemm(w, x), np.outer(x64.sum(axis=1), w64.sum(axis=1))
    )
    first = x64[:, [0, 8]]  # each group's first activation
    group_sums = np.stack([w64[:, :8].sum(axis=1), w64[:, 8:].sum(axis=1)], axis=1)
    np.testing.assert_array_equal(legacy.guide_fix_gemm(w, x), first @ group_sums.T)


def test_guide_fix_reads_int8_bytes_including_minus_128() -> None:
    w = np.ones((1, 8), dtype=np.int8)
    x = np.array([-128, 1, 1, 1, 1, 1, 1, 1], dtype=np.int8)
    assert legacy.guide_fix_gemm(w, x).tolist() == [-1024.0]  # 8 weights times x[0]
    assert reference.gemm(w, x).tolist() == [-121]


def test_relative_error_metrics() -> None:
    exact = np.array([[10, -20], [0, 5]])
    approx = np.array([[11, -20], [1e-8, 5]])
    # The guide's formula: the exact zero turns a 1e-8 error into 1 (100 %).
    assert legacy.relative_error(approx, exact) == pytest.approx(1.0)
    assert legacy.relative_error_norm(approx, exact) == pytest.approx(1 / np.sqrt(525))


def test_legacy_is_not_reachable_from_dispatch() -> None:
    public = [getattr(ryzlab, name) for name in ryzlab.__all__]
    public += [getattr(reference, name) for name in dir(reference)]
    for fn in BROKEN:
        assert all(obj is not fn for obj in public)
    # Importing the package does not even load the legacy module.
    code = "import sys, ryzlab; sys.exit('ryzlab.legacy' in sys.modules)"
    package_parent = Path(ryzlab.__file__).parent.parent
    run = subprocess.run([sys.executable, "-c", code], cwd=package_parent, check=False)
    assert run.returncode == 0
