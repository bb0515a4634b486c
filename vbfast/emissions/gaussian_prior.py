"""Mean-field variational Bayes for the Gaussian mixture: priors, q(theta) updates and the ELBO.

The model (the one scikit-learn's ``BayesianGaussianMixture`` fits, written out in full)::

    weights     dirichlet_distribution:  pi ~ Dir(alpha0, ..., alpha0)
                dirichlet_process:        v_k ~ Beta(1, gamma0), pi_k = v_k prod_{j<k} (1 - v_j)
                                          (k = 1..K; the mass left after K sticks belongs to
                                          components no point is assigned to, whose q equals
                                          their prior, so they add nothing to the bound)
    z_n | pi    ~ Cat(pi)
    Lambda_k    ~ Wishart(W0, nu0),  W0^{-1} = covariance_prior (as a D x D matrix)
    mu_k        ~ N(m0, (beta0 Lambda_k)^{-1})
    x_n | z_n=k ~ N(mu_k, Lambda_k^{-1})

    q(z) q(pi or v) prod_k q(mu_k | Lambda_k) q(Lambda_k),
    q(mu_k | Lambda_k) = N(m_k, (beta_k Lambda_k)^{-1}),  q(Lambda_k) = Wishart(W_k, nu_k).

``covariance_type`` restricts the family of q(Lambda_k): 'full' any W_k; 'diag' diagonal W_k;
'spherical' W_k = w_k I; 'tied' one (nu, W) shared by every q(Lambda_k) (each component keeps
its own Lambda_k in the model). Under each restriction the coordinate update of q(Lambda_k) is
closed form (for 'diag' / 'spherical' the diagonal / mean diagonal of the 'full' update, for
'tied' the K-th root of the product of the K 'full' updates), and these are exactly
scikit-learn's updates, with ``reg_covar`` added as scikit-learn adds it.

Conventions follow scikit-learn: ``covariances_`` = (nu_k W_k)^{-1}, ``precisions_`` =
nu_k W_k = E[Lambda_k], ``precisions_cholesky_`` its upper factor U_k (U U^T = nu W).

The E-step is the EM kernel (``_gmm.gmm_pass``) called with expected quantities:

    c_k = E[log pi_k] + 1/2 E[log |Lambda_k|] - D / (2 beta_k) - D/2 log(2 pi),  U_k as above,

since E[(x - mu_k)^T Lambda_k (x - mu_k)] = ||(x - m_k) U_k||^2 + D / beta_k.
"""
import numbers

import numpy as np
from scipy.special import betaln, digamma, gammaln

from . import _gaussian_prior_kernel as _prior
from . import degenerate as DG
from . import gaussian as G
from .._core.protocol import Method
from .._core.threads import single_threaded_blas
from .._core.validation import check_option, check_scalar

PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")
LOG_PI = np.log(np.pi)
LOG_2 = np.log(2.0)

#: components whose weight exceeds this count in ``n_effective_components_``
EFFECTIVE_WEIGHT_THRESHOLD = 1e-2
#: the 10 eps that ``gaussian.estimate_parameters`` adds to N_k (the C moments add the same)
NK_EPS = 10 * np.finfo(np.float64).eps


# ---------------------------------------------------------------------- special functions
def log_multigamma(a, D):
    """log Gamma_D(a) = D(D-1)/4 log pi + sum_{i=0}^{D-1} log Gamma(a - i/2), elementwise."""
    a = np.asarray(a, dtype=np.float64)
    i = np.arange(D).reshape((D,) + (1,) * a.ndim)
    return 0.25 * D * (D - 1) * LOG_PI + gammaln(a - 0.5 * i).sum(axis=0)


def multi_digamma(a, D):
    """sum_{i=0}^{D-1} psi(a - i/2), elementwise."""
    a = np.asarray(a, dtype=np.float64)
    i = np.arange(D).reshape((D,) + (1,) * a.ndim)
    return digamma(a - 0.5 * i).sum(axis=0)


def log_wishart_norm(log_det_W, nu, D):
    """log B(W, nu) = -nu/2 log|W| - nu D/2 log 2 - log Gamma_D(nu/2), the Wishart's log
    normaliser (complete, with the pi term scikit-learn's ``_log_wishart_norm`` leaves out)."""
    return -0.5 * nu * log_det_W - 0.5 * nu * D * LOG_2 - log_multigamma(0.5 * nu, D)


# ---------------------------------------------------------------------- priors
def _covariance_prior_matrix_logdet(psi0, covariance_type, D):
    """log |Psi0| of the prior scale inverse as a D x D matrix."""
    if covariance_type in ("full", "tied"):
        sign, logdet = np.linalg.slogdet(psi0)
        return float(logdet)
    if covariance_type == "diag":
        return float(np.log(psi0).sum())
    return float(D * np.log(psi0))


#: log |Psi0| of a resolved covariance prior, in its covariance_type layout
covariance_prior_log_det = _covariance_prior_matrix_logdet


