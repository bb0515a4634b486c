/* Pieces shared by the Gaussian-mixture passes (_gaussian_kernel.pyx over complete rows,
   _gaussian_missing_kernel.pyx over rows with missing values). */
#ifndef VBFAST_GAUSSIAN_KERNELS_H
#define VBFAST_GAUSSIAN_KERNELS_H

#include <math.h>
#include "vbf_dispatch.h"
#include "vbf_simd_math.h"

/* Rows' responsibilities in place. For each of the b rows of lp (b, K), row-major, holding
   log rho_k (log weight plus log density; log_const[k] is added first when log_const is not
   NULL), the row becomes r_k = rho_k / sum_j rho_j; lpn[n] receives log p(x_n) =
   log sum_k rho_k and rlogr[n] = sum_k r_k log r_k (for the entropy term). Terms with
   log rho_k below the largest minus 50 (exp(-50) < 2e-22) are taken as 0: they cannot change
   the sum (>= 1 relative to the largest) in float64, and as responsibilities they are below
   any statistic's rounding. When every rho_k is 0 (no evidence, e.g. all weights zero) the
   responsibilities are uniform, lpn is -inf and rlogr 0.

   Four components at a time (vbf_exp4; a last partial group padded with -inf, whose exp is
   0); each row's sums are lane sums reduced as (l0 + l1) + (l2 + l3), a fixed order, so a
   row's result depends on the row and on the build the dispatch picks (AVX2+FMA or the
   baseline), nothing else. */
#if defined(__GNUC__)
VBF_INLINE vbf_v4 vbf_gmm_load_row4(const double *p, int k, int K) {
    vbf_v4 v = vbf_splat(-INFINITY);
    int q;
    if (k + 4 <= K)
        return vbf_load4(p + k);
    for (q = 0; k + q < K; q++)
        v[q] = p[k + q];
    return v;
}

VBF_INLINE void vbf_gmm_resp_rows_body(double *lp, int b, int K, const double *log_const,
                                       double *lpn, double *rlogr)
{
    const vbf_v4 ninf = vbf_splat(-INFINITY), zero = vbf_splat(0.0);
    const vbf_v4 cutoff = vbf_splat(-50.0);
    int n, k, q;
    for (n = 0; n < b; n++) {
        double *row = lp + (Py_ssize_t)n * K;
        vbf_v4 mx4 = ninf, s4 = zero, v4 = zero, x, d, r, inv;
        double mx, s, v, log_s;
        if (log_const != NULL)
            for (k = 0; k < K; k++)
                row[k] = row[k] + log_const[k];
        for (k = 0; k < K; k += 4) {
            x = vbf_gmm_load_row4(row, k, K);
            mx4 = vbf_blend(x > mx4, x, mx4);
        }
        mx = mx4[0] > mx4[1] ? mx4[0] : mx4[1];
        mx = mx4[2] > mx ? mx4[2] : mx;
        mx = mx4[3] > mx ? mx4[3] : mx;
        if (mx == -INFINITY) {
            for (k = 0; k < K; k++)
                row[k] = 1.0 / K;
            lpn[n] = -INFINITY;
            rlogr[n] = 0.0;
            continue;
        }
        for (k = 0; k < K; k += 4) {
            vbf_i4 live;
            d = vbf_gmm_load_row4(row, k, K) - vbf_splat(mx);
            live = d > cutoff;
            /* (four terms below the cutoff: no exp; well-separated components are mostly) */
            r = (live[0] | live[1] | live[2] | live[3])
                ? vbf_from_bits(vbf_bits(vbf_exp4(d)) & live) : zero;
            s4 = s4 + r;
            /* sum_k r_k (log rho_k - mx), unnormalised (r = 0 lanes add 0, not 0 * -inf) */
            v4 = v4 + vbf_from_bits(vbf_bits(r * d) & (r > zero));
            if (k + 4 <= K)
                vbf_store4(row + k, r);
            else
                for (q = 0; k + q < K; q++)
                    row[k + q] = r[q];
        }
        s = vbf_hsum(s4);
        v = vbf_hsum(v4);
        log_s = log(s);
        inv = vbf_splat(1.0 / s);
        for (k = 0; k + 4 <= K; k += 4)
            vbf_store4(row + k, vbf_load4(row + k) * inv);
        for (; k < K; k++)
            row[k] = row[k] * inv[0];
        /* sum_k r_k log r_k = sum_k r_k log rho_k - log p(x) = v / s - log s */
        rlogr[n] = v * inv[0] - log_s;
        lpn[n] = mx + log_s;
    }
}

VBF_DISPATCH(vbf_gmm_resp_rows, "avx2,fma", vbf_cpu_avx2_fma(),
             (double *lp, int b, int K, const double *log_const, double *lpn, double *rlogr),
             (lp, b, K, log_const, lpn, rlogr))

#else  /* not GCC/Clang: the same algorithm one component at a time */

