# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The discrete-mixture pass (Bernoulli, categorical, multinomial): one sweep for every method.

The data are one-hot coded as a CSR matrix over L columns: a categorical item j with levels
0..L_j-1 owns the columns offset_j .. offset_j + L_j - 1 and an observed answer x_nj is one
non-zero (value 1) in column offset_j + x_nj; a missing answer is simply absent, so it drops out
of the row's likelihood (full-information ML under MAR). A multinomial row is its count vector
(values = counts). With T the (L, K) table of log-probabilities (log theta_lk, or E log theta_lk
for mean field) and c_k the per-class constant (log pi_k or E log pi_k), the pass computes

    log rho_nk = c_k + sum_{i in row n} x_i T[col_i, k]          (a sum of table lookups)
    r_nk = rho_nk / sum_k rho_nk,   log p(x_n) = logsumexp_k log rho_nk

and accumulates, with sample weights w_n,

    N_k = sum_n w_n r_nk,   S[l, k] = sum_n w_n r_nk x_nl   (= r^T onehot(X)),
    LL = sum_n w_n log p(x_n),   H = sum_n w_n sum_k r_nk log r_nk.

A row with no observed entry gets r_n = softmax(c) (the prior) and log p(x_n) = logsumexp(c).
A table entry of -inf (a probability 0 under ML) excludes the class for rows with that level; a
row excluded from every class gets uniform r_n and log p(x_n) = -inf (never NaN).

Sampled z (Gibbs): with ``sample_z`` the pass draws z_n ~ Cat(r_n) from a counter-based stream
keyed by (seed, sweep) at output ``row`` (so a draw depends on (seed, sweep, row) only), the
statistics become hard counts, LL holds sum_n w_n log rho_{n z_n} = log p(X, z | theta) and H is 0.

