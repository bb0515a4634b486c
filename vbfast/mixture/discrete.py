"""Mixtures of discrete distributions: Bernoulli, categorical (latent class analysis) and
multinomial mixtures, by EM, mean field or Gibbs sampling, on the one discrete pass.

The model, with the emission units of ``vbfast.emissions.discrete``:

    z_n ~ Cat(pi),   x_nj | z_n = k ~ Cat(theta_{j,.,k})  independently over items j
    (Bernoulli: 2 levels; multinomial: one block of V words, x_n a count vector)
    pi ~ Dir(alpha, ..., alpha),   theta_{j,.,k} ~ Dir(beta, ..., beta)

- ``method='em'``: the MAP point of (pi, theta) (ML with the defaults alpha = beta = 1, as
  poLCA and StepMix), the exact posterior over z. The bound is the mean log-likelihood per
  (weighted) row, plus (alpha-1) sum log pi + (beta-1) sum log theta over W when alpha, beta != 1
  (the MAP objective, which EM never decreases).
- ``method='mean_field'``: q(z) q(pi) prod q(theta), the full ELBO (a total) after each update.
- ``method='gibbs'``: blocked Gibbs sampling, z | theta in the parallel pass (counter-based
  streams keyed by (seed, sweep, row)), then pi | z ~ Dir(alpha + N), theta | z ~ Dir(beta + S).
  Every chain starts from the same point, the best of max(n_init, n_chains) short EM runs
  (``_gibbs_start``); the chains' own streams make them differ from the first sweep.

Missing answers (NaN, -1 codes, pandas NA) are left out of their row's likelihood (full-information
ML under MAR) in fit, predict, predict_proba and score; a row with every item missing gets the
class shares as its posterior.
"""
import time
import warnings

import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln, logsumexp

from ..emissions import discrete as DE
from . import _gibbs as GS
from . import _stochastic as ST
from .._core.base import ParamsMixin, all_or_nothing, available_if
from .._core.loop import Sampling, iterate, run_fits, store_trace
from .._core.protocol import Method, Statistics
from .._core.sampling import check_sampler_parameters, matching, n_sweeps
from .._core.threads import resolve_n_threads, single_threaded_blas
from .._core.validation import (as_real_array, check_is_fitted, check_option,
                                check_random_state, check_sample_weight, check_scalar)

_METHODS = ("em", "mean_field", "gibbs")
# EM iterations of the Gibbs sampler's start (see _gibbs_start)
GIBBS_START_ITER = 50
_INIT_PARAMS = ("random_from_data", "random")


# ====================================================================== methods
class EM(Method):
    """EM: theta = (pi, item probabilities) as MAP points; q(z) exact.

    The pass at theta gives log p(X | theta) and the statistics; the update sets theta to
    argmax E_q log p(X, z | theta) + log p(theta) in closed form."""

    def __init__(self, data, blocks, alpha, beta, weights, theta):
        self.data, self.blocks, self.alpha, self.beta = data, blocks, alpha, beta
        self.weights = np.asarray(weights, dtype=np.float64)
        self.theta = np.asarray(theta, dtype=np.float64)
        self._bound = None
        self._logs = None

    def pass_inputs(self, shard):
        self._logs = (DE.safe_log(self.weights), DE.safe_log(self.theta))
        return {"log_const": self._logs[0], "table": self._logs[1]}

    def update(self, stats):
        prior = DE.log_prior_unnormalised(*self._logs, self.alpha, self.beta)
        self._bound = (stats["log_likelihood"] + prior) / self.data.weight_sum
        self.m_step(stats)

    def m_step(self, stats):
        self.weights = DE.map_weights(stats["nk"], self.alpha)
        self.theta = DE.map_probabilities(stats["s"], self.blocks, self.beta)

    def bound(self):
        return self._bound

    def attributes(self):
        return {"weights": self.weights.copy(), "theta": self.theta.copy()}


class MeanField(Method):
    """Mean-field VB: q(pi) = Dir(a), q(theta_{j,.,k}) = Dir(lambda_{j,.,k}).

    The pass at E log pi, E log theta gives q(z) (its entropy term and the statistics); the
    update sets a = alpha + N, lambda = beta + S, and the bound is the exact ELBO at (that q(z),
    the updated q(theta)):

        ELBO = sum_k N_k E log pi_k + sum_lk S_lk E log theta_lk + sum_n w_n c_n
               - sum_n w_n sum_k r_nk log r_nk - KL(q(pi) || p(pi)) - KL(q(theta) || p(theta))

    (c_n the multinomial coefficient, 0 for categorical data)."""

    bound_kind = "ELBO"
    overflow_advice = "Check the data and the priors."

    def __init__(self, data, blocks, alpha, beta, stats, prior_type="dirichlet_distribution"):
        self.data, self.blocks, self.alpha, self.beta = data, blocks, alpha, beta
        self.prior_type = prior_type
        self._bound = None
        self.set_q(stats)

    def set_q(self, stats):
        """q(theta) from statistics: a = alpha + N (or the sticks'), lambda = beta + S."""
        nk = np.asarray(stats["nk"], dtype=np.float64)
        if self.prior_type == "dirichlet_process":
            # truncated stick-breaking: q(v_k) = Beta(a_k, b_k), alpha is gamma0
            self.a = DE.stick_update(nk, self.alpha)
            self.elog_pi = DE.stick_expected_log(*self.a)
        else:
            self.a = self.alpha + nk
            self.elog_pi = DE.weights_expected_log(self.a)
        self.lam = DE.q_update(np.asarray(stats["s"], dtype=np.float64), self.beta)
        self.elog_theta = DE.expected_log(self.lam, self.blocks)

    def _weights_kl(self):
        if self.prior_type == "dirichlet_process":
            return DE.stick_kl(*self.a, self.alpha)
        return DE.weights_kl(self.a, self.alpha)

    def pass_inputs(self, shard):
        return {"log_const": self.elog_pi, "table": self.elog_theta}

    def update(self, stats):
        self.set_q(stats)
        self._bound = self.elbo(stats, self.data.row_const_sum)

    def elbo(self, stats, row_const_sum):
        """The ELBO at the current q(theta) and the q(z) whose statistics are ``stats``."""
        return (float(stats["nk"] @ self.elog_pi) + float(np.sum(stats["s"] * self.elog_theta))
                + row_const_sum - stats["entropy_term"] - self._weights_kl()
                - DE.kl_dirichlet(self.lam, self.beta, self.blocks, self.elog_theta))

    def bound(self):
        return self._bound

    def attributes(self):
        if self.prior_type == "dirichlet_process":
            weights, wc = DE.stick_mean_weights(*self.a), (self.a[0].copy(), self.a[1].copy())
        else:
            weights, wc = self.a / self.a.sum(), self.a.copy()
        return {"weights": weights, "theta": self.blocks.normalise(self.lam),
                "weight_concentration": wc, "concentration": self.lam.copy(),
                "elog_weights": self.elog_pi.copy()}


class Gibbs(Method):
    """One chain of the blocked Gibbs sampler. An iteration is a sweep: the pass at theta draws
    z (stream keyed by (chain seed, sweep, row)) and gives the hard counts with log p(X, z |
    theta); the update adds log p(theta) (the log joint at (z_t, theta_{t-1})) and draws theta
    from its conditional."""

    monotone = False
    bound_kind = "log joint"
    overflow_advice = "Check the data and the priors."

    def __init__(self, data, blocks, alpha, beta, rng, kernel_seed, stats):
        self.data, self.blocks, self.alpha, self.beta = data, blocks, alpha, beta
        self.rng = rng
        self.kernel_seed = int(kernel_seed)
        self.sweep = 0
        self._log_joint = None
        self._draw_theta(stats)

    def _draw_theta(self, stats):
        K = self.data.n_components
        self.log_w = GS.draw_log_weights(("dirichlet", self.alpha + np.asarray(stats["nk"])),
                                         self.rng)[0] if K > 1 else np.zeros(1)
        self.log_theta = DE.draw_log_probabilities(self.beta + np.asarray(stats["s"]),
                                                   self.blocks, self.rng)

    def pass_inputs(self, shard):
        return {"log_const": self.log_w, "table": self.log_theta, "sample_z": True,
                "seed": self.kernel_seed, "sweep": self.sweep}

    def update(self, stats):
        K = self.log_w.shape[0]
        one = DE.Blocks([K])
        self._log_joint = (stats["log_likelihood"]
                           + DE.dirichlet_log_pdf(self.log_w[:, None], self.alpha, one)
                           + DE.dirichlet_log_pdf(self.log_theta, self.beta, self.blocks))
        self._draw_theta(stats)
        self.sweep += 1

    def bound(self):
        return self._log_joint

    def draw(self):
        return {"weights": np.exp(self.log_w), "theta": np.exp(self.log_theta)}

    def attributes(self):
        return self.draw()


