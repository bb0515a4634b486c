# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Row-wise kernels over ``GMMHMM``'s component log-densities comp_nkm = log w_km +
log N(x_n; mu_km, Sigma_km) (or mean field's expected ones), an (n_samples, K n_mix) array:

- ``state_log_density``: l_nk = log sum_m exp(comp_nkm), the state's emission log-density;
- ``component_responsibilities``: r_nkm = gamma_nk exp(comp_nkm - l_nk), the statistics'
  weights (0 where the state is impossible at x_n);
- ``draw_components``: for the blocked Gibbs sampler, the mixture component of every
  observation given its drawn state, c_n | z_n = k, x_n ~ Cat(exp(comp_nk. - l_nk)).

Each is parallel over fixed chunks of rows, every row written once by one thread, computed
the same way whatever the chunking: bitwise the same for any thread count.

Randomness: the uniform of row n at sweep ``sweep`` is output n of the counter-based stream
key(seed, sweep, 0, 1) (``vbf_rng.h``; the FFBS streams are key(seed, sweep, s, 0), so the
two never share a stream). A row's draw depends on nothing but (seed, sweep, n, its
log-densities): rows are cut into fixed chunks run in parallel, each row written once, so the
draws are bitwise the same for any thread count.
"""
from cython.parallel cimport prange, parallel
from libc.stdint cimport uint64_t
from libc.math cimport exp, log, INFINITY

import numpy as np

cdef extern from "vbf_rng.h":
    uint64_t vbf_stream_key(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) noexcept nogil
    double vbf_uniform_at(uint64_t key, uint64_t i) noexcept nogil


cdef inline double _logsumexp(const double* a, int M) noexcept nogil:
    """log sum_m exp(a_m), -inf when every entry is -inf."""
    cdef int m
    cdef double top = -INFINITY, total = 0.0
    for m in range(M):
        if a[m] > top:
            top = a[m]
    if top == -INFINITY:
        return -INFINITY
    for m in range(M):
        total += exp(a[m] - top)
    return top + log(total)


def state_log_density(const double[:, ::1] comp, int n_mix, double[:, ::1] out,
                      Py_ssize_t chunk_size, int n_threads):
    """out[n, k] = log sum_m exp(comp[n, k n_mix + m]): IN comp (N, K n_mix); OUT out (N, K)."""
    cdef Py_ssize_t N = comp.shape[0], n_chunks, c, n, start, stop
    cdef int K, k
    _check(comp, n_mix, out.shape[0], chunk_size)
    K = <int>comp.shape[1] // n_mix
    if out.shape[1] != K:
        raise ValueError("shapes do not match")
    if N == 0:
        return
    n_chunks = (N + chunk_size - 1) // chunk_size
    with nogil, parallel(num_threads=n_threads):
        for c in prange(n_chunks, schedule="dynamic", chunksize=1):
            start = c * chunk_size
            stop = min(start + chunk_size, N)
            for n in range(start, stop):
                for k in range(K):
                    out[n, k] = _logsumexp(&comp[n, k * n_mix], n_mix)


def component_responsibilities(const double[:, ::1] comp, const double[:, ::1] posteriors,
                               int n_mix, double[:, ::1] resp, Py_ssize_t chunk_size,
                               int n_threads):
    """resp[n, k n_mix + m] = posteriors[n, k] exp(comp[n, k n_mix + m] - l_nk) with l_nk the
    state's log-sum-exp (0 for a state impossible at x_n): IN comp (N, K n_mix), posteriors
    (N, K); OUT resp (N, K n_mix)."""
    cdef Py_ssize_t N = comp.shape[0], n_chunks, c, n, start, stop
    cdef int K, k, m
    cdef double lse, g
    _check(comp, n_mix, resp.shape[0], chunk_size)
    K = <int>comp.shape[1] // n_mix
    if posteriors.shape[0] != N or posteriors.shape[1] != K or resp.shape[1] != comp.shape[1]:
        raise ValueError("shapes do not match")
    if N == 0:
        return
    n_chunks = (N + chunk_size - 1) // chunk_size
    with nogil, parallel(num_threads=n_threads):
        for c in prange(n_chunks, schedule="dynamic", chunksize=1):
            start = c * chunk_size
            stop = min(start + chunk_size, N)
            for n in range(start, stop):
                for k in range(K):
                    lse = _logsumexp(&comp[n, k * n_mix], n_mix)
                    g = posteriors[n, k]
                    for m in range(n_mix):
                        if lse == -INFINITY:
                            resp[n, k * n_mix + m] = 0.0
                        else:
                            resp[n, k * n_mix + m] = g * exp(comp[n, k * n_mix + m] - lse)


cdef _check(const double[:, ::1] comp, int n_mix, Py_ssize_t n_out, Py_ssize_t chunk_size):
    if n_mix < 1 or comp.shape[1] % n_mix != 0 or n_out != comp.shape[0]:
        raise ValueError("shapes do not match")
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")


cdef inline int _draw_row(const double* comp, int M, double u) noexcept nogil:
    """Index m drawn with probability exp(comp[m]) / sum exp(comp) by the inverse CDF of the
    weights exp(comp[m] - max); the last positive weight when rounding leaves u beyond the
    sum; 0 when every entry is -inf (a state impossible at x_n: FFBS gives such a state only
    to a sequence impossible under theta)."""
    cdef int m, last = 0
    cdef double top = -INFINITY, total = 0.0, acc = 0.0, w
    for m in range(M):
        if comp[m] > top:
            top = comp[m]
    if top == -INFINITY:
        return 0
    for m in range(M):
        total += exp(comp[m] - top)
    u *= total
    for m in range(M):
        w = exp(comp[m] - top)
        if w > 0.0:
            last = m
            acc += w
            if u < acc:
                return m
    return last


def draw_components(const double[:, ::1] comp, const int[::1] states, int n_mix,
                    unsigned long long seed, unsigned long long sweep, int[::1] labels,
                    Py_ssize_t chunk_size, int n_threads):
    """labels[n] = states[n] n_mix + c_n with c_n drawn from row n's log weights
    comp[n, states[n] n_mix : (states[n] + 1) n_mix] (log w_km + log N(x_n; mu_km, Sigma_km),
    the (n_samples, K n_mix) array of ``GMMHMM._component_log_density``), IN comp, states;
    OUT labels (the (state, component) pair as one index, for the hard statistics)."""
    cdef Py_ssize_t N = comp.shape[0], n_chunks, c, n, start, stop
    cdef int KM = <int>comp.shape[1], z
    cdef uint64_t key = vbf_stream_key(seed, sweep, 0, 1)
    if n_mix < 1 or KM % n_mix != 0 or states.shape[0] != N or labels.shape[0] != N:
        raise ValueError("shapes do not match")
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    for n in range(N):
        if states[n] < 0 or (states[n] + 1) * n_mix > KM:
            raise ValueError("a state is out of range")
    if N == 0:
        return
    n_chunks = (N + chunk_size - 1) // chunk_size
    with nogil, parallel(num_threads=n_threads):
        for c in prange(n_chunks, schedule="dynamic", chunksize=1):
            start = c * chunk_size
            stop = min(start + chunk_size, N)
            for n in range(start, stop):
                z = states[n]
                labels[n] = z * n_mix + _draw_row(&comp[n, z * n_mix], n_mix,
                                                  vbf_uniform_at(key, <uint64_t>n))


def uniform_at(unsigned long long seed, unsigned long long sweep, unsigned long long row):
    """The uniform of ``row`` at ``sweep`` (for tests)."""
    return vbf_uniform_at(vbf_stream_key(seed, sweep, 0, 1), row)
