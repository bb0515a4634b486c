# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The LDA pass: per-document variational updates serving every variational method.

For each document d (a row of a CSR document-term matrix with word ids w and counts c_w) the
pass runs scikit-learn's fixed point (``_update_doc_distribution``) from the given gamma_d:

    Elog theta_dk = psi(gamma_dk) - psi(sum_k gamma_dk),   t_k = exp(Elog theta_dk)
    repeat max_iter times:
        norm_w   = sum_k t_k B_wk + eps                     (for each word w of d)
        gamma_dk = t_k sum_w (c_w / norm_w) B_wk + alpha
        t_k      = exp(psi(gamma_dk) - psi(sum_k gamma_dk))
        stop when mean_k |gamma_dk(old) - gamma_dk(new)| < tol

where B_wk is exp(E[log beta_kw]) for mean field over the topics (Dirichlet q(beta)), or the
topic-word probabilities themselves for variational EM with point-estimate topics. B is passed
word-major, (V, K), so the K values of one word are contiguous.

Topics whose gamma_dk has reached alpha exactly are skipped by later sweeps of the document,
under a check at each sweep that they could not have changed a bit of gamma; those within
alpha 2^-24 of alpha are frozen, swept as one row, their gamma set at the end, which agrees
with the full sweeps to rounding (see ``_fixed_point``).

After the loop, with the final t, the pass accumulates the expected topic-word statistics

    S_wk += t_k c_w / (sum_k t_k B_wk + eps)      (the caller multiplies by B_wk)

