/* The Gaussian emission hooks of the long-sequence pass (_hmm.pyx's gaussian_long_pass:
   'diag' / 'spherical', K <= 16, one sequence), so that the pass reads X itself:

   - vbf_hmm_gauss_emis_rows: the densities b_t = exp(l_t - m_t) of a block of rows, l by
     the affine form of _hmm.pyx's gaussian_log_density (the operations of
     vbf_hmm_features_* then vbf_hmm_affine, row by row in registers: the same bits as that
     function's output), so the (T, K) log-densities are never stored;
   - vbf_hmm_gauss_stats_chunk: a combined chunk's emission statistics from its posteriors
     (still in cache), by vbf_hmm_gstats_cols (rows added in order), into the chunk's slot
     [nk (Kp), s1 (D, Kp), s2 (D, Kp) 'diag' / (Kp) 'spherical'] about stats_shift.

   The slots are added in chunk order by the caller: the same bits for any thread count. */
#ifndef VBFAST_HMM_LONG_GAUSS_H
#define VBFAST_HMM_LONG_GAUSS_H

#include <string.h>
#include "_hmm_emission.h"
#include "_hmm_kernels.h"

typedef struct {
    const double *Xd;            /* (T, D) float64 rows, or NULL */
    const float *Xf;             /* (T, D) float32 rows, or NULL */
    int D, K, Kp, n_aux, spherical;
    const double *shift;         /* (D,) the densities' shift (mean of the means) */
    const double *stats_shift;   /* (D,) the statistics' shift (the data mean) */
    const double *WTp, *cstp;    /* (n_aux, Kp), (Kp,): the affine form, zero-padded */
} vbf_hmm_gauss_rows;

/* doubles of scratch per thread the hooks need (out block, features, shifted rows) */
static long long vbf_hmm_gauss_scratch(const vbf_hmm_gauss_rows *g)
{
    return (long long)VBF_HMM_LONG_SUB * (g->K + g->n_aux + g->D) + 16;
}

/* y = x - stats_shift for b rows */
static void vbf_hmm_gauss_shifted(const vbf_hmm_gauss_rows *g, long long t0, int b, double *ys)
{
    const int D = g->D;
    long long n;
    int j;
    for (n = 0; n < b; n++)
        for (j = 0; j < D; j++)
            ys[n * D + j] = (g->Xf != NULL ? (double)g->Xf[(t0 + n) * D + j]
                             : g->Xd[(t0 + n) * D + j]) - g->stats_shift[j];
}

/* b_t = exp(l_t - m_t) of rows [t0, t1) into b (rows at b + t Kp), *msum += the m_t in
   order (NaN, and return, at a row with no finite largest density): the operations of
   vbf_hmm_features_*, vbf_hmm_affine and vbf_hmm_long_emis in turn (the same bits), row by
   row in registers, with no feature or density buffer. */
#if defined(__GNUC__)
VBF_INLINE double vbf_hmm_gauss_x(const vbf_hmm_gauss_rows *g, long long i)
{
    return g->Xf != NULL ? (double)g->Xf[i] : g->Xd[i];
}

VBF_INLINE void vbf_hmm_gauss_b_k(const vbf_hmm_gauss_rows *g, long long t0, long long t1,
                                  double *b, double *msum, const int Kp)
{
    const int D = g->D, K = g->K, spherical = g->spherical;
    const double *WT = g->WTp, *shift = g->shift;
    const vbf_v4 lane = {0.0, 1.0, 2.0, 3.0};
    vbf_i4 real[4];
    long long t;
    int j, l;
    double s = *msum;
    for (l = 0; l < Kp / 4; l++)
        real[l] = lane + vbf_splat(4.0 * l) < vbf_splat((double)K);
    for (t = t0; t < t1; t++) {
        vbf_v4 acc[4];
        double q = 0.0, m;
        const long long row = t * D;
        for (l = 0; l < Kp / 4; l++)
            acc[l] = vbf_load4(g->cstp + 4 * l);
        for (j = 0; j < D; j++) {  /* the features y_j (a = j) */
            const double y = vbf_hmm_gauss_x(g, row + j) - shift[j];
            const vbf_v4 za = vbf_splat(y);
            if (spherical)
                q = q + y * y;
            for (l = 0; l < Kp / 4; l++)
                acc[l] = acc[l] + za * vbf_load4(WT + (long long)j * Kp + 4 * l);
        }
        if (spherical) {  /* ||y||^2 (a = D) */
            for (l = 0; l < Kp / 4; l++)
                acc[l] = acc[l] + vbf_splat(q) * vbf_load4(WT + (long long)D * Kp + 4 * l);
        } else {  /* y_j^2 (a = D + j) */
            for (j = 0; j < D; j++) {
                const double y = vbf_hmm_gauss_x(g, row + j) - shift[j];
                const vbf_v4 za = vbf_splat(y * y);
                for (l = 0; l < Kp / 4; l++)
                    acc[l] = acc[l] + za * vbf_load4(WT + (long long)(D + j) * Kp + 4 * l);
            }
        }
        for (l = 0; l < Kp / 4; l++)  /* (pad lanes -inf: as vbf_hmm_long_emis reads them) */
            acc[l] = vbf_blend(real[l], acc[l], vbf_splat(-INFINITY));
        if (!vbf_hmm_scale_row(acc, Kp, b + t * Kp, &m)) {
            *msum = NAN;
            return;
        }
        s = s + m;
    }
    *msum = s;
}

