/* head_i8_avx512vnni.c - the LM head's rows with vpdpbusd (see head_i8.c for the identity
 * and the layout): dots[m - m0] = sum(w[m] * u) for rows [m0, m1).
 *
 * One row at a time, four accumulators over k: the rows are contiguous, so the loop reads one
 * linear stream.  It prefetches pf bytes ahead, or not at all for pf = 0 (the plan's choice,
 * head_i8.c): on the Zen 4 VM this loop without prefetch ran the cold 2B-4T head 1.28x faster
 * on 1 thread and 1.06-1.08x on 2 than the former loop (4 rows per activation load, 4
 * interleaved streams, 16 KiB prefetch); with the 16 KiB prefetch the two loops tied
 * (0.96-1.01x; kernels_c/README.md, "The LM head"). */
#include <immintrin.h>

#include "internal.h"
#include "simd_avx512.h"

/* The rows for a compile-time choice of prefetching (both instances are specialised). */
static inline __attribute__((always_inline)) void rows(const uint8_t *w, int64_t Kp, const uint8_t *u, int64_t m0,
                                                       int64_t m1, int32_t *dots, const int prefetch, int64_t pf) {
    for (int64_t m = m0; m < m1; m++) {
        const uint8_t *p = w + m * Kp;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        int64_t k = 0;
        for (; k + 256 <= Kp; k += 256) {
            if (prefetch)
                for (int j = 0; j < 256; j += 64) ryz_prefetch_ahead(p + k + j, pf);
            a0 = ryz_dpbusd(a0, _mm512_load_si512(u + k), _mm512_loadu_si512(p + k));
            a1 = ryz_dpbusd(a1, _mm512_load_si512(u + k + 64), _mm512_loadu_si512(p + k + 64));
            a2 = ryz_dpbusd(a2, _mm512_load_si512(u + k + 128), _mm512_loadu_si512(p + k + 128));
            a3 = ryz_dpbusd(a3, _mm512_load_si512(u + k + 192), _mm512_loadu_si512(p + k + 192));
        }
        for (; k < Kp; k += 64) {
            if (prefetch) ryz_prefetch_ahead(p + k, pf);
            a0 = ryz_dpbusd(a0, _mm512_load_si512(u + k), _mm512_loadu_si512(p + k));
        }
        dots[m - m0] = _mm512_reduce_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)));
    }
}

void ryz_head_rows_avx512vnni(const uint8_t *w, int64_t Kp, const uint8_t *u, int64_t m0, int64_t m1, int32_t *dots,
                              int64_t pf) {
    if (pf > 0)
        rows(w, Kp, u, m0, m1, dots, 1, pf);
    else
        rows(w, Kp, u, m0, m1, dots, 0, 0);
}
