/* probe.c - the compute-probe registry (probes.def) and its threaded, timed entry point. */
#include <omp.h>

#include "registry.h"

#define RYZ_PROBE(name, feat, unit) int64_t ryz_probe_##name(int64_t iters);
#include "probes.def"
#undef RYZ_PROBE

static const struct {
    const char *name, *unit;
    unsigned long long features;
    int64_t (*run)(int64_t iters);
} probes[] = {
#define RYZ_PROBE(name, feat, unit) {#name, #unit, feat, ryz_probe_##name},
#include "probes.def"
#undef RYZ_PROBE
};

enum { N_PROBES = sizeof probes / sizeof *probes };

int ryz_probe_count(void) { return N_PROBES; }
const char *ryz_probe_name(int i) { return i >= 0 && i < N_PROBES ? probes[i].name : 0; }
const char *ryz_probe_unit(int i) { return i >= 0 && i < N_PROBES ? probes[i].unit : 0; }
int ryz_probe_supported(int i) {
    return i >= 0 && i < N_PROBES && (ryz_cpu_features() & probes[i].features) == probes[i].features;
}

int ryz_probe_run(int i, int threads, long long iters, double *seconds, double *ops) {
    if (i < 0 || i >= N_PROBES) return RYZ_EKERNEL;
    if (!ryz_probe_supported(i)) return RYZ_ECPU;
    if (ryz_check_threads(threads)) return ryz_check_threads(threads);
    if (iters < 1 || !seconds || !ops) return RYZ_EARG;
    int64_t total = 0;
    const double start = ryz_now_seconds();
    #pragma omp parallel num_threads(threads) reduction(+ : total)
    total += probes[i].run(iters);
    *seconds = ryz_now_seconds() - start;
    *ops = (double)total;
    return RYZ_OK;
}
