# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Forward-filtering backward-sampling (FFBS): one draw of every sequence's state path from
p(z | x, theta), for the blocked Gibbs sampler of the HMMs.

Forward filter (``vbf_hmm_forward`` of ``_hmm_kernels.h``, the forward half of
``_hmm.pyx``'s forward-backward): alpha_t(k) proportional to p(z_t = k | x_{0:t}),

    alpha_0(k) ~ pi_k b_0(k),   alpha_t(j) ~ sum_i alpha_{t-1}(i) A_ij b_t(j),
    b_t(k) = exp(l_tk - max_k l_tk);

then backward sampling: z_{T-1} ~ alpha_{T-1}, z_t | z_{t+1} ~ alpha_t(i) A_{i, z_{t+1}}
(inverse CDF on an unnormalised weight vector). Where a scale underflows (see ``_hmm.pyx``)
the sequence is redone in log space, which is exact there; a sequence impossible under theta
gets state 0 throughout and log-likelihood -inf.

Randomness: the uniform of step t of sequence s at sweep ``sweep`` is output t of the
counter-based stream key(seed, sweep, s) (``vbf_rng.h``), so a sequence's draw depends on
nothing but (seed, sweep, s, its data, theta): bitwise the same for any grouping or thread
count. Sequences are processed in groups (``group_bounds``, from ``lengths`` only), each
group by one thread into its own count slots, reduced by the caller in group order.
"""
from cython.parallel cimport prange, parallel
from libc.stdint cimport uint64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memset
from libc.math cimport exp, log, INFINITY, isfinite

import numpy as np

include "_sequence_checks.pxi"

cdef extern from "vbf_rng.h":
    uint64_t vbf_stream_key(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) noexcept nogil
    double vbf_uniform_at(uint64_t key, uint64_t i) noexcept nogil

cdef extern from "_hmm_kernels.h":
    double vbf_logsumexp(const double* a, int n) noexcept nogil
    double vbf_hmm_forward(int K, long long T, const double* lp, const double* startprob,
                           const double* transmat, double* b, double* alpha,
                           double* scale) noexcept nogil
    double vbf_hmm_forward_log(int K, long long T, const double* lp, const double* logstart,
                               const double* logtrans, double* la, double* tmp) noexcept nogil


cdef struct _FF:
    int K
    const double* startprob
    const double* transmat
    const double* logstart
    const double* logtrans
    const double* lp          # (N, K)
    int* states               # (N,) out
    double* seq_ll            # (S,) out
    double* trans_slots       # (G, K K) transition counts of the drawn paths
    double* start_slots       # (G, K) start counts
    uint64_t seed
    uint64_t sweep


cdef inline int _pick(const double* w, int K, double u) noexcept nogil:
    """Index drawn with probability w_k / sum w (u uniform in [0, 1)); the last positive
    entry if rounding leaves u beyond the cumulative sum."""
    cdef int k, last = 0
    cdef double total = 0.0, acc = 0.0
    for k in range(K):
        total += w[k]
    u *= total
    for k in range(K):
        if w[k] > 0.0:
            last = k
            acc += w[k]
            if u < acc:
                return k
    return last


cdef double _filter_log(const _FF* p, Py_ssize_t a, Py_ssize_t T, double* alpha,
                        double* tmp) noexcept nogil:
    """Log-space forward filter (``vbf_hmm_forward_log``) into alpha (T, K), each row then
    normalised as the scaled filter's; log p(x) (-inf: the sequence is impossible)."""
    cdef int K = p.K, j
    cdef Py_ssize_t t
    cdef double ll, lse
    cdef double* row
    ll = vbf_hmm_forward_log(K, T, p.lp + a * K, p.logstart, p.logtrans, alpha, tmp)
    if not isfinite(ll):
        return -INFINITY
    for t in range(T):
        row = alpha + t * K
        lse = vbf_logsumexp(row, K)
        for j in range(K):
            row[j] = exp(row[j] - lse)
    return ll


cdef void _group(const _FF* p, const long long* offsets, Py_ssize_t s0, Py_ssize_t s1,
                 Py_ssize_t g) noexcept nogil:
    cdef int K = p.K, i, j, z
    cdef Py_ssize_t s, a, T, t, lat = 0
    cdef double ll
    cdef uint64_t key
    cdef double* alpha
    cdef double* b
    cdef double* w
    cdef double* trans = p.trans_slots + g * K * K
    cdef double* start = p.start_slots + g * K
    memset(trans, 0, K * K * sizeof(double))
    memset(start, 0, K * sizeof(double))
    if s1 <= s0:
        return
    for s in range(s0, s1):
        T = offsets[s + 1] - offsets[s]
        if T > lat:
            lat = T
    # alpha (T, K), b (T, K), w (K,)
    alpha = <double*>malloc((2 * lat * K + K) * sizeof(double))
    if alpha == NULL:
        return  # seq_ll stays NaN: the caller raises MemoryError
    b = alpha + lat * K
    w = b + lat * K
    for s in range(s0, s1):
        a = offsets[s]
        T = offsets[s + 1] - a
        ll = vbf_hmm_forward(K, T, p.lp + a * K, p.startprob, p.transmat, b, alpha, NULL)
        if ll != ll:
            ll = _filter_log(p, a, T, alpha, w)
        p.seq_ll[s] = ll
        if not isfinite(ll):
            for t in range(T):
                p.states[a + t] = 0
            continue
        key = vbf_stream_key(p.seed, p.sweep, <uint64_t>s, 0)
        z = _pick(alpha + (T - 1) * K, K, vbf_uniform_at(key, <uint64_t>(T - 1)))
        p.states[a + T - 1] = z
        for t in range(T - 2, -1, -1):
            for i in range(K):
                w[i] = alpha[t * K + i] * p.transmat[i * K + z]
            j = _pick(w, K, vbf_uniform_at(key, <uint64_t>t))
            trans[j * K + z] += 1.0
            z = j
            p.states[a + t] = z
        start[z] += 1.0
    free(alpha)


def ffbs(const double[:, ::1] logprob, const double[::1] startprob,
         const double[:, ::1] transmat, const long long[::1] offsets,
         const long long[::1] group_bounds, unsigned long long seed,
         unsigned long long sweep, int[::1] states, double[::1] seq_ll,
         double[:, ::1] trans_slots, double[:, ::1] start_slots, int n_threads):
    """Draw every sequence's state path from p(z | x, theta), in parallel over groups.

    Parameters
    ----------
    logprob : (N, K) float64
        Emission log-densities l_nk = log p(x_n | z_n = k, theta).
    startprob : (K,), transmat : (K, K) float64
        pi and A (zeros allowed).
    offsets : (S + 1,) int64; group_bounds : (G + 1,) int64
        As in ``_hmm.forward_backward``.
    seed, sweep : uint64
        The draw of sequence s reads the stream key(seed, sweep, s).
    states : (N,) int32, out
        The drawn paths.
    seq_ll : (S,) float64, out
        log p(x_s | theta) (-inf for an impossible sequence, whose path is all 0 and adds no
        counts).
    trans_slots : (G, K K), start_slots : (G, K) float64, out
        Per-group counts of the drawn transitions i -> j and first states.
    n_threads : int
    """
    cdef Py_ssize_t N = logprob.shape[0], S = seq_ll.shape[0]
    cdef int K = <int>logprob.shape[1]
    cdef Py_ssize_t G = group_bounds.shape[0] - 1, g
    if startprob.shape[0] != K or transmat.shape[0] != K or transmat.shape[1] != K:
        raise ValueError("startprob / transmat do not match logprob's n_components")
    _check_sequences(offsets, group_bounds, N, S)
    if states.shape[0] != N:
        raise ValueError("states must have n_samples entries")
    if trans_slots.shape[0] != G or trans_slots.shape[1] != K * K or \
            start_slots.shape[0] != G or start_slots.shape[1] != K:
        raise ValueError("count slots have the wrong shape")
    logpi, logA = _log_probabilities(startprob, transmat)
    cdef double[:, ::1] lA = logA
    cdef double[::1] lpi = logpi
    cdef _FF p
    p.K = K
    p.startprob = &startprob[0]
    p.transmat = &transmat[0, 0]
    p.logstart = &lpi[0]
    p.logtrans = &lA[0, 0]
    p.lp = &logprob[0, 0]
    p.states = &states[0]
    p.seq_ll = &seq_ll[0]
    p.trans_slots = &trans_slots[0, 0]
    p.start_slots = &start_slots[0, 0]
    p.seed = seed
    p.sweep = sweep
    with nogil, parallel(num_threads=n_threads):
        for g in prange(G, schedule="dynamic", chunksize=1):
            _group(&p, &offsets[0], group_bounds[g], group_bounds[g + 1], g)


def uniform_at(unsigned long long seed, unsigned long long sweep, unsigned long long sequence,
               unsigned long long t):
    """The uniform of step t of ``sequence`` at ``sweep`` (for tests)."""
    return vbf_uniform_at(vbf_stream_key(seed, sweep, sequence, 0), t)
