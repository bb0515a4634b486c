"""Gaussian mixtures, every fitting method of the family behind one estimator.

``GaussianMixture(method='em')`` fits theta = (weights, means, covariances) by maximum likelihood
with the exact posterior over assignments as q(T) (EM). Each iteration is one pass of the
Cython/OpenMP kernel in ``src_c/_gmm.pyx`` (responsibilities, log-likelihood and sufficient
statistics together) followed by a small M-step in NumPy on (K, D, D) statistics.
"""
import time
import warnings

import numpy as np

from ..emissions import degenerate as DG
from ..emissions import gaussian_prior as BG
from ..emissions import gaussian as G
from ..emissions import gaussian_missing as GM
from . import _gibbs as GS
from . import _missing as MI
from . import _stochastic as ST
from .._core.base import ParamsMixin, all_or_nothing, available_if
from .._core.blocks import (check_rows, evenly_spaced, is_block_source, is_dask_array,
                            rows_per_read)
from .._core.clustering import kmeans, kmeans_plusplus
from .._core.fitted import cast_fitted
from .._core.loop import iterate, run_fits, store_trace
from .._core.protocol import Method, Statistics
from .._core.sampling import check_sampler_parameters
from .._core.threads import resolve_n_threads, single_threaded_blas
from .._core.validation import (all_finite, check_array, check_is_fitted, check_option,
                                check_random_state, check_sample_weight, check_scalar)

_INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")
_METHODS = ("em", "mean_field", "gibbs")
_MISSING = ("error", "marginalize")


class EM(Method):
    """EM for a Gaussian mixture: theta as point estimates, q(z) the exact posterior.

    The pass at the current theta gives log p(X | theta) (the bound, which equals the
    log-likelihood because q is exact) and the statistics; the update (M-step) then maximises
    E_q log p(X, z | theta) in closed form (plus ``reg_covar`` on the covariance diagonals).
    """

    def __init__(self, data, covariance_type, reg_covar, weights, means, prec_chol,
                 covariances=None, reseeds=None, n_reseeds=0):
        self.data = data
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.weights = np.asarray(weights, dtype=np.float64)
        self.means = np.asarray(means, dtype=np.float64)
        self.prec_chol = np.asarray(prec_chol, dtype=np.float64)
        self.covariances = covariances
        # degenerate components (``vbfast.emissions.degenerate``): the run's re-seeding, and
        # whether the last M-step re-seeded (the next bound is of the re-seeded theta)
        self.reseeds = reseeds
        self.n_reseeds = n_reseeds  # (the initial estimate's re-seeds included)
        self._reseeded = n_reseeds > 0
        self._centers = None
        self._bound = None

    def start_iteration(self):
        # the log-likelihood of a theta re-seeded by the previous M-step is not compared with
        # the previous one
        self.bound_reset = self._reseeded
        self._reseeded = False

    def kernel_inputs(self, shift):
        """(shifted means, factor array, aux, c_k) for a pass at the current theta."""
        log_const = G.plugin_log_const(self.weights, self.prec_chol, self.covariance_type,
                                       self.means.shape[1])
        return G.pass_inputs(self.means, self.prec_chol, self.covariance_type, shift, log_const)

    def pass_inputs(self, shard):
        inputs = self.kernel_inputs(self.data.shift)
        self._centers = inputs[0]
        return inputs, {}

    def update(self, stats):
        self._bound = stats["log_likelihood"] / self.data.weight_sum
        self.m_step(stats, self._centers)

    def bound(self):
        return self._bound

    @property
    def bound_rtol(self):
        """The bound-decrease guard's relative tolerance: that of the data's passes
        (``GaussianPass.bound_rtol``; looser when they run in float32)."""
        return self.data.bound_rtol

    def m_step(self, stats, centers_shifted, overwrite_s2=True):
        """theta from the statistics; ``overwrite_s2``: 'full' covariances may take S2's
        memory (the loop's statistics are used once; partial_fit's running ones are not)."""
        data, ctype = self.data, self.covariance_type
        gram = data.gram() if data.covariance.uses_gram else None
        nk, means_shifted, cov = G.estimate_parameters(
            stats, ctype, self.reg_covar, centers_shifted, gram, overwrite_s2=overwrite_s2)
        # the old covariances go before the new factors are made (K D^2 less at the peak)
        self.covariances = cov
        # components below one point or with a covariance that is not positive-definite are
        # re-seeded (on_degenerate='reseed'), changing nk, means and cov in place
        self.prec_chol, n = DG.settle(
            self.reseeds, nk, means_shifted, cov, ctype, self.reg_covar,
            lambda: G.precision_cholesky(cov, ctype), lambda: cov, empty=True)
        if n:
            self.n_reseeds += n
            # the loop neither guards this bound nor stops on it: theta is not the update's
            self.bound_reset = self._reseeded = True
        self.weights = nk / nk.sum()
        self.means = means_shifted + data.shift

    def attributes(self):
        # the arrays themselves, not copies (K D^2 each for 'full'): the loop discards the
        # method once it has them, and no update writes into an array it holds
        cov = self.covariances
        if cov is None:
            cov = G.covariances_from_cholesky(self.prec_chol, self.covariance_type)
        return {"weights_": self.weights.copy(), "means_": self.means.copy(),
                "covariances_": np.asarray(cov, dtype=np.float64),
                "precisions_cholesky_": self.prec_chol, "n_reseeds_": self.n_reseeds}


def _partial_fit_available(est):
    """``partial_fit`` exists for the optimising methods (EM: stepwise EM; mean field:
    stochastic VI); a Gibbs sampler has no online step, so no ``partial_fit`` at all, and
    neither has a model that marginalises missing values (its stream is not built)."""
    return est.method != "gibbs" and getattr(est, "missing", "error") == "error"


class MissingEM(EM):
    """Exact EM with marginalised missing values (``missing='marginalize'``; see
    ``vbfast.mixture._missing``): the EM pass inputs plus the ``MissingInputs``."""

    def pass_inputs(self, shard):
        args, kwargs = super().pass_inputs(shard)
        return args, dict(kwargs, missing=MI.em_inputs(self))


class MissingMeanField(BG.MeanFieldFitState):
    """Mean field with marginalised missing values, q(z, X_m) q(theta) (see
    ``vbfast.mixture._missing``): the mean-field pass inputs plus the ``MissingInputs``."""

    def pass_inputs(self, shard):
        args, kwargs = super().pass_inputs(shard)
        return args, dict(kwargs, missing=MI.mean_field_inputs(self))


