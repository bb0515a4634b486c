/* Hot loop of the LDA collapsed Gibbs sweep (src_c/_lda_gibbs.pyx): one (document block, word
   slice) pair of a sub-step, with the full conditional over the K topics computed densely.

   For K of the order of tens, the dense conditional in double vectors beats the SparseLDA
   buckets this replaced: the buckets cost O(#topics of the word) scalar, gathered
   operations per token (40+ for most tokens in the first sweeps from a random start) plus a
   re-sort of the word's list whenever the topic changes, while the dense pass is K/8 vector
   steps with no data-dependent loads and O(1) count updates.

   Compiled three times on x86-64 with GCC or Clang (AVX-512 with intrinsics for the draw,
   AVX2 and the baseline from vector extensions), chosen at run time. None uses FMA and all
   do the same operations in the same order (lane-wise IEEE operations in blocks of eight),
   so the draws are the same on every x86-64 CPU, not only for any thread count. Other
   compilers get a scalar version with the same arithmetic (eight explicit lanes). */
#ifndef VBFAST_LDA_GIBBS_KERNELS_H
#define VBFAST_LDA_GIBBS_KERNELS_H

#include <stdint.h>
#include <string.h>

#include "vbf_dispatch.h"
#include "vbf_rng.h"
#include "vbf_simd_math.h"

/* Tokens ahead of the current one whose topic-word row is prefetched: rows are scattered
   over the V x K table (megabytes), and these misses bound the sweep otherwise. */
#define VBF_ROW_AHEAD 4

VBF_INLINE void vbf_prefetch_row(const int32_t *row, int K) {
    int o;
    for (o = 0; o < K; o += 16) vbf_prefetch_w(row + o);
    vbf_prefetch_w(row + K - 1);
}

/* document d's next run: its first words and topics, and its n_dk row */
VBF_INLINE void vbf_prefetch_doc(int64_t d, const int64_t *cursor, const int32_t *words,
                                   const int32_t *z, const int32_t *ndk, int K) {
    int64_t i = cursor[d];
    /* a run is N_d / B tokens on average (~12 on the benchmark corpus): two lines each */
    vbf_prefetch_w(words + i);
    vbf_prefetch_w(words + i + 15);
    vbf_prefetch_w(z + i);
    vbf_prefetch_w(z + i + 15);
    vbf_prefetch_row(ndk + d * (int64_t)K, K);
}

/* the n_kw rows of the first tokens of document d's run in slice ``slice`` */
VBF_INLINE void vbf_prefetch_run(int64_t d, const int64_t *cursor, const int64_t *doc_ptr,
                                   const int32_t *words, const int32_t *slice_of,
                                   int32_t slice, const int32_t *nwk, int K) {
    int64_t i = cursor[d], e = doc_ptr[d + 1];
    if (e > i + VBF_ROW_AHEAD) e = i + VBF_ROW_AHEAD;
    for (; i < e; i++) {
        int32_t w = words[i];
        if (slice_of[w] != slice) break;
        vbf_prefetch_row(nwk + (int64_t)w * K, K);
    }
}

/* The K unnormalised probabilities p_k = A_k (n_kw + eta) of token i, with
   A_k = (n_dk + alpha) / (n_k + V eta) kept per document (it changes only at the topics a
   token leaves and joins), and the draw.

   The pass reads the counts with token i still in them (topic t): writing the decremented
   counts first would make the vector loads of t's block wait for those scalar stores (a
   store cannot be forwarded to a wider load), on the pass's critical path. Instead lane t's
   term is replaced by pt (token i removed, computed by the caller) before the sums.

   The topics go in blocks of eight lanes (nb8 = ceil(K / 8) blocks); lanes past K are zero
   (A_k = 0 there, set by the caller, and n read as 0). Each block's inclusive running sums
   are formed in three shift-and-add steps (lane l: s1_l = p_l + p_{l-1}, s2_l = s1_l +
   s1_{l-2}, s3_l = s2_l + s2_{l-4}, a missing lane adding +0.0) plus the total of the blocks
   before (cum_k: the running sum to topic k, in this fixed order). u = U (total) then picks
   the topic as the number of k with cum_k <= u, counted with vector compares: no scan, no
   data-dependent branch, and no search inside a block. With exact sums the count is the
   first topic whose running sum passes u (every p_k > 0: alpha, eta > 0); the tree's
   rounded sums could fail to increase where a term is below their rounding, moving the
   draw by one topic there (an effect of the order of the rounding, as in any floating-point
   draw); a count past K - 1 (u at the very end, rounding) is clamped. The same operations
   in the same order in the AVX-512 version (intrinsics, masked loads of the last block),
   the AVX2 one (intrinsics, two halves a block) and this one (vector extensions: the
   baseline), so the draws are the same on every x86-64 CPU (tested). */
