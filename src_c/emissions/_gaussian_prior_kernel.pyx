# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The 'diag' mean-field iteration's work besides the pass, over K x D in C.

``vbfast.emissions.gaussian_prior.MeanFieldFitState`` updates q(theta) from the pass's
statistics, evaluates the ELBO and derives the next pass's inputs. At the sizes this package is
fast at (K, D ~ 16) that work in NumPy is ~60 calls on (K,) and (K, D) arrays an iteration,
each costing more in call overhead than in arithmetic; here it is five calls:

- ``diag_moments``: N_k, xbar_k and the variances from the pass's statistics about the shift
  (``gaussian.estimate_parameters`` for 'diag', the same operations);
- ``diag_q_update``: q(theta) from the moments N_k, xbar_k, S_k (``estimate_parameters``'s),
  the weights' q and E[log pi_k] (Dirichlet or stick-breaking), the factors 1 / sqrt(var);
- ``diag_expectations``: log |W_k| and E[log |Lambda_k|] from log U_k and log nu_k (the caller
  takes those two logs with NumPy, so that every value that feeds the next pass has NumPy's
  bits: the fit's trajectory is the NumPy version's bit for bit);
- ``diag_pass_inputs``: the pass's centres, aux = [-2 m p^2, p^2] and c_k (``_hybrid_arrays``
  and ``expected_log_const``, the same operations in the same order);