static void vbf_gmm_resp_rows(double *lp, int b, int K, const double *log_const,
                              double *lpn, double *rlogr)
{
    int n, k;
    for (n = 0; n < b; n++) {
        double *row = lp + (Py_ssize_t)n * K;
        double mx, s = 0.0, v = 0.0, d, r, log_s;
        if (log_const != NULL)
            for (k = 0; k < K; k++)
                row[k] = row[k] + log_const[k];
        mx = row[0];
        for (k = 1; k < K; k++)
            if (row[k] > mx)
                mx = row[k];
        if (mx == -INFINITY) {
            for (k = 0; k < K; k++)
                row[k] = 1.0 / K;
            lpn[n] = -INFINITY;
            rlogr[n] = 0.0;
            continue;
        }
        for (k = 0; k < K; k++) {
            d = row[k] - mx;
            r = d > -50.0 ? exp(d) : 0.0;
            s = s + r;
            if (r > 0.0)
                v = v + r * d;
            row[k] = r;
        }
        log_s = log(s);
        r = 1.0 / s;
        for (k = 0; k < K; k++)
            row[k] = row[k] * r;
        rlogr[n] = v * r - log_s;
        lpn[n] = mx + log_s;
    }
}
#endif

/* One row's responsibilities in place (vbf_gmm_resp_rows for b = 1, no constants): returns
   log p(x); *sum_r_log_r = sum_k r_k log r_k (0 when every rho_k is 0). */
static inline double vbf_gmm_responsibilities(double *lp, int K, double *sum_r_log_r)
{
    double lpn;
    vbf_gmm_resp_rows(lp, 1, K, NULL, &lpn, sum_r_log_r);
    return lpn;
}

/* The quadratic forms of 'full' from one GEMM: y (b, K D), row-major, holds y_nk = x_n U_k
   (x shifted); mu (K, D) holds m_k U_k. lp[n K + k] = log_const[k] - 1/2 ||y_nk - mu_k||^2,
   each sum over the features in four lanes (the last D % 4 features added after the lanes'
   sum), a fixed order. */
#if defined(__GNUC__)
VBF_INLINE void vbf_gmm_full_quad_body(const double *y, int b, int K, int D, const double *mu,
                                       const double *log_const, double *lp)
{
    int n, k, j;
    for (n = 0; n < b; n++) {
        const double *y_n = y + (Py_ssize_t)n * K * D;
        for (k = 0; k < K; k++) {
            const double *a = y_n + (Py_ssize_t)k * D, *m = mu + (Py_ssize_t)k * D;
            vbf_v4 acc = vbf_splat(0.0), d;
            double s, t;
            for (j = 0; j + 4 <= D; j += 4) {
                d = vbf_load4(a + j) - vbf_load4(m + j);
                acc = acc + d * d;
            }
            s = vbf_hsum(acc);
            for (; j < D; j++) {
                t = a[j] - m[j];
                s = s + t * t;
            }
            lp[(Py_ssize_t)n * K + k] = log_const[k] - 0.5 * s;
        }
    }
}

VBF_DISPATCH(vbf_gmm_full_quad, "avx2,fma", vbf_cpu_avx2_fma(),
             (const double *y, int b, int K, int D, const double *mu, const double *log_const,
              double *lp),
             (y, b, K, D, mu, log_const, lp))
#else
static void vbf_gmm_full_quad(const double *y, int b, int K, int D, const double *mu,
                              const double *log_const, double *lp)
{
    int n, k, j;
    for (n = 0; n < b; n++)
        for (k = 0; k < K; k++) {
            const double *a = y + ((Py_ssize_t)n * K + k) * D, *m = mu + (Py_ssize_t)k * D;
            double s = 0.0, t;
            for (j = 0; j < D; j++) {
                t = a[j] - m[j];
                s = s + t * t;
            }
            lp[(Py_ssize_t)n * K + k] = log_const[k] - 0.5 * s;
        }
}
#endif

/* The log-sum-exp of the diag / spherical tile (_tile_group), components-major: lpT (K, ld),
   row-major, holds log rho_nk of row n in column n (log constants included), for the b rows
   n < b (ld >= b, a multiple of 8; the columns past b are scratch). Every column becomes
   w_n r_nk (w NULL: unit weights); lpn[n] = log p(x_n) = log sum_k rho_nk and
   rlogr[n] = sum_k r_nk log r_nk (unweighted). Four rows at a time, one per lane, so no
   horizontal sums: the max over k, then exp(log rho_nk - max) (vbf_exp4_nonpositive; four
   terms below the max minus 50 together: no exp, taken as 0 as in vbf_gmm_resp_rows), their
   sum s, 1 / s and log s for four rows at once. A row's result depends on that row only (its
   lane's operations in k order), never on its neighbours. A row with every rho_k = 0 gets
   uniform responsibilities, lpn = -inf and rlogr = 0. */
