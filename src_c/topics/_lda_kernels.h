/* Hot loops of the LDA pass (src_c/_lda.pyx): the per-document fixed point's sweep and the
   Dirichlet expectation E[log theta_d], vectorised with GCC/Clang vector extensions, and
   portable scalar versions for other compilers (MSVC). */
#ifndef VBFAST_LDA_KERNELS_H
#define VBFAST_LDA_KERNELS_H

#include <math.h>
#include <stddef.h>

#include "vbf_dispatch.h"
#include "vbf_simd_math.h"

/* The live sweep's lanes: 0 chooses by the CPU (eight with AVX-512F); 4 forces the four-lane
   version (for tests, which compare both with a NumPy reference). */
static int vbf_lda_lanes = 0;

static int vbf_cpu_avx512f(void) { return VBF_CPU_HAS("avx512f"); }

#if defined(__GNUC__)

/* The fixed point's hot loops are compiled twice on x86-64 with GCC or Clang: for AVX2+FMA
   and for the baseline (vbf_dispatch.h). Each version has a fixed order of operations (the
   four lanes of a vbf_v4 are four fixed partial sums, added as (l0 + l1) + (l2 + l3)), so a
   result depends on the data and on which version runs, never on the thread count. The FMA
   version fuses multiply-adds: its results differ from the baseline's in the last bits. */

/* scikit-learn's digamma (Bernardo 1976, AS 103) as its LDA computes it, for ``fast_psi``:
   absolute error up to ~1e-8. One definition for the batch pass and the online step, so
   the topics at a mini-batch's words equal the whole topics' bit for bit. */
VBF_INLINE double vbf_psi_sklearn(double x) {
    double r, result = 0.0;
    if (x <= 1e-6)
        return -0.577215664901532860606512090082402431 - 1.0 / x;
    while (x < 6) {
        result -= 1.0 / x;
        x += 1;
    }
    r = 1.0 / x;
    result += log(x) - 0.5 * r;
    r = r * r;
    result -= r * ((1.0 / 12.0) - r * ((1.0 / 120.0) - r * (1.0 / 252.0)));
    return result;
}

/* t . row: lanes over k in steps of four, then the tail k = K4..K-1 added in order. */
VBF_INLINE double vbf_dot(int K, const double *t, const double *row) {
    int k, K4 = K & ~3;
    vbf_v4 a = {0.0, 0.0, 0.0, 0.0};
    double s;
    for (k = 0; k < K4; k += 4) a += vbf_load4(t + k) * vbf_load4(row + k);
    s = vbf_hsum(a);
    for (; k < K; k++) s += t[k] * row[k];
    return s;
}

/* out[j] = vbf_dot(Kp, t, rows[j]), j < n, bit for bit as the pass's vbf_dot (compiled for
   the baseline: each of the four lanes a chain of separate multiplies and adds over k = lane
   mod 4, then vbf_hsum; Kp a multiple of 4). One word at a time that is one chain of Kp / 4
   dependent adds (at Kp = 100 ~100 cycles of latency a word, with the baseline's 256-bit
   vectors spilled to the stack); eight words go together here, eight independent chains. */
VBF_INLINE void vbf_dots_body(Py_ssize_t n, int Kp, const double *const *rows,
                              const double *t, double *out)
{
    const vbf_v4 zero = {0.0, 0.0, 0.0, 0.0};
    Py_ssize_t j;
    int k, q;
    for (j = 0; j + 8 <= n; j += 8) {
        vbf_v4 a[8];
        const double *r[8];
        for (q = 0; q < 8; q++) { a[q] = zero; r[q] = rows[j + q]; }
        for (k = 0; k < Kp; k += 4) {
            const vbf_v4 tv = vbf_load4(t + k);
            for (q = 0; q < 8; q++) a[q] = a[q] + tv * vbf_load4(r[q] + k);
        }
        for (q = 0; q < 8; q++) out[j + q] = vbf_hsum(a[q]);
    }
    for (; j < n; j++) {
        vbf_v4 a = zero;
        for (k = 0; k < Kp; k += 4) a = a + vbf_load4(t + k) * vbf_load4(rows[j] + k);
        out[j] = vbf_hsum(a);
    }
}

/* One sweep of the fixed point for one document with n distinct words:
       ratio_j = cnt_j / (t . B_wj + eps)
       acc_k   = sum_j ratio_j B_wj,k
   K must be a multiple of 4: the caller pads B's rows and t with zeros, so no loop has a
   scalar tail. Written plainly, both loops are bound by the latency of floating-point adds
   (a 50-long dot product is one dependency chain) and each streams the document's rows of B
   from the L2 cache. So words go in blocks of eight: their eight dot products run as eight
   independent chains (each with vbf_dot's arithmetic), their sums are gathered into two
   vectors (two vector divisions instead of eight scalar ones), then the block's
   contribution to acc is added while its rows are still in L1, as one fixed sum tree per
   block. The order of every sum is fixed by n and K alone. */
VBF_INLINE void vbf_update_body(Py_ssize_t n, int K, const double *const *rows,
                                const double *cnt, const double *t, double eps,
                                double *ratio, double *acc)
{
    Py_ssize_t j;
    int k, q;
    const vbf_v4 zero = {0.0, 0.0, 0.0, 0.0}, veps = {eps, eps, eps, eps};
    for (k = 0; k < K; k++) acc[k] = 0.0;
    for (j = 0; j + 8 <= n; j += 8) {
        const double *r[8];
        vbf_v4 a[8], s0, s1, rt0, rt1;
        for (q = 0; q < 8; q++) { r[q] = rows[j + q]; a[q] = zero; }
        for (k = 0; k < K; k += 4) {
            const vbf_v4 tv = vbf_load4(t + k);
            for (q = 0; q < 8; q++) a[q] += tv * vbf_load4(r[q] + k);
        }
        s0 = vbf_hsum4x(a[0], a[1], a[2], a[3]);
        s1 = vbf_hsum4x(a[4], a[5], a[6], a[7]);
        rt0 = vbf_load4(cnt + j) / (s0 + veps);
        rt1 = vbf_load4(cnt + j + 4) / (s1 + veps);
        vbf_store4(ratio + j, rt0);
        vbf_store4(ratio + j + 4, rt1);
        {
            /* each ratio broadcast to the four lanes */
            const vbf_v4 b0 = VBF_LANE(rt0, 0), b1 = VBF_LANE(rt0, 1);
            const vbf_v4 b2 = VBF_LANE(rt0, 2), b3 = VBF_LANE(rt0, 3);
            const vbf_v4 b4 = VBF_LANE(rt1, 0), b5 = VBF_LANE(rt1, 1);
            const vbf_v4 b6 = VBF_LANE(rt1, 2), b7 = VBF_LANE(rt1, 3);
            for (k = 0; k < K; k += 4) {
                vbf_v4 u = (b0 * vbf_load4(r[0] + k) + b1 * vbf_load4(r[1] + k))
                         + (b2 * vbf_load4(r[2] + k) + b3 * vbf_load4(r[3] + k));
                vbf_v4 v = (b4 * vbf_load4(r[4] + k) + b5 * vbf_load4(r[5] + k))
                         + (b6 * vbf_load4(r[6] + k) + b7 * vbf_load4(r[7] + k));
                vbf_store4(acc + k, vbf_load4(acc + k) + (u + v));
            }
        }
    }
    for (; j < n; j++) {
        const double *row = rows[j];
        const double rj = ratio[j] = cnt[j] / (vbf_dot(K, t, row) + eps);
        const vbf_v4 bj = {rj, rj, rj, rj};
        for (k = 0; k < K; k += 4)
            vbf_store4(acc + k, vbf_load4(acc + k) + bj * vbf_load4(row + k));
    }
}


/* One sweep over a document's live topics only, from a topic-major copy of their values:
   rows[i][j] = B_{w_j, k_i} for the i-th live topic k_i and the document's j-th word.
       ratio_j = cnt_j / (sum_i t_i rows[i][j] + eps),   acc_i = sum_j ratio_j rows[i][j]
   and sums[0] = sum_j ratio_j, sums[1] = max_j ratio_j inv_cnt_j (= 1 / (s_j + eps) where
   cnt_j > 0; inv_cnt_j = 0 elsewhere), which the caller's check needs. Ka is a multiple of
   4 and n4 of 4: rows past the live topics point at zeros (t_i = 0 there), words past the
   document's have zero cnt and inv_cnt and zero values. Topic-major, a topic that dies is
   dropped by dropping its row pointer, without moving any data, and the dot products come
   out four words to a vector (no horizontal sums, a vector division per four words). Each
   loop keeps eight independent chains of multiply-adds in flight; the order of every sum is
   fixed by n4 and Ka alone. */