VBF_INLINE int32_t vbf_draw_dense(int K, int nb8, const double *A, const int32_t *row,
                                    double eta, int32_t t, double pt, double *cum, double U)
{
    int k, j, cnt = 0;
    double total, u;
#if defined(__GNUC__)
    typedef int32_t v8i32 __attribute__((vector_size(32)));
    const vbf_v8 ve = {eta, eta, eta, eta, eta, eta, eta, eta}, zero = {0.0};
    const vbf_v8 ptv = {pt, pt, pt, pt, pt, pt, pt, pt};
    const vbf_i8 sh1 = {8, 0, 1, 2, 3, 4, 5, 6}, sh2 = {8, 8, 0, 1, 2, 3, 4, 5},
                 sh4 = {8, 8, 8, 8, 0, 1, 2, 3}, last = {7, 7, 7, 7, 7, 7, 7, 7};
    const vbf_i8 tv = {t, t, t, t, t, t, t, t};
    vbf_i8 idx = {0, 1, 2, 3, 4, 5, 6, 7}, sel;
    vbf_v8 carry = zero, a, p, n, uv;
    for (j = 0, k = 0; j < nb8; j++, k += 8) {
        v8i32 r;
        if (k + 8 <= K) {
            memcpy(&r, row + k, sizeof r);
        } else {  /* the last block, K not a multiple of 8: lanes past K read as 0 */
            int l;
            for (l = 0; l < 8; l++) r[l] = k + l < K ? row[k + l] : 0;
        }
        n = __builtin_convertvector(r, vbf_v8);
        memcpy(&a, A + k, sizeof a);
        p = a * (n + ve);
        sel = idx == tv;  /* lane t: the term with token i removed */
        p = vbf_from_bits8((vbf_bits8(p) & ~sel) | (vbf_bits8(ptv) & sel));
        p += __builtin_shuffle(p, zero, sh1);
        p += __builtin_shuffle(p, zero, sh2);
        p += __builtin_shuffle(p, zero, sh4);
        n = p + carry;  /* as in vbf_draw_dense512 */
        carry += __builtin_shuffle(p, last);
        memcpy(cum + k, &n, sizeof n);
        idx += 8;
    }
    total = carry[0];
    u = U * total;
    uv = (vbf_v8){u, u, u, u, u, u, u, u};
    {
        vbf_i8 c = {0};
        for (k = 0; k < 8 * nb8; k += 8) {
            vbf_v8 x;
            memcpy(&x, cum + k, sizeof x);
            c += (x <= uv);  /* -1 where true */
        }
        cnt = (int)-(((c[0] + c[1]) + (c[2] + c[3])) + ((c[4] + c[5]) + (c[6] + c[7])));
    }
#else
    double carry = 0.0, p[8], s[8];
    int l;
    for (j = 0, k = 0; j < nb8; j++, k += 8) {
        for (l = 0; l < 8; l++)
            p[l] = k + l == t ? pt : A[k + l] * ((k + l < K ? (double)row[k + l] : 0.0) + eta);
        for (l = 0; l < 8; l++) s[l] = p[l] + (l >= 1 ? p[l - 1] : 0.0);
        for (l = 0; l < 8; l++) p[l] = s[l] + (l >= 2 ? s[l - 2] : 0.0);
        for (l = 0; l < 8; l++) s[l] = p[l] + (l >= 4 ? p[l - 4] : 0.0);
        for (l = 0; l < 8; l++) cum[k + l] = s[l] + carry;
        carry = cum[k + 7];
    }
    total = carry;
    u = U * total;
    for (k = 0; k < 8 * nb8; k++) cnt += cum[k] <= u;
#endif
    return cnt < K ? cnt : K - 1;
}

#if defined(VBF_HAVE_DISPATCH)
#include <immintrin.h>
#define VBF_GIBBS_AVX512 "avx512f,avx512vl,avx512dq,avx2,popcnt"
/* vbf_draw_dense in AVX-512 intrinsics: the same operations in the same order (see above),
   but with token i already removed from A and row (by the caller, with block-wide stores
   that the pass's loads can be forwarded from: see vbf_remove512), so no lane to replace */
static inline __attribute__((target(VBF_GIBBS_AVX512))) int32_t
vbf_draw_dense512(int K, int nb8, const double *A, const int32_t *row, double eta,
                  double *cum, double U)
{
    int k, j, cnt = 0;
    const __m512d ve = _mm512_set1_pd(eta);
    const __m512i zero = _mm512_setzero_si512(), last = _mm512_set1_epi64(7);
    __m512d carry = _mm512_setzero_pd(), p, uv;
    __m256i r;
    for (j = 0, k = 0; j < nb8; j++, k += 8) {
        if (k + 8 <= K)
            r = _mm256_loadu_si256((const __m256i *)(row + k));
        else  /* lanes past K read as 0 (a masked load: nothing past the row is touched) */
            r = _mm256_maskz_loadu_epi32((__mmask8)((1u << (K - k)) - 1u), row + k);
        p = _mm512_mul_pd(_mm512_loadu_pd(A + k), _mm512_add_pd(_mm512_cvtepi32_pd(r), ve));
        p = _mm512_add_pd(p, _mm512_castsi512_pd(
                _mm512_alignr_epi64(_mm512_castpd_si512(p), zero, 7)));
        p = _mm512_add_pd(p, _mm512_castsi512_pd(
                _mm512_alignr_epi64(_mm512_castpd_si512(p), zero, 6)));
        p = _mm512_add_pd(p, _mm512_castsi512_pd(
                _mm512_alignr_epi64(_mm512_castpd_si512(p), zero, 4)));
        /* cum = local sums + carry, carry += the block's total (= cum's lane 7, the same
           sum): the chain from block to block is one add, the permute is off it */
        _mm512_storeu_pd(cum + k, _mm512_add_pd(p, carry));
        carry = _mm512_add_pd(carry, _mm512_permutexvar_pd(last, p));
    }
    uv = _mm512_mul_pd(_mm512_set1_pd(U), carry);
    for (k = 0; k < 8 * nb8; k += 8)
        cnt += __builtin_popcount(_mm512_cmp_pd_mask(_mm512_loadu_pd(cum + k), uv, _CMP_LE_OQ));
    return cnt < K ? cnt : K - 1;
}

/* vbf_draw_dense in AVX2 intrinsics (the vector extensions' eight lanes compiled for AVX2
   were 3.5 times slower): each block as two halves lo (lanes 0-3), hi (4-7), the same
   operations in the same order; a shifted-in lane adds +0.0, which leaves the sum as it is
   (every term is >= +0), so the fourth step is hi + lo alone. */
