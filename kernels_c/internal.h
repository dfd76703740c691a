/* internal.h - what kernels, packers and the driver share.  Not part of the ABI. */
#ifndef RYZ_INTERNAL_H
#define RYZ_INTERNAL_H

#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <xmmintrin.h>

#include "ryzlab.h"


/* 1 on AMD CPUs, where some instructions cost differently (mad_t5_avx512vnni.c), else 0. */
int ryz_cpu_is_amd(void);
/* A software-prefetch distance in bytes (0: the int8 head skips its prefetches, the int4
 * tiles prefetch the lines they read): the environment variable `var` when it
 * holds a whole number from 0 to 1 MiB, else `amd` on AMD and `other` elsewhere (cpu.c).
 * Called once per call (a plan), never per chunk of rows: a getenv there made a decode
 * token's layers 0.88-0.89x as fast on one Zen 4 core. */
int64_t ryz_prefetch_choice(const char *var, int64_t amd, int64_t other);
/* A two-way choice (kernels.def's variants): 1 when the variable `var` is `one`, 0 when it is
 * `zero`, else `dflt` (cpu.c). */
int ryz_env_choice(const char *var, const char *one, const char *zero, int dflt);

/* CPU feature bits (ryz_cpu_features).  Names in cpu.c. */
enum {
    RYZ_F_AVX2 = 1u << 0,
    RYZ_F_FMA = 1u << 1,
    RYZ_F_AVX512F = 1u << 2,
    RYZ_F_AVX512BW = 1u << 3,
    RYZ_F_AVX512VL = 1u << 4,
    RYZ_F_AVX512DQ = 1u << 5,
    RYZ_F_AVX512VNNI = 1u << 6,
    RYZ_F_AVX512VBMI = 1u << 7,
};
#define RYZ_F_AVX512_BASE (RYZ_F_AVX512F | RYZ_F_AVX512BW | RYZ_F_AVX512VL | RYZ_F_AVX512DQ)


/* One call of a kernel.  x is the caller's N x K int8 activations; ws holds what the
 * kernel's prep made of them, token n at ws + n * ws_stride. */
typedef struct ryz_args {
    const uint8_t *w;
    int64_t M, K, Mp, Kp, N;
    const int8_t *x;
    uint8_t *ws;
    int64_t ws_stride;
    int variant;  /* the kernel's code path, chosen once per call (kernels.def, "variant") */
    /* The LUT kernels read k in [k0, k1) only (multiples of RYZ_KC, or Kp) and add their
     * results to y when `accumulate` is set (ryz_put_rows): the blocked LUT path
     * (gemm_lut_blocked.c) runs them one K block at a time.  Every other caller passes all of
     * K (0, Kp) and 0, and the other kernels always read all of K. */
    int64_t k0, k1;
    int accumulate;
} ryz_args;

/* Prepare tokens [n0, n1) of the activations into the workspace. */
typedef void (*ryz_prep_fn)(const ryz_args *a, int64_t n0, int64_t n1);

/* Compute row tiles [t0, t1) for all N tokens: y[n * ldy + (m - m_base)] for every real row m
 * (m < M) of those tiles.  Padding rows are never written. */
typedef void (*ryz_run_fn)(const ryz_args *a, int64_t t0, int64_t t1,
                           int32_t *y, int64_t ldy, int64_t m_base);

/* Software prefetch of the weight stream, RYZ_PREFETCH_BYTES ahead of the block being read,
 * into L2 (T1).  Decode reads every weight once; without it one thread keeps too few DRAM
 * misses in flight: mad_avx512vnni streamed at 68-80 % of the read probe without it and
 * 76-91 % with it, the LUT kernels gained ~2x (measurements in kernels_c/README.md).  Both are build-time knobs for experiments:
 * make EXTRA_CFLAGS="-DRYZ_PREFETCH_BYTES=8192 -DRYZ_PREFETCH_HINT=_MM_HINT_T0" (0 = off). */
