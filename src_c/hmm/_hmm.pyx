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
    logA = np.empty((K, K))
    logpi = np.empty(K)
    with np.errstate(divide="ignore"):
        np.log(A, out=logA)
        np.log(np.asarray(startprob), out=logpi)
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
    cdef Py_ssize_t s, g, max_len = 0, T
    if startprob.shape[0] != K or transmat.shape[0] != K or transmat.shape[1] != K:
        raise ValueError("startprob / transmat do not match logprob's n_components")
    if offsets.shape[0] != S + 1 or offsets[0] != 0 or offsets[S] != N:
        raise ValueError("offsets must start at 0 and end at n_samples")
    if G < 1 or group_bounds[0] != 0 or group_bounds[G] != S or n_log_space.shape[0] != G:
        raise ValueError("group_bounds must cover the sequences")
    if want_post and (post.shape[0] != N or post.shape[1] != K):
        raise ValueError("post must be (n_samples, n_components)")
    if want_stats and (trans_slots.shape[0] != G or trans_slots.shape[1] != K * K
                       or start_slots.shape[0] != G or start_slots.shape[1] != K):
        raise ValueError("statistics slots have the wrong shape")
    for s in range(S):
        T = offsets[s + 1] - offsets[s]
        if T < 1:
            raise ValueError("every sequence needs at least one sample")
        if T > max_len:
            max_len = T
    for g in range(G):
        if group_bounds[g + 1] < group_bounds[g]:
            raise ValueError("group_bounds must be non-decreasing")
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
        for g in prange(G, schedule="static"):
            _group(&p, &offsets[0], group_bounds[g], group_bounds[g + 1], g, max_len,
                   backward)


