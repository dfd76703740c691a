/* driver.c - the framework around the kernels: sizes, packing, the threaded driver and the
 * timing loop.  Kernels only compute row tiles; everything about threads lives here. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

static const ryz_format *format_of(const ryz_kernel_entry *k) { return &ryz_formats[k->format]; }

static void padded_dims(const ryz_kernel_entry *k, int64_t M, int64_t K, int64_t *Mp, int64_t *Kp) {
    *Mp = ryz_round_up(M, format_of(k)->row_tile);
    *Kp = ryz_round_up(K, format_of(k)->k_align);
}

/* Sizes every entry point accepts: RYZ_EARG below 1, RYZ_ELIMIT above the ABI's limits. */
int ryz_check_sizes(long long M, long long N, long long K) {
    if (M < 1 || N < 1 || K < 1) return RYZ_EARG;
    if (M > RYZ_MAX_MN || N > RYZ_MAX_MN || K > RYZ_MAX_K) return RYZ_ELIMIT;
    return RYZ_OK;
}

int ryz_check_threads(int threads) {
    return threads < 1 ? RYZ_EARG : threads > RYZ_MAX_THREADS ? RYZ_ELIMIT : RYZ_OK;
}

long long ryz_packed_bytes(int kernel, long long M, long long K) {
    const ryz_kernel_entry *k = ryz_kernel_get(kernel);
    if (!k) return RYZ_EKERNEL;
    int rc = ryz_check_sizes(M, 1, K);
    if (rc) return rc;
    int64_t Mp, Kp;
    padded_dims(k, M, K, &Mp, &Kp);
    return (long long)ryz_format_bytes(format_of(k), Mp, Kp);
}

int ryz_pack(int kernel, const signed char *w, long long w_bytes, long long M, long long K,
             unsigned char *out, long long out_bytes) {
    const ryz_kernel_entry *k = ryz_kernel_get(kernel);
    if (!k) return RYZ_EKERNEL;
    int rc = ryz_check_sizes(M, 1, K);
    if (rc) return rc;
    if (!w || !out) return RYZ_EARG;
    if (w_bytes < M * K || out_bytes < ryz_packed_bytes(kernel, M, K)) return RYZ_EWS;
    for (int64_t i = 0; i < (int64_t)M * K; i++)
        if (w[i] < -1 || w[i] > 1) return RYZ_EVALUE;
    int64_t Mp, Kp;
    padded_dims(k, M, K, &Mp, &Kp);
    format_of(k)->pack((const int8_t *)w, M, K, Mp, Kp, out);
    return RYZ_OK;
}

/* 64 bytes of slack let the driver align the caller's buffer to a cache line.  Where the
 * blocked GEMM may run, the workspace also covers its panels and decoded blocks. */
long long ryz_workspace_bytes(int kernel, long long M, long long N, long long K) {
    const ryz_kernel_entry *k = ryz_kernel_get(kernel);
    if (!k) return RYZ_EKERNEL;
    int rc = ryz_check_sizes(M, N, K);
    if (rc) return rc;
    int64_t Mp, Kp;
    padded_dims(k, M, K, &Mp, &Kp);
    int64_t need = N * k->ws_stride(Kp) + 64;
    if (ryz_blocked_applies(k, N, RYZ_SCHED_BLOCKS)) {
        const int64_t blocked = ryz_blocked_ws_bytes(k, M, N, K);
        if (blocked > need) need = blocked;
    }
    return (long long)need;
}

/* Prefetch the first RYZ_PREFETCH_BYTES of row tiles [t0, t1): the kernels prefetch that far
 * ahead of what they read, so a block's head would otherwise arrive by demand misses only.
 * Issued before a barrier, it overlaps the wait (and a decode step's epilogue) with DRAM. */
