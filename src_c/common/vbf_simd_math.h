/* Shared SIMD math: four-lane double vectors (GCC/Clang vector extensions) and the
   vectorised log, exp and digamma built on them, the same on eight lanes (AVX-512); a
   scalar digamma with the same algorithm for other compilers. Every function has a fixed order of operations, so its result
   depends on its input and on the target it is compiled for (see vbf_dispatch.h), never
   on the caller. */
#ifndef VBFAST_VBF_SIMD_MATH_H
#define VBFAST_VBF_SIMD_MATH_H

#include <math.h>
#include <stdint.h>
#include "vbf_dispatch.h"

/* prefetch for reading / for writing, into every cache level */
#if defined(__GNUC__)
#define vbf_prefetch_r(p) __builtin_prefetch((p), 0, 3)
#define vbf_prefetch_w(p) __builtin_prefetch((p), 1, 3)
#else
#define vbf_prefetch_r(p) ((void)0)
#define vbf_prefetch_w(p) ((void)0)
#endif

#if defined(__GNUC__)

/* ---- four double lanes; a horizontal sum is always (l0 + l1) + (l2 + l3) */
typedef double vbf_v4 __attribute__((vector_size(32)));
typedef int32_t vbf_v4i32 __attribute__((vector_size(16)));  /* converts lane-wise to vbf_v4 */

VBF_INLINE vbf_v4 vbf_load4(const double *p) {
    vbf_v4 v; __builtin_memcpy(&v, p, sizeof v); return v;
}
VBF_INLINE void vbf_store4(double *p, vbf_v4 v) { __builtin_memcpy(p, &v, sizeof v); }
VBF_INLINE double vbf_hsum(vbf_v4 a) { return (a[0] + a[1]) + (a[2] + a[3]); }

#if defined(__clang__)
#define VBF_SHUFFLE(a, b, i0, i1, i2, i3) __builtin_shufflevector((a), (b), i0, i1, i2, i3)
#else
typedef long long vbf_m4 __attribute__((vector_size(32)));
#define VBF_SHUFFLE(a, b, i0, i1, i2, i3) __builtin_shuffle((a), (b), (vbf_m4){i0, i1, i2, i3})
#endif
#define VBF_LANE(a, i) VBF_SHUFFLE(a, a, i, i, i, i)
VBF_INLINE vbf_v4 vbf_hsum4x(vbf_v4 a0, vbf_v4 a1, vbf_v4 a2, vbf_v4 a3) {
    const vbf_v4 x = VBF_SHUFFLE(a0, a1, 0, 4, 2, 6) + VBF_SHUFFLE(a0, a1, 1, 5, 3, 7);
    const vbf_v4 y = VBF_SHUFFLE(a2, a3, 0, 4, 2, 6) + VBF_SHUFFLE(a2, a3, 1, 5, 3, 7);
    return VBF_SHUFFLE(x, y, 0, 1, 4, 5) + VBF_SHUFFLE(x, y, 2, 3, 6, 7);
}

typedef long long vbf_i4 __attribute__((vector_size(32)));

VBF_INLINE vbf_i4 vbf_bits(vbf_v4 a) { vbf_i4 b; __builtin_memcpy(&b, &a, sizeof b); return b; }
VBF_INLINE vbf_v4 vbf_from_bits(vbf_i4 b) {
    vbf_v4 a; __builtin_memcpy(&a, &b, sizeof a); return a;
}
/* mask lanes (all ones) take a, the others b */
VBF_INLINE vbf_v4 vbf_blend(vbf_i4 mask, vbf_v4 a, vbf_v4 b) {
    return vbf_from_bits((vbf_bits(a) & mask) | (vbf_bits(b) & ~mask));
}
VBF_INLINE vbf_v4 vbf_splat(double v) { vbf_v4 a = {v, v, v, v}; return a; }

/* log(y) for positive, normal, finite y: y = 2^e m with m in [sqrt(1/2), sqrt(2)),
   log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, series to s^23 (error < 1e-17
   relative to log m); log 2 split in two parts so that e * LN2_HI is exact. */
