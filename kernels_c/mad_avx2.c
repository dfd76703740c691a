/* mad_avx2.c - multiply-add GEMM on 2-bit codes with vpmaddubsw.
 *
 * Same format and identity as mad_avx512vnni.c (sum(c * x) - sum(x), c = w + 1).  Each
 * 32-byte half of a 64-byte block gives 4 x 32 codes; vpmaddubsw forms pair sums in int16
 * (|pair| <= 512, no saturation), the 8 products of a block are added in int16
 * (|sum| <= 4096) and widened to int32 once per block with vpmaddwd. */
#include <immintrin.h>

#include "internal.h"
#include "simd_avx2.h"

#define ROWS 4

static inline __m256i half_block(__m256i v, const int8_t *x, __m256i mask) {
    __m256i s = _mm256_maddubs_epi16(_mm256_and_si256(v, mask), _mm256_load_si256((const __m256i *)x));
    s = _mm256_add_epi16(s, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 2), mask),
                                                  _mm256_load_si256((const __m256i *)(x + 64))));
    s = _mm256_add_epi16(s, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), mask),
                                                  _mm256_load_si256((const __m256i *)(x + 128))));
    s = _mm256_add_epi16(s, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 6), mask),
                                                  _mm256_load_si256((const __m256i *)(x + 192))));
    return s;
}

void ryz_run_mad_avx2(const ryz_args *a, int64_t t0, int64_t t1, int32_t *y, int64_t ldy, int64_t m_base) {
    const int64_t blocks = a->Kp / 256;
    const __m256i mask = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    for (int64_t t = t0; t < t1; t++) {
        const uint8_t *w = a->w + t * blocks * ROWS * 64;
        for (int64_t n = 0; n < a->N; n++) {
            const int8_t *x = ryz_mad_x(a, n);
            __m256i acc[ROWS];
            for (int r = 0; r < ROWS; r++) acc[r] = _mm256_setzero_si256();
            for (int64_t kb = 0; kb < blocks; kb++) {
                const int8_t *xb = x + 256 * kb;
                for (int r = 0; r < ROWS; r++) {
                    const uint8_t *wb = w + (kb * ROWS + r) * 64;
                    ryz_prefetch(wb);
                    __m256i s = half_block(_mm256_loadu_si256((const __m256i *)wb), xb, mask);
                    s = _mm256_add_epi16(s, half_block(_mm256_loadu_si256((const __m256i *)(wb + 32)), xb + 32, mask));
                    acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(s, ones));
                }
            }
            int32_t out[ROWS];
            const int32_t xsum = ryz_mad_xsum(a, n);
            for (int r = 0; r < ROWS; r++) out[r] = ryz_hsum_epi32(acc[r]) - xsum;
            ryz_store_rows(out, ROWS, t * ROWS, a->M, y, ldy, n, m_base);
        }
    }
}
