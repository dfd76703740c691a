/* gemm_blocked.c - the blocked ternary GEMM for N > 1 (prefill), BLIS structure:
 *
 *   for jc in N by nc:                  activation panel (all K): packed once, in parallel
 *     barrier                           (the only one per panel)
 *     thread (i, j) of a Tm x Tn grid owns row range i of M and token range j of the panel:
 *     for pc in K by RYZ_KC:
 *       for ic in my rows by mc:        weights[ic, pc] decoded once into codes, privately:
 *                                       an L2-resident block of mc x RYZ_KC bytes
 *         for jr in my tokens by nr:
 *           for ir in ic by mr:
 *             microkernel(mr x nr, kc)  int32 accumulators in registers
 *
 * Each thread decodes exactly the rows it multiplies, so nothing waits between the decode
 * and the compute: threads synchronise once per activation panel.  A grid with Tn > 1
 * decodes each row block Tn times; the grid is chosen (choose_grid) to make that rare.  On
 * the shared 2-core VM a barrier per (pc, ic) block with shared decoded blocks cost 10x at
 * 2 threads (kernels_c/README.md).
 *
 * The microkernels (ukr_*.c) and the fast decoders live beside this file, one per ISA; this
 * file owns the loops, the thread grid, the workspace and the generic decoder of every
 * format.  Layouts: internal.h. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <xmmintrin.h>

#include "registry.h"

/* Decoded-weight rows the workspace holds for all threads together: a thread's block is
 * min(mc, CAP_ROWS / threads) rows (threads beyond CAP_ROWS / mr only pack). */
#define CAP_ROWS 2048

/* Cost of decoding a row block, in tokens of microkernel work (choose_grid). */
#define DECODE_TOKENS 4

/* ---- Generic decoder: the code of weight (m, k) in every format (layouts: formats.def). */

static inline uint8_t code_at(const ryz_args *a, int format, int64_t m, int64_t k) {
    const uint8_t *w = a->w;
    if (m >= a->M || k >= a->K) return 1;
    switch (format) {
    case RYZ_FMT_i8_rows:
        return (uint8_t)(((const int8_t *)w)[m * a->K + k] + 1);
    case RYZ_FMT_i2_rows:
        return w[m * (a->Kp / 4) + k / 4] >> (2 * (k % 4)) & 3;
    case RYZ_FMT_i2_k256x4:
        return w[((m / 4 * (a->Kp / 256) + k / 256) * 4 + m % 4) * 64 + k % 64] >> (2 * (k % 256 / 64)) & 3;
    case RYZ_FMT_i2_lut16x8: {
        int64_t u = k / 8, p = k / 2 - 4 * u;   /* pair 0..3 of the 8-weight block */
        int64_t b = (m & 15) | (p & 1) << 4;
        uint8_t v = w[(m / 16 * (a->Kp / 8) + u) * 32 + b];
        return (p < 2 ? v : v >> 4) >> (2 * (k & 1)) & 3;
    }
    case RYZ_FMT_i2_lut64x16: {
        int64_t u = k / 16, p = k / 2 - 8 * u;  /* pair 0..7 of the 16-weight block */
        int64_t q = m % 64 / 16, b = (m % 16) << 2 | (p & 3);
        uint8_t v = w[((m / 64 * (a->Kp / 16) + u) * 4 + q) * 64 + b];
        return (p < 4 ? v : v >> 4) >> (2 * (k & 1)) & 3;
    }
    case RYZ_FMT_t5_k320x4: {
        int c[5];
        ryz_t5_codes(w[((m / 4 * (a->Kp / 320) + k / 320) * 4 + m % 4) * 64 + k % 64], c);
        return (uint8_t)c[k % 320 / 64];
    }
    default:
        return 1;
    }
}

void ryz_decode_generic(const ryz_args *a, int format, int64_t m0, int64_t panels, int mr,
                        int64_t k0, int64_t kc, uint8_t *out) {
    for (int64_t p = 0; p < panels; p++) {
        uint8_t *panel = out + p * (int64_t)RYZ_KC * mr;
        for (int r = 0; r < mr; r++) {
            const int64_t m = m0 + p * mr + r;
            for (int64_t k = 0; k < kc; k++)
                panel[(k / 4 * mr + r) * 4 + k % 4] = code_at(a, format, m, k0 + k);
        }
    }
}

