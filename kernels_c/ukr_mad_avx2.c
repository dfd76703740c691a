/* ukr_mad_avx2.c - the blocked GEMM's AVX2 microkernel and its decoder of i2_k256x4
 * (layouts: internal.h).
 *
 * Microkernel: a ymm of the decoded block holds 8 rows x 4 consecutive k (codes c in
 * {0, 1, 2}, unsigned); the token's 4 activations are broadcast as a signed dword.
 * vpmaddubsw gives per row two pair sums c0 x0 + c1 x1 in [-512, 508] (no int16
 * saturation); 32 groups are summed in int16 (|sum| <= 16384) before vpmaddwd with ones
 * widens them into the int32 accumulators.  sum(x) is subtracted at the end of the first K
 * block, later blocks add to y; int32 adds wrap modulo 2^32 (exact for the true result).
 *
 * Decoder: as in ukr_mad_avx512vnni.c with 8 x 8 dword transposes. */
#include <immintrin.h>
#include <string.h>

#include "internal.h"

#define MR 16
#define NR 4
#define CHUNK 32   /* groups summed in int16: 32 * 512 < 32768 */

static void run(int64_t kc4, const uint8_t *w, const int8_t *x, int32_t *y, int64_t ldy,
                int mv, int nv, const int32_t *xsum) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[NR][2];
    for (int j = 0; j < NR; j++) acc[j][0] = acc[j][1] = _mm256_setzero_si256();
    for (int64_t q0 = 0; q0 < kc4; q0 += CHUNK) {
        const int64_t q1 = kc4 - q0 < CHUNK ? kc4 : q0 + CHUNK;
        __m256i s[NR][2];
        for (int j = 0; j < NR; j++) s[j][0] = s[j][1] = _mm256_setzero_si256();
        for (int64_t q = q0; q < q1; q++) {
            const __m256i w0 = _mm256_load_si256((const __m256i *)(w + q * MR * 4));
            const __m256i w1 = _mm256_load_si256((const __m256i *)(w + q * MR * 4 + 32));
            for (int j = 0; j < NR; j++) {
                const __m256i b = _mm256_set1_epi32(ryz_load32(x + q * NR * 4 + 4 * j));
                s[j][0] = _mm256_add_epi16(s[j][0], _mm256_maddubs_epi16(w0, b));
                s[j][1] = _mm256_add_epi16(s[j][1], _mm256_maddubs_epi16(w1, b));
            }
        }
        for (int j = 0; j < NR; j++) {
            acc[j][0] = _mm256_add_epi32(acc[j][0], _mm256_madd_epi16(s[j][0], ones));
            acc[j][1] = _mm256_add_epi32(acc[j][1], _mm256_madd_epi16(s[j][1], ones));
        }
    }
    for (int j = 0; j < nv; j++) {
        int32_t *out = y + j * ldy;
        if (mv == MR) {
            for (int i = 0; i < 2; i++) {
                __m256i *o = (__m256i *)(out + 8 * i);
                const __m256i v = xsum ? _mm256_sub_epi32(acc[j][i], _mm256_set1_epi32(xsum[j]))
                                       : _mm256_add_epi32(acc[j][i], _mm256_loadu_si256(o));
                _mm256_storeu_si256(o, v);
            }
        } else {
            uint32_t t[MR];
            _mm256_storeu_si256((__m256i *)t, acc[j][0]);
            _mm256_storeu_si256((__m256i *)(t + 8), acc[j][1]);
            for (int r = 0; r < mv; r++) {
                uint32_t *o = (uint32_t *)&out[r];
                *o = xsum ? t[r] - (uint32_t)xsum[j] : *o + t[r];
            }
        }
    }
}

static void decode_k256x4(const ryz_args *a, int format, int64_t m0, int64_t panels, int mr,
                          int64_t k0, int64_t kc, uint8_t *out) {
    (void)format;
    const int64_t blocks = a->Kp / 256, kb0 = k0 / 256, kb1 = (k0 + kc + 255) / 256;
    const __m256i three = _mm256_set1_epi8(3);
    for (int64_t p = 0; p < panels; p++)
        for (int h = 0; h < mr / 8; h++) {
            const int64_t mh = m0 + p * mr + 8 * h;
            uint8_t *dst = out + p * (int64_t)RYZ_KC * mr + 32 * h;
            for (int64_t kb = kb0; kb < kb1; kb++) {
                uint8_t *d = dst + (kb - kb0) * 64 * mr * 4;
                for (int half = 0; half < 2; half++) {
                    __m256i r[8], t[8], u[8];
                    for (int i = 0; i < 8; i++) {
                        const int64_t m = mh + i;
                        r[i] = m < a->Mp ? _mm256_loadu_si256((const __m256i *)(a->w + ((m / 4 * blocks + kb) * 4 + m % 4) * 64 + 32 * half))
                                         : _mm256_setzero_si256();
                    }
                    for (int i = 0; i < 4; i++) {
                        t[2 * i] = _mm256_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
                        t[2 * i + 1] = _mm256_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
                    }
                    for (int b = 0; b < 2; b++) {
                        u[4 * b + 0] = _mm256_unpacklo_epi64(t[4 * b], t[4 * b + 2]);
                        u[4 * b + 1] = _mm256_unpackhi_epi64(t[4 * b], t[4 * b + 2]);
                        u[4 * b + 2] = _mm256_unpacklo_epi64(t[4 * b + 1], t[4 * b + 3]);
                        u[4 * b + 3] = _mm256_unpackhi_epi64(t[4 * b + 1], t[4 * b + 3]);
                    }
                    for (int e = 0; e < 4; e++) {
                        const __m256i z0 = _mm256_permute2x128_si256(u[e], u[4 + e], 0x20);  /* dword e */
                        const __m256i z1 = _mm256_permute2x128_si256(u[e], u[4 + e], 0x31);  /* dword 4 + e */
                        for (int s = 0; s < 4; s++) {
                            const int g0 = 8 * half + e, g1 = 8 * half + 4 + e;
                            _mm256_store_si256((__m256i *)(d + (16 * s + g0) * mr * 4),
                                               _mm256_and_si256(_mm256_srli_epi32(z0, 2 * s), three));
                            _mm256_store_si256((__m256i *)(d + (16 * s + g1) * mr * 4),
                                               _mm256_and_si256(_mm256_srli_epi32(z1, 2 * s), three));
                        }
                    }
                }
            }
        }
}

/* i2_k256x4 from N = 48: blocked = row tiles at N = 32, +27 % at 64 (README) */
const ryz_ukr ryz_ukr_mad_avx2 = {"mad_avx2", MR, NR, 256, 512, run, {decode_k256x4, 48}, {NULL, 0}};