- ``diag_elbo``: the full ELBO (the NumPy version's terms; its sums in loop order, so it differs
  from NumPy's pairwise / BLAS sums by rounding only, ~1e-15 relative).

Besides, ``row_quad_forms``: the Student-t predictive's quadratic forms ||(x_n - m_k) U_k||^2
row by row ('full', 'tied'), the same bits for a row whatever block it is read in.

Sums that feed the pass follow NumPy's order: a row of (K, D) reduced with ``.sum(axis=1)``
is NumPy's pairwise sum (``_pairwise_sum``), a (D, K) array's ``.sum(axis=0)`` adds rows one
after another, ``cumsum`` runs left to right. Plain C arithmetic (no contraction into fused
multiply-adds: the module is built without -mfma) rounds as NumPy's ufuncs do.
"""
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport isfinite, log, sqrt
from scipy.special.cython_special cimport betaln, gammaln, psi

cdef double LOG_2 = 0.6931471805599453
cdef double LOG_PI = 1.1447298858494002
cdef double LOG_2PI = 1.8378770664093453


cdef double _pairwise_sum(const double* a, Py_ssize_t n) noexcept nogil:
    """NumPy's float64 add-reduction of n contiguous values: below 8 one by one from 0, up to
    128 in eight running sums, above that halves at a multiple of 8."""
    cdef double r[8]
    cdef double res
    cdef Py_ssize_t i, n2
    cdef int j
    if n < 8:
        res = 0.0
        for i in range(n):
            res = res + a[i]
        return res
    if n <= 128:
        for j in range(8):
            r[j] = a[j]
        i = 8
        while i < n - (n % 8):
            for j in range(8):
                r[j] = r[j] + a[i + j]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            res = res + a[i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_sum(a, n2) + _pairwise_sum(a + n2, n - n2)


def diag_moments(const double[::1] nk_raw, const double[:, ::1] s1, const double[:, ::1] s2,
                 const double[:, ::1] centres, double eps10, double reg_covar,
                 double[::1] nk, double[:, ::1] means, double[:, ::1] cov):
    """``gaussian.estimate_parameters`` for 'diag' with S2 about the shift: IN the pass's
    nk_raw (K,), s1, s2 (K, D), its centres (K, D), eps10 = 10 eps, reg_covar; OUT nk =
    nk_raw + eps10, means = s1 / nk, cov = s2 / nk - means^2 where positive, else the
    pseudo-point's (nk - nk_raw) means^2 / nk, plus reg_covar. Returns False (outputs
    undefined) when a centre is not 0: the caller takes the centred form in NumPy."""
    cdef Py_ssize_t K = s1.shape[0], D = s1.shape[1], k, j
    cdef double m, scatter
    if (nk_raw.shape[0] != K or s2.shape[0] != K or s2.shape[1] != D or centres.shape[0] != K
            or centres.shape[1] != D or nk.shape[0] != K or means.shape[0] != K
            or means.shape[1] != D or cov.shape[0] != K or cov.shape[1] != D):
        raise ValueError("diag_moments: inconsistent shapes")
    for k in range(K):
        for j in range(D):
            if centres[k, j] != 0.0:
                return False
    with nogil:
        for k in range(K):
            nk[k] = nk_raw[k] + eps10
            for j in range(D):
                m = s1[k, j] / nk[k]
                means[k, j] = m
                scatter = s2[k, j] / nk[k] - m * m
                cov[k, j] = (scatter if scatter > 0.0
                             else ((nk[k] - nk_raw[k]) * (m * m)) / nk[k]) + reg_covar
    return True


def diag_q_update(const double[::1] nk, const double[:, ::1] xk, const double[:, ::1] sk,
                  const double[::1] m0, const double[::1] psi0, const double[::1] shift,
                  double beta0, double nu0, double alpha0, bint stick_breaking,
                  double[::1] wc_a, double[::1] wc_b, double[::1] e_log_pi,
                  double[::1] beta, double[:, ::1] means, double[::1] nu,
                  double[:, ::1] cov, double[:, ::1] prec_chol):
    """q(theta) of a 'diag' mixture from the moments (``_q_from_moments``' operations).

    IN: nk (K,) N_k (with 10 eps), xk (K, D) shifted means, sk (K, D) variances (with
    reg_covar), m0 (D,) the prior mean shifted, psi0 (D,), shift (D,), beta0, nu0, alpha0 and
    the weight prior (``stick_breaking``: 'dirichlet_process').
    OUT: wc_a (K,) = 1 + N_k and wc_b (K,) = alpha0 + sum_{j>k} N_j (sticks), or wc_a =
    alpha0 + N_k (wc_b untouched); e_log_pi (K,) E[log pi_k]; beta = beta0 + N_k; means (K, D)
    = (beta0 m0 + N_k xbar_k) / beta_k + shift; nu = nu0 + N_k; cov (K, D) =
    (psi0 + N_k (S_k + beta0 / beta_k (xbar_k - m0)^2)) / nu_k; prec_chol = 1 / sqrt(cov).

    Returns False (prec_chol then undefined) if a variance is not positive and finite: the
    caller raises as ``gaussian.precision_cholesky`` does.
    """
    cdef Py_ssize_t K = xk.shape[0], D = xk.shape[1], k, j
    cdef double tail, t, d, r, ms, cs
    cdef bint ok = True
    if (nk.shape[0] != K or sk.shape[0] != K or sk.shape[1] != D or m0.shape[0] != D
            or psi0.shape[0] != D or shift.shape[0] != D or wc_a.shape[0] != K
            or (stick_breaking and wc_b.shape[0] != K) or e_log_pi.shape[0] != K
            or beta.shape[0] != K or nu.shape[0] != K or means.shape[0] != K
            or means.shape[1] != D or cov.shape[0] != K or cov.shape[1] != D
            or prec_chol.shape[0] != K or prec_chol.shape[1] != D):
        raise ValueError("diag_q_update: inconsistent shapes")
    with nogil:
        if stick_breaking:
            # a = 1 + N, b = alpha0 + [cumsum(N[::-1])[-2::-1], 0]
            tail = 0.0
            for k in range(K - 1, -1, -1):
                wc_a[k] = 1.0 + nk[k]
                wc_b[k] = alpha0 + (tail if k < K - 1 else 0.0)
                tail = (tail + nk[k]) if k < K - 1 else nk[k]
            # E[log pi_k] = E[log v_k] + sum_{j<k} E[log(1 - v_j)] (cumsum left to right)
            cs = 0.0
            for k in range(K):
                d = psi(wc_a[k] + wc_b[k])
                e_log_pi[k] = (psi(wc_a[k]) - d) + (cs if k > 0 else 0.0)
                t = psi(wc_b[k]) - d
                cs = (cs + t) if k > 0 else t
        else:
            for k in range(K):
                wc_a[k] = alpha0 + nk[k]
            t = psi(_pairwise_sum(&wc_a[0], K))
            for k in range(K):
                e_log_pi[k] = psi(wc_a[k]) - t
        for k in range(K):
            beta[k] = beta0 + nk[k]
            nu[k] = nu0 + nk[k]
            r = beta0 / beta[k]
            for j in range(D):
                ms = (beta0 * m0[j] + nk[k] * xk[k, j]) / beta[k]
                means[k, j] = ms + shift[j]
                d = xk[k, j] - m0[j]
                t = (psi0[j] + nk[k] * (sk[k, j] + r * (d * d))) / nu[k]
                cov[k, j] = t
                if not (t > 0.0 and isfinite(t)):
                    ok = False
        if ok:
            for k in range(K):
                for j in range(D):
                    prec_chol[k, j] = 1.0 / sqrt(cov[k, j])
    return ok


def diag_expectations(const double[:, ::1] log_prec_chol, const double[::1] log_nu,
                      const double[::1] nu, double[::1] log_det_w, double[::1] e_log_det):
    """log |W_k| = 2 sum_j log U_kj - D log nu_k and E[log |Lambda_k|] = sum_{i<D}
    psi(nu_k / 2 - i / 2) + D log 2 + log |W_k| (``log_det_W``, ``expected_log_det``), from
    IN log_prec_chol (K, D), log_nu (K,), nu (K,); OUT log_det_w, e_log_det (K,)."""
    cdef Py_ssize_t K = log_prec_chol.shape[0], D = log_prec_chol.shape[1], k, i
    cdef double s, a
    if (log_nu.shape[0] != K or nu.shape[0] != K or log_det_w.shape[0] != K
            or e_log_det.shape[0] != K):
        raise ValueError("diag_expectations: inconsistent shapes")
    with nogil:
        for k in range(K):
            log_det_w[k] = 2.0 * _pairwise_sum(&log_prec_chol[k, 0], D) - D * log_nu[k]
            a = 0.5 * nu[k]
            s = 0.0
            for i in range(D):
                s = s + psi(a - 0.5 * i)
            e_log_det[k] = (s + D * LOG_2) + log_det_w[k]
    return None


def diag_pass_inputs(const double[:, ::1] means, const double[:, ::1] prec_chol,
                     const double[::1] shift, const double[::1] e_log_pi,
                     const double[::1] e_log_det, const double[::1] beta, double far_limit,
                     double[:, ::1] centres, double[:, ::1] aux, double[::1] log_const):
    """The pass's inputs at q(theta) (``gaussian.pass_inputs`` for 'diag' with the mean-field
    c_k): m = means - shift, p^2 = U^2; OUT centres (K, D) 0, or m where
    sum_j m_j^2 p_j^2 > far_limit (or NaN); aux (K, 2 D) [-2 m p^2, p^2] ([0, p^2] for a
    centred component); log_const (K,) E[log pi_k] + E[log |Lambda_k|] / 2 - D / (2 beta_k)
    - D / 2 log(2 pi) - sum_j m_j^2 p_j^2 / 2 (the last term 0 for a centred component)."""
    cdef Py_ssize_t K = means.shape[0], D = means.shape[1], k, j
    cdef double m, p2, quad, c
    cdef double buf[256]
    cdef double* row
    cdef double* heap = NULL
    if (prec_chol.shape[0] != K or prec_chol.shape[1] != D or shift.shape[0] != D
            or e_log_pi.shape[0] != K or e_log_det.shape[0] != K or beta.shape[0] != K
            or centres.shape[0] != K or centres.shape[1] != D or aux.shape[0] != K
            or aux.shape[1] != 2 * D or log_const.shape[0] != K):
        raise ValueError("diag_pass_inputs: inconsistent shapes")
    row = buf
    if D > 256:
        heap = <double*> PyMem_Malloc(D * sizeof(double))
        if heap == NULL:
            raise MemoryError()
        row = heap
    with nogil:
        for k in range(K):
            for j in range(D):
                m = means[k, j] - shift[j]
                p2 = prec_chol[k, j] * prec_chol[k, j]
                aux[k, j] = -2.0 * m * p2
                aux[k, D + j] = p2
                centres[k, j] = m  # kept only for a centred component
                row[j] = (m * m) * p2
            quad = -0.5 * _pairwise_sum(row, D)
            c = (((e_log_pi[k] + 0.5 * e_log_det[k]) - (0.5 * D) / beta[k])
                 - (0.5 * D) * LOG_2PI)
            if -2.0 * quad <= far_limit:
                for j in range(D):
                    centres[k, j] = 0.0
                log_const[k] = c + quad
            else:
                for j in range(D):
                    aux[k, j] = 0.0
                log_const[k] = c + 0.0
    if heap != NULL:
        PyMem_Free(heap)
    return None


def diag_elbo(const double[::1] nk, const double[:, ::1] s1, const double[:, ::1] s2,
              double entropy_term, const double[:, ::1] centres, const double[:, ::1] means,
              const double[::1] shift, const double[:, ::1] prec_chol,
              const double[::1] beta, const double[::1] nu, const double[::1] log_det_w,
              const double[::1] e_log_det, const double[::1] e_log_pi,
              const double[::1] wc_a, const double[::1] wc_b, bint stick_breaking,
              double alpha0, double beta0, double nu0, const double[::1] m0,
              const double[::1] psi0, double log_b0):
    """The full ELBO of a 'diag' mixture (``MeanFieldFitState.elbo``'s terms) at q(theta) and
    the q(z) whose statistics (nk (K,), s1 (K, D), s2 (K, D) centred at ``centres`` (K, D),
    shifted; entropy_term = sum_n sum_k r log r) the pass gave. ``means`` in original
    coordinates, m0 (D,) the prior mean shifted, log_b0 the prior's Wishart log normaliser,
    wc_a, wc_b the sticks' q (wc_b unused for 'dirichlet_distribution', wc_a = alpha)."""
    cdef Py_ssize_t K = nk.shape[0], D = s1.shape[1], k, j
    cdef double bound = 0.0, ll_const = 0.0, tr_pc = 0.0, e, a, p, m, dm
    cdef double quad_mean, tr_psi_p, log_b, lmg, e_log_p, e_log_q, d_sum, e_log_v, e_log_1mv
    cdef double wsum = 0.0, lgsum = 0.0, dd = 0.0, pq = 0.0
    cdef double half_d_log_beta0 = 0.5 * D * log(beta0 / (2.0 * 3.141592653589793))
    if (s1.shape[0] != K or s2.shape[0] != K or s2.shape[1] != D or centres.shape[0] != K
            or centres.shape[1] != D or means.shape[0] != K or means.shape[1] != D
            or shift.shape[0] != D or prec_chol.shape[0] != K or prec_chol.shape[1] != D
            or beta.shape[0] != K or nu.shape[0] != K or log_det_w.shape[0] != K
            or e_log_det.shape[0] != K or e_log_pi.shape[0] != K or wc_a.shape[0] != K
            or (stick_breaking and wc_b.shape[0] != K) or m0.shape[0] != D
            or psi0.shape[0] != D):
        raise ValueError("diag_elbo: inconsistent shapes")
    with nogil:
        for k in range(K):
            quad_mean = 0.0
            tr_psi_p = 0.0
            for j in range(D):
                p = prec_chol[k, j] * prec_chol[k, j]
                m = means[k, j] - shift[j]
                # sum_n r_nk (x_nj - m_kj)^2 from S2 about the centre c: e = c - m,
                # a = S1 - N c
                e = centres[k, j] - m
                a = s1[k, j] - nk[k] * centres[k, j]
                tr_pc += p * (s2[k, j] + 2.0 * e * a + nk[k] * (e * e))
                dm = m - m0[j]
                quad_mean += p * (dm * dm)
                tr_psi_p += p * psi0[j]
            ll_const += nk[k] * (e_log_det[k] - D / beta[k] - D * LOG_2PI)
            dd += nk[k] * e_log_pi[k]
            # the Wishart normaliser of q(Lambda_k): log B(W_k, nu_k)
            lmg = 0.25 * D * (D - 1) * LOG_PI
            for j in range(D):
                lmg += gammaln(0.5 * nu[k] - 0.5 * j)
            log_b = -0.5 * nu[k] * log_det_w[k] - 0.5 * nu[k] * D * LOG_2 - lmg
            e_log_p = (half_d_log_beta0 + 0.5 * e_log_det[k]
                       - 0.5 * beta0 * (D / beta[k] + quad_mean)
                       + log_b0 + 0.5 * (nu0 - D - 1.0) * e_log_det[k] - 0.5 * tr_psi_p)
            e_log_q = (0.5 * D * log(beta[k] / (2.0 * 3.141592653589793))
                       + 0.5 * e_log_det[k] - 0.5 * D
                       + log_b + 0.5 * (nu[k] - D - 1.0) * e_log_det[k] - 0.5 * nu[k] * D)
            pq += e_log_p - e_log_q
        bound = 0.5 * (ll_const - tr_pc) + dd - entropy_term
        if stick_breaking:
            for k in range(K):
                d_sum = psi(wc_a[k] + wc_b[k])
                e_log_v = psi(wc_a[k]) - d_sum
                e_log_1mv = psi(wc_b[k]) - d_sum
                bound += log(alpha0) + (alpha0 - 1.0) * e_log_1mv
                bound -= (-betaln(wc_a[k], wc_b[k]) + (wc_a[k] - 1.0) * e_log_v
                          + (wc_b[k] - 1.0) * e_log_1mv)
        else:
            for k in range(K):
                wsum += wc_a[k]
                lgsum += gammaln(wc_a[k])
                bound += (alpha0 - wc_a[k]) * e_log_pi[k]
            bound += (gammaln(K * alpha0) - K * gammaln(alpha0)) - (gammaln(wsum) - lgsum)
        bound += pq
    return bound


def row_quad_forms(const double[:, ::1] d, const double[:, ::1] U, bint upper,
                   double[::1] out):
    """out[n] = ||d_n U||^2 = sum_e (sum_i d_ni U_ie)^2 for the rows d_n of d (b, D), with
    U (D, D) (``upper``: U is upper triangular, the sums over i <= e only).

    Every row goes through the same loops in the same order, so a row's value does not depend
    on the rows beside it: a BLAS product's does (its kernels differ with the block's row
    count), which would make predictions on data read block by block differ in the last bits
    from those on the array in memory."""
    cdef Py_ssize_t b = d.shape[0], D = d.shape[1], n, i, e
    cdef double v, s
    cdef double* y
    if U.shape[0] != D or U.shape[1] != D or out.shape[0] != b:
        raise ValueError("row_quad_forms: d (b, D), U (D, D) and out (b,) disagree")
    y = <double*>PyMem_Malloc((D + 1) * sizeof(double))
    if y == NULL:
        raise MemoryError()
    with nogil:
        for n in range(b):
            for e in range(D):
                y[e] = 0.0
            for i in range(D):
                v = d[n, i]
                for e in range(i if upper else 0, D):
                    y[e] = y[e] + v * U[i, e]
            s = 0.0
            for e in range(D):
                s = s + y[e] * y[e]
            out[n] = s
    PyMem_Free(y)
