/* head_i8_avx512vnni.c - the LM head's rows with vpdpbusd (see head_i8.c for the identity
 * and the layout): dots[m - m0] = sum(w[m] * u) for rows [m0, m1), 4 rows per activation load. */
#include <immintrin.h>

#include "internal.h"
#include "simd_avx512.h"

#define ROWS 4

void ryz_head_rows_avx512vnni(const uint8_t *w, int64_t Kp, const uint8_t *u, int64_t m0, int64_t m1, int32_t *dots) {
    for (int64_t m = m0; m < m1; m += ROWS) {
        __m512i acc[ROWS];
        for (int r = 0; r < ROWS; r++) acc[r] = _mm512_setzero_si512();
        for (int64_t k = 0; k < Kp; k += 64) {
            const __m512i uv = _mm512_load_si512(u + k);
            for (int r = 0; r < ROWS; r++) {
                const uint8_t *p = w + (m + r) * Kp + k;
                ryz_prefetch(p);
                acc[r] = ryz_dpbusd(acc[r], uv, _mm512_loadu_si512(p));
            }
        }
        for (int r = 0; r < ROWS; r++) dots[m + r - m0] = _mm512_reduce_add_epi32(acc[r]);
    }
}

