/* lut_avx2.c - LUT GEMM with vpshufb (T-MAC construction, exact int16 tables).
 *
 * Format i2_lut16x8: a 32-byte block holds the 4-bit pair codes of 16 rows x 4 pairs.  The
 * low nibbles index pairs (4u, 4u+1) - one per 128-bit lane, and vpshufb looks up within a
 * lane, so one ymm load of the table planes gives both lanes' tables - the high nibbles
 * pairs (4u+2, 4u+3).  Byte planes are looked up separately and interleaved back into exact
 * int16 values (unpack lo/hi), summed in int16 for 32 blocks (2 values of |s| <= 256 per
 * lane per block: |sum| <= 16384) and widened to int32 every 256 weights (k_align).  Reads k in
 * [a->k0, a->k1) (the blocked LUT path's K blocks, gemm_lut_blocked.c). */
#include <immintrin.h>

#include "internal.h"


static inline __m256i widen(__m256i acc16) {
    return _mm256_add_epi32(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(acc16)),
                            _mm256_cvtepi16_epi32(_mm256_extracti128_si256(acc16, 1)));
}

void ryz_run_lut_avx2(const ryz_args *a, int64_t t0, int64_t t1, int32_t *y, int64_t ldy, int64_t m_base) {
    const int64_t blocks = a->Kp / 8;
    const __m256i nib = _mm256_set1_epi8(0x0f);
    for (int64_t t = t0; t < t1; t++) {
        const uint8_t *w = a->w + t * blocks * 32;
        for (int64_t n = 0; n < a->N; n++) {
            const uint8_t *lo = ryz_lut_lo(a, n), *hi = ryz_lut_hi(a, n);
            __m256i acc_a = _mm256_setzero_si256(), acc_b = _mm256_setzero_si256();  /* rows 0-7, 8-15 */
            for (int64_t u0 = a->k0 / 8; u0 < a->k1 / 8; u0 += 32) {
                __m256i sa = _mm256_setzero_si256(), sb = _mm256_setzero_si256();
                for (int64_t u = u0; u < u0 + 32; u++) {
                    if (u % 2 == 0) ryz_prefetch(w + 32 * u);
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(w + 32 * u));
                    const __m256i i0 = _mm256_and_si256(v, nib);
                    const __m256i i1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
                    const __m256i l0 = _mm256_shuffle_epi8(_mm256_load_si256((const __m256i *)(lo + 64 * u)), i0);
                    const __m256i h0 = _mm256_shuffle_epi8(_mm256_load_si256((const __m256i *)(hi + 64 * u)), i0);
                    const __m256i l1 = _mm256_shuffle_epi8(_mm256_load_si256((const __m256i *)(lo + 64 * u + 32)), i1);
                    const __m256i h1 = _mm256_shuffle_epi8(_mm256_load_si256((const __m256i *)(hi + 64 * u + 32)), i1);
                    sa = _mm256_add_epi16(sa, _mm256_add_epi16(_mm256_unpacklo_epi8(l0, h0), _mm256_unpacklo_epi8(l1, h1)));
                    sb = _mm256_add_epi16(sb, _mm256_add_epi16(_mm256_unpackhi_epi8(l0, h0), _mm256_unpackhi_epi8(l1, h1)));
                }
                acc_a = _mm256_add_epi32(acc_a, widen(sa));
                acc_b = _mm256_add_epi32(acc_b, widen(sb));
            }
            int32_t out[16];
            _mm256_storeu_si256((__m256i *)out, acc_a);
            _mm256_storeu_si256((__m256i *)(out + 8), acc_b);
            ryz_put_rows(a, out, 16, t * 16, y, ldy, n, m_base);
        }
    }
}
