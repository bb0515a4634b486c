"""Missing values (NaN) in Gaussian mixtures, marginalised exactly: the data object and the
per-pattern algebra.

A row's missing coordinates m are integrated out: the E-step scores the observed block o by
its marginal N(x_o | mu_o, Sigma_oo), and the M-step (EM; the q(theta) update of mean field)
uses the expected complete-data statistics, with x_m replaced by its conditional mean and
the conditional covariance added to the second moments (Ghahramani & Jordan 1994). With
P = Sigma^{-1} = U U^T, everything comes from the small (m, m) block of the precision:

    x^_m = mu_m - P_mm^{-1} P_mo (x_o - mu_o),   Cov(x_m | x_o) = P_mm^{-1},
    log N(x_o | mu_o, Sigma_oo) = log N_D(x^ | mu, Sigma) + |m|/2 log 2 pi - 1/2 log |P_mm|.

Rows are grouped by their missingness *pattern* once per fit (``Patterns``); per iteration
the per-(pattern, component) arrays are computed in NumPy batched over the patterns with the
same number of missing coordinates (``pattern_arrays``), and one compiled pass
(``_gaussian_missing_kernel.gmm_missing_pass``) handles every incomplete row. Complete rows
take the ordinary pass (``GaussianPass``); a row with nothing observed contributes nothing
(its likelihood is 1 whatever theta) and is counted.
"""
import numpy as np
from scipy.special import gammaln

from . import _gaussian_missing_kernel as _miss
from .gaussian import (CHUNK_SIZE, LOG_2PI, GaussianPass, _ILL_DEFINED, n_groups_for,
                       symmetrize_lower_inplace)
from .._core.protocol import Statistics


class Patterns:
    """The missingness patterns of X (NaN = missing), found once.

    Attributes
    ----------
    complete : (n_complete,) int64 rows without NaN
    empty : (n_empty,) int64 rows without any observed value
    rows : (M,) int64 the other rows, grouped by pattern (stably sorted)
    row_pattern : (M,) int32 their pattern in [0, P)
    missing : (P, D) bool, each pattern's missing coordinates
    miss_idx, miss_off : the missing coordinates of pattern p, ascending:
        ``miss_idx[miss_off[p]:miss_off[p + 1]]``
    """

    def __init__(self, X):
        mask = np.isnan(X)
        N, D = X.shape
        count = mask.sum(axis=1)
        self.n_features = D
        self.complete = np.flatnonzero(count == 0).astype(np.int64)
        self.empty = np.flatnonzero(count == D).astype(np.int64)
        partial = np.flatnonzero((count > 0) & (count < D)).astype(np.int64)
        if partial.size:
            packed = np.packbits(mask[partial], axis=1)
            uniq, inverse = np.unique(packed, axis=0, return_inverse=True)
            inverse = inverse.reshape(-1)
            order = np.argsort(inverse, kind="stable")
            self.rows = partial[order]
            self.row_pattern = inverse[order].astype(np.int32)
            self.missing = np.unpackbits(uniq, axis=1, count=D).astype(bool)
        else:
            self.rows = np.empty(0, dtype=np.int64)
            self.row_pattern = np.empty(0, dtype=np.int32)
            self.missing = np.zeros((0, D), dtype=bool)
        self.n_missing = self.missing.sum(axis=1)
        self.miss_off = np.concatenate([[0], np.cumsum(self.n_missing)]).astype(np.int64)
        self.miss_idx = np.nonzero(self.missing)[1].astype(np.int32)  # row-major: by pattern

    @property
    def n_patterns(self):
        return self.missing.shape[0]

    def offsets(self, K):
        """(off, size): where pattern p's K blocks of |m| x |m| start in the flat arrays of
        ``pattern_arrays``, and their total size."""
        sizes = K * self.n_missing.astype(np.int64) ** 2
        off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        return off[:-1].copy(), int(off[-1])


