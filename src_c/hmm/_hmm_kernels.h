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
#include <stdlib.h>
#include <string.h>
#include "vbf_dispatch.h"
#include "vbf_simd_math.h"
#include "_hmm_emission.h"

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

/* ---- forward-backward of one sequence on padded lattices ------------------------------

   Kp = VBF_HMM_PAD(K) lanes a state vector (whole four-lane vectors; the pad lanes hold
   zeros, so every vector operation below is exact for the K real lanes and gives 0 in the
   pad). The transition matrix comes as Ap (K, Kp), rows of A padded, and ATp (K, Kp), rows of
   A^T padded; the start vector as startp (Kp,). Per row of the sequence the work is two
   K x Kp mat-vecs (alpha_t = A^T alpha_{t-1} as a sum of rows of A, beta_t = A v as a sum of
   rows of A^T), one rank-one update of the expected transition counts xi += alpha_t v^T, and
   the posteriors gamma_t = alpha_t beta_t / sum: no T x K beta lattice, no BLAS call, no
   call per row. Every lane's operations run in a fixed order (no FMA): the AVX2 and the
   baseline builds give the same bits. */
#define VBF_HMM_PAD(K) (((K) + 3) & ~3)

#if defined(__GNUC__)
/* out (Kp) = sum_{i < K} c[i] M[i Kp : (i + 1) Kp], rows added in order (Kp a compile-time
   constant where the caller is specialised: the lane loop unrolls into registers) */
VBF_INLINE void vbf_hmm_matvec_pad(double *out, const double *c, const double *M, int K,
                                   const int Kp)
{
    int i, j;
    if (Kp <= 16) {
        vbf_v4 acc[4];
        for (j = 0; j < Kp / 4; j++)
            acc[j] = vbf_splat(0.0);
        for (i = 0; i < K; i++) {
            const vbf_v4 s = vbf_splat(c[i]);
            for (j = 0; j < Kp / 4; j++)
                acc[j] = acc[j] + s * vbf_load4(M + (long long)i * Kp + 4 * j);
        }
        for (j = 0; j < Kp / 4; j++)
            vbf_store4(out + 4 * j, acc[j]);
        return;
    }
    for (j = 0; j + 8 <= Kp; j += 8) {
        vbf_v4 acc0 = vbf_splat(0.0), acc1 = vbf_splat(0.0);
        for (i = 0; i < K; i++) {
            const vbf_v4 s = vbf_splat(c[i]);
            acc0 = acc0 + s * vbf_load4(M + (long long)i * Kp + j);
            acc1 = acc1 + s * vbf_load4(M + (long long)i * Kp + j + 4);
        }
        vbf_store4(out + j, acc0);
        vbf_store4(out + j + 4, acc1);
    }
    for (; j < Kp; j += 4) {
        vbf_v4 acc = vbf_splat(0.0);
        for (i = 0; i < K; i++)
            acc = acc + vbf_splat(c[i]) * vbf_load4(M + (long long)i * Kp + j);
        vbf_store4(out + j, acc);
    }
}

/* sum of the lanes of x (Kp), vectors added first, then the four lanes */
VBF_INLINE double vbf_hmm_sum_pad(const double *x, const int Kp)
{
    int j;
    vbf_v4 acc = vbf_load4(x);
    for (j = 4; j < Kp; j += 4)
        acc = acc + vbf_load4(x + j);
    return vbf_hsum(acc);
}

/* xi (K, Kp) = sum_{t < T - 1} alpha_t^T v_{t+1}, t in order for every entry; two rows of
   xi at a time in registers */
VBF_INLINE void vbf_hmm_xi_pad(double *xi, const double *alpha, const double *V, int K,
                               const int Kp, long long T)
{
    int i, j;
    long long t;
    if (Kp <= 16) {
        for (i = 0; i < K; i += 2) {
            vbf_v4 acc0[4], acc1[4];
            const int two = i + 1 < K;
            for (j = 0; j < Kp / 4; j++) {
                acc0[j] = vbf_splat(0.0);
                acc1[j] = vbf_splat(0.0);
            }
            for (t = 0; t + 1 < T; t++) {
                const double *al = alpha + t * Kp + i;
                const double *vn = V + (t + 1) * Kp;
                const vbf_v4 a0 = vbf_splat(al[0]), a1 = vbf_splat(two ? al[1] : 0.0);
                for (j = 0; j < Kp / 4; j++) {
                    const vbf_v4 vj = vbf_load4(vn + 4 * j);
                    acc0[j] = acc0[j] + a0 * vj;
                    acc1[j] = acc1[j] + a1 * vj;
                }
            }
            for (j = 0; j < Kp / 4; j++) {
                vbf_store4(xi + (long long)i * Kp + 4 * j, acc0[j]);
                if (two)
                    vbf_store4(xi + (long long)(i + 1) * Kp + 4 * j, acc1[j]);
            }
        }
        return;
    }
    for (i = 0; i < K * Kp; i++)
        xi[i] = 0.0;
    for (t = 0; t + 1 < T; t++) {
        const double *al = alpha + t * Kp;
        const double *vn = V + (t + 1) * Kp;
        for (i = 0; i < K; i++) {
            const vbf_v4 a = vbf_splat(al[i]);
            double *xr = xi + (long long)i * Kp;
            for (j = 0; j < Kp; j += 4)
                vbf_store4(xr + j, vbf_load4(xr + j) + a * vbf_load4(vn + j));
        }
    }
}

/* Scaled forward-backward of one sequence (the recursions of _hmm.pyx's docstring).
   lp: (T, K) log-densities; b, alpha: (T, Kp) scratch (b_{t+1} is overwritten by v_{t+1} =
   b_{t+1} beta_{t+1} / c_{t+1} in the backward sweep); scale: (T,) scratch (1 / c_t);
   vec: (3 Kp) scratch; xi: (K, Kp) out, sum_t alpha_t^T v_{t+1} (the transition counts
   before the product with A); gamma0: (Kp) out, gamma_0; post: (T, K) out, the posteriors
   (NULL: not wanted). *ll: log p(x), or NaN when a frame has no finite largest density, a
   scale underflows or a beta overflows (the caller redoes the sequence in log space and
   discards xi, gamma0 and post). Kp is a constant in each specialisation (see below). */