VBF_INLINE void vbf_update_live_body(Py_ssize_t n4, int Ka, const double *const *rows,
                                     const double *cnt, const double *t, double eps,
                                     double *ratio, double *acc, const double *inv_cnt,
                                     double *sums)
{
    const vbf_v4 zero = {0.0, 0.0, 0.0, 0.0}, veps = {eps, eps, eps, eps};
    vbf_v4 ratio_sum = zero, inv_s_max = zero;
    Py_ssize_t j;
    int i, q;
#define VBF_RATIO(S, J) do {                                                                \
        const vbf_v4 rt_ = vbf_load4(cnt + (J)) / ((S) + veps);                              \
        const vbf_v4 x_ = rt_ * vbf_load4(inv_cnt + (J));                                    \
        vbf_store4(ratio + (J), rt_);                                                       \
        ratio_sum += rt_;                                                                   \
        inv_s_max = vbf_blend(x_ > inv_s_max, x_, inv_s_max);                               \
    } while (0)
    /* dot products, sixteen words at a time; two topics' terms in separate chains */
    for (j = 0; j + 16 <= n4; j += 16) {
        vbf_v4 s[4] = {zero, zero, zero, zero}, u[4] = {zero, zero, zero, zero};
        for (i = 0; i < Ka; i += 2) {
            const vbf_v4 t0 = vbf_splat(t[i]), t1 = vbf_splat(t[i + 1]);
            const double *r0 = rows[i] + j, *r1 = rows[i + 1] + j;
            for (q = 0; q < 4; q++) {
                s[q] += t0 * vbf_load4(r0 + 4 * q);
                u[q] += t1 * vbf_load4(r1 + 4 * q);
            }
        }
        for (q = 0; q < 4; q++) VBF_RATIO(s[q] + u[q], j + 4 * q);
    }
    for (; j < n4; j += 4) {  /* the last words, four at a time: four topics' chains */
        vbf_v4 s0 = zero, s1 = zero, s2 = zero, s3 = zero;
        for (i = 0; i < Ka; i += 4) {
            s0 += vbf_splat(t[i]) * vbf_load4(rows[i] + j);
            s1 += vbf_splat(t[i + 1]) * vbf_load4(rows[i + 1] + j);
            s2 += vbf_splat(t[i + 2]) * vbf_load4(rows[i + 2] + j);
            s3 += vbf_splat(t[i + 3]) * vbf_load4(rows[i + 3] + j);
        }
        VBF_RATIO((s0 + s1) + (s2 + s3), j);
    }
#undef VBF_RATIO
    /* acc, eight topics at a time (one chain each), then four (two chains each) */
    for (i = 0; i + 8 <= Ka; i += 8) {
        vbf_v4 a[8];
        for (q = 0; q < 8; q++) a[q] = zero;
        for (j = 0; j < n4; j += 4) {
            const vbf_v4 rv = vbf_load4(ratio + j);
            for (q = 0; q < 8; q++) a[q] += rv * vbf_load4(rows[i + q] + j);
        }
        vbf_store4(acc + i, vbf_hsum4x(a[0], a[1], a[2], a[3]));
        vbf_store4(acc + i + 4, vbf_hsum4x(a[4], a[5], a[6], a[7]));
    }
    if (i < Ka) {
        vbf_v4 a[4] = {zero, zero, zero, zero}, b[4] = {zero, zero, zero, zero};
        for (j = 0; j + 8 <= n4; j += 8) {
            const vbf_v4 rv = vbf_load4(ratio + j), rw = vbf_load4(ratio + j + 4);
            for (q = 0; q < 4; q++) {
                a[q] += rv * vbf_load4(rows[i + q] + j);
                b[q] += rw * vbf_load4(rows[i + q] + j + 4);
            }
        }
        if (j < n4) {
            const vbf_v4 rv = vbf_load4(ratio + j);
            for (q = 0; q < 4; q++) a[q] += rv * vbf_load4(rows[i + q] + j);
        }
        vbf_store4(acc + i, vbf_hsum4x(a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]));
    }
    sums[0] = vbf_hsum(ratio_sum);
    sums[1] = inv_s_max[0];
    for (q = 1; q < 4; q++)
        if (inv_s_max[q] > sums[1]) sums[1] = inv_s_max[q];
}

#if defined(__x86_64__)
#include <immintrin.h>
#define VBF_AVX512 __attribute__((target("avx512f,avx2,fma")))
#else
#define VBF_AVX512
#endif

/* ---- eight double lanes (AVX-512; vbf_v8 and its helpers in vbf_simd_math.h). In the live
   sweep a scalar is broadcast by writing it into the arithmetic (t * v): GCC 12 builds
   {v, v, ..., v} lane by lane with masked broadcasts under AVX-512. */
/* lanes 0-3 plus lanes 4-7 */
VBF_INLINE vbf_v4 vbf_fold8(vbf_v8 a) {
    vbf_v4 lo, hi;
    __builtin_memcpy(&lo, &a, sizeof lo);
    __builtin_memcpy(&hi, (const char *)&a + sizeof lo, sizeof hi);
    return lo + hi;
}
VBF_INLINE vbf_v8 vbf_max8(vbf_v8 a, vbf_v8 b) {  /* a where a > b, else b (no NaN here) */
    vbf_i8 m = a > b, ia, ib;
    vbf_v8 r;
    __builtin_memcpy(&ia, &a, sizeof ia);
    __builtin_memcpy(&ib, &b, sizeof ib);
    ia = (ia & m) | (ib & ~m);
    __builtin_memcpy(&r, &ia, sizeof r);
    return r;
}

/* 1 / x for x >= 2^-1022 (finite, normal), within about one ulp: VRCP14PD's estimate
   (relative error < 2^-14) and two Newton steps y += y (1 - x y), each residual one fused
   multiply-add (error ~2^-56 plus rounding). A division costs the divider about 2 cycles a
   double at any vector width (VDIVPD; Intel's tables), which bounds the sweep at small K
   (136 words at K = 20: ~270 cycles of divisions against ~340 of multiply-adds); this is
   a few cycles per eight lanes. */
#if defined(__x86_64__)
VBF_AVX512 VBF_INLINE vbf_v8 vbf_recip8(vbf_v8 x) {
    vbf_v8 y = (vbf_v8)_mm512_rcp14_pd((__m512d)x);
    y = y + y * (1.0 - x * y);
    return y + y * (1.0 - x * y);
}
#else
VBF_INLINE vbf_v8 vbf_recip8(vbf_v8 x) { return 1.0 / x; }
#endif

/* vbf_update_live_body with eight lanes (AVX-512): the same sums, n4 a multiple of 8 (the
   caller pads the document's words to 8) and lanes (8 Ka doubles, 64-byte aligned) a
   workspace. The words go in chunks of 32: the chunk's dot products (eight chains: four
   vectors of words by two topics), its ratios, then its share of every topic's acc while its
   Ka x 32 values are still in L1 (at K = 100 a document's copy is ~110 KB, past L1: swept
   twice it streamed twice from L2). Topic i's share goes into lanes[8 i..8 i+7] (one chain of
   four multiply-adds a chunk); the eight lanes are summed at the end (folded to four, then
   vbf_hsum4x). The order of every sum is fixed by n4 and Ka alone; it differs from the
   four-lane version's, so the two agree to rounding. Ka is the live topics' count itself,
   not rounded up (the four-lane version's padding rows would add 0 x 0 to its sums: the same
   bits without reading them); lanes and acc
   hold Ka rounded up to 4. */
