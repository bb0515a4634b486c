# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The Gaussian-mixture pass over rows with missing coordinates (NaN), exact EM / mean field.

For a row x with observed block o and missing block m (its *pattern* p), and a component k
with mean mu and precision P = U U^T (U the upper factor the complete-row pass uses), the
marginal of the observed block and the conditional of the missing one come from P alone:

    x^_m = mu_m - P_mm^{-1} P_mo (x_o - mu_o)            conditional mean of x_m | x_o
    C    = P_mm^{-1}                                     conditional covariance
    (x_o - mu_o)^T Sigma_oo^{-1} (x_o - mu_o) = || (x^ - mu) U ||^2     (x^ = x with x^_m)
    log N(x_o | mu_o, Sigma_oo) = [-D/2 log 2 pi + log det U] + corr_pk - 1/2 ||(x^ - mu) U||^2,
    corr_pk = |m|/2 log 2 pi - 1/2 log |P_mm|.

So each row is the complete-row computation on its completed vector x^ (different for each
component), with the constant corr_pk added to c_k, and the statistics those of x^ plus the
conditional covariance: S2_k += r C in the (m, m) block. The caller gives, per (pattern,
component), the lower Cholesky factor L_pk of P_mm (the pass completes a row from y = x - mu
with y_m zeroed: y_m = -P_mm^{-1} (P y)_m, one product with the cached (K, D, D) precisions
and two triangular solves), C_pk, corr_pk and h_pk, which the entropy term subtracts
(sum_n w_n sum_k r_nk (log r_nk - h_pk)); h_pk is the entropy of q(x_m | z = k) of mean field
(EM does not use the entropy term).

