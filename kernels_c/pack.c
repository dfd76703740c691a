/* pack.c - one packer per weight format (layouts described in formats.def).  Packing runs
 * once, offline; it is never inside a timed region, so clarity wins over speed here. */
#include <string.h>

#include "internal.h"

/* Code of weight (m, k): w + 1, and 1 (weight 0) for padding. */
static inline uint8_t code(const int8_t *w, int64_t M, int64_t K, int64_t m, int64_t k) {
    return m < M && k < K ? (uint8_t)(w[m * K + k] + 1) : 1;
}

/* 4-bit code of the weight pair (2p, 2p+1) of row m: the LUT index. */
static inline uint8_t pair(const int8_t *w, int64_t M, int64_t K, int64_t m, int64_t p) {
    return (uint8_t)(code(w, M, K, m, 2 * p) | code(w, M, K, m, 2 * p + 1) << 2);
}

void ryz_pack_i8_rows(const int8_t *w, int64_t M, int64_t K, int64_t Mp, int64_t Kp, uint8_t *out) {
    (void)Mp, (void)Kp;
    memcpy(out, w, (size_t)(M * K));
}

void ryz_pack_i2_rows(const int8_t *w, int64_t M, int64_t K, int64_t Mp, int64_t Kp, uint8_t *out) {
    for (int64_t m = 0; m < Mp; m++)
        for (int64_t b = 0; b < Kp / 4; b++)
            *out++ = (uint8_t)(pair(w, M, K, m, 2 * b) | pair(w, M, K, m, 2 * b + 1) << 4);
}

void ryz_pack_i2_k256x4(const int8_t *w, int64_t M, int64_t K, int64_t Mp, int64_t Kp, uint8_t *out) {
    for (int64_t m0 = 0; m0 < Mp; m0 += 4)
        for (int64_t kb = 0; kb < Kp; kb += 256)
            for (int64_t m = m0; m < m0 + 4; m++)
                for (int64_t j = 0; j < 64; j++) {
                    uint8_t v = 0;
                    for (int s = 0; s < 4; s++) v |= (uint8_t)(code(w, M, K, m, kb + 64 * s + j) << (2 * s));
                    *out++ = v;
                }
}

void ryz_pack_i2_lut16x8(const int8_t *w, int64_t M, int64_t K, int64_t Mp, int64_t Kp, uint8_t *out) {
    for (int64_t m0 = 0; m0 < Mp; m0 += 16)
        for (int64_t u = 0; u < Kp / 8; u++)
            for (int b = 0; b < 32; b++) {
                int64_t m = m0 + (b & 15), p = 4 * u + (b >> 4);
                *out++ = (uint8_t)(pair(w, M, K, m, p) | pair(w, M, K, m, p + 2) << 4);
            }
}

void ryz_pack_i2_lut64x16(const int8_t *w, int64_t M, int64_t K, int64_t Mp, int64_t Kp, uint8_t *out) {
    for (int64_t m0 = 0; m0 < Mp; m0 += 64)
        for (int64_t u = 0; u < Kp / 16; u++)
            for (int q = 0; q < 4; q++)
                for (int b = 0; b < 64; b++) {
                    int64_t m = m0 + 16 * q + (b >> 2), p = 8 * u + (b & 3);
                    *out++ = (uint8_t)(pair(w, M, K, m, p) | pair(w, M, K, m, p + 4) << 4);
                }
}

/* Five codes c_0..c_4 of the planes (c_0 the most significant base-3 digit) as one byte
 * q = s << 7 | h << 6 | (7 b + r): groups A = 7 h + r (c_0..c_2, stored up to sign) and B = b
 * (c_3, c_4) (internal.h; checked for all 243 groups and all 256 bytes by the kernels' tests).
 * The readers share these tables of the groups' fields, indexed by the low 7 bits. */
#define FA(u) RYZ_T5_FIELDS_A(RYZ_T5_A(u))
#define FB(u) RYZ_T5_FIELDS_B(RYZ_T5_B(u))
const uint8_t ryz_t5_fields_a[128] __attribute__((aligned(64))) = {RYZ_REP64(FA, 0), RYZ_REP64(FA, 64)};
const uint8_t ryz_t5_fields_b[128] __attribute__((aligned(64))) = {RYZ_REP64(FB, 0), RYZ_REP64(FB, 64)};
#undef FA
#undef FB

void ryz_pack_t5_k320x4(const int8_t *w, int64_t M, int64_t K, int64_t Mp, int64_t Kp, uint8_t *out) {
    for (int64_t m0 = 0; m0 < Mp; m0 += 4)
        for (int64_t kb = 0; kb < Kp; kb += 320)
            for (int64_t m = m0; m < m0 + 4; m++)
                for (int64_t j = 0; j < 64; j++) {
                    unsigned A = 0, B = 0;
                    for (int i = 0; i < 3; i++) A = 3 * A + code(w, M, K, m, kb + 64 * i + j);
                    for (int i = 3; i < 5; i++) B = 3 * B + code(w, M, K, m, kb + 64 * i + j);
                    const unsigned s = A > 13, a = s ? 26 - A : A;
                    *out++ = (uint8_t)(s << 7 | a / 7 << 6 | (7 * B + a % 7));
                }
}
