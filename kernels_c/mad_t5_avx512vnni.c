/* mad_t5_avx512vnni.c - multiply-add GEMM on base-3 codes (5 weights per byte) with vpdpbusd.
 *
 * Format t5_k320x4 (formats.def): byte j of a row's 64-byte vector in a 320-weight block
 * holds the codes c = w + 1 of weights j + 64i, i = 0..4 ("planes"), as q = ceil(v * 256 /
 * 243), v = sum c_i 3^(4-i).  Digit i is floor(3 q_i / 256) with q_0 = q, q_(i+1) = 3 q_i mod
 * 256 (llama.cpp TQ1_0's idea), see t5_digits below.
 *
 * Decode by table: two 256-entry byte tables turn a vector of q into A = c0 | c1 << 2 |
 * c2 << 4 and B = c3 | c4 << 2, and from there it is the 2-bit kernel's trick
 * (mad_avx512vnni.c): each field is masked in place, giving 4^s * c, vpdpbusd multiplies it
 * by the plane's 64 activations, and one accumulator per scale 1, 4, 16 is shifted back once
 * at the end.  Per 64 bytes (320 weights): the two lookups, 5 and, 5 vpdpbusd.  The tables
 * are computed at the start of a call from the definition (~100 instructions).
 *
 * A 256-entry lookup, two ways (the lookups bound the kernel, so the CPU's costs choose):
 *   vpermi2b  two merge-masked vpermi2b of 128 entries each: the first looks up the upper
 *             half where q >= 128 (elsewhere it keeps q), the second the lower half where
 *             q < 128 (elsewhere it keeps the first result).  On AMD Zen 4 a vpermi2b costs
 *             about 1.5 cycles: AMD's choice.
 *   vpermb    four vpermb of 64 entries, the last three merge-masked by bit 6, bit 7 and
 *             both (later ones overwrite).  On Intel a zmm vpermi2b is 3 uops (2 on port 5)
 *             by published instruction tables and a vpermb 1, so 8 vpermb beat 4 vpermi2b:
 *             the 2B-4T layers 1.04x faster with cold caches on an Emerald Rapids VM, 1 and
 *             2 threads (kernels_c/README.md).  Everyone else's.
 * RYZLAB_T5_LOOKUP=vpermb|vpermi2b overrides the choice (read once per call, by ryz_setup_args:
 * tests, A/B timings; variant 1 is vpermb).
 *
 * Exact for every K below 2^24 (the library accepts K <= RYZ_MAX_K = 2^23): a block adds to an int32 lane at most
 * 2 fields * 4 bytes * 4 * 2 * 128 = 2^13 (scale 4) or 4 * 16 * 2 * 128 = 2^14 (scale 16), and
 * K / 320 < 2^16 blocks keep every accumulator below 2^30, so each is an exact multiple of
 * its scale when shifted back.  The final sum(c * x) may pass 2^31, but it is formed with
 * wrapping int32 adds and sum(c * x) - sum(x) = sum(w * x) fits in int32, so the result is
 * exact. */
#include <immintrin.h>

#include "internal.h"
#include "simd_avx512.h"

#define ROWS 4

/* Digits of 64 codes q: d[i] = floor(3 q_i / 256), q_(i+1) = 3 q_i mod 256, in byte lanes:
 * 3 q_i = q_i + q_i + q_i, and each of the two additions carries at most 1 into bit 8. */
static inline void t5_digits(__m512i q, __m512i d[5]) {
    const __m512i one = _mm512_set1_epi8(1);
    for (int i = 0; i < 5; i++) {
        const __m512i q2 = _mm512_add_epi8(q, q), q3 = _mm512_add_epi8(q2, q);
        const __mmask64 c1 = _mm512_movepi8_mask(q), c2 = _mm512_cmplt_epu8_mask(q3, q2);
        const __m512i d1 = _mm512_maskz_mov_epi8(c1, one);
        d[i] = _mm512_mask_add_epi8(d1, c2, d1, one);
        q = q3;
    }
}

/* Which bits of q select a table quarter: bit 7 (both ways), bit 6 and both (vpermb only). */
typedef struct quarters {
    __mmask64 b7, b6, b76;
} quarters;

static inline __attribute__((always_inline)) quarters quarters_of(__m512i q, const int by_vpermb) {
    quarters k = {_mm512_movepi8_mask(q), 0, 0};
    if (by_vpermb) {
        k.b6 = _mm512_test_epi8_mask(q, _mm512_set1_epi8(0x40));
        k.b76 = _kand_mask64(k.b6, k.b7);
    }
    return k;
}

