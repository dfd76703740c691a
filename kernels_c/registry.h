/* registry.h - the kernel and format tables (registry.c) as seen by the driver. */
#ifndef RYZ_REGISTRY_H
#define RYZ_REGISTRY_H

#include "internal.h"
#include "ryzlab.h"

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
} ryz_kernel_entry;

extern const ryz_format ryz_formats[];
const ryz_kernel_entry *ryz_kernel_get(int index);

#endif