VBF_AVX512 VBF_INLINE void vbf_update_live8_body(Py_ssize_t n4, int Ka,
                                                 const double *const *rows, const double *cnt,
                                                 const double *t, double eps, double *ratio,
                                                 double *acc, const double *inv_cnt,
                                                 double *sums, double *lanes)
{
    const vbf_v8 zero = {0.0};
    const int Ka4 = (Ka + 3) & ~3;
    vbf_v8 ratio_sum = zero, inv_s_max = zero;
    vbf_v4 f;
    Py_ssize_t j;
    int i, q;
#define VBF_RATIO8(S, J) do {                                                               \
        const vbf_v8 rt_ = vbf_load8(cnt + (J)) * vbf_recip8((S) + eps);                    \
        vbf_store8(ratio + (J), rt_);                                                       \
        ratio_sum += rt_;                                                                   \
        inv_s_max = vbf_max8(rt_ * vbf_load8(inv_cnt + (J)), inv_s_max);                    \
    } while (0)
    for (i = 0; i < Ka4; i++) vbf_store8(lanes + 8 * i, zero);
    for (j = 0; j + 32 <= n4; j += 32) {
        vbf_v8 s[4] = {zero, zero, zero, zero}, u[4] = {zero, zero, zero, zero};
        vbf_v8 r0, r1, r2, r3;
        for (i = 0; i + 2 <= Ka; i += 2) {
            const double t0 = t[i], t1 = t[i + 1];
            const double *p0 = rows[i] + j, *p1 = rows[i + 1] + j;
            for (q = 0; q < 4; q++) {
                s[q] += t0 * vbf_load8(p0 + 8 * q);
                u[q] += t1 * vbf_load8(p1 + 8 * q);
            }
        }
        if (i < Ka) {  /* an odd topic: its pair's partner in u would have added 0 t 0 */
            const double t0 = t[i];
            const double *p0 = rows[i] + j;
            for (q = 0; q < 4; q++) s[q] += t0 * vbf_load8(p0 + 8 * q);
        }
        for (q = 0; q < 4; q++) VBF_RATIO8(s[q] + u[q], j + 8 * q);
        r0 = vbf_load8(ratio + j);
        r1 = vbf_load8(ratio + j + 8);
        r2 = vbf_load8(ratio + j + 16);
        r3 = vbf_load8(ratio + j + 24);
        for (i = 0; i < Ka; i++) {
            const double *p = rows[i] + j;
            vbf_v8 a = vbf_load8(lanes + 8 * i);
            a += r0 * vbf_load8(p);
            a += r1 * vbf_load8(p + 8);
            a += r2 * vbf_load8(p + 16);
            a += r3 * vbf_load8(p + 24);
            vbf_store8(lanes + 8 * i, a);
        }
    }
    for (; j < n4; j += 8) {  /* the last words, eight at a time: four topics' chains */
        vbf_v8 s0 = zero, s1 = zero, s2 = zero, s3 = zero, rv;
        for (i = 0; i + 4 <= Ka; i += 4) {
            s0 += t[i] * vbf_load8(rows[i] + j);
            s1 += t[i + 1] * vbf_load8(rows[i + 1] + j);
            s2 += t[i + 2] * vbf_load8(rows[i + 2] + j);
            s3 += t[i + 3] * vbf_load8(rows[i + 3] + j);
        }
        if (i < Ka) s0 += t[i] * vbf_load8(rows[i] + j);
        if (i + 1 < Ka) s1 += t[i + 1] * vbf_load8(rows[i + 1] + j);
        if (i + 2 < Ka) s2 += t[i + 2] * vbf_load8(rows[i + 2] + j);
        VBF_RATIO8((s0 + s1) + (s2 + s3), j);
        rv = vbf_load8(ratio + j);
        for (i = 0; i < Ka; i++)
            vbf_store8(lanes + 8 * i, vbf_load8(lanes + 8 * i) + rv * vbf_load8(rows[i] + j));
    }
#undef VBF_RATIO8
    for (i = 0; i < Ka4; i += 4)
        vbf_store4(acc + i, vbf_hsum4x(vbf_fold8(vbf_load8(lanes + 8 * i)),
                                       vbf_fold8(vbf_load8(lanes + 8 * i + 8)),
                                       vbf_fold8(vbf_load8(lanes + 8 * i + 16)),
                                       vbf_fold8(vbf_load8(lanes + 8 * i + 24))));
    f = vbf_fold8(ratio_sum);
    sums[0] = vbf_hsum(f);
    sums[1] = inv_s_max[0];
    for (q = 1; q < 8; q++)
        if (inv_s_max[q] > sums[1]) sums[1] = inv_s_max[q];
}

/* vbf_exp_expectation_total_body on eight lanes (AVX-512), the same values: lane for lane
   the same operations (vbf_digamma_parts8, vbf_exp8), and the total's digamma, which the
   four-lane body computes in a vector of its own, in the lane after the K values (K = 20:
   three vectors instead of six). The fixed point's sweeps wait for t, so the time is the
   chain digamma(total) -> exp more than the operations: up to four vectors go together,
   first every digamma, then every exp (independent chains in flight, the constants in the
   32 AVX-512 registers), the vector with the total's lane among the first. The total's two
   values stay scalars, met by the vectors in the arithmetic (a splat of a lane picked at run
   time was eight masked broadcasts on the chain's path). */
VBF_INLINE void vbf_expect8_block(const int nb, const vbf_v8 *x, int total_lane,
                                  double *a_total, double *inv_y_total, vbf_v8 *out)
{
    vbf_v8 a[4], y[4];
    int q;
    for (q = 0; q < nb; q++) a[q] = vbf_digamma_parts8(x[q], &y[q]);
    if (total_lane >= 0) {  /* the total is lane total_lane of x[nb - 1] */
        *a_total = a[nb - 1][total_lane];
        *inv_y_total = 1.0 / y[nb - 1][total_lane];
    }
    for (q = 0; q < nb; q++) out[q] = (y[q] * *inv_y_total) * vbf_exp8(a[q] - *a_total);
}

/* nb (1 to 4) as a constant in each call, so that the block's loops unroll */
VBF_INLINE void vbf_expect8_blocks(int nb, const vbf_v8 *x, int total_lane, double *a_total,
                                   double *inv_y_total, vbf_v8 *out)
{
    switch (nb) {
    case 1: vbf_expect8_block(1, x, total_lane, a_total, inv_y_total, out); break;
    case 2: vbf_expect8_block(2, x, total_lane, a_total, inv_y_total, out); break;
    case 3: vbf_expect8_block(3, x, total_lane, a_total, inv_y_total, out); break;
    default: vbf_expect8_block(4, x, total_lane, a_total, inv_y_total, out); break;
    }
}

VBF_INLINE void vbf_exp_expectation_total8_body(int K, const double *gamma, double total,
                                                double *t)
{
    const int last = K / 8;                /* the vector with the total's lane */
    const int nb0 = last < 3 ? last + 1 : 4;  /* it and the nb0 - 1 vectors before it */
    const int v0 = last + 1 - nb0;
    vbf_v8 x[4], out[4];
    double a_total = 0.0, inv_y_total = 0.0;
    double tail[8];
    int q, v, nb;
    for (q = 0; q < 8; q++)
        tail[q] = 8 * last + q < K ? gamma[8 * last + q] : (8 * last + q == K ? total : 1.0);
    for (q = 0; q + 1 < nb0; q++) x[q] = vbf_load8(gamma + 8 * (v0 + q));
    x[nb0 - 1] = vbf_load8(tail);
    vbf_expect8_blocks(nb0, x, K - 8 * last, &a_total, &inv_y_total, out);
    for (q = 0; q + 1 < nb0; q++) vbf_store8(t + 8 * (v0 + q), out[q]);
    for (q = 0; 8 * last + q < K; q++) t[8 * last + q] = out[nb0 - 1][q];
    for (v = 0; v < v0; v += nb) {  /* the vectors before, four at a time */
        nb = v0 - v < 4 ? v0 - v : 4;
        for (q = 0; q < nb; q++) x[q] = vbf_load8(gamma + 8 * (v + q));
        /* a last block of one vector goes as two (the second a copy, its t unused): GCC 12
           contracted the single vector's multiply-adds otherwise than the four-lane body's,
           1 ulp apart in a few lanes (the tests compare the bits) */
        x[1] = nb == 1 ? x[0] : x[1];
        vbf_expect8_blocks(nb == 1 ? 2 : nb, x, -1, &a_total, &inv_y_total, out);
        for (q = 0; q < nb; q++) vbf_store8(t + 8 * (v + q), out[q]);
    }
}

/* The topic-major copy vbf_update_live reads: out[k n4 + j] = rows[j][k] for k < Kp and the
   document's n words, zeros for words n..n4-1 (Kp a multiple of 4, n4 of 4 and >= n). Four words by four
   topics at a time, transposed in registers. */
