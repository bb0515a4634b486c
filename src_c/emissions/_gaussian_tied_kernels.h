/* 'tied' Gaussian mixtures row by row (_gaussian_kernel.pyx, for models up to
   TIED_ROWS_MAX_D features and TIED_ROWS_MAX_KD = K D): the quadratic forms and the
   statistics N_k, S1_k of a chunk without BLAS calls. At these sizes a chunk's TRMM, GEMM and
   GEMM (K = 16, D = 16: 16 x 256 x 17 each) spend more on packing, zeroing and call overhead
   than on their multiply-adds; here each row's work stays in registers and L1. Every sum is
   taken in a fixed order (features in order, rows in order), so a row's result depends on the
   row and on the build the dispatch picks, nothing else. */
#ifndef VBFAST_GAUSSIAN_TIED_KERNELS_H
#define VBFAST_GAUSSIAN_TIED_KERNELS_H

#include "vbf_dispatch.h"

#define VBF_TIED_ROWS_MAX_D 32
#define VBF_TIED_BLOCK 16

/* lp[n K + k] = -1/2 a_k . z_n for the b rows x (b, D) (shifted), with y_n = x_n U (U (D, D)
   row-major upper triangular: y_nj = sum_{i <= j} x_ni U_ij, summed over i in order),
   z_n = [y_n, ||y_n||^2] and at (D + 1, K) the a_k as columns (aux transposed). The
   components in blocks of VBF_TIED_BLOCK (a constant width: the accumulators stay in
   registers), the last block narrower. D <= VBF_TIED_ROWS_MAX_D. */
VBF_INLINE void vbf_gmm_tied_quad_body(const double *x, int b, int K, int D, const double *u,
                                       const double *at, double *lp)
{
    double z[VBF_TIED_ROWS_MAX_D + 1], acc[VBF_TIED_BLOCK];
    int n, i, j, k0, q, w;
    for (n = 0; n < b; n++) {
        const double *x_n = x + (Py_ssize_t)n * D;
        double *lp_n = lp + (Py_ssize_t)n * K, s = 0.0;
        for (j = 0; j < D; j++)
            z[j] = 0.0;
        for (i = 0; i < D; i++) {
            const double xi = x_n[i], *u_i = u + (Py_ssize_t)i * D;
            for (j = i; j < D; j++)
                z[j] = z[j] + xi * u_i[j];
        }
        for (j = 0; j < D; j++)
            s = s + z[j] * z[j];
        z[D] = s;
        for (k0 = 0; k0 < K; k0 += VBF_TIED_BLOCK) {
            w = K - k0;
            if (w >= VBF_TIED_BLOCK) {
                for (q = 0; q < VBF_TIED_BLOCK; q++)
                    acc[q] = 0.0;
                for (j = 0; j <= D; j++) {
                    const double zj = z[j], *a = at + (Py_ssize_t)j * K + k0;
                    for (q = 0; q < VBF_TIED_BLOCK; q++)
                        acc[q] = acc[q] + zj * a[q];
                }
                for (q = 0; q < VBF_TIED_BLOCK; q++)
                    lp_n[k0 + q] = -0.5 * acc[q];
            } else {
                for (q = 0; q < w; q++)
                    acc[q] = 0.0;
                for (j = 0; j <= D; j++) {
                    const double zj = z[j], *a = at + (Py_ssize_t)j * K + k0;
                    for (q = 0; q < w; q++)
                        acc[q] = acc[q] + zj * a[q];
                }
                for (q = 0; q < w; q++)
                    lp_n[k0 + q] = -0.5 * acc[q];
            }
        }
    }
}

VBF_DISPATCH(vbf_gmm_tied_quad, "avx2,fma", vbf_cpu_avx2_fma(),
             (const double *x, int b, int K, int D, const double *u, const double *at,
              double *lp),
             (x, b, K, D, u, at, lp))

/* nk[k] += r_nk and s1[k D + j] += r_nk x_nj for the b rows of x (b, D), r = lp (b, K) (the
   weighted responsibilities), row after row; an r_nk that is exactly 0 adds nothing and is
   skipped (with well-separated components most are: the log-sum-exp cuts them to 0). */
VBF_INLINE void vbf_gmm_rows_s1_body(const double *x, const double *lp, int b, int K, int D,
                                     double *nk, double *s1)
{
    int n, k, j;
    for (n = 0; n < b; n++) {
        const double *x_n = x + (Py_ssize_t)n * D, *r_n = lp + (Py_ssize_t)n * K;
        for (k = 0; k < K; k++) {
            const double r = r_n[k];
            double *s1_k;
            if (r == 0.0)
                continue;
            nk[k] = nk[k] + r;
            s1_k = s1 + (Py_ssize_t)k * D;
            for (j = 0; j < D; j++)
                s1_k[j] = s1_k[j] + r * x_n[j];
        }
    }
}

VBF_DISPATCH(vbf_gmm_rows_s1, "avx2,fma", vbf_cpu_avx2_fma(),
             (const double *x, const double *lp, int b, int K, int D, double *nk, double *s1),
             (x, lp, b, K, D, nk, s1))

#endif