# ====================================================================== input encoding
def _isna(a):
    """Missing entries of an object array: None, NaN, pandas' NA/NaT."""
    try:
        import pandas as pd
        return np.asarray(pd.isna(a), dtype=bool)
    except ImportError:  # pandas is optional at run time
        return np.array([v is None or (isinstance(v, float) and v != v) for v in a.ravel()],
                        dtype=bool).reshape(a.shape)


def _is_dataframe(X):
    return hasattr(X, "columns") and hasattr(X, "dtypes") and hasattr(X, "iloc")


def _is_sparse(X):
    return hasattr(X, "toarray") and hasattr(X, "nnz")


def _check_2d(shape, name="X"):
    if len(shape) != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (n_samples, n_features), got "
                         f"{len(shape)}-D array of shape {shape}. Reshape your data: "
                         "x.reshape(-1, 1) for a single feature or x.reshape(1, -1) for a "
                         "single sample.")
    if shape[0] < 1:
        raise ValueError(f"{name} has 0 sample(s) (shape={shape}) while a minimum of 1 is "
                         "required.")
    if shape[1] < 1:
        raise ValueError(f"{name} has 0 feature(s) (shape={shape}) while a minimum of 1 is "
                         "required.")


def _csr_from_codes(codes, observed, offsets):
    """One-hot CSR (indptr, indices) of integer codes (N, D), ``observed`` (N, D) bool."""
    N, D = codes.shape
    if observed.all():  # every row answers every item, in order
        indices = (codes + offsets[:-1]).astype(np.int32).reshape(-1)
        return np.arange(N + 1, dtype=np.int64) * D, indices
    rows, cols = np.nonzero(observed)  # row-major: each row's items in order
    indices = (offsets[cols] + codes[rows, cols]).astype(np.int32)
    indptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=codes.shape[0]))))
    return indptr.astype(np.int64), indices


def _numeric_codes(col, j, name):
    """A numeric column: (float values, observed mask), NaN / -1 missing; refuses infinity,
    non-integers and other negatives, naming the column."""
    col = np.asarray(col, dtype=np.float64)
    if np.isinf(col).any():
        raise ValueError(f"{name} contains infinity (column {j}); codes must be finite "
                         "integers, NaN or -1 for missing.")
    observed = ~np.isnan(col) & (col != -1)
    v = col[observed]
    if np.any(v != np.round(v)):
        raise ValueError(f"{name} has non-integer codes in column {j} (e.g. "
                         f"{v[v != np.round(v)][0]!r}); codes must be integers (NaN or -1: "
                         "missing).")
    if np.any(v < 0):
        raise ValueError(f"{name} has negative codes in column {j} (e.g. {v[v < 0][0]!r}); "
                         "codes must be >= 0 (-1 or NaN: missing).")
    return col, observed


def _columns(X, name="X"):
    """X as a list of columns (each a 1-D array: numeric, or object labels) plus, per column,
    the categories of a pandas categorical dtype (or None), and the column names (or None)."""
    if _is_sparse(X):
        raise TypeError(f"{name} is a sparse matrix; this estimator needs dense data (codes; "
                        "use X.toarray()).")
    if _is_dataframe(X):
        _check_2d(X.shape, name)
        cols, dtype_cats = [], []
        for j in range(X.shape[1]):
            s = X.iloc[:, j]
            if str(s.dtype) == "category":
                dtype_cats.append(np.asarray(s.cat.categories, dtype=object))
                cols.append(np.asarray(s.astype(object), dtype=object))
                continue
            dtype_cats.append(None)
            kind = getattr(s.dtype, "kind", "O")
            if kind in "biuf":
                cols.append(np.asarray(s.to_numpy(dtype=np.float64, na_value=np.nan)))
            else:
                cols.append(np.asarray(s.astype(object), dtype=object))
        names = np.asarray([str(c) for c in X.columns], dtype=object)
        return cols, dtype_cats, names
    if isinstance(X, np.ndarray) and X.dtype.kind in "OUS":
        arr = X
    else:
        try:
            arr = np.asarray(X)
        except Exception as exc:
            raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype.kind in "US":
        arr = arr.astype(object)
    if arr.dtype.kind == "O":
        # numbers stored as objects stay labels only if some are not numbers
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            pass
    if arr.dtype.kind != "O":
        arr = as_real_array(arr, name, "integer codes")
    _check_2d(arr.shape, name)
    if arr.dtype.kind == "O":
        return [arr[:, j] for j in range(arr.shape[1])], [None] * arr.shape[1], None
    arr = np.asfortranarray(arr, dtype=np.float64)  # contiguous columns
    return [arr[:, j] for j in range(arr.shape[1])], [None] * arr.shape[1], None


def _labels_and_mask(col, j, name):
    """(labels, observed) of one column: numeric codes checked, object labels as they are."""
    if col.dtype.kind == "O":
        observed = ~_isna(col)
        return col, observed
    return _numeric_codes(col, j, name)


# codes below this are looked up in a table rather than by sorting (numeric levels)
_TABLE_LOOKUP_CODES = 1 << 16


def _small_codes(a):
    """Whether ``a`` (numeric) holds only integers in [0, _TABLE_LOOKUP_CODES)."""
    return a.dtype.kind in "biuf" and (a.size == 0 or (
        a.min() >= 0 and a.max() < _TABLE_LOOKUP_CODES and
        (a.dtype.kind != "f" or np.array_equal(a, np.floor(a)))))


def _sorted_levels(labels):
    if labels.dtype.kind in "biuf" and labels.size and _small_codes(labels):
        # checked integer codes: their distinct values by counting, not sorting
        seen = np.bincount(labels.astype(np.intp), minlength=1)
        return np.flatnonzero(seen).astype(labels.dtype)
    try:
        return np.asarray(sorted(set(labels.tolist())), dtype=labels.dtype)
    except TypeError:  # labels of mixed types: order by their text
        return np.asarray(sorted(set(labels.tolist()), key=lambda v: (type(v).__name__,
                                                                       str(v))), dtype=object)


def _lookup(levels, labels):
    """Positions of ``labels`` among ``levels`` and whether each was found."""
    if len(levels) == 0:
        return np.zeros(len(labels), dtype=np.intp), np.zeros(len(labels), dtype=bool)
    lv = np.asarray(levels)
    numeric_levels = lv.dtype.kind in "biuf"
    if numeric_levels and labels.dtype.kind in "biuf" and _small_codes(lv):
        # small integer levels: a table from code to position (-1: not a level)
        table = np.full(int(lv.max()) + 2, -1, dtype=np.intp)
        table[lv.astype(np.intp)[::-1]] = np.arange(len(lv))[::-1]  # first occurrence
        inside = (labels >= 0) & (labels <= lv.max()) & (labels == np.floor(labels))
        pos = table[np.where(inside, labels, lv.max() + 1).astype(np.intp)]
        return np.maximum(pos, 0), pos >= 0
    if labels.dtype.kind == "O" or not numeric_levels:
        index = {}
        for i, v in enumerate(lv.tolist()):
            index.setdefault(v, i)
        pos = np.array([index.get(v, -1) for v in labels.tolist()], dtype=np.intp)
        return np.maximum(pos, 0), pos >= 0
    order = np.argsort(lv, kind="stable")
    pos = np.searchsorted(lv, labels, sorter=order)
    pos = np.minimum(pos, len(lv) - 1)
    pos = order[pos]
    return pos, lv[pos] == labels


# ====================================================================== the estimators
def _partial_fit_available(est):
    """``partial_fit`` exists for EM (stepwise EM) and mean field (stochastic VI); a Gibbs
    sampler has no online step, so no ``partial_fit`` at all."""
    return est.method != "gibbs"


