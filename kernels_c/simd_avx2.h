/* simd_avx2.h - AVX2 helpers shared by the AVX2 kernel files (include only from *avx2*.c,
 * which the Makefile builds with the AVX2 flags). */
#ifndef RYZ_SIMD_AVX2_H
#define RYZ_SIMD_AVX2_H

#include <immintrin.h>
#include <stdint.h>

/* The sum of the eight int32 lanes of v. */
static inline int32_t ryz_hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

#endif
