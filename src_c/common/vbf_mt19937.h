/* NumPy's legacy RandomState stream in C, bit for bit: the Mersenne Twister MT19937, its
   doubles, and the legacy Gaussian and Gamma draws on top (numpy/random/src/legacy's
   algorithms, written here from their description). One place for this RNG code: the
   Gaussian mixtures' random responsibilities (emissions/_gaussian_kernels.h) and the
   legacy Gamma blocks (_core/_legacy_random.pyx) include it.

   The state is numpy's: key (624 words, advanced in place) and pos (the next word's index,
   624 = refill first), as RandomState.get_state() gives them; the Gamma draws also carry
   its cached Gaussian (has_gauss, gauss). Words are tempered 624 at a time into a buffer
   beside the key. */
#ifndef VBF_MT19937_H
#define VBF_MT19937_H

#include <math.h>
#include <stdint.h>

#include "vbf_dispatch.h"

#define VBF_MT_N 624
#define VBF_MT_M 397

/* the next 624 words of the state, key[] regenerated in place, out[] = them tempered
   (integer operations only, compiled into each caller's build, SIMD ones included) */
VBF_INLINE void vbf_mt19937_refill(uint32_t *restrict key, uint32_t *restrict out)
{
    int i;
    uint32_t y;
    for (i = 0; i < VBF_MT_N - VBF_MT_M; i++) {
        y = (key[i] & 0x80000000u) | (key[i + 1] & 0x7fffffffu);
        key[i] = key[i + VBF_MT_M] ^ (y >> 1) ^ (-(y & 1u) & 0x9908b0dfu);
    }
    for (; i < VBF_MT_N - 1; i++) {
        y = (key[i] & 0x80000000u) | (key[i + 1] & 0x7fffffffu);
        key[i] = key[i + VBF_MT_M - VBF_MT_N] ^ (y >> 1) ^ (-(y & 1u) & 0x9908b0dfu);
    }
    y = (key[VBF_MT_N - 1] & 0x80000000u) | (key[0] & 0x7fffffffu);
    key[VBF_MT_N - 1] = key[VBF_MT_M - 1] ^ (y >> 1) ^ (-(y & 1u) & 0x9908b0dfu);
    for (i = 0; i < VBF_MT_N; i++) {  /* the tempering, vectorised */
        y = key[i];
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c5680u;
        y ^= (y << 15) & 0xefc60000u;
        out[i] = y ^ (y >> 18);
    }
}

/* tempered[p..624) = key[p..624) tempered: the words left of the last refill */
static inline void vbf_mt19937_temper_rest(const uint32_t *key, int p, uint32_t *tempered)
{
    int i;
    for (i = p; i < VBF_MT_N; i++) {
        uint32_t y = key[i];
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c5680u;
        y ^= (y << 15) & 0xefc60000u;
        tempered[i] = y ^ (y >> 18);
    }
}

/* The integer functions above carry no optimisation attribute, so that they inline into
   callers built with other options; from here on, floating point: bitwise agreement with
   numpy needs its rounding, no contraction of a * b + c into an FMA (numpy's own build
   targets baseline x86-64, so never contracts). */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

/* numpy's double from two words a, b: (a >> 5, b >> 6) as (a 2^26 + b) / 2^53 */
static inline double vbf_mt19937_to_double(uint32_t a, uint32_t b)
{
    return ((double)(a >> 5) * 67108864.0 + (double)(b >> 6)) / 9007199254740992.0;
}

/* out[0..count) = the next count doubles of the state (key, *p; tempered: its words,
   tempered, from *p on), two words each; the pairs within one refill in a tight loop */
static inline void vbf_mt19937_doubles(uint32_t *key, int *p, uint32_t *tempered, double *out,
                                Py_ssize_t count)
{
    Py_ssize_t i = 0, m, q;
    int pp = *p;
    uint32_t a;
    while (i < count) {
        if (pp >= VBF_MT_N - 1) {
            if (pp == VBF_MT_N - 1) {  /* a pair straddling a refill */
                a = tempered[pp];
                vbf_mt19937_refill(key, tempered);
                pp = 1;
                out[i++] = vbf_mt19937_to_double(a, tempered[0]);
                continue;
            }
            vbf_mt19937_refill(key, tempered);
            pp = 0;
        }
        m = (VBF_MT_N - pp) / 2;
        if (m > count - i)
            m = count - i;
        for (q = 0; q < m; q++)
            out[i + q] = vbf_mt19937_to_double(tempered[pp + 2 * q], tempered[pp + 2 * q + 1]);
        i += m;
        pp += (int)(2 * m);
    }
    *p = pp;
}