static inline __attribute__((target("avx2,popcnt"))) int32_t
vbf_draw_dense256(int K, int nb8, const double *A, const int32_t *row, double eta,
                  int32_t t, double pt, double *cum, double U)
{
    int k, j, cnt = 0;
    const __m256d ve = _mm256_set1_pd(eta), ptv = _mm256_set1_pd(pt), zero = _mm256_setzero_pd();
    const __m256i tv = _mm256_set1_epi64x(t), eight = _mm256_set1_epi64x(8);
    __m256i ilo = _mm256_set_epi64x(3, 2, 1, 0), ihi = _mm256_set_epi64x(7, 6, 5, 4), r;
    __m256d carry = zero, lo, hi, a, b, uv;
    for (j = 0, k = 0; j < nb8; j++, k += 8) {
        if (k + 8 <= K)
            r = _mm256_loadu_si256((const __m256i *)(row + k));
        else  /* lanes past K read as 0 (a masked load) */
            r = _mm256_maskload_epi32(row + k, _mm256_cmpgt_epi32(
                    _mm256_set1_epi32(K - k), _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0)));
        lo = _mm256_mul_pd(_mm256_loadu_pd(A + k),
                           _mm256_add_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(r)), ve));
        hi = _mm256_mul_pd(_mm256_loadu_pd(A + k + 4),
                           _mm256_add_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(r, 1)),
                                         ve));
        lo = _mm256_blendv_pd(lo, ptv, _mm256_castsi256_pd(_mm256_cmpeq_epi64(ilo, tv)));
        hi = _mm256_blendv_pd(hi, ptv, _mm256_castsi256_pd(_mm256_cmpeq_epi64(ihi, tv)));
        /* shifted by one lane: lo (0, l0, l1, l2), hi (l3, h0, h1, h2) */
        a = _mm256_blend_pd(_mm256_permute4x64_pd(lo, 0x90), zero, 1);
        b = _mm256_blend_pd(_mm256_permute4x64_pd(hi, 0x90), _mm256_permute4x64_pd(lo, 0xFF), 1);
        lo = _mm256_add_pd(lo, a);
        hi = _mm256_add_pd(hi, b);
        /* by two: lo (0, 0, l0, l1), hi (l2, l3, h0, h1) */
        a = _mm256_permute2f128_pd(lo, lo, 0x08);
        b = _mm256_permute2f128_pd(lo, hi, 0x21);
        lo = _mm256_add_pd(lo, a);
        hi = _mm256_add_pd(hi, b);
        /* by four: lo + 0.0 (the same), hi + lo */
        hi = _mm256_add_pd(hi, lo);
        _mm256_storeu_pd(cum + k, _mm256_add_pd(lo, carry));
        _mm256_storeu_pd(cum + k + 4, _mm256_add_pd(hi, carry));
        carry = _mm256_add_pd(carry, _mm256_permute4x64_pd(hi, 0xFF));
        ilo = _mm256_add_epi64(ilo, eight);
        ihi = _mm256_add_epi64(ihi, eight);
    }
    uv = _mm256_mul_pd(_mm256_set1_pd(U), carry);
    for (k = 0; k < 8 * nb8; k += 4)
        cnt += __builtin_popcount((unsigned)_mm256_movemask_pd(
            _mm256_cmp_pd(_mm256_loadu_pd(cum + k), uv, _CMP_LE_OQ)));
    return cnt < K ? cnt : K - 1;
}

/* A[k] = v as a load, blend and store of k's whole block of eight: the next token's pass
   loads the block as one vector, and a scalar store cannot be forwarded to a wider load
   (the load would wait for the store to reach the cache) */
static inline __attribute__((target(VBF_GIBBS_AVX512))) void
vbf_set_lane512(double *A, int32_t k, double v)
{
    double *b = A + (k & ~7);
    _mm512_storeu_pd(b, _mm512_mask_mov_pd(_mm512_loadu_pd(b), (__mmask8)(1u << (k & 7)),
                                           _mm512_set1_pd(v)));
}

/* row[t] - 1 as a load, subtract and store of t's block of eight counts when the block is
   inside the row (the pass loads it as one vector), else (the last, partial block: a store
   of eight would write past the row, another pair's) a scalar store */
static inline __attribute__((target(VBF_GIBBS_AVX512))) void
vbf_row_dec512(int32_t *row, int32_t t, int K)
{
    int32_t *b = row + (t & ~7);
    if ((t & ~7) + 8 <= K) {
        __m256i v = _mm256_loadu_si256((const __m256i *)b);
        v = _mm256_mask_sub_epi32(v, (__mmask8)(1u << (t & 7)), v, _mm256_set1_epi32(1));
        _mm256_storeu_si256((__m256i *)b, v);
    } else {
        row[t]--;
    }
}
#endif

/* A_k = (n_dk + alpha) inv_k for all k (at the start of a document's run) */
VBF_INLINE void vbf_doc_coef(int K, const int32_t *nd, const double *inv, double alpha,
                               double *A)
{
    int k;
    for (k = 0; k < K; k++) A[k] = ((double)nd[k] + alpha) * inv[k];
}

/* One (document block, word slice) pair: for every document d in [d0, d1), the tokens from
   cursor[d] on whose word is in slice ``slice`` (the document's tokens are ordered so that
   this sub-step's are the next run), each resampled in turn from its full conditional with
   the exact n_dk (row d of ndk) and n_kw (row w of nwk) and the pair's own n_k: the n_k of
   the start of the sub-step plus the pair's changes (nkl, in: a copy of the sub-step's n_k;
   out: with the pair's changes). z, ndk and nwk are updated in place: in a sub-step no two
   pairs share a document or a word. Workspace: inv, A, cum: VBF_DENSE_STRIDE(K) doubles
   each, 64-byte aligned. ``wide``: a constant, 2 for the AVX-512 draw, 1 for AVX2, 0 the
   vector extensions. */
