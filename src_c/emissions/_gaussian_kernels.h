/* Pieces shared by the Gaussian-mixture passes (_gaussian_kernel.pyx over complete rows,
   _gaussian_missing_kernel.pyx over rows with missing values). */
#ifndef VBFAST_GAUSSIAN_KERNELS_H
#define VBFAST_GAUSSIAN_KERNELS_H

#include <math.h>
#include <stdint.h>
#include <string.h>
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
/* One body for L lanes of V (mask vectors I) of T (double; float: the float32 tile's
   vbf_gmm_lse_cols_f32, lpT float32, the per-row results in float64 from its float32 max,
   sum and log), given the lane width's functions: vbf_simd_math.h's L = 4 (vbf_v4, the
   AVX2 and baseline builds) and L = 8 (vbf_v8, AVX-512) for double, VBF_F32_VECTOR_MATH's
   for float; ANY(d, cutoff): whether a lane of d is above the cut-off (VBF_GMM_ANY_TERM:
   every term's exp taken, as the float32 tile measured best). */
#define VBF_GMM_LSE_COLS(NAME, ATTR, T, L, V, I, SPLAT, LOAD, STORE, BLEND, BITS,          \
                         FROM_BITS, EXP, LOG, ANY)                                        \
ATTR void NAME(T *lpT, int ld, int b, int K, const double *w, double *lpn, double *rlogr) \
{                                                                                         \
    const V ninf = SPLAT(-INFINITY), zero = SPLAT(0.0);                                   \
    const V cutoff = SPLAT(-50.0);                                                        \
    int n, k, q;                                                                          \
    for (n = 0; n < b; n += L) {                                                          \
        T *col = lpT + n;                                                                 \
        V mx = ninf, s = zero, v = zero, x, d, r, inv, log_s, scale;                      \
        I dead;                                                                           \
        for (k = 0; k < K; k++) {                                                         \
            x = LOAD(col + (Py_ssize_t)k * ld);                                           \
            mx = BLEND(x > mx, x, mx);                                                    \
        }                                                                                 \
        dead = mx == ninf;                                                                \
        mx = BLEND(dead, zero, mx);                                                       \
        for (k = 0; k < K; k++) {                                                         \
            d = LOAD(col + (Py_ssize_t)k * ld) - mx;                                      \
            if (!(ANY(d, cutoff))) {  /* (L terms below the cut-off: no exp) */           \
                STORE(col + (Py_ssize_t)k * ld, zero);                                    \
                continue;                                                                 \
            }                                                                             \
            r = FROM_BITS(BITS(EXP(d)) & (d > cutoff));                                   \
            s = s + r;                                                                    \
            /* sum_k r_k (log rho_k - mx), unnormalised (r = 0 lanes add 0, not 0 * -inf) */\
            v = v + FROM_BITS(BITS(r * d) & (r > zero));                                  \
            STORE(col + (Py_ssize_t)k * ld, r);                                           \
        }                                                                                 \
        s = BLEND(dead, SPLAT(1.0), s);                                                   \
        inv = SPLAT(1.0) / s;                                                             \
        log_s = LOG(s);                                                                   \
        scale = inv;                                                                      \
        if (w != NULL) {                                                                  \
            V wv = zero;                                                                  \
            for (q = 0; q < L && n + q < b; q++)                                          \
                wv[q] = (T)w[n + q];                                                      \
            scale = inv * wv;                                                             \
        }                                                                                 \
        for (k = 0; k < K; k++)                                                           \
            STORE(col + (Py_ssize_t)k * ld, LOAD(col + (Py_ssize_t)k * ld) * scale);      \
        for (q = 0; q < L && n + q < b; q++) {                                            \
            if (dead[q]) {                                                                \
                T wq = w != NULL ? (T)w[n + q] : (T)1.0;                                  \
                for (k = 0; k < K; k++)                                                   \
                    col[(Py_ssize_t)k * ld + q] = wq / (T)K;                              \
                lpn[n + q] = -INFINITY;                                                   \
                rlogr[n + q] = 0.0;                                                       \
            } else {                                                                      \
                /* sum_k r_k log r_k = sum_k r_k log rho_k - log p(x) = v / s - log s */  \
                rlogr[n + q] = (double)(v[q] * inv[q]) - (double)log_s[q];                \
                lpn[n + q] = (double)mx[q] + (double)log_s[q];                            \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
}
#define VBF_GMM_ANY_TERM(d, c) 1
#define VBF_GMM_ANY4(d, c) ({ vbf_i4 a_ = (d) > (c); a_[0] | a_[1] | a_[2] | a_[3]; })
VBF_GMM_LSE_COLS(vbf_gmm_lse_cols_body, VBF_INLINE, double, 4, vbf_v4, vbf_i4, vbf_splat,
                 vbf_load4, vbf_store4, vbf_blend, vbf_bits, vbf_from_bits,
                 vbf_exp4_nonpositive, vbf_log4, VBF_GMM_ANY4)

#if defined(__x86_64__)
#include <immintrin.h>
/* The same eight rows at a time (AVX-512: one row per lane of a 512-bit vector; ld a
   multiple of 8), with vbf_exp8_nonpositive and vbf_log8 of vbf_simd_math.h (the four-lane
   functions' operations lane by lane). */
#define VBF_GMM_ANY8(d, c) _mm512_cmp_pd_mask((__m512d)(d), (__m512d)(c), _CMP_GT_OQ)
VBF_GMM_LSE_COLS(vbf_gmm_lse_cols_avx512,
                 __attribute__((target("avx512f,avx512dq,avx512vl,fma"))) static, double, 8,
                 vbf_v8, vbf_i8, vbf_splat8, vbf_load8, vbf_store8, vbf_blend8, vbf_bits8,
                 vbf_from_bits8, vbf_exp8_nonpositive, vbf_log8, VBF_GMM_ANY8)

#define VBF_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,fma")))

static inline int vbf_cpu_avx512(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512vl");
}

/* void name params: name##_avx512 where AVX-512 (F, DQ, VL) is, else name##_simd where
   avx2 (the condition) holds, else name##_body; args: the parameter names of params */
#define VBF_GMM_DISPATCH3(name, avx2, params, args)                                       \
static void name params                                                                   \
{                                                                                         \
    if (vbf_cpu_avx512()) {                                                               \
        name##_avx512 args;                                                               \
        return;                                                                           \
    }                                                                                     \
    if (avx2) {                                                                           \
        name##_simd args;                                                                 \
        return;                                                                           \
    }                                                                                     \
    name##_body args;                                                                     \
}
/* vbf_gmm_estep16_stats64 when at least 3/4 of the w r_nk are nonzero: rows [0, nrows) of
   xr and wrb (zeros included, adding 0 exactly), four components at a time, x_n - shift and
   its square formed once a row for the four (vbf_gmm_given_stats_avx512's form, w r read by
   component from wrb): in the dense case 6.5 vector operations a (row, component) in place
   of 10. S1, S2 and nothing else (N_k is the caller's); each sum row after row from acc's
   value, the order depending on the rows only. */
__attribute__((target("avx512f,avx512dq,avx512vl,fma"), always_inline)) static inline void
vbf_gmm_estep16_stats64_dense(const double *xr, int nrows, int D, int W, __m512d sh0,
                              __m512d sh1, const double *wrb, int K, double *acc)
{
    const __mmask8 m0 = D >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << D) - 1u);
    const __mmask8 m1 = D >= 16 ? (__mmask8)0xFF
                        : D <= 8 ? (__mmask8)0 : (__mmask8)((1u << (D - 8)) - 1u);
    int n, k0;
    for (k0 = 0; k0 < K; k0 += 4) {
        const int nb = K - k0 < 4 ? K - k0 : 4;
        /* (components past K read wrb's rows past K: w r = 0 or a dead row's w / K, in
           registers never stored) */
        const double *w0 = wrb + 64 * k0, *w1 = w0 + 64, *w2 = w0 + 128, *w3 = w0 + 192;
        __m512d a0, b0, c0, e0, a1, b1, c1, e1, a2, b2, c2, e2, a3, b3, c3, e3;
#define VBF_GS_LOAD(j, A, B, C, E) do {                                                    \
            const double *a_ = acc + (Py_ssize_t)(k0 + (j < nb ? j : 0)) * W;             \
            A = _mm512_maskz_loadu_pd(m0, a_);                                            \
            B = _mm512_maskz_loadu_pd(m1, a_ + 8);                                        \
            C = _mm512_maskz_loadu_pd(m0, a_ + D);                                        \
            E = _mm512_maskz_loadu_pd(m1, a_ + D + 8);                                    \
        } while (0)
        VBF_GS_LOAD(0, a0, b0, c0, e0);
        VBF_GS_LOAD(1, a1, b1, c1, e1);
        VBF_GS_LOAD(2, a2, b2, c2, e2);
        VBF_GS_LOAD(3, a3, b3, c3, e3);
#undef VBF_GS_LOAD
        for (n = 0; n < nrows; n++) {
            const double *xn = xr + (Py_ssize_t)n * D;
            const __m512d d0 = _mm512_sub_pd(_mm512_maskz_loadu_pd(m0, xn), sh0);
            const __m512d d1 = _mm512_sub_pd(_mm512_maskz_loadu_pd(m1, xn + 8), sh1);
            const __m512d q0 = _mm512_mul_pd(d0, d0), q1 = _mm512_mul_pd(d1, d1);
#define VBF_GS_ROW(wp, A, B, C, E) do {                                                    \
            const __m512d rv = _mm512_set1_pd((wp)[n]);                                   \
            A = _mm512_fmadd_pd(rv, d0, A);                                               \
            B = _mm512_fmadd_pd(rv, d1, B);                                               \
            C = _mm512_fmadd_pd(rv, q0, C);                                               \
            E = _mm512_fmadd_pd(rv, q1, E);                                               \
        } while (0)
            VBF_GS_ROW(w0, a0, b0, c0, e0);
            VBF_GS_ROW(w1, a1, b1, c1, e1);
            VBF_GS_ROW(w2, a2, b2, c2, e2);
            VBF_GS_ROW(w3, a3, b3, c3, e3);
#undef VBF_GS_ROW
        }
#define VBF_GS_STORE(j, A, B, C, E) do {                                                   \
            if (j < nb) {                                                                 \
                double *a_ = acc + (Py_ssize_t)(k0 + j) * W;                              \
                _mm512_mask_storeu_pd(a_, m0, A);                                         \
                _mm512_mask_storeu_pd(a_ + 8, m1, B);                                     \
                _mm512_mask_storeu_pd(a_ + D, m0, C);                                     \
                _mm512_mask_storeu_pd(a_ + D + 8, m1, E);                                 \
            }                                                                             \
        } while (0)
        VBF_GS_STORE(0, a0, b0, c0, e0);
        VBF_GS_STORE(1, a1, b1, c1, e1);
        VBF_GS_STORE(2, a2, b2, c2, e2);
        VBF_GS_STORE(3, a3, b3, c3, e3);
#undef VBF_GS_STORE
    }
}

/* The statistics of up to 64 rows from their responsibilities computed in registers
   (vbf_gmm_tile_estep16_stats_avx512; D <= 16): wrb (16, 64) the rows' w r_nk by component,
   mk64[k] its nonzero rows. S1 and the diag S2 come from the nonzero w r_nk alone: for each
   component with a nonzero row, acc's row k (acc (K, W) row-major) loaded and stored once
   for the 64 rows, held in registers while each nonzero row of xr (64, D) row-major adds
   w r_nk (x_n - shift) and w r_nk (x_n - shift)^2; the rows two at a time into two sets of
   registers (the second row, when there is none, the first's times 0: no branch), the sets
   added at the end. Measured: 1.7-2.4 nonzero r a row at D = K = 16, so the loop's exit is
   the one data-dependent branch a component. The order of the sums depends on the rows
   only. */
__attribute__((target("avx512f,avx512dq,avx512vl,fma"), always_inline)) static inline void
vbf_gmm_estep16_stats64(const double *xr, int D, int W, __m512d sh0, __m512d sh1,
                        const double *wrb, const unsigned long long *mk64, int K,
                        double *acc)
{
    const __m512d zero = _mm512_setzero_pd();
    const __mmask8 m0 = D >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << D) - 1u);
    const __mmask8 m1 = D >= 16 ? (__mmask8)0xFF
                        : D <= 8 ? (__mmask8)0 : (__mmask8)((1u << (D - 8)) - 1u);
    int k;
    {   /* mostly nonzero (the first iterations from a random start): the dense form */
        unsigned long long any = 0;
        int count = 0;
        for (k = 0; k < K; k++) {
            any |= mk64[k];
            count += __builtin_popcountll(mk64[k]);
        }
        if (any != 0 && 4 * count >= 3 * 64 * K) {
            vbf_gmm_estep16_stats64_dense(xr, 64 - __builtin_clzll(any), D, W, sh0, sh1,
                                          wrb, K, acc);
            return;
        }
    }
    for (k = 0; k < K; k++) {
        unsigned long long mk = mk64[k];
        double *a;
        __m512d s1a, s1b, s2a = zero, s2b = zero;
        __m512d t1a = zero, t1b = zero, t2a = zero, t2b = zero;
        if (mk == 0)
            continue;
        a = acc + (Py_ssize_t)k * W;
        s1a = _mm512_maskz_loadu_pd(m0, a);
        s1b = _mm512_maskz_loadu_pd(m1, a + 8);
        s2a = _mm512_maskz_loadu_pd(m0, a + D);
        s2b = _mm512_maskz_loadu_pd(m1, a + D + 8);
        do {
            const int i0 = __builtin_ctzll(mk);
            unsigned long long m2;
            int i1;
            double r1;
            mk &= mk - 1;
            m2 = mk | ((unsigned long long)(mk == 0) << i0);
            i1 = __builtin_ctzll(m2);
            r1 = wrb[64 * k + i1] * (double)(mk != 0);
            mk &= mk - 1;
            {
                const __m512d r0v = _mm512_set1_pd(wrb[64 * k + i0]);
                const __m512d r1v = _mm512_set1_pd(r1);
                const double *x0 = xr + (Py_ssize_t)i0 * D, *x1 = xr + (Py_ssize_t)i1 * D;
                const __m512d d0 = _mm512_sub_pd(_mm512_maskz_loadu_pd(m0, x0), sh0);
                const __m512d d1 = _mm512_sub_pd(_mm512_maskz_loadu_pd(m1, x0 + 8), sh1);
                const __m512d e0 = _mm512_sub_pd(_mm512_maskz_loadu_pd(m0, x1), sh0);
                const __m512d e1 = _mm512_sub_pd(_mm512_maskz_loadu_pd(m1, x1 + 8), sh1);
                s1a = _mm512_fmadd_pd(r0v, d0, s1a);
                s1b = _mm512_fmadd_pd(r0v, d1, s1b);
                t1a = _mm512_fmadd_pd(r1v, e0, t1a);
                t1b = _mm512_fmadd_pd(r1v, e1, t1b);
                s2a = _mm512_fmadd_pd(r0v, _mm512_mul_pd(d0, d0), s2a);
                s2b = _mm512_fmadd_pd(r0v, _mm512_mul_pd(d1, d1), s2b);
                t2a = _mm512_fmadd_pd(r1v, _mm512_mul_pd(e0, e0), t2a);
                t2b = _mm512_fmadd_pd(r1v, _mm512_mul_pd(e1, e1), t2b);
            }
        } while (mk);
        _mm512_mask_storeu_pd(a, m0, _mm512_add_pd(s1a, t1a));
        _mm512_mask_storeu_pd(a + 8, m1, _mm512_add_pd(s1b, t1b));
        _mm512_mask_storeu_pd(a + D, m0, _mm512_add_pd(s2a, t2a));
        _mm512_mask_storeu_pd(a + D + 8, m1, _mm512_add_pd(s2b, t2b));
    }
}

