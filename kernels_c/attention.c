/* attention.c - causal grouped-query attention over a layer's float32 KV cache, for decode
 * (one query position) and prefill (T positions), in one OpenMP parallel region.
 *
 The three primitives (scores, softmax, weighted sum) come from a table chosen per call by
 * the CPU's features (ryz_attn_ops in internal.h): AVX-512F (attention_avx512.c) or the SSE2
 * fallback below.  The fallback's numerics (those of the numpy formulation it replaced,
 * within float rounding):
 *   s_j = (q . k_j) * (float)(1 / sqrt(d))       float32 dot (4 x 4 SSE lanes, fixed order)
 *   p_j = expf(s_j - max s) / sum (sum in double, divided as float32)
 *   o   = sum_j p_j v_j                           float32, accumulated in j order
 * Within one ISA every score, softmax and output element is computed by one thread in one
 * fixed order, so the results do not depend on the thread count or on which of the two work
 * splits below runs: prefill of T positions gives bit-identical attention outputs to T decode
 * calls.  The two ISAs differ by float rounding only.
 *
 * Work splits:
 *   rows   items (query position t, KV head): the group's query heads share each K and V row
 *          read (GQA: the K/V stream is read once per group, not once per query head).
 *          Chosen when there are at least 4 items per thread (prefill; decode with many KV
 *          heads): fewer items than that leave threads idle at the end (5 KV heads on 2
 *          threads: 3 against 2).
 *   phases decode with few KV heads for many threads (2B-4T: 5 KV heads, 16 threads): scores
 *          over (KV head, position chunk), then softmax over (t, head), then the weighted sum
 *          over (t, KV head, 64-float column chunk of head_dim); barriers in between. */
#include <emmintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "internal.h"

/* Positions per block of the weighted sum (a V block stays in L1 across column tiles), and the
 * least and most positions per score item of the "phases" split. */
#define POS_CHUNK 64
#define SCORE_CHUNK_MAX 1024
/* Floats per column chunk of the weighted sum (4 zmm per query head in the AVX-512 tile). */
#define COL_CHUNK 64
/* Multiply-adds (scores and weighted sum) per thread below which fewer threads run: a short
 * context's attention takes microseconds, less than a fork/join (and far less than a barrier
 * on an oversubscribed machine, where one descheduled thread stalls the others).  The results
 * do not depend on the thread count, so this only moves time. */
#define MIN_MACS_PER_THREAD 65536

typedef struct attn {
    const float *q;
    int64_t q_stride;
    const float *k, *v;  /* layer caches, (kv_heads, max_context, d) */
    float *out;
    int64_t out_stride;
    int64_t T, p0, heads, kvh, group, d, maxc;
    float scale;
    float *ws;           /* rows: threads x group x (p0 + T); phases: T x heads x (p0 + T) */
    const ryz_attn_ops *ops;
    int rows_split;
    int threads;         /* threads that run: at most the caller's, fewer for little work */
    int64_t score_chunk; /* positions per score item (phases) */
} attn;

static inline float dot(const float *restrict a, const float *restrict b, int64_t n) {
    __m128 s0 = _mm_setzero_ps(), s1 = _mm_setzero_ps(), s2 = _mm_setzero_ps(), s3 = _mm_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm_add_ps(s0, _mm_mul_ps(_mm_loadu_ps(a + i), _mm_loadu_ps(b + i)));
        s1 = _mm_add_ps(s1, _mm_mul_ps(_mm_loadu_ps(a + i + 4), _mm_loadu_ps(b + i + 4)));
        s2 = _mm_add_ps(s2, _mm_mul_ps(_mm_loadu_ps(a + i + 8), _mm_loadu_ps(b + i + 8)));
        s3 = _mm_add_ps(s3, _mm_mul_ps(_mm_loadu_ps(a + i + 12), _mm_loadu_ps(b + i + 12)));
    }
    for (; i + 4 <= n; i += 4) s0 = _mm_add_ps(s0, _mm_mul_ps(_mm_loadu_ps(a + i), _mm_loadu_ps(b + i)));
    float l[4];
    _mm_storeu_ps(l, _mm_add_ps(_mm_add_ps(s0, s1), _mm_add_ps(s2, s3)));
    float s = (l[0] + l[1]) + (l[2] + l[3]);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static void softmax_sse(float *restrict s, int64_t n) {
    float m = s[0];
    for (int64_t j = 1; j < n; j++) m = s[j] > m ? s[j] : m;
    double sum = 0.0;
    for (int64_t j = 0; j < n; j++) {
        s[j] = expf(s[j] - m);
        sum += s[j];
    }
    const float fs = (float)sum;
    for (int64_t j = 0; j < n; j++) s[j] /= fs;
}

