"""Gaussian mixtures, every fitting method of the family behind one estimator.

``GaussianMixture(method='em')`` fits theta = (weights, means, covariances) by maximum likelihood
with the exact posterior over assignments as q(T) (EM). Each iteration is one pass of the
Cython/OpenMP kernel in ``src_c/_gmm.pyx`` (responsibilities, log-likelihood and sufficient
statistics together) followed by a small M-step in NumPy on (K, D, D) statistics.
"""
import numpy as np

from . import _gaussian as G
from ._base import IterativeFitMixin
from ._threads import resolve_n_threads, single_threaded_blas
from ._validation import (check_array, check_is_fitted, check_option, check_random_state,
                          check_sample_weight, check_scalar)

_INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")
_METHODS = ("em",)


class _EMFitState:
    """EM for a Gaussian mixture: theta as point estimates, q(z) the exact posterior.

    step(): the pass at the current theta gives log p(X | theta) (the bound, which equals the
    log-likelihood because q is exact) and the statistics; the M-step then maximises
    E_q log p(X, z | theta) in closed form (plus ``reg_covar`` on the covariance diagonals).
    """

    monotone = True

    def __init__(self, data, covariance_type, reg_covar, weights, means, prec_chol,
                 covariances=None):
        self.data = data
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.weights = np.asarray(weights, dtype=np.float64)
        self.means = np.asarray(means, dtype=np.float64)
        self.prec_chol = np.asarray(prec_chol, dtype=np.float64)
        self.covariances = covariances

    def kernel_inputs(self, shift):
        """(shifted means, factor array, aux, c_k) for a pass at the current theta."""
        means_shifted = np.ascontiguousarray(self.means - shift)
        prec_flat, aux, quad = G.kernel_arrays(means_shifted, self.prec_chol,
                                               self.covariance_type)
        D = self.means.shape[1]
        with np.errstate(divide="ignore"):  # a zero weight gives log 0 = -inf, on purpose
            log_weights = np.log(self.weights)
        log_const = (log_weights + G.log_det_cholesky(self.prec_chol, self.covariance_type, D)
                     - 0.5 * D * G.LOG_2PI + quad)
        return means_shifted, prec_flat, aux, np.ascontiguousarray(log_const)

    def step(self):
        data = self.data
        means_shifted, prec_flat, aux, log_const = self.kernel_inputs(data.shift)
        stats = data.run(means_shifted, prec_flat, aux, log_const)
        bound = stats["log_likelihood"] / data.weight_sum
        self.m_step(stats, means_shifted)
        return bound

    def m_step(self, stats, centers_shifted):
        data = self.data
        gram = data.gram() if self.covariance_type == "tied" else None
        nk, means_shifted, cov = G.estimate_parameters(
            stats, self.covariance_type, self.reg_covar, centers_shifted, gram)
        self.weights = nk / nk.sum()
        self.means = means_shifted + data.shift
        self.covariances = cov
        self.prec_chol = G.precision_cholesky(cov, self.covariance_type)

    def parameters(self):
        cov = self.covariances
        if cov is None:
            cov = G.covariances_from_cholesky(self.prec_chol, self.covariance_type)
        return {"weights_": self.weights.copy(), "means_": self.means.copy(),
                "covariances_": np.array(cov, dtype=np.float64),
                "precisions_cholesky_": self.prec_chol.copy()}