VBF_INLINE void vbf_topic_major_body(Py_ssize_t n, int Kp, const double *const *rows,
                                     Py_ssize_t n4, double *out)
{
    Py_ssize_t j;
    int k, q;
    for (j = 0; j + 4 <= n; j += 4) {
        const double *r0 = rows[j], *r1 = rows[j + 1], *r2 = rows[j + 2], *r3 = rows[j + 3];
        for (k = 0; k < Kp; k += 4) {
            const vbf_v4 a0 = vbf_load4(r0 + k), a1 = vbf_load4(r1 + k);
            const vbf_v4 a2 = vbf_load4(r2 + k), a3 = vbf_load4(r3 + k);
            const vbf_v4 t0 = VBF_SHUFFLE(a0, a1, 0, 4, 2, 6);
            const vbf_v4 t1 = VBF_SHUFFLE(a0, a1, 1, 5, 3, 7);
            const vbf_v4 t2 = VBF_SHUFFLE(a2, a3, 0, 4, 2, 6);
            const vbf_v4 t3 = VBF_SHUFFLE(a2, a3, 1, 5, 3, 7);
            double *o = out + (Py_ssize_t)k * n4 + j;
            vbf_store4(o, VBF_SHUFFLE(t0, t2, 0, 1, 4, 5));
            vbf_store4(o + n4, VBF_SHUFFLE(t1, t3, 0, 1, 4, 5));
            vbf_store4(o + 2 * n4, VBF_SHUFFLE(t0, t2, 2, 3, 6, 7));
            vbf_store4(o + 3 * n4, VBF_SHUFFLE(t1, t3, 2, 3, 6, 7));
        }
    }
    for (; j < n4; j += 4)  /* the last 1-3 words, then zeros */
        for (k = 0; k < Kp; k++)
            for (q = 0; q < 4; q++)
                out[(Py_ssize_t)k * n4 + j + q] = j + q < n ? rows[j + q][k] : 0.0;
}

/* elog_k = psi(gamma_k) - psi(sum_k gamma_k), t_k = exp(elog_k), k < K; gamma_k > 0. */
VBF_INLINE void vbf_dirichlet_expectation_body(int K, const double *gamma, double *elog,
                                               double *t)
{
    int k, q;
    double total = 0.0, psi_total;
    vbf_v4 g, e;
    for (k = 0; k < K; k++) total += gamma[k];
    psi_total = vbf_digamma4(vbf_splat(total))[0];
    for (k = 0; k + 4 <= K; k += 4) {
        e = vbf_digamma4(vbf_load4(gamma + k)) - vbf_splat(psi_total);
        vbf_store4(elog + k, e);
        vbf_store4(t + k, vbf_exp4(e));
    }
    if (k < K) {
        g = vbf_splat(1.0);
        for (q = 0; k + q < K; q++) g[q] = gamma[k + q];
        e = vbf_digamma4(g) - vbf_splat(psi_total);
        g = vbf_exp4(e);
        for (q = 0; k + q < K; q++) { elog[k + q] = e[q]; t[k + q] = g[q]; }
    }
}

/* t_k = exp(psi(gamma_k) - psi(total)), k < K, without a logarithm (see
   vbf_digamma_parts4); total is sum_k gamma_k, or more when gamma holds only some topics. */
VBF_INLINE void vbf_exp_expectation_total_body(int K, const double *gamma, double total,
                                               double *t)
{
    int k, q;
    vbf_v4 g, y, a, a_total, inv_y_total;
    a_total = vbf_digamma_parts4(vbf_splat(total), &y);
    a_total = vbf_splat(a_total[0]);
    inv_y_total = vbf_splat(1.0 / y[0]);
    for (k = 0; k + 4 <= K; k += 4) {
        a = vbf_digamma_parts4(vbf_load4(gamma + k), &y);
        vbf_store4(t + k, (y * inv_y_total) * vbf_exp4(a - a_total));
    }
    if (k < K) {
        g = vbf_splat(1.0);
        for (q = 0; k + q < K; q++) g[q] = gamma[k + q];
        a = vbf_digamma_parts4(g, &y);
        g = (y * inv_y_total) * vbf_exp4(a - a_total);
        for (q = 0; k + q < K; q++) t[k + q] = g[q];
    }
}

/* The topics at some words, each topic's psi(sum_w lambda_kw) given: elog_k = psi(lambda_k) -
   psi_total_k, t_k = exp(elog_k), k < K, value for value as vbf_dirichlet_expectation_body
   computes a topic's row (the online method's mini-batch vocabulary; lambda may be elog). */
VBF_INLINE void vbf_expectation_given_total_body(int K, const double *lambda,
                                                 const double *psi_total, double *elog,
                                                 double *t)
{
    int k, q;
    vbf_v4 g, p, e;
    for (k = 0; k + 4 <= K; k += 4) {
        e = vbf_digamma4(vbf_load4(lambda + k)) - vbf_load4(psi_total + k);
        vbf_store4(elog + k, e);
        vbf_store4(t + k, vbf_exp4(e));
    }
    if (k < K) {
        g = vbf_splat(1.0);
        p = vbf_splat(0.0);
        for (q = 0; k + q < K; q++) { g[q] = lambda[k + q]; p[q] = psi_total[k + q]; }
        e = vbf_digamma4(g) - p;
        g = vbf_exp4(e);
        for (q = 0; k + q < K; q++) { elog[k + q] = e[q]; t[k + q] = g[q]; }
    }
}

/* NAME_body(n, x, out): out_i = FN4(x)_i, i < n (an INDEX count), four values a call (unused
   lanes at 1.0), each as FN4 computes it in any lane */
#define VBF_LANEWISE_N(name, fn4, index)                                                   \
    VBF_INLINE void name##_body(index n, const double *x, double *out)                     \
    {                                                                                       \
        index i;                                                                            \
        int q;                                                                              \
        vbf_v4 g;                                                                           \
        for (i = 0; i < n; i += 4) {                                                        \
            g = vbf_splat(1.0);                                                             \
            for (q = 0; q < 4 && i + q < n; q++) g[q] = x[i + q];                           \
            g = fn4(g);                                                                     \
            for (q = 0; q < 4 && i + q < n; q++) out[i + q] = g[q];                         \
        }                                                                                   \
    }

/* out_i = psi(x_i), i < n, x_i > 0 */
VBF_LANEWISE_N(vbf_digamma_n, vbf_digamma4, int)

/* lgamma(x) for 0 < x < 1e300, x normal (so is x (x+1)...(x+7)), four lanes: lanes with x < 8
   shifted by eight, lgamma(x) = lgamma(x + 8) - log(x (x+1) ... (x+7)), then Stirling's series
   lgamma(y) = (y - 1/2) log y - y + log(2 pi) / 2 + sum_j B_2j / (2j (2j - 1) y^(2j-1)) to
   y^-15 (truncation < 1e-16 for y >= 8). The error is absolute, ~1e-15 |lgamma(y)| (so not
   relative near the roots x = 1, 2): for sums of many terms (the bound's topic term). */
/* Stirling's coefficients B_2j / (2j (2j - 1)) for j = 8 down to 1, in Horner's order */
static const double vbf_lgamma_series[8] = {3617.0 / 122400.0, 1.0 / 156.0, 691.0 / 360360.0,
                                            1.0 / 1188.0, 1.0 / 1680.0, 1.0 / 1260.0,
                                            1.0 / 360.0, 1.0 / 12.0};

/* NAME(x): that lgamma on a vector type VEC (mask type IVEC) with its SPLAT, BLEND and LOG;
   four lanes (vbf_lgamma4) and eight (vbf_lgamma8) are the same operations lane for lane */
#define VBF_DEFINE_LGAMMA(NAME, VEC, IVEC, SPLAT, BLEND, LOG)                                 \
    VBF_INLINE VEC NAME(VEC x)                                                                \
    {                                                                                         \
        VEC den = x, y, iy, z, p;                                                             \
        const IVEC small = x < SPLAT(8.0);                                                    \
        int i;                                                                                \
        for (i = 1; i < 8; i++) den = den * (x + SPLAT((double)i));                           \
        y = BLEND(small, x + SPLAT(8.0), x);                                                  \
        den = BLEND(small, den, SPLAT(1.0));                                                  \
        iy = SPLAT(1.0) / y;                                                                  \
        z = iy * iy;                                                                          \
        p = SPLAT(vbf_lgamma_series[0]);                                                      \
        for (i = 1; i < 8; i++) p = SPLAT(vbf_lgamma_series[i]) - z * p;                      \
        return (((y - SPLAT(0.5)) * LOG(y) - y) + SPLAT(0.91893853320467274178))              \
               + (iy * p - LOG(den));                                                         \
    }

