/* The discrete-mixture pass over one chunk of rows (see _discrete_kernel.pyx for the model).

   Classes are padded to Kp (a multiple of 4) so that every row of the table and of the
   statistics is whole 4-lane vectors: the table's padded lanes are 0 and the constant's
   -inf, so a padded class has log rho = -inf, responsibility 0 and no statistics. A row's
   log rho, max, exp and the statistics' updates are lane-wise vector operations; with
   GCC/Clang on x86-64 the chunk function is compiled for AVX2 (no FMA) and for the baseline
   and chosen at run time: without FMA both builds do the same IEEE operations, so the
   results are the same bits on every x86-64 CPU. The class count is a compile-time constant
   for Kp <= 16 (the row's accumulators stay in registers); the values' kind (one-hot,
   float32, float64 counts) is one too. */
#ifndef VBFAST_DISCRETE_KERNELS_H
#define VBFAST_DISCRETE_KERNELS_H

#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include "vbf_rng.h"
#include "vbf_simd_math.h"

typedef struct {
    int K, Kp;
    ptrdiff_t L;
    const long long *indptr;     /* (N + 1,) */
    const int *indices;          /* (nnz,) columns in [0, L) */
    const float *values32;       /* (nnz,) or NULL */
    const double *values64;      /* (nnz,) or NULL; both NULL: one-hot, every value 1 */
    const double *weights;       /* (N,) or NULL */
    const double *table;         /* (L, Kp) log-probabilities, padded lanes 0 */
    const double *log_const;     /* (Kp,), padded lanes -inf */
    const double *resp_in;       /* (N, K) or NULL */
    int compute_stats, sample_z;
    uint64_t stream;
    double *nk;                  /* (G, Kp) */
    double *stat;                /* (G, L * Kp) */
    double *ll, *ent;            /* (G,) */
    double *resp_out;            /* (N, K) or NULL */
    double *lpn_out;             /* (N,) or NULL */
    int *z_out;                  /* (N,) or NULL */
} vbf_dpass;

/* After log rho (lp, Kp lanes): responsibilities into lp, the row's log p(x) and its
   entropy term sum_k r log r; scalar per class (K is small next to the lookups). Returns
   log p(x_n). */
static inline double vbf_dpass_normalise(int K, double *lp, double *ent_row)
{
    double mx = lp[0], s = 0.0, v = 0.0, r, v_k, ls;
    int k;
    for (k = 1; k < K; k++)
        if (lp[k] > mx) mx = lp[k];
    if (mx == -INFINITY) {
        /* no class can produce this row: no evidence, uniform rather than NaN */
        for (k = 0; k < K; k++) lp[k] = 1.0 / K;
        *ent_row = 0.0;
        return -INFINITY;
    }
    for (k = 0; k < K; k++) {
        /* exp(-50) < 2e-22 cannot change s >= 1: skipped, as in the Gaussian pass */
        v_k = lp[k] - mx;
        r = v_k > -50.0 ? exp(v_k) : 0.0;
        s += r;
        if (r > 0.0) v += r * v_k;
        lp[k] = r;
    }
    ls = log(s);
    r = 1.0 / s;
    for (k = 0; k < K; k++) lp[k] *= r;
    /* sum_k r_k log r_k = sum_k r_k (log rho_k - mx) - log s */
    *ent_row = v * r - ls;
    return mx + ls;
}

/* The Gibbs draw z ~ Cat(lp) by inverse CDF against the total (rounding cannot overrun; a
   class with r = 0 is never chosen); lp becomes the indicator of z. Returns z. */
static inline int vbf_dpass_draw(int K, double *lp, uint64_t stream, ptrdiff_t n)
{
    double s = 0.0, u, v = 0.0;
    int k, z = K - 1;
    for (k = 0; k < K; k++) s += lp[k];
    u = vbf_uniform_at(stream, (uint64_t)n) * s;
    for (k = 0; k < K; k++) {
        v += lp[k];
        if (u < v) { z = k; break; }
    }
    while (lp[z] <= 0.0 && z > 0) z--;
    return z;
}

#if defined(__GNUC__)

/* vbf_dpass_normalise on the row's accumulators (nq vectors, padded lanes -inf), with the
   vector exp, but without the logarithm: responsibilities into lp (padded lanes 0), the sum
   s = sum_k exp(log rho_k - mx) into *s_out and sum_k r_k (log rho_k - mx) into *v_out; returns
   mx. Then log p(x_n) = mx + log s and sum_k r_k log r_k = v - log s. A row no class can
   produce gets uniform responsibilities, s = 1, v = 0 and mx = -inf. */
