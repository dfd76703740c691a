/* cpu.c - runtime CPU feature detection (cpuid + xgetbv), never compile-time #ifdefs:
 * the library is built for baseline x86-64 and must load on any x86-64 CPU. */
#include <cpuid.h>
#include <stdint.h>

#include "internal.h"

static const char *const feature_names[] = {
    "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512vnni", "avx512vbmi",
};

static unsigned long long feature_mask = ~0ull;

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static unsigned long long detect(void) {
    unsigned a, b, c, d;
    unsigned long long f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    if (!osxsave || !avx) return 0;
    uint64_t xcr0 = xgetbv0();
    int os_avx = (xcr0 & 0x6) == 0x6;           /* XMM and YMM state */
    int os_avx512 = (xcr0 & 0xe6) == 0xe6;      /* plus opmask, ZMM_Hi256, Hi16_ZMM */
    if (!os_avx) return 0;
    if (fma) f |= RYZ_F_FMA;
    if (__get_cpuid_max(0, 0) < 7) return f;
    __cpuid_count(7, 0, a, b, c, d);
    if ((b >> 5) & 1) f |= RYZ_F_AVX2;
    if (os_avx512) {
        if ((b >> 16) & 1) f |= RYZ_F_AVX512F;
        if ((b >> 17) & 1) f |= RYZ_F_AVX512DQ;
        if ((b >> 30) & 1) f |= RYZ_F_AVX512BW;
        if ((b >> 31) & 1) f |= RYZ_F_AVX512VL;
        if ((c >> 1) & 1) f |= RYZ_F_AVX512VBMI;
        if ((c >> 11) & 1) f |= RYZ_F_AVX512VNNI;
    }
    return f;
}

unsigned long long ryz_cpu_features(void) {
    static unsigned long long cached = ~0ull;
    if (cached == ~0ull) cached = detect();
    return cached & feature_mask;
}

/* Lets tests and experiments act as a lesser CPU: features outside the mask are treated as
 * absent by dispatch and by every entry point's check. */
void ryz_set_feature_mask(unsigned long long mask) { feature_mask = mask; }

/* 1 on an AMD CPU (cpuid vendor "AuthenticAMD"): a cost model, not a feature, so no mask. */
int ryz_cpu_is_amd(void) {
    static int cached = -1;
    if (cached < 0) {
        unsigned a, b, c, d;
        cached = __get_cpuid(0, &a, &b, &c, &d) && b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163;
    }
    return cached;
}

int64_t ryz_prefetch_choice(const char *var, int64_t amd, int64_t other) {
    const char *e = getenv(var);
    if (e && *e) {
        char *end;
        const long long v = strtoll(e, &end, 10);
        if (!*end && v >= 0 && v <= (1 << 20)) return v;
    }
    return ryz_cpu_is_amd() ? amd : other;
}

int ryz_env_choice(const char *var, const char *one, const char *zero, int dflt) {
    const char *e = getenv(var);
    if (e && !strcmp(e, one)) return 1;
    if (e && !strcmp(e, zero)) return 0;
    return dflt;
}

const char *ryz_cpu_feature_name(int bit) {
    if (bit < 0 || bit >= (int)(sizeof feature_names / sizeof *feature_names)) return 0;
    return feature_names[bit];
}