/* the per-lane sums N_k of vbf_gmm_tile_estep16_stats_avx512 added to acc (K, W)'s column
   W - 1, lanes in order */
__attribute__((target("avx512f,avx512dq,avx512vl,fma"))) static void
vbf_gmm_stats_lanes_to_acc(const vbf_v8 *nk_lanes, int K, int W, double *acc)
{
    double t[8];
    int k, i;
    for (k = 0; k < K; k++) {
        vbf_store8(t, nk_lanes[k]);
        for (i = 0; i < 8; i++)
            acc[(Py_ssize_t)k * W + W - 1] += t[i];
    }
}

/* a float64 register E-step's per-row outputs (_gaussian_tile_estep.h): rows m of
   rlogr = v / s - log s and lpn = mx + log s (dead rows: zero and ninf); (a macro, not an
   inline function: the kernels' object code stays that of the hand-written pair, an inlined
   call's reordered it) */
#define VBF_GMM_ESTEP_ROWS_OUT(rlogr, lpn, m, dead, v, inv, log_s, mx, zero, ninf) do {     \
    _mm512_mask_storeu_pd(rlogr, m, (__m512d)vbf_blend8(dead, zero, (v) * (inv) - (log_s)));\
    _mm512_mask_storeu_pd(lpn, m, (__m512d)vbf_blend8(dead, ninf, (mx) + (log_s)));        \
} while (0)

/* The E-step of a float64 diag / spherical tile (_tile_group) in registers (AVX-512), eight
   rows a vector: vbf_gmm_tile_estep16_impl (K <= 16; with acc, the fused statistics of
   vbf_gmm_tile_estep16_stats_avx512) and vbf_gmm_tile_estep_blocks_avx512 (16 < K, blocks of
   eight components, sixteen rows at a time), from _gaussian_tile_estep.h (see there) */
#define VBF_E_T double
#define VBF_E_L 8
#define VBF_E_V vbf_v8
#define VBF_E_I vbf_i8
#define VBF_E_RAW __m512d
#define VBF_E_MASK __mmask8
#define VBF_E_FULL 0xFF
#define VBF_E_SPLAT vbf_splat8
#define VBF_E_BLEND vbf_blend8
#define VBF_E_BITS vbf_bits8
#define VBF_E_FROM_BITS vbf_from_bits8
#define VBF_E_STORE vbf_store8
#define VBF_E_EXP vbf_exp8_nonpositive
#define VBF_E_LOG vbf_log8
#define VBF_E_LOADU _mm512_maskz_loadu_pd
#define VBF_E_FMA _mm512_fmadd_pd
#define VBF_E_SET1 _mm512_set1_pd
#define VBF_E_MOV _mm512_maskz_mov_pd
#define VBF_E_STOREU _mm512_storeu_pd
#define VBF_E_ADD _mm512_add_pd
#define VBF_E_ZERO _mm512_setzero_pd
#define VBF_E_ANY VBF_GMM_ANY8
#define VBF_E_LOAD_W(m, p) ((vbf_v8)_mm512_maskz_loadu_pd(m, p))
#define VBF_E_ROWS_OUT VBF_GMM_ESTEP_ROWS_OUT
#define VBF_E_LSE_COLS vbf_gmm_lse_cols_avx512
#define VBF_E_CONST_LAST 0
#define VBF_E_STATS 1
#define VBF_E_ESTEP16 vbf_gmm_tile_estep16_impl
#define VBF_E_BLOCKS vbf_gmm_tile_estep_blocks_avx512
#include "_gaussian_tile_estep.h"

__attribute__((target("avx512f,avx512dq,avx512vl,fma"))) static void
vbf_gmm_tile_estep16_avx512(const double *f, int ld, int b, int W, int K,
                            const double *coefT, const double *w, double *lpT, double *lpn,
                            double *rlogr)
{
    vbf_gmm_tile_estep16_impl(f, ld, b, W, K, coefT, w, lpT, lpn, rlogr, NULL, 0, NULL, NULL,
                              NULL);
}

/* vbf_gmm_tile_estep16_avx512 of a diag tile with the tile's statistics fused in: acc
   (K, W) row-major [S1 | S2 | N] += the eight rows' w r_nk [x_n - shift, (x_n - shift)^2,
   1] (vbf_gmm_estep16_stats64; N_k as per-lane sums of every row), x (b, D) the tile's rows
   of X, ws (b,) the statistics' weights (NULL: 1); lpT NULL: r not stored (nothing per row
   wanted). (Spherical keeps the DGEMM: this form measured 0.95-1.00x there.) */
__attribute__((target("avx512f,avx512dq,avx512vl,fma"))) static void
vbf_gmm_tile_estep16_stats_avx512(const double *f, int ld, int b, int W, int K,
                                  const double *coefT, const double *w, double *lpT,
                                  double *lpn, double *rlogr, const double *x, int D,
                                  const double *shift, const double *ws, double *acc)
{
    vbf_gmm_tile_estep16_impl(f, ld, b, W, K, coefT, w, lpT, lpn, rlogr, x, D, shift, ws,
                              acc);
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

/* vbf_gmm_tile_estep16_stats_avx512 (a diag tile, K <= 16, D <= 16) where AVX-512 is (ld a
   multiple of 8): the E-step and the tile's statistics into acc; returns 1 when it did them,
   0 when the caller must. */
static int vbf_gmm_tile_estep16_stats(const double *f, int ld, int b, int W, int K,
                                      const double *coefT, const double *w, double *lpT,
                                      double *lpn, double *rlogr, const double *x, int D,
                                      const double *shift, const double *ws, double *acc)
{
#if defined(__GNUC__) && defined(__x86_64__)
    if (K <= 16 && D <= 16 && vbf_cpu_avx512()) {
        vbf_gmm_tile_estep16_stats_avx512(f, ld, b, W, K, coefT, w, lpT, lpn, rlogr, x, D,
                                          shift, ws, acc);
        return 1;
    }
#endif
    (void)f; (void)ld; (void)b; (void)W; (void)K; (void)coefT; (void)w; (void)lpT;
    (void)lpn; (void)rlogr; (void)x; (void)D; (void)shift; (void)ws; (void)acc;
    return 0;
}

/* The statistics of given responsibilities (a diag float64 tile with resp_in, the
   initialisation's pass), dense rows: acc (K, W) row-major [S1 | S2 | N] += sum_n w_n r_nk
   [x_n - shift, (x_n - shift)^2, 1] over the b rows of x (b, D) and r (b, K) (row-major, as
   given; w (b,) or NULL for unit weights), in place of the tile's features, r's transpose
   and the statistics DGEMM (whose per-tile overheads made this pass cost as much as an
   E-step). Four components at a time: x_n - shift and its square in four registers (D <=
   16), each component's w r broadcast into four fused multiply-adds; S1 and S2 summed row
   after row from acc's value, N_k the tile's w r summed row after row, then added to acc
   (the order depends on the rows only). */
#if defined(__GNUC__) && defined(__x86_64__)
__attribute__((target("avx512f,avx512dq,avx512vl,fma"))) static void
vbf_gmm_given_stats_avx512(const double *x, int b, int D, const double *shift,
                           const double *r, int K, const double *w, double *acc, int W)
{
    const __mmask8 m0 = D >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << D) - 1u);
    const __mmask8 m1 = D >= 16 ? (__mmask8)0xFF
                        : D <= 8 ? (__mmask8)0 : (__mmask8)((1u << (D - 8)) - 1u);
    const __m512d sh0 = _mm512_maskz_loadu_pd(m0, shift);
    const __m512d sh1 = _mm512_maskz_loadu_pd(m1, shift + 8);
    int n, k0;
    for (k0 = 0; k0 < K; k0 += 4) {
        const int nb = K - k0 < 4 ? K - k0 : 4;
        const __mmask8 mk = (__mmask8)((1u << nb) - 1u);
        /* (named accumulators: indexed arrays were kept on the stack) */
        __m512d a0, b0, c0, e0, a1, b1, c1, e1, a2, b2, c2, e2, a3, b3, c3, e3;
        __m256d nk4 = _mm256_setzero_pd();
        double nks[4];
#define VBF_GS_LOAD(j, A, B, C, E) do {                                                    \
            const double *a_ = acc + (Py_ssize_t)(k0 + (j < nb ? j : 0)) * W;             \
            A = _mm512_maskz_loadu_pd(m0, a_);                                            \
            B = _mm512_maskz_loadu_pd(m1, a_ + 8);                                        \
            C = _mm512_maskz_loadu_pd(m0, a_ + D);                                        \
            E = _mm512_maskz_loadu_pd(m1, a_ + D + 8);                                    \
        } while (0)
        VBF_GS_LOAD(0, a0, b0, c0, e0);
        VBF_GS_LOAD(1, a1, b1, c1, e1);
        VBF_GS_LOAD(2, a2, b2, c2, e2);
        VBF_GS_LOAD(3, a3, b3, c3, e3);
#undef VBF_GS_LOAD
        for (n = 0; n < b; n++) {
            const double *xn = x + (Py_ssize_t)n * D;
            const __m512d d0 = _mm512_sub_pd(_mm512_maskz_loadu_pd(m0, xn), sh0);
            const __m512d d1 = _mm512_sub_pd(_mm512_maskz_loadu_pd(m1, xn + 8), sh1);
            const __m512d q0 = _mm512_mul_pd(d0, d0), q1 = _mm512_mul_pd(d1, d1);
            __m256d r4 = _mm256_maskz_loadu_pd(mk, r + (Py_ssize_t)n * K + k0);
            double rs[4];
            if (k0 == 0 && n + 16 < b) {
                /* (the tile's first sweep reads x and r from memory: ask ahead) */
                const char *xp = (const char *)(xn + 16 * D);
                const char *rp = (const char *)(r + (Py_ssize_t)(n + 16) * K);
                _mm_prefetch(xp, _MM_HINT_T0);
                _mm_prefetch(xp + 64, _MM_HINT_T0);
                _mm_prefetch(rp, _MM_HINT_T0);
                _mm_prefetch(rp + 64, _MM_HINT_T0);
            }
            if (w != NULL)
                r4 = _mm256_mul_pd(r4, _mm256_set1_pd(w[n]));
            nk4 = _mm256_add_pd(nk4, r4);
            _mm256_storeu_pd(rs, r4);
#define VBF_GS_ROW(j, A, B, C, E) do {                                                     \
            const __m512d rv = _mm512_set1_pd(rs[j]);                                     \
            A = _mm512_fmadd_pd(rv, d0, A);                                               \
            B = _mm512_fmadd_pd(rv, d1, B);                                               \
            C = _mm512_fmadd_pd(rv, q0, C);                                               \
            E = _mm512_fmadd_pd(rv, q1, E);                                               \
        } while (0)
            VBF_GS_ROW(0, a0, b0, c0, e0);
            VBF_GS_ROW(1, a1, b1, c1, e1);
            VBF_GS_ROW(2, a2, b2, c2, e2);
            VBF_GS_ROW(3, a3, b3, c3, e3);
#undef VBF_GS_ROW
        }
        _mm256_storeu_pd(nks, nk4);
#define VBF_GS_STORE(j, A, B, C, E) do {                                                   \
            if (j < nb) {                                                                 \
                double *a_ = acc + (Py_ssize_t)(k0 + j) * W;                              \
                _mm512_mask_storeu_pd(a_, m0, A);                                         \
                _mm512_mask_storeu_pd(a_ + 8, m1, B);                                     \
                _mm512_mask_storeu_pd(a_ + D, m0, C);                                     \
                _mm512_mask_storeu_pd(a_ + D + 8, m1, E);                                 \
                a_[W - 1] += nks[j];                                                      \
            }                                                                             \
        } while (0)
        VBF_GS_STORE(0, a0, b0, c0, e0);
        VBF_GS_STORE(1, a1, b1, c1, e1);
        VBF_GS_STORE(2, a2, b2, c2, e2);
        VBF_GS_STORE(3, a3, b3, c3, e3);
#undef VBF_GS_STORE
    }
}
#endif

/* vbf_gmm_given_stats_avx512 where AVX-512 is and 8 < D <= 16 (returns 1); else 0: the
   caller takes the tile's features and the statistics DGEMM. (At D <= 8 half its vector
   work is masked out: one pass at K = 32, D = 8 measured 22-24 ms CPU against the DGEMM
   form's 15-18; at D = 16, K = 64 / 128: 22-27 / 39-47 against 44-48 / 85-93.) */
static int vbf_gmm_given_stats(const double *x, int b, int D, const double *shift,
                               const double *r, int K, const double *w, double *acc, int W)
{
#if defined(__GNUC__) && defined(__x86_64__)
    if (D > 8 && D <= 16 && W == 2 * D + 1 && vbf_cpu_avx512()) {
        vbf_gmm_given_stats_avx512(x, b, D, shift, r, K, w, acc, W);
        return 1;
    }
#endif
    (void)x; (void)b; (void)D; (void)shift; (void)r; (void)K; (void)w; (void)acc; (void)W;
    return 0;
}

/* the number of nonzero entries of r[0..count) */
static Py_ssize_t vbf_gmm_count_nonzero(const double *r, Py_ssize_t count)
{
    Py_ssize_t i, n = 0;
    for (i = 0; i < count; i++)
        n += r[i] != 0.0;
    return n;
}

/* int name(f, ld, b, W, K, coefT, w, lpT, lpn, rlogr) of the tile's type T: regs (K <= 16)
   or blocks (16 < K), the register E-steps of _gaussian_tile_estep.h, where AVX-512 is;
   returns 1 when it did the E-step, 0 when the caller must (its GEMM and lse_cols) */
