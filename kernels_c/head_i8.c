/* head_i8.c - int8 x int8 GEMV for the LM head (vocabulary x hidden, per-row scales applied
 * in Python).  Not a ternary kernel, so not in kernels.def: a two-tier family of its own,
 * vpdpbusd where the CPU has AVX-512 VNNI (head_i8_avx512vnni.c) and a scalar loop
 * elsewhere, chosen at run time.
 *
 * vpdpbusd multiplies unsigned by signed bytes, so the activations are offset to
 * u = x + 128 and sum(w * u) - 128 * sum(w) = sum(w * x), with each row's sum(w) computed at
 * packing.  Exact: |w * u| <= 128 * 255 and K < 2^16 keeps int32 safe.
 *
 * Packed layout: Mp = M rounded up to 4 rows of Kp = K rounded up to 64 int8 weights
 * (padding 0), then M int32 row sums. */
#include <immintrin.h>
#include <string.h>

#include "registry.h"

#define ROWS 4  /* rows per tile: the padding and the claimed unit */

void ryz_head_rows_avx512vnni(const uint8_t *w, int64_t Kp, const uint8_t *u, int64_t m0, int64_t m1, int32_t *dots,
                              int64_t prefetch);

static int64_t kp_of(int64_t K) { return ryz_round_up(K, 64); }

/* K < 2^16 keeps |sum(w * u)| <= 128 * 255 * K inside int32. */
static int check_shape(long long M, long long K) {
    if (M < 1 || K < 1) return RYZ_EARG;
    return M > RYZ_MAX_MN || K >= 65536 ? RYZ_ELIMIT : RYZ_OK;
}

long long ryz_head_row_bytes(long long K) {
    int rc = check_shape(1, K);
    return rc ? rc : kp_of(K);
}

long long ryz_head_workspace_bytes(long long K) {
    int rc = check_shape(1, K);
    return rc ? rc : kp_of(K) + 64;  /* the offset activations, 64-byte aligned inside */
}

long long ryz_head_packed_bytes(long long M, long long K) {
    int rc = check_shape(M, K);
    if (rc) return rc;
    return ryz_round_up(M, ROWS) * kp_of(K) + 4 * M;
}

int ryz_head_pack(const signed char *w, long long w_bytes, long long M, long long K,
                  unsigned char *out, long long out_bytes) {
    int rc = check_shape(M, K);
    if (rc) return rc;
    if (!w || !out) return RYZ_EARG;
    if (w_bytes < M * K || out_bytes < ryz_head_packed_bytes(M, K)) return RYZ_EWS;
    const int64_t Kp = kp_of(K), Mp = ryz_round_up(M, ROWS);
    memset(out, 0, (size_t)(Mp * Kp));
    int32_t *sums = (int32_t *)(out + Mp * Kp);
    for (int64_t m = 0; m < M; m++) {
        int32_t s = 0;
        for (int64_t k = 0; k < K; k++) s += w[m * K + k];
        memcpy(out + m * Kp, w + m * K, (size_t)K);
        memcpy(&sums[m], &s, sizeof s);
    }
    return RYZ_OK;
}

static void rows_scalar(const uint8_t *w, int64_t Kp, const uint8_t *u, int64_t m0, int64_t m1, int32_t *dots,
                        int64_t prefetch) {
    (void)prefetch;
    for (int64_t m = m0; m < m1; m++) {
        int32_t s = 0;
        for (int64_t k = 0; k < Kp; k++) s += (int32_t)(int8_t)w[m * Kp + k] * u[k];
        dots[m - m0] = s;
    }
}

static int has_vnni(void) {
    const unsigned long long need = RYZ_F_AVX512_BASE | RYZ_F_AVX512VNNI;
    return (ryz_cpu_features() & need) == need;
}

const char *ryz_head_isa(void) { return has_vnni() ? "avx512vnni" : "scalar"; }

static void prep_i8(const ryz_head_plan *p, const signed char *x) {
    for (int64_t k = 0; k < p->Kp; k++) p->scratch[k] = (uint8_t)((k < p->K ? x[k] : 0) + 128);
}

