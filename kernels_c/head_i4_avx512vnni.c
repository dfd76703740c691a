/* head_i4_avx512vnni.c - the int4 LM head's tiles with vpdpbusd (identity and layout in
 * head_i4.c).  One zmm int32 lane per row of a 16-row tile: a 64-byte chunk holds 8 k for 16
 * rows, so the activations are broadcast (4 bytes each, embedded in vpdpbusd) and no
 * horizontal sum is ever needed.  The low nibbles (k0..k0+3) are masked to c, the high ones
 * (k0+4..k0+7) masked in place to 16 c and accumulated apart, shifted back once per group
 * (exact: the sum is a multiple of 16).  Two accumulator pairs alternate between chunks.
 * Per group: dot = lo + (hi >> 4) - 8 sum(x), converted to float32 (exact), times the fp16
 * scales, added to the running float32 sum: with _round_ intrinsics, which GCC does not fuse
 * into an FMA (it would fuse _mm512_mul_ps + _mm512_add_ps), so the result is the scalar
 * tier's bit for bit.  out[(t - t0) * 16 + r] = row r of tile t.  The weight stream is
 * prefetched pf bytes ahead (the plan's choice, head_i4.c). */
#include <immintrin.h>
#include <string.h>

#include "internal.h"
#include "simd_avx512.h"

#define T RYZ_HEAD4_TILE
#define RN (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

static inline __m512i bcast(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* One group of G weights (G / 8 chunks at w) for the 16 rows: the exact int32 dot products. */
static inline __attribute__((always_inline)) __m512i group_dots(const uint8_t *w, const int8_t *xg, int G,
                                                                 int64_t pf) {
    const __m512i lo_mask = _mm512_set1_epi8(0x0f), hi_mask = _mm512_set1_epi8((char)0xf0);
    __m512i lo0 = _mm512_setzero_si512(), hi0 = lo0, lo1 = lo0, hi1 = lo0;
    for (int c = 0; c < G / 8; c += 2) {
        ryz_prefetch_ahead(w + 64 * c, pf);
        ryz_prefetch_ahead(w + 64 * c + 64, pf);
        const __m512i v0 = _mm512_loadu_si512(w + 64 * c), v1 = _mm512_loadu_si512(w + 64 * c + 64);
        lo0 = ryz_dpbusd(lo0, _mm512_and_si512(v0, lo_mask), bcast(xg + 8 * c));
        hi0 = ryz_dpbusd(hi0, _mm512_and_si512(v0, hi_mask), bcast(xg + 8 * c + 4));
        lo1 = ryz_dpbusd(lo1, _mm512_and_si512(v1, lo_mask), bcast(xg + 8 * c + 8));
        hi1 = ryz_dpbusd(hi1, _mm512_and_si512(v1, hi_mask), bcast(xg + 8 * c + 12));
    }
    return _mm512_add_epi32(_mm512_add_epi32(lo0, lo1), _mm512_srai_epi32(_mm512_add_epi32(hi0, hi1), 4));
}

/* The tiles for a compile-time G (both instances fully unroll the chunk loop). */
static inline __attribute__((always_inline)) void tiles(const uint8_t *packed, int64_t tb, int64_t Kp, const int G,
                                                        const int8_t *x, const int32_t *xs8, int64_t t0,
                                                        int64_t t1, float *out, int64_t pf) {
    const int64_t sbs = Kp / (2 * G), sb_bytes = 64 + 16 * (int64_t)G;
    for (int64_t t = t0; t < t1; t++) {
        const uint8_t *p = packed + t * tb;
        __m512 acc = _mm512_setzero_ps();
        for (int64_t sb = 0; sb < sbs; sb++, p += sb_bytes) {
            ryz_prefetch_ahead(p, pf);
            const int8_t *xg = x + 2 * sb * G;
            const __m512i da = _mm512_sub_epi32(group_dots(p + 64, xg, G, pf), _mm512_set1_epi32(xs8[2 * sb]));
            const __m512i db = _mm512_sub_epi32(group_dots(p + 64 + 8 * G, xg + G, G, pf), _mm512_set1_epi32(xs8[2 * sb + 1]));
            const __m512 sa = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
            const __m512 sb_ = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 32)));
            acc = _mm512_add_round_ps(acc, _mm512_mul_round_ps(sa, _mm512_cvtepi32_ps(da), RN), RN);
            acc = _mm512_add_round_ps(acc, _mm512_mul_round_ps(sb_, _mm512_cvtepi32_ps(db), RN), RN);
        }
        _mm512_storeu_ps(out + (t - t0) * T, acc);
    }
}

void ryz_head4_tiles_avx512vnni(const uint8_t *packed, int64_t tb, int64_t Kp, int G,
                                const int8_t *x, const int32_t *xs8, int64_t t0, int64_t t1,
                                float *out, int64_t pf) {
    if (G == 32)
        tiles(packed, tb, Kp, 32, x, xs8, t0, t1, out, pf);
    else
        tiles(packed, tb, Kp, 64, x, xs8, t0, t1, out, pf);
}
