/* Hot loop of the LDA collapsed Gibbs sweep (src_c/_lda_gibbs.pyx): one (document block, word
   slice) pair of a sub-step, with the full conditional over the K topics computed densely.

   For K of the order of tens, the dense conditional in 4-wide double vectors beats the
   SparseLDA buckets this replaced: the buckets cost O(#topics of the word) scalar, gathered
   operations per token (40+ for most tokens in the first sweeps from a random start) plus a
   re-sort of the word's list whenever the topic changes, while the dense pass is K/4 vector
   steps with no data-dependent loads and O(1) count updates.

   Compiled twice on x86-64 with GCC or Clang (AVX2 and the baseline), chosen at run time.
   Neither version uses FMA and both do the same operations in the same order (the vector
   extensions are lane-wise IEEE operations), so the draws are the same on every x86-64 CPU,
   not only for any thread count. Other compilers get a scalar version with the same
   arithmetic (four explicit lanes). */
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
   store cannot be forwarded to a wider load), on the pass's critical path. Instead p_t is
   swapped for pt (token i removed, computed by the caller with the same formula) after the
   pass, and the running sums from t's block on are corrected by delta = pt - p_t.

   p goes to pbuf (K); cum (K4 = K & ~3, in blocks of four) gets the running lane-wise sums:
   cum block j lane l = sum_{m <= j} p_{4m + l}. The running total after block j is the fixed
   sum (l0 + l1) + (l2 + l3) of that block (+ delta from t's block on), monotone in j, and
   the tail k >= K4 adds on in order; u = U (total) finds its block by a scan that compares
   independent sums (no chain of dependent adds), then its topic inside the block without
   branches (the partial differences only decrease). */
VBF_INLINE int32_t vbf_draw_dense(int K, const double *A, const int32_t *row, double eta,
                                    int32_t t, double pt, double *pbuf, double *cum,
                                    double U)
{
    int k, j, jt = t >> 2, K4 = K & ~3, nb = K4 >> 2;
    double total, u, base, hs, delta, u1, u2, u3, dsel[2];
#if defined(__GNUC__)
    const vbf_v4 ve = {eta, eta, eta, eta};
    vbf_v4 c = {0.0, 0.0, 0.0, 0.0};
    for (k = 0; k < K4; k += 4) {
        /* converted lane by lane: GCC 12 splits __builtin_convertvector of four int32s into
           two halves and an insert (three more instructions a block) */
        vbf_v4 a, p, n = {(double)row[k], (double)row[k + 1], (double)row[k + 2],
                          (double)row[k + 3]};
        memcpy(&a, A + k, sizeof a);
        p = a * (n + ve);
        c += p;
        memcpy(pbuf + k, &p, sizeof p);
        memcpy(cum + k, &c, sizeof c);
    }
#else
    double c[4] = {0.0, 0.0, 0.0, 0.0};
    int l;
    for (k = 0; k < K4; k += 4) {
        for (l = 0; l < 4; l++) {
            double p = A[k + l] * ((double)row[k + l] + eta);
            c[l] += p;
            pbuf[k + l] = p;
            cum[k + l] = c[l];
        }
    }
#endif
    for (k = K4; k < K; k++) pbuf[k] = A[k] * ((double)row[k] + eta);
    delta = pt - A[t] * ((double)row[t] + eta);  /* the pass's p_t, recomputed (the same) */
    pbuf[t] = pt;
    dsel[0] = 0.0;
    dsel[1] = delta;
    total = nb ? (c[0] + c[1]) + (c[2] + c[3]) + (jt < nb ? delta : 0.0) : 0.0;
    for (k = K4; k < K; k++) total += pbuf[k];
    u = U * total;
    base = 0.0;
    for (j = 0; j < nb; j++) {
        const double *cj = cum + 4 * j;
        /* + 0.0 (j < jt) leaves a sum as it is; picked by a load indexed by the comparison
           (GCC compiled delta * (j >= jt) to a branch, mispredicted where the scan passes jt) */
        hs = (cj[0] + cj[1]) + (cj[2] + cj[3]) + dsel[j >= jt];
        if (u < hs) {
            /* inside block j: subtract its entries from u - (total before the block) */
            u -= base;
            k = 4 * j;
            u1 = u - pbuf[k];
            u2 = u1 - pbuf[k + 1];
            u3 = u2 - pbuf[k + 2];
            return k + (u1 >= 0.0) + (u2 >= 0.0) + (u3 >= 0.0);
        }
        base = hs;
    }
    /* the tail (K not a multiple of 4), or rounding at the very end */
    u -= base;
    for (k = K4; k < K - 1; k++) {
        if ((u -= pbuf[k]) < 0.0) return k;
    }
    return K4 < K ? K - 1 : K4 - 1;
}

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
   pairs share a document or a word. Workspace: inv, A, pbuf, cum: K doubles each. */
VBF_INLINE void vbf_gibbs_pair_body(
    int64_t d0, int64_t d1, const int64_t *doc_ptr, int64_t *cursor, const int32_t *words,
    const int32_t *slice_of, int32_t slice, int32_t *z, int32_t *ndk, int32_t *nwk, int K,
    int32_t *nkl, double *inv, double *A, double *pbuf, double *cum, double alpha, double eta,
    double veta, uint64_t rng)
{
    int64_t d, i, i_end;
    int32_t w, t, tn, k, nkt;
    int32_t *nd, *row;
    double inv_t, a_t;
    for (k = 0; k < K; k++) inv[k] = 1.0 / ((double)nkl[k] + veta);
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
            tn = vbf_draw_dense(K, A, row, eta, t,
                                a_t * ((double)(row[t] - 1) + eta), pbuf, cum,
                                vbf_uniform(&rng));
            /* no branch on tn != t (true at random, so often mispredicted, and a
               misprediction also throws away the next token's work under way): if the topic
               stays, the second half restores the counts, inv_t and A_t exactly (each is the
               same formula of the same counts), so the draws are those of the branchy form */
            nd[t]--;
            row[t]--;
            nkl[t] = nkt;
            inv[t] = inv_t;
            A[t] = a_t;
            nd[tn]++;
            row[tn]++;
            nkl[tn]++;
            inv[tn] = 1.0 / ((double)nkl[tn] + veta);
            A[tn] = ((double)nd[tn] + alpha) * inv[tn];
            z[i] = tn;
        }
        cursor[d] = i;
    }
}

