/* mad_t5_avx512vnni.c - multiply-add GEMM on base-3 codes (5 weights per byte) with vpdpbusd.
 *
 * Format t5_k320x4 (formats.def): byte j of a row's 64-byte vector in a 320-weight block
 * holds the codes c = w + 1 of weights j + 64i, i = 0..4 ("planes"), as q = s << 7 | h << 6 |
 * (7 b + r): group B (c3, c4) is b, group A (c0, c1, c2) is 7 h + r, negated (c -> 2 - c)
 * when s = 1 (internal.h).
 *
 * Decode: a 128-entry byte table on the low 7 bits of q gives A = c0 | c1 << 2 | c2 << 4, a
 * 64-entry one on the low 6 bits B = c3 | c4 << 2, and one subtract masked by bit 7 negates
 * A's codes (0x2a - A).  From there it is the 2-bit kernel's trick (mad_avx512vnni.c): each
 * field is masked in place, giving 4^s * c, vpdpbusd multiplies it by the plane's 64
 * activations, and one accumulator per scale 1, 4, 16 is shifted back once at the end.  Per
 * 64 bytes (320 weights): two lookups, one sign mask, one masked subtract, 5 and, 5 vpdpbusd.
 * On Zen 4 a zmm vpermi2b, vpmovb2m and vpdpbusd each take a cycle of the same two pipes,
 * where a vpermb mostly goes elsewhere: so the five vpdpbusd, A's vpermi2b and the sign's
 * vpmovb2m bound the loop, and B's lookup, once a second vpermi2b, is a vpermb
 * (kernels_c/README.md, "Group B on six bits").  The first encoding (llama.cpp TQ1_0's base-3
 * scaling) needed two 256-entry lookups, four vpermi2b.
 *
 * A's 128-entry lookup, two ways (the CPU's costs choose):
 *   vpermi2b  one vpermi2b over two registers: on AMD Zen 4 it costs what a vpermb does.
 *             AMD's choice.
 *   vpermb    a vpermb of 64 entries, then one merge-masked by bit 6.  On Intel a zmm
 *             vpermi2b is 3 uops (2 on port 5) by published instruction tables and a vpermb 1.
 *             Everyone else's.
 * RYZLAB_T5_LOOKUP=vpermb|vpermi2b overrides the choice.
 *
 * Software prefetch of the weight stream is on for Intel and off for AMD, as in
 * mad_avx512vnni.c: on the Zen 4 VM the 2B-4T layers ran 1.03x faster without it on 2 threads
 * and 1.01x on 1 (cold caches, tools/ab_libs.py, 2026-12-07).  RYZLAB_MAD_PREFETCH=on|off
 * overrides it.  Both variables are read once per call, by ryz_setup_args (tests, A/B timings):
 * variant bit 0 is vpermb, bit 1 the prefetch.
 *
 * Exact for every K below 2^24 (the library accepts K <= RYZ_MAX_K = 2^23): a block adds to an int32 lane at most
 * 2 fields * 4 bytes * 4 * 2 * 128 = 2^13 (scale 4) or 4 * 16 * 2 * 128 = 2^14 (scale 16), and
 * K / 320 < 2^16 blocks keep every accumulator below 2^30, so each is an exact multiple of
 * its scale when shifted back.  The final sum(c * x) may pass 2^31, but it is formed with
 * wrapping int32 adds and sum(c * x) - sum(x) = sum(w * x) fits in int32, so the result is
 * exact. */
#include <immintrin.h>

#include "internal.h"
#include "simd_avx512.h"

#define ROWS 4

/* 128-entry table lookup on the low 7 bits of q: t[p] holds entries 64p .. 64p + 63; b6 is
 * bit 6 of q (vpermb only). */
static inline __attribute__((always_inline)) __m512i lookup128(const __m512i t[2], __m512i q, __mmask64 b6,
                                                               const int by_vpermb) {
    if (by_vpermb) return _mm512_mask_permutexvar_epi8(_mm512_permutexvar_epi8(q, t[0]), b6, q, t[1]);
    return _mm512_permutex2var_epi8(t[0], q, t[1]);
}

