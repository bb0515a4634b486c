/* The E-step of a diag / spherical tile in AVX-512 registers, written once for the float64
   and the float32 tile: this fragment (no include guard) is included by _gaussian_kernels.h
   once per type, after defining

     VBF_E_T         the tile's type (double, float); VBF_E_L its lanes a vector (8, 16)
     VBF_E_V         the lane vector (vbf_v8, vbf_f16) and VBF_E_I its comparisons' (vbf_i8,
                     vbf_fi16); VBF_E_RAW the intrinsics' type (__m512d, __m512)
     VBF_E_MASK      the rows' mask type (__mmask8, __mmask16), VBF_E_FULL all VBF_E_L set
     VBF_E_SPLAT, VBF_E_BLEND, VBF_E_BITS, VBF_E_FROM_BITS, VBF_E_STORE, VBF_E_EXP
     (exp of x <= 0), VBF_E_LOG: the lane vector's functions
     VBF_E_LOADU, VBF_E_FMA, VBF_E_SET1, VBF_E_MOV, VBF_E_STOREU, VBF_E_ADD, VBF_E_ZERO:
                     the intrinsics _mm512_maskz_loadu, _fmadd, _set1, _maskz_mov, _storeu,
                     _add, _setzero of the type
     VBF_E_ANY(d, c) whether a lane of d is above the cut-off c (1: every term's exp taken,
                     as the float32 kernels always did)
     VBF_E_LOAD_W(m, p)  the rows' weights p[0..L) (float64) as a lane vector, masked by m
     VBF_E_ROWS_OUT(rlogr, lpn, m, dead, v, inv, log_s, mx, zero, ninf)  the rows' float64
                     outputs
     VBF_E_LSE_COLS  the type's vbf_gmm_lse_cols (L rows)
     VBF_E_CONST_LAST  1: log rho's constant added after the features' sum (float32: the
                     partial sums, started from c_k, stayed at its size, a few times the
                     rounding at D = 64), 0: the sum started from it
     VBF_E_STATS     1: the register kernel takes the fused statistics' arguments
                     (vbf_gmm_tile_estep16_stats_avx512, float64), 0: not
     VBF_E_ESTEP16, VBF_E_BLOCKS  the two kernels' names

   and undefines them all at its end. The two instances are the same operations in the same
   order as the two hand-written pairs they replace (their object code compared equal,
   instruction by instruction: benchmarks/RESULTS.md, 2026-12-02). Hence the types'
   differences as #if and macros: the same meaning as constant C conditions (if (0), 0 ? :)
   or always_inline helpers changed GCC's register allocation and scheduling (2 to 21
   instructions more a kernel).

   VBF_E_ESTEP16 (K <= 16), in place of a GEMM into lpT and vbf_gmm_lse_cols' three sweeps
   of it: L rows at a time (one a lane), log rho_nk = coefT[W - 1, k] + sum_{j < W - 1}
   coefT[j, k] f[j, n] by fused multiply-adds in feature order (f (W, ld) the tile's
   features, feature-major, its last row the ones; coefT (W, 16) row-major = [-1/2 a_k,
   c_k]^T in the tile's type, the components past K zero with constant -inf; a feature's
   sixteen coefficients contiguous: constant offsets from one pointer), all sixteen kept in
   registers; then vbf_gmm_lse_cols' operations on them (the max, the exp of those above the
   max minus 50, their sum in k order, 1 / s, log s), lpT (K, ld) receiving w_n r_nk (w
   NULL: r_nk), lpn and rlogr in float64 as there. Rows past b read their features as 0 and
   store r = 0. A row's result depends on that row only.

   VBF_E_BLOCKS (16 < K), log rho by fused multiply-adds in place of a GEMM into lpT: 2 L
   rows at a time (two vectors, one row a lane), the components in blocks of eight (each
   broadcast coefficient used for both vectors), a block's log rho_nk kept in registers and
   stored to lpT (K, ld) once (coefT block-major: block kb's (W, 8) contiguous, the
   components past K zero with constant -inf); then VBF_E_LSE_COLS on those rows'
   columns of lpT while they are in L1 (lpT receiving w_n r_nk, lpn and rlogr as there).
   Rows past b read their features as 0 (finite log rho, results unused). A row's result
   depends on that row only. */

