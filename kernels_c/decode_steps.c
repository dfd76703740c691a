/* decode_steps.c - a decode token's chain of "(attention ->) RMSNorm -> int8 -> ternary GEMV
 * -> epilogue" steps in one OpenMP parallel region.
 *
 * Called one GEMV at a time from Python, a BitNet layer costs four thread wake-ups, four
 * fork/joins and a dozen interpreter round trips, and DRAM idles through each of them.  Here
 * the threads stay in one region for a whole token (the model passes every layer's qkv,
 * attention, o, gate|up and down): thread 0 normalises, quantises and preps the activations;
 * every thread streams its contiguous block of row tiles in chunks of RYZ_CHUNK_BYTES, then
 * takes over what is left of the others' (ryz_claim, internal.h), and dequantises each
 * chunk's rows (a gate|up step is claimed in (gate tile, up tile) pairs, so each thread gates
 * the rows it computed); and before each barrier a thread prefetches the head of its block of
 * the next matrix, so that DRAM keeps working while thread 0 runs the next norm.  A layer's
 * attention runs in the same region (attention.c: thread 0 alone at short contexts, every
 * thread beyond).
 *
 * The LM head, when given, ends the same region: thread 0 normalises and preps, every thread
 * claims head rows and writes their float logits.
 *
 * Timing, by thread 0: the GEMV time (seconds[0]) is barrier to barrier, the row-wise
 * dequantisation included; attention (seconds[1]) from RoPE to the attention output; the head
 * (seconds[2]) from its norm to the region's end; the rest (seconds[3]) is norms, gates,
 * barriers and the region's start. */
#include <omp.h>
#include <stdlib.h>

#include "registry.h"

/* A 2B-4T token is 30 x 4 steps; far more only means a caller's mistake. */
#define MAX_STEPS 65536

/* The norm's input and weight; xq is checked by the GEMV's or the head's own checks. */
static int check_act(const ryz_norm_quant_io *io, long long K) {
    if (!io->in || !io->norm) return RYZ_EARG;
    return io->in_len < K || io->norm_len < K ? RYZ_EWS : RYZ_OK;
}

static int check_step(const ryz_decode_step *s, int threads, const ryz_kernel_entry **k, ryz_args *a) {
    if (!s->row_scales || !s->out) return RYZ_EARG;
    if (s->epilogue < RYZ_EPI_STORE || s->epilogue > RYZ_EPI_SQRELU_GATE ||
        (s->epilogue == RYZ_EPI_SQRELU_GATE && s->M % 2))
        return RYZ_EARG;
    int rc = check_act(&s->act, s->K);
    if (rc) return rc;
    rc = ryz_setup_args(s->kernel, s->packed, s->packed_bytes, s->M, s->K, s->act.xq, s->act.xq_len, 1, s->y,
                            s->y_len * (long long)sizeof(int), s->ws, s->ws_bytes, threads, RYZ_SCHED_BLOCKS, k, a);
    if (rc) return rc;
    const long long out_need = s->epilogue == RYZ_EPI_SQRELU_GATE ? s->M / 2 : s->M;
    return s->row_scales_len < s->M || s->out_len < out_need ? RYZ_EWS : RYZ_OK;
}

/* Per step: what the region needs, all of it checked before the region starts. */
typedef struct plan {
    const ryz_kernel_entry *k;
    ryz_args a;
    ryz_attn_plan *attn;
    int64_t rows;   /* rows per tile */
    int64_t half;   /* gate|up with whole tiles per half: its tile count, items are tile pairs; else 0 */
    int64_t items;  /* claimed units: tiles, or (gate tile, up tile) pairs */
    int64_t chunk;  /* items per claimed chunk */
    float x_scale;
} plan;

/* The work split of a planned step.  A gate|up step whose halves are whole tiles is claimed in
 * pairs (gate tile i with up tile i): the thread that computed both rows gates them, in
 * parallel, instead of thread 0 gating all of them after the barrier (30 x 6912 rows of a
 * 2B-4T token, ~0.16 ms on the EPYC VM with the other thread waiting). */
static void split_step(const ryz_decode_step *s, plan *p) {
    const int64_t tiles = ryz_row_tiles(p->k, &p->a), bytes = ryz_tile_bytes(p->k, &p->a);
    p->rows = p->a.Mp / tiles;
    p->half = s->epilogue == RYZ_EPI_SQRELU_GATE && p->a.Mp == s->M && tiles % 2 == 0 ? tiles / 2 : 0;
    p->items = p->half ? p->half : tiles;
    p->chunk = ryz_chunk_items(p->half ? 2 * bytes : bytes);
}

/* The head of thread t's own block of a step (both halves of a paired one): what it claims
 * first after the next barrier. */
static void prefetch_own_block(const plan *p, int t, int T) {
    const int64_t b0 = p->items * t / T, b1 = p->items * (t + 1) / T;
    ryz_prefetch_block_head(p->k, &p->a, b0, b1);
    if (p->half) ryz_prefetch_block_head(p->k, &p->a, b0 + p->half, b1 + p->half);
}

static void free_plans(plan *p, int count) {
    for (int i = 0; i < count; i++) ryz_decode_attn_free(p[i].attn);
    free(p);
}

/* Items [t0, t1) of step s and their epilogue: row-wise dequantisation, or the gate of a
 * paired gate|up step (an unpaired gate is left to thread 0: its halves may come from
 * different threads). */
