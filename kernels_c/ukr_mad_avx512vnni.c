/* ukr_mad_avx512vnni.c - the blocked GEMM's AVX-512 VNNI microkernel and its decoder of
 * i2_k256x4 (layouts: internal.h).
 *
 * Microkernel: a zmm of the decoded block holds 16 rows x 4 consecutive k (unsigned codes
 * c = w + 1 in {0, 1, 2}); the 4 activations of one token for the same k are broadcast as a
 * signed dword, and vpdpbusd accumulates the 4 products of each row into its int32 lane.
 * MR / 16 weight loads and NR broadcasts feed MR / 16 * NR vpdpbusd per group of 4 k; the
 * accumulators never leave registers.  The token's sum(x) is subtracted at the end of the
 * first K block (sum(c * x) = sum(w * x) + sum(x)), later blocks add to y.  The adds wrap
 * modulo 2^32, so intermediate values outside int32 (huge K) still give the exact result.
 *
 * Decoders of i2_k256x4 and t5_k320x4: see decode_tiles. */
#include <immintrin.h>
#include <string.h>

#include "internal.h"
#include "simd_avx512.h"

#ifndef UKR512_MR
#define UKR512_MR 32
#endif
#ifndef UKR512_NR
#define UKR512_NR 8
#endif
#ifndef UKR512_MC
#define UKR512_MC 256
#endif
#ifndef UKR512_NC
#define UKR512_NC 512
#endif
#ifndef UKR512_MIN_N
#define UKR512_MIN_N 16   /* i2_k256x4: blocked = row tiles at N = 12 (1 thread), +25 % at 16: README */
#endif
#ifndef UKR512_MIN_N_T5
#define UKR512_MIN_N_T5 8 /* t5_k320x4: blocked 1.27x the row tiles at N = 8, 0.62x at 4: README */
#endif
#define MR UKR512_MR
#define NR UKR512_NR
#define MV (MR / 16)

static void run(int64_t kc4, const uint8_t *w, const int8_t *x, int32_t *y, int64_t ldy,
                int mv, int nv, const int32_t *xsum) {
    __m512i acc[NR][MV];
#pragma GCC unroll 16
    for (int j = 0; j < NR; j++)
#pragma GCC unroll 4
        for (int i = 0; i < MV; i++) acc[j][i] = _mm512_setzero_si512();
    for (int64_t q = 0; q < kc4; q++) {
        __m512i wv[MV];
#pragma GCC unroll 4
        for (int i = 0; i < MV; i++) wv[i] = _mm512_load_si512(w + q * MR * 4 + 64 * i);
#pragma GCC unroll 16
        for (int j = 0; j < NR; j++) {
            const __m512i b = _mm512_set1_epi32(ryz_load32(x + q * NR * 4 + 4 * j));
#pragma GCC unroll 4
            for (int i = 0; i < MV; i++) acc[j][i] = ryz_dpbusd(acc[j][i], wv[i], b);
        }
    }
#pragma GCC unroll 16
    for (int j = 0; j < NR; j++) {
        if (j >= nv) break;
#pragma GCC unroll 4
        for (int i = 0; i < MV; i++) {
            const int rem = mv - 16 * i;
            if (rem <= 0) break;
            const __mmask16 mask = rem >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1);
            int32_t *out = y + j * ldy + 16 * i;
            const __m512i v = xsum ? _mm512_sub_epi32(acc[j][i], _mm512_set1_epi32(xsum[j]))
                                   : _mm512_add_epi32(acc[j][i], _mm512_maskz_loadu_epi32(mask, out));
            _mm512_mask_storeu_epi32(out, mask, v);
        }
    }
}

/* Z[g] lane r = dword g of r[r] (16 x 16 transpose). */
static inline void transpose16(__m512i r[16], __m512i z[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int a = 0; a < 4; a++) {   /* u[4a + e], lane L: rows 4a..4a+3 at dword 4L + e */
        u[4 * a + 0] = _mm512_unpacklo_epi64(t[4 * a], t[4 * a + 2]);
        u[4 * a + 1] = _mm512_unpackhi_epi64(t[4 * a], t[4 * a + 2]);
        u[4 * a + 2] = _mm512_unpacklo_epi64(t[4 * a + 1], t[4 * a + 3]);
        u[4 * a + 3] = _mm512_unpackhi_epi64(t[4 * a + 1], t[4 * a + 3]);
    }
    for (int e = 0; e < 4; e++) {
        const __m512i v0 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0x44), v1 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0xee);
        const __m512i v2 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0x44), v3 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0xee);
        z[e] = _mm512_shuffle_i32x4(v0, v2, 0x88);
        z[4 + e] = _mm512_shuffle_i32x4(v0, v2, 0xdd);
        z[8 + e] = _mm512_shuffle_i32x4(v1, v3, 0x88);
        z[12 + e] = _mm512_shuffle_i32x4(v1, v3, 0xdd);
    }
}