def dense_factors(prec_chol, covariance_type, K, D):
    """The upper precision factors U_k as a (K, D, D) array, for any covariance type."""
    u = np.asarray(prec_chol, dtype=np.float64)
    if covariance_type == "full":
        return np.ascontiguousarray(u)
    if covariance_type == "tied":
        return np.ascontiguousarray(np.broadcast_to(u, (K, D, D)))
    out = np.zeros((K, D, D))
    diag = u if covariance_type == "diag" else np.repeat(u[:, None], D, axis=1)
    out[:, np.arange(D), np.arange(D)] = diag
    return out


def pattern_arrays(patterns, factors, n_threads=1):
    """Per (pattern, component), from the (K, D, D) factors U_k (P_k = U_k U_k^T): L_pk the
    lower Cholesky factor of P_mm (its diagonal stored inverted) and C_pk = P_mm^{-1} (flat, at ``patterns.offsets``),
    corr_pk = |m|/2 log 2 pi - 1/2 log |P_mm| and h_pk = |m|/2 (1 + log 2 pi) - 1/2 log
    |P_mm| (the entropy of N(., C_pk)); and the precisions P_k. Computed by the compiled
    ``_miss.pattern_arrays`` (patterns in parallel, the same numbers for any thread count).
    The pass completes a row by x^_m - mu_m = -P_mm^{-1} (P (x - mu)|x_m=mu_m)_m with L_pk.

    Returns a dict of the kernel's pattern arguments."""
    K, D = factors.shape[:2]
    prec = np.ascontiguousarray(np.einsum("kij,klj->kil", factors, factors))
    off, size = patterns.offsets(K)
    P = patterns.n_patterns
    l_mat = np.empty(size)
    c_mat = np.empty(size)
    log_det = np.empty((P, K))
    try:
        _miss.pattern_arrays(prec, patterns.miss_idx, patterns.miss_off, off, l_mat, c_mat,
                             log_det, n_threads)
    except ValueError:
        raise ValueError(_ILL_DEFINED) from None
    if not (np.isfinite(l_mat).all() and np.isfinite(c_mat).all()):
        raise ValueError(_ILL_DEFINED)
    j = patterns.n_missing[:, None]
    corr = 0.5 * j * LOG_2PI - 0.5 * log_det
    h_ent = 0.5 * j * (1.0 + LOG_2PI) - 0.5 * log_det
    return {"prec": prec, "l_mat": l_mat, "l_off": off, "c_mat": c_mat, "c_off": off,
            "corr": corr, "h_ent": h_ent}


class MissingInputs:
    """What the pass over the incomplete rows needs besides the complete rows' inputs.

    means : (K, D) original coordinates; prec_chol : the type's layout; log_const : (K,) the
    complete-data c_k without folded constants (EM: log pi_k + log det U_k - D/2 log 2 pi;
    mean field: its expected version); centres_shifted : (K, D) where S2 is centred (the
    complete rows' pass centres; 0 for 'tied'); empty_resp : (K,) the responsibilities of a
    row with nothing observed (the weights).
    """

    def __init__(self, means, prec_chol, covariance_type, log_const, centres_shifted,
                 empty_resp):
        self.means = np.asarray(means, dtype=np.float64)
        K, D = self.means.shape
        self.factors = dense_factors(prec_chol, covariance_type, K, D)
        self.log_const = np.ascontiguousarray(log_const, dtype=np.float64)
        self.centres_shifted = (np.zeros((K, D)) if covariance_type == "tied" else
                                np.ascontiguousarray(centres_shifted, dtype=np.float64))
        self.empty_resp = np.asarray(empty_resp, dtype=np.float64)
        self.diagonal = covariance_type in ("diag", "spherical")