VBF_INLINE vbf_v4 vbf_log4(vbf_v4 y) {
    const vbf_i4 mant = {0x000fffffffffffffLL, 0x000fffffffffffffLL,
                         0x000fffffffffffffLL, 0x000fffffffffffffLL};
    const vbf_i4 one_bits = {0x3ff0000000000000LL, 0x3ff0000000000000LL,
                             0x3ff0000000000000LL, 0x3ff0000000000000LL};
    vbf_i4 b = vbf_bits(y), e, big;
    vbf_v4 m, s, s2, p, ef;
    e = ((b >> 52) & 0x7ff) - 1023;
    m = vbf_from_bits((b & mant) | one_bits);
    big = m > vbf_splat(1.4142135623730951);
    m = vbf_blend(big, m * vbf_splat(0.5), m);
    e = e - big;  /* big is -1 where m was halved */
    ef = __builtin_convertvector(e, vbf_v4);
    s = (m - vbf_splat(1.0)) / (m + vbf_splat(1.0));
    s2 = s * s;
    p = vbf_splat(1.0 / 23.0);
    p = p * s2 + vbf_splat(1.0 / 21.0);
    p = p * s2 + vbf_splat(1.0 / 19.0);
    p = p * s2 + vbf_splat(1.0 / 17.0);
    p = p * s2 + vbf_splat(1.0 / 15.0);
    p = p * s2 + vbf_splat(1.0 / 13.0);
    p = p * s2 + vbf_splat(1.0 / 11.0);
    p = p * s2 + vbf_splat(1.0 / 9.0);
    p = p * s2 + vbf_splat(1.0 / 7.0);
    p = p * s2 + vbf_splat(1.0 / 5.0);
    p = p * s2 + vbf_splat(1.0 / 3.0);
    p = (s + s) * (p * s2);  /* 2 atanh(s) - 2 s */
    return ef * vbf_splat(6.93147180369123816490e-01)
         + ((s + s) + (p + ef * vbf_splat(1.90821492927058770002e-10)));
}

/* exp(x) for x <= 0 (no overflow handling); x < -708 gives 0 (exp(-708) ~ 3e-308, so only
   subnormal results are flushed). x = n log 2 + r, |r| <= log(2)/2, exp(r) by its Taylor
   series to r^13 (truncation < 1e-17), times 2^n built in the exponent bits. */
VBF_INLINE vbf_v4 vbf_exp4(vbf_v4 x) {
    const vbf_v4 shifter = vbf_splat(6755399441055744.0);  /* 1.5 * 2^52: rounds to integer */
    vbf_i4 under = x < vbf_splat(-708.0), n;
    vbf_v4 kd, r, p;
    x = vbf_blend(under, vbf_splat(-708.0), x);
    kd = x * vbf_splat(1.4426950408889634) + shifter;
    n = vbf_bits(kd) - vbf_bits(shifter);
    kd = kd - shifter;
    r = (x - kd * vbf_splat(6.93147180369123816490e-01))
        - kd * vbf_splat(1.90821492927058770002e-10);
    p = vbf_splat(1.0 / 6227020800.0);
    p = p * r + vbf_splat(1.0 / 479001600.0);
    p = p * r + vbf_splat(1.0 / 39916800.0);
    p = p * r + vbf_splat(1.0 / 3628800.0);
    p = p * r + vbf_splat(1.0 / 362880.0);
    p = p * r + vbf_splat(1.0 / 40320.0);
    p = p * r + vbf_splat(1.0 / 5040.0);
    p = p * r + vbf_splat(1.0 / 720.0);
    p = p * r + vbf_splat(1.0 / 120.0);
    p = p * r + vbf_splat(1.0 / 24.0);
    p = p * r + vbf_splat(1.0 / 6.0);
    p = p * r + vbf_splat(0.5);
    p = p * r + vbf_splat(1.0);
    p = p * r + vbf_splat(1.0);
    p = p * vbf_from_bits((n + 1023) << 52);
    return vbf_from_bits(vbf_bits(p) & ~under);
}

/* 2^(j/32), j = 0..31: the table of the exps for arguments <= 0 (4 and 8 lanes). */
static const double vbf_exp2_32nds[32] = {
    1.0, 1.0218971486541166, 1.0442737824274138, 1.0671404006768237,
    1.0905077326652577, 1.1143867425958924, 1.1387886347566916, 1.1637248587775775,
    1.189207115002721, 1.215247359980469, 1.241857812073484, 1.2690509571917332,
    1.2968395546510096, 1.3252366431597413, 1.3542555469368927, 1.383909881963832,
    1.4142135623730951, 1.4451808069770467, 1.4768261459394993, 1.5091644275934228,
    1.5422108254079407, 1.5759808451078865, 1.6104903319492543, 1.645755478153965,
    1.681792830507429, 1.718619298122478, 1.7562521603732995, 1.7947090750031072,
    1.8340080864093424, 1.8741676341103, 1.9152065613971474, 1.9571441241754002};

