/* mad_avx512vnni.c - multiply-add GEMM on 2-bit codes with vpdpbusd.
 *
 * Format i2_k256x4: per 256-weight block and row, a 64-byte vector holds 4 x 64 codes
 * c = w + 1 in {0, 1, 2}, field s in bits 2s..2s+1.  Masking field s in place (no shift)
 * gives the unsigned bytes 4^s * c; vpdpbusd multiplies them by the int8 activations and
 * sums 4 products into int32, one accumulator per field.  At the end field s's accumulator
 * is an exact multiple of 4^s and is shifted back, and sum(c * x) = sum(w * x) + sum(x), so
 * the token's sum(x) is subtracted once.  Exact: |4^s * c * x| <= 2^14, so int32 holds any
 * K below 2^17 * 64; the non-saturating vpdpbusd never clips.  Four rows share each
 * activation load, and one shuffle tree reduces the four rows' accumulators at the end. */
#include <immintrin.h>

#include "internal.h"
#include "simd_avx512.h"


#define ROWS 4

void ryz_run_mad_avx512vnni(const ryz_args *a, int64_t t0, int64_t t1, int32_t *y, int64_t ldy,
                            int64_t m_base) {
    const int64_t blocks = a->Kp / 256;
    const __m512i m0 = _mm512_set1_epi8(0x03), m1 = _mm512_set1_epi8(0x0c);
    const __m512i m2 = _mm512_set1_epi8(0x30), m3 = _mm512_set1_epi8((char)0xc0);
    for (int64_t t = t0; t < t1; t++) {
        const uint8_t *w = a->w + t * blocks * ROWS * 64;
        for (int64_t n = 0; n < a->N; n++) {
            const int8_t *x = ryz_mad_x(a, n);
            /* Sixteen named accumulators, not an array: with acc[ROWS][4] GCC 12 shuffled the
             * accumulators through extra register moves and stack stores every block. */
            __m512i a00 = _mm512_setzero_si512(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00,
                    a12 = a00, a13 = a00, a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00,
                    a32 = a00, a33 = a00;
            const uint8_t *wk = w;
            for (int64_t kb = 0; kb < blocks; kb++, wk += ROWS * 64) {
                const __m512i x0 = _mm512_load_si512(x + 256 * kb);
                const __m512i x1 = _mm512_load_si512(x + 256 * kb + 64);
                const __m512i x2 = _mm512_load_si512(x + 256 * kb + 128);
                const __m512i x3 = _mm512_load_si512(x + 256 * kb + 192);
#define ROW(r)                                                                            \
                {                                                                         \
                    ryz_prefetch(wk + (r) * 64);                                          \
                    const __m512i v = _mm512_loadu_si512(wk + (r) * 64);                  \
                    a##r##0 = ryz_dpbusd(a##r##0, _mm512_and_si512(v, m0), x0); \
                    a##r##1 = ryz_dpbusd(a##r##1, _mm512_and_si512(v, m1), x1); \
                    a##r##2 = ryz_dpbusd(a##r##2, _mm512_and_si512(v, m2), x2); \
                    a##r##3 = ryz_dpbusd(a##r##3, _mm512_and_si512(v, m3), x3); \
                }
                ROW(0) ROW(1) ROW(2) ROW(3)
#undef ROW
            }
#define FIELDS(r) _mm512_add_epi32(_mm512_add_epi32(a##r##0, _mm512_srai_epi32(a##r##1, 2)), \
                  _mm512_add_epi32(_mm512_srai_epi32(a##r##2, 4), _mm512_srai_epi32(a##r##3, 6)))
            const __m512i row0 = FIELDS(0), row1 = FIELDS(1), row2 = FIELDS(2), row3 = FIELDS(3);
#undef FIELDS
            int32_t out[ROWS];
            _mm_storeu_si128((__m128i *)out,
                             _mm_sub_epi32(ryz_reduce4_epi32(row0, row1, row2, row3), _mm_set1_epi32(ryz_mad_xsum(a, n))));
            ryz_store_rows(out, ROWS, t * ROWS, a->M, y, ldy, n, m_base);
        }
    }
}
