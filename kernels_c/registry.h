/* registry.h - the kernel and format tables (registry.c) as seen by the driver. */
#ifndef RYZ_REGISTRY_H
#define RYZ_REGISTRY_H

#include "internal.h"

#ifndef RYZ_CFLAGS
#define RYZ_CFLAGS "unknown"
#endif

enum {
#define RYZ_FORMAT(name, bits, row_tile, k_align) RYZ_FMT_##name,
#include "formats.def"
#undef RYZ_FORMAT
};

typedef void (*ryz_pack_fn)(const int8_t *w, int64_t M, int64_t K, int64_t Mp, int64_t Kp, uint8_t *out);

typedef struct ryz_format {
    const char *name;
    double bits;
    int row_tile;
    int k_align;
    ryz_pack_fn pack;
} ryz_format;

typedef struct ryz_kernel_entry {
    ryz_kernel_desc desc;
    unsigned long long features;
    int format;
    ryz_prep_fn prep;
    int64_t (*ws_stride)(int64_t Kp);
    ryz_run_fn run;
    const ryz_ukr *ukr;   /* the blocked GEMM's microkernel in this kernel's ISA tier */
    int (*variant)(void); /* the code path for this CPU, into ryz_args.variant (kernels.def) */
} ryz_kernel_entry;

extern const ryz_format ryz_formats[];

/* Bytes of `rows` packed rows of Kp (padded) weights.  bits may be fractional (1.6 for
 * t5_k320x4, whose Kp is a multiple of 320, so rows * Kp * 1.6 / 8 is an integer): rounded, not
 * truncated, so that the double's representation error of 1.6 never costs a byte. */
static inline int64_t ryz_format_bytes(const ryz_format *f, int64_t rows, int64_t Kp) {
    return (int64_t)((double)rows * (double)Kp * f->bits / 8.0 + 0.5);
}

const ryz_kernel_entry *ryz_kernel_get(int index);

/* The driver's pieces that other multi-step callers (decode_steps.c) reuse.  ryz_setup_args
 * checks a call's arguments (a RYZ_E* code) and fills the kernel's ryz_args. */
int ryz_setup_args(int kernel, const unsigned char *packed, long long packed_bytes, long long M, long long K,
                   const signed char *x, long long x_bytes, long long N, int *y, long long y_bytes,
                   unsigned char *ws, long long ws_bytes, int threads, int schedule,
                   const ryz_kernel_entry **kout, ryz_args *a);
int ryz_check_sizes(long long M, long long N, long long K);
int ryz_check_threads(int threads);
int64_t ryz_row_tiles(const ryz_kernel_entry *k, const ryz_args *a);
/* Packed bytes of one row tile. */
int64_t ryz_tile_bytes(const ryz_kernel_entry *k, const ryz_args *a);
/* The blocked GEMM (gemm_blocked.c): whether ryz_gemm takes it for this call (by N, the
 * kernel's method and RYZLAB_GEMM_PATH), its workspace, and the product itself. */
int ryz_blocked_applies(const ryz_kernel_entry *k, int64_t N, int schedule);
int64_t ryz_blocked_ws_bytes(const ryz_kernel_entry *k, int64_t M, int64_t N, int64_t K);
int ryz_gemm_blocked(const ryz_kernel_entry *k, const ryz_args *a, int32_t *y, int threads);
/* The LUT kernels' blocked path (gemm_lut_blocked.c): the row-tile workspace, K in blocks;
 * ryz_gemm takes it from this N on (kernels_c/README.md, "The blocked LUT path"). */
#ifndef RYZ_LUT_BLOCKED_MIN_N
#define RYZ_LUT_BLOCKED_MIN_N 16
#endif
int ryz_gemm_lut_blocked(const ryz_kernel_entry *k, const ryz_args *a, int32_t *y, int threads);
void ryz_prefetch_block_head(const ryz_kernel_entry *k, const ryz_args *a, int64_t t0, int64_t t1);

#endif