#ifndef RYZ_PREFETCH_BYTES
#define RYZ_PREFETCH_BYTES 16384
#endif
#ifndef RYZ_PREFETCH_HINT
#define RYZ_PREFETCH_HINT _MM_HINT_T1
#endif
/* __builtin_prefetch, not _mm_prefetch: GCC 12 deleted every _mm_prefetch of
 * head_i4_avx512vnni.c at -O1 and above (its local-pure-const pass marks the not-yet-inlined
 * intrinsic const, so the calls are dead), and that head then streamed DRAM at two thirds of
 * the read probe (kernels_c/README.md, "The int4 LM head").  The arguments are _mm_prefetch's:
 * bit 2 of the hint is the write flag, bits 0-1 the locality. */
static inline void ryz_prefetch_ahead(const void *p, int64_t bytes) {
    __builtin_prefetch((const char *)p + bytes, (RYZ_PREFETCH_HINT >> 2) & 1, RYZ_PREFETCH_HINT & 3);
}
static inline void ryz_prefetch(const void *p) {
    if (RYZ_PREFETCH_BYTES > 0) ryz_prefetch_ahead(p, RYZ_PREFETCH_BYTES);
}

/* Work split for streaming loops (decode GEMVs, LM heads): n items in T contiguous blocks, one
 * per thread, each with a counter on its own cache line.  A thread claims chunks of its own
 * block first (one sequential stream, as a static split gives), then what is left of the
 * others': on a shared host one vCPU is often slower than the other, and a static split
 * makes the faster one wait (1.1-2.3 ms of a 2B-4T decode token on the EPYC VM).  Each
 * thread sets its own counter (ryz_claim_start) before a barrier; after it,
 *   for (int v = 0; ryz_claim(c, t, T, n, chunk, &v, &a, &b);) work on [a, b);
 * Which thread computes an item never changes its result. */
typedef struct ryz_counter {
    int64_t next;
    char pad[64 - sizeof(int64_t)];
} ryz_counter;

static inline ryz_counter *ryz_counters_new(int threads) {
    return (ryz_counter *)aligned_alloc(64, (size_t)threads * sizeof(ryz_counter));
}

static inline void ryz_claim_start(ryz_counter *c, int t, int T, int64_t n) { c[t].next = n * t / T; }

/* Packed bytes a thread claims at a time (about 8 us of DRAM time at 30 GB/s): on the EPYC VM
 * 256 KiB ran the decode chains 1.01x (2-bit) and 1.01-1.03x (1.6-bit) as fast as 64 KiB, and
 * 16 KiB 0.90x (kernels_c/README.md, "Threading"). */
#ifndef RYZ_CHUNK_BYTES
#define RYZ_CHUNK_BYTES 262144
#endif

/* Items (row tiles) of item_bytes each per claimed chunk: at least one. */
static inline int64_t ryz_chunk_items(int64_t item_bytes) {
    return item_bytes < RYZ_CHUNK_BYTES ? RYZ_CHUNK_BYTES / item_bytes : 1;
}

static inline int ryz_claim(ryz_counter *c, int t, int T, int64_t n, int64_t chunk, int *v, int64_t *a,
                            int64_t *b) {
    for (; *v < T; ++*v) {
        const int w = (t + *v) % T;
        const int64_t end = n * (w + 1) / T, s = __atomic_fetch_add(&c[w].next, chunk, __ATOMIC_RELAXED);
        if (s < end) {
            *a = s, *b = s + chunk < end ? s + chunk : end;
            return 1;
        }
    }
    return 0;
}

/* Monotonic wall time in seconds: every timing in the library (bench loop, probes, decode steps). */
static inline double ryz_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int64_t ryz_round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

