/* mad_avx512vnni.c - multiply-add GEMM on 2-bit codes with vpdpbusd.
 *
 * Format i2_k256x4: per 256-weight block and row, a 64-byte vector holds 4 x 64 codes
 * c = w + 1 in {0, 1, 2}, field s in bits 2s..2s+1.  Masking field s in place (no shift)
 * gives the unsigned bytes 4^s * c; vpdpbusd multiplies them by the int8 activations and
 * sums 4 products into int32, one accumulator per field.  At the end field s's accumulator
 * is an exact multiple of 4^s and is shifted back, and sum(c * x) = sum(w * x) + sum(x), so
 * the token's sum(x) is subtracted once.  Exact: |4^s * c * x| <= 2^14, so int32 holds any
 * K below 2^17 * 64; the non-saturating vpdpbusd never clips.  Four rows share each
 * activation load, and one shuffle tree reduces the four rows' accumulators at the end.
 *
 * Software prefetch of the weight stream (ryz_prefetch) is on for Intel and off for AMD: on
 * the Zen 4 VM the 2B-4T layers ran 1.08-1.11x faster without it on 2 threads and 1.17-1.26x
 * on 1 (cold caches, tools/ab_libs.py; kernels_c/README.md, "Memory layout and prefetch"),
 * where this loop's four vpdpbusd per line leave the hardware prefetcher enough time.
 * RYZLAB_MAD_PREFETCH=on|off overrides the choice (read once per call, by ryz_setup_args:
 * tests, A/B timings). */
#include <immintrin.h>

#include "internal.h"
#include "simd_avx512.h"


#define ROWS 4

int ryz_variant_mad_avx512vnni(void) { return ryz_env_choice("RYZLAB_MAD_PREFETCH", "on", "off", !ryz_cpu_is_amd()); }

/* The kernel with or without the weight prefetch (both instances are specialised); variant 1
 * prefetches. */
static inline __attribute__((always_inline)) void run(const ryz_args *a, int64_t t0, int64_t t1, int32_t *y,
                                                      int64_t ldy, int64_t m_base, const int pf) {
    const int64_t blocks = a->Kp / 256;
    const __m512i m0 = _mm512_set1_epi8(0x03), m1 = _mm512_set1_epi8(0x0c);
    const __m512i m2 = _mm512_set1_epi8(0x30), m3 = _mm512_set1_epi8((char)0xc0);
    for (int64_t t = t0; t < t1; t++) {
        const uint8_t *w = a->w + t * blocks * ROWS * 64;
        for (int64_t n = 0; n < a->N; n++) {
            const int8_t *x = ryz_mad_x(a, n);
            __m512i acc[ROWS][4];
            for (int r = 0; r < ROWS; r++)
                for (int s = 0; s < 4; s++) acc[r][s] = _mm512_setzero_si512();
            for (int64_t kb = 0; kb < blocks; kb++) {
                const __m512i x0 = _mm512_load_si512(x + 256 * kb);
                const __m512i x1 = _mm512_load_si512(x + 256 * kb + 64);
                const __m512i x2 = _mm512_load_si512(x + 256 * kb + 128);
                const __m512i x3 = _mm512_load_si512(x + 256 * kb + 192);
                for (int r = 0; r < ROWS; r++) {
                    if (pf) ryz_prefetch(w + (kb * ROWS + r) * 64);
                    const __m512i v = _mm512_loadu_si512(w + (kb * ROWS + r) * 64);
                    acc[r][0] = ryz_dpbusd(acc[r][0], _mm512_and_si512(v, m0), x0);
                    acc[r][1] = ryz_dpbusd(acc[r][1], _mm512_and_si512(v, m1), x1);
                    acc[r][2] = ryz_dpbusd(acc[r][2], _mm512_and_si512(v, m2), x2);
                    acc[r][3] = ryz_dpbusd(acc[r][3], _mm512_and_si512(v, m3), x3);
                }
            }
            __m512i row[ROWS];
            for (int r = 0; r < ROWS; r++)
                row[r] = _mm512_add_epi32(
                    _mm512_add_epi32(acc[r][0], _mm512_srai_epi32(acc[r][1], 2)),
                    _mm512_add_epi32(_mm512_srai_epi32(acc[r][2], 4), _mm512_srai_epi32(acc[r][3], 6)));
            int32_t out[ROWS];
            _mm_storeu_si128((__m128i *)out,
                             _mm_sub_epi32(ryz_reduce4_epi32(row[0], row[1], row[2], row[3]), _mm_set1_epi32(ryz_mad_xsum(a, n))));
            ryz_store_rows(out, ROWS, t * ROWS, a->M, y, ldy, n, m_base);
        }
    }
}

RYZ_RUN_BY_VARIANT(mad_avx512vnni, 2)