VBF_DEFINE_LGAMMA(vbf_lgamma4, vbf_v4, vbf_i4, vbf_splat, vbf_blend, vbf_log4)

/* One word's share of the mean-field topic term (lam: its K values, each in the range of
   vbf_lgamma4): sum_k (eta - lam_k) (psi(lam_k) - psi_total_k) + lgamma(lam_k), the four
   lanes summed as (l0 + l1) + (l2 + l3), into *out. */
VBF_INLINE void vbf_topic_term_row_body(int K, const double *lam, const double *psi_total,
                                        double eta, double *out)
{
    int k, q;
    vbf_v4 acc = vbf_splat(0.0), x, p, keep;
    for (k = 0; k + 4 <= K; k += 4) {
        x = vbf_load4(lam + k);
        acc += (vbf_splat(eta) - x) * (vbf_digamma4(x) - vbf_load4(psi_total + k))
               + vbf_lgamma4(x);
    }
    if (k < K) {
        x = vbf_splat(1.0);
        p = vbf_splat(0.0);
        keep = vbf_splat(0.0);
        for (q = 0; k + q < K; q++) { x[q] = lam[k + q]; p[q] = psi_total[k + q]; keep[q] = 1.0; }
        acc += keep * ((vbf_splat(eta) - x) * (vbf_digamma4(x) - p) + vbf_lgamma4(x));
    }
    *out = vbf_hsum(acc);
}

/* lgamma of n values by vbf_lgamma4 (for tests). */
VBF_LANEWISE_N(vbf_lgamma_n, vbf_lgamma4, Py_ssize_t)

/* out_j = log(x_j), j < n, for the bound's log sum_k t_k B_wk: x_j positive and normal where
   the result is used (other values give some finite number or NaN, no trap); vbf_log4, four
   at a time. */
VBF_INLINE void vbf_log_n4_body(Py_ssize_t n, const double *x, double *out)
{
    Py_ssize_t j;
    int q;
    vbf_v4 v;
    for (j = 0; j + 4 <= n; j += 4) vbf_store4(out + j, vbf_log4(vbf_load4(x + j)));
    if (j < n) {
        v = vbf_splat(1.0);
        for (q = 0; j + q < n; q++) v[q] = x[j + q];
        v = vbf_log4(v);
        for (q = 0; j + q < n; q++) out[j + q] = v[q];
    }
}

/* The same by vbf_log8, eight at a time (the same values: vbf_log8 is vbf_log4 lane for
   lane). */
VBF_INLINE void vbf_log_n8_body(Py_ssize_t n, const double *x, double *out)
{
    Py_ssize_t j;
    int q;
    vbf_v8 v;
    double tail[8];
    for (j = 0; j + 8 <= n; j += 8) vbf_store8(out + j, vbf_log8(vbf_load8(x + j)));
    if (j < n) {
        for (q = 0; q < 8; q++) tail[q] = j + q < n ? x[j + q] : 1.0;
        v = vbf_log8(vbf_load8(tail));
        for (q = 0; j + q < n; q++) out[j + q] = v[q];
    }
}

/* A topic's total over the words and what the mean-field topics need of it (one topic of
   vbf_topics_chunk's input): total = sum_w lam_w in word order, psi_total = psi(total) as
   vbf_dirichlet_expectation_body takes it, and the topic's share of the bound's topic term,
   lgamma(V eta) - lgamma(total), both by vbf_lgamma4 (exactly 0 when total = V eta). Returns
   0 if lgamma's range (1e-290, 1e290) excludes V eta or the total (the caller then takes
   scipy's gammaln for the term). */
VBF_INLINE void vbf_topic_total_body(Py_ssize_t V, const double *lam, double eta,
                                     double *total_out, double *psi_total, double *term,
                                     int *in_range)
{
    Py_ssize_t w;
    double total = 0.0, v_eta = (double)V * eta;
    vbf_v4 lg;
    for (w = 0; w < V; w++) total += lam[w];
    *total_out = total;
    *psi_total = vbf_digamma4(vbf_splat(total))[0];
    lg = vbf_splat(1.0);
    lg[0] = v_eta;
    lg[1] = total;
    lg = vbf_lgamma4(lg);
    *term = lg[0] - lg[1];
    *in_range = v_eta > 1e-290 && v_eta < 1e290 && total > 1e-290 && total < 1e290;
}

/* Words w0..w1-1 of every topic of lam (K, V), psi_total (K,) from vbf_topic_total_body:
       elog_kw = psi(lam_kw) - psi_total_k      (K, V), as vbf_dirichlet_expectation_body
       B_wk    = exp(elog_kw)                   (V, Kp) word-major; columns past K untouched
       topic_max_k = max over the chunk's words of B_wk
       term    = sum_kw (eta - lam_kw) elog_kw + (lgamma(lam_kw) - lgamma(eta))
   (the bound's topic term over these entries, topic by topic, four lanes (l0 + l1) + (l2 +
   l3) a topic, lgamma by vbf_lgamma4 for lam and eta alike, so that an entry with lam = eta
   adds exactly 0). tmp: K (w1 - w0) doubles of workspace (the chunk's exp, topic-major, then
   transposed into B). *in_range is 0 if a lam is outside vbf_lgamma4's range (1e-290, 1e290)
   (the term is then not valid). */
/* DECL(...) {body}: vbf_topics_chunk's body for a vector type VEC of W lanes (mask type IVEC)
   with its functions; MAXV(a, b) is a where a > b else b, HSUM sums the lanes (four lanes:
   (l0 + l1) + (l2 + l3); eight: folded to four first). */
#define VBF_DEFINE_TOPICS_CHUNK(DECL, VEC, IVEC, W, SPLAT, LOAD, STORE, DIGAMMA, EXP, LGAMMA,    \
                                MAXV, HSUM)                                                    \
    DECL(int K, Py_ssize_t V, Py_ssize_t w0, Py_ssize_t w1, const double *lam,                 \
         const double *psi_total, double eta, int Kp, double *elog, double *B, double *tmp,    \
         double *topic_max, double *term, int *in_range)                                       \
    {                                                                                          \
        const Py_ssize_t n = w1 - w0;                                                          \
        const VEC veta = SPLAT(eta), lo = SPLAT(1e-290), hi = SPLAT(1e290);                    \
        const VEC lg_eta = LGAMMA(veta);                                                       \
        double sum = 0.0, mx;                                                                  \
        Py_ssize_t w, j;                                                                       \
        int k, q;                                                                              \
        IVEC bad = {0};                                                                        \
        for (k = 0; k < K; k++) {                                                              \
            const double *x_row = lam + (Py_ssize_t)k * V;                                     \
            double *e_row = elog + (Py_ssize_t)k * V, *t_row = tmp + (Py_ssize_t)k * n;        \
            const VEC psi = SPLAT(psi_total[k]);                                               \
            VEC acc = SPLAT(0.0), m = SPLAT(0.0), x, e, t, keep;                               \
            for (w = w0; w + W <= w1; w += W) {                                                \
                x = LOAD(x_row + w);                                                           \
                e = DIGAMMA(x) - psi;                                                          \
                t = EXP(e);                                                                    \
                STORE(e_row + w, e);                                                           \
                STORE(t_row + (w - w0), t);                                                    \
                m = MAXV(t, m);                                                                \
                acc += (veta - x) * e + (LGAMMA(x) - lg_eta);                                  \
                bad |= (x <= lo) | (x >= hi);                                                  \
            }                                                                                  \
            if (w < w1) {  /* the last words, the other lanes at 1 and not counted */          \
                keep = SPLAT(0.0);                                                             \
                x = SPLAT(1.0);                                                                \
                for (q = 0; w + q < w1; q++) { x[q] = x_row[w + q]; keep[q] = 1.0; }           \
                e = DIGAMMA(x) - psi;                                                          \
                t = EXP(e);                                                                    \
                for (q = 0; w + q < w1; q++) {                                                 \
                    e_row[w + q] = e[q];                                                       \
                    t_row[w - w0 + q] = t[q];                                                  \
                }                                                                              \
                m = MAXV(t * keep, m);                                                         \
                acc += keep * ((veta - x) * e + (LGAMMA(x) - lg_eta));                         \
                bad |= (x <= lo) | (x >= hi);                                                  \
            }                                                                                  \
            mx = m[0];                                                                         \
            for (q = 1; q < W; q++) if (m[q] > mx) mx = m[q];                                  \
            topic_max[k] = mx;                                                                 \
            sum += HSUM(acc);                                                                  \
        }                                                                                      \
        *term = sum;                                                                           \
        for (q = 1; q < W; q++) bad[0] |= bad[q];                                              \
        *in_range = !bad[0];                                                                   \
        /* the chunk's exp into B, word-major */                                               \
        for (j = 0; j < n; j++) {                                                              \
            double *o = B + (w0 + j) * Kp;                                                     \
            for (k = 0; k < K; k++) o[k] = tmp[(Py_ssize_t)k * n + j];                         \
        }                                                                                      \
    }

