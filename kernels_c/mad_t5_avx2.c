/* mad_t5_avx2.c - multiply-add GEMM on the t5_k320x4 format (5 base-3 codes per byte) with
 * vpmaddubsw, for CPUs without AVX-512.
 *
 * Digit i of a byte q (formats.def) is floor(3 q_i / 256), q_(i+1) = 3 q_i mod 256: it is
 * 1 + [q_i >= 86] + [q_i >= 171] - 1, i.e. the number of thresholds 86, 171 that q_i reaches.
 * AVX2 compares signed bytes only, so the chain runs on s = q ^ 0x80 = q + 128 (mod 256),
 * which it keeps: 3 s = 3 q + 384 = (3 q mod 256) + 128 (mod 256).  Two compares give -1 per
 * threshold reached, their sum is -digit, vpabsb makes it the unsigned operand of vpmaddubsw.
 * Then as mad_avx2.c: pairs |c0 x0 + c1 x1| <= 512, ten of them (5 planes x 2 halves) summed
 * in int16 (|s| <= 5120), widened once per block with vpmaddwd, and sum(x) subtracted at
 * the end.  A block adds at most 10 * 512 to an int32 lane, so int32 holds any K up to MAX_K. */
#include <immintrin.h>

#include "internal.h"
#include "simd_avx2.h"

#define ROWS 4

/* sum over the 5 planes of one 32-byte half: digits of 32 codes times their activations. */
static inline __m256i half_block(__m256i q, const int8_t *x) {
    const __m256i t1 = _mm256_set1_epi8(85 - 128), t2 = _mm256_set1_epi8(170 - 128);
    __m256i s = _mm256_xor_si256(q, _mm256_set1_epi8((char)0x80)), sum = _mm256_setzero_si256();
    for (int i = 0; i < 5; i++) {
        const __m256i d = _mm256_abs_epi8(_mm256_add_epi8(_mm256_cmpgt_epi8(s, t1), _mm256_cmpgt_epi8(s, t2)));
        sum = _mm256_add_epi16(sum, _mm256_maddubs_epi16(d, _mm256_load_si256((const __m256i *)(x + 64 * i))));
        s = _mm256_add_epi8(_mm256_add_epi8(s, s), s);
    }
    return sum;
}

void ryz_run_mad_t5_avx2(const ryz_args *a, int64_t t0, int64_t t1, int32_t *y, int64_t ldy, int64_t m_base) {
    const int64_t blocks = a->Kp / 320;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t t = t0; t < t1; t++) {
        const uint8_t *w = a->w + t * blocks * ROWS * 64;
        for (int64_t n = 0; n < a->N; n++) {
            const int8_t *x = ryz_mad_x(a, n);
            __m256i acc[ROWS];
            for (int r = 0; r < ROWS; r++) acc[r] = _mm256_setzero_si256();
            for (int64_t kb = 0; kb < blocks; kb++) {
                const int8_t *xb = x + 320 * kb;
                for (int r = 0; r < ROWS; r++) {
                    const uint8_t *wb = w + (kb * ROWS + r) * 64;
                    ryz_prefetch(wb);
                    __m256i s = half_block(_mm256_loadu_si256((const __m256i *)wb), xb);
                    s = _mm256_add_epi16(s, half_block(_mm256_loadu_si256((const __m256i *)(wb + 32)), xb + 32));
                    acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(s, ones));
                }
            }
            int32_t out[ROWS];
            const int32_t xsum = ryz_mad_xsum(a, n);
            /* unsigned: sum(c * x) may have wrapped, sum(c * x) - sum(x) has not */
            for (int r = 0; r < ROWS; r++) out[r] = (int32_t)((uint32_t)ryz_hsum_epi32(acc[r]) - (uint32_t)xsum);
            ryz_store_rows(out, ROWS, t * ROWS, a->M, y, ldy, n, m_base);
        }
    }
}
