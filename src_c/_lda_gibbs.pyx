# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Collapsed Gibbs sampling for LDA: the sweep (SparseLDA buckets, AD-LDA partitions) and the
per-word merge pass.

Model: theta_d ~ Dir(alpha), beta_k ~ Dir(eta) over V words, z_i | theta_d ~ Cat(theta_d),
w_i | z_i ~ Cat(beta_{z_i}); theta and beta are integrated out, so the state is the topic of
every token. With the token i removed from the counts (n_dk, n_kw, n_k), its full conditional is

    p(z_i = k | z_-i, w) ~ (n_dk + alpha) (n_kw + eta) / (n_k + V eta)
                         =  alpha eta / (n_k + V eta)            s bucket (all K topics)
                          + n_dk eta / (n_k + V eta)             r bucket (topics of document d)
                          + n_kw (n_dk + alpha) / (n_k + V eta)  q bucket (topics of word w)

(Yao, Mimno & McCallum 2009, "SparseLDA"). s and r are cheap running sums; q is summed over the
word's non-zero topics only, kept in a list sorted by count so that the draw, which lands in q
most of the time for small eta, usually stops after a few entries. The cost per token is
O(#topics of word w + #topics of document d) instead of O(K).

Parallelism (AD-LDA, Newman et al. 2009): documents are cut by the caller into P partitions of
consecutive documents (P from the data size only). Each partition sweeps its documents against
the topic-word counts of the start of the sweep plus its own changes (a private copy of a word's
row is made the first time the partition meets the word), with its own random stream keyed by
(seed, chain, sweep, partition). Each token's new topic is written to ``z_next``; the merge
then applies every changed token to the global counts (integer counts, so the order of
application does not matter) and rebuilds the changed words' sorted lists in parallel, a word
per thread. The result is bitwise identical for any number of threads.

The log joint log p(w, z) (theta, beta integrated out) comes out of the same two passes:

    sum_d [lgamma(K alpha) - lgamma(N_d + K alpha) + sum_k (lgamma(n_dk + alpha) - lgamma(alpha))]
  + sum_k [lgamma(V eta) - lgamma(n_k + V eta) + sum_w (lgamma(n_kw + eta) - lgamma(eta))]

the document part at the end of each document's sweep (its counts are final then), the topic
part in the merge pass, both from tables of lgamma over the integer counts.
"""
from cython.parallel cimport prange, parallel, threadid
from libc.stdint cimport int32_t, int64_t, uint64_t, uint8_t
from libc.string cimport memcpy, memset

import numpy as np


cdef extern from *:
    """
    #include <stdint.h>
    /* SplitMix64 (Steele, Lea & Flood 2014): output i of a stream is mix(key + i * golden),
       a counter-based generator, so a stream is fixed by its key alone. */
    static inline uint64_t vbf_mix64(uint64_t x) {
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
        return x ^ (x >> 31);
    }
    static inline uint64_t vbf_stream_key(uint64_t seed, uint64_t chain, uint64_t sweep,
                                          uint64_t part) {
        uint64_t k = vbf_mix64(seed + 0x9E3779B97F4A7C15ULL);
        k = vbf_mix64(k ^ (chain * 0xD1B54A32D192ED03ULL + 1ULL));
        k = vbf_mix64(k ^ (sweep * 0xAEF17502108EF2D9ULL + 2ULL));
        return vbf_mix64(k ^ (part * 0xDB4F0B9175AE2165ULL + 3ULL));
    }
    /* a hint to fetch the cache line of p for writing (no effect on results) */
    #if defined(__GNUC__) || defined(__clang__)
    #define vbf_prefetch(p) __builtin_prefetch((p), 1, 3)
    #else
    #define vbf_prefetch(p) ((void)0)
    #endif
    /* uniform double in [0, 1), 53 random bits */
    static inline double vbf_uniform(uint64_t *state) {
        *state += 0x9E3779B97F4A7C15ULL;
        return (double)(vbf_mix64(*state) >> 11) * (1.0 / 9007199254740992.0);
    }
    """
    uint64_t vbf_stream_key(uint64_t seed, uint64_t chain, uint64_t sweep,
                            uint64_t part) noexcept nogil
    double vbf_uniform(uint64_t* state) noexcept nogil
    void vbf_prefetch(const void* p) noexcept nogil

# Tokens ahead of the current one whose topic list row (and, further ahead, row offset) is
# prefetched: the rows are scattered over megabytes, and the sweep is bound by these misses.
cdef enum:
    ROW_AHEAD = 4
    PTR_AHEAD = 12


def stream_uniforms(uint64_t seed, uint64_t chain, uint64_t sweep, uint64_t part, Py_ssize_t n):
    """The first ``n`` uniforms of the stream keyed (seed, chain, sweep, partition) (tests)."""
    cdef uint64_t state = vbf_stream_key(seed, chain, sweep, part)
    out = np.empty(n)
    cdef double[::1] o = out
    cdef Py_ssize_t i
    for i in range(n):
        o[i] = vbf_uniform(&state)
    return out


cdef double _sweep_partition(
        int64_t d0, int64_t d1, const int64_t* doc_ptr, const int32_t* words,
        const int32_t* z_cur, int32_t* z_next, int K,
        const int64_t* row_ptr, const int32_t* g_tc, const int32_t* g_len, const int32_t* g_nk,
        int32_t* l_tc, int32_t* l_len, int32_t* l_stamp, int32_t stamp,
        int32_t* nk, int32_t* ndk, int32_t* dtop, int32_t* dpos,
        double* inv, double* coef, double* qbuf,
        double alpha, double eta, double veta, const double* lg_alpha,
        const double* lg_doclen, uint64_t rng) noexcept nogil:
    """Sweep documents [d0, d1) of one partition; return their part of the log joint.

    A word's topic list is a row of (topic, count) int32 pairs, so that one cache line holds
    both; ``l_tc`` is the partition's private copy (rows copied from ``g_tc`` on first use).
    """
    cdef int64_t d, i, i0, i1, i_end = doc_ptr[d1]
    cdef int32_t w, t, t_new, k, j, jt, n, ndt, c, old_len
    cdef double s_sum, r_sum, q_sum, u, old_inv, new_inv, lj = 0.0, ae = alpha * eta
    cdef int32_t* r

    memcpy(nk, g_nk, K * sizeof(int32_t))
    for k in range(K):
        inv[k] = 1.0 / (nk[k] + veta)
        coef[k] = alpha * inv[k]
        ndk[k] = 0

    for d in range(d0, d1):
        i0 = doc_ptr[d]
        i1 = doc_ptr[d + 1]
        if i1 == i0:
            continue
        # the document's topic counts from its current assignments
        ndt = 0
        for i in range(i0, i1):
            k = z_cur[i]
            if ndk[k] == 0:
                dpos[k] = ndt
                dtop[ndt] = k
                ndt += 1
            ndk[k] += 1
        # s and r from scratch at every document, so that rounding cannot drift far
        s_sum = 0.0
        for k in range(K):
            s_sum += inv[k]
        r_sum = 0.0
        for j in range(ndt):
            k = dtop[j]
            coef[k] = (ndk[k] + alpha) * inv[k]
            r_sum += ndk[k] * inv[k]

        for i in range(i0, i1):
            if i + PTR_AHEAD < i_end:
                vbf_prefetch(row_ptr + words[i + PTR_AHEAD])
            if i + ROW_AHEAD < i_end:
                vbf_prefetch(l_tc + 2 * row_ptr[words[i + ROW_AHEAD]])
            w = words[i]
            t = z_cur[i]
            r = l_tc + 2 * row_ptr[w]
            if l_stamp[w] != stamp:
                # first use of this word in the partition: private copy of the global row
                old_len = g_len[w]
                memcpy(r, g_tc + 2 * row_ptr[w], 2 * old_len * sizeof(int32_t))
                l_len[w] = old_len
                l_stamp[w] = stamp
            n = l_len[w]

            # ---- remove token i (topic t) from the document and topic counts; the word's row
            # is left as it is and read with one less for t, and only changed if the topic does
            # (most tokens keep theirs once the chain has settled)
            old_inv = inv[t]
            r_sum -= ndk[t] * old_inv
            ndk[t] -= 1
            nk[t] -= 1
            new_inv = 1.0 / (nk[t] + veta)
            inv[t] = new_inv
            s_sum += new_inv - old_inv
            r_sum += ndk[t] * new_inv
            coef[t] = (ndk[t] + alpha) * new_inv
            if ndk[t] == 0:
                ndt -= 1
                j = dpos[t]
                dtop[j] = dtop[ndt]
                dpos[dtop[j]] = j
                r_sum = r_sum if ndt > 0 else 0.0

            # ---- draw the new topic from s + r + q
            q_sum = 0.0
            jt = 0
            for j in range(n):
                k = r[2 * j]
                c = r[2 * j + 1]
                if k == t:
                    c -= 1
                    jt = j
                qbuf[j] = c * coef[k]
                q_sum += qbuf[j]
            u = vbf_uniform(&rng) * (q_sum + eta * r_sum + ae * s_sum)
            if u < q_sum:
                j = 0
                while j < n - 1:
                    u -= qbuf[j]
                    if u < 0.0:
                        break
                    j += 1
                t_new = r[2 * j]
            else:
                u -= q_sum
                if u < eta * r_sum and ndt > 0:
                    u /= eta
                    j = 0
                    while j < ndt - 1:
                        u -= ndk[dtop[j]] * inv[dtop[j]]
                        if u < 0.0:
                            break
                        j += 1
                    t_new = dtop[j]
                else:
                    u = (u - eta * r_sum) / ae
                    t_new = 0
                    while t_new < K - 1:
                        u -= inv[t_new]
                        if u < 0.0:
                            break
                        t_new += 1

            # ---- add token i back with topic t_new
            old_inv = inv[t_new]
            r_sum -= ndk[t_new] * old_inv
            if ndk[t_new] == 0:
                dpos[t_new] = ndt
                dtop[ndt] = t_new
                ndt += 1
            ndk[t_new] += 1
            nk[t_new] += 1
            new_inv = 1.0 / (nk[t_new] + veta)
            inv[t_new] = new_inv
            s_sum += new_inv - old_inv
            r_sum += ndk[t_new] * new_inv
            coef[t_new] = (ndk[t_new] + alpha) * new_inv
            if t_new != t:
                # the row: one less for t (kept sorted by count, descending; a zero count
                # ends up last, and goes) ...
                j = jt
                c = r[2 * j + 1] - 1
                while j + 1 < n and c < r[2 * j + 3]:
                    r[2 * j] = r[2 * j + 2]
                    r[2 * j + 1] = r[2 * j + 3]
                    j += 1
                r[2 * j] = t
                r[2 * j + 1] = c
                if c == 0:
                    n -= 1
                # ... and one more for t_new
                j = 0
                while j < n and r[2 * j] != t_new:
                    j += 1
                if j == n:
                    r[2 * n] = t_new
                    r[2 * n + 1] = 0
                    n += 1
                c = r[2 * j + 1] + 1
                while j > 0 and c > r[2 * j - 1]:
                    r[2 * j] = r[2 * j - 2]
                    r[2 * j + 1] = r[2 * j - 1]
                    j -= 1
                r[2 * j] = t_new
                r[2 * j + 1] = c
                l_len[w] = n
                t = t_new
            z_next[i] = t

        # the document's part of the log joint (its counts are final), then reset
        lj += lg_doclen[i1 - i0]
        for j in range(ndt):
            k = dtop[j]
            lj += lg_alpha[ndk[k]]
            ndk[k] = 0
            coef[k] = alpha * inv[k]
    return lj


def sweep(const int64_t[::1] doc_ptr, const int32_t[::1] words, const int32_t[::1] z_cur,
          int32_t[::1] z_next, const int64_t[::1] part_ptr, const int64_t[::1] row_ptr,
          const int32_t[::1] g_tc, const int32_t[::1] g_len, const int32_t[::1] g_nk,
          int32_t[:, ::1] l_tc, int32_t[:, ::1] l_len, int32_t[:, ::1] l_stamp,
          int32_t[:, ::1] scratch_i, double[:, ::1] scratch_d, double alpha, double eta,
          const double[::1] lg_alpha, const double[::1] lg_doclen,
          uint64_t seed, uint64_t chain, uint64_t sweep_index, double[::1] part_lj,
          int n_threads):
    """One collapsed Gibbs sweep over all tokens, partitions in parallel.

    Parameters
    ----------
    doc_ptr : (D + 1,) int64, token offsets of the documents (tokens ordered by document).
    words : (N,) int32, word of each token.
    z_cur : (N,) int32, topics at the start of the sweep (read only).
    z_next : (N,) int32, out: topics after the sweep.
    part_ptr : (P + 1,) int64, document offsets of the partitions.
    row_ptr : (V + 1,) int64, offsets (in pairs) of the words' topic lists; word w has room
        for min(K, frequency of w) pairs.
    g_tc, g_len : the start-of-sweep topic lists, (2 C,) int32 and (V,) int32: for word w, the
        g_len[w] pairs (topic, n_kw) from pair row_ptr[w] on, sorted by count, descending
        (``merge`` builds them).
    g_nk : (K,) int32, n_k at the start of the sweep.
    l_tc : (T, 2 C) int32, l_len, l_stamp : (T, V) int32, scratch_i : (T, 4K) int32,
        scratch_d : (T, >= 3K) double: per-thread workspace, T >= n_threads.
    alpha, eta : the symmetric Dirichlet priors of theta_d and beta_k.
    lg_alpha : lgamma(n + alpha) - lgamma(alpha) for n = 0..max document length.
    lg_doclen : lgamma(K alpha) - lgamma(n + K alpha) for n = 0..max document length.
    seed, chain, sweep_index : with the partition index, the key of each random stream.
    part_lj : (P,) double, out: each partition's documents' part of the log joint.
    n_threads : threads to use (the result does not depend on it).
    """
    cdef Py_ssize_t P = part_ptr.shape[0] - 1
    cdef Py_ssize_t N = words.shape[0]
    cdef Py_ssize_t V = g_len.shape[0]
    cdef int K = <int>g_nk.shape[0]
    cdef int T = <int>l_tc.shape[0]
    cdef Py_ssize_t p
    cdef int tid
    if (N == 0 or doc_ptr[doc_ptr.shape[0] - 1] != N or z_cur.shape[0] != N
            or z_next.shape[0] != N or part_ptr[P] != doc_ptr.shape[0] - 1
            or part_lj.shape[0] != P or row_ptr.shape[0] != V + 1
            or g_tc.shape[0] < 2 * row_ptr[V] or l_tc.shape[1] < 2 * row_ptr[V]
            or l_len.shape[1] != V or l_stamp.shape[1] != V
            or scratch_i.shape[1] < 4 * K or scratch_d.shape[1] < 3 * K
            or l_len.shape[0] < T or l_stamp.shape[0] < T or scratch_i.shape[0] < T
            or scratch_d.shape[0] < T or n_threads > T or n_threads < 1):
        raise ValueError("sweep: inconsistent array shapes")
    cdef double veta = V * eta
    with nogil, parallel(num_threads=n_threads):
        tid = threadid()
        memset(&l_stamp[tid, 0], 0, V * sizeof(int32_t))
        for p in prange(P, schedule='static'):
            part_lj[p] = _sweep_partition(
                part_ptr[p], part_ptr[p + 1], &doc_ptr[0], &words[0], &z_cur[0], &z_next[0],
                K, &row_ptr[0], &g_tc[0], &g_len[0], &g_nk[0],
                &l_tc[tid, 0], &l_len[tid, 0], &l_stamp[tid, 0],
                <int32_t>(p + 1), &scratch_i[tid, 0], &scratch_i[tid, K],
                &scratch_i[tid, 2 * K], &scratch_i[tid, 3 * K], &scratch_d[tid, 0],
                &scratch_d[tid, K], &scratch_d[tid, 2 * K], alpha, eta, veta,
                &lg_alpha[0], &lg_doclen[0],
                vbf_stream_key(seed, chain, sweep_index, <uint64_t>p))


cdef double _rebuild_block(
        int64_t w0, int64_t w1, int K, int32_t* nwk, const int64_t* row_ptr, int32_t* g_tc,
        int32_t* g_len, uint8_t* changed, double* word_lj, const double* lg_eta) noexcept nogil:
    """Rebuild the sorted lists of the changed words in [w0, w1) from their n_kw rows and
    their terms sum_k lgamma(n_kw + eta) - lgamma(eta); return the block's sum of the terms."""
    cdef int64_t w
    cdef int32_t k, n, j, c
    cdef int32_t* row
    cdef int32_t* r
    cdef double lj, total = 0.0
    for w in range(w0, w1):
        if changed[w]:
            changed[w] = 0
            row = nwk + w * K
            r = g_tc + 2 * row_ptr[w]
            n = 0
            lj = 0.0
            for k in range(K):
                c = row[k]
                if c > 0:
                    lj += lg_eta[c]
                    # insertion, sorted by count descending (ties: lower topic first)
                    j = n
                    while j > 0 and r[2 * j - 1] < c:
                        r[2 * j] = r[2 * j - 2]
                        r[2 * j + 1] = r[2 * j - 1]
                        j -= 1
                    r[2 * j] = k
                    r[2 * j + 1] = c
                    n += 1
            g_len[w] = n
            word_lj[w] = lj
        total += word_lj[w]
    return total


def merge(const int32_t[::1] words, const int32_t[::1] z_old, const int32_t[::1] z_new,
          int32_t[:, ::1] nwk, int32_t[::1] nk, const int64_t[::1] row_ptr,
          int32_t[::1] g_tc, int32_t[::1] g_len, uint8_t[::1] changed, double[::1] word_lj,
          const int64_t[::1] block_ptr, double[::1] block_lj, const double[::1] lg_eta,
          int n_threads, bint rebuild_all=False):
    """Merge a sweep into the counts and rebuild the changed words' topic lists.

    Every token whose topic changed moves one count in ``nwk`` and ``nk`` (one pass in token
    order; integer counts, so the result is the same in any order); then, in parallel over
    blocks of words, the lists of the words with a changed token are rebuilt.

    Parameters
    ----------
    words : (N,) int32; z_old, z_new : (N,) int32, topics before and after the sweep.
    nwk : (V, K) int32, in/out: n_kw, word-major. nk : (K,) int32, in/out: n_k.
    row_ptr, g_tc, g_len : the sorted (topic, count) lists, out (see ``sweep``).
    changed : (V,) uint8 workspace, all zero between calls.
    word_lj : (V,) double, in/out: each word's sum_k lgamma(n_kw + eta) - lgamma(eta).
    block_ptr : (B + 1,) int64, word offsets of the blocks (from V only).
    block_lj : (B,) double, out: each block's sum of word_lj.
    lg_eta : lgamma(n + eta) - lgamma(eta) for n = 0..max word frequency.
    n_threads : threads to use (the result does not depend on it).
    rebuild_all : rebuild every word's list and term (after setting nwk directly).
    """
    cdef Py_ssize_t B = block_ptr.shape[0] - 1
    cdef Py_ssize_t V = nwk.shape[0]
    cdef int K = <int>nwk.shape[1]
    cdef Py_ssize_t N = z_old.shape[0]
    cdef Py_ssize_t b, i
    cdef int32_t a, t, w
    if (N == 0 or words.shape[0] != N or z_new.shape[0] != N or nk.shape[0] != K
            or row_ptr.shape[0] != V + 1 or g_len.shape[0] != V
            or g_tc.shape[0] < 2 * row_ptr[V] or changed.shape[0] != V
            or word_lj.shape[0] != V or block_ptr[B] != V or block_lj.shape[0] != B
            or lg_eta.shape[0] < 1 or n_threads < 1):
        raise ValueError("merge: inconsistent array shapes")
    with nogil:
        if rebuild_all:
            memset(&changed[0], 1, V)
        else:
            for i in range(N):
                a = z_old[i]
                t = z_new[i]
                if a != t:
                    w = words[i]
                    nwk[w, a] -= 1
                    nwk[w, t] += 1
                    nk[a] -= 1
                    nk[t] += 1
                    changed[w] = 1
        for b in prange(B, schedule='static', num_threads=n_threads):
            block_lj[b] = _rebuild_block(block_ptr[b], block_ptr[b + 1], K, &nwk[0, 0],
                                         &row_ptr[0], &g_tc[0], &g_len[0], &changed[0],
                                         &word_lj[0], &lg_eta[0])