#if defined(__GNUC__)
VBF_INLINE void vbf_gmm_lse_cols_body(double *lpT, int ld, int b, int K, const double *w,
                                      double *lpn, double *rlogr)
{
    const vbf_v4 ninf = vbf_splat(-INFINITY), zero = vbf_splat(0.0);
    const vbf_v4 cutoff = vbf_splat(-50.0);
    int n, k, q;
    for (n = 0; n < b; n += 4) {
        double *col = lpT + n;
        vbf_v4 mx = ninf, s = zero, v = zero, x, d, r, inv, log_s, scale;
        vbf_i4 dead, live;
        for (k = 0; k < K; k++) {
            x = vbf_load4(col + (Py_ssize_t)k * ld);
            mx = vbf_blend(x > mx, x, mx);
        }
        dead = mx == ninf;
        mx = vbf_blend(dead, zero, mx);
        for (k = 0; k < K; k++) {
            d = vbf_load4(col + (Py_ssize_t)k * ld) - mx;
            live = d > cutoff;
            r = (live[0] | live[1] | live[2] | live[3])
                ? vbf_from_bits(vbf_bits(vbf_exp4_nonpositive(d)) & live) : zero;
            s = s + r;
            /* sum_k r_k (log rho_k - mx), unnormalised (r = 0 lanes add 0, not 0 * -inf) */
            v = v + vbf_from_bits(vbf_bits(r * d) & (r > zero));
            vbf_store4(col + (Py_ssize_t)k * ld, r);
        }
        s = vbf_blend(dead, vbf_splat(1.0), s);
        inv = vbf_splat(1.0) / s;
        log_s = vbf_log4(s);
        scale = inv;
        if (w != NULL) {
            vbf_v4 wv = zero;
            for (q = 0; q < 4 && n + q < b; q++)
                wv[q] = w[n + q];
            scale = inv * wv;
        }
        for (k = 0; k < K; k++)
            vbf_store4(col + (Py_ssize_t)k * ld, vbf_load4(col + (Py_ssize_t)k * ld) * scale);
        for (q = 0; q < 4 && n + q < b; q++) {
            if (dead[q]) {
                double wq = w != NULL ? w[n + q] : 1.0;
                for (k = 0; k < K; k++)
                    col[(Py_ssize_t)k * ld + q] = wq / K;
                lpn[n + q] = -INFINITY;
                rlogr[n + q] = 0.0;
            } else {
                /* sum_k r_k log r_k = sum_k r_k log rho_k - log p(x) = v / s - log s */
                rlogr[n + q] = v[q] * inv[q] - log_s[q];
                lpn[n + q] = mx[q] + log_s[q];
            }
        }
    }
}

#if defined(__x86_64__)
/* The same eight rows at a time (AVX-512: one row per lane of a 512-bit vector; ld a
   multiple of 8), with eight-lane copies of vbf_exp4_nonpositive and vbf_log4 (the same
   operations lane by lane). */
typedef double vbf_v8 __attribute__((vector_size(64)));
typedef long long vbf_i8 __attribute__((vector_size(64)));
#define VBF_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,fma"), always_inline))

VBF_AVX512 static inline vbf_v8 vbf_splat8(double v) {
    vbf_v8 a = {v, v, v, v, v, v, v, v}; return a;
}
VBF_AVX512 static inline vbf_i8 vbf_bits8(vbf_v8 a) {
    vbf_i8 b; __builtin_memcpy(&b, &a, sizeof b); return b;
}
VBF_AVX512 static inline vbf_v8 vbf_from_bits8(vbf_i8 b) {
    vbf_v8 a; __builtin_memcpy(&a, &b, sizeof a); return a;
}
VBF_AVX512 static inline vbf_v8 vbf_blend8(vbf_i8 mask, vbf_v8 a, vbf_v8 b) {
    return vbf_from_bits8((vbf_bits8(a) & mask) | (vbf_bits8(b) & ~mask));
}
VBF_AVX512 static inline vbf_v8 vbf_load8(const double *p) {
    vbf_v8 v; __builtin_memcpy(&v, p, sizeof v); return v;
}
VBF_AVX512 static inline void vbf_store8(double *p, vbf_v8 v) {
    __builtin_memcpy(p, &v, sizeof v);
}

VBF_AVX512 static inline vbf_v8 vbf_exp8_nonpositive(vbf_v8 x) {
    const vbf_v8 shifter = vbf_splat8(6755399441055744.0);
    vbf_i8 under = x < vbf_splat8(-708.0), n, j;
    vbf_v8 kd, r, p, t;
    x = vbf_blend8(under, vbf_splat8(-708.0), x);
    kd = x * vbf_splat8(46.16624130844683) + shifter;
    n = vbf_bits8(kd) - vbf_bits8(shifter);
    kd = kd - shifter;
    r = (x - kd * vbf_splat8(6.93147180369123816490e-01 / 32.0))
        - kd * vbf_splat8(1.90821492927058770002e-10 / 32.0);
    j = n & 31;
    t = (vbf_v8){vbf_exp2_32nds[j[0]], vbf_exp2_32nds[j[1]], vbf_exp2_32nds[j[2]],
                 vbf_exp2_32nds[j[3]], vbf_exp2_32nds[j[4]], vbf_exp2_32nds[j[5]],
                 vbf_exp2_32nds[j[6]], vbf_exp2_32nds[j[7]]};  /* the 4-lane exp's table */
    p = vbf_splat8(1.0 / 720.0);
    p = p * r + vbf_splat8(1.0 / 120.0);
    p = p * r + vbf_splat8(1.0 / 24.0);
    p = p * r + vbf_splat8(1.0 / 6.0);
    p = p * r + vbf_splat8(0.5);
    p = p * r + vbf_splat8(1.0);
    p = p * r + vbf_splat8(1.0);
    t = vbf_from_bits8(vbf_bits8(t) + ((n >> 5) << 52));
    return vbf_from_bits8(vbf_bits8(p * t) & ~under);
}