/* Bit 0: A's lookup by two vpermb; bit 1: software prefetch of the weights. */
int ryz_variant_mad_t5_avx512vnni(void) {
    const int intel = !ryz_cpu_is_amd();
    return ryz_env_choice("RYZLAB_T5_LOOKUP", "vpermb", "vpermi2b", intel) |
           ryz_env_choice("RYZLAB_MAD_PREFETCH", "on", "off", intel) << 1;
}

/* The kernel for a compile-time path (all four are specialised). */
static inline __attribute__((always_inline)) void run(const ryz_args *a, int64_t t0, int64_t t1, int32_t *y,
                                                      int64_t ldy, int64_t m_base, const int path) {
    const int by_vpermb = path & 1, pf = path >> 1;
    const int64_t blocks = a->Kp / 320;
    const __m512i ta[2] = {_mm512_load_si512(ryz_t5_fields_a), _mm512_load_si512(ryz_t5_fields_a + 64)};
    const __m512i tb = _mm512_load_si512(ryz_t5_fields_b);
    const __m512i bit6 = _mm512_set1_epi8(0x40);
    const __m512i m0 = _mm512_set1_epi8(0x03), m1 = _mm512_set1_epi8(0x0c), m2 = _mm512_set1_epi8(0x30);
    for (int64_t t = t0; t < t1; t++) {
        const uint8_t *w = a->w + t * blocks * ROWS * 64;
        for (int64_t n = 0; n < a->N; n++) {
            const int8_t *x = ryz_mad_x(a, n);
            __m512i acc[ROWS][3];
            for (int r = 0; r < ROWS; r++)
                for (int s = 0; s < 3; s++) acc[r][s] = _mm512_setzero_si512();
            for (int64_t kb = 0; kb < blocks; kb++) {
                const int8_t *xb = x + 320 * kb;
                for (int r = 0; r < ROWS; r++) {
                    if (pf) ryz_prefetch(w + (kb * ROWS + r) * 64);
                    __m512i q = _mm512_loadu_si512(w + (kb * ROWS + r) * 64);
                    /* in a register: GCC would load q again for each destructive vpermi2b */
                    __asm__("" : "+v"(q));
                    const __mmask64 b6 = by_vpermb ? _mm512_test_epi8_mask(q, bit6) : 0;
                    const __m512i fa = lookup128(ta, q, b6, by_vpermb), vb = _mm512_permutexvar_epi8(q, tb);
                    const __m512i va = ryz_t5_signed_a(fa, q);
                    acc[r][0] = ryz_dpbusd(acc[r][0], _mm512_and_si512(va, m0), _mm512_load_si512(xb));
                    acc[r][1] = ryz_dpbusd(acc[r][1], _mm512_and_si512(va, m1), _mm512_load_si512(xb + 64));
                    acc[r][2] = ryz_dpbusd(acc[r][2], _mm512_and_si512(va, m2), _mm512_load_si512(xb + 128));
                    acc[r][0] = ryz_dpbusd(acc[r][0], _mm512_and_si512(vb, m0), _mm512_load_si512(xb + 192));
                    acc[r][1] = ryz_dpbusd(acc[r][1], _mm512_and_si512(vb, m1), _mm512_load_si512(xb + 256));
                }
            }
            __m512i row[ROWS];
            for (int r = 0; r < ROWS; r++)
                row[r] = _mm512_add_epi32(acc[r][0], _mm512_add_epi32(_mm512_srai_epi32(acc[r][1], 2),
                                                                      _mm512_srai_epi32(acc[r][2], 4)));
            int32_t out[ROWS];
            _mm_storeu_si128((__m128i *)out,
                             _mm_sub_epi32(ryz_reduce4_epi32(row[0], row[1], row[2], row[3]), _mm_set1_epi32(ryz_mad_xsum(a, n))));
            ryz_store_rows(out, ROWS, t * ROWS, a->M, y, ldy, n, m_base);
        }
    }
}

RYZ_RUN_BY_VARIANT(mad_t5_avx512vnni, 4)
