# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Hidden Markov model kernels: forward-backward, Viterbi and the emission log-densities.

Forward-backward is *scaled* (Rabiner 1989), in float64, per sequence. With the emission
densities of frame t taken relative to their largest value, b_t(k) = exp(l_tk - m_t),
m_t = max_k l_tk (l the (N, K) emission log-densities),

    alpha_0(k) = pi_k b_0(k) / c_0,     alpha_t(j) = sum_i alpha_{t-1}(i) A_ij b_t(j) / c_t,

c_t the sum that normalises alpha_t, so that log p(x_{0:T}) = sum_t (log c_t + m_t); and

    beta_{T-1} = 1,   beta_t(i) = sum_j A_ij v_j,   v_j = b_{t+1}(j) beta_{t+1}(j) / c_{t+1},
    gamma_t(i) = alpha_t(i) beta_t(i)             (normalised again against rounding),
    xi_t(i, j) = alpha_t(i) A_ij v_j,

the expected transition counts sum_t xi_t summed here as they are made (never a T x K x K
array), the start counts gamma_0 likewise. One exp per entry of l, no log per step. When a
scale c_t underflows (every state the model can be in has a density below ~1e-290 of the
best one: extreme data, or zeros in pi / A ruling out the likely states) the sequence is
redone in log space, which is exact there; a sequence with probability zero under the model
gets log-likelihood -inf (and uniform posteriors, no statistics), never NaN.