def _proper_default_covariance_prior(psi0, covariance_type, D, reg_covar):
    """The default Psi0 (the covariance of X) is singular when X has a constant column or no
    more samples than features; the Wishart prior is then improper and the ELBO -inf. In that
    case only, ``reg_covar`` is added to its diagonal (as the updates add it to the posterior
    scale); a prior still singular is refused with a clear error."""
    def proper(p):
        if covariance_type in ("full", "tied"):
            try:
                np.linalg.cholesky(p)
            except np.linalg.LinAlgError:
                return False
            # numerically singular counts as singular: a condition number beyond ~1e12 (e.g.
            # redundant columns of float32 data, whose rounding leaves eigenvalues ~1e-16)
            # breaks the Cholesky factors of the posterior scales built on it
            w = np.linalg.eigvalsh(p)
            if not w[0] > 1e3 * D * np.finfo(np.float64).eps * w[-1]:
                return False
            return bool(np.isfinite(_covariance_prior_matrix_logdet(p, covariance_type, D)))
        return bool(np.all(np.asarray(p) > 0) and np.all(np.isfinite(p)))

    if not np.isfinite(psi0).all():
        raise ValueError(
            "The default covariance_prior (the covariance of X) overflows float64: the data "
            "are too large (|x| around 1e154 or more). Scale the data, or give "
            "covariance_prior explicitly.")
    if proper(psi0):
        return psi0
    if covariance_type in ("full", "tied"):
        fixed = psi0 + reg_covar * np.eye(D)
    elif covariance_type == "diag":
        fixed = psi0 + reg_covar
    else:
        fixed = float(psi0 + reg_covar)
    if not proper(fixed):
        if covariance_type in ("full", "tied"):
            w = np.linalg.eigvalsh(psi0)
            cond = w[-1] / w[0] if w[0] > 0 else np.inf
            what = f"condition number {cond:.3g}"
        else:
            what = "a zero variance"
        raise ValueError(
            f"The default covariance_prior (the covariance of X) is numerically singular "
            f"({what}), and reg_covar does not make it positive-definite. Causes: a "
            "constant column, no more samples than features, collinear columns, or an "
            "outlier so far from the other points that their spread is lost to rounding. "
            "Give covariance_prior explicitly, scale the data or remove the outlier, or "
            "increase reg_covar.")
    return fixed


def resolve_priors(est, data):
    """Validate the estimator's prior parameters and fill in the data-dependent defaults.

    Returns a dict: type, alpha0 (weight concentration), beta0, m0 (original coordinates),
    nu0, psi0 (covariance prior in its covariance_type shape) and log_det_psi0.
    Defaults (scikit-learn's): alpha0 = 1 / K, beta0 = 1, m0 = weighted mean of X, nu0 = D,
    psi0 = the (weighted, ddof=1) covariance of X, its diagonal, or its mean diagonal (plus
    ``reg_covar`` on the diagonal if it is singular, see
    ``_proper_default_covariance_prior``).
    """
    K, D = data.n_components, data.n_features
    ctype = data.covariance_type
    ptype = getattr(est, "weight_concentration_prior_type", "dirichlet_process")
    check_option(ptype, "weight_concentration_prior_type", PRIOR_TYPES)

    alpha0 = getattr(est, "weight_concentration_prior", None)
    if alpha0 is None:
        alpha0 = 1.0 / K
    else:
        check_scalar(alpha0, "weight_concentration_prior", "real", min_val=0.0,
                     include_min=False)
    beta0 = getattr(est, "mean_precision_prior", None)
    if beta0 is None:
        beta0 = 1.0
    else:
        check_scalar(beta0, "mean_precision_prior", "real", min_val=0.0, include_min=False)
    nu0 = getattr(est, "degrees_of_freedom_prior", None)
    if nu0 is None:
        nu0 = float(D)
    else:
        check_scalar(nu0, "degrees_of_freedom_prior", "real")
        if not nu0 > D - 1.0:
            raise ValueError(f"degrees_of_freedom_prior must be greater than n_features - 1 "
                             f"= {D - 1}, got {nu0!r}")
    m0 = getattr(est, "mean_prior", None)
    if m0 is None:
        m0 = data.shift.copy()  # the (weighted) mean of X
    else:
        m0 = np.asarray(m0, dtype=np.float64)
        if m0.shape != (D,):
            raise ValueError(f"mean_prior must have shape ({D},), got {m0.shape}")
        if not np.isfinite(m0).all():
            raise ValueError("mean_prior contains NaN or infinity")

    psi0 = getattr(est, "covariance_prior", None)
    if psi0 is None:
        denom = data.weight_sum - 1.0
        if denom <= 0:
            raise ValueError("The default covariance_prior (the covariance of X) needs more "
                             "than one sample; give covariance_prior explicitly.")
        cov = data.gram() / denom if ctype in ("full", "tied") else None
        if cov is None:
            var = _weighted_variance(data) / denom
        psi0 = {"full": cov, "tied": cov, "diag": None, "spherical": None}[ctype]
        if ctype == "diag":
            psi0 = var
        elif ctype == "spherical":
            psi0 = float(var.mean())
        psi0 = _proper_default_covariance_prior(psi0, ctype, D, est.reg_covar)
    else:
        psi0 = check_covariance_prior(psi0, ctype, D)
    return {"type": ptype, "alpha0": float(alpha0), "beta0": float(beta0), "m0": m0,
            "nu0": float(nu0), "psi0": psi0,
            "log_det_psi0": _covariance_prior_matrix_logdet(psi0, ctype, D)}