VBF_INLINE void vbf_hmm_fb_pad_k(int K, const int Kp, long long T, const double *lp,
                                 const double *startp, const double *Ap, const double *ATp,
                                 double *b, double *alpha, double *scale, double *vec,
                                 double *xi, double *gamma0, double *post, double *ll)
{
    long long t;
    int j;
    double m, c, s, sum_m = 0.0, log_c = 0.0, prod = 1.0, nprod;
    double *beta = vec, *g = vec + 2 * Kp;
    *ll = NAN;
    for (t = 0; t < T; t++) {
        const double *row = lp + t * K;
        double *bt = b + t * Kp;
        m = -INFINITY;
        for (j = 0; j < K; j++)
            if (row[j] > m)
                m = row[j];
        if (!(m > -INFINITY) || !isfinite(m))
            return;
        sum_m += m;
        for (j = 0; j < K; j++)
            bt[j] = row[j] - m;
        for (; j < Kp; j++)
            bt[j] = -INFINITY;  /* exp gives 0 */
    }
    vbf_hmm_exp_body(b, T * Kp);
    for (t = 0; t < T; t++) {
        const double *bt = b + t * Kp;
        double *al = alpha + t * Kp;
        if (t == 0) {
            for (j = 0; j < Kp; j += 4)
                vbf_store4(al + j, vbf_load4(startp + j) * vbf_load4(bt + j));
        } else {
            vbf_hmm_matvec_pad(al, al - Kp, Ap, K, Kp);
            for (j = 0; j < Kp; j += 4)
                vbf_store4(al + j, vbf_load4(al + j) * vbf_load4(bt + j));
        }
        c = vbf_hmm_sum_pad(al, Kp);
        if (!(c >= VBF_HMM_SCALE_FLOOR))
            return;
        s = 1.0 / c;
        for (j = 0; j < Kp; j += 4)
            vbf_store4(al + j, vbf_load4(al + j) * vbf_splat(s));
        scale[t] = s;
        nprod = prod * c;
        if (nprod < 1e-250) {  /* (c >= 1e-290, prod <= ~1: the log before it underflows) */
            log_c += log(prod);
            prod = c;
        } else {
            prod = nprod;
        }
    }
    for (j = 0; j < Kp; j++)
        beta[j] = j < K ? 1.0 : 0.0;
    for (t = T - 1; t >= 0; t--) {
        const double *al = alpha + t * Kp;
        if (t < T - 1) {
            /* v_{t+1} over b_{t+1}; beta_t = A v_{t+1} */
            double *vn = b + (t + 1) * Kp;
            const vbf_v4 sn = vbf_splat(scale[t + 1]);
            for (j = 0; j < Kp; j += 4)
                vbf_store4(vn + j, vbf_load4(vn + j) * vbf_load4(beta + j) * sn);
            vbf_hmm_matvec_pad(beta, vn, ATp, K, Kp);
        }
        /* gamma_t = alpha_t beta_t, normalised again against rounding. beta_t(i) =
           p(x_{t+1:} | i) / prod c is large where alpha_t(i) is tiny, and in extreme cases
           beyond float64: then the sum is not finite and the log-space path takes over */
        for (j = 0; j < Kp; j += 4)
            vbf_store4(g + j, vbf_load4(al + j) * vbf_load4(beta + j));
        c = vbf_hmm_sum_pad(g, Kp);
        if (!isfinite(c))
            return;
        s = c > 0.0 ? 1.0 / c : 1.0;
        if (post != NULL) {
            double *pt = post + t * K;
            for (j = 0; j < K; j++)
                pt[j] = g[j] * s;
        }
        if (t == 0)
            for (j = 0; j < Kp; j++)
                gamma0[j] = g[j] * s;
    }
    vbf_hmm_xi_pad(xi, alpha, b, K, Kp, T);
    *ll = sum_m + (log_c + log(prod));
}

/* vbf_hmm_fb_pad_k with Kp a constant for the small state counts (the lane loops unroll) */
VBF_INLINE void vbf_hmm_fb_pad_body(int K, int Kp, long long T, const double *lp,
                                    const double *startp, const double *Ap, const double *ATp,
                                    double *b, double *alpha, double *scale, double *vec,
                                    double *xi, double *gamma0, double *post, double *ll)
{
    switch (Kp) {
    case 4:
        vbf_hmm_fb_pad_k(K, 4, T, lp, startp, Ap, ATp, b, alpha, scale, vec, xi, gamma0, post,
                         ll);
        break;
    case 8:
        vbf_hmm_fb_pad_k(K, 8, T, lp, startp, Ap, ATp, b, alpha, scale, vec, xi, gamma0, post,
                         ll);
        break;
    case 12:
        vbf_hmm_fb_pad_k(K, 12, T, lp, startp, Ap, ATp, b, alpha, scale, vec, xi, gamma0,
                         post, ll);
        break;
    case 16:
        vbf_hmm_fb_pad_k(K, 16, T, lp, startp, Ap, ATp, b, alpha, scale, vec, xi, gamma0,
                         post, ll);
        break;
    default:
        vbf_hmm_fb_pad_k(K, Kp, T, lp, startp, Ap, ATp, b, alpha, scale, vec, xi, gamma0,
                         post, ll);
    }
}
VBF_DISPATCH(vbf_hmm_fb_pad, "avx2", vbf_cpu_avx2(),
             (int K, int Kp, long long T, const double *lp, const double *startp,
              const double *Ap, const double *ATp, double *b, double *alpha, double *scale,
              double *vec, double *xi, double *gamma0, double *post, double *ll),
             (K, Kp, T, lp, startp, Ap, ATp, b, alpha, scale, vec, xi, gamma0, post, ll))
#else
/* compilers without vector extensions: the same operations one lane at a time */
static void vbf_hmm_fb_pad(int K, int Kp, long long T, const double *lp, const double *startp,
                           const double *Ap, const double *ATp, double *b, double *alpha,
                           double *scale, double *vec, double *xi, double *gamma0,
                           double *post, double *ll)
{
    long long t;
    int i, j;
    double m, c, s, sum_m = 0.0, log_c = 0.0, prod = 1.0, nprod;
    double *beta = vec, *nb = vec + Kp, *g = vec + 2 * Kp;
    *ll = NAN;
    for (t = 0; t < T; t++) {
        const double *row = lp + t * K;
        m = -INFINITY;
        for (j = 0; j < K; j++)
            if (row[j] > m)
                m = row[j];
        if (!(m > -INFINITY) || !isfinite(m))
            return;
        sum_m += m;
        for (j = 0; j < Kp; j++)
            b[t * Kp + j] = j < K ? exp(row[j] - m) : 0.0;
    }
    for (t = 0; t < T; t++) {
        double *al = alpha + t * Kp;
        for (j = 0; j < Kp; j++) {
            double acc = 0.0;
            if (t == 0) {
                acc = startp[j];
            } else {
                for (i = 0; i < K; i++)
                    acc = acc + al[i - Kp] * Ap[i * Kp + j];
            }
            al[j] = acc * b[t * Kp + j];
        }
        c = 0.0;
        for (j = 0; j < Kp; j++)
            c = c + al[j];
        if (!(c >= VBF_HMM_SCALE_FLOOR))
            return;
        s = 1.0 / c;
        for (j = 0; j < Kp; j++)
            al[j] = al[j] * s;
        scale[t] = s;
        nprod = prod * c;
        if (nprod < 1e-250) {
            log_c += log(prod);
            prod = c;
        } else {
            prod = nprod;
        }
    }
    for (j = 0; j < Kp; j++)
        beta[j] = j < K ? 1.0 : 0.0;
    for (t = T - 1; t >= 0; t--) {
        const double *al = alpha + t * Kp;
        if (t < T - 1) {
            double *vn = b + (t + 1) * Kp;
            for (j = 0; j < Kp; j++)
                vn[j] = vn[j] * beta[j] * scale[t + 1];
            for (j = 0; j < Kp; j++) {
                double acc = 0.0;
                for (i = 0; i < K; i++)
                    acc = acc + vn[i] * ATp[i * Kp + j];
                nb[j] = acc;
            }
            for (j = 0; j < Kp; j++)
                beta[j] = nb[j];
        }
        c = 0.0;
        for (j = 0; j < Kp; j++) {
            g[j] = al[j] * beta[j];
            c = c + g[j];
        }
        if (!isfinite(c))
            return;
        s = c > 0.0 ? 1.0 / c : 1.0;
        if (post != NULL)
            for (j = 0; j < K; j++)
                post[t * K + j] = g[j] * s;
        if (t == 0)
            for (j = 0; j < Kp; j++)
                gamma0[j] = g[j] * s;
    }
    for (i = 0; i < K * Kp; i++)
        xi[i] = 0.0;
    for (t = 0; t + 1 < T; t++)
        for (i = 0; i < K; i++)
            for (j = 0; j < Kp; j++)
                xi[i * Kp + j] = xi[i * Kp + j] + alpha[t * Kp + i] * b[(t + 1) * Kp + j];
    *ll = sum_m + (log_c + log(prod));
}
#endif