VBF_INLINE vbf_v4 vbf_max4(vbf_v4 a, vbf_v4 b) { return vbf_blend(a > b, a, b); }
#define VBF_TOPICS_CHUNK4_DECL VBF_INLINE void vbf_topics_chunk4_body
VBF_DEFINE_TOPICS_CHUNK(VBF_TOPICS_CHUNK4_DECL, vbf_v4, vbf_i4, 4, vbf_splat, vbf_load4,
                        vbf_store4, vbf_digamma4, vbf_exp4, vbf_lgamma4, vbf_max4, vbf_hsum)

#if defined(__x86_64__)
/* vbf_lgamma4 on eight lanes */
VBF_DEFINE_LGAMMA(vbf_lgamma8, vbf_v8, vbf_i8, vbf_splat8, vbf_blend8, vbf_log8)

/* vbf_topics_chunk_body on eight lanes (AVX-512F/DQ): elog, B and topic_max the same values
   (vbf_digamma8, vbf_exp8 are the four-lane functions lane for lane); the term's lanes are
   folded to four and summed as the four-lane body sums its own, so it agrees with that one
   to rounding only (the entries meet the lanes in another grouping). */
VBF_INLINE double vbf_hsum8(vbf_v8 a) { return vbf_hsum(vbf_fold8(a)); }
#define VBF_TOPICS_CHUNK8_DECL \
    __attribute__((target("avx512f,avx512dq,fma"))) static void vbf_topics_chunk8
VBF_DEFINE_TOPICS_CHUNK(VBF_TOPICS_CHUNK8_DECL, vbf_v8, vbf_i8, 8, vbf_splat8, vbf_load8,
                        vbf_store8, vbf_digamma8, vbf_exp8, vbf_lgamma8, vbf_max8, vbf_hsum8)
#endif

/* Each hot function NAME is NAME_body for AVX2+FMA or the baseline, chosen at run time. */
#define VBF_DISPATCHED(name, params, args) \
    VBF_DISPATCH(name, "avx2,fma", vbf_cpu_avx2_fma(), params, args)

VBF_DISPATCHED(vbf_update,
               (Py_ssize_t n, int K, const double *const *rows, const double *cnt,
                const double *t, double eps, double *ratio, double *acc),
               (n, K, rows, cnt, t, eps, ratio, acc))

#define vbf_update_live4_body vbf_update_live_body
VBF_DISPATCHED(vbf_update_live4,
               (Py_ssize_t n4, int Ka, const double *const *rows, const double *cnt,
                const double *t, double eps, double *ratio, double *acc,
                const double *inv_cnt, double *sums),
               (n4, Ka, rows, cnt, t, eps, ratio, acc, inv_cnt, sums))

/* The live sweep over Ka live topics (rows and t padded to Ka rounded up to 4 with zero
   rows and zeros): eight lanes where the CPU has AVX-512F (n4 must then be a multiple of 8;
   the pass always pads to 8; lanes: 8 Ka4 doubles, 64-byte aligned), else vbf_update_live4
   over the Ka4 rows (AVX2+FMA or the baseline, lanes unused). */
#ifdef VBF_HAVE_DISPATCH
VBF_AVX512 static void vbf_update_live_avx512(
    Py_ssize_t n4, int Ka, const double *const *rows, const double *cnt, const double *t,
    double eps, double *ratio, double *acc, const double *inv_cnt, double *sums,
    double *lanes)
{
    vbf_update_live8_body(n4, Ka, rows, cnt, t, eps, ratio, acc, inv_cnt, sums, lanes);
}
#endif

static void vbf_update_live(Py_ssize_t n4, int Ka, const double *const *rows,
                            const double *cnt, const double *t, double eps, double *ratio,
                            double *acc, const double *inv_cnt, double *sums, double *lanes)
{
#ifdef VBF_HAVE_DISPATCH
    if (vbf_lda_lanes != 4 && (n4 & 7) == 0 && vbf_cpu_avx512f()) {
        vbf_update_live_avx512(n4, Ka, rows, cnt, t, eps, ratio, acc, inv_cnt, sums, lanes);
        return;
    }
#endif
    vbf_update_live4(n4, (Ka + 3) & ~3, rows, cnt, t, eps, ratio, acc, inv_cnt, sums);
}

/* vbf_dots for AVX2 without FMA (a fused multiply-add would round otherwise than the
   baseline vbf_dot's multiply and add), or the baseline */
#ifdef VBF_HAVE_DISPATCH
__attribute__((target("avx2"), optimize("fp-contract=off"))) static void vbf_dots_avx2(
    Py_ssize_t n, int Kp, const double *const *rows, const double *t, double *out)
{
    vbf_dots_body(n, Kp, rows, t, out);
}
#endif

static void vbf_dots(Py_ssize_t n, int Kp, const double *const *rows, const double *t,
                     double *out)
{
#ifdef VBF_HAVE_DISPATCH
    if (VBF_CPU_HAS("avx2")) {
        vbf_dots_avx2(n, Kp, rows, t, out);
        return;
    }
#endif
    vbf_dots_body(n, Kp, rows, t, out);
}

VBF_DISPATCHED(vbf_topic_major,
               (Py_ssize_t n, int Kp, const double *const *rows, Py_ssize_t n4, double *out),
               (n, Kp, rows, n4, out))

VBF_DISPATCHED(vbf_dirichlet_expectation,
               (int K, const double *gamma, double *elog, double *t),
               (K, gamma, elog, t))

/* t_k = exp(E[log theta_k]) = exp(psi(gamma_k) - psi(total)), k < K, alone (the fixed
   point's sweeps need no E[log theta]): about a quarter cheaper than
   vbf_dirichlet_expectation, same values to ~1e-13 relative. total is sum_k gamma_k, or more
   when gamma holds only the live topics of a document (see _fixed_point in _lda.pyx). */
#define vbf_exp_expectation_total4_body vbf_exp_expectation_total_body
VBF_DISPATCHED(vbf_exp_expectation_total4,
               (int K, const double *gamma, double total, double *t),
               (K, gamma, total, t))

#ifdef VBF_HAVE_DISPATCH
__attribute__((target("avx512f,avx512dq,fma"))) static void vbf_exp_expectation_total8(
    int K, const double *gamma, double total, double *t)
{
    vbf_exp_expectation_total8_body(K, gamma, total, t);
}
#endif

/* eight lanes where the CPU has AVX-512F and DQ unless vbf_lda_lanes is 4, else four (AVX2+FMA
   or the baseline): with FMA the same values either way */
static void vbf_exp_expectation_total(int K, const double *gamma, double total, double *t)
{
#ifdef VBF_HAVE_DISPATCH
    if (vbf_lda_lanes != 4 && vbf_cpu_avx512f() && VBF_CPU_HAS("avx512dq")) {
        vbf_exp_expectation_total8(K, gamma, total, t);
        return;
    }
#endif
    vbf_exp_expectation_total4(K, gamma, total, t);
}

VBF_DISPATCHED(vbf_expectation_given_total,
               (int K, const double *lambda, const double *psi_total, double *elog, double *t),
               (K, lambda, psi_total, elog, t))

VBF_DISPATCHED(vbf_digamma_n, (int n, const double *x, double *out), (n, x, out))

VBF_DISPATCHED(vbf_topic_term_row,
               (int K, const double *lam, const double *psi_total, double eta, double *out),
               (K, lam, psi_total, eta, out))

VBF_DISPATCHED(vbf_lgamma_n, (Py_ssize_t n, const double *x, double *out), (n, x, out))

VBF_DISPATCHED(vbf_topic_total,
               (Py_ssize_t V, const double *lam, double eta, double *total_out,
                double *psi_total, double *term, int *in_range),
               (V, lam, eta, total_out, psi_total, term, in_range))

