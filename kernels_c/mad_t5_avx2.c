/* mad_t5_avx2.c - multiply-add GEMM on the t5_k320x4 format (5 base-3 codes per byte) with
 * vpmaddubsw, for CPUs without AVX-512.
 *
 * A byte q = s << 7 | h << 6 | v with v = 7 b + r (internal.h, formats.def): b = v / 7 =
 * (37 v) >> 8 for v < 64 (two vpmaddubsw, for the even and the odd bytes) and r = v - 7 b.
 * b <= 9 and r + 8 h then index 16-entry vpshufb tables of the groups' fields
 * (RYZ_T5_FIELDS_A/B), bit 7 of q negates group A's codes (vpblendvb), and shifts and masks
 * give the five codes as the unsigned operand of vpmaddubsw.  Then as mad_avx2.c: pairs
 * |c0 x0 + c1 x1| <= 512, ten of them (5 planes x 2 halves) summed in int16 (|s| <= 5120),
 * widened once per block with vpmaddwd, and sum(x) subtracted at the end.  A block adds at
 * most 10 * 512 to an int32 lane, so int32 holds any K up to MAX_K. */
#include <immintrin.h>

#include "internal.h"
#include "simd_avx2.h"

#define ROWS 4

/* sum over the 5 planes of one 32-byte half: codes of 32 bytes times their activations. */
static inline __m256i half_block(__m256i q, const int8_t *x) {
#define FA(i) RYZ_T5_FIELDS_A((i) % 8 + 7 * ((i) / 8))   /* index r + 8 h (r <= 6) */
#define FB(b) RYZ_T5_FIELDS_B(b)
    const __m256i table_a = _mm256_setr_epi8(RYZ_REP16(FA, 0), RYZ_REP16(FA, 0));
    const __m256i table_b = _mm256_setr_epi8(RYZ_REP16(FB, 0), RYZ_REP16(FB, 0));
#undef FA
#undef FB
    const __m256i m3 = _mm256_set1_epi8(3), by37 = _mm256_set1_epi16(37), by37_hi = _mm256_set1_epi16(37 << 8);
    const __m256i v = _mm256_and_si256(q, _mm256_set1_epi8(63));
    /* b = v / 7 = (37 v) >> 8 for v < 64, the even bytes' and the odd bytes' products apart */
    const __m256i b = _mm256_or_si256(_mm256_srli_epi16(_mm256_maddubs_epi16(v, by37), 8),
                                      _mm256_and_si256(_mm256_maddubs_epi16(v, by37_hi), _mm256_set1_epi16(-256)));
    const __m256i r = _mm256_sub_epi8(v, _mm256_sub_epi8(_mm256_slli_epi16(b, 3), b));
    const __m256i a = _mm256_or_si256(r, _mm256_and_si256(_mm256_srli_epi16(q, 3), _mm256_set1_epi8(8)));
    __m256i fa = _mm256_shuffle_epi8(table_a, a);
    fa = _mm256_blendv_epi8(fa, _mm256_sub_epi8(_mm256_set1_epi8(RYZ_T5_NEG_A), fa), q);
    const __m256i fb = _mm256_shuffle_epi8(table_b, b);
    __m256i sum = _mm256_maddubs_epi16(_mm256_and_si256(fa, m3), _mm256_load_si256((const __m256i *)x));
    sum = _mm256_add_epi16(sum, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(fa, 2), m3),
                                                     _mm256_load_si256((const __m256i *)(x + 64))));
    sum = _mm256_add_epi16(sum, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(fa, 4), m3),
                                                     _mm256_load_si256((const __m256i *)(x + 128))));
    sum = _mm256_add_epi16(sum, _mm256_maddubs_epi16(_mm256_and_si256(fb, m3), _mm256_load_si256((const __m256i *)(x + 192))));
    return _mm256_add_epi16(sum, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(fb, 2), m3),
                                                      _mm256_load_si256((const __m256i *)(x + 256))));
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