#if defined(__GNUC__) && defined(__x86_64__)
#define VBF_GMM_TILE_ESTEP_DISPATCH(name, T, regs, blocks)                                 \
static int name(const T *f, int ld, int b, int W, int K, const T *coefT, const double *w, \
                T *lpT, double *lpn, double *rlogr)                                       \
{                                                                                         \
    if (K <= 16 && vbf_cpu_avx512()) {                                                    \
        regs(f, ld, b, W, K, coefT, w, lpT, lpn, rlogr);                                  \
        return 1;                                                                         \
    }                                                                                     \
    if (vbf_cpu_avx512()) {                                                               \
        blocks(f, ld, b, W, K, coefT, w, lpT, lpn, rlogr);                                \
        return 1;                                                                         \
    }                                                                                     \
    return 0;                                                                             \
}
#else
#define VBF_GMM_TILE_ESTEP_DISPATCH(name, T, regs, blocks)                                 \
static int name(const T *f, int ld, int b, int W, int K, const T *coefT, const double *w, \
                T *lpT, double *lpn, double *rlogr)                                       \
{                                                                                         \
    (void)f; (void)ld; (void)b; (void)W; (void)K; (void)coefT; (void)w; (void)lpT;       \
    (void)lpn; (void)rlogr;                                                               \
    return 0;                                                                             \
}
#endif

/* float64: coefT (W, 16) for K <= 16, else in blocks of eight components; ld a multiple of
   8 */
VBF_GMM_TILE_ESTEP_DISPATCH(vbf_gmm_tile_estep16, double, vbf_gmm_tile_estep16_avx512,
                            vbf_gmm_tile_estep_blocks_avx512)

/* The features of the diag / spherical tiles (_tile_group, float64 and float32 tiles) for b rows of X
   (row-major, D columns, float64 or float32), feature-major: f (width, ld) row-major holds
   feature j of row n at f[j ld + n], f_n = [v, v^2, 1] (diag, width 2 D + 1) or
   [v, ||v||^2, 1] (spherical, D + 2), v = x_n - shift formed in float64 and rounded once to
   the tile's type U (v^2 from the float64 v; ||v||^2 summed in U, in feature order). Both
   GEMMs of the tile then take OpenBLAS's small-matrix kernels (no packing; row-major f
   would send log rho's GEMM to the packing kernel). */
#if defined(__GNUC__)
/* Four rows by four features of X at a time, transposed in registers (each row read once,
   a cache line after the other: the column-by-column read of the chunk was a strided pass
   per feature); the rest one by one. */
typedef double vbf_gmm_feat_v4 __attribute__((vector_size(32)));
typedef float vbf_gmm_feat_f4 __attribute__((vector_size(16)));
typedef long long vbf_gmm_feat_i4 __attribute__((vector_size(32)));
#define VBF_GMM_FEAT_LOAD4(p) ((vbf_gmm_feat_v4){(double)(p)[0], (double)(p)[1],          \
                                                 (double)(p)[2], (double)(p)[3]})
#define VBF_GMM_FEAT_STORE4(U, p, v) do {                                                 \
        if (sizeof(U) == sizeof(double)) {                                                \
            __builtin_memcpy((p), &(v), sizeof(v));                                       \
        } else {                                                                          \
            vbf_gmm_feat_f4 f_ = __builtin_convertvector((v), vbf_gmm_feat_f4);           \
            __builtin_memcpy((p), &f_, sizeof(f_));                                       \
        }                                                                                 \
    } while (0)
/* c[0..3] = features j..j+3 of four rows p, p + D, p + 2 D, p + 3 D (as float64), each a
   vector over the rows: the four rows loaded and transposed in registers */
#define VBF_GMM_TRANSPOSE4(p, D, c) do {                                                  \
        vbf_gmm_feat_v4 r0 = VBF_GMM_FEAT_LOAD4(p);                                       \
        vbf_gmm_feat_v4 r1 = VBF_GMM_FEAT_LOAD4((p) + (D));                               \
        vbf_gmm_feat_v4 r2 = VBF_GMM_FEAT_LOAD4((p) + 2 * (D));                           \
        vbf_gmm_feat_v4 r3 = VBF_GMM_FEAT_LOAD4((p) + 3 * (D));                           \
        vbf_gmm_feat_v4 t0 = __builtin_shuffle(r0, r1, (vbf_gmm_feat_i4){0, 4, 2, 6});    \
        vbf_gmm_feat_v4 t1 = __builtin_shuffle(r0, r1, (vbf_gmm_feat_i4){1, 5, 3, 7});    \
        vbf_gmm_feat_v4 t2 = __builtin_shuffle(r2, r3, (vbf_gmm_feat_i4){0, 4, 2, 6});    \
        vbf_gmm_feat_v4 t3 = __builtin_shuffle(r2, r3, (vbf_gmm_feat_i4){1, 5, 3, 7});    \
        (c)[0] = __builtin_shuffle(t0, t2, (vbf_gmm_feat_i4){0, 1, 4, 5});                \
        (c)[1] = __builtin_shuffle(t1, t3, (vbf_gmm_feat_i4){0, 1, 4, 5});                \
        (c)[2] = __builtin_shuffle(t0, t2, (vbf_gmm_feat_i4){2, 3, 6, 7});                \
        (c)[3] = __builtin_shuffle(t1, t3, (vbf_gmm_feat_i4){2, 3, 6, 7});                \
    } while (0)
/* the features past the last multiple of the block's width, one by one for its ROWS rows
   (the block's sums of ||v||^2 qv / qf lane by lane) */
#define VBF_GMM_FEAT_TAIL(U, ROWS)                                                        \
        for (; j < D; j++) {                                                              \
            int i_;                                                                       \
            for (i_ = 0; i_ < (ROWS); i_++) {                                             \
                double v = (double)x_n[(Py_ssize_t)i_ * D + j] - shift[j];                \
                f[(Py_ssize_t)j * ld + n + i_] = (U)v;                                    \
                if (diag)                                                                 \
                    f[(Py_ssize_t)(D + j) * ld + n + i_] = (U)(v * v);                    \
                else if (sizeof(U) == sizeof(double))                                     \
                    qv[i_] = qv[i_] + v * v;                                              \
                else                                                                      \
                    qf[i_] = qf[i_] + (float)(v * v);                                     \
            }                                                                             \
        }
#define VBF_GMM_FEAT_BLOCK(T, U)                                                          \
    for (n = 0; n + 4 <= b; n += 4) {                                                     \
        const T *restrict x_n = x + (Py_ssize_t)n * D;                                    \
        vbf_gmm_feat_v4 qv = {0.0, 0.0, 0.0, 0.0};                                        \
        vbf_gmm_feat_f4 qf = {0.0f, 0.0f, 0.0f, 0.0f};  /* (||v||^2 summed in float32) */  \
        for (j = 0; j + 4 <= D; j += 4) {                                                 \
            vbf_gmm_feat_v4 c[4];                                                         \
            int i;                                                                        \
            VBF_GMM_TRANSPOSE4(x_n + j, D, c);                                            \
            for (i = 0; i < 4; i++) {                                                     \
                vbf_gmm_feat_v4 v = c[i] - shift[j + i], v2 = v * v;                      \
                VBF_GMM_FEAT_STORE4(U, f + (Py_ssize_t)(j + i) * ld + n, v);              \
                if (diag)                                                                 \
                    VBF_GMM_FEAT_STORE4(U, f + (Py_ssize_t)(D + j + i) * ld + n, v2);     \
                else if (sizeof(U) == sizeof(double))                                     \
                    qv = qv + v2;                                                         \
                else                                                                      \
                    qf = qf + __builtin_convertvector(v2, vbf_gmm_feat_f4);               \
            }                                                                             \
        }                                                                                 \
        VBF_GMM_FEAT_TAIL(U, 4)                                                           \
        if (!diag && sizeof(U) == sizeof(double))                                         \
            __builtin_memcpy(f + (Py_ssize_t)D * ld + n, &qv, sizeof qv);                 \
        else if (!diag)                                                                   \
            __builtin_memcpy(f + (Py_ssize_t)D * ld + n, &qf, sizeof qf);                 \
    }
#else
#define VBF_GMM_FEAT_BLOCK(T, U) n = 0;
#endif

#if defined(__GNUC__) && defined(__x86_64__)
/* AVX-512: eight rows by eight features at a time, v = x - shift formed row-major (eight
   features a vector), transposed by three rounds of two-source permutes (24 a block), then
   stored eight rows a vector; the first b - b % 8 rows, the last rows and the features past
   the last multiple of 8 one by one. The same operations on each value as the four-row
   block (x - shift, v * v, ||v||^2 summed in feature order in U): the same bits. No fused
   multiply-adds (AVX-512F has them): ||v||^2's v * v is rounded before its sum. */
#define VBF_GMM_FEAT_LOAD8(T, p) (sizeof(T) == sizeof(double)                              \
        ? _mm512_loadu_pd((const double *)(const void *)(p))                              \
        : _mm512_cvtps_pd(_mm256_loadu_ps((const float *)(const void *)(p))))
#define VBF_GMM_FEAT_STORE8(U, p, v) do {                                                 \
        if (sizeof(U) == sizeof(double))                                                  \
            _mm512_storeu_pd((double *)(void *)(p), (v));                                 \
        else                                                                              \
            _mm256_storeu_ps((float *)(void *)(p), _mm512_cvtpd_ps(v));                   \
    } while (0)
/* c[0..7] = features j..j+7 minus shift (sh: shift + j) of the eight rows p, p + D, ..,
   p + 7 D, each a vector over the rows: x - shift row-major in float64, then three rounds
   of two-source permutes (lo2, hi2: the index vectors below) */
#define VBF_GMM_TRANSPOSE8(T, p, D, sh, lo2, hi2, c) do {                                 \
        const __m512d sh_ = _mm512_loadu_pd(sh);                                          \
        __m512d r_[8], t_[8], u_[8];                                                      \
        int i_;                                                                           \
        for (i_ = 0; i_ < 8; i_++)                                                        \
            r_[i_] = _mm512_sub_pd(VBF_GMM_FEAT_LOAD8(T, (p) + (Py_ssize_t)i_ * (D)), sh_);\
        for (i_ = 0; i_ < 8; i_ += 2) {  /* row pairs: features (0, 2, 4, 6), (1, 3, ..) */\
            t_[i_] = _mm512_unpacklo_pd(r_[i_], r_[i_ + 1]);                              \
            t_[i_ + 1] = _mm512_unpackhi_pd(r_[i_], r_[i_ + 1]);                          \
        }                                                                                 \
        for (i_ = 0; i_ < 8; i_ += 4) {  /* row quads: features (0, 4), (2, 6), ... */    \
            u_[i_] = _mm512_permutex2var_pd(t_[i_], (lo2), t_[i_ + 2]);                   \
            u_[i_ + 1] = _mm512_permutex2var_pd(t_[i_ + 1], (lo2), t_[i_ + 3]);           \
            u_[i_ + 2] = _mm512_permutex2var_pd(t_[i_], (hi2), t_[i_ + 2]);               \
            u_[i_ + 3] = _mm512_permutex2var_pd(t_[i_ + 1], (hi2), t_[i_ + 3]);           \
        }                                                                                 \
        /* u_[0..3]: rows 0-3 of features (0|4), (1|5), (2|6), (3|7); u_[4..7] rows 4-7 */\
        for (i_ = 0; i_ < 4; i_++) {                                                      \
            (c)[i_] = _mm512_shuffle_f64x2(u_[i_], u_[i_ + 4], 0x44);                     \
            (c)[i_ + 4] = _mm512_shuffle_f64x2(u_[i_], u_[i_ + 4], 0xEE);                 \
        }                                                                                 \
    } while (0)
#define VBF_GMM_FEAT_DISPATCH(name, T, U)                                                 \
__attribute__((target("avx2"))) static void name##_simd(                                  \
    const T *x, int b, int D, const double *shift, int diag, U *f, int ld)                \
{                                                                                         \
    name##_body(x, b, D, shift, diag, f, ld);                                             \
}                                                                                         \
__attribute__((target("avx512f,avx512dq,avx512vl"), optimize("fp-contract=off")))         \
static void name##_avx512(const T *x, int b, int D, const double *shift, int diag, U *f,  \
                          int ld)                                                         \
{                                                                                         \
    const __m512i lo2 = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);                      \
    const __m512i hi2 = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);                    \
    const int b8 = b & ~7;                                                                \
    int n, j, i;                                                                          \
    for (n = 0; n < b8; n += 8) {                                                         \
        const T *x_n = x + (Py_ssize_t)n * D;                                             \
        __m512d qv = _mm512_setzero_pd();                                                 \
        __m256 qf = _mm256_setzero_ps();  /* (||v||^2 summed in float32) */               \
        {   /* the same rows of the next 64 asked from memory (X streams from DRAM) */    \
            const char *pf_ = (const char *)(x_n + (Py_ssize_t)64 * D);                   \
            for (i = 0; i < 8 * D * (int)sizeof(T); i += 64)                              \
                _mm_prefetch(pf_ + i, _MM_HINT_T0);                                       \
        }                                                                                 \
        for (j = 0; j + 8 <= D; j += 8) {                                                 \
            __m512d c[8];                                                                 \
            VBF_GMM_TRANSPOSE8(T, x_n + j, D, shift + j, lo2, hi2, c);                    \
            for (i = 0; i < 8; i++) {                                                     \
                __m512d v2 = _mm512_mul_pd(c[i], c[i]);                                   \
                VBF_GMM_FEAT_STORE8(U, f + (Py_ssize_t)(j + i) * ld + n, c[i]);           \
                if (diag)                                                                 \
                    VBF_GMM_FEAT_STORE8(U, f + (Py_ssize_t)(D + j + i) * ld + n, v2);     \
                else if (sizeof(U) == sizeof(double))                                     \
                    qv = _mm512_add_pd(qv, v2);                                           \
                else                                                                      \
                    qf = _mm256_add_ps(qf, _mm512_cvtpd_ps(v2));                          \
            }                                                                             \
        }                                                                                 \
        VBF_GMM_FEAT_TAIL(U, 8)                                                           \
        if (!diag)                                                                        \
            VBF_GMM_FEAT_STORE8(U, f + (Py_ssize_t)D * ld + n,                            \
                                sizeof(U) == sizeof(double) ? qv : _mm512_cvtps_pd(qf));  \
    }                                                                                     \
    {                                                                                     \
        U *one = f + (Py_ssize_t)(diag ? 2 * D : D + 1) * ld;                             \
        for (n = 0; n < b8; n++)                                                          \
            one[n] = 1;                                                                   \
    }                                                                                     \
    if (b8 < b)                                                                           \
        name##_simd(x + (Py_ssize_t)b8 * D, b - b8, D, shift, diag, f + b8, ld);          \
}                                                                                         \
VBF_GMM_DISPATCH3(name, vbf_cpu_avx2(),                                                   \
                  (const T *x, int b, int D, const double *shift, int diag, U *f,         \
                   int ld),                                                               \
                  (x, b, D, shift, diag, f, ld))
#else
#define VBF_GMM_FEAT_DISPATCH(name, T, U)                                                 \
VBF_DISPATCH(name, "avx2", vbf_cpu_avx2(),                                                \
             (const T *x, int b, int D, const double *shift, int diag, U *f, int ld),     \
             (x, b, D, shift, diag, f, ld))
#endif