/* Tiles [t0, t1): y[m] = sum(w * x), or logits[m] = (float)y[m] * (row_scales[m] / x_scale)
 * when logits is given. */
static void rows_i8(const ryz_head_plan *p, int64_t t0, int64_t t1, int32_t *y, float *logits, float x_scale) {
    void (*rows)(const uint8_t *, int64_t, const uint8_t *, int64_t, int64_t, int32_t *, int64_t) =
        has_vnni() ? ryz_head_rows_avx512vnni : rows_scalar;
    const int32_t *sums = (const int32_t *)(p->packed + p->tiles * ROWS * p->Kp);
    int32_t dots[ROWS * 64];
    for (int64_t b = t0 * ROWS; b < t1 * ROWS; b += ROWS * 64) {
        const int64_t e = b + ROWS * 64 < t1 * ROWS ? b + ROWS * 64 : t1 * ROWS;
        rows(p->packed, p->Kp, p->scratch, b, e, dots, p->prefetch);
        for (int64_t m = b; m < e && m < p->M; m++) {
            int32_t s;
            memcpy(&s, &sums[m], sizeof s);
            const int32_t v = dots[m - b] - 128 * s;
            if (logits)
                logits[m] = (float)v * (p->row_scales[m] / x_scale);
            else
                y[m] = v;
        }
    }
}

static void run_i8(const ryz_head_plan *p, int64_t t0, int64_t t1, float x_scale, float *logits) {
    rows_i8(p, t0, t1, (int32_t *)p->y, logits, x_scale);
}

static void plan_i8(const unsigned char *packed, long long M, long long K, unsigned char *ws, ryz_head_plan *p) {
    p->Kp = kp_of(K), p->M = M, p->K = K, p->packed = packed;
    p->tiles = ryz_round_up(M, ROWS) / ROWS, p->tile_bytes = ROWS * p->Kp;
    p->scratch = (uint8_t *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    p->prep = prep_i8, p->run = run_i8;
    p->chunk = 64;
    /* No prefetch on AMD, 16 KiB elsewhere (head_i8_avx512vnni.c). */
    p->prefetch = ryz_prefetch_choice("RYZLAB_HEAD8_PREFETCH", 0, RYZ_PREFETCH_BYTES);
}

int ryz_head_plan_int8(const ryz_decode_head *h, ryz_head_plan *p) {
    int rc = check_shape(h->M, h->K);
    if (rc) return rc;
    if (!h->packed || !h->act.xq || !h->row_scales || !h->ws || !h->logits) return RYZ_EARG;
    if (h->packed_bytes != ryz_head_packed_bytes(h->M, h->K)) return RYZ_EPACKED;
    if (h->act.xq_len < h->K || h->row_scales_len < h->M || h->ws_bytes < ryz_head_workspace_bytes(h->K) ||
        h->logits_len < h->M)
        return RYZ_EWS;
    plan_i8(h->packed, h->M, h->K, h->ws, p);
    p->row_scales = h->row_scales;
    return RYZ_OK;
}

/* Row tiles in contiguous blocks, one per thread, claimed in chunks (ryz_head_run_parallel). */
int ryz_head_gemv(const unsigned char *packed, long long packed_bytes, long long M, long long K,
                  const signed char *x, long long x_bytes, int *y, long long y_bytes,
                  unsigned char *ws, long long ws_bytes, int threads) {
    int rc = check_shape(M, K);
    if (!rc) rc = ryz_check_threads(threads);
    if (rc) return rc;
    if (!packed || !x || !y || !ws) return RYZ_EARG;
    if (packed_bytes != ryz_head_packed_bytes(M, K)) return RYZ_EPACKED;
    if (x_bytes < K || y_bytes < M * (int64_t)sizeof(int) || ws_bytes < ryz_head_workspace_bytes(K)) return RYZ_EWS;
    ryz_head_plan p = {0};
    plan_i8(packed, M, K, ws, &p);
    p.y = y;
    prep_i8(&p, x);
    return ryz_head_run_parallel(&p, threads);
}
