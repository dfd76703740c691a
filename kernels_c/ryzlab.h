/* ryzlab.h - public ABI of libryzlab.
 *
 * This file is read verbatim by cffi (ryzlab/_native.py), so it holds declarations only:
 * no macros, no includes, no conditionals; cffi takes the enums below as integer constants, so
 * Python never restates them.  Sizes are in elements unless named *_bytes.  Every pointer comes
 * with its length and the library checks it.  Every function that can fail returns 0 on success
 * or a negative RYZ_E* code (see ryz_error_string). */

enum {
    RYZ_OK = 0,
    RYZ_EARG = -1,        /* a size or pointer argument is invalid */
    RYZ_ECPU = -2,        /* the CPU (or the feature mask) lacks what the kernel needs */
    RYZ_EWS = -3,         /* a buffer is smaller than the sizes say it must be */
    RYZ_EVALUE = -4,      /* a weight outside {-1, 0, 1} */
    RYZ_EKERNEL = -5,     /* no kernel with that index */
    RYZ_ESCHEDULE = -6,   /* unknown schedule */
    RYZ_ENOMEM = -7,
    RYZ_ELIMIT = -8,      /* a size or thread count above the limits below */
    RYZ_EPACKED = -9,     /* packed weights whose byte count does not match their kernel and shape */
};

/* Limits every entry point enforces (RYZ_ELIMIT).  K: the exact result of a row is bounded by
 * 128 * K and every kernel's int32 accumulators must hold their partial sums exactly; the
 * tightest is mad_avx512vnni's top 2-bit field (64 * c * x, |.| <= 2^14 per product, 4 products
 * per lane per 256 weights), exact up to K = 2^23.  M and N: 2^31 - 1 keeps every byte count
 * well inside int64.  Threads: OpenMP would try to create any count it is given. */
enum {
    RYZ_MAX_K = 8388608,
    RYZ_MAX_MN = 2147483647,
    RYZ_MAX_THREADS = 1024,
};

/* Threading schedules of ryz_gemm.  Only RYZ_SCHED_BLOCKS is ours; the other two reproduce
 * the fix guide (priority 3) as measured "before" baselines. */
enum {
    RYZ_SCHED_BLOCKS = 0,     /* one contiguous block of row tiles per thread, no locks */
    RYZ_SCHED_DYNAMIC1 = 1,   /* guide's original: schedule(dynamic, 1) over row tiles */
    RYZ_SCHED_CRITICAL = 2,   /* guide's fix: dynamic grain M/(4T), private rows, critical write per row */
};

/* Epilogues of a decode step (ryz_decode_step.epilogue). */
enum {
    RYZ_EPI_STORE = 0,
    RYZ_EPI_ACCUMULATE = 1,
    RYZ_EPI_SQRELU_GATE = 2,
};

typedef struct ryz_kernel_desc {
    const char *name;          /* e.g. "mad_avx512vnni" */
    const char *isa;           /* "scalar", "avx2" or "avx512" */
    const char *features;      /* required CPU features, "+"-joined; "" for baseline x86-64 */
    const char *format;        /* weight format the kernel reads */
    const char *method;        /* "ref", "lut" or "mad" */
    double bits_per_weight;    /* packed storage, padding excluded */
    int rank;                  /* dispatch preference: higher wins */
    int row_tile;              /* rows are padded to a multiple of this */
    int k_align;               /* K is padded to a multiple of this */
} ryz_kernel_desc;

int ryz_kernel_count(void);
const ryz_kernel_desc *ryz_kernel(int index);
int ryz_kernel_supported(int index);

unsigned long long ryz_cpu_features(void);
const char *ryz_cpu_feature_name(int bit);
void ryz_set_feature_mask(unsigned long long mask);
const char *ryz_build_info(void);
const char *ryz_error_string(int code);
int ryz_omp_max_threads(void);

