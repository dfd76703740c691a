/* mad_t5_scalar.c - the t5_k320x4 format (5 base-3 codes per byte, 1.6 bits/weight) decoded
 * one byte at a time, for CPUs without AVX2.
 *
 * Byte j of a row's 64 bytes in a 320-weight block holds the codes c_i = w + 1 of weights
 * j + 64i, i = 0..4, read by ryz_t5_codes (internal.h, formats.def).  It multiplies w = c - 1
 * directly, so every partial sum is bounded by 128 * K and int32 holds it for any K up to
 * MAX_K; no sum(x) term. */
#include "internal.h"

#define ROWS 4

void ryz_run_mad_t5_scalar(const ryz_args *a, int64_t t0, int64_t t1, int32_t *y, int64_t ldy,
                           int64_t m_base) {
    const int64_t blocks = a->Kp / 320;
    for (int64_t t = t0; t < t1; t++) {
        const uint8_t *w = a->w + t * blocks * ROWS * 64;
        for (int64_t n = 0; n < a->N; n++) {
            const int8_t *x = ryz_mad_x(a, n);
            int32_t out[ROWS] = {0};
            for (int64_t kb = 0; kb < blocks; kb++)
                for (int r = 0; r < ROWS; r++) {
                    const uint8_t *wb = w + (kb * ROWS + r) * 64;
                    const int8_t *xb = x + 320 * kb;
                    int32_t acc = 0;
                    for (int j = 0; j < 64; j++) {
                        int c[5];
                        ryz_t5_codes(wb[j], c);
                        for (int i = 0; i < 5; i++) acc += (c[i] - 1) * xb[64 * i + j];
                    }
                    out[r] += acc;
                }
            ryz_store_rows(out, ROWS, t * ROWS, a->M, y, ldy, n, m_base);
        }
    }
}
