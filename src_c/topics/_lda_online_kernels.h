/* The online LDA step's topics at a mini-batch's words (src_c/topics/_lda_online.pyx):
   E[log beta_kw] = psi(lambda_kw) - psi(total_k) and its exp, for V_b x K entries.

   The four-lane digamma, log and exp of vbf_simd_math.h on eight lanes (one AVX-512
   register), lane for lane the same operations as vbf_digamma4 / vbf_exp4 with the same
   fused multiply-adds, so the values are bit for bit those of the four-lane
   vbf_expectation_given_total (tested): 1.5x faster on the real corpus's mini-batches. The
   entries are taken flat, row after row, eight at a time whatever K is. (Sixteen lanes, or
   eight built for AVX2, measured slower: register spills, and no AVX2 instruction for the
   log's 64-bit shifts and conversions.) */
#ifndef VBFAST_LDA_ONLINE_KERNELS_H
#define VBFAST_LDA_ONLINE_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "vbf_dispatch.h"
#include "vbf_simd_math.h"

#if defined(__GNUC__)

typedef double vbf_v16 __attribute__((vector_size(64)));
typedef long long vbf_i16 __attribute__((vector_size(64)));

VBF_INLINE vbf_v16 vbf16_splat(double v) {
    return (vbf_v16){v, v, v, v, v, v, v, v};
}
VBF_INLINE vbf_v16 vbf16_load(const double *p) {
    vbf_v16 a;
    __builtin_memcpy(&a, p, sizeof a);
    return a;
}
VBF_INLINE void vbf16_store(double *p, vbf_v16 v) { __builtin_memcpy(p, &v, sizeof v); }
VBF_INLINE vbf_i16 vbf16_bits(vbf_v16 a) { vbf_i16 b; __builtin_memcpy(&b, &a, sizeof b); return b; }
VBF_INLINE vbf_v16 vbf16_from_bits(vbf_i16 b) { vbf_v16 a; __builtin_memcpy(&a, &b, sizeof a); return a; }
VBF_INLINE vbf_v16 vbf16_blend(vbf_i16 mask, vbf_v16 a, vbf_v16 b) {
    return vbf16_from_bits((vbf16_bits(a) & mask) | (vbf16_bits(b) & ~mask));
}
#define VBF16_SPLAT_I(v) ((vbf_i16){v, v, v, v, v, v, v, v})

/* vbf_log4, lane for lane */
VBF_INLINE vbf_v16 vbf16_log(vbf_v16 y) {
    vbf_i16 b = vbf16_bits(y), e, big;
    vbf_v16 m, s, s2, p, ef;
    e = ((b >> 52) & 0x7ff) - 1023;
    m = vbf16_from_bits((b & VBF16_SPLAT_I(0x000fffffffffffffLL))
                        | VBF16_SPLAT_I(0x3ff0000000000000LL));
    big = m > vbf16_splat(1.4142135623730951);
    m = vbf16_blend(big, m * vbf16_splat(0.5), m);
    e = e - big;
    ef = __builtin_convertvector(e, vbf_v16);
    s = (m - vbf16_splat(1.0)) / (m + vbf16_splat(1.0));
    s2 = s * s;
    p = vbf16_splat(1.0 / 23.0);
    p = p * s2 + vbf16_splat(1.0 / 21.0);
    p = p * s2 + vbf16_splat(1.0 / 19.0);
    p = p * s2 + vbf16_splat(1.0 / 17.0);
    p = p * s2 + vbf16_splat(1.0 / 15.0);
    p = p * s2 + vbf16_splat(1.0 / 13.0);
    p = p * s2 + vbf16_splat(1.0 / 11.0);
    p = p * s2 + vbf16_splat(1.0 / 9.0);
    p = p * s2 + vbf16_splat(1.0 / 7.0);
    p = p * s2 + vbf16_splat(1.0 / 5.0);
    p = p * s2 + vbf16_splat(1.0 / 3.0);
    p = (s + s) * (p * s2);
    return ef * vbf16_splat(6.93147180369123816490e-01)
         + ((s + s) + (p + ef * vbf16_splat(1.90821492927058770002e-10)));
}

/* vbf_exp4 (x <= 0), lane for lane */
VBF_INLINE vbf_v16 vbf16_exp(vbf_v16 x) {
    const vbf_v16 shifter = vbf16_splat(6755399441055744.0);
    vbf_i16 under = x < vbf16_splat(-708.0), n;
    vbf_v16 kd, r, p;
    x = vbf16_blend(under, vbf16_splat(-708.0), x);
    kd = x * vbf16_splat(1.4426950408889634) + shifter;
    n = vbf16_bits(kd) - vbf16_bits(shifter);
    kd = kd - shifter;
    r = (x - kd * vbf16_splat(6.93147180369123816490e-01))
        - kd * vbf16_splat(1.90821492927058770002e-10);
    p = vbf16_splat(1.0 / 6227020800.0);
    p = p * r + vbf16_splat(1.0 / 479001600.0);
    p = p * r + vbf16_splat(1.0 / 39916800.0);
    p = p * r + vbf16_splat(1.0 / 3628800.0);
    p = p * r + vbf16_splat(1.0 / 362880.0);
    p = p * r + vbf16_splat(1.0 / 40320.0);
    p = p * r + vbf16_splat(1.0 / 5040.0);
    p = p * r + vbf16_splat(1.0 / 720.0);
    p = p * r + vbf16_splat(1.0 / 120.0);
    p = p * r + vbf16_splat(1.0 / 24.0);
    p = p * r + vbf16_splat(1.0 / 6.0);
    p = p * r + vbf16_splat(0.5);
    p = p * r + vbf16_splat(1.0);
    p = p * r + vbf16_splat(1.0);
    p = p * vbf16_from_bits((n + 1023) << 52);
    return vbf16_from_bits(vbf16_bits(p) & ~under);
}

