/* The online LDA step's topics at a mini-batch's words (src_c/topics/_lda_online.pyx):
   E[log beta_kw] = psi(lambda_kw) - psi(total_k) and its exp, for V_b x K entries.

   The eight-lane digamma and exp of vbf_simd_math.h (one AVX-512 register; lane for lane
   the four-lane functions' operations), so the values are bit for bit those of the
   four-lane vbf_expectation_given_total (tested): 1.5x faster on the real corpus's
   mini-batches. The entries are taken flat, row after row, eight at a time whatever K is. (Sixteen lanes, or
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

/* n entries lam (n x 1, flat; any n): elog_j = psi(lam_j) - psi_pat[j mod K],
   t_j = exp(elog_j), with psi_pat (K + 16) = psi(total_k) repeated (psi_pat[i] = psi_total[i
   mod K]), so that 16 consecutive entries read 16 consecutive values of it. elog may be lam. */
VBF_INLINE void vbf_online_expectation_body(Py_ssize_t n, int K, const double *lam,
                                            const double *psi_pat, double *elog, double *t)
{
    Py_ssize_t j, q;
    int r = 0;
    vbf_v8 x, e;
    double tail[8];
    for (j = 0; j + 8 <= n; j += 8) {
        e = vbf_digamma8(vbf_load8(lam + j)) - vbf_load8(psi_pat + r);
        vbf_store8(elog + j, e);
        vbf_store8(t + j, vbf_exp8(e));
        r = (r + 8) % K;
    }
    if (j < n) {
        for (q = 0; q < 8; q++) tail[q] = j + q < n ? lam[j + q] : 1.0;
        x = vbf_load8(tail);
        e = vbf_digamma8(x) - vbf_load8(psi_pat + r);
        x = vbf_exp8(e);
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
    return VBF_CPU_HAS("avx512f") && VBF_CPU_HAS("avx512dq");
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
