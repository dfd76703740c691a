/* attention_avx512.c - the attention primitives (scores, softmax, weighted sum) in AVX-512F,
 * dispatched by attention.c when the CPU has AVX-512 (attention.c holds the SSE2 fallback).
 *
 * Why not the fallback's shape in wider registers: its dot product reduces 16 lanes per
 * (query head, position), which costs as much as the multiply-adds at head_dim 128.  Here a
 * tile of NI query heads x NP positions (NI * NP = 16) keeps 16 accumulators over head_dim
 * and reduces all 16 with one shuffle tree (sum16: 45 shuffles/adds for 16 dots, not 16 x 8).
 * The group's query heads share each K row load, as in the fallback.
 *
 * Numerics (fixed, so results do not depend on threads, tiling or prefill vs decode):
 *   score  lane l of the accumulator sums q[c] k[c] over c = l, l+16, ... with FMA in c order,
 *          then sum16's tree adds the 16 lanes in a fixed order; times the scale.
 *   exp    Cephes expf's range reduction and polynomial (about 1 ulp), 2^n by vscalefps.
 *   sum    of the exps in double, 16 lanes then a fixed reduction; divided as float32.
 *   wsum   o[c] += s[p] v[p][c] with FMA, p in increasing order, for every c alike.
 * They differ from the fallback's by float rounding only (tests compare both with numpy). */
#include <immintrin.h>
#include <math.h>

#include "internal.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Positions ahead that the K and V rows are prefetched, into L2 (_MM_HINT_T1) as the weight
 * streams are: prefetches into L1 take L1 miss buffers that the demand loads and the hardware
 * prefetcher need.  Cold caches at context 2000, 30 layers, 2 threads, one run: T0 16 ahead with
 * 64-position score items 14.0 GB/s of K and V, T1 8 ahead with 1024-position items 22.2 GB/s
 * (kernels_c/README.md, "Attention and prefill"). */
#ifndef RYZ_KV_AHEAD
#define RYZ_KV_AHEAD 8
#endif

ALWAYS_INLINE __mmask16 lanes(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

/* Lane i of the result: the sum of v[i]'s 16 lanes. */
ALWAYS_INLINE __m512 sum16(const __m512 v[16]) {
    __m512 a[8], b[4], c[2];
    for (int k = 0; k < 8; k++)  /* per 128-bit lane: [v2k: e0+e2, v2k+1: e0+e2, v2k: e1+e3, v2k+1: e1+e3] */
        a[k] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * k], v[2 * k + 1]), _mm512_unpackhi_ps(v[2 * k], v[2 * k + 1]));
    for (int k = 0; k < 4; k++)  /* per 128-bit lane: the lane's sums of v4k .. v4k+3 */
        b[k] = _mm512_add_ps(_mm512_shuffle_ps(a[2 * k], a[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(a[2 * k], a[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    for (int k = 0; k < 2; k++)  /* 128-bit lanes: [b2k lanes 0+1, b2k lanes 2+3, b2k+1 0+1, b2k+1 2+3] */
        c[k] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * k], b[2 * k + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(b[2 * k], b[2 * k + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

/* Scores of NI query heads (q + i d) x NP positions p .. p+NP-1 of K, of which the first np
 * are real (the others repeat the last real row and are not stored). */
ALWAYS_INLINE void scores_tile(const int NI, const int NP, const float *q, const float *K, int64_t d, int64_t p,
                               int64_t np, float scale, float *s, int64_t ss) {
    __m512 acc[16];
    const float *kp[16];
    for (int k = 0; k < 16; k++) acc[k] = _mm512_setzero_ps();
    for (int j = 0; j < NP; j++) kp[j] = K + (p + (j < np ? j : np - 1)) * d;
    for (int64_t c = 0; c < d; c += 16) {
        const __mmask16 m = lanes(d - c);
        __m512 kv[16];
        for (int j = 0; j < NP; j++) kv[j] = _mm512_maskz_loadu_ps(m, kp[j] + c);
        for (int i = 0; i < NI; i++) {
            const __m512 qv = _mm512_maskz_loadu_ps(m, q + i * d + c);
            for (int j = 0; j < NP; j++) acc[i * NP + j] = _mm512_fmadd_ps(qv, kv[j], acc[i * NP + j]);
        }
    }
    float out[16];
    _mm512_storeu_ps(out, _mm512_mul_ps(sum16(acc), _mm512_set1_ps(scale)));
    for (int i = 0; i < NI; i++)
        for (int j = 0; j < np; j++) s[i * ss + p + j] = out[i * NP + j];
}

/* Prefetch floats [c0, c1) of rows p0 .. p1-1 (stride d): the K and V streams are read in
 * chunks split between threads, too short for the hardware prefetchers to ramp up alone (30
 * layers' decode attention at context 64, 2 threads: 0.83 -> 0.53 ms; see kernels_c/README.md). */
ALWAYS_INLINE void prefetch_rows(const float *X, int64_t d, int64_t p0, int64_t p1, int64_t c0, int64_t c1) {
    for (int64_t p = p0; p < p1; p++)
        for (int64_t c = c0; c < c1; c += 16) _mm_prefetch((const char *)(X + p * d + c), _MM_HINT_T1);
}

ALWAYS_INLINE void scores_heads(const int NI, const int NP, const float *q, int64_t g, const float *K, int64_t d,
                                int64_t p0, int64_t p1, float scale, float *s, int64_t ss) {
    for (int64_t i = 0; i < g; i += NI)
        for (int64_t p = p0; p < p1; p += NP) {
            if (i == 0) {
                const int64_t a = p + RYZ_KV_AHEAD, b = a + NP < p1 ? a + NP : p1;
                prefetch_rows(K, d, a, b, 0, d);
            }
            scores_tile(NI, NP, q + i * d, K, d, p, p1 - p < NP ? p1 - p : NP, scale, s + i * ss, ss);
        }
}

static void scores(const float *q, int64_t g, const float *K, int64_t d, int64_t p0, int64_t p1, float scale,
                   float *s, int64_t ss) {
    if (g % 4 == 0)
        scores_heads(4, 4, q, g, K, d, p0, p1, scale, s, ss);
    else if (g % 2 == 0)
        scores_heads(2, 8, q, g, K, d, p0, p1, scale, s, ss);
    else
        scores_heads(1, 16, q, g, K, d, p0, p1, scale, s, ss);
}

/* e^x, x <= 0 (scores minus their max).  Below -104 e^x is 0 in float32 and the clamp keeps
 * the range reduction exact. */
ALWAYS_INLINE __m512 exp_ps(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

static void softmax(float *s, int64_t n) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < n; j += 16) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(mx, lanes(n - j), s + j));
    const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512d sum = _mm512_setzero_pd();
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 k = lanes(n - j);
        const __m512 e = _mm512_maskz_mov_ps(k, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), m)));
        _mm512_mask_storeu_ps(s + j, k, e);
        sum = _mm512_add_pd(sum, _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(e)),
                                               _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1))));
    }
    const __m512 fs = _mm512_set1_ps((float)_mm512_reduce_add_pd(sum));
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 k = lanes(n - j);
        _mm512_mask_storeu_ps(s + j, k, _mm512_div_ps(_mm512_maskz_loadu_ps(k, s + j), fs));
    }
}

