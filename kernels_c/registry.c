/* registry.c - the kernel and format tables built from kernels.def and formats.def, and
 * the entry points that describe them. */
#include <omp.h>
#include <string.h>

#include "registry.h"

const ryz_format ryz_formats[] = {
#define RYZ_FORMAT(name, bits, row_tile, k_align) {#name, bits, row_tile, k_align, ryz_pack_##name},
#include "formats.def"
#undef RYZ_FORMAT
};

const ryz_kernel_entry ryz_kernels[] = {
#define RYZ_KERNEL(name, isa, method, feat, fmt, prep, rank, ukr, variant) \
    {{#name, #isa, "", #fmt, #method, 0, rank, 0, 0}, feat, RYZ_FMT_##fmt, ryz_prep_##prep, \
     ryz_ws_stride_##prep, ryz_run_##name, &ryz_ukr_##ukr, ryz_variant_##variant},
#include "kernels.def"
#undef RYZ_KERNEL
};

int ryz_variant_none(void) { return 0; }

enum { N_KERNELS = sizeof ryz_kernels / sizeof *ryz_kernels };

int ryz_kernel_count(void) { return N_KERNELS; }

const ryz_kernel_entry *ryz_kernel_get(int index) {
    return index >= 0 && index < N_KERNELS ? &ryz_kernels[index] : 0;
}

/* The public descriptors, completed once from the format table and the feature mask. */
const ryz_kernel_desc *ryz_kernel(int index) {
    static ryz_kernel_desc descs[N_KERNELS];
    static char features[N_KERNELS][128];
    static int ready;
    if (index < 0 || index >= N_KERNELS) return 0;
    #pragma omp critical(ryz_registry_init)
    if (!ready) {
        for (int i = 0; i < N_KERNELS; i++) {
            const ryz_kernel_entry *k = &ryz_kernels[i];
            const ryz_format *f = &ryz_formats[k->format];
            descs[i] = k->desc;
            descs[i].bits_per_weight = f->bits;
            descs[i].row_tile = f->row_tile;
            descs[i].k_align = f->k_align;
            features[i][0] = 0;
            for (int bit = 0; ryz_cpu_feature_name(bit); bit++) {
                if (!(k->features >> bit & 1)) continue;
                if (features[i][0]) strcat(features[i], "+");
                strcat(features[i], ryz_cpu_feature_name(bit));
            }
            descs[i].features = features[i];
        }
        ready = 1;
    }
    return &descs[index];
}

int ryz_kernel_supported(int index) {
    const ryz_kernel_entry *k = ryz_kernel_get(index);
    return k && (ryz_cpu_features() & k->features) == k->features;
}

const char *ryz_build_info(void) {
    return "gcc " __VERSION__ "; flags: " RYZ_CFLAGS;
}

int ryz_omp_max_threads(void) { return omp_get_max_threads(); }

const char *ryz_error_string(int code) {
    switch (code) {
    case RYZ_OK: return "ok";
    case RYZ_EARG: return "invalid size or pointer argument";
    case RYZ_ECPU: return "this CPU lacks the instruction set the kernel needs";
    case RYZ_EWS: return "a buffer is smaller than its sizes require";
    case RYZ_EVALUE: return "weight outside {-1, 0, 1}";
    case RYZ_EKERNEL: return "no such kernel";
    case RYZ_ESCHEDULE: return "unknown schedule";
    case RYZ_ENOMEM: return "out of memory";
    case RYZ_ELIMIT: return "a size or thread count above the library's limits (K <= 2^23, M and N < 2^31, threads <= 1024)";
    case RYZ_EPACKED: return "packed weights whose byte count does not match their kernel and shape";
    default: return "unknown error";
    }
}