Parallelism and determinism: sequences are cut into groups of consecutive sequences by a rule
that depends on ``lengths`` only (the caller's ``group_bounds``); each group is processed by
one thread, sequence after sequence, and accumulates into its own statistics slot, which the
caller reduces in group order. Results are therefore bitwise identical for any thread count.
``gaussian_em_pass`` runs a Gaussian HMM's whole EM pass that way ('diag' / 'spherical', K <=
16): per sequence, log-densities, forward-backward, then the emission statistics.
"""
from cython.parallel cimport prange, parallel
from libc.stdlib cimport malloc, free
from libc.string cimport memset, memcpy
from libc.math cimport exp, log, INFINITY, NAN, isfinite

from scipy.linalg.cython_blas cimport dgemm, dtrmm

import numpy as np

include "_sequence_checks.pxi"

cdef extern from "_hmm_emission.h":
    void vbf_hmm_features_d(const double* X, int b, int D, int spherical, const double* shift,
                            const double* stats_shift, double* z, double* ys) noexcept nogil
    void vbf_hmm_features_f(const float* X, int b, int D, int spherical, const double* shift,
                            const double* stats_shift, double* z, double* ys) noexcept nogil
    void vbf_hmm_gstats_cols(const double* y, const double* post, int b, int D, int K,
                             int Kp, int spherical, double* nk, double* s1,
                             double* s2) noexcept nogil

cdef extern from "_hmm_kernels.h":
    double VBF_HMM_SCALE_FLOOR
    void vbf_hmm_rows(double* out, const double* c, const double* M, int K) noexcept nogil
    double vbf_logsumexp(const double* a, int n) noexcept nogil
    double vbf_hmm_forward(int K, long long T, const double* lp, const double* startprob,
                           const double* transmat, double* b, double* alpha,
                           double* scale) noexcept nogil
    double vbf_hmm_forward_log(int K, long long T, const double* lp, const double* logstart,
                               const double* logtrans, double* la, double* tmp) noexcept nogil
    int VBF_HMM_PAD(int K) noexcept nogil
    void vbf_hmm_fb_pad(int K, int Kp, long long T, const double* lp, const double* startp,
                        const double* Ap, const double* ATp, double* b, double* alpha,
                        double* scale, double* vec, double* xi, double* gamma0, double* post,
                        double* ll) noexcept nogil
    void vbf_hmm_gstats(const double* y, const double* post, int b, int n_direct, int D,
                        int K, int Kp, int spherical, double* nk, double* s1,
                        double* s2) noexcept nogil
    void vbf_hmm_affine(const double* z, int b, int n_aux, const double* WT, const double* cst,
                        int K, int Kp, double* out) noexcept nogil
    void vbf_hmm_long_emis(int K, int Kp, long long t0, long long t1, const double* lp,
                           double* b, double* msum) noexcept nogil
    void vbf_hmm_chains(int which, int K, int Kp, long long T, const double* b,
                        const double* startp, const double* Ap, const double* ATp,
                        double* alpha, double* V, double* lsum, int* bad) noexcept nogil
    void vbf_hmm_combine(int K, int Kp, long long T, long long t0, long long t1,
                         const double* alpha, const double* V, const double* ATp, double* post,
                         double* gamma0, double* xi, int* bad) noexcept nogil
    ctypedef struct vbf_hmm_long_ctx:
        int K, Kp, backward
        long long T, chunk, n_chunks
        const double* lp
        const double* startp
        const double* Ap
        const double* ATp
        double* b
        double* alpha
        double* V
        double* post
        double* gamma0
        double* xi_slots
        double* msum
        double* lsum
        int* bad
        long long claim_emis, done_emis, claim_comb, done_chains
        int arrived, claim_chains
        int nomem
    void vbf_hmm_long_worker(vbf_hmm_long_ctx* c) noexcept nogil

cdef extern from "_hmm_long_gauss.h":
    ctypedef struct vbf_hmm_gauss_rows:
        const double* Xd
        const float* Xf
        int D, K, Kp, n_aux, spherical
        const double* shift
        const double* stats_shift
        const double* WTp
        const double* cstp
    void vbf_hmm_long_gauss_hooks(vbf_hmm_long_ctx* c, const vbf_hmm_gauss_rows* g,
                                  double* em_slots) noexcept nogil

ctypedef fused floating:
    float
    double

# Below this a scale factor is treated as underflow: the sequence is redone in log space.
cdef double SCALE_FLOOR = VBF_HMM_SCALE_FLOOR


cdef struct _FB:
    int K
    int Kp                    # K padded to whole four-lane vectors
    const double* startp      # (Kp,) pi, zero-padded
    const double* Ap          # (K, Kp) A, rows zero-padded
    const double* ATp         # (K, Kp) A^T, rows zero-padded
    const double* startprob   # (K,)
    const double* transmat    # (K, K)
    const double* transT      # (K, K) A transposed: beta = A v as a sum of columns
    const double* logtrans    # (K, K) log A (-inf for zeros), for the log-space path
    const double* logstart    # (K,)
    const double* lp          # (N, K) emission log-densities
    double* post              # (N, K) posteriors out; NULL: not wanted
    double* trans_slots       # (G, K K) expected transition counts; NULL: not wanted
    double* start_slots       # (G, K) expected start counts; NULL: not wanted
    double* seq_ll            # (S,) log-likelihood of every sequence
    int* n_log_space          # (G,) sequences of the group redone in log space


cdef struct _Dens:
    int n_aux                   # features a row ('diag': 2 D, 'spherical': D + 1)
    int cov_type                # 2 'diag', 3 'spherical'
    const double* shift         # (D,) the log-densities' shift (the mean of the means)
    const double* WTp           # (n_aux, Kp) weights of the affine form, padded
    const double* cstp          # (Kp,) its constants, padded
    const double* stats_shift   # (D,) the statistics' shift


# rows per emission chunk inside a sequence (the chunk's features stay in L1 / L2)
cdef enum:
    EM_CHUNK = 256


cdef double _forward_only(const _FB* p, Py_ssize_t a, Py_ssize_t T, double* alpha,
                          double* nxt) noexcept nogil:
    """Scaled forward recursion with two rolling vectors; returns log p or NaN on underflow
    (the caller then uses the log-space path)."""
    cdef int K = p.K, i, j
    cdef Py_ssize_t t
    cdef const double* row
    cdef double m, c, ll = 0.0, s
    cdef double* tmp
    for t in range(T):
        row = p.lp + (a + t) * K
        m = -INFINITY
        for j in range(K):
            if row[j] > m:
                m = row[j]
        if not (m > -INFINITY) or not isfinite(m):
            return NAN
        c = 0.0
        if t == 0:
            for j in range(K):
                nxt[j] = p.startprob[j] * exp(row[j] - m)
                c += nxt[j]
        else:
            for j in range(K):
                nxt[j] = 0.0
            for i in range(K):
                s = alpha[i]
                if s != 0.0:
                    for j in range(K):
                        nxt[j] += s * p.transmat[i * K + j]
            for j in range(K):
                nxt[j] *= exp(row[j] - m)
                c += nxt[j]
        if not (c >= SCALE_FLOOR):
            return NAN
        s = 1.0 / c
        for j in range(K):
            nxt[j] *= s
        ll += log(c) + m
        tmp = alpha
        alpha = nxt
        nxt = tmp
    return ll


cdef double _forward_backward(const _FB* p, Py_ssize_t a, Py_ssize_t T, double* alpha,
                              double* b, double* scale, double* vec, double* xi,
                              double* gamma0, double* trans, double* start) noexcept nogil:
    """Scaled forward-backward of rows [a, a + T) (``vbf_hmm_fb_pad`` of ``_hmm_kernels.h``:
    padded lattices, the transition counts summed in the backward sweep as rank-one
    updates, posteriors written into ``p.post`` when wanted). alpha, b: (T, Kp); scale: (T,);
    vec: (3 Kp,); xi: (K, Kp); gamma0: (Kp,) scratch. Adds A * sum_t xi_t to ``trans`` (K, K)
    and gamma_0 to ``start`` (K,) when not NULL, only once the whole sequence succeeded.
    Returns log p, or NaN on underflow or overflow (nothing added then: the caller redoes
    the sequence in log space)."""
    cdef int K = p.K, Kp = p.Kp, i, j
    cdef double ll
    vbf_hmm_fb_pad(K, Kp, T, p.lp + a * K, p.startp, p.Ap, p.ATp, b, alpha, scale, vec, xi,
                   gamma0, p.post + a * K if p.post != NULL else NULL, &ll)
    if ll != ll:
        return NAN
    if trans != NULL:
        for i in range(K):
            for j in range(K):
                trans[i * K + j] += p.transmat[i * K + j] * xi[i * Kp + j]
        for j in range(K):
            start[j] += gamma0[j]
    return ll


cdef inline void _normalise(double* x, int K) noexcept nogil:
    cdef int j
    cdef double s = 0.0
    for j in range(K):
        s += x[j]
    if s > 0.0:
        s = 1.0 / s
        for j in range(K):
            x[j] *= s


cdef double _forward_backward_log(const _FB* p, Py_ssize_t a, Py_ssize_t T, double* la,
                                  double* lb, double* tmp, double* trans,
                                  double* start, double* post) noexcept nogil:
    """Log-space forward-backward of rows [a, a + T): exact where the scaled one underflows.
    la: (T, K) log alpha; lb: (K,) log beta (rolling); tmp: (2 K,) scratch. Writes the
    posteriors to ``post`` (T, K) if not NULL, adds xi and gamma_0 when not NULL. Returns
    log p (-inf for an impossible sequence: then uniform posteriors, nothing added)."""
    cdef int K = p.K, i, j
    cdef Py_ssize_t t
    cdef const double* row
    cdef double ll, x
    cdef double* nb = tmp + K
    ll = vbf_hmm_forward_log(K, T, p.lp + a * K, p.logstart, p.logtrans, la, tmp)
    if not isfinite(ll):
        if post != NULL:
            for t in range(T * K):
                post[a * K + t] = 1.0 / K
        return -INFINITY
    for j in range(K):
        lb[j] = 0.0
    for t in range(T - 1, -1, -1):
        if post != NULL:
            for j in range(K):
                post[(a + t) * K + j] = exp(la[t * K + j] + lb[j] - ll)
            _normalise(post + (a + t) * K, K)
        if t == 0:
            if start != NULL:
                for j in range(K):
                    start[j] += exp(la[j] + lb[j] - ll)
            break
        row = p.lp + (a + t) * K
        for i in range(K):
            for j in range(K):
                tmp[j] = p.logtrans[i * K + j] + row[j] + lb[j]
                if trans != NULL:
                    x = la[(t - 1) * K + i] + tmp[j] - ll
                    if x > -INFINITY:
                        trans[i * K + j] += exp(x)
            nb[i] = vbf_logsumexp(tmp, K)
        for j in range(K):
            lb[j] = nb[j]
    return ll



def _transition_arrays(const double[::1] startprob, const double[:, ::1] transmat):
    """The forms of pi and A the kernels read: (pi, A, A^T, log pi, log A, pi padded to Kp,
    A and A^T with rows padded to Kp), every one C-contiguous float64."""
    K = transmat.shape[0]
    cdef int Kp = VBF_HMM_PAD(<int>K)
    A = np.asarray(transmat)
    logpi, logA = _log_probabilities(startprob, transmat)
    Ap = np.zeros((K, Kp))
    Ap[:, :K] = A
    ATp = np.zeros((K, Kp))
    ATp[:, :K] = A.T
    startp = np.zeros(Kp)
    startp[:K] = startprob
    return (np.asarray(startprob), A, np.ascontiguousarray(A.T), logpi, logA, startp, Ap, ATp)


cdef void _fill_transitions(_FB* p, tuple arrays):
    """Point p's transition fields at ``_transition_arrays``' arrays (kept alive by the
    caller)."""
    cdef const double[::1] startprob = arrays[0]
    cdef const double[::1] logpi = arrays[3]
    cdef const double[::1] startp = arrays[5]
    cdef const double[:, ::1] A = arrays[1]
    cdef const double[:, ::1] AT = arrays[2]
    cdef const double[:, ::1] logA = arrays[4]
    cdef const double[:, ::1] Ap = arrays[6]
    cdef const double[:, ::1] ATp = arrays[7]
    p.K = <int>A.shape[0]
    p.Kp = VBF_HMM_PAD(p.K)
    p.startprob = &startprob[0]
    p.transmat = &A[0, 0]
    p.transT = &AT[0, 0]
    p.logstart = &logpi[0]
    p.logtrans = &logA[0, 0]
    p.startp = &startp[0]
    p.Ap = &Ap[0, 0]
    p.ATp = &ATp[0, 0]


def forward_backward(const double[:, ::1] logprob, const double[::1] startprob,
                     const double[:, ::1] transmat, const long long[::1] offsets,
                     const long long[::1] group_bounds, double[:, ::1] post,
                     double[:, ::1] trans_slots, double[:, ::1] start_slots,
                     double[::1] seq_ll, int[::1] n_log_space, int n_threads):
    """Forward-backward over every sequence, in parallel over groups of sequences.

    Parameters
    ----------
    logprob : (N, K) float64
        Emission log-densities l_nk = log p(x_n | z_n = k) (may hold -inf).
    startprob : (K,), transmat : (K, K) float64
        pi and A (rows summing to one; zeros allowed).
    offsets : (S + 1,) int64
        Sequence s is rows [offsets[s], offsets[s + 1]); every length >= 1.
    group_bounds : (G + 1,) int64
        Group g is sequences [group_bounds[g], group_bounds[g + 1]) (may be empty).
    post : (N, K) float64 posteriors gamma_nk, or (0, 0): not wanted (forward only, unless
        statistics are wanted)
    trans_slots : (G, K * K), start_slots : (G, K) float64
        Per-group expected transition and start counts (overwritten), or (0, 0): not wanted.
    seq_ll : (S,) float64, out
        log p(x of sequence s).
    n_log_space : (G,) int32, out
        Sequences of each group that needed the log-space path.
    n_threads : int
    """
    cdef Py_ssize_t N = logprob.shape[0], S = seq_ll.shape[0]
    cdef int K = <int>logprob.shape[1]
    cdef Py_ssize_t G = group_bounds.shape[0] - 1
    cdef bint want_post = post.shape[0] > 0
    cdef bint want_stats = trans_slots.shape[0] > 0
    cdef Py_ssize_t g, max_len
    if startprob.shape[0] != K or transmat.shape[0] != K or transmat.shape[1] != K:
        raise ValueError("startprob / transmat do not match logprob's n_components")
    max_len = _check_sequences(offsets, group_bounds, N, S)
    if n_log_space.shape[0] != G:
        raise ValueError("group_bounds must cover the sequences")
    if want_post and (post.shape[0] != N or post.shape[1] != K):
        raise ValueError("post must be (n_samples, n_components)")
    if want_stats and (trans_slots.shape[0] != G or trans_slots.shape[1] != K * K
                       or start_slots.shape[0] != G or start_slots.shape[1] != K):
        raise ValueError("statistics slots have the wrong shape")
    arrays = _transition_arrays(startprob, transmat)
    cdef _FB p
    _fill_transitions(&p, arrays)
    p.lp = &logprob[0, 0]
    p.post = &post[0, 0] if want_post else NULL
    p.trans_slots = &trans_slots[0, 0] if want_stats else NULL
    p.start_slots = &start_slots[0, 0] if want_stats else NULL
    p.seq_ll = &seq_ll[0]
    p.n_log_space = &n_log_space[0]
    cdef bint backward = want_post or want_stats
    with nogil, parallel(num_threads=n_threads):
        for g in prange(G, schedule="dynamic", chunksize=1):
            _group(&p, &offsets[0], group_bounds[g], group_bounds[g + 1], g, max_len,
                   backward)


cdef struct _GroupWork:
    Py_ssize_t lat            # the group's longest sequence
    double* trans             # the group's (K, K) and (K,) count slots, or NULL
    double* start
    double* b                 # forward_backward's scratch: b, alpha (lat, Kp), scale (lat,),
    double* alpha             # vec (3 Kp), gamma0 (Kp), xi (K, Kp)
    double* scale
    double* vec
    double* gamma0
    double* xi
    double* extra             # the caller's own part of the block


cdef Py_ssize_t _longest(const long long* offsets, Py_ssize_t s0,
                         Py_ssize_t s1) noexcept nogil:
    """The length of the longest of sequences [s0, s1) (0 for none)."""
    cdef Py_ssize_t s, lat = 0
    for s in range(s0, s1):
        if offsets[s + 1] - offsets[s] > lat:
            lat = offsets[s + 1] - offsets[s]
    return lat


cdef double* _group_start(const _FB* p, const long long* offsets, Py_ssize_t s0,
                          Py_ssize_t s1, Py_ssize_t g, Py_ssize_t extra_per_row,
                          Py_ssize_t extra_fixed, _GroupWork* w) noexcept nogil:
    """What a group of the forward-backward passes starts with: its count slots zeroed
    (start and transitions when p has them, the log-space count), its longest sequence, and
    one block of scratch: forward_backward's (the log-space path uses b as log alpha (T, K)
    and vec (3 K)) then extra_per_row * lat + extra_fixed doubles of the caller's
    (``w.extra``). Returns the block (to free), NULL for an empty group or when it could not
    be allocated (then seq_ll stays as the caller initialised it: NaN, caught there)."""
    cdef int K = p.K, Kp = p.Kp
    cdef Py_ssize_t lat
    cdef double* block
    p.n_log_space[g] = 0
    w.trans = NULL
    w.start = NULL
    if p.trans_slots != NULL:
        w.trans = p.trans_slots + g * K * K
        w.start = p.start_slots + g * K
        memset(w.trans, 0, K * K * sizeof(double))
        memset(w.start, 0, K * sizeof(double))
    lat = _longest(offsets, s0, s1)
    w.lat = lat
    if lat == 0:
        return NULL
    block = <double*>malloc((2 * lat * Kp + lat + 4 * Kp + K * Kp + extra_per_row * lat
                             + extra_fixed) * sizeof(double))
    if block == NULL:
        return NULL
    w.b = block
    w.alpha = w.b + lat * Kp
    w.scale = w.alpha + lat * Kp
    w.vec = w.scale + lat
    w.gamma0 = w.vec + 3 * Kp
    w.xi = w.gamma0 + Kp
    w.extra = w.xi + K * Kp
    return block


cdef void _group(const _FB* p, const long long* offsets, Py_ssize_t s0, Py_ssize_t s1,
                 Py_ssize_t g, Py_ssize_t max_len, bint backward) noexcept nogil:
    """Sequences [s0, s1) into group g's slot, in order. Scratch is this call's own."""
    cdef int K = p.K
    cdef Py_ssize_t s, a, T
    cdef double ll
    cdef _GroupWork w
    cdef double* block = _group_start(p, offsets, s0, s1, g, 0, 0, &w)
    if block == NULL:
        return
    for s in range(s0, s1):
        a = offsets[s]
        T = offsets[s + 1] - a
        if not backward:
            ll = _forward_only(p, a, T, w.vec, w.vec + K)
        else:
            ll = _forward_backward(p, a, T, w.alpha, w.b, w.scale, w.vec, w.xi, w.gamma0,
                                   w.trans, w.start)
        if ll != ll:  # under/overflow: redo exactly in log space (b serves as log alpha)
            p.n_log_space[g] += 1
            ll = _forward_backward_log(p, a, T, w.b, w.vec, w.vec + K, w.trans, w.start,
                                       p.post if p.post != NULL else NULL)
        p.seq_ll[s] = ll
    free(block)


def viterbi(const double[:, ::1] logprob, const double[::1] startprob,
            const double[:, ::1] transmat, const long long[::1] offsets,
            const long long[::1] group_bounds, int[::1] states, double[::1] seq_ll,
            int n_threads):
    """Most probable state path of every sequence (log space), in parallel over groups.

    states : (N,) int32 out, the path; seq_ll : (S,) out, log p(x, path) of each sequence
    (-inf if the sequence is impossible; its path is then all 0). Ties go to the lowest state.
    """
    cdef Py_ssize_t N = logprob.shape[0], S = seq_ll.shape[0]
    cdef int K = <int>logprob.shape[1]
    cdef Py_ssize_t G = group_bounds.shape[0] - 1, g
    if startprob.shape[0] != K or transmat.shape[0] != K or transmat.shape[1] != K:
        raise ValueError("startprob / transmat do not match logprob's n_components")
    _check_sequences(offsets, group_bounds, N, S)
    if states.shape[0] != N:
        raise ValueError("states must have n_samples entries")
    logpi, logA = _log_probabilities(startprob, transmat)
    cdef double[:, ::1] lA = logA
    cdef double[::1] lpi = logpi
    with nogil, parallel(num_threads=n_threads):
        for g in prange(G, schedule="dynamic", chunksize=1):
            _viterbi_group(&logprob[0, 0], &lpi[0], &lA[0, 0], K, &offsets[0],
                           group_bounds[g], group_bounds[g + 1], &states[0], &seq_ll[0])


cdef void _viterbi_group(const double* lp, const double* lpi, const double* lA, int K,
                         const long long* offsets, Py_ssize_t s0, Py_ssize_t s1, int* states,
                         double* seq_ll) noexcept nogil:
    cdef Py_ssize_t s, a, T, t, lat = 0
    cdef int i, j, best
    cdef double x, m
    cdef double* base
    cdef double* delta
    cdef double* nxt
    cdef double* tmp
    cdef int* back
    lat = _longest(offsets, s0, s1)
    if lat == 0:
        return
    base = <double*>malloc(2 * K * sizeof(double))
    back = <int*>malloc(lat * K * sizeof(int))
    if base == NULL or back == NULL:
        free(base)
        free(back)
        return
    delta = base
    nxt = base + K
    for s in range(s0, s1):
        a = offsets[s]
        T = offsets[s + 1] - a
        for j in range(K):
            delta[j] = lpi[j] + lp[a * K + j]
        for t in range(1, T):
            for j in range(K):
                m = -INFINITY
                best = 0
                for i in range(K):
                    x = delta[i] + lA[i * K + j]
                    if x > m:
                        m = x
                        best = i
                back[t * K + j] = best
                nxt[j] = m + lp[(a + t) * K + j]
            tmp = delta
            delta = nxt
            nxt = tmp
        m = -INFINITY
        best = 0
        for j in range(K):
            if delta[j] > m:
                m = delta[j]
                best = j
        seq_ll[s] = m
        states[a + T - 1] = best
        for t in range(T - 1, 0, -1):
            best = back[t * K + best]
            states[a + t - 1] = best
    free(base)
    free(back)



def _small_affine_arrays(const double[:, ::1] means, const double[::1] prec, bint spherical,
                         const double[::1] log_const):
    """(shift (D,), W^T (n_aux, Kp), constants (Kp,)) of ``_affine_small`` as arrays, for
    'diag' / 'spherical' at K <= 16 (n_aux = 2 D, or D + 1 'spherical'; pad lanes zero)."""
    cdef int K = <int>means.shape[0], D = <int>means.shape[1]
    shift = np.empty(D)
    WTp = np.zeros((D + 1 if spherical else 2 * D, VBF_HMM_PAD(K)))
    cstp = np.zeros(VBF_HMM_PAD(K))
    _affine_small(K, D, spherical, &means[0, 0], &prec[0], &log_const[0], _data(shift),
                  _data(WTp), _data(cstp))
    return shift, WTp, cstp


def _density_arrays(const double[:, ::1] means, const double[::1] prec, int cov_type,
                    const double[::1] log_const):
    """What ``_gauss_chunk`` reads for the Gaussian log-densities (see
    gaussian_log_density): (n_aux, shift (D,), shifted means E (K, D), weights W (K, n_aux),
    constants (K,), W^T padded (n_aux, max(Kp, 1)), constants padded (max(Kp, 1),), Kp (> 0:
    'diag' / 'spherical' at K <= 16 by ``vbf_hmm_affine``, else 0))."""
    K, D = means.shape[0], means.shape[1]
    M = np.asarray(means)
    shift = M.mean(axis=0)
    E = M - shift  # (K, D) the means, shifted
    n_aux = 2 * D if cov_type == 2 else D + 1
    P = np.asarray(prec)
    if cov_type == 2:
        P = P.reshape(K, D)
        W = np.concatenate([P * E, -0.5 * P], axis=1)
        cst = np.asarray(log_const) - 0.5 * (P * E * E).sum(axis=1)
    elif cov_type == 3:
        W = np.concatenate([P[:, None] * E, -0.5 * P[:, None]], axis=1)
        cst = np.asarray(log_const) - 0.5 * P * (E * E).sum(axis=1)
    else:
        W = np.zeros((1, n_aux))
        cst = np.asarray(log_const, dtype=np.float64).copy()
    # at K <= 16 the 'diag' / 'spherical' product runs in registers (vbf_hmm_affine) on
    # W^T and the constants zero-padded to Kp lanes
    cdef int Kp = VBF_HMM_PAD(K) if (cov_type == 2 or cov_type == 3) and K <= 16 else 0
    if Kp:  # (the long pass's own code: the same bits there and here)
        shift, WTp, cstp = _small_affine_arrays(means, prec, cov_type == 3, log_const)
    else:
        WTp, cstp = np.zeros((n_aux, 1)), np.zeros(1)
    return (n_aux, np.ascontiguousarray(shift), np.ascontiguousarray(E),
            np.ascontiguousarray(W, dtype=np.float64),
            np.ascontiguousarray(cst, dtype=np.float64), WTp, cstp, Kp)


def gaussian_log_density(const floating[:, ::1] X, const double[:, ::1] means,
                         const double[::1] prec, int cov_type, const double[::1] log_const,
                         double[:, ::1] out, Py_ssize_t chunk_size, int n_threads):
    """l_nk = c_k - 1/2 q_nk, the Gaussian log-density of every row under every state,
    in parallel over chunks of rows (each chunk's rows computed the same way whatever the
    thread count: any thread count gives the same bits).

    With d = x_n - mu_k: q_nk = ||d U_k||^2 ('full': U_k (K, D, D), 'tied': one U (D, D),
    upper factors of the precisions, row-major), sum_j d_j^2 p_kj ('diag': prec (K, D)
    precisions), p_k ||d||^2 ('spherical': prec (K,)). c_k = log det U_k - D/2 log 2 pi.
    cov_type: 0 full, 1 tied, 2 diag, 3 spherical (the mixture's numbering).

    In coordinates shifted by the mean of the means (s), 'diag' and 'spherical' are one
    matrix product per chunk: with y = x - s, e_k = mu_k - s,
    l_nk = (c_k - 1/2 sum_j p_kj e_kj^2) + sum_j p_kj e_kj y_j - 1/2 sum_j p_kj y_j^2,
    the features [y, y^2] ('spherical': [y, ||y||^2]) times a (K, n_aux) weight array.
    'full' / 'tied' take y - e_k times U_k for a chunk at once (a triangular product).
    """
    cdef Py_ssize_t N = X.shape[0], n_chunks, c, n, start, b
    cdef int D = <int>X.shape[1], K = <int>means.shape[0], k, j, n_aux, bi
    if means.shape[1] != D or log_const.shape[0] != K or out.shape[0] != N \
            or out.shape[1] != K:
        raise ValueError("shapes do not match")
    if (cov_type == 0 and prec.shape[0] != K * D * D) or (cov_type == 1 and
            prec.shape[0] != D * D) or (cov_type == 2 and prec.shape[0] != K * D) or \
            (cov_type == 3 and prec.shape[0] != K) or cov_type < 0 or cov_type > 3:
        raise ValueError("precision array does not match covariance type")
    if N == 0:
        return
    dens = _density_arrays(means, prec, cov_type, log_const)
    n_aux = dens[0]
    cdef double[::1] s_v = dens[1]
    cdef double[:, ::1] E_v = dens[2]
    cdef double[:, ::1] W_v = dens[3]
    cdef double[::1] c_v = dens[4]
    cdef double[:, ::1] WT_v = dens[5]
    cdef double[::1] cp_v = dens[6]
    cdef int Kp = dens[7]
    n_chunks = (N + chunk_size - 1) // chunk_size
    cdef int[::1] failed = np.zeros(1, dtype=np.int32)
    cdef double* buf
    with nogil, parallel(num_threads=n_threads):
        buf = <double*>malloc(chunk_size * (n_aux + D) * sizeof(double))
        for c in prange(n_chunks, schedule="dynamic", chunksize=1):
            start = c * chunk_size
            b = chunk_size if start + chunk_size < N else N - start
            if buf == NULL:
                failed[0] = 1
            else:
                _gauss_chunk(&X[start, 0], <int>b, D, K, n_aux, cov_type, &s_v[0],
                             &E_v[0, 0], &prec[0], &W_v[0, 0], &c_v[0], &out[start, 0], buf,
                             Kp, &WT_v[0, 0], &cp_v[0])
        free(buf)
    if failed[0]:
        raise MemoryError("the Gaussian log-density pass could not allocate its buffers")


cdef void _gauss_chunk(const floating* X, int b, int D, int K, int n_aux, int cov_type,
                       const double* shift, const double* E, const double* prec,
                       const double* W, const double* cst, double* out,
                       double* buf, int Kp, const double* WTp,
                       const double* cstp) noexcept nogil:
    """One chunk of b rows (see gaussian_log_density); ``buf`` holds b (n_aux + D)
    doubles. Kp > 0: 'diag' / 'spherical' by ``vbf_hmm_affine`` on WTp (n_aux, Kp), cstp
    (Kp,)."""
    cdef int n, j, k
    cdef double one = 1.0, zero = 0.0, q, y
    cdef double* ybuf = buf
    cdef double* zbuf = buf + b * D
    cdef double* z
    cdef char CH_N = b'N', CH_T = b'T', CH_L = b'L'
    cdef const double* U
    for n in range(b):
        for j in range(D):
            ybuf[n * D + j] = <double>X[n * D + j] - shift[j]
    if cov_type == 2 or cov_type == 3:
        for n in range(b):
            z = zbuf + n * n_aux
            q = 0.0
            for j in range(D):
                y = ybuf[n * D + j]
                z[j] = y
                if cov_type == 2:
                    z[D + j] = y * y
                else:
                    q = q + y * y
            if cov_type == 3:
                z[D] = q
        if Kp > 0:
            vbf_hmm_affine(zbuf, b, n_aux, WTp, cstp, K, Kp, out)
            return
        # out (b x K, row-major) = z (b x n_aux) W^T; column-major: out^T = W z^T, with W
        # (row-major K x n_aux) read as (n_aux x K) column-major and transposed
        dgemm(&CH_T, &CH_N, &K, &b, &n_aux, &one, <double*>W, &n_aux, zbuf, &n_aux, &zero,
              out, &K)
        for n in range(b):
            for k in range(K):
                out[n * K + k] = out[n * K + k] + cst[k]
        return
    for k in range(K):
        U = prec + (k * D * D if cov_type == 0 else 0)
        for n in range(b):
            for j in range(D):
                zbuf[n * D + j] = ybuf[n * D + j] - E[k * D + j]
        # rows times U (upper, row-major): column-major, Z^T <- U^T Z^T, U read as lower
        dtrmm(&CH_L, &CH_L, &CH_N, &CH_N, &D, &b, &one, <double*>U, &D, zbuf, &D)
        for n in range(b):
            q = 0.0
            for j in range(D):
                q = q + zbuf[n * D + j] * zbuf[n * D + j]
            out[n * K + k] = cst[k] - 0.5 * q


def gaussian_stats(const floating[:, ::1] X, const double[:, ::1] post, const double[::1] shift,
                   bint spherical, double[:, ::1] slots, Py_ssize_t chunk_size, int n_threads):
    """Expected Gaussian emission statistics ('diag', 'spherical') of the posteriors, for
    K <= 16, in parallel over groups of rows (group g: rows [g N / G, (g + 1) N / G), G =
    ``slots.shape[0]``, a number that depends on N only; the caller adds the slots in group
    order, so any thread count gives the same bits).

    With y_n = x_n - shift and g_n = post[n] (K,), slot g holds, K padded to Kp lanes:
    nk (Kp,) = sum_n g_n, s1 (D, Kp) = sum_n y_n g_n^T, and s2 = sum_n (y_n^2) g_n^T (D, Kp)
    ('diag') or sum_n ||y_n||^2 g_n (Kp,) ('spherical'), laid out [nk, s1, s2] (overwritten).
    """
    cdef Py_ssize_t N = X.shape[0], G = slots.shape[0], g, r0, r1, c0, b, n, n_direct
    cdef int D = <int>X.shape[1], K = <int>post.shape[1], j
    cdef int Kp = VBF_HMM_PAD(K)
    cdef Py_ssize_t width = Kp + D * Kp + (Kp if spherical else D * Kp)
    if post.shape[0] != N or shift.shape[0] != D or K > 16 or slots.shape[1] != width:
        raise ValueError("shapes do not match")
    cdef int[::1] failed = np.zeros(1, dtype=np.int32)
    cdef double* ybuf
    cdef double* slot
    with nogil, parallel(num_threads=n_threads):
        ybuf = <double*>malloc(chunk_size * D * sizeof(double))
        for g in prange(G, schedule="dynamic", chunksize=1):
            slot = &slots[g, 0]
            memset(slot, 0, width * sizeof(double))
            r0 = g * N // G
            r1 = (g + 1) * N // G
            c0 = r0
            if ybuf == NULL:
                failed[0] = 1
                c0 = r1
            while c0 < r1:
                b = chunk_size if c0 + chunk_size < r1 else r1 - c0
                for n in range(b):
                    for j in range(D):
                        ybuf[n * D + j] = <double>X[c0 + n, j] - shift[j]
                # rows whose Kp lanes lie inside post
                n_direct = (N * K - Kp) // K - c0 + 1 if N * K >= Kp else 0
                if n_direct > b:
                    n_direct = b
                if n_direct < 0:
                    n_direct = 0
                vbf_hmm_gstats(ybuf, &post[c0, 0], <int>b, <int>n_direct, D, K, Kp,
                               spherical, slot, slot + Kp, slot + Kp + D * Kp)
                c0 = c0 + b
        free(ybuf)
    if failed[0]:
        raise MemoryError("the Gaussian statistics pass could not allocate its buffers")


# Steps per chunk of the long-sequence pass's chunk-parallel parts (a constant: the chunks,
# hence the order the transition counts are added in, depend on the length only).
cdef enum:
    LONG_CHUNK_STEPS = 1024
LONG_CHUNK = LONG_CHUNK_STEPS


cdef double* _data(object arr) except? NULL:
    """The first double of a C-contiguous float64 array (NULL when it is empty); the array
    owns the memory, so the pointer lives as long as it."""
    cdef double[::1] flat
    if arr.size == 0:
        return NULL
    flat = arr.reshape(-1)
    return &flat[0]


cdef class LongWork:
    """The buffers of the long-sequence pass over one sequence (T steps, K <= 16 states),
    made once and reused: a fit's iterations allocate nothing and fault in no fresh pages.

    Attributes (read-only): ``lattice`` (3, T, Kp) (2 without the backward recursion) the
    densities b, alpha and V; ``post`` (T, K) the posteriors of the Gaussian pass (D > 0;
    ``forward_backward_long`` writes into its caller's); ``em_slots`` (n_chunks, width) the
    chunks' emission statistics (D > 0, see ``gaussian_long_pass``). Private: the region's
    per-chunk outputs (the m_t sums, the xi slots, the flags), the padded transitions and
    the densities' affine form (shift, W^T, constants), each written by every pass.
    """
    cdef readonly Py_ssize_t T, n_chunks, width
    cdef readonly int K, Kp, D, spherical, backward
    cdef readonly object post, lattice, em_slots
    cdef object _small   # the arrays behind the pointers below
    cdef double* p_lattice
    cdef double* p_post
    cdef double* p_em
    cdef double* p_xi
    cdef double* p_msum
    cdef double* p_lsum
    cdef double* p_gamma0
    cdef double* p_Ap
    cdef double* p_ATp
    cdef double* p_startp
    cdef double* p_shift
    cdef double* p_WTp
    cdef double* p_cstp
    cdef int* p_bad

    def __init__(self, Py_ssize_t T, int K, int D=0, bint spherical=False,
                 bint backward=True):
        cdef int[::1] bad_v
        if T < 1 or K < 1 or K > 16 or D < 0:
            raise ValueError("LongWork takes T >= 1, 1 <= K <= 16 and D >= 0")
        cdef int Kp = VBF_HMM_PAD(K)
        self.T, self.K, self.Kp, self.D = T, K, Kp, D
        self.spherical, self.backward = spherical, backward
        self.n_chunks = (T + LONG_CHUNK_STEPS - 1) // LONG_CHUNK_STEPS
        self.width = 0
        if D > 0:
            self.width = Kp * (2 + D if spherical else 1 + 2 * D)
        self.lattice = np.empty((3 if backward else 2, T, Kp))
        self.post = np.empty((T if D > 0 else 0, K if D > 0 else 0))
        self.em_slots = np.empty((self.n_chunks, self.width))
        bad = np.zeros(self.n_chunks + 2, dtype=np.int32)
        # (zero pads: the padded transitions' rows and lanes >= K, W^T's and the constants'
        # lanes >= K are never written)
        self._small = dict(
            xi=np.empty((self.n_chunks if backward else 0, Kp * Kp)),
            msum=np.empty(self.n_chunks), lsum=np.zeros(2), gamma0=np.zeros(Kp),
            Ap=np.zeros((Kp, Kp)), ATp=np.zeros((Kp, Kp)), startp=np.zeros(Kp),
            shift=np.zeros(max(D, 1)), WTp=np.zeros((max(D + (1 if spherical else D), 1), Kp)),
            cstp=np.zeros(Kp), bad=bad)
        s = self._small
        self.p_lattice = _data(self.lattice)
        self.p_post = _data(self.post)
        self.p_em = _data(self.em_slots)
        self.p_xi = _data(s["xi"])
        self.p_msum = _data(s["msum"])
        self.p_lsum = _data(s["lsum"])
        self.p_gamma0 = _data(s["gamma0"])
        self.p_Ap = _data(s["Ap"])
        self.p_ATp = _data(s["ATp"])
        self.p_startp = _data(s["startp"])
        self.p_shift = _data(s["shift"])
        self.p_WTp = _data(s["WTp"])
        self.p_cstp = _data(s["cstp"])
        bad_v = bad
        self.p_bad = &bad_v[0]


cdef void _long_ctx(LongWork w, vbf_hmm_long_ctx* ctx, const double* startprob,
                    const double* transmat) noexcept nogil:
    """Fill a long-pass context from the work's buffers (the padded pi, A and A^T written
    from startprob, transmat), lp, post and the hooks left NULL for the caller."""
    cdef int K = w.K, Kp = w.Kp, i, j
    cdef Py_ssize_t T = w.T
    for i in range(K):
        w.p_startp[i] = startprob[i]
        for j in range(K):
            w.p_Ap[i * Kp + j] = transmat[i * K + j]
            w.p_ATp[j * Kp + i] = transmat[i * K + j]
    # (the flags are read as set only by this pass: a recursion run interleaved with the
    # other writes one flag, and a failed recursion leaves the chunks' flags unwritten)
    memset(w.p_bad, 0, (w.n_chunks + 2) * sizeof(int))
    memset(ctx, 0, sizeof(vbf_hmm_long_ctx))
    ctx.K = K
    ctx.Kp = Kp
    ctx.backward = w.backward
    ctx.T = T
    ctx.chunk = LONG_CHUNK_STEPS
    ctx.n_chunks = w.n_chunks
    ctx.startp = w.p_startp
    ctx.Ap = w.p_Ap
    ctx.ATp = w.p_ATp
    ctx.b = w.p_lattice
    ctx.alpha = w.p_lattice + T * Kp
    ctx.V = w.p_lattice + 2 * T * Kp if w.backward else NULL
    ctx.gamma0 = w.p_gamma0
    ctx.xi_slots = w.p_xi
    ctx.msum = w.p_msum
    ctx.lsum = w.p_lsum
    ctx.bad = w.p_bad


cdef double _long_finish(LongWork w, const double* transmat, double* trans,
                         double* start) noexcept nogil:
    """log p(x) from the region's outputs (NaN: under/overflow or no finite density), and
    when trans is not NULL the transition counts A * sum_t xi_t (the chunks' slots added in
    chunk order) into trans (K, K) and gamma_0 into start (K,)."""
    cdef int K = w.K, Kp = w.Kp, i, j
    cdef Py_ssize_t c, n = w.n_chunks
    cdef double sum_m = 0.0, x
    for c in range(n):  # in chunk order
        sum_m = sum_m + w.p_msum[c]
    if sum_m != sum_m or w.p_bad[0] or w.p_bad[1]:
        return NAN
    if w.backward:
        for c in range(n):
            if w.p_bad[2 + c]:
                return NAN
        if trans != NULL:
            for i in range(K):
                for j in range(K):
                    x = w.p_xi[i * Kp + j]
                    for c in range(1, n):
                        x = x + w.p_xi[c * Kp * Kp + i * Kp + j]
                    trans[i * K + j] = transmat[i * K + j] * x
                start[i] = w.p_gamma0[i]
    return sum_m + w.p_lsum[0]


def forward_backward_long(const double[:, ::1] logprob, const double[::1] startprob,
                          const double[:, ::1] transmat, double[:, ::1] post,
                          double[:, ::1] trans, double[::1] start, int n_threads):
    """Forward-backward of one sequence of T frames, K <= 16, the forward and the backward
    recursions on two threads (``vbf_hmm_chains`` of ``_hmm_kernels.h``: unnormalised,
    rescaled by exact powers of two every other step, so neither needs the other's scales),
    the densities b_t and the combination into posteriors and transition counts over chunks
    of LONG_CHUNK steps in parallel. Any thread count gives the same bits.

    Parameters
    ----------
    logprob : (T, K) float64
        Emission log-densities (may hold -inf).
    startprob : (K,), transmat : (K, K) float64
    post : (T, K) float64 out, the posteriors gamma, or (0, 0): not wanted
    trans : (K, K) float64 out, sum_t xi_t, and start : (K,) out, gamma_0; or (0, 0) and
        (0,): not wanted (with post (0, 0) too: the forward recursion only)
    n_threads : int

    Returns
    -------
    log p(x), or NaN when a frame has no finite largest density or a scaled sum leaves
    [2^-960, 2^64] (under/overflow: nothing is written to trans and start, post may be
    partly written; the caller redoes the sequence by the per-step scaled pass, which falls
    back to log space).
    """
    cdef Py_ssize_t T = logprob.shape[0]
    cdef int K = <int>logprob.shape[1], nt = max(1, n_threads)
    cdef bint want_post = post.shape[0] > 0
    cdef bint want_stats = trans.shape[0] > 0
    cdef bint backward = want_post or want_stats
    if T < 1 or K < 1 or K > 16:
        raise ValueError("forward_backward_long takes 1 <= K <= 16 and T >= 1")
    if startprob.shape[0] != K or transmat.shape[0] != K or transmat.shape[1] != K:
        raise ValueError("startprob / transmat do not match logprob's n_components")
    if want_post and (post.shape[0] != T or post.shape[1] != K):
        raise ValueError("post must be (n_samples, n_components)")
    if want_stats and (trans.shape[1] != K or start.shape[0] != K):
        raise ValueError("trans / start have the wrong shape")
    cdef LongWork w = LongWork(T, K, 0, False, backward)
    cdef vbf_hmm_long_ctx ctx
    _long_ctx(w, &ctx, &startprob[0], &transmat[0, 0])
    ctx.lp = &logprob[0, 0]
    ctx.post = &post[0, 0] if want_post else NULL
    # one region; the threads claim the work (vbf_hmm_long_worker): two at most are useful
    with nogil, parallel(num_threads=min(nt, 2)):
        vbf_hmm_long_worker(&ctx)
    return _long_finish(w, &transmat[0, 0], &trans[0, 0] if want_stats else NULL,
                        &start[0] if want_stats else NULL)


def gaussian_em_pass(const floating[:, ::1] X, const double[:, ::1] means,
                     const double[::1] prec, int cov_type, const double[::1] log_const,
                     const double[::1] stats_shift, const double[::1] startprob,
                     const double[:, ::1] transmat, const long long[::1] offsets,
                     const long long[::1] group_bounds, double[:, ::1] trans_slots,
                     double[:, ::1] start_slots, double[:, ::1] emission_slots,
                     double[::1] seq_ll, int[::1] n_log_space, int n_threads):
    """One Baum-Welch pass of a Gaussian HMM ('diag' / 'spherical', K <= 16), fused: per
    sequence, the emission log-densities (as gaussian_log_density), forward-backward (as
    forward_backward) and the posterior-weighted emission statistics (as gaussian_stats),
    one after another while the sequence's lattices are in cache; nothing (n_samples, K) is
    made. In parallel over the groups of sequences (``group_bounds``, a rule on the lengths
    only), each group into its own slots, reduced by the caller in group order: any thread
    count gives the same bits.

    Parameters
    ----------
    X : (N, D) float32 or float64
    means : (K, D); prec : (K D,) ('diag') or (K,) ('spherical') precisions; cov_type : 2
        ('diag') or 3 ('spherical'); log_const : (K,) as gaussian_log_density's.
    stats_shift : (D,)
        The statistics are about y_n = x_n - stats_shift.
    startprob : (K,), transmat : (K, K); offsets : (S + 1,); group_bounds : (G + 1,)
        As forward_backward's.
    trans_slots : (G, K K), start_slots : (G, K), out
        Per-group expected transition and start counts (overwritten).
    emission_slots : (G, width), out
        Per-group gaussian_stats slot [nk (Kp,), s1 (D, Kp), s2 (D, Kp) or (Kp,)]
        (overwritten); the posteriors of an impossible sequence (uniform) count, as in the
        unfused pass.
    seq_ll : (S,) out, log p per sequence (left NaN for a group that could not allocate
        its buffers); n_log_space : (G,) int32 out.
    n_threads : int
    """
    cdef Py_ssize_t N = X.shape[0], S = seq_ll.shape[0], s, g, T
    cdef Py_ssize_t G = group_bounds.shape[0] - 1
    cdef int D = <int>X.shape[1], K = <int>means.shape[0]
    cdef int spherical = cov_type == 3
    cdef int Kp = VBF_HMM_PAD(K)
    cdef Py_ssize_t width = Kp + D * Kp + (Kp if spherical else D * Kp)
    if cov_type not in (2, 3) or K > 16 or means.shape[1] != D or log_const.shape[0] != K \
            or prec.shape[0] != (K * D if cov_type == 2 else K) or stats_shift.shape[0] != D:
        raise ValueError("gaussian_em_pass takes 'diag' / 'spherical' at K <= 16 with "
                         "matching shapes")
    if startprob.shape[0] != K or transmat.shape[0] != K or transmat.shape[1] != K:
        raise ValueError("startprob / transmat do not match the means' n_components")
    _check_sequences(offsets, group_bounds, N, S)
    if n_log_space.shape[0] != G:
        raise ValueError("group_bounds must cover the sequences")
    if trans_slots.shape[0] != G or trans_slots.shape[1] != K * K \
            or start_slots.shape[0] != G or start_slots.shape[1] != K \
            or emission_slots.shape[0] != G or emission_slots.shape[1] != width:
        raise ValueError("statistics slots have the wrong shape")
    arrays = _transition_arrays(startprob, transmat)
    cdef _FB p
    _fill_transitions(&p, arrays)
    p.lp = NULL  # (each group points a copy at its own buffers)
    p.post = NULL
    p.trans_slots = &trans_slots[0, 0]
    p.start_slots = &start_slots[0, 0]
    p.seq_ll = &seq_ll[0]
    p.n_log_space = &n_log_space[0]
    # the affine form of the log-densities (gaussian_log_density's at K <= 16): the fused
    # pass reads only these three arrays
    shift, WTp, cstp = _small_affine_arrays(means, prec, spherical, log_const)
    cdef _Dens d
    d.n_aux = WTp.shape[0]
    d.cov_type = cov_type
    d.shift = _data(shift)
    d.WTp = _data(WTp)
    d.cstp = _data(cstp)
    d.stats_shift = &stats_shift[0]
    with nogil, parallel(num_threads=n_threads):
        for g in prange(G, schedule="dynamic", chunksize=1):
            _em_group(&p, &d, &X[0, 0], D, &offsets[0], group_bounds[g],
                      group_bounds[g + 1], g, &emission_slots[g, 0], width)


cdef void _em_group(const _FB* p, const _Dens* d, const floating* X, int D,
                    const long long* offsets, Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t g,
                    double* eslot, Py_ssize_t width) noexcept nogil:
    """Group g of gaussian_em_pass: sequences [s0, s1) in order, each's log-densities,
    forward-backward and emission statistics into the group's slots. Scratch is this
    call's own."""
    cdef int K = p.K, Kp = p.Kp
    cdef int spherical = d.cov_type == 3
    cdef Py_ssize_t s, a, T, lat, c0, b
    cdef double ll
    cdef _FB q = p[0]
    cdef _GroupWork w
    cdef double* block
    cdef double* lp
    cdef double* post
    cdef double* ys
    cdef double* z
    memset(eslot, 0, width * sizeof(double))
    # after forward_backward's scratch: the log-densities and the posteriors (T K + Kp: the
    # statistics read every row's Kp lanes straight from post, the pad lanes finite), the
    # rows shifted for the statistics (T, D) and an emission chunk's features (EM_CHUNK,
    # n_aux)
    block = _group_start(p, offsets, s0, s1, g, 2 * K + D, 2 * Kp + EM_CHUNK * d.n_aux, &w)
    if block == NULL:
        return
    lat = w.lat
    lp = w.extra
    post = lp + lat * K + Kp
    ys = post + lat * K + Kp
    z = ys + lat * D
    memset(post, 0, (lat * K + Kp) * sizeof(double))
    q.lp = lp
    q.post = post
    for s in range(s0, s1):
        a = offsets[s]
        T = offsets[s + 1] - a
        c0 = 0
        while c0 < T:
            b = EM_CHUNK if c0 + EM_CHUNK < T else T - c0
            _features(X + (a + c0) * D, <int>b, D, spherical, d.shift, d.stats_shift, z,
                      ys + c0 * D)
            vbf_hmm_affine(z, <int>b, d.n_aux, d.WTp, d.cstp, K, Kp, lp + c0 * K)
            c0 = c0 + b
        ll = _forward_backward(&q, 0, T, w.alpha, w.b, w.scale, w.vec, w.xi, w.gamma0,
                               w.trans, w.start)
        if ll != ll:  # under/overflow: redo exactly in log space (b serves as log alpha)
            p.n_log_space[g] += 1
            ll = _forward_backward_log(&q, 0, T, w.b, w.vec, w.vec + K, w.trans, w.start,
                                       post)
        p.seq_ll[s] = ll
        c0 = 0
        while c0 < T:  # (blocks of rows: a block's rows and posteriors stay in L1)
            b = EM_CHUNK if c0 + EM_CHUNK < T else T - c0
            vbf_hmm_gstats_cols(ys + c0 * D, post + c0 * K, <int>b, D, K, Kp, spherical,
                                eslot, eslot + Kp, eslot + Kp + D * Kp)
            c0 = c0 + b
    free(block)


cdef inline void _features(const floating* X, int b, int D, int spherical,
                           const double* shift, const double* stats_shift, double* z,
                           double* ys) noexcept nogil:
    """For b rows of X: the log-density features z (b, n_aux) of the affine form (see
    gaussian_log_density; the same bits as ``_gauss_chunk``) and ys (b, D) = x -
    stats_shift for the statistics (``vbf_hmm_features_*`` of _hmm_emission.h)."""
    if floating is double:
        vbf_hmm_features_d(X, b, D, spherical, shift, stats_shift, z, ys)
    else:
        vbf_hmm_features_f(X, b, D, spherical, shift, stats_shift, z, ys)


cdef void _affine_small(int K, int D, int spherical, const double* means, const double* prec,
                        const double* log_const, double* shift, double* WTp,
                        double* cstp) noexcept nogil:
    """The affine form of 'diag' / 'spherical' log-densities at K <= 16 (see
    gaussian_log_density): shift (D,) the mean of the means, W^T (n_aux, Kp) and the
    constants (Kp,) in lanes k < K (the pad lanes are left as they are: zero):
    W_k = [p_k e_k, -p_k / 2] ('spherical': [p_k e_k, -p_k / 2] with one p_k),
    cst_k = c_k - 1/2 sum_j p_kj e_kj^2 ('spherical': c_k - p_k / 2 ||e_k||^2), e_k =
    mu_k - shift, sums over j in order."""
    cdef int Kp = VBF_HMM_PAD(K), k, j
    cdef double s, e, p, q
    for j in range(D):
        s = means[j]
        for k in range(1, K):
            s = s + means[k * D + j]
        shift[j] = s / K
    for k in range(K):
        q = 0.0
        for j in range(D):
            e = means[k * D + j] - shift[j]
            p = prec[k] if spherical else prec[k * D + j]
            WTp[j * Kp + k] = p * e
            if spherical:
                q = q + e * e
            else:
                WTp[(D + j) * Kp + k] = -0.5 * p
                q = q + p * e * e
        if spherical:
            WTp[D * Kp + k] = -0.5 * prec[k]
            cstp[k] = log_const[k] - 0.5 * prec[k] * q
        else:
            cstp[k] = log_const[k] - 0.5 * q


def diag_precisions(const double[::1] variances, int K, int D, bint spherical):
    """'diag' (K D values, state-major) or 'spherical' (K values) variances, positive and
    finite, to what the Gaussian kernels read: (prec, log_const), prec = 1 / variance (same
    shape), c_k = 1/2 sum_j log p_kj - D/2 log 2 pi ('spherical': 1/2 D log p_k - D/2 log
    2 pi). ValueError when a variance is not positive and finite."""
    cdef Py_ssize_t n = variances.shape[0], i
    cdef int k, j
    if K < 1 or D < 1 or n != (K if spherical else K * D):
        raise ValueError("variances must hold one value per state ('spherical') or per "
                         "state and feature ('diag')")
    for i in range(n):
        if not (variances[i] > 0.0) or not isfinite(variances[i]):
            raise ValueError(f"'{'spherical' if spherical else 'diag'}' covars must be "
                             "positive and finite")
    prec = np.empty(n)
    log_const = np.empty(K)
    cdef double[::1] p = prec, c = log_const
    cdef double s, log_2pi = 1.8378770664093453
    for i in range(n):
        p[i] = 1.0 / variances[i]
    for k in range(K):
        if spherical:
            s = D * log(p[k])
        else:
            s = log(p[k * D])
            for j in range(1, D):
                s = s + log(p[k * D + j])
        c[k] = 0.5 * s - 0.5 * D * log_2pi
    return prec, log_const


def gaussian_long_pass(const floating[:, ::1] X, const double[:, ::1] means,
                       const double[::1] prec, int cov_type, const double[::1] log_const,
                       const double[::1] stats_shift, const double[::1] startprob,
                       const double[:, ::1] transmat, LongWork work not None, int n_threads):
    """A Gaussian HMM's whole EM pass over one sequence ('diag' / 'spherical', K <= 16):
    ``forward_backward_long`` with the log-densities made from X inside its density phase
    (``gaussian_log_density``'s affine form, block by block: the same bits as that function's
    output, never stored as a (T, K) array) and the emission statistics made from each
    combined chunk's posteriors while they are in cache (``_hmm_long_gauss.h``). Everything
    between the parallel region and the returned statistics runs in C on ``work``'s buffers.

    Parameters
    ----------
    X : (T, D) float32 or float64
    means, prec, cov_type, log_const : as ``gaussian_log_density`` (cov_type 2 or 3)
    stats_shift : (D,) the shift of the statistics' coordinates
    startprob : (K,), transmat : (K, K)
    work : LongWork(T, K, D, spherical=cov_type == 3), the pass's buffers: afterwards
        ``work.post`` (T, K) holds the posteriors and ``work.em_slots`` the chunks'
        statistics, chunk c's [nk (Kp,), s1 (D, Kp), s2 (D, Kp) or (Kp,)] over its rows
    n_threads : int

    Returns
    -------
    (ll, start, trans, nk, s1, s2): log p(x); gamma_0 (K,); sum_t xi_t (K, K); with y = x -
    stats_shift, nk = sum_t gamma_t (K,), s1 = sum_t gamma_t y_t^T (K, D), s2 = sum_t gamma_t
    (y_t^2)^T (K, D) ('spherical': sum_t gamma_t ||y_t||^2, (K,)), the chunks' slots added in
    chunk order (the same bits for any thread count). ll is NaN as ``forward_backward_long``
    (then the rest is not to be used: the caller redoes the pass by the three separate
    passes), or when the per-thread scratch could not be allocated.
    """
    cdef Py_ssize_t T = X.shape[0], c, n
    cdef int D = <int>X.shape[1], K = <int>means.shape[0], nt = max(1, n_threads), k, j
    cdef bint spherical = cov_type == 3
    if T < 1 or K < 1 or K > 16 or (cov_type != 2 and cov_type != 3):
        raise ValueError("gaussian_long_pass takes 1 <= K <= 16, T >= 1 and 'diag' / "
                         "'spherical' (cov_type 2 or 3)")
    if means.shape[1] != D or log_const.shape[0] != K or stats_shift.shape[0] != D or \
            startprob.shape[0] != K or transmat.shape[0] != K or transmat.shape[1] != K or \
            prec.shape[0] != (K * D if cov_type == 2 else K) or work.T != T or \
            work.K != K or work.D != D or work.spherical != spherical or not work.backward:
        raise ValueError("shapes do not match")
    cdef int Kp = work.Kp
    cdef vbf_hmm_gauss_rows g
    _affine_small(K, D, spherical, &means[0, 0], &prec[0], &log_const[0], work.p_shift,
                  work.p_WTp, work.p_cstp)
    g.Xd = NULL
    g.Xf = NULL
    if floating is float:
        g.Xf = &X[0, 0]
    else:
        g.Xd = &X[0, 0]
    g.D = D
    g.K = K
    g.Kp = Kp
    g.n_aux = D + 1 if spherical else 2 * D
    g.spherical = spherical
    g.shift = work.p_shift
    g.stats_shift = &stats_shift[0]
    g.WTp = work.p_WTp
    g.cstp = work.p_cstp
    cdef vbf_hmm_long_ctx ctx
    _long_ctx(work, &ctx, &startprob[0], &transmat[0, 0])
    ctx.post = work.p_post
    vbf_hmm_long_gauss_hooks(&ctx, &g, work.p_em)
    with nogil, parallel(num_threads=min(nt, 2)):
        vbf_hmm_long_worker(&ctx)
    start = np.empty(K)
    trans = np.empty((K, K))
    nk = np.empty(K)
    s1 = np.empty((K, D))
    s2 = np.empty(K) if spherical else np.empty((K, D))
    cdef double[::1] start_v = start, nk_v = nk, s2_v = s2.reshape(-1)
    cdef double[:, ::1] trans_v = trans, s1_v = s1
    cdef double ll = NAN
    if not ctx.nomem:
        ll = _long_finish(work, &transmat[0, 0], &trans_v[0, 0], &start_v[0])
    if ll == ll:  # the chunks' slots [nk, s1, s2] added in chunk order, unpacked
        n = work.n_chunks
        for k in range(K):
            nk_v[k] = _chunk_sum(work, k, n)
            for j in range(D):
                s1_v[k, j] = _chunk_sum(work, Kp + j * Kp + k, n)
                if not spherical:
                    s2_v[k * D + j] = _chunk_sum(work, Kp + D * Kp + j * Kp + k, n)
            if spherical:
                s2_v[k] = _chunk_sum(work, Kp + D * Kp + k, n)
    return ll, start, trans, nk, s1, s2


cdef inline double _chunk_sum(LongWork w, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """Entry i of the emission slots summed over the chunks, in chunk order."""
    cdef double s = w.p_em[i]
    cdef Py_ssize_t c
    for c in range(1, n):
        s = s + w.p_em[c * w.width + i]
    return s


cdef int _dirichlet_rows(const double* counts, const double* prior, const double* current,
                         double* new, Py_ssize_t rows, int K) noexcept nogil:
    """hmmlearn's MAP update of distributions (``base._dirichlet_update``), row by row:
    max(prior - 1 + counts, 0), zero where current is zero, normalised; a row with nothing
    left keeps current. Returns the number of rows kept."""
    cdef Py_ssize_t r, i
    cdef int j, kept = 0
    cdef double x, s
    for r in range(rows):
        s = 0.0
        for j in range(K):
            i = r * K + j
            x = (prior[i] - 1.0) + counts[i]
            x = x if not (x < 0.0) else 0.0  # (np.maximum: NaN stays NaN)
            new[i] = 0.0 if current[i] == 0.0 else x
            s = s + new[i]
        if not (s > 0.0):
            kept += 1
            for j in range(K):
                new[r * K + j] = current[r * K + j]
        else:
            for j in range(K):
                new[r * K + j] = new[r * K + j] / s
    return kept


def gaussian_m_step_small(stats, params, tuple priors, int kind, str letters,
                          double min_covar, double empty_state):
    """hmmlearn's M-step of a Gaussian HMM with 'diag' (kind 0), 'spherical' (kind 1) or
    one feature's 'full' (kind 2) covariances, in C: the formulas of ``BaseHMM._m_step``,
    ``GaussianHMM._emission_m_step`` and ``_covariance_update`` (see gaussian.py), operation
    for operation, in coordinates shifted by stats['shift'].

    Parameters
    ----------
    stats : mapping with 'start' (K,), 'trans' (K, K), 'nk' (K,), 's1' (K, D), 's2' ('diag'
        (K, D), 'spherical' (K,), 'full' (K, 1, 1)), 'shift' (D,)
    params : mapping with 'startprob', 'transmat', 'means' (K, D), 'covars' (the type's
        shape)
    priors : (startprob_prior (K,), transmat_prior (K, K), means_weight (K, D), means_prior
        (K, D), covars_prior (K, Dc), covars_weight (K, Dc)), float64 C-contiguous, Dc = D
        for 'diag', 1 otherwise: psi ('spherical': its mean over the features), and the
        weight's part of the denominator: max(nu - 1, 0) ('diag', 'spherical') or
        max(nu - D, 0) ('full')
    letters : the estimator's ``params`` ('s', 't', 'm', 'c' updated)
    min_covar, empty_state : the variance floor; the occupancy below which a state keeps
        its emission parameters

    Returns
    -------
    (new params dict, number of kept rows and states) as ``BaseHMM._m_step``.
    """
    cdef const double[::1] start = np.ascontiguousarray(stats["start"], dtype=np.float64)
    cdef const double[:, ::1] trans = np.ascontiguousarray(stats["trans"], dtype=np.float64)
    cdef const double[::1] nk = np.ascontiguousarray(stats["nk"], dtype=np.float64)
    cdef const double[:, ::1] s1 = np.ascontiguousarray(stats["s1"], dtype=np.float64)
    cdef const double[::1] s2 = np.ascontiguousarray(stats["s2"], dtype=np.float64).reshape(-1)
    cdef const double[::1] shift = np.ascontiguousarray(stats["shift"], dtype=np.float64)
    cdef const double[::1] pi0 = np.ascontiguousarray(params["startprob"], dtype=np.float64)
    cdef const double[:, ::1] A0 = np.ascontiguousarray(params["transmat"], dtype=np.float64)
    cdef const double[:, ::1] means0 = np.ascontiguousarray(params["means"],
                                                            dtype=np.float64)
    covars_in = np.asarray(params["covars"], dtype=np.float64)
    cdef const double[::1] cov0 = np.ascontiguousarray(covars_in).reshape(-1)
    cdef const double[::1] pi_prior = priors[0]
    cdef const double[:, ::1] A_prior = priors[1]
    cdef const double[:, ::1] w = priors[2]
    cdef const double[:, ::1] mu_prior = priors[3]
    cdef const double[:, ::1] psi = priors[4]
    cdef const double[:, ::1] nu = priors[5]
    cdef int K = <int>means0.shape[0], D = <int>means0.shape[1], k, j, kept = 0, n_empty = 0
    cdef bint empty
    cdef int Dc = D if kind == 0 else 1
    if kind < 0 or kind > 2 or (kind == 2 and D != 1):
        raise ValueError("gaussian_m_step_small takes 'diag', 'spherical' or one feature's "
                         "'full'")
    if start.shape[0] != K or trans.shape[0] != K or trans.shape[1] != K or \
            nk.shape[0] != K or s1.shape[0] != K or s1.shape[1] != D or \
            s2.shape[0] != (K if kind == 1 else K * D) or shift.shape[0] != D or \
            pi0.shape[0] != K or A0.shape[0] != K or A0.shape[1] != K or \
            cov0.shape[0] != (K if kind == 1 else K * D) or pi_prior.shape[0] != K or \
            A_prior.shape[0] != K or A_prior.shape[1] != K or w.shape[0] != K or \
            w.shape[1] != D or mu_prior.shape[0] != K or mu_prior.shape[1] != D or \
            psi.shape[0] != K or psi.shape[1] != Dc or nu.shape[0] != K or nu.shape[1] != Dc:
        raise ValueError("statistics, parameters and priors do not match")
    startprob = np.array(pi0)
    transmat = np.array(A0)
    means = np.empty((K, D))
    covars = np.array(covars_in)
    cdef double[::1] pi_v = startprob
    cdef double[:, ::1] A_v = transmat, means_v = means
    cdef double[::1] cov_v = covars.reshape(-1)
    cdef bint upd_m = "m" in letters, upd_c = "c" in letters
    cdef double m, mp, d, c_n, c_d, cov, sw, sm, smm
    if "s" in letters:
        kept += _dirichlet_rows(&start[0], &pi_prior[0], &pi0[0], &pi_v[0], 1, K)
    if "t" in letters:
        kept += _dirichlet_rows(&trans[0, 0], &A_prior[0, 0], &A0[0, 0], &A_v[0, 0], K, K)
    for k in range(K):
        empty = nk[k] < empty_state
        n_empty += empty
        sw = sm = smm = 0.0  # ('spherical': the sums over the features, in order)
        for j in range(D):
            m = means0[k, j] - shift[j]
            mp = mu_prior[k, j] - shift[j]
            if upd_m and not empty:
                m = (w[k, j] * mp + s1[k, j]) / (w[k, j] + nk[k])
            means_v[k, j] = m + shift[j]
            d = m - mp
            if kind == 0:
                c_n = w[k, j] * (d * d) + s2[k * D + j] - 2.0 * m * s1[k, j] + m * m * nk[k]
                c_d = nu[k, j] + nk[k]
                c_d = c_d if not (c_d < 1e-5) else 1e-5
                cov = (psi[k, j] + c_n) / c_d
                if upd_c and not empty:
                    cov_v[k * D + j] = cov if not (cov < min_covar) else min_covar
            elif kind == 1:
                sw = sw + w[k, j] * (d * d)
                sm = sm + m * s1[k, j]
                smm = smm + m * m
            else:
                c_n = w[k, j] * (d * d) + s2[k] - s1[k, j] * m - m * s1[k, j] + nk[k] * (m * m)
                cov = (psi[k, 0] + c_n) / (nu[k, 0] + nk[k])
                if upd_c and not empty:
                    cov_v[k] = cov if not (cov < min_covar) else min_covar
        if kind == 1 and upd_c and not empty:
            c_n = (sw + s2[k] - 2.0 * sm + smm * nk[k]) / D
            c_d = nu[k, 0] + nk[k]
            c_d = c_d if not (c_d < 1e-5) else 1e-5
            cov = (psi[k, 0] + c_n) / c_d
            cov_v[k] = cov if not (cov < min_covar) else min_covar
    if upd_m or upd_c:
        kept += n_empty
    return {"startprob": startprob, "transmat": transmat, "means": means,
            "covars": covars}, kept
