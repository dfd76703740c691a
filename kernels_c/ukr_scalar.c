/* ukr_scalar.c - the blocked GEMM's generic microkernel (any x86-64; built without
 * vectorisation like the other scalar files): the fallback beside the ISA microkernels.
 * Arithmetic in uint32_t: sum(c * x) may leave the int32 range for huge K while the result
 * does not, and only unsigned wrap is defined in C (the SIMD adds wrap the same way). */
#include "internal.h"

#define MR 4
#define NR 4

static void run(int64_t kc4, const uint8_t *w, const int8_t *x, int32_t *y, int64_t ldy,
                int mv, int nv, const int32_t *xsum) {
    uint32_t acc[NR][MR] = {{0}};
    for (int64_t q = 0; q < kc4; q++) {
        const uint8_t *wq = w + q * MR * 4;
        const int8_t *xq = x + q * NR * 4;
        for (int j = 0; j < NR; j++)
            for (int r = 0; r < MR; r++) {
                uint32_t s = 0;
                for (int i = 0; i < 4; i++) s += (uint32_t)wq[4 * r + i] * (uint32_t)(int32_t)xq[4 * j + i];
                acc[j][r] += s;
            }
    }
    for (int j = 0; j < nv; j++)
        for (int r = 0; r < mv; r++) {
            uint32_t *out = (uint32_t *)&y[j * ldy + r];
            *out = xsum ? acc[j][r] - (uint32_t)xsum[j] : *out + acc[j][r];
        }
}

/* no fast decoders: no scalar kernel takes the blocked path unless RYZLAB_GEMM_PATH=blocked */
const ryz_ukr ryz_ukr_scalar = {"scalar", MR, NR, 256, 256, run, {NULL, 0}, {NULL, 0}};
