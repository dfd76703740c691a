/* head_i4.c - the int4 LM head: 4-bit signed weights with one fp16 scale per group of G = 32
 * or 64 weights along K, times int8 activations (one token), float32 logits out.  Like the
 * int8 head (head_i8.c) a two-tier family of its own, not a kernels.def line: vpdpbusd where
 * the CPU has AVX-512 VNNI (head_i4_avx512vnni.c), a scalar loop elsewhere, chosen at run time.
 *
 * The arithmetic.  Weights q in [-8, 7] are stored as unsigned codes c = q + 8 in 0..15, the
 * unsigned operand of vpdpbusd; the activations x are its signed operand as they are.  Per
 * group g of row m the integer dot product is exact:
 *     dot_g = sum_k c[k] * x[k] - 8 * sum_k x[k]          (|dot_g| <= 8 * 128 * 64 = 2^16)
 * with the activation group sums computed once per call.  dot_g converts to float32 exactly
 * (|dot_g| < 2^24), the fp16 scale s_g too, and then, in float32, group by group in order
 *     p_g = s_g * dot_g        (one rounding: a multiply, never fused into an FMA)
 *     y   = (((0 + p_0) + p_1) + ...) + p_{ng-1}
 * That float accumulation is the only approximation besides the quantisation; both tiers do
 * the same operations in the same order, so they agree bit for bit with each other and with
 * the numpy reference (ryzlab.core.head.int4_reference).  Padding groups (scale 0) add +0.
 *
 * Packed layout, one linear stream per tile of T = 16 rows (RYZ_HEAD4_TILE), tiles in row
 * order.  K is padded to Kp = a multiple of 2G (padding weights q = 0) and a tile is Kp / 2G
 * super-blocks of two groups each:
 *     [fp16 scales of group a, rows 0..15: 32 bytes][scales of group b: 32 bytes]
 *     [group a: G/8 chunks of 64 bytes][group b: G/8 chunks of 64 bytes]
 * A chunk holds 8 consecutive k of the group for all 16 rows: bytes 4r .. 4r+3 belong to row
 * r (one int32 lane of a zmm), and byte 4r + j holds code(k0 + j) in its low nibble and
 * code(k0 + 4 + j) in its high nibble.  A super-block is 64 + 16 G bytes (a multiple of 64),
 * so every load is aligned when the buffer is.  Bits per weight (K a multiple of 2G):
 * 4 + 16 / G, i.e. 4.5 for G = 32 and 4.25 for G = 64.  Padding rows (M up to a multiple of
 * 16) have codes 8 and scales 0 and are never written out.  After the tiles, a 64-byte trailer
 * holds M, K and G (int64): the byte count alone does not pin M down (16 rows share a tile),
 * so gemv and row refuse a buffer whose trailer disagrees with the shape they are given. */
#include <string.h>
#include <xmmintrin.h>

#include "registry.h"

#define T RYZ_HEAD4_TILE

void ryz_head4_tiles_avx512vnni(const uint8_t *packed, int64_t tile_bytes, int64_t Kp, int G,
                                const int8_t *x, const int32_t *xs8, int64_t t0, int64_t t1,
                                float *out, int64_t prefetch);

static int check_shape(long long M, long long K, int G) {
    if (M < 1 || K < 1 || (G != 32 && G != 64)) return RYZ_EARG;
    return M > RYZ_MAX_MN || K > RYZ_MAX_K ? RYZ_ELIMIT : RYZ_OK;
}

static int64_t kp_of(int64_t K, int G) { return ryz_round_up(K, 2 * (int64_t)G); }
static int64_t groups_of(int64_t K, int G) { return (K + G - 1) / G; }  /* real groups */
static int64_t tile_bytes_of(int64_t K, int G) { return kp_of(K, G) / G * 2 * T + kp_of(K, G) * T / 2; }

#define TRAILER RYZ_HEAD4_TRAILER

long long ryz_head4_packed_bytes(long long M, long long K, int group) {
    int rc = check_shape(M, K, group);
    if (rc) return rc;
    return ryz_round_up(M, T) / T * tile_bytes_of(K, group) + TRAILER;
}

static void write_trailer(uint8_t *packed, int64_t bytes, int64_t M, int64_t K, int64_t G) {
    const int64_t v[3] = {M, K, G};
    memset(packed + bytes - TRAILER, 0, TRAILER);
    memcpy(packed + bytes - TRAILER, v, sizeof v);
}