/* The decoders of the two formats of 4-row tiles with 256 bytes per tile and k-block
 * (i2_k256x4: 256 k per block, t5_k320x4: 320), specialised for each.  16 rows' 64-byte vectors
 * of one block are transposed as 16 x 16 dwords, so dword r of Z[g] is bytes 4g..4g+3 of row r,
 * and the bytes at one position hold the codes of k = 64s + 4g .. 64s + 4g + 3 of the block
 * for each field s: one group of 4 k, stored as it is.  i2: field s of a byte is bits 2s, 2s+1
 * (about three instructions per 64 codes).  t5: the byte's two table lookups and the sign of
 * its group A (as mad_t5_avx512vnni.c) give the fields of its five planes first.  Only groups
 * of k in [k0, k0 + kc rounded up to 64) are written: a t5 block may start before k0.  The t5
 * lookups are VBMI (vpermi2b, vpermb): only mad_t5_avx512vnni, which requires VBMI, reaches
 * them; the i2 instance, which mad_avx512vnni (no VBMI needed) uses, has none. */
static inline __attribute__((always_inline)) void decode_tiles(const ryz_args *a, int64_t m0, int64_t panels,
                                                               int64_t k0, int64_t kc, uint8_t *out, const int t5) {
    const int64_t kblock = t5 ? 320 : 256, blocks = a->Kp / kblock, tiles = a->Mp / 4;
    const int64_t kb0 = k0 / kblock, kb1 = (k0 + kc + kblock - 1) / kblock;
    const int64_t g0 = k0 / 4, g1 = (k0 + kc + 63) / 64 * 16;   /* groups of 4 k written */
    const __m512i three = _mm512_set1_epi8(3);
    const __m512i ta0 = _mm512_load_si512(ryz_t5_fields_a), ta1 = _mm512_load_si512(ryz_t5_fields_a + 64);
    const __m512i tb = _mm512_load_si512(ryz_t5_fields_b);
    for (int64_t p = 0; p < panels; p++)
        for (int h = 0; h < MR / 16; h++) {
            const int64_t t0 = (m0 + p * MR + 16 * h) / 4;   /* 4 tiles of 4 rows */
            const uint8_t *tile[4];
            int valid = 0;
            for (int i = 0; i < 4; i++) {
                tile[i] = a->w + (t0 + i) * blocks * 256;
                valid += t0 + i < tiles;
            }
            /* the next 16 rows' slices: 4 short streams the hardware prefetchers miss */
            for (int i = 0; i < 4 && t0 + 4 + i < tiles; i++)
                for (int64_t kb = kb0; kb < kb1; kb++)
                    for (int r = 0; r < 4; r++) _mm_prefetch((const char *)a->w + ((t0 + 4 + i) * blocks + kb) * 256 + 64 * r, _MM_HINT_T0);
            uint8_t *dst = out + p * (int64_t)RYZ_KC * MR + 64 * h;
            for (int64_t kb = kb0; kb < kb1; kb++) {
                __m512i r[16], z[16];
                for (int i = 0; i < 16; i++)
                    r[i] = i / 4 < valid ? _mm512_loadu_si512(tile[i / 4] + kb * 256 + 64 * (i % 4)) : _mm512_setzero_si512();
                transpose16(r, z);
                const int64_t gb = kb * kblock / 4;   /* the block's first group */
                for (int g = 0; g < 16; g++) {
                    __m512i f[5];
                    if (t5) {
                        const __m512i fa = _mm512_permutex2var_epi8(ta0, z[g], ta1);
                        f[0] = ryz_t5_signed_a(fa, z[g]);
                        f[1] = _mm512_srli_epi32(f[0], 2), f[2] = _mm512_srli_epi32(f[0], 4);
                        f[3] = _mm512_permutexvar_epi8(z[g], tb), f[4] = _mm512_srli_epi32(f[3], 2);
                    } else {
                        for (int s = 0; s < 4; s++) f[s] = _mm512_srli_epi32(z[g], 2 * s);
                    }
                    for (int s = 0; s < (t5 ? 5 : 4); s++) {
                        const int64_t G = gb + 16 * s + g;
                        if (G >= g0 && G < g1) _mm512_store_si512(dst + (G - g0) * MR * 4, _mm512_and_si512(f[s], three));
                    }
                }
            }
        }
}

static void decode_k256x4(const ryz_args *a, int format, int64_t m0, int64_t panels, int mr, int64_t k0, int64_t kc,
                          uint8_t *out) {
    (void)format, (void)mr;   /* mr == MR: the framework decodes for this microkernel */
    decode_tiles(a, m0, panels, k0, kc, out, 0);
}

static void decode_t5_k320x4(const ryz_args *a, int format, int64_t m0, int64_t panels, int mr, int64_t k0,
                             int64_t kc, uint8_t *out) {
    (void)format, (void)mr;
    decode_tiles(a, m0, panels, k0, kc, out, 1);
}

const ryz_ukr ryz_ukr_mad_avx512vnni = {"mad_avx512vnni", MR, NR, UKR512_MC, UKR512_NC, run,
                                        {decode_k256x4, UKR512_MIN_N}, {decode_t5_k320x4, UKR512_MIN_N_T5}};
