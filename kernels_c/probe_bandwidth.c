/* probe_bandwidth.c - read-bandwidth probe for the roofline: threads sum disjoint, contiguous
 * slices of a buffer (pass it larger than the last-level cache for DRAM, smaller for cache).
 * Baseline x86-64 code: 16-byte loads are far from limiting at DRAM speeds. */
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "registry.h"

static uint64_t sum_slice(const uint8_t *p, int64_t bytes) {
    uint64_t acc[8] = {0};
    int64_t words = bytes / 8;
    const uint64_t *q = (const uint64_t *)p;
    int64_t i = 0;
    for (; i + 8 <= words; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += q[i + j];
    for (; i < words; i++) acc[0] += q[i];
    return acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7];
}

int ryz_read_bandwidth(const unsigned char *buf, long long bytes, int threads,
                       long long passes, double *seconds, unsigned long long *checksum) {
    if (ryz_check_threads(threads)) return ryz_check_threads(threads);
    if (!buf || bytes < 64 * threads || passes < 1 || !seconds || !checksum)
        return RYZ_EARG;
    uint64_t total = 0;
    const double start = ryz_now_seconds();
    #pragma omp parallel num_threads(threads) reduction(+ : total)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int64_t lo = bytes / 64 * t / T * 64, hi = bytes / 64 * (t + 1) / T * 64;
        for (long long p = 0; p < passes; p++) total += sum_slice(buf + lo, hi - lo);
    }
    *seconds = ryz_now_seconds() - start;
    *checksum = total;
    return RYZ_OK;
}