long long ryz_packed_bytes(int kernel, long long M, long long K);
int ryz_pack(int kernel, const signed char *w, long long w_bytes, long long M, long long K,
             unsigned char *out, long long out_bytes);
long long ryz_workspace_bytes(int kernel, long long M, long long N, long long K);

/* packed_bytes must equal ryz_packed_bytes(kernel, M, K) (RYZ_EPACKED otherwise); x holds
 * N x K int8 (x_bytes), y receives N x M int32 (y_bytes). */
int ryz_gemm(int kernel, const unsigned char *packed, long long packed_bytes, long long M, long long K,
             const signed char *x, long long x_bytes, long long N, int *y, long long y_bytes,
             unsigned char *ws, long long ws_bytes, int threads, int schedule);

/* The timing loop: iters products, cycling through nbufs copies of the packed weights, each of
 * packed_bytes. */
int ryz_bench(int kernel, const unsigned char *const *packed, int nbufs, long long packed_bytes,
              long long M, long long K, const signed char *x, long long x_bytes, long long N,
              int *y, long long y_bytes, unsigned char *ws, long long ws_bytes, int threads, int schedule,
              long long iters, double *seconds);

/* How the read probe reads memory (probe_bandwidth.c); buf must be 64-byte aligned. */
enum {
    RYZ_READ_PLAIN = 0,
    RYZ_READ_PREFETCH = 1,
    RYZ_READ_STREAMS = 2,
};
int ryz_read_bandwidth(const unsigned char *buf, long long bytes, int threads, int method,
                       long long passes, double *seconds, unsigned long long *checksum);

int ryz_probe_count(void);
const char *ryz_probe_name(int index);
const char *ryz_probe_unit(int index);
int ryz_probe_supported(int index);
int ryz_probe_run(int index, int threads, long long iters, double *seconds, double *ops);

long long ryz_head_packed_bytes(long long M, long long K);
long long ryz_head_row_bytes(long long K);
long long ryz_head_workspace_bytes(long long K);
int ryz_head_pack(const signed char *w, long long w_bytes, long long M, long long K,
                  unsigned char *out, long long out_bytes);
const char *ryz_head_isa(void);
int ryz_head_gemv(const unsigned char *packed, long long packed_bytes, long long M, long long K,
                  const signed char *x, long long x_bytes, int *y, long long y_bytes,
                  unsigned char *ws, long long ws_bytes, int threads);

/* The int4 LM head (head_i4.c): 4-bit weights q in [-8, 7] with one fp16 scale per group of
 * `group` (32 or 64) weights along K, times one token's int8 activations.  Per row,
 * y = sum over groups g, in order, of float32(scale_g * exact int32 dot_g), accumulated in
 * float32 (multiplies and adds, no FMA); the same on every tier.  Rows are packed in tiles of
 * RYZ_HEAD4_TILE, then a trailer with M, K and group that gemv and row check (RYZ_EPACKED).
 * ryz_head4_pack packs `rows` rows starting at row m0 (a multiple of the tile;
 * rows a multiple of it unless the call ends at M) from q (rows x K int8, q_len elements) and
 * scales (rows x ceil(K / group) fp16 bit patterns, scales_len elements) into out, the whole
 * packed head (out_bytes = ryz_head4_packed_bytes); RYZ_EVALUE for q outside [-8, 7] or a
 * non-finite scale.  ryz_head4_row writes row m dequantised (K floats, q * scale).
 * ryz_head4_gemv: x (K int8, x_len), y (M float32, y_len), ws (ryz_head4_workspace_bytes). */
enum {
    RYZ_HEAD4_TILE = 16,
    RYZ_HEAD4_TRAILER = 64,   /* bytes after the tiles: M, K, group */
};
long long ryz_head4_packed_bytes(long long M, long long K, int group);
long long ryz_head4_workspace_bytes(long long K, int group);
int ryz_head4_pack(const signed char *q, long long q_len, const unsigned short *scales, long long scales_len,
                   long long m0, long long rows, long long M, long long K, int group,
                   unsigned char *out, long long out_bytes);