/* vbf_gibbs_pair: the body for AVX2 or the baseline, chosen at run time; no FMA, so both
   give the same draws (see the top of this file). */
VBF_DISPATCH(vbf_gibbs_pair, "avx2", vbf_cpu_avx2(),
             (int64_t d0, int64_t d1, const int64_t *doc_ptr, int64_t *cursor,
              const int32_t *words, const int32_t *slice_of, int32_t slice, int32_t *z,
              int32_t *ndk, int32_t *nwk, int K, int32_t *nkl, double *inv, double *A,
              double *pbuf, double *cum, double alpha, double eta, double veta, uint64_t rng),
             (d0, d1, doc_ptr, cursor, words, slice_of, slice, z, ndk, nwk, K, nkl, inv, A,
              pbuf, cum, alpha, eta, veta, rng))

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
   four lanes as in vbf_draw_dense: cum block j lane l = sum_{m <= j} p[4m + l]; the block
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

/* The dense pair's workspace (inv, A, pbuf, cum) at this stride in doubles, K rounded up to
   8: with the row 64-byte aligned, each array starts a cache line and no 4-lane load or
   store of a block straddles two lines (K = 50 as four arrays of 50 put A and cum at 16 mod
   32 bytes: every other block split across lines). */
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
    double *scratch;     /* (B, ldd): each pair's inv, A, pbuf, cum */
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
                   c->nkl + b * c->ldi, scratch, scratch + kd, scratch + 2 * kd,
                   scratch + 3 * kd, c->alpha, c->eta, c->veta,
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
