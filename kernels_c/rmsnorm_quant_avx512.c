/* rmsnorm_quant_avx512.c - ryz_rmsnorm_quant (decode_ops.c) in AVX-512, bit-identical to the
 * baseline version, which thread 0 runs alone between a decode step's GEMVs (0.5 ms of a
 * 2B-4T token on the EPYC VM, 3 % of it; see kernels_c/README.md, "Decode chains").
 *
 * Why identical: the baseline accumulates x^2 in RYZ_NORM_LANES double partial sums, ss[j]
 * over i = j mod RYZ_NORM_LANES, and adds them in one fixed tree; here lane j of zmm k holds
 * ss[8 k + j] (each x^2 is exact in double, so a contracted FMA rounds like add(mul)).  max is exact in
 * any order, and with maxps's operand order a NaN is skipped as in the baseline.  The
 * product y * s is formed in double as there and rounded to int32 by vcvtpd2dq in the
 * default rounding mode (nearest, ties to even), which is round_even. */
#include <immintrin.h>
#include <math.h>

#include "internal.h"

int ryz_rmsnorm_quant_avx512(const float *restrict x, const float *restrict w, long long n, double eps,
                             double min_absmax, signed char *restrict q, float *restrict scale) {
    __m512d acc[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd()};
    long long i = 0;
    for (; i + RYZ_NORM_LANES <= n; i += RYZ_NORM_LANES)
        for (int j = 0; j < 4; j++) {
            const __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8 * j));
            acc[j] = _mm512_add_pd(acc[j], _mm512_mul_pd(v, v));
        }
    double ss[RYZ_NORM_LANES];
    for (int j = 0; j < 4; j++) _mm512_storeu_pd(ss + 8 * j, acc[j]);
    for (; i < n; i++) ss[0] += (double)x[i] * (double)x[i];
    const double sum = ryz_norm_lanes_sum(ss);
    const float r = (float)(1.0 / sqrt(sum / (double)n + eps));

    const __m512 rv = _mm512_set1_ps(r);
    __m512 m = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        const __m512 y = _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), rv), _mm512_loadu_ps(w + i));
        m = _mm512_max_ps(_mm512_abs_ps(y), m);
    }
    float amax = _mm512_reduce_max_ps(m);
    for (; i < n; i++) {
        const float y = fabsf((x[i] * r) * w[i]);
        amax = y > amax ? y : amax;
    }
    const float s = (float)(127.0 / fmax((double)amax, min_absmax));

    const __m512d sv = _mm512_set1_pd((double)s);
    const __m256 r8 = _mm256_set1_ps(r);
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 y = _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), r8), _mm256_loadu_ps(w + i));
        const __m256i v = _mm512_cvtpd_epi32(_mm512_mul_pd(_mm512_cvtps_pd(y), sv));
        _mm_storel_epi64((__m128i *)(q + i), _mm256_cvtepi32_epi8(v));
    }
    for (; i < n; i++) q[i] = (signed char)_mm_cvtsd_si32(_mm_set_sd((double)((x[i] * r) * w[i]) * (double)s));
    *scale = s;
    return RYZ_OK;
}