int ryz_head4_row(const unsigned char *packed, long long packed_bytes, long long M, long long K, int group,
                  long long m, float *out, long long out_len);
const char *ryz_head4_isa(void);
int ryz_head4_gemv(const unsigned char *packed, long long packed_bytes, long long M, long long K, int group,
                   const signed char *x, long long x_len, float *y, long long y_len,
                   unsigned char *ws, long long ws_bytes, int threads);

int ryz_rmsnorm_quant(const float *x, const float *w, long long n, double eps, double min_absmax,
                      signed char *q, float *scale);
int ryz_dequant(const int *y, const float *row_scale, float x_scale, long long n, float *out, int accumulate);
int ryz_dequant_sqrelu_gate(const int *y, const float *row_scale, float x_scale, long long n, float *f);
int ryz_rope(float *x, long long rows, long long d, const float *cos, const float *sin);

/* A decode step's "norm -> int8 -> ternary GEMV -> epilogue" sequences, many in one parallel
 * region (decode_steps.c).  One entry: in (K floats) is RMS-normalised with weight norm and
 * quantised to xq (K int8, per-token absmax scale s); y = packed (M x K, for kernel) . xq;
 * then with d[i] = y[i] * (row_scales[i] / s) the epilogue writes
 *   0: out[i] = d[i]      1: out[i] += d[i]      2: out[i] = relu(d[i])^2 * d[M/2 + i], i < M/2
 * (2 is BitNet's squared-ReLU gate over a fused gate|up matrix).  ws: ryz_workspace_bytes
 * (kernel, M, 1, K) bytes.  Every buffer comes with its length (elements; bytes where named
 * so) and is checked before any thread starts.
 *
 * A step may first run a layer's attention (attn not NULL): RoPE on the q and k of qkv's row
 * at position pos, k and v written to the caches at pos, and causal attention of that one
 * query position into out, as ryz_rope_attention with T = 1 and p0 = pos, inside the same
 * region: a whole decode token is one call.
 *
 * seconds[0] += time in the GEMVs, seconds[1] += time in attention, seconds[2] += time in the
 * head (its norm through the logits), seconds[3] += the rest. */
typedef struct ryz_decode_attn {
    float *qkv;
    long long qkv_len;
    const float *cos, *sin;
    long long table_len;
    float *k_cache;
    long long k_len;
    float *v_cache;
    long long v_len;
    long long max_context, heads, kv_heads, head_dim;
    float *out;
    long long out_len;
} ryz_decode_attn;

/* The LM head at the end of a decode token (ryz_decode_steps' head; NULL: none).  act.in (K
 * floats) is RMS-normalised with act.norm and quantised to act.xq (per-token scale s) as a
 * step's input is; then the int8 head (kind RYZ_HEAD_INT8: packed as ryz_head_pack, row_scales its M
 * per-row weight scales) or the int4 head (RYZ_HEAD_INT4: packed as ryz_head4_pack with
 * group) gives float32 logits (M, logits_len):
 *   int8: logits[m] = (float)y[m] * (row_scales[m] / s)      int4: logits[m] = y[m] / s
 * with y as ryz_head_gemv / ryz_head4_gemv compute it (float32 operations, no FMA).  ws: the
 * head's workspace (ryz_head_workspace_bytes / ryz_head4_workspace_bytes). */
enum {
    RYZ_HEAD_INT8 = 0,
    RYZ_HEAD_INT4 = 1,
};

/* What a step or the head normalises (in, with weight norm, K floats each) and quantises (to
 * xq, K int8). */
typedef struct ryz_norm_quant_io {
    const float *in;
    long long in_len;
    const float *norm;
    long long norm_len;
    signed char *xq;
    long long xq_len;
} ryz_norm_quant_io;