/* exp(x) for x <= 0 (lanes below -708 give 0, as vbf_exp4), with a 32-entry table of
   2^(j/32): x = (32 m + j) ln2/32 + r, |r| <= ln2/64, exp(x) = 2^m 2^(j/32) e^r, e^r by its
   Taylor polynomial to r^6 (truncation < 3e-18); within 2 ulp, and about half the operations
   of vbf_exp4's degree-13 polynomial. For the log-sum-exp of a row, where every argument is
   at most 0. */
VBF_INLINE vbf_v4 vbf_exp4_nonpositive(vbf_v4 x) {
    const vbf_v4 shifter = vbf_splat(6755399441055744.0);  /* 1.5 * 2^52: rounds to integer */
    vbf_i4 under = x < vbf_splat(-708.0), n, j;
    vbf_v4 kd, r, p, t;
    x = vbf_blend(under, vbf_splat(-708.0), x);
    kd = x * vbf_splat(46.16624130844683) + shifter;      /* 32 / ln 2 */
    n = vbf_bits(kd) - vbf_bits(shifter);
    kd = kd - shifter;
    /* fdlibm's two-part ln 2 over 32: kd * hi is exact for |kd| < 2^21 */
    r = (x - kd * vbf_splat(6.93147180369123816490e-01 / 32.0))
        - kd * vbf_splat(1.90821492927058770002e-10 / 32.0);
    j = n & 31;
    t = (vbf_v4){vbf_exp2_32nds[j[0]], vbf_exp2_32nds[j[1]], vbf_exp2_32nds[j[2]],
                 vbf_exp2_32nds[j[3]]};
    p = vbf_splat(1.0 / 720.0);
    p = p * r + vbf_splat(1.0 / 120.0);
    p = p * r + vbf_splat(1.0 / 24.0);
    p = p * r + vbf_splat(1.0 / 6.0);
    p = p * r + vbf_splat(0.5);
    p = p * r + vbf_splat(1.0);
    p = p * r + vbf_splat(1.0);
    /* 2^m 2^(j/32): m = n >> 5 (floor) added to the table entry's exponent (>= -1022) */
    t = vbf_from_bits(vbf_bits(t) + ((n >> 5) << 52));
    return vbf_from_bits(vbf_bits(p * t) & ~under);
}

/* digamma(x) for x > 0, in two parts: psi(x) = log y + A(x). Lanes with x < 8 are shifted
   by eight, psi(x) = psi(x + 8) - sum_{i<8} 1/(x + i) (the sum S as one fraction num/den: a
   single division, no branches), so y = x + 8 there and y = x elsewhere; then the asymptotic
   series psi(y) = log y - 1/(2y) - sum_j B_2j / (2j y^2j) to y^-18 (truncation < 3e-17 for
   y >= 8). vbf_digamma_parts4 returns A(x) = -1/(2y) - z p(z) - S, z = 1/y^2, and y. The
   sweeps' t = exp(psi(gamma_k) - psi(total)) needs no logarithm this way:
       t_k = (y_k / y_total) exp(A(gamma_k) - A(total)),
   the A's subtracted before exp (each alone can be far below -708 for tiny gamma, their
   difference not). */
VBF_INLINE vbf_v4 vbf_digamma_parts4(vbf_v4 x, vbf_v4 *y_out) {
    vbf_v4 num = vbf_splat(1.0), den = x, y, iy, z, p;
    vbf_i4 small = x < vbf_splat(8.0);
    int i;
    for (i = 1; i < 8; i++) {  /* num/den = sum_{j<i} 1/(x + j) */
        const vbf_v4 xi = x + vbf_splat((double)i);
        num = num * xi + den;
        den = den * xi;
    }
    y = vbf_blend(small, x + vbf_splat(8.0), x);
    iy = vbf_splat(1.0) / y;
    z = iy * iy;
    p = vbf_splat(43867.0 / 14364.0);
    p = vbf_splat(3617.0 / 8160.0) - z * p;
    p = vbf_splat(1.0 / 12.0) - z * p;
    p = vbf_splat(691.0 / 32760.0) - z * p;
    p = vbf_splat(1.0 / 132.0) - z * p;
    p = vbf_splat(1.0 / 240.0) - z * p;
    p = vbf_splat(1.0 / 252.0) - z * p;
    p = vbf_splat(1.0 / 120.0) - z * p;
    p = vbf_splat(1.0 / 12.0) - z * p;
    *y_out = y;
    return (vbf_splat(-0.5) * iy - z * p) - vbf_from_bits(vbf_bits(num / den) & small);
}