def _weighted_variance(data):
    """sum_n w_n (x_n - shift)^2 per feature (the shift is the weighted mean), summed group by
    group (the same bits for X in memory, out of core or on Dask)."""
    return data.weighted_square_sums()


def check_covariance_prior(psi0, covariance_type, D):
    """covariance_prior: (D, D) symmetric positive-definite for 'full' / 'tied', (D,) positive
    for 'diag', a positive real for 'spherical'."""
    if covariance_type == "spherical":
        if isinstance(psi0, np.ndarray) and psi0.ndim == 0:
            psi0 = float(psi0)
        if not isinstance(psi0, numbers.Real) or isinstance(psi0, bool):
            raise ValueError("covariance_prior for covariance_type='spherical' must be a "
                             f"positive real number, got {psi0!r}")
        if not (np.isfinite(psi0) and psi0 > 0):
            raise ValueError("covariance_prior for covariance_type='spherical' must be "
                             f"positive, got {psi0!r}")
        return float(psi0)
    psi0 = np.asarray(psi0, dtype=np.float64)
    shape = (D,) if covariance_type == "diag" else (D, D)
    if psi0.shape != shape:
        raise ValueError(f"covariance_prior for covariance_type={covariance_type!r} must have "
                         f"shape {shape}, got {psi0.shape}")
    if not np.isfinite(psi0).all():
        raise ValueError("covariance_prior contains NaN or infinity")
    if covariance_type == "diag":
        if np.any(psi0 <= 0):
            raise ValueError("covariance_prior for covariance_type='diag' must be positive")
        return psi0
    if not np.allclose(psi0, psi0.T):
        raise ValueError("covariance_prior must be symmetric")
    if np.linalg.eigvalsh(psi0).min() <= 0:
        raise ValueError("covariance_prior must be positive-definite")
    return psi0


# ---------------------------------------------------------------------- the fit state
def _trace_prod(a, b, covariance_type, D):
    """tr(A B) per component for matrices in covariance_type layout (b may be shared)."""
    if covariance_type in ("full", "tied"):
        return np.einsum("...ij,...ij->...", a, b)
    if covariance_type == "diag":
        return (a * b).sum(axis=-1)
    return a * b * D  # spherical: scalars times the identity


def _quad(prec, diff, covariance_type):
    """diff_k^T P_k diff_k for each component."""
    if covariance_type == "full":
        return np.einsum("ki,kij,kj->k", diff, prec, diff)
    if covariance_type == "tied":
        return np.einsum("ki,ij,kj->k", diff, prec, diff)
    if covariance_type == "diag":
        return (prec * diff ** 2).sum(axis=1)
    return prec * (diff ** 2).sum(axis=1)


# ---------------------------------------------------------------------- expectations under q
def expected_log_weights(weight_concentration, prior_type):
    """E[log pi_k], (K,): under q(pi) = Dir(alpha) (``weight_concentration`` alpha (K,)), or
    for 'dirichlet_process' under the sticks' q(v_k) = Beta(a_k, b_k) (a pair (a, b)),
    E[log pi_k] = E[log v_k] + sum_{j<k} E[log(1 - v_j)]."""
    wc = weight_concentration
    if prior_type == "dirichlet_process":
        a, b = wc
        d_sum = digamma(a + b)
        e_log_v = digamma(a) - d_sum
        e_log_1mv = digamma(b) - d_sum
        return e_log_v + np.hstack((0.0, np.cumsum(e_log_1mv)[:-1]))
    return digamma(wc) - digamma(wc.sum())


def log_det_W(prec_chol, degrees_of_freedom, covariance_type, D):
    """log |W_k| ((K,), or a scalar for 'tied') of q(Lambda_k) = Wishart(W_k, nu_k), from its
    factor U_k (U U^T = nu W): 2 log det U - D log nu."""
    return (2.0 * G.log_det_cholesky(prec_chol, covariance_type, D)
            - D * np.log(degrees_of_freedom))


def expected_log_det(prec_chol, degrees_of_freedom, covariance_type, D):
    """E[log |Lambda_k|] = sum_{i<D} psi((nu_k - i)/2) + D log 2 + log |W_k|."""
    return (multi_digamma(0.5 * degrees_of_freedom, D) + D * LOG_2
            + log_det_W(prec_chol, degrees_of_freedom, covariance_type, D))