#define VBF_GMM_TILE_FEATURES(name, T, U)                                                 \
VBF_INLINE void name##_body(const T *x, int b, int D, const double *shift, int diag,      \
                            U *f, int ld)                                                 \
{                                                                                         \
    int n, j;                                                                             \
    U *restrict one = f + (Py_ssize_t)(diag ? 2 * D : D + 1) * ld;                        \
    for (n = 0; n < b; n++)                                                               \
        one[n] = 1;                                                                       \
    VBF_GMM_FEAT_BLOCK(T, U)                                                              \
    for (; n < b; n++) {                                                                  \
        const T *restrict x_n = x + (Py_ssize_t)n * D;                                    \
        U q = 0;                                                                          \
        for (j = 0; j < D; j++) {                                                         \
            double v = (double)x_n[j] - shift[j];                                         \
            f[(Py_ssize_t)j * ld + n] = (U)v;                                             \
            if (diag)                                                                     \
                f[(Py_ssize_t)(D + j) * ld + n] = (U)(v * v);                             \
            else                                                                          \
                q = q + (U)(v * v);                                                       \
        }                                                                                 \
        if (!diag)                                                                        \
            f[(Py_ssize_t)D * ld + n] = q;                                                \
    }                                                                                     \
}                                                                                         \
VBF_GMM_FEAT_DISPATCH(name, T, U)

VBF_GMM_TILE_FEATURES(vbf_gmm_tile_features_f64, double, double)
VBF_GMM_TILE_FEATURES(vbf_gmm_tile_features_f32, float, double)
/* the float32 tile's: v and v^2 rounded to float32 */
VBF_GMM_TILE_FEATURES(vbf_gmm_tile_features32, float, float)

/* A tile's [S1 | S2 | N] from its nonzero responsibilities only, for when they are few
   (_tile_group's rule): for well separated components most w r_nk are exactly zero (the
   log-sum-exp's cut-off), and the dense GEMM's K (2 D + 1) multiply-adds a row then do
   mostly nothing. First the masks: mask[k nb + i] (nb = ceil(b / 8)) has bit q set where
   r[k ld + 8 i + q] != 0 (rows < b only); returns how many bits are set. r >= 0, so a zero
   is the bit pattern 0 (no float compare). One loop (VBF_GMM_MASKS_LOOP) over the eight-row
   masks of BYTE: lane by lane, or one AVX-512 test. */
#define VBF_GMM_MASKS_LOOP(BYTE)                                                          \
    const int nb = (b + 7) / 8;                                                           \
    Py_ssize_t count = 0;                                                                 \
    int k, i;                                                                             \
    for (k = 0; k < K; k++) {                                                             \
        unsigned char *restrict m_k = mask + (Py_ssize_t)k * nb;                          \
        for (i = 0; i < nb; i++) {                                                        \
            unsigned m = BYTE(r + (Py_ssize_t)k * ld + 8 * i);                            \
            if (8 * i + 8 > b)                                                            \
                m &= (1u << (b - 8 * i)) - 1u;                                            \
            m_k[i] = (unsigned char)m;                                                    \
            count += __builtin_popcount(m);                                               \
        }                                                                                 \
    }                                                                                     \
    return count;
#define VBF_GMM_NONZERO_MASKS(name, R, UI)                                                \
VBF_INLINE unsigned name##_byte(const R *r8)                                              \
{                                                                                         \
    const UI *restrict u = (const UI *)r8;                                                \
    unsigned m = 0;                                                                       \
    int q;                                                                                \
    for (q = 0; q < 8; q++)                                                               \
        m |= (unsigned)(u[q] != 0) << q;                                                  \
    return m;                                                                             \
}                                                                                         \
VBF_INLINE Py_ssize_t name##_body(const R *r, int ld, int b, int K, unsigned char *mask)  \
{                                                                                         \
    VBF_GMM_MASKS_LOOP(name##_byte)                                                       \
}                                                                                         \
VBF_GMM_MASKS_DISPATCH(name, R)
#if defined(__GNUC__) && defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline))
static inline unsigned vbf_gmm_mask8_f64_avx512(const double *r8) {
    __m512i v = _mm512_loadu_si512((const void *)r8);
    return _mm512_test_epi64_mask(v, v);
}
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline))
static inline unsigned vbf_gmm_mask8_f32_avx512(const float *r8) {
    __m256i v = _mm256_loadu_si256((const __m256i *)r8);
    return _mm256_test_epi32_mask(v, v);
}
#define VBF_GMM_MASKS_DISPATCH(name, R)                                                   \
__attribute__((target("avx512f,avx512bw,avx512vl"))) static Py_ssize_t name##_avx512(     \
    const R *r, int ld, int b, int K, unsigned char *mask)                                \
{                                                                                         \
    VBF_GMM_MASKS_LOOP(_Generic((R *)0, double *: vbf_gmm_mask8_f64_avx512,               \
                                float *: vbf_gmm_mask8_f32_avx512))                       \
}                                                                                         \
static Py_ssize_t name(const R *r, int ld, int b, int K, unsigned char *mask)             \
{                                                                                         \
    if (vbf_cpu_avx512())                                                                 \
        return name##_avx512(r, ld, b, K, mask);                                          \
    return name##_body(r, ld, b, K, mask);                                                \
}
#else
#define VBF_GMM_MASKS_DISPATCH(name, R)                                                   \
static Py_ssize_t name(const R *r, int ld, int b, int K, unsigned char *mask)             \
{                                                                                         \
    return name##_body(r, ld, b, K, mask);                                                \
}
#endif
VBF_GMM_NONZERO_MASKS(vbf_gmm_nonzero_masks, double, unsigned long long)
VBF_GMM_NONZERO_MASKS(vbf_gmm_nonzero_masks32, float, unsigned int)

/* Then acc (K, W) += [sum_n r_nk v_n, sum_n r_nk v_n^2 (diag, sq NULL) or
   sum_n r_nk ||v_n||^2 (spherical: ||v_n||^2 = sq[n], the features' row), sum_n r_nk] over
   the rows of the masks' set bits, v_n = x_n - shift in float64 as the features', per
   component and feature in row order. A component's rows (up to 256 at a time) are listed
   from the masks first, then summed four features at a time with the sums in registers (a
   sum kept in memory would put a store-to-load on every row's dependency chain; four
   lanes: a wider generic vector is split lane by lane on AVX2); the last D mod 4 features
   one at a time. */
#if defined(__GNUC__)
typedef double vbf_gmm_sp_v4 __attribute__((vector_size(32)));
typedef float vbf_gmm_sp_f4 __attribute__((vector_size(16)));
#define VBF_GMM_SP_LOAD(T, p, out) do {                                                   \
        if (sizeof(T) == sizeof(double)) {                                                \
            __builtin_memcpy(&(out), (p), sizeof(out));                                   \
        } else {                                                                          \
            vbf_gmm_sp_f4 f_;                                                             \
            __builtin_memcpy(&f_, (p), sizeof f_);                                        \
            (out) = __builtin_convertvector(f_, vbf_gmm_sp_v4);                           \
        }                                                                                 \
    } while (0)
/* eight features a row (two independent sums each), then four */
#define VBF_GMM_SP_BLOCKS(T)                                                              \
    for (; j + 4 <= D; j += 8) {                                                          \
        const int two = j + 8 <= D;                                                       \
        vbf_gmm_sp_v4 a1, a2, b1 = {0}, b2 = {0}, sh, sh_b = {0};                         \
        __builtin_memcpy(&a1, s1 + j, sizeof a1);                                         \
        __builtin_memcpy(&a2, s2 + j, sizeof a2);                                         \
        __builtin_memcpy(&sh, shift + j, sizeof sh);                                      \
        if (two) {                                                                        \
            __builtin_memcpy(&b1, s1 + j + 4, sizeof b1);                                 \
            __builtin_memcpy(&b2, s2 + j + 4, sizeof b2);                                 \
            __builtin_memcpy(&sh_b, shift + j + 4, sizeof sh_b);                          \
        }                                                                                 \
        for (t = 0; t < c; t++) {                                                         \
            const T *x_n = x + (Py_ssize_t)idx[t] * D + j;                                \
            vbf_gmm_sp_v4 v, rv, u, ru;                                                   \
            VBF_GMM_SP_LOAD(T, x_n, v);                                                   \
            v = v - sh;                                                                   \
            rv = rs[t] * v;                                                               \
            a1 = a1 + rv;                                                                 \
            if (sq == NULL)                                                               \
                a2 = a2 + rv * v;                                                         \
            if (two) {                                                                    \
                VBF_GMM_SP_LOAD(T, x_n + 4, u);                                           \
                u = u - sh_b;                                                             \
                ru = rs[t] * u;                                                           \
                b1 = b1 + ru;                                                             \
                if (sq == NULL)                                                           \
                    b2 = b2 + ru * u;                                                     \
            }                                                                             \
        }                                                                                 \
        __builtin_memcpy(s1 + j, &a1, sizeof a1);                                         \
        if (sq == NULL)                                                                   \
            __builtin_memcpy(s2 + j, &a2, sizeof a2);                                     \
        if (two) {                                                                        \
            __builtin_memcpy(s1 + j + 4, &b1, sizeof b1);                                 \
            if (sq == NULL)                                                               \
                __builtin_memcpy(s2 + j + 4, &b2, sizeof b2);                             \
        } else {                                                                          \
            j -= 4;  /* (four were left: j ends at D rounded down to 4) */                \
        }                                                                                 \
    }
#else
#define VBF_GMM_SP_BLOCKS(T)
#endif
/* A component's rows among the masks' bytes [i0, i1) (up to 256 rows): their indices idx
   and w r (as double) rs, in row order; their sum into *nk and (spherical, sq not NULL)
   sum w r ||v||^2 into *sq_k, in row order. Returns how many. */