#if VBF_E_STATS
/* (the register kernel with the statistics' arguments: acc NULL, the E-step alone) */
__attribute__((target("avx512f,avx512dq,avx512vl,fma"), always_inline)) static inline void
VBF_E_ESTEP16(const VBF_E_T *f, int ld, int b, int W, int K, const VBF_E_T *coefT,
              const double *w, VBF_E_T *lpT, double *lpn, double *rlogr, const double *xr,
              int D, const double *shift, const double *ws, double *acc)
#else
VBF_TARGET_AVX512 static void
VBF_E_ESTEP16(const VBF_E_T *f, int ld, int b, int W, int K, const VBF_E_T *coefT,
              const double *w, VBF_E_T *lpT, double *lpn, double *rlogr)
#endif
{
    const VBF_E_V ninf = VBF_E_SPLAT(-INFINITY), zero = VBF_E_SPLAT(0.0);
    const VBF_E_V cutoff = VBF_E_SPLAT(-50.0), one = VBF_E_SPLAT(1.0);
    int n, k, j;
#if VBF_E_STATS
    /* the statistics (acc != NULL, diag): N_k as per-lane sums over the tile, their lanes
       added to acc in lane order after the last row */
    vbf_v8 nk_lanes[16];
    /* w r of up to 64 rows by component and their nonzero rows (vbf_gmm_estep16_stats64) */
    double wrb[16 * 64] __attribute__((aligned(64)));
    unsigned long long mk64[16] = {0};
    /* D <= 16: a row of x - shift in two registers (masks m0, m1) */
    const __mmask8 m0 = D >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << D) - 1u);
    const __mmask8 m1 = D >= 16 ? (__mmask8)0xFF
                        : D <= 8 ? (__mmask8)0 : (__mmask8)((1u << (D - 8)) - 1u);
    __m512d sh0 = _mm512_setzero_pd(), sh1 = _mm512_setzero_pd();
    if (acc != NULL) {
        sh0 = _mm512_maskz_loadu_pd(m0, shift);
        sh1 = _mm512_maskz_loadu_pd(m1, shift + 8);
        for (k = 0; k < 16; k++)
            nk_lanes[k] = zero;
    }