/* ---- affine map of feature rows, for the Gaussian log-densities at small K -------------

   out[n, k] = cst[k] + sum_a z[n, a] W[k, a] for b rows (z (b, n_aux), out (b, K)), with WT
   (n_aux, Kp) = W^T zero-padded and cst (Kp,): per row Kp / 4 accumulators in registers,
   the features added in order a = 0, 1, ... (the same bits in every build; a BLAS product
   of these shapes spends more on packing than on arithmetic). Kp <= 16 only. */
#if defined(__GNUC__)
VBF_INLINE void vbf_hmm_affine_k(const double *z, int b, int n_aux, const double *WT,
                                 const double *cst, int K, const int Kp, double *out)
{
    int n, a, j;
    double last[16];
    for (n = 0; n < b; n++) {
        vbf_v4 acc[4];
        const double *zn = z + (long long)n * n_aux;
        /* rows in increasing order: a whole-vector store spilling into the next rows is
           overwritten by them; rows whose Kp lanes would pass the end of the b rows go
           through a buffer */
        double *o = (long long)n * K + Kp <= (long long)b * K ? out + (long long)n * K : last;
        for (j = 0; j < Kp / 4; j++)
            acc[j] = vbf_load4(cst + 4 * j);
        for (a = 0; a < n_aux; a++) {
            const vbf_v4 za = vbf_splat(zn[a]);
            for (j = 0; j < Kp / 4; j++)
                acc[j] = acc[j] + za * vbf_load4(WT + (long long)a * Kp + 4 * j);
        }
        for (j = 0; j < Kp / 4; j++)
            vbf_store4(o + 4 * j, acc[j]);
        if (o == last)
            for (j = 0; j < K; j++)
                out[(long long)n * K + j] = last[j];
    }
}

VBF_INLINE void vbf_hmm_affine_body(const double *z, int b, int n_aux, const double *WT,
                                    const double *cst, int K, int Kp, double *out)
{
    switch (Kp) {
    case 4: vbf_hmm_affine_k(z, b, n_aux, WT, cst, K, 4, out); break;
    case 8: vbf_hmm_affine_k(z, b, n_aux, WT, cst, K, 8, out); break;
    case 12: vbf_hmm_affine_k(z, b, n_aux, WT, cst, K, 12, out); break;
    default: vbf_hmm_affine_k(z, b, n_aux, WT, cst, K, 16, out);
    }
}
VBF_DISPATCH(vbf_hmm_affine, "avx2", vbf_cpu_avx2(),
             (const double *z, int b, int n_aux, const double *WT, const double *cst, int K,
              int Kp, double *out), (z, b, n_aux, WT, cst, K, Kp, out))
#else
static void vbf_hmm_affine(const double *z, int b, int n_aux, const double *WT,
                           const double *cst, int K, int Kp, double *out)
{
    int n, a, j;
    for (n = 0; n < b; n++)
        for (j = 0; j < K; j++) {
            double acc = cst[j];
            for (a = 0; a < n_aux; a++)
                acc = acc + z[(long long)n * n_aux + a] * WT[(long long)a * Kp + j];
            out[(long long)n * K + j] = acc;
        }
}
#endif

/* ---- Gaussian emission statistics ('diag', 'spherical') of b rows ---------------------

   nk (Kp) += g_n, s1 (D, Kp): s1[j] += y_nj g_n, s2: 'diag' (D, Kp) s2[j] += y_nj^2 g_n,
   'spherical' (Kp) s2 += ||y_n||^2 g_n; g_n the posteriors of row n (K values, read as Kp
   lanes: the first n_direct rows straight from post, whose pad lanes then hold the next
   row's values and feed only the pad lanes of the sums; the rest through a buffer), y (b, D)
   the shifted rows. Rows added in order. */
#if defined(__GNUC__)
VBF_INLINE void vbf_hmm_gstats_k(const double *y, const double *post, int b, int n_direct,
                                 int D, int K, const int Kp, int spherical, double *nk,
                                 double *s1, double *s2)
{
    int n, j, l;
    double buf[16];
    for (n = 0; n < b; n++) {
        const double *yn = y + (long long)n * D;
        const double *gp = post + (long long)n * K;
        vbf_v4 g[4];
        if (n >= n_direct) {
            for (l = 0; l < Kp; l++)
                buf[l] = l < K ? gp[l] : 0.0;
            gp = buf;
        }
        for (l = 0; l < Kp / 4; l++) {
            g[l] = vbf_load4(gp + 4 * l);
            vbf_store4(nk + 4 * l, vbf_load4(nk + 4 * l) + g[l]);
        }
        if (spherical) {
            double q = 0.0;
            for (j = 0; j < D; j++) {
                const vbf_v4 yj = vbf_splat(yn[j]);
                double *r1 = s1 + (long long)j * Kp;
                q = q + yn[j] * yn[j];
                for (l = 0; l < Kp / 4; l++)
                    vbf_store4(r1 + 4 * l, vbf_load4(r1 + 4 * l) + yj * g[l]);
            }
            for (l = 0; l < Kp / 4; l++)
                vbf_store4(s2 + 4 * l, vbf_load4(s2 + 4 * l) + vbf_splat(q) * g[l]);
        } else {
            for (j = 0; j < D; j++) {
                const vbf_v4 yj = vbf_splat(yn[j]), yy = yj * yj;
                double *r1 = s1 + (long long)j * Kp, *r2 = s2 + (long long)j * Kp;
                for (l = 0; l < Kp / 4; l++) {
                    vbf_store4(r1 + 4 * l, vbf_load4(r1 + 4 * l) + yj * g[l]);
                    vbf_store4(r2 + 4 * l, vbf_load4(r2 + 4 * l) + yy * g[l]);
                }
            }
        }
    }
}