class GaussianMixture(ParamsMixin):
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
    on_degenerate : {'reseed', 'raise'}, default='reseed'
        What happens to a degenerate component: one below one point's weight (the mean
        sample weight; EM only: no data, or a spike on a single point whose covariance is
        ``reg_covar`` alone), or whose covariance is not positive-definite (every method).
        'reseed' replaces it by half of another component, split in two along its principal
        axis (the one with the largest excess contribution to the bound's loss; see
        ``vbfast.emissions.degenerate``), counts it in ``n_reseeds_`` and warns once per fit
        (``DegenerateComponentWarning``); where no component can be split (e.g. fewer
        distinct points than components) a component without data is kept and a covariance
        that is not positive-definite raises the ValueError of 'raise'. 'raise' is
        scikit-learn's behaviour: components without data are kept, a covariance that is not
        positive-definite raises ValueError ("ill-defined empirical covariance"). Mean field
        never re-seeds a component for having no data (the prior switched it off: that is
        the answer), Gibbs neither (its draw is from the prior).
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
    verbose : int or bool, default=0
        0 / False: silent; 1 / True: one line per initialisation; 2: also the bound every
        ``verbose_interval`` iterations.
    verbose_interval : int, default=10
    method : {'em', 'mean_field', 'gibbs'}, default='em'
        The inference method (see the library's methods spectrum). 'mean_field' is mean-field
        variational Bayes with scikit-learn's default priors, the same fit as
        ``BayesianGaussianMixture`` (which also exposes the priors; see it for the fitted
        attributes, which then follow its conventions). 'gibbs' samples p(z, theta | X) under
        the same priors by blocked Gibbs sampling (see "Gibbs sampling" below).
    n_threads : int or None, default=None
        OpenMP threads for the passes over the data; None means every available core, negative
        values count back from it. Results do not depend on it.
    n_draws : int, default=200
        ``method='gibbs'``: draws kept per chain.
    burn_in : int, default=100
        ``method='gibbs'``: sweeps discarded at the start of each chain.
    thin : int, default=1
        ``method='gibbs'``: keep every ``thin``-th sweep after the burn-in.
    n_chains : int, default=2
        ``method='gibbs'``: independent chains (run one after another, each from its own
        initialisation and seeds spawned from ``random_state``).
    store_samples : bool, default=True
        ``method='gibbs'``: keep every kept draw's precisions and their factors in
        ``posterior_samples_`` (K D^2 numbers each for 'full': 1.2 GB for K=20, D=100 and
        400 draws). False keeps only their running posterior mean, each draw relabelled as
        it is made (against the first kept draw rather than a reference refined over all
        draws); ``posterior_samples_`` then holds ``weights``, ``means`` and ``log_joint``,
        and ``score_samples`` is the plug-in density at the posterior means (as
        ``predict_proba``) instead of the average over the draws.
    learning_offset : float >= 1, default=10.0
        ``partial_fit``: tau_0 of the step weights rho_t = (tau_0 + t)^-kappa.
    learning_decay : float in [0, 1], default=0.7
        ``partial_fit``: kappa (in (0.5, 1] stepwise EM and stochastic VI converge).
    total_samples : float > 0, default=1e6
        ``partial_fit``: the number of rows each batch's statistics are scaled to (the size
        of the data the stream stands for; for EM only the arithmetic depends on it, for the
        Bayesian methods it weighs the data against the prior).
    missing : {'error', 'marginalize'}, default='error'
        'error': NaN in X is refused (ValueError), as scikit-learn does. 'marginalize': NaN is
        a missing value, integrated out exactly: EM is EM for the observed data (each row
        scored by the marginal of its observed coordinates; the M-step uses the conditional
        means and covariances of the missing ones), mean field optimises q(z, x_missing)
        exactly (``vbfast.mixture._missing``); both bounds never decrease. ``predict``,
        ``predict_proba``, ``score_samples`` and ``score`` then accept NaN rows. Infinity is
        never missing. A row without any observed value contributes nothing, gets the
        weights as responsibilities (and log density 0) and is counted in
        ``n_empty_rows_``. Not with ``method='gibbs'`` (ValueError).

    Gibbs sampling
    --------------
    Each sweep draws z_n ~ p(z_n | x_n, theta) for every row in the parallel kernel pass
    (counter-based random stream keyed by (seed, sweep, row): reproducible and identical for
    any ``n_threads``), then theta | z exactly: weights from a Dirichlet (or, for the default
    Dirichlet-process prior, truncated stick-breaking Betas with the last stick 1), and
    (mu_k, Lambda_k) from their Normal-Wishart ('full'; one shared Wishart for 'tied') or
    Normal-Gamma ('diag' per dimension, 'spherical') conditional; see
    ``vbfast.mixture._gibbs`` for the model. ``max_iter``, ``tol``, ``n_init`` and
    ``reg_covar`` are not used. ``sample_weight`` w_n raises row n's likelihood to the power
    w_n (the row counts w_n times in the statistics but keeps one z_n), which equals repeating
    the row only in the conditional of theta. Label switching is handled by relabelling every
    kept draw to a reference by Hungarian matching of the means; the fitted ``weights_``,
    ``means_`` and ``precisions_`` are then posterior means over the kept draws of all
    chains, ``covariances_`` the inverse of ``precisions_``. ``predict_proba`` / ``predict`` are
    plug-in at those means; ``score_samples`` / ``score`` average the predictive density over
    the kept draws (log-mean-exp). Sampler attributes:

    posterior_samples_ : dict
        Kept draws, each with leading axes (n_chains, n_draws): ``weights`` (K,),
        ``means`` (K, D), ``precisions`` and ``precisions_cholesky`` (the shapes of
        ``precisions_``), relabelled; and ``log_joint``, the trace at the kept sweeps.
    log_joint_trace_ : ndarray of shape (n_chains, n_iter_)
        log p(X, z, theta) after every sweep's z block: the state (z_t, theta_{t-1}). It is
        not a bound and not monotone (the bound-decrease guard does not apply to it).
        ``lower_bounds_`` holds chain 0's row (``lower_bound_`` its last value) and
        ``iteration_times_`` chain 0's sweep times.
    sampler_diagnostics_ : dict
        Split-R-hat and effective sample size across chains (``vbfast._core.mcmc``) of
        permutation-invariant summaries: the log joint and the weights sorted in decreasing
        order; ``converged_`` is True when every R-hat is below 1.05 (otherwise a
        ConvergenceWarning). ``n_iter_`` is the number of sweeps per chain.

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
        The lower bound at every iteration of the best fit. It may decrease at an iteration
        that follows a re-seed (the bound-decrease guard skips those).
    iteration_times_ : ndarray of shape (n_iter_,)
        Wall time of every iteration of the best fit, in seconds.
    n_reseeds_ : int
        Degenerate components re-seeded in the fit kept (the initialisation included; for
        ``method='gibbs'`` summed over the chains); 0 with ``on_degenerate='raise'``.
    n_features_in_ : int
    n_empty_rows_ : int
        With ``missing='marginalize'``: the rows of X without any observed value.
    """

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 on_degenerate="reseed", max_iter=100, n_init=1, init_params="kmeans",
                 weights_init=None, means_init=None, precisions_init=None, random_state=None,
                 warm_start=False, verbose=0, verbose_interval=10, method="em", n_threads=None,
                 n_draws=200, burn_in=100, thin=1, n_chains=2, store_samples=True,
                 learning_offset=10.0, learning_decay=0.7, total_samples=1e6,
                 missing="error"):
        self.learning_offset = learning_offset
        self.learning_decay = learning_decay
        self.total_samples = total_samples
        self.store_samples = store_samples
        self.n_draws = n_draws
        self.burn_in = burn_in
        self.thin = thin
        self.n_chains = n_chains
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.on_degenerate = on_degenerate
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
        self.missing = missing

    # constructor parameters, for get_params / set_params (ParamsMixin)
    _param_names = ("n_components", "covariance_type", "tol", "reg_covar", "on_degenerate",
                    "max_iter", "n_init", "init_params", "weights_init", "means_init",
                    "precisions_init", "random_state", "warm_start", "verbose",
                    "verbose_interval", "method", "n_threads", "n_draws", "burn_in", "thin",
                    "n_chains", "store_samples", "learning_offset", "learning_decay",
                    "total_samples", "missing")
    # set_params and the constructor name the new spelling of a renamed parameter
    _renamed_params = {"n_samples": "n_draws"}

    def _update_sklearn_tags(self, tags):
        tags.estimator_type = "density_estimator"
        tags.input_tags.allow_nan = getattr(self, "missing", "error") == "marginalize"

    # ------------------------------------------------------------------ checks
    def _check_parameters(self, X):
        check_scalar(self.n_components, "n_components", "int", min_val=1)
        check_option(self.covariance_type, "covariance_type", G.COVARIANCE_TYPES)
        check_scalar(self.tol, "tol", "real", min_val=0.0)
        check_scalar(self.reg_covar, "reg_covar", "real", min_val=0.0)
        check_option(self.on_degenerate, "on_degenerate", DG.ON_DEGENERATE)
        check_scalar(self.max_iter, "max_iter", "int", min_val=0)
        check_scalar(self.n_init, "n_init", "int", min_val=1)
        check_option(self.init_params, "init_params", _INIT_PARAMS)
        check_option(self.method, "method", _METHODS)
        check_option(self.missing, "missing", _MISSING)
        if self.method == "gibbs" and self.missing != "error":
            raise ValueError(f"missing={self.missing!r} is not supported with method='gibbs' "
                             "(the sampler does not impute missing values); use method='em' "
                             "or 'mean_field', or missing='error'")
        if self.method in ("mean_field", "gibbs"):
            for name in ("weights_init", "means_init", "precisions_init"):
                if getattr(self, name, None) is not None:
                    raise ValueError(f"{name} is not supported with method={self.method!r} "
                                     "(theta starts from init_params' responsibilities)")
        if self.method == "gibbs":
            check_sampler_parameters(self)
            if not isinstance(self.store_samples, (bool, np.bool_)):
                raise TypeError(f"store_samples must be a bool, got {self.store_samples!r}")
            if self.warm_start:
                raise ValueError("warm_start is not supported with method='gibbs' (each fit "
                                 "runs its chains from init_params)")
        if not isinstance(self.verbose, (bool, np.bool_)):  # scikit-learn accepts bools
            check_scalar(self.verbose, "verbose", "int", min_val=0)
        check_scalar(self.verbose_interval, "verbose_interval", "int", min_val=1)
        ST.check_stream_parameters(self)
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
            in float64 (except within a tile or chunk of rows of the float32 fused tiles,
            issue 17: see docs/architecture.md). An out-of-core array (``numpy.memmap``,
            zarr, h5py: anything with ``shape``, ``dtype``, ``ndim`` and row slicing) is
            read block by block in every iteration, a ``dask.array`` is passed over where
            its blocks live (whatever dask scheduler is active): the same fit as in memory
            (see the README, "Data bigger than memory, or many machines").
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; an integer weight is equivalent to repeating the row. EM
            does not depend on their scale (they are rescaled to mean 1 once); for the
            Bayesian methods the scale is the amount of data, weighed against the prior.

        Returns
        -------
        self
        """
        self._fit(X, sample_weight)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most probable component of each row, shape (n_samples,)."""
        return self._fit(X, sample_weight).predict(X)

    @all_or_nothing
    def _fit(self, X, sample_weight):
        n_threads = resolve_n_threads(self.n_threads)
        X = _check_X(X, allow_nan=getattr(self, "missing", "error") == "marginalize",
                     n_threads=n_threads)
        self._check_parameters(X)
        w = check_sample_weight(sample_weight, X.shape[0])
        if w is not None and self.method == "em":
            w = _unit_mean_weights(w)
        if self.warm_start and hasattr(self, "n_features_in_") and \
                X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but the warm-started model has "
                             f"{self.n_features_in_}")
        warm = self._warm_start_applies()
        random_state = check_random_state(self.random_state)
        data = _gaussian_data(X, w, self.covariance_type, self.n_components, n_threads,
                              self.missing)
        reseeding = DG.Reseeding(self.on_degenerate, data)
        with single_threaded_blas():
            if self.method == "gibbs":  # chains of a fixed number of sweeps, no n_init / tol
                self._fit_gibbs(data, random_state, X.dtype, reseeding)
            else:
                # the priors depend on the data only: resolved once for every initialisation
                priors = BG.resolve_priors(self, data) if self.method == "mean_field" else None
                result = run_fits(
                    lambda run: self._new_method(data, random_state, warm, priors, reseeding),
                    data, n_runs=1 if warm else self.n_init, max_iter=self.max_iter,
                    tol=self.tol, verbose=self.verbose, verbose_interval=self.verbose_interval,
                    # a warm fit continues the previous one's bound
                    start_bound=self.lower_bound_ if warm else -np.inf)
                attributes = dict(result.attributes)
                n_reseeds = attributes.pop("n_reseeds_")
                self._store_fitted(attributes, X.dtype)
                if priors is not None:
                    _mean_field_store_priors(self, priors, X.dtype)
                store_trace(self, result)
                self.n_reseeds_ = int(n_reseeds)
        reseeding.warn(self.n_reseeds_)
        self.n_features_in_ = X.shape[1]
        if self.missing == "marginalize":
            self.n_empty_rows_ = getattr(data, "n_empty_rows", 0)
        # what predictions read: the fitted state, not parameters set since (set_params)
        self._fitted_method = self.method
        self._fitted_covariance_type = self.covariance_type
        # a fit ends any partial_fit stream: a later partial_fit starts one from this fit
        self.__dict__.pop("_stream", None)
        self.__dict__.pop("n_batch_iter_", None)
        return self

    # ------------------------------------------------------------------ partial_fit
    @available_if(_partial_fit_available)
    @all_or_nothing
    def partial_fit(self, X, y=None, sample_weight=None):
        """One stochastic step on the batch X: stepwise EM (``method='em'``) or stochastic
        variational inference (``method='mean_field'``, ``BayesianGaussianMixture``).

        The batch's statistics at the current parameters, scaled to ``total_samples`` rows,
        are blended into running statistics with rho_t = (learning_offset +
        t)^-learning_decay (the first step of a stream takes rho = 1), and the parameters are
        computed from them as ``fit`` computes them from the whole data's (see
        ``vbfast.mixture._stochastic``). Only for the optimising methods: with
        ``method='gibbs'`` the estimator has no ``partial_fit`` attribute.

        The first call on an unfitted estimator initialises from its batch as ``fit`` does
        (``init_params`` on the batch, or ``weights_init`` / ``means_init`` /
        ``precisions_init``; the default priors of the Bayesian methods from the batch);
        it needs at least ``n_components`` rows and fixes ``n_features_in_``, which every
        later batch must have. A call after ``fit`` starts a stream from the fitted
        parameters. An empty batch is ignored (UserWarning). A failed or interrupted call
        leaves the estimator as it was. ``max_iter``, ``tol``, ``n_init`` and ``warm_start``
        are not used.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the batch's rows; the batch stands for ``total_samples`` rows
            whatever its weights sum to.

        Returns
        -------
        self

        Attributes set besides the parameters: ``n_batch_iter_`` (t of the next step),
        ``lower_bounds_`` / ``iteration_times_`` (one entry per step of the stream; EM: the
        batch's mean log-likelihood per sample before its step; mean field: the ELBO of the
        batch scaled to ``total_samples``, after it), ``lower_bound_`` (the last),
        ``n_iter_`` (steps so far) and ``converged_`` (False: a stream has no convergence
        test).
        """
        if len(np.shape(X)) == 2 and np.shape(X)[0] == 0:
            warnings.warn("partial_fit was given an empty batch (0 rows): nothing changed.",
                          UserWarning, stacklevel=3)
            return self
        self._partial_fit(X, sample_weight)
        return self

    def _partial_fit(self, X, sample_weight):
        first = not hasattr(self, "precisions_cholesky_")
        if not first:
            self._check_continuable()
        X = check_array(X, ensure_min_samples=1,
                        n_features=None if first else self.n_features_in_,
                        estimator_name=type(self).__name__,
                        n_threads=resolve_n_threads(self.n_threads))
        if first:
            self._check_parameters(X)  # (n_samples >= n_components, the *_init shapes)
        else:
            check_scalar(self.reg_covar, "reg_covar", "real", min_val=0.0)
            ST.check_stream_parameters(self)
        w = check_sample_weight(sample_weight, X.shape[0])
        if w is not None and self.method == "em":
            w = _unit_mean_weights(w)
        mean_field = self.method == "mean_field"
        K, ctype = self.n_components, self.covariance_type
        n_threads = resolve_n_threads(self.n_threads)
        stream = getattr(self, "_stream", None)
        # the stream's coordinates: shifted by its first batch's (weighted) mean
        data = G.GaussianPass(X, w, ctype, K, n_threads,
                              shift=None if stream is None else stream["shift"])
        frame = ST.StreamFrame(data.shift, K, ctype, self.total_samples)
        # a step's M-step re-seeds as fit's does, from the running statistics
        reseeding = DG.Reseeding(self.on_degenerate, data)
        with single_threaded_blas():
            if first:
                random_state = check_random_state(self.random_state)
                priors = BG.resolve_priors(self, data) if mean_field else None
                inner = self._new_method(data, random_state, False, priors, reseeding)
            else:
                priors = _fitted_priors(self) if mean_field else None
                inner = self._new_method(frame, None, True, priors, reseeding)
            inner.data = frame
            method = ST.Stochastic(
                inner, frame, None if stream is None else Statistics(**stream["stats"]),
                1 if stream is None else self.n_batch_iter_,
                learning_offset=self.learning_offset, learning_decay=self.learning_decay,
                mean_field=mean_field)
            t0 = time.perf_counter()  # the step's time (not the first call's initialisation)
            bound = iterate(method, ST.Batch(data))
            elapsed = time.perf_counter() - t0
        if not np.isfinite(bound):
            raise ValueError(f"The lower bound became {bound} in partial_fit: the data or the "
                             f"parameters overflow. {inner.overflow_advice}")
        attributes = dict(method.attributes())
        n_reseeds = int(attributes.pop("n_reseeds_"))
        self._store_fitted(attributes, X.dtype)
        if mean_field:
            _mean_field_store_priors(self, priors, X.dtype)
        # summed over the stream
        self.n_reseeds_ = n_reseeds + (self.n_reseeds_ if stream is not None else 0)
        reseeding.warn(self.n_reseeds_)
        ST.store_step(self, bound, elapsed, method.n_batch_iter, stream is not None)
        self._stream = {"shift": frame.shift, "stats": dict(method.running.items())}
        self.n_features_in_ = X.shape[1]
        self._fitted_method = self.method
        self._fitted_covariance_type = ctype

    def _check_continuable(self):
        """Raise a ValueError if ``partial_fit`` cannot continue the fitted model with the
        current parameters (set_params since), leaving it as it is."""
        method, ctype = self._fitted_state()
        advice = "Set it back, or call fit (or partial_fit on an unfitted copy) to start anew."
        if method == "gibbs":
            raise ValueError("partial_fit cannot continue this model: it was fitted with "
                             "method='gibbs' (a sampler has no online step). Call fit, or "
                             "partial_fit on an unfitted copy.")
        if method != self.method:
            raise ValueError(f"partial_fit cannot continue this model: it was fitted with "
                             f"method={method!r}, and method is now {self.method!r}. {advice}")
        if ctype != self.covariance_type:
            raise ValueError(f"partial_fit cannot continue this model: it was fitted with "
                             f"covariance_type={ctype!r}, and covariance_type is now "
                             f"{self.covariance_type!r}. {advice}")
        K = np.shape(self.means_)[0]
        if K != self.n_components:
            raise ValueError(f"partial_fit cannot continue this model: it has {K} components, "
                             f"and n_components is now {self.n_components}. {advice}")
        if method == "mean_field":
            fitted_prior = BG.prior_type_of(self.weight_concentration_)
            prior = getattr(self, "weight_concentration_prior_type", "dirichlet_process")
            if fitted_prior != prior:
                raise ValueError(f"partial_fit cannot continue this model: it was fitted with "
                                 f"weight_concentration_prior_type={fitted_prior!r}, now "
                                 f"{prior!r}. {advice}")

    def _fitted_state(self):
        """(method, covariance_type) of the fit the fitted attributes come from (the
        constructor's for a model pickled before they were recorded)."""
        return (getattr(self, "_fitted_method", self.method),
                getattr(self, "_fitted_covariance_type", self.covariance_type))

    def _warm_start_applies(self):
        """Whether ``fit`` continues from the fitted attributes (``warm_start``). A previous
        fit of another method, covariance type, number of components or weight prior cannot
        be continued: the fit then starts from ``init_params``, with a UserWarning."""
        if not self.warm_start or not hasattr(self, "converged_"):
            return False
        method, ctype = self._fitted_state()
        changed = []
        if method != self.method:
            changed.append(f"method {method!r} -> {self.method!r}")
        if ctype != self.covariance_type:
            changed.append(f"covariance_type {ctype!r} -> {self.covariance_type!r}")
        K = np.shape(self.means_)[0]
        if K != self.n_components:
            changed.append(f"n_components {K} -> {self.n_components}")
        if not changed and method == "mean_field":
            fitted_prior = BG.prior_type_of(self.weight_concentration_)
            prior = getattr(self, "weight_concentration_prior_type", "dirichlet_process")
            if fitted_prior != prior:
                changed.append(f"weight_concentration_prior_type {fitted_prior!r} -> "
                               f"{prior!r}")
        if changed:
            warnings.warn(f"warm_start cannot continue the previous fit ({', '.join(changed)}"
                          "); fitting from init_params instead.", UserWarning, stacklevel=4)
            return False
        return True

    def _fit_gibbs(self, data, random_state, dtype, reseeding=None):
        n_draws, burn_in, thin, n_chains = check_sampler_parameters(self)
        priors = BG.resolve_priors(self, data)
        store = bool(self.store_samples)
        results = GS.run_chains(data, priors, self._initial_resp, random_state,
                                n_draws=n_draws, burn_in=burn_in, thin=thin, n_chains=n_chains,
                                verbose=self.verbose, verbose_interval=self.verbose_interval,
                                store_samples=store, reseeding=reseeding)
        running = None
        if not store:
            results, running = results
        params, attributes = GS.posterior_fit(results, self.covariance_type, running)
        fitted = {name: cast_fitted(name, value, dtype) for name, value in params.items()}
        for name, value in {**fitted, **attributes}.items():  # once every cast succeeded
            setattr(self, name, value)
        if hasattr(self, "weight_concentration_prior_type"):  # BayesianGaussianMixture
            BG.store_prior_attributes(self, priors, dtype)
        self.converged_ = GS.check_convergence(self.sampler_diagnostics_)

    def _new_method(self, data, random_state, warm, priors, reseeding):
        reseeds = reseeding.run()
        if self.method == "mean_field":
            return _mean_field_state(self, data, random_state, warm, priors, reseeds)
        em = MissingEM if isinstance(data, GM.MissingGaussianPass) else EM
        if warm:
            return em(data, self.covariance_type, self.reg_covar, self.weights_,
                      self.means_, self.precisions_cholesky_, self.covariances_, reseeds)
        weights, means, prec_chol, cov, n = self._initial_parameters(data, random_state,
                                                                      reseeds)
        return em(data, self.covariance_type, self.reg_covar, weights, means, prec_chol, cov,
                  reseeds, n)

    def _initial_resp(self, data, random_state):
        """Initial responsibilities as ``init_params`` says (scikit-learn's choices): an (N, K)
        array, or for the hard assignments of 'kmeans', 'k-means++' and 'random_from_data' a
        ``G.HardAssignments`` / ``G.Seeds`` (the labels only: an N x K one-hot array would be
        the largest buffer of a fit). k-means and k-means++ run on all rows when X takes at
        most ``INIT_SAMPLE_BYTES``, else on evenly spaced rows of that size (``init_rows``;
        the rows are then labelled by their nearest k-means centre): the same rule for X in
        memory, out of core or on Dask, so that their fits are equal."""
        K = self.n_components
        n_samples = data.n_samples
        if self.init_params in ("kmeans", "k-means++"):
            rows = init_rows(data)
            X = data.X if rows is None and not data.rows.blocked else \
                data.rows.take(np.arange(n_samples) if rows is None else rows)
            w = data.sample_weight
            if rows is not None and w is not None:
                w = w[rows]
            if self.init_params == "kmeans":
                centres, labels, _, _ = kmeans(X, K, sample_weight=w,
                                               random_state=random_state,
                                               n_threads=data.n_threads)
                resp = (G.HardAssignments(labels, K) if rows is None
                        else G.NearestCentres(centres))
            else:
                _, indices = kmeans_plusplus(X, K, sample_weight=w, random_state=random_state,
                                             n_threads=data.n_threads)
                resp = G.Seeds(indices if rows is None else rows[indices], K, n_samples)
        elif self.init_params == "random":
            resp = G.random_resp(random_state, n_samples, K, data.n_threads)
        else:  # random_from_data
            indices = random_state.choice(n_samples, size=K, replace=False)
            resp = G.Seeds(indices, K, n_samples)
        return resp

    def _initial_parameters(self, data, random_state, reseeds=None):
        """(weights, means, precision factors, covariances or None, number of components
        re-seeded by ``reseeds``, a ``degenerate.RunReseeds``) to start EM from."""
        ctype = self.covariance_type
        given = (self.weights_init is not None, self.means_init is not None,
                 self.precisions_init is not None)
        weights = means = cov = prec_chol = None
        n_reseeds = 0
        if not all(given):
            resp = self._initial_resp(data, random_state)
            stats, centers = data.centred_stats_from_resp(resp, self.reg_covar)
            gram = data.gram() if data.covariance.uses_gram else None
            nk, means_shifted, cov = G.estimate_parameters(stats, ctype, self.reg_covar,
                                                           centers, gram)
            if self.precisions_init is None:
                # a covariance that is not positive-definite is re-seeded (not a component
                # below one point: 'random_from_data' and 'k-means++' start on single rows)
                prec_chol, n_reseeds = DG.settle(
                    reseeds, nk, means_shifted, cov, ctype, self.reg_covar,
                    lambda: G.precision_cholesky(cov, ctype), lambda: cov)
            weights = nk / (nk.sum() if n_reseeds else data.weight_sum)
            means = means_shifted + data.shift
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=np.float64)
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=np.float64)
        if self.precisions_init is not None:
            prec_chol = G.precision_cholesky_from_precisions(
                np.asarray(self.precisions_init, dtype=np.float64), ctype)
            cov = None
        elif prec_chol is None:
            prec_chol = G.precision_cholesky(cov, ctype)
        return weights, means, prec_chol, cov, n_reseeds

    def _store_fitted(self, params, dtype):
        if self.method == "mean_field":
            return _mean_field_store(self, params, dtype)
        fitted = {name: cast_fitted(name, value, dtype) for name, value in params.items()}
        fitted["precisions_"] = cast_fitted("precisions_", G.precisions_from_cholesky(
            np.asarray(params["precisions_cholesky_"]), self.covariance_type), dtype)
        for name, value in fitted.items():  # set only once every cast succeeded
            setattr(self, name, value)

    # ------------------------------------------------------------------ inference
    def _pass_arrays(self):
        """(inputs, covariance_type, K, shift) of a pass at the fitted parameters."""
        check_is_fitted(self, "precisions_cholesky_")
        method, ctype = self._fitted_state()
        weights = np.asarray(self.weights_, dtype=np.float64)
        means = np.asarray(self.means_, dtype=np.float64)
        prec_chol = np.asarray(self.precisions_cholesky_, dtype=np.float64)
        shift = weights @ means
        if method == "mean_field":
            inputs = _mean_field_kernel_inputs(self, means, prec_chol, ctype, shift)
        else:  # point estimates: EM's, or the Gibbs posterior means (plug-in)
            log_const = G.plugin_log_const(weights, prec_chol, ctype, means.shape[1])
            inputs = G.pass_inputs(means, prec_chol, ctype, shift, log_const)
        return inputs, ctype, means.shape[0], shift

    def _per_row(self, X, what):
        """``what`` ('proba' (n, K), 'log_prob_norm' (n,) or 'score' (n,)) of every row of X:
        an ndarray; an out-of-core array read block by block (an ndarray out; read whole with
        ``missing='marginalize'``, as in ``fit``); a dask array (a dask array out, block by
        block where the blocks live)."""
        check_is_fitted(self, "precisions_cholesky_")
        name = type(self).__name__
        K = np.shape(self.means_)[0]
        marginalize = getattr(self, "missing", "error") == "marginalize"
        if is_dask_array(X):
            rows = check_rows(X, n_features=self.n_features_in_, estimator_name=name)
            args = self._row_function_args(what)
            chunks = (rows.X.chunks[0],) + (((K,),) if what == "proba" else ())
            return rows.X.map_blocks(_rows_of_block, *args, dtype=rows.dtype, chunks=chunks,
                                     drop_axis=None if what == "proba" else 1)
        if is_block_source(X) and not marginalize:
            rows = check_rows(X, n_features=self.n_features_in_, estimator_name=name)
            out = np.empty((rows.shape[0], K) if what == "proba" else rows.shape[0],
                           dtype=rows.dtype)
            step = rows_per_read(rows.shape[1] * rows.dtype.itemsize + 8 * K)
            args = self._row_function_args(what)
            for start in range(0, rows.shape[0], step):
                out[start:start + step] = _rows_of_block(rows[start:start + step], *args)
            return out
        X = check_array(X, n_features=self.n_features_in_, estimator_name=name,
                        allow_nan=marginalize, n_threads=resolve_n_threads(self.n_threads))
        if marginalize and np.isnan(X).any():
            return self._per_row_missing(X, what)
        return _rows_of_array(X, *self._row_function_args(what))

    def _per_row_missing(self, X, what):
        """``_per_row`` of an ndarray with NaN under ``missing='marginalize'``: each row
        scored by the marginal of its observed coordinates."""
        method, ctype = self._fitted_state()
        if method == "gibbs":
            raise ValueError("X contains NaN: a model fitted with method='gibbs' does not "
                             "marginalise missing values")
        if what == "score" and method == "mean_field":
            return _mean_field_score_samples_missing(self, X)
        inputs, ctype, K, shift = self._pass_arrays()
        data = GM.MissingGaussianPass(X, None, ctype, K, resolve_n_threads(self.n_threads),
                                      shift=shift)
        resp = np.empty((X.shape[0], K), dtype=X.dtype) if what == "proba" else None
        lpn = None if what == "proba" else np.empty(X.shape[0], dtype=X.dtype)
        with single_threaded_blas():
            data.run(*inputs, resp_out=resp, log_prob_norm_out=lpn, compute_stats=False,
                     missing=MI.missing_inputs_at_fit(self, method, ctype))
        return resp if what == "proba" else lpn

    def _row_function_args(self, what):
        """The picklable arguments of ``_rows_of_block`` at the fitted parameters (no
        estimator: a Dask task gets these arrays)."""
        method, ctype = self._fitted_state()
        n_threads = resolve_n_threads(self.n_threads)
        f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
        if what == "score" and method == "mean_field":
            return ("student_t", (f64(self.weights_), f64(self.means_),
                                  f64(self.mean_precision_), f64(self.degrees_of_freedom_),
                                  f64(self.precisions_cholesky_), ctype), n_threads)
        if what == "score" and method == "gibbs" and \
                "precisions_cholesky" in self.posterior_samples_:
            return ("draws", (self.posterior_samples_, ctype), n_threads)
        inputs, ctype, K, shift = self._pass_arrays()
        return ("proba" if what == "proba" else "log_prob_norm",
                (inputs, ctype, K, shift), n_threads)

    def score_samples(self, X):
        """Log-likelihood log p(x_n) of each sample, shape (n_samples,).

        With ``method='mean_field'``: the log posterior predictive density (a mixture of
        Student-t densities), see ``BayesianGaussianMixture.score_samples``. With
        ``method='gibbs'``: log of the predictive density averaged over the kept draws
        (with ``store_samples=False``, the plug-in density at the posterior means). X may be
        out of core (read in blocks) or a dask array (a dask array is returned)."""
        return self._per_row(X, "score")

    def score(self, X, y=None):
        """Mean log-likelihood per sample of X under the model (averaged in float64, also
        for float32 X: scikit-learn's float32 mean can differ in the 7th digit); a number
        also for a dask array."""
        scores = self.score_samples(X)
        if is_dask_array(scores):
            return float(scores.astype(np.float64).mean().compute())
        return float(np.mean(scores, dtype=np.float64))

    def predict_proba(self, X):
        """Posterior probabilities p(z_n = k | x_n), shape (n_samples, n_components) (a dask
        array for a dask array)."""
        return self._per_row(X, "proba")

    def predict(self, X):
        """Most probable component of each sample, shape (n_samples,) (a dask array for a
        dask array)."""
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
        covariance = G.COVARIANCES[self._fitted_state()[1]]
        parts = [covariance.sample_rows(rng, means[k], cov, k, count)
                 for k, count in enumerate(counts)]
        X = np.vstack(parts).astype(np.asarray(self.means_).dtype, copy=False)
        y = np.repeat(np.arange(len(counts)), counts)
        return X, y

    def _n_parameters(self):
        K, D = np.asarray(self.means_).shape
        ctype = self._fitted_state()[1]
        return int(G.n_covariance_parameters(ctype, K, D) + K * D + K - 1)

    def bic(self, X):
        """Bayesian information criterion on X (lower is better)."""
        X = check_array(X, n_features=getattr(self, "n_features_in_", None),
                        estimator_name=type(self).__name__,
                        allow_nan=getattr(self, "missing", "error") == "marginalize")
        return -2 * self.score(X) * X.shape[0] + self._n_parameters() * np.log(X.shape[0])

    def aic(self, X):
        """Akaike information criterion on X (lower is better)."""
        X = check_array(X, n_features=getattr(self, "n_features_in_", None),
                        estimator_name=type(self).__name__,
                        allow_nan=getattr(self, "missing", "error") == "marginalize")
        return -2 * self.score(X) * X.shape[0] + 2 * self._n_parameters()