VBF_DISPATCHED(vbf_topics_chunk4,
               (int K, Py_ssize_t V, Py_ssize_t w0, Py_ssize_t w1, const double *lam,
                const double *psi_total, double eta, int Kp, double *elog, double *B,
                double *tmp, double *topic_max, double *term, int *in_range),
               (K, V, w0, w1, lam, psi_total, eta, Kp, elog, B, tmp, topic_max, term,
                in_range))

/* eight lanes where the CPU has AVX-512F and DQ unless vbf_lda_lanes is 4, else four (AVX2+FMA
   or the baseline) */
static void vbf_topics_chunk(int K, Py_ssize_t V, Py_ssize_t w0, Py_ssize_t w1,
                             const double *lam, const double *psi_total, double eta, int Kp,
                             double *elog, double *B, double *tmp, double *topic_max,
                             double *term, int *in_range)
{
#ifdef VBF_HAVE_DISPATCH
    if (vbf_lda_lanes != 4 && vbf_cpu_avx512f() && VBF_CPU_HAS("avx512dq")) {
        vbf_topics_chunk8(K, V, w0, w1, lam, psi_total, eta, Kp, elog, B, tmp, topic_max,
                          term, in_range);
        return;
    }
#endif
    vbf_topics_chunk4(K, V, w0, w1, lam, psi_total, eta, Kp, elog, B, tmp, topic_max, term,
                      in_range);
}

VBF_DISPATCHED(vbf_log_n4, (Py_ssize_t n, const double *x, double *out), (n, x, out))

/* vbf_log_n8 where the CPU has AVX-512F and DQ (the log's 64-bit conversions) unless
   vbf_lda_lanes is 4, else vbf_log_n4: the same values. */
#ifdef VBF_HAVE_DISPATCH
__attribute__((target("avx512f,avx512dq,fma"))) static void vbf_log_n8(
    Py_ssize_t n, const double *x, double *out)
{
    vbf_log_n8_body(n, x, out);
}
#endif

static void vbf_log_n(Py_ssize_t n, const double *x, double *out)
{
#ifdef VBF_HAVE_DISPATCH
    if (vbf_lda_lanes != 4 && vbf_cpu_avx512f() && VBF_CPU_HAS("avx512dq")) {
        vbf_log_n8(n, x, out);
        return;
    }
#endif
    vbf_log_n4(n, x, out);
}

#else  /* not GCC/Clang: plain C, the same algorithms one value at a time */

static double vbf_dot(int K, const double *t, const double *row)
{
    double s = 0.0;
    int k;
    for (k = 0; k < K; k++) s += t[k] * row[k];
    return s;
}

static void vbf_dots(Py_ssize_t n, int Kp, const double *const *rows, const double *t,
                     double *out)
{
    Py_ssize_t j;
    for (j = 0; j < n; j++) out[j] = vbf_dot(Kp, t, rows[j]);
}

static void vbf_update(Py_ssize_t n, int K, const double *const *rows, const double *cnt,
                       const double *t, double eps, double *ratio, double *acc)
{
    Py_ssize_t j;
    int k;
    for (k = 0; k < K; k++) acc[k] = 0.0;
    for (j = 0; j < n; j++) {
        const double r = ratio[j] = cnt[j] / (vbf_dot(K, t, rows[j]) + eps);
        for (k = 0; k < K; k++) acc[k] += r * rows[j][k];
    }
}

static void vbf_update_live(Py_ssize_t n4, int Ka, const double *const *rows,
                            const double *cnt, const double *t, double eps, double *ratio,
                            double *acc, const double *inv_cnt, double *sums, double *lanes)
{
    Py_ssize_t j;
    int i;
    sums[0] = 0.0;
    sums[1] = 0.0;
    for (j = 0; j < n4; j++) {
        double s = 0.0;
        for (i = 0; i < Ka; i++) s += t[i] * rows[i][j];
        ratio[j] = cnt[j] / (s + eps);
        sums[0] += ratio[j];
        if (ratio[j] * inv_cnt[j] > sums[1]) sums[1] = ratio[j] * inv_cnt[j];
    }
    for (i = 0; i < Ka; i++) {
        double a = 0.0;
        for (j = 0; j < n4; j++) a += ratio[j] * rows[i][j];
        acc[i] = a;
    }
}

static void vbf_topic_major(Py_ssize_t n, int Kp, const double *const *rows, Py_ssize_t n4,
                            double *out)
{
    Py_ssize_t j;
    int k;
    for (k = 0; k < Kp; k++)
        for (j = 0; j < n4; j++) out[(Py_ssize_t)k * n4 + j] = j < n ? rows[j][k] : 0.0;
}


static void vbf_dirichlet_expectation(int K, const double *gamma, double *elog, double *t)
{
    double total = 0.0, psi_total;
    int k;
    for (k = 0; k < K; k++) total += gamma[k];
    psi_total = vbf_digamma(total);
    for (k = 0; k < K; k++) {
        elog[k] = vbf_digamma(gamma[k]) - psi_total;
        t[k] = elog[k] < -708.0 ? 0.0 : exp(elog[k]);
    }
}

static void vbf_exp_expectation_total(int K, const double *gamma, double total, double *t)
{
    double psi_total = vbf_digamma(total), e;
    int k;
    for (k = 0; k < K; k++) {
        e = vbf_digamma(gamma[k]) - psi_total;
        t[k] = e < -708.0 ? 0.0 : exp(e);
    }
}

static void vbf_expectation_given_total(int K, const double *lambda, const double *psi_total,
                                         double *elog, double *t)
{
    int k;
    for (k = 0; k < K; k++) {
        elog[k] = vbf_digamma(lambda[k]) - psi_total[k];
        t[k] = elog[k] < -708.0 ? 0.0 : exp(elog[k]);
    }
}

static void vbf_digamma_n(int n, const double *x, double *out)
{
    int i;
    for (i = 0; i < n; i++) out[i] = vbf_digamma(x[i]);
}

static void vbf_topic_term_row(int K, const double *lam, const double *psi_total,
                               double eta, double *out)
{
    double acc = 0.0;
    int k;
    for (k = 0; k < K; k++)
        acc += (eta - lam[k]) * (vbf_digamma(lam[k]) - psi_total[k]) + lgamma(lam[k]);
    *out = acc;
}

static void vbf_lgamma_n(Py_ssize_t n, const double *x, double *out)
{
    Py_ssize_t i;
    for (i = 0; i < n; i++) out[i] = lgamma(x[i]);
}

static void vbf_topic_total(Py_ssize_t V, const double *lam, double eta, double *total_out,
                            double *psi_total, double *term, int *in_range)
{
    Py_ssize_t w;
    double total = 0.0, v_eta = (double)V * eta;
    for (w = 0; w < V; w++) total += lam[w];
    *total_out = total;
    *psi_total = vbf_digamma(total);
    *term = lgamma(v_eta) - lgamma(total);
    *in_range = v_eta > 1e-290 && v_eta < 1e290 && total > 1e-290 && total < 1e290;
}

static void vbf_topics_chunk(int K, Py_ssize_t V, Py_ssize_t w0, Py_ssize_t w1,
                             const double *lam, const double *psi_total, double eta, int Kp,
                             double *elog, double *B, double *tmp, double *topic_max,
                             double *term, int *in_range)
{
    Py_ssize_t w;
    int k;
    double sum = 0.0, lg_eta = lgamma(eta);
    (void)tmp;
    *in_range = 1;
    for (k = 0; k < K; k++) {
        double mx = 0.0;
        for (w = w0; w < w1; w++) {
            const double x = lam[(Py_ssize_t)k * V + w];
            const double e = vbf_digamma(x) - psi_total[k];
            const double t = e < -708.0 ? 0.0 : exp(e);
            elog[(Py_ssize_t)k * V + w] = e;
            B[w * Kp + k] = t;
            if (t > mx) mx = t;
            sum += (eta - x) * e + (lgamma(x) - lg_eta);
            if (!(x > 1e-290 && x < 1e290)) *in_range = 0;
        }
        topic_max[k] = mx;
    }
    *term = sum;
}

static void vbf_log_n(Py_ssize_t n, const double *x, double *out)
{
    Py_ssize_t i;
    for (i = 0; i < n; i++) out[i] = x[i] > 0.0 ? log(x[i]) : 0.0;
}

#endif

/* psi(totals_k), k < K, into out: scikit-learn's digamma (fast) or vbf_digamma_n's. */
static void vbf_psi_totals(int K, const double *totals, int fast, double *out)
{
    int k;
    if (fast)
        for (k = 0; k < K; k++) out[k] = vbf_psi_sklearn(totals[k]);
    else
        vbf_digamma_n(K, totals, out);
}

