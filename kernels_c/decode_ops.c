/* decode_ops.c - the elementwise steps between a decode step's GEMVs, fused so that a token
 * costs a few C calls per layer instead of dozens of numpy ones (ryzlab/model.py).
 *
 * Each function reproduces the float32 operation order of the numpy formulation it replaces,
 * so results are bit-identical to it (the pointers are restrict: buffers never overlap, which
 * lets the loops vectorise), except the RMSNorm sum of squares, which is accumulated
 * in double here (numpy's float32 dot may round differently in the last bit). */
#include <emmintrin.h>
#include <math.h>

#include "internal.h"

/* Round half to even, as rint() in the default rounding mode, without a libm call per
 * element (baseline x86-64 has no SSE4.1 roundsd): adding 1.5 * 2^52 leaves no fraction
 * bits, so the addition itself rounds; exact for |v| < 2^51, and here |v| <= 127.5. */
static inline double round_even(double v) {
    const double magic = 6755399441055744.0;
    return (v + magic) - magic;
}

/* q = rint(y * s) with y = (x * r) * w, r = 1 / sqrt(mean(x^2) + eps) and s = 127 / max|y|
 * (max|y| at least min_absmax): BitNet's RMSNorm followed by per-token absmax int8
 * quantisation.  |y * s| <= 127 (1 + 2^-24) rounds into [-127, 127].  CPUs with AVX-512 run
 * the same arithmetic in rmsnorm_quant_avx512.c, with bit-identical results. */
int ryz_rmsnorm_quant(const float *restrict x, const float *restrict w, long long n, double eps,
                      double min_absmax, signed char *restrict q, float *restrict scale) {
    if (!x || !w || !q || !scale || n < 1) return RYZ_EARG;
    if ((ryz_cpu_features() & RYZ_F_AVX512_BASE) == RYZ_F_AVX512_BASE)
        return ryz_rmsnorm_quant_avx512(x, w, n, eps, min_absmax, q, scale);
    /* RYZ_NORM_LANES independent partial sums, ss[j] over i = j mod RYZ_NORM_LANES: the loop
     * vectorises and its add chains pipeline (one double accumulator is a serial chain of
     * dependent adds); four zmm of doubles in the AVX-512 version. */
    double ss[RYZ_NORM_LANES] = {0};
    long long i = 0;
    for (; i + RYZ_NORM_LANES <= n; i += RYZ_NORM_LANES)
        for (int j = 0; j < RYZ_NORM_LANES; j++) ss[j] += (double)x[i + j] * (double)x[i + j];
    for (; i < n; i++) ss[0] += (double)x[i] * (double)x[i];
    const double sum = ryz_norm_lanes_sum(ss);
    const float r = (float)(1.0 / sqrt(sum / (double)n + eps));
    /* max|y| with SSE maxps, which is exactly "y > m ? y : m" (GCC will not vectorise that
     * compare without -ffinite-math-only) */
    const __m128 sign = _mm_set1_ps(-0.0f), rv = _mm_set1_ps(r);
    __m128 m0 = _mm_setzero_ps(), m1 = _mm_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        const __m128 y0 = _mm_mul_ps(_mm_mul_ps(_mm_loadu_ps(x + i), rv), _mm_loadu_ps(w + i));
        const __m128 y1 = _mm_mul_ps(_mm_mul_ps(_mm_loadu_ps(x + i + 4), rv), _mm_loadu_ps(w + i + 4));
        m0 = _mm_max_ps(_mm_andnot_ps(sign, y0), m0);
        m1 = _mm_max_ps(_mm_andnot_ps(sign, y1), m1);
    }
    float m[8];
    _mm_storeu_ps(m, m0);
    _mm_storeu_ps(m + 4, m1);
    float amax = 0.0f;
    for (int j = 0; j < 8; j++) amax = m[j] > amax ? m[j] : amax;
    for (; i < n; i++) {
        const float y = fabsf((x[i] * r) * w[i]);
        amax = y > amax ? y : amax;
    }
    const float s = (float)(127.0 / fmax((double)amax, min_absmax));
    for (i = 0; i < n; i++) q[i] = (signed char)round_even((double)((x[i] * r) * w[i]) * (double)s);
    *scale = s;
    return RYZ_OK;
}