/* ---- Prefetch of the next block's packed weights, spread over the current block's
 * microkernel calls.  Every format stores tiles of row_tile rows one after another, and
 * inside a tile k (in multiples of 256) runs contiguously at row_tile * bits / 8 bytes per
 * k, so rows [m0, m1) x k [k0, k1) is one byte range per tile.  The decoders read short
 * strided ranges (1 KiB of each 2.5 KiB tile at K = 2560) that the hardware prefetchers do
 * not follow: without this, decoding ran at about 2.5 GB/s from L3. */
typedef struct pf_iter {
    const char *base;
    int64_t tile_bytes, lo, hi;     /* byte range inside a tile */
    int64_t t, t1, off;             /* current tile, end tile, offset in [lo, hi) */
} pf_iter;

static pf_iter pf_start(const ryz_args *a, int format, int64_t m0, int64_t m1, int64_t k0, int64_t k1) {
    const ryz_format *f = &ryz_formats[format];
    const int64_t R = f->row_tile;                                 /* tile byte range of k: */
    const int64_t kend = k1 < a->Kp ? k1 : a->Kp;                  /* [k0, k1) * R * bits / 8 */
    const int64_t t1 = (m1 + R - 1) / R < a->Mp / R ? (m1 + R - 1) / R : a->Mp / R;
    pf_iter it = {(const char *)a->w, ryz_format_bytes(f, R, a->Kp), ryz_format_bytes(f, R, k0),
                  ryz_format_bytes(f, R, kend), m0 / R, t1, ryz_format_bytes(f, R, k0)};
    if (it.hi <= it.lo) it.t1 = it.t;   /* no next block */
    return it;
}

static void pf_step(pf_iter *it, int64_t lines) {
    for (; lines > 0 && it->t < it->t1; lines--) {
        _mm_prefetch(it->base + it->t * it->tile_bytes + it->off, _MM_HINT_T1);
        it->off += 64;
        if (it->off >= it->hi) it->off = it->lo, it->t++;
    }
}

/* ---- Activations: per-token sums and the packed panel. */

static void token_sums(const ryz_args *a, int64_t n0, int64_t n1, int32_t *xsum) {
    for (int64_t n = n0; n < n1; n++) {
        const int8_t *x = a->x + n * a->K;
        uint32_t s = 0;   /* modulo 2^32: the microkernels subtract it with the same wrap */
        for (int64_t k = 0; k < a->K; k++) s += (uint32_t)(int32_t)x[k];
        xsum[n] = (int32_t)s;
    }
}

/* Tiles [t0, t1) of the panel of tokens from n_base, all K (tile stride: tile_bytes). */
static void pack_acts(const ryz_args *a, int nr, int64_t n_base, int64_t Kr, int64_t tile_bytes,
                      int64_t t0, int64_t t1, int8_t *panel) {
    const int64_t full = a->K / 4, kr4 = Kr / 4;
    for (int64_t t = t0; t < t1; t++) {
        int8_t *tile = panel + t * tile_bytes;
        for (int j = 0; j < nr; j++) {
            const int64_t n = n_base + t * nr + j;
            const int8_t *x = a->x + n * a->K;
            if (n >= a->N) {
                for (int64_t q = 0; q < kr4; q++) memset(tile + (q * nr + j) * 4, 0, 4);
                continue;
            }
            for (int64_t q = 0; q < full; q++) memcpy(tile + (q * nr + j) * 4, x + 4 * q, 4);
            for (int64_t q = full; q < kr4; q++)
                for (int i = 0; i < 4; i++) tile[(q * nr + j) * 4 + i] = 4 * q + i < a->K ? x[4 * q + i] : 0;
        }
    }
}

/* ---- Dispatch and workspace. */

/* RYZLAB_GEMM_PATH: "tiles" never takes the blocked path, "blocked" always does (every
 * kernel, every N: tests and A/B timings); unset or anything else: by N, for mad kernels. */