/* Four int8 as one int32 (a vpbroadcastd operand), without an unaligned-access cast. */
static inline int32_t ryz_load32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Activation-side preparations (prep.c) and their per-token workspace sizes. */
void ryz_prep_lut_tables(const ryz_args *a, int64_t n0, int64_t n1);
void ryz_prep_lut_tables_avx512(const ryz_args *a, int64_t n0, int64_t n1);
void ryz_prep_mad_acts(const ryz_args *a, int64_t n0, int64_t n1);
int64_t ryz_ws_stride_none(int64_t Kp);
int64_t ryz_ws_stride_lut_tables(int64_t Kp);
int64_t ryz_ws_stride_mad_acts(int64_t Kp);
#define ryz_prep_none NULL
#define ryz_ws_stride_lut_tables_avx512 ryz_ws_stride_lut_tables

/* LUT tables of one token: Kp/2 pair tables of 16 entries, entry c0 | c1 << 2 holding
 * s = (c0-1)*x[2g] + (c1-1)*x[2g+1] in [-256, 256], split into an unsigned low byte plane
 * and a signed high byte plane (s = lo + 256 * hi, hi in {-1, 0, 1}): exact for every int8. */
static inline const uint8_t *ryz_lut_lo(const ryz_args *a, int64_t n) { return a->ws + n * a->ws_stride; }
static inline const uint8_t *ryz_lut_hi(const ryz_args *a, int64_t n) { return a->ws + n * a->ws_stride + 8 * a->Kp; }

/* MAD activations of one token: Kp int8 (zero padded, 64-byte aligned) then int32 sum(x). */
static inline const int8_t *ryz_mad_x(const ryz_args *a, int64_t n) { return (const int8_t *)(a->ws + n * a->ws_stride); }
static inline int32_t ryz_mad_xsum(const ryz_args *a, int64_t n) {
    return *(const int32_t *)(a->ws + n * a->ws_stride + a->Kp);
}

/* The blocked GEMM for N > 1 (gemm_blocked.c, BLIS structure; kernels_c/README.md).
 *
 * Decoded weights: panels of mr rows; panel p holds, for each group q of 4 consecutive k,
 * mr x 4 unsigned codes c = w + 1: byte (q * mr + r) * 4 + i is row r, k = 4q + i.  Panels
 * are RYZ_KC * mr bytes apart whatever the block's kc.
 * Packed activations: tiles of nr tokens; tile t holds, for each group q, nr x 4 int8:
 * byte (q * nr + j) * 4 + i is token j, k = 4q + i (zero past K and past N).
 *
 * A microkernel computes one mr x nr tile over kc4 groups: acc[j][r] = sum(c * x) and
 *   first block (xsum != NULL): y[j * ldy + r] = acc - xsum[j]   (c = w + 1)
 *   later blocks:               y[j * ldy + r] += acc
 * for r < mv, j < nv, in arithmetic modulo 2^32 (exact: the true result fits int32). */
#ifndef RYZ_KC
#define RYZ_KC 1024   /* k per block: a multiple of every format's 256-weight block */
#endif

typedef void (*ryz_ukr_fn)(int64_t kc4, const uint8_t *w, const int8_t *x, int32_t *y, int64_t ldy,
                           int mv, int nv, const int32_t *xsum);

/* Decode rows [m0, m0 + panels * mr) x k [k0, k0 + kc) (k0 a multiple of RYZ_KC, kc a
 * multiple of 4) of the packed weights into panels at out.  Rows >= M and k >= K may hold
 * any code: those rows are never stored and those activations are 0.  A decoder may write
 * up to the next multiple of 256 in k (still inside the panel). */
typedef void (*ryz_decode_fn)(const ryz_args *a, int format, int64_t m0, int64_t panels, int mr,
                              int64_t k0, int64_t kc, uint8_t *out);

/* A vectorised decoder of one format in a microkernel's ISA, and the N from which ryz_gemm
 * takes the blocked path for the mad kernels of that format (measured: the row tiles win below). */
typedef struct ryz_fast_decoder {
    ryz_decode_fn run;   /* NULL: none (the generic decoder serves forced blocked calls only) */
    int min_n;
} ryz_fast_decoder;