/* o[c] += s[p] * V[p * d + c] for c in [0, w), p = p0 .. p1-1 in that order: each element's
 * sum is sequential in p, so any blocking over p or c rounds the same.  16 columns at a time
 * stay in registers across the positions of a block (V's block is in L1/L2: POS_CHUNK rows). */
static void wsum_head(float *restrict o, const float *restrict s, const float *restrict V, int64_t d, int64_t p0,
                      int64_t p1, int64_t w) {
    int64_t c = 0;
    for (; c + 16 <= w; c += 16) {
        __m128 a0 = _mm_loadu_ps(o + c), a1 = _mm_loadu_ps(o + c + 4), a2 = _mm_loadu_ps(o + c + 8),
               a3 = _mm_loadu_ps(o + c + 12);
        for (int64_t p = p0; p < p1; p++) {
            const __m128 sp = _mm_set1_ps(s[p]);
            const float *v = V + p * d + c;
            a0 = _mm_add_ps(a0, _mm_mul_ps(sp, _mm_loadu_ps(v)));
            a1 = _mm_add_ps(a1, _mm_mul_ps(sp, _mm_loadu_ps(v + 4)));
            a2 = _mm_add_ps(a2, _mm_mul_ps(sp, _mm_loadu_ps(v + 8)));
            a3 = _mm_add_ps(a3, _mm_mul_ps(sp, _mm_loadu_ps(v + 12)));
        }
        _mm_storeu_ps(o + c, a0), _mm_storeu_ps(o + c + 4, a1), _mm_storeu_ps(o + c + 8, a2);
        _mm_storeu_ps(o + c + 12, a3);
    }
    for (; c + 4 <= w; c += 4) {
        __m128 a = _mm_loadu_ps(o + c);
        for (int64_t p = p0; p < p1; p++) a = _mm_add_ps(a, _mm_mul_ps(_mm_set1_ps(s[p]), _mm_loadu_ps(V + p * d + c)));
        _mm_storeu_ps(o + c, a);
    }
    for (; c < w; c++) {
        float a = o[c];
        for (int64_t p = p0; p < p1; p++) a += s[p] * V[p * d + c];
        o[c] = a;
    }
}

static void scores_sse(const float *q, int64_t g, const float *K, int64_t d, int64_t p0, int64_t p1, float scale,
                       float *s, int64_t ss) {
    for (int64_t p = p0; p < p1; p++)
        for (int64_t i = 0; i < g; i++) s[i * ss + p] = dot(q + i * d, K + p * d, d) * scale;
}

static void wsum_sse(float *o, int64_t g, const float *s, int64_t ss, const float *V, int64_t d, int64_t p0,
                     int64_t p1, int64_t c0, int64_t c1) {
    for (int64_t i = 0; i < g; i++) wsum_head(o + i * d + c0, s + i * ss, V + c0, d, p0, p1, c1 - c0);
}

static const ryz_attn_ops attn_sse = {"sse2", scores_sse, softmax_sse, wsum_sse};

static const ryz_attn_ops *attn_ops(void) {
    return (ryz_cpu_features() & RYZ_F_AVX512F) ? &ryz_attn_avx512 : &attn_sse;
}

const char *ryz_attention_isa(void) { return attn_ops()->isa; }

static inline const float *qrow(const attn *a, int64_t t, int64_t h) { return a->q + t * a->q_stride + h * a->d; }
static inline float *orow(const attn *a, int64_t t, int64_t h) { return a->out + t * a->out_stride + h * a->d; }