def kernel_inputs(weight_concentration, prior_type, mean_precision, means, degrees_of_freedom,
                  prec_chol, covariance_type, shift):
    """(shifted means, factor array, aux, c_k) for a pass at q(theta), with
    c_k = E[log pi_k] + 1/2 E[log |Lambda_k|] - D / (2 beta_k) - D/2 log(2 pi) and the
    factors U_k of nu_k W_k (``means`` (K, D) in original coordinates)."""
    log_const = expected_log_const(weight_concentration, prior_type, mean_precision,
                                   degrees_of_freedom, prec_chol, covariance_type,
                                   means.shape[1])
    return G.pass_inputs(means, prec_chol, covariance_type, shift, log_const)


def expected_log_const(weight_concentration, prior_type, mean_precision, degrees_of_freedom,
                       prec_chol, covariance_type, D):
    """c_k = E[log pi_k] + 1/2 E[log |Lambda_k|] - D / (2 beta_k) - D/2 log(2 pi), (K,)."""
    return (expected_log_weights(weight_concentration, prior_type)
            + 0.5 * expected_log_det(prec_chol, degrees_of_freedom, covariance_type, D)
            - 0.5 * D / mean_precision - 0.5 * D * G.LOG_2PI)


def prior_type_of(weight_concentration):
    """The weight prior of a fitted ``weight_concentration_``: the sticks' pair (a, b) for
    'dirichlet_process', alpha (K,) for 'dirichlet_distribution'."""
    return "dirichlet_process" if isinstance(weight_concentration, tuple) \
        else "dirichlet_distribution"