Every covariance type is given as dense (K, D, D) factors and gets (K, D, D) second moments
centred at ``centres`` (the caller reduces them to its type's layout): the rows with missing
values are the minority the generic form serves; complete rows keep the specialised pass.

Determinism: the rows (an index array, grouped by pattern) are cut into fixed chunks and
gathered into ``n_groups`` groups, one statistics slot each, reduced by the caller in order;
the result is bitwise identical for any thread count.
"""
from cython.parallel cimport prange, parallel
from libc.stdlib cimport malloc, free
from libc.string cimport memset
from libc.math cimport exp, log, sqrt, INFINITY
from scipy.linalg.cython_blas cimport dgemv, dsyrk, dtrmm

cdef extern from "_gaussian_kernels.h":
    double vbf_gmm_responsibilities(double* lp, int K, double* sum_r_log_r) noexcept nogil

ctypedef fused floating:
    float
    double

cdef char CH_N = b'N'
cdef char CH_L = b'L'
cdef char CH_U = b'U'


cdef struct _MissPass:
    # IN
    int D, K
    const long long* rows        # (M,) rows of X to process, grouped by pattern
    const int* row_pattern       # (M,) their pattern
    const double* weights        # (N,) indexed by row; NULL: unit weights
    const double* shift          # (D,)
    const double* means          # (K, D) shifted means of the quadratic form
    const double* centres        # (K, D) shifted centres of S2
    const double* prec_chol      # (K, D, D) upper factors
    const double* log_const      # (K,)
    const int* miss_idx          # missing coordinates of pattern p: miss_off[p]..miss_off[p+1]
    const long long* miss_off    # (P + 1,)
    const double* prec           # (K, D, D) precisions P_k
    const double* l_mat          # L_pk at l_off[p] + k |m|^2: Cholesky factor of P_mm, lower
    const long long* l_off       # (P,)
    const double* c_mat          # C_pk at c_off[p] + k |m|^2, (|m|, |m|) row-major
    const long long* c_off       # (P,)
    const double* corr           # (P, K)
    const double* h_ent          # (P, K)
    const double* p2             # (K, D) diagonal precisions ('diag', 'spherical'); NULL: any
    bint compute_stats
    # OUT (per group g)
    double* nk                   # (G, K)
    double* s1                   # (G, K D)
    double* s2                   # (G, K D D), lower triangle (row-major) filled
    double* ll                   # (G,)
    double* ent                  # (G,)


cdef inline void _complete(int D, int b, const double* m_k, const double* prec_k,
                           const int* pat, const int* miss_idx, const long long* miss_off,
                           const double* l_k, const long long* l_off, int k,
                           const double* xbuf, const double* obuf, double* ybuf,
                           double* tmp) noexcept nogil:
    """ybuf (b, D) = x^ - mu_k of the chunk's rows for component k: y = x - mu_k with the
    missing entries zeroed, then y_m = -P_mm^{-1} (P y)_m by the Cholesky factor L of P_mm
    (l_k: the flat factors, diagonals stored inverted; pattern p's for component k at
    l_off[p] + k |m|^2)."""
    cdef int n, j, t, u, nm, D4 = D - D % 4
    cdef const int* mi
    cdef const double* low
    cdef const double* row
    cdef const double* x
    cdef double* y
    cdef double s, s0, s1, s2, s3
    for n in range(b):
        y = ybuf + n * D
        x = xbuf + n * D
        for j in range(D):
            y[j] = (x[j] - m_k[j]) * obuf[n * D + j]
        mi = miss_idx + miss_off[pat[n]]
        nm = <int>(miss_off[pat[n] + 1] - miss_off[pat[n]])
        low = l_k + l_off[pat[n]] + k * nm * nm
        # forward: L z = (P y)_m; the dot products in four partial sums (short chains)
        for t in range(nm):
            row = prec_k + mi[t] * D
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            for j in range(0, D4, 4):
                s0 = s0 + row[j] * y[j]
                s1 = s1 + row[j + 1] * y[j + 1]
                s2 = s2 + row[j + 2] * y[j + 2]
                s3 = s3 + row[j + 3] * y[j + 3]
            for j in range(D4, D):
                s0 = s0 + row[j] * y[j]
            s = (s0 + s1) + (s2 + s3)
            for u in range(t):
                s = s - low[t * nm + u] * tmp[u]
            tmp[t] = s * low[t * nm + t]  # (the diagonal is stored inverted)
        # backward: L^T s = z
        for t in range(nm - 1, -1, -1):
            s = tmp[t]
            for u in range(t + 1, nm):
                s = s - low[u * nm + t] * tmp[u]
            tmp[t] = s * low[t * nm + t]
        for t in range(nm):
            y[mi[t]] = -tmp[t]


cdef void _chunk(const _MissPass* p, const floating* X, floating* resp_out,
                 floating* lpn_out, Py_ssize_t g, Py_ssize_t start, Py_ssize_t end,
                 int* pat, double* xbuf, double* ybuf, double* zbuf, double* lp,
                 double* tmp, double* obuf) noexcept nogil:
    """Rows start..end of ``rows`` into group g's slot. ybuf: (K, chunk, D), the completed
    rows x^ - mu_k of every component (computed once, read again for the statistics); zbuf:
    (chunk, D) scratch; obuf: (chunk, D) 1 where observed, 0 where missing."""
    # p's fields as locals: the loops then read them from registers
    cdef int D = p.D, K = p.K
    cdef const long long* rows = p.rows
    cdef const double* shift = p.shift
    cdef const double* means = p.means
    cdef const double* centres = p.centres
    cdef const double* prec = p.prec
    cdef const double* log_const = p.log_const
    cdef const double* corr = p.corr
    cdef const double* h_ent = p.h_ent
    cdef const double* weights = p.weights
    cdef const int* miss_idx = p.miss_idx
    cdef const long long* miss_off = p.miss_off
    cdef const double* l_mat = p.l_mat
    cdef const long long* l_off = p.l_off
    cdef const double* c_mat = p.c_mat
    cdef const long long* c_off = p.c_off
    cdef int b = <int>(end - start)
    cdef int n, j, k, t, u, nm, inc = 1
    cdef long long row
    cdef double s, v, v_k, mx, lpn, w, r, ll_chunk = 0.0, ent_chunk = 0.0, one = 1.0
    cdef double* lp_n
    cdef double* y
    cdef double* z
    cdef double* y_k
    cdef const double* m_k
    cdef const double* c_k
    cdef const double* cm
    cdef const int* mi
    cdef double* s1 = p.s1 + g * K * D
    cdef double* s2 = p.s2 + g * K * D * D
    cdef double* s2_k
    cdef double* nk = p.nk + g * K
    cdef bint has_weights = weights != NULL
    cdef const double* p2 = p.p2
    cdef const double* p2_k
    cdef double s0, s1_, s2_, s3_
    cdef int D4 = D - D % 4
    for n in range(b):
        row = rows[start + n]
        pat[n] = p.row_pattern[start + n]
        for j in range(D):
            v = <double>X[row * D + j]
            xbuf[n * D + j] = v - shift[j] if v == v else 0.0  # NaN: filled per component
            obuf[n * D + j] = 1.0 if v == v else 0.0

    for k in range(K):
        y_k = ybuf + k * b * D
        if p2 != NULL:
            # diagonal precision: x^_m = mu_m (y_m = 0), the quadratic form over o only
            m_k = means + k * D
            p2_k = p2 + k * D
            for n in range(b):
                y = y_k + n * D
                z = xbuf + n * D
                for j in range(D):
                    y[j] = (z[j] - m_k[j]) * obuf[n * D + j]
                s0 = 0.0
                s1_ = 0.0
                s2_ = 0.0
                s3_ = 0.0
                for j in range(0, D4, 4):
                    s0 = s0 + p2_k[j] * (y[j] * y[j])
                    s1_ = s1_ + p2_k[j + 1] * (y[j + 1] * y[j + 1])
                    s2_ = s2_ + p2_k[j + 2] * (y[j + 2] * y[j + 2])
                    s3_ = s3_ + p2_k[j + 3] * (y[j + 3] * y[j + 3])
                for j in range(D4, D):
                    s0 = s0 + p2_k[j] * (y[j] * y[j])
                lp[n * K + k] = log_const[k] + corr[pat[n] * K + k] - \
                    0.5 * ((s0 + s1_) + (s2_ + s3_))
            continue
        _complete(D, b, means + k * D, prec + k * D * D, pat, miss_idx, miss_off, l_mat,
                  l_off, k, xbuf, obuf, y_k, tmp)
        for n in range(b * D):
            zbuf[n] = y_k[n]
        # ||y U_k||^2 for the chunk at once (as the complete-row pass: column-major Y^T)
        dtrmm(&CH_L, &CH_L, &CH_N, &CH_N, &D, &b, &one,
              <double*>(p.prec_chol + k * D * D), &D, zbuf, &D)
        for n in range(b):
            z = zbuf + n * D
            s = 0.0
            for j in range(D):
                s = s + z[j] * z[j]
            lp[n * K + k] = log_const[k] + corr[pat[n] * K + k] - 0.5 * s

    for n in range(b):
        lp_n = lp + n * K
        row = rows[start + n]
        w = weights[row] if has_weights else 1.0
        lpn = vbf_gmm_responsibilities(lp_n, K, &s)
        if lpn > -INFINITY:
            # sum_k r_k (log r_k - h_pk)
            for k in range(K):
                s = s - lp_n[k] * h_ent[pat[n] * K + k]
            ent_chunk = ent_chunk + w * s
        ll_chunk = ll_chunk + w * lpn
        if lpn_out != NULL:
            lpn_out[row] = <floating>lpn
        if resp_out != NULL:
            for k in range(K):
                resp_out[row * K + k] = <floating>lp_n[k]
    p.ll[g] = p.ll[g] + ll_chunk
    p.ent[g] = p.ent[g] + ent_chunk

    if not p.compute_stats:
        return
    if has_weights:
        for n in range(b):
            w = weights[rows[start + n]]
            for k in range(K):
                lp[n * K + k] = lp[n * K + k] * w
    for k in range(K):
        y_k = ybuf + k * b * D
        m_k = means + k * D
        c_k = centres + k * D
        s2_k = s2 + k * D * D
        # S1_k += sum_n r_nk x^_n = Y_k^T r + (sum_n r_nk) mu_k
        s = 0.0
        for n in range(b):
            s = s + lp[n * K + k]
        nk[k] = nk[k] + s
        dgemv(&CH_N, &D, &b, &one, y_k, &D, lp + k, &K, &one, s1 + k * D, &inc)
        for j in range(D):
            s1[k * D + j] = s1[k * D + j] + s * m_k[j]
        if p2 != NULL:
            # diagonal second moments only (their layouts need no more), plus r / p^2 at
            # the missing coordinates; summed over the chunk in zbuf's first D entries (a
            # contiguous accumulator), then added to the diagonal
            z = zbuf
            for j in range(D):
                z[j] = 0.0
            for n in range(b):
                r = lp[n * K + k]
                if r == 0.0:
                    continue
                y = y_k + n * D
                for j in range(D):
                    v = y[j] + (m_k[j] - c_k[j])
                    z[j] = z[j] + r * (v * v)
                nm = <int>(miss_off[pat[n] + 1] - miss_off[pat[n]])
                mi = miss_idx + miss_off[pat[n]]
                cm = c_mat + c_off[pat[n]] + k * nm * nm
                for t in range(nm):
                    z[mi[t]] = z[mi[t]] + r * cm[t * nm + t]
            for j in range(D):
                s2_k[j * D + j] = s2_k[j * D + j] + z[j]
            continue
        for n in range(b):
            r = lp[n * K + k]
            v = sqrt(r)
            y = y_k + n * D
            z = zbuf + n * D
            for j in range(D):
                z[j] = v * (y[j] + (m_k[j] - c_k[j]))
            # r C_pk in the (m, m) block, lower triangle (row-major: row >= column)
            if r != 0.0:
                nm = <int>(miss_off[pat[n] + 1] - miss_off[pat[n]])
                mi = miss_idx + miss_off[pat[n]]
                cm = c_mat + c_off[pat[n]] + k * nm * nm
                for t in range(nm):
                    for u in range(t + 1):
                        s2_k[mi[t] * D + mi[u]] = s2_k[mi[t] * D + mi[u]] + \
                            r * cm[t * nm + u]
        dsyrk(&CH_U, &CH_N, &D, &b, &one, zbuf, &D, &one, s2_k, &D)


def gmm_missing_pass(
    const floating[:, ::1] X,
    const long long[::1] rows,
    const int[::1] row_pattern,
    const double[::1] sample_weight,
    const double[::1] shift,
    const double[:, ::1] means,
    const double[:, ::1] centres,
    const double[:, :, ::1] prec_chol,
    const double[::1] log_const,
    const int[::1] miss_idx,
    const long long[::1] miss_off,
    const double[:, :, ::1] prec,
    const double[::1] l_mat,
    const long long[::1] l_off,
    const double[::1] c_mat,
    const long long[::1] c_off,
    const double[:, ::1] corr,
    const double[:, ::1] h_ent,
    const double[:, ::1] diag_prec,
    double[:, ::1] nk_slots,
    double[:, ::1] s1_slots,
    double[:, ::1] s2_slots,
    double[::1] ll_slots,
    double[::1] ent_slots,
    floating[:, ::1] resp_out,
    floating[::1] log_prob_norm_out,
    bint compute_stats,
    int chunk_size,
    int n_threads,
):
    """One pass over the rows ``rows`` of X (each with at least one NaN and one observed
    value): log densities of the observed blocks, responsibilities, bound terms and the
    statistics of the completed rows (see the module docstring).

    Parameters
    ----------
    X : (N, D) float32 or float64, C-contiguous, NaN where missing
    rows : (M,) int64 row indices; row_pattern : (M,) int32 their pattern p in [0, P)
    sample_weight : (N,) or empty
    shift : (D,); means, centres : (K, D) shifted; prec_chol : (K, D, D) upper factors
    log_const : (K,) c_k of the complete-data density (without any folded constant)
    miss_idx, miss_off : the missing coordinates of pattern p, ascending:
        miss_idx[miss_off[p]:miss_off[p + 1]]
    prec : (K, D, D) precisions U_k U_k^T
    l_mat, l_off, c_mat, c_off : L_pk (lower Cholesky factor of P_mm, its diagonal stored
        inverted), C_pk = P_mm^{-1},
        flat, (|m|, |m|) row-major each (see ``_MissPass``)
    corr, h_ent : (P, K)
    diag_prec : (K, D) the diagonal of the precisions when they are diagonal ('diag',
        'spherical': the quadratic form over the observed coordinates, x^_m = mu_m, and only
        the diagonal of the second moments filled), or (0, 0)
    nk_slots, s1_slots, s2_slots, ll_slots, ent_slots : (G, K), (G, K D), (G, K D D), (G,),
        (G,), overwritten
    resp_out : (N, K) or (0, 0); log_prob_norm_out : (N,) or (0,): written at ``rows`` only
    """
    cdef Py_ssize_t M = rows.shape[0]
    cdef Py_ssize_t N = X.shape[0]
    cdef int D = <int>X.shape[1]
    cdef int K = <int>means.shape[0]
    cdef Py_ssize_t P = corr.shape[0]
    cdef Py_ssize_t G = nk_slots.shape[0]
    cdef Py_ssize_t n_chunks = (M + chunk_size - 1) // chunk_size
    cdef Py_ssize_t per_group = (n_chunks + G - 1) // G
    cdef Py_ssize_t g, c, start, end, i
    cdef int max_m = 0
    cdef double* xbuf
    cdef double* ybuf
    cdef double* zbuf
    cdef double* lp
    cdef double* tmp
    cdef int* pat
    cdef double* obuf
    if M == 0:
        raise ValueError("gmm_missing_pass needs at least one row")
    if row_pattern.shape[0] != M or miss_off.shape[0] != P + 1 or l_off.shape[0] != P \
            or c_off.shape[0] != P or h_ent.shape[0] != P or h_ent.shape[1] != K \
            or corr.shape[1] != K:
        raise ValueError("pattern arrays do not match")
    if means.shape[1] != D or centres.shape[0] != K or centres.shape[1] != D \
            or prec_chol.shape[0] != K or prec_chol.shape[1] != D or prec_chol.shape[2] != D \
            or prec.shape[0] != K or prec.shape[1] != D or prec.shape[2] != D \
            or log_const.shape[0] != K or shift.shape[0] != D:
        raise ValueError("parameter shapes do not match X")
    if s1_slots.shape[0] != G or s2_slots.shape[0] != G or ll_slots.shape[0] != G \
            or ent_slots.shape[0] != G or nk_slots.shape[1] != K \
            or s1_slots.shape[1] != K * D or s2_slots.shape[1] != K * D * D:
        raise ValueError("statistics slots have the wrong shape")
    if sample_weight.shape[0] not in (0, N):
        raise ValueError("sample_weight must have one entry per row")
    if resp_out.shape[0] > 0 and (resp_out.shape[0] != N or resp_out.shape[1] != K):
        raise ValueError("resp_out must be (N, K)")
    if log_prob_norm_out.shape[0] > 0 and log_prob_norm_out.shape[0] != N:
        raise ValueError("log_prob_norm_out must be (N,)")
    if chunk_size < 1 or n_threads < 1:
        raise ValueError("chunk_size and n_threads must be positive")
    for i in range(M):
        if rows[i] < 0 or rows[i] >= N or row_pattern[i] < 0 or row_pattern[i] >= P:
            raise ValueError("row or pattern index out of range")
    for i in range(P):
        if miss_off[i + 1] - miss_off[i] > max_m:
            max_m = <int>(miss_off[i + 1] - miss_off[i])
    cdef double dummy = 0.0
    cdef int idummy = 0
    cdef _MissPass p
    p.D = D
    p.K = K
    p.rows = &rows[0]
    p.row_pattern = &row_pattern[0]
    p.weights = &sample_weight[0] if sample_weight.shape[0] > 0 else NULL
    p.shift = &shift[0]
    p.means = &means[0, 0]
    p.centres = &centres[0, 0]
    p.prec_chol = &prec_chol[0, 0, 0]
    p.log_const = &log_const[0]
    p.miss_idx = &miss_idx[0] if miss_idx.shape[0] > 0 else &idummy
    p.miss_off = &miss_off[0]
    p.prec = &prec[0, 0, 0]
    p.l_mat = &l_mat[0] if l_mat.shape[0] > 0 else &dummy
    p.l_off = &l_off[0]
    p.c_mat = &c_mat[0] if c_mat.shape[0] > 0 else &dummy
    p.c_off = &c_off[0]
    p.corr = &corr[0, 0]
    p.h_ent = &h_ent[0, 0]
    p.p2 = NULL
    if diag_prec.shape[0] > 0:
        if diag_prec.shape[0] != K or diag_prec.shape[1] != D:
            raise ValueError("diag_prec must be (K, D)")
        p.p2 = &diag_prec[0, 0]
    p.compute_stats = compute_stats
    p.nk = &nk_slots[0, 0]
    p.s1 = &s1_slots[0, 0]
    p.s2 = &s2_slots[0, 0]
    p.ll = &ll_slots[0]
    p.ent = &ent_slots[0]
    cdef floating* resp_ptr = &resp_out[0, 0] if resp_out.shape[0] > 0 else NULL
    cdef floating* lpn_ptr = &log_prob_norm_out[0] if log_prob_norm_out.shape[0] > 0 \
        else NULL
    memset(&nk_slots[0, 0], 0, G * K * sizeof(double))
    memset(&s1_slots[0, 0], 0, G * K * D * sizeof(double))
    memset(&s2_slots[0, 0], 0, G * K * D * D * sizeof(double))
    memset(&ll_slots[0], 0, G * sizeof(double))
    memset(&ent_slots[0], 0, G * sizeof(double))
    with nogil, parallel(num_threads=n_threads):
        xbuf = <double*>malloc(chunk_size * D * sizeof(double))
        ybuf = <double*>malloc(K * chunk_size * D * sizeof(double))
        zbuf = <double*>malloc(chunk_size * D * sizeof(double))
        lp = <double*>malloc(chunk_size * K * sizeof(double))
        tmp = <double*>malloc((max_m + 1) * sizeof(double))
        pat = <int*>malloc(chunk_size * sizeof(int))
        obuf = <double*>malloc(chunk_size * D * sizeof(double))
        for g in prange(G, schedule='dynamic', chunksize=1):
            for c in range(g * per_group, min((g + 1) * per_group, n_chunks)):
                start = c * chunk_size
                end = min(start + chunk_size, M)
                _chunk(&p, &X[0, 0], resp_ptr, lpn_ptr, g, start, end, pat, xbuf, ybuf,
                       zbuf, lp, tmp, obuf)
        free(xbuf)
        free(ybuf)
        free(zbuf)
        free(lp)
        free(tmp)
        free(pat)
        free(obuf)


cdef int _pattern_component(const double* prec, int D, const int* mi, int j, double* low,
                            double* cm, double* log_det) noexcept nogil:
    """The Cholesky factor L of P_mm (j x j, lower, row-major; upper part zeroed; its diagonal
    then stored inverted, 1 / L_tt, for the pass's solves), C = P_mm^{-1} = L^{-T} L^{-1} by
    triangular solves, and log |P_mm|, for one (pattern, component). Returns 0, or 1 if P_mm
    is not positive definite."""
    cdef int r, c, t
    cdef double s
    for r in range(j):
        for c in range(j):
            if c > r:
                low[r * j + c] = 0.0
                continue
            s = prec[mi[r] * D + mi[c]]
            for t in range(c):
                s = s - low[r * j + t] * low[c * j + t]
            if r == c:
                if not s > 0.0:
                    return 1
                low[r * j + r] = sqrt(s)
            else:
                low[r * j + c] = s / low[c * j + c]
    log_det[0] = 0.0
    for r in range(j):
        log_det[0] = log_det[0] + 2.0 * log(low[r * j + r])
    for c in range(j):
        for r in range(j):
            s = 1.0 if r == c else 0.0
            for t in range(r):
                s = s - low[r * j + t] * cm[t * j + c]
            cm[r * j + c] = s / low[r * j + r]
        for r in range(j - 1, -1, -1):
            s = cm[r * j + c]
            for t in range(r + 1, j):
                s = s - low[t * j + r] * cm[t * j + c]
            cm[r * j + c] = s / low[r * j + r]
    for r in range(j):
        low[r * j + r] = 1.0 / low[r * j + r]
    return 0


def pattern_arrays(const double[:, :, ::1] prec, const int[::1] miss_idx,
                   const long long[::1] miss_off, const long long[::1] off,
                   double[::1] l_mat, double[::1] c_mat, double[:, ::1] log_det_mm,
                   int n_threads):
    """Per (pattern p, component k), at off[p] + k j^2 (j the pattern's number of missing
    coordinates): the lower Cholesky factor L_pk of P_mm into l_mat (its diagonal stored
    inverted, 1 / L_tt) and C_pk = P_mm^{-1} into
    c_mat (row-major j x j each), and log |P_mm| into log_det_mm[p, k] (prec: (K, D, D)
    precisions). Raises ValueError if some P_mm is not positive definite. Each (p, k) is
    independent: the result does not depend on the thread count."""
    cdef int K = <int>prec.shape[0]
    cdef int D = <int>prec.shape[1]
    cdef Py_ssize_t P = off.shape[0]
    cdef Py_ssize_t p
    cdef int k, j, bad = 0
    if prec.shape[2] != D or miss_off.shape[0] != P + 1 \
            or log_det_mm.shape[0] != P or log_det_mm.shape[1] != K:
        raise ValueError("pattern arrays do not match")
    for p in range(P):
        j = <int>(miss_off[p + 1] - miss_off[p])
        if j < 1 or off[p] + K * j * j > l_mat.shape[0] or off[p] + K * j * j > c_mat.shape[0]:
            raise ValueError("pattern offsets out of range")
    if P == 0:
        return
    with nogil:
        for p in prange(P, schedule='dynamic', chunksize=1, num_threads=n_threads):
            j = <int>(miss_off[p + 1] - miss_off[p])
            for k in range(K):
                bad += _pattern_component(&prec[k, 0, 0], D, &miss_idx[miss_off[p]], j,
                                          &l_mat[off[p] + k * j * j],
                                          &c_mat[off[p] + k * j * j], &log_det_mm[p, k])
    if bad:
        raise ValueError("a precision block P_mm is not positive definite")