/* Item (t, KV head j): all group query heads of j at position p0 + t. */
static void rows_item(const attn *a, int64_t t, int64_t j, float *restrict s) {
    const int64_t n = a->p0 + t + 1, d = a->d, g = a->group;
    const float *K = a->k + j * a->maxc * d, *V = a->v + j * a->maxc * d;
    float *o = orow(a, t, j * g);
    a->ops->scores(qrow(a, t, j * g), g, K, d, 0, n, a->scale, s, n);
    for (int64_t i = 0; i < g; i++) a->ops->softmax(s + i * n, n);
    for (int64_t c = 0; c < g * d; c++) o[c] = 0.0f;
    for (int64_t b = 0; b < n; b += POS_CHUNK)
        a->ops->wsum(o, g, s, n, V, d, b, b + POS_CHUNK < n ? b + POS_CHUNK : n, 0, d);
}

/* Called by every thread of a parallel region (orphaned worksharing). */
static void attention_team(const attn *a) {
    const int64_t ctx = a->p0 + a->T, d = a->d, g = a->group;
    if (a->rows_split) {
        float *s = a->ws + (int64_t)omp_get_thread_num() * g * ctx;
        /* later positions attend to more: dynamic, so the triangle balances */
        #pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < a->T * a->kvh; it++) rows_item(a, it / a->kvh, it % a->kvh, s);
        return;
    }
    /* phases: scores S[t][h][p] */
    const int64_t sc = a->score_chunk, chunks = (ctx + sc - 1) / sc;
    #pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < a->kvh * chunks; it++) {
        const int64_t j = it / chunks, p0 = (it % chunks) * sc;
        const float *K = a->k + j * a->maxc * d;
        for (int64_t t = 0; t < a->T; t++) {
            const int64_t n = a->p0 + t + 1, p1 = p0 + sc < n ? p0 + sc : n;
            if (p0 < p1)
                a->ops->scores(qrow(a, t, j * g), g, K, d, p0, p1, a->scale, a->ws + (t * a->heads + j * g) * ctx, ctx);
        }
    }
    #pragma omp for schedule(static)
    for (int64_t it = 0; it < a->T * a->heads; it++) a->ops->softmax(a->ws + it * ctx, a->p0 + it / a->heads + 1);
    const int64_t cols = (d + COL_CHUNK - 1) / COL_CHUNK;
    #pragma omp for schedule(static)
    for (int64_t it = 0; it < a->T * a->kvh * cols; it++) {
        const int64_t t = it / (a->kvh * cols), j = it / cols % a->kvh, c0 = it % cols * COL_CHUNK;
        const int64_t w = d - c0 < COL_CHUNK ? d - c0 : COL_CHUNK, n = a->p0 + t + 1;
        const float *V = a->v + j * a->maxc * d;
        float *o = orow(a, t, j * g);
        for (int64_t i = 0; i < g; i++)
            for (int64_t c = 0; c < w; c++) o[i * d + c0 + c] = 0.0f;
        for (int64_t b = 0; b < n; b += POS_CHUNK)
            a->ops->wsum(o, g, a->ws + (t * a->heads + j * g) * ctx, ctx, V, d, b, b + POS_CHUNK < n ? b + POS_CHUNK : n,
                         c0, c0 + w);
    }
}

/* Bounds shared by both entry points; fills a (except q, out and their strides' checks). */
/* team: the caller's threads are already running (a decode chain's region): then either
 * thread 0 works alone (little work) or every thread of the team takes part. */