VBF_INLINE vbf_v4 vbf_digamma4(vbf_v4 x) {
    vbf_v4 y, a = vbf_digamma_parts4(x, &y);
    return vbf_log4(y) + a;
}

/* ---- eight double lanes (one AVX-512 register): the four-lane functions above lane for
   lane, the same operations and the same fused multiply-adds, so that a value computed in
   either width has the same bits (built for AVX-512F/DQ with FMA against the four lanes built
   for AVX2 with FMA). Call them from functions built for that target (`target("avx512f,
   avx512dq,fma")`): built for AVX2 alone, eight lanes are slower than four (no AVX2
   instruction for the log's 64-bit shifts and conversions). A scalar meets a vector through
   vbf_splat8, so that GCC broadcasts it in one instruction. */
typedef double vbf_v8 __attribute__((vector_size(64)));
typedef long long vbf_i8 __attribute__((vector_size(64)));

/* {v, ..., v} as a shuffle of lane 0: GCC 12 built the initializer lane by lane with eight
   masked broadcasts (kmovb + vbroadcastsd{k} on port 5, a serial chain) where v was a loop's
   constant or a register, e.g. the digamma's shifts x + i: ~400 such instructions in the
   LDA expectation of K = 20 topics. The same value. */
VBF_INLINE vbf_v8 vbf_splat8(double v) {
    const vbf_v8 a = {v};
    return __builtin_shuffle(a, (vbf_i8){0, 0, 0, 0, 0, 0, 0, 0});
}
VBF_INLINE vbf_v8 vbf_load8(const double *p) {
    vbf_v8 v; __builtin_memcpy(&v, p, sizeof v); return v;
}
VBF_INLINE void vbf_store8(double *p, vbf_v8 v) { __builtin_memcpy(p, &v, sizeof v); }
VBF_INLINE vbf_i8 vbf_bits8(vbf_v8 a) { vbf_i8 b; __builtin_memcpy(&b, &a, sizeof b); return b; }
VBF_INLINE vbf_v8 vbf_from_bits8(vbf_i8 b) {
    vbf_v8 a; __builtin_memcpy(&a, &b, sizeof a); return a;
}
/* mask lanes (all ones) take a, the others b */
VBF_INLINE vbf_v8 vbf_blend8(vbf_i8 mask, vbf_v8 a, vbf_v8 b) {
    return vbf_from_bits8((vbf_bits8(a) & mask) | (vbf_bits8(b) & ~mask));
}