VBF_INLINE void vbf_hmm_gstats_body(const double *y, const double *post, int b, int n_direct,
                                    int D, int K, int Kp, int spherical, double *nk,
                                    double *s1, double *s2)
{
    switch (Kp) {
    case 4: vbf_hmm_gstats_k(y, post, b, n_direct, D, K, 4, spherical, nk, s1, s2); break;
    case 8: vbf_hmm_gstats_k(y, post, b, n_direct, D, K, 8, spherical, nk, s1, s2); break;
    case 12: vbf_hmm_gstats_k(y, post, b, n_direct, D, K, 12, spherical, nk, s1, s2); break;
    default: vbf_hmm_gstats_k(y, post, b, n_direct, D, K, 16, spherical, nk, s1, s2);
    }
}
VBF_DISPATCH(vbf_hmm_gstats, "avx2", vbf_cpu_avx2(),
             (const double *y, const double *post, int b, int n_direct, int D, int K, int Kp,
              int spherical, double *nk, double *s1, double *s2),
             (y, post, b, n_direct, D, K, Kp, spherical, nk, s1, s2))
#else
/* (one lane at a time the row-major and the column-major sums are the same loops) */
static void vbf_hmm_gstats(const double *y, const double *post, int b, int n_direct, int D,
                           int K, int Kp, int spherical, double *nk, double *s1, double *s2)
{
    (void)n_direct;
    vbf_hmm_gstats_cols(y, post, b, D, K, Kp, spherical, nk, s1, s2);
}
#endif

/* ---- one long sequence: the forward and the backward recursions apart ------------------

   With b_t = exp(l_t - m_t) (Kp lanes, pad lanes 0), unnormalised recursions rescaled by
   exact powers of two:

       a_0 = pi b_0,            a_t = (A^T a_{t-1}) b_t 2^-k_t,
       beta_{T-1} = 1 (K lanes), v_t = beta_t b_t 2^-j_t,   beta_{t-1} = A v_t,
       gamma_t = a_t beta_t / Z_t,   xi_t(i, j) = a_t(i) A_ij v_{t+1}(j) / Z_t,
       Z_t = sum_i a_t(i) beta_t(i)   (= sum_ij a_t(i) A_ij v_{t+1}(j)),
       log p(x) = sum_t m_t + log sum_i a_{T-1}(i) + log(2) sum_t k_t.

   The rescaling rule: the forward step t (the backward step u = T - 1 - t likewise) rescales
   only at even t >= 2, by k_t = the binary exponent of S_{t-2} = sum_i a_{t-2}(i) (so that
   S_{t-2} 2^-k_t is in [1, 2)), a sum made two steps earlier: off the dependency chain, no
   division and no log per step, and the scaling is exact (powers of two), so the bits are
   the same however the work is scheduled. Every step's sum S_t (R_t = sum_i beta_t(i) for
   the backward) must have an exponent in [-960, 64]: between two rescalings the sums shrink
   by at most the product of three steps' factors, and a sequence where one falls below
   2^-960 (or a posterior normaliser Z_t does) is redone by the log-space path, as in the
   per-step scaled pass. The forward needs neither the backward's scales nor the converse:
   the two recursions run on two threads (or interleaved on one: two independent dependency
   chains in one loop), then the posteriors and the transition counts are combined over
   fixed chunks of steps (slots added in chunk order): the same bits for any thread count.
   The products A^T a and A v add the rows i in two interleaved sums, even i and odd i, in
   order, then even + odd (a short chain); no FMA: the AVX2 and baseline builds agree. */
#define VBF_HMM_LONG_MIN_EXP (-960)
#define VBF_HMM_LONG_MAX_EXP 64

/* floor(log2 x) for positive normal x (from the bits: -1023 for 0 and subnormals, 1024 for
   inf and NaN) */
static inline int vbf_hmm_exponent(double x)
{
    unsigned long long u;
    memcpy(&u, &x, sizeof u);
    return (int)((u >> 52) & 0x7ff) - 1023;
}

/* 2^-k for k clamped to [-1000, 1000] (an out-of-range k has already failed the check) */
static inline double vbf_hmm_pow2_neg(int k)
{
    unsigned long long u;
    double x;
    if (k < -1000)
        k = -1000;
    if (k > 1000)
        k = 1000;
    u = (unsigned long long)(1023 - k) << 52;
    memcpy(&x, &u, sizeof x);
    return x;
}

static inline int vbf_hmm_exp_bad(int e)
{
    return (e < VBF_HMM_LONG_MIN_EXP) | (e > VBF_HMM_LONG_MAX_EXP);
}

/* the chains' state: the sums' exponents of the last two steps, the scales applied, and
   whether a sum left the range */
typedef struct {
    int e1, e2;           /* exponents of the sums of steps t - 1 and t - 2 */
    long long ksum;       /* sum of the k_t */
    int bad;
} vbf_hmm_chain;

#if defined(__GNUC__)
/* out[0 : Kp/4] = sum_{i < Kp} x_i M[i Kp : (i + 1) Kp] (M (Kp, Kp), rows i >= K zero),
   as (even i, in order) + (odd i, in order); x in registers. The sums start from the first
   products, not from 0 + them: the same bits (x and M are never negative, so no product is
   -0), one addition less on the recursions' dependency chains. */
VBF_INLINE void vbf_hmm_mv_reg(vbf_v4 *out, const vbf_v4 *x, const double *M, const int Kp)
{
    vbf_v4 e[4], o[4];
    int i, l;
    {
        const vbf_v4 s0 = VBF_LANE(x[0], 0), s1 = VBF_LANE(x[0], 1);
        for (l = 0; l < Kp / 4; l++) {
            e[l] = s0 * vbf_load4(M + 4 * l);
            o[l] = s1 * vbf_load4(M + (long long)Kp + 4 * l);
        }
    }
    for (i = 2; i < Kp; i += 2) {
        const vbf_v4 s0 = VBF_LANE(x[i / 4], i % 4), s1 = VBF_LANE(x[i / 4], i % 4 + 1);
        for (l = 0; l < Kp / 4; l++) {
            e[l] = e[l] + s0 * vbf_load4(M + (long long)i * Kp + 4 * l);
            o[l] = o[l] + s1 * vbf_load4(M + (long long)(i + 1) * Kp + 4 * l);
        }
    }
    for (l = 0; l < Kp / 4; l++)
        out[l] = e[l] + o[l];
}