class MeanFieldFitState(Method):
    """q(theta) of the Bayesian Gaussian mixture, updated by coordinate ascent.

    The pass at the current q(theta) gives q(z) (the E-step) and its statistics; the
    update of q(theta) from them follows; the bound is the full ELBO at that
    (q(z), q(theta)) pair: q(theta) is the maximiser given q(z), and the next E-step maximises
    over q(z) given q(theta), so the trace never decreases (with ``reg_covar`` = 0 exactly; see
    ``BayesianGaussianMixture`` for ``reg_covar`` > 0).
    """

    bound_kind = "ELBO"

    @property
    def bound_rtol(self):
        """The bound-decrease guard's relative tolerance: that of the data's passes
        (``GaussianPass.bound_rtol``; looser when they run in float32)."""
        return self.data.bound_rtol

    def __init__(self, data, covariance_type, reg_covar, priors, weight_concentration,
                 mean_precision, means, degrees_of_freedom, prec_chol, covariances=None,
                 reseeds=None):
        self.data = data
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.priors = priors
        # degenerate components (``vbfast.emissions.degenerate``): only a q(Lambda_k) scale
        # that is not positive-definite is re-seeded; a component without data keeps q =
        # its prior (the Dirichlet(-process) prior switched it off: that is the answer)
        self.reseeds = reseeds
        self.n_reseeds = 0
        self.weight_concentration = weight_concentration
        self.mean_precision = np.asarray(mean_precision, dtype=np.float64)
        self.means = np.asarray(means, dtype=np.float64)
        self.degrees_of_freedom = np.asarray(degrees_of_freedom, dtype=np.float64)
        self.prec_chol = np.asarray(prec_chol, dtype=np.float64)
        self.covariances = covariances
        self._log_b0 = None
        # 'diag': the iteration's K x D work in C (``_gaussian_prior_kernel``), the same values
        # as the NumPy code (the ELBO up to its sums' rounding)
        self._diag = covariance_type == "diag"
        self._m0_shifted = None
        # log |W_k|, E[log |Lambda_k|], E[log pi_k] of the current q(theta): the pass's inputs
        # and the ELBO of one iteration share them; set wherever q(theta) is set
        self.log_det_w = self.e_log_det = self.e_log_pi = None
        if weight_concentration is not None:
            self._set_expectations()

    # ---- construction
    @classmethod
    def from_resp(cls, data, covariance_type, reg_covar, priors, resp, reseeds=None):
        """The q(theta) update from given responsibilities (scikit-learn's ``_initialize``)."""
        state = cls(data, covariance_type, reg_covar, priors, None, None, None, None, None,
                    reseeds=reseeds)
        stats, centers = data.centred_stats_from_resp(resp, reg_covar)
        state.update_q(stats, centers)
        return state

    # ---- expectations under q
    def _set_expectations(self):
        """log |W_k| ((K,), or a scalar for 'tied'; U U^T = nu W), E[log |Lambda_k|] =
        sum_i psi((nu - i)/2) + D log 2 + log |W_k| and E[log pi_k] (K,) of the current
        q(theta), as the module's ``log_det_W``, ``expected_log_det`` and
        ``expected_log_weights`` compute them."""
        D = self.means.shape[1]
        if self._diag:
            self._set_diag_log_dets()
            self.e_log_pi = expected_log_weights(self.weight_concentration,
                                                 self.priors["type"])
            return
        self.log_det_w = log_det_W(self.prec_chol, self.degrees_of_freedom,
                                   self.covariance_type, D)
        # expected_log_det's sum, in its order, on the log |W| just computed
        self.e_log_det = (multi_digamma(0.5 * self.degrees_of_freedom, D) + D * LOG_2
                          + self.log_det_w)
        self.e_log_pi = expected_log_weights(self.weight_concentration, self.priors["type"])

    def _set_diag_log_dets(self):
        """'diag': log |W_k| and E[log |Lambda_k|] in C from the two logs taken by NumPy
        (``_prior.diag_expectations``: ``log_det_W``'s and ``expected_log_det``'s values)."""
        K = self.prec_chol.shape[0]
        self.prec_chol = np.ascontiguousarray(self.prec_chol)
        self.degrees_of_freedom = np.ascontiguousarray(self.degrees_of_freedom)
        self.log_det_w, self.e_log_det = np.empty(K), np.empty(K)
        _prior.diag_expectations(np.log(self.prec_chol), np.log(self.degrees_of_freedom),
                                 self.degrees_of_freedom, self.log_det_w, self.e_log_det)

    def _shifted_prior_mean(self):
        """m0 - shift (D,), computed once for each shift array (once a fit)."""
        shift = self.data.shift
        if self._m0_shifted is None or self._m0_shifted[0] is not shift:
            self._m0_shifted = (shift, np.ascontiguousarray(self.priors["m0"] - shift,
                                                            dtype=np.float64))
        return self._m0_shifted[1]

    def expected_log_const(self):
        """c_k = E[log pi_k] + 1/2 E[log |Lambda_k|] - D / (2 beta_k) - D/2 log(2 pi), (K,),
        as the module's ``expected_log_const``."""
        D = self.means.shape[1]
        return (self.e_log_pi + 0.5 * self.e_log_det - 0.5 * D / self.mean_precision
                - 0.5 * D * G.LOG_2PI)

    def kernel_inputs(self, shift):
        """(shifted means, factor array, aux, c_k) for a pass at the current q(theta)."""
        if self._diag:
            K, D = self.means.shape
            centres, aux, log_const = np.empty((K, D)), np.empty((K, 2 * D)), np.empty(K)
            _prior.diag_pass_inputs(
                np.ascontiguousarray(self.means), self.prec_chol,
                np.ascontiguousarray(shift, dtype=np.float64), self.e_log_pi, self.e_log_det,
                np.ascontiguousarray(self.mean_precision), G.FAR_FROM_SHIFT, centres, aux,
                log_const)
            return centres, np.empty(0), aux, log_const
        return G.pass_inputs(self.means, self.prec_chol, self.covariance_type, shift,
                             self.expected_log_const())

    # ---- the iteration (the protocol of vbfast._core.protocol)
    def pass_inputs(self, shard):
        inputs = self.kernel_inputs(self.data.shift)
        self._centers = inputs[0]
        return inputs, {}

    def update(self, stats):
        # a re-seeded q(theta) still gives a valid ELBO with this q(z), but not one to compare
        # with the previous iteration's (nor to stop on)
        before = self.n_reseeds
        self.update_q(stats, self._centers)
        self.bound_reset = self.n_reseeds > before
        self._bound = self.elbo(stats, self._centers)

    def bound(self):
        return self._bound

    def update_q(self, stats, centers_shifted):
        """q(theta) given q(z)'s statistics: scikit-learn's closed-form updates. Returns the
        number of components re-seeded (their moments split from another's, see
        ``vbfast.emissions.degenerate``) because their q(Lambda) scale was not
        positive-definite."""
        data, ctype = self.data, self.covariance_type
        moments = self._diag_moments(stats, centers_shifted) if self._diag else None
        if moments is None:
            gram = data.gram() if data.covariance.uses_gram else None
            moments = G.estimate_parameters(stats, ctype, self.reg_covar, centers_shifted,
                                            gram)
        nk, xk, sk = moments
        _, n = DG.settle(self.reseeds, nk, xk, sk, ctype, self.reg_covar,
                         lambda: self._q_from_moments(nk, xk, sk), lambda: self.covariances)
        self.n_reseeds += n
        return n

    def _q_from_moments(self, nk, xk, sk):
        """Set q(theta) from the weighted moments N_k, xbar_k (shifted), S_k (with
        ``reg_covar``); the factors last (ValueError if a scale is not positive-definite)."""
        if self._diag:
            return self._diag_q_from_moments(nk, xk, sk)
        data, ctype, pr = self.data, self.covariance_type, self.priors
        K = data.n_components
        # weights
        if pr["type"] == "dirichlet_process":
            self.weight_concentration = (
                1.0 + nk, pr["alpha0"] + np.hstack((np.cumsum(nk[::-1])[-2::-1], 0.0)))
        else:
            self.weight_concentration = pr["alpha0"] + nk
        # means (shifted coordinates: m0 - shift)
        beta0 = pr["beta0"]
        m0 = pr["m0"] - data.shift
        beta = beta0 + nk
        means = (beta0 * m0 + nk[:, None] * xk) / beta[:, None]
        diff = xk - m0
        psi0, nu0 = pr["psi0"], pr["nu0"]
        if ctype == "full":
            nu = nu0 + nk
            cov = (psi0 + nk[:, None, None] * sk
                   + (nk * beta0 / beta)[:, None, None] * diff[:, :, None] * diff[:, None, :])
            cov /= nu[:, None, None]
        elif ctype == "tied":
            nu = nu0 + nk.sum() / K
            cov = (psi0 + sk * nk.sum() / K
                   + beta0 / K * np.dot((nk / beta) * diff.T, diff))
            cov /= nu
        elif ctype == "diag":
            nu = nu0 + nk
            cov = psi0 + nk[:, None] * (sk + (beta0 / beta)[:, None] * diff ** 2)
            cov /= nu[:, None]
        else:
            nu = nu0 + nk
            cov = psi0 + nk * (sk + beta0 / beta * np.mean(diff ** 2, axis=1))
            cov /= nu
        self.mean_precision = beta
        self.means = means + data.shift
        self.degrees_of_freedom = np.asarray(nu, dtype=np.float64)
        self.covariances = cov
        self.prec_chol = G.precision_cholesky(cov, ctype)
        self._set_expectations()

    def _diag_moments(self, stats, centers_shifted):
        """``G.estimate_parameters`` for 'diag' in C (``_prior.diag_moments``, the same
        operations) when every centre is the shift; None otherwise (a component far from the
        shift, centred at its mean: the NumPy code)."""
        K, D = stats["s1"].shape
        nk, means, cov = np.empty(K), np.empty((K, D)), np.empty((K, D))
        if _prior.diag_moments(
                np.ascontiguousarray(stats["nk"], dtype=np.float64),
                np.ascontiguousarray(stats["s1"], dtype=np.float64),
                np.ascontiguousarray(stats["s2"], dtype=np.float64),
                np.ascontiguousarray(centers_shifted, dtype=np.float64), NK_EPS,
                self.reg_covar, nk, means, cov):
            return nk, means, cov
        return None

    def _diag_q_from_moments(self, nk, xk, sk):
        """``_q_from_moments`` for 'diag' in C (``_prior.diag_q_update``: the same operations
        in the same order), the two logs of the expectations by NumPy."""
        pr = self.priors
        K, D = xk.shape
        stick = pr["type"] == "dirichlet_process"
        wc_a, wc_b, e_log_pi = np.empty(K), np.empty(K) if stick else np.empty(0), np.empty(K)
        beta, nu, means = np.empty(K), np.empty(K), np.empty((K, D))
        cov, prec_chol = np.empty((K, D)), np.empty((K, D))
        ok = _prior.diag_q_update(
            np.ascontiguousarray(nk, dtype=np.float64), np.ascontiguousarray(xk),
            np.ascontiguousarray(sk), self._shifted_prior_mean(),
            np.ascontiguousarray(pr["psi0"], dtype=np.float64), self.data.shift,
            pr["beta0"], pr["nu0"], pr["alpha0"], stick, wc_a, wc_b, e_log_pi, beta, means,
            nu, cov, prec_chol)
        # set in the NumPy code's order: a re-seed (``DG.settle``) reads the failing scale
        # from ``covariances``
        self.weight_concentration = (wc_a, wc_b) if stick else wc_a
        self.mean_precision, self.means, self.degrees_of_freedom = beta, means, nu
        self.covariances = cov
        if not ok:  # a variance not positive and finite: the error precision_cholesky gives
            G.precision_cholesky(cov, "diag")
        self.prec_chol, self.e_log_pi = prec_chol, e_log_pi
        self._set_diag_log_dets()

    def _diag_elbo(self, stats, centers_shifted):
        """``elbo`` for 'diag' in C (``_prior.diag_elbo``)."""
        pr = self.priors
        if self._log_b0 is None:
            self._log_b0 = log_wishart_norm(-pr["log_det_psi0"], pr["nu0"],
                                            self.means.shape[1])
        stick = pr["type"] == "dirichlet_process"
        wc = self.weight_concentration
        wc_a, wc_b = (wc[0], wc[1]) if stick else (wc, np.empty(0))
        return float(_prior.diag_elbo(
            np.ascontiguousarray(stats["nk"], dtype=np.float64),
            np.ascontiguousarray(stats["s1"], dtype=np.float64),
            np.ascontiguousarray(stats["s2"], dtype=np.float64), float(stats["entropy_term"]),
            np.ascontiguousarray(centers_shifted, dtype=np.float64),
            np.ascontiguousarray(self.means), self.data.shift, self.prec_chol,
            np.ascontiguousarray(self.mean_precision), self.degrees_of_freedom,
            self.log_det_w, self.e_log_det, self.e_log_pi,
            np.ascontiguousarray(wc_a, dtype=np.float64),
            np.ascontiguousarray(wc_b, dtype=np.float64), stick, pr["alpha0"], pr["beta0"],
            pr["nu0"], self._shifted_prior_mean(),
            np.ascontiguousarray(pr["psi0"], dtype=np.float64), float(self._log_b0)))

    def elbo(self, stats, centers_shifted):
        """The full ELBO E_q log p(X, z, theta) - E_q log q(z, theta) at the current q(theta)
        and the q(z) whose statistics are ``stats`` (taken at ``centers_shifted``)."""
        if self._diag:
            return self._diag_elbo(stats, centers_shifted)
        data, ctype, pr = self.data, self.covariance_type, self.priors
        K, D = data.n_components, data.n_features
        nk = stats["nk"]
        s1 = stats["s1"]
        m = self.means - data.shift
        prec = G.precisions_from_cholesky(self.prec_chol, ctype)  # nu W = E[Lambda]
        beta, nu = self.mean_precision, self.degrees_of_freedom
        e_log_det, e_log_pi = self.e_log_det, self.e_log_pi

        # sum_n r_nk (x_n - m_k)^T P_k (x_n - m_k), from the statistics (S2 centred at the
        # pass's centres c: sum r (x - m)(x - m)^T = S2 + e a^T + a e^T + R e e^T, e = c - m)
        e = centers_shifted - m
        a = s1 - nk[:, None] * centers_shifted  # sum r (x - c)
        if ctype == "full":
            tr_pc = (np.einsum("kij,kij->k", prec, stats["s2"])
                     + 2.0 * np.einsum("ki,kij,kj->k", e, prec, a)
                     + nk * np.einsum("ki,kij,kj->k", e, prec, e))
        elif ctype == "tied":
            scatter = (data.gram() - s1.T @ m - m.T @ s1 + (nk[:, None] * m).T @ m)
            tr_pc = np.einsum("ij,ij->", prec, scatter)
        elif ctype == "diag":
            tr_pc = (prec * (stats["s2"] + 2.0 * e * a + nk[:, None] * e ** 2)).sum(axis=1)
        else:
            tr_pc = prec * (stats["s2"] + 2.0 * (e * a).sum(axis=1)
                            + nk * (e ** 2).sum(axis=1))
        log_lik = 0.5 * (np.sum(nk * (e_log_det - D / beta - D * G.LOG_2PI))
                         - np.sum(tr_pc))

        # z and the weights
        bound = log_lik + float(nk @ e_log_pi) - stats["entropy_term"]
        wc = self.weight_concentration
        if pr["type"] == "dirichlet_process":
            a, b = wc
            g0 = pr["alpha0"]
            d_sum = digamma(a + b)
            e_log_v, e_log_1mv = digamma(a) - d_sum, digamma(b) - d_sum
            bound += np.sum(np.log(g0) + (g0 - 1.0) * e_log_1mv)
            bound -= np.sum(-betaln(a, b) + (a - 1.0) * e_log_v + (b - 1.0) * e_log_1mv)
        else:
            a0 = pr["alpha0"]
            log_c0 = gammaln(K * a0) - K * gammaln(a0)
            log_c = gammaln(wc.sum()) - gammaln(wc).sum()
            bound += log_c0 - log_c + float(np.sum((a0 - wc) * e_log_pi))

        # Gauss-Wishart prior minus q, per component (K copies of the shared q for 'tied')
        beta0, nu0 = pr["beta0"], pr["nu0"]
        # (K,) terms: the shared q's scalars ('tied') broadcast against beta's and quad_mean's
        if self._log_b0 is None:  # the prior's normaliser: once a fit
            self._log_b0 = log_wishart_norm(-pr["log_det_psi0"], nu0, D)
        log_b0 = self._log_b0
        log_b = log_wishart_norm(self.log_det_w, nu, D)
        quad_mean = _quad(prec, m - (pr["m0"] - data.shift), ctype)
        tr_psi_p = _trace_prod(prec, pr["psi0"], ctype, D)
        e_log_p = (0.5 * D * np.log(beta0 / (2 * np.pi)) + 0.5 * e_log_det
                   - 0.5 * beta0 * (D / beta + quad_mean)
                   + log_b0 + 0.5 * (nu0 - D - 1.0) * e_log_det - 0.5 * tr_psi_p)
        e_log_q = (0.5 * D * np.log(beta / (2 * np.pi)) + 0.5 * e_log_det - 0.5 * D
                   + log_b + 0.5 * (nu - D - 1.0) * e_log_det - 0.5 * nu * D)
        bound += float(np.sum(e_log_p - e_log_q))
        return float(bound)

    # ---- results
    def weights(self):
        """E-based weights as scikit-learn defines ``weights_``."""
        wc = self.weight_concentration
        if self.priors["type"] == "dirichlet_process":
            a, b = wc
            s = a + b
            w = a / s * np.hstack((1.0, np.cumprod(b / s)[:-1]))
            return w / w.sum()
        return wc / wc.sum()

    def attributes(self):
        cov = self.covariances
        if cov is None:
            cov = G.covariances_from_cholesky(self.prec_chol, self.covariance_type)
        wc = self.weight_concentration
        wc = (wc[0].copy(), wc[1].copy()) if isinstance(wc, tuple) else wc.copy()
        return {"weight_concentration_": wc, "mean_precision_": self.mean_precision.copy(),
                "means_": self.means.copy(), "degrees_of_freedom_":
                    self.degrees_of_freedom.copy(),
                "covariances_": np.array(cov, dtype=np.float64),
                "precisions_cholesky_": self.prec_chol.copy(), "weights_": self.weights(),
                "n_reseeds_": self.n_reseeds}