VBF_AVX512 static inline vbf_v8 vbf_log8(vbf_v8 y) {
    const vbf_i8 mant = vbf_bits8(vbf_splat8(0.0)) | 0x000fffffffffffffLL;
    const vbf_i8 one_bits = vbf_bits8(vbf_splat8(1.0));
    vbf_i8 b = vbf_bits8(y), e, big;
    vbf_v8 m, s, s2, p, ef;
    e = ((b >> 52) & 0x7ff) - 1023;
    m = vbf_from_bits8((b & mant) | one_bits);
    big = m > vbf_splat8(1.4142135623730951);
    m = vbf_blend8(big, m * vbf_splat8(0.5), m);
    e = e - big;
    ef = __builtin_convertvector(e, vbf_v8);
    s = (m - vbf_splat8(1.0)) / (m + vbf_splat8(1.0));
    s2 = s * s;
    p = vbf_splat8(1.0 / 23.0);
    p = p * s2 + vbf_splat8(1.0 / 21.0);
    p = p * s2 + vbf_splat8(1.0 / 19.0);
    p = p * s2 + vbf_splat8(1.0 / 17.0);
    p = p * s2 + vbf_splat8(1.0 / 15.0);
    p = p * s2 + vbf_splat8(1.0 / 13.0);
    p = p * s2 + vbf_splat8(1.0 / 11.0);
    p = p * s2 + vbf_splat8(1.0 / 9.0);
    p = p * s2 + vbf_splat8(1.0 / 7.0);
    p = p * s2 + vbf_splat8(1.0 / 5.0);
    p = p * s2 + vbf_splat8(1.0 / 3.0);
    p = (s + s) * (p * s2);
    return ef * vbf_splat8(6.93147180369123816490e-01)
         + ((s + s) + (p + ef * vbf_splat8(1.90821492927058770002e-10)));
}

__attribute__((target("avx512f,avx512dq,avx512vl,fma")))
static void vbf_gmm_lse_cols_avx512(double *lpT, int ld, int b, int K, const double *w,
                                    double *lpn, double *rlogr)
{
    const vbf_v8 ninf = vbf_splat8(-INFINITY), zero = vbf_splat8(0.0);
    const vbf_v8 cutoff = vbf_splat8(-50.0);
    int n, k, q;
    for (n = 0; n < b; n += 8) {
        double *col = lpT + n;
        vbf_v8 mx = ninf, s = zero, v = zero, x, d, r, inv, log_s, scale;
        vbf_i8 dead, live;
        for (k = 0; k < K; k++) {
            x = vbf_load8(col + (Py_ssize_t)k * ld);
            mx = vbf_blend8(x > mx, x, mx);
        }
        dead = mx == ninf;
        mx = vbf_blend8(dead, zero, mx);
        for (k = 0; k < K; k++) {
            d = vbf_load8(col + (Py_ssize_t)k * ld) - mx;
            live = d > cutoff;
            r = vbf_from_bits8(vbf_bits8(vbf_exp8_nonpositive(d)) & live);
            s = s + r;
            v = v + vbf_from_bits8(vbf_bits8(r * d) & (r > zero));
            vbf_store8(col + (Py_ssize_t)k * ld, r);
        }
        s = vbf_blend8(dead, vbf_splat8(1.0), s);
        inv = vbf_splat8(1.0) / s;
        log_s = vbf_log8(s);
        scale = inv;
        if (w != NULL) {
            vbf_v8 wv = zero;
            for (q = 0; q < 8 && n + q < b; q++)
                wv[q] = w[n + q];
            scale = inv * wv;
        }
        for (k = 0; k < K; k++)
            vbf_store8(col + (Py_ssize_t)k * ld, vbf_load8(col + (Py_ssize_t)k * ld) * scale);
        for (q = 0; q < 8 && n + q < b; q++) {
            if (dead[q]) {
                double wq = w != NULL ? w[n + q] : 1.0;
                for (k = 0; k < K; k++)
                    col[(Py_ssize_t)k * ld + q] = wq / K;
                lpn[n + q] = -INFINITY;
                rlogr[n + q] = 0.0;
            } else {
                rlogr[n + q] = v[q] * inv[q] - log_s[q];
                lpn[n + q] = mx[q] + log_s[q];
            }
        }
    }
}

static inline int vbf_cpu_avx512(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512vl");
}
#endif

/* AVX-512 (eight rows a vector), else AVX2 + FMA (four), else the baseline build (four);
   ld must be a multiple of 8 */