#endif
    for (n = 0; n < b; n += VBF_E_L) {
        const VBF_E_MASK m = b - n >= VBF_E_L ? (VBF_E_MASK)VBF_E_FULL
                                              : (VBF_E_MASK)((1u << (b - n)) - 1u);
        VBF_E_V x[16], mx, s = zero, v = zero, d, r, inv, log_s, scale, wv = one;
        VBF_E_I dead;
#if VBF_E_CONST_LAST
        const VBF_E_T *c, *fp = f + n;
#pragma GCC unroll 16
        for (k = 0; k < 16; k++)
            x[k] = zero;
#else
        const VBF_E_T *c = coefT + (Py_ssize_t)(W - 1) * 16, *fp = f + n;
#pragma GCC unroll 16
        for (k = 0; k < 16; k++)
            x[k] = VBF_E_SPLAT(c[k]);
#endif
        for (j = 0, c = coefT; j < W - 1; j++, c += 16, fp += ld) {
            const VBF_E_RAW fj = VBF_E_LOADU(m, fp);
#pragma GCC unroll 16
            for (k = 0; k < 16; k++)
                x[k] = (VBF_E_V)VBF_E_FMA(fj, VBF_E_SET1(c[k]), (VBF_E_RAW)x[k]);
        }
#if VBF_E_CONST_LAST  /* (c: the constants' row) */
#pragma GCC unroll 16
        for (k = 0; k < 16; k++)
            x[k] = x[k] + VBF_E_SPLAT(c[k]);
#endif
        {   /* the max over k, as a tree (exact: the order does not matter) */
            VBF_E_V t[8];
#pragma GCC unroll 8
            for (k = 0; k < 8; k++)
                t[k] = VBF_E_BLEND(x[k + 8] > x[k], x[k + 8], x[k]);
#pragma GCC unroll 4
            for (k = 0; k < 4; k++)
                t[k] = VBF_E_BLEND(t[k + 4] > t[k], t[k + 4], t[k]);
            t[0] = VBF_E_BLEND(t[2] > t[0], t[2], t[0]);
            t[1] = VBF_E_BLEND(t[3] > t[1], t[3], t[1]);
            mx = VBF_E_BLEND(t[1] > t[0], t[1], t[0]);
        }
        dead = mx == ninf;
        mx = VBF_E_BLEND(dead, zero, mx);
#pragma GCC unroll 16
        for (k = 0; k < 16; k++) {
            d = x[k] - mx;
            if (!VBF_E_ANY(d, cutoff)) {  /* (L terms below the cut-off: no exp) */
                x[k] = zero;
                continue;
            }
            r = VBF_E_FROM_BITS(VBF_E_BITS(VBF_E_EXP(d)) & (d > cutoff));
            s = s + r;
            /* sum_k r_k (log rho_k - mx), unnormalised (r = 0 lanes add 0, not 0 * -inf) */
            v = v + VBF_E_FROM_BITS(VBF_E_BITS(r * d) & (r > zero));
            x[k] = r;
        }
        s = VBF_E_BLEND(dead, one, s);
        inv = one / s;
        log_s = VBF_E_LOG(s);
        scale = inv;
        if (w != NULL) {
            wv = VBF_E_LOAD_W(m, w + n);
            scale = inv * wv;
        }
        {
            /* a row with every rho_k = 0: uniform w / K; rows past b: 0 */
            const VBF_E_V uniform = wv / VBF_E_SPLAT((VBF_E_T)K);
#if VBF_E_STATS
            for (k = 0; k < K && (acc == NULL || lpT != NULL); k++)
#else
            for (k = 0; k < K; k++)
#endif
                VBF_E_STORE(lpT + (Py_ssize_t)k * ld + n,
                            (VBF_E_V)VBF_E_MOV(
                                m, (VBF_E_RAW)VBF_E_BLEND(dead, uniform, x[k] * scale)));
        }
        /* sum_k r_k log r_k = sum_k r_k log rho_k - log p(x) = v / s - log s,
           log p(x) = mx + log s */
        VBF_E_ROWS_OUT(rlogr + n, lpn + n, m, dead, v, inv, log_s, mx, zero, ninf);
#if VBF_E_STATS
        if (acc != NULL) {
            /* w r of the eight rows (dead rows: w / K; rows past b: 0), their nonzero
               masks and the dense sums, by constant indices (x stays in registers) */
            const int lane0 = n & 63;  /* (the row's place in its 64 rows) */
            const __m512d wsv = ws != NULL ? _mm512_maskz_loadu_pd(m, ws + n)
                                : _mm512_maskz_mov_pd(m, (__m512d)one);
            const __m512d wuniform = _mm512_div_pd(wsv, _mm512_set1_pd((double)K));
            const __m512d wscale = _mm512_mul_pd((__m512d)inv, wsv);
            const __mmask8 deadm = _mm512_test_epi64_mask((__m512i)dead, (__m512i)dead);
#pragma GCC unroll 16
            for (k = 0; k < 16; k++) {
                /* (components past K: r = 0 but a dead row's w / K; never read) */
                const __m512d wr = _mm512_mask_mov_pd(
                    _mm512_mul_pd((__m512d)x[k], wscale), deadm, wuniform);
                _mm512_store_pd(wrb + 64 * k + lane0, wr);
                mk64[k] |= (unsigned long long)_mm512_cmp_pd_mask(
                               wr, _mm512_setzero_pd(), _CMP_NEQ_UQ) << lane0;
                nk_lanes[k] = (vbf_v8)_mm512_add_pd((__m512d)nk_lanes[k], wr);
            }
            if (lane0 == 56 || n + 8 >= b) {  /* 64 rows (or the last): their sums */
                const double *x64 = xr + (Py_ssize_t)(n - lane0) * D;
                if (D == 16)  /* (the benchmark's shape: constant masks) */
                    vbf_gmm_estep16_stats64(x64, 16, W, sh0, sh1, wrb, mk64, K, acc);
                else
                    vbf_gmm_estep16_stats64(x64, D, W, sh0, sh1, wrb, mk64, K, acc);
                for (k = 0; k < 16; k++)
                    mk64[k] = 0;
            }
        }
#endif
    }
#if VBF_E_STATS
    if (acc != NULL)
        vbf_gmm_stats_lanes_to_acc(nk_lanes, K, W, acc);
#endif
}