VBF_INLINE void vbf_gibbs_pair_body(
    int64_t d0, int64_t d1, const int64_t *doc_ptr, int64_t *cursor, const int32_t *words,
    const int32_t *slice_of, int32_t slice, int32_t *z, int32_t *ndk, int32_t *nwk, int K,
    int32_t *nkl, double *inv, double *A, double *cum, double alpha, double eta, double veta,
    uint64_t rng, int wide)
{
    int64_t d, i, i_end;
    int32_t w, t, tn, k, nkt, nb8 = (K + 7) >> 3;
    int32_t *nd, *row;
    double inv_t, a_t, pt;
    for (k = 0; k < K; k++) inv[k] = 1.0 / ((double)nkl[k] + veta);
    for (k = K; k < 8 * nb8; k++) A[k] = 0.0;  /* the last block's lanes past K: p = 0 */
    for (d = d0; d < d0 + 2 && d < d1; d++) vbf_prefetch_doc(d, cursor, words, z, ndk, K);
    if (d0 < d1) vbf_prefetch_run(d0, cursor, doc_ptr, words, slice_of, slice, nwk, K);
    for (d = d0; d < d1; d++) {
        /* a document's run is a few tokens (N_d / B), so the misses at its start (its words,
           topics and n_dk row; the n_kw rows of its first tokens) are hidden by fetching
           them one and two documents ahead */
        if (d + 2 < d1) vbf_prefetch_doc(d + 2, cursor, words, z, ndk, K);
        if (d + 1 < d1) vbf_prefetch_run(d + 1, cursor, doc_ptr, words, slice_of, slice, nwk, K);
        i = cursor[d];
        i_end = doc_ptr[d + 1];
        if (i >= i_end || slice_of[words[i]] != slice) continue;
        nd = ndk + d * (int64_t)K;
        vbf_doc_coef(K, nd, inv, alpha, A);
        for (; i < i_end; i++) {
            w = words[i];
            if (slice_of[w] != slice) break;
            if (i + VBF_ROW_AHEAD < i_end)
                vbf_prefetch_row(nwk + (int64_t)words[i + VBF_ROW_AHEAD] * K, K);
            row = nwk + (int64_t)w * K;
            t = z[i];
            /* token i removed: n_k, A_t and p_t of topic t one count lower (not written yet) */
            nkt = nkl[t] - 1;
            inv_t = 1.0 / ((double)nkt + veta);
            a_t = ((double)(nd[t] - 1) + alpha) * inv_t;
#if defined(VBF_HAVE_DISPATCH)
            if (wide == 2) {
                /* token i removed first, A_t and n_tw by block-wide stores: the pass then
                   has the same terms as vbf_draw_dense's with lane t replaced */
                vbf_set_lane512(A, t, a_t);
                vbf_row_dec512(row, t, K);
                tn = vbf_draw_dense512(K, nb8, A, row, eta, cum, vbf_uniform(&rng));
            } else if (wide == 1) {
                pt = a_t * ((double)(row[t] - 1) + eta);
                tn = vbf_draw_dense256(K, nb8, A, row, eta, t, pt, cum, vbf_uniform(&rng));
                row[t]--;
                A[t] = a_t;
            } else
#endif
            {
                pt = a_t * ((double)(row[t] - 1) + eta);
                tn = vbf_draw_dense(K, nb8, A, row, eta, t, pt, cum, vbf_uniform(&rng));
                row[t]--;
                A[t] = a_t;
            }
            /* no branch on tn != t (true at random, so often mispredicted, and a
               misprediction also throws away the next token's work under way): if the topic
               stays, the second half restores the counts, inv_t and A_t exactly (each is the
               same formula of the same counts), so the draws are those of the branchy form */
            nd[t]--;
            nkl[t] = nkt;
            inv[t] = inv_t;
            nd[tn]++;
            row[tn]++;
            nkl[tn]++;
            inv[tn] = 1.0 / ((double)nkl[tn] + veta);
#if defined(VBF_HAVE_DISPATCH)
            if (wide == 2)
                vbf_set_lane512(A, tn, ((double)nd[tn] + alpha) * inv[tn]);
            else
#endif
                A[tn] = ((double)nd[tn] + alpha) * inv[tn];
            z[i] = tn;
        }
        cursor[d] = i;
    }
}

/* vbf_gibbs_pair: the body for AVX-512, AVX2 or the baseline, chosen at run time; no FMA,
   so all give the same draws (see vbf_draw_dense). */
#define VBF_GIBBS_PAIR_PARAMS                                                              \
    (int64_t d0, int64_t d1, const int64_t *doc_ptr, int64_t *cursor, const int32_t *words, \
     const int32_t *slice_of, int32_t slice, int32_t *z, int32_t *ndk, int32_t *nwk, int K, \
     int32_t *nkl, double *inv, double *A, double *cum, double alpha, double eta,           \
     double veta, uint64_t rng)
#define VBF_GIBBS_PAIR_CALL                                                                \
    (d0, d1, doc_ptr, cursor, words, slice_of, slice, z, ndk, nwk, K, nkl, inv, A, cum,    \
     alpha, eta, veta, rng)
#define VBF_GIBBS_PAIR_ARGS(wide)                                                          \
    (d0, d1, doc_ptr, cursor, words, slice_of, slice, z, ndk, nwk, K, nkl, inv, A, cum,    \
     alpha, eta, veta, rng, wide)
/* the widest build the sweep may use (tests): 0 the best the CPU has, 2 at most AVX2,
   1 the baseline */