/* RYZ_OK when packed holds exactly an M x K head of group G (size and trailer). */
static int check_packed(const uint8_t *packed, long long bytes, int64_t M, int64_t K, int G) {
    if (bytes != ryz_head4_packed_bytes(M, K, G)) return RYZ_EPACKED;
    int64_t v[3];
    memcpy(v, packed + bytes - TRAILER, sizeof v);
    return v[0] == M && v[1] == K && v[2] == G ? RYZ_OK : RYZ_EPACKED;
}

long long ryz_head4_workspace_bytes(long long K, int group) {
    int rc = check_shape(1, K, group);
    if (rc) return rc;
    const int64_t Kp = kp_of(K, group);
    return 64 + Kp + 4 * (Kp / group);  /* padded x (64-byte aligned inside), then 8 * sum per group */
}

/* Byte offset of (group g, k within group kk, row lane r) inside a tile, and its nibble shift. */
static inline int64_t weight_offset(int64_t g, int64_t kk, int r, int G, int *shift) {
    const int64_t sb = g / 2, half = g % 2, chunk = kk / 8, j = kk % 8;
    *shift = j < 4 ? 0 : 4;
    return sb * (64 + 16 * (int64_t)G) + 64 + half * 8 * (int64_t)G + chunk * 64 + 4 * r + (j & 3);
}

static inline int64_t scale_offset(int64_t g, int r, int G) {
    return g / 2 * (64 + 16 * (int64_t)G) + g % 2 * 32 + 2 * r;
}

static int fp16_finite(uint16_t h) { return (h & 0x7c00) != 0x7c00; }

int ryz_head4_pack(const signed char *q, long long q_len, const unsigned short *scales, long long scales_len,
                   long long m0, long long rows, long long M, long long K, int group,
                   unsigned char *out, long long out_bytes) {
    int rc = check_shape(M, K, group);
    if (rc) return rc;
    if (!q || !scales || !out || rows < 1 || m0 < 0 || m0 % T || m0 + rows > M) return RYZ_EARG;
    if (m0 + rows < M && rows % T) return RYZ_EARG;  /* whole tiles, except the last */
    const int G = group;
    const int64_t ng = groups_of(K, G), Kp = kp_of(K, G), tb = tile_bytes_of(K, G);
    if (q_len < rows * K || scales_len < rows * ng) return RYZ_EWS;
    if (out_bytes != ryz_head4_packed_bytes(M, K, G)) return RYZ_EPACKED;
    for (int64_t i = 0; i < rows * K; i++)
        if (q[i] < -8 || q[i] > 7) return RYZ_EVALUE;
    for (int64_t i = 0; i < rows * ng; i++)
        if (!fp16_finite(scales[i])) return RYZ_EVALUE;
    write_trailer(out, out_bytes, M, K, G);
    const int64_t tiles = (rows + T - 1) / T;
    for (int64_t t = 0; t < tiles; t++) {
        uint8_t *tile = out + (m0 / T + t) * tb;
        memset(tile, 0, (size_t)tb);  /* scales 0 */
        for (int64_t g = 0; g < Kp / G; g++)  /* codes 8 (q = 0) everywhere, then the rows */
            memset(tile + weight_offset(g, 0, 0, G, &(int){0}), 0x88, (size_t)(8 * G));
        for (int r = 0; r < T && t * T + r < rows; r++) {
            const int64_t i = t * T + r;
            for (int64_t g = 0; g < ng; g++) {
                memcpy(tile + scale_offset(g, r, G), &scales[i * ng + g], 2);
                for (int64_t kk = 0; kk < G && g * G + kk < K; kk++) {
                    int shift;
                    uint8_t *b = tile + weight_offset(g, kk, r, G, &shift);
                    const uint8_t c = (uint8_t)(q[i * K + g * G + kk] + 8);
                    *b = (uint8_t)((*b & ~(0x0f << shift)) | c << shift);
                }
            }
        }
    }
    return RYZ_OK;
}

