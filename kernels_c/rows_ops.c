/* rows_ops.c - decode_ops.c's per-token float steps over many tokens (rows), parallel over
 * rows.  Each row goes through the very function a decode step uses, so a prefill row is
 * bit-identical to the decode step of the same token. */
#include <omp.h>

#include "internal.h"

/* Elements per thread below which fewer threads run (a fork/join costs more than the work;
 * every row is computed the same way on any thread). */
#define MIN_ELEMS_PER_THREAD 32768

static int team(long long rows, long long n, int threads) {
    const long long want = 1 + rows * n / MIN_ELEMS_PER_THREAD;
    return want < threads ? (int)want : threads;
}

static int rows_ok(long long rows, long long n, int threads) {
    if (rows < 1 || n < 1 || threads < 1) return RYZ_EARG;
    if (threads > RYZ_MAX_THREADS || rows > RYZ_MAX_MN || n > RYZ_MAX_MN) return RYZ_ELIMIT;
    return RYZ_OK;
}

int ryz_rmsnorm_quant_rows(const float *x, long long x_len, const float *w, long long w_len, long long rows,
                           long long n, double eps, double min_absmax, signed char *q, long long q_len,
                           float *scales, long long scales_len, int threads) {
    if (!x || !w || !q || !scales) return RYZ_EARG;
    int rc = rows_ok(rows, n, threads);
    if (rc) return rc;
    if (x_len / n < rows || q_len / n < rows || w_len < n || scales_len < rows) return RYZ_EWS;
    const int nt = team(rows, n, threads);
    #pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (long long r = 0; r < rows; r++)
        ryz_rmsnorm_quant(x + r * n, w, n, eps, min_absmax, q + r * n, scales + r);
    return RYZ_OK;
}

int ryz_dequant_rows(const int *y, long long y_len, const float *row_scale, long long row_scale_len,
                     const float *x_scales, long long x_scales_len, long long rows, long long M, float *out,
                     long long out_len, int epilogue, int threads) {
    if (!y || !row_scale || !x_scales || !out) return RYZ_EARG;
    if (epilogue < RYZ_EPI_STORE || epilogue > RYZ_EPI_SQRELU_GATE || (epilogue == RYZ_EPI_SQRELU_GATE && M % 2))
        return RYZ_EARG;
    int rc = rows_ok(rows, M, threads);
    if (rc) return rc;
    const long long w = epilogue == RYZ_EPI_SQRELU_GATE ? M / 2 : M;
    if (y_len / M < rows || out_len / w < rows || row_scale_len < M || x_scales_len < rows) return RYZ_EWS;
    const int nt = team(rows, M, threads);
    #pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (long long r = 0; r < rows; r++) {
        if (epilogue == RYZ_EPI_SQRELU_GATE)
            ryz_dequant_sqrelu_gate(y + r * M, row_scale, x_scales[r], w, out + r * w);
        else
            ryz_dequant(y + r * M, row_scale, x_scales[r], M, out + r * M, epilogue);
    }
    return RYZ_OK;
}