/* sum of the Kp lanes: vectors added in order, then (l0 + l1) + (l2 + l3) */
VBF_INLINE double vbf_hmm_sum_reg(const vbf_v4 *x, const int Kp)
{
    int l;
    vbf_v4 acc = x[0];
    for (l = 1; l < Kp / 4; l++)
        acc = acc + x[l];
    return vbf_hsum(acc);
}

/* rows [t0, t1) of the sequence: b (T, Kp) rows out, b_t = exp(l_t - m_t), pad lanes 0
   (m_t = max_j l_tj as a max over the lanes, then pairs, then the two halves);
   *msum += the m_t of the rows in order (a chunk's rows may come in several calls: the same
   sum), NaN when a row has no finite largest entry */
/* One step's emission row in registers (Kp / 4 vectors, pad lanes -inf) to its scaled
   probabilities: out[j] = exp(x_j - m) with m = max_j x_j (OUT *m). Returns 0, writing
   nothing, when m is not finite (every density zero, or an inf/NaN). */
VBF_INLINE int vbf_hmm_scale_row(const vbf_v4 *x, const int Kp, double *out, double *m)
{
    vbf_v4 h = x[0], x2;
    int l;
    for (l = 1; l < Kp / 4; l++)
        h = vbf_blend(h > x[l], h, x[l]);
    x2 = VBF_SHUFFLE(h, h, 1, 0, 3, 2);
    h = vbf_blend(h > x2, h, x2);
    x2 = VBF_SHUFFLE(h, h, 2, 3, 0, 1);
    h = vbf_blend(h > x2, h, x2);
    *m = h[0];
    if (!(*m > -INFINITY) || !isfinite(*m))
        return 0;
    for (l = 0; l < Kp / 4; l++)
        vbf_store4(out + 4 * l, vbf_exp4_nonpositive(x[l] - h));
    return 1;
}

VBF_INLINE void vbf_hmm_long_emis_k(int K, const int Kp, long long t0, long long t1,
                                    const double *lp, double *b, double *msum)
{
    long long t;
    int j, l;
    double buf[16], s = *msum;
    for (t = t0; t < t1; t++) {
        vbf_v4 x[4];
        const double *row = lp + t * K;
        double m;
        if (K == Kp) {
            for (l = 0; l < Kp / 4; l++)
                x[l] = vbf_load4(row + 4 * l);
        } else {
            for (j = 0; j < Kp; j++)
                buf[j] = j < K ? row[j] : -INFINITY;
            for (l = 0; l < Kp / 4; l++)
                x[l] = vbf_load4(buf + 4 * l);
        }
        if (!vbf_hmm_scale_row(x, Kp, b + t * Kp, &m)) {
            *msum = NAN;
            return;
        }
        s = s + m;
    }
    *msum = s;
}

VBF_INLINE void vbf_hmm_long_emis_body(int K, int Kp, long long t0, long long t1,
                                       const double *lp, double *b, double *msum)
{
    switch (Kp) {
    case 4: vbf_hmm_long_emis_k(K, 4, t0, t1, lp, b, msum); break;
    case 8: vbf_hmm_long_emis_k(K, 8, t0, t1, lp, b, msum); break;
    case 12: vbf_hmm_long_emis_k(K, 12, t0, t1, lp, b, msum); break;
    default: vbf_hmm_long_emis_k(K, 16, t0, t1, lp, b, msum);
    }
}
VBF_DISPATCH(vbf_hmm_long_emis, "avx2", vbf_cpu_avx2(),
             (int K, int Kp, long long t0, long long t1, const double *lp, double *b,
              double *msum), (K, Kp, t0, t1, lp, b, msum))

/* forward step t: alpha row t from row t - 1 (x holds a_{t-1}, gets a_t) */
VBF_INLINE void vbf_hmm_fwd_step(vbf_hmm_chain *c, vbf_v4 *x, long long t, const double *b,
                                 const double *startp, const double *Ap, double *alpha,
                                 const int Kp)
{
    vbf_v4 y[4], w[4];
    int l, e;
    const double *bt = b + t * Kp;
    double sigma = 1.0;
    if ((t & 1) == 0 && t >= 2) {
        c->ksum += c->e2;
        sigma = vbf_hmm_pow2_neg(c->e2);
    }
    for (l = 0; l < Kp / 4; l++)
        w[l] = vbf_load4(bt + 4 * l) * vbf_splat(sigma);
    if (t == 0) {
        for (l = 0; l < Kp / 4; l++)
            y[l] = vbf_load4(startp + 4 * l);
    } else {
        vbf_hmm_mv_reg(y, x, Ap, Kp);
    }
    for (l = 0; l < Kp / 4; l++) {
        x[l] = y[l] * w[l];
        vbf_store4(alpha + t * Kp + 4 * l, x[l]);
    }
    e = vbf_hmm_exponent(vbf_hmm_sum_reg(x, Kp));
    c->bad |= vbf_hmm_exp_bad(e);
    c->e2 = c->e1;
    c->e1 = e;
}

/* backward step u (t = T - 1 - u): x holds beta_{t+1}, gets beta_t; v_{t+1} into V's row
   t + 1. Step 0 sets beta_{T-1} = 1. */
VBF_INLINE void vbf_hmm_bwd_step(vbf_hmm_chain *c, vbf_v4 *x, long long u, long long T,
                                 const double *b, const double *ATp, double *V, int K,
                                 const int Kp)
{
    vbf_v4 w[4], v[4];
    int l, e;
    if (u == 0) {
        for (l = 0; l < Kp / 4; l++) {
            const vbf_v4 lane = {0.0, 1.0, 2.0, 3.0};
            x[l] = vbf_blend(lane + vbf_splat(4.0 * l) < vbf_splat((double)K), vbf_splat(1.0),
                             vbf_splat(0.0));
        }
    } else {
        const long long tn = T - u;  /* t + 1 */
        const double *bt = b + tn * Kp;
        double sigma = 1.0;
        if ((u & 1) == 0 && u >= 2) {
            sigma = vbf_hmm_pow2_neg(c->e2);
        }
        for (l = 0; l < Kp / 4; l++)
            w[l] = vbf_load4(bt + 4 * l) * vbf_splat(sigma);
        for (l = 0; l < Kp / 4; l++) {
            v[l] = x[l] * w[l];
            vbf_store4(V + tn * Kp + 4 * l, v[l]);
        }
        vbf_hmm_mv_reg(x, v, ATp, Kp);
    }
    e = vbf_hmm_exponent(vbf_hmm_sum_reg(x, Kp));
    c->bad |= vbf_hmm_exp_bad(e);
    c->e2 = c->e1;
    c->e1 = e;
}

/* which: 1 the forward recursion (alpha (T, Kp) out; *lsum = log S_{T-1} + log 2 sum k_t),
   2 the backward one (V (T, Kp) out, rows 1..T-1: v_t), 3 both interleaved in one loop.
   *bad: a sum left the range (the results are then not to be used). */