#define VBF_GMM_SP_LIST(name, R)                                                          \
VBF_INLINE int name##_list(const R *r_k, const unsigned char *m_k, int i0, int i1,        \
                           const R *sq, int *idx, double *rs, double *nk, double *sq_k)   \
{                                                                                         \
    int i, c = 0;                                                                         \
    for (i = i0; i < i1; i++) {                                                           \
        unsigned m = m_k[i];                                                              \
        while (m) {                                                                       \
            const int n = 8 * i + __builtin_ctz(m);                                       \
            m &= m - 1;                                                                   \
            idx[c] = n;                                                                   \
            rs[c] = (double)r_k[n];                                                       \
            *nk = *nk + rs[c];                                                            \
            if (sq != NULL)                                                               \
                *sq_k = *sq_k + rs[c] * (double)sq[n];                                    \
            c++;                                                                          \
        }                                                                                 \
    }                                                                                     \
    return c;                                                                             \
}
#define VBF_GMM_TILE_STATS_SPARSE(name, T, R)                                             \
VBF_GMM_SP_LIST(name, R)                                                                  \
VBF_INLINE void name##_body(const T *x, int b, int D, const double *shift, const R *sq,   \
                            const R *r, int ld, int K, const unsigned char *mask,         \
                            double *acc, int W)                                           \
{                                                                                         \
    const int nb = (b + 7) / 8;                                                           \
    int idx[256];                                                                         \
    double rs[256];                                                                       \
    int i0, k, j, c, t;                                                                   \
    for (k = 0; k < K; k++) {                                                             \
        const R *restrict r_k = r + (Py_ssize_t)k * ld;                                   \
        const unsigned char *restrict m_k = mask + (Py_ssize_t)k * nb;                    \
        double *restrict s1 = acc + (Py_ssize_t)k * W;                                    \
        double *restrict s2 = s1 + D;                                                     \
        double nk = 0.0, sq_k = 0.0;                                                      \
        for (i0 = 0; i0 < nb; i0 += 32) {  /* 256 rows at a time */                       \
            c = name##_list(r_k, m_k, i0, i0 + 32 < nb ? i0 + 32 : nb, sq, idx, rs, &nk,  \
                            &sq_k);                                                       \
            j = 0;                                                                        \
            VBF_GMM_SP_BLOCKS(T)                                                          \
            for (t = 0; t < c; t++) {                                                     \
                const T *restrict x_n = x + (Py_ssize_t)idx[t] * D;                       \
                int jj;                                                                   \
                for (jj = j; jj < D; jj++) {                                              \
                    double v = (double)x_n[jj] - shift[jj], rv = rs[t] * v;               \
                    s1[jj] = s1[jj] + rv;                                                 \
                    if (sq == NULL)                                                       \
                        s2[jj] = s2[jj] + rv * v;                                         \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
        if (sq != NULL)                                                                   \
            s2[0] = s2[0] + sq_k;                                                         \
        s1[W - 1] = s1[W - 1] + nk;                                                       \
    }                                                                                     \
}                                                                                         \
VBF_GMM_SP_DISPATCH(name, T, R)

#if defined(__GNUC__) && defined(__x86_64__)
/* AVX-512: a component's listed rows summed whole, up to 32 features (four vectors, the
   last one masked) a walk of the list: S1 and S2 of those features in registers, the even
   and odd listed rows in two sets of sums (two dependency chains) added at the end. Per
   nonzero: the row's loads, v = x - shift, r v, and the two sums' adds and multiply-adds. */
#define VBF_GMM_SP_LOAD8(T, p, m) (sizeof(T) == sizeof(double)                              \
        ? _mm512_maskz_loadu_pd((m), (const double *)(const void *)(p))                   \
        : _mm512_cvtps_pd(_mm256_maskz_loadu_ps((m), (const float *)(const void *)(p))))
#define VBF_GMM_SP_DISPATCH(name, T, R)                                                   \
__attribute__((target("avx2,fma"))) static void name##_simd(                             \
    const T *x, int b, int D, const double *shift, const R *sq, const R *r, int ld,       \
    int K, const unsigned char *mask, double *acc, int W)                                 \
{                                                                                         \
    name##_body(x, b, D, shift, sq, r, ld, K, mask, acc, W);                              \
}                                                                                         \
__attribute__((target("avx512f,avx512dq,avx512vl,fma")))                                  \
static void name##_avx512(const T *x, int b, int D, const double *shift, const R *sq,     \
                          const R *r, int ld, int K, const unsigned char *mask,           \
                          double *acc, int W)                                             \
{                                                                                         \
    const int nb = (b + 7) / 8;                                                           \
    int idx[256 + 8];                                                                     \
    double rs[256 + 8], sqs[256 + 8];                                                     \
    int i0, i, k, j0, c, t, q;                                                            \
    for (k = 0; k < K; k++) {                                                             \
        const R *restrict r_k = r + (Py_ssize_t)k * ld;                                   \
        const unsigned char *restrict m_k = mask + (Py_ssize_t)k * nb;                    \
        double *restrict s1 = acc + (Py_ssize_t)k * W;                                    \
        double *restrict s2 = s1 + D;                                                     \
        double nk = 0.0, sq_k = 0.0;                                                      \
        for (i0 = 0; i0 < nb; i0 += 32) {  /* 256 rows at a time */                       \
            /* the listing without branches: each byte's rows and r compressed into idx   \
               and rs (a full vector stored; the next byte's overwrites past its count) */\
            const int i1 = i0 + 32 < nb ? i0 + 32 : nb;                                   \
            __m256i rows = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),    \
                                            _mm256_set1_epi32(8 * i0));                   \
            for (i = i0, c = 0; i < i1; i++) {                                            \
                const __mmask8 m = m_k[i];                                                \
                _mm256_storeu_si256((__m256i *)(idx + c), _mm256_maskz_compress_epi32(m, rows));\
                _mm512_storeu_pd(rs + c, _mm512_maskz_compress_pd(                        \
                    m, VBF_GMM_SP_LOAD8(R, r_k + 8 * i, 0xFF)));                          \
                if (sq != NULL)                                                           \
                    _mm512_storeu_pd(sqs + c, _mm512_maskz_compress_pd(                   \
                        m, VBF_GMM_SP_LOAD8(R, sq + 8 * i, 0xFF)));                       \
                c += __builtin_popcount(m);                                               \
                rows = _mm256_add_epi32(rows, _mm256_set1_epi32(8));                      \
            }                                                                             \
            for (t = 0; t < c; t++) {  /* in row order, as the listing's sums */         \
                nk = nk + rs[t];                                                          \
                if (sq != NULL)                                                           \
                    sq_k = sq_k + rs[t] * sqs[t];                                         \
            }                                                                             \
            for (j0 = 0; j0 < D; j0 += 32) {                                              \
                __m512d a1[4], a2[4], b1[4], b2[4], sh[4];                                \
                __mmask8 lm[4];                                                           \
                for (q = 0; q < 4; q++) {                                                 \
                    const int left = D - j0 - 8 * q;                                      \
                    lm[q] = left >= 8 ? 0xFF : left > 0 ? (__mmask8)((1u << left) - 1u) : 0;\
                    sh[q] = _mm512_maskz_loadu_pd(lm[q], shift + j0 + 8 * q);             \
                    a1[q] = _mm512_maskz_loadu_pd(lm[q], s1 + j0 + 8 * q);                \
                    a2[q] = sq == NULL ? _mm512_maskz_loadu_pd(lm[q], s2 + j0 + 8 * q)    \
                                       : _mm512_setzero_pd();                             \
                    b1[q] = _mm512_setzero_pd();                                          \
                    b2[q] = _mm512_setzero_pd();                                          \
                }                                                                         \
                for (t = 0; t + 2 <= c; t += 2) {                                         \
                    const T *x0 = x + (Py_ssize_t)idx[t] * D + j0;                        \
                    const T *x1 = x + (Py_ssize_t)idx[t + 1] * D + j0;                    \
                    const __m512d r0 = _mm512_set1_pd(rs[t]), r1 = _mm512_set1_pd(rs[t + 1]);\
                    for (q = 0; q < 4; q++) {                                             \
                        if (lm[q]) {                                                      \
                            __m512d v0 = _mm512_sub_pd(VBF_GMM_SP_LOAD8(T, x0 + 8 * q, lm[q]),\
                                                       sh[q]);                            \
                            __m512d v1 = _mm512_sub_pd(VBF_GMM_SP_LOAD8(T, x1 + 8 * q, lm[q]),\
                                                       sh[q]);                            \
                            __m512d rv0 = _mm512_mul_pd(r0, v0), rv1 = _mm512_mul_pd(r1, v1);\
                            a1[q] = _mm512_add_pd(a1[q], rv0);                            \
                            b1[q] = _mm512_add_pd(b1[q], rv1);                            \
                            if (sq == NULL) {                                             \
                                a2[q] = _mm512_fmadd_pd(rv0, v0, a2[q]);                  \
                                b2[q] = _mm512_fmadd_pd(rv1, v1, b2[q]);                  \
                            }                                                             \
                        }                                                                 \
                    }                                                                     \
                }                                                                         \
                if (t < c) {                                                              \
                    const T *x0 = x + (Py_ssize_t)idx[t] * D + j0;                        \
                    const __m512d r0 = _mm512_set1_pd(rs[t]);                             \
                    for (q = 0; q < 4; q++) {                                             \
                        if (lm[q]) {                                                      \
                            __m512d v0 = _mm512_sub_pd(VBF_GMM_SP_LOAD8(T, x0 + 8 * q, lm[q]),\
                                                       sh[q]);                            \
                            __m512d rv0 = _mm512_mul_pd(r0, v0);                          \
                            a1[q] = _mm512_add_pd(a1[q], rv0);                            \
                            if (sq == NULL)                                               \
                                a2[q] = _mm512_fmadd_pd(rv0, v0, a2[q]);                  \
                        }                                                                 \
                    }                                                                     \
                }                                                                         \
                for (q = 0; q < 4; q++) {                                                 \
                    _mm512_mask_storeu_pd(s1 + j0 + 8 * q, lm[q],                         \
                                          _mm512_add_pd(a1[q], b1[q]));                   \
                    if (sq == NULL)                                                       \
                        _mm512_mask_storeu_pd(s2 + j0 + 8 * q, lm[q],                     \
                                              _mm512_add_pd(a2[q], b2[q]));               \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
        if (sq != NULL)                                                                   \
            s2[0] = s2[0] + sq_k;                                                         \
        s1[W - 1] = s1[W - 1] + nk;                                                       \
    }                                                                                     \
}                                                                                         \
VBF_GMM_DISPATCH3(name, vbf_cpu_avx2_fma(),                                               \
                  (const T *x, int b, int D, const double *shift, const R *sq,            \
                   const R *r, int ld, int K, const unsigned char *mask, double *acc,     \
                   int W),                                                                \
                  (x, b, D, shift, sq, r, ld, K, mask, acc, W))
#else
#define VBF_GMM_SP_DISPATCH(name, T, R)                                                   \
VBF_DISPATCH(name, "avx2,fma", vbf_cpu_avx2_fma(),                                        \
             (const T *x, int b, int D, const double *shift, const R *sq, const R *r,     \
              int ld, int K, const unsigned char *mask, double *acc, int W),              \
             (x, b, D, shift, sq, r, ld, K, mask, acc, W))
#endif
VBF_GMM_TILE_STATS_SPARSE(vbf_gmm_tile_stats_sparse_f64, double, double)
VBF_GMM_TILE_STATS_SPARSE(vbf_gmm_tile_stats_sparse_f32, float, double)
VBF_GMM_TILE_STATS_SPARSE(vbf_gmm_tile_stats_sparse32, float, float)


/* out[j] = sum_n w_n x_nj (w NULL: unit weights; SQ = 1: sum_n w_n (x_nj - shift_j)^2,
   else shift unused) over the b rows of x (row-major, D columns), in float64, each
   column's sum in row order: eight columns at a time in registers (the output is not
   re-read every row). */
#define VBF_GMM_COLUMN_SUMS(name, T, SQ)                                                  \
static void name(const T *restrict x, Py_ssize_t b, int D, const double *restrict w,     \
                 const double *restrict shift, double *restrict out)                      \
{                                                                                         \
    int j0, j, nj;                                                                        \
    Py_ssize_t n;                                                                         \
    for (j0 = 0; j0 < D; j0 += 8) {                                                       \
        double acc[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};                         \
        nj = D - j0 < 8 ? D - j0 : 8;                                                     \
        if (nj == 8 && w == NULL) {                                                       \
            for (n = 0; n < b; n++)                                                       \
                for (j = 0; j < 8; j++)                                                   \
                    acc[j] = acc[j]                                                       \
                        + VBF_GMM_CS_TERM(SQ, x[n * D + j0 + j], j0 + j);                 \
        } else if (nj == 8) {                                                             \
            for (n = 0; n < b; n++)                                                       \
                for (j = 0; j < 8; j++)                                                   \
                    acc[j] = acc[j] + w[n]                                                \
                        * VBF_GMM_CS_TERM(SQ, x[n * D + j0 + j], j0 + j);                 \
        } else {                                                                          \
            for (n = 0; n < b; n++)                                                       \
                for (j = 0; j < nj; j++)                                                  \
                    acc[j] = acc[j] + (w != NULL ? w[n] : 1.0)                            \
                        * VBF_GMM_CS_TERM(SQ, x[n * D + j0 + j], j0 + j);                 \
        }                                                                                 \
        for (j = 0; j < nj; j++)                                                          \
            out[j0 + j] = acc[j];                                                         \
    }                                                                                     \
}
/* a row's term: x (column sums) or (x - shift)^2 (square sums about the shift), in float64 */
#define VBF_GMM_CS_TERM(SQ, v, j)                                                         \
    ((SQ) ? ((double)(v) - shift[j]) * ((double)(v) - shift[j]) : (double)(v))
VBF_GMM_COLUMN_SUMS(vbf_gmm_column_sums_f64, double, 0)
VBF_GMM_COLUMN_SUMS(vbf_gmm_column_sums_f32, float, 0)
VBF_GMM_COLUMN_SUMS(vbf_gmm_square_sums_f64, double, 1)
VBF_GMM_COLUMN_SUMS(vbf_gmm_square_sums_f32, float, 1)

/* ---- The float32 tile (_tile_group, float): float32 input, diag / spherical, every component
   within FAR_FROM_SHIFT_F32 of the shift. The same algorithm as the float64 tile with the
   features, log rho and the responsibilities in float32: sixteen rows a vector (one 512-bit
   vector with AVX-512, two 256-bit halves with AVX2), the per-row results log p(x_n) and
   sum_k r_nk log r_nk formed in float64 from float32 max, sum and log. */

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

/* vbf_gmm_lse_cols in float32 (VBF_GMM_LSE_COLS with T float): lpT (K, ld) float32, ld a
   multiple of 16; every column becomes (float32) w_n r_nk; lpn[n] = log p(x_n) and rlogr[n]
   = sum_k r_nk log r_nk in float64 (from the float32 max, sum and log). L rows a vector,
   one row per lane, the lane's operations in k order: a row's result depends on that row
   only. */
#define VBF_F32_LSE_COLS(SUF, VT, IT, L)                                                   \
VBF_GMM_LSE_COLS(vbf_gmm_lse_cols_f32_##SUF, VBF_INLINE, float, L, VT, IT, vbf_fsplat_##SUF,\
                 vbf_fload_##SUF, vbf_fstore_##SUF, vbf_fblend_##SUF, vbf_fbits_##SUF,     \
                 vbf_ffrom_bits_##SUF, vbf_expf_nonpositive_##SUF, vbf_logf_##SUF,         \
                 VBF_GMM_ANY_TERM)

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

/* the float32 register E-step's (_gaussian_tile_estep.h) rows' weights p[0..16) (float64)
   rounded to float32, rows m */
#define VBF_GMM_ESTEP_WEIGHTS_F32(m, p) ({                                                 \
    const __m512d w0_ = _mm512_maskz_loadu_pd((__mmask8)(m), p);                           \
    const __m512d w1_ = _mm512_maskz_loadu_pd((__mmask8)((m) >> 8), (p) + 8);              \
    (vbf_f16)_mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(w0_)),              \
                                _mm512_cvtpd_ps(w1_), 1);                                  \
})
/* and its per-row outputs, in float64: rows m of rlogr = v / s - log s and lpn = mx + log s
   (dead rows: 0 and -inf); (macros, not inline functions: the kernels' object code stays
   that of the hand-written pair, an inlined call's reordered it) */
#define VBF_GMM_ESTEP_ROWS_OUT_F32(rlogr, lpn, m, dead, v, inv, log_s, mx, zero, ninf) do { \
    const __m512 vs_ = (__m512)((v) * (inv));                                              \
    const __m512 ls_ = (__m512)(log_s), mf_ = (__m512)(mx);                                \
    const __mmask16 live_ = (m) & ~_mm512_movepi32_mask((__m512i)(dead));                  \
    const __mmask16 gone_ = (m) & ~live_;                                                  \
    __m512d a_, l_;                                                                        \
    int h_;                                                                                \
    for (h_ = 0; h_ < 2; h_++) {                                                           \
        const __mmask8 mh_ = (__mmask8)((m) >> (8 * h_));                                  \
        const __mmask8 lh_ = (__mmask8)(live_ >> (8 * h_));                                \
        const __mmask8 gh_ = (__mmask8)(gone_ >> (8 * h_));                                \
        if (!mh_)                                                                          \
            break;                                                                         \
        l_ = _mm512_cvtps_pd(h_ ? _mm512_extractf32x8_ps(ls_, 1)                           \
                                : _mm512_castps512_ps256(ls_));                            \
        a_ = _mm512_cvtps_pd(h_ ? _mm512_extractf32x8_ps(vs_, 1)                           \
                                : _mm512_castps512_ps256(vs_));                            \
        _mm512_mask_storeu_pd((rlogr) + 8 * h_, lh_, _mm512_sub_pd(a_, l_));               \
        _mm512_mask_storeu_pd((rlogr) + 8 * h_, gh_, _mm512_setzero_pd());                 \
        a_ = _mm512_cvtps_pd(h_ ? _mm512_extractf32x8_ps(mf_, 1)                           \
                                : _mm512_castps512_ps256(mf_));                            \
        _mm512_mask_storeu_pd((lpn) + 8 * h_, lh_, _mm512_add_pd(a_, l_));                 \
        _mm512_mask_storeu_pd((lpn) + 8 * h_, gh_, _mm512_set1_pd(-INFINITY));             \
    }                                                                                      \
} while (0)

/* The E-step of a float32 diag / spherical tile (_tile_group, float tile) in registers
   (AVX-512), sixteen rows a vector, the float64 tile's from _gaussian_tile_estep.h (see
   there) in float32: vbf_gmm_tile_estep16_f32_avx512 (K <= 16) and
   vbf_gmm_tile_estep_blocks_f32_avx512 (16 < K, blocks of eight components, thirty-two rows
   at a time); coefT [-1/2 a_k, c_k]^T rounded to float32, log rho's constant added last
   (as the SGEMM's ones feature), every term's exp taken */
#define VBF_E_T float
#define VBF_E_L 16
#define VBF_E_V vbf_f16
#define VBF_E_I vbf_fi16
#define VBF_E_RAW __m512
#define VBF_E_MASK __mmask16
#define VBF_E_FULL 0xFFFF
#define VBF_E_SPLAT vbf_fsplat_16
#define VBF_E_BLEND vbf_fblend_16
#define VBF_E_BITS vbf_fbits_16
#define VBF_E_FROM_BITS vbf_ffrom_bits_16
#define VBF_E_STORE vbf_fstore_16
#define VBF_E_EXP vbf_expf_nonpositive_16
#define VBF_E_LOG vbf_logf_16
#define VBF_E_LOADU _mm512_maskz_loadu_ps
#define VBF_E_FMA _mm512_fmadd_ps
#define VBF_E_SET1 _mm512_set1_ps
#define VBF_E_MOV _mm512_maskz_mov_ps
#define VBF_E_STOREU _mm512_storeu_ps
#define VBF_E_ADD _mm512_add_ps
#define VBF_E_ZERO _mm512_setzero_ps
#define VBF_E_ANY VBF_GMM_ANY_TERM
#define VBF_E_LOAD_W VBF_GMM_ESTEP_WEIGHTS_F32
#define VBF_E_ROWS_OUT VBF_GMM_ESTEP_ROWS_OUT_F32
#define VBF_E_LSE_COLS vbf_gmm_lse_cols_f32_16
#define VBF_E_CONST_LAST 1
#define VBF_E_STATS 0
#define VBF_E_ESTEP16 vbf_gmm_tile_estep16_f32_avx512
#define VBF_E_BLOCKS vbf_gmm_tile_estep_blocks_f32_avx512
#include "_gaussian_tile_estep.h"
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

