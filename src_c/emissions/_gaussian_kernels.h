/* Pieces shared by the Gaussian-mixture passes (_gaussian_kernel.pyx over complete rows,
   _gaussian_missing_kernel.pyx over rows with missing values). */
#ifndef VBFAST_GAUSSIAN_KERNELS_H
#define VBFAST_GAUSSIAN_KERNELS_H

#include <math.h>

/* One row's responsibilities in place: lp (K,) holds log rho_k (log weight plus log
   density) and becomes r_k = rho_k / sum_j rho_j. Returns log p(x) = log sum_k rho_k, and
   *sum_r_log_r = sum_k r_k log r_k (for the entropy term). Terms with log rho_k below the
   largest minus 50 (exp(-50) < 2e-22) are taken as 0: they cannot change the sum (>= 1
   relative to the largest) in float64, and as responsibilities they are below any
   statistic's rounding; skipping their exp saves most of its cost on well-separated
   components. When every rho_k is 0 (no evidence, e.g. all weights zero) the
   responsibilities are uniform and log p(x) is -inf (*sum_r_log_r is then not set). */
static inline double vbf_gmm_responsibilities(double *lp, int K, double *sum_r_log_r)
{
    int k;
    double mx = lp[0], s = 0.0, v = 0.0, d, r, log_s;
    for (k = 1; k < K; k++)
        if (lp[k] > mx)
            mx = lp[k];
    if (mx == -INFINITY) {
        for (k = 0; k < K; k++)
            lp[k] = 1.0 / K;
        return -INFINITY;
    }
    for (k = 0; k < K; k++) {
        d = lp[k] - mx;
        r = d > -50.0 ? exp(d) : 0.0;
        s = s + r;
        /* sum_k r_k (log rho_k - mx), unnormalised */
        if (r > 0.0)
            v = v + r * (lp[k] - mx);
        lp[k] = r;
    }
    log_s = log(s);
    r = 1.0 / s;
    for (k = 0; k < K; k++)
        lp[k] = lp[k] * r;
    /* sum_k r_k log r_k = sum_k r_k log rho_k - log p(x) = v / s - log s */
    *sum_r_log_r = v * r - log_s;
    return mx + log_s;
}

#endif