typedef struct ryz_ukr {
    const char *name;
    int mr, nr;          /* tile: rows x tokens */
    int mc;              /* rows per thread group and block: mc x RYZ_KC codes stay in L2 */
    int nc;              /* tokens per activation panel (multiple of nr) */
    ryz_ukr_fn run;
    ryz_fast_decoder k256x4, t5_k320x4;   /* of i2_k256x4 and t5_k320x4 */
} ryz_ukr;

extern const ryz_ukr ryz_ukr_scalar, ryz_ukr_mad_avx2, ryz_ukr_mad_avx512vnni;

/* The generic decoder: every format, one code at a time (gemm_blocked.c). */
void ryz_decode_generic(const ryz_args *a, int format, int64_t m0, int64_t panels, int mr,
                        int64_t k0, int64_t kc, uint8_t *out);

/* Attention primitives, one set per ISA (attention.c: the SSE2 fallback and the dispatch;
 * attention_avx512.c).  Query head i of a group is q + i d; its scores s + i ss; its output
 * o + i d.  Positions [p0, p1) of a KV head's rows K + p d and V + p d. */
typedef struct ryz_attn_ops {
    const char *isa;
    /* s_i[p] = (q_i . K_p) * scale */
    void (*scores)(const float *q, int64_t g, const float *K, int64_t d, int64_t p0, int64_t p1, float scale,
                   float *s, int64_t ss);
    /* s[0 .. n) <- softmax(s) */
    void (*softmax)(float *s, int64_t n);
    /* o_i[c] += sum over p of s_i[p] V[p][c], in increasing p, for c in [c0, c1) */
    void (*wsum)(float *o, int64_t g, const float *s, int64_t ss, const float *V, int64_t d, int64_t p0,
                 int64_t p1, int64_t c0, int64_t c1);
} ryz_attn_ops;

extern const ryz_attn_ops ryz_attn_avx512;

/* A decode chain's attention step (ryz_decode_step.attn, attention.c): checked and planned
 * before the chain's region (ryz_decode_attn_plan: bounds, work split, workspace), run by
 * every thread of the region (ryz_decode_attn_team, which returns once the output is
 * complete for thread 0; the chain's next barrier orders it for the others). */
typedef struct attn ryz_attn_plan;
int ryz_decode_attn_plan(const ryz_decode_attn *d, long long pos, int threads, ryz_attn_plan **plan);
void ryz_decode_attn_team(const ryz_attn_plan *plan, const ryz_decode_attn *d);
void ryz_decode_attn_free(ryz_attn_plan *plan);

/* An LM head (head_i8.c, head_i4.c): planned and checked before any thread starts
 * (ryz_head_plan_int8 / _int4 in a decode token's region, the gemv entry points on their
 * own), then one thread preps the quantised activations (prep) and any thread computes tiles
 * [t0, t1) (run): the logits when logits is given, else the head's raw output into y. */
typedef struct ryz_head_plan {
    int64_t tiles, tile_bytes;
    int64_t chunk;     /* tiles per claimed chunk: 64 (RYZ_CHUNK_BYTES' 3-6 tiles cost the int4
                        * head 2 % in tools/ab_libs.py --part head, EPYC VM, 2026-12-04) */
    void (*prep)(const struct ryz_head_plan *p, const signed char *xq);
    void (*run)(const struct ryz_head_plan *p, int64_t t0, int64_t t1, float x_scale, float *logits);
    const uint8_t *packed;
    int64_t M, K, Kp;
    int group;
    int64_t prefetch;  /* bytes ahead that the AVX-512 rows or tiles prefetch, 0 = none (plans) */
    const float *row_scales;
    void *y;           /* raw output: int32 (int8 head) or float32 (int4 head) */
    uint8_t *scratch;  /* 64-byte aligned, inside the caller's workspace */
} ryz_head_plan;
int ryz_head_plan_int8(const ryz_decode_head *h, ryz_head_plan *p);
int ryz_head_plan_int4(const ryz_decode_head *h, ryz_head_plan *p);
/* The raw output of a prepped plan, tiles claimed (ryz_claim) by `threads` threads (driver.c). */
int ryz_head_run_parallel(const ryz_head_plan *p, int threads);