/* float32 (vbf_gmm_tile_estep16_f32_avx512, vbf_gmm_tile_estep_blocks_f32_avx512): coefT
   (W, 16) for K <= 16, else in blocks of eight components; ld a multiple of 16 */
VBF_GMM_TILE_ESTEP_DISPATCH(vbf_gmm_tile_estep_f32, float, vbf_gmm_tile_estep16_f32_avx512,
                            vbf_gmm_tile_estep_blocks_f32_avx512)

/* ---- 'full' as fused tiles (_full_tile_group): both halves of an EM step from one
   feature-major tile, every component in the centred (exact) form, no BLAS.

   The tile holds T rows, feature-major: xT (D, ld) row-major, feature j of row n at
   xT[j ld + n], the shift already subtracted; ld and the row count nr are multiples of 32
   (rows past the data are finite scratch). Lanes run over rows, so a row's sums are its
   lane's operations in a fixed order (no horizontal sums in the E-step): the result of a
   row depends on that row and the build the dispatch picks (AVX-512, AVX2 + FMA or the
   baseline), never on the tile's other rows or the thread count.

   vbf_gmm_full_quad_tile: lpT (K, ld) row-major, log rho_nk = c_k - 1/2 ||(x_n - m_k) U_k||^2
   at lpT[k ld + n]. U_k comes packed (vbf_gmm_full_pack_u, DP = D rounded up to 4): for
   each block of four columns j0..j0+3 the rows i <= j0 + 3 of U_k as DP x 4 numbers (zero
   past the triangle and past D), so that y_n[j0..j0+3] = sum_i xc_ni U_k[i, j0..j0+3] runs
   over the triangle only (576 multiply-adds a row and component at D = 32, not 1,024).
   xc (D, ld) is scratch: the tile centred at m_k, so that no digit is lost to a component's
   distance from the shift.

   vbf_gmm_full_stats_tile: for every k, with r_nk = rT[k ld + n] (weighted
   responsibilities, zero past the data's rows): N_k += sum_n r_nk, S1_k += sum_n r_nk x_n
   (about the shift), and S2_k (lower triangle of a row-major D x D block) +=
   sum_n r_nk (x_n - c_k)(x_n - c_k)^T with c_k = means[k], from the centred rows xc and
   r xc (scratch, (DP, ld) each), four by SJB entries of S2_k at a time. Each sum is lane
   partial sums over the tile's rows in order, then the lanes added in float64 by
   vbf_gmm_lanes_block (in order in the float64 tiles, by a fixed tree in the float32 ones). */
VBF_INLINE void vbf_gmm_full_pack_u(const double *u, int D, int K, double *up)
{
    int DP = (D + 3) & ~3, k, i, j, q;
    for (k = 0; k < K; k++)
        for (j = 0; j < DP; j += 4)
            for (i = 0; i < DP; i++)
                for (q = 0; q < 4; q++)
                    up[(Py_ssize_t)k * DP * DP + (Py_ssize_t)j * DP + 4 * i + q] =
                        (i < D && j + q < D && i <= j + q)
                        ? u[(Py_ssize_t)k * D * D + (Py_ssize_t)i * D + j + q] : 0.0;
}