VBF_INLINE double vbf_dpass_normalise_v(int K, const int nq, const vbf_v4 *acc, double *lp,
                                        double *s_out, double *v_out)
{
    vbf_v4 m = acc[0], s = vbf_splat(0.0), v = vbf_splat(0.0), d, r;
    double mx, inv, st;
    int q, k;
    for (q = 1; q < nq; q++) m = vbf_blend(acc[q] > m, acc[q], m);
    mx = m[0] > m[1] ? m[0] : m[1];
    if (m[2] > mx) mx = m[2];
    if (m[3] > mx) mx = m[3];
    if (mx == -INFINITY) {
        for (k = 0; k < K; k++) lp[k] = 1.0 / K;
        for (k = K; k < 4 * nq; k++) lp[k] = 0.0;
        *s_out = 1.0;
        *v_out = 0.0;
        return -INFINITY;
    }
    m = vbf_splat(mx);
    for (q = 0; q < nq; q++) {
        /* exp(-50) < 2e-22 cannot change s >= 1: set to 0, as in the Gaussian pass */
        d = acc[q] - m;
        r = vbf_from_bits(vbf_bits(vbf_exp4_nonpositive(d)) & (d > vbf_splat(-50.0)));
        s += r;
        v += vbf_from_bits(vbf_bits(r * d) & (r > vbf_splat(0.0)));
        vbf_store4(lp + 4 * q, r);
    }
    st = vbf_hsum(s);
    inv = 1.0 / st;
    m = vbf_splat(inv);
    for (q = 0; q < nq; q++) vbf_store4(lp + 4 * q, vbf_load4(lp + 4 * q) * m);
    *s_out = st;
    *v_out = vbf_hsum(v) * inv;
    return mx;
}

/* x of non-zero i by the values' kind (0: one-hot, 1: float32, 2: float64) */
#define VBF_DX(vk, p, i) ((vk) == 2 ? (p)->values64[i] : (vk) == 1 ? (double)(p)->values32[i] : 1.0)

VBF_INLINE void vbf_dpass_chunk_t(const vbf_dpass *p, ptrdiff_t g, ptrdiff_t start,
                                  ptrdiff_t end, const int nq, const int vk)
{
    /* the row's scratch and the chunk's N_k live on this thread's stack: heap blocks of
       neighbouring threads (or neighbouring groups' N_k slots) would share cache lines
       written every row */
    double lp[4 * (nq > 0 ? nq : 1)];
    vbf_v4 nkacc[nq > 0 ? nq : 1];
    const int K = p->K, Kp = p->Kp;
    const long long *indptr = p->indptr;
    const int *indices = p->indices;
    const double *table = p->table;
    double *nk = p->nk + g * Kp;
    double *stat = p->stat + g * p->L * Kp;
    double ll_chunk = 0.0, ent_chunk = 0.0, w, lpn, mx, s_row, v_row, ls;
    /* unit weights and no per-row outputs: the rows' log s summed as the log of their
       product, one logarithm every few hundred rows (s is in [1, K]) */
    const int batch_logs = p->weights == NULL && p->lpn_out == NULL && !p->sample_z;
    double s_prod = 1.0, log_s_sum = 0.0;
    ptrdiff_t n, i;
    long long i0, i1;
    int q, k, z;
    vbf_v4 acc[nq > 0 ? nq : 1];
    for (q = 0; q < nq; q++) nkacc[q] = vbf_splat(0.0);
    for (n = start; n < end; n++) {
        w = p->weights != NULL ? p->weights[n] : 1.0;
        i0 = indptr[n];
        i1 = indptr[n + 1];
        if (p->resp_in != NULL) {
            for (k = 0; k < K; k++) lp[k] = p->resp_in[n * K + k];
            for (k = K; k < Kp; k++) lp[k] = 0.0;
        } else {
            for (q = 0; q < nq; q++) acc[q] = vbf_load4(p->log_const + 4 * q);
            for (i = i0; i < i1; i++) {
                const double *t = table + (ptrdiff_t)indices[i] * Kp;
                if (vk) {
                    const vbf_v4 x = vbf_splat(VBF_DX(vk, p, i));
                    for (q = 0; q < nq; q++) acc[q] += x * vbf_load4(t + 4 * q);
                } else {
                    for (q = 0; q < nq; q++) acc[q] += vbf_load4(t + 4 * q);
                }
            }
            mx = vbf_dpass_normalise_v(K, nq, acc, lp, &s_row, &v_row);
            if (p->resp_out != NULL)
                for (k = 0; k < K; k++) p->resp_out[n * K + k] = lp[k];
            if (batch_logs) {
                ll_chunk += mx;
                ent_chunk += v_row;
                s_prod *= s_row;
                if (s_prod > 0x1p600) {
                    log_s_sum += log(s_prod);
                    s_prod = 1.0;
                }
            } else {
                ls = log(s_row);
                lpn = mx + ls;
                if (p->lpn_out != NULL) p->lpn_out[n] = lpn;
                if (p->sample_z) {
                    z = vbf_dpass_draw(K, lp, p->stream, n);
                    ll_chunk += w * (lpn + log(lp[z]));
                    for (k = 0; k < Kp; k++) lp[k] = 0.0;
                    lp[z] = 1.0;
                    if (p->z_out != NULL) p->z_out[n] = z;
                } else {
                    ll_chunk += w * lpn;
                    ent_chunk += w * (v_row - ls);
                }
            }
        }
        if (!p->compute_stats) continue;
        for (q = 0; q < nq; q++) {
            acc[q] = vbf_load4(lp + 4 * q) * vbf_splat(w);
            nkacc[q] += acc[q];
        }
        for (i = i0; i < i1; i++) {
            double *s = stat + (ptrdiff_t)indices[i] * Kp;
            if (vk) {
                const vbf_v4 x = vbf_splat(VBF_DX(vk, p, i));
                for (q = 0; q < nq; q++)
                    vbf_store4(s + 4 * q, vbf_load4(s + 4 * q) + x * acc[q]);
            } else {
                for (q = 0; q < nq; q++)
                    vbf_store4(s + 4 * q, vbf_load4(s + 4 * q) + acc[q]);
            }
        }
    }
    log_s_sum += log(s_prod);
    ll_chunk += log_s_sum;
    ent_chunk -= log_s_sum;
    for (q = 0; q < nq; q++) vbf_store4(nk + 4 * q, vbf_load4(nk + 4 * q) + nkacc[q]);
    p->ll[g] += ll_chunk;
    p->ent[g] += ent_chunk;
}

