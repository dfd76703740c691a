/* lut_scalar.c - LUT GEMM, one table lookup per weight pair in plain C (no vectorisation:
 * the "before" of priority 1).  Format i2_rows: byte b of a row holds pairs 2b (low nibble)
 * and 2b+1 (high nibble).  Reads k in [a->k0, a->k1) (gemm_lut_blocked.c). */
#include "internal.h"

static inline int32_t entry(const uint8_t *lo, const uint8_t *hi, int64_t i) {
    return (int32_t)lo[i] + 256 * (int32_t)(int8_t)hi[i];
}

void ryz_run_lut_scalar(const ryz_args *a, int64_t t0, int64_t t1, int32_t *y, int64_t ldy, int64_t m_base) {
    const int64_t row_bytes = a->Kp / 4;
    for (int64_t m = t0; m < t1; m++) {
        const uint8_t *row = a->w + m * row_bytes;
        for (int64_t n = 0; n < a->N; n++) {
            const uint8_t *lo = ryz_lut_lo(a, n), *hi = ryz_lut_hi(a, n);
            int32_t s = 0;
            for (int64_t b = a->k0 / 4; b < a->k1 / 4; b++) {
                s += entry(lo, hi, 32 * b + (row[b] & 15));
                s += entry(lo, hi, 32 * b + 16 + (row[b] >> 4));
            }
            ryz_put_rows(a, &s, 1, m, y, ldy, n, m_base);
        }
    }
}