/* One word's expected topic counts: o_k = B_wk sum_i ratio[pos_i] t[doc_i, k] over the
   word's entries i in document order. With accumulate the sum continues from o (the sum over
   earlier documents: a corpus read block by block gives the bits of one sum); with B_w NULL
   it is left unscaled. The entries' t rows and ratios are scattered over
   megabytes (one cache miss each), so those of the entry PF ahead are prefetched. */
#if defined(__GNUC__) && defined(__x86_64__)
/* A block of NV (1 to 4) vectors of eight topics, topics k0.. (mask: the last vector's
   lanes), summed over the word's entries in registers: each o_k the sum of
   vbf_word_topic_row_scalar in the same order, multiplies and adds unfused (fp-contract off),
   so the same bits. */
#define VBF_WT_BLOCK(NV)                                                                   \
    do {                                                                                    \
        __m512d a_[4];                                                                      \
        int q_;                                                                             \
        for (q_ = 0; q_ < NV; q_++)                                                         \
            a_[q_] = accumulate ? _mm512_maskz_loadu_pd(q_ == NV - 1 ? last : 0xFF,          \
                                                        o + k0 + 8 * q_)                     \
                                : _mm512_setzero_pd();                                      \
        for (i = i0; i < i1; i++) {                                                         \
            const double *td_ = t + doc[i] * K + k0;                                        \
            const __m512d r_ = _mm512_set1_pd(ratio[pos[i]]);                               \
            if (i + PF < i1) {                                                              \
                const char *p_ = (const char *)(t + doc[i + PF] * K + k0);                  \
                for (q_ = 0; q_ < NV; q_++) vbf_prefetch_r(p_ + 64 * q_);                   \
                vbf_prefetch_r(p_ + 64 * NV - 1);                                           \
                vbf_prefetch_r(ratio + pos[i + PF]);                                        \
            }                                                                               \
            for (q_ = 0; q_ < NV; q_++)                                                     \
                a_[q_] = _mm512_add_pd(a_[q_], _mm512_mul_pd(                               \
                    r_, _mm512_maskz_loadu_pd(q_ == NV - 1 ? last : 0xFF, td_ + 8 * q_)));  \
        }                                                                                   \
        for (q_ = 0; q_ < NV; q_++) {                                                       \
            const __mmask8 m_ = q_ == NV - 1 ? last : 0xFF;                                 \
            if (B_w)                                                                        \
                a_[q_] = _mm512_mul_pd(a_[q_], _mm512_maskz_loadu_pd(m_, B_w + k0 + 8 * q_)); \
            _mm512_mask_storeu_pd(o + k0 + 8 * q_, m_, a_[q_]);                             \
        }                                                                                   \
    } while (0)

/* vbf_word_topic_row on AVX-512F: up to 32 topics at a time in registers (the scalar loop
   reads and writes o for every entry), the same bits. */
__attribute__((target("avx512f"), optimize("fp-contract=off")))
static void vbf_word_topic_row8(long long i0, long long i1, const long long *pos,
                                const long long *doc, const double *ratio, const double *t,
                                int K, const double *B_w, double *o, int accumulate)
{
    enum { PF = 6 };
    long long i;
    int k0;
    for (k0 = 0; k0 < K; k0 += 32) {
        const int kn = K - k0 < 32 ? K - k0 : 32, nv = (kn + 7) / 8;
        const __mmask8 last = (__mmask8)(kn - 8 * (nv - 1) == 8 ? 0xFF
                                                                 : (1u << (kn - 8 * (nv - 1))) - 1);
        switch (nv) {
        case 1: VBF_WT_BLOCK(1); break;
        case 2: VBF_WT_BLOCK(2); break;
        case 3: VBF_WT_BLOCK(3); break;
        default: VBF_WT_BLOCK(4); break;
        }
    }
}
#undef VBF_WT_BLOCK
#endif

static void vbf_word_topic_row(long long i0, long long i1, const long long *pos,
                               const long long *doc, const double *ratio, const double *t,
                               int K, const double *B_w, double *o, int accumulate)
{
    enum { PF = 6 };
#if defined(__GNUC__) && defined(__x86_64__)
    if (vbf_cpu_avx512f()) {
        vbf_word_topic_row8(i0, i1, pos, doc, ratio, t, K, B_w, o, accumulate);
        return;
    }
#endif
    long long i;
    int k;
    if (!accumulate)
        for (k = 0; k < K; k++) o[k] = 0.0;
    for (i = i0; i < i1; i++) {
        const double *td = t + doc[i] * K;
        const double r = ratio[pos[i]];
        if (i + PF < i1) {
            const char *p = (const char *)(t + doc[i + PF] * K);
            int b;
            for (b = 0; b < K * 8; b += 64) vbf_prefetch_r(p + b);
            vbf_prefetch_r(p + K * 8 - 1);
            vbf_prefetch_r(ratio + pos[i + PF]);
        }
        for (k = 0; k < K; k++) o[k] += r * td[k];
    }
    if (B_w)
        for (k = 0; k < K; k++) o[k] *= B_w[k];
}

/* The same sums without the word-major pattern: the documents' entries in document order,
   ws_w += ratio[p] t_d for each entry p of a word w in [lo, hi) in document d (product
   rounded, then added; fp-contract off) onto ws (V, K) zeroed by the caller: for every (w, k)
   the terms meet in vbf_word_topic_row's order, so the same bits (and the same for any
   split of the words into ranges). n documents, positions p absolute (indptr may be a
   slice), t's rows from the shard's first document. ws's rows are scattered over V K doubles
   (in L2 at K = 20, V = 10,000); t and ratio are read in order. */
#define VBF_DEFINE_WORD_TOPIC_DOCS(NAME, IDX, ATTR)                                             \
    ATTR static void NAME(Py_ssize_t n, const IDX *indptr, const IDX *indices,                  \
                          const double *ratio, const double *t, int K, Py_ssize_t lo,          \
                          Py_ssize_t hi, double *ws)                                           \
    {                                                                                          \
        Py_ssize_t d, p;                                                                       \
        int k;                                                                                 \
        for (d = 0; d < n; d++) {                                                              \
            const double *td = t + d * K;                                                      \
            for (p = indptr[d]; p < indptr[d + 1]; p++) {                                      \
                const Py_ssize_t w = (Py_ssize_t)indices[p];                                   \
                double *o = ws + w * K;                                                        \
                const double r = ratio[p];                                                     \
                if ((size_t)(w - lo) >= (size_t)(hi - lo)) continue;                           \
                for (k = 0; k < K; k++) o[k] = o[k] + r * td[k];                               \
            }                                                                                  \
        }                                                                                      \
    }
#define VBF_WT_PLAIN __attribute__((optimize("fp-contract=off")))
#if defined(__GNUC__) && defined(__x86_64__)
#define VBF_WT_AVX512 __attribute__((target("avx512f,avx512vl"), optimize("fp-contract=off")))
/* NAME for word indices of type IDX: the AVX-512 build where the CPU has it, else the
   baseline's (the same operations, so the same bits) */
#define VBF_WORD_TOPIC_DOCS(NAME, IDX)                                                          \
    VBF_DEFINE_WORD_TOPIC_DOCS(NAME##_plain, IDX, VBF_WT_PLAIN)                                 \
    VBF_DEFINE_WORD_TOPIC_DOCS(NAME##_avx512, IDX, VBF_WT_AVX512)                               \
    static void NAME(Py_ssize_t n, const IDX *indptr, const IDX *indices, const double *ratio,  \
                     const double *t, int K, Py_ssize_t lo, Py_ssize_t hi, double *ws)         \
    {                                                                                          \
        if (vbf_cpu_avx512f())                                                                 \
            NAME##_avx512(n, indptr, indices, ratio, t, K, lo, hi, ws);                        \
        else                                                                                   \
            NAME##_plain(n, indptr, indices, ratio, t, K, lo, hi, ws);                         \
    }
#else
#define VBF_WORD_TOPIC_DOCS(NAME, IDX) VBF_DEFINE_WORD_TOPIC_DOCS(NAME, IDX, VBF_WT_PLAIN)
#endif
VBF_WORD_TOPIC_DOCS(vbf_word_topic_docs_i32, int)
VBF_WORD_TOPIC_DOCS(vbf_word_topic_docs_i64, long long)

#endif