/* ryz_rmsnorm_quant's partial sums of x^2 (decode_ops.c), added in this one fixed order by
 * both versions. */
#define RYZ_NORM_LANES 32
static inline double ryz_norm_lanes_sum(const double *ss) {
    double t[8];
    for (int j = 0; j < 8; j++) t[j] = (ss[j] + ss[8 + j]) + (ss[16 + j] + ss[24 + j]);
    return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

/* relu(g)^2 * u of n fused gate/up rows, gate and up rows given apart (decode_ops.c). */
void ryz_sqrelu_gate_rows(const int *yg, const int *yu, const float *sg, const float *su, float x_scale, int64_t n,
                          float *f);

/* ryz_rmsnorm_quant for CPUs with RYZ_F_AVX512_BASE, bit-identical to the baseline one, which
 * dispatches to it (rmsnorm_quant_avx512.c); arguments already checked. */
int ryz_rmsnorm_quant_avx512(const float *x, const float *w, long long n, double eps, double min_absmax,
                             signed char *q, float *scale);

/* Kernel entry points and their code-path choosers, one per kernels.def line. */
#define RYZ_KERNEL(name, isa, method, feat, fmt, prep, rank, ukr, variant) \
    void ryz_run_##name(const ryz_args *a, int64_t t0, int64_t t1, int32_t *y, int64_t ldy, int64_t m_base); \
    int ryz_variant_##variant(void);
#include "kernels.def"
#undef RYZ_KERNEL

/* The entry point of a kernel with `paths` (2 or 4) code paths: its static `run(a, t0, t1, y,
 * ldy, m_base, const int path)`, specialised for each path and picked by the call's variant. */
#define RYZ_RUN_BY_VARIANT(name, paths)                                                           \
    void ryz_run_##name(const ryz_args *a, int64_t t0, int64_t t1, int32_t *y, int64_t ldy,       \
                        int64_t m_base) {                                                          \
        if ((paths) > 2 && a->variant == 3)                                                        \
            run(a, t0, t1, y, ldy, m_base, 3);                                                     \
        else if ((paths) > 2 && a->variant == 2)                                                   \
            run(a, t0, t1, y, ldy, m_base, 2);                                                     \
        else if (a->variant == 1)                                                                  \
            run(a, t0, t1, y, ldy, m_base, 1);                                                     \
        else                                                                                       \
            run(a, t0, t1, y, ldy, m_base, 0);                                                     \
    }

/* Packers, one per formats.def line: dense int8 M x K (values already checked) -> out. */
#define RYZ_FORMAT(name, bits, row_tile, k_align) \
    void ryz_pack_##name(const int8_t *w, int64_t M, int64_t K, int64_t Mp, int64_t Kp, uint8_t *out);
#include "formats.def"
#undef RYZ_FORMAT

/* The t5_k320x4 byte (formats.def): q = s << 7 | h << 6 | v, v = 7 b + r, holds the codes
 * c_0..c_4 of its five planes as group A = 9 c_0 + 3 c_1 + c_2 (0..26) and group B = 3 c_3 +
 * c_4 (0..8): b = B, and a = 7 h + r is A when A <= 13, else 26 - A with s = 1 (26 - A is A
 * with every code c turned into 2 - c, its weights negated).  So B depends on the low 6 bits
 * alone (one 64-entry lookup) and A on the low 7 (kernels_c/README.md, "Group B on six
 * bits").  The packer (pack.c) writes it, every kernel reads it through these definitions.
 * v = 63 is never packed; every kernel reads it by the same formulas (b = 9, r = 0), so a
 * tampered buffer gives one answer. */
