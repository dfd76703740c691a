/* gemm_lut_blocked.c - the LUT kernels for N > 1: their tables read one K block at a time.
 *
 * The row-tile path runs each tile of rows against every token's tables over all of K: 16
 * bytes of tables per weight and token, so at N = 512 and K = 2560 a tile cycles through 21 MB
 * of tables, from L3 or DRAM (lut_avx512 on 2560 x 2560 fell from 443 Gop/s at N = 256 to 301 at
 * N = 512 on 2 threads, notebook 06).  Here, as BLIS orders its loops:
 *
 *   tables of every token, built once, in parallel (the row tiles' prep and workspace)
 *   barrier
 *   items (token block of NB tokens) x (row chunk of MC rows), token-block major, claimed:
 *     for pc in K by RYZ_KC:            the kernel on k in [pc, pc + KC), adding to y after
 *       for each tile of the chunk:     the first block: a tile's K block of weights (16 KB)
 *         for each token of the block:  stays in L1 across the tokens, and the block's tables
 *           lookups over the K block    (NB x all K x 16 bytes <= 512 KB) stay in L2 while
 *                                       consecutive items sweep the row chunks
 *
 * A thread computes an item whole, so nobody else adds to its outputs, and it writes each
 * output only after its first K block: no barrier between K blocks.  Items are fewer and
 * smaller where the product is small, so that every thread has work (at least 4 items per
 * thread while an item can still be split).  The results do not depend on the split: each
 * output is the sum of the same per-block partial sums in K order, modulo 2^32. */
#include <omp.h>
#include <stdlib.h>

#include "registry.h"

/* Rows per chunk and tokens per block of an item, at most (sizes above). */
#define LUT_MC 256
#define LUT_NB 16
/* Tables of a token block, all K, at most: they stay in L2 while the block's items sweep M. */
#define LUT_TABLE_BYTES (512 * 1024)

int ryz_gemm_lut_blocked(const ryz_kernel_entry *k, const ryz_args *a, int32_t *y, int threads) {
    const int64_t tiles = ryz_row_tiles(k, a), rt = a->Mp / tiles;
    const int64_t fit = LUT_TABLE_BYTES / a->ws_stride;   /* tokens whose tables (all K) fit */
    int64_t chunk = LUT_MC / rt > 1 ? LUT_MC / rt : 1, nb = fit < 1 ? 1 : fit < LUT_NB ? fit : LUT_NB;
    if (nb > a->N) nb = a->N;
    int64_t P = (tiles + chunk - 1) / chunk, Q = (a->N + nb - 1) / nb;
    while (P * Q < 4 * (int64_t)threads && (chunk > 1 || nb > 1)) {
        if (nb >= chunk) nb = (nb + 1) / 2;
        else chunk = (chunk + 1) / 2;
        P = (tiles + chunk - 1) / chunk, Q = (a->N + nb - 1) / nb;
    }
    ryz_counter *ctr = ryz_counters_new(threads);
    if (!ctr) return RYZ_ENOMEM;
    #pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int64_t n0 = a->N * t / T, n1 = a->N * (t + 1) / T;
        if (n1 > n0) k->prep(a, n0, n1);
        ryz_claim_start(ctr, t, T, P * Q);
        #pragma omp barrier
        int64_t i0, i1;
        for (int v = 0; ryz_claim(ctr, t, T, P * Q, 1, &v, &i0, &i1);)
            for (int64_t i = i0; i < i1; i++) {
                const int64_t q = i / P, p = i % P, t0 = p * chunk, t1 = t0 + chunk < tiles ? t0 + chunk : tiles;
                ryz_args b = *a;   /* tokens [q nb, ...) of the call, one K block at a time */
                b.N = a->N - q * nb < nb ? a->N - q * nb : nb;
                b.x = a->x + q * nb * a->K;
                b.ws = a->ws + q * nb * a->ws_stride;
                for (b.k0 = 0; b.k0 < a->Kp; b.k0 += RYZ_KC) {
                    b.k1 = b.k0 + RYZ_KC < a->Kp ? b.k0 + RYZ_KC : a->Kp;
                    b.accumulate = b.k0 > 0;
                    k->run(&b, t0, t1, y + q * nb * a->M, a->M, 0);
                }
            }
    }
    free(ctr);
    return RYZ_OK;
}