VBF_INLINE void vbf_hmm_chains_k(int which, int K, const int Kp, long long T, const double *b,
                                 const double *startp, const double *Ap, const double *ATp,
                                 double *alpha, double *V, double *lsum, int *bad)
{
    vbf_hmm_chain cf = {0, 0, 0, 0}, cb = {0, 0, 0, 0};
    vbf_v4 xf[4], xb[4];
    long long t;
    int l;
    for (l = 0; l < 4; l++) {
        xf[l] = vbf_splat(0.0);
        xb[l] = vbf_splat(0.0);
    }
    if (which == 3) {
        for (t = 0; t < T; t++) {
            vbf_hmm_fwd_step(&cf, xf, t, b, startp, Ap, alpha, Kp);
            vbf_hmm_bwd_step(&cb, xb, t, T, b, ATp, V, K, Kp);
        }
    } else if (which == 1) {
        for (t = 0; t < T; t++)
            vbf_hmm_fwd_step(&cf, xf, t, b, startp, Ap, alpha, Kp);
    } else {
        for (t = 0; t < T; t++)
            vbf_hmm_bwd_step(&cb, xb, t, T, b, ATp, V, K, Kp);
    }
    if (which & 1)
        *lsum = log(vbf_hmm_sum_reg(xf, Kp)) + 0.6931471805599453 * (double)cf.ksum;
    *bad = cf.bad | cb.bad;
}

VBF_INLINE void vbf_hmm_chains_body(int which, int K, int Kp, long long T, const double *b,
                                    const double *startp, const double *Ap, const double *ATp,
                                    double *alpha, double *V, double *lsum, int *bad)
{
    switch (Kp) {
    case 4: vbf_hmm_chains_k(which, K, 4, T, b, startp, Ap, ATp, alpha, V, lsum, bad); break;
    case 8: vbf_hmm_chains_k(which, K, 8, T, b, startp, Ap, ATp, alpha, V, lsum, bad); break;
    case 12: vbf_hmm_chains_k(which, K, 12, T, b, startp, Ap, ATp, alpha, V, lsum, bad); break;
    default: vbf_hmm_chains_k(which, K, 16, T, b, startp, Ap, ATp, alpha, V, lsum, bad);
    }
}
VBF_DISPATCH(vbf_hmm_chains, "avx2", vbf_cpu_avx2(),
             (int which, int K, int Kp, long long T, const double *b, const double *startp,
              const double *Ap, const double *ATp, double *alpha, double *V, double *lsum,
              int *bad), (which, K, Kp, T, b, startp, Ap, ATp, alpha, V, lsum, bad))

/* steps [t0, t1) of the combine: beta_t = A v_{t+1} again (the same operations as the
   backward step), gamma_t into post (T, K) rows (NULL: not wanted) and gamma0 (Kp) at t = 0,
   xi (Kp, Kp) slot (overwritten) = sum_{t0 <= t < min(t1, T - 1)} (a_t / Z_t)^T v_{t+1};
   *bad: some Z_t left the range */
VBF_INLINE void vbf_hmm_combine_k(int K, const int Kp, long long T, long long t0,
                                  long long t1, const double *alpha, const double *V,
                                  const double *ATp, double *post, double *gamma0,
                                  double *xi, int *bad, vbf_v4 (*acc)[Kp / 4])
{
    vbf_v4 beta[4], v[4], a[4], g[4];
    double buf[16];
    long long t;
    int i, l, fail = 0;
    for (i = 0; i < Kp; i++)
        for (l = 0; l < Kp / 4; l++)
            acc[i][l] = vbf_splat(0.0);
    for (t = t0; t < t1; t++) {
        double z, r;
        if (t == T - 1) {
            for (l = 0; l < Kp / 4; l++) {
                const vbf_v4 lane = {0.0, 1.0, 2.0, 3.0};
                beta[l] = vbf_blend(lane + vbf_splat(4.0 * l) < vbf_splat((double)K),
                                    vbf_splat(1.0), vbf_splat(0.0));
                v[l] = vbf_splat(0.0);
            }
        } else {
            for (l = 0; l < Kp / 4; l++)
                v[l] = vbf_load4(V + (t + 1) * Kp + 4 * l);
            vbf_hmm_mv_reg(beta, v, ATp, Kp);
        }
        for (l = 0; l < Kp / 4; l++) {
            a[l] = vbf_load4(alpha + t * Kp + 4 * l);
            g[l] = a[l] * beta[l];
        }
        z = vbf_hmm_sum_reg(g, Kp);
        fail |= vbf_hmm_exp_bad(vbf_hmm_exponent(z));
        r = 1.0 / z;
        for (l = 0; l < Kp / 4; l++)
            g[l] = g[l] * vbf_splat(r);
        if (post != NULL) {
            double *pt = post + t * K;
            if (K == Kp) {
                for (l = 0; l < Kp / 4; l++)
                    vbf_store4(pt + 4 * l, g[l]);
            } else {
                for (l = 0; l < Kp / 4; l++)
                    vbf_store4(buf + 4 * l, g[l]);
                for (i = 0; i < K; i++)
                    pt[i] = buf[i];
            }
        }
        if (t == 0)
            for (l = 0; l < Kp / 4; l++)
                vbf_store4(gamma0 + 4 * l, g[l]);
        if (t < T - 1) {
            for (l = 0; l < Kp / 4; l++)
                a[l] = a[l] * vbf_splat(r);
            for (i = 0; i < Kp; i++) {  /* (the pad rows stay 0) */
                const vbf_v4 s = VBF_LANE(a[i / 4], i % 4);
                for (l = 0; l < Kp / 4; l++)
                    acc[i][l] = acc[i][l] + s * v[l];
            }
        }
    }
    for (i = 0; i < Kp; i++)
        for (l = 0; l < Kp / 4; l++)
            vbf_store4(xi + (long long)i * Kp + 4 * l, acc[i][l]);
    *bad = fail;
}

VBF_INLINE void vbf_hmm_combine_body(int K, int Kp, long long T, long long t0, long long t1,
                                     const double *alpha, const double *V, const double *ATp,
                                     double *post, double *gamma0, double *xi, int *bad)
{
    /* the accumulators declared here, of a constant size: in registers for small Kp */
    switch (Kp) {
    case 4: {
        vbf_v4 acc[4][1];
        vbf_hmm_combine_k(K, 4, T, t0, t1, alpha, V, ATp, post, gamma0, xi, bad, acc);
        break;
    }
    case 8: {
        vbf_v4 acc[8][2];
        vbf_hmm_combine_k(K, 8, T, t0, t1, alpha, V, ATp, post, gamma0, xi, bad, acc);
        break;
    }
    case 12: {
        vbf_v4 acc[12][3];
        vbf_hmm_combine_k(K, 12, T, t0, t1, alpha, V, ATp, post, gamma0, xi, bad, acc);
        break;
    }
    default: {
        vbf_v4 acc[16][4];
        vbf_hmm_combine_k(K, 16, T, t0, t1, alpha, V, ATp, post, gamma0, xi, bad, acc);
    }
    }
}
VBF_DISPATCH(vbf_hmm_combine, "avx2", vbf_cpu_avx2(),
             (int K, int Kp, long long T, long long t0, long long t1, const double *alpha,
              const double *V, const double *ATp, double *post, double *gamma0, double *xi,
              int *bad), (K, Kp, T, t0, t1, alpha, V, ATp, post, gamma0, xi, bad))
