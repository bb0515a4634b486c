# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Collapsed Gibbs sampling for LDA: the sweep (dense conditional, documents x vocabulary
partition) and the log joint.

Model: theta_d ~ Dir(alpha), beta_k ~ Dir(eta) over V words, z_i | theta_d ~ Cat(theta_d),
w_i | z_i ~ Cat(beta_{z_i}); theta and beta are integrated out, so the state is the topic of
every token. With the token i removed from the counts (n_dk, n_kw, n_k), its full conditional is

    p(z_i = k | z_-i, w) ~ (n_dk + alpha) (n_kw + eta) / (n_k + V eta),

computed for all K topics at once in 8-lane double vectors (AVX-512, AVX2 or the baseline,
the same bits on each) as A_k (n_kw + eta), with A_k = (n_dk + alpha) / (n_k + V eta) kept
per document, and the topic drawn as the number of running sums <= u (vector compares;
``_lda_gibbs_kernels.h``; float64 throughout, so the draw is from the exact conditional up to
rounding). For K of the order of tens this costs less than the SparseLDA
buckets (Yao, Mimno & McCallum 2009) that an earlier version used. For K in the hundreds
``sweep_sparse`` splits the same conditional into A_k n_kw over the word's topics (kept in
per-word (topic, count) lists during the sweep) plus eta A_k over all topics (a two-level
sum table per document run, changed in O(1) at the two topics a token leaves and joins):
O(K_w) a token instead of O(K), the same pairs, tokens, order and random streams. The caller
chooses from K (``vbfast.topics._gibbs._choose_sampler``).

Parallelism: a documents x vocabulary partition (the diagonal block schedule of Yan, Xu & Qi
2009, "Parallel inference for LDA on GPUs"; tomotopy's PARTITION scheme is of this kind). The
documents are cut into B blocks of consecutive documents and the vocabulary into B slices (B
from the data size only; see ``_lda_sampler``), and a sweep is B sub-steps: in sub-step s, pair
b resamples the tokens of document block b whose word is
in slice (b + s) mod B. No two pairs of a sub-step share a document or a word, so each works on
the global n_dk and n_kw in place, exactly; only n_k is approximate: a pair sees the n_k of the
start of its sub-step plus its own changes, and the pairs' changes are added up (integers, so
in any order) at the end of the sub-step. With B = 1 this is the exact sequential Gibbs
sampler. Each pair has its own random stream, keyed by (seed, chain, sweep, s B + b), and each
document's tokens are ordered (by ``_lda_sampler``) so that a sub-step's are the next run of
them. The result is bitwise identical for any number of threads, and in which order or on
which thread the pairs run.

The log joint log p(w, z) (theta, beta integrated out),

    sum_d [lgamma(K alpha) - lgamma(N_d + K alpha) + sum_k (lgamma(n_dk + alpha) - lgamma(alpha))]
  + sum_k [lgamma(V eta) - lgamma(n_k + V eta) + sum_w (lgamma(n_kw + eta) - lgamma(eta))],