VBF_TARGET_AVX512 static void
VBF_E_BLOCKS(const VBF_E_T *f, int ld, int b, int W, int K, const VBF_E_T *coefT,
             const double *w, VBF_E_T *lpT, double *lpn, double *rlogr)
{
    int n, k, j, kb, h;
    for (n = 0; n < b; n += 2 * VBF_E_L) {
        /* two groups of L rows: each coefficient loaded (broadcast) once for both */
        const VBF_E_MASK m0 = b - n >= VBF_E_L ? (VBF_E_MASK)VBF_E_FULL
                                               : (VBF_E_MASK)((1u << (b - n)) - 1u);
        const VBF_E_MASK m1 = b - n >= 2 * VBF_E_L ? (VBF_E_MASK)VBF_E_FULL
                              : b - n <= VBF_E_L ? (VBF_E_MASK)0
                              : (VBF_E_MASK)((1u << (b - n - VBF_E_L)) - 1u);
        for (kb = 0; kb < K; kb += 8) {
            VBF_E_RAW x0[8], x1[8];
#if VBF_E_CONST_LAST
            const VBF_E_T *cb = coefT + (Py_ssize_t)kb * W, *c;
            const VBF_E_T *fp = f + n;
#pragma GCC unroll 8
            for (k = 0; k < 8; k++)
                x0[k] = x1[k] = VBF_E_ZERO();
#else
            const VBF_E_T *cb = coefT + (Py_ssize_t)kb * W, *c = cb + (Py_ssize_t)(W - 1) * 8;
            const VBF_E_T *fp = f + n;
#pragma GCC unroll 8
            for (k = 0; k < 8; k++)
                x0[k] = x1[k] = VBF_E_SET1(c[k]);
#endif
            for (j = 0, c = cb; j < W - 1; j++, c += 8, fp += ld) {
                const VBF_E_RAW f0 = VBF_E_LOADU(m0, fp);
                const VBF_E_RAW f1 = VBF_E_LOADU(m1, fp + VBF_E_L);
#pragma GCC unroll 8
                for (k = 0; k < 8; k++) {
                    const VBF_E_RAW ck = VBF_E_SET1(c[k]);
                    x0[k] = VBF_E_FMA(f0, ck, x0[k]);
                    x1[k] = VBF_E_FMA(f1, ck, x1[k]);
                }
            }
#if VBF_E_CONST_LAST  /* (c: the block's constants) */
#pragma GCC unroll 8
            for (k = 0; k < 8; k++) {
                x0[k] = VBF_E_ADD(x0[k], VBF_E_SET1(c[k]));
                x1[k] = VBF_E_ADD(x1[k], VBF_E_SET1(c[k]));
            }
#endif
            for (k = 0; k < 8 && kb + k < K; k++) {
                VBF_E_STOREU(lpT + (Py_ssize_t)(kb + k) * ld + n, x0[k]);
                if (m1)
                    VBF_E_STOREU(lpT + (Py_ssize_t)(kb + k) * ld + n + VBF_E_L, x1[k]);
            }
        }
        for (h = n; h < b && h < n + 2 * VBF_E_L; h += VBF_E_L)
            VBF_E_LSE_COLS(lpT + h, ld, b - h < VBF_E_L ? b - h : VBF_E_L, K,
                           w != NULL ? w + h : NULL, lpn + h, rlogr + h);
    }
}

#undef VBF_E_T
#undef VBF_E_L
#undef VBF_E_V
#undef VBF_E_I
#undef VBF_E_RAW
#undef VBF_E_MASK
#undef VBF_E_FULL
#undef VBF_E_SPLAT
#undef VBF_E_BLEND
#undef VBF_E_BITS
#undef VBF_E_FROM_BITS
#undef VBF_E_STORE
#undef VBF_E_EXP
#undef VBF_E_LOG
#undef VBF_E_LOADU
#undef VBF_E_FMA
#undef VBF_E_SET1
#undef VBF_E_MOV
#undef VBF_E_STOREU
#undef VBF_E_ADD
#undef VBF_E_ZERO
#undef VBF_E_ANY
#undef VBF_E_LOAD_W
#undef VBF_E_ROWS_OUT
#undef VBF_E_LSE_COLS
#undef VBF_E_CONST_LAST
#undef VBF_E_STATS
#undef VBF_E_ESTEP16
#undef VBF_E_BLOCKS
