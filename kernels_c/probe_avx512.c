/* probe_avx512.c - AVX-512 compute ceilings: vpdpbusd (VNNI int8 MAC) and vpermb (VBMI
 * 64-entry lookup).  24 independent chains (of 32 zmm registers) hide latency. */
#include <immintrin.h>
#include <stdint.h>

#define CHAINS 24

int64_t ryz_probe_mac_vpdpbusd_avx512(int64_t iters) {
    __m512i acc[CHAINS];
    const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-5);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_epi32(c);
    for (int64_t i = 0; i < iters; i++)
        for (int c = 0; c < CHAINS; c++) {
            acc[c] = _mm512_dpbusd_epi32(acc[c], a, b);
            __asm__ volatile("" : "+v"(acc[c]));
        }
    __m512i s = a;
    for (int c = 0; c < CHAINS; c++) s = _mm512_xor_si512(s, acc[c]);
    __asm__ volatile("" : : "v"(s));
    return iters * CHAINS * 64;
}

int64_t ryz_probe_lookup_vpermb_avx512(int64_t iters) {
    __m512i idx[CHAINS];
    const __m512i table = _mm512_set1_epi8(7);
    for (int c = 0; c < CHAINS; c++) idx[c] = _mm512_set1_epi8((char)c);
    for (int64_t i = 0; i < iters; i++)
        for (int c = 0; c < CHAINS; c++) {
            idx[c] = _mm512_permutexvar_epi8(idx[c], table);
            __asm__ volatile("" : "+v"(idx[c]));
        }
    __m512i s = table;
    for (int c = 0; c < CHAINS; c++) s = _mm512_xor_si512(s, idx[c]);
    __asm__ volatile("" : : "v"(s));
    return iters * CHAINS * 64;
}