cdef void _group(const _FB* p, const long long* offsets, Py_ssize_t s0, Py_ssize_t s1,
                 Py_ssize_t g, Py_ssize_t max_len, bint backward) noexcept nogil:
    """Sequences [s0, s1) into group g's slot, in order. Scratch is this call's own."""
    cdef int K = p.K, Kp = p.Kp
    cdef Py_ssize_t s, a, T, lat = 0
    cdef double ll
    cdef double* trans = NULL
    cdef double* start = NULL
    cdef double* alpha
    cdef double* work
    cdef double* b
    cdef double* scale
    cdef double* vec
    cdef double* xi
    cdef double* gamma0
    p.n_log_space[g] = 0
    if p.trans_slots != NULL:
        trans = p.trans_slots + g * K * K
        start = p.start_slots + g * K
        memset(trans, 0, K * K * sizeof(double))
        memset(start, 0, K * sizeof(double))
    if s1 <= s0:
        return
    for s in range(s0, s1):
        T = offsets[s + 1] - offsets[s]
        if T > lat:
            lat = T
    # b, alpha (T, Kp), scale (T,), 3 vectors of Kp, xi (K, Kp), gamma0 (Kp,); the log-space
    # path uses b as log alpha (T, K) and vec (3 K)
    work = <double*>malloc((2 * lat * Kp + lat + 4 * Kp + K * Kp) * sizeof(double))
    if work == NULL:
        return  # (seq_ll stays as the caller initialised it: NaN, caught there)
    b = work
    alpha = b + lat * Kp
    scale = alpha + lat * Kp
    vec = scale + lat
    gamma0 = vec + 3 * Kp
    xi = gamma0 + Kp
    for s in range(s0, s1):
        a = offsets[s]
        T = offsets[s + 1] - a
        if not backward:
            ll = _forward_only(p, a, T, vec, vec + K)
        else:
            ll = _forward_backward(p, a, T, alpha, b, scale, vec, xi, gamma0, trans, start)
        if ll != ll:  # under/overflow: redo exactly in log space (b serves as log alpha)
            p.n_log_space[g] += 1
            ll = _forward_backward_log(p, a, T, b, vec, vec + K, trans, start,
                                       p.post if p.post != NULL else NULL)
        p.seq_ll[s] = ll
    free(work)


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
    cdef Py_ssize_t G = group_bounds.shape[0] - 1, g, s, max_len = 0
    if startprob.shape[0] != K or transmat.shape[0] != K or transmat.shape[1] != K:
        raise ValueError("startprob / transmat do not match logprob's n_components")
    if offsets.shape[0] != S + 1 or offsets[0] != 0 or offsets[S] != N or states.shape[0] != N:
        raise ValueError("offsets must start at 0 and end at n_samples")
    if G < 1 or group_bounds[0] != 0 or group_bounds[G] != S:
        raise ValueError("group_bounds must cover the sequences")
    for s in range(S):
        if offsets[s + 1] - offsets[s] < 1:
            raise ValueError("every sequence needs at least one sample")
    logA = np.empty((K, K))
    logpi = np.empty(K)
    with np.errstate(divide="ignore"):
        np.log(np.asarray(transmat), out=logA)
        np.log(np.asarray(startprob), out=logpi)
    cdef double[:, ::1] lA = logA
    cdef double[::1] lpi = logpi
    with nogil, parallel(num_threads=n_threads):
        for g in prange(G, schedule="static"):
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
    if s1 <= s0:
        return
    for s in range(s0, s1):
        T = offsets[s + 1] - offsets[s]
        if T > lat:
            lat = T
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
    WTp = np.zeros((n_aux, max(Kp, 1)))
    cstp = np.zeros(max(Kp, 1))
    if Kp:
        WTp[:, :K] = W.T
        cstp[:K] = cst
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
        for c in prange(n_chunks, schedule="static"):
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
        for g in prange(G, schedule="static"):
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
LONG_CHUNK = 4096


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
    cdef vbf_hmm_long_ctx ctx
    arrays = _long_setup(&ctx, startprob, transmat, T, backward)
    ctx.lp = &logprob[0, 0]
    ctx.post = &post[0, 0] if want_post else NULL
    # one region; the threads claim the work (vbf_hmm_long_worker): two at most are useful
    with nogil, parallel(num_threads=min(nt, 2)):
        vbf_hmm_long_worker(&ctx)
    return _long_finish(arrays, transmat, trans, start, backward, want_stats)


cdef tuple _long_setup(vbf_hmm_long_ctx* ctx, const double[::1] startprob,
                       const double[:, ::1] transmat, Py_ssize_t T, bint backward,
                       lattice=None):
    """Fill a long-pass context but for lp, post and the hooks (zeroed); returns the arrays
    it points into (kept alive by the caller until the region has run). ``lattice``: a
    (3, T, Kp) float64 buffer for b, alpha and V (a fit reuses one: no fresh pages to
    fault in every iteration), None: a new one."""
    cdef int K = <int>transmat.shape[0]
    cdef int Kp = VBF_HMM_PAD(K)
    cdef Py_ssize_t chunk = LONG_CHUNK
    cdef Py_ssize_t n_chunks = (T + chunk - 1) // chunk
    Ap = np.zeros((Kp, Kp))
    Ap[:K, :K] = transmat
    ATp = np.zeros((Kp, Kp))
    ATp[:K, :K] = np.asarray(transmat).T
    startp = np.zeros(Kp)
    startp[:K] = startprob
    if lattice is None:
        lat = np.empty((3 if backward else 2, T, Kp))
    else:
        lat = lattice
    msum = np.empty(n_chunks)
    lsum = np.zeros(2)
    bad = np.zeros(n_chunks + 2, dtype=np.int32)
    xi_slots = np.empty((n_chunks if backward else 0, Kp * Kp))
    gamma0 = np.zeros(Kp)
    cdef double[:, :, ::1] lat_v = lat
    cdef double[::1] msum_v = msum, lsum_v = lsum, g0_v = gamma0, sp_v = startp
    cdef double[:, ::1] xi_v = xi_slots, Ap_v = Ap, ATp_v = ATp
    cdef int[::1] bad_v = bad
    memset(ctx, 0, sizeof(vbf_hmm_long_ctx))
    ctx.K = K
    ctx.Kp = Kp
    ctx.backward = backward
    ctx.T = T
    ctx.chunk = chunk
    ctx.n_chunks = n_chunks
    ctx.startp = &sp_v[0]
    ctx.Ap = &Ap_v[0, 0]
    ctx.ATp = &ATp_v[0, 0]
    ctx.b = &lat_v[0, 0, 0]
    ctx.alpha = &lat_v[1, 0, 0]
    ctx.V = &lat_v[2, 0, 0] if backward else NULL
    ctx.gamma0 = &g0_v[0]
    ctx.xi_slots = &xi_v[0, 0] if backward else NULL
    ctx.msum = &msum_v[0]
    ctx.lsum = &lsum_v[0]
    ctx.bad = &bad_v[0]
    return (msum, lsum, bad, xi_slots, gamma0, lat, Ap, ATp, startp)