__attribute__((target("avx2,fma"))) static void vbf_gmm_lse_cols_simd(
    double *lpT, int ld, int b, int K, const double *w, double *lpn, double *rlogr)
{
    vbf_gmm_lse_cols_body(lpT, ld, b, K, w, lpn, rlogr);
}

static void vbf_gmm_lse_cols(double *lpT, int ld, int b, int K, const double *w,
                             double *lpn, double *rlogr)
{
#if defined(__x86_64__)
    if (vbf_cpu_avx512()) {
        vbf_gmm_lse_cols_avx512(lpT, ld, b, K, w, lpn, rlogr);
        return;
    }
    if (vbf_cpu_avx2_fma()) {
        vbf_gmm_lse_cols_simd(lpT, ld, b, K, w, lpn, rlogr);
        return;
    }
#endif
    vbf_gmm_lse_cols_body(lpT, ld, b, K, w, lpn, rlogr);
}

#else  /* not GCC/Clang: the same algorithm one row at a time */

static void vbf_gmm_lse_cols(double *lpT, int ld, int b, int K, const double *w,
                             double *lpn, double *rlogr)
{
    int n, k;
    for (n = 0; n < b; n++) {
        double mx = -INFINITY, s = 0.0, v = 0.0, d, r, log_s, wn = w != NULL ? w[n] : 1.0;
        for (k = 0; k < K; k++)
            if (lpT[(Py_ssize_t)k * ld + n] > mx)
                mx = lpT[(Py_ssize_t)k * ld + n];
        if (mx == -INFINITY) {
            for (k = 0; k < K; k++)
                lpT[(Py_ssize_t)k * ld + n] = wn / K;
            lpn[n] = -INFINITY;
            rlogr[n] = 0.0;
            continue;
        }
        for (k = 0; k < K; k++) {
            d = lpT[(Py_ssize_t)k * ld + n] - mx;
            r = d > -50.0 ? exp(d) : 0.0;
            s = s + r;
            if (r > 0.0)
                v = v + r * d;
            lpT[(Py_ssize_t)k * ld + n] = r;
        }
        log_s = log(s);
        r = 1.0 / s;
        for (k = 0; k < K; k++)
            lpT[(Py_ssize_t)k * ld + n] = lpT[(Py_ssize_t)k * ld + n] * (r * wn);
        rlogr[n] = v * r - log_s;
        lpn[n] = mx + log_s;
    }
}
#endif

/* The features of the diag / spherical tile (_tile_group) for b rows of X (row-major, D
   columns, float64 or float32), feature-major: f (width, ld) row-major holds feature j of
   row n at f[j ld + n], f_n = [v, v^2, 1] (diag, width 2 D + 1) or [v, ||v||^2, 1]
   (spherical, D + 2), v = x_n - shift in float64 (||v||^2 summed in feature order). Both
   GEMMs of the tile then take OpenBLAS's small-matrix kernels (no packing). */
#define VBF_GMM_TILE_FEATURES(name, T)                                                    \
VBF_INLINE void name##_body(const T *x, int b, int D, const double *shift, int diag,      \
                            double *f, int ld)                                            \
{                                                                                         \
    int n, j;                                                                             \
    double *restrict q = f + (Py_ssize_t)(diag ? 2 * D : D) * ld;                         \
    double *restrict one = q + (diag ? 0 : ld);                                           \
    for (n = 0; n < b; n++) {                                                             \
        one[n] = 1.0;                                                                     \
        if (!diag)                                                                        \
            q[n] = 0.0;                                                                   \
    }                                                                                     \
    for (j = 0; j < D; j++) {                                                             \
        const T *restrict x_j = x + j;                                                    \
        double *restrict f_j = f + (Py_ssize_t)j * ld;                                    \
        double *restrict g_j = diag ? f + (Py_ssize_t)(D + j) * ld : q;                   \
        const double s = shift[j];                                                        \
        if (diag)                                                                         \
            for (n = 0; n < b; n++) {                                                     \
                double v = (double)x_j[(Py_ssize_t)n * D] - s;                            \
                f_j[n] = v;                                                               \
                g_j[n] = v * v;                                                           \
            }                                                                             \
        else                                                                              \
            for (n = 0; n < b; n++) {                                                     \
                double v = (double)x_j[(Py_ssize_t)n * D] - s;                            \
                f_j[n] = v;                                                               \
                g_j[n] = g_j[n] + v * v;                                                  \
            }                                                                             \
    }                                                                                     \
}                                                                                         \
VBF_DISPATCH(name, "avx2", vbf_cpu_avx2(),                                                \
             (const T *x, int b, int D, const double *shift, int diag, double *f, int ld),\
             (x, b, D, shift, diag, f, ld))

VBF_GMM_TILE_FEATURES(vbf_gmm_tile_features_f64, double)
VBF_GMM_TILE_FEATURES(vbf_gmm_tile_features_f32, float)


/* ---- The float32 tile (_tile_group_f32): float32 input, diag / spherical, every component
   within FAR_FROM_SHIFT_F32 of the shift. The same algorithm as the float64 tile with the
   features, log rho and the responsibilities in float32: sixteen rows a vector (one 512-bit
   vector with AVX-512, two 256-bit halves with AVX2), the per-row results log p(x_n) and
   sum_k r_nk log r_nk formed in float64 from float32 max, sum and log. */