static int vbf_gibbs_isa = 0;
#ifdef VBF_HAVE_DISPATCH
__attribute__((target(VBF_GIBBS_AVX512))) static void vbf_gibbs_pair_avx512
    VBF_GIBBS_PAIR_PARAMS { vbf_gibbs_pair_body VBF_GIBBS_PAIR_ARGS(2); }
__attribute__((target("avx2,popcnt"))) static void vbf_gibbs_pair_avx2
    VBF_GIBBS_PAIR_PARAMS { vbf_gibbs_pair_body VBF_GIBBS_PAIR_ARGS(1); }
static int vbf_cpu_gibbs512(void) {
    return VBF_CPU_HAS("avx512f") && VBF_CPU_HAS("avx512vl") && VBF_CPU_HAS("avx512dq");
}
#endif
static void vbf_gibbs_pair VBF_GIBBS_PAIR_PARAMS {
#ifdef VBF_HAVE_DISPATCH
    if (vbf_gibbs_isa == 0 && vbf_cpu_gibbs512()) {
        vbf_gibbs_pair_avx512 VBF_GIBBS_PAIR_CALL;
        return;
    }
    if (vbf_gibbs_isa != 1 && vbf_cpu_avx2() && VBF_CPU_HAS("popcnt")) {
        vbf_gibbs_pair_avx2 VBF_GIBBS_PAIR_CALL;
        return;
    }
#endif
    vbf_gibbs_pair_body VBF_GIBBS_PAIR_ARGS(0);
}

/* ---- the sparse conditional, for K in the hundreds (see _lda_gibbs.pyx for the rule).

   The conditional splits as

       (n_dk + alpha) (n_kw + eta) / (n_k + V eta)
           = A_k n_kw           [r: only the word's topics, n_kw > 0]
           + eta A_k            [q: every topic, but one document's]

   with A_k = (n_dk + alpha) / (n_k + V eta), the split of F+LDA (Yu, Hsieh, Yun,
   Vishwanathan & Dhillon 2015) taken the other way round: the pairs still take their tokens
   document by document (a run of a few tokens of one document), so q is one table for the
   whole run, built once a run in O(K) and changed at the two topics a token leaves and joins
   (A_t and A_tn are all that change); r costs O(K_w), the word's topics, kept in a per-word
   list of (topic, count) (rebuilt from n_kw at the start of each sweep, the dense n_kw
   written back from the lists at its end; a topic leaves a list when its count drops to
   zero, swapped with the last, and joins it at the end). Measured on the benchmark corpus at
   K = 500 (alpha = 0.1, so K alpha = 50 pseudo-counts against ~150 tokens a document): a
   token's word has ~75 topics after the first sweep and ~23 after 15, its document ~70
   throughout, so the word's side is the sparse one (the document-sparse split, tried first,
   was only 5 % faster than the dense pass). A token costs O(K_w) plus O(1) table updates
   plus its share of the run's O(K) table, against O(K) for the dense pass; the draw is from
   the same conditional, every term computed from the exact counts. */

/* entry m of a word's list: blocks of 16 topics then their 16 counts (counts at +16), so
   that an entry's topic and count share a cache line */
#define VBF_DL_AT(m) ((((m) >> 4) << 5) | ((m) & 15))

/* The document's table q in two levels: leaves q[0..Kp) (Kp = K rounded up to 16, zero
   padded), the sum of each block of 16 leaves bs[j], and the total. A change of one leaf
   recomputes its block's sum and the total from the block sums, each in a fixed order
   (four lanes, then (l0 + l1) + (l2 + l3)): no drift, and a few independent adds rather
   than a chain of dependent ones. */
VBF_INLINE double vbf_sum16(const double *x) {
    double l0 = (x[0] + x[4]) + (x[8] + x[12]), l1 = (x[1] + x[5]) + (x[9] + x[13]);
    double l2 = (x[2] + x[6]) + (x[10] + x[14]), l3 = (x[3] + x[7]) + (x[11] + x[15]);
    return (l0 + l1) + (l2 + l3);
}

VBF_INLINE double vbf_sum_lanes(const double *x, int n) {  /* n a multiple of 4 */
    double l0 = 0.0, l1 = 0.0, l2 = 0.0, l3 = 0.0;
    int j;
    for (j = 0; j < n; j += 4) {
        l0 += x[j];
        l1 += x[j + 1];
        l2 += x[j + 2];
        l3 += x[j + 3];
    }
    return (l0 + l1) + (l2 + l3);
}

/* nb = Kp / 16 block sums, padded with zeros to a multiple of 4 (room: Kp / 16 + 4) */
VBF_INLINE double vbf_q_set(double *q, double *bs, int nb, int k, double v) {
    q[k] = v;
    bs[k >> 4] = vbf_sum16(q + (k & ~15));
    return vbf_sum_lanes(bs, (nb + 3) & ~3);
}

/* the leaf where the running sum passes u (0 <= u < Q up to rounding) */
VBF_INLINE int vbf_q_find(const double *q, const double *bs, int nb, int K, double u) {
    int j = 0, k;
    while (j < nb - 1 && u >= bs[j]) u -= bs[j++];
    for (k = 16 * j; k < 16 * j + 15 && u >= q[k]; k++) u -= q[k];
    /* past the last topic (a zero padding leaf) only through rounding */
    return k < K ? k : K - 1;
}

/* A_k = (n_dk + alpha) inv_k and the leaves eta A_k, padding zero, and the sums */
VBF_INLINE double vbf_q_build(double *q, double *bs, int Kp, int K, const int32_t *nd,
                                const double *inv, double *A, double alpha, double eta) {
    int k, j, nb = Kp >> 4, nb4 = (nb + 3) & ~3;
    for (k = 0; k < K; k++) {
        A[k] = ((double)nd[k] + alpha) * inv[k];
        q[k] = eta * A[k];
    }
    for (k = K; k < Kp; k++) q[k] = 0.0;
    for (j = 0; j < nb; j++) bs[j] = vbf_sum16(q + 16 * j);
    for (j = nb; j < nb4; j++) bs[j] = 0.0;
    return vbf_sum_lanes(bs, nb4);
}