# k-means / k-means++ initialisation reads at most this many bytes of X (float64): all rows
# below it, evenly spaced rows above (``init_rows``).
INIT_SAMPLE_BYTES = 64 << 20


def init_rows(data):
    """None (k-means on every row), or the sorted evenly spaced rows it runs on when X is
    larger than ``INIT_SAMPLE_BYTES``: a rule of the data's shape only (no random stream),
    the same for X in memory, out of core and on Dask."""
    m = max(data.n_components, INIT_SAMPLE_BYTES // (8 * data.n_features))
    return None if data.n_samples <= m else evenly_spaced(data.n_samples, m)


def _check_X(X, allow_nan=False, n_threads=1):
    """The fit's X: an ndarray (``check_array``; NaN passes with ``allow_nan``, i.e.
    ``missing='marginalize'``), or ``Rows`` (out of core, or dask) checked block by block.
    Missing values are marginalised in memory only: with ``allow_nan`` an out-of-core X is
    read whole, and a dask array refuses NaN as any non-finite value."""
    if is_dask_array(X) or (is_block_source(X) and not allow_nan):
        return check_rows(X, ensure_min_samples=1)
    return check_array(X, ensure_min_samples=1, allow_nan=allow_nan, n_threads=n_threads)


def _plugin_pass(X, inputs, ctype, K, shift, n_threads, want_resp, want_log_prob_norm):
    """The kernel pass on rows X (an ndarray) at given inputs: (resp or None, log p(x) or
    None)."""
    data = G.GaussianPass(X, None, ctype, K, n_threads, shift=shift)
    resp = np.empty((X.shape[0], K), dtype=X.dtype) if want_resp else None
    lpn = np.empty(X.shape[0], dtype=X.dtype) if want_log_prob_norm else None
    with single_threaded_blas():
        data.run(*inputs, resp_out=resp, log_prob_norm_out=lpn, compute_stats=False)
    return resp, lpn


def _rows_of_block(X, kind, args, n_threads, block_info=None):
    """Per-row outputs of one block of rows (a module-level function of arrays: a Dask task
    runs it where the block lives): 'proba' (n, K), 'log_prob_norm' / 'student_t' /
    'draws' (n,) log densities; a block with NaN or infinity is refused."""
    X = np.asarray(X)
    X = np.ascontiguousarray(X, dtype=X.dtype if X.dtype in (np.float32, np.float64)
                             else np.float64)
    if not all_finite(X, n_threads):
        where = ""
        if block_info is not None and 0 in block_info:
            where = f" in block {block_info[0]['chunk-location'][0]}"
        bad = "NaN" if np.isnan(X).any() else "infinity"
        raise ValueError(f"X contains {bad}{where}; every value must be finite.")
    return _rows_of_array(X, kind, args, n_threads)


def _rows_of_array(X, kind, args, n_threads):
    """``_rows_of_block`` of a C-contiguous float32 / float64 X already checked finite."""
    if kind == "student_t":
        out = BG.student_t_log_predictive(X, *args)
        return out.astype(X.dtype, copy=False)
    if kind == "draws":
        return GS.predictive_log_density(args[0], args[1], X, n_threads)
    resp, lpn = _plugin_pass(X, *args, n_threads, kind == "proba", kind != "proba")
    return resp if kind == "proba" else lpn


def _gaussian_data(X, sample_weight, covariance_type, n_components, n_threads, missing):
    """The data object of a fit: ``GaussianPass``, or with ``missing='marginalize'`` and NaN
    in X the ``MissingGaussianPass`` (complete rows through the same pass; X without NaN
    therefore fits exactly as with ``missing='error'``)."""
    if missing == "marginalize" and np.isnan(X).any():
        return GM.MissingGaussianPass(X, sample_weight, covariance_type, n_components,
                                      n_threads)
    # float32 X: diag / spherical passes in float32 (statistics summed in float64)
    return G.GaussianPass(X, sample_weight, covariance_type, n_components, n_threads,
                          float32_work=X.dtype == np.float32)


def _unit_mean_weights(w):
    """EM's estimates do not depend on the scale of the weights, but its arithmetic does (the
    10 eps added to N_k, under- and overflow of the sums): weights scaled once to mean 1 (by
    the maximum first, so the sum cannot overflow). The Bayesian methods keep the weights as
    given: there the scale is the amount of data, against the prior."""
    w = w / w.max()
    return w / w.mean()


# ====================================================================== mean-field VB
# Shared by GaussianMixture(method='mean_field') and BayesianGaussianMixture; the algebra lives
# in ``vbfast.emissions.gaussian_prior``, the pass is the EM kernel.

def _mean_field_state(est, data, random_state, warm, priors, reseeds=None):
    state = (MissingMeanField if isinstance(data, GM.MissingGaussianPass)
             else BG.MeanFieldFitState)
    if warm and hasattr(est, "weight_concentration_"):  # (not after an EM fit)
        return state(
            data, est.covariance_type, est.reg_covar, priors,
            _float64_concentration(est.weight_concentration_), est.mean_precision_,
            est.means_, est.degrees_of_freedom_, est.precisions_cholesky_,
            np.asarray(est.covariances_, dtype=np.float64), reseeds=reseeds)
    resp = est._initial_resp(data, random_state)
    return state.from_resp(data, est.covariance_type, est.reg_covar, priors, resp,
                            reseeds=reseeds)


def _fitted_priors(est):
    """The resolved priors (as ``BG.resolve_priors`` gives them) of a fitted Bayesian model,
    from its ``*_prior_`` attributes: a partial_fit continues under the priors of its start."""
    D = est.n_features_in_
    ctype = est._fitted_state()[1]
    psi0 = est.covariance_prior_
    psi0 = float(psi0) if np.ndim(psi0) == 0 else np.asarray(psi0, dtype=np.float64)
    return {"type": BG.prior_type_of(est.weight_concentration_),
            "alpha0": float(est.weight_concentration_prior_),
            "beta0": float(est.mean_precision_prior_),
            "m0": np.asarray(est.mean_prior_, dtype=np.float64),
            "nu0": float(est.degrees_of_freedom_prior_), "psi0": psi0,
            "log_det_psi0": BG.covariance_prior_log_det(psi0, ctype, D)}


def _float64_concentration(wc):
    """``weight_concentration_`` (alpha (K,), or the sticks' pair (a, b)) in float64."""
    return (tuple(np.asarray(a, dtype=np.float64) for a in wc) if isinstance(wc, tuple)
            else np.asarray(wc, dtype=np.float64))


def _mean_field_store(est, params, dtype):
    fitted = {}
    for name, value in params.items():
        if isinstance(value, tuple):
            value = tuple(cast_fitted(name, v, dtype) for v in value)
        elif name == "degrees_of_freedom_" and est.covariance_type == "tied":
            value = float(value)
        else:
            value = cast_fitted(name, value, dtype)
        fitted[name] = value
    fitted["precisions_"] = cast_fitted("precisions_", G.precisions_from_cholesky(
        np.asarray(params["precisions_cholesky_"]), est.covariance_type), dtype)
    for name, value in fitted.items():  # set only once every cast succeeded
        setattr(est, name, value)


def _mean_field_store_priors(est, priors, dtype):
    BG.store_prior_attributes(est, priors, dtype)
    est.n_effective_components_ = int(np.sum(np.asarray(est.weights_) >
                                             BG.EFFECTIVE_WEIGHT_THRESHOLD))


def _mean_field_kernel_inputs(est, means, prec_chol, covariance_type, shift):
    """The pass inputs at the fitted q(theta), for new data."""
    wc = _float64_concentration(est.weight_concentration_)
    return BG.kernel_inputs(wc, BG.prior_type_of(wc),
                            np.asarray(est.mean_precision_, dtype=np.float64), means,
                            np.asarray(est.degrees_of_freedom_, dtype=np.float64), prec_chol,
                            covariance_type, shift)


def _mean_field_score_samples_missing(est, X):
    """Mean field's ``score_samples`` of a checked ndarray with NaN: each component's
    Student-t predictive marginalised to the row's observed coordinates."""
    f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
    args = (f64(est.weights_), f64(est.means_), f64(est.mean_precision_),
            f64(est.degrees_of_freedom_), f64(est.precisions_cholesky_),
            est._fitted_state()[1])
    with single_threaded_blas():  # (the per-pattern arrays come from a kernel)
        out = GM.student_t_log_predictive_missing(
            X, GM.Patterns(X), *args,
            complete_log_predictive=lambda rows: BG.student_t_log_predictive(rows, *args))
    return out.astype(X.dtype, copy=False)


class BayesianGaussianMixture(GaussianMixture):
    """Variational Bayesian estimation of a Gaussian mixture (mean field).

    The drop-in counterpart of ``sklearn.mixture.BayesianGaussianMixture``, with the same
    parameters, updates and fitted attributes, and the same thing as
    ``GaussianMixture(method='mean_field')`` with priors exposed. q(z) q(pi) prod_k q(mu_k,
    Lambda_k) approximates the posterior of the model written out in ``vbfast.emissions.gaussian_prior``
    (Dirichlet or truncated stick-breaking Dirichlet-process weights, Gauss-Wishart
    component parameters). Each iteration is one pass of the EM kernel at expected quantities
    (the E-step: q(z), its entropy and the sufficient statistics) and the closed-form update
    of q(theta).

    The bound
    ---------
    ``lower_bounds_`` is the full ELBO ``E_q log p(X, z, theta) - E_q log q(z, theta)`` (a
    total over samples, as scikit-learn's), with every normalising constant, at the pair
    (q(z) of the iteration's E-step, q(theta) updated from it), so it never decreases. It is
    computed from the pass's statistics, not by a second pass. scikit-learn's
    ``lower_bound_`` is the same quantity, simplified using the update's optimality, without
    the constant terms; with W = ``sample_weight.sum()`` (n_samples without weights),
    log B the Wishart log-normaliser, Psi0 the covariance prior as a D x D matrix::

        ELBO - sklearn = - W D/2 log(2 pi) + K D/2 log(beta0)
                         + K [nu0/2 log|Psi0| - nu0 D/2 log 2 - sum_{i<D} lgamma((nu0 - i)/2)]
                         + (K log(gamma0)                          dirichlet_process
                            lgamma(K alpha0) - K lgamma(alpha0))   dirichlet_distribution

    (the bracket is log B(Psi0^{-1}, nu0) plus the D(D-1)/4 log pi that scikit-learn's
    ``_log_wishart_norm`` also drops). This holds exactly at ``reg_covar=0``. With
    ``reg_covar > 0`` both libraries add ``reg_covar * N_k`` to the diagonal of the scale
    inverse W_k^{-1} of q(Lambda_k) (scikit-learn's update, kept for parity); scikit-learn's
    simplified bound then also drops the term this leaves over, and the exact difference is
    the expression above plus ``reg_covar / 2 * sum_k N_k tr(precisions_[k])`` (the shared
    precision for 'tied'). That update is then not the exact coordinate-ascent step for
    q(Lambda); the ELBO reported is still the exact one of the model at the current q, and in
    practice it still increases (the guard would say otherwise).

    Predictions
    -----------
    ``predict_proba`` / ``predict``: q(z_n) for a new point, exp(E_q log p(x, z = k | theta))
    normalised, as scikit-learn does. ``score_samples`` / ``score``: the log posterior
    predictive density log p(x | X) = log sum_k E[pi_k] St(x | m_k, nu_k + 1 - D,
    (nu_k + 1 - D) beta_k / (1 + beta_k) W_k) (Student-t; scikit-learn instead returns
    log-sum-exp of the expected log joint, a lower bound on it), with E[pi] taken as
    ``weights_``. ``sample`` draws from the plug-in mixture (``weights_``, ``means_``,
    ``covariances_``), as scikit-learn does.

    Parameters
    ----------
    n_components : int, default=1
        Upper bound K on the number of components.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        Restricts q(Lambda_k): full, one shared by all components, diagonal or isotropic scale.
    tol : float, default=1e-3
        Convergence threshold on the change of the (total) ELBO.
    reg_covar : float, default=1e-6
        Added to the diagonal of the per-component scatter in the q(Lambda) update.
    on_degenerate : {'reseed', 'raise'}, default='reseed'
        A component whose q(Lambda) scale is not positive-definite (possible with
        ``reg_covar=0`` and a nearly singular ``covariance_prior``) is re-seeded by a split
        of another ('reseed', counted in ``n_reseeds_``), or raises ValueError as
        scikit-learn does ('raise'). Components the weight prior switched off are not
        degenerate: they are kept as they are. See ``GaussianMixture``.
    max_iter : int, default=100
    n_init : int, default=1
        Initialisations; the one with the highest ELBO is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        Initial responsibilities, from which q(theta) is first computed.
    weight_concentration_prior_type : {'dirichlet_process', 'dirichlet_distribution'},
            default='dirichlet_process'
    weight_concentration_prior : float > 0 or None, default=None
        gamma0 (stick-breaking Beta(1, gamma0)) or alpha0 (symmetric Dirichlet); None: 1 / K.
    mean_precision_prior : float > 0 or None, default=None
        beta0; None: 1.
    mean_prior : array-like of shape (n_features,) or None, default=None
        m0; None: the (weighted) mean of X.
    degrees_of_freedom_prior : float > n_features - 1 or None, default=None
        nu0; None: n_features.
    covariance_prior : float or array-like, default=None
        Psi0 = W0^{-1}: (D, D) symmetric positive-definite ('full', 'tied'), (D,) positive
        ('diag'), positive float ('spherical'); None: the (weighted, ddof=1) covariance of X,
        its diagonal or its mean diagonal, plus ``reg_covar`` on the diagonal when that is
        singular (a constant column, or no more samples than features), which would make the
        prior improper.
    random_state, warm_start, verbose, verbose_interval : as in ``GaussianMixture``
    n_threads : int or None, default=None
        OpenMP threads for the passes; results do not depend on it.
    method : {'mean_field', 'gibbs'}, default='mean_field'
        'gibbs' samples the posterior of the same model with these priors by blocked Gibbs
        sampling instead of approximating it (see ``GaussianMixture``, "Gibbs sampling", for
        the sampler, its options and attributes). The fitted attributes are then those of
        ``GaussianMixture(method='gibbs')`` plus the ``*_prior_`` attributes;
        ``weight_concentration_``, ``mean_precision_``, ``degrees_of_freedom_`` are
        mean-field only.
    n_draws, burn_in, thin, n_chains : int
        Sampler options for ``method='gibbs'``, as in ``GaussianMixture``.
    store_samples : bool, default=True
        ``method='gibbs'``: keep every draw's precisions, as in ``GaussianMixture``.
    learning_offset, learning_decay, total_samples : float
        ``partial_fit``'s stochastic VI steps, as in ``GaussianMixture``.
    missing : {'error', 'marginalize'}, default='error'
        NaN refused, or marginalised as missing values (mean field only; see
        ``GaussianMixture``). The default ``mean_prior`` is then the observed columns' mean,
        the default ``covariance_prior`` the covariance of X with each NaN at that mean.

    Attributes
    ----------
    weight_concentration_ : ndarray (K,) or tuple of two ndarrays (K,)
        Dirichlet parameters alpha_k, or the Beta parameters (a_k, b_k) of the sticks.
    mean_precision_ : ndarray (K,)
        beta_k.
    means_ : ndarray (K, D)
        m_k, the means of q(mu_k).
    degrees_of_freedom_ : ndarray (K,) (float for 'tied')
        nu_k.
    covariances_, precisions_, precisions_cholesky_ :
        (nu_k W_k)^{-1}, nu_k W_k = E[Lambda_k] and its upper factor, in ``GaussianMixture``'s
        layouts.
    weights_ : ndarray (K,)
        E[pi_k] (for the Dirichlet process renormalised over the K components, as
        scikit-learn does).
    n_effective_components_ : int
        Number of components with ``weights_`` above 1e-2
        (``vbfast.emissions.gaussian_prior.EFFECTIVE_WEIGHT_THRESHOLD``).
    weight_concentration_prior_, mean_precision_prior_, mean_prior_,
    degrees_of_freedom_prior_, covariance_prior_ : the priors used (defaults filled in).
    converged_, n_iter_, lower_bound_, lower_bounds_, iteration_times_, n_reseeds_,
    n_features_in_, n_empty_rows_ :
        as in ``GaussianMixture``; the bounds are the ELBO described above.
    """

    weights_init = means_init = precisions_init = None

    def __init__(self, *, n_components=1, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 on_degenerate="reseed", max_iter=100, n_init=1, init_params="kmeans",
                 weight_concentration_prior_type="dirichlet_process",
                 weight_concentration_prior=None, mean_precision_prior=None, mean_prior=None,
                 degrees_of_freedom_prior=None, covariance_prior=None, random_state=None,
                 warm_start=False, verbose=0, verbose_interval=10, n_threads=None,
                 method="mean_field", n_draws=200, burn_in=100, thin=1, n_chains=2,
                 store_samples=True, learning_offset=10.0, learning_decay=0.7,
                 total_samples=1e6, missing="error"):
        self.learning_offset = learning_offset
        self.learning_decay = learning_decay
        self.total_samples = total_samples
        self.store_samples = store_samples
        self.method = method
        self.n_draws = n_draws
        self.burn_in = burn_in
        self.thin = thin
        self.n_chains = n_chains
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.on_degenerate = on_degenerate
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.n_threads = n_threads
        self.missing = missing

    _param_names = ("n_components", "covariance_type", "tol", "reg_covar", "on_degenerate",
                    "max_iter", "n_init", "init_params", "weight_concentration_prior_type",
                    "weight_concentration_prior", "mean_precision_prior", "mean_prior",
                    "degrees_of_freedom_prior", "covariance_prior", "random_state",
                    "warm_start", "verbose", "verbose_interval", "n_threads", "method",
                    "n_draws", "burn_in", "thin", "n_chains", "store_samples",
                    "learning_offset", "learning_decay", "total_samples", "missing")

    def _check_parameters(self, X):
        check_option(self.method, "method", ("mean_field", "gibbs"))
        super()._check_parameters(X)
        check_option(self.weight_concentration_prior_type, "weight_concentration_prior_type",
                     BG.PRIOR_TYPES)

    def _n_parameters(self):
        raise AttributeError("bic / aic are not defined for BayesianGaussianMixture")
