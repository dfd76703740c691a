/* probe_avx2.c - AVX2 compute ceilings: vpmaddubsw (int8 MAC) and vpshufb (16-entry lookup).
 * Fourteen independent chains (of 16 ymm registers) hide latency, so the loop runs at issue
 * throughput. */
#include <immintrin.h>
#include <stdint.h>

#define CHAINS 14

int64_t ryz_probe_mac_maddubs_avx2(int64_t iters) {
    __m256i acc[CHAINS];
    const __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-5);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_set1_epi16((short)c);
    for (int64_t i = 0; i < iters; i++)
        for (int c = 0; c < CHAINS; c++) {
            acc[c] = _mm256_maddubs_epi16(acc[c], b);
            __asm__ volatile("" : "+x"(acc[c]));
        }
    __m256i s = a;
    for (int c = 0; c < CHAINS; c++) s = _mm256_xor_si256(s, acc[c]);
    __asm__ volatile("" : : "x"(s));
    return iters * CHAINS * 32;
}

int64_t ryz_probe_lookup_pshufb_avx2(int64_t iters) {
    __m256i idx[CHAINS];
    const __m256i table = _mm256_setr_epi8(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0,
                                           1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0);
    for (int c = 0; c < CHAINS; c++) idx[c] = _mm256_set1_epi8((char)c);
    for (int64_t i = 0; i < iters; i++)
        for (int c = 0; c < CHAINS; c++) {
            idx[c] = _mm256_shuffle_epi8(table, idx[c]);
            __asm__ volatile("" : "+x"(idx[c]));
        }
    __m256i s = table;
    for (int c = 0; c < CHAINS; c++) s = _mm256_xor_si256(s, idx[c]);
    __asm__ volatile("" : : "x"(s));
    return iters * CHAINS * 32;
}
