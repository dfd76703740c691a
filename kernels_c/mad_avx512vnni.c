/* mad_avx512vnni.c - multiply-add GEMM on 2-bit codes with vpdpbusd.
 *
 * Format i2_k256: per 256-weight block, one 64-byte load gives 4 x 64 codes c = w + 1 in
 * {0, 1, 2} after a shift and mask.  vpdpbusd multiplies the codes (unsigned) by the int8
 * activations (signed) and sums 4 products into int32: sum(c * x) = sum(w * x) + sum(x),
 * so the token's sum(x) is subtracted once at the end.  Exact: |c * x| <= 256, and the
 * non-saturating vpdpbusd accumulates in int32.  Four rows share each activation load. */
#include <immintrin.h>

#include "internal.h"

#define ROWS 4

void ryz_run_mad_avx512vnni(const ryz_args *a, int64_t t0, int64_t t1, int32_t *y, int64_t ldy,
                            int64_t m_base) {
    const int64_t row_bytes = a->Kp / 4, blocks = a->Kp / 256;
    const __m512i mask = _mm512_set1_epi8(3);
    for (int64_t t = t0; t < t1; t++) {
        const uint8_t *w = a->w + t * ROWS * row_bytes;
        for (int64_t n = 0; n < a->N; n++) {
            const int8_t *x = ryz_mad_x(a, n);
            __m512i acc[ROWS];
            for (int r = 0; r < ROWS; r++) acc[r] = _mm512_setzero_si512();
            for (int64_t kb = 0; kb < blocks; kb++) {
                const __m512i x0 = _mm512_load_si512(x + 256 * kb);
                const __m512i x1 = _mm512_load_si512(x + 256 * kb + 64);
                const __m512i x2 = _mm512_load_si512(x + 256 * kb + 128);
                const __m512i x3 = _mm512_load_si512(x + 256 * kb + 192);
                for (int r = 0; r < ROWS; r++) {
                    const __m512i v = _mm512_loadu_si512(w + r * row_bytes + 64 * kb);
                    acc[r] = _mm512_dpbusd_epi32(acc[r], _mm512_and_si512(v, mask), x0);
                    acc[r] = _mm512_dpbusd_epi32(acc[r], _mm512_and_si512(_mm512_srli_epi16(v, 2), mask), x1);
                    acc[r] = _mm512_dpbusd_epi32(acc[r], _mm512_and_si512(_mm512_srli_epi16(v, 4), mask), x2);
                    acc[r] = _mm512_dpbusd_epi32(acc[r], _mm512_and_si512(_mm512_srli_epi16(v, 6), mask), x3);
                }
            }
            int32_t out[ROWS];
            const int32_t xsum = ryz_mad_xsum(a, n);
            for (int r = 0; r < ROWS; r++) out[r] = _mm512_reduce_add_epi32(acc[r]) - xsum;
            ryz_store_rows(out, ROWS, t * ROWS, a->M, y, ldy, n, m_base);
        }
    }
}
