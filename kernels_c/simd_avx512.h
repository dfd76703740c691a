/* simd_avx512.h - AVX-512 helpers shared by the AVX-512 kernel files (include only from
 * *avx512*.c, which the Makefile builds with the AVX-512 flags). */
#ifndef RYZ_SIMD_AVX512_H
#define RYZ_SIMD_AVX512_H

#include <immintrin.h>

/* Lanes 0-3 of the result: the sums of the sixteen int32 lanes of r0, r1, r2, r3; one shuffle
 * tree for four rows instead of four horizontal sums. */
static inline __m128i ryz_reduce4_epi32(__m512i r0, __m512i r1, __m512i r2, __m512i r3) {
    __m512i s01 = _mm512_add_epi32(_mm512_unpacklo_epi32(r0, r1), _mm512_unpackhi_epi32(r0, r1));
    __m512i s23 = _mm512_add_epi32(_mm512_unpacklo_epi32(r2, r3), _mm512_unpackhi_epi32(r2, r3));
    __m512i s = _mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23));
    __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* acc + u8 . s8 (vpdpbusd) accumulated in place.  Around the intrinsic _mm512_dpbusd_epi32
 * GCC 12 copied each accumulator through another register and stored some to the stack every
 * loop iteration; the asm ties the accumulator to its register.  Measured effect: the warm
 * 2560x2560 GEMV of mad_avx512vnni 28 -> 31 GB/s (bench --warm, 1 thread, this 2-vCPU Xeon
 * VM); the cold GEMV and the blocked GEMM did not move beyond noise. */
static inline __m512i ryz_dpbusd(__m512i acc, __m512i u8, __m512i s8) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "vm"(s8));
    return acc;
}

/* Group A's fields of 64 t5_k320x4 bytes q (internal.h) from their lookup fa: negated (every
 * code c -> 2 - c) where bit 7 of q is set.  Needs RYZ_T5_NEG_A (internal.h). */
static inline __m512i ryz_t5_signed_a(__m512i fa, __m512i q) {
    return _mm512_mask_sub_epi8(fa, _mm512_movepi8_mask(q), _mm512_set1_epi8(RYZ_T5_NEG_A), fa);
}

#endif
