/* Gaussian emission statistics of the fused HMM pass (_hmm.pyx's gaussian_em_pass), by
   columns: the same sums as vbf_hmm_gstats of _hmm_kernels.h, with the same operations in
   the same order for every entry (rows added in order; the same bits), but each feature's
   sums held in registers over a block of rows instead of loaded and stored for every row.
   No FMA: the AVX2 and the baseline builds give the same bits. */
#ifndef VBFAST_HMM_EMISSION_H
#define VBFAST_HMM_EMISSION_H

#include "vbf_dispatch.h"
#include "vbf_simd_math.h"

/* For b rows: nk (Kp) += sum_n g_n; s1 (D, Kp): s1[j] += sum_n y_nj g_n; s2: 'diag' (D, Kp)
   s2[j] += sum_n y_nj^2 g_n, 'spherical' (Kp) s2 += sum_n ||y_n||^2 g_n (||y_n||^2 summed
   over j in order). y: (b, D) the shifted rows; g_n: row n of post (b, K) read as Kp lanes,
   so post must be readable for b K + Kp - K doubles, those past the end finite (the pad lanes
   then hold the next row's values and feed only the pad lanes of the sums). Kp <= 16. */
#if defined(__GNUC__)
VBF_INLINE void vbf_hmm_gstats_cols_k(const double *y, const double *post, int b, int D,
                                      int K, const int Kp, int spherical, double *nk,
                                      double *s1, double *s2)
{
    int n, j, l;
    vbf_v4 a1[4], a2[4];
    for (l = 0; l < Kp / 4; l++)
        a1[l] = vbf_load4(nk + 4 * l);
    for (n = 0; n < b; n++)
        for (l = 0; l < Kp / 4; l++)
            a1[l] = a1[l] + vbf_load4(post + (long long)n * K + 4 * l);
    for (l = 0; l < Kp / 4; l++)
        vbf_store4(nk + 4 * l, a1[l]);
    for (j = 0; j < D; j++) {
        double *r1 = s1 + (long long)j * Kp, *r2 = s2 + (long long)j * Kp;
        for (l = 0; l < Kp / 4; l++)
            a1[l] = vbf_load4(r1 + 4 * l);
        if (spherical) {
            for (n = 0; n < b; n++) {
                const vbf_v4 yj = vbf_splat(y[(long long)n * D + j]);
                for (l = 0; l < Kp / 4; l++)
                    a1[l] = a1[l] + yj * vbf_load4(post + (long long)n * K + 4 * l);
            }
        } else {
            for (l = 0; l < Kp / 4; l++)
                a2[l] = vbf_load4(r2 + 4 * l);
            for (n = 0; n < b; n++) {
                const vbf_v4 yj = vbf_splat(y[(long long)n * D + j]), yy = yj * yj;
                for (l = 0; l < Kp / 4; l++) {
                    const vbf_v4 g = vbf_load4(post + (long long)n * K + 4 * l);
                    a1[l] = a1[l] + yj * g;
                    a2[l] = a2[l] + yy * g;
                }
            }
            for (l = 0; l < Kp / 4; l++)
                vbf_store4(r2 + 4 * l, a2[l]);
        }
        for (l = 0; l < Kp / 4; l++)
            vbf_store4(r1 + 4 * l, a1[l]);
    }
    if (spherical) {
        for (l = 0; l < Kp / 4; l++)
            a2[l] = vbf_load4(s2 + 4 * l);
        for (n = 0; n < b; n++) {
            const double *yn = y + (long long)n * D;
            double q = 0.0;
            for (j = 0; j < D; j++)
                q = q + yn[j] * yn[j];
            for (l = 0; l < Kp / 4; l++)
                a2[l] = a2[l] + vbf_splat(q) * vbf_load4(post + (long long)n * K + 4 * l);
        }
        for (l = 0; l < Kp / 4; l++)
            vbf_store4(s2 + 4 * l, a2[l]);
    }
}

VBF_INLINE void vbf_hmm_gstats_cols_body(const double *y, const double *post, int b, int D,
                                         int K, int Kp, int spherical, double *nk,
                                         double *s1, double *s2)
{
    switch (Kp) {
    case 4: vbf_hmm_gstats_cols_k(y, post, b, D, K, 4, spherical, nk, s1, s2); break;
    case 8: vbf_hmm_gstats_cols_k(y, post, b, D, K, 8, spherical, nk, s1, s2); break;
    case 12: vbf_hmm_gstats_cols_k(y, post, b, D, K, 12, spherical, nk, s1, s2); break;
    default: vbf_hmm_gstats_cols_k(y, post, b, D, K, 16, spherical, nk, s1, s2);
    }
}
VBF_DISPATCH(vbf_hmm_gstats_cols, "avx2", vbf_cpu_avx2(),
             (const double *y, const double *post, int b, int D, int K, int Kp,
              int spherical, double *nk, double *s1, double *s2),
             (y, post, b, D, K, Kp, spherical, nk, s1, s2))
