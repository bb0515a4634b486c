"""Poisson emissions: ``PoissonHMM`` (non-negative integer counts, X of shape
(n_samples, n_features), features independent given the state).

l_nk = sum_d (x_nd log lambda_kd - lambda_kd - log x_nd!), computed as one matrix product
X (log lambda)^T per call (0 log 0 = 0: a rate of zero allows only a count of zero). The
emission statistics are P_k = sum_n gamma_nk and O_kd = sum_n gamma_nk x_nd; the M-step is
hmmlearn's (a Gamma(alpha, beta) prior, ``lambdas_prior`` = alpha, ``lambdas_weight`` =
beta, with hmmlearn's n = sum_k P_k, the total occupancy, in place of P_k):

    lambda_kd = (alpha + n O_kd / P_k) / (beta + n)

which is the maximum-likelihood O_kd / P_k with the default alpha = beta = 0. A state with no
expected occupancy keeps its rates.

``method='mean_field'`` and ``'gibbs'`` put the same Gamma(alpha, rate beta) on every rate
(``_conjugate.PoissonConjugate``): q(lambda_kd) = Gamma(alpha + O_kd, beta + P_k), the exact
conjugate posterior (per state P_k, where hmmlearn's EM step has the total n); with the
defaults alpha = beta = 0 they use a weak prior at the data mean (beta = 1, alpha_d = the mean
count of feature d).
"""
import numpy as np
from scipy.special import gammaln

from .._core.validation import as_real_array, check_random_state
from ._conjugate import PoissonConjugate
from .base import _METHODS, EMPTY_STATE, BaseHMM, init_arguments


def _check_counts(X, n_features=None):
    """X as a C-contiguous float64 (n_samples, n_features) array of non-negative integer
    counts; TypeError for sparse input, ValueError naming anything else wrong."""
    if hasattr(X, "toarray") and hasattr(X, "nnz"):
        raise TypeError("X is a sparse matrix; PoissonHMM needs dense counts (use "
                        "X.toarray()).")
    arr = as_real_array(X, "X", "non-negative integer counts")
    if arr.ndim != 2:
        raise ValueError(f"X must be a 2-D array of counts of shape (n_samples, n_features), "
                         f"got shape {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError(f"X has 0 samples (shape={arr.shape}) while a minimum of 1 is "
                         "required.")
    if arr.shape[1] < 1:
        raise ValueError(f"X has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is "
                         "required.")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"X has {arr.shape[1]} features, but PoissonHMM is expecting "
                         f"{n_features} features as input.")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        bad = "NaN" if np.isnan(arr).any() else "infinity"
        raise ValueError(f"X contains {bad}; PoissonHMM needs non-negative integer counts")
    if np.any(arr < 0):
        raise ValueError("X has negative counts; PoissonHMM needs non-negative integer "
                         "counts")
    if np.any(arr != np.floor(arr)):
        raise ValueError("X has non-integer values; PoissonHMM needs non-negative integer "
                         "counts")
    return arr


