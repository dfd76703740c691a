/* prep.c - activation-side preparation, run once per call (and per token) before the row
 * tiles: LUT tables (T-MAC construction: built from the activations, indexed by weight
 * codes, shared by all M rows) and zero-padded activations with their sum for MAD. */
#include <string.h>

#include "internal.h"

int64_t ryz_ws_stride_none(int64_t Kp) { (void)Kp; return 0; }
int64_t ryz_ws_stride_lut_tables(int64_t Kp) { return ryz_round_up(16 * Kp, 64); }
int64_t ryz_ws_stride_mad_acts(int64_t Kp) { return ryz_round_up(Kp, 64) + 64; }

/* Weight of the first and second element of a pair for each 4-bit code; codes with a 3 in
 * either half never occur in packed weights, their entries are 0. */
static const int8_t first[16] = {-1, 0, 1, 0, -1, 0, 1, 0, -1, 0, 1, 0, 0, 0, 0, 0};
static const int8_t second[16] = {-1, -1, -1, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0};

void ryz_prep_lut_tables(const ryz_args *a, int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
        const int8_t *x = a->x + n * a->K;
        uint8_t *lo = a->ws + n * a->ws_stride, *hi = lo + 8 * a->Kp;
        for (int64_t g = 0; g < a->Kp / 2; g++) {
            int16_t x0 = 2 * g < a->K ? x[2 * g] : 0, x1 = 2 * g + 1 < a->K ? x[2 * g + 1] : 0;
            for (int c = 0; c < 16; c++) {
                int16_t s = (int16_t)(first[c] * x0 + second[c] * x1);
                /* |s| reaches 256 (two products of -1 and -128), so hi is -1, 0 or +1 */
                lo[16 * g + c] = (uint8_t)(s & 0xff);
                hi[16 * g + c] = (uint8_t)(int8_t)((s - (s & 0xff)) / 256);
            }
        }
    }
}

void ryz_prep_mad_acts(const ryz_args *a, int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
        const int8_t *x = a->x + n * a->K;
        int8_t *xp = (int8_t *)(a->ws + n * a->ws_stride);
        int32_t sum = 0;
        for (int64_t k = 0; k < a->K; k++) sum += x[k];
        memcpy(xp, x, (size_t)a->K);
        memset(xp + a->K, 0, (size_t)(a->Kp - a->K));
        memcpy(xp + a->Kp, &sum, sizeof sum);
    }
}