#else
/* compilers without vector extensions: the same operations one lane at a time */
static void vbf_hmm_long_emis(int K, int Kp, long long t0, long long t1, const double *lp,
                              double *b, double *msum)
{
    long long t;
    int j;
    double m, s = *msum;
    for (t = t0; t < t1; t++) {
        const double *row = lp + t * K;
        m = -INFINITY;
        for (j = 0; j < K; j++)
            m = row[j] > m ? row[j] : m;
        if (!(m > -INFINITY) || !isfinite(m)) {
            *msum = NAN;
            return;
        }
        s = s + m;
        for (j = 0; j < Kp; j++)
            b[t * Kp + j] = j < K ? exp(row[j] - m) : 0.0;
    }
    *msum = s;
}

static void vbf_hmm_mv_lanes(double *out, const double *x, const double *M, int Kp)
{
    int i, j;
    for (j = 0; j < Kp; j++) {
        double e = 0.0, o = 0.0;
        for (i = 0; i < Kp; i += 2) {
            e = e + x[i] * M[i * Kp + j];
            o = o + x[i + 1] * M[(i + 1) * Kp + j];
        }
        out[j] = e + o;
    }
}

static double vbf_hmm_sum_lanes(const double *x, int Kp)
{
    double a[4];
    int j, l;
    for (j = 0; j < 4; j++) {
        a[j] = x[j];
        for (l = 4; l < Kp; l += 4)
            a[j] = a[j] + x[l + j];
    }
    return (a[0] + a[1]) + (a[2] + a[3]);
}

static void vbf_hmm_chains(int which, int K, int Kp, long long T, const double *b,
                           const double *startp, const double *Ap, const double *ATp,
                           double *alpha, double *V, double *lsum, int *bad)
{
    double x[16], y[16], sigma;
    long long t, ksum = 0;
    int j, e, e1 = 0, e2 = 0, fail = 0;
    if (which & 1) {
        for (t = 0; t < T; t++) {
            sigma = 1.0;
            if ((t & 1) == 0 && t >= 2) {
                ksum += e2;
                sigma = vbf_hmm_pow2_neg(e2);
            }
            if (t == 0)
                for (j = 0; j < Kp; j++)
                    y[j] = startp[j];
            else
                vbf_hmm_mv_lanes(y, x, Ap, Kp);
            for (j = 0; j < Kp; j++) {
                x[j] = y[j] * (b[t * Kp + j] * sigma);
                alpha[t * Kp + j] = x[j];
            }
            e = vbf_hmm_exponent(vbf_hmm_sum_lanes(x, Kp));
            fail |= vbf_hmm_exp_bad(e);
            e2 = e1;
            e1 = e;
        }
        *lsum = log(vbf_hmm_sum_lanes(x, Kp)) + 0.6931471805599453 * (double)ksum;
    }
    if (which & 2) {
        e1 = e2 = 0;
        for (t = 0; t < T; t++) {
            if (t == 0) {
                for (j = 0; j < Kp; j++)
                    x[j] = j < K ? 1.0 : 0.0;
            } else {
                const long long tn = T - t;
                sigma = 1.0;
                if ((t & 1) == 0 && t >= 2)
                    sigma = vbf_hmm_pow2_neg(e2);
                for (j = 0; j < Kp; j++) {
                    y[j] = x[j] * (b[tn * Kp + j] * sigma);
                    V[tn * Kp + j] = y[j];
                }
                vbf_hmm_mv_lanes(x, y, ATp, Kp);
            }
            e = vbf_hmm_exponent(vbf_hmm_sum_lanes(x, Kp));
            fail |= vbf_hmm_exp_bad(e);
            e2 = e1;
            e1 = e;
        }
    }
    *bad = fail;
}

static void vbf_hmm_combine(int K, int Kp, long long T, long long t0, long long t1,
                            const double *alpha, const double *V, const double *ATp,
                            double *post, double *gamma0, double *xi, int *bad)
{
    double beta[16], g[16], a[16], z, r;
    long long t;
    int i, j, fail = 0;
    for (i = 0; i < Kp * Kp; i++)
        xi[i] = 0.0;
    for (t = t0; t < t1; t++) {
        if (t == T - 1)
            for (j = 0; j < Kp; j++)
                beta[j] = j < K ? 1.0 : 0.0;
        else
            vbf_hmm_mv_lanes(beta, V + (t + 1) * Kp, ATp, Kp);
        for (j = 0; j < Kp; j++)
            g[j] = alpha[t * Kp + j] * beta[j];
        z = vbf_hmm_sum_lanes(g, Kp);
        fail |= vbf_hmm_exp_bad(vbf_hmm_exponent(z));
        r = 1.0 / z;
        for (j = 0; j < Kp; j++)
            g[j] = g[j] * r;
        if (post != NULL)
            for (j = 0; j < K; j++)
                post[t * K + j] = g[j];
        if (t == 0)
            for (j = 0; j < Kp; j++)
                gamma0[j] = g[j];
        if (t < T - 1) {
            for (j = 0; j < Kp; j++)
                a[j] = alpha[t * Kp + j] * r;
            for (i = 0; i < Kp; i++)
                for (j = 0; j < Kp; j++)
                    xi[i * Kp + j] = xi[i * Kp + j] + a[i] * V[(t + 1) * Kp + j];
        }
    }
    *bad = fail;
}
#endif

/* ---- the long-sequence pass's threads: one parallel region, work claimed from counters ---

   Every thread of the region runs vbf_hmm_long_worker: it claims chunks of the densities,
   then one of the two recursions, then chunks of the combine, from shared counters, and
   waits between the phases (spinning briefly, then in 20 us naps: OpenMP's own barriers spin
   actively, which makes two threads many times slower than one when other processes share
   the cores). A thread that finds the other has not reached the region yet (a busy machine)
   runs both recursions interleaved itself; a late thread finds the work claimed. Which
   thread does what does not change a bit of the result: the chunks write their own slots,
   and each recursion is the same operations alone or interleaved. */
#ifdef _OPENMP
#include <omp.h>
#endif
#include "vbf_wait.h"