/* vbf_log4 on eight lanes */
VBF_INLINE vbf_v8 vbf_log8(vbf_v8 y) {
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

/* vbf_exp4 (x <= 0) on eight lanes */
VBF_INLINE vbf_v8 vbf_exp8(vbf_v8 x) {
    const vbf_v8 shifter = vbf_splat8(6755399441055744.0);
    vbf_i8 under = x < vbf_splat8(-708.0), n;
    vbf_v8 kd, r, p;
    x = vbf_blend8(under, vbf_splat8(-708.0), x);
    kd = x * vbf_splat8(1.4426950408889634) + shifter;
    n = vbf_bits8(kd) - vbf_bits8(shifter);
    kd = kd - shifter;
    r = (x - kd * vbf_splat8(6.93147180369123816490e-01))
        - kd * vbf_splat8(1.90821492927058770002e-10);
    p = vbf_splat8(1.0 / 6227020800.0);
    p = p * r + vbf_splat8(1.0 / 479001600.0);
    p = p * r + vbf_splat8(1.0 / 39916800.0);
    p = p * r + vbf_splat8(1.0 / 3628800.0);
    p = p * r + vbf_splat8(1.0 / 362880.0);
    p = p * r + vbf_splat8(1.0 / 40320.0);
    p = p * r + vbf_splat8(1.0 / 5040.0);
    p = p * r + vbf_splat8(1.0 / 720.0);
    p = p * r + vbf_splat8(1.0 / 120.0);
    p = p * r + vbf_splat8(1.0 / 24.0);
    p = p * r + vbf_splat8(1.0 / 6.0);
    p = p * r + vbf_splat8(0.5);
    p = p * r + vbf_splat8(1.0);
    p = p * r + vbf_splat8(1.0);
    p = p * vbf_from_bits8((n + 1023) << 52);
    return vbf_from_bits8(vbf_bits8(p) & ~under);
}

/* vbf_exp4_nonpositive on eight lanes. The table entries are picked by two two-register
   permutations (entries j & 15 of each half of the table, the half by bit 4 of j), which
   GCC lowers to vpermt2pd on AVX-512; the same entries as a lane-by-lane lookup. */
VBF_INLINE vbf_v8 vbf_exp8_nonpositive(vbf_v8 x) {
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
#if defined(__clang__)
    t = (vbf_v8){vbf_exp2_32nds[j[0]], vbf_exp2_32nds[j[1]], vbf_exp2_32nds[j[2]],
                 vbf_exp2_32nds[j[3]], vbf_exp2_32nds[j[4]], vbf_exp2_32nds[j[5]],
                 vbf_exp2_32nds[j[6]], vbf_exp2_32nds[j[7]]};
#else
    t = vbf_blend8(-((j >> 4) & 1),
                   __builtin_shuffle(vbf_load8(vbf_exp2_32nds + 16),
                                     vbf_load8(vbf_exp2_32nds + 24), j & 15),
                   __builtin_shuffle(vbf_load8(vbf_exp2_32nds),
                                     vbf_load8(vbf_exp2_32nds + 8), j & 15));
#endif
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

/* vbf_digamma_parts4 on eight lanes */
VBF_INLINE vbf_v8 vbf_digamma_parts8(vbf_v8 x, vbf_v8 *y_out) {
    vbf_v8 num = vbf_splat8(1.0), den = x, y, iy, z, p;
    vbf_i8 small = x < vbf_splat8(8.0);
    int i;
    for (i = 1; i < 8; i++) {
        const vbf_v8 xi = x + vbf_splat8((double)i);
        num = num * xi + den;
        den = den * xi;
    }
    y = vbf_blend8(small, x + vbf_splat8(8.0), x);
    iy = vbf_splat8(1.0) / y;
    z = iy * iy;
    p = vbf_splat8(43867.0 / 14364.0);
    p = vbf_splat8(3617.0 / 8160.0) - z * p;
    p = vbf_splat8(1.0 / 12.0) - z * p;
    p = vbf_splat8(691.0 / 32760.0) - z * p;
    p = vbf_splat8(1.0 / 132.0) - z * p;
    p = vbf_splat8(1.0 / 240.0) - z * p;
    p = vbf_splat8(1.0 / 252.0) - z * p;
    p = vbf_splat8(1.0 / 120.0) - z * p;
    p = vbf_splat8(1.0 / 12.0) - z * p;
    *y_out = y;
    return (vbf_splat8(-0.5) * iy - z * p) - vbf_from_bits8(vbf_bits8(num / den) & small);
}

VBF_INLINE vbf_v8 vbf_digamma8(vbf_v8 x) {
    vbf_v8 y, a = vbf_digamma_parts8(x, &y);
    return vbf_log8(y) + a;
}

#else  /* not GCC/Clang */

static inline double vbf_digamma(double x)
{
    double num = 0.0, den = 1.0, iy, z, p;
    int i;
    if (x < 8.0) {
        num = 1.0;
        den = x;
        for (i = 1; i < 8; i++) { num = num * (x + i) + den; den *= x + i; }
        x += 8.0;
    }
    iy = 1.0 / x;
    z = iy * iy;
    p = 43867.0 / 14364.0;
    p = 3617.0 / 8160.0 - z * p;
    p = 1.0 / 12.0 - z * p;
    p = 691.0 / 32760.0 - z * p;
    p = 1.0 / 132.0 - z * p;
    p = 1.0 / 240.0 - z * p;
    p = 1.0 / 252.0 - z * p;
    p = 1.0 / 120.0 - z * p;
    p = 1.0 / 12.0 - z * p;
    return ((log(x) - 0.5 * iy) - z * p) - num / den;
}

#endif

#endif