/* one values kind, Kp/4 a constant up to 4 (else the run-time count) */
#define VBF_DPASS_NQ(p, g, s, e, vk) do {                                     \
        switch ((p)->Kp / 4) {                                                    \
        case 1: vbf_dpass_chunk_t(p, g, s, e, 1, vk); break;                  \
        case 2: vbf_dpass_chunk_t(p, g, s, e, 2, vk); break;                  \
        case 3: vbf_dpass_chunk_t(p, g, s, e, 3, vk); break;                  \
        case 4: vbf_dpass_chunk_t(p, g, s, e, 4, vk); break;                  \
        default: vbf_dpass_chunk_t(p, g, s, e, (p)->Kp / 4, vk); break;       \
        }                                                                         \
    } while (0)

VBF_INLINE void vbf_dpass_chunk_body(const vbf_dpass *p, ptrdiff_t g, ptrdiff_t start,
                                     ptrdiff_t end)
{
    if (p->values64 != NULL) VBF_DPASS_NQ(p, g, start, end, 2);
    else if (p->values32 != NULL) VBF_DPASS_NQ(p, g, start, end, 1);
    else VBF_DPASS_NQ(p, g, start, end, 0);
}

VBF_DISPATCH(vbf_dpass_chunk, "avx2", vbf_cpu_avx2(),
             (const vbf_dpass *p, ptrdiff_t g, ptrdiff_t start, ptrdiff_t end),
             (p, g, start, end))

#else  /* plain C: the same operations class by class */

static void vbf_dpass_chunk(const vbf_dpass *p, ptrdiff_t g, ptrdiff_t start, ptrdiff_t end)
{
    double *lp = (double *)malloc(p->Kp * sizeof(double));  /* this chunk's own scratch */
    const int K = p->K, Kp = p->Kp;
    double *nk = p->nk + g * Kp;
    double *stat = p->stat + g * p->L * Kp;
    double ll_chunk = 0.0, ent_chunk = 0.0, w, x, lpn, ent_row;
    const double *t;
    double *s;
    ptrdiff_t n, i;
    int k, z;
    for (n = start; n < end; n++) {
        w = p->weights != NULL ? p->weights[n] : 1.0;
        if (p->resp_in != NULL) {
            for (k = 0; k < K; k++) lp[k] = p->resp_in[n * K + k];
        } else {
            for (k = 0; k < Kp; k++) lp[k] = p->log_const[k];
            for (i = p->indptr[n]; i < p->indptr[n + 1]; i++) {
                t = p->table + (ptrdiff_t)p->indices[i] * Kp;
                x = p->values64 ? p->values64[i] : p->values32 ? (double)p->values32[i] : 1.0;
                for (k = 0; k < Kp; k++) lp[k] += (p->values64 || p->values32) ? x * t[k] : t[k];
            }
            lpn = vbf_dpass_normalise(K, lp, &ent_row);
            if (p->lpn_out != NULL) p->lpn_out[n] = lpn;
            if (p->resp_out != NULL)
                for (k = 0; k < K; k++) p->resp_out[n * K + k] = lp[k];
            if (p->sample_z) {
                z = vbf_dpass_draw(K, lp, p->stream, n);
                ll_chunk += w * (lpn + log(lp[z]));
                for (k = 0; k < K; k++) lp[k] = 0.0;
                lp[z] = 1.0;
                if (p->z_out != NULL) p->z_out[n] = z;
            } else {
                ll_chunk += w * lpn;
                ent_chunk += w * ent_row;
            }
        }
        if (!p->compute_stats) continue;
        for (k = 0; k < K; k++) { lp[k] *= w; nk[k] += lp[k]; }
        for (i = p->indptr[n]; i < p->indptr[n + 1]; i++) {
            s = stat + (ptrdiff_t)p->indices[i] * Kp;
            x = p->values64 ? p->values64[i] : p->values32 ? (double)p->values32[i] : 1.0;
            for (k = 0; k < K; k++) s[k] += (p->values64 || p->values32) ? x * lp[k] : lp[k];
        }
    }
    p->ll[g] += ll_chunk;
    p->ent[g] += ent_chunk;
    free(lp);
}

#endif
#endif
