/* HMM kernel pieces shared by forward-backward (_hmm.pyx) and forward-filtering
   backward-sampling (_ffbs.pyx): the scaled and the log-space forward recursions of one
   sequence, and their vector helpers: the emission densities b = exp(l - m_t) of a whole
   sequence in one vectorised pass (four lanes, vbf_exp4: ~1 ulp, no libm call per entry) and
   the row sums alpha A. The AVX2 build and the baseline build give the same bits (no FMA:
   every vector operation is the same lane-wise IEEE operation), so results do not depend on
   the CPU's features. */
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

/* Below this a scale factor c_t is treated as underflow (its inverse would overflow, or its
   digits are gone): the sequence is redone in log space. */
#define VBF_HMM_SCALE_FLOOR 1e-290

/* log sum_i exp(a[i]) (-inf when every a[i] is -inf) */
static double vbf_logsumexp(const double *a, int n)
{
    int i;
    double m = -INFINITY, s = 0.0;
    for (i = 0; i < n; i++)
        if (a[i] > m)
            m = a[i];
    if (m == -INFINITY)
        return -INFINITY;
    for (i = 0; i < n; i++)
        s += exp(a[i] - m);
    return m + log(s);
}

/* Scaled forward recursion of one sequence of T frames (Rabiner 1989), shared by
   forward-backward and forward-filtering backward-sampling. With m_t = max_k l_tk:
       b_t(k) = exp(l_tk - m_t),   alpha_0 = pi * b_0 / c_0,
       alpha_t = (A^T alpha_{t-1}) * b_t / c_t,   c_t the sum that normalises alpha_t.
   lp: (T, K) emission log-densities of the sequence's frames; b: (T, K) out, the b_t;
   alpha: (T, K) out, rows normalised; scale: (T,) out, 1 / c_t (NULL: not wanted).
   Returns log p(x) = sum_t m_t + log prod_t c_t (the product in float64, its log taken
   before it would underflow), or NaN when a frame has no finite largest density or a scale
   underflows: the caller then redoes the sequence in log space. */
static double vbf_hmm_forward(int K, long long T, const double *lp, const double *startprob,
                              const double *transmat, double *b, double *alpha,
                              double *scale)
{
    long long t;
    int j;
    double m, c, s, sum_m = 0.0, log_c = 0.0, prod = 1.0, nprod;
    for (t = 0; t < T; t++) {
        const double *row = lp + t * K;
        double *bt = b + t * K;
        m = -INFINITY;
        for (j = 0; j < K; j++)
            if (row[j] > m)
                m = row[j];
        if (!(m > -INFINITY) || !isfinite(m))
            return NAN;
        sum_m += m;
        for (j = 0; j < K; j++)
            bt[j] = row[j] - m;
    }
    vbf_hmm_exp(b, T * K);
    for (t = 0; t < T; t++) {
        const double *bt = b + t * K;
        double *al = alpha + t * K;
        c = 0.0;
        if (t == 0) {
            for (j = 0; j < K; j++)
                al[j] = startprob[j] * bt[j];
        } else {
            vbf_hmm_rows(al, al - K, transmat, K);
            for (j = 0; j < K; j++)
                al[j] = al[j] * bt[j];
        }
        for (j = 0; j < K; j++)
            c = c + al[j];
        if (!(c >= VBF_HMM_SCALE_FLOOR))
            return NAN;
        s = 1.0 / c;
        for (j = 0; j < K; j++)
            al[j] = al[j] * s;
        if (scale != NULL)
            scale[t] = s;
        nprod = prod * c;
        if (nprod < 1e-250) {  /* (c >= 1e-290, prod <= ~1: the log before it underflows) */
            log_c += log(prod);
            prod = c;
        } else {
            prod = nprod;
        }
    }
    return sum_m + (log_c + log(prod));
}

/* Log-space forward recursion of one sequence, exact where the scaled one underflows:
   la (T, K) out, log alpha_t(j) = log sum_i exp(log alpha_{t-1}(i) + log A_ij) + l_tj
   (unnormalised); tmp: (K,) scratch. Returns log p(x) (-inf: the sequence is impossible). */
static double vbf_hmm_forward_log(int K, long long T, const double *lp,
                                  const double *logstart, const double *logtrans,
                                  double *la, double *tmp)
{
    long long t;
    int i, j;
    double x;
    for (t = 0; t < T; t++) {
        const double *row = lp + t * K;
        for (j = 0; j < K; j++) {
            if (t == 0) {
                x = logstart[j];
            } else {
                for (i = 0; i < K; i++)
                    tmp[i] = la[(t - 1) * K + i] + logtrans[(long long)i * K + j];
                x = vbf_logsumexp(tmp, K);
            }
            la[t * K + j] = x + row[j];
        }
    }
    return vbf_logsumexp(la + (T - 1) * K, K);
}

#endif