/* The draw from running sums of p[0..n) (padded with zeros to n4 = n rounded up to 4), in
   four lanes: cum block j lane l = sum_{m <= j} p[4m + l]; the block
   totals (l0 + l1) + (l2 + l3) only increase; returns the total in *total. */
VBF_INLINE void vbf_lane_cumsum(const double *p, int n4, double *cum, double *total) {
    double c0 = 0.0, c1 = 0.0, c2 = 0.0, c3 = 0.0;
    int j;
    for (j = 0; j < n4; j += 4) {
        c0 += p[j];
        c1 += p[j + 1];
        c2 += p[j + 2];
        c3 += p[j + 3];
        cum[j] = c0;
        cum[j + 1] = c1;
        cum[j + 2] = c2;
        cum[j + 3] = c3;
    }
    *total = (c0 + c1) + (c2 + c3);
}

/* the entry (< n) where the running sums pass u (u < the total) */
VBF_INLINE int vbf_lane_find(const double *p, const double *cum, int n, int n4, double u) {
    int j, m;
    double base = 0.0, hs, u1, u2, u3;
    for (j = 0; j < n4; j += 4) {
        hs = (cum[j] + cum[j + 1]) + (cum[j + 2] + cum[j + 3]);
        if (u < hs) break;
        base = hs;
    }
    if (j >= n4) return n - 1;  /* rounding at the very end */
    u -= base;
    u1 = u - p[j];
    u2 = u1 - p[j + 1];
    u3 = u2 - p[j + 2];
    m = j + (u1 >= 0.0) + (u2 >= 0.0) + (u3 >= 0.0);
    return m < n ? m : n - 1;
}

/* pbuf[m] = count_m A[topic_m] for the n entries of a list, block by block (16 topics,
   then their counts): loops simple enough for the compiler to vectorise (gathers on AVX2) */
VBF_INLINE void vbf_list_terms(const int32_t *L, int n, const double *A, double *pbuf) {
    int m0, l, e;
    for (m0 = 0; m0 < n; m0 += 16, L += 32, pbuf += 16) {
        e = n - m0 < 16 ? n - m0 : 16;
        for (l = 0; l < e; l++) pbuf[l] = (double)L[16 + l] * A[L[l]];
    }
}

/* the position of topic t in a list of n entries, or n if it is not there: a block's 16
   topics compared at once (a mask; stale entries past n are never returned, and t's own
   place comes first) */
VBF_INLINE int vbf_list_find(const int32_t *L, int n, int32_t t) {
    int m0, l;
    for (m0 = 0; m0 < n; m0 += 16, L += 32) {
#if defined(__GNUC__)
        unsigned mask = 0;
        for (l = 0; l < 16; l++) mask |= (unsigned)(L[l] == t) << l;
        if (mask) {
            l = __builtin_ctz(mask);
            return m0 + l < n ? m0 + l : n;
        }
#else
        for (l = 0; l < 16 && m0 + l < n; l++)
            if (L[l] == t) return m0 + l;
#endif
    }
    return n;
}

/* the list lines of the words of document d's next tokens (in slice ``slice``) */
VBF_INLINE void vbf_prefetch_lists(int64_t i, int64_t e, const int32_t *words,
                                     const int32_t *slice_of, int32_t slice,
                                     const int64_t *wl_ptr, const int32_t *wlist,
                                     const int32_t *wlen) {
    for (; i < e; i++) {
        int32_t w = words[i], n = wlen[w], l;
        const int32_t *L = wlist + 2 * wl_ptr[w];
        if (slice_of[w] != slice) break;
        for (l = 0; l < n && l < 64; l += 16) {
            vbf_prefetch_w(L + 2 * l);
            vbf_prefetch_w(L + 2 * l + 16);
        }
    }
}

/* One (document block, word slice) pair with the sparse conditional: the tokens and their
   order as for vbf_gibbs_pair_body, nkl the same. n_kw lives in the words' lists during the
   sweep: word w's topics and counts at wlist[2 wl_ptr[w] ..], wlen[w] of them (any order).
   Workspace: inv, A (K doubles each), cum, pbuf (K + 4 each), q (Kp = K rounded up to 16)
   and its block sums (Kp / 16 + 4). */