/* out[i] = y[i] * (row_scale[i] / x_scale), or out[i] += that when accumulate is set. */
int ryz_dequant(const int *restrict y, const float *restrict row_scale, float x_scale, long long n,
                float *restrict out, int accumulate) {
    if (!y || !row_scale || !out || n < 1) return RYZ_EARG;
    if (accumulate)
        for (long long i = 0; i < n; i++) out[i] += (float)y[i] * (row_scale[i] / x_scale);
    else
        for (long long i = 0; i < n; i++) out[i] = (float)y[i] * (row_scale[i] / x_scale);
    return RYZ_OK;
}

/* f[i] = relu(g)^2 * u with g = yg[i] * (sg[i] / x_scale), u = yu[i] * (su[i] / x_scale): n rows
 * of the fused gate/up output, its gate rows and their up rows given apart (a decode chain's
 * thread gates the rows it computed; decode_steps.c). */
void ryz_sqrelu_gate_rows(const int *restrict yg, const int *restrict yu, const float *restrict sg,
                          const float *restrict su, float x_scale, int64_t n, float *restrict f) {
    /* relu as SSE maxps(g, 0), exactly "g > 0 ? g : 0" (see ryz_rmsnorm_quant) */
    int64_t i = 0;
    const __m128 xs = _mm_set1_ps(x_scale), zero = _mm_setzero_ps();
    for (; i + 4 <= n; i += 4) {
        __m128 g = _mm_mul_ps(_mm_cvtepi32_ps(_mm_loadu_si128((const __m128i *)(yg + i))),
                              _mm_div_ps(_mm_loadu_ps(sg + i), xs));
        const __m128 u = _mm_mul_ps(_mm_cvtepi32_ps(_mm_loadu_si128((const __m128i *)(yu + i))),
                                    _mm_div_ps(_mm_loadu_ps(su + i), xs));
        g = _mm_max_ps(g, zero);
        _mm_storeu_ps(f + i, _mm_mul_ps(_mm_mul_ps(g, g), u));
    }
    for (; i < n; i++) {
        float g = (float)yg[i] * (sg[i] / x_scale);
        const float u = (float)yu[i] * (su[i] / x_scale);
        g = g > 0.0f ? g : 0.0f;
        f[i] = g * g * u;
    }
}

/* The fused gate/up output (2n rows: gate then up) to f = relu(gate)^2 * up. */
int ryz_dequant_sqrelu_gate(const int *restrict y, const float *restrict row_scale, float x_scale, long long n,
                            float *restrict f) {
    if (!y || !row_scale || !f || n < 1) return RYZ_EARG;
    ryz_sqrelu_gate_rows(y, y + n, row_scale, row_scale + n, x_scale, n, f);
    return RYZ_OK;
}

/* RoPE, rotate-half convention, in place on rows consecutive head vectors of d floats (d
 * even) at one position: x1 = x[:d/2], x2 = x[d/2:]; x1' = x1 cos - x2 sin, x2' = x2 cos +
 * x1 sin, each product rounded to float32 before the sum, as numpy does (baseline x86-64 has
 * no FMA to contract them into). */
int ryz_rope(float *restrict x, long long rows, long long d, const float *restrict cos,
             const float *restrict sin) {
    if (!x || !cos || !sin || rows < 1 || d < 2 || d % 2) return RYZ_EARG;
    const long long half = d / 2;
    for (long long r = 0; r < rows; r++) {
        float *restrict x1 = x + r * d, *restrict x2 = x1 + half;
        for (long long i = 0; i < half; i++) {
            const float a = x1[i], b = x2[i];
            x1[i] = a * cos[i] - b * sin[i];
            x2[i] = b * cos[i] + a * sin[i];
        }
    }
    return RYZ_OK;
}