void ryz_prefetch_block_head(const ryz_kernel_entry *k, const ryz_args *a, int64_t t0, int64_t t1) {
    const int64_t tile_bytes = ryz_format_bytes(format_of(k), format_of(k)->row_tile, a->Kp);
    int64_t bytes = (t1 - t0) * tile_bytes;
    if (bytes > RYZ_PREFETCH_BYTES) bytes = RYZ_PREFETCH_BYTES;
    const char *p = (const char *)a->w + t0 * tile_bytes;
    for (int64_t off = 0; off < bytes; off += 64) _mm_prefetch(p + off, RYZ_PREFETCH_HINT);
}

int64_t ryz_row_tiles(const ryz_kernel_entry *k, const ryz_args *a) { return a->Mp / format_of(k)->row_tile; }

int64_t ryz_tile_bytes(const ryz_kernel_entry *k, const ryz_args *a) {
    return ryz_format_bytes(format_of(k), format_of(k)->row_tile, a->Kp);
}

int ryz_head_run_parallel(const ryz_head_plan *p, int threads) {
    ryz_counter *ctr = ryz_counters_new(threads);
    if (!ctr) return RYZ_ENOMEM;
    #pragma omp parallel num_threads(threads) if (threads > 1)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        ryz_claim_start(ctr, t, T, p->tiles);
        #pragma omp barrier
        int64_t t0, t1;
        for (int v = 0; ryz_claim(ctr, t, T, p->tiles, p->chunk, &v, &t0, &t1);) p->run(p, t0, t1, 0.0f, 0);
    }
    free(ctr);
    return RYZ_OK;
}

/* One product with the given schedule: the blocked GEMM (gemm_blocked.c; gemm_lut_blocked.c
 * for the LUT kernels) where it applies (N large enough, schedule blocks), else row tiles.
 * Returns RYZ_ENOMEM only for the blocked LUT path's counters and the guide's critical variant,
 * whose private row buffers are allocated per call as the guide does. */
static int gemm_once(const ryz_kernel_entry *k, const ryz_args *a, int32_t *y, int threads, int schedule) {
    if (ryz_blocked_applies(k, a->N, schedule))
        return strcmp(k->desc.method, "lut") ? ryz_gemm_blocked(k, a, y, threads) : ryz_gemm_lut_blocked(k, a, y, threads);
    const int64_t rt = format_of(k)->row_tile, tiles = a->Mp / rt;
    if (schedule == RYZ_SCHED_BLOCKS && threads == 1) {
        ryz_prefetch_block_head(k, a, 0, tiles);
        if (k->prep) k->prep(a, 0, a->N);
        k->run(a, 0, tiles, y, a->M, 0);
        return RYZ_OK;
    }
    int failed = 0;
    #pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int64_t b0 = tiles * t / T, b1 = tiles * (t + 1) / T;
        if (schedule == RYZ_SCHED_BLOCKS) ryz_prefetch_block_head(k, a, b0, b1);
        if (k->prep) {
            int64_t n0 = a->N * t / T, n1 = a->N * (t + 1) / T;
            if (n1 > n0) k->prep(a, n0, n1);
        }
        #pragma omp barrier
        if (schedule == RYZ_SCHED_BLOCKS) {
            k->run(a, b0, b1, y, a->M, 0);
        } else if (schedule == RYZ_SCHED_DYNAMIC1) {
            #pragma omp for schedule(dynamic, 1)
            for (int64_t i = 0; i < tiles; i++) k->run(a, i, i + 1, y, a->M, 0);
        } else {
            int64_t grain = tiles / (4 * (int64_t)T);
            if (grain < 1) grain = 1;
            int32_t *rows = malloc((size_t)(a->N * rt) * sizeof *rows);
            if (!rows) {
                #pragma omp atomic write
                failed = 1;
            }
            #pragma omp for schedule(dynamic, grain)
            for (int64_t i = 0; i < tiles; i++) {
                if (!rows) continue;
                k->run(a, i, i + 1, rows, rt, i * rt);
                /* one critical section per output row, as the guide's Step 3.1 writes it */
                for (int64_t m = i * rt; m < (i + 1) * rt && m < a->M; m++) {
                    #pragma omp critical(ryz_guide_output)
                    for (int64_t n = 0; n < a->N; n++) y[n * a->M + m] = rows[n * rt + (m - i * rt)];
                }
            }
            free(rows);
        }
    }
    return failed ? RYZ_ENOMEM : RYZ_OK;
}