#else
/* compilers without vector extensions: the same sums one lane at a time */
static void vbf_hmm_gstats_cols(const double *y, const double *post, int b, int D, int K,
                                int Kp, int spherical, double *nk, double *s1, double *s2)
{
    int n, j, l;
    for (n = 0; n < b; n++) {
        const double *yn = y + (long long)n * D, *g = post + (long long)n * K;
        double q = 0.0;
        for (l = 0; l < K; l++)
            nk[l] = nk[l] + g[l];
        for (j = 0; j < D; j++) {
            q = q + yn[j] * yn[j];
            for (l = 0; l < K; l++) {
                s1[j * Kp + l] = s1[j * Kp + l] + yn[j] * g[l];
                if (!spherical)
                    s2[j * Kp + l] = s2[j * Kp + l] + (yn[j] * yn[j]) * g[l];
            }
        }
        if (spherical)
            for (l = 0; l < K; l++)
                s2[l] = s2[l] + q * g[l];
    }
}
#endif

/* Features of b rows x (b, D) for the fused pass: z (b, n_aux) the affine form's of the
   Gaussian log-densities, [y, y^2] ('diag', n_aux = 2 D) or [y, ||y||^2] ('spherical', n_aux =
   D + 1, the squares summed over j in order), y = x - shift; ys (b, D) = x - stats_shift.
   The same operations as _hmm.pyx's _gauss_chunk (the same bits), four features at a time
   in vector registers. */
#if defined(__GNUC__)
#define VBF_HMM_LOAD_X4(p) ((vbf_v4){(double)(p)[0], (double)(p)[1], (double)(p)[2],        \
                                     (double)(p)[3]})
#define VBF_HMM_FEATURES(NAME, TYPE)                                                        \
    VBF_INLINE void NAME##_body(const TYPE *X, int b, int D, int spherical,                 \
                                const double *shift, const double *stats_shift, double *z,  \
                                double *ys)                                                 \
    {                                                                                       \
        int n, j;                                                                           \
        const int n_aux = spherical ? D + 1 : 2 * D;                                        \
        for (n = 0; n < b; n++) {                                                           \
            const TYPE *xn = X + (long long)n * D;                                          \
            double *zn = z + (long long)n * n_aux, *yn = ys + (long long)n * D;             \
            for (j = 0; j + 4 <= D; j += 4) {                                               \
                const vbf_v4 x = VBF_HMM_LOAD_X4(xn + j);                                   \
                const vbf_v4 y = x - vbf_load4(shift + j);                                  \
                vbf_store4(zn + j, y);                                                      \
                vbf_store4(yn + j, x - vbf_load4(stats_shift + j));                         \
                if (!spherical)                                                             \
                    vbf_store4(zn + D + j, y * y);                                          \
            }                                                                               \
            for (; j < D; j++) {                                                            \
                const double x = (double)xn[j], y = x - shift[j];                           \
                zn[j] = y;                                                                  \
                yn[j] = x - stats_shift[j];                                                 \
                if (!spherical)                                                             \
                    zn[D + j] = y * y;                                                      \
            }                                                                               \
            if (spherical) {                                                                \
                double q = 0.0;                                                             \
                for (j = 0; j < D; j++)                                                     \
                    q = q + zn[j] * zn[j];                                                  \
                zn[D] = q;                                                                  \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    VBF_DISPATCH(NAME, "avx2", vbf_cpu_avx2(),                                              \
                 (const TYPE *X, int b, int D, int spherical, const double *shift,          \
                  const double *stats_shift, double *z, double *ys),                        \
                 (X, b, D, spherical, shift, stats_shift, z, ys))
#else
#define VBF_HMM_FEATURES(NAME, TYPE)                                                        \
    static void NAME(const TYPE *X, int b, int D, int spherical, const double *shift,      \
                     const double *stats_shift, double *z, double *ys)                     \
    {                                                                                       \
        int n, j;                                                                           \
        const int n_aux = spherical ? D + 1 : 2 * D;                                        \
        for (n = 0; n < b; n++) {                                                           \
            double q = 0.0, *zn = z + (long long)n * n_aux;                                 \
            for (j = 0; j < D; j++) {                                                       \
                const double x = (double)X[(long long)n * D + j], y = x - shift[j];         \
                zn[j] = y;                                                                  \
                ys[(long long)n * D + j] = x - stats_shift[j];                              \
                if (spherical)                                                              \
                    q = q + y * y;                                                          \
                else                                                                        \
                    zn[D + j] = y * y;                                                      \
            }                                                                               \
            if (spherical)                                                                  \
                zn[D] = q;                                                                  \
        }                                                                                   \
    }
#endif
VBF_HMM_FEATURES(vbf_hmm_features_d, double)
VBF_HMM_FEATURES(vbf_hmm_features_f, float)

#endif