static int setup(attn *a, long long k_len, long long v_len, long long max_context, long long T, long long p0,
                 long long heads, long long kv_heads, long long head_dim, int threads, int team) {
    if (T < 1 || p0 < 0 || max_context < 1 || heads < 1 || kv_heads < 1 || head_dim < 1 || threads < 1)
        return RYZ_EARG;
    if (heads % kv_heads) return RYZ_EARG;
    if (threads > RYZ_MAX_THREADS || T > RYZ_MAX_MN || max_context > RYZ_MAX_MN || heads > RYZ_MAX_MN ||
        head_dim > RYZ_MAX_MN)
        return RYZ_ELIMIT;
    if (p0 > max_context - T) return RYZ_EARG;  /* positions p0 .. p0 + T - 1 must fit the cache */
    long long cache;
    if (__builtin_mul_overflow(kv_heads, max_context, &cache) || __builtin_mul_overflow(cache, head_dim, &cache))
        return RYZ_ELIMIT;
    if (k_len < cache || v_len < cache) return RYZ_EWS;
    a->T = T, a->p0 = p0, a->heads = heads, a->kvh = kv_heads, a->group = heads / kv_heads;
    a->d = head_dim, a->maxc = max_context;
    a->scale = (float)(1.0 / sqrt((double)head_dim));
    /* 2 T heads d (p0 + T/2) multiply-adds; T, heads, d, p0 < 2^31 keep it well inside double */
    const double macs = 2.0 * (double)T * (double)heads * (double)head_dim * ((double)p0 + 0.5 * (double)T + 0.5);
    const double want = 1.0 + macs / MIN_MACS_PER_THREAD;
    a->threads = want < (double)threads ? (int)want : threads;
    if (team && a->threads > 1) a->threads = threads;
    a->rows_split = T * kv_heads >= 4LL * a->threads;
    /* Score items: about four per thread, in multiples of POS_CHUNK.  Each item streams its K
     * rows once, so longer items mean fewer cold starts of the stream: at context 2000 on 2
     * threads 1024-position items made the call 1.2x faster than 64-position ones (see
     * kernels_c/README.md, "Attention and prefill"). */
    const long long per = (p0 + T) * kv_heads / (4LL * a->threads) / POS_CHUNK * POS_CHUNK;
    a->score_chunk = per < POS_CHUNK ? POS_CHUNK : per > SCORE_CHUNK_MAX ? SCORE_CHUNK_MAX : per;
    a->ops = attn_ops();
    const long long ctx = p0 + T;
    long long ws;
    if (__builtin_mul_overflow(a->rows_split ? (long long)a->threads * a->group : T * heads, ctx, &ws) ||
        ws > (1LL << 40))
        return RYZ_ELIMIT;
    a->ws = malloc((size_t)ws * sizeof(float));
    return a->ws ? RYZ_OK : RYZ_ENOMEM;
}

/* rows x stride floats with the last row only as long as width: the length a strided matrix needs. */
static int strided_fits(long long len, long long rows, long long stride, long long width) {
    long long need;
    if (stride < width || __builtin_mul_overflow(rows - 1, stride, &need) || __builtin_add_overflow(need, width, &need))
        return 0;
    return len >= need;
}

int ryz_attention(const float *q, long long q_len, long long q_stride, const float *k_cache, long long k_len,
                  const float *v_cache, long long v_len, long long max_context, long long T, long long p0,
                  long long heads, long long kv_heads, long long head_dim, float *out, long long out_len,
                  long long out_stride, int threads) {
    if (!q || !k_cache || !v_cache || !out) return RYZ_EARG;
    attn a = {0};
    int rc = setup(&a, k_len, v_len, max_context, T, p0, heads, kv_heads, head_dim, threads, 0);
    if (rc) return rc;
    if (!strided_fits(q_len, T, q_stride, heads * head_dim) || !strided_fits(out_len, T, out_stride, heads * head_dim)) {
        free(a.ws);
        return RYZ_EWS;
    }
    a.q = q, a.q_stride = q_stride, a.k = k_cache, a.v = v_cache, a.out = out, a.out_stride = out_stride;
    #pragma omp parallel num_threads(a.threads) if (a.threads > 1)
    attention_team(&a);
    free(a.ws);
    return RYZ_OK;
}

/* RoPE on one qkv row's q and k heads (consecutive) at position pos; its k and v into the caches. */
static void rope_write_row(float *r, long long pos, const float *cos, const float *sin, long long heads,
                           long long kv_heads, long long head_dim, long long max_context, float *k_cache, float *v_cache) {
    const long long qw = heads * head_dim, kw = kv_heads * head_dim, half = head_dim / 2;
    ryz_rope(r, heads + kv_heads, head_dim, cos + pos * half, sin + pos * half);
    for (long long j = 0; j < kv_heads; j++) {
        float *kc = k_cache + (j * max_context + pos) * head_dim, *vc = v_cache + (j * max_context + pos) * head_dim;
        const float *kr = r + qw + j * head_dim, *vr = r + qw + kw + j * head_dim;
        for (long long c = 0; c < head_dim; c++) kc[c] = kr[c], vc[c] = vr[c];
    }
}