/* The features of the float32 tile: as vbf_gmm_tile_features_* (feature-major, width
   2 D + 1 or D + 2), f (width, ld) in float32; v = x_n - shift is formed in float64 and
   rounded once, v^2 from the float64 v (||v||^2 summed in float32, in feature order). */
VBF_INLINE void vbf_gmm_tile_features32_body(const float *x, int b, int D,
                                             const double *shift, int diag, float *f, int ld)
{
    int n, j;
    float *restrict q = f + (Py_ssize_t)(diag ? 2 * D : D) * ld;
    float *restrict one = q + (diag ? 0 : ld);
    for (n = 0; n < b; n++) {
        one[n] = 1.0f;
        if (!diag)
            q[n] = 0.0f;
    }
    for (j = 0; j < D; j++) {
        const float *restrict x_j = x + j;
        float *restrict f_j = f + (Py_ssize_t)j * ld;
        float *restrict g_j = diag ? f + (Py_ssize_t)(D + j) * ld : q;
        const double s = shift[j];
        if (diag)
            for (n = 0; n < b; n++) {
                double v = (double)x_j[(Py_ssize_t)n * D] - s;
                f_j[n] = (float)v;
                g_j[n] = (float)(v * v);
            }
        else
            for (n = 0; n < b; n++) {
                double v = (double)x_j[(Py_ssize_t)n * D] - s;
                f_j[n] = (float)v;
                g_j[n] = g_j[n] + (float)(v * v);
            }
    }
}
VBF_DISPATCH(vbf_gmm_tile_features32, "avx2", vbf_cpu_avx2(),
             (const float *x, int b, int D, const double *shift, int diag, float *f, int ld),
             (x, b, D, shift, diag, f, ld))

#if defined(__GNUC__)
/* Float32 vectors of L lanes (VT, with the integer vector IT of the comparisons) and their
   exp, log and log-sum-exp, written once as macros: sixteen lanes for the AVX-512 build,
   eight for AVX2, four for the baseline, each the target's native width (a wider generic
   vector is split by the compiler into slow lane-by-lane masks). */
#define VBF_F32_VECTOR_MATH(SUF, VT, IT)                                                   \
VBF_INLINE VT vbf_fsplat_##SUF(float v) { return (VT){0} + v; }                           \
VBF_INLINE IT vbf_fbits_##SUF(VT a) { IT b; __builtin_memcpy(&b, &a, sizeof b); return b; }\
VBF_INLINE VT vbf_ffrom_bits_##SUF(IT b) {                                                 \
    VT a; __builtin_memcpy(&a, &b, sizeof a); return a;                                    \
}                                                                                          \
VBF_INLINE VT vbf_fblend_##SUF(IT mask, VT a, VT b) {                                      \
    return vbf_ffrom_bits_##SUF((vbf_fbits_##SUF(a) & mask) | (vbf_fbits_##SUF(b) & ~mask)); \
}                                                                                          \
VBF_INLINE VT vbf_fload_##SUF(const float *p) {                                            \
    VT v; __builtin_memcpy(&v, p, sizeof v); return v;                                     \
}                                                                                          \
VBF_INLINE void vbf_fstore_##SUF(float *p, VT v) { __builtin_memcpy(p, &v, sizeof v); }    \
/* exp(x) in float32 for -60 <= x <= 0 (lanes below are clamped to -60; the caller masks   \
   them): x = n ln 2 + r, |r| <= ln(2)/2, e^r by its Taylor polynomial to r^7 (truncation   \
   < 6e-9 relative), 2^n in the exponent bits (n >= -87: normal). Within ~2 ulp. */        \
VBF_INLINE VT vbf_expf_nonpositive_##SUF(VT x) {                                           \
    const VT shifter = vbf_fsplat_##SUF(12582912.0f);  /* 1.5 * 2^23: rounds to integer */ \
    IT n;                                                                                  \
    VT kf, r, p;                                                                           \
    x = vbf_fblend_##SUF(x < vbf_fsplat_##SUF(-60.0f), vbf_fsplat_##SUF(-60.0f), x);       \
    kf = x * vbf_fsplat_##SUF(1.44269504f) + shifter;                                      \
    n = vbf_fbits_##SUF(kf) - vbf_fbits_##SUF(shifter);                                    \
    kf = kf - shifter;                                                                     \
    /* ln 2 in two parts: kf * 0.693359375 is exact for |kf| < 2^11 */                     \
    r = (x - kf * vbf_fsplat_##SUF(0.693359375f)) - kf * vbf_fsplat_##SUF(-2.12194440e-4f);\
    p = vbf_fsplat_##SUF(1.0f / 5040.0f);                                                  \
    p = p * r + vbf_fsplat_##SUF(1.0f / 720.0f);                                           \
    p = p * r + vbf_fsplat_##SUF(1.0f / 120.0f);                                           \
    p = p * r + vbf_fsplat_##SUF(1.0f / 24.0f);                                            \
    p = p * r + vbf_fsplat_##SUF(1.0f / 6.0f);                                             \
    p = p * r + vbf_fsplat_##SUF(0.5f);                                                    \
    p = p * r + vbf_fsplat_##SUF(1.0f);                                                    \
    p = p * r + vbf_fsplat_##SUF(1.0f);                                                    \
    return p * vbf_ffrom_bits_##SUF((n + 127) << 23);                                      \
}                                                                                          \
/* log(y) in float32 for positive, normal, finite y: y = 2^e m, m in [sqrt(1/2), sqrt(2)),  \
   log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, series to s^9 (truncation       \
   < 1e-9 relative). */                                                                    \
