/* decode_steps.c - a decode step's chains of "RMSNorm -> int8 -> ternary GEMV -> epilogue"
 * in one OpenMP parallel region.
 *
 * Called one GEMV at a time from Python, a BitNet layer costs four thread wake-ups, four
 * fork/joins and a dozen interpreter round trips, and DRAM idles through each of them.  Here
 * the threads stay in one region for a whole chain (the model passes everything between two
 * attention steps: o, gate|up, down and the next layer's qkv): thread 0 normalises, quantises
 * and preps the activations, every thread streams its contiguous block of row tiles and
 * dequantises those rows (the gate, whose halves two threads computed, is left to thread 0),
 * and before each barrier a thread prefetches the head of its block of the next matrix, so
 * that DRAM keeps working while thread 0 runs the gate and the next norm.  The GEMV time
 * (seconds[0]) is thread 0's barrier-to-barrier time less its own dequantisation. */
#include <omp.h>

#include "registry.h"

/* Longest chain: the model passes four steps. */
#define MAX_STEPS 8

static int check_step(const ryz_decode_step *s, int threads, const ryz_kernel_entry **k, ryz_args *a) {
    if (!s->in || !s->norm || !s->row_scales || !s->out) return RYZ_EARG;
    if (s->epilogue < RYZ_EPI_STORE || s->epilogue > RYZ_EPI_SQRELU_GATE ||
        (s->epilogue == RYZ_EPI_SQRELU_GATE && s->M % 2))
        return RYZ_EARG;
    int rc = ryz_setup_args(s->kernel, s->packed, s->packed_bytes, s->M, s->K, s->xq, s->xq_len, 1, s->y,
                            s->y_len * (long long)sizeof(int), s->ws, s->ws_bytes, threads, RYZ_SCHED_BLOCKS, k, a);
    if (rc) return rc;
    const long long out_need = s->epilogue == RYZ_EPI_SQRELU_GATE ? s->M / 2 : s->M;
    if (s->in_len < s->K || s->norm_len < s->K || s->row_scales_len < s->M || s->out_len < out_need)
        return RYZ_EWS;
    return RYZ_OK;
}

int ryz_decode_steps(const ryz_decode_step *steps, int count, double eps, double min_absmax,
                     int threads, double *seconds) {
    if (!steps || count < 1 || count > MAX_STEPS || threads < 1 || !seconds) return RYZ_EARG;
    const ryz_kernel_entry *k[MAX_STEPS];
    ryz_args a[MAX_STEPS];
    for (int i = 0; i < count; i++) {
        int rc = check_step(&steps[i], threads, &k[i], &a[i]);
        if (rc) return rc;
    }
    double gemv = 0.0;
    float x_scale[MAX_STEPS];
    const double start = ryz_now_seconds();
    #pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        for (int i = 0; i < count; i++) {
            const ryz_decode_step *s = &steps[i];
            const int64_t tiles = ryz_row_tiles(k[i], &a[i]);
            const int64_t b0 = tiles * t / T, b1 = tiles * (t + 1) / T;
            double t0 = 0.0, own_epilogue = 0.0;
            if (i == 0) ryz_prefetch_block_head(k[i], &a[i], b0, b1);
            if (t == 0) {
                ryz_rmsnorm_quant(s->in, s->norm, s->K, eps, min_absmax, s->xq, &x_scale[i]);
                if (k[i]->prep) k[i]->prep(&a[i], 0, 1);
            }
            #pragma omp barrier
            if (t == 0) t0 = ryz_now_seconds();
            k[i]->run(&a[i], b0, b1, s->y, s->M, 0);
            if (s->epilogue != RYZ_EPI_SQRELU_GATE && b1 > b0) {
                /* row-wise: each thread finishes the rows it computed, while they are in its cache */
                const double e0 = t == 0 ? ryz_now_seconds() : 0.0;
                const int64_t rt = tiles ? a[i].Mp / tiles : 0, m0 = b0 * rt, m1 = b1 * rt < s->M ? b1 * rt : s->M;
                if (m1 > m0) ryz_dequant(s->y + m0, s->row_scales + m0, x_scale[i], m1 - m0, s->out + m0, s->epilogue);
                if (t == 0) own_epilogue = ryz_now_seconds() - e0;
            }
            if (i + 1 < count) {
                const int64_t n = ryz_row_tiles(k[i + 1], &a[i + 1]);
                ryz_prefetch_block_head(k[i + 1], &a[i + 1], n * t / T, n * (t + 1) / T);
            }
            #pragma omp barrier
            if (t == 0) {
                gemv += ryz_now_seconds() - t0 - own_epilogue;
                /* the gate needs both halves, computed by different threads; the next step's
                 * norm reads out: same thread */
                if (s->epilogue == RYZ_EPI_SQRELU_GATE)
                    ryz_dequant_sqrelu_gate(s->y, s->row_scales, x_scale[i], s->M / 2, s->out);
            }
        }
    }
    const double total = ryz_now_seconds() - start;
    seconds[0] += gemv;
    seconds[1] += total - gemv;
    return RYZ_OK;
}