/* 256-entry table lookup: t[p] holds entries 64p .. 64p + 63. */
static inline __attribute__((always_inline)) __m512i lookup256(const __m512i t[4], __m512i q, quarters k,
                                                               const int by_vpermb) {
    if (by_vpermb) {
        __m512i r = _mm512_permutexvar_epi8(q, t[0]);
        r = _mm512_mask_permutexvar_epi8(r, k.b6, q, t[1]);
        r = _mm512_mask_permutexvar_epi8(r, k.b7, q, t[2]);
        return _mm512_mask_permutexvar_epi8(r, k.b76, q, t[3]);
    }
    const __m512i u = _mm512_mask2_permutex2var_epi8(t[2], q, k.b7, t[3]);
    return _mm512_mask2_permutex2var_epi8(t[0], u, (__mmask64)~k.b7, t[1]);
}

int ryz_variant_mad_t5_avx512vnni(void) {
    return ryz_env_choice("RYZLAB_T5_LOOKUP", "vpermb", "vpermi2b", !ryz_cpu_is_amd());
}

/* The kernel for a compile-time lookup (both instances are specialised). */
static inline __attribute__((always_inline)) void run(const ryz_args *a, int64_t t0, int64_t t1, int32_t *y,
                                                      int64_t ldy, int64_t m_base, const int by_vpermb) {
    const int64_t blocks = a->Kp / 320;
    /* Tables A (c0 | c1 << 2 | c2 << 4) and B (c3 | c4 << 2) over all 256 byte values. */
    __m512i ta[4], tb[4];
    const __m512i iota = _mm512_set_epi8(63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48,
                                         47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32,
                                         31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16,
                                         15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    for (int p = 0; p < 4; p++) {
        __m512i d[5];
        t5_digits(_mm512_add_epi8(iota, _mm512_set1_epi8((char)(64 * p))), d);
        ta[p] = _mm512_or_si512(d[0], _mm512_or_si512(_mm512_slli_epi16(d[1], 2), _mm512_slli_epi16(d[2], 4)));
        tb[p] = _mm512_or_si512(d[3], _mm512_slli_epi16(d[4], 2));
    }
    const __m512i m0 = _mm512_set1_epi8(0x03), m1 = _mm512_set1_epi8(0x0c), m2 = _mm512_set1_epi8(0x30);
    for (int64_t t = t0; t < t1; t++) {
        const uint8_t *w = a->w + t * blocks * ROWS * 64;
        for (int64_t n = 0; n < a->N; n++) {
            const int8_t *x = ryz_mad_x(a, n);
            __m512i acc[ROWS][3];
            for (int r = 0; r < ROWS; r++)
                for (int s = 0; s < 3; s++) acc[r][s] = _mm512_setzero_si512();
            for (int64_t kb = 0; kb < blocks; kb++) {
                const int8_t *xb = x + 320 * kb;
                for (int r = 0; r < ROWS; r++) {
                    ryz_prefetch(w + (kb * ROWS + r) * 64);
                    const __m512i q = _mm512_loadu_si512(w + (kb * ROWS + r) * 64);
                    const quarters k = quarters_of(q, by_vpermb);
                    const __m512i va = lookup256(ta, q, k, by_vpermb), vb = lookup256(tb, q, k, by_vpermb);
                    acc[r][0] = ryz_dpbusd(acc[r][0], _mm512_and_si512(va, m0), _mm512_load_si512(xb));
                    acc[r][1] = ryz_dpbusd(acc[r][1], _mm512_and_si512(va, m1), _mm512_load_si512(xb + 64));
                    acc[r][2] = ryz_dpbusd(acc[r][2], _mm512_and_si512(va, m2), _mm512_load_si512(xb + 128));
                    acc[r][0] = ryz_dpbusd(acc[r][0], _mm512_and_si512(vb, m0), _mm512_load_si512(xb + 192));
                    acc[r][1] = ryz_dpbusd(acc[r][1], _mm512_and_si512(vb, m1), _mm512_load_si512(xb + 256));
                }
            }
            __m512i row[ROWS];
            for (int r = 0; r < ROWS; r++)
                row[r] = _mm512_add_epi32(acc[r][0], _mm512_add_epi32(_mm512_srai_epi32(acc[r][1], 2),
                                                                      _mm512_srai_epi32(acc[r][2], 4)));
            int32_t out[ROWS];
            _mm_storeu_si128((__m128i *)out,
                             _mm_sub_epi32(ryz_reduce4_epi32(row[0], row[1], row[2], row[3]), _mm_set1_epi32(ryz_mad_xsum(a, n))));
            ryz_store_rows(out, ROWS, t * ROWS, a->M, y, ldy, n, m_base);
        }
    }
}

RYZ_RUN_BY_VARIANT(mad_t5_avx512vnni)