VBF_INLINE VT vbf_logf_##SUF(VT y) {                                                       \
    IT b = vbf_fbits_##SUF(y), e, big;                                                     \
    VT m, s, s2, p, ef;                                                                    \
    e = ((b >> 23) & 0xff) - 127;                                                          \
    m = vbf_ffrom_bits_##SUF((b & 0x007fffff) | 0x3f800000);                               \
    big = m > vbf_fsplat_##SUF(1.41421356f);                                               \
    m = vbf_fblend_##SUF(big, m * vbf_fsplat_##SUF(0.5f), m);                              \
    e = e - big;  /* big is -1 where m was halved */                                       \
    ef = __builtin_convertvector(e, VT);                                                   \
    s = (m - vbf_fsplat_##SUF(1.0f)) / (m + vbf_fsplat_##SUF(1.0f));                       \
    s2 = s * s;                                                                            \
    p = vbf_fsplat_##SUF(1.0f / 9.0f);                                                     \
    p = p * s2 + vbf_fsplat_##SUF(1.0f / 7.0f);                                            \
    p = p * s2 + vbf_fsplat_##SUF(1.0f / 5.0f);                                            \
    p = p * s2 + vbf_fsplat_##SUF(1.0f / 3.0f);                                            \
    return ef * vbf_fsplat_##SUF(0.693147181f) + ((s + s) + (s + s) * (p * s2));           \
}

/* vbf_gmm_lse_cols in float32: lpT (K, ld) float32, ld a multiple of 16; every column
   becomes (float32) w_n r_nk; lpn[n] = log p(x_n) and rlogr[n] = sum_k r_nk log r_nk in
   float64 (from the float32 max, sum and log). L rows a vector, one row per lane, the lane's
   operations in k order: a row's result depends on that row only. */