typedef struct {
    int K, Kp, backward;
    long long T, chunk, n_chunks;
    const double *lp, *startp, *Ap, *ATp;
    double *b, *alpha, *V, *post, *gamma0, *xi_slots, *msum, *lsum;
    int *bad;                    /* (n_chunks + 2,): the forward, the backward, the chunks */
    long long claim_emis, done_emis, claim_comb, done_chains;
    int arrived, claim_chains;
    /* Optional emission hooks (NULL: lp is given, no emission statistics). emis_rows makes
       the densities b_t of rows [t0, t1) (at most VBF_HMM_LONG_SUB; b's rows t0.. written,
       *msum += their m_t in order, as vbf_hmm_long_emis) from the data itself, so the
       (T, K) log-densities are never stored; stats_chunk turns a combined chunk's
       posteriors (post rows [t0, t1)) into its emission statistics slot (em_slots + k
       em_width, overwritten). Each thread gets scratch_size doubles of scratch (malloc'd
       in the worker; nomem set when that fails). */
    void (*emis_rows)(const void *arg, long long t0, long long t1, double *scratch,
                      double *b, double *msum);
    void (*stats_chunk)(const void *arg, long long t0, long long t1, const double *post,
                        double *slot, double *scratch);
    const void *hook_arg;
    double *em_slots;
    long long em_width, scratch_size;
    int nomem;
} vbf_hmm_long_ctx;

/* Rows made at a time by emis_rows and stats_chunk's blocks (scratch in L1) */
#define VBF_HMM_LONG_SUB 128

/* chunk k's densities b_t (and its m_t sum): from lp, or from the data through emis_rows in
   blocks of VBF_HMM_LONG_SUB rows */
static void vbf_hmm_long_emis_chunk(vbf_hmm_long_ctx *c, long long k, double *scratch)
{
    long long t0 = k * c->chunk, t1 = t0 + c->chunk < c->T ? t0 + c->chunk : c->T, s, e;
    c->msum[k] = 0.0;
    if (c->emis_rows == NULL) {
        vbf_hmm_long_emis(c->K, c->Kp, t0, t1, c->lp, c->b, c->msum + k);
        return;
    }
    if (scratch == NULL) {
        c->msum[k] = NAN;
        return;
    }
    for (s = t0; s < t1; s += VBF_HMM_LONG_SUB) {
        e = s + VBF_HMM_LONG_SUB < t1 ? s + VBF_HMM_LONG_SUB : t1;
        c->emis_rows(c->hook_arg, s, e, scratch, c->b, c->msum + k);
    }
}

/* chunk k's combine (posteriors, xi slot), then its emission statistics if asked */
static void vbf_hmm_long_comb_chunk(vbf_hmm_long_ctx *c, long long k, double *scratch)
{
    long long t0 = k * c->chunk, t1 = t0 + c->chunk < c->T ? t0 + c->chunk : c->T;
    vbf_hmm_combine(c->K, c->Kp, c->T, t0, t1, c->alpha, c->V, c->ATp, c->post, c->gamma0,
                    c->xi_slots + k * c->Kp * c->Kp, c->bad + 2 + k);
    if (c->stats_chunk != NULL) {
        if (scratch == NULL)
            c->bad[2 + k] = 1;
        else
            c->stats_chunk(c->hook_arg, t0, t1, c->post, c->em_slots + k * c->em_width,
                           scratch);
    }
}

static double *vbf_hmm_long_scratch(vbf_hmm_long_ctx *c)
{
    double *p;
    if (c->scratch_size <= 0)
        return NULL;
    p = (double *)malloc((size_t)c->scratch_size * sizeof(double));
    if (p == NULL)
        c->nomem = 1;  /* (any thread that fails: the same value) */
    return p;
}

#ifdef VBF_HAVE_WAIT
static void vbf_hmm_long_worker(vbf_hmm_long_ctx *c)
{
    long long k;
    int team = 1, task;
#ifdef _OPENMP
    team = omp_get_num_threads();
#endif
    double *scratch;
    __atomic_add_fetch(&c->arrived, 1, __ATOMIC_ACQ_REL);
    scratch = vbf_hmm_long_scratch(c);
    while ((k = __atomic_fetch_add(&c->claim_emis, 1, __ATOMIC_RELAXED)) < c->n_chunks) {
        vbf_hmm_long_emis_chunk(c, k, scratch);
        __atomic_add_fetch(&c->done_emis, 1, __ATOMIC_ACQ_REL);
    }
    VBF_WAIT_AT_LEAST(&c->done_emis, c->n_chunks);
    if (!c->backward) {
        if (__atomic_fetch_add(&c->claim_chains, 1, __ATOMIC_ACQ_REL) == 0)
            vbf_hmm_chains(1, c->K, c->Kp, c->T, c->b, c->startp, c->Ap, c->ATp, c->alpha,
                           c->V, c->lsum, c->bad);
        free(scratch);
        return;  /* (the region's end waits for the forward) */
    }
    task = 0;
    if ((team == 1 || __atomic_load_n(&c->arrived, __ATOMIC_ACQUIRE) < team) &&
        __atomic_compare_exchange_n(&c->claim_chains, &task, 2, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        /* alone so far: both recursions, interleaved */
        vbf_hmm_chains(3, c->K, c->Kp, c->T, c->b, c->startp, c->Ap, c->ATp, c->alpha, c->V,
                       c->lsum, c->bad);
        __atomic_add_fetch(&c->done_chains, 2, __ATOMIC_ACQ_REL);
    } else {
        /* one recursion each; whatever is left unclaimed, this thread runs too */
        while ((task = __atomic_fetch_add(&c->claim_chains, 1, __ATOMIC_ACQ_REL)) < 2) {
            vbf_hmm_chains(1 + task, c->K, c->Kp, c->T, c->b, c->startp, c->Ap, c->ATp,
                           c->alpha, c->V, c->lsum, c->bad + task);
            __atomic_add_fetch(&c->done_chains, 1, __ATOMIC_ACQ_REL);
        }
    }
    VBF_WAIT_AT_LEAST(&c->done_chains, 2);
    if (!(c->bad[0] || c->bad[1]))
        while ((k = __atomic_fetch_add(&c->claim_comb, 1, __ATOMIC_RELAXED)) < c->n_chunks)
            vbf_hmm_long_comb_chunk(c, k, scratch);
    free(scratch);
}
#else
/* elsewhere: the first thread of the region does everything, in the same operations */
static void vbf_hmm_long_worker(vbf_hmm_long_ctx *c)
{
    long long k;
    double *scratch;
#ifdef _OPENMP
    if (omp_get_thread_num() != 0)
        return;
#endif
    scratch = vbf_hmm_long_scratch(c);
    for (k = 0; k < c->n_chunks; k++)
        vbf_hmm_long_emis_chunk(c, k, scratch);
    vbf_hmm_chains(c->backward ? 3 : 1, c->K, c->Kp, c->T, c->b, c->startp, c->Ap, c->ATp,
                   c->alpha, c->V, c->lsum, c->bad);
    if (c->backward && !c->bad[0])
        for (k = 0; k < c->n_chunks; k++)
            vbf_hmm_long_comb_chunk(c, k, scratch);
    free(scratch);
}
#endif

#endif
