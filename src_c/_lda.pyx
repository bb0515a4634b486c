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

After the loop, with the final t, the pass accumulates the expected topic-word statistics

    S_wk += t_k c_w / (sum_k t_k B_wk + eps)      (the caller multiplies by B_wk)

and the per-document terms of the variational bound (scikit-learn's ``_approx_bound``):

    word term  sum_w c_w log sum_k exp(Elog theta_dk + log B_wk)
    doc term   sum_k [(alpha - gamma_dk) Elog theta_dk + lgamma(gamma_dk) - lgamma(alpha)]
               + lgamma(K alpha) - lgamma(sum_k gamma_dk)

Determinism: documents are cut into G groups of consecutive documents (G chosen by the caller
from the data size only); a group is processed by one thread, in document order, into its own
slot, and the slots are reduced in group order (``reduce_slots``). The result is therefore
bitwise identical for any number of threads.
"""
from cython.parallel cimport prange, parallel
from libc.stdlib cimport malloc, free
from libc.string cimport memset
from libc.math cimport exp, log, fabs
from scipy.special.cython_special cimport psi, gammaln

ctypedef fused floating:
    float
    double

ctypedef fused index_t:
    int
    long long


cdef extern from *:
    """
    /* The fixed point's hot loop, compiled twice where the toolchain supports function
       multi-versioning (AVX2 and baseline, chosen at load time). Neither clone may use FMA
       and the compiler may not reassociate, so both give bitwise the same result. */
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    #define VBF_CLONES __attribute__((target_clones("avx2", "default")))
    #else
    #define VBF_CLONES
    #endif
    VBF_CLONES
    static void vbf_accumulate(Py_ssize_t n, int K, const double *const *rows,
                               const double *cnt, const double *t, double eps, double *acc)
    {
        Py_ssize_t j;
        int k;
        for (k = 0; k < K; k++) acc[k] = 0.0;
        for (j = 0; j < n; j++) {
            const double *row = rows[j];
            double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, r;
            for (k = 0; k + 4 <= K; k += 4) {
                s0 += t[k] * row[k];
                s1 += t[k + 1] * row[k + 1];
                s2 += t[k + 2] * row[k + 2];
                s3 += t[k + 3] * row[k + 3];
            }
            for (; k < K; k++) s0 += t[k] * row[k];
            r = cnt[j] / (((s0 + s1) + (s2 + s3)) + eps);
            for (k = 0; k < K; k++) acc[k] += r * row[k];
        }
    }
    """
    void vbf_accumulate(Py_ssize_t n, int K, const double* const* rows, const double* cnt,
                        const double* t, double eps, double* acc) noexcept nogil


cdef inline double _psi_fast(double x) noexcept nogil:
    """scikit-learn's digamma (Bernardo 1976, AS 103): fast, absolute error up to ~1e-8.

    Used only when asked (``fast_psi``), to reproduce scikit-learn's arithmetic exactly."""
    cdef double r, result = 0.0
    if x <= 1e-6:
        return -0.577215664901532860606512090082402431 - 1.0 / x
    while x < 6:
        result -= 1.0 / x
        x += 1
    r = 1.0 / x
    result += log(x) - 0.5 * r
    r = r * r
    result -= r * ((1.0 / 12.0) - r * ((1.0 / 120.0) - r * (1.0 / 252.0)))
    return result


cdef inline double _digamma(double x, bint fast) noexcept nogil:
    if fast:
        return _psi_fast(x)
    return psi(x)


cdef inline double _dot(const double* a, const double* b, int K) noexcept nogil:
    """sum_k a_k b_k with four partial sums (a fixed order: deterministic, and vectorisable)."""
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    cdef int k = 0
    while k + 4 <= K:
        s0 = s0 + a[k] * b[k]
        s1 = s1 + a[k + 1] * b[k + 1]
        s2 = s2 + a[k + 2] * b[k + 2]
        s3 = s3 + a[k + 3] * b[k + 3]
        k = k + 4
    while k < K:
        s0 = s0 + a[k] * b[k]
        k = k + 1
    return (s0 + s1) + (s2 + s3)


cdef void _doc(
    Py_ssize_t p0, Py_ssize_t p1, const index_t* indices, const floating* data,
    const double* B, const double* logB, double* gamma_d, int K,
    double alpha, int max_iter, double tol, double eps, double lg_alpha, double lg_kalpha,
    bint fast, double* sst, bint do_sst, double* bound, bint do_bound,
    double* t, double* elog, double* acc, const double** rows, double* cnt,
) noexcept nogil:
    cdef Py_ssize_t n = p1 - p0, j
    cdef int k, it
    cdef double s, r, v, total, change, psi_total, c, mx
    cdef const double* row

    total = 0.0
    for k in range(K):
        total = total + gamma_d[k]
    psi_total = _digamma(total, fast)
    for k in range(K):
        elog[k] = _digamma(gamma_d[k], fast) - psi_total
        t[k] = exp(elog[k])

    for j in range(n):
        rows[j] = B + <Py_ssize_t>indices[p0 + j] * K
        cnt[j] = <double>data[p0 + j]
    for it in range(max_iter):
        vbf_accumulate(n, K, rows, cnt, t, eps, acc)
        total = 0.0
        change = 0.0
        for k in range(K):
            v = t[k] * acc[k] + alpha
            change = change + fabs(gamma_d[k] - v)
            gamma_d[k] = v
            total = total + v
        psi_total = _digamma(total, fast)
        for k in range(K):
            elog[k] = _digamma(gamma_d[k], fast) - psi_total
            t[k] = exp(elog[k])
        if change / K < tol:
            break

    if do_sst or do_bound:
        for j in range(n):
            row = B + <Py_ssize_t>indices[p0 + j] * K
            c = <double>data[p0 + j]
            s = _dot(t, row, K)
            if do_sst:
                r = c / (s + eps)
                for k in range(K):
                    sst[<Py_ssize_t>indices[p0 + j] * K + k] += t[k] * r
            if do_bound and c != 0.0:
                if s > 1e-300:
                    bound[0] = bound[0] + c * log(s)
                else:
                    # exp underflowed: log-sum-exp on the logs
                    row = logB + <Py_ssize_t>indices[p0 + j] * K
                    mx = elog[0] + row[0]
                    for k in range(1, K):
                        if elog[k] + row[k] > mx:
                            mx = elog[k] + row[k]
                    s = 0.0
                    for k in range(K):
                        s = s + exp(elog[k] + row[k] - mx)
                    bound[0] = bound[0] + c * (mx + log(s))
    if do_bound:
        v = 0.0
        total = 0.0
        for k in range(K):
            v = v + (alpha - gamma_d[k]) * elog[k] + (gammaln(gamma_d[k]) - lg_alpha)
            total = total + gamma_d[k]
        bound[1] = bound[1] + v + (lg_kalpha - gammaln(total))


def lda_pass(
    const index_t[::1] indptr,
    const index_t[::1] indices,
    const floating[::1] data,
    const double[:, ::1] B,
    const double[:, ::1] logB,
    double[:, ::1] gamma,
    double alpha,
    int max_iter,
    double tol,
    double eps,
    double[:, ::1] sstat_slots,
    double[:, ::1] bound_slots,
    int n_threads,
    bint fast_psi=False,
):
    """One pass over the documents: fixed point for gamma, statistics, bound terms.

    Parameters
    ----------
    indptr, indices, data : the CSR arrays of the (N, V) document-term matrix (indices int32
        or int64, same type as indptr; data float32 or float64)
    B : (V, K) float64, word-major exp(E[log beta]) (mean field) or beta (point topics)
    logB : (V, K) float64, its logarithm (used only where the bound's exp underflows), or
        (0, 0) when the bound is not wanted
    gamma : (N, K) float64, initial gamma on entry, the fitted gamma on exit
    alpha : the document-topic prior
    max_iter, tol : the fixed point's iteration cap and mean-change tolerance
    eps : added to the normaliser sum_k t_k B_wk (scikit-learn uses the dtype's eps)
    sstat_slots : (G, V * K) per-group statistics (word-major), overwritten; (0, 0) to skip
    bound_slots : (G, 2) per-group [word term, doc term], overwritten; G is its first
        dimension and fixes the grouping of documents
    n_threads : OpenMP threads
    fast_psi : use scikit-learn's approximate digamma instead of scipy's accurate one
    """
    cdef Py_ssize_t N = gamma.shape[0]
    cdef int K = <int>gamma.shape[1]
    cdef Py_ssize_t V = B.shape[0]
    cdef Py_ssize_t G = bound_slots.shape[0]
    cdef bint do_sst = sstat_slots.shape[0] > 0
    cdef bint do_bound = logB.shape[0] > 0
    cdef Py_ssize_t per_group, g, d, nnz, max_nnz = 0
    cdef double lg_alpha = gammaln(alpha), lg_kalpha = gammaln(K * alpha)
    cdef double* t
    cdef double* elog
    cdef double* acc
    cdef double* cnt
    cdef const double** rows
    cdef double* sst
    cdef double dummy = 0.0
    cdef const index_t* ind_ptr
    cdef const floating* data_ptr

    if indptr.shape[0] != N + 1:
        raise ValueError("indptr must have N + 1 entries")
    if B.shape[1] != K or K < 1:
        raise ValueError("B must be (V, K) with K = gamma.shape[1] >= 1")
    if G < 1 or bound_slots.shape[1] != 2:
        raise ValueError("bound_slots must be (G, 2) with G >= 1")
    if do_sst and (sstat_slots.shape[0] != G or sstat_slots.shape[1] != V * K):
        raise ValueError("sstat_slots must be (G, V * K)")
    if do_bound and (logB.shape[0] != V or logB.shape[1] != K):
        raise ValueError("logB must have the shape of B")
    if n_threads < 1 or max_iter < 0:
        raise ValueError("n_threads must be positive and max_iter non-negative")
    nnz = indptr[N] if N > 0 else 0
    if indices.shape[0] < nnz or data.shape[0] < nnz:
        raise ValueError("indices and data are shorter than indptr says")
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

    memset(&bound_slots[0, 0], 0, G * 2 * sizeof(double))
    if do_sst:
        memset(&sstat_slots[0, 0], 0, G * V * K * sizeof(double))
    if N == 0:
        return
    per_group = (N + G - 1) // G
    ind_ptr = &indices[0] if nnz > 0 else <const index_t*>NULL
    data_ptr = &data[0] if nnz > 0 else <const floating*>NULL
    cdef const double* logB_ptr = &logB[0, 0] if do_bound else &dummy
    cdef double* sst_base = &sstat_slots[0, 0] if do_sst else &dummy
    cdef const double* B_ptr = &B[0, 0]
    cdef double* gamma_ptr = &gamma[0, 0]
    cdef double* bound_ptr = &bound_slots[0, 0]
    cdef const index_t* indptr_ptr = &indptr[0]

    with nogil, parallel(num_threads=n_threads):
        t = <double*>malloc((3 * K + max_nnz + 1) * sizeof(double))
        rows = <const double**>malloc((max_nnz + 1) * sizeof(double*))
        cnt = t + 3 * K
        elog = t + K
        acc = t + 2 * K
        for g in prange(G, schedule='static'):
            sst = (sst_base + g * V * K) if do_sst else sst_base
            for d in range(g * per_group, min((g + 1) * per_group, N)):
                _doc(indptr_ptr[d], indptr_ptr[d + 1], ind_ptr, data_ptr, B_ptr, logB_ptr,
                     gamma_ptr + d * K, K, alpha, max_iter, tol, eps, lg_alpha, lg_kalpha, fast_psi,
                     sst, do_sst, bound_ptr + 2 * g, do_bound, t, elog, acc, rows, cnt)
        free(t)
        free(rows)


def reduce_slots(const double[:, ::1] slots, double[::1] out, int n_threads):
    """out[i] = sum_g slots[g, i], added in group order (bitwise the same for any thread count)."""
    cdef Py_ssize_t G = slots.shape[0], M = slots.shape[1]
    cdef Py_ssize_t block = 4096
    cdef Py_ssize_t n_blocks = (M + block - 1) // block
    cdef Py_ssize_t b, i, g, i1
    cdef double s
    if out.shape[0] != M or G < 1:
        raise ValueError("out must have slots.shape[1] entries and slots at least one row")
    cdef const double* sp = &slots[0, 0]
    cdef double* op = &out[0]
    if M == 0:
        return
    with nogil:
        for b in prange(n_blocks, schedule='static', num_threads=n_threads):
            i1 = min((b + 1) * block, M)
            for i in range(b * block, i1):
                s = sp[i]
                for g in range(1, G):
                    s = s + sp[g * M + i]
                op[i] = s
