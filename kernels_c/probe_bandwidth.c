/* probe_bandwidth.c - read-bandwidth probe for the roofline: threads sum disjoint, contiguous
 * slices of a buffer (pass it larger than the last-level cache for DRAM, smaller for cache).
 *
 * A plain loop over one stream is latency-bound on some CPUs: one core keeps too few misses in
 * flight, and on a 16-core Xeon it read 7.7-11.7 GB/s while the kernels, which prefetch in
 * software, streamed more, so they showed 118-143 % of "the roofline".  The probe therefore
 * reads in several ways and the caller keeps the fastest (ryzlab.measure.harness.ReadBench):
 *
 *   RYZ_READ_PLAIN     one stream per thread, 8 independent 64-bit accumulators
 *   RYZ_READ_PREFETCH  one stream per thread, 16-byte loads, software prefetch RYZ_PREFETCH_BYTES
 *                      ahead with RYZ_PREFETCH_HINT (exactly what the kernels do)
 *   RYZ_READ_STREAMS   the thread's slice split into 4 sub-slices read in lockstep, each
 *                      prefetched ahead: 4 hardware-prefetcher streams per core
 *
 * Baseline x86-64 code (SSE2): 16-byte loads are far from limiting at DRAM speeds. */
#include <emmintrin.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "registry.h"

static uint64_t sum_plain(const uint8_t *p, int64_t bytes) {
    uint64_t acc[8] = {0};
    int64_t words = bytes / 8;
    const uint64_t *q = (const uint64_t *)p;
    int64_t i = 0;
    for (; i + 8 <= words; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += q[i + j];
    for (; i < words; i++) acc[0] += q[i];
    return acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7];
}

static inline __m128i line(const uint8_t *p, __m128i acc) {
    const __m128i *v = (const __m128i *)p;
    __m128i a = _mm_add_epi64(_mm_load_si128(v), _mm_load_si128(v + 1));
    __m128i b = _mm_add_epi64(_mm_load_si128(v + 2), _mm_load_si128(v + 3));
    return _mm_add_epi64(acc, _mm_add_epi64(a, b));
}

static uint64_t fold(__m128i acc) {
    uint64_t w[2];
    _mm_storeu_si128((__m128i *)w, acc);
    return w[0] + w[1];
}

/* p is 64-byte aligned and bytes a multiple of 64 (the caller slices by lines). */
static uint64_t sum_prefetch(const uint8_t *p, int64_t bytes) {
    __m128i a0 = _mm_setzero_si128(), a1 = _mm_setzero_si128();
    int64_t i = 0;
    for (; i + 128 <= bytes; i += 128) {
        ryz_prefetch(p + i);
        ryz_prefetch(p + i + 64);
        a0 = line(p + i, a0);
        a1 = line(p + i + 64, a1);
    }
    for (; i < bytes; i += 64) a0 = line(p + i, a0);
    return fold(_mm_add_epi64(a0, a1));
}

static uint64_t sum_streams(const uint8_t *p, int64_t bytes) {
    enum { S = 4 };
    const int64_t lines = bytes / 64, per = lines / S;
    __m128i acc[S];
    for (int s = 0; s < S; s++) acc[s] = _mm_setzero_si128();
    for (int64_t i = 0; i < per; i++)
        for (int s = 0; s < S; s++) {
            const uint8_t *q = p + (s * per + i) * 64;
            ryz_prefetch(q);
            acc[s] = line(q, acc[s]);
        }
    __m128i total = _mm_add_epi64(_mm_add_epi64(acc[0], acc[1]), _mm_add_epi64(acc[2], acc[3]));
    for (int64_t i = S * per; i < lines; i++) total = line(p + i * 64, total);
    return fold(total);
}

int ryz_read_bandwidth(const unsigned char *buf, long long bytes, int threads, int method,
                       long long passes, double *seconds, unsigned long long *checksum) {
    if (ryz_check_threads(threads)) return ryz_check_threads(threads);
    if (!buf || ((uintptr_t)buf & 63) || bytes < 64 * threads || passes < 1 || !seconds || !checksum)
        return RYZ_EARG;
    uint64_t (*sum)(const uint8_t *, int64_t) = method == RYZ_READ_PLAIN ? sum_plain
                                               : method == RYZ_READ_PREFETCH ? sum_prefetch
                                               : method == RYZ_READ_STREAMS ? sum_streams : 0;
    if (!sum) return RYZ_EARG;
    uint64_t total = 0;
    const double start = ryz_now_seconds();
    #pragma omp parallel num_threads(threads) reduction(+ : total)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int64_t lo = bytes / 64 * t / T * 64, hi = bytes / 64 * (t + 1) / T * 64;
        for (long long p = 0; p < passes; p++) total += sum(buf + lo, hi - lo);
    }
    *seconds = ryz_now_seconds() - start;
    *checksum = total;
    return RYZ_OK;
}