VBF_INLINE void vbf_sparse_pair_body(
    int64_t d0, int64_t d1, const int64_t *doc_ptr, int64_t *cursor, const int32_t *words,
    const int32_t *slice_of, int32_t slice, int32_t *z, int32_t *ndk, int K, int Kp,
    int32_t *nkl, const int64_t *wl_ptr, int32_t *wlist, int32_t *wlen, double *inv,
    double *A, double *cum, double *q, double alpha, double eta, double veta, uint64_t rng)
{
    int64_t d, i, i_end;
    int32_t w, t, tn, k, m, n, n4, nb = Kp >> 4;
    int32_t *nd, *L, *C;
    double *pbuf = cum + K + 4, *bs = q + Kp;
    double r, u, Q;
    for (k = 0; k < K; k++) inv[k] = 1.0 / ((double)nkl[k] + veta);
    for (d = d0; d < d0 + 2 && d < d1; d++) vbf_prefetch_doc(d, cursor, words, z, ndk, K);
    if (d0 < d1)
        vbf_prefetch_lists(cursor[d0], cursor[d0] + VBF_ROW_AHEAD < doc_ptr[d0 + 1] ?
                           cursor[d0] + VBF_ROW_AHEAD : doc_ptr[d0 + 1], words, slice_of,
                           slice, wl_ptr, wlist, wlen);
    for (d = d0; d < d1; d++) {
        if (d + 2 < d1) vbf_prefetch_doc(d + 2, cursor, words, z, ndk, K);
        if (d + 1 < d1)
            vbf_prefetch_lists(cursor[d + 1],
                               cursor[d + 1] + VBF_ROW_AHEAD < doc_ptr[d + 2] ?
                               cursor[d + 1] + VBF_ROW_AHEAD : doc_ptr[d + 2], words,
                               slice_of, slice, wl_ptr, wlist, wlen);
        i = cursor[d];
        i_end = doc_ptr[d + 1];
        if (i >= i_end || slice_of[words[i]] != slice) continue;
        nd = ndk + d * (int64_t)K;
        Q = vbf_q_build(q, bs, Kp, K, nd, inv, A, alpha, eta);
        for (; i < i_end; i++) {
            w = words[i];
            if (slice_of[w] != slice) break;
            if (i + VBF_ROW_AHEAD < i_end)
                vbf_prefetch_lists(i + VBF_ROW_AHEAD, i + VBF_ROW_AHEAD + 1, words, slice_of,
                                   slice, wl_ptr, wlist, wlen);
            L = wlist + 2 * wl_ptr[w];
            C = L + 16;
            n = wlen[w];
            t = z[i];
            /* token i removed */
            nd[t]--;
            nkl[t]--;
            inv[t] = 1.0 / ((double)nkl[t] + veta);
            A[t] = ((double)nd[t] + alpha) * inv[t];
            Q = vbf_q_set(q, bs, nb, t, eta * A[t]);
            m = vbf_list_find(L, n, t);  /* there: t's count is at least one */
            if (--C[VBF_DL_AT(m)] == 0) {
                n = --wlen[w];
                L[VBF_DL_AT(m)] = L[VBF_DL_AT(n)];
                C[VBF_DL_AT(m)] = C[VBF_DL_AT(n)];
            }
            /* r: the word's topics */
            n4 = (n + 3) & ~3;
            vbf_list_terms(L, n, A, pbuf);
            for (m = n; m < n4; m++) pbuf[m] = 0.0;
            vbf_lane_cumsum(pbuf, n4, cum, &r);
            u = vbf_uniform(&rng) * (r + Q);
            if (u < r) {
                m = vbf_lane_find(pbuf, cum, n, n4, u);
                tn = L[VBF_DL_AT(m)];
                C[VBF_DL_AT(m)]++;
            } else {
                tn = vbf_q_find(q, bs, nb, K, u - r);
                m = vbf_list_find(L, n, tn);
                if (m == n) {
                    L[VBF_DL_AT(n)] = tn;
                    C[VBF_DL_AT(n)] = 1;
                    wlen[w] = n + 1;
                } else {
                    C[VBF_DL_AT(m)]++;
                }
            }
            /* token i added at tn */
            nd[tn]++;
            nkl[tn]++;
            inv[tn] = 1.0 / ((double)nkl[tn] + veta);
            A[tn] = ((double)nd[tn] + alpha) * inv[tn];
            Q = vbf_q_set(q, bs, nb, tn, eta * A[tn]);
            z[i] = tn;
        }
        cursor[d] = i;
    }
}

VBF_DISPATCH(vbf_sparse_pair, "avx2", vbf_cpu_avx2(),
             (int64_t d0, int64_t d1, const int64_t *doc_ptr, int64_t *cursor,
              const int32_t *words, const int32_t *slice_of, int32_t slice, int32_t *z,
              int32_t *ndk, int K, int Kp, int32_t *nkl, const int64_t *wl_ptr,
              int32_t *wlist, int32_t *wlen, double *inv, double *A, double *cum, double *q,
              double alpha, double eta, double veta, uint64_t rng),
             (d0, d1, doc_ptr, cursor, words, slice_of, slice, z, ndk, K, Kp, nkl, wl_ptr,
              wlist, wlen, inv, A, cum, q, alpha, eta, veta, rng))

/* The dense pair's workspace (inv, A, cum) at this stride in doubles, K rounded up to
   8: with the row 64-byte aligned, each array starts a cache line, and each block of eight
   lanes of the draw is one whole line (K = 50 as arrays of 50 would split blocks across
   lines); A and cum also hold the last, partial block whole. */
#define VBF_DENSE_STRIDE(K) (((int64_t)(K) + 7) & ~(int64_t)7)

/* The state of one sweep, shared by its threads and by both ways of running its sub-steps
   (vbf_sweep_worker below, or an OpenMP loop in _lda_gibbs.pyx). */
typedef struct {
    int64_t B;
    const int64_t *block_ptr, *doc_ptr;
    int64_t *cursor;
    const int32_t *words, *slice_of;
    int32_t *z, *ndk, *nwk, *nk;
    int K;
    int32_t *nkl;        /* (B, ldi): each pair's n_k */
    int64_t ldi;
    double *scratch;     /* (B, ldd): each pair's workspace (dense: inv, A, cum) */
    int64_t ldd;
    int64_t *dl;         /* (K,) */
    int *claim;          /* (B, B): pair b of sub-step s claimed, zero at the start */
    int *arrived;        /* (B,): threads done with sub-step s, zero at the start */
    int phase;           /* sub-steps finished */
    double alpha, eta, veta;
    uint64_t seed, chain, sweep;
    /* the sparse sampler (sparse != 0): the words' lists (see vbf_sparse_pair_body) */
    int sparse, Kp;
    const int64_t *wl_ptr;
    int32_t *wlist, *wlen;
} vbf_sweep_ctx;

