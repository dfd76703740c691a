/* lut_avx512.c - LUT GEMM with vpermb (AVX-512 VBMI) and vpdpbusd as a 4-byte adder.
 *
 * Format i2_lut64x16: per 16-weight block, four 64-byte groups of 16 rows; byte 4r + j of a
 * group carries pair 8u + j (low nibble) and 8u + 4 + j (high nibble) of row r.  Four
 * consecutive pair tables are 64 contiguous bytes of a table plane, so index
 * (j << 4) | code selects pair j's entry with one vpermb over a whole zmm.  The four
 * looked-up bytes of a row are adjacent, so vpdpbusd against ones sums them straight into
 * that row's int32 lane: unsigned low plane and signed high plane in two accumulators,
 * s = lo + 256 * hi.  Exact for every int8.  The four table registers of a block serve all
 * 64 rows of the tile: tables (16 bytes per weight pair) are read from L2 once per 64 rows.
 * Reads k in [a->k0, a->k1) (the blocked LUT path's K blocks, gemm_lut_blocked.c). */
#include <immintrin.h>

#include "internal.h"
#include "simd_avx512.h"


#define GROUPS 4  /* groups of 16 rows per tile */

void ryz_run_lut_avx512(const ryz_args *a, int64_t t0, int64_t t1, int32_t *y, int64_t ldy, int64_t m_base) {
    const int64_t blocks = a->Kp / 16;
    const __m512i nib = _mm512_set1_epi8(0x0f);
    const __m512i pair_sel = _mm512_set1_epi32(0x30201000);  /* j << 4 in byte j of each row */
    const __m512i ones = _mm512_set1_epi8(1);
    for (int64_t t = t0; t < t1; t++) {
        const uint8_t *w = a->w + t * blocks * GROUPS * 64;
        for (int64_t n = 0; n < a->N; n++) {
            const uint8_t *lo = ryz_lut_lo(a, n), *hi = ryz_lut_hi(a, n);
            __m512i acc_lo[GROUPS], acc_hi[GROUPS];
            for (int q = 0; q < GROUPS; q++) acc_lo[q] = acc_hi[q] = _mm512_setzero_si512();
            for (int64_t u = a->k0 / 16; u < a->k1 / 16; u++) {
                const __m512i lo0 = _mm512_load_si512(lo + 128 * u), lo1 = _mm512_load_si512(lo + 128 * u + 64);
                const __m512i hi0 = _mm512_load_si512(hi + 128 * u), hi1 = _mm512_load_si512(hi + 128 * u + 64);
                for (int q = 0; q < GROUPS; q++) {
                    const uint8_t *wb = w + (u * GROUPS + q) * 64;
                    ryz_prefetch(wb);
                    const __m512i v = _mm512_loadu_si512(wb);
                    /* 0xea: (a & b) | c */
                    const __m512i i0 = _mm512_ternarylogic_epi32(v, nib, pair_sel, 0xea);
                    const __m512i i1 = _mm512_ternarylogic_epi32(_mm512_srli_epi16(v, 4), nib, pair_sel, 0xea);
                    acc_lo[q] = ryz_dpbusd(acc_lo[q], _mm512_permutexvar_epi8(i0, lo0), ones);
                    acc_hi[q] = ryz_dpbusd(acc_hi[q], ones, _mm512_permutexvar_epi8(i0, hi0));
                    acc_lo[q] = ryz_dpbusd(acc_lo[q], _mm512_permutexvar_epi8(i1, lo1), ones);
                    acc_hi[q] = ryz_dpbusd(acc_hi[q], ones, _mm512_permutexvar_epi8(i1, hi1));
                }
            }
            int32_t out[16 * GROUPS];
            for (int q = 0; q < GROUPS; q++)
                _mm512_storeu_si512(out + 16 * q, _mm512_add_epi32(acc_lo[q], _mm512_slli_epi32(acc_hi[q], 8)));
            ryz_put_rows(a, out, 16 * GROUPS, t * 16 * GROUPS, y, ldy, n, m_base);
        }
    }
}