/* o_i[c .. c + 16 NC) += s_i[p] V[p][...] for NH heads, p in [p0, p1); the last 16-column
 * chunk holds only the lanes of `last`. */
ALWAYS_INLINE void wsum_tile(const int NH, const int NC, float *o, int64_t d, const float *s, int64_t ss,
                             const float *V, int64_t p0, int64_t p1, int64_t c, __mmask16 last) {
    __m512 acc[16];
    for (int i = 0; i < NH; i++)
        for (int k = 0; k < NC; k++)
            acc[i * NC + k] = _mm512_maskz_loadu_ps(k == NC - 1 ? last : 0xFFFF, o + i * d + c + 16 * k);
    for (int64_t p = p0; p < p1; p++) {
        if (p + RYZ_KV_AHEAD < p1) prefetch_rows(V, d, p + RYZ_KV_AHEAD, p + RYZ_KV_AHEAD + 1, c, c + 16 * NC);
        const float *v = V + p * d + c;
        __m512 vv[16];
        for (int k = 0; k < NC; k++) vv[k] = _mm512_maskz_loadu_ps(k == NC - 1 ? last : 0xFFFF, v + 16 * k);
        for (int i = 0; i < NH; i++) {
            const __m512 sp = _mm512_set1_ps(s[i * ss + p]);
            for (int k = 0; k < NC; k++) acc[i * NC + k] = _mm512_fmadd_ps(sp, vv[k], acc[i * NC + k]);
        }
    }
    for (int i = 0; i < NH; i++)
        for (int k = 0; k < NC; k++)
            _mm512_mask_storeu_ps(o + i * d + c + 16 * k, k == NC - 1 ? last : 0xFFFF, acc[i * NC + k]);
}

ALWAYS_INLINE void wsum_heads(const int NH, const int NC, float *o, int64_t g, const float *s, int64_t ss,
                              const float *V, int64_t d, int64_t p0, int64_t p1, int64_t c0, int64_t c1) {
    for (int64_t i = 0; i < g; i += NH) {
        int64_t c = c0;
        for (; c + 16 * NC <= c1; c += 16 * NC)
            wsum_tile(NH, NC, o + i * d, d, s + i * ss, ss, V, p0, p1, c, 0xFFFF);
        for (; c < c1; c += 16)
            wsum_tile(NH, 1, o + i * d, d, s + i * ss, ss, V, p0, p1, c, lanes(c1 - c));
    }
}

static void wsum(float *o, int64_t g, const float *s, int64_t ss, const float *V, int64_t d, int64_t p0,
                 int64_t p1, int64_t c0, int64_t c1) {
    if (g % 4 == 0)
        wsum_heads(4, 4, o, g, s, ss, V, d, p0, p1, c0, c1);
    else if (g % 2 == 0)
        wsum_heads(2, 8, o, g, s, ss, V, d, p0, p1, c0, c1);
    else
        wsum_heads(1, 8, o, g, s, ss, V, d, p0, p1, c0, c1);
}

const ryz_attn_ops ryz_attn_avx512 = {"avx512", scores, softmax, wsum};
