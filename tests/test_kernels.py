"""Every kernel equals the oracle exactly: edge grid, extremes, random shapes, threads."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SANITIZE, problem
from hypothesis import given, settings
from hypothesis import strategies as st

import ryzlab
from ryzlab import reference
from ryzlab.core.validate import max_k

# K around every block and group boundary of every format (pairs, 4, 16, 256, 320).
K_GRID = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129,
          255, 256, 257, 319, 320, 321, 511, 512, 513, 639, 640, 641, 959, 960, 961,
          1023, 1024, 1025]
# M around every row tile (1, 4, 16, 64).
M_GRID = [1, 3, 4, 5, 15, 16, 17, 63, 64, 65]


def test_edge_grid(kernel):
    rng = np.random.default_rng(1)
    for K in K_GRID:
        for M in M_GRID:
            for N in (1, 3):
                w, x = problem(rng, M, K, N)
                np.testing.assert_array_equal(
                    ryzlab.gemm(w, x, kernel=kernel, threads=1), reference.gemm(w, x),
                    err_msg=f"{kernel} M={M} K={K} N={N}",
                )


@pytest.mark.parametrize("wv", [-1, 0, 1])
@pytest.mark.parametrize("xv", [-128, -1, 127])
def test_extreme_values(kernel, wv, xv):
    K = 4099  # large, odd, past every block
    w = np.full((17, K), wv, dtype=np.int8)
    x = np.full((2, K), xv, dtype=np.int8)
    y = ryzlab.gemm(w, x, kernel=kernel, threads=1)
    assert (y == wv * xv * K).all()


def test_alternating_extremes(kernel):
    """Pair tables reach both +256 and -256 in one row (the LUT kernels' widest entries)."""
    K = 1030
    w = np.tile(np.array([-1, -1, 1, 1], dtype=np.int8), (5, K // 4 + 1))[:, :K].copy()
    x = np.full((1, K), -128, dtype=np.int8)
    np.testing.assert_array_equal(ryzlab.gemm(w, x, kernel=kernel, threads=1), reference.gemm(w, x))


def test_guide_step_2_2_example(kernel):
    """The fix guide's own 4x4x4 T-MAC correctness case (its Step 2.2)."""
    w = np.array([1, -1, 0, 1, 0, 1, -1, 0, 1, 0, 1, -1, -1, 1, 0, 1], dtype=np.int8).reshape(4, 4)
    x = np.array([10, -5, 8, -3, 15, -8, 12, 6, -10, 4, -7, 9, 5, -6, 11, -4], dtype=np.int8).reshape(4, 4)
    naive = np.array([[sum(int(w[m, k]) * int(x[n, k]) for k in range(4)) for m in range(4)] for n in range(4)])
    np.testing.assert_array_equal(ryzlab.gemm(w, x, kernel=kernel, threads=1), naive)


def test_every_base3_code(kernel):
    """All 243 five-trit groups of t5_k320x4 (a plain matrix for the other formats)."""
    v = np.arange(4 * 64).reshape(4, 64) % 243          # row r, byte j
    digits = [(v // 3 ** (4 - i)) % 3 for i in range(5)]  # plane i holds columns 64i .. 64i+63
    w = (np.concatenate(digits, axis=1) - 1).astype(np.int8)
    rng = np.random.default_rng(6)
    x = rng.integers(-128, 128, size=(3, 320), dtype=np.int8)
    x[0] = -128
    np.testing.assert_array_equal(ryzlab.gemm(w, x, kernel=kernel, threads=1), reference.gemm(w, x))


def t5_codes(q: np.ndarray) -> list[np.ndarray]:
    """The five codes c = w + 1 of t5_k320x4 bytes, planes 0..4 (formats.def): q = s << 7 |
    h << 6 | (7 b + r), group A = 7 h + r (planes 0-2) negated when s = 1.  The low 6 bits 63
    are never packed and read as b = 9, r = 0."""
    q = q.astype(np.int64)
    v, h = q & 63, q >> 6 & 1
    a, b = v % 7 + 7 * h, v // 7
    a = np.where(q & 128, 26 - a, a)
    return [a // 9, a // 3 % 3, a % 3, b // 3, b % 3]


@pytest.mark.parametrize("path", ["tiles", "blocked"])
@pytest.mark.parametrize("kernel", [k.name for k in ryzlab.registry() if k.format == "t5_k320x4"], indirect=True)
def test_t5_every_byte(kernel, path, monkeypatch):
    """Each of the 256 byte values, those the packer never writes included (a tampered
    buffer), decodes as the format says in every t5_k320x4 kernel, on both GEMM paths."""
    monkeypatch.setenv("RYZLAB_GEMM_PATH", path)
    packed = ryzlab.pack(np.zeros((4, 320), dtype=np.int8), kernel=kernel)
    q = np.arange(256, dtype=np.uint8)
    packed.data[:] = q                                    # one 320-weight block of 4 rows
    x = np.random.default_rng(15).integers(-128, 128, size=(3, 320), dtype=np.int8)
    x[0] = -128
    w = np.concatenate([c.reshape(4, 64) - 1 for c in t5_codes(q)], axis=1)   # may hold 2
    want = x.astype(np.int64) @ w.T
    np.testing.assert_array_equal(ryzlab.gemm(packed, x, threads=1), want)
    assert packed.data.tobytes() == q.tobytes()


# Kernels with CPU-dependent code paths (kernels.def, "variant") and the variables that force each.
VARIANTS = [("mad_t5_avx512vnni", {"RYZLAB_T5_LOOKUP": lookup, "RYZLAB_MAD_PREFETCH": pf})
            for lookup in ("vpermb", "vpermi2b") for pf in ("on", "off")]
VARIANTS += [("mad_avx512vnni", {"RYZLAB_MAD_PREFETCH": pf}) for pf in ("on", "off")]


@pytest.mark.parametrize("kernel, env", VARIANTS, indirect=["kernel"])  # the fixture skips a missing ISA
def test_code_path_variants(kernel, monkeypatch, env):
    """Every code path of each kernel that picks one by CPU (mad_t5_avx512vnni's table lookups
    by vpermb or vpermi2b, with and without the weight prefetch; mad_avx512vnni's prefetch),
    forced by their variables: each on the edge grid, every base-3 code, -128 and several
    threads."""
    name = kernel
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    rng = np.random.default_rng(14)
    for K in K_GRID:
        for M in M_GRID[::3]:
            w, x = problem(rng, M, K, 3)
            x[0] = -128
            np.testing.assert_array_equal(ryzlab.gemm(w, x, kernel=name, threads=1), reference.gemm(w, x),
                                          err_msg=f"{env} M={M} K={K}")
    test_every_base3_code(name)
    w, x = problem(rng, 70, 1030, 5)
    for threads in (2, 3):
        np.testing.assert_array_equal(ryzlab.gemm(w, x, kernel=name, threads=threads), reference.gemm(w, x))


@pytest.mark.parametrize("wv, xv", [(1, -128), (-1, -128)])
def test_largest_k(kernel, wv, xv):
    """K at the library's limit (2^23) with the extreme values: every kernel's partial sums
    (for the MAD kernels sum(c * x) with c = w + 1, shifted fields included) stay exact."""
    K = max_k()
    w = np.full((1, K), wv, dtype=np.int8)
    x = np.full((1, K), xv, dtype=np.int8)
    assert (ryzlab.gemm(w, x, kernel=kernel, threads=1) == wv * xv * K).all()


def test_gemv_one_dimensional(kernel):
    rng = np.random.default_rng(2)
    w, x = problem(rng, 37, 300, 1)
    y = ryzlab.gemm(w, x[0], kernel=kernel, threads=1)
    assert y.shape == (37,) and y.dtype == np.int32
    np.testing.assert_array_equal(y, reference.gemm(w, x[0]))


def test_random_shapes(kernel):
    """10,000 random shapes per kernel (1,000 under the sanitizers)."""
    rng = np.random.default_rng(3)
    for i in range(1_000 if SANITIZE else 10_000):
        M, K, N = int(rng.integers(1, 70)), int(rng.integers(1, 600)), int(rng.integers(1, 4))
        w, x = problem(rng, M, K, N)
        y = ryzlab.gemm(w, x, kernel=kernel, threads=1)
        if not np.array_equal(y, reference.gemm(w, x)):
            pytest.fail(f"{kernel} differs from the oracle on shape #{i}: M={M} K={K} N={N}")


@settings(max_examples=25 if SANITIZE else 150, deadline=None)
@given(
    M=st.integers(1, 40), K=st.integers(1, 700), N=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1), threads=st.integers(1, 3),
)
def test_property_equals_oracle(M, K, N, seed, threads):
    w, x = problem(np.random.default_rng(seed), M, K, N)
    expected = reference.gemm(w, x)
    for name in ryzlab.kernels():
        np.testing.assert_array_equal(ryzlab.gemm(w, x, kernel=name, threads=threads), expected, err_msg=name)


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
@pytest.mark.parametrize("schedule", sorted(ryzlab.SCHEDULES))
def test_threads_and_schedules_exact(kernel, threads, schedule):
    """Threaded results equal single-threaded ones: odd M below the thread count, N = 1, GEMM."""
    rng = np.random.default_rng(4)
    for M, K, N in [(1, 100, 1), (3, 257, 1), (130, 513, 1), (67, 300, 5)]:
        w, x = problem(rng, M, K, N)
        np.testing.assert_array_equal(
            ryzlab.gemm(w, x, kernel=kernel, threads=threads, schedule=schedule), reference.gemm(w, x),
            err_msg=f"{kernel} {schedule} threads={threads} M={M} K={K} N={N}",
        )


def test_packed_weights_reused(kernel):
    rng = np.random.default_rng(5)
    w, x = problem(rng, 20, 200, 2)
    p = ryzlab.pack(w, kernel=kernel)
    assert p.kernel == kernel and p.M == 20 and p.K == 200
    assert p.nbytes >= 20 * 200 * p.bits_per_weight / 8
    for _ in range(2):
        np.testing.assert_array_equal(ryzlab.gemm(p, x), reference.gemm(w, x))


def test_pack_reports_bits_and_bytes():
    w = np.zeros((64, 2560), dtype=np.int8)
    for name in ryzlab.kernels():
        p = ryzlab.pack(w, kernel=name)
        assert p.bits_per_weight in (1.6, 2.0, 8.0)
        assert p.nbytes == round(64 * 2560 * p.bits_per_weight / 8)  # no padding at this shape
        assert str(p.nbytes) in repr(p)


# ---- The blocked GEMM (kernels_c/gemm_blocked.c).  RYZLAB_GEMM_PATH=blocked sends every
# kernel through it (its ISA tier's microkernel, its format's decoder) at every N; the
# microkernels tile 32x8 (AVX-512), 16x4 (AVX2) and 4x4 (scalar) with K blocks of 1024 and
# row blocks of 256.
BLOCKED_SHAPES = [  # (M, K, N): N at tile edges, K at block edges and off k_align, M at tile/block edges
    (1, 1, 1), (3, 5, 3), (4, 1023, 4), (5, 1024, 5), (15, 1025, 7), (16, 1021, 8), (17, 2047, 9),
    (31, 2048, 1), (32, 2049, 3), (33, 300, 255), (63, 257, 257), (255, 1030, 4), (256, 1024, 9),
    (257, 513, 8), (513, 100, 17),
    (65, 3300, 33), (40, 2240, 16),   # 1.6-bit blocks of 320 k straddling K blocks 1024, 2048, 3072
]


@pytest.fixture
def blocked(monkeypatch):
    monkeypatch.setenv("RYZLAB_GEMM_PATH", "blocked")


def test_blocked_edges(kernel, blocked):
    rng = np.random.default_rng(11)
    for M, K, N in BLOCKED_SHAPES:
        w, x = problem(rng, M, K, N)
        x[:, ::7] = -128
        np.testing.assert_array_equal(ryzlab.gemm(w, x, kernel=kernel, threads=1), reference.gemm(w, x),
                                      err_msg=f"{kernel} blocked M={M} K={K} N={N}")


@pytest.mark.parametrize("threads", [1, 2, 3, 5, 8, 64])
def test_blocked_threads(kernel, blocked, threads):
    """2-D grid: more threads than row panels or token tiles, odd counts, 64 on 2 cores."""
    rng = np.random.default_rng(12)
    for M, K, N in [(640, 300, 20), (33, 1100, 257), (70, 64, 1), (1, 40, 600)]:
        w, x = problem(rng, M, K, N)
        np.testing.assert_array_equal(ryzlab.gemm(w, x, kernel=kernel, threads=threads), reference.gemm(w, x),
                                      err_msg=f"{kernel} blocked threads={threads} M={M} K={K} N={N}")


@pytest.mark.parametrize("wv", [-1, 1])
def test_blocked_extremes(kernel, blocked, wv):
    K = 4099
    w = np.full((33, K), wv, dtype=np.int8)
    x = np.full((9, K), -128, dtype=np.int8)
    assert (ryzlab.gemm(w, x, kernel=kernel, threads=2) == wv * -128 * K).all()


def test_blocked_largest_k(blocked):
    """K = 2^23 (the library's limit), all -128: sum(c * x) reaches -2^31; the scalar
    microkernel's uint32 arithmetic (UBSan checks it under make sanitize) stays exact."""
    K = 1 << 23
    w = np.ones((1, K), dtype=np.int8)
    x = np.full((1, K), -128, dtype=np.int8)
    assert ryzlab.gemm(w, x, kernel="lut_scalar", threads=2)[0, 0] == -128 * K


@pytest.mark.parametrize("N", [7, 8, 9, 15, 16, 17, 47, 48, 49, 100])
def test_dispatch_by_n_paths_agree(kernel, monkeypatch, N):
    """Around the N thresholds the default dispatch, the row tiles and the blocked path all
    equal the oracle."""
    rng = np.random.default_rng(13)
    w, x = problem(rng, 70, 1030, N)
    expected = reference.gemm(w, x)
    for path in ("auto", "tiles", "blocked"):
        monkeypatch.setenv("RYZLAB_GEMM_PATH", path)
        np.testing.assert_array_equal(ryzlab.gemm(w, x, kernel=kernel, threads=2), expected, err_msg=f"{kernel} {path}")