and the per-document terms of the variational bound (scikit-learn's ``_approx_bound``):

    word term  sum_w c_w log sum_k exp(Elog theta_dk + log B_wk)
    doc term   sum_k [(alpha - gamma_dk) Elog theta_dk + lgamma(gamma_dk) - lgamma(alpha)]
               + lgamma(K alpha) - lgamma(sum_k gamma_dk)

Determinism: documents are cut into G groups of consecutive documents (G chosen by the caller
from the data size only); a group is processed by one thread, in document order, into its own
bound slot. The topic-word statistics are not accumulated per group: the pass leaves, per
(document, word) entry, the ratio c_w / (sum_k t_k B_wk + eps) and per document t, and
``word_topic_stats`` sums them word by word, each word by one thread in document order. The
result is therefore bitwise identical for any number of threads, and needs no (G, V, K) slots.
"""
from cython.parallel cimport prange, parallel, threadid
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memset, memcpy
from libc.math cimport exp, log, fabs, INFINITY
from scipy.special.cython_special cimport gammaln

import numpy as np

ctypedef fused floating:
    float
    double

ctypedef fused index_t:
    int
    long long


cdef extern from "_lda_kernels.h":
    # scikit-learn's digamma (fast_psi)
    double _psi_fast "vbf_psi_sklearn"(double x) noexcept nogil
    void vbf_psi_totals(int K, const double* totals, int fast, double* out) noexcept nogil
    double vbf_dot(int K, const double* t, const double* row) noexcept nogil
    void vbf_dots(Py_ssize_t n, int Kp, const double* const* rows, const double* t,
                  double* out) noexcept nogil
    void vbf_update(Py_ssize_t n, int K, const double* const* rows, const double* cnt,
                    const double* t, double eps, double* ratio, double* acc) noexcept nogil
    void vbf_update_live(Py_ssize_t n4, int Ka, const double* const* rows, const double* cnt,
                         const double* t, double eps, double* ratio, double* acc,
                         const double* inv_cnt, double* sums, double* lanes) noexcept nogil
    void vbf_topic_major(Py_ssize_t n, int Kp, const double* const* rows, Py_ssize_t n4,
                         double* out) noexcept nogil
    void vbf_dirichlet_expectation(int K, const double* gamma, double* elog,
                                   double* t) noexcept nogil
    void vbf_exp_expectation_total(int K, const double* gamma, double total,
                                   double* t) noexcept nogil
    void vbf_expectation_given_total(int K, const double* lam, const double* psi_total,
                                     double* elog, double* t) noexcept nogil
    void vbf_digamma_n(int n, const double* x, double* out) noexcept nogil
    void vbf_topic_term_row(int K, const double* lam, const double* psi_total, double eta,
                            double* out) noexcept nogil
    void vbf_lgamma_n(Py_ssize_t n, const double* x, double* out) noexcept nogil
    void vbf_topic_total(Py_ssize_t V, const double* lam, double eta, double* total_out,
                         double* psi_total, double* term, int* in_range) noexcept nogil
    void vbf_topics_chunk(int K, Py_ssize_t V, Py_ssize_t w0, Py_ssize_t w1,
                          const double* lam, const double* psi_total, double eta, int Kp,
                          double* elog, double* B, double* tmp, double* topic_max,
                          double* term, int* in_range) noexcept nogil
    void vbf_log_n(Py_ssize_t n, const double* x, double* out) noexcept nogil
    int vbf_lda_lanes
    int vbf_cpu_avx512f() noexcept nogil
    void vbf_word_topic_row(long long i0, long long i1, const long long* pos,
                            const long long* doc, const double* ratio, const double* t,
                            int K, const double* B_w, double* o,
                            int accumulate) noexcept nogil
    void vbf_word_topic_docs_i32(Py_ssize_t n, const int* indptr, const int* indices,
                                 const double* ratio, const double* t, int K, Py_ssize_t lo,
                                 Py_ssize_t hi, double* ws) noexcept nogil
    void vbf_word_topic_docs_i64(Py_ssize_t n, const long long* indptr,
                                 const long long* indices, const double* ratio,
                                 const double* t, int K, Py_ssize_t lo, Py_ssize_t hi,
                                 double* ws) noexcept nogil


cdef inline void _expectation(int K, const double* gamma_d, double* elog, double* t,
                              bint fast) noexcept nogil:
    """elog_k = psi(gamma_k) - psi(sum gamma), t_k = exp(elog_k): vectorised (accurate to about
    1e-15, ``vbf_dirichlet_expectation``), or with scikit-learn's approximate digamma."""
    cdef int k
    cdef double total = 0.0, psi_total
    if not fast:
        vbf_dirichlet_expectation(K, gamma_d, elog, t)
        return
    for k in range(K):
        total = total + gamma_d[k]
    psi_total = _psi_fast(total)
    for k in range(K):
        elog[k] = _psi_fast(gamma_d[k]) - psi_total
        t[k] = exp(elog[k])


cdef inline void _exp_expectation_total(int K, const double* gamma_c, double total,
                                        double* t, bint fast) noexcept nogil:
    """t_i = exp(psi(gamma_c[i]) - psi(total)), i < K: some topics' t, the total over all."""
    cdef int i
    cdef double psi_total
    if not fast:
        vbf_exp_expectation_total(K, gamma_c, total, t)
        return
    psi_total = _psi_fast(total)
    for i in range(K):
        t[i] = exp(_psi_fast(gamma_c[i]) - psi_total)


cdef inline void _exp_expectation(int K, const double* gamma_d, double* t,
                                  bint fast) noexcept nogil:
    """t_k = exp(psi(gamma_k) - psi(sum gamma)) alone, for the fixed point's sweeps."""
    cdef int k
    cdef double total = 0.0
    for k in range(K):
        total = total + gamma_d[k]
    _exp_expectation_total(K, gamma_d, total, t, fast)


# Topics with alpha < gamma_k <= alpha (1 + _FREEZE_REL) are frozen (see _fixed_point): 2^-24.
cdef double _FREEZE_REL = 5.9604644775390625e-08
# Whether topics freeze (``_set_freezing``, for tests).
cdef bint _freezing = True
# A frozen topic whose gamma ends above alpha (1 + _thaw_factor _FREEZE_REL) fails the
# document's freezing (``_set_thaw_factor``, for tests).
cdef double _thaw_factor = 2.0


# A skipped topic's share of any sum of the sweep stays below this fraction of the sum (see
# _fixed_point): 2^-56, a quarter of the half-ulp below which adding it cannot change a double.
cdef double _SKIP_TOL = 1.3877787807814457e-17


cdef double _doc_terms(
    Py_ssize_t n, const double* const* rows, const double* cnt, const index_t* word_ids,
    const double* logB, Py_ssize_t sw, Py_ssize_t sk, int K, int Kp, const double* gamma_d,
    const double* elog, const double* t, double alpha, double lg_alpha, double lg_kalpha,
    double* doc_term, double eps, double* ratio_at, double* s_at, double* log_s,
) noexcept nogil:
    """The document's bound terms at gamma_d (elog, t its expectations): returns the word term
    sum_w c_w log sum_k exp(Elog theta_k + log B_wk) and stores the document term. With
    ``ratio_at`` (not NULL) it also stores ratio_at[j] = c_j / (t . B_wj + eps) from the same
    dot products. log B_wk is logB[w sw + k sk] (any layout: read only where exp underflows).
    s_at, log_s: n doubles of workspace each (the words' s_w = t . B_w, and log s_w by the
    vectorised log)."""
    cdef Py_ssize_t j
    cdef int k
    cdef double word = 0.0, s, c, mx, v = 0.0, total = 0.0
    cdef const double* row
    # the dot products first, their logs together (vectorised), then the sum in word order
    vbf_dots(n, Kp, rows, t, s_at)
    for j in range(n):
        c = cnt[j]
        if c == 0.0:
            if ratio_at != NULL:
                ratio_at[j] = 0.0
            s_at[j] = 1.0
            continue
        s = s_at[j]
        if ratio_at != NULL:
            ratio_at[j] = c / (s + eps)
        s_at[j] = s
    vbf_log_n(n, s_at, log_s)  # (values of s <= 1e-300 unused: the log-sum-exp below)
    for j in range(n):
        c = cnt[j]
        if c == 0.0:
            continue
        if s_at[j] > 1e-300:
            word = word + c * log_s[j]
        else:
            # exp underflowed: log-sum-exp on the logs
            row = logB + <Py_ssize_t>word_ids[j] * sw
            mx = elog[0] + row[0]
            for k in range(1, K):
                if elog[k] + row[k * sk] > mx:
                    mx = elog[k] + row[k * sk]
            s = 0.0
            for k in range(K):
                s = s + exp(elog[k] + row[k * sk] - mx)
            word = word + c * (mx + log(s))
    for k in range(K):
        v = v + (alpha - gamma_d[k]) * elog[k] + (gammaln(gamma_d[k]) - lg_alpha)
        total = total + gamma_d[k]
    doc_term[0] = v + (lg_kalpha - gammaln(total))
    return word


cdef struct _LdaPass:
    # What every document of one pass shares, built once by lda_pass.
    # IN
    const double* B            # (V, Kp) exp(E[log beta]) or beta, rows padded with zeros
    const double* logB         # (V, K) log B, for the bound where exp underflows, with
    Py_ssize_t logB_sw, logB_sk  # its strides in doubles (the topics' (K, V) E[log beta].T)
    const double* topic_max    # (>= K,) max_w B_wk, bounding a skipped topic's share
    int K, Kp                  # topics, and K rounded up to 4
    int max_iter
    double alpha, tol, eps
    double lg_alpha, lg_kalpha  # lgamma(alpha), lgamma(K alpha)
    bint fast                  # scikit-learn's approximate digamma
    bint do_bound              # the bound terms (and keep-better with gamma_prev)
    Py_ssize_t block_cap       # doubles for a document's topic-major copy of B
    # OUT
    double* ratio_out          # (nnz,) c_p / (t_d . B_wp + eps) by absolute position; NULL: skip


cdef struct _DocWork:
    # One thread's workspace (allocated once, _work_alloc) and the state of the document in
    # hand (set by _doc_load and the sweeps). Arrays of Kp start on 64 bytes.
    double* gamma_d            # IN/OUT (K,) the document's gamma
    Py_ssize_t n, n4           # its distinct words, and that rounded up to 8
    const double** rows        # (n,) its words' rows of B
    double* cnt                # (n4,) its counts, zero past n
    double* inv_cnt            # (n4,) 1 / cnt where cnt > 0, else 0
    double* t                  # (Kp,) exp(E[log theta]) (word-major sweeps, and at the end)
    double* elog               # (Kp,) E[log theta] at the end
    double* acc                # (Kp,) the word-major sweep's sums
    double* ratio              # (n4,) the sweep's c_j / (t . B_wj + eps)
    double* t_prev             # (Kp,) t, and
    double* elog_prev          # (Kp,) E[log theta], of gamma_prev (keep-better)
    double* log_s              # (n,) the bound's log sum_k t_k B_wk (_doc_terms)
    # the topic-major sweeps over the live topics (see _fixed_point)
    bint blocked               # the document has a topic-major copy
    bint may_drop              # dead topics may still leave the list
    double* block              # ((Kp + 1) n4) the copy, the last row zeros
    const double** live_rows   # (Kp + 1,) the live topics' rows of the copy, then zero rows
    int* live                  # (Kp + 1,) the live topics
    int Ka, Ka4                # live topics, and that rounded up to 4
    double* live_t             # (Kp,) their t, zeros past Ka
    double* live_gamma         # (Kp + 1,) their gamma, then alpha (the dropped topics')
    double* live_acc           # (Kp,) the live sweep's sums
    double* live_lanes         # (8 Kp,) the eight-lane live sweep's partial sums
    double t_dead              # the dropped topics' common t
    double dead_max, dead_sum  # max and sum of topic_max over the dropped topics
    int outcome                # 0: no topic dropped or frozen, 1: some, 2: a check failed
    # the frozen topics (gamma_k within alpha 2^-24 of alpha, not alpha; see _fixed_point)
    int n_frozen               # how many, listed in frozen[:n_frozen]
    int n_frozen_swept         # frozen[:n_frozen_swept] were frozen in the last sweep
    int* frozen                # (Kp,) the frozen topics, in the order they froze
    double* rho                # (Kp,) their exp(psi(gamma_k) - psi(alpha)), by position
    double* frozen_row         # (n4,) sum over the frozen topics of rho_k B_wk, word by word
    double frozen_gamma        # the sum of their (fixed) gamma
    double t_swept             # t_dead as the last sweep used it
    double* gamma_start        # (Kp,) the document's starting gamma (to redo it)
    # allocations
    double* work_
    double* live_work_
    double* frozen_work_


cdef void _work_alloc(_DocWork* w, int Kp, Py_ssize_t max_nnz,
                      Py_ssize_t block_cap) noexcept nogil:
    # t and t_prev are Kp long with zero padding (the sweep reads them Kp at a time), and
    # start on 64 bytes (malloc gives 16), so no 32-byte load of t straddles cache lines
    w.work_ = <double*>calloc(5 * Kp + 3 * max_nnz + 32, sizeof(double))
    w.t = <double*>((<size_t>w.work_ + 63) & ~(<size_t>63))
    w.rows = <const double**>malloc((max_nnz + 1) * sizeof(double*))
    w.elog = w.t + Kp
    w.acc = w.t + 2 * Kp
    w.cnt = w.t + 3 * Kp
    w.ratio = w.cnt + max_nnz + 8
    w.t_prev = w.ratio + max_nnz + 8
    w.elog_prev = w.t_prev + Kp
    w.log_s = w.elog_prev + Kp
    w.live_work_ = <double*>calloc(11 * (Kp + 8) + max_nnz + block_cap + 32, sizeof(double))
    w.live_lanes = <double*>((<size_t>w.live_work_ + 63) & ~(<size_t>63))
    w.live_t = w.live_lanes + 8 * (Kp + 8)
    w.live_gamma = w.live_t + Kp + 8
    w.live_acc = w.live_gamma + Kp + 8
    w.inv_cnt = w.live_acc + Kp + 8
    w.block = <double*>((<size_t>(w.inv_cnt + max_nnz + 8) + 63) & ~(<size_t>63))
    w.live_rows = <const double**>malloc((Kp + 1) * sizeof(double*))
    w.live = <int*>malloc((Kp + 1) * sizeof(int))
    w.frozen_work_ = <double*>calloc(max_nnz + 2 * Kp + 32, sizeof(double))
    w.frozen_row = <double*>((<size_t>w.frozen_work_ + 63) & ~(<size_t>63))
    w.rho = w.frozen_row + max_nnz + 8
    w.gamma_start = w.rho + Kp
    w.frozen = <int*>malloc((Kp + 1) * sizeof(int))


cdef void _work_free(_DocWork* w) noexcept nogil:
    free(w.work_)
    free(w.rows)
    free(w.live_work_)
    free(w.live_rows)
    free(w.live)
    free(w.frozen_work_)
    free(w.frozen)


cdef inline void _all_topics_live(const _LdaPass* P, _DocWork* w,
                                  const double* t) noexcept nogil:
    """List every topic live, in order: live_rows[k] is the block's row k (for the padding
    k >= K its zero row, Kp), live_t[k] = t[k] (t NULL: zeros), zero past K."""
    cdef int k, K = P.K, Kp = P.Kp
    cdef Py_ssize_t n4 = w.n4
    for k in range(Kp):
        w.live[k] = k
        w.live_rows[k] = w.block + (k if k < K else Kp) * n4
        w.live_t[k] = t[k] if k < K and t != NULL else 0.0
    w.Ka = K
    w.Ka4 = Kp


cdef void _doc_load(const _LdaPass* P, _DocWork* w, Py_ssize_t n, const index_t* word_ids,
                    const floating* counts, double* gamma_d) noexcept nogil:
    """Stage 1: the document's rows of B and counts, its topic-major copy if it fits in
    block_cap, every topic live, and t of the starting gamma."""
    cdef Py_ssize_t j, n4 = (n + 7) // 8 * 8
    cdef int Kp = P.Kp
    w.gamma_d = gamma_d
    w.n = n
    w.n4 = n4
    for j in range(n):
        w.rows[j] = P.B + <Py_ssize_t>word_ids[j] * Kp
        w.cnt[j] = <double>counts[j]
        w.inv_cnt[j] = 1.0 / w.cnt[j] if w.cnt[j] > 0.0 else 0.0
    for j in range(n, n4):
        w.cnt[j] = 0.0
        w.inv_cnt[j] = 0.0
    w.blocked = (Kp + 1) * n4 <= P.block_cap
    w.may_drop = w.blocked
    w.outcome = 0
    w.t_dead = 0.0
    w.dead_max = 0.0
    w.dead_sum = 0.0
    w.n_frozen = 0
    w.n_frozen_swept = 0
    w.frozen_gamma = 0.0
    # The sweeps need t alone; E[log theta] is computed once, after them.
    if w.blocked:
        memcpy(w.gamma_start, gamma_d, P.K * sizeof(double))
        vbf_topic_major(n, Kp, w.rows, n4, w.block)
        memset(w.block + Kp * n4, 0, n4 * sizeof(double))  # the row the padding points at
        _all_topics_live(P, w, NULL)
        _exp_expectation(P.K, gamma_d, w.live_t, P.fast)
    else:
        _exp_expectation(P.K, gamma_d, w.t, P.fast)


cdef double _sweep_word_major(const _LdaPass* P, _DocWork* w) noexcept nogil:
    """One sweep over every topic from B's rows (a document without a topic-major copy):
    gamma and t updated; returns sum_k |change of gamma_k|."""
    cdef int k, K = P.K
    cdef double v, change = 0.0, alpha = P.alpha
    cdef double* gamma_d = w.gamma_d
    vbf_update(w.n, P.Kp, w.rows, w.cnt, w.t, P.eps, w.ratio, w.acc)
    for k in range(K):
        v = w.t[k] * w.acc[k] + alpha
        change = change + fabs(gamma_d[k] - v)
        gamma_d[k] = v
    _exp_expectation(K, gamma_d, w.t, P.fast)
    return change


cdef inline bint _dropped_negligible(const _LdaPass* P, const _DocWork* w,
                                     const double* sums) noexcept nogil:
    """The check of a sweep without the dropped topics (see _fixed_point); sums: R =
    sum_w ratio_w and max_w 1 / s_w from vbf_update_live."""
    return (w.t_dead * w.dead_max * sums[0] < P.alpha * _SKIP_TOL
            and w.t_dead * w.dead_sum * sums[1] < _SKIP_TOL)


cdef void _revive_all(const _LdaPass* P, _DocWork* w) noexcept nogil:
    """After a failed check: every topic live again with its current t (the dead ones'
    t_dead, the frozen ones' rho_k t_dead), and no more dropping in this document."""
    cdef int i, k
    for k in range(P.K):
        w.t[k] = w.t_dead
    for i in range(w.n_frozen):
        w.t[w.frozen[i]] = w.rho[i] * w.t_dead
    for i in range(w.Ka):
        w.t[w.live[i]] = w.live_t[i]
    _all_topics_live(P, w, w.t)
    w.n_frozen = 0
    w.n_frozen_swept = 0
    w.frozen_gamma = 0.0
    w.may_drop = False
    w.outcome = 2


cdef inline double _freeze_limit(const _LdaPass* P) noexcept nogil:
    """gamma_k up to this (and above alpha) freezes topic k (see _fixed_point); alpha
    (nothing freezes) after ``_set_freezing(False)``."""
    return P.alpha + P.alpha * _FREEZE_REL if _freezing else P.alpha


cdef void _drop_dead(const _LdaPass* P, _DocWork* w) noexcept nogil:
    """The topics whose gamma reached alpha leave the live list (their rows stay in the
    block, unread), and those within the freezing limit of it join the frozen row; the
    list's padding points at the zero row."""
    cdef int i, k, m = 0, f, f0 = w.n_frozen
    cdef Py_ssize_t j, n4 = w.n4
    cdef double alpha = P.alpha, limit = _freeze_limit(P), g, rho
    cdef const double* row
    for i in range(w.Ka):
        k = w.live[i]
        g = w.gamma_d[k]
        if g == alpha:
            w.dead_sum = w.dead_sum + P.topic_max[k]
            if P.topic_max[k] > w.dead_max:
                w.dead_max = P.topic_max[k]
        elif g <= limit:
            w.frozen[w.n_frozen] = k
            w.live_gamma[w.n_frozen - f0] = g  # (scratch until _live_expectation)
            w.frozen_gamma = w.frozen_gamma + g
            w.n_frozen = w.n_frozen + 1
        else:
            w.live[m] = k
            w.live_rows[m] = w.live_rows[i]
            m = m + 1
    if w.n_frozen > f0:
        # their t relative to t_dead, rho_k = exp(psi(gamma_k) - psi(alpha)), in one call
        # (lane for lane the values of one call each), and their rows into frozen_row
        _exp_expectation_total(w.n_frozen - f0, w.live_gamma, alpha, w.rho + f0, P.fast)
        for f in range(f0, w.n_frozen):
            rho = w.rho[f]
            row = w.block + w.frozen[f] * n4
            if f == 0:
                for j in range(n4):
                    w.frozen_row[j] = rho * row[j]
            else:
                for j in range(n4):
                    w.frozen_row[j] = w.frozen_row[j] + rho * row[j]
    w.Ka = m
    if w.n_frozen > 0:  # the frozen topics' row after the live ones'
        w.live_rows[m] = w.frozen_row
        m = m + 1
    w.Ka4 = (m + 3) // 4 * 4
    for i in range(m, w.Ka4):
        w.live_rows[i] = w.block + P.Kp * w.n4
    if w.outcome == 0:
        w.outcome = 1


cdef void _live_expectation(const _LdaPass* P, _DocWork* w) noexcept nogil:
    """t of the live topics at the new gamma, and t_dead (the dropped topics', whose gamma is
    alpha), with psi of the total over all K topics."""
    cdef int i, K = P.K, Ka = w.Ka
    cdef double total = 0.0
    if Ka == K:
        _exp_expectation(K, w.gamma_d, w.live_t, P.fast)
        return
    for i in range(Ka):
        w.live_gamma[i] = w.gamma_d[w.live[i]]
        total = total + w.live_gamma[i]
    total = total + ((K - Ka - w.n_frozen) * P.alpha + w.frozen_gamma)
    w.live_gamma[Ka] = P.alpha  # the dropped topics' common t, in the same call
    _exp_expectation_total(Ka + 1, w.live_gamma, total, w.live_t, P.fast)
    w.t_dead = w.live_t[Ka]
    for i in range(Ka, w.Ka4):  # the padding the sweep reads
        w.live_t[i] = 0.0
    if w.n_frozen > 0:  # the frozen row's t (its rho_k inside)
        w.live_t[Ka] = w.t_dead


cdef double _sweep_live(const _LdaPass* P, _DocWork* w) noexcept nogil:
    """One sweep over the live topics from the topic-major copy (redone over all topics if
    the dropped ones might have counted), gamma updated, the topics that died dropped, t
    updated; returns sum_k |change of gamma_k|."""
    cdef int i, k, n_dead = 0
    cdef double v, change = 0.0, alpha = P.alpha
    cdef double sums[2]
    cdef double* gamma_d = w.gamma_d
    cdef const int* live = w.live
    cdef const double* live_t = w.live_t
    cdef const double* live_acc = w.live_acc
    cdef double limit = _freeze_limit(P)
    w.n_frozen_swept = w.n_frozen
    w.t_swept = w.t_dead
    vbf_update_live(w.n4, w.Ka + (w.n_frozen > 0), w.live_rows, w.cnt, w.live_t, P.eps,
                    w.ratio, w.live_acc, w.inv_cnt, sums, w.live_lanes)
    if w.Ka + w.n_frozen < P.K and not _dropped_negligible(P, w, sums):
        _revive_all(P, w)
        vbf_update_live(w.n4, w.Ka, w.live_rows, w.cnt, w.live_t, P.eps, w.ratio,
                        w.live_acc, w.inv_cnt, sums, w.live_lanes)
    for i in range(w.Ka):
        k = live[i]
        v = live_t[i] * live_acc[i] + alpha
        change = change + fabs(gamma_d[k] - v)
        gamma_d[k] = v
        if v <= limit:
            n_dead = n_dead + 1
    if w.may_drop and n_dead > 0:
        _drop_dead(P, w)
    _live_expectation(P, w)
    return change


cdef void _fixed_point(const _LdaPass* P, _DocWork* w) noexcept nogil:
    """Stage 2: the fixed point's sweeps, at most max_iter, until the mean change of gamma is
    below tol.

    The sweeps run on a topic-major copy of the document's values of B (``block``, Kp rows
    of its words rounded up to 8, built once; ``vbf_update_live``), over the topics listed
    in ``live`` (a document whose copy would exceed ``block_cap`` doubles is swept
    word-major from B's rows, over all topics, ``vbf_update``).

    Skipping dead topics. Within a few sweeps most of a document's topics reach gamma_k =
    alpha exactly (t_k acc_k below half an ulp of alpha), and there they do nothing but cost:
    about 70 % of the sweeps' multiply-adds on the benchmark corpus. A topic that dies is
    dropped from the list (its row stays in the block, unread). Each sweep with topics
    dropped checks, from its own results, that they could not have mattered: with
    R = sum_w ratio_w, s_w the live dot products and M_k = max_w B_wk over the whole
    vocabulary (``topic_max``),
        t_dead M_k R < alpha 2^-56        so t_k acc_k could not have moved gamma_k off alpha,
        t_dead sum_k M_k / s_w < 2^-56    so no word's sum_k t_k B_wk lost a representable bit
    (t_dead: the dropped topics' common t; the ratios computed without them bound the true
    ones from above). If either fails, the sweep is redone over every topic and the document
    finished without dropping any. The gamma of dropped topics is therefore exactly what the
    full sweep gives, and the others differ only by the rounding of their sums.

    Freezing topics. With a larger alpha (1/K = 0.05 on the real corpus) no gamma_k reaches
    alpha exactly (t_k acc_k stays ~5e-10), but most settle within 1e-9 of it, and they
    were ~70 % of the sweeps' multiply-adds. A topic with alpha < gamma_k <= alpha (1 +
    2^-24) is frozen: its gamma is held, and since t_k = exp(psi(gamma_k) - psi(alpha)) t_dead
    = rho_k t_dead, the frozen topics' share of every word's dot product is t_dead
    sum_k rho_k B_wk, one row (``frozen_row``, built as they freeze) swept after the live
    ones with t_dead. Held rather than moved, a frozen gamma_k differs from the full sweeps'
    by less than alpha 2^-23, which moves its t_k by a relative psi'(alpha) alpha 2^-23 and
    the dot products (where the frozen topics weigh ~1e-10) below their rounding. After the
    last sweep each topic frozen through it gets the gamma that sweep gives it,
    rho_k t_dead sum_j ratio_j B_wj,k + alpha (``_thaw``); if one lands above alpha (1 +
    2^-23) it was not settled, and the document is redone from its starting gamma without
    dropping or freezing. gamma and everything after agree with the full sweeps to rounding
    (the lanes' own differences: ~1e-12 relative after a fixed point that stops at tol)."""
    cdef int it
    cdef double change
    for it in range(P.max_iter):
        if w.blocked:
            change = _sweep_live(P, w)
        else:
            change = _sweep_word_major(P, w)
        if change / P.K < P.tol:
            break
    if w.n_frozen_swept > 0 and not _thaw(P, w):
        # a frozen topic left the frozen range: the document again, every topic live
        memcpy(w.gamma_d, w.gamma_start, P.K * sizeof(double))
        _all_topics_live(P, w, NULL)
        _exp_expectation(P.K, w.gamma_d, w.live_t, P.fast)
        w.n_frozen = 0
        w.n_frozen_swept = 0
        w.frozen_gamma = 0.0
        w.dead_max = 0.0
        w.dead_sum = 0.0
        w.may_drop = False
        w.outcome = 2
        for it in range(P.max_iter):
            if _sweep_live(P, w) / P.K < P.tol:
                break


cdef bint _thaw(const _LdaPass* P, _DocWork* w) noexcept nogil:
    """The gamma of the topics frozen through the last sweep, as that sweep gives it:
    gamma_k = rho_k t_swept sum_j ratio_j B_wj,k + alpha (its ratios, its t of them); False
    if one of them left the frozen range (_thaw_factor times the freezing limit): the
    freezing is not trusted then."""
    cdef int f, k
    cdef double acc, v, alpha = P.alpha
    cdef bint ok = True
    for f in range(w.n_frozen_swept):
        k = w.frozen[f]
        # (n4 words: the ratios past the document's n are zero)
        acc = vbf_dot(<int>w.n4, w.ratio, w.block + k * w.n4)
        v = (w.rho[f] * w.t_swept) * acc + alpha
        if v - alpha > _thaw_factor * alpha * _FREEZE_REL:
            ok = False
        w.gamma_d[k] = v
    return ok


cdef void _keep_better(const _LdaPass* P, _DocWork* w, const index_t* word_ids,
                       const double* gamma_prev_d, double* word, double* doc,
                       double* ratio_out_d) noexcept nogil:
    """Stage 4 (with gamma_prev): keep the better of this pass's result and the previous
    pass's gamma (evaluated at the current topics), so that the bound never decreases from
    pass to pass; word and doc are the kept gamma's terms, ratio_out_d its ratios."""
    cdef int k
    cdef Py_ssize_t j
    cdef double word_prev, doc_prev
    _expectation(P.K, gamma_prev_d, w.elog_prev, w.t_prev, P.fast)
    word_prev = _doc_terms(w.n, w.rows, w.cnt, word_ids, P.logB, P.logB_sw, P.logB_sk, P.K,
                           P.Kp, gamma_prev_d,
                           w.elog_prev, w.t_prev, P.alpha, P.lg_alpha, P.lg_kalpha,
                           &doc_prev, P.eps, <double*>NULL, w.ratio, w.log_s)
    if word_prev + doc_prev > word[0] + doc[0]:
        for k in range(P.K):
            w.gamma_d[k] = gamma_prev_d[k]
            w.elog[k] = w.elog_prev[k]
            w.t[k] = w.t_prev[k]
        word[0] = word_prev
        doc[0] = doc_prev
        if ratio_out_d != NULL:  # the ratios of the gamma kept
            _doc_ratios(P, w, ratio_out_d)


cdef inline void _doc_ratios(const _LdaPass* P, const _DocWork* w,
                             double* ratio_out_d) noexcept nogil:
    """ratio_out_d[j] = c_j / (t . B_wj + eps) at the document's final t."""
    cdef Py_ssize_t j
    vbf_dots(w.n, P.Kp, w.rows, w.t, ratio_out_d)  # the dot products, then the ratios
    for j in range(w.n):
        ratio_out_d[j] = w.cnt[j] / (ratio_out_d[j] + P.eps)


cdef int _doc(const _LdaPass* P, _DocWork* w, Py_ssize_t p0, Py_ssize_t p1,
              const index_t* indices, const floating* data, double* gamma_d,
              const double* gamma_prev_d, double* t_out, double* bound) noexcept nogil:
    """One document through the stages: load (_doc_load), fixed point (_fixed_point), its
    final t and E[log theta], the bound terms (_doc_terms) and keep-better (_keep_better)
    when wanted, the outputs (t_out, the ratios). Returns w.outcome (see _DocWork)."""
    cdef int k
    cdef double word, doc
    cdef double* ratio_out_d = (P.ratio_out + p0) if P.ratio_out != NULL else <double*>NULL
    _doc_load(P, w, p1 - p0, indices + p0, data + p0, gamma_d)
    _fixed_point(P, w)
    # Stage 3: t and elog of the final gamma by the full expectation, whatever is wanted
    # next (so that the ratios and t_out do not depend on whether the bound is)
    _expectation(P.K, gamma_d, w.elog, w.t, P.fast)
    if P.do_bound:
        # the ratios come with the bound's dot products
        word = _doc_terms(w.n, w.rows, w.cnt, indices + p0, P.logB, P.logB_sw, P.logB_sk,
                          P.K, P.Kp, gamma_d,
                          w.elog, w.t, P.alpha, P.lg_alpha, P.lg_kalpha, &doc, P.eps,
                          ratio_out_d, w.ratio, w.log_s)
        if gamma_prev_d != NULL:
            _keep_better(P, w, indices + p0, gamma_prev_d, &word, &doc, ratio_out_d)
        bound[0] = bound[0] + word
        bound[1] = bound[1] + doc
    elif ratio_out_d != NULL:
        _doc_ratios(P, w, ratio_out_d)
    if t_out != NULL:
        for k in range(P.K):
            t_out[k] = w.t[k]
    return w.outcome


def lda_pass(
    const index_t[::1] indptr,
    const index_t[::1] indices,
    const floating[::1] data,
    const double[:, ::1] B,
    const double[:, :] logB,
    double[:, ::1] gamma,
    double alpha,
    int max_iter,
    double tol,
    double eps,
    double[::1] ratio_out,
    double[:, ::1] t_out,
    double[:, ::1] bound_slots,
    int n_threads,
    bint fast_psi=False,
    const double[:, ::1] gamma_prev=None,
    const double[::1] topic_max=None,
    Py_ssize_t max_block=1 << 20,
):
    """One pass over the documents: fixed point for gamma, what the statistics need, bound terms.

    Parameters
    ----------
    indptr, indices, data : the CSR arrays of N documents (indices int32 or int64, same type as
        indptr; data float32 or float64). ``indptr`` may be a slice of a larger matrix's
        (``indptr[0] > 0``): positions p in ``indices``/``data`` are absolute.
    B : (V, K) or (V, Kp) float64, word-major exp(E[log beta]) (mean field) or beta (point
        topics). The sweep wants rows padded with zeros to Kp = K rounded up to a multiple of
        4; B given so (``pad_topics``) is used as it is, a (V, K) B is copied padded.
    logB : (V, K) float64, its logarithm (used only where the bound's exp underflows), or
        (0, 0) when the bound is not wanted; any strides (the transpose of the topics' (K, V)
        E[log beta], without a copy)
    gamma : (N, K) float64, initial gamma on entry, the fitted gamma on exit
    alpha : the document-topic prior
    max_iter, tol : the fixed point's iteration cap and mean-change tolerance
    eps : added to the normaliser sum_k t_k B_wk (scikit-learn uses the dtype's eps)
    ratio_out : (>= indptr[N],) float64; on exit ratio_out[p] = c_p / (t_d . B_wp + eps) for each
        position p of the N documents, at the final t_d; length 0 to skip
    t_out : (N, K) float64; on exit t_d = exp(E[log theta_d]) at the final gamma; (0, 0) to skip.
        With ``ratio_out`` this is all ``word_topic_stats`` needs.
    bound_slots : (G, 2) per-group [word term, doc term], overwritten; G is its first
        dimension and fixes the grouping of documents
    n_threads : OpenMP threads
    fast_psi : use scikit-learn's approximate digamma instead of the accurate one
    gamma_prev : (N, K) or None; with the bound wanted, each document keeps whichever of its
        fixed point's result and gamma_prev has the higher bound terms (at the current
        topics), so that the batch bound cannot decrease between passes
    topic_max : (>= K,) float64 or None: max_w B_wk for each topic (``topic_max``; computed
        here when None), which bounds what a skipped topic could add to a sweep (see _fixed_point)
    max_block : doubles a thread may use for a document's topic-major copy of B (8 MB by
        default); a document that needs more is swept word-major, without dropping topics

    Returns
    -------
    (n_skipping, n_redone) : documents whose sweeps skipped dead topics or froze some, and
        among them those where a check failed and a sweep (or, a freezing failing, the
        document) was redone over all topics (see _fixed_point)
    """
    cdef Py_ssize_t N = gamma.shape[0]
    cdef int K = <int>gamma.shape[1]
    cdef Py_ssize_t V = B.shape[0]
    cdef Py_ssize_t G = bound_slots.shape[0]
    cdef bint do_ratio = ratio_out.shape[0] > 0
    cdef bint do_t = t_out.shape[0] > 0
    cdef bint do_bound = logB.shape[0] > 0
    cdef Py_ssize_t per_group, g, d, nnz, max_nnz = 0
    cdef double lg_alpha = gammaln(alpha), lg_kalpha = gammaln(K * alpha)
    cdef double dummy = 0.0
    cdef int Kp = (K + 3) // 4 * 4
    cdef const double[:, ::1] Bp = B
    cdef const index_t* ind_ptr
    cdef const floating* data_ptr
    cdef Py_ssize_t block_cap
    cdef _LdaPass P
    cdef _DocWork* w
    cdef int outcome

    if indptr.shape[0] != N + 1:
        raise ValueError("indptr must have N + 1 entries")
    if K < 1 or (B.shape[1] != K and B.shape[1] != Kp):
        raise ValueError("B must be (V, K), or (V, Kp) padded with zeros to Kp = K rounded up "
                         "to a multiple of 4, with K = gamma.shape[1] >= 1")
    if B.shape[1] == Kp and Kp > K:
        for d in range(V):
            for g in range(K, Kp):
                if B[d, g] != 0.0:
                    raise ValueError("B's padding columns (K to Kp) must be zero")
    elif Kp > K:
        Bp = pad_topics(B)
    if G < 1 or bound_slots.shape[1] != 2:
        raise ValueError("bound_slots must be (G, 2) with G >= 1")
    if do_bound and (logB.shape[0] != V or logB.shape[1] != K):
        raise ValueError("logB must have the shape of B")
    if do_t and (t_out.shape[0] != N or t_out.shape[1] != K):
        raise ValueError("t_out must be (N, K) or (0, 0)")
    if n_threads < 1 or max_iter < 0:
        raise ValueError("n_threads must be positive and max_iter non-negative")
    cdef bint do_prev = gamma_prev is not None
    if do_prev and (gamma_prev.shape[0] != N or gamma_prev.shape[1] != K or not do_bound):
        raise ValueError("gamma_prev must have the shape of gamma, and needs the bound (logB)")
    nnz = indptr[N] if N > 0 else 0
    if indices.shape[0] < nnz or data.shape[0] < nnz:
        raise ValueError("indices and data are shorter than indptr says")
    if do_ratio and ratio_out.shape[0] < nnz:
        raise ValueError("ratio_out is shorter than indptr says")
    if N > 0 and indptr[0] < 0:
        raise ValueError("indptr must be non-negative")
    for d in range(N):
        if indptr[d + 1] - indptr[d] > max_nnz:
            max_nnz = indptr[d + 1] - indptr[d]
        if indptr[d + 1] < indptr[d]:
            raise ValueError("indptr must be non-decreasing")
    for d in range(indptr[0] if N > 0 else 0, nnz):
        if indices[d] < 0 or indices[d] >= V:
            raise ValueError("a word index is out of range")

    if topic_max is None:  # max_w B_wk (B >= 0, so 0 for an empty vocabulary)
        topic_max = np.asarray(Bp)[:, :K].max(axis=0, initial=0.0)
    elif topic_max.shape[0] < K:
        raise ValueError("topic_max must have at least K entries")
    cdef const double* topic_max_ptr = &topic_max[0]
    # The topic-major copy of a document's values of B (Kp + 1 rows of its words rounded up
    # to 8, the last one zeros), at most max_block doubles a thread: longer documents are
    # swept word-major, without dropping dead topics.
    block_cap = min((max_nnz + 7) // 8 * 8 * (Kp + 1), max(max_block, 0))

    memset(&bound_slots[0, 0], 0, G * 2 * sizeof(double))
    if N == 0:
        return 0, 0
    # per group: documents whose sweeps skipped dead topics, and those where a check failed
    skip_counts_arr = np.zeros((G, 3), dtype=np.int64)
    cdef long long[:, ::1] skip_counts = skip_counts_arr
    per_group = (N + G - 1) // G
    ind_ptr = &indices[0] if nnz > 0 else <const index_t*>NULL
    data_ptr = &data[0] if nnz > 0 else <const floating*>NULL
    cdef double* t_ptr = &t_out[0, 0] if do_t else <double*>NULL
    cdef double* gamma_ptr = &gamma[0, 0]
    cdef const double* gamma_prev_ptr = &gamma_prev[0, 0] if do_prev else <const double*>NULL
    cdef double* bound_ptr = &bound_slots[0, 0]
    cdef const index_t* indptr_ptr = &indptr[0]
    P.B = &Bp[0, 0]
    P.logB = &logB[0, 0] if do_bound else &dummy
    P.logB_sw = logB.strides[0] // sizeof(double) if do_bound else 0
    P.logB_sk = logB.strides[1] // sizeof(double) if do_bound else 0
    P.topic_max = topic_max_ptr
    P.K = K
    P.Kp = Kp
    P.max_iter = max_iter
    P.alpha = alpha
    P.tol = tol
    P.eps = eps
    P.lg_alpha = lg_alpha
    P.lg_kalpha = lg_kalpha
    P.fast = fast_psi
    P.do_bound = do_bound
    P.block_cap = block_cap
    P.ratio_out = &ratio_out[0] if do_ratio else <double*>NULL

    # Groups are handed out dynamically (documents differ in their number of fixed-point
    # iterations); each group's work and slot do not depend on which thread runs it.
    with nogil, parallel(num_threads=n_threads):
        w = <_DocWork*>calloc(1, sizeof(_DocWork))
        _work_alloc(w, Kp, max_nnz, block_cap)
        for g in prange(G, schedule='dynamic'):
            for d in range(g * per_group, min((g + 1) * per_group, N)):
                outcome = _doc(
                    &P, w, indptr_ptr[d], indptr_ptr[d + 1], ind_ptr, data_ptr,
                    gamma_ptr + d * K,
                    (gamma_prev_ptr + d * K) if do_prev else <const double*>NULL,
                    (t_ptr + d * K) if do_t else <double*>NULL, bound_ptr + 2 * g)
                skip_counts[g, outcome] += 1
        _work_free(w)
        free(w)
    return int(skip_counts_arr[:, 1].sum() + skip_counts_arr[:, 2].sum()), \
        int(skip_counts_arr[:, 2].sum())


def pad_topics(B):
    """B (V, K), any strides (the transpose of the (K, V) topics, say), copied once into
    (V, Kp) float64 with zero columns K..Kp-1, Kp = K rounded up to a multiple of 4: the layout
    ``lda_pass`` sweeps without scalar tails. The copy starts on a 64-byte boundary, so every
    row (Kp * 8 bytes, a multiple of 32) starts on a 32-byte one and no 32-byte load of the
    sweep straddles two cache lines (numpy's own large arrays start 16 bytes past a boundary:
    measured 10-17 % slower sweeps)."""
    B = np.asarray(B)
    if B.ndim != 2:
        raise ValueError("B must be 2-D (V, K)")
    cdef Py_ssize_t V = B.shape[0], K = B.shape[1], Kp = (K + 3) // 4 * 4
    buf = np.zeros(V * Kp + 8)
    offset = (-buf.ctypes.data % 64) // 8
    out = buf[offset:offset + V * Kp].reshape(V, Kp)
    out[:, :K] = B
    return out


def is_aligned(const double[:, ::1] B):
    """Whether B starts on a 64-byte boundary (as ``pad_topics`` makes it)."""
    return B.shape[0] == 0 or (<size_t>&B[0, 0]) % 64 == 0


def word_major_pattern(const index_t[::1] indptr, const index_t[::1] indices, Py_ssize_t V):
    """The transpose of a CSR pattern, for ``word_topic_stats``: a stable counting sort.

    Returns (word_ptr (V + 1,), word_pos (nnz,), word_doc (nnz,)), int64: the entries of word w
    are word_pos[word_ptr[w]:word_ptr[w + 1]] (absolute positions in ``indices``), in document
    order, and word_doc holds their document (row) numbers, 0-based from ``indptr``'s first row.
    """
    cdef Py_ssize_t N = indptr.shape[0] - 1, d, p, w, p0
    if N < 0:
        raise ValueError("indptr must have at least one entry")
    p0 = indptr[0]
    cdef Py_ssize_t nnz = indptr[N] - p0
    word_ptr_arr = np.zeros(V + 1, dtype=np.int64)
    word_pos_arr = np.empty(nnz, dtype=np.int64)
    word_doc_arr = np.empty(nnz, dtype=np.int64)
    cdef long long[::1] word_ptr = word_ptr_arr
    cdef long long[::1] word_pos = word_pos_arr
    cdef long long[::1] word_doc = word_doc_arr
    cdef long long[::1] fill
    for p in range(p0, p0 + nnz):
        w = indices[p]
        if w < 0 or w >= V:
            raise ValueError("a word index is out of range")
        word_ptr[w + 1] += 1
    for w in range(V):
        word_ptr[w + 1] += word_ptr[w]
    fill_arr = word_ptr_arr[:V].copy()
    fill = fill_arr
    with nogil:
        for d in range(N):
            for p in range(indptr[d], indptr[d + 1]):
                w = indices[p]
                word_pos[fill[w]] = p
                word_doc[fill[w]] = d
                fill[w] += 1
    return word_ptr_arr, word_pos_arr, word_doc_arr


# Words per group of ``word_topic_stats``' topic-major output (a thread's group: its rows in a
# _WT_GROUP x K workspace, then runs of _WT_GROUP doubles in each of out's K rows).
cdef Py_ssize_t _WT_GROUP = 64


def word_topic_stats(const long long[::1] word_ptr, const long long[::1] word_pos,
                     const long long[::1] word_doc, const double[::1] ratio,
                     const double[:, ::1] t, const double[:, ::1] B, double[:, ::1] out,
                     int n_threads, bint accumulate=False, bint scale=True,
                     bint topic_major=False):
    """Expected topic-word counts, word-major: out[w, k] = B[w, k] sum_d ratio_dw t_dk
    (with ``topic_major``, topic-major: out[k, w], the same values).

    The sum runs over the documents containing w, in document order (``word_major_pattern``),
    each word by one thread: bitwise the same for any thread count, and no per-thread copies
    of the (V, K) statistics.

    Parameters
    ----------
    word_ptr, word_pos, word_doc : from ``word_major_pattern``
    ratio : (nnz,) c_dw / (t_d . B_w + eps) from ``lda_pass``, by absolute position
    t : (N, K) exp(E[log theta_d]) from ``lda_pass``
    B : (V, K) or (V, Kp), what ``lda_pass`` was fed
    out : (V, K) float64, or (K, V) with ``topic_major``; overwritten
    accumulate : continue the sums from ``out`` (the unscaled sums over earlier documents)
        instead of from zero: documents passed block by block, each call continuing the
        previous block's sums and the last one scaling, give the bits of one call over all
    scale : multiply by B at the end (else ``out`` holds the unscaled sums)
    topic_major : out is (K, V), lambda's layout, so that the batch update adds eta in place
        instead of transposing (V, K) into a new K x V array: groups of _WT_GROUP words, each
        group's rows summed as above into a thread's workspace, then copied into out's
        columns
    """
    cdef Py_ssize_t V = out.shape[1 if topic_major else 0], K = out.shape[0 if topic_major else 1]
    cdef Py_ssize_t w, i, k, d, p
    if word_ptr.shape[0] != V + 1 or B.shape[0] != V or B.shape[1] < K or t.shape[1] != K:
        raise ValueError("word_ptr, B, t and out disagree in shape")
    if V == 0 or K == 0:
        return
    cdef Py_ssize_t m = word_ptr[V]
    if word_pos.shape[0] < m or word_doc.shape[0] < m:
        raise ValueError("word_pos and word_doc are shorter than word_ptr says")
    for i in range(m):
        if word_doc[i] < 0 or word_doc[i] >= t.shape[0] or word_pos[i] < 0 \
                or word_pos[i] >= ratio.shape[0]:
            raise ValueError("word_doc or word_pos out of range")
    cdef const double* t_ptr = &t[0, 0] if t.shape[0] > 0 else <const double*>NULL
    cdef const double* ratio_ptr = &ratio[0] if ratio.shape[0] > 0 else <const double*>NULL
    cdef const long long* pos_ptr = &word_pos[0] if word_pos.shape[0] > 0 else NULL
    cdef const long long* doc_ptr = &word_doc[0] if word_doc.shape[0] > 0 else NULL
    if topic_major:
        _word_topic_groups(word_ptr, pos_ptr, doc_ptr, ratio_ptr, t_ptr, B, out, n_threads,
                           accumulate, scale)
        return
    with nogil:
        for w in prange(V, schedule='static', num_threads=n_threads):
            vbf_word_topic_row(word_ptr[w], word_ptr[w + 1], pos_ptr, doc_ptr, ratio_ptr,
                               t_ptr, <int>K, &B[w, 0] if scale else <const double*>NULL,
                               &out[w, 0], accumulate)


cdef void _word_topic_groups(const long long[::1] word_ptr, const long long* pos_ptr,
                             const long long* doc_ptr, const double* ratio_ptr,
                             const double* t_ptr, const double[:, ::1] B, double[:, ::1] out,
                             int n_threads, bint accumulate, bint scale):
    """``word_topic_stats`` into out (K, V): groups of _WT_GROUP words in parallel, each
    word's row by ``vbf_word_topic_row`` (the word-major call's bits) into the thread's
    workspace, then copied into out's columns."""
    cdef Py_ssize_t K = out.shape[0], V = out.shape[1], w, k, c, j, w0, w1
    cdef Py_ssize_t n_groups = (V + _WT_GROUP - 1) // _WT_GROUP
    n_threads = <int>max(1, min(n_threads, n_groups))
    tile_arr = np.empty((n_threads, _WT_GROUP * K))
    cdef double[:, ::1] tile = tile_arr
    cdef int tid
    with nogil, parallel(num_threads=n_threads):
        for c in prange(n_groups, schedule='dynamic', chunksize=1):
            tid = threadid()
            w0 = c * _WT_GROUP
            w1 = min(w0 + _WT_GROUP, V)
            if accumulate:
                for k in range(K):
                    for j in range(w1 - w0):
                        tile[tid, j * K + k] = out[k, w0 + j]
            for w in range(w0, w1):
                vbf_word_topic_row(word_ptr[w], word_ptr[w + 1], pos_ptr, doc_ptr, ratio_ptr,
                                   t_ptr, <int>K, &B[w, 0] if scale else <const double*>NULL,
                                   &tile[tid, (w - w0) * K], accumulate)
            for k in range(K):
                for j in range(w1 - w0):
                    out[k, w0 + j] = tile[tid, j * K + k]


def word_topic_stats_by_document(const index_t[::1] indptr, const index_t[::1] indices,
                                 const double[::1] ratio, const double[:, ::1] t,
                                 const double[:, ::1] B, double[:, ::1] work,
                                 double[:, ::1] out, int n_threads=1):
    """``word_topic_stats(*word_major_pattern(indptr, indices, V), ratio, t, B, out, ...,
    topic_major=True)``, the same bits, without the word-major pattern: the documents'
    entries are added in document order into ``work`` (V, K) (for each word and topic the
    terms of the word-major sum, in its order), then out[k, w] = work[w, k] B[w, k]. With
    n_threads > 1 each thread takes a range of the words (V / n_threads) and reads every
    entry, adding those of its words: the same bits for any thread count. For V K doubles
    that fit in L2 (each entry's row of ``work`` is a random access).

    Parameters
    ----------
    indptr, indices : the CSR pattern of the N documents (``indptr`` may be a slice: positions
        absolute)
    ratio, t, B : as ``word_topic_stats``
    work : (V, K) float64 workspace, overwritten
    out : (K, V) float64, overwritten
    n_threads : OpenMP threads (and ranges of words)
    """
    cdef Py_ssize_t N = indptr.shape[0] - 1, K = out.shape[0], V = out.shape[1], p, w, k
    cdef Py_ssize_t part, lo, hi
    if N < 0 or t.shape[0] != N or t.shape[1] != K or B.shape[0] != V or B.shape[1] < K \
            or work.shape[0] != V or work.shape[1] != K:
        raise ValueError("indptr, t, B, work and out disagree in shape")
    if n_threads < 1:
        raise ValueError("n_threads must be positive")
    if V == 0 or K == 0:
        return
    cdef Py_ssize_t p0 = indptr[0] if N > 0 else 0, p1 = indptr[N] if N > 0 else 0
    if p0 < 0 or p1 < p0 or indices.shape[0] < p1 or ratio.shape[0] < p1:
        raise ValueError("indices or ratio are shorter than indptr says")
    for p in range(N):
        if indptr[p + 1] < indptr[p]:
            raise ValueError("indptr must be non-decreasing")
    for p in range(p0, p1):
        if indices[p] < 0 or indices[p] >= V:
            raise ValueError("a word index is out of range")
    cdef Py_ssize_t n_parts = min(n_threads, V)
    with nogil:
        for part in prange(n_parts, schedule='dynamic', chunksize=1, num_threads=n_parts):
            lo = V * part // n_parts
            hi = V * (part + 1) // n_parts
            memset(&work[lo, 0], 0, (hi - lo) * K * sizeof(double))
            if p1 > p0:
                if index_t is int:
                    vbf_word_topic_docs_i32(N, &indptr[0], &indices[0], &ratio[0], &t[0, 0],
                                            <int>K, lo, hi, &work[0, 0])
                else:
                    vbf_word_topic_docs_i64(N, &indptr[0], &indices[0], &ratio[0], &t[0, 0],
                                            <int>K, lo, hi, &work[0, 0])
            for w in range(lo, hi):
                for k in range(K):
                    out[k, w] = work[w, k] * B[w, k]


def dirichlet_expectation(const double[:, ::1] gamma, bint fast_psi=False, int n_threads=1):
    """(E[log theta], exp(E[log theta])) row by row, as the pass computes them: psi(gamma_dk) -
    psi(sum_k gamma_dk) for gamma (N, K) > 0, rows in parallel (each row by one thread, so the
    result does not depend on ``n_threads``). Used for the topics' E[log beta] (K rows of V)
    and by the tests of the vectorised special functions."""
    cdef Py_ssize_t N = gamma.shape[0], d, k
    cdef int K = <int>gamma.shape[1]
    elog_arr = np.empty((N, K))
    t_arr = np.empty((N, K))
    cdef double[:, ::1] elog = elog_arr
    cdef double[:, ::1] t = t_arr
    cdef double v
    for d in range(N):
        for k in range(K):
            v = gamma[d, k]
            if not v > 0 or v == float("inf"):
                raise ValueError("gamma must be positive and finite")
    if N == 0 or K == 0:
        return elog_arr, t_arr
    if n_threads < 1:
        raise ValueError("n_threads must be positive")
    with nogil:
        for d in prange(N, schedule='static', num_threads=n_threads):
            _expectation(K, &gamma[d, 0], &elog[d, 0], &t[d, 0], fast_psi)
    return elog_arr, t_arr


# Words per chunk of ``topic_term_word_major``'s parallel loop: each chunk's sum by one
# thread into its own slot, the slots added in order (the same bits for any thread count).
cdef Py_ssize_t _TERM_CHUNK = 512


cdef double _topic_term_rows(const double[:, ::1] lam, Py_ssize_t w0, Py_ssize_t w1,
                             const double* psi_total, double* psi_row, double eta,
                             const double* totals, bint mean_field,
                             bint fast_psi) noexcept nogil:
    """Words w0..w1-1's share of ``topic_term_word_major``'s sum over the words, in order
    (psi_row: K doubles of workspace)."""
    cdef Py_ssize_t w
    cdef int K = <int>lam.shape[1], k
    cdef double acc = 0.0, row_acc, x, psi_x
    cdef bint in_range
    for w in range(w0, w1):
        row_acc = 0.0
        if mean_field:
            in_range = not fast_psi
            for k in range(K):
                if not (lam[w, k] > 1e-290 and lam[w, k] < 1e290):
                    in_range = False
            if in_range:
                vbf_topic_term_row(K, &lam[w, 0], psi_total, eta, &row_acc)
                acc = acc + row_acc
                continue
            if not fast_psi:
                vbf_digamma_n(K, &lam[w, 0], psi_row)
            for k in range(K):
                x = lam[w, k]
                psi_x = _psi_fast(x) if fast_psi else psi_row[k]
                row_acc = row_acc + ((eta - x) * (psi_x - psi_total[k]) + gammaln(x))
        else:
            for k in range(K):
                x = lam[w, k] / totals[k]
                row_acc = row_acc + eta * (log(x) if x > 0 else -INFINITY)
        acc = acc + row_acc
    return acc


def topic_term_word_major(const double[:, ::1] lam, const double[::1] totals, double eta,
                          bint mean_field, bint fast_psi=False, int n_threads=1):
    """The bound's topic term from lambda stored word-major, (V, K), in one sweep and without
    K x V temporaries (the online methods' bound of every epoch; ``Topics.topic_term`` is the
    same sum from the (K, V) arrays):

    mean field   sum_kw [(eta - lambda_kw) E[log beta_kw] + lgamma(lambda_kw) - lgamma(eta)]
                 + sum_k [lgamma(V eta) - lgamma(totals_k)],
                 E[log beta_kw] = psi(lambda_kw) - psi(totals_k)
    point topics sum_kw eta log(lambda_kw / totals_k)

    ``totals`` (K,) are sum_w lambda_kw. Summed word by word in order within chunks of
    _TERM_CHUNK words, the chunks' sums (each by one of ``n_threads`` OpenMP threads) added in
    order: the same bits for any thread count. With the accurate digamma, a word's lgamma
    terms come from a vectorised lgamma (``lgamma_vector``: absolute error ~1e-15 |lgamma|,
    the sum's ~1e-15 relative); words with a lambda outside (1e-290, 1e290) use scipy's
    gammaln, as ``fast_psi`` does."""
    cdef Py_ssize_t V = lam.shape[0], c, n_chunks
    cdef int K = <int>lam.shape[1], k
    cdef double acc = 0.0
    if totals.shape[0] != K:
        raise ValueError("totals must have K = lam.shape[1] entries")
    for k in range(K):
        if not totals[k] > 0:
            raise ValueError("totals must be positive")
    if n_threads < 1:
        raise ValueError("n_threads must be positive")
    if V == 0 or K == 0:
        return 0.0
    psi_total_arr = np.empty(K)
    cdef double[::1] psi_total = psi_total_arr
    if mean_field:
        vbf_psi_totals(K, &totals[0], fast_psi, &psi_total[0])
    n_chunks = (V + _TERM_CHUNK - 1) // _TERM_CHUNK
    chunk_sum_arr = np.empty(n_chunks)
    psi_rows_arr = np.empty((n_chunks, K))  # each chunk's digamma workspace
    cdef double[::1] chunk_sum = chunk_sum_arr
    cdef double[:, ::1] psi_rows = psi_rows_arr
    with nogil:
        for c in prange(n_chunks, schedule='static', num_threads=n_threads):
            chunk_sum[c] = _topic_term_rows(lam, c * _TERM_CHUNK, min((c + 1) * _TERM_CHUNK, V),
                                            &psi_total[0], &psi_rows[c, 0], eta, &totals[0],
                                            mean_field, fast_psi)
        for c in range(n_chunks):
            acc = acc + chunk_sum[c]
    if mean_field:
        acc = acc - <double>V * K * gammaln(eta)
        for k in range(K):
            acc = acc + (gammaln(eta * V) - gammaln(totals[k]))
    return acc


# Words per chunk of ``mean_field_topics``' parallel loop (each chunk's exp transposed into B
# through a K x _TOPIC_CHUNK workspace; its term and maxima in its own slots, added in order).
cdef Py_ssize_t _TOPIC_CHUNK = 256


def mean_field_topics(const double[:, ::1] lam, double eta, int n_threads=1):
    """What the pass and the bound need of mean-field topics lambda (K, V), in one sweep over
    K x V (topics in parallel for the totals, then chunks of _TOPIC_CHUNK words):

    elog      (K, V)  E[log beta_kw] = psi(lambda_kw) - psi(sum_w lambda_kw), the values of
                      ``dirichlet_expectation(lam)[0]``
    B         (V, Kp) exp(elog) word-major, zero-padded and 64-byte aligned: the values of
                      ``pad_topics(dirichlet_expectation(lam)[1].T)``
    topic_max (K,)    max_w B_wk
    term      float   the bound's topic term E[log p(beta | eta)] - E[log q(beta)] =
                      sum_kw [(eta - lambda_kw) elog_kw + lgamma(lambda_kw) - lgamma(eta)]
                      + sum_k [lgamma(V eta) - lgamma(sum_w lambda_kw)], each difference
                      of lgammas by one function (the vectorised lgamma, ~1e-15 |lgamma|), so
                      that lambda = eta contributes exactly 0; None when an argument is
                      outside (1e-290, 1e290) (the caller takes scipy's gammaln then)

    Each topic's total and each chunk's term and maxima by one thread into their own slots,
    added in order: the same bits for any ``n_threads``."""
    cdef Py_ssize_t K = lam.shape[0], V = lam.shape[1], k, c, n_chunks, w0
    cdef int Kp = <int>((K + 3) // 4 * 4)
    cdef double v
    if n_threads < 1:
        raise ValueError("n_threads must be positive")
    for k in range(K):
        for c in range(V):
            v = lam[k, c]
            if not v > 0 or v == INFINITY:
                raise ValueError("lambda must be positive and finite")
    # the chunks write every (word, topic) entry of B: only its padding columns need zeros
    buf = np.empty(V * Kp + 8)
    offset = (-buf.ctypes.data % 64) // 8
    B_arr = buf[offset:offset + V * Kp].reshape(V, Kp)
    if Kp > K:
        B_arr[:, K:] = 0.0
    elog_arr = np.empty((K, V))
    topic_max_arr = np.zeros(K)
    if K == 0 or V == 0:
        return elog_arr, B_arr, topic_max_arr, 0.0
    n_chunks = (V + _TOPIC_CHUNK - 1) // _TOPIC_CHUNK
    totals_arr = np.empty(K)
    psi_arr = np.empty(K)
    topic_terms_arr = np.empty(K)
    chunk_max_arr = np.empty((n_chunks, K))
    chunk_term_arr = np.empty(n_chunks)
    ok_arr = np.ones(n_chunks + K, dtype=np.intc)
    n_threads = <int>min(n_threads, max(K, 1), n_chunks)
    tmp_arr = np.empty((n_threads, K * _TOPIC_CHUNK))
    cdef double[:, ::1] elog = elog_arr, B = B_arr, chunk_max = chunk_max_arr, tmp = tmp_arr
    cdef double[::1] totals = totals_arr, psi = psi_arr, topic_terms = topic_terms_arr
    cdef double[::1] chunk_term = chunk_term_arr, topic_max = topic_max_arr
    cdef int[::1] ok = ok_arr
    cdef double term = 0.0
    with nogil:
        for k in prange(K, schedule='static', num_threads=n_threads):
            vbf_topic_total(V, &lam[k, 0], eta, &totals[k], &psi[k], &topic_terms[k],
                            &ok[n_chunks + k])
        for c in prange(n_chunks, schedule='static', num_threads=n_threads):
            w0 = c * _TOPIC_CHUNK
            vbf_topics_chunk(<int>K, V, w0, min(w0 + _TOPIC_CHUNK, V), &lam[0, 0], &psi[0],
                             eta, Kp, &elog[0, 0], &B[0, 0], &tmp[threadid(), 0],
                             &chunk_max[c, 0], &chunk_term[c], &ok[c])
        for c in range(n_chunks):
            term = term + chunk_term[c]
            for k in range(K):
                if chunk_max[c, k] > topic_max[k]:
                    topic_max[k] = chunk_max[c, k]
        for k in range(K):
            term = term + topic_terms[k]
    if not ok_arr.all():
        return elog_arr, B_arr, topic_max_arr, None
    return elog_arr, B_arr, topic_max_arr, float(term)


def lgamma_vector(const double[::1] x):
    """lgamma of each x by the vectorised lgamma of ``topic_term_word_major`` (for tests); x in
    (1e-290, 1e290)."""
    out = np.empty(x.shape[0])
    cdef double[::1] o = out
    if x.shape[0] > 0:
        vbf_lgamma_n(x.shape[0], &x[0], &o[0])
    return out


def log_vector(const double[::1] x):
    """log of each x by the vectorised log of the bound's word term (``vbf_log_n``: eight
    lanes or four, per ``_set_sweep_lanes``), for tests; x positive and normal."""
    out = np.empty(x.shape[0])
    cdef double[::1] o = out
    if x.shape[0] > 0:
        vbf_log_n(x.shape[0], &x[0], &o[0])
    return out


def add_rows(double[:, ::1] mu, const long long[::1] words, const double[:, ::1] rows,
             double factor, double[::1] totals):
    """mu[words[i], k] += factor rows[i, k] and totals[k] += sum_i factor rows[i, k] (in the
    order of i): the online step on a mini-batch's words. ``words`` must be distinct."""
    cdef Py_ssize_t V = mu.shape[0], Vb = words.shape[0], i, w
    cdef int K = <int>mu.shape[1], k
    cdef double v
    if rows.shape[0] != Vb or rows.shape[1] != K or totals.shape[0] != K:
        raise ValueError("rows must be (len(words), K) and totals (K,) for mu (V, K)")
    for i in range(Vb):
        if words[i] < 0 or words[i] >= V:
            raise ValueError("a word index is out of range")
    with nogil:
        for i in range(Vb):
            w = words[i]
            for k in range(K):
                v = factor * rows[i, k]
                mu[w, k] += v
                totals[k] += v


def exp_expectation(const double[:, ::1] gamma):
    """exp(psi(gamma_dk) - psi(sum_k gamma_dk)) row by row by the sweeps' log-free function
    (``vbf_exp_expectation_total``), for tests."""
    cdef Py_ssize_t N = gamma.shape[0], d, k
    cdef int K = <int>gamma.shape[1]
    t_arr = np.empty((N, K))
    cdef double[:, ::1] t = t_arr
    for d in range(N):
        for k in range(K):
            if not gamma[d, k] > 0 or gamma[d, k] == float("inf"):
                raise ValueError("gamma must be positive and finite")
    for d in range(N):
        _exp_expectation(K, &gamma[d, 0], &t[d, 0], False)
    return t_arr


def _set_freezing(bint on):
    """For tests: False freezes no topic (only those whose gamma is alpha exactly leave the
    sweeps, as before freezing). Returns the previous setting."""
    global _freezing
    previous = _freezing
    _freezing = on
    return previous


def _set_thaw_factor(double factor):
    """For tests: a frozen topic fails its document's freezing when its final gamma is above
    alpha (1 + factor 2^-24) (2 by default; 0 fails every freezing). Returns the previous
    factor."""
    global _thaw_factor
    previous = _thaw_factor
    _thaw_factor = factor
    return previous


def _set_sweep_lanes(int lanes):
    """For tests: 4 forces the four-lane live sweep (AVX2+FMA or the baseline), 0 restores
    the choice by the CPU (eight lanes with AVX-512F). Returns the previous setting."""
    global vbf_lda_lanes
    if lanes not in (0, 4):
        raise ValueError("lanes must be 0 or 4")
    previous = vbf_lda_lanes
    vbf_lda_lanes = lanes
    return previous


def _sweep_lanes():
    """The live sweep's lanes on this CPU at the current setting: 8 or 4 (for tests)."""
    return 8 if vbf_lda_lanes != 4 and vbf_cpu_avx512f() else 4


def _word_dots(const double[:, ::1] B, const long long[::1] word_ids, const double[::1] t):
    """For tests: t . B_w for each word of word_ids (B (V, Kp) padded as the pass takes it, t
    (Kp,)), by vbf_dots and by vbf_dot one word at a time: (dots, dot_each)."""
    cdef Py_ssize_t n = word_ids.shape[0], j
    cdef int Kp = <int>B.shape[1]
    if t.shape[0] != Kp or Kp % 4 != 0:
        raise ValueError("t must have B's Kp entries, a multiple of 4")
    for j in range(n):
        if word_ids[j] < 0 or word_ids[j] >= B.shape[0]:
            raise ValueError("a word index is out of range")
    dots = np.zeros(n)
    each = np.zeros(n)
    cdef double[::1] dots_v = dots, each_v = each
    rows = <const double**>malloc((n + 1) * sizeof(double*))
    for j in range(n):
        rows[j] = &B[word_ids[j], 0]
    if n > 0:
        vbf_dots(n, Kp, rows, &t[0], &dots_v[0])
        for j in range(n):
            each_v[j] = vbf_dot(Kp, &t[0], rows[j])
    free(rows)
    return dots, each