class _DiscreteMixture(ParamsMixin):
    """What the three discrete mixtures share; subclasses define the encoding of X and the
    public layout of the item probabilities."""

    def __init__(self, n_components=1, *, method="em", weight_prior=None, item_prior=None,
                 tol=1e-6, max_iter=1000, n_init=1, init_params="random_from_data",
                 weights_init=None, probabilities_init=None, random_state=None,
                 verbose=0, verbose_interval=10, n_threads=None, n_draws=200, burn_in=100,
                 thin=1, n_chains=2, weight_concentration_prior_type="dirichlet_distribution",
                 learning_offset=10.0, learning_decay=0.7, total_samples=1e6):
        self.learning_offset = learning_offset
        self.learning_decay = learning_decay
        self.total_samples = total_samples
        self.n_components = n_components
        self.method = method
        self.weight_prior = weight_prior
        self.item_prior = item_prior
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.probabilities_init = probabilities_init
        self.random_state = random_state
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.n_threads = n_threads
        self.n_draws = n_draws
        self.burn_in = burn_in
        self.thin = thin
        self.n_chains = n_chains
        self.weight_concentration_prior_type = weight_concentration_prior_type

    _param_names = ("n_components", "method", "weight_prior", "item_prior", "tol",
                    "max_iter", "n_init", "init_params", "weights_init", "probabilities_init",
                    "random_state", "verbose", "verbose_interval", "n_threads", "n_draws",
                    "burn_in", "thin", "n_chains", "weight_concentration_prior_type",
                    "learning_offset", "learning_decay", "total_samples")

    def _update_sklearn_tags(self, tags):
        tags.estimator_type = "density_estimator"
        tags.input_tags.allow_nan = True

    # ------------------------------------------------------------------ checks
    def _priors(self):
        if self.weight_prior is None:
            # the DP's concentration gamma0 defaults to 1/K, as scikit-learn's
            alpha = (1.0 / self.n_components if self.weight_concentration_prior_type ==
                     "dirichlet_process" else 1.0)
        else:
            alpha = float(self.weight_prior)
        beta = 1.0 if self.item_prior is None else float(self.item_prior)
        return alpha, beta

    def _check_n_features(self, n_features, fitting):
        """Predicting: X must have the fitted number of features (scikit-learn's message)."""
        if not fitting and n_features != self.n_features_in_:
            raise ValueError(f"X has {n_features} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input.")

    def _check_parameters(self):
        check_scalar(self.n_components, "n_components", "int", min_val=1)
        check_option(self.method, "method", _METHODS)
        check_option(self.init_params, "init_params", _INIT_PARAMS)
        check_scalar(self.tol, "tol", "real", min_val=0.0)
        check_scalar(self.max_iter, "max_iter", "int", min_val=0)
        check_scalar(self.n_init, "n_init", "int", min_val=1)
        check_scalar(self.verbose, "verbose", "int", min_val=0)
        check_scalar(self.verbose_interval, "verbose_interval", "int", min_val=1)
        check_option(self.weight_concentration_prior_type, "weight_concentration_prior_type",
                     ("dirichlet_distribution", "dirichlet_process"))
        if self.weight_concentration_prior_type == "dirichlet_process" and \
                self.method != "mean_field":
            raise ValueError("weight_concentration_prior_type='dirichlet_process' needs "
                             f"method='mean_field', got method={self.method!r}")
        # EM's MAP needs a mode (>= 1); the Bayesian methods any proper Dirichlet (> 0)
        em = self.method == "em"
        for name in ("weight_prior", "item_prior"):
            v = getattr(self, name)
            if v is not None:
                check_scalar(v, name, "real", min_val=1.0 if em else 0.0, include_min=em)
        if self.method != "em":
            for name in ("weights_init", "probabilities_init"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} is only supported with method='em'")
        if self.method == "gibbs":
            check_sampler_parameters(self)
        ST.check_stream_parameters(self)

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, sample_weight=None):
        """Fit the mixture to X.

        Parameters
        ----------
        X : see the class docstring for the input each mixture takes
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights; an integer weight is equivalent to repeating the row (in the
            likelihood; a Gibbs row keeps one z_n).

        Returns
        -------
        self
        """
        with single_threaded_blas():  # one limit for the whole fit (the passes nest in it)
            self._fit(X, sample_weight)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most probable class of each row, shape (n_samples,)."""
        return self._fit(X, sample_weight).predict(X)

    @all_or_nothing
    def _fit(self, X, sample_weight):
        self._check_parameters()
        enc = self._encode(X, fitting=True)
        w = check_sample_weight(sample_weight, enc["n_samples"])
        n_threads = resolve_n_threads(self.n_threads)
        blocks = enc["blocks"]
        K = self.n_components
        data = DE.DiscreteData(enc["indptr"], enc["indices"], enc["values"], blocks.n_columns,
                               K, w, n_threads, enc["row_const"], item_sizes=blocks.sizes)
        random_state = check_random_state(self.random_state)
        alpha, beta = self._priors()
        for name, value in enc["state"].items():
            setattr(self, name, value)
        self._blocks = blocks
        if self.method == "gibbs":
            self._fit_gibbs(data, blocks, alpha, beta, random_state)
        else:
            def new_method(run):
                if self.method == "em":
                    weights, theta = self._initial_theta(data, blocks, random_state, alpha,
                                                         beta)
                    return EM(data, blocks, alpha, beta, weights, theta)
                stats = self._initial_stats(data, blocks, random_state)
                return MeanField(data, blocks, alpha, beta, stats,
                                 self.weight_concentration_prior_type)

            result = run_fits(new_method, data, n_runs=self.n_init, max_iter=self.max_iter,
                              tol=self.tol, verbose=self.verbose,
                              verbose_interval=self.verbose_interval)
            self._store(result.attributes)
            store_trace(self, result)
        self.n_features_in_ = enc["n_features"]
        self._fit_n_samples = enc["n_samples"]
        if self.method == "em":
            self._loglik = self._fit_loglik(data)
        self._fitted_method = self.method
        # a fit ends any partial_fit stream: a later partial_fit starts one from this fit
        self.__dict__.pop("_stream", None)
        self.__dict__.pop("n_batch_iter_", None)
        return self

    # ------------------------------------------------------------------ partial_fit
    @available_if(_partial_fit_available)
    def partial_fit(self, X, y=None, sample_weight=None):
        """One stochastic step on the batch X: stepwise EM (``method='em'``) or stochastic
        variational inference (``method='mean_field'``), as
        ``vbfast.GaussianMixture.partial_fit``.

        The batch's statistics (N_k and the level counts), scaled to ``total_samples`` rows,
        are blended into running statistics with rho_t = (learning_offset +
        t)^-learning_decay (the first step of a stream takes rho = 1), then theta (MAP) or
        q(theta) is computed from them as ``fit`` does. With ``method='gibbs'`` the estimator
        has no ``partial_fit`` attribute.

        The first call on an unfitted estimator initialises from its batch as ``fit`` does and
        needs at least ``n_components`` rows; it fixes ``n_features_in_`` and the encoding of
        the items (``CategoricalMixture``: the levels seen in it, ``categories_``; a later
        unseen level follows ``handle_unknown``). A call after ``fit`` starts a stream from
        the fitted model. An empty batch is ignored (UserWarning); a failed or interrupted
        call leaves the estimator as it was. ``max_iter``, ``tol`` and ``n_init`` are not
        used. Sets ``n_batch_iter_``, ``lower_bounds_`` / ``iteration_times_`` (one entry per
        step: EM the batch's mean log-likelihood per row before its step, mean field the ELBO
        of the batch scaled to ``total_samples`` after it), ``lower_bound_``, ``n_iter_``
        (steps so far) and ``converged_`` (False). EM's bound is -inf for a batch with a row
        impossible under the current model (with the ML default ``item_prior=1``, a level or
        word no earlier batch had); the step counts the row with uniform responsibilities.

        Returns
        -------
        self
        """
        if len(np.shape(X)) == 2 and np.shape(X)[0] == 0:
            warnings.warn("partial_fit was given an empty batch (0 rows): nothing changed.",
                          UserWarning, stacklevel=2)
            return self
        with single_threaded_blas():
            self._partial_fit(X, sample_weight)
        return self

    @all_or_nothing
    def _partial_fit(self, X, sample_weight):
        first = not hasattr(self, "weights_")
        if not first:
            self._check_continuable()
        self._check_parameters()
        enc = self._encode(X, fitting=first)
        K = self.n_components
        if first and enc["n_samples"] < K:
            raise ValueError(f"Expected n_samples >= n_components in the first partial_fit "
                             f"batch but got n_components = {K}, n_samples = "
                             f"{enc['n_samples']}")
        w = check_sample_weight(sample_weight, enc["n_samples"])
        blocks = enc["blocks"] if first else self._blocks
        data = DE.DiscreteData(enc["indptr"], enc["indices"], enc["values"], blocks.n_columns,
                               K, w, resolve_n_threads(self.n_threads), enc["row_const"],
                               item_sizes=blocks.sizes)
        alpha, beta = self._priors()
        mean_field = self.method == "mean_field"
        prior_type = self.weight_concentration_prior_type
        stream = getattr(self, "_stream", None)
        running = None if stream is None else Statistics(**stream)
        if first:
            random_state = check_random_state(self.random_state)
            for name, value in enc["state"].items():
                setattr(self, name, value)
            self._blocks = blocks
            if mean_field:
                inner = MeanField(data, blocks, alpha, beta,
                                  self._initial_stats(data, blocks, random_state), prior_type)
            else:
                inner = EM(data, blocks, alpha, beta,
                           *self._initial_theta(data, blocks, random_state, alpha, beta))
        elif mean_field:
            inner = MeanField(data, blocks, alpha, beta,
                              running if running is not None else
                              self._implied_statistics(alpha, beta), prior_type)
        else:
            inner = EM(data, blocks, alpha, beta, self.weights_, self._theta)
        method = ST.StochasticDiscrete(
            inner, running, 1 if stream is None else self.n_batch_iter_,
            total_samples=self.total_samples, learning_offset=self.learning_offset,
            learning_decay=self.learning_decay, mean_field=mean_field)
        t0 = time.perf_counter()
        bound = iterate(method, ST.DiscreteBatch(data))
        elapsed = time.perf_counter() - t0
        # -inf is no overflow: a row of the batch impossible under the current model (with
        # ML estimates, a level or word no earlier batch had); its responsibilities are
        # uniform and its statistics finite, so the step goes on and learns the level
        if np.isnan(bound) or bound == np.inf:
            raise ValueError(f"The lower bound became {bound} in partial_fit: the data or the "
                             f"parameters overflow. {inner.overflow_advice}")
        self._store(method.attributes())
        ST.store_step(self, bound, elapsed, method.n_batch_iter, stream is not None)
        self._stream = dict(method.running.items())
        self.n_features_in_ = enc["n_features"]
        self._fitted_method = self.method
        # (a fit's training log-likelihood and size no longer describe the model)
        self.__dict__.pop("_loglik", None)
        self.__dict__.pop("_fit_n_samples", None)

    def _implied_statistics(self, alpha, beta):
        """The statistics a fitted q(theta) was computed from (N_k from the weights' Dirichlet
        or sticks, S = lambda - beta): a stream after a mean-field fit starts from them."""
        wc = self.weight_concentration_
        nk = wc[0] - 1.0 if isinstance(wc, tuple) else wc - alpha
        return Statistics(nk=np.asarray(nk, dtype=np.float64),
                          s=np.asarray(self._lam, dtype=np.float64) - beta)

    def _check_continuable(self):
        """Raise a ValueError if ``partial_fit`` cannot continue the fitted model with the
        current parameters (set_params since), leaving it as it is."""
        fitted = getattr(self, "_fitted_method", self.method)
        advice = "Set it back, or call fit (or partial_fit on an unfitted copy) to start anew."
        if fitted == "gibbs":
            raise ValueError("partial_fit cannot continue this model: it was fitted with "
                             "method='gibbs' (a sampler has no online step). Call fit, or "
                             "partial_fit on an unfitted copy.")
        if fitted != self.method:
            raise ValueError(f"partial_fit cannot continue this model: it was fitted with "
                             f"method={fitted!r}, and method is now {self.method!r}. {advice}")
        K = np.shape(self.weights_)[0]
        if K != self.n_components:
            raise ValueError(f"partial_fit cannot continue this model: it has {K} classes, "
                             f"and n_components is now {self.n_components}. {advice}")
        if fitted == "mean_field":
            prior = ("dirichlet_process" if isinstance(self.weight_concentration_, tuple)
                     else "dirichlet_distribution")
            if prior != self.weight_concentration_prior_type:
                raise ValueError(f"partial_fit cannot continue this model: it was fitted with "
                                 f"weight_concentration_prior_type={prior!r}, now "
                                 f"{self.weight_concentration_prior_type!r}. {advice}")

    def _fit_loglik(self, data):
        st = data.run(DE.safe_log(self._theta), DE.safe_log(self.weights_),
                      compute_stats=False)
        return st["log_likelihood"]

    def _initial_stats(self, data, blocks, random_state):
        """Statistics to start from: of random Dirichlet(1) responsibilities ('random'), or of
        a pass at seeded item probabilities ('random_from_data': class k's are the data's
        marginal frequencies mixed half and half with the one-hot answers of a random row)."""
        N, K = data.n_samples, data.n_components
        if self.init_params == "random":
            return data.stats_from_resp(random_state.dirichlet(np.ones(K), size=N))
        marg = np.zeros(blocks.n_columns)
        vals = data.values if data.values.shape[0] else np.ones(data.indices.shape[0])
        np.add.at(marg, data.indices, vals)
        marg = blocks.normalise(marg[:, None] + 1e-3)[:, 0]
        rows = random_state.choice(N, size=K, replace=N < K)
        theta = np.empty((blocks.n_columns, K))
        for k, n in enumerate(rows):
            one = np.zeros(blocks.n_columns)
            lo, hi = data.indptr[n], data.indptr[n + 1]
            np.add.at(one, data.indices[lo:hi], vals[lo:hi])
            theta[:, k] = 0.5 * marg + 0.5 * blocks.normalise(one[:, None])[:, 0]
        theta = blocks.normalise(theta)
        return data.run(np.log(theta), np.full(K, -np.log(K)))

    def _initial_theta(self, data, blocks, random_state, alpha, beta):
        stats = None
        if self.weights_init is None or self.probabilities_init is None:
            stats = self._initial_stats(data, blocks, random_state)
        K = self.n_components
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=np.float64)
            if weights.shape != (K,) or not np.isfinite(weights).all() or \
                    np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, atol=1e-6):
                raise ValueError(f"weights_init must be ({K},) non-negative and sum to 1")
        else:
            weights = DE.map_weights(stats["nk"], alpha)
        if self.probabilities_init is not None:
            theta = self._table_from_public(self.probabilities_init, "probabilities_init")
        else:
            theta = DE.map_probabilities(stats["s"], blocks, beta)
        return weights, theta

    def _gibbs_start(self, data, blocks, alpha, beta, random_state):
        """The statistics every chain starts from: an E-step at the best of
        max(n_init, n_chains) short EM runs (at most ``GIBBS_START_ITER`` iterations, each from
        its own random start; priors below 1 raised to 1, where the MAP exists).

        Chains started at random fall into different local optima of a latent class model
        and rarely leave them (R-hat of 2 and more on moderately hard data); from one good
        common start they explore the posterior around its main mode, and R-hat measures
        their mixing there, not the multimodality of the likelihood (compare restarts with
        ``method='em', n_init`` for that)."""
        a_em, b_em = max(alpha, 1.0), max(beta, 1.0)

        def new_em(run):
            stats = self._initial_stats(data, blocks, random_state)
            return EM(data, blocks, a_em, b_em, DE.map_weights(stats["nk"], a_em),
                      DE.map_probabilities(stats["s"], blocks, b_em))

        # an initialisation, like k-means for the Gaussian mixtures: a plain EM loop (no
        # convergence warning: a start need not have converged)
        best_bound, best = -np.inf, None
        for run in range(max(self.n_init, self.n_chains)):
            em = new_em(run)
            prev = -np.inf
            for _ in range(min(self.max_iter, GIBBS_START_ITER)):
                em.update(data.run_pass(None, em.pass_inputs(None)))
                if abs(em.bound() - prev) < self.tol:
                    break
                prev = em.bound()
            bound = em.bound() if em.bound() is not None else -np.inf
            if best is None or bound > best_bound:
                best_bound, best = bound, em
        theta, weights = best.theta, best.weights
        return data.run(DE.safe_log(theta), DE.safe_log(weights))

    def _fit_gibbs(self, data, blocks, alpha, beta, random_state):
        n_draws, burn_in, thin, n_chains = check_sampler_parameters(self)
        start = self._gibbs_start(data, blocks, alpha, beta, random_state)
        entropy = [int(e) for e in random_state.randint(0, 2 ** 32, size=4, dtype=np.int64)]
        chains = np.random.SeedSequence(entropy).spawn(n_chains)

        def new_chain(c):
            _, param_seq, kernel_seq = chains[c].spawn(3)
            rng = np.random.Generator(np.random.PCG64(param_seq))
            kernel_seed = int(kernel_seq.generate_state(1, np.uint64)[0])
            # theta_0 ~ p(theta | the start's soft counts): chains differ from the first sweep
            return Gibbs(data, blocks, alpha, beta, rng, kernel_seed, start)

        results = run_fits(new_chain, data, n_runs=n_chains,
                           max_iter=n_sweeps(n_draws, burn_in, thin), verbose=self.verbose,
                           verbose_interval=self.verbose_interval,
                           sampling=Sampling(burn_in, thin))
        samples = {name: np.stack([r.draws[name] for r in results])
                   for name in results[0].draws}
        _relabel(samples)
        traces = np.stack([r.bounds for r in results])
        samples["log_joint"] = traces[:, results[0].kept]
        flat = samples["theta"].reshape((-1,) + samples["theta"].shape[2:])
        weights = samples["weights"].reshape(-1, self.n_components).mean(axis=0)
        self._store({"weights": weights / weights.sum(), "theta": flat.mean(axis=0)})
        C, S = samples["weights"].shape[:2]
        public = [self._public_from_table(t) for t in flat]
        if isinstance(public[0], tuple):  # categorical: one array per item
            probabilities = tuple(np.stack([p[j] for p in public]).reshape(
                (C, S) + public[0][j].shape) for j in range(len(public[0])))
        else:
            probabilities = np.stack(public).reshape((C, S) + public[0].shape)
        self.posterior_samples_ = {"weights": samples["weights"],
                                   "probabilities": probabilities,
                                   "log_joint": samples["log_joint"]}
        self._draw_tables = samples["theta"]
        self.sampler_diagnostics_ = GS.sampler_diagnostics(samples)
        self.log_joint_trace_ = traces
        first = results[0]
        self.lower_bounds_, self.iteration_times_ = first.bounds, first.times
        self.lower_bound_, self.n_iter_ = float(first.bound), int(first.n_iter)
        self.converged_ = GS.check_convergence(self.sampler_diagnostics_)

    def _store(self, attrs):
        self._theta = np.asarray(attrs["theta"], dtype=np.float64)
        self.weights_ = np.asarray(attrs["weights"], dtype=np.float64)
        self.probabilities_ = self._public_from_table(self._theta)
        if "weight_concentration" in attrs:
            self.weight_concentration_ = attrs["weight_concentration"]
            self._elog_weights = attrs["elog_weights"]
            self.probability_concentration_ = self._public_from_table(attrs["concentration"])
            self._lam = attrs["concentration"]

    # ------------------------------------------------------------------ inference
    def _plugin_logs(self):
        """(log_const, table) of the pass for new data: plug-in for EM and Gibbs (posterior
        means), E log pi and E log theta for mean field (q(z) for a new row)."""
        if self.method == "mean_field":
            return (self._elog_weights,
                    DE.expected_log(self._lam, self._blocks))
        return DE.safe_log(self.weights_), DE.safe_log(self._theta)

    def _data_for(self, X):
        check_is_fitted(self, "weights_")
        enc = self._encode(X, fitting=False)
        data = DE.DiscreteData(enc["indptr"], enc["indices"], enc["values"],
                               self._blocks.n_columns, self.n_components, None,
                               resolve_n_threads(self.n_threads), enc["row_const"],
                               item_sizes=self._blocks.sizes)
        return data, enc

    def _pass(self, X, want_resp=False, want_lpn=False, logs=None):
        data, enc = self._data_for(X)
        N = enc["n_samples"]
        resp = np.empty((N, self.n_components)) if want_resp else None
        lpn = np.empty(N) if want_lpn else None
        log_const, table = logs if logs is not None else self._plugin_logs()
        data.run(table, log_const, resp_out=resp, log_prob_norm_out=lpn, compute_stats=False)
        return resp, lpn

    def predict_proba(self, X):
        """Posterior class probabilities p(z_n = k | x_n), shape (n_samples, n_components)
        (mean field: q(z_n))."""
        return self._pass(X, want_resp=True)[0]

    def predict(self, X):
        """The modal class of each row, shape (n_samples,)."""
        return self.predict_proba(X).argmax(axis=1)

    def score_samples(self, X):
        """log p(x_n) of each row, shape (n_samples,), missing items left out.

        EM: at the fitted parameters. Mean field: the posterior predictive density (exact:
        E[theta] per item for categorical data; the Dirichlet-multinomial for counts). Gibbs:
        the predictive density averaged over the kept draws (log-mean-exp)."""
        if self.method == "gibbs":
            data, enc = self._data_for(X)
            lpn = np.empty(enc["n_samples"])
            draws = self._draw_tables.reshape((-1,) + self._draw_tables.shape[2:])
            wdraws = self.posterior_samples_["weights"].reshape(-1, self.n_components)
            total = np.full(enc["n_samples"], -np.inf)
            for t, wt in zip(draws, wdraws):
                data.run(DE.safe_log(t), DE.safe_log(wt), log_prob_norm_out=lpn,
                         compute_stats=False)
                np.logaddexp(total, lpn, out=total)
            return total - np.log(len(draws))
        if self.method == "mean_field":
            return self._mean_field_predictive(X)
        return self._pass(X, want_lpn=True)[1]

    def _mean_field_predictive(self, X):
        logs = (DE.safe_log(self.weights_), DE.safe_log(self._theta))
        return self._pass(X, want_lpn=True, logs=logs)[1]

    def score(self, X, y=None):
        """Mean log-likelihood per row of X (see ``score_samples``)."""
        return float(np.mean(self.score_samples(X)))

    # ------------------------------------------------------------------ model selection
    def n_parameters(self):
        """Free parameters: (K - 1) class shares + K sum_j (L_j - 1) item probabilities."""
        check_is_fitted(self, "weights_")
        K = self.n_components
        return int(K - 1 + K * int(np.sum(self._blocks.sizes - 1)))

    _n_parameters = n_parameters

    def aic(self, X):
        """Akaike information criterion on X: -2 log L + 2 p (lower is better)."""
        ll = self.score_samples(X)
        return float(-2.0 * ll.sum() + 2.0 * self.n_parameters())

    def bic(self, X):
        """Bayesian information criterion on X: -2 log L + p log N (lower is better)."""
        ll = self.score_samples(X)
        return float(-2.0 * ll.sum() + self.n_parameters() * np.log(ll.shape[0]))


    # ------------------------------------------------------------------ LCA outputs
    def standard_errors(self, X, sample_weight=None):
        """Standard errors of ``weights_`` and ``probabilities_`` (EM fits).

        From the empirical observed information (poLCA's; Bandeen-Roche et al. 1997): with
        the free parameters in softmax form (pi_k = softmax(g)_k, theta_{j,.,k} =
        softmax(b_{j,.,k}), the last level the reference), row n's score is
        d l_n / d g_k = r_nk - pi_k and d l_n / d b_jlk = r_nk (x_njl - theta_jlk) (0 for a
        missing item); I = sum_n w_n s_n s_n^T, Cov(g, b) = I^+ and the delta method maps it
        to the probabilities. X is the fitted data. Returns {"weights": (K,), "probabilities":
        the layout of ``probabilities_``}. Memory: an (n_samples, n_parameters) array.
        """
        check_is_fitted(self, "weights_")
        data, enc = self._data_for(X)
        w = check_sample_weight(sample_weight, enc["n_samples"])
        w = np.ones(enc["n_samples"]) if w is None else w
        blocks, K = self._blocks, self.n_components
        N = enc["n_samples"]
        resp = self.predict_proba(X)
        onehot = np.zeros((N, blocks.n_columns))
        vals = data.values if data.values.shape[0] else np.ones(data.indices.shape[0])
        rows = np.repeat(np.arange(N), np.diff(data.indptr))
        onehot[rows, data.indices] = vals
        observed = blocks.sums(onehot.T).T > 0  # (N, B)
        theta, pi = self._theta, self.weights_
        free = np.ones(blocks.n_columns, dtype=bool)
        free[blocks.offsets[1:] - 1] = False  # the reference level of every item
        scores = [resp[:, :K - 1] - pi[:K - 1]]
        for k in range(K):
            sk = resp[:, k:k + 1] * (onehot - observed[:, blocks.block_of] * theta[:, k])
            scores.append(sk[:, free])
        S = np.hstack(scores)
        info = S.T @ (S * w[:, None])
        cov = np.linalg.pinv(info, hermitian=True)
        # Jacobians of the softmaxes at the estimates
        jac_pi = (np.diag(pi) - np.outer(pi, pi))[:, :K - 1]
        n_free = int(free.sum())
        J = np.zeros((K + K * blocks.n_columns, cov.shape[0]))
        J[:K, :K - 1] = jac_pi
        for k in range(K):
            col0 = K - 1 + k * n_free
            for b in range(len(blocks)):
                lo, hi = blocks.offsets[b], blocks.offsets[b + 1]
                t = theta[lo:hi, k]
                jb = (np.diag(t) - np.outer(t, t))[:, :-1]
                f0 = col0 + int(free[:lo].sum())
                J[K + k * blocks.n_columns + lo:K + k * blocks.n_columns + hi,
                  f0:f0 + hi - lo - 1] = jb
        var = np.einsum("ij,jk,ik->i", J, cov, J)
        se = np.sqrt(np.maximum(var, 0.0))
        table = se[K:].reshape(K, blocks.n_columns).T
        return {"weights": se[:K], "probabilities": self._public_from_table(table)}

    def goodness_of_fit(self, X):
        """G^2 and Pearson chi^2 against the observed response patterns (as poLCA).

        Over the rows with every item observed (N_c of them): O_p the count of each distinct
        pattern, E_p = N_c p(pattern) its expected frequency; G^2 = 2 sum_p O_p log(O_p / E_p),
        chi^2 = sum_p (O_p - E_p)^2 / E_p over the observed patterns; residual degrees of
        freedom min(N, prod_j L_j) - 1 - n_parameters. Returns a dict with ``patterns``
        (n_patterns, n_features) codes (indices into ``categories_`` for categorical data),
        ``observed``, ``expected``, ``g_squared``, ``chi_squared``, ``residual_df``,
        ``log_likelihood`` (of all rows), ``aic``, ``bic``, ``n_parameters``.
        """
        check_is_fitted(self, "weights_")
        data, enc = self._data_for(X)
        blocks = self._blocks
        N, B = enc["n_samples"], len(blocks)
        counts = np.diff(data.indptr)
        ll = self.score_samples(X)
        complete = np.flatnonzero(counts == B)
        cols = data.indices.reshape(-1) if counts.sum() else data.indices
        codes = np.zeros((N, B), dtype=np.int64)
        if complete.size:
            idx = data.indptr[complete][:, None] + np.arange(B)
            codes[complete] = cols[idx] - blocks.offsets[:-1]
        patterns, first, observed = np.unique(codes[complete], axis=0, return_index=True,
                                              return_counts=True)
        expected = complete.size * np.exp(ll[complete[first]])
        with np.errstate(divide="ignore"):
            g2 = 2.0 * float(np.sum(observed * np.log(observed / expected)))
        chi2 = float(np.sum((observed - expected) ** 2 / expected))
        p = self.n_parameters()
        cells = float(np.prod(blocks.sizes.astype(np.float64)))
        return {"patterns": patterns, "observed": observed, "expected": expected,
                "g_squared": g2, "chi_squared": chi2,
                "residual_df": int(min(N, cells) - 1 - p), "log_likelihood": float(ll.sum()),
                "aic": float(-2 * ll.sum() + 2 * p),
                "bic": float(-2 * ll.sum() + p * np.log(N)), "n_parameters": p}

    def order_classes(self, key="weights"):
        """Relabel the classes in place, so labels are stable across runs: ``key='weights'``
        sorts by decreasing share; a callable ``key(self) -> (K,)`` sorts by increasing value
        (e.g. ``lambda m: -m.probabilities_[:, 0]``). Returns the permutation (new k = old
        perm[k])."""
        check_is_fitted(self, "weights_")
        perm = (np.argsort(-self.weights_, kind="stable") if key == "weights" else
                np.argsort(np.asarray(key(self)), kind="stable"))
        self.weights_ = self.weights_[perm]
        self._theta = self._theta[:, perm]
        self.probabilities_ = self._public_from_table(self._theta)
        if hasattr(self, "_lam"):
            self._lam = self._lam[:, perm]
            wc = self.weight_concentration_
            # DP sticks permuted with their classes (no longer in stick order)
            self.weight_concentration_ = ((wc[0][perm], wc[1][perm]) if isinstance(wc, tuple)
                                          else wc[perm])
            self._elog_weights = self._elog_weights[perm]
            self.probability_concentration_ = self._public_from_table(self._lam)
        if hasattr(self, "posterior_samples_"):
            ps = self.posterior_samples_
            ps["weights"] = ps["weights"][..., perm]
            self._draw_tables = self._draw_tables[..., perm]
            pr = ps["probabilities"]
            ps["probabilities"] = (tuple(a[:, :, perm] for a in pr) if isinstance(pr, tuple)
                                   else pr[:, :, perm])
        return perm

    def summary(self, X, print_out=True):
        """poLCA's table: class shares and item-response probabilities with standard errors
        (EM), log-likelihood, AIC, BIC, parameters, residual df, G^2, chi^2. Returns the text
        (and prints it unless ``print_out=False``)."""
        gof = self.goodness_of_fit(X)
        se = self.standard_errors(X) if self.method == "em" else None
        K = self.n_components
        lines = [f"{type(self).__name__} (method={self.method!r}), {K} classes",
                 "Class shares: " + "  ".join(
                     f"{k}: {self.weights_[k]:.4f}" + (f" ({se['weights'][k]:.4f})" if se
                                                        else "") for k in range(K))]
        probs = self.probabilities_
        items = probs if isinstance(probs, tuple) else [probs[:, [j]] for j in
                                                         range(probs.shape[1])]
        ses = (se["probabilities"] if se is None or isinstance(se["probabilities"], tuple)
               else [se["probabilities"][:, [j]] for j in range(probs.shape[1])]) \
            if se else None
        levels = getattr(self, "categories_", None)
        for j, P in enumerate(items):
            lines.append(f"Item {j}" + (" (P(x=1))" if not isinstance(probs, tuple) else ""))
            names = (np.asarray(levels[j]).tolist() if levels is not None
                     else list(range(P.shape[1])))
            lines.append("  class " + " ".join(f"{str(n):>16}" for n in names))
            for k in range(K):
                cells = [f"{P[k, l]:.4f}" + (f" ({ses[j][k, l]:.4f})" if ses else "")
                         for l in range(P.shape[1])]
                lines.append(f"  {k:5d} " + " ".join(f"{c:>16}" for c in cells))
        lines += [f"log-likelihood {gof['log_likelihood']:.4f}   parameters "
                  f"{gof['n_parameters']}   residual df {gof['residual_df']}",
                  f"AIC {gof['aic']:.4f}   BIC {gof['bic']:.4f}   G^2 {gof['g_squared']:.4f}"
                  f"   X^2 {gof['chi_squared']:.4f}   ({len(gof['observed'])} observed "
                  "patterns)"]
        text = "\n".join(lines)
        if print_out:
            print(text)
        return text


def _relabel(samples):
    """Permute the classes of every draw to match a reference (in place): Hungarian matching of
    the item-probability tables (squared distance), reference the last draw of chain 0, then
    the mean of the matched draws (two rounds)."""
    theta = samples["theta"]  # (C, S, L, K)
    C, S, L, K = theta.shape
    if K == 1:
        return
    reference = theta[0, -1].T
    for _ in range(2):
        perms = np.empty((C, S, K), dtype=np.intp)
        for c in range(C):
            for s in range(S):
                perms[c, s] = matching(reference, theta[c, s].T)
        matched = np.take_along_axis(theta, perms[:, :, None, :], axis=3)
        reference = matched.reshape(-1, L, K).mean(axis=0).T
    samples["theta"] = matched
    samples["weights"] = np.take_along_axis(samples["weights"], perms, axis=2)


# ---------------------------------------------------------------------- Bernoulli
class BernoulliMixture(_DiscreteMixture):
    """Mixture of multivariate Bernoulli distributions (binary items).

    p(x_n) = sum_k pi_k prod_j p_kj^{x_nj} (1 - p_kj)^{1 - x_nj}, over the observed items.

    Parameters
    ----------
    n_components : int, default=1
        Number of classes K.
    method : {'em', 'mean_field', 'gibbs'}, default='em'
    weight_prior : float or None, default=None
        alpha of the Dir(alpha) prior of the class shares; None: 1 (flat: ML for EM).
        EM needs >= 1 (a MAP mode), the Bayesian methods > 0. With
        ``weight_concentration_prior_type='dirichlet_process'`` the DP's concentration
        gamma0 (sticks v_k ~ Beta(1, gamma0)); None: 1/K, as scikit-learn.
    item_prior : float or None, default=None
        beta of the Beta(beta, beta) prior of every p_kj; None: 1 (flat: ML for EM). With
        beta = 1 an EM estimate can be exactly 0 or 1 (poLCA's and StepMix's ML); its log is
        -inf in the pass, which never produces NaN (a row impossible in every class scores
        -inf). beta > 1 smooths away from 0 and 1 (e.g. 2: add-one smoothing).
    tol : float, default=1e-6
        EM / mean field stop when the bound moves less than this (EM: mean log-likelihood per
        row; mean field: the total ELBO).
    max_iter : int, default=1000
    n_init : int, default=1
        Restarts; the one with the highest bound is kept.
    init_params : {'random_from_data', 'random'}, default='random_from_data'
        'random_from_data': class k starts at the item marginals mixed half and half with the
        answers of a random row; 'random': the M-step of Dirichlet(1) random responsibilities.
    weights_init, probabilities_init : array-like, optional (EM only)
        A given start: (K,) shares; item probabilities in the layout of ``probabilities_``.
    random_state, verbose, verbose_interval
    n_threads : int or None, default=None
        OpenMP threads; results do not depend on it.
    n_draws, burn_in, thin, n_chains : int
        ``method='gibbs'``: draws kept per chain, sweeps discarded, keep every ``thin``-th,
        independent chains. Every chain starts from the best of max(n_init, n_chains) short
        EM runs (then its own draws), so chains do not sit in different local optima.
    weight_concentration_prior_type : {'dirichlet_distribution', 'dirichlet_process'}
        ``method='mean_field'`` only: a Dirichlet prior on the shares, or truncated
        stick-breaking (a Dirichlet process truncated at K classes: unneeded classes get
        shares near 0), as ``BayesianGaussianMixture``'s. ``weight_concentration_`` is then
        the sticks' pair (a, b) of q(v_k) = Beta(a_k, b_k).

    Input: X (n_samples, n_features) of 0/1, booleans, or a DataFrame of those; NaN (or pandas
    NA) marks a missing answer, left out of the row's likelihood. Any other value is a
    ValueError naming it.

    Attributes
    ----------
    weights_ : ndarray (K,)
        Class shares (mean field: E[pi]; Gibbs: the posterior mean).
    probabilities_ : ndarray (K, n_features)
        p_kj = P(x_j = 1 | class k).
    converged_, n_iter_, lower_bound_, lower_bounds_, iteration_times_, n_features_in_
    weight_concentration_, probability_concentration_ : mean field only, the Dirichlet / Beta
        parameters of q (the latter in the layout of ``probabilities_``, counts of "1").
    posterior_samples_, sampler_diagnostics_, log_joint_trace_ : Gibbs only, as in
        ``GaussianMixture(method='gibbs')``.
    """

    def _encode(self, X, fitting):
        fast = self._encode_array(X, fitting)
        if fast is not None:
            return fast
        cols, _, _ = _columns(X)
        D = len(cols)
        self._check_n_features(D, fitting)
        N = len(cols[0])
        codes = np.zeros((N, D), dtype=np.int64)
        observed = np.zeros((N, D), dtype=bool)
        for j, col in enumerate(cols):
            if col.dtype.kind == "O":
                mask = ~_isna(col)
                vals = np.zeros(N)
                try:
                    vals[mask] = np.asarray(col[mask].tolist(), dtype=np.float64)
                except (TypeError, ValueError):
                    raise ValueError(f"BernoulliMixture needs binary X (0/1, booleans, NaN for "
                                     f"missing); column {j} holds non-numeric values.") from None
            else:
                mask = ~np.isnan(col)
                vals = np.where(mask, col, 0.0)
                if np.isinf(col).any():
                    raise ValueError(f"X contains infinity (column {j}); BernoulliMixture "
                                     "needs 0/1 values (NaN: missing).")
            bad = mask & (vals != 0) & (vals != 1)
            if bad.any():
                raise ValueError(f"BernoulliMixture needs binary X (0/1, booleans, NaN for "
                                 f"missing); column {j} has the value {vals[bad][0]!r}.")
            codes[:, j] = vals.astype(np.int64)
            observed[:, j] = mask
        blocks = DE.Blocks(np.full(D, 2))
        indptr, indices = _csr_from_codes(codes, observed, blocks.offsets)
        return {"indptr": indptr, "indices": indices, "values": None, "row_const": None,
                "blocks": blocks, "n_samples": N, "n_features": D, "state": {}}

    def _encode_array(self, X, fitting):
        """The common case without a per-column loop: a numeric or boolean ndarray. Item j's
        columns are 2j ("0") and 2j + 1 ("1"), so a row's indices are 2j + x_nj over its
        observed items. Returns None for other input (the general path)."""
        if not isinstance(X, np.ndarray) or X.ndim != 2 or X.dtype.kind not in "biuf" \
                or X.shape[0] < 1 or X.shape[1] < 1:
            return None
        N, D = X.shape
        if not fitting and D != self.n_features_in_:
            return None  # the general path words the error
        observed = None
        if X.dtype.kind == "f":
            nan = np.isnan(X)
            if nan.any():
                observed = ~nan
        if X.dtype.kind == "f" and np.isinf(X).any():
            return None  # the general path words the error
        valid = (X == 0) | (X == 1)
        if observed is not None:
            valid |= ~observed
        if not valid.all():
            return None
        cols = 2 * np.arange(D, dtype=np.int32)
        if observed is None:
            indices = (cols + X.astype(np.int32, copy=False)).reshape(-1)
            indptr = np.arange(N + 1, dtype=np.int64) * D
        else:
            codes = np.where(observed, X, 0).astype(np.int32)
            indices = (cols + codes)[observed]  # row-major: each row's items in order
            indptr = np.zeros(N + 1, dtype=np.int64)
            np.cumsum(observed.sum(axis=1), out=indptr[1:])
        return {"indptr": indptr, "indices": np.ascontiguousarray(indices, dtype=np.int32),
                "values": None, "row_const": None, "blocks": DE.Blocks(np.full(D, 2)),
                "n_samples": N, "n_features": D, "state": {}}

    def _public_from_table(self, table):
        return np.ascontiguousarray(table[1::2].T)

    def _table_from_public(self, p, name):
        p = np.asarray(p, dtype=np.float64)
        D, K = self._blocks.sizes.shape[0], self.n_components
        if p.shape != (K, D) or not np.isfinite(p).all() or np.any((p < 0) | (p > 1)):
            raise ValueError(f"{name} must be ({K}, {D}) probabilities in [0, 1]")
        out = np.empty((2 * D, K))
        out[0::2], out[1::2] = 1.0 - p.T, p.T
        return out


# ---------------------------------------------------------------------- categorical
class CategoricalMixture(_DiscreteMixture):
    """Latent class analysis: a mixture of independent categorical items (poLCA's model).

    p(x_n) = sum_k pi_k prod_{j observed} theta_{j, x_nj, k}; each item j has its own levels.

    Parameters
    ----------
    As ``BernoulliMixture`` (``item_prior`` is then the Dirichlet(beta, ..., beta) of every
    item's response probabilities), plus

    handle_unknown : {'error', 'missing'}, default='error'
        A level at predict time that the fit never saw: 'error' raises a ValueError naming the
        column and the value; 'missing' treats the answer as missing (left out of the row).

    Input
    -----
    X (n_samples, n_features): integer codes of any dtype (the levels of item j are the
    distinct codes seen in fit, in increasing order; NaN or -1 = missing; other negative or
    non-integer codes and infinity are a ValueError), or an array of labels (strings), or a
    pandas DataFrame of categoricals (levels from the dtype, in its order, including unused
    ones), strings (sorted distinct values) or integer codes. Missing values (NaN, None,
    pandas NA) are left out of the row's likelihood.

    Attributes
    ----------
    categories_ : list of ndarray
        The levels of each item, in the order of the probabilities.
    probabilities_ : tuple of ndarray, one (K, n_levels_j) per item
        Item-response probabilities theta_{j,l,k} (poLCA's ``probs``).
    weights_, converged_, n_iter_, lower_bound_, lower_bounds_, iteration_times_,
    n_features_in_, and the mean-field / Gibbs attributes as in ``BernoulliMixture``.
    """

    def __init__(self, n_components=1, *, method="em", weight_prior=None, item_prior=None,
                 tol=1e-6, max_iter=1000, n_init=1, init_params="random_from_data",
                 weights_init=None, probabilities_init=None, random_state=None,
                 verbose=0, verbose_interval=10, n_threads=None, n_draws=200, burn_in=100,
                 thin=1, n_chains=2, weight_concentration_prior_type="dirichlet_distribution",
                 handle_unknown="error", learning_offset=10.0, learning_decay=0.7,
                 total_samples=1e6):
        super().__init__(n_components, method=method, weight_prior=weight_prior,
                         item_prior=item_prior, tol=tol, max_iter=max_iter, n_init=n_init,
                         init_params=init_params, weights_init=weights_init,
                         probabilities_init=probabilities_init, random_state=random_state,
                         verbose=verbose, verbose_interval=verbose_interval,
                         n_threads=n_threads, n_draws=n_draws, burn_in=burn_in, thin=thin,
                         n_chains=n_chains,
                         weight_concentration_prior_type=weight_concentration_prior_type,
                         learning_offset=learning_offset, learning_decay=learning_decay,
                         total_samples=total_samples)
        self.handle_unknown = handle_unknown

    _param_names = _DiscreteMixture._param_names + ("handle_unknown",)

    def _encode(self, X, fitting):
        check_option(self.handle_unknown, "handle_unknown", ("error", "missing"))
        cols, dtype_cats, names = _columns(X)
        D = len(cols)
        self._check_n_features(D, fitting)
        N = len(cols[0])
        codes = np.zeros((N, D), dtype=np.int64, order="F")  # written a column at a time
        observed = np.zeros((N, D), dtype=bool, order="F")
        categories = [] if fitting else self.categories_
        for j, col in enumerate(cols):
            labels, mask = _labels_and_mask(col, j, "X")
            if fitting:
                levels = dtype_cats[j] if dtype_cats[j] is not None else \
                    _sorted_levels(labels[mask])
                if len(levels) == 0:  # an item never answered: one placeholder level
                    levels = np.asarray([0.0])
                categories.append(levels)
            pos, found = _lookup(categories[j], labels[mask])
            if not found.all():
                if self.handle_unknown == "error":
                    bad = labels[mask][~found][0]
                    bad = bad.item() if hasattr(bad, "item") else bad
                    raise ValueError(f"X has the level {bad!r} in column "
                                     f"{j}, which the fit never saw (levels "
                                     f"{np.asarray(categories[j]).tolist()[:10]}); set handle_unknown="
                                     "'missing' to treat unseen levels as missing.")
                keep = np.flatnonzero(mask)
                mask = mask.copy()
                mask[keep[~found]] = False
                pos = pos[found]
            if mask.all():
                codes[:, j] = pos
            else:
                codes[mask, j] = pos
            observed[:, j] = mask
        blocks = DE.Blocks([len(c) for c in categories])
        indptr, indices = _csr_from_codes(codes, observed, blocks.offsets)
        state = {"categories_": categories} if fitting else {}
        if fitting and names is not None:
            state["feature_names_in_"] = names
        return {"indptr": indptr, "indices": indices, "values": None, "row_const": None,
                "blocks": blocks, "n_samples": N, "n_features": D, "state": state}

    def _public_from_table(self, table):
        o = self._blocks.offsets
        return tuple(np.ascontiguousarray(table[o[j]:o[j + 1]].T)
                     for j in range(len(self._blocks)))

    def _table_from_public(self, p, name):
        K, blocks = self.n_components, self._blocks
        if len(p) != len(blocks):
            raise ValueError(f"{name} must hold one (K, n_levels) array per item")
        out = np.vstack([np.asarray(pj, dtype=np.float64).T for pj in p])
        if out.shape != (blocks.n_columns, K) or not np.isfinite(out).all() or \
                np.any(out < 0) or not np.allclose(blocks.sums(out), 1.0, atol=1e-6):
            raise ValueError(f"{name} must hold, per item, ({K}, n_levels) probabilities "
                             "summing to 1 over the levels")
        return out


# ---------------------------------------------------------------------- multinomial
class MultinomialMixture(_DiscreteMixture):
    """Mixture of multinomials (a mixture of unigrams): each row a count vector.

    p(x_n) = sum_k pi_k Mult(x_n | n_n, theta_{.,k}), the multinomial coefficient
    n_n! / prod_v x_nv! included in ``score_samples`` and the bounds.

    Parameters
    ----------
    As ``BernoulliMixture``; ``item_prior`` is the Dirichlet(beta, ..., beta) of every class's
    word distribution.

    Input: X (n_samples, n_features) non-negative counts, dense or scipy.sparse (CSR is used as
    is); real-valued counts are accepted (the coefficient then uses the Gamma function).
    Negative counts, NaN and infinity are a ValueError: there are no missing values for a
    count vector (a missing word count would change the row's total), so NaN is refused
    rather than read as missing or as 0.

    Attributes
    ----------
    probabilities_ : ndarray (K, n_features)
        theta_{v,k}, each row summing to 1.
    weights_ and the rest as in ``BernoulliMixture``.
    """

    def _update_sklearn_tags(self, tags):
        super()._update_sklearn_tags(tags)
        tags.input_tags.allow_nan = False
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True

    def _encode(self, X, fitting):
        if _is_sparse(X):
            A = sp.csr_matrix(X)
            _check_2d(A.shape)
            if A.dtype.kind not in "fiub":
                raise ValueError(f"X must hold numeric counts, got dtype {A.dtype}")
            A = A.astype(A.dtype if A.dtype in (np.float32, np.float64) else np.float64)
            A.sum_duplicates()
            data = A.data
        else:
            arr = as_real_array(X, "X", "counts")
            _check_2d(arr.shape)
            arr = arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float64)
            data = arr
            A = None
        if not np.isfinite(data).all():
            if np.isnan(data).any():
                # a missing count has no "left out" meaning for a multinomial row (the
                # total n_n would change with it): refused, not guessed
                raise ValueError("X contains NaN; MultinomialMixture takes no missing values "
                                 "(a row's counts are observed whole): drop the rows or "
                                 "columns with NaN, or use CategoricalMixture for items.")
            raise ValueError("X contains infinity; counts must be finite.")
        if (data < 0).any():
            raise ValueError("Negative values in data passed to X: MultinomialMixture needs "
                             "counts >= 0.")
        if A is None:
            A = sp.csr_matrix(arr)
        A.eliminate_zeros()
        N, V = A.shape
        self._check_n_features(V, fitting)
        values = np.ascontiguousarray(A.data)
        v64 = values.astype(np.float64)
        rows = np.repeat(np.arange(N), np.diff(A.indptr))
        row_tot = np.bincount(rows, weights=v64, minlength=N)
        sum_log_fact = np.bincount(rows, weights=gammaln(v64 + 1.0), minlength=N)
        row_const = gammaln(row_tot + 1.0) - sum_log_fact
        return {"indptr": A.indptr.astype(np.int64), "indices": A.indices.astype(np.int32),
                "values": values, "row_const": row_const, "blocks": DE.Blocks([V]),
                "n_samples": N, "n_features": V, "state": {}}

    def _public_from_table(self, table):
        return np.ascontiguousarray(table.T)

    def _table_from_public(self, p, name):
        p = np.asarray(p, dtype=np.float64)
        K, V = self.n_components, self._blocks.n_columns
        if p.shape != (K, V) or not np.isfinite(p).all() or np.any(p < 0) or \
                not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
            raise ValueError(f"{name} must be ({K}, {V}) rows of probabilities summing to 1")
        return np.ascontiguousarray(p.T)

    def _mean_field_predictive(self, X):
        """The Dirichlet-multinomial posterior predictive: log sum_k E[pi_k] B(lambda_k + x) /
        B(lambda_k) times the multinomial coefficient."""
        data, enc = self._data_for(X)
        lam = self._lam  # (V, K)
        N, K = enc["n_samples"], self.n_components
        out = np.zeros((N, K))
        indptr, idx = data.indptr, data.indices
        v = data.values.astype(np.float64)
        rows = np.repeat(np.arange(N), np.diff(indptr))
        terms = gammaln(lam[idx] + v[:, None]) - gammaln(lam[idx])
        np.add.at(out, rows, terms)
        n = np.zeros(N)
        np.add.at(n, rows, v)
        tot = lam.sum(axis=0)
        out += gammaln(tot) - gammaln(tot + n[:, None])
        out += DE.safe_log(self.weights_)
        return logsumexp(out, axis=1) + enc["row_const"]