/* fp16 -> float32, exact (normals, subnormals, zeros; no inf/NaN reach here). */
static float half_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, f = h & 0x3ff;
    float v;
    if (e == 0) {
        v = (float)f * (1.0f / 16777216.0f);  /* f * 2^-24, exact */
    } else {
        uint32_t bits = (e + 112) << 23 | f << 13;
        memcpy(&v, &bits, 4);
    }
    uint32_t bits;
    memcpy(&bits, &v, 4);
    bits |= sign;
    memcpy(&v, &bits, 4);
    return v;
}

int ryz_head4_row(const unsigned char *packed, long long packed_bytes, long long M, long long K, int group,
                  long long m, float *out, long long out_len) {
    int rc = check_shape(M, K, group);
    if (rc) return rc;
    if (!packed || !out || m < 0 || m >= M) return RYZ_EARG;
    if ((rc = check_packed(packed, packed_bytes, M, K, group))) return rc;
    if (out_len < K) return RYZ_EWS;
    const int G = group, r = (int)(m % T);
    const int64_t tb = tile_bytes_of(K, G);
    const uint8_t *tile = packed + m / T * tb;
    /* The row's nibbles and scales are spread over its whole tile, which is cold in a decode
     * step (the embedding lookup after a token has streamed every weight): requested all at
     * once, its lines arrive in parallel instead of one demand miss after another (Model's
     * embedding lookup after a 2B-4T token: 77 -> 57 us, median of 60 lookups, one run each,
     * EPYC VM). */
    for (int64_t off = 0; off < tb; off += 64) _mm_prefetch((const char *)tile + off, _MM_HINT_T0);
    for (int64_t k = 0; k < K; k++) {
        int shift;
        const int64_t g = k / G, at = weight_offset(g, k % G, r, G, &shift);  /* sets shift first */
        uint16_t h;
        memcpy(&h, tile + scale_offset(g, r, G), 2);
        const int c = tile[at] >> shift & 0x0f;
        out[k] = (float)(c - 8) * half_to_float(h);
    }
    return RYZ_OK;
}

/* The scalar tier: the same integers and the same float operations in the same order. */
static void tiles_scalar(const uint8_t *packed, int64_t tb, int64_t Kp, int G, const int8_t *x,
                         const int32_t *xs8, int64_t t0, int64_t t1, float *out, int64_t prefetch) {
    (void)prefetch;
    for (int64_t t = t0; t < t1; t++) {
        const uint8_t *tile = packed + t * tb;
        for (int r = 0; r < T; r++) {
            float acc = 0.0f;
            for (int64_t g = 0; g < Kp / G; g++) {
                int32_t dot = 0;
                for (int kk = 0; kk < G; kk++) {
                    int shift;
                    const int64_t at = weight_offset(g, kk, r, G, &shift);  /* sets shift first */
                    const int c = tile[at] >> shift & 0x0f;
                    dot += c * x[g * G + kk];
                }
                dot -= xs8[g];
                uint16_t h;
                memcpy(&h, tile + scale_offset(g, r, G), 2);
                volatile float p = half_to_float(h) * (float)dot;  /* no contraction into an FMA */
                acc = acc + p;
            }
            out[(t - t0) * T + r] = acc;
        }
    }
}

static int has_vnni(void) {
    const unsigned long long need = RYZ_F_AVX512_BASE | RYZ_F_AVX512VNNI;
    return (ryz_cpu_features() & need) == need;
}

const char *ryz_head4_isa(void) { return has_vnni() ? "avx512vnni" : "scalar"; }

static void prep_i4(const ryz_head_plan *p, const signed char *x) {
    const int G = p->group;
    int8_t *xp = (int8_t *)p->scratch;
    int32_t *xs8 = (int32_t *)(xp + p->Kp);  /* Kp is a multiple of 64: aligned */
    for (int64_t k = 0; k < p->Kp; k++) xp[k] = k < p->K ? x[k] : 0;
    for (int64_t g = 0; g < p->Kp / G; g++) {
        int32_t s = 0;
        for (int kk = 0; kk < G; kk++) s += xp[g * G + kk];
        xs8[g] = 8 * s;
    }
}