def observed_mean(X, sample_weight):
    """(D,) the (weighted) mean of each column over its observed values; ValueError for a
    column without any."""
    mask = ~np.isnan(X)
    w = np.ones(X.shape[0]) if sample_weight is None else sample_weight
    # blockwise, in float64, without an N x D float64 copy
    total = np.zeros(X.shape[1])
    weight = np.zeros(X.shape[1])
    for start in range(0, X.shape[0], 65536):
        block = np.asarray(X[start:start + 65536], dtype=np.float64)
        m = mask[start:start + 65536]
        wb = w[start:start + 65536]
        total += np.where(m, block, 0.0).T @ wb
        weight += m.T.astype(np.float64) @ wb
    if np.any(weight <= 0):
        bad = np.flatnonzero(weight <= 0).tolist()
        raise ValueError(f"X has no observed value (of positive weight) in column(s) {bad}: "
                         "missing='marginalize' needs at least one per column.")
    return total / weight


class MissingGaussianPass(GaussianPass):
    """The data object of a Gaussian mixture whose X has NaN (``missing='marginalize'``).

    As a ``GaussianPass`` it holds X with every NaN replaced by its column's observed mean
    (the shift): initialisation (k-means, responsibilities' statistics) and the default
    priors read that copy. The pass of an iteration (``run`` with ``missing=``) is exact:
    the complete rows through the ordinary pass over a copy of them, the incomplete rows
    through ``gmm_missing_pass`` over the original X, rows without an observed value
    skipped (``n_empty_rows``). For 'tied', ``gram()`` after such a pass is the expected
    sum_n w_n sum_k r_nk E[(x - shift)(x - shift)^T] of that pass (the complete rows'
    Gram matrix plus the incomplete rows' expected one).
    """

    def __init__(self, X, sample_weight, covariance_type, n_components, n_threads,
                 shift=None, patterns=None):
        self.patterns = patterns if patterns is not None else Patterns(X)
        if shift is None:
            shift = observed_mean(X, sample_weight)
        shift = np.ascontiguousarray(shift, dtype=np.float64)
        mask = np.isnan(X)
        imputed = np.where(mask, shift.astype(X.dtype), X)
        super().__init__(imputed, sample_weight, covariance_type, n_components, n_threads,
                         shift=shift)
        self.X_missing = X
        pat = self.patterns
        self.n_empty_rows = int(pat.empty.size)
        K, D = n_components, self.n_features
        self.complete = None
        if pat.complete.size:
            w = sample_weight[pat.complete] if sample_weight is not None else None
            self.complete = GaussianPass(np.ascontiguousarray(X[pat.complete]), w,
                                         covariance_type, K, n_threads, shift=self.shift)
        M = pat.rows.size
        if M:
            size = K + K * D + K * D * D
            G = n_groups_for(M, size, M * D * X.itemsize)
            self.m_slots = {"nk": np.empty((G, K)), "s1": np.empty((G, K * D)),
                            "s2": np.empty((G, K * D * D)), "ll": np.empty(G),
                            "ent": np.empty(G)}
        self._pass_gram = None

    def gram(self):
        if self._pass_gram is not None:
            return self._pass_gram
        return super().gram()

    def run(self, means_shifted, prec_flat, aux, log_const, resp_in=None, resp_out=None,
            log_prob_norm_out=None, compute_stats=True, sample_z=False, seed=0, sweep=0,
            z_out=None, missing=None):
        """Without ``missing``: the ordinary pass over the mean-imputed copy (initial
        statistics from given responsibilities). With ``missing`` (a ``MissingInputs``): the
        exact pass described in the class docstring; the first four arguments are the
        complete rows' inputs."""
        if missing is None:
            self._pass_gram = None
            return super().run(means_shifted, prec_flat, aux, log_const, resp_in=resp_in,
                               resp_out=resp_out, log_prob_norm_out=log_prob_norm_out,
                               compute_stats=compute_stats, sample_z=sample_z, seed=seed,
                               sweep=sweep, z_out=z_out)
        if sample_z or resp_in is not None:
            raise ValueError("the missing-value pass computes its own responsibilities and "
                             "does not sample")
        pat, K, D = self.patterns, self.n_components, self.n_features
        cov = self.covariance
        parts = []
        if self.complete is not None:
            idx = pat.complete
            r_out = (np.empty((idx.size, K), dtype=resp_out.dtype)
                     if resp_out is not None else None)
            l_out = (np.empty(idx.size, dtype=log_prob_norm_out.dtype)
                     if log_prob_norm_out is not None else None)
            parts.append(self.complete.run(means_shifted, prec_flat, aux, log_const,
                                           resp_out=r_out, log_prob_norm_out=l_out,
                                           compute_stats=compute_stats))
            if r_out is not None:
                resp_out[idx] = r_out
            if l_out is not None:
                log_prob_norm_out[idx] = l_out
        if pat.empty.size:
            if resp_out is not None:
                resp_out[pat.empty] = missing.empty_resp
            if log_prob_norm_out is not None:
                log_prob_norm_out[pat.empty] = 0.0
        m_stats = None
        if pat.rows.size:
            m_stats = self._run_incomplete(missing, resp_out, log_prob_norm_out,
                                           compute_stats)
            parts.append(m_stats)
        stats = {"log_likelihood": sum(float(s["log_likelihood"]) for s in parts),
                 "entropy_term": sum(float(s["entropy_term"]) for s in parts)}
        if compute_stats:
            stats["nk"] = sum(s["nk"] for s in parts) if parts else np.zeros(K)
            stats["s1"] = sum(s["s1"] for s in parts) if parts else np.zeros((K, D))
            stats["s2"] = cov.reduce_s2(np.zeros(cov.second_moment_size(K, D)), K, D)
            if self.complete is not None:
                stats["s2"] = parts[0]["s2"]
            if m_stats is not None:
                s2 = m_stats["s2_full"]  # (K, D, D) symmetric
                if self.covariance_type == "full":
                    stats["s2"] = stats["s2"] + s2
                elif self.covariance_type == "diag":
                    stats["s2"] = stats["s2"] + np.diagonal(s2, axis1=1, axis2=2)
                elif self.covariance_type == "spherical":
                    stats["s2"] = stats["s2"] + np.trace(s2, axis1=1, axis2=2)
            if self.covariance_type == "tied":
                gram = (self.complete.gram() if self.complete is not None
                        else np.zeros((D, D)))
                if m_stats is not None:
                    gram = gram + m_stats["s2_full"].sum(axis=0)
                self._pass_gram = gram
        return Statistics(**stats)

    def _run_incomplete(self, missing, resp_out, log_prob_norm_out, compute_stats):
        pat, K, D = self.patterns, self.n_components, self.n_features
        X = self.X_missing
        arrays = pattern_arrays(pat, missing.factors, self.n_threads)
        slots = self.m_slots
        means_shifted = np.ascontiguousarray(missing.means - self.shift)
        empty_2d = np.empty((0, 0), dtype=X.dtype)
        empty_1d = np.empty(0, dtype=X.dtype)
        # 'diag' / 'spherical': x^_m = mu_m, the kernel's diagonal form
        diag_prec = (np.ascontiguousarray(np.diagonal(arrays["prec"], axis1=1, axis2=2))
                     if missing.diagonal else np.empty((0, 0)))
        _miss.gmm_missing_pass(
            X, pat.rows, pat.row_pattern, self._w, self.shift, means_shifted,
            missing.centres_shifted, missing.factors, missing.log_const, pat.miss_idx,
            pat.miss_off, arrays["prec"], arrays["l_mat"], arrays["l_off"], arrays["c_mat"],
            arrays["c_off"], arrays["corr"], arrays["h_ent"], diag_prec, slots["nk"],
            slots["s1"], slots["s2"],
            slots["ll"], slots["ent"],
            resp_out if resp_out is not None else empty_2d,
            log_prob_norm_out if log_prob_norm_out is not None else empty_1d,
            compute_stats, CHUNK_SIZE, self.n_threads)
        out = {"log_likelihood": float(slots["ll"].sum()),
               "entropy_term": float(slots["ent"].sum())}
        if compute_stats:
            out["nk"] = slots["nk"].sum(axis=0)
            out["s1"] = slots["s1"].sum(axis=0).reshape(K, D)
            out["s2_full"] = symmetrize_lower_inplace(slots["s2"].sum(axis=0).reshape(K, D, D))
        return out


