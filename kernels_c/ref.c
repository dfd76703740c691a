/* ref.c - the oracle: the naive ternary multiply over unpacked int8 weights.  Compiled
 * without vectorisation (Makefile) so it also stands for the guide's scalar fallback. */
#include "internal.h"

void ryz_run_ref(const ryz_args *a, int64_t t0, int64_t t1, int32_t *y, int64_t ldy, int64_t m_base) {
    const int8_t *w = (const int8_t *)a->w;
    for (int64_t m = t0; m < t1; m++)
        for (int64_t n = 0; n < a->N; n++) {
            int32_t s = 0;
            for (int64_t k = 0; k < a->K; k++) s += (int32_t)w[m * a->K + k] * a->x[n * a->K + k];
            y[n * ldy + (m - m_base)] = s;
        }
}