/* ---- The legacy distributions: RandomState's state (MT19937 and the cached Gaussian) */
typedef struct {
    uint32_t *key;                  /* the 624 words, advanced in place */
    int pos;                        /* the next word's index, 0..624 */
    int has_gauss;                  /* a second polar Gaussian is cached in gauss */
    double gauss;
    uint32_t tempered[VBF_MT_N];    /* key's words tempered, valid from pos on */
} vbf_legacy_state;

static inline void vbf_legacy_open(vbf_legacy_state *s, uint32_t *key, int pos, int has_gauss,
                            double gauss)
{
    s->key = key;
    s->pos = pos;
    s->has_gauss = has_gauss;
    s->gauss = gauss;
    vbf_mt19937_temper_rest(key, pos, s->tempered);
}

static inline uint32_t vbf_legacy_word(vbf_legacy_state *s)
{
    if (s->pos == VBF_MT_N) {
        vbf_mt19937_refill(s->key, s->tempered);
        s->pos = 0;
    }
    return s->tempered[s->pos++];
}

/* uniform in [0, 1): 53 bits from two words, the first word's bits high */
static inline double vbf_legacy_double(vbf_legacy_state *s)
{
    uint32_t a = vbf_legacy_word(s);
    return vbf_mt19937_to_double(a, vbf_legacy_word(s));
}

/* standard normal: the cached value if any, else the polar method's pair (x1, x2 in the
   unit disc, f = sqrt(-2 log r2 / r2)): f x2 returned, f x1 cached */
static inline double vbf_legacy_gauss(vbf_legacy_state *s)
{
    double f, x1, x2, r2;
    if (s->has_gauss) {
        s->has_gauss = 0;
        f = s->gauss;
        s->gauss = 0.0;
        return f;
    }
    do {
        x1 = 2.0 * vbf_legacy_double(s) - 1.0;
        x2 = 2.0 * vbf_legacy_double(s) - 1.0;
        r2 = x1 * x1 + x2 * x2;
    } while (r2 >= 1.0 || r2 == 0.0);
    f = sqrt(-2.0 * log(r2) / r2);
    s->gauss = f * x1;
    s->has_gauss = 1;
    return f * x2;
}

/* standard exponential: -log(1 - U), U in [0, 1) */
static inline double vbf_legacy_exponential(vbf_legacy_state *s)
{
    return -log(1.0 - vbf_legacy_double(s));
}

/* out[0..n) = scale * standard Gamma(shape) draws, numpy's legacy algorithm: shape 1 an
   exponential, shape 0 zero, shape < 1 the rejection from a power / exponential pair,
   shape > 1 Marsaglia-Tsang (d = shape - 1/3, c = 1 / sqrt(9 d); V = (1 + c X)^3 for a
   normal X > -1/c; accepted by the squeeze U < 1 - 0.0331 X^4, else by
   log U < X^2 / 2 + d (1 - V + log V); d V returned). Every comparison and product in
   numpy's order. */
static inline void vbf_legacy_gamma_fill(vbf_legacy_state *s, double shape, double scale,
                                  double *out, Py_ssize_t n)
{
    Py_ssize_t i;
    double U, V, X, Y;
    if (shape == 1.0) {
        for (i = 0; i < n; i++)
            out[i] = scale * vbf_legacy_exponential(s);
    } else if (shape == 0.0) {
        for (i = 0; i < n; i++)
            out[i] = scale * 0.0;
    } else if (shape < 1.0) {
        const double inv_shape = 1. / shape;
        for (i = 0; i < n; i++) {
            for (;;) {
                U = vbf_legacy_double(s);
                V = vbf_legacy_exponential(s);
                if (U <= 1.0 - shape) {
                    X = pow(U, inv_shape);
                    if (X <= V)
                        break;
                } else {
                    Y = -log((1 - U) / shape);
                    X = pow(1.0 - shape + shape * Y, inv_shape);
                    if (X <= V + Y)
                        break;
                }
            }
            out[i] = scale * X;
        }
    } else {
        const double b = shape - 1. / 3.;
        const double c = 1. / sqrt(9 * b);
        for (i = 0; i < n; i++) {
            for (;;) {
                do {
                    X = vbf_legacy_gauss(s);
                    V = 1.0 + c * X;
                } while (V <= 0.0);
                V = V * V * V;
                U = vbf_legacy_double(s);
                if (U < 1.0 - 0.0331 * (X * X) * (X * X))
                    break;
                if (log(U) < 0.5 * X * X + b * (1. - V + log(V)))
                    break;
            }
            out[i] = scale * (b * V);
        }
    }
}

#if defined(__clang__)
#pragma clang fp contract(on)
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

#endif
