# What every pass over grouped sequences checks and derives, written once for the two
# extension modules that include it (_hmm.pyx, _ffbs.pyx).

cdef Py_ssize_t _check_sequences(const long long[::1] offsets,
                                 const long long[::1] group_bounds, Py_ssize_t N,
                                 Py_ssize_t S) except -1:
    """offsets (S + 1) cut the N rows into S sequences of at least one row each; group_bounds
    (G + 1) cut the S sequences into G >= 1 groups in order. Returns the longest length."""
    cdef Py_ssize_t G = group_bounds.shape[0] - 1, s, g, T, max_len = 0
    if offsets.shape[0] != S + 1 or offsets[0] != 0 or offsets[S] != N:
        raise ValueError("offsets must start at 0 and end at n_samples")
    if G < 1 or group_bounds[0] != 0 or group_bounds[G] != S:
        raise ValueError("group_bounds must cover the sequences")
    for s in range(S):
        T = offsets[s + 1] - offsets[s]
        if T < 1:
            raise ValueError("every sequence needs at least one sample")
        if T > max_len:
            max_len = T
    for g in range(G):
        if group_bounds[g + 1] < group_bounds[g]:
            raise ValueError("group_bounds must be non-decreasing")
    return max_len


cdef tuple _log_probabilities(const double[::1] startprob, const double[:, ::1] transmat):
    """(log pi (K,), log A (K, K)), float64, -inf for the zeros."""
    logpi = np.empty(startprob.shape[0])
    logA = np.empty((transmat.shape[0], transmat.shape[1]))
    with np.errstate(divide="ignore"):
        np.log(np.asarray(transmat), out=logA)
        np.log(np.asarray(startprob), out=logpi)
    return logpi, logA