int ryz_setup_args(int kernel, const unsigned char *packed, long long packed_bytes, long long M, long long K,
                   const signed char *x, long long x_bytes, long long N, int *y, long long y_bytes,
                   unsigned char *ws, long long ws_bytes, int threads, int schedule,
                   const ryz_kernel_entry **kout, ryz_args *a) {
    const ryz_kernel_entry *k = ryz_kernel_get(kernel);
    if (!k) return RYZ_EKERNEL;
    if (!ryz_kernel_supported(kernel)) return RYZ_ECPU;
    int rc = ryz_check_sizes(M, N, K);
    if (!rc) rc = ryz_check_threads(threads);
    if (rc) return rc;
    if (!packed || !x || !y) return RYZ_EARG;
    if (schedule < RYZ_SCHED_BLOCKS || schedule > RYZ_SCHED_CRITICAL) return RYZ_ESCHEDULE;
    if (packed_bytes != ryz_packed_bytes(kernel, M, K)) return RYZ_EPACKED;
    if (x_bytes < N * K || y_bytes < N * M * (int64_t)sizeof(int)) return RYZ_EWS;
    int64_t need = ryz_workspace_bytes(kernel, M, N, K);
    if (need > 64 && (!ws || ws_bytes < need)) return RYZ_EWS;
    int64_t Mp, Kp;
    padded_dims(k, M, K, &Mp, &Kp);
    uintptr_t aligned = ((uintptr_t)ws + 63) & ~(uintptr_t)63;
    *a = (ryz_args){packed, M, K, Mp, Kp, N, (const int8_t *)x, (uint8_t *)aligned, k->ws_stride(Kp), k->variant(),
                    0, Kp, 0};
    *kout = k;
    return RYZ_OK;
}

int ryz_gemm(int kernel, const unsigned char *packed, long long packed_bytes, long long M, long long K,
             const signed char *x, long long x_bytes, long long N, int *y, long long y_bytes,
             unsigned char *ws, long long ws_bytes, int threads, int schedule) {
    const ryz_kernel_entry *k;
    ryz_args a;
    int rc = ryz_setup_args(kernel, packed, packed_bytes, M, K, x, x_bytes, N, y, y_bytes, ws, ws_bytes,
                            threads, schedule, &k, &a);
    return rc ? rc : gemm_once(k, &a, (int32_t *)y, threads, schedule);
}

/* The timing loop: iters products, cycling through nbufs copies of the packed weights so that
 * their total can exceed the last-level cache (cold weights, as in decode). */
int ryz_bench(int kernel, const unsigned char *const *packed, int nbufs, long long packed_bytes,
              long long M, long long K, const signed char *x, long long x_bytes, long long N,
              int *y, long long y_bytes, unsigned char *ws, long long ws_bytes, int threads, int schedule,
              long long iters, double *seconds) {
    const ryz_kernel_entry *k;
    ryz_args a;
    if (!packed || nbufs < 1 || iters < 1 || !seconds) return RYZ_EARG;
    for (int i = 0; i < nbufs; i++)
        if (!packed[i]) return RYZ_EARG;
    int rc = ryz_setup_args(kernel, packed[0], packed_bytes, M, K, x, x_bytes, N, y, y_bytes, ws, ws_bytes,
                            threads, schedule, &k, &a);
    if (rc) return rc;
    double t0 = ryz_now_seconds();
    for (long long i = 0; i < iters && !rc; i++) {
        a.w = packed[i % nbufs];
        rc = gemm_once(k, &a, (int32_t *)y, threads, schedule);
    }
    *seconds = ryz_now_seconds() - t0;
    return rc;
}
