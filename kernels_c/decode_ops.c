/* decode_ops.c - the elementwise steps between a decode step's GEMVs, fused so that a token
 * costs a few C calls per layer instead of dozens of numpy ones (ryzlab/model.py).
 *
 * Each function reproduces the float32 operation order of the numpy formulation it replaces,
 * so results are bit-identical to it (the pointers are restrict: buffers never overlap, which
 * lets the loops vectorise), except the RMSNorm sum of squares, which is accumulated
 * in double here (numpy's float32 dot may round differently in the last bit). */
#include <math.h>

#include "internal.h"
#include "ryzlab.h"

/* Round half to even, as rint() in the default rounding mode, without a libm call per
 * element (baseline x86-64 has no SSE4.1 roundsd): adding 1.5 * 2^52 leaves no fraction
 * bits, so the addition itself rounds; exact for |v| < 2^51, and here |v| <= 127.5. */
static inline double round_even(double v) {
    const double magic = 6755399441055744.0;
    return (v + magic) - magic;
}

/* q = rint(y * s) with y = (x * r) * w, r = 1 / sqrt(mean(x^2) + eps) and s = 127 / max|y|
 * (max|y| at least min_absmax): BitNet's RMSNorm followed by per-token absmax int8
 * quantisation.  |y * s| <= 127 (1 + 2^-24) rounds into [-127, 127]. */
int ryz_rmsnorm_quant(const float *restrict x, const float *restrict w, long long n, double eps,
                      double min_absmax, signed char *restrict q, float *restrict scale) {
    if (!x || !w || !q || !scale || n < 1) return RYZ_EARG;
    double ss = 0.0;
    for (long long i = 0; i < n; i++) ss += (double)x[i] * (double)x[i];
    const float r = (float)(1.0 / sqrt(ss / (double)n + eps));
    float amax = 0.0f;
    for (long long i = 0; i < n; i++) {
        const float y = (x[i] * r) * w[i];
        amax = fabsf(y) > amax ? fabsf(y) : amax;
    }
    const float s = (float)(127.0 / fmax((double)amax, min_absmax));
    for (long long i = 0; i < n; i++) q[i] = (signed char)round_even((double)((x[i] * r) * w[i]) * (double)s);
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

/* The fused gate/up output (2n rows: gate then up) to f = relu(gate)^2 * up. */
int ryz_dequant_sqrelu_gate(const int *restrict y, const float *restrict row_scale, float x_scale, long long n,
                            float *restrict f) {
    if (!y || !row_scale || !f || n < 1) return RYZ_EARG;
    for (long long i = 0; i < n; i++) {
        float g = (float)y[i] * (row_scale[i] / x_scale);
        const float u = (float)y[n + i] * (row_scale[n + i] / x_scale);
        g = g > 0.0f ? g : 0.0f;
        f[i] = g * g * u;
    }
    return RYZ_OK;
}
