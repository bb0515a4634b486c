"""Per-covariance-type algebra of the Gaussian mixture, shared by every fitting method.

Conventions (the same as scikit-learn's, so fitted attributes are interchangeable):

=============  =======================  ===================================================
type           covariances / precisions  precisions_cholesky_ U, with precision = U U^T
=============  =======================  ===================================================
'full'         (K, D, D)                 (K, D, D), upper triangular
'tied'         (D, D)                    (D, D), upper triangular
'diag'         (K, D)                    (K, D), 1 / sqrt(variances)
'spherical'    (K,)                      (K,), 1 / sqrt(variance)
=============  =======================  ===================================================

The kernel works in coordinates shifted by a fixed vector (the data mean during a fit), so the
second moments it accumulates are well conditioned; the functions here take and return shifted
means where they say so.
"""
import numpy as np
from scipy import linalg

from . import _gaussian_kernel as _gmm
from .._core.protocol import Statistics
from .._core.threads import threads_for

COVARIANCE_TYPES = {"full": 0, "tied": 1, "diag": 2, "spherical": 3}
CHUNK_SIZE = 256
LOG_2PI = np.log(2.0 * np.pi)

_ILL_DEFINED = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
    "number of components, increase reg_covar, or scale the input data.")


def n_groups_for(n_samples, slot_size):
    """Number of statistics slots for a pass: depends on the data and model size only, never on
    the thread count (which is what makes results thread-count independent). Up to 128 groups,
    fewer when one slot is large, so the slots stay within about 64 MB."""
    n_chunks = -(-n_samples // CHUNK_SIZE)
    budget = max(8, (64 << 20) // (8 * max(slot_size, 1)))
    return int(max(1, min(n_chunks, 128, budget)))


def second_moment_size(covariance_type, n_components, n_features):
    """Length of one slot of the kernel's second-moment statistics S2."""
    return {"full": n_components * n_features * n_features, "tied": 0,
            "diag": n_components * n_features, "spherical": n_components}[covariance_type]


class GaussianPass:
    """The data side of a fit: X, weights, the shift, the statistics slots and the thread count.

    Built once per fit (the slots are the only buffers the passes need), then ``run`` is called
    once per iteration with the current per-component arrays.
    """

    def __init__(self, X, sample_weight, covariance_type, n_components, n_threads, shift=None):
        self.X = X
        self.n_samples, self.n_features = X.shape
        self.covariance_type = covariance_type
        self.cov_code = COVARIANCE_TYPES[covariance_type]
        self.n_components = n_components
        self.n_threads = threads_for(n_threads, self.n_samples)
        self.sample_weight = sample_weight
        self._w = sample_weight if sample_weight is not None else np.empty(0)
        self.weight_sum = float(sample_weight.sum()) if sample_weight is not None \
            else float(self.n_samples)
        if shift is None:
            if sample_weight is None:
                shift = X.mean(axis=0, dtype=np.float64)
            else:
                shift = (sample_weight @ X) / self.weight_sum
        self.shift = np.ascontiguousarray(shift, dtype=np.float64)
        K, D = n_components, self.n_features
        s2 = second_moment_size(covariance_type, K, D)
        G = n_groups_for(self.n_samples, K + K * D + s2)
        self.nk_slots = np.empty((G, K))
        self.s1_slots = np.empty((G, K * D))
        self.s2_slots = np.empty((G, s2))
        self.ll_slots = np.empty(G)
        self.ent_slots = np.empty(G)
        self._gram = None

    def gram(self):
        """sum_n w_n (x_n - shift)(x_n - shift)^T, computed once (tied covariance needs it)."""
        if self._gram is None:
            D = self.n_features
            slots = np.empty((n_groups_for(self.n_samples, D * D), D * D))
            _gmm.weighted_gram(self.X, self._w, self.shift, slots, CHUNK_SIZE, self.n_threads)
            self._gram = symmetrize_lower(slots.sum(axis=0).reshape(D, D))
        return self._gram

    def shards(self):
        """The whole data is one shard: the kernel itself runs chunks of rows in parallel."""
        return (None,)

    def run_pass(self, shard, inputs):
        """The pass of the protocol: ``inputs`` are ``run``'s positional and keyword
        arguments, a (tuple, dict) pair."""
        args, kwargs = inputs
        return self.run(*args, **kwargs)

    def run(self, means_shifted, prec_flat, aux, log_const, resp_in=None, resp_out=None,
            log_prob_norm_out=None, compute_stats=True, sample_z=False, seed=0, sweep=0,
            z_out=None):
        """One kernel pass; returns the reduced ``Statistics`` (see ``_gmm.gmm_pass``).

        With ``sample_z`` the pass draws z (Gibbs) from the stream keyed by (seed, sweep) and
        the statistics are hard counts; "log_likelihood" is then log p(X, z | theta)."""
        X = self.X
        empty_out_2d = np.empty((0, 0), dtype=X.dtype)
        empty_out_1d = np.empty(0, dtype=X.dtype)
        _gmm.gmm_pass(
            X, self._w, self.shift, means_shifted, prec_flat, aux, log_const, self.cov_code,
            resp_in if resp_in is not None else np.empty((0, 0)),
            self.nk_slots, self.s1_slots, self.s2_slots, self.ll_slots, self.ent_slots,
            resp_out if resp_out is not None else empty_out_2d,
            log_prob_norm_out if log_prob_norm_out is not None else empty_out_1d,
            compute_stats, CHUNK_SIZE, self.n_threads, sample_z, seed, sweep, z_out)
        K, D = self.n_components, self.n_features
        # Reduction over the groups in group order (numpy adds the rows of a C-ordered array
        # one after another along axis 0), independent of the thread count.
        stats = {"log_likelihood": float(self.ll_slots.sum()),
                 "entropy_term": float(self.ent_slots.sum())}
        if compute_stats:
            stats["nk"] = self.nk_slots.sum(axis=0)
            stats["s1"] = self.s1_slots.sum(axis=0).reshape(K, D)
            s2 = self.s2_slots.sum(axis=0)
            if self.covariance_type == "full":
                s2 = symmetrize_lower(s2.reshape(K, D, D))
            elif self.covariance_type == "diag":
                s2 = s2.reshape(K, D)
            stats["s2"] = s2
        return Statistics(**stats)

    def stats_from_resp(self, resp):
        """Statistics of given responsibilities, for initialisation; S2 of 'full' is centred
        at the shift. ``resp``: an (N, K) array, or ``HardAssignments``, whose one-hot rows
        are made and passed block by block (``RESP_BLOCK_ROWS`` rows, fixed: the result does
        not depend on the thread count) so that no N x K array exists."""
        K, D = self.n_components, self.n_features
        zeros_means = np.zeros((K, D))
        prec_flat, aux = _dummy_kernel_arrays(self.covariance_type, K, D)
        if not isinstance(resp, HardAssignments):
            resp = np.ascontiguousarray(resp, dtype=np.float64)
            return self.run(zeros_means, prec_flat, aux, np.zeros(K), resp_in=resp)
        total = None
        for start in range(0, self.n_samples, RESP_BLOCK_ROWS):
            stop = min(start + RESP_BLOCK_ROWS, self.n_samples)
            w = self.sample_weight[start:stop] if self.sample_weight is not None else None
            block = GaussianPass(self.X[start:stop], w, self.covariance_type, K,
                                 self.n_threads, shift=self.shift)
            block.n_threads = self.n_threads  # (threads_for would count the block's rows)
            stats = block.run(zeros_means, prec_flat, aux, np.zeros(K),
                              resp_in=resp.one_hot(start, stop))
            total = stats if total is None else total + stats
        return total


# Rows per block when initial hard assignments are expanded to one-hot responsibilities.
RESP_BLOCK_ROWS = 65536


class HardAssignments:
    """Initial hard assignments: ``labels`` (N,) in [0, K), or -1 for a row in no component;
    stands for the one-hot (N, K) responsibilities without storing them."""

    def __init__(self, labels, n_components):
        self.labels = np.asarray(labels, dtype=np.intp)
        self.n_components = n_components

    def one_hot(self, start, stop):
        """Rows [start, stop) as a float64 (stop - start, K) one-hot array."""
        labels = self.labels[start:stop]
        out = np.zeros((stop - start, self.n_components))
        rows = np.flatnonzero(labels >= 0)
        out[rows, labels[rows]] = 1.0
        return out

    def toarray(self):
        return self.one_hot(0, self.labels.shape[0])


def symmetrize_lower(a):
    """Copy the lower triangle of the last two axes onto the upper one."""
    lower = np.tril(a)
    return lower + np.swapaxes(np.tril(a, -1), -1, -2)


def _dummy_kernel_arrays(covariance_type, K, D):
    """Correctly shaped, unused factor arrays for a pass driven by given responsibilities."""
    if covariance_type == "full":
        return np.zeros(K * D * D), np.empty((0, 0))
    if covariance_type == "tied":
        return np.zeros(D * D), np.zeros((K, D + 1))
    if covariance_type == "diag":
        return np.empty(0), np.zeros((K, 2 * D))
    return np.empty(0), np.zeros((K, D + 1))


def estimate_parameters(stats, covariance_type, reg_covar, centers_shifted, gram=None):
    """Weights (unnormalised N_k), shifted means and covariances from pass statistics.

    The same estimates as scikit-learn's ``_estimate_gaussian_parameters``: N_k gets
    10 * eps so empty components do not divide by zero, and ``reg_covar`` is added to the
    diagonal. For 'full', S2 is centred at ``centers_shifted`` (the means the pass was given)
    and re-centred here at the new means:
        sum r (x - m)(x - m)^T = S2 - R d d^T,  d = m - centre,  R = sum r.
    """
    nk_raw = stats["nk"]
    nk = nk_raw + 10 * np.finfo(np.float64).eps
    means = stats["s1"] / nk[:, None]
    K, D = means.shape
    if covariance_type == "full":
        d = means - centers_shifted
        cov = stats["s2"] - nk_raw[:, None, None] * d[:, :, None] * d[:, None, :]
        cov /= nk[:, None, None]
        cov[:, np.arange(D), np.arange(D)] += reg_covar
    elif covariance_type == "tied":
        cov = gram - (nk[:, None] * means).T @ means
        cov /= nk.sum()
        cov.flat[:: D + 1] += reg_covar
    elif covariance_type == "diag":
        cov = stats["s2"] / nk[:, None] - means ** 2 + reg_covar
    else:
        cov = (stats["s2"] / nk - (means ** 2).sum(axis=1)) / D + reg_covar
    return nk, means, cov


def precision_cholesky(covariances, covariance_type):
    """Upper factor U of each precision (precision = U U^T) from the covariances.

    With the covariance Cholesky factor L (cov = L L^T), U = L^{-T}, found by a triangular
    solve rather than an explicit inverse.
    """
    if covariance_type in ("full", "tied"):
        covs = covariances if covariance_type == "full" else covariances[None]
        D = covs.shape[-1]
        out = np.empty_like(covs)
        eye = np.eye(D)
        for k, cov in enumerate(covs):
            try:
                cov_chol = linalg.cholesky(cov, lower=True, check_finite=False)
            except linalg.LinAlgError:
                raise ValueError(_ILL_DEFINED) from None
            out[k] = linalg.solve_triangular(cov_chol, eye, lower=True,
                                             check_finite=False).T
        if not np.isfinite(out).all():
            raise ValueError(_ILL_DEFINED)
        return out if covariance_type == "full" else out[0]
    if np.any(np.less_equal(covariances, 0.0)) or not np.isfinite(covariances).all():
        raise ValueError(_ILL_DEFINED)
    return 1.0 / np.sqrt(covariances)


def precision_cholesky_from_precisions(precisions, covariance_type):
    """Upper factor U with precision = U U^T, straight from a precision matrix.

    With J the reversal permutation, J chol(J P J) J is upper triangular and squares to P; this
    avoids inverting P.
    """
    if covariance_type in ("full", "tied"):
        precs = precisions if covariance_type == "full" else precisions[None]
        out = np.empty_like(precs, dtype=np.float64)
        for k, prec in enumerate(precs):
            lower = linalg.cholesky(prec[::-1, ::-1], lower=True)
            out[k] = lower[::-1, ::-1]
        return out if covariance_type == "full" else out[0]
    return np.sqrt(precisions)


def precisions_from_cholesky(prec_chol, covariance_type):
    """Precision matrices U U^T (or squared precisions for diag / spherical)."""
    if covariance_type == "full":
        return np.einsum("kij,klj->kil", prec_chol, prec_chol)
    if covariance_type == "tied":
        return prec_chol @ prec_chol.T
    return prec_chol ** 2


def covariances_from_cholesky(prec_chol, covariance_type):
    """Covariances (U U^T)^{-1} = U^{-T} U^{-1}, via triangular solves."""
    if covariance_type in ("full", "tied"):
        chols = prec_chol if covariance_type == "full" else prec_chol[None]
        D = chols.shape[-1]
        out = np.empty_like(chols)
        for k, u in enumerate(chols):
            u_inv = linalg.solve_triangular(u, np.eye(D), lower=False)
            out[k] = u_inv.T @ u_inv
        return out if covariance_type == "full" else out[0]
    return 1.0 / prec_chol ** 2


def log_det_cholesky(prec_chol, covariance_type, n_features):
    """log det U per component (half the log-determinant of the precision); (K,) or scalar."""
    if covariance_type == "full":
        return np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(axis=1)
    if covariance_type == "tied":
        return float(np.log(np.diag(prec_chol)).sum())
    if covariance_type == "diag":
        return np.log(prec_chol).sum(axis=1)
    return n_features * np.log(prec_chol)


def plugin_log_const(weights, prec_chol, covariance_type, n_features):
    """c_k = log pi_k + log det U_k - D/2 log(2 pi) of a pass at point estimates (K,); a zero
    weight gives log 0 = -inf, on purpose (the component takes no row)."""
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    return (log_weights + log_det_cholesky(prec_chol, covariance_type, n_features)
            - 0.5 * n_features * LOG_2PI)


def kernel_arrays(means_shifted, prec_chol, covariance_type):
    """The per-component arrays the pass needs for the quadratic form.

    Returns (prec_flat, aux, quad_const): for 'full' the flattened factors; for the GEMM
    form of the other types the vectors a_k and the folded constant -1/2 ||m_k U||^2 (or
    -1/2 sum_j m_kj^2 p_kj^2), which the caller adds to c_k. See ``src_c/_gmm.pyx``.
    """
    K, D = means_shifted.shape
    if covariance_type == "full":
        return (np.ascontiguousarray(prec_chol, dtype=np.float64).ravel(), np.empty((0, 0)),
                np.zeros(K))
    if covariance_type == "tied":
        u = np.ascontiguousarray(prec_chol, dtype=np.float64)
        mu = means_shifted @ u
        aux = np.hstack([-2.0 * mu, np.ones((K, 1))])
        return u.ravel(), np.ascontiguousarray(aux), -0.5 * (mu ** 2).sum(axis=1)
    if covariance_type == "diag":
        p2 = np.asarray(prec_chol, dtype=np.float64) ** 2
        aux = np.hstack([-2.0 * means_shifted * p2, p2])
        return np.empty(0), np.ascontiguousarray(aux), -0.5 * (means_shifted ** 2 * p2).sum(1)
    p2 = np.asarray(prec_chol, dtype=np.float64) ** 2
    aux = np.hstack([-2.0 * means_shifted * p2[:, None], p2[:, None]])
    return np.empty(0), np.ascontiguousarray(aux), -0.5 * p2 * (means_shifted ** 2).sum(1)


def pass_inputs(means, prec_chol, covariance_type, shift, log_const):
    """Everything ``GaussianPass.run`` needs for a pass at given per-component quantities.

    ``log_const`` is the method's c_k without the folded quadratic constant (EM: log pi_k +
    log det U_k - D/2 log 2 pi; mean field: the expected version). Returns (shifted means,
    factor array, aux, c_k including the folded constant).
    """
    means_shifted = np.ascontiguousarray(np.asarray(means, dtype=np.float64) - shift)
    prec_flat, aux, quad = kernel_arrays(means_shifted, prec_chol, covariance_type)
    return means_shifted, prec_flat, aux, np.ascontiguousarray(log_const + quad)


def n_covariance_parameters(covariance_type, n_components, n_features):
    """Free parameters of the covariances."""
    K, D = n_components, n_features
    return {"full": K * D * (D + 1) / 2.0, "tied": D * (D + 1) / 2.0, "diag": K * D,
            "spherical": K}[covariance_type]


def check_precisions(precisions, covariance_type, n_components, n_features):
    """Validate user-given precisions: shape, symmetry and positive definiteness."""
    K, D = n_components, n_features
    shapes = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}
    precisions = np.asarray(precisions, dtype=np.float64)
    if precisions.shape != shapes[covariance_type]:
        raise ValueError(f"precisions_init for covariance_type={covariance_type!r} must have "
                         f"shape {shapes[covariance_type]}, got {precisions.shape}")
    if not np.isfinite(precisions).all():
        raise ValueError("precisions_init contains NaN or infinity")
    if covariance_type in ("diag", "spherical"):
        if np.any(precisions <= 0):
            raise ValueError(f"precisions_init for covariance_type={covariance_type!r} must be "
                             "positive")
        return precisions
    mats = precisions if covariance_type == "full" else precisions[None]
    for k, p in enumerate(mats):
        if not np.allclose(p, p.T):
            raise ValueError(f"precisions_init[{k}] is not symmetric" if covariance_type ==
                             "full" else "precisions_init is not symmetric")
        if np.any(np.linalg.eigvalsh(p) <= 0.0):
            raise ValueError(f"precisions_init[{k}] is not positive-definite" if
                             covariance_type == "full" else
                             "precisions_init is not positive-definite")
    return precisions