/* The bounds of ryz_rope_attention beyond setup's. */
static int rope_fits(long long qkv_len, long long out_len, long long table_len, long long T, long long p0,
                     long long heads, long long kv_heads, long long head_dim) {
    const long long qw = heads * head_dim, row = qw + 2 * kv_heads * head_dim;
    long long tab;
    return strided_fits(qkv_len, T, row, row) && strided_fits(out_len, T, qw, qw) &&
           !__builtin_mul_overflow(p0 + T, head_dim / 2, &tab) && table_len >= tab;
}

int ryz_rope_attention(float *qkv, long long qkv_len, long long T, long long p0, const float *cos, const float *sin,
                       long long table_len, float *k_cache, long long k_len, float *v_cache, long long v_len,
                       long long max_context, long long heads, long long kv_heads, long long head_dim, float *out,
                       long long out_len, int threads) {
    if (!qkv || !cos || !sin || !k_cache || !v_cache || !out) return RYZ_EARG;
    if (head_dim % 2) return RYZ_EARG;  /* RoPE rotates halves */
    attn a = {0};
    int rc = setup(&a, k_len, v_len, max_context, T, p0, heads, kv_heads, head_dim, threads, 0);
    if (rc) return rc;
    if (!rope_fits(qkv_len, out_len, table_len, T, p0, heads, kv_heads, head_dim)) {
        free(a.ws);
        return RYZ_EWS;
    }
    const long long qw = heads * head_dim, row = qw + 2 * kv_heads * head_dim;
    a.q = qkv, a.q_stride = row, a.k = k_cache, a.v = v_cache, a.out = out, a.out_stride = qw;
    #pragma omp parallel num_threads(a.threads) if (a.threads > 1)
    {
        #pragma omp for schedule(static)
        for (long long t = 0; t < T; t++)
            rope_write_row(qkv + t * row, p0 + t, cos, sin, heads, kv_heads, head_dim, max_context, k_cache, v_cache);
        attention_team(&a);
    }
    free(a.ws);
    return RYZ_OK;
}

int ryz_decode_attn_plan(const ryz_decode_attn *d, long long pos, int threads, attn **plan) {
    *plan = 0;
    if (!d->qkv || !d->cos || !d->sin || !d->k_cache || !d->v_cache || !d->out) return RYZ_EARG;
    if (d->head_dim % 2) return RYZ_EARG;
    attn *a = calloc(1, sizeof *a);
    if (!a) return RYZ_ENOMEM;
    int rc = setup(a, d->k_len, d->v_len, d->max_context, 1, pos, d->heads, d->kv_heads, d->head_dim, threads, 1);
    if (!rc && !rope_fits(d->qkv_len, d->out_len, d->table_len, 1, pos, d->heads, d->kv_heads, d->head_dim))
        rc = RYZ_EWS;
    if (rc) {
        ryz_decode_attn_free(a);
        return rc;
    }
    a->q = d->qkv, a->q_stride = (d->heads + 2 * d->kv_heads) * d->head_dim;
    a->k = d->k_cache, a->v = d->v_cache, a->out = d->out, a->out_stride = d->heads * d->head_dim;
    *plan = a;
    return RYZ_OK;
}

void ryz_decode_attn_team(const attn *a, const ryz_decode_attn *d) {
    const int t = omp_get_thread_num();
    if (t == 0)
        rope_write_row(d->qkv, a->p0, d->cos, d->sin, d->heads, d->kv_heads, d->head_dim, d->max_context,
                       d->k_cache, d->v_cache);
    if (a->threads == 1) {
        /* thread 0 alone, no worksharing: the other threads go on to the next barrier */
        if (t == 0)
            for (int64_t j = 0; j < a->kvh; j++) rows_item(a, 0, j, a->ws);
        return;
    }
    #pragma omp barrier
    attention_team(a);
}

void ryz_decode_attn_free(attn *a) {
    if (a) free(a->ws);
    free(a);
}