#define RYZ_T5_B(u) ((u) % 64 / 7)                      /* group B of the low 7 bits u */
#define RYZ_T5_A(u) ((u) % 64 % 7 + 7 * ((u) / 64 % 2)) /* group A (up to sign) of u */
#define RYZ_T5_FIELDS_A(a) ((a) / 9 | (a) / 3 % 3 << 2 | (a) % 3 << 4) /* c_0 | c_1 << 2 | c_2 << 4 */
#define RYZ_T5_FIELDS_B(b) ((b) / 3 | (b) % 3 << 2)                    /* c_3 | c_4 << 2 */
#define RYZ_T5_NEG_A 0x2a   /* RYZ_T5_NEG_A - fields A: every code c -> 2 - c (no borrows) */

/* The fields of groups A and B (before the sign) for each value of the low 7 bits (pack.c);
 * ryz_t5_fields_b[u] = ryz_t5_fields_b[u % 64]. */
extern const uint8_t ryz_t5_fields_a[128], ryz_t5_fields_b[128];

static inline void ryz_t5_codes(unsigned q, int c[5]) {
    const unsigned u = q & 127, fa = q & 128 ? RYZ_T5_NEG_A - ryz_t5_fields_a[u] : ryz_t5_fields_a[u];
    const unsigned fb = ryz_t5_fields_b[u];
    c[0] = (int)(fa & 3), c[1] = (int)(fa >> 2 & 3), c[2] = (int)(fa >> 4), c[3] = (int)(fb & 3), c[4] = (int)(fb >> 2);
}

/* f(u), f(u + 1), ...: table initialisers from a formula (the t5 lookup tables). */
#define RYZ_REP4(f, u) f(u), f((u) + 1), f((u) + 2), f((u) + 3)
#define RYZ_REP16(f, u) RYZ_REP4(f, u), RYZ_REP4(f, (u) + 4), RYZ_REP4(f, (u) + 8), RYZ_REP4(f, (u) + 12)
#define RYZ_REP64(f, u) RYZ_REP16(f, u), RYZ_REP16(f, (u) + 16), RYZ_REP16(f, (u) + 32), RYZ_REP16(f, (u) + 48)

/* Copy a tile's results (rows m0 .. m0+rows-1, clipped to M) for token n to y.  A whole tile
 * is a copy of the kernel's constant size, which the compiler inlines: the clipped loop alone
 * became a call to memcpy for every tile and token, with vzeroupper and the accumulators
 * spilled around it (kernels_c/README.md, "Memory layout and prefetch"). */
static inline void ryz_store_rows(const int32_t *tile, int64_t rows, int64_t m0, int64_t M,
                                  int32_t *y, int64_t ldy, int64_t n, int64_t m_base) {
    int32_t *dst = y + n * ldy + (m0 - m_base);
    if (M - m0 >= rows) {
        memcpy(dst, tile, (size_t)rows * sizeof *tile);
        return;
    }
    for (int64_t r = 0; r < M - m0; r++) dst[r] = tile[r];
}

/* ryz_store_rows, or add the tile to y when the call accumulates (a LUT kernel's later K
 * blocks).  Modulo 2^32, as the microkernels add: every partial sum and the result fit int32. */
static inline void ryz_put_rows(const ryz_args *a, const int32_t *tile, int64_t rows, int64_t m0, int32_t *y,
                                int64_t ldy, int64_t n, int64_t m_base) {
    if (!a->accumulate) {
        ryz_store_rows(tile, rows, m0, a->M, y, ldy, n, m_base);
        return;
    }
    const int64_t valid = a->M - m0 < rows ? a->M - m0 : rows;
    for (int64_t r = 0; r < valid; r++) {
        int32_t *o = &y[n * ldy + (m0 + r - m_base)];
        *o = (int32_t)((uint32_t)*o + (uint32_t)tile[r]);
    }
}

#endif