typedef struct ryz_decode_head {
    ryz_norm_quant_io act;
    int kind;
    const unsigned char *packed;
    long long packed_bytes;
    long long M, K;
    int group;
    const float *row_scales;
    long long row_scales_len;
    unsigned char *ws;
    long long ws_bytes;
    float *logits;
    long long logits_len;
} ryz_decode_head;

typedef struct ryz_decode_step {
    ryz_norm_quant_io act;
    int kernel;
    const unsigned char *packed;
    long long packed_bytes;
    long long M, K;
    unsigned char *ws;
    long long ws_bytes;
    int *y;
    long long y_len;
    const float *row_scales;
    long long row_scales_len;
    float *out;
    long long out_len;
    int epilogue;
    const ryz_decode_attn *attn;
} ryz_decode_step;

int ryz_decode_steps(const ryz_decode_step *steps, int count, const ryz_decode_head *head, long long pos,
                     double eps, double min_absmax, int threads, double *seconds);

/* Causal grouped-query attention over one layer's float32 KV cache (attention.c), for decode
 * (T = 1) and prefill (T query positions p0 .. p0+T-1, each attending to positions [0, its
 * own]).  q: T rows of heads x head_dim floats, row stride q_stride (q_len floats in all);
 * k_cache, v_cache: (kv_heads, max_context, head_dim) floats (k_len, v_len); query head h reads
 * KV head h / (heads / kv_heads); out: T rows of heads x head_dim, stride out_stride.  Scores
 * q.k / sqrt(head_dim), softmax in float32 with the max subtracted, weighted sum of v; parallel
 * over (position, KV head) or, with few of those, over KV heads x position chunks.  Results do
 * not depend on threads (<= RYZ_MAX_THREADS).  out must not overlap the inputs.  The code
 * path follows the CPU (ryz_attention_isa: "avx512" or "sse2"); the two round differently. */
const char *ryz_attention_isa(void);
int ryz_attention(const float *q, long long q_len, long long q_stride, const float *k_cache, long long k_len,
                  const float *v_cache, long long v_len, long long max_context, long long T, long long p0,
                  long long heads, long long kv_heads, long long head_dim, float *out, long long out_len,
                  long long out_stride, int threads);

/* A layer's step from its q|k|v projections to the attention output, in one parallel region:
 * qkv holds T rows of [q (heads x head_dim) | k (kv_heads x head_dim) | v (same)] floats
 * (qkv_len); row t is at position p0 + t.  RoPE (ryz_rope; cos and sin are (max_context x
 * head_dim/2) tables of table_len floats each) is applied in place to q and k; k and v are
 * written to the caches at their positions; then ryz_attention into out (T x heads x head_dim,
 * contiguous, out_len floats).  head_dim must be even. */
int ryz_rope_attention(float *qkv, long long qkv_len, long long T, long long p0, const float *cos, const float *sin,
                       long long table_len, float *k_cache, long long k_len, float *v_cache, long long v_len,
                       long long max_context, long long heads, long long kv_heads, long long head_dim, float *out,
                       long long out_len, int threads);

/* decode_ops.c's steps over rows tokens (rows_ops.c), each row exactly as a decode step
 * computes it, parallel over rows.  ryz_rmsnorm_quant_rows: x (rows x n floats, x_len) with
 * norm weight w (n) -> q (rows x n int8, q_len) and scales (rows).  ryz_dequant_rows: y (rows
 * x M int32) with row_scale (M) and the rows' x_scales (rows) -> out by epilogue (RYZ_EPI_*:
 * rows x M floats stored or accumulated, or rows x M/2 for the squared-ReLU gate). */
int ryz_rmsnorm_quant_rows(const float *x, long long x_len, const float *w, long long w_len, long long rows,
                           long long n, double eps, double min_absmax, signed char *q, long long q_len,
                           float *scales, long long scales_len, int threads);
int ryz_dequant_rows(const int *y, long long y_len, const float *row_scale, long long row_scale_len,
                     const float *x_scales, long long x_scales_len, long long rows, long long M, float *out,
                     long long out_len, int epilogue, int threads);