# ---------------------------------------------------------------------- constants
def sklearn_bound_offset(priors, covariance_type, n_components, n_features, weight_sum):
    """Our ELBO minus scikit-learn's ``_compute_lower_bound`` (at ``reg_covar=0``): the
    constant terms scikit-learn leaves out (see ``BayesianGaussianMixture``)."""
    K, D = n_components, n_features
    nu0 = priors["nu0"]
    log_b0 = log_wishart_norm(-priors["log_det_psi0"], nu0, D)
    out = (-0.5 * weight_sum * D * G.LOG_2PI + 0.5 * K * D * np.log(priors["beta0"])
           + K * (log_b0 + 0.25 * D * (D - 1) * LOG_PI))
    a0 = priors["alpha0"]
    if priors["type"] == "dirichlet_process":
        out += K * np.log(a0)
    else:
        out += gammaln(K * a0) - K * gammaln(a0)
    return float(out)


# ---------------------------------------------------------------------- predictive
def student_t_log_predictive(X, weights, means, mean_precision, degrees_of_freedom,
                             prec_chol, covariance_type, chunk=8192):
    """log p(x | X_train) under q: sum_k w_k St(x | m_k, nu_k + 1 - D, L_k) with the Student-t
    precision L_k = (nu_k + 1 - D) beta_k / (1 + beta_k) W_k, W_k = (U_k U_k^T) / nu_k."""
    X = np.asarray(X)
    n, D = X.shape
    K = means.shape[0]
    nu = np.broadcast_to(np.asarray(degrees_of_freedom, dtype=np.float64), (K,))
    dof = nu + 1.0 - D
    scale = dof * mean_precision / ((1.0 + mean_precision) * nu)  # L_k = scale_k * U U^T
    log_det_u = np.broadcast_to(G.log_det_cholesky(prec_chol, covariance_type, D), (K,))
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)
    const = (log_w + gammaln(0.5 * (dof + D)) - gammaln(0.5 * dof)
             - 0.5 * D * np.log(dof * np.pi) + log_det_u + 0.5 * D * np.log(scale))
    out = np.empty(n, dtype=np.float64)
    lp = np.empty((min(chunk, n), K))
    q_rows = np.empty(min(chunk, n))
    if covariance_type in ("full", "tied"):
        # (D, D) factors, each flagged upper triangular or not (row_quad_forms)
        factors = prec_chol if covariance_type == "full" else prec_chol[None]
        factors = np.ascontiguousarray(factors, dtype=np.float64)
        upper = [not np.tril(u, -1).any() for u in factors]
    with single_threaded_blas():  # (every kernel call runs under the BLAS limit)
        for start in range(0, n, chunk):
            xb = np.asarray(X[start:start + chunk], dtype=np.float64)
            b = xb.shape[0]
            for k in range(K):
                d = xb - means[k]
                # The quadratic form overflows for |x| >= ~1e154 although the density does not:
                # scale each row by its largest entry a, q = a^2 ||(d / a) U||^2, and keep log q.
                a = np.abs(d).max(axis=1)
                a = np.where(a > 0, a, 1.0)
                d /= a[:, None]
                if covariance_type in ("full", "tied"):
                    # row by row in C, not a BLAS product: a row's value must not depend on the
                    # block it is read in (out-of-core predictions equal the in-memory ones)
                    f = k if covariance_type == "full" else 0
                    q = q_rows[:b]
                    _prior.row_quad_forms(d, factors[f], upper[f], q)
                elif covariance_type == "diag":
                    q = ((d * prec_chol[k]) ** 2).sum(axis=1)
                else:
                    q = (d ** 2).sum(axis=1) * prec_chol[k] ** 2
                with np.errstate(divide="ignore"):
                    # log(scale q / dof) = log(scale / dof) + log q'  + 2 log a
                    log_t = np.log(scale[k] / dof[k]) + np.log(q) + 2.0 * np.log(a)
                # log(1 + t) = logaddexp(0, log t): exact at both ends (t tiny or overflowing)
                lp[:b, k] = const[k] - 0.5 * (dof[k] + D) * np.logaddexp(0.0, log_t)
            mx = lp[:b].max(axis=1)
            out[start:start + b] = mx + np.log(np.exp(lp[:b] - mx[:, None]).sum(axis=1))
    return out


def store_prior_attributes(est, priors, dtype):
    """The fitted prior attributes of a Bayesian mixture (scikit-learn's names), from the
    resolved priors (``resolve_priors``), arrays in the data's dtype."""
    est.weight_concentration_prior_ = priors["alpha0"]
    est.mean_precision_prior_ = priors["beta0"]
    est.mean_prior_ = np.asarray(priors["m0"], dtype=dtype)
    est.degrees_of_freedom_prior_ = priors["nu0"]
    psi0 = priors["psi0"]
    est.covariance_prior_ = psi0 if np.isscalar(psi0) else np.asarray(psi0, dtype=dtype)
