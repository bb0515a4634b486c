# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Kernels of the online (stochastic variational) LDA step outside the E-step.

The online method keeps lambda_kw = scale mu_wk + shift with mu (V, K) word-major (see
``vbfast.topics.lda.OnlineTopics``); a mini-batch's pass needs the topics at its own words
only. ``gather_topics`` computes them into buffers the caller allocates once per fit, so that
a mini-batch allocates no (V_b, K) arrays (fresh pages cost page faults and zeroing at every
mini-batch): one kernel call per mini-batch for the pass's topic inputs.
"""
from cython.parallel cimport prange
from libc.math cimport exp, log, INFINITY
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

import numpy as np

cdef extern from "_lda_kernels.h":
    # scikit-learn's digamma (fast_psi)
    double _psi_fast "vbf_psi_sklearn"(double x) noexcept nogil
    void vbf_psi_totals(int K, const double* totals, int fast, double* out) noexcept nogil
    void vbf_expectation_given_total(int K, const double* lam, const double* psi_total,
                                     double* elog, double* t) noexcept nogil

cdef extern from "_lda_online_kernels.h":
    int vbf_online_eight_lanes() noexcept nogil
    void vbf_online_expectation(Py_ssize_t n, int K, const double* lam, const double* psi_pat,
                                double* elog, double* t) noexcept nogil


# The eight-lane expectation where the CPU has it (``_set_eight_lanes(False)``: the four-lane
# rows, for tests comparing the two).
cdef bint _eight_lanes_allowed = True


def _set_eight_lanes(bint allowed):
    """For tests: False forces the four-lane rows; returns the previous setting."""
    global _eight_lanes_allowed
    previous = _eight_lanes_allowed
    _eight_lanes_allowed = allowed
    return previous


def _eight_lanes():
    """Whether ``gather_topics`` runs the eight-lane expectation (this CPU and the setting)."""
    return bool(vbf_online_eight_lanes() and _eight_lanes_allowed)


# Words per chunk of the parallel loop: each chunk by one thread, its own topic_max slot.
cdef Py_ssize_t _CHUNK = 512


cdef void _gather_chunk(const double* mu, Py_ssize_t K_mu, const long long* words,
                        Py_ssize_t i0, Py_ssize_t i1, int K, double scale, double shift,
                        const double* totals, const double* psi_total, const double* psi_pat,
                        bint mean_field, bint fast, bint eight_lanes, double* B, Py_ssize_t Kp,
                        double* log_B, double* chunk_max) noexcept nogil:
    """Rows i0..i1-1 of B and log_B (the words words[i0:i1]) and their per-topic maxima."""
    cdef Py_ssize_t i, n = i1 - i0
    cdef int k
    cdef double e, b
    cdef double* lb
    cdef double* bi
    cdef double* t
    cdef const double* m
    for i in range(i0, i1):
        m = mu + words[i] * K_mu
        lb = log_B + i * K
        for k in range(K):
            lb[k] = scale * m[k] + shift
    if mean_field and not fast and not eight_lanes:
        for i in range(i0, i1):
            vbf_expectation_given_total(K, log_B + i * K, psi_total, log_B + i * K, B + i * Kp)
    elif mean_field and not fast:
        # the rows of log_B are consecutive: one flat sweep over the chunk's entries, t
        # written straight into B when its rows are unpadded (Kp = K), else through a copy
        t = B + i0 * Kp if Kp == K else <double*>malloc(n * K * sizeof(double))
        vbf_online_expectation(n * K, K, log_B + i0 * K, psi_pat, log_B + i0 * K, t)
        if Kp != K:
            for i in range(n):
                memcpy(B + (i0 + i) * Kp, t + i * K, K * sizeof(double))
            free(t)
    else:
        for i in range(i0, i1):
            lb = log_B + i * K
            bi = B + i * Kp
            for k in range(K):
                if mean_field:
                    e = _psi_fast(lb[k]) - psi_total[k]
                    lb[k] = e
                    bi[k] = exp(e)
                else:
                    b = lb[k] / totals[k]
                    bi[k] = b
                    lb[k] = log(b) if b > 0 else -INFINITY
    for k in range(K):
        chunk_max[k] = 0.0
    for i in range(i0, i1):
        bi = B + i * Kp
        for k in range(K):
            if bi[k] > chunk_max[k]:
                chunk_max[k] = bi[k]


def gather_topics(const double[:, ::1] mu, const long long[::1] words, double scale,
                  double shift, const double[::1] totals, bint mean_field, bint fast_psi,
                  double[:, ::1] B, double[:, ::1] log_B, double[::1] topic_max,
                  int n_threads=1):
    """The pass's inputs from the topics lambda_kw = scale mu_wk + shift at some words only,
    written into the caller's buffers.

    Mean field: E[log beta_kw] = psi(lambda_kw) - psi(totals_k), B_wk = exp(E[log beta_kw])
    (value for value as ``_lda.dirichlet_expectation`` computes a topic's row, given its
    total); point topics: B_wk = lambda_kw / totals_k and log B_wk.

    Parameters
    ----------
    mu : (V, K) float64, word-major
    words : (V_b,) int64 word ids, each in [0, V)
    scale, shift : lambda = scale mu + shift, entry by entry
    totals : (K,) sum_w lambda_kw over the whole vocabulary, > 0
    mean_field : exp(E[log beta]) (True) or beta itself (False)
    fast_psi : scikit-learn's approximate digamma
    B : (>= V_b, Kp) float64 OUT, Kp = K rounded up to 4: rows 0..V_b-1, columns 0..K-1
        overwritten; the padding columns are not written (the caller keeps them zero for the
        pass, e.g. a ``_lda.pad_topics`` buffer)
    log_B : (>= V_b, K) float64 OUT, rows 0..V_b-1 overwritten: log B (E[log beta])
    topic_max : (K,) float64 OUT, max over the words of B_wk (0 without words)
    n_threads : OpenMP threads over chunks of words (each entry is computed alone and the
        maximum does not depend on the order: the result does not depend on it)
    """
    cdef Py_ssize_t V = mu.shape[0], Vb = words.shape[0], i, c, n_chunks
    cdef int K = <int>mu.shape[1], Kp = (K + 3) // 4 * 4, k
    if totals.shape[0] != K or topic_max.shape[0] != K:
        raise ValueError("totals and topic_max must have K = mu.shape[1] entries")
    if B.shape[0] < Vb or B.shape[1] != Kp or log_B.shape[0] < Vb or log_B.shape[1] != K:
        raise ValueError("B must be (>= len(words), K rounded up to 4) and log_B "
                         "(>= len(words), K)")
    if n_threads < 1:
        raise ValueError("n_threads must be positive")
    for i in range(Vb):
        if words[i] < 0 or words[i] >= V:
            raise ValueError("a word index is out of range")
    for k in range(K):
        if not totals[k] > 0:
            raise ValueError("totals must be positive")
    topic_max[:] = 0.0
    if Vb == 0 or K == 0:
        return
    psi_total_arr = np.zeros(K)
    cdef double[::1] psi_total = psi_total_arr
    if mean_field:
        vbf_psi_totals(K, &totals[0], fast_psi, &psi_total[0])
    # psi(total_k) repeated along the flat entries: psi_pat[i] = psi_total[i mod K]
    psi_pat_arr = psi_total_arr[np.arange(K + 16) % K]
    cdef double[::1] psi_pat = psi_pat_arr
    cdef bint eight_lanes = vbf_online_eight_lanes() and _eight_lanes_allowed
    n_chunks = (Vb + _CHUNK - 1) // _CHUNK
    chunk_max_arr = np.empty((n_chunks, K))
    cdef double[:, ::1] chunk_max = chunk_max_arr
    with nogil:
        for c in prange(n_chunks, schedule='dynamic', chunksize=1, num_threads=n_threads):
            _gather_chunk(&mu[0, 0], K, &words[0], c * _CHUNK, min((c + 1) * _CHUNK, Vb), K,
                          scale, shift, &totals[0], &psi_total[0], &psi_pat[0], mean_field,
                          fast_psi, eight_lanes, &B[0, 0], Kp, &log_B[0, 0],
                          &chunk_max[c, 0])
        for c in range(n_chunks):
            for k in range(K):
                if chunk_max[c, k] > topic_max[k]:
                    topic_max[k] = chunk_max[c, k]
