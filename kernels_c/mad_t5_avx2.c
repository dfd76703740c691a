/* mad_t5_avx2.c - multiply-add GEMM on the t5_k320x4 format (5 base-3 codes per byte) with
 * vpmaddubsw, for CPUs without AVX-512.
 *
 * A byte q = s << 7 | (14 b + a) (internal.h, formats.def).  With h = bits 4-6 and l = bits
 * 0-3 of q, 14 b + a = 14 h + t with t = 2 h + l <= 29, so b = h + [t >= 14] + [t >= 28] and
 * a = t - 14 ([t >= 14] + [t >= 28]): two byte compares.  a <= 13 and b <= 9 then index
 * 16-entry vpshufb tables of the groups' fields (RYZ_T5_FIELDS_A/B), bit 7 of q negates group
 * A's codes (vpblendvb), and shifts and masks give the five codes as the unsigned operand of
 * vpmaddubsw.  Then as mad_avx2.c: pairs |c0 x0 + c1 x1| <= 512, ten of them (5 planes x 2
 * halves) summed in int16 (|s| <= 5120), widened once per block with vpmaddwd, and sum(x)
 * subtracted at the end.  A block adds at most 10 * 512 to an int32 lane, so int32 holds any K
 * up to MAX_K. */
#include <immintrin.h>

#include "internal.h"
#include "simd_avx2.h"

#define ROWS 4

/* sum over the 5 planes of one 32-byte half: codes of 32 bytes times their activations. */
static inline __m256i half_block(__m256i q, const int8_t *x) {
#define FA(a) RYZ_T5_FIELDS_A(a)
#define FB(b) RYZ_T5_FIELDS_B(b)
    const __m256i table_a = _mm256_setr_epi8(RYZ_REP16(FA, 0), RYZ_REP16(FA, 0));
    const __m256i table_b = _mm256_setr_epi8(RYZ_REP16(FB, 0), RYZ_REP16(FB, 0));
#undef FA
#undef FB
    const __m256i m3 = _mm256_set1_epi8(3), fourteen = _mm256_set1_epi8(14);
    const __m256i h = _mm256_and_si256(_mm256_srli_epi16(q, 4), _mm256_set1_epi8(7));
    const __m256i t = _mm256_add_epi8(_mm256_add_epi8(h, h), _mm256_and_si256(q, _mm256_set1_epi8(15)));
    const __m256i g1 = _mm256_cmpgt_epi8(t, _mm256_set1_epi8(13)), g2 = _mm256_cmpgt_epi8(t, _mm256_set1_epi8(27));
    const __m256i b = _mm256_sub_epi8(_mm256_sub_epi8(h, g1), g2);
    const __m256i a = _mm256_sub_epi8(_mm256_sub_epi8(t, _mm256_and_si256(g1, fourteen)), _mm256_and_si256(g2, fourteen));
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