#if defined(__GNUC__)
#define VBF_GMM_FULL_TILE(SUF, T, V, L, RB, SJB, ATTR, SPLAT)                                  \
ATTR static void vbf_gmm_full_quad_tile_##SUF(                                            \
    const T *xT, int ld, int nr, int D, int K, const T *means,                            \
    const T *up, const double *log_const, T *xc, T *lpT)                                  \
{                                                                                         \
    const int DP = (D + 3) & ~3;                                                          \
    int k, i, j0, n0, r, q;                                                            \
    for (k = 0; k < K; k++) {                                                             \
        const T *m = means + (Py_ssize_t)k * D;                                           \
        const T *uk = up + (Py_ssize_t)k * DP * DP;                                       \
        const V c = SPLAT((T)log_const[k]);                                                \
        for (n0 = 0; n0 < nr; n0 += RB * L) {                                             \
            V s[RB];                                                                      \
            /* the row block centred at m_k, (D, RB L): stays in L1 (vectors: the       \
               compiler cannot see that xc and xT do not overlap) */                      \
            for (i = 0; i < D; i++) {                                                     \
                const V mi = SPLAT(m[i]);                                                  \
                for (r = 0; r < RB; r++) {                                                \
                    V x;                                                                  \
                    __builtin_memcpy(&x, xT + (Py_ssize_t)i * ld + n0 + r * L, sizeof x); \
                    x = x - mi;                                                           \
                    __builtin_memcpy(xc + i * RB * L + r * L, &x, sizeof x);              \
                }                                                                         \
            }                                                                             \
            for (r = 0; r < RB; r++)                                                      \
                s[r] = (V){0};                                                            \
            for (j0 = 0; j0 < DP; j0 += 4) {                                              \
                const T *ub = uk + (Py_ssize_t)j0 * DP;                                   \
                const int imax = j0 + 4 < D ? j0 + 4 : D;                                 \
                V a[RB][4];                                                               \
                for (r = 0; r < RB; r++)                                                  \
                    for (q = 0; q < 4; q++)                                               \
                        a[r][q] = (V){0};                                                 \
                for (i = 0; i < imax; i++) {                                              \
                    const T *xi = xc + i * RB * L;                                        \
                    V u[4], x;                                                            \
                    for (q = 0; q < 4; q++)                                               \
                        u[q] = SPLAT(ub[4 * i + q]);                                       \
                    for (r = 0; r < RB; r++) {                                            \
                        __builtin_memcpy(&x, xi + r * L, sizeof x);                       \
                        for (q = 0; q < 4; q++)                                           \
                            a[r][q] = a[r][q] + x * u[q];                                 \
                    }                                                                     \
                }                                                                         \
                for (r = 0; r < RB; r++)                                                  \
                    for (q = 0; q < 4; q++)                                               \
                        s[r] = s[r] + a[r][q] * a[r][q];                                  \
            }                                                                             \
            for (r = 0; r < RB; r++) {                                                    \
                const V v = c - (T)0.5 * s[r];                                            \
                __builtin_memcpy(lpT + (Py_ssize_t)k * ld + n0 + r * L, &v, sizeof v);    \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
}                                                                                         \
ATTR static inline double vbf_gmm_lanes_##SUF(V a)                                        \
{                                                                                         \
    double t = a[0];                                                                      \
    int q;                                                                                \
    for (q = 1; q < L; q++)                                                               \
        t = t + a[q];                                                                     \
    return t;                                                                             \
}                                                                                         \
ATTR static void vbf_gmm_full_stats_tile_##SUF(                                           \
    const T *xT, int ld, int nr, int D, int K, const T *means,                            \
    const T *rT, T *xc, T *rx, double *nk, double *s1, double *s2)                        \
{                                                                                         \
    int k, i, j, i0, j0, n, p, q;                                                         \
    double lane_sums[4 * SJB];                                                            \
    (void)xc;                                                                             \
    for (k = 0; k < K; k++) {                                                             \
        const T *m = means + (Py_ssize_t)k * D, *rk = rT + (Py_ssize_t)k * ld;            \
        double *s2k = s2 + (Py_ssize_t)k * D * D;                                         \
        V acc = (V){0}, x, y;                                                             \
        for (n = 0; n < nr; n += L) {                                                     \
            __builtin_memcpy(&x, rk + n, sizeof x);                                       \
            acc = acc + x;                                                                \
        }                                                                                 \
        nk[k] = nk[k] + vbf_gmm_lanes_##SUF(acc);                                         \
        for (i0 = 0; i0 < D; i0 += 4) {                                                   \
            /* r (x_i - m_i) for the four rows i of the block, (4, nr): stays in L1; and  \
               S1_ki = sum_n r x_i on the way, four independent chains */                 \
            V s1a[4], mi[4];                                                              \
            for (p = 0; p < 4; p++) {                                                     \
                s1a[p] = (V){0};                                                          \
                mi[p] = SPLAT(i0 + p < D ? m[i0 + p] : (T)0);                             \
            }                                                                             \
            for (n = 0; n < nr; n += L) {                                                 \
                __builtin_memcpy(&y, rk + n, sizeof y);                                   \
                for (p = 0; p < 4; p++) {                                                 \
                    __builtin_memcpy(&x, xT + (Py_ssize_t)(i0 + p) * ld + n, sizeof x);   \
                    s1a[p] = s1a[p] + y * x;                                              \
                    x = y * (x - mi[p]);                                                  \
                    __builtin_memcpy(rx + (Py_ssize_t)p * ld + n, &x, sizeof x);          \
                }                                                                         \
            }                                                                             \
            vbf_gmm_lanes_block_##SUF(s1a, 4, lane_sums);                                \
            for (p = 0; p < 4 && i0 + p < D; p++)                                         \
                s1[(Py_ssize_t)k * D + i0 + p] = s1[(Py_ssize_t)k * D + i0 + p]           \
                    + lane_sums[p];                                                       \
            for (j0 = 0; j0 < i0 + 4 && j0 < D; j0 += SJB) {                              \
                V a[4][SJB], xi[4], xj[SJB], mj[SJB];                                     \
                for (q = 0; q < SJB; q++)                                                 \
                    mj[q] = SPLAT(j0 + q < D ? m[j0 + q] : (T)0);                         \
                for (p = 0; p < 4; p++)                                                   \
                    for (q = 0; q < SJB; q++)                                             \
                        a[p][q] = (V){0};                                                 \
                for (n = 0; n < nr; n += L) {                                             \
                    for (p = 0; p < 4; p++)                                               \
                        __builtin_memcpy(&xi[p], rx + (Py_ssize_t)p * ld + n, sizeof(V)); \
                    for (q = 0; q < SJB; q++) {                                           \
                        __builtin_memcpy(&xj[q], xT + (Py_ssize_t)(j0 + q) * ld + n,      \
                                         sizeof(V));                                      \
                        xj[q] = xj[q] - mj[q];                                            \
                    }                                                                     \
                    for (p = 0; p < 4; p++)                                               \
                        for (q = 0; q < SJB; q++)                                         \
                            a[p][q] = a[p][q] + xi[p] * xj[q];                            \
                }                                                                         \
                vbf_gmm_lanes_block_##SUF(&a[0][0], 4 * SJB, lane_sums);                  \
                for (p = 0; p < 4 && i0 + p < D; p++)                                     \
                    for (q = 0; q < SJB && j0 + q <= i0 + p; q++) {                       \
                        i = i0 + p;                                                       \
                        j = j0 + q;                                                       \
                        s2k[(Py_ssize_t)i * D + j] = s2k[(Py_ssize_t)i * D + j]           \
                            + lane_sums[p * SJB + q];                                     \
                    }                                                                     \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
}

/* 'tied' as fused tiles (_full_tile_group with tied = 1): y = x U once per tile (yT (DP, ld)
   scratch, U packed as one component's U_k), then log rho_nk = c_k - 1/2 ||y_n - mu_k||^2
   with mu_k = m_k U (K, D), four components a time lane by lane; N_k and S1_k as the full
   tiles' (no S2: sum_n w_n x_n x_n^T is computed once per fit), S1's lanes added by
   vbf_gmm_lanes_block_##SUF (instantiated before both macros). */
#define VBF_GMM_TIED_TILE(SUF, T, V, L, ATTR, SPLAT)                                     \
ATTR static void vbf_gmm_tied_quad_tile_##SUF(                                            \
    const T *xT, int ld, int nr, int D, int K, const T *mu, const T *up,                  \
    const double *log_const, T *yT, T *lpT)                                               \
{                                                                                         \
    const int DP = (D + 3) & ~3;                                                          \
    int k, k0, i, j, j0, n, q;                                                            \
    for (n = 0; n < nr; n += L) {                                                         \
        for (j0 = 0; j0 < DP; j0 += 4) {                                                  \
            const T *ub = up + (Py_ssize_t)j0 * DP;                                       \
            const int imax = j0 + 4 < D ? j0 + 4 : D;                                     \
            V a[4], x;                                                                    \
            for (q = 0; q < 4; q++)                                                       \
                a[q] = (V){0};                                                            \
            for (i = 0; i < imax; i++) {                                                  \
                __builtin_memcpy(&x, xT + (Py_ssize_t)i * ld + n, sizeof x);              \
                for (q = 0; q < 4; q++)                                                   \
                    a[q] = a[q] + x * SPLAT(ub[4 * i + q]);                               \
            }                                                                             \
            for (q = 0; q < 4 && j0 + q < D; q++)                                         \
                __builtin_memcpy(yT + (Py_ssize_t)(j0 + q) * ld + n, &a[q], sizeof(V));   \
        }                                                                                 \
    }                                                                                     \
    for (k0 = 0; k0 < K; k0 += 4) {                                                       \
        const int kn = K - k0 < 4 ? K - k0 : 4;                                           \
        for (n = 0; n < nr; n += L) {                                                     \
            V s[4], y, d;                                                                 \
            for (q = 0; q < 4; q++)                                                       \
                s[q] = (V){0};                                                            \
            for (j = 0; j < D; j++) {                                                     \
                __builtin_memcpy(&y, yT + (Py_ssize_t)j * ld + n, sizeof y);              \
                for (q = 0; q < kn; q++) {                                                \
                    d = y - SPLAT(mu[(Py_ssize_t)(k0 + q) * D + j]);                      \
                    s[q] = s[q] + d * d;                                                  \
                }                                                                         \
            }                                                                             \
            for (q = 0; q < kn; q++) {                                                    \
                k = k0 + q;                                                               \
                y = SPLAT((T)log_const[k]) - (T)0.5 * s[q];                               \
                __builtin_memcpy(lpT + (Py_ssize_t)k * ld + n, &y, sizeof y);             \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
}                                                                                         \
ATTR static void vbf_gmm_tied_stats_tile_##SUF(                                           \
    const T *xT, int ld, int nr, int D, int K, const T *rT, double *nk,                   \
    double *s1)                                                                           \
{                                                                                         \
    int k, k0, i0, n, p, q;                                                               \
    double lane_sums[16];                                                                 \
    for (k = 0; k < K; k++) {                                                             \
        const T *rk = rT + (Py_ssize_t)k * ld;                                            \
        V acc = (V){0}, x;                                                                \
        double t;                                                                         \
        for (n = 0; n < nr; n += L) {                                                     \
            __builtin_memcpy(&x, rk + n, sizeof x);                                       \
            acc = acc + x;                                                                \
        }                                                                                 \
        t = acc[0];                                                                       \
        for (q = 1; q < L; q++)                                                           \
            t = t + acc[q];                                                               \
        nk[k] = nk[k] + t;                                                                \
    }                                                                                     \
    /* S1 = R^T X four components by four features at a time (a register block: eight     \
       loads for sixteen multiply-adds; xT has DP >= i0 + 4 rows, the padded ones zero,   \
       and a block past the last component repeats it, unused) */                         \
    for (k0 = 0; k0 < K; k0 += 4)                                                         \
        for (i0 = 0; i0 < D; i0 += 4) {                                                   \
            const T *rp[4];                                                               \
            V a[4][4], xi[4], r;                                                          \
            for (p = 0; p < 4; p++) {                                                     \
                rp[p] = rT + (Py_ssize_t)(k0 + p < K ? k0 + p : K - 1) * ld;              \
                for (q = 0; q < 4; q++)                                                   \
                    a[p][q] = (V){0};                                                     \
            }                                                                             \
            for (n = 0; n < nr; n += L) {                                                 \
                for (q = 0; q < 4; q++)                                                   \
                    __builtin_memcpy(&xi[q], xT + (Py_ssize_t)(i0 + q) * ld + n,          \
                                     sizeof(V));                                          \
                for (p = 0; p < 4; p++) {                                                 \
                    __builtin_memcpy(&r, rp[p] + n, sizeof r);                            \
                    for (q = 0; q < 4; q++)                                               \
                        a[p][q] = a[p][q] + r * xi[q];                                    \
                }                                                                         \
            }                                                                             \
            vbf_gmm_lanes_block_##SUF(&a[0][0], 16, lane_sums);                          \
            for (p = 0; p < 4 && k0 + p < K; p++)                                         \
                for (q = 0; q < 4 && i0 + q < D; q++)                                     \
                    s1[(Py_ssize_t)(k0 + p) * D + i0 + q] =                               \
                        s1[(Py_ssize_t)(k0 + p) * D + i0 + q] + lane_sums[p * 4 + q];     \
        }                                                                                 \
}

/* The tiles' sums of a register block: M accumulators a[0..M-1] (vectors of L lanes, M <= 16)
   to M float64 sums, sums[m] = the lanes of a[m] added. The float64 tiles add the lanes in
   order, one at a time (vbf_gmm_lanes_block_scalar). The float32 tiles have twice the lanes
   and half the vectors per sum, so that loop would cost as much as the tile's own
   multiply-adds: there each vector's two halves are converted to float64 and added, then
   pairs of vectors folded (the even and the odd lanes of the two added: a transpose by
   halving, one vector of N = L / 2 sums per N accumulators) until every lane holds one sum,
   sums[m] = lane m % N of vector m / N. Either way a fixed order of operations: the same
   bits for any thread count. (Float32 lanes added in float64 are mostly exact, 29 spare
   bits: then the tree and the loop give the same bits.) */
#define VBF_GMM_LANES_BLOCK_SCALAR(SUF, V, L, ATTR)                                       \
ATTR static inline void vbf_gmm_lanes_block_##SUF(const V *a, int M, double *sums)       \
{                                                                                         \
    int m, q;                                                                             \
    for (m = 0; m < M; m++) {                                                             \
        double t = a[m][0];                                                               \
        for (q = 1; q < L; q++)                                                           \
            t = t + a[m][q];                                                              \
        sums[m] = t;                                                                      \
    }                                                                                     \
}
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector) && __has_builtin(__builtin_convertvector)
#define VBF_GMM_LANES_FOLD 1
#endif
#endif
#ifdef VBF_GMM_LANES_FOLD
#define VBF_GMM_LANES_BLOCK_F32(SUF, V, L, HV, DV, ATTR, LO, HI, EVEN, ODD)                \
ATTR static inline void vbf_gmm_lanes_block_##SUF(const V *a, int M, double *sums)       \
{                                                                                         \
    DV d[16];                                                                             \
    int m, n = M, g;                                                                      \
    for (m = 0; m < M; m++)                                                               \
        d[m] = __builtin_convertvector((HV)__builtin_shufflevector(a[m], a[m], LO), DV)   \
            + __builtin_convertvector((HV)__builtin_shufflevector(a[m], a[m], HI), DV);   \
    for (g = L / 2; g > 1; g /= 2) {                                                      \
        if (n > 1) {                                                                      \
            for (m = 0; m < n / 2; m++)                                                   \
                d[m] = __builtin_shufflevector(d[2 * m], d[2 * m + 1], EVEN)              \
                    + __builtin_shufflevector(d[2 * m], d[2 * m + 1], ODD);               \
            n = n / 2;                                                                    \
        } else {  /* fewer accumulators than lanes: fold the vector onto itself */        \
            d[0] = __builtin_shufflevector(d[0], d[0], EVEN)                              \
                + __builtin_shufflevector(d[0], d[0], ODD);                               \
        }                                                                                 \
    }                                                                                     \
    for (m = 0; m < M; m++)                                                               \
        sums[m] = d[m / (L / 2)][m % (L / 2)];                                            \
}
#else
#define VBF_GMM_LANES_BLOCK_F32(SUF, V, L, HV, DV, ATTR, LO, HI, EVEN, ODD)                \
    VBF_GMM_LANES_BLOCK_SCALAR(SUF, V, L, ATTR)
#endif
typedef float vbf_gmm_f4 __attribute__((vector_size(16)));
#define VBF_GMM_LO8 0, 1, 2, 3
#define VBF_GMM_HI8 4, 5, 6, 7
#define VBF_GMM_EVEN4 0, 2, 4, 6
#define VBF_GMM_ODD4 1, 3, 5, 7

typedef double vbf_gmm_v4 __attribute__((vector_size(32)));
#define VBF_GMM_SPLAT4(v) ((vbf_gmm_v4){(v), (v), (v), (v)})
/* float32 (the tiles of float32 X, float32_work): eight lanes baseline and AVX2, sixteen
   AVX-512; the splat by adding to a zero vector */
typedef float vbf_gmm_f8 __attribute__((vector_size(32)));
#define VBF_GMM_FSPLAT8(v) ((vbf_gmm_f8){0} + (float)(v))
VBF_GMM_LANES_BLOCK_SCALAR(base, vbf_gmm_v4, 4, )
VBF_GMM_LANES_BLOCK_F32(base_32, vbf_gmm_f8, 8, vbf_gmm_f4, vbf_gmm_v4, , VBF_GMM_LO8,
                        VBF_GMM_HI8, VBF_GMM_EVEN4, VBF_GMM_ODD4)
VBF_GMM_FULL_TILE(base, double, vbf_gmm_v4, 4, 2, 2, , VBF_GMM_SPLAT4)
VBF_GMM_TIED_TILE(base, double, vbf_gmm_v4, 4, , VBF_GMM_SPLAT4)
VBF_GMM_FULL_TILE(base_32, float, vbf_gmm_f8, 8, 2, 2, , VBF_GMM_FSPLAT8)
VBF_GMM_TIED_TILE(base_32, float, vbf_gmm_f8, 8, , VBF_GMM_FSPLAT8)
#if defined(__x86_64__)
typedef double vbf_gmm_v8 __attribute__((vector_size(64)));
#define VBF_GMM_SPLAT8(v) ((vbf_gmm_v8){(v), (v), (v), (v), (v), (v), (v), (v)})
typedef float vbf_gmm_f16 __attribute__((vector_size(64)));
#define VBF_GMM_FSPLAT16(v) ((vbf_gmm_f16){0} + (float)(v))
#define VBF_GMM_LO16 0, 1, 2, 3, 4, 5, 6, 7
#define VBF_GMM_HI16 8, 9, 10, 11, 12, 13, 14, 15
#define VBF_GMM_EVEN8 0, 2, 4, 6, 8, 10, 12, 14
#define VBF_GMM_ODD8 1, 3, 5, 7, 9, 11, 13, 15
VBF_GMM_LANES_BLOCK_SCALAR(avx2, vbf_gmm_v4, 4, __attribute__((target("avx2,fma"))))
VBF_GMM_LANES_BLOCK_SCALAR(avx512, vbf_gmm_v8, 8,
                           __attribute__((target("avx512f,avx512dq,avx512vl,fma"))))
VBF_GMM_LANES_BLOCK_F32(avx2_32, vbf_gmm_f8, 8, vbf_gmm_f4, vbf_gmm_v4,
                        __attribute__((target("avx2,fma"))), VBF_GMM_LO8, VBF_GMM_HI8,
                        VBF_GMM_EVEN4, VBF_GMM_ODD4)
VBF_GMM_LANES_BLOCK_F32(avx512_32, vbf_gmm_f16, 16, vbf_gmm_f8, vbf_gmm_v8,
                        __attribute__((target("avx512f,avx512dq,avx512vl,fma"))),
                        VBF_GMM_LO16, VBF_GMM_HI16, VBF_GMM_EVEN8, VBF_GMM_ODD8)
VBF_GMM_FULL_TILE(avx2, double, vbf_gmm_v4, 4, 2, 2, __attribute__((target("avx2,fma"))),
                  VBF_GMM_SPLAT4)
VBF_GMM_FULL_TILE(avx512, double, vbf_gmm_v8, 8, 4, 4,
                  __attribute__((target("avx512f,avx512dq,avx512vl,fma"))), VBF_GMM_SPLAT8)
VBF_GMM_TIED_TILE(avx2, double, vbf_gmm_v4, 4, __attribute__((target("avx2,fma"))),
                  VBF_GMM_SPLAT4)
VBF_GMM_TIED_TILE(avx512, double, vbf_gmm_v8, 8,
                  __attribute__((target("avx512f,avx512dq,avx512vl,fma"))), VBF_GMM_SPLAT8)
VBF_GMM_FULL_TILE(avx2_32, float, vbf_gmm_f8, 8, 2, 2, __attribute__((target("avx2,fma"))),
                  VBF_GMM_FSPLAT8)
VBF_GMM_FULL_TILE(avx512_32, float, vbf_gmm_f16, 16, 4, 4,
                  __attribute__((target("avx512f,avx512dq,avx512vl,fma"))), VBF_GMM_FSPLAT16)
VBF_GMM_TIED_TILE(avx2_32, float, vbf_gmm_f8, 8, __attribute__((target("avx2,fma"))),
                  VBF_GMM_FSPLAT8)
VBF_GMM_TIED_TILE(avx512_32, float, vbf_gmm_f16, 16,
                  __attribute__((target("avx512f,avx512dq,avx512vl,fma"))), VBF_GMM_FSPLAT16)
#endif

/* The dispatchers: AVX-512 (eight float64 / sixteen float32 rows a vector), else AVX2 + FMA
   (four / eight), else the baseline build (four / eight). SUF names the float64 kernels,
   SUF##_32 the float32 ones (T: the tile's scalar type). */
#if defined(__x86_64__)
#define VBF_GMM_TILE_PICK(NAME, S32, ARGS)                                                \
    if (vbf_cpu_avx512()) { NAME##_avx512##S32 ARGS; return; }                            \
    if (vbf_cpu_avx2_fma()) { NAME##_avx2##S32 ARGS; return; }                            \
    NAME##_base##S32 ARGS;
#else
#define VBF_GMM_TILE_PICK(NAME, S32, ARGS) NAME##_base##S32 ARGS;
#endif
#define VBF_GMM_TILE_DISPATCH(S32, T)                                                     \
static void vbf_gmm_tied_quad_tile##S32(const T *xT, int ld, int nr, int D, int K,        \
                                        const T *mu, const T *up,                         \
                                        const double *log_const, T *yT, T *lpT)           \
{                                                                                         \
    VBF_GMM_TILE_PICK(vbf_gmm_tied_quad_tile, S32,                                        \
                      (xT, ld, nr, D, K, mu, up, log_const, yT, lpT))                     \
}                                                                                         \
static void vbf_gmm_tied_stats_tile##S32(const T *xT, int ld, int nr, int D, int K,       \
                                         const T *rT, double *nk, double *s1)             \
{                                                                                         \
    VBF_GMM_TILE_PICK(vbf_gmm_tied_stats_tile, S32, (xT, ld, nr, D, K, rT, nk, s1))       \
}                                                                                         \
static void vbf_gmm_full_quad_tile##S32(const T *xT, int ld, int nr, int D, int K,        \
                                        const T *means, const T *up,                      \
                                        const double *log_const, T *xc, T *lpT)           \
{                                                                                         \
    VBF_GMM_TILE_PICK(vbf_gmm_full_quad_tile, S32,                                        \
                      (xT, ld, nr, D, K, means, up, log_const, xc, lpT))                  \
}                                                                                         \
static void vbf_gmm_full_stats_tile##S32(const T *xT, int ld, int nr, int D, int K,       \
                                         const T *means, const T *rT, T *xc, T *rx,       \
                                         double *nk, double *s1, double *s2)              \
{                                                                                         \
    VBF_GMM_TILE_PICK(vbf_gmm_full_stats_tile, S32,                                       \
                      (xT, ld, nr, D, K, means, rT, xc, rx, nk, s1, s2))                  \
}
VBF_GMM_TILE_DISPATCH(, double)
VBF_GMM_TILE_DISPATCH(_32, float)
#else  /* not GCC/Clang: the same sums one row (lane) at a time */
#define VBF_GMM_TILE_SCALAR(S32, T)                                                       \
static void vbf_gmm_tied_quad_tile##S32(const T *xT, int ld, int nr, int D, int K,        \
                                        const T *mu, const T *up,                         \
                                        const double *log_const, T *yT, T *lpT)           \
{                                                                                         \
    const int DP = (D + 3) & ~3;                                                          \
    int k, i, j, n;                                                                       \
    for (n = 0; n < nr; n++)                                                              \
        for (j = 0; j < D; j++) {                                                         \
            T y = 0;                                                                      \
            for (i = 0; i <= j; i++)                                                      \
                y += xT[(Py_ssize_t)i * ld + n]                                           \
                    * up[(Py_ssize_t)(j & ~3) * DP + 4 * i + (j & 3)];                    \
            yT[(Py_ssize_t)j * ld + n] = y;                                               \
        }                                                                                 \
    for (k = 0; k < K; k++)                                                               \
        for (n = 0; n < nr; n++) {                                                        \
            T s = 0, d;                                                                   \
            for (j = 0; j < D; j++) {                                                     \
                d = yT[(Py_ssize_t)j * ld + n] - mu[(Py_ssize_t)k * D + j];               \
                s += d * d;                                                               \
            }                                                                             \
            lpT[(Py_ssize_t)k * ld + n] = (T)log_const[k] - (T)0.5 * s;                   \
        }                                                                                 \
}                                                                                         \
static void vbf_gmm_tied_stats_tile##S32(const T *xT, int ld, int nr, int D, int K,       \
                                         const T *rT, double *nk, double *s1)             \
{                                                                                         \
    int k, i, n;                                                                          \
    for (k = 0; k < K; k++)                                                               \
        for (n = 0; n < nr; n++) {                                                        \
            nk[k] += rT[(Py_ssize_t)k * ld + n];                                          \
            for (i = 0; i < D; i++)                                                       \
                s1[(Py_ssize_t)k * D + i] +=                                              \
                    (double)rT[(Py_ssize_t)k * ld + n] * xT[(Py_ssize_t)i * ld + n];      \
        }                                                                                 \
}                                                                                         \
static void vbf_gmm_full_quad_tile##S32(const T *xT, int ld, int nr, int D, int K,        \
                                        const T *means, const T *up,                      \
                                        const double *log_const, T *xc, T *lpT)           \
{                                                                                         \
    const int DP = (D + 3) & ~3;                                                          \
    int k, i, j, n;                                                                       \
    (void)xc;                                                                             \
    for (k = 0; k < K; k++)                                                               \
        for (n = 0; n < nr; n++) {                                                        \
            T s = 0;                                                                      \
            for (j = 0; j < DP; j++) {                                                    \
                T y = 0;                                                                  \
                for (i = 0; i < D && i <= j; i++)                                         \
                    y += (xT[(Py_ssize_t)i * ld + n] - means[(Py_ssize_t)k * D + i])      \
                        * up[(Py_ssize_t)k * DP * DP + (Py_ssize_t)(j & ~3) * DP          \
                             + 4 * i + (j & 3)];                                          \
                s += y * y;                                                               \
            }                                                                             \
            lpT[(Py_ssize_t)k * ld + n] = (T)log_const[k] - (T)0.5 * s;                   \
        }                                                                                 \
}                                                                                         \
static void vbf_gmm_full_stats_tile##S32(const T *xT, int ld, int nr, int D, int K,       \
                                         const T *means, const T *rT, T *xc, T *rx,       \
                                         double *nk, double *s1, double *s2)              \
{                                                                                         \
    int k, i, j, n;                                                                       \
    (void)xc; (void)rx;                                                                   \
    for (k = 0; k < K; k++) {                                                             \
        const T *m = means + (Py_ssize_t)k * D, *rk = rT + (Py_ssize_t)k * ld;            \
        for (n = 0; n < nr; n++) {                                                        \
            nk[k] += rk[n];                                                               \
            for (i = 0; i < D; i++) {                                                     \
                T xi = xT[(Py_ssize_t)i * ld + n];                                        \
                s1[(Py_ssize_t)k * D + i] += (double)rk[n] * xi;                          \
                for (j = 0; j <= i; j++)                                                  \
                    s2[(Py_ssize_t)k * D * D + (Py_ssize_t)i * D + j] +=                  \
                        (double)(rk[n] * (xi - m[i]) * (xT[(Py_ssize_t)j * ld + n] - m[j])); \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
}
VBF_GMM_TILE_SCALAR(, double)
VBF_GMM_TILE_SCALAR(_32, float)
#endif

/* The 'full' / 'tied' tile of b rows of X (row-major, D columns, float64 or float32; T)
   feature-major (_full_tile_group): xT (DP, ld) row-major of the tile's type U, feature j of
   row n at xT[j ld + n] = (U)((double)x_nj - shift_j) (formed in float64, rounded once);
   rows b..nr and the padded features D..DP zero. Four rows by four features at a time,
   transposed in registers (the diag tiles' VBF_GMM_FEAT_LOAD4 / STORE4), the rest one by one:
   the same values as a scalar loop, without its strided stores. */
#if defined(__GNUC__)
#define VBF_GMM_FULL_FILL_BLOCK(T, U)                                                     \
    for (; n + 4 <= b; n += 4) {                                                          \
        const T *restrict x_n = x + (Py_ssize_t)n * D;                                    \
        for (j = 0; j + 4 <= D; j += 4) {                                                 \
            vbf_gmm_feat_v4 c[4];                                                         \
            int i;                                                                        \
            VBF_GMM_TRANSPOSE4(x_n + j, D, c);                                            \
            for (i = 0; i < 4; i++) {                                                     \
                vbf_gmm_feat_v4 v = c[i] - shift[j + i];                                  \
                VBF_GMM_FEAT_STORE4(U, xT + (Py_ssize_t)(j + i) * ld + n, v);             \
            }                                                                             \
        }                                                                                 \
        for (; j < D; j++) {                                                              \
            int i_;                                                                       \
            for (i_ = 0; i_ < 4; i_++)                                                    \
                xT[(Py_ssize_t)j * ld + n + i_] =                                         \
                    (U)((double)x_n[(Py_ssize_t)i_ * D + j] - shift[j]);                  \
        }                                                                                 \
    }
#else
#define VBF_GMM_FULL_FILL_BLOCK(T, U)
#endif
#if defined(__GNUC__) && defined(__x86_64__)
/* AVX-512: eight rows by eight features at a time (the diag tiles' eight-by-eight permutes:
   x - shift formed row-major in float64, transposed, stored eight rows a vector, rounded
   to U on the store), the rest by the AVX2 build of the body; the same values. */
#define VBF_GMM_FULL_FILL_DISPATCH(name, T, U)                                            \
__attribute__((target("avx2"))) static void name##_simd(                                  \
    const T *x, int b, int nr, int D, int ld, const double *shift, U *xT)                 \
{                                                                                         \
    name##_body(x, b, nr, D, ld, shift, xT);                                              \
}                                                                                         \
__attribute__((target("avx512f,avx512dq,avx512vl")))                                      \
static void name##_avx512(const T *x, int b, int nr, int D, int ld, const double *shift,  \
                          U *xT)                                                          \
{                                                                                         \
    const __m512i lo2 = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);                      \
    const __m512i hi2 = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);                    \
    const int b8 = b & ~7, D8 = D & ~7;                                                   \
    int n, j, i;                                                                          \
    if (D8 == 0 || b8 == 0) {                                                             \
        name##_simd(x, b, nr, D, ld, shift, xT);                                          \
        return;                                                                           \
    }                                                                                     \
    for (n = 0; n < b8; n += 8) {                                                         \
        const T *x_n = x + (Py_ssize_t)n * D;                                             \
        {   /* the same rows of the next 64 asked from memory (as the diag tiles') */     \
            const char *pf_ = (const char *)(x_n + (Py_ssize_t)64 * D);                   \
            for (i = 0; i < 8 * D * (int)sizeof(T); i += 64)                              \
                _mm_prefetch(pf_ + i, _MM_HINT_T0);                                       \
        }                                                                                 \
        for (j = 0; j < D8; j += 8) {                                                     \
            __m512d c[8];                                                                 \
            VBF_GMM_TRANSPOSE8(T, x_n + j, D, shift + j, lo2, hi2, c);                    \
            for (i = 0; i < 8; i++)                                                       \
                VBF_GMM_FEAT_STORE8(U, xT + (Py_ssize_t)(j + i) * ld + n, c[i]);          \
        }                                                                                 \
        for (; j < D; j++)                                                                \
            for (i = 0; i < 8; i++)                                                       \
                xT[(Py_ssize_t)j * ld + n + i] =                                          \
                    (U)((double)x_n[(Py_ssize_t)i * D + j] - shift[j]);                   \
    }                                                                                     \
    for (j = D; j < ((D + 3) & ~3); j++)  /* the padded features of rows 0..b8 */        \
        for (n = 0; n < b8; n++)                                                          \
            xT[(Py_ssize_t)j * ld + n] = 0;                                               \
    /* the last rows (and their padding) by the AVX2 body, from row b8 on */              \
    name##_simd(x + (Py_ssize_t)b8 * D, b - b8, nr - b8, D, ld, shift, xT + b8);          \
}                                                                                         \
VBF_GMM_DISPATCH3(name, vbf_cpu_avx2(),                                                   \
                  (const T *x, int b, int nr, int D, int ld, const double *shift,         \
                   U *xT),                                                                \
                  (x, b, nr, D, ld, shift, xT))