static void run_tiles(const ryz_decode_step *s, const plan *p, int64_t t0, int64_t t1) {
    p->k->run(&p->a, t0, t1, s->y, s->M, 0);
    const int64_t m0 = t0 * p->rows;
    if (p->half) {
        p->k->run(&p->a, t0 + p->half, t1 + p->half, s->y, s->M, 0);
        const int64_t h = s->M / 2;
        ryz_sqrelu_gate_rows(s->y + m0, s->y + h + m0, s->row_scales + m0, s->row_scales + h + m0, p->x_scale,
                             (t1 - t0) * p->rows, s->out + m0);
    } else if (s->epilogue != RYZ_EPI_SQRELU_GATE) {
        const int64_t m1 = t1 * p->rows < s->M ? t1 * p->rows : s->M;
        if (m1 > m0) ryz_dequant(s->y + m0, s->row_scales + m0, p->x_scale, m1 - m0, s->out + m0, s->epilogue);
    }
}

static void run_chain(const ryz_decode_step *steps, plan *p, int count, const ryz_decode_head *head,
                      const ryz_head_plan *hp, double eps, double min_absmax, int threads, ryz_counter *ctr,
                      double *gemv, double *attention, double *head_start) {
    float head_scale = 0.0f;
    #pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        for (int i = 0; i < count; i++) {
            const ryz_decode_step *s = &steps[i];
            plan *pi = &p[i];
            double t0 = 0.0;
            if (i == 0) prefetch_own_block(pi, t, T);
            ryz_claim_start(ctr, t, T, pi->items);  /* nobody reads it before the barrier below */
            if (pi->attn) {
                const double a0 = t == 0 ? ryz_now_seconds() : 0.0;
                ryz_decode_attn_team(pi->attn, s->attn);
                if (t == 0) *attention += ryz_now_seconds() - a0;
            }
            if (t == 0) {
                ryz_rmsnorm_quant(s->act.in, s->act.norm, s->K, eps, min_absmax, s->act.xq, &pi->x_scale);
                if (pi->k->prep) pi->k->prep(&pi->a, 0, 1);
            }
            #pragma omp barrier
            if (t == 0) t0 = ryz_now_seconds();
            int64_t a0, a1;
            for (int v = 0; ryz_claim(ctr, t, T, pi->items, pi->chunk, &v, &a0, &a1);) run_tiles(s, pi, a0, a1);
            if (i + 1 < count) prefetch_own_block(&p[i + 1], t, T);
            #pragma omp barrier
            if (t == 0) {
                *gemv += ryz_now_seconds() - t0;
                /* the next step's norm (or attention) reads out: same thread, or after its barrier */
                if (s->epilogue == RYZ_EPI_SQRELU_GATE && !pi->half)
                    ryz_dequant_sqrelu_gate(s->y, s->row_scales, pi->x_scale, s->M / 2, s->out);
            }
        }
        if (head) {
            /* the head: its rows claimed like a step's, each thread scaling the logits it computed */
            ryz_claim_start(ctr, t, T, hp->tiles);
            if (t == 0) {
                *head_start = ryz_now_seconds();
                const ryz_norm_quant_io *io = &head->act;
                ryz_rmsnorm_quant(io->in, io->norm, head->K, eps, min_absmax, io->xq, &head_scale);
                hp->prep(hp, io->xq);
            }
            #pragma omp barrier
            int64_t a0, a1;
            for (int v = 0; ryz_claim(ctr, t, T, hp->tiles, hp->chunk, &v, &a0, &a1);)
                hp->run(hp, a0, a1, head_scale, head->logits);
        }
    }
}

static int plan_head(const ryz_decode_head *h, ryz_head_plan *hp) {
    int rc = check_act(&h->act, h->K);
    if (rc) return rc;
    if (h->kind == RYZ_HEAD_INT8) return ryz_head_plan_int8(h, hp);
    if (h->kind == RYZ_HEAD_INT4) return ryz_head_plan_int4(h, hp);
    return RYZ_EARG;
}

int ryz_decode_steps(const ryz_decode_step *steps, int count, const ryz_decode_head *head, long long pos,
                     double eps, double min_absmax, int threads, double *seconds) {
    if (!steps || count < 1 || count > MAX_STEPS || threads < 1 || !seconds) return RYZ_EARG;
    if (threads > RYZ_MAX_THREADS) return RYZ_ELIMIT;
    ryz_head_plan hp = {0};
    if (head) {
        int rc = plan_head(head, &hp);
        if (rc) return rc;
    }
    plan *p = calloc((size_t)count, sizeof *p);
    if (!p) return RYZ_ENOMEM;
    for (int i = 0; i < count; i++) {
        int rc = check_step(&steps[i], threads, &p[i].k, &p[i].a);
        if (!rc) split_step(&steps[i], &p[i]);
        if (!rc && steps[i].attn) rc = ryz_decode_attn_plan(steps[i].attn, pos, threads, &p[i].attn);
        if (rc) {
            free_plans(p, count);
            return rc;
        }
    }
    ryz_counter *ctr = ryz_counters_new(threads);
    if (!ctr) {
        free_plans(p, count);
        return RYZ_ENOMEM;
    }
    double gemv = 0.0, attention = 0.0, head_start = 0.0;
    const double start = ryz_now_seconds();
    run_chain(steps, p, count, head, &hp, eps, min_absmax, threads, ctr, &gemv, &attention, &head_start);
    const double end = ryz_now_seconds(), head_s = head ? end - head_start : 0.0;
    free(ctr);
    free_plans(p, count);
    seconds[0] += gemv;
    seconds[1] += attention;
    seconds[2] += head_s;
    seconds[3] += end - start - gemv - attention - head_s;
    return RYZ_OK;
}