Determinism: rows are cut into fixed-size chunks, the chunks into G runs (G from the data size
only); each group is one thread's work, in chunk order, into its own slot, and the caller reduces
the slots in group order, so results are bitwise identical for any number of threads.
"""
from cython.parallel cimport prange, parallel
from libc.stdlib cimport malloc, free
from libc.string cimport memset
from libc.math cimport exp, log, INFINITY
from libc.stdint cimport uint64_t

ctypedef fused floating:
    float
    double

cdef extern from "vbf_rng.h":
    uint64_t vbf_stream_key2(uint64_t seed, uint64_t a) noexcept nogil
    double vbf_uniform_at(uint64_t key, uint64_t i) noexcept nogil


def uniforms(unsigned long long seed, unsigned long long sweep, Py_ssize_t start,
             Py_ssize_t stop):
    """The uniforms the sampled-z pass uses for rows [start, stop) (for tests)."""
    import numpy as np
    out = np.empty(stop - start)
    cdef double[::1] o = out
    cdef uint64_t stream = vbf_stream_key2(seed, sweep)
    cdef Py_ssize_t i
    for i in range(stop - start):
        o[i] = vbf_uniform_at(stream, <uint64_t>(start + i))
    return out


cdef extern from "_discrete_kernels.h":
    ctypedef struct vbf_dpass:
        int K, Kp
        Py_ssize_t L
        const long long* indptr
        const int* indices
        const float* values32
        const double* values64
        const double* weights
        const double* table
        const double* log_const
        const double* resp_in
        int compute_stats, sample_z
        uint64_t stream
        double* nk
        double* stat
        double* ll
        double* ent
        double* resp_out
        double* lpn_out
        int* z_out
    void vbf_dpass_chunk(const vbf_dpass* p, Py_ssize_t g, Py_ssize_t start,
                         Py_ssize_t end) noexcept nogil


def check_csr(const long long[::1] indptr, const int[::1] indices, Py_ssize_t n_columns):
    """Refuse an indptr / indices pair that is not a CSR matrix with ``n_columns`` columns
    (checked once per data object, not per pass)."""
    cdef Py_ssize_t N = indptr.shape[0] - 1, nnz = indices.shape[0], i
    if N < 1:
        raise ValueError("discrete_pass needs at least one row")
    if indptr[0] != 0 or indptr[N] != nnz:
        raise ValueError("indptr, indices and values do not describe one CSR matrix")
    for i in range(N):
        if indptr[i + 1] < indptr[i]:
            raise ValueError("indptr must be non-decreasing")
    for i in range(nnz):
        if indices[i] < 0 or indices[i] >= n_columns:
            raise ValueError(f"column index {indices[i]} outside the table's {n_columns} rows")


def discrete_pass(
    const long long[::1] indptr,
    const int[::1] indices,
    const floating[::1] values,
    const double[::1] sample_weight,
    const double[:, ::1] table,
    const double[::1] log_const,
    const double[:, ::1] resp_in,
    double[:, ::1] nk_slots,
    double[:, ::1] stat_slots,
    double[::1] ll_slots,
    double[::1] ent_slots,
    double[:, ::1] resp_out,
    double[::1] log_prob_norm_out,
    bint compute_stats,
    int chunk_size,
    int n_threads,
    bint sample_z=False,
    unsigned long long seed=0,
    unsigned long long sweep=0,
    int[::1] z_out=None,
    int n_components=-1,
):
    """One pass over the one-hot (CSR) data: responsibilities, bound terms, statistics.

    Parameters
    ----------
    indptr : (N + 1,) int64; indices : (nnz,) int32 columns in [0, L) (``check_csr``: the
        caller checks them once per data object)
    values : (nnz,) float32 or float64 counts, or empty: every non-zero is 1 (one-hot data)
    sample_weight : (N,) float64, or empty for unit weights
    table : (L, Kp) float64 log-probabilities, Kp = K rounded up to a multiple of 4, lanes >= K zero;
    log_const : (Kp,) float64, lanes >= K -inf (padded classes get no mass)
    resp_in : (N, K) float64 responsibilities to use instead of computing them (statistics
        of a given partition; the bound terms and per-row outputs are then untouched), or (0, 0)
    nk_slots (G, Kp), stat_slots (G, L * Kp), ll_slots (G,), ent_slots (G,) : overwritten
    resp_out : (N, K) float64 or (0, 0); log_prob_norm_out : (N,) float64 or (0,)
    compute_stats : accumulate N_k and S
    chunk_size, n_threads : rows per chunk, OpenMP threads (results do not depend on it)
    sample_z, seed, sweep, z_out : the Gibbs draw (see the module docstring); z_out (N,) int32
    n_components : K (required)
    """
    cdef Py_ssize_t N = indptr.shape[0] - 1
    cdef int Kp = <int>table.shape[1]
    cdef int K = n_components
    cdef Py_ssize_t L = table.shape[0]
    cdef Py_ssize_t G = nk_slots.shape[0]
    cdef Py_ssize_t nnz = indices.shape[0]
    cdef bint has_values = values.shape[0] > 0
    cdef bint has_z_out = z_out is not None and z_out.shape[0] > 0
    cdef Py_ssize_t n_chunks, per_group, g, c, start, end
    if N < 1:
        raise ValueError("discrete_pass needs at least one row")
    if Kp < 4 or Kp % 4 != 0 or log_const.shape[0] != Kp:
        raise ValueError("table and log_const must have Kp (a multiple of 4) class lanes")
    if K < 1 or K > Kp or Kp - K >= 4:
        raise ValueError("n_components does not match the padded table")
    if indptr[0] != 0 or indptr[N] != nnz or (has_values and values.shape[0] != nnz):
        raise ValueError("indptr, indices and values do not describe one CSR matrix")
    if G < 1 or stat_slots.shape[0] != G or ll_slots.shape[0] != G or \
            ent_slots.shape[0] != G or nk_slots.shape[1] != Kp or stat_slots.shape[1] != L * Kp:
        raise ValueError("statistics slots have the wrong shape")
    if sample_weight.shape[0] not in (0, N):
        raise ValueError("sample_weight must have one entry per row")
    if resp_in.shape[0] > 0 and (resp_in.shape[0] != N or resp_in.shape[1] != K):
        raise ValueError("resp_in must be (N, K)")
    if resp_out.shape[0] > 0 and (resp_out.shape[0] != N or resp_out.shape[1] != K):
        raise ValueError("resp_out must be (N, K)")
    if log_prob_norm_out.shape[0] not in (0, N):
        raise ValueError("log_prob_norm_out must be (N,)")
    if chunk_size < 1 or n_threads < 1:
        raise ValueError("chunk_size and n_threads must be positive")
    if sample_z and resp_in.shape[0] > 0:
        raise ValueError("sample_z draws z from the pass's own responsibilities")
    if has_z_out and (z_out.shape[0] != N or not sample_z):
        raise ValueError("z_out must be (N,) and needs sample_z")

    cdef double dummy = 0.0
    cdef vbf_dpass p
    p.K = K
    p.Kp = Kp
    p.L = L
    p.indptr = &indptr[0]
    p.indices = &indices[0] if nnz > 0 else <int*>NULL
    p.values32 = NULL
    p.values64 = NULL
    if has_values:
        if floating is float:
            p.values32 = <const float*>&values[0]
        else:
            p.values64 = <const double*>&values[0]
    p.weights = &sample_weight[0] if sample_weight.shape[0] > 0 else NULL
    p.table = &table[0, 0] if L > 0 else &dummy
    p.log_const = &log_const[0]
    p.resp_in = &resp_in[0, 0] if resp_in.shape[0] > 0 else NULL
    p.compute_stats = compute_stats
    p.sample_z = sample_z
    p.stream = vbf_stream_key2(seed, sweep)
    p.nk = &nk_slots[0, 0]
    p.stat = &stat_slots[0, 0] if L > 0 else &dummy
    p.ll = &ll_slots[0]
    p.ent = &ent_slots[0]
    p.resp_out = &resp_out[0, 0] if resp_out.shape[0] > 0 else NULL
    p.lpn_out = &log_prob_norm_out[0] if log_prob_norm_out.shape[0] > 0 else NULL
    p.z_out = &z_out[0] if has_z_out else NULL

    n_chunks = (N + chunk_size - 1) // chunk_size
    per_group = (n_chunks + G - 1) // G
    with nogil, parallel(num_threads=n_threads):
        # groups handed out dynamically: on shared cores a descheduled thread's groups are
        # taken by the others (each group still writes its own slot: same results)
        for g in prange(G, schedule='dynamic', chunksize=1):
            # each group clears its own slot (in parallel, and warm in this thread's cache)
            memset(p.nk + g * Kp, 0, Kp * sizeof(double))
            memset(p.stat + g * L * Kp, 0, L * Kp * sizeof(double))
            p.ll[g] = 0.0
            p.ent[g] = 0.0
            for c in range(g * per_group, min((g + 1) * per_group, n_chunks)):
                start = c * chunk_size
                end = min(start + chunk_size, N)
                vbf_dpass_chunk(&p, g, start, end)


def pack_rows(const long long[::1] indptr, const int[::1] indices,
              const int[::1] group_of_column, const long long[::1] delta_of_column,
              const long long[::1] base_of_group, const long long[::1] column_of_group,
              const long long[::1] bit_of_column):
    """Re-code one-hot rows with items packed into groups: a row's answers to the items of
    group g become one non-zero in column ``column_of_group[g] + code``, code = base_g +
    sum of ``delta_of_column`` over the row's answers in g (a mixed-radix number whose
    digits are the items' levels, a missing item the digit past its last level); a group with
    every item missing gets no non-zero.

    Parameters
    ----------
    indptr (N + 1,) int64, indices (nnz,) int32 : the one-hot CSR rows (columns in [0, L))
    group_of_column (L,) int32, delta_of_column (L,) int64 : each column's group and its
        contribution to the group's code
    base_of_group (G,) int64, column_of_group (G,) int64 : the all-missing code and the first
        packed column of each group
    bit_of_column (L,) int64 : 1 << (the item's position in its group) (< 64 items a group)

    Returns
    -------
    (indptr (N + 1,) int64, indices (nnz',) int32) of the packed rows, or None when a row
    answers an item twice (not one-hot items: the caller keeps the rows as they are).
    """
    import numpy as np
    cdef Py_ssize_t N = indptr.shape[0] - 1, G = base_of_group.shape[0]
    cdef Py_ssize_t n, i, g, m = 0
    cdef int col
    out_ptr = np.empty(N + 1, dtype=np.int64)
    # at most one non-zero a group a row, never more than the row has
    out_idx = np.empty(min(<Py_ssize_t>indices.shape[0], N * G), dtype=np.int32)
    cdef long long[::1] optr = out_ptr
    cdef int[::1] oidx = out_idx
    code_arr = np.empty(max(G, 1), dtype=np.int64)
    seen_arr = np.empty(max(G, 1), dtype=np.uint64)
    cdef long long[::1] code = code_arr
    cdef unsigned long long[::1] seen = seen_arr
    cdef unsigned long long bit
    cdef bint twice = False
    with nogil:
        optr[0] = 0
        for n in range(N):
            for g in range(G):
                code[g] = base_of_group[g]
                seen[g] = 0
            for i in range(indptr[n], indptr[n + 1]):
                col = indices[i]
                g = group_of_column[col]
                bit = <unsigned long long>bit_of_column[col]
                if seen[g] & bit:
                    twice = True
                    break
                seen[g] |= bit
                code[g] += delta_of_column[col]
            if twice:
                break
            for g in range(G):
                if seen[g]:
                    oidx[m] = <int>(column_of_group[g] + code[g])
                    m += 1
            optr[n + 1] = m
    if twice:
        return None
    return out_ptr, out_idx[:m].copy()