comes from tables of lgamma over the integer counts, summed over fixed blocks of documents and
of words (``log_joint_terms``).
"""
from cython.parallel cimport prange, parallel
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.string cimport memcpy, memset
from libc.stdlib cimport malloc, free
from scipy.special.cython_special cimport gammaln

import numpy as np


cdef extern from "vbf_rng.h":
    uint64_t vbf_stream_key(uint64_t seed, uint64_t chain, uint64_t sweep,
                            uint64_t part) noexcept nogil
    double vbf_uniform(uint64_t* state) noexcept nogil


cdef extern from "_lda_gibbs_kernels.h":
    ctypedef struct vbf_sweep_ctx:
        int64_t B
        const int64_t* block_ptr
        const int64_t* doc_ptr
        int64_t* cursor
        const int32_t* words
        const int32_t* slice_of
        int32_t* z
        int32_t* ndk
        int32_t* nwk
        int32_t* nk
        int K
        int32_t* nkl
        int64_t ldi
        double* scratch
        int64_t ldd
        int64_t* dl
        int* claim
        int* arrived
        int phase
        double alpha, eta, veta
        uint64_t seed, chain, sweep
        int sparse, Kp
        const int64_t* wl_ptr
        int32_t* wlist
        int32_t* wlen
    void vbf_sweep_pair(const vbf_sweep_ctx* c, int64_t s, int64_t b) noexcept nogil
    void vbf_fold_nk(const vbf_sweep_ctx* c) noexcept nogil
    int64_t VBF_DENSE_STRIDE(int K) noexcept nogil
    int VBF_HAVE_SWEEP_WORKER
    void vbf_sweep_worker(vbf_sweep_ctx* c) noexcept nogil
    int vbf_gibbs_isa


def _set_dense_isa(int isa):
    """For tests: the widest build the dense sweep may use: 0 the best the CPU has (AVX-512
    where it has AVX-512F/VL/DQ), 2 at most AVX2, 1 the baseline; all give the same draws.
    Returns the previous setting."""
    global vbf_gibbs_isa
    if isa not in (0, 1, 2):
        raise ValueError("isa must be 0, 1 or 2")
    previous = vbf_gibbs_isa
    vbf_gibbs_isa = isa
    return previous


def stream_uniforms(uint64_t seed, uint64_t chain, uint64_t sweep, uint64_t part, Py_ssize_t n):
    """The first ``n`` uniforms of the stream keyed (seed, chain, sweep, partition) (tests)."""
    cdef uint64_t state = vbf_stream_key(seed, chain, sweep, part)
    out = np.empty(n)
    cdef double[::1] o = out
    cdef Py_ssize_t i
    for i in range(n):
        o[i] = vbf_uniform(&state)
    return out


cdef object _setup_sweep(vbf_sweep_ctx* ctx, str name, const int64_t[::1] doc_ptr,
                         const int32_t[::1] words, const int32_t[::1] slice_of,
                         const int64_t[::1] block_ptr, int32_t[::1] z, int32_t[:, ::1] ndk,
                         int32_t[:, ::1] nwk, int32_t[::1] nk, int64_t[::1] cursor,
                         int32_t[:, ::1] scratch_i, double[:, ::1] scratch_d,
                         Py_ssize_t scratch_width, bint other_shapes_ok, double alpha,
                         double eta, uint64_t seed, uint64_t chain, uint64_t sweep_index,
                         int n_threads):
    """The set-up shared by ``sweep`` and ``sweep_sparse``: check the shapes common to both
    (``other_shapes_ok``: the caller's own), reset the cursors and fill ``ctx`` (the dense
    sampler's fields; the sparse one adds its own). Returns the sweep's counters, which ctx
    points into: keep them alive until the sweep is done."""
    cdef Py_ssize_t B = block_ptr.shape[0] - 1
    cdef Py_ssize_t D = doc_ptr.shape[0] - 1
    cdef Py_ssize_t N = words.shape[0]
    cdef Py_ssize_t V = nwk.shape[0]
    cdef int K = <int>nk.shape[0]
    cdef Py_ssize_t d
    if (not other_shapes_ok or N == 0 or B < 1 or doc_ptr[D] != N or z.shape[0] != N
            or block_ptr[0] != 0 or block_ptr[B] != D or slice_of.shape[0] != V
            or ndk.shape[0] != D or ndk.shape[1] != K or nwk.shape[1] != K
            or cursor.shape[0] != D or scratch_i.shape[0] < B or scratch_i.shape[1] < K
            or scratch_d.shape[0] < B or scratch_d.shape[1] < scratch_width or n_threads < 1):
        raise ValueError("%s: inconsistent array shapes" % name)
    delta = np.zeros(K, np.int64)
    cdef int64_t[::1] dl = delta
    counters = np.zeros(B * B + B, np.intc)  # the pairs' claim flags, then arrivals
    cdef int[::1] cnt = counters
    with nogil:
        for d in range(D):
            cursor[d] = doc_ptr[d]
    ctx.B = B
    ctx.block_ptr = &block_ptr[0]
    ctx.doc_ptr = &doc_ptr[0]
    ctx.cursor = &cursor[0]
    ctx.words = &words[0]
    ctx.slice_of = &slice_of[0]
    ctx.z = &z[0]
    ctx.ndk = &ndk[0, 0]
    ctx.nwk = &nwk[0, 0]
    ctx.nk = &nk[0]
    ctx.K = K
    ctx.nkl = &scratch_i[0, 0]
    ctx.ldi = scratch_i.shape[1]
    ctx.scratch = &scratch_d[0, 0]
    ctx.ldd = scratch_d.shape[1]
    ctx.dl = &dl[0]
    ctx.claim = &cnt[0]
    ctx.arrived = &cnt[B * B]
    ctx.phase = 0
    ctx.alpha = alpha
    ctx.eta = eta
    ctx.veta = V * eta
    ctx.seed = seed
    ctx.chain = chain
    ctx.sweep = sweep_index
    ctx.sparse = 0
    return delta, counters


cdef void _check_order(str name, const int64_t[::1] doc_ptr, const int64_t[::1] cursor):
    """Every document's cursor at its end: the tokens were in the order of the sub-steps
    (otherwise a pair stops early and tokens go unsampled)."""
    cdef Py_ssize_t d
    for d in range(cursor.shape[0]):
        if cursor[d] != doc_ptr[d + 1]:
            raise ValueError("%s: the tokens of document %d are not in the order of its "
                             "block's sub-steps" % (name, d))


def dense_scratch_width(int K):
    """Doubles of workspace a pair of the dense sweep needs: inv, A and the running sums of
    the terms, K rounded up to 8 each (``VBF_DENSE_STRIDE``: each array a whole number of
    cache lines from a 64-byte aligned row; the draw's blocks of eight fit it exactly)."""
    return 3 * VBF_DENSE_STRIDE(K)


def sweep(const int64_t[::1] doc_ptr, const int32_t[::1] words, const int32_t[::1] slice_of,
          const int64_t[::1] block_ptr, int32_t[::1] z, int32_t[:, ::1] ndk,
          int32_t[:, ::1] nwk, int32_t[::1] nk, int64_t[::1] cursor, int32_t[:, ::1] scratch_i,
          double[:, ::1] scratch_d, double alpha, double eta, uint64_t seed, uint64_t chain,
          uint64_t sweep_index, int n_threads):
    """One collapsed Gibbs sweep over all tokens (B sub-steps of B pairs, pairs in parallel);
    z, ndk, nwk and nk are updated in place.

    Parameters
    ----------
    doc_ptr : (D + 1,) int64, token offsets of the documents (tokens ordered by document).
    words : (N,) int32, word of each token.
    slice_of : (V,) int32, the vocabulary slice of each word, in [0, B).
    block_ptr : (B + 1,) int64, document offsets of the document blocks. The tokens of a
        document of block b must be ordered by (slice_of[word] - b) mod B.
    z : (N,) int32, in/out: the topic of every token.
    ndk : (D, K) int32, in/out: n_dk. nwk : (V, K) int32, in/out: n_kw, word-major.
    nk : (K,) int32, in/out: n_k.
    cursor : (D,) int64 workspace.
    scratch_i : (B, K) int32, scratch_d : (B, dense_scratch_width(K)) double: per-pair
        workspace.
    alpha, eta : the symmetric Dirichlet priors of theta_d and beta_k.
    seed, chain, sweep_index : with the pair index s B + b, the key of each random stream.
    n_threads : threads to use (the result does not depend on it).
    """
    cdef vbf_sweep_ctx ctx
    keep = _setup_sweep(&ctx, "sweep", doc_ptr, words, slice_of, block_ptr, z, ndk, nwk, nk,
                        cursor, scratch_i, scratch_d, dense_scratch_width(<int>nk.shape[0]),
                        True, alpha, eta, seed, chain, sweep_index, n_threads)
    _run_sweep(&ctx, n_threads)
    _check_order("sweep", doc_ptr, cursor)


cdef void _run_sweep(vbf_sweep_ctx* c, int n_threads) noexcept:
    if VBF_HAVE_SWEEP_WORKER and n_threads > 1:
        # the sub-steps with vbf_sweep_worker's own synchronisation (see the header)
        with nogil, parallel(num_threads=n_threads):
            vbf_sweep_worker(c)
    else:
        with nogil:
            _sweep_omp(c, n_threads)


def sparse_scratch_width(int K):
    """Doubles of workspace a pair of the sparse sweep needs: inv, A (K each), the running
    sums and the word's terms (K + 4 each), the document's table (Kp = K rounded up to 16)
    and its block sums (Kp / 16 + 4)."""
    cdef int Kp = (K + 15) & ~15
    return 4 * K + 8 + Kp + Kp // 16 + 4


def sweep_sparse(const int64_t[::1] doc_ptr, const int32_t[::1] words,
                 const int32_t[::1] slice_of, const int64_t[::1] block_ptr, int32_t[::1] z,
                 int32_t[:, ::1] ndk, int32_t[:, ::1] nwk, int32_t[::1] nk,
                 int64_t[::1] cursor, const int64_t[::1] wl_ptr, int32_t[::1] wlist,
                 int32_t[::1] wlen, int32_t[:, ::1] scratch_i, double[:, ::1] scratch_d,
                 double alpha, double eta, uint64_t seed, uint64_t chain, uint64_t sweep_index,
                 int n_threads):
    """One collapsed Gibbs sweep with the sparse conditional (``_lda_gibbs_kernels.h``):
    the same sub-steps, pairs, tokens and order as ``sweep``; n_kw is kept in per-word lists
    during the sweep (built from nwk here, written back to it at the end).

    Parameters (the others as for ``sweep``)
    ----------
    wl_ptr : (V + 1,) int64, each word's room for its list: at least min(its tokens, K)
        entries, a multiple of 16; the list is entries 2 wl_ptr[w] .. 2 wl_ptr[w + 1] of
        wlist (a topic and its count each).
    wlist : (2 wl_ptr[V],) int32 and wlen : (V,) int32, workspace.
    scratch_d : (B, sparse_scratch_width(K)) double.
    """
    cdef Py_ssize_t V = nwk.shape[0]
    cdef int K = <int>nk.shape[0]
    cdef Py_ssize_t v
    cdef int k
    cdef int32_t c
    cdef int64_t o
    cdef vbf_sweep_ctx ctx
    keep = _setup_sweep(&ctx, "sweep_sparse", doc_ptr, words, slice_of, block_ptr, z, ndk,
                        nwk, nk, cursor, scratch_i, scratch_d, sparse_scratch_width(K),
                        wl_ptr.shape[0] == V + 1 and wlen.shape[0] == V
                        and 2 * wl_ptr[V] <= wlist.shape[0],
                        alpha, eta, seed, chain, sweep_index, n_threads)
    for v in range(V):
        if (wl_ptr[v] & 15) or wl_ptr[v + 1] - wl_ptr[v] < min(<int64_t>K, 0 + _row_sum(nwk, v)):
            raise ValueError("sweep_sparse: word %d has too little room in wlist" % v)
    with nogil:
        # the words' lists, in topic order: blocks of 16 topics then their 16 counts
        for v in prange(V, schedule='static', num_threads=n_threads):
            o = 2 * wl_ptr[v]
            c = 0
            for k in range(K):
                if nwk[v, k] > 0:
                    wlist[o + ((c >> 4) << 5) + (c & 15)] = k
                    wlist[o + ((c >> 4) << 5) + (c & 15) + 16] = nwk[v, k]
                    c = c + 1
            wlen[v] = c
    ctx.Kp = (K + 15) & ~15
    ctx.sparse = 1
    ctx.wl_ptr = &wl_ptr[0]
    ctx.wlist = &wlist[0]
    ctx.wlen = &wlen[0]
    _run_sweep(&ctx, n_threads)
    with nogil:
        # n_kw back from the lists
        for v in prange(V, schedule='static', num_threads=n_threads):
            memset(&nwk[v, 0], 0, K * sizeof(int32_t))
            o = 2 * wl_ptr[v]
            for c in range(wlen[v]):
                nwk[v, wlist[o + ((c >> 4) << 5) + (c & 15)]] = \
                    wlist[o + ((c >> 4) << 5) + (c & 15) + 16]
    _check_order("sweep_sparse", doc_ptr, cursor)


cdef int64_t _row_sum(const int32_t[:, ::1] a, Py_ssize_t i) noexcept nogil:
    cdef int64_t s = 0
    cdef Py_ssize_t k
    for k in range(a.shape[1]):
        s += a[i, k]
    return s


cdef void _sweep_omp(const vbf_sweep_ctx* c, int n_threads) noexcept nogil:
    """The sub-steps as plain OpenMP loops (one thread, or no vbf_sweep_worker): the same
    draws."""
    cdef Py_ssize_t s, b
    for s in range(c.B):
        for b in prange(c.B, schedule='dynamic', chunksize=1, num_threads=n_threads):
            vbf_sweep_pair(c, s, b)
        vbf_fold_nk(c)


cdef struct _Table:
    # lg(c) = sign (lgamma(c + a) - lgamma(a)) for counts c >= 0: from ``table`` below n, by
    # scipy's gammaln (the function the table was made with, so the same bits) from n on.
    # The tables are capped (``TABLE_CAP``) so that one huge document or word does not cost
    # 8 bytes of table per token.
    const double* table
    int64_t n
    double a, lg_a, sign


cdef inline double _lg(const _Table* T, int64_t c) noexcept nogil:
    if c < T.n:
        return T.table[c]
    if T.sign > 0:
        return gammaln(<double>c + T.a) - T.lg_a
    return T.lg_a - gammaln(<double>c + T.a)


cdef double _table_sum(const int32_t* counts, int64_t n, const _Table* T) noexcept nogil:
    """sum_i lg(counts[i]), in order."""
    cdef int64_t i
    cdef double a0 = 0.0, a1 = 0.0
    # two running sums: half the latency of one; fixed order, so the same for any thread
    for i in range(0, n - 1, 2):
        a0 += _lg(T, counts[i])
        a1 += _lg(T, counts[i + 1])
    if n & 1:
        a0 += _lg(T, counts[n - 1])
    return a0 + a1


def log_joint_terms(const int64_t[::1] doc_ptr, const int32_t[:, ::1] ndk,
                    const int32_t[:, ::1] nwk, const int64_t[::1] doc_block_ptr,
                    const int64_t[::1] word_block_ptr, const double[::1] lg_alpha,
                    const double[::1] lg_doclen, const double[::1] lg_eta,
                    double[::1] doc_block_lj, double[::1] word_block_lj, int n_threads,
                    double alpha=float("nan"), double eta=float("nan")):
    """The count terms of the log joint, by fixed blocks (sum them in order for the total).

    doc_block_lj[b] = sum over documents d of block b of
        lg_doclen[N_d] + sum_k lg_alpha[n_dk],
        with lg_alpha[n] = lgamma(n + alpha) - lgamma(alpha) and
        lg_doclen[n] = lgamma(K alpha) - lgamma(n + K alpha);
    word_block_lj[b] = sum over words w of block b of sum_k lg_eta[n_kw]
        (lg_eta[n] = lgamma(n + eta) - lgamma(eta)).
    The n_k terms K lgamma(V eta) - sum_k lgamma(n_k + V eta) are left to the caller.
    The tables may stop short of the largest count: beyond their end the terms are computed
    by scipy's gammaln from ``alpha`` and ``eta`` (the same values as a table entry).
    """
    cdef Py_ssize_t Bd = doc_block_ptr.shape[0] - 1
    cdef Py_ssize_t Bw = word_block_ptr.shape[0] - 1
    cdef Py_ssize_t D = ndk.shape[0]
    cdef Py_ssize_t V = nwk.shape[0]
    cdef int64_t K = ndk.shape[1]
    cdef Py_ssize_t b
    cdef int64_t d
    cdef double acc
    if (doc_ptr.shape[0] != D + 1 or nwk.shape[1] != K or doc_block_ptr[Bd] != D
            or word_block_ptr[Bw] != V or doc_block_lj.shape[0] != Bd
            or word_block_lj.shape[0] != Bw or n_threads < 1):
        raise ValueError("log_joint_terms: inconsistent array shapes")
    cdef _Table ta, td, te
    ta.table = &lg_alpha[0]
    ta.n = lg_alpha.shape[0]
    ta.a = alpha
    ta.lg_a = gammaln(alpha)
    ta.sign = 1.0
    td.table = &lg_doclen[0]
    td.n = lg_doclen.shape[0]
    td.a = K * alpha
    td.lg_a = gammaln(K * alpha)
    td.sign = -1.0
    te.table = &lg_eta[0]
    te.n = lg_eta.shape[0]
    te.a = eta
    te.lg_a = gammaln(eta)
    te.sign = 1.0
    with nogil:
        for b in prange(Bd, schedule='dynamic', chunksize=1, num_threads=n_threads):
            acc = _table_sum(&ndk[0, 0] + doc_block_ptr[b] * K,
                             (doc_block_ptr[b + 1] - doc_block_ptr[b]) * K, &ta)
            for d in range(doc_block_ptr[b], doc_block_ptr[b + 1]):
                acc = acc + _lg(&td, doc_ptr[d + 1] - doc_ptr[d])
            doc_block_lj[b] = acc
        for b in prange(Bw, schedule='dynamic', chunksize=1, num_threads=n_threads):
            word_block_lj[b] = _table_sum(&nwk[0, 0] + word_block_ptr[b] * K,
                                          (word_block_ptr[b + 1] - word_block_ptr[b]) * K,
                                          &te)


def order_tokens(const int64_t[::1] doc_ptr, int32_t[::1] words, const int32_t[::1] slice_of,
                 const int64_t[::1] block_ptr):
    """Reorder, in place, the tokens of each document of block b by (slice_of[word] - b) mod B
    (stably): the order of the sweep's sub-steps. The same order as a stable argsort of
    (document, key) over all tokens, without its N-sized int64 temporaries: each document's
    tokens are handled as runs of one word (a CSR entry repeated), counting-sorted by key.
    Workspace: O(B + the most runs in a document)."""
    cdef Py_ssize_t B = block_ptr.shape[0] - 1
    cdef Py_ssize_t D = doc_ptr.shape[0] - 1
    cdef Py_ssize_t b, d, i, r, n_runs, max_runs = 0
    cdef int64_t p, q, L
    cdef int32_t key
    if B < 1 or block_ptr[B] != D or doc_ptr[D] != words.shape[0]:
        raise ValueError("order_tokens: inconsistent array shapes")
    for d in range(D):  # runs of each document, for the workspace's size
        n_runs = 0
        for p in range(doc_ptr[d], doc_ptr[d + 1]):
            if p == doc_ptr[d] or words[p] != words[p - 1]:
                n_runs += 1
        if n_runs > max_runs:
            max_runs = n_runs
    run_word_a = np.empty(max_runs, np.int32)
    run_len_a = np.empty(max_runs, np.int64)
    run_key_a = np.empty(max_runs, np.int32)
    offset_a = np.empty(B + 1, np.int64)
    cdef int32_t[::1] run_word = run_word_a
    cdef int64_t[::1] run_len = run_len_a
    cdef int32_t[::1] run_key = run_key_a
    cdef int64_t[::1] offset = offset_a
    with nogil:
        for b in range(B):
            for d in range(block_ptr[b], block_ptr[b + 1]):
                n_runs = 0
                p = doc_ptr[d]
                while p < doc_ptr[d + 1]:
                    q = p + 1
                    while q < doc_ptr[d + 1] and words[q] == words[p]:
                        q += 1
                    run_word[n_runs] = words[p]
                    run_len[n_runs] = q - p
                    run_key[n_runs] = <int32_t>((slice_of[words[p]] - b + B) % B)
                    n_runs += 1
                    p = q
                for i in range(B + 1):
                    offset[i] = 0
                for r in range(n_runs):
                    offset[run_key[r] + 1] += run_len[r]
                offset[0] = doc_ptr[d]
                for i in range(B):
                    offset[i + 1] += offset[i]
                for r in range(n_runs):
                    key = run_key[r]
                    for L in range(run_len[r]):
                        words[offset[key] + L] = run_word[r]
                    offset[key] += run_len[r]


def word_frequencies(const int32_t[::1] words, Py_ssize_t V):
    """(V,) int64 number of tokens of each word (np.bincount without its int64 copy of
    ``words``)."""
    freq_a = np.zeros(V, np.int64)
    cdef int64_t[::1] freq = freq_a
    cdef Py_ssize_t i, N = words.shape[0]
    for i in range(N):
        if words[i] < 0 or words[i] >= V:
            raise ValueError("a word index is out of range")
    with nogil:
        for i in range(N):
            freq[words[i]] += 1
    return freq_a


def chain_counts(const int64_t[::1] doc_ptr, const int32_t[::1] words, const int32_t[::1] z,
                 int32_t[:, ::1] ndk, int32_t[:, ::1] nwk, int32_t[::1] nk):
    """The count tables of the assignments z, overwritten: ndk (D, K), nwk (V, K), nk (K,)
    (np.bincount without its N-sized int64 temporaries)."""
    cdef Py_ssize_t D = doc_ptr.shape[0] - 1, N = words.shape[0], d
    cdef Py_ssize_t V = nwk.shape[0], K = nk.shape[0]
    cdef int64_t p
    if (z.shape[0] != N or doc_ptr[D] != N or ndk.shape[0] != D or ndk.shape[1] != K
            or nwk.shape[1] != K):
        raise ValueError("chain_counts: inconsistent array shapes")
    for p in range(N):
        if z[p] < 0 or z[p] >= K or words[p] < 0 or words[p] >= V:
            raise ValueError("chain_counts: a topic or word is out of range")
    ndk_a = np.asarray(ndk)
    ndk_a[:] = 0
    np.asarray(nwk)[:] = 0
    np.asarray(nk)[:] = 0
    with nogil:
        for d in range(D):
            for p in range(doc_ptr[d], doc_ptr[d + 1]):
                ndk[d, z[p]] += 1
                nwk[words[p], z[p]] += 1
                nk[z[p]] += 1
