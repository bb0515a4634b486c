/* HMM kernel helpers: the emission densities b = exp(l - m_t) of a whole sequence in one
   vectorised pass (four lanes, vbf_exp4: ~1 ulp, no libm call per entry). The AVX2 build and
   the baseline build give the same bits (no FMA: every vector operation is the same lane-wise
   IEEE operation), so results do not depend on the CPU's features. */
#ifndef VBFAST_HMM_KERNELS_H
#define VBFAST_HMM_KERNELS_H

#include <math.h>
#include "vbf_dispatch.h"
#include "vbf_simd_math.h"

#if defined(__GNUC__)
/* x[i] = exp(x[i]) for x[i] <= 0 (-inf gives 0) */
VBF_INLINE void vbf_hmm_exp_body(double *x, long long n)
{
    long long i = 0, r;
    double tail[4];
    for (; i + 4 <= n; i += 4)
        vbf_store4(x + i, vbf_exp4(vbf_load4(x + i)));
    if (i < n) {
        for (r = 0; r < 4; r++)
            tail[r] = i + r < n ? x[i + r] : -1.0;
        vbf_store4(tail, vbf_exp4(vbf_load4(tail)));
        for (r = 0; i + r < n; r++)
            x[i + r] = tail[r];
    }
}
VBF_DISPATCH(vbf_hmm_exp, "avx2", vbf_cpu_avx2(), (double *x, long long n), (x, n))
#else
static void vbf_hmm_exp(double *x, long long n)
{
    long long i;
    for (i = 0; i < n; i++)
        x[i] = exp(x[i]);
}
#endif

/* out[j] = sum_i c[i] M[i K + j], the rows added in order i = 0, 1, ... for every j (the
   same bits for any blocking); four columns at a time in vector registers, no FMA: the same
   bits in the AVX2 and the baseline builds */
#if defined(__GNUC__)
VBF_INLINE void vbf_hmm_rows_body(double *out, const double *c, const double *M, int K)
{
    int i, j = 0;
    for (; j + 8 <= K; j += 8) {
        vbf_v4 acc0 = vbf_splat(0.0), acc1 = vbf_splat(0.0);
        for (i = 0; i < K; i++) {
            const vbf_v4 s = vbf_splat(c[i]);
            acc0 = acc0 + s * vbf_load4(M + (long long)i * K + j);
            acc1 = acc1 + s * vbf_load4(M + (long long)i * K + j + 4);
        }
        vbf_store4(out + j, acc0);
        vbf_store4(out + j + 4, acc1);
    }
    for (; j + 4 <= K; j += 4) {
        vbf_v4 acc = vbf_splat(0.0);
        for (i = 0; i < K; i++)
            acc = acc + vbf_splat(c[i]) * vbf_load4(M + (long long)i * K + j);
        vbf_store4(out + j, acc);
    }
    for (; j < K; j++) {
        double acc = 0.0;
        for (i = 0; i < K; i++)
            acc = acc + c[i] * M[(long long)i * K + j];
        out[j] = acc;
    }
}
VBF_DISPATCH(vbf_hmm_rows, "avx2", vbf_cpu_avx2(),
             (double *out, const double *c, const double *M, int K), (out, c, M, K))
#else
static void vbf_hmm_rows(double *out, const double *c, const double *M, int K)
{
    int i, j;
    for (j = 0; j < K; j++) {
        double acc = 0.0;
        for (i = 0; i < K; i++)
            acc = acc + c[i] * M[(long long)i * K + j];
        out[j] = acc;
    }
}
#endif

#endif