#else
#define VBF_GMM_FULL_FILL_DISPATCH(name, T, U)                                            \
VBF_DISPATCH(name, "avx2", vbf_cpu_avx2(),                                                \
             (const T *x, int b, int nr, int D, int ld, const double *shift, U *xT),      \
             (x, b, nr, D, ld, shift, xT))
#endif
#define VBF_GMM_FULL_FILL(name, T, U)                                                     \
VBF_INLINE void name##_body(const T *x, int b, int nr, int D, int ld,                     \
                            const double *shift, U *xT)                                   \
{                                                                                         \
    const int DP = (D + 3) & ~3;                                                          \
    int n = 0, j;                                                                         \
    VBF_GMM_FULL_FILL_BLOCK(T, U)                                                         \
    for (; n < b; n++) {                                                                  \
        const T *restrict x_n = x + (Py_ssize_t)n * D;                                    \
        for (j = 0; j < D; j++)                                                           \
            xT[(Py_ssize_t)j * ld + n] = (U)((double)x_n[j] - shift[j]);                  \
    }                                                                                     \
    for (j = 0; j < DP; j++)                                                              \
        for (n = j < D ? b : 0; n < nr; n++)                                              \
            xT[(Py_ssize_t)j * ld + n] = 0;                                               \
}                                                                                         \
VBF_GMM_FULL_FILL_DISPATCH(name, T, U)
VBF_GMM_FULL_FILL(vbf_gmm_full_tile_fill_f64, double, double)
VBF_GMM_FULL_FILL(vbf_gmm_full_tile_fill_f32, float, double)
VBF_GMM_FULL_FILL(vbf_gmm_full_tile_fill32, float, float)

/* ---- Random responsibilities (init_params='random'): numpy's RandomState draws, faster.
   scikit-learn starts from RandomState.uniform(size=(N, K)) normalised per row; this
   gives the same numbers and leaves the generator's state as those calls would: the
   MT19937 doubles of vbf_mt19937.h, each row of K divided by its sum, the sum taken in
   numpy's pairwise order (vbf_numpy_pairwise_sum), so the division is numpy's. */
#include "vbf_mt19937.h"

/* numpy's float64 add-reduction of n contiguous values (its pairwise_sum: below 8 one by
   one from 0, up to 128 in eight running sums, above that halves at a multiple of 8) */
static double vbf_numpy_pairwise_sum(const double *a, Py_ssize_t n)
{
    if (n < 8) {
        double res = 0.0;
        Py_ssize_t i;
        for (i = 0; i < n; i++)
            res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8], res;
        Py_ssize_t i;
        int j;
        for (j = 0; j < 8; j++)
            r[j] = a[j];
        for (i = 8; i < n - (n % 8); i += 8)
            for (j = 0; j < 8; j++)
                r[j] += a[i + j];
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++)
            res += a[i];
        return res;
    } else {
        Py_ssize_t n2 = n / 2;
        n2 -= n2 % 8;
        return vbf_numpy_pairwise_sum(a, n2) + vbf_numpy_pairwise_sum(a + n2, n - n2);
    }
}

/* vbf_numpy_pairwise_sum of n <= 128 values (its first two cases; inlined into each build) */
VBF_INLINE double vbf_numpy_pairwise_small(const double *a, Py_ssize_t n)
{
    double r[8], res;
    Py_ssize_t i;
    int j;
    if (n < 8) {
        res = 0.0;
        for (i = 0; i < n; i++)
            res += a[i];
        return res;
    }
    for (j = 0; j < 8; j++)
        r[j] = a[j];
    for (i = 8; i < n - (n % 8); i += 8)
        for (j = 0; j < 8; j++)
            r[j] += a[i + j];
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++)
        res += a[i];
    return res;
}

/* The random responsibilities in two steps, the second in parallel (the caller's prange over
   blocks of rows): MT19937's words are a serial recurrence, but each double needs only its
   own two words and each row only its own doubles.

   vbf_mt19937_words: words[0..count) = the next count tempered words of the state (key,
   *pos), *pos and key advanced as numpy's draws advance them (a refill only when a word past
   the 624th is wanted). With words = the (N, K) output seen as 2 N K words, double i's two
   words are where double i will be. */
VBF_INLINE void vbf_mt19937_words_body(uint32_t *key, int *pos, uint32_t *words,
                                       Py_ssize_t count)
{
    uint32_t tempered[VBF_MT_N];
    Py_ssize_t i, m;
    int p = *pos;
    m = VBF_MT_N - p < count ? VBF_MT_N - p : count;
    vbf_mt19937_temper_rest(key, p, tempered);
    memcpy(words, tempered + p, (size_t)m * sizeof(uint32_t));
    i = m;
    p += (int)m;
    while (i < count) {
        if (count - i >= VBF_MT_N) {  /* a whole refill, straight into words */
            vbf_mt19937_refill(key, words + i);
            i += VBF_MT_N;
            p = VBF_MT_N;
        } else {
            vbf_mt19937_refill(key, tempered);
            m = count - i;
            memcpy(words + i, tempered, (size_t)m * sizeof(uint32_t));
            i += m;
            p = (int)m;
        }
    }
    *pos = p;
}
VBF_DISPATCH(vbf_mt19937_words, "avx2", vbf_cpu_avx2(),
             (uint32_t *key, int *pos, uint32_t *words, Py_ssize_t count),
             (key, pos, words, count))

/* rows [0, n_rows) of out (n_rows, K), holding each double's two words (vbf_mt19937_words):
   each double numpy's from its words (in place), then each row divided by its sum (numpy's
   pairwise order, so the division is numpy's). Lane-wise IEEE operations only (no FMA in
   any build: the same bits with and without AVX-512). */
VBF_INLINE void vbf_mt19937_resp_rows_body(double *out, Py_ssize_t n_rows, int K)
{
    Py_ssize_t n;
    int k;
    for (n = 0; n < n_rows; n++) {
        double *row = out + n * K, s;
        for (k = 0; k < K; k++) {
            /* vbf_mt19937_to_double of the two words (exact: integers below 2^53, a power
               of two), read as one 64-bit value (a loop the compiler vectorises) */
            uint64_t v, a, b;
            memcpy(&v, row + k, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            a = (v >> 32) >> 5;
            b = (v & 0xffffffffu) >> 6;
#else
            a = (v & 0xffffffffu) >> 5;
            b = v >> 38;
#endif
            row[k] = ((double)(int64_t)a * 67108864.0 + (double)(int64_t)b)
                     / 9007199254740992.0;
        }
        s = K <= 128 ? vbf_numpy_pairwise_small(row, K) : vbf_numpy_pairwise_sum(row, K);
        for (k = 0; k < K; k++)
            row[k] = row[k] / s;
    }
}
VBF_DISPATCH(vbf_mt19937_resp_rows, "avx512f,avx512dq,avx512vl", vbf_cpu_avx512(),
             (double *out, Py_ssize_t n_rows, int K), (out, n_rows, K))

#endif