/* Tiles [t0, t1): y[m], or logits[m] = y[m] / x_scale when logits is given. */
static void rows_i4(const ryz_head_plan *p, int64_t t0, int64_t t1, float *y, float *logits, float x_scale) {
    void (*run)(const uint8_t *, int64_t, int64_t, int, const int8_t *, const int32_t *, int64_t, int64_t, float *,
                int64_t) =
        has_vnni() ? ryz_head4_tiles_avx512vnni : tiles_scalar;
    const int8_t *xp = (const int8_t *)p->scratch;
    const int32_t *xs8 = (const int32_t *)(xp + p->Kp);
    enum { BATCH = 64 };  /* tiles per call; results go through a small local buffer */
    float buf[BATCH * T];
    for (int64_t b = t0; b < t1; b += BATCH) {
        const int64_t e = b + BATCH < t1 ? b + BATCH : t1;
        run(p->packed, p->tile_bytes, p->Kp, p->group, xp, xs8, b, e, buf, p->prefetch);
        const int64_t m_end = e * T < p->M ? e * T : p->M;
        if (logits)
            for (int64_t m = b * T; m < m_end; m++) logits[m] = buf[m - b * T] / x_scale;
        else
            memcpy(y + b * T, buf, (size_t)(m_end - b * T) * sizeof(float));
    }
}

static void run_i4(const ryz_head_plan *p, int64_t t0, int64_t t1, float x_scale, float *logits) {
    rows_i4(p, t0, t1, (float *)p->y, logits, x_scale);
}

/* The plan sets how far ahead the AVX-512 tiles prefetch their weights: 2 KiB on AMD,
 * RYZ_PREFETCH_BYTES (16 KiB) elsewhere.  On the Zen 4 VM the 2B-4T int4 head ran 1.37-1.40x
 * faster on 1 thread and 1.09-1.10x on 2 with 1-2 KiB than with 16 KiB, and no faster from
 * 3 KiB on (cold caches, tools/ab_libs.py --part head --head int4, 2026-12-05;
 * kernels_c/README.md, "The int4 LM head"); on the Emerald Rapids VM 16 KiB gave the
 * 1.41-1.48x of the prefetch fix.  RYZLAB_HEAD4_PREFETCH=<bytes> forces a distance; 0 makes
 * the tiles prefetch the lines they are reading, which is no prefetch in effect. */
static void plan_i4(const unsigned char *packed, long long M, long long K, int G, unsigned char *ws,
                    ryz_head_plan *p) {
    p->Kp = kp_of(K, G), p->M = M, p->K = K, p->group = G, p->packed = packed;
    p->tiles = ryz_round_up(M, T) / T, p->tile_bytes = tile_bytes_of(K, G);
    p->scratch = (uint8_t *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    p->prep = prep_i4, p->run = run_i4;
    p->chunk = 64;
    p->prefetch = ryz_prefetch_choice("RYZLAB_HEAD4_PREFETCH", 2048, RYZ_PREFETCH_BYTES);
}

int ryz_head_plan_int4(const ryz_decode_head *h, ryz_head_plan *p) {
    int rc = check_shape(h->M, h->K, h->group);
    if (rc) return rc;
    if (!h->packed || !h->act.xq || !h->ws || !h->logits) return RYZ_EARG;
    if ((rc = check_packed(h->packed, h->packed_bytes, h->M, h->K, h->group))) return rc;
    if (h->act.xq_len < h->K || h->ws_bytes < ryz_head4_workspace_bytes(h->K, h->group) || h->logits_len < h->M)
        return RYZ_EWS;
    plan_i4(h->packed, h->M, h->K, h->group, h->ws, p);
    return RYZ_OK;
}

/* Tiles in contiguous blocks, one per thread (one stream each), claimed in chunks
 * (ryz_head_run_parallel). */
int ryz_head4_gemv(const unsigned char *packed, long long packed_bytes, long long M, long long K, int group,
                   const signed char *x, long long x_len, float *y, long long y_len,
                   unsigned char *ws, long long ws_bytes, int threads) {
    int rc = check_shape(M, K, group);
    if (!rc) rc = ryz_check_threads(threads);
    if (rc) return rc;
    if (!packed || !x || !y || !ws) return RYZ_EARG;
    if ((rc = check_packed(packed, packed_bytes, M, K, group))) return rc;
    if (x_len < K || y_len < M || ws_bytes < ryz_head4_workspace_bytes(K, group)) return RYZ_EWS;
    ryz_head_plan p = {0};
    plan_i4(packed, M, K, group, ws, &p);
    p.y = y;
    prep_i4(&p, x);
    return ryz_head_run_parallel(&p, threads);
}