cdef double _long_finish(tuple arrays, const double[:, ::1] transmat, double[:, ::1] trans,
                         double[::1] start, bint backward, bint want_stats):
    """log p(x) from the region's outputs (NaN: under/overflow or no finite density), and
    the transition and start counts into trans, start."""
    msum, lsum, bad, xi_slots, gamma0 = arrays[:5]
    cdef int K = <int>transmat.shape[0]
    cdef int Kp = VBF_HMM_PAD(K)
    cdef double[::1] msum_v = msum
    cdef Py_ssize_t c
    cdef double sum_m = 0.0
    for c in range(msum_v.shape[0]):  # in chunk order
        sum_m += msum_v[c]
    if sum_m != sum_m or bad[0] or bad[1]:
        return NAN
    if backward:
        if bad[2:].any():
            return NAN
        if want_stats:
            # slots in chunk order (numpy adds the rows of a C-ordered array in order)
            xi = xi_slots.sum(axis=0).reshape(Kp, Kp)[:K, :K]
            np.multiply(np.asarray(transmat), xi, out=np.asarray(trans))
            np.asarray(start)[:] = gamma0[:K]
    return sum_m + lsum[0]


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
    if offsets.shape[0] != S + 1 or offsets[0] != 0 or offsets[S] != N:
        raise ValueError("offsets must start at 0 and end at n_samples")
    if G < 1 or group_bounds[0] != 0 or group_bounds[G] != S or n_log_space.shape[0] != G:
        raise ValueError("group_bounds must cover the sequences")
    if trans_slots.shape[0] != G or trans_slots.shape[1] != K * K \
            or start_slots.shape[0] != G or start_slots.shape[1] != K \
            or emission_slots.shape[0] != G or emission_slots.shape[1] != width:
        raise ValueError("statistics slots have the wrong shape")
    for s in range(S):
        T = offsets[s + 1] - offsets[s]
        if T < 1:
            raise ValueError("every sequence needs at least one sample")
    for g in range(G):
        if group_bounds[g + 1] < group_bounds[g]:
            raise ValueError("group_bounds must be non-decreasing")
    arrays = _transition_arrays(startprob, transmat)
    cdef _FB p
    _fill_transitions(&p, arrays)
    p.lp = NULL  # (each group points a copy at its own buffers)
    p.post = NULL
    p.trans_slots = &trans_slots[0, 0]
    p.start_slots = &start_slots[0, 0]
    p.seq_ll = &seq_ll[0]
    p.n_log_space = &n_log_space[0]
    dens = _density_arrays(means, prec, cov_type, log_const)
    cdef _Dens d
    cdef const double[::1] s_v = dens[1]
    cdef const double[:, ::1] WT_v = dens[5]
    cdef const double[::1] cp_v = dens[6]
    d.n_aux = dens[0]
    d.cov_type = cov_type
    d.shift = &s_v[0]
    d.WTp = &WT_v[0, 0]
    d.cstp = &cp_v[0]
    d.stats_shift = &stats_shift[0]
    with nogil, parallel(num_threads=n_threads):
        for g in prange(G, schedule="static"):
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
    cdef Py_ssize_t s, a, T, lat = 0, c0, b
    cdef double ll
    cdef _FB q = p[0]
    cdef double* trans = p.trans_slots + g * K * K
    cdef double* start = p.start_slots + g * K
    cdef double* work
    cdef double* b_lat
    cdef double* alpha
    cdef double* scale
    cdef double* vec
    cdef double* gamma0
    cdef double* xi
    cdef double* lp
    cdef double* post
    cdef double* ys
    cdef double* z
    p.n_log_space[g] = 0
    memset(trans, 0, K * K * sizeof(double))
    memset(start, 0, K * sizeof(double))
    memset(eslot, 0, width * sizeof(double))
    if s1 <= s0:
        return
    for s in range(s0, s1):
        T = offsets[s + 1] - offsets[s]
        if T > lat:
            lat = T
    # forward_backward's scratch (b, alpha (T, Kp), scale (T,), vec (3 Kp), gamma0 (Kp),
    # xi (K, Kp)), then the log-densities and the posteriors (T K + Kp: the statistics read
    # every row's Kp lanes straight from post, the pad lanes finite), the rows shifted for
    # the statistics (T, D) and an emission chunk's features (EM_CHUNK, n_aux)
    work = <double*>malloc((2 * lat * Kp + lat + 4 * Kp + K * Kp + 2 * (lat * K + Kp)
                            + lat * D + EM_CHUNK * d.n_aux) * sizeof(double))
    if work == NULL:
        return  # (seq_ll stays NaN: the caller raises MemoryError)
    b_lat = work
    alpha = b_lat + lat * Kp
    scale = alpha + lat * Kp
    vec = scale + lat
    gamma0 = vec + 3 * Kp
    xi = gamma0 + Kp
    lp = xi + K * Kp
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
        ll = _forward_backward(&q, 0, T, alpha, b_lat, scale, vec, xi, gamma0, trans, start)
        if ll != ll:  # under/overflow: redo exactly in log space (b_lat serves as log alpha)
            p.n_log_space[g] += 1
            ll = _forward_backward_log(&q, 0, T, b_lat, vec, vec + K, trans, start, post)
        p.seq_ll[s] = ll
        c0 = 0
        while c0 < T:  # (blocks of rows: a block's rows and posteriors stay in L1)
            b = EM_CHUNK if c0 + EM_CHUNK < T else T - c0
            vbf_hmm_gstats_cols(ys + c0 * D, post + c0 * K, <int>b, D, K, Kp, spherical,
                                eslot, eslot + Kp, eslot + Kp + D * Kp)
            c0 = c0 + b
    free(work)


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