/* Pair b of sub-step s: its n_k starts as the sub-step's, and it draws from its own stream,
   keyed by (seed, chain, sweep, s B + b). */
static inline void vbf_sweep_pair(const vbf_sweep_ctx *c, int64_t s, int64_t b) {
    int64_t B = c->B, kd = VBF_DENSE_STRIDE(c->K);
    double *scratch = c->scratch + b * c->ldd;
    memcpy(c->nkl + b * c->ldi, c->nk, (size_t)c->K * sizeof(int32_t));
    if (c->sparse) {
        vbf_sparse_pair(c->block_ptr[b], c->block_ptr[b + 1], c->doc_ptr, c->cursor, c->words,
                        c->slice_of, (int32_t)((b + s) % B), c->z, c->ndk, c->K, c->Kp,
                        c->nkl + b * c->ldi, c->wl_ptr, c->wlist, c->wlen, scratch,
                        scratch + c->K, scratch + 2 * c->K, scratch + 4 * c->K + 8, c->alpha,
                        c->eta, c->veta,
                        vbf_stream_key(c->seed, c->chain, c->sweep, (uint64_t)(s * B + b)));
        return;
    }
    vbf_gibbs_pair(c->block_ptr[b], c->block_ptr[b + 1], c->doc_ptr, c->cursor, c->words,
                   c->slice_of, (int32_t)((b + s) % B), c->z, c->ndk, c->nwk, c->K,
                   c->nkl + b * c->ldi, scratch, scratch + kd, scratch + 2 * kd, c->alpha, c->eta, c->veta,
                   vbf_stream_key(c->seed, c->chain, c->sweep, (uint64_t)(s * B + b)));
}

/* End of a sub-step: n_k += the changes of its B pairs, added in pair order (integers: any
   order gives the same, but this one is fixed anyway). */
static inline void vbf_fold_nk(const vbf_sweep_ctx *c) {
    int64_t b;
    int k;
    for (k = 0; k < c->K; k++) c->dl[k] = 0;
    for (b = 0; b < c->B; b++)
        for (k = 0; k < c->K; k++) c->dl[k] += c->nkl[b * c->ldi + k] - c->nk[k];
    for (k = 0; k < c->K; k++) c->nk[k] += (int32_t)c->dl[k];
}

/* ---- the sweep's sub-steps with our own synchronisation (GCC/Clang on POSIX systems).

   A sweep is B sub-steps separated by barriers. OpenMP's barrier spins actively for a while
   (libgomp by default), and when another process shares the cores this hurts: a thread
   spinning at the end of a sub-step keeps its core busy, so the scheduler cannot move the
   other process there, and the thread still working shares its core with it (measured: two
   threads slower than one on a machine with one core taken). Here the threads of one
   parallel region claim the pairs of a sub-step (a flag each); the last to finish a sub-step
   adds up its n_k changes and opens the next; the others spin briefly, then sleep in short
   naps, which frees the core.

   Which pairs a thread claims: thread t of T first its own range of document blocks,
   [t B / T, (t + 1) B / T), in order, then what is left of the others' ranges from their
   ends. On an idle machine each thread so keeps its blocks (their n_dk rows, the pairs'
   n_k rows and workspace stay in its core's cache from one sub-step to the next, and a
   slice stays with one thread for B / T sub-steps in a row), and two threads work on
   adjacent pairs only where their claims meet; a thread held up by another process has its
   pairs taken from the far end. (Claiming the pairs in order from one counter, as before,
   had the threads on pairs b and b + 1 at once nearly all the time, and each pair's blocks
   moved between the cores at random every sub-step.) Which thread runs which pair does not
   matter to the result (the pairs of a sub-step are independent, and the n_k changes are
   added pair by pair in order), so this gives the same draws as the plain OpenMP loop. */
#ifdef _OPENMP
#include <omp.h>
#endif

#include "vbf_wait.h"

#ifdef VBF_HAVE_WAIT
#define VBF_HAVE_SWEEP_WORKER 1

static inline int vbf_team_size(void) {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

static inline int vbf_team_rank(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* pair b of sub-step s for this thread, unless another has claimed it */
static inline void vbf_sweep_try_pair(vbf_sweep_ctx *c, int64_t s, int64_t b) {
    int *flag = c->claim + s * c->B + b;
    if (__atomic_load_n(flag, __ATOMIC_RELAXED) == 0
            && __atomic_exchange_n(flag, 1, __ATOMIC_RELAXED) == 0)
        vbf_sweep_pair(c, s, b);
}

/* run by every thread of one parallel region; c->claim is (B, B) flags, zero at the start */
static void vbf_sweep_worker(vbf_sweep_ctx *c) {
    int nt = vbf_team_size();
    int64_t s, b, B = c->B, t = vbf_team_rank();
    int64_t own0 = t * B / nt, own1 = (t + 1) * B / nt;
    for (s = 0; s < B; s++) {
        for (b = own0; b < own1; b++) vbf_sweep_try_pair(c, s, b);
        for (b = B - 1; b >= own1; b--) vbf_sweep_try_pair(c, s, b);
        for (b = own0 - 1; b >= 0; b--) vbf_sweep_try_pair(c, s, b);
        if (__atomic_add_fetch(&c->arrived[s], 1, __ATOMIC_ACQ_REL) == nt) {
            vbf_fold_nk(c);
            __atomic_store_n(&c->phase, (int)(s + 1), __ATOMIC_RELEASE);
        } else {
            VBF_WAIT_AT_LEAST(&c->phase, (int)(s + 1));
        }
    }
}
#else
#define VBF_HAVE_SWEEP_WORKER 0
static void vbf_sweep_worker(vbf_sweep_ctx *c) { (void)c; }
#endif

#endif