#define VBF_F32_LSE_COLS(SUF, VT, IT, L)                                                   \
VBF_INLINE void vbf_gmm_lse_cols_f32_##SUF(float *lpT, int ld, int b, int K,               \
                                           const double *w, double *lpn, double *rlogr)    \
{                                                                                          \
    const VT ninf = vbf_fsplat_##SUF(-INFINITY), zero = vbf_fsplat_##SUF(0.0f);            \
    const VT cutoff = vbf_fsplat_##SUF(-50.0f);                                            \
    int n, k, q;                                                                           \
    for (n = 0; n < b; n += L) {                                                           \
        float *col = lpT + n;                                                              \
        VT mx = ninf, s = zero, v = zero, x, d, r, inv, log_s, scale;                      \
        IT dead;                                                                           \
        for (k = 0; k < K; k++) {                                                          \
            x = vbf_fload_##SUF(col + (Py_ssize_t)k * ld);                                 \
            mx = vbf_fblend_##SUF(x > mx, x, mx);                                          \
        }                                                                                  \
        dead = mx == ninf;                                                                 \
        mx = vbf_fblend_##SUF(dead, zero, mx);                                             \
        for (k = 0; k < K; k++) {                                                          \
            d = vbf_fload_##SUF(col + (Py_ssize_t)k * ld) - mx;                            \
            r = vbf_ffrom_bits_##SUF(vbf_fbits_##SUF(vbf_expf_nonpositive_##SUF(d))        \
                                     & (d > cutoff));                                      \
            s = s + r;                                                                     \
            /* sum_k r_k (log rho_k - mx), unnormalised (r = 0 lanes add 0, not 0 * -inf) */\
            v = v + vbf_ffrom_bits_##SUF(vbf_fbits_##SUF(r * d) & (r > zero));             \
            vbf_fstore_##SUF(col + (Py_ssize_t)k * ld, r);                                 \
        }                                                                                  \
        s = vbf_fblend_##SUF(dead, vbf_fsplat_##SUF(1.0f), s);                             \
        inv = vbf_fsplat_##SUF(1.0f) / s;                                                  \
        log_s = vbf_logf_##SUF(s);                                                         \
        scale = inv;                                                                       \
        if (w != NULL) {                                                                   \
            VT wv = zero;                                                                  \
            for (q = 0; q < L && n + q < b; q++)                                           \
                wv[q] = (float)w[n + q];                                                   \
            scale = inv * wv;                                                              \
        }                                                                                  \
        for (k = 0; k < K; k++)                                                            \
            vbf_fstore_##SUF(col + (Py_ssize_t)k * ld,                                     \
                             vbf_fload_##SUF(col + (Py_ssize_t)k * ld) * scale);           \
        for (q = 0; q < L && n + q < b; q++) {                                             \
            if (dead[q]) {                                                                 \
                float wq = w != NULL ? (float)w[n + q] : 1.0f;                             \
                for (k = 0; k < K; k++)                                                    \
                    col[(Py_ssize_t)k * ld + q] = wq / (float)K;                           \
                lpn[n + q] = -INFINITY;                                                    \
                rlogr[n + q] = 0.0;                                                        \
            } else {                                                                       \
                /* sum_k r_k log r_k = sum_k r_k log rho_k - log p(x) = v / s - log s */   \
                rlogr[n + q] = (double)(v[q] * inv[q]) - (double)log_s[q];                 \
                lpn[n + q] = (double)mx[q] + (double)log_s[q];                             \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
}

typedef float vbf_f4 __attribute__((vector_size(16)));
typedef int32_t vbf_fi4 __attribute__((vector_size(16)));
VBF_F32_VECTOR_MATH(4, vbf_f4, vbf_fi4)
VBF_F32_LSE_COLS(4, vbf_f4, vbf_fi4, 4)

#if defined(__x86_64__)
typedef float vbf_f8 __attribute__((vector_size(32)));
typedef int32_t vbf_fi8 __attribute__((vector_size(32)));
typedef float vbf_f16 __attribute__((vector_size(64)));
typedef int32_t vbf_fi16 __attribute__((vector_size(64)));
#define VBF_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define VBF_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,fma")))
/* (each width's helpers compiled for its target: a vector argument wider than the
   baseline's registers must not cross a function boundary of another target) */
#pragma GCC push_options
#pragma GCC target("avx2,fma")
VBF_F32_VECTOR_MATH(8, vbf_f8, vbf_fi8)
VBF_F32_LSE_COLS(8, vbf_f8, vbf_fi8, 8)
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512vl,fma")
VBF_F32_VECTOR_MATH(16, vbf_f16, vbf_fi16)
VBF_F32_LSE_COLS(16, vbf_f16, vbf_fi16, 16)
#pragma GCC pop_options

VBF_TARGET_AVX512 static void vbf_gmm_lse_cols_f32_avx512(
    float *lpT, int ld, int b, int K, const double *w, double *lpn, double *rlogr)
{
    vbf_gmm_lse_cols_f32_16(lpT, ld, b, K, w, lpn, rlogr);
}

VBF_TARGET_AVX2 static void vbf_gmm_lse_cols_f32_avx2(
    float *lpT, int ld, int b, int K, const double *w, double *lpn, double *rlogr)
{
    vbf_gmm_lse_cols_f32_8(lpT, ld, b, K, w, lpn, rlogr);
}
#endif

/* AVX-512 (sixteen rows a vector), else AVX2 + FMA (eight), else the baseline build (four);
   ld must be a multiple of 16 */
static void vbf_gmm_lse_cols_f32(float *lpT, int ld, int b, int K, const double *w,
                                 double *lpn, double *rlogr)
{
#if defined(__x86_64__)
    if (vbf_cpu_avx512()) {
        vbf_gmm_lse_cols_f32_avx512(lpT, ld, b, K, w, lpn, rlogr);
        return;
    }
    if (vbf_cpu_avx2_fma()) {
        vbf_gmm_lse_cols_f32_avx2(lpT, ld, b, K, w, lpn, rlogr);
        return;
    }
#endif
    vbf_gmm_lse_cols_f32_4(lpT, ld, b, K, w, lpn, rlogr);
}

#else  /* not GCC/Clang: the same algorithm one row at a time */

static void vbf_gmm_lse_cols_f32(float *lpT, int ld, int b, int K, const double *w,
                                 double *lpn, double *rlogr)
{
    int n, k;
    for (n = 0; n < b; n++) {
        float mx = -INFINITY, s = 0.0f, v = 0.0f, d, r, log_s;
        float wn = w != NULL ? (float)w[n] : 1.0f;
        for (k = 0; k < K; k++)
            if (lpT[(Py_ssize_t)k * ld + n] > mx)
                mx = lpT[(Py_ssize_t)k * ld + n];
        if (mx == -INFINITY) {
            for (k = 0; k < K; k++)
                lpT[(Py_ssize_t)k * ld + n] = wn / (float)K;
            lpn[n] = -INFINITY;
            rlogr[n] = 0.0;
            continue;
        }
        for (k = 0; k < K; k++) {
            d = lpT[(Py_ssize_t)k * ld + n] - mx;
            r = d > -50.0f ? expf(d) : 0.0f;
            s = s + r;
            if (r > 0.0f)
                v = v + r * d;
            lpT[(Py_ssize_t)k * ld + n] = r;
        }
        log_s = logf(s);
        r = 1.0f / s;
        for (k = 0; k < K; k++)
            lpT[(Py_ssize_t)k * ld + n] = lpT[(Py_ssize_t)k * ld + n] * (r * wn);
        rlogr[n] = (double)(v * r) - (double)log_s;
        lpn[n] = (double)mx + (double)log_s;
    }
}
#endif

#endif