class GaussianMixture(IterativeFitMixin):
    """Gaussian mixture model.

    p(x) = sum_k pi_k N(x | mu_k, Sigma_k), fitted by EM (``method='em'``): each iteration
    computes the responsibilities r_nk = p(z_n = k | x_n, theta) and the log-likelihood in one
    parallel pass over the data, then sets theta to the maximiser of E_q log p(X, z | theta).
    Parameters and attributes follow ``sklearn.mixture.GaussianMixture``; vbfast adds
    ``sample_weight`` (equivalent to repeating rows), ``n_threads``, ``method`` and the traces
    ``lower_bounds_`` and ``iteration_times_``.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components K.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        'full': each component its own (D, D) covariance; 'tied': one shared (D, D) covariance;
        'diag': each component a diagonal covariance; 'spherical': each component one variance.
    tol : float, default=1e-3
        Convergence threshold on the change of the lower bound (mean log-likelihood per sample)
        between iterations.
    reg_covar : float, default=1e-6
        Added to the diagonal of the covariances, keeping them positive-definite.
    max_iter : int, default=100
        Number of EM iterations per initialisation.
    n_init : int, default=1
        Number of initialisations; the fit with the highest lower bound is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        How the initial responsibilities are chosen: k-means labels, k-means++ seeds, uniform
        random responsibilities, or random data points as seeds.
    weights_init : array-like of shape (K,), default=None
    means_init : array-like of shape (K, D), default=None
    precisions_init : array-like, default=None
        Initial precisions (inverse covariances), shaped as ``covariances_``.
    random_state : int, RandomState instance or None, default=None
    warm_start : bool, default=False
        If True, ``fit`` starts from the previous solution (and ``n_init`` is ignored).
    verbose : int, default=0
    verbose_interval : int, default=10
    method : {'em'}, default='em'
        The inference method (see the library's methods spectrum).
    n_threads : int or None, default=None
        OpenMP threads for the passes over the data; None means every available core, negative
        values count back from it. Results do not depend on it.

    Attributes
    ----------
    weights_ : ndarray of shape (K,)
    means_ : ndarray of shape (K, D)
    covariances_ : ndarray, shape per covariance_type
    precisions_ : ndarray, shape per covariance_type
    precisions_cholesky_ : ndarray, shape per covariance_type
        Upper-triangular U with precision = U U^T ('full', 'tied'), or 1/sqrt(variance).
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood per sample (weighted by sample_weight) of the best fit, evaluated
        at the parameters before its last M-step (as scikit-learn does).
    lower_bounds_ : ndarray of shape (n_iter_,)
        The lower bound at every iteration of the best fit.
    iteration_times_ : ndarray of shape (n_iter_,)
        Wall time of every iteration of the best fit, in seconds.
    n_features_in_ : int
    """

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans", weights_init=None,
                 means_init=None, precisions_init=None, random_state=None, warm_start=False,
                 verbose=0, verbose_interval=10, method="em", n_threads=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.method = method
        self.n_threads = n_threads

    # scikit-learn's get_params / set_params, without depending on scikit-learn
    _param_names = ("n_components", "covariance_type", "tol", "reg_covar", "max_iter",
                    "n_init", "init_params", "weights_init", "means_init", "precisions_init",
                    "random_state", "warm_start", "verbose", "verbose_interval", "method",
                    "n_threads")

    def get_params(self, deep=True):
        """Parameters of this estimator, as a dict."""
        return {name: getattr(self, name) for name in self._param_names}

    def set_params(self, **params):
        """Set parameters; returns self."""
        for name, value in params.items():
            if name not in self._param_names:
                raise ValueError(f"Invalid parameter {name!r} for {type(self).__name__}; "
                                 f"valid parameters are {sorted(self._param_names)}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = type(self)().get_params()
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not (v is defaults[k] or (type(v) is type(defaults[k]) and
                                                not isinstance(v, np.ndarray) and
                                                v == defaults[k]))]
        return f"{type(self).__name__}({', '.join(changed)})"

    # ------------------------------------------------------------------ checks
    def _check_parameters(self, X):
        check_scalar(self.n_components, "n_components", "int", min_val=1)
        check_option(self.covariance_type, "covariance_type", G.COVARIANCE_TYPES)
        check_scalar(self.tol, "tol", "real", min_val=0.0)
        check_scalar(self.reg_covar, "reg_covar", "real", min_val=0.0)
        check_scalar(self.max_iter, "max_iter", "int", min_val=0)
        check_scalar(self.n_init, "n_init", "int", min_val=1)
        check_option(self.init_params, "init_params", _INIT_PARAMS)
        check_option(self.method, "method", _METHODS)
        check_scalar(self.verbose, "verbose", "int", min_val=0)
        check_scalar(self.verbose_interval, "verbose_interval", "int", min_val=1)
        n_samples, n_features = X.shape
        K = self.n_components
        if n_samples < K:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = {K}, "
                             f"n_samples = {n_samples}")
        if self.weights_init is not None:
            w = np.asarray(self.weights_init, dtype=np.float64)
            if w.shape != (K,):
                raise ValueError(f"weights_init must have shape ({K},), got {w.shape}")
            if not np.isfinite(w).all() or np.any(w < 0) or np.any(w > 1):
                raise ValueError("weights_init must be in the range [0, 1]")
            if not np.allclose(w.sum(), 1.0, rtol=0, atol=1e-6):
                raise ValueError(f"weights_init must sum to 1, but they sum to {w.sum():.6f}")
        if self.means_init is not None:
            m = np.asarray(self.means_init, dtype=np.float64)
            if m.shape != (K, n_features):
                raise ValueError(f"means_init must have shape ({K}, {n_features}), "
                                 f"got {m.shape}")
            if not np.isfinite(m).all():
                raise ValueError("means_init contains NaN or infinity")
        if self.precisions_init is not None:
            G.check_precisions(self.precisions_init, self.covariance_type, K, n_features)

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, sample_weight=None):
        """Fit the mixture to X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            float32 input is kept float32 (fitted parameters too); statistics are accumulated
            in float64.
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; an integer weight is equivalent to repeating the row.

        Returns
        -------
        self
        """
        self._fit(X, sample_weight)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most probable component of each row, shape (n_samples,)."""
        return self._fit(X, sample_weight).predict(X)

    def _fit(self, X, sample_weight):
        X = check_array(X, ensure_min_samples=1)
        self._check_parameters(X)
        w = check_sample_weight(sample_weight, X.shape[0])
        if self.warm_start and hasattr(self, "n_features_in_") and \
                X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but the warm-started model has "
                             f"{self.n_features_in_}")
        random_state = check_random_state(self.random_state)
        n_threads = resolve_n_threads(self.n_threads)
        data = G.GaussianPass(X, w, self.covariance_type, self.n_components, n_threads)
        self._fit_dtype = X.dtype
        with single_threaded_blas():
            self._run_fits(data, random_state)
        self.n_features_in_ = X.shape[1]
        return self

    def _new_fit_state(self, data, random_state, warm):
        if warm:
            return _EMFitState(data, self.covariance_type, self.reg_covar, self.weights_,
                               self.means_, self.precisions_cholesky_, self.covariances_)
        weights, means, prec_chol, cov = self._initial_parameters(data, random_state)
        return _EMFitState(data, self.covariance_type, self.reg_covar, weights, means,
                           prec_chol, cov)

    def _initial_resp(self, data, random_state):
        """Initial responsibilities (N, K) as ``init_params`` says (scikit-learn's choices)."""
        X, K = data.X, self.n_components
        n_samples = X.shape[0]
        if self.init_params == "kmeans":
            from ._clustering import kmeans

            _, labels, _, _ = kmeans(X, K, sample_weight=data.sample_weight,
                                     random_state=random_state, n_threads=data.n_threads)
            resp = np.zeros((n_samples, K))
            resp[np.arange(n_samples), labels] = 1.0
        elif self.init_params == "random":
            resp = random_state.uniform(size=(n_samples, K))
            resp /= resp.sum(axis=1)[:, None]
        else:
            if self.init_params == "k-means++":
                from ._clustering import kmeans_plusplus

                _, indices = kmeans_plusplus(X, K, sample_weight=data.sample_weight,
                                             random_state=random_state,
                                             n_threads=data.n_threads)
            else:
                indices = random_state.choice(n_samples, size=K, replace=False)
            resp = np.zeros((n_samples, K))
            resp[indices, np.arange(K)] = 1.0
        return resp

    def _initial_parameters(self, data, random_state):
        """(weights, means, precision factors, covariances or None) to start EM from."""
        ctype = self.covariance_type
        given = (self.weights_init is not None, self.means_init is not None,
                 self.precisions_init is not None)
        weights = means = cov = prec_chol = None
        if not all(given):
            resp = self._initial_resp(data, random_state)
            stats = data.stats_from_resp(resp)
            zeros = np.zeros((self.n_components, data.n_features))
            gram = data.gram() if ctype == "tied" else None
            nk, means_shifted, cov = G.estimate_parameters(stats, ctype, self.reg_covar,
                                                           zeros, gram)
            weights = nk / data.weight_sum
            means = means_shifted + data.shift
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=np.float64)
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=np.float64)
        if self.precisions_init is not None:
            prec_chol = G.precision_cholesky_from_precisions(
                np.asarray(self.precisions_init, dtype=np.float64), ctype)
            cov = None
        else:
            prec_chol = G.precision_cholesky(cov, ctype)
        return weights, means, prec_chol, cov

    def _store_fitted(self, params):
        dtype = self._fit_dtype
        for name, value in params.items():
            setattr(self, name, np.asarray(value, dtype=dtype))
        self.precisions_ = G.precisions_from_cholesky(
            np.asarray(params["precisions_cholesky_"]), self.covariance_type).astype(dtype)

    # ------------------------------------------------------------------ inference
    def _pass(self, X, want_resp=False, want_log_prob_norm=False):
        """A pass of the kernel at the fitted parameters, without statistics."""
        check_is_fitted(self, "precisions_cholesky_")
        X = check_array(X, n_features=self.n_features_in_)
        n_threads = resolve_n_threads(self.n_threads)
        weights = np.asarray(self.weights_, dtype=np.float64)
        means = np.asarray(self.means_, dtype=np.float64)
        state = _EMFitState(None, self.covariance_type, self.reg_covar, weights, means,
                            self.precisions_cholesky_)
        shift = weights @ means
        data = G.GaussianPass(X, None, self.covariance_type, self.n_components, n_threads,
                              shift=shift)
        resp = np.empty((X.shape[0], self.n_components), dtype=X.dtype) if want_resp else None
        lpn = np.empty(X.shape[0], dtype=X.dtype) if want_log_prob_norm else None
        with single_threaded_blas():
            data.run(*state.kernel_inputs(shift), resp_out=resp, log_prob_norm_out=lpn,
                     compute_stats=False)
        return resp, lpn

    def score_samples(self, X):
        """Log-likelihood log p(x_n) of each sample, shape (n_samples,)."""
        return self._pass(X, want_log_prob_norm=True)[1]

    def score(self, X, y=None):
        """Mean log-likelihood per sample of X under the model."""
        return float(np.mean(self.score_samples(X), dtype=np.float64))

    def predict_proba(self, X):
        """Posterior probabilities p(z_n = k | x_n), shape (n_samples, n_components)."""
        return self._pass(X, want_resp=True)[0]

    def predict(self, X):
        """Most probable component of each sample, shape (n_samples,)."""
        return self.predict_proba(X).argmax(axis=1)

    def sample(self, n_samples=1):
        """Draw samples from the fitted mixture.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,), the component of each sample
        """
        check_is_fitted(self, "precisions_cholesky_")
        check_scalar(n_samples, "n_samples", "int", min_val=1)
        rng = check_random_state(self.random_state)
        weights = np.asarray(self.weights_, dtype=np.float64)
        counts = rng.multinomial(n_samples, weights / weights.sum())
        means = np.asarray(self.means_, dtype=np.float64)
        cov = np.asarray(self.covariances_, dtype=np.float64)
        D = means.shape[1]
        parts = []
        for k, count in enumerate(counts):
            if self.covariance_type == "full":
                parts.append(rng.multivariate_normal(means[k], cov[k], count))
            elif self.covariance_type == "tied":
                parts.append(rng.multivariate_normal(means[k], cov, count))
            else:  # diag: (D,) variances; spherical: one variance
                parts.append(means[k] + rng.standard_normal((count, D)) * np.sqrt(cov[k]))
        X = np.vstack(parts).astype(np.asarray(self.means_).dtype, copy=False)
        y = np.repeat(np.arange(len(counts)), counts)
        return X, y

    def _n_parameters(self):
        K, D = np.asarray(self.means_).shape
        return int(G.n_covariance_parameters(self.covariance_type, K, D) + K * D + K - 1)

    def bic(self, X):
        """Bayesian information criterion on X (lower is better)."""
        X = check_array(X, n_features=getattr(self, "n_features_in_", None))
        return -2 * self.score(X) * X.shape[0] + self._n_parameters() * np.log(X.shape[0])

    def aic(self, X):
        """Akaike information criterion on X (lower is better)."""
        X = check_array(X, n_features=getattr(self, "n_features_in_", None))
        return -2 * self.score(X) * X.shape[0] + 2 * self._n_parameters()
