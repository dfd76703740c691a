/* probe_avx512.c - AVX-512 compute ceilings: vpdpbusd (VNNI int8 MAC) and vpermb (VBMI
 * 64-entry lookup).  Independent chains hide latency; only the inputs are hidden from the
 * compiler (one empty asm), since a barrier after every instruction halves the measured rate. */
#include <immintrin.h>
#include <stdint.h>

#define CHAINS 16

int64_t ryz_probe_mac_vpdpbusd_avx512(int64_t iters) {
    __m512i acc[CHAINS];
    __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-5);
    __asm__("" : "+v"(a), "+v"(b));
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_epi32(c);
    for (int64_t i = 0; i < iters; i++)
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_dpbusd_epi32(acc[c], a, b);
    __m512i s = acc[0];
    for (int c = 1; c < CHAINS; c++) s = _mm512_xor_si512(s, acc[c]);
    __asm__ volatile("" : : "v"(s));
    return iters * CHAINS * 64;
}

int64_t ryz_probe_lookup_vpermb_avx512(int64_t iters) {
    __m512i idx[CHAINS];
    __m512i table = _mm512_set1_epi8(7);
    __asm__("" : "+v"(table));
    for (int c = 0; c < CHAINS; c++) idx[c] = _mm512_set1_epi8((char)c);
    for (int64_t i = 0; i < iters; i++)
        for (int c = 0; c < CHAINS; c++) idx[c] = _mm512_permutexvar_epi8(idx[c], table);
    __m512i s = idx[0];
    for (int c = 1; c < CHAINS; c++) s = _mm512_xor_si512(s, idx[c]);
    __asm__ volatile("" : : "v"(s));
    return iters * CHAINS * 64;
}