VBF_INLINE void vbf_hmm_gauss_b_body(const vbf_hmm_gauss_rows *g, long long t0, long long t1,
                                     double *b, double *msum)
{
    switch (g->Kp) {
    case 4: vbf_hmm_gauss_b_k(g, t0, t1, b, msum, 4); break;
    case 8: vbf_hmm_gauss_b_k(g, t0, t1, b, msum, 8); break;
    case 12: vbf_hmm_gauss_b_k(g, t0, t1, b, msum, 12); break;
    default: vbf_hmm_gauss_b_k(g, t0, t1, b, msum, 16);
    }
}
VBF_DISPATCH(vbf_hmm_gauss_b, "avx2", vbf_cpu_avx2(),
             (const vbf_hmm_gauss_rows *g, long long t0, long long t1, double *b,
              double *msum), (g, t0, t1, b, msum))

static void vbf_hmm_gauss_emis_rows(const void *arg, long long t0, long long t1,
                                    double *scratch, double *b, double *msum)
{
    (void)scratch;
    vbf_hmm_gauss_b((const vbf_hmm_gauss_rows *)arg, t0, t1, b, msum);
}
#else
/* elsewhere: the densities of the block into scratch, then vbf_hmm_long_emis */
static void vbf_hmm_gauss_emis_rows(const void *arg, long long t0, long long t1,
                                    double *scratch, double *b, double *msum)
{
    const vbf_hmm_gauss_rows *g = (const vbf_hmm_gauss_rows *)arg;
    const int n = (int)(t1 - t0);
    double *out = scratch, *z = scratch + (long long)VBF_HMM_LONG_SUB * g->K;
    double *ys = z + (long long)VBF_HMM_LONG_SUB * g->n_aux;
    if (g->Xf != NULL)
        vbf_hmm_features_f(g->Xf + t0 * g->D, n, g->D, g->spherical, g->shift,
                           g->stats_shift, z, ys);
    else
        vbf_hmm_features_d(g->Xd + t0 * g->D, n, g->D, g->spherical, g->shift,
                           g->stats_shift, z, ys);
    vbf_hmm_affine(z, n, g->n_aux, g->WTp, g->cstp, g->K, g->Kp, out);
    vbf_hmm_long_emis(g->K, g->Kp, 0, n, out, b + t0 * g->Kp, msum);
}
#endif

/* the rows whose Kp lanes would pass the chunk's last row (K < Kp) are read through a
   zero-padded copy: nothing outside the chunk's rows is read (another thread may be writing
   the next chunk's posteriors) */
static void vbf_hmm_gauss_stats_chunk(const void *arg, long long t0, long long t1,
                                      const double *post, double *slot, double *scratch)
{
    const vbf_hmm_gauss_rows *g = (const vbf_hmm_gauss_rows *)arg;
    const int D = g->D, K = g->K, Kp = g->Kp, spherical = g->spherical;
    const long long width = Kp + (long long)D * Kp + (spherical ? Kp : (long long)D * Kp);
    const long long tail = (Kp - K + K - 1) / K;  /* rows read through the copy */
    double *nk = slot, *s1 = slot + Kp, *s2 = slot + Kp + (long long)D * Kp;
    double buf[16 * 16 + 16];
    long long s, e, nd;
    int b, i;
    memset(slot, 0, (size_t)width * sizeof(double));
    for (s = t0; s < t1; s += VBF_HMM_LONG_SUB) {
        e = s + VBF_HMM_LONG_SUB < t1 ? s + VBF_HMM_LONG_SUB : t1;
        b = (int)(e - s);
        vbf_hmm_gauss_shifted(g, s, b, scratch);
        nd = t1 - tail - s;
        nd = nd < 0 ? 0 : (nd > b ? b : nd);
        if (nd > 0)
            vbf_hmm_gstats_cols(scratch, post + s * K, (int)nd, D, K, Kp, spherical, nk, s1,
                                s2);
        if (nd < b) {  /* (b - nd <= tail <= 3 rows) */
            memset(buf, 0, sizeof buf);
            for (i = 0; i < (b - nd) * K; i++)
                buf[i] = post[(s + nd) * K + i];
            vbf_hmm_gstats_cols(scratch + nd * D, buf, (int)(b - nd), D, K, Kp, spherical,
                                nk, s1, s2);
        }
    }
}

/* the hooks into a long-pass context */
static void vbf_hmm_long_gauss_hooks(vbf_hmm_long_ctx *c, const vbf_hmm_gauss_rows *g,
                                     double *em_slots)
{
    c->emis_rows = vbf_hmm_gauss_emis_rows;
    c->stats_chunk = em_slots != NULL ? vbf_hmm_gauss_stats_chunk : NULL;
    c->hook_arg = g;
    c->em_slots = em_slots;
    c->em_width = g->Kp + (long long)g->D * g->Kp + (g->spherical ? g->Kp
                                                       : (long long)g->D * g->Kp);
    c->scratch_size = vbf_hmm_gauss_scratch(g);
}

#endif