class PoissonHMM(BaseHMM):
    """Hidden Markov model with Poisson emissions.

    x_td | z_t = k ~ Poisson(lambda_kd), independently over the features d. Parameters,
    attributes and methods as hmmlearn's ``PoissonHMM``, fitted by Baum-Welch EM through
    vbfast's loop and kernels.

    Parameters
    ----------
    n_components : int, default=1
    startprob_prior, transmat_prior : float, array or None, default=None
        As in ``GaussianHMM`` (None: 1.0 for 'em', 1 / n_components for the Bayesian methods).
    lambdas_prior, lambdas_weight : float or array, default=0.0
        Gamma prior of the rates (shape alpha and rate beta, hmmlearn's convention; see the
        module docstring for the update), broadcast to (n_components, n_features).
        'mean_field' / 'gibbs': Gamma(shape=lambdas_prior, rate=lambdas_weight) on every
        rate, both positive; both 0 (the default) means a weak prior at the data mean:
        rate 1 (one pseudo-observation) and shape the feature's mean count (at least 1e-3).
    algorithm, random_state, n_iter, tol, verbose, implementation, method, n_threads
        As in ``GaussianHMM``.
    params, init_params : str, default='stl'
        's' startprob, 't' transmat, 'l' lambdas.
    sticky, n_draws, burn_in, thin, n_chains
        As in ``GaussianHMM`` ('mean_field' and 'gibbs').

    Attributes
    ----------
    startprob_ : (K,), transmat_ : (K, K), lambdas_ : (K, n_features)
    n_features : int (from ``lambdas_``)
    monitor_, lower_bounds_, iteration_times_, lower_bound_, n_iter_, converged_,
    n_kept_states_ : as in ``GaussianHMM``
    startprob_posterior_, transmat_posterior_ : 'mean_field': the Dirichlet concentrations
        of q
    lambdas_shape_posterior_, lambdas_rate_posterior_ : (K, n_features), 'mean_field': the
        Gamma q of every rate (``lambdas_`` is their ratio, the posterior mean)
    n_merges_ : 'mean_field', as in ``GaussianHMM``
    posterior_samples_, sampler_diagnostics_, log_joint_trace_ : 'gibbs', as in
        ``GaussianHMM``
    """

    _methods = _METHODS

    _emission_letters = "l"
    _param_names = BaseHMM._base_param_names + (
        "lambdas_prior", "lambdas_weight") + BaseHMM._bayes_param_names

    def __init__(self, n_components=1, startprob_prior=None, transmat_prior=None,
                 lambdas_prior=0.0, lambdas_weight=0.0, algorithm="viterbi",
                 random_state=None, n_iter=10, tol=1e-2, verbose=False, params="stl",
                 init_params="stl", implementation="log", method="em", n_threads=None,
                 sticky=0.0, n_draws=200, burn_in=100, thin=1, n_chains=2):
        super().__init__(**init_arguments(locals()))

    @property
    def n_features(self):
        """Number of features (from ``lambdas_``)."""
        if "lambdas_" not in self.__dict__:
            raise AttributeError("n_features")
        return np.atleast_2d(self.lambdas_).shape[1]

    def _check_emission_parameters(self):
        for name in ("lambdas_prior", "lambdas_weight"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if not np.isfinite(value).all() or np.any(value < 0):
                raise ValueError(f"{name} must be non-negative and finite, got "
                                 f"{getattr(self, name)!r}")

    def _check_X(self, X, fitting):
        return _check_counts(X, None if fitting else self.n_features)

    def _flat_emission_priors(self):
        return bool(np.all(np.asarray(self.lambdas_prior) == 0)
                    and np.all(np.asarray(self.lambdas_weight) == 0))

    def _check_lambdas(self, lambdas, D):
        lambdas = np.array(np.atleast_2d(lambdas), dtype=np.float64)
        if lambdas.shape != (self.n_components, D):
            raise ValueError(f"lambdas_ must have shape (n_components, n_features) = "
                             f"({self.n_components}, {D}), got {lambdas.shape}")
        if not np.isfinite(lambdas).all() or np.any(lambdas < 0):
            raise ValueError("lambdas_ must be non-negative and finite")
        return lambdas

    def _initial_emission(self, X):
        K, D = self.n_components, X.shape[1]
        if self._needs_init("l", "lambdas_"):
            # hmmlearn's method of moments: Gamma(mean^2 / var, var / mean) draws; data with
            # no spread (or all zeros) start every rate at the mean (never NaN)
            mean, var = X.mean(), X.var()
            rs = check_random_state(self.random_state)
            if mean > 0 and var > 0:
                lambdas = rs.gamma(shape=mean ** 2 / var, scale=var / mean, size=(K, D))
            else:
                lambdas = np.full((K, D), max(mean, 1e-3))
        else:
            lambdas = self._check_lambdas(self.lambdas_, D)
        return {"lambdas": lambdas}

    def _conjugate(self, X, n_threads, cache, params):
        return PoissonConjugate(self, X, n_threads, cache)

    def _current_emission(self):
        return {"lambdas": self._check_lambdas(self.lambdas_, self.n_features)}

    def _log_density(self, X, params, n_threads):
        lam = params["lambdas"]
        zero = lam == 0
        with np.errstate(divide="ignore"):
            log_lam = np.where(zero, 0.0, np.log(np.where(zero, 1.0, lam)))
        out = X @ log_lam.T
        out -= lam.sum(axis=1)
        out -= gammaln(X + 1.0).sum(axis=1)[:, None]
        if zero.any():  # a count above zero where the rate is zero: impossible
            out[((X > 0).astype(np.float64) @ zero.T.astype(np.float64)) > 0] = -np.inf
        return out

    def _emission_stats(self, X, posteriors, params, n_threads, cache):
        return {"post": posteriors.sum(axis=0), "obs": posteriors.T @ X}

    def _emission_m_step(self, params, stats, priors):
        if "l" not in self.params:
            return {}, 0
        K, D = params["lambdas"].shape
        post, obs = stats["post"], stats["obs"]
        empty = post < EMPTY_STATE
        alpha = np.broadcast_to(np.asarray(self.lambdas_prior, dtype=np.float64), (K, D))
        beta = np.broadcast_to(np.asarray(self.lambdas_weight, dtype=np.float64), (K, D))
        n = post.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            y_bar = obs / post[:, None]
            new = (alpha + n * y_bar) / (beta + n)
        new = np.where(empty[:, None], params["lambdas"], new)
        return {"lambdas": new}, int(np.count_nonzero(empty))

    def _set_params(self, attributes, X):
        self.startprob_ = attributes["startprob"]
        self.transmat_ = attributes["transmat"]
        self.lambdas_ = attributes["lambdas"]
        self.n_features_in_ = X.shape[1]

    def _emission_n_parameters(self):
        return {"l": self.n_components * self.n_features}

    def _sample_state(self, params, state, rs):
        return rs.poisson(params["lambdas"][state])