/* vbf_digamma4 (x > 0), lane for lane */
VBF_INLINE vbf_v16 vbf16_digamma(vbf_v16 x) {
    vbf_v16 num = vbf16_splat(1.0), den = x, y, iy, z, p;
    vbf_i16 small = x < vbf16_splat(8.0);
    int i;
    for (i = 1; i < 8; i++) {
        const vbf_v16 xi = x + vbf16_splat((double)i);
        num = num * xi + den;
        den = den * xi;
    }
    y = vbf16_blend(small, x + vbf16_splat(8.0), x);
    iy = vbf16_splat(1.0) / y;
    z = iy * iy;
    p = vbf16_splat(43867.0 / 14364.0);
    p = vbf16_splat(3617.0 / 8160.0) - z * p;
    p = vbf16_splat(1.0 / 12.0) - z * p;
    p = vbf16_splat(691.0 / 32760.0) - z * p;
    p = vbf16_splat(1.0 / 132.0) - z * p;
    p = vbf16_splat(1.0 / 240.0) - z * p;
    p = vbf16_splat(1.0 / 252.0) - z * p;
    p = vbf16_splat(1.0 / 120.0) - z * p;
    p = vbf16_splat(1.0 / 12.0) - z * p;
    return vbf16_log(y) + ((vbf16_splat(-0.5) * iy - z * p)
                           - vbf16_from_bits(vbf16_bits(num / den) & small));
}

/* n entries lam (n x 1, flat; any n): elog_j = psi(lam_j) - psi_pat[j mod K],
   t_j = exp(elog_j), with psi_pat (K + 16) = psi(total_k) repeated (psi_pat[i] = psi_total[i
   mod K]), so that 16 consecutive entries read 16 consecutive values of it. elog may be lam. */
VBF_INLINE void vbf_online_expectation_body(Py_ssize_t n, int K, const double *lam,
                                            const double *psi_pat, double *elog, double *t)
{
    Py_ssize_t j, q;
    int r = 0;
    vbf_v16 x, e;
    double tail[8];
    for (j = 0; j + 8 <= n; j += 8) {
        e = vbf16_digamma(vbf16_load(lam + j)) - vbf16_load(psi_pat + r);
        vbf16_store(elog + j, e);
        vbf16_store(t + j, vbf16_exp(e));
        r = (r + 8) % K;
    }
    if (j < n) {
        for (q = 0; q < 8; q++) tail[q] = j + q < n ? lam[j + q] : 1.0;
        x = vbf16_load(tail);
        e = vbf16_digamma(x) - vbf16_load(psi_pat + r);
        x = vbf16_exp(e);
        for (q = 0; j + q < n; q++) { elog[j + q] = e[q]; t[j + q] = x[q]; }
    }
}

#else  /* not GCC/Clang: the scalar digamma of vbf_simd_math.h */

static void vbf_online_expectation_body(Py_ssize_t n, int K, const double *lam,
                                        const double *psi_pat, double *elog, double *t)
{
    Py_ssize_t j;
    double e;
    for (j = 0; j < n; j++) {
        e = vbf_digamma(lam[j]) - psi_pat[j % K];
        elog[j] = e;
        t[j] = exp(e);
    }
}

#endif

/* 1 where the eight-lane version runs (x86-64 GCC/Clang on a CPU with AVX-512F and DQ):
   the caller uses it then, else the four-lane row by row vbf_expectation_given_total of
   _lda_kernels.h, the same values (lane for lane the same operations). Built for AVX2 alone,
   the eight-lane vectors are slower than the four-lane rows: the 64-bit shifts and
   conversions of the log have no AVX2 instruction. */
static int vbf_online_eight_lanes(void) {
#ifdef VBF_HAVE_DISPATCH
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
#else
    return 0;
#endif
}

#ifdef VBF_HAVE_DISPATCH
__attribute__((target("avx512f,avx512dq,fma"))) static void vbf_online_expectation(
    Py_ssize_t n, int K, const double *lam, const double *psi_pat, double *elog, double *t)
{
    vbf_online_expectation_body(n, K, lam, psi_pat, elog, t);
}
#else
static void vbf_online_expectation(Py_ssize_t n, int K, const double *lam,
                                   const double *psi_pat, double *elog, double *t)
{
    vbf_online_expectation_body(n, K, lam, psi_pat, elog, t);
}
#endif

#endif