static int path_override(void) {
    const char *e = getenv("RYZLAB_GEMM_PATH");
    if (!e) return 0;
    if (!strcmp(e, "tiles")) return -1;
    if (!strcmp(e, "blocked")) return 1;
    return 0;
}

/* The ISA's vectorised decoder of the kernel's format (run NULL where there is none). */
static ryz_fast_decoder fast_decoder(const ryz_kernel_entry *k) {
    if (k->format == RYZ_FMT_i2_k256x4) return k->ukr->k256x4;
    if (k->format == RYZ_FMT_t5_k320x4) return k->ukr->t5_k320x4;
    return (ryz_fast_decoder){NULL, 0};
}

int ryz_blocked_applies(const ryz_kernel_entry *k, int64_t N, int schedule) {
    if (schedule != RYZ_SCHED_BLOCKS) return 0;   /* the guide's schedules stay "before" baselines */
    const int o = path_override();
    if (o) return o > 0;
    if (!strcmp(k->desc.method, "lut")) return N >= RYZ_LUT_BLOCKED_MIN_N;   /* gemm_lut_blocked.c */
    /* Only where a vectorised decoder serves the format: the generic per-weight decoder
     * (code_at) made the 1.6-bit mad_t5_* kernels 20-60x slower on the blocked path at
     * N >= 16 than on their own row tiles (notebook 06, 2 threads, 2560x2560). */
    const ryz_fast_decoder d = fast_decoder(k);
    return d.run && N >= d.min_n && !strcmp(k->desc.method, "mad");
}

typedef struct plan {
    int64_t Kr, Mr;          /* K rounded to 4, M rounded to mr */
    int64_t nc;              /* tokens per panel (multiple of nr) */
    int64_t rows;            /* decoded rows of all threads together */
    int64_t tile_bytes;      /* one nr-token tile of the panel, all K, 64-byte multiple */
    int64_t xsum_bytes, panel_bytes, block_bytes;
} plan;

static plan make_plan(const ryz_ukr *u, int64_t M, int64_t N, int64_t K) {
    plan p;
    p.Kr = ryz_round_up(K, 4);
    p.Mr = ryz_round_up(M, u->mr);
    p.nc = ryz_round_up(N, u->nr) < u->nc ? ryz_round_up(N, u->nr) : u->nc;
    p.rows = p.Mr < CAP_ROWS ? p.Mr : CAP_ROWS / u->mr * u->mr;
    p.tile_bytes = ryz_round_up(p.Kr * u->nr, 64);
    p.xsum_bytes = ryz_round_up(4 * N, 64);
    p.panel_bytes = p.nc / u->nr * p.tile_bytes;
    p.block_bytes = p.rows * RYZ_KC;
    return p;
}

/* xsum, the activation panel, the decoded blocks; 64 bytes of alignment slack.  None for the
 * LUT kernels, whose blocked path reads the row tiles' tables (gemm_lut_blocked.c). */
int64_t ryz_blocked_ws_bytes(const ryz_kernel_entry *k, int64_t M, int64_t N, int64_t K) {
    if (!strcmp(k->desc.method, "lut")) return 0;
    plan p = make_plan(k->ukr, M, N, K);
    return p.xsum_bytes + p.panel_bytes + p.block_bytes + 64;
}

/* The grid Tm x Tn = T for P row panels of mr and Q token tiles of nr: the least work for
 * the busiest thread, a row block's decode counted as DECODE_TOKENS tokens; among equals
 * the most row groups. */
static void choose_grid(int T, int64_t P, int64_t Q, int nr, int *Tm, int *Tn) {
    int64_t best = -1;
    *Tm = 1, *Tn = T;
    for (int tm = 1; tm <= T; tm++) {
        if (T % tm) continue;
        const int tn = T / tm;
        const int64_t cost = (P + tm - 1) / tm * ((Q + tn - 1) / tn * nr + DECODE_TOKENS);
        if (best < 0 || cost <= best) best = cost, *Tm = tm, *Tn = tn;
    }
}