def gaussian_long_pass(const floating[:, ::1] X, const double[:, ::1] means,
                       const double[::1] prec, int cov_type, const double[::1] log_const,
                       const double[::1] stats_shift, const double[::1] startprob,
                       const double[:, ::1] transmat, double[:, ::1] post,
                       double[:, ::1] trans, double[::1] start, double[:, ::1] emission_slots,
                       double[:, :, ::1] lattice, int n_threads):
    """A Gaussian HMM's whole EM pass over one sequence ('diag' / 'spherical', K <= 16):
    ``forward_backward_long`` with the log-densities made from X inside its density phase
    (``gaussian_log_density``'s affine form, block by block: the same bits as that function's
    output, never stored as a (T, K) array) and the emission statistics made from each
    combined chunk's posteriors while they are in cache (``_hmm_long_gauss.h``).

    Parameters
    ----------
    X : (T, D) float32 or float64
    means, prec, cov_type, log_const : as ``gaussian_log_density`` (cov_type 2 or 3)
    stats_shift : (D,) the shift of the statistics' coordinates
    startprob : (K,), transmat : (K, K)
    post : (T, K) float64, scratch for the posteriors (written)
    trans : (K, K) out, sum_t xi_t; start : (K,) out, gamma_0
    emission_slots : (n_chunks, Kp (1 + D + D)) ('diag') or (n_chunks, Kp (2 + D))
        ('spherical') out, n_chunks = ceil(T / LONG_CHUNK): chunk c's [nk (Kp,), s1 (D, Kp),
        s2 (D, Kp) or (Kp,)] with y = x - stats_shift: nk = sum_t gamma_t, s1[j] = sum_t
        y_tj gamma_t, s2[j] = sum_t y_tj^2 gamma_t ('spherical': sum_t ||y_t||^2 gamma_t),
        over the chunk's rows; the caller adds them in chunk order (the same bits for any
        thread count)
    lattice : (3, T, Kp) float64, scratch for the densities b and the two recursions
    n_threads : int

    Returns
    -------
    log p(x), or NaN as ``forward_backward_long`` (then trans, start and the slots are not
    to be used; the caller redoes the pass by the three separate passes), or when the
    per-thread scratch could not be allocated.
    """
    cdef Py_ssize_t T = X.shape[0]
    cdef int D = <int>X.shape[1], K = <int>means.shape[0], nt = max(1, n_threads)
    cdef int Kp = VBF_HMM_PAD(K)
    cdef bint spherical = cov_type == 3
    if T < 1 or K < 1 or K > 16 or (cov_type != 2 and cov_type != 3):
        raise ValueError("gaussian_long_pass takes 1 <= K <= 16, T >= 1 and 'diag' / "
                         "'spherical' (cov_type 2 or 3)")
    if means.shape[1] != D or log_const.shape[0] != K or stats_shift.shape[0] != D or \
            startprob.shape[0] != K or transmat.shape[0] != K or transmat.shape[1] != K or \
            post.shape[0] != T or post.shape[1] != K or trans.shape[0] != K or \
            trans.shape[1] != K or start.shape[0] != K or \
            emission_slots.shape[0] != (T + LONG_CHUNK - 1) // LONG_CHUNK or \
            emission_slots.shape[1] != Kp * (2 + D if spherical else 1 + 2 * D) or \
            prec.shape[0] != (K * D if cov_type == 2 else K) or lattice.shape[0] != 3 or \
            lattice.shape[1] != T or lattice.shape[2] != Kp:
        raise ValueError("shapes do not match")
    dens = _density_arrays(means, prec, cov_type, log_const)
    cdef double[::1] s_v = dens[1]
    cdef double[:, ::1] WT_v = dens[5]
    cdef double[::1] cp_v = dens[6]
    cdef vbf_hmm_gauss_rows g
    g.Xd = NULL
    g.Xf = NULL
    if floating is float:
        g.Xf = &X[0, 0]
    else:
        g.Xd = &X[0, 0]
    g.D = D
    g.K = K
    g.Kp = Kp
    g.n_aux = dens[0]
    g.spherical = spherical
    g.shift = &s_v[0]
    g.stats_shift = &stats_shift[0]
    g.WTp = &WT_v[0, 0]
    g.cstp = &cp_v[0]
    cdef vbf_hmm_long_ctx ctx
    arrays = _long_setup(&ctx, startprob, transmat, T, True, np.asarray(lattice))
    ctx.post = &post[0, 0]
    vbf_hmm_long_gauss_hooks(&ctx, &g, &emission_slots[0, 0])
    with nogil, parallel(num_threads=min(nt, 2)):
        vbf_hmm_long_worker(&ctx)
    if ctx.nomem:
        return NAN
    return _long_finish(arrays, transmat, trans, start, True, True)