def student_t_log_predictive_missing(X, patterns, weights, means, mean_precision,
                                     degrees_of_freedom, prec_chol, covariance_type,
                                     complete_log_predictive):
    """The mean-field posterior predictive log density of rows with NaN, (N,) float64.

    Each component's Student-t St(x | m_k, dof_k, L_k) (dof_k = nu_k + 1 - D, L_k = s_k P_k,
    s_k = dof_k beta_k / ((1 + beta_k) nu_k), P_k = U_k U_k^T) marginalised to the row's
    observed block o: a Student-t with the same dof_k, dimension |o|, precision the Schur
    complement s_k (P_k / P_k,mm) (log det: |o| log s_k + 2 log det U_k - log |P_k,mm|) and
    quadratic form s_k ||(x^ - m_k) U_k||^2 (x^: x_m at its conditional mean), mixed with
    ``weights``. ``complete_log_predictive(rows)`` scores the complete rows (the ordinary
    predictive); a row with nothing observed has log density 0. One NumPy step per pattern
    (used for predictions only).
    """
    N, D = X.shape
    K = means.shape[0]
    out = np.zeros(N)
    if patterns.complete.size:
        out[patterns.complete] = complete_log_predictive(
            np.ascontiguousarray(X[patterns.complete]))
    if not patterns.rows.size:
        return out
    factors = dense_factors(prec_chol, covariance_type, K, D)
    arrays = pattern_arrays(patterns, factors)
    nu = np.broadcast_to(np.asarray(degrees_of_freedom, dtype=np.float64), (K,))
    dof = nu + 1.0 - D
    scale = dof * mean_precision / ((1.0 + mean_precision) * nu)
    log_det_u = np.log(np.diagonal(factors, axis1=1, axis2=2)).sum(axis=1)
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)
    bounds = np.flatnonzero(np.diff(patterns.row_pattern)) + 1
    for block in np.split(np.arange(patterns.rows.size), bounds):
        p = patterns.row_pattern[block[0]]
        rows = patterns.rows[block]
        mi = patterns.miss_idx[patterns.miss_off[p]:patterns.miss_off[p + 1]]
        j = mi.size
        n_obs = D - j
        c = arrays["c_mat"][arrays["c_off"][p]:arrays["c_off"][p] + K * j * j]
        a = np.einsum("kts,ksd->ktd", c.reshape(K, j, j), arrays["prec"][:, mi, :])
        y = np.asarray(X[rows], dtype=np.float64)[:, None, :] - means[None]  # (n, K, D)
        y[:, :, mi] = 0.0
        y[:, :, mi] = -np.einsum("ktd,nkd->nkt", a, y)  # x^_m - m_m = -P_mm^-1 P_mo y_o
        q = scale * (np.einsum("nkd,kde->nke", y, factors) ** 2).sum(axis=2)
        neg_half_log_pmm = arrays["corr"][p] - 0.5 * j * LOG_2PI
        const = (log_w + gammaln(0.5 * (dof + n_obs)) - gammaln(0.5 * dof)
                 - 0.5 * n_obs * np.log(dof * np.pi) + 0.5 * n_obs * np.log(scale)
                 + log_det_u + neg_half_log_pmm)
        with np.errstate(divide="ignore"):
            lp = const - 0.5 * (dof + n_obs) * np.log1p(q / dof)
        mx = lp.max(axis=1)
        out[rows] = mx + np.log(np.exp(lp - mx[:, None]).sum(axis=1))
    return out
