/* probe_avx2.c - AVX2 compute ceilings: vpmaddubsw (int8 MAC) and vpshufb (16-entry lookup).
 * Twelve independent chains (of 16 ymm registers) hide latency; only the inputs are hidden
 * from the compiler, since a barrier after every instruction halves the measured rate. */
#include <immintrin.h>
#include <stdint.h>

#define CHAINS 12

int64_t ryz_probe_mac_maddubs_avx2(int64_t iters) {
    __m256i acc[CHAINS];
    __m256i b = _mm256_set1_epi8(-5);
    __asm__("" : "+x"(b));
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_set1_epi16((short)c);
    for (int64_t i = 0; i < iters; i++)
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_maddubs_epi16(acc[c], b);
    __m256i s = acc[0];
    for (int c = 1; c < CHAINS; c++) s = _mm256_xor_si256(s, acc[c]);
    __asm__ volatile("" : : "x"(s));
    return iters * CHAINS * 32;
}

int64_t ryz_probe_lookup_pshufb_avx2(int64_t iters) {
    __m256i idx[CHAINS];
    __m256i table = _mm256_setr_epi8(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0,
                                     1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0);
    __asm__("" : "+x"(table));
    for (int c = 0; c < CHAINS; c++) idx[c] = _mm256_set1_epi8((char)c);
    for (int64_t i = 0; i < iters; i++)
        for (int c = 0; c < CHAINS; c++) idx[c] = _mm256_shuffle_epi8(table, idx[c]);
    __m256i s = idx[0];
    for (int c = 1; c < CHAINS; c++) s = _mm256_xor_si256(s, idx[c]);
    __asm__ volatile("" : : "x"(s));
    return iters * CHAINS * 32;
}