int ryz_gemm_blocked(const ryz_kernel_entry *k, const ryz_args *a, int32_t *y, int threads) {
    const ryz_ukr *u = k->ukr;
    const int mr = u->mr, nr = u->nr;
    const plan p = make_plan(u, a->M, a->N, a->K);
    const ryz_decode_fn fast = fast_decoder(k).run, decode = fast ? fast : ryz_decode_generic;

    /* a->ws is 64-byte aligned (ryz_setup_args) and every part is a multiple of 64 bytes */
    int32_t *xsum = (int32_t *)a->ws;
    int8_t *panel = (int8_t *)a->ws + p.xsum_bytes;
    uint8_t *blocks = a->ws + p.xsum_bytes + p.panel_bytes;

    #pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        /* threads that multiply: each needs at least one mr-row block of the workspace */
        const int W = T < p.rows / mr ? T : (int)(p.rows / mr);
        int64_t mc = p.rows / W / mr * mr;
        if (mc > u->mc / mr * mr) mc = u->mc / mr * mr > mr ? u->mc / mr * mr : mr;
        uint8_t *block = blocks + t * mc * RYZ_KC;
        token_sums(a, a->N * t / T, a->N * (t + 1) / T, xsum);
        for (int64_t jc = 0; jc < a->N; jc += p.nc) {
            const int64_t nc = a->N - jc < p.nc ? a->N - jc : p.nc, Q = (nc + nr - 1) / nr;
            const int64_t P = p.Mr / mr;
            int Tm, Tn;
            choose_grid(W, P, Q, nr, &Tm, &Tn);
            if (jc > 0) {
                #pragma omp barrier   /* the previous panel is read to the end */
            }
            pack_acts(a, nr, jc, p.Kr, p.tile_bytes, Q * t / T, Q * (t + 1) / T, panel);
            #pragma omp barrier
            if (t >= W) continue;
            const int gi = t / Tn, gj = t % Tn;
            const int64_t r0 = P * gi / Tm * mr, r1 = P * (gi + 1) / Tm * mr;   /* my rows */
            const int64_t q0 = Q * gj / Tn, q1 = Q * (gj + 1) / Tn;             /* my tiles */
            if (q1 <= q0) continue;
            for (int64_t pc = 0; pc < p.Kr; pc += RYZ_KC) {
                const int64_t kc = p.Kr - pc < RYZ_KC ? p.Kr - pc : RYZ_KC;
                for (int64_t ic = r0; ic < r1; ic += mc) {
                    const int64_t rows = r1 - ic < mc ? r1 - ic : mc;
                    decode(a, k->format, ic, rows / mr, mr, pc, kc, block);
                    /* the next block of my rows: (ic + mc, pc), else (r0, pc + RYZ_KC) */
                    pf_iter pf = ic + mc < r1 ? pf_start(a, k->format, ic + mc, ic + 2 * mc < r1 ? ic + 2 * mc : r1, pc, pc + kc)
                                              : pf_start(a, k->format, r0, r0 + mc < r1 ? r0 + mc : r1, pc + RYZ_KC, pc + 2 * RYZ_KC);
                    const int64_t calls = (q1 - q0) * (rows / mr);
                    const int64_t lines = (pf.t1 - pf.t) * ((pf.hi - pf.lo + 63) / 64);
                    const int64_t per_call = calls > 0 ? (lines + calls - 1) / calls : 0;
                    for (int64_t q = q0; q < q1; q++) {
                        const int64_t n0 = jc + q * nr;
                        const int nv = a->N - n0 < nr ? (int)(a->N - n0) : nr;
                        const int8_t *xt = panel + q * p.tile_bytes + pc * nr;
                        for (int64_t g = 0; g < rows / mr; g++) {
                            const int64_t m0 = ic + g * mr;
                            const int mv = a->M - m0 < mr ? (int)(a->M - m0) : mr;
                            u->run(kc / 4, block + g * RYZ_KC * mr, xt, y + n0 * a->M + m0, a->M, mv, nv,
                                   pc == 0 ? xsum + n0 : NULL);
                            pf_step(&pf, per_call);
                        }
                    }
                }
            }
        }
    }
    return RYZ_OK;
}
