"""What every hidden Markov model shares: the start and transition parameters, Baum-Welch EM
through the one loop (``vbfast._core.loop.run_fits``), scoring, decoding and sampling.

A family (``GaussianHMM``, ``CategoricalHMM``) adds an emission unit: the per-state
log-densities l_nk = log p(x_n | z_n = k) (an (n_samples, K) array computed chunk-parallel),
the emission statistics from the posteriors gamma_nk, and the emission M-step.

Model: z_0 ~ Cat(pi), z_t | z_{t-1} ~ Cat(A[z_{t-1}]), x_t | z_t ~ p(. | theta_{z_t}), for each
sequence of X (``lengths``). EM: the pass (forward-backward) gives log p(X) (the bound,
``lower_bounds_``: the total log-likelihood, as hmmlearn's ``monitor_.history``), gamma and
the expected counts; the update is hmmlearn's MAP M-step (Dirichlet priors ``startprob_prior``,
``transmat_prior``, the emission priors), with these differences, none of which changes a
fit where every state is used:

- a state whose expected occupancy is below ``EMPTY_STATE`` keeps its previous emission
  parameters (hmmlearn divides 0 by 0), and a transition row or start vector whose counts are
  all zero keeps its previous values (hmmlearn leaves a zero row: NaN next iteration); every
  such event is counted in ``n_kept_states_``;
- covariances are floored by ``min_covar`` every iteration (eigenvalues for full / tied, only
  when one is below it);
- zeros in ``startprob_`` / ``transmat_`` stay zero (as in hmmlearn: left-right models).

``method='mean_field'`` (variational Bayes, exact ELBO) and ``method='gibbs'`` (blocked Gibbs
with forward-filtering backward-sampling) are in ``_mean_field.py`` and ``_gibbs.py``, on the
conjugate algebra of ``_conjugate.py``; ``BaseHMM._fit_bayes`` runs them.
"""
import collections
import logging
import warnings

import numpy as np
from scipy import linalg

from .._core.base import ParamsMixin, all_or_nothing
from .._core.loop import run_fits, store_trace
from .._core.protocol import Method, Statistics
from .._core.sampling import check_sampler_parameters, warn_if_not_converged
from .._core.threads import resolve_n_threads, single_threaded_blas
from .._core.validation import (broadcast_parameter, check_is_fitted, check_option,
                                check_random_state, check_scalar)
from . import _gibbs, _mean_field
from ._sequences import SequenceData, Sequences

# hmmlearn reports an init_params overwrite through logging; vbfast warns and logs it too (a
# NullHandler: nothing printed unless the application configures logging)
_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())
# Expected occupancy below which a state counts as unvisited (keeps its parameters).
EMPTY_STATE = 1e-10
_DECODERS = ("viterbi", "map")
_IMPLEMENTATIONS = ("log", "scaling")
_METHODS = ("em", "mean_field", "gibbs")


class ConvergenceMonitor:
    """hmmlearn's ``monitor_``: ``history`` (the log-likelihood of every iteration, a deque),
    ``iter`` (iterations run), ``tol``, ``n_iter``, ``verbose``; ``converged`` is hmmlearn's
    (the last gain below ``tol``, or ``n_iter`` reached). The estimator's ``converged_`` is
    the strict one (the gain below ``tol``)."""

    def __init__(self, tol, n_iter, verbose):
        self.tol = tol
        self.n_iter = n_iter
        self.verbose = verbose
        self.history = collections.deque()
        self.iter = 0

    def __repr__(self):
        return (f"ConvergenceMonitor(tol={self.tol!r}, n_iter={self.n_iter!r}, "
                f"iter={self.iter}, history={list(self.history)})")

    def _state(self):
        return (self.tol, self.n_iter, self.verbose, self.iter,
                np.asarray(self.history, dtype=np.float64).tobytes())

    def __eq__(self, other):  # by value (bitwise history): pickle / determinism comparisons
        return type(other) is type(self) and self._state() == other._state()

    __hash__ = None

    @property
    def converged(self):
        return (self.iter == self.n_iter or
                (len(self.history) >= 2 and self.history[-1] - self.history[-2] < self.tol))


class HMMData(SequenceData):
    """The data side of an EM fit: X, its sequences and the family's emission unit (the
    emission work runs chunk-parallel)."""

    def __init__(self, X, sequences, model):
        super().__init__(X, sequences)
        self.model = model
        self.cache = {}  # the emission unit's per-fit buffers (e.g. the Gaussian pass slots)

    def run_pass(self, shard, params):
        """Emission log-densities, forward-backward, emission statistics: a ``Statistics``
        with log_likelihood, seq_ll, start (K,), trans (K, K), n_log_space and the
        emission's fields. A family with a fused pass (``_fused_pass``: all three per
        sequence, in one parallel region) runs that instead where it applies."""
        fused = self.model._fused_pass(self.X, shard, params, self.cache)
        if fused is not None:
            return Statistics(**fused)
        logprob = self.model._log_density(self.X, params, shard.n_threads)
        # the posteriors' buffer is kept for the fit (80 MB for 10^6 rows and 10 states)
        fb = shard.forward_backward(logprob, params["startprob"], params["transmat"],
                                    post_out=self.cache.get("posteriors"))
        self.cache["posteriors"] = fb["posteriors"]
        del logprob
        emission = self.model._emission_stats(self.X, fb["posteriors"], params,
                                              shard.n_threads, self.cache)
        return Statistics(log_likelihood=fb["log_likelihood"], seq_ll=fb["seq_ll"],
                          start=fb["start"], trans=fb["trans"],
                          n_log_space=fb["n_log_space"], **emission)


class BaumWelch(Method):
    """EM for an HMM: theta = (pi, A, emission parameters) as point estimates, the exact
    posterior over the state paths. The bound is log p(X | theta) at the pass's theta (the
    total over sequences); the update is the M-step."""

    bound_kind = "log-likelihood"
    overflow_advice = ("Every sequence has probability zero under the model (zeros in "
                       "startprob_ / transmat_ ruling out the data), or the data overflow.")

    def __init__(self, model, params, monotone):
        self.model = model
        self.params = params
        self.monotone = monotone
        self._bound = None
        self.n_kept = 0
        self.priors = {}  # the prior arrays, built by the first update (BaseHMM._m_step)

    def pass_inputs(self, shard):
        return self.params

    def update(self, stats):
        self._bound = stats["log_likelihood"]
        self.params, kept = self.model._m_step(self.params, stats, self.priors)
        self.n_kept += kept

    def bound(self):
        return self._bound

    def converged(self, n_iter, prev_bound, bound, tol):
        # hmmlearn's rule: the gain (not its absolute value) below tol
        return bound - prev_bound < tol

    def attributes(self):
        return {name: np.array(value, copy=True) for name, value in self.params.items()}


def _dirichlet_update(counts, prior, current):
    """hmmlearn's MAP update of a distribution (or rows of one): max(prior - 1 + counts, 0),
    zero where ``current`` is zero, normalised; a row with nothing left keeps ``current``.
    Returns (new, number of rows kept)."""
    new = np.maximum(prior - 1.0 + counts, 0.0)
    new = np.where(current == 0, 0.0, new)
    sums = new.sum(axis=-1, keepdims=True)
    empty = ~(sums > 0)
    new = np.where(empty, current, new / np.where(empty, 1.0, sums))
    return new, int(np.count_nonzero(empty))


def init_arguments(values):
    """A subclass ``__init__``'s ``locals()`` as ``BaseHMM.__init__``'s keyword arguments:
    every parameter of its signature, each stored as given (scikit-learn's convention)."""
    return {name: value for name, value in values.items()
            if name not in ("self", "__class__")}


class BaseHMM(ParamsMixin):
    """Base of the HMM estimators (hmmlearn's ``BaseHMM`` parameters and methods)."""

    # the methods this class fits by (mean field and Gibbs need its conjugate prior)
    _methods = ("em",)

    _emission_letters = ""
    _base_param_names = ("n_components", "startprob_prior", "transmat_prior", "algorithm",
                         "random_state", "n_iter", "tol", "verbose", "params", "init_params",
                         "implementation", "method", "n_threads")
    # mean field and Gibbs (``_mean_field.py``, ``_gibbs.py``)
    _bayes_param_names = ("sticky", "n_draws", "burn_in", "thin", "n_chains")

    def __init__(self, n_components, startprob_prior, transmat_prior, algorithm, random_state,
                 n_iter, tol, verbose, params, init_params, implementation, method, n_threads,
                 **others):
        """Store hmmlearn's common parameters (``_base_param_names``) and ``others``: for the
        classes with mean field and Gibbs ``_bayes_param_names``, and the subclass's own
        (emission) parameters. Each subclass's signature lists every parameter (scikit-learn's
        get_params reads it) and passes them all on with ``init_arguments(locals())``."""
        self.n_components = n_components
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.algorithm = algorithm
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.verbose = verbose
        self.params = params
        self.init_params = init_params
        self.implementation = implementation
        self.method = method
        self.n_threads = n_threads
        for name, value in others.items():
            setattr(self, name, value)

    def _update_sklearn_tags(self, tags):
        tags.estimator_type = "density_estimator"
        tags.input_tags.allow_nan = False

    # ------------------------------------------------------------------ checks
    def _check_parameters(self):
        check_scalar(self.n_components, "n_components", "int", min_val=1)
        # (n_iter=0: initialisation only, as in hmmlearn)
        check_scalar(self.n_iter, "n_iter", "int", min_val=0)
        check_scalar(self.tol, "tol", "real", min_val=0.0)
        check_option(self.algorithm, "algorithm", _DECODERS)
        check_option(self.implementation, "implementation", _IMPLEMENTATIONS)
        check_option(self.method, "method", self._methods)
        if "sticky" in self._param_names:  # the classes with mean field and Gibbs
            check_scalar(self.sticky, "sticky", "real", min_val=0.0)
        if self.method == "gibbs":
            check_sampler_parameters(self)
        if not isinstance(self.verbose, bool):
            check_scalar(self.verbose, "verbose", "int", min_val=0)
        for name in ("params", "init_params"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ValueError(f"{name} must be a string of letters, got {value!r}")
            # hmmlearn's defaults are string.ascii_letters: letters it does not know are ignored
        K = self.n_components
        self._prior("startprob_prior", (K,))
        self._prior("transmat_prior", (K, K))
        self._check_emission_parameters()

    def _prior(self, name, shape):
        """A prior parameter broadcast to ``shape``. ``startprob_prior`` / ``transmat_prior``
        None (the default): 1.0 for EM (hmmlearn's ``GaussianHMM`` default: plain maximum
        likelihood), 1 / n_components for mean field and Gibbs (hmmlearn's
        ``VariationalGaussianHMM`` default: sparse Dirichlets, see docs/hmm.md)."""
        value = getattr(self, name)
        if value is None and name in ("startprob_prior", "transmat_prior"):
            value = 1.0 if self.method == "em" else 1.0 / self.n_components
        return broadcast_parameter(value, shape, name)

    def _check_distribution(self, name, value, shape):
        """A user-given startprob_ / transmat_ (or emissionprob_): shape, finite, >= 0, rows
        summing to 1."""
        value = np.array(value, dtype=np.float64)
        if value.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {value.shape}")
        if not np.isfinite(value).all():
            raise ValueError(f"{name} contains NaN or infinity")
        if np.any(value < 0):
            raise ValueError(f"{name} has negative entries")
        sums = value.sum(axis=-1)
        if not np.allclose(sums, 1.0):
            what = "must sum to 1" if value.ndim == 1 else "rows must sum to 1"
            raise ValueError(f"{name} {what} (got {'sum' if value.ndim == 1 else 'row sums'} "
                             f"{np.round(sums, 6)})")
        return value

    def _needs_init(self, code, name):
        """hmmlearn's rule: initialise a parameter if its letter is in ``init_params`` (warning
        when that overwrites a value the user set) or if it has no value yet."""
        if code in self.init_params:
            if hasattr(self, name) and not getattr(self, "_fitted_by_vbfast", False):
                message = (f"Even though the {name!r} attribute is set, it will be "
                           f"overwritten during initialization because 'init_params' "
                           f"contains {code!r}")
                warnings.warn(message, UserWarning, stacklevel=5)
                _log.warning(message)
            return True
        return not hasattr(self, name)

    # ------------------------------------------------------------------ fitting
    def fit(self, X, lengths=None):
        """Estimate the parameters by ``method``: Baum-Welch EM, mean-field variational
        Bayes (``_mean_field.py``) or blocked Gibbs sampling (``_gibbs.py``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The sequences, concatenated.
        lengths : array-like of int, shape (n_sequences,), default=None
            Lengths of the sequences of X (summing to n_samples); None: one sequence.

        Returns
        -------
        self
        """
        return self._fit(X, lengths)

    @all_or_nothing
    def _fit(self, X, lengths):
        self._check_parameters()
        X = self._check_X(X, fitting=True)
        n_threads = resolve_n_threads(self.n_threads)
        sequences = Sequences(lengths, X.shape[0], n_threads, self.n_components)
        with single_threaded_blas():
            params = self._initial_parameters(X, sequences)
            if self.n_iter == 0:  # hmmlearn: initialise only
                return self._store_initial(params, X)
            if self.method != "em":
                return self._fit_bayes(X, sequences, params)
            data = HMMData(X, sequences, self)
            method = BaumWelch(self, params, monotone=self._flat_priors())
            result = run_fits(lambda run: method, data, n_runs=1, max_iter=self.n_iter,
                              tol=self.tol, verbose=int(self.verbose))
        self._set_params(result.attributes, X)
        store_trace(self, result)
        self.n_kept_states_ = int(method.n_kept)
        return self._store_monitor(result)

    def _fit_bayes(self, X, sequences, params):
        """method='mean_field' (``_mean_field.MeanField`` through the loop) or 'gibbs'
        (``_gibbs.run_chains``); stores the posterior means as the parameters."""
        K = self.n_components
        # Initialised (not user-given) start and transition probabilities start uniform: the
        # random peaked ones of hmmlearn's initialisation can trap q (or a chain) from the
        # first E-step in a poor optimum (every state on the data mean).
        params = dict(params)
        if "s" in self.init_params or not hasattr(self, "startprob_"):
            params["startprob"] = np.full(K, 1.0 / K)
        if "t" in self.init_params or not hasattr(self, "transmat_"):
            params["transmat"] = np.full((K, K), 1.0 / K)
        conj = self._conjugate(X, sequences.n_threads, {}, params)
        extra = {}
        if self.method == "mean_field":
            method = _mean_field.MeanField(self, _mean_field.VBData(X, sequences, conj), params)
            result = run_fits(lambda run: method, method.data, n_runs=1, max_iter=self.n_iter,
                              tol=self.tol, verbose=int(self.verbose))
            attributes = dict(result.attributes)
            extra = attributes.pop("posterior")
        else:
            attributes, extra = _gibbs.run_chains(self, X, sequences, conj, params,
                                                  check_random_state(self.random_state))
            result = extra.pop("first")
            extra["converged"] = warn_if_not_converged(
                extra["sampler_diagnostics_"]["max_rhat"], "the log-likelihood trace and the "
                "emission parameters")
        self._set_params(attributes, X)
        store_trace(self, result)
        if "converged" in extra:
            self.converged_ = bool(extra.pop("converged"))
        for name, value in extra.items():
            setattr(self, name, value)
        self.n_kept_states_ = 0
        return self._store_monitor(result)

    def _store_monitor(self, result):
        """hmmlearn's ``monitor_`` from the loop's trace (the last step of every fit)."""
        monitor = ConvergenceMonitor(self.tol, self.n_iter, self.verbose)
        monitor.history.extend(float(b) for b in result.bounds)
        monitor.iter = int(result.n_iter)
        self.monitor_ = monitor
        self._fitted_by_vbfast = True
        return self

    def _conjugate(self, X, n_threads, cache, params):
        raise ValueError(f"method={self.method!r} is not available for "
                         f"{type(self).__name__}")

    def _store_initial(self, params, X):
        """n_iter=0: the initial parameters as the fitted ones, an empty trace."""
        self._set_params({k: np.array(v, copy=True) for k, v in params.items()}, X)
        self.converged_, self.n_iter_, self.lower_bound_ = False, 0, -np.inf
        self.lower_bounds_, self.iteration_times_ = np.empty(0), np.empty(0)
        self.n_kept_states_ = 0
        self.monitor_ = ConvergenceMonitor(self.tol, self.n_iter, self.verbose)
        self._fitted_by_vbfast = True
        return self

    def _initial_parameters(self, X, sequences):
        """theta to start from: hmmlearn's initialisation for the letters of ``init_params``
        and for the parameters not set, the user's values for the rest."""
        K = self.n_components
        random_state = check_random_state(self.random_state)
        init = 1.0 / K
        if self._needs_init("s", "startprob_"):
            startprob = random_state.dirichlet(np.full(K, init))
        else:
            startprob = self._check_distribution("startprob_", self.startprob_, (K,))
        if self._needs_init("t", "transmat_"):
            transmat = random_state.dirichlet(np.full(K, init), size=K)
        else:
            transmat = self._check_distribution("transmat_", self.transmat_, (K, K))
        params = {"startprob": startprob, "transmat": transmat}
        params.update(self._initial_emission(X))
        return params

    def _m_step(self, params, stats, priors=None):
        """hmmlearn's M-step (see the module docstring); returns (new params, events kept).
        ``priors``: a dict kept for the fit (``BaumWelch.priors``), where the first update
        stores the prior arrays (and a family's ``_emission_m_step`` its own), so the later
        ones do not rebuild them; None: a fresh one."""
        priors = {} if priors is None else priors
        if "startprob_prior" not in priors:
            K = self.n_components
            priors["startprob_prior"] = self._prior("startprob_prior", (K,))
            priors["transmat_prior"] = self._prior("transmat_prior", (K, K))
        new = dict(params)
        kept = 0
        if "s" in self.params:
            new["startprob"], k = _dirichlet_update(
                stats["start"], priors["startprob_prior"], params["startprob"])
            kept += k
        if "t" in self.params:
            new["transmat"], k = _dirichlet_update(
                stats["trans"], priors["transmat_prior"], params["transmat"])
            kept += k
        emission, k = self._emission_m_step(params, stats, priors)
        new.update(emission)
        return new, kept + k

    # ------------------------------------------------------------------ inference
    def _fused_pass(self, X, sequences, params, cache):
        """The EM pass's statistics (``HMMData.run_pass``'s fields) by a family's fused
        kernel, or None where it has none (then log-densities, forward-backward and emission
        statistics run as three passes)."""
        return None

    def _fitted_params(self):
        check_is_fitted(self, "startprob_")
        K = self.n_components
        params = {"startprob": self._check_distribution("startprob_", self.startprob_, (K,)),
                  "transmat": self._check_distribution("transmat_", self.transmat_, (K, K))}
        params.update(self._current_emission())
        return params

    def _prepare(self, X, lengths):
        params = self._fitted_params()
        X = self._check_X(X, fitting=False)
        sequences = Sequences(lengths, X.shape[0], resolve_n_threads(self.n_threads),
                              self.n_components)
        return X, sequences, params

    def _forward_backward(self, X, lengths, posteriors):
        X, sequences, params = self._prepare(X, lengths)
        with single_threaded_blas():
            logprob = self._log_density(X, params, sequences.n_threads)
            return sequences.forward_backward(logprob, params["startprob"],
                                              params["transmat"], posteriors=posteriors,
                                              stats=False)

    def score_samples(self, X, lengths=None):
        """Log-likelihood of X and the state posteriors.

        Returns
        -------
        log_prob : float
            log p(X) = sum over sequences of log p(sequence).
        posteriors : ndarray of shape (n_samples, n_components)
            gamma_nk = p(z_n = k | the sequence of x_n).
        """
        out = self._forward_backward(X, lengths, posteriors=True)
        return out["log_likelihood"], out["posteriors"]

    def score(self, X, lengths=None):
        """log p(X) = sum over sequences of log p(sequence) (a float)."""
        return self._forward_backward(X, lengths, posteriors=False)["log_likelihood"]

    def score_sequences(self, X, lengths=None):
        """log p(sequence) of every sequence, shape (n_sequences,)."""
        return self._forward_backward(X, lengths, posteriors=False)["seq_ll"]

    def predict_proba(self, X, lengths=None):
        """State posteriors gamma_nk, shape (n_samples, n_components)."""
        return self.score_samples(X, lengths)[1]

    def decode(self, X, lengths=None, algorithm=None):
        """Most likely states.

        Parameters
        ----------
        algorithm : {'viterbi', 'map'}, default=None (``self.algorithm``)
            'viterbi': the most probable path; 'map': the most probable state of every
            sample (argmax of the posteriors).

        Returns
        -------
        log_prob : float
            'viterbi': log p(X, path) summed over sequences. 'map': sum_n log max_k gamma_nk
            (hmmlearn returns sum_n max_k gamma_nk, a sum of probabilities).
        states : ndarray of shape (n_samples,)
        """
        algorithm = algorithm or self.algorithm
        check_option(algorithm, "algorithm", _DECODERS)
        if algorithm == "map":
            _, post = self.score_samples(X, lengths)
            with np.errstate(divide="ignore"):
                return float(np.log(post.max(axis=1)).sum()), post.argmax(axis=1)
        X, sequences, params = self._prepare(X, lengths)
        with single_threaded_blas():
            logprob = self._log_density(X, params, sequences.n_threads)
            seq_ll, states = sequences.viterbi(logprob, params["startprob"],
                                               params["transmat"])
        return float(seq_ll.sum()), states

    def predict(self, X, lengths=None):
        """Most likely states by ``self.algorithm``, shape (n_samples,)."""
        return self.decode(X, lengths)[1]

    def sample(self, n_samples=1, random_state=None, currstate=None):
        """Draw a sequence from the model.

        Parameters
        ----------
        n_samples : int
        random_state : int, RandomState or None (``self.random_state``)
        currstate : int or None
            The state of the first sample (None: drawn from ``startprob_``).

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        states : ndarray of shape (n_samples,)
        """
        params = self._fitted_params()
        check_scalar(n_samples, "n_samples", "int", min_val=1)
        rs = check_random_state(self.random_state if random_state is None else random_state)
        K = self.n_components
        trans_cdf = np.cumsum(params["transmat"], axis=1)
        if currstate is None:
            state = int((np.cumsum(params["startprob"]) > rs.rand()).argmax())
        else:
            state = int(currstate)
            if not 0 <= state < K:
                raise ValueError(f"currstate must be in [0, {K}), got {currstate!r}")
        states = np.empty(n_samples, dtype=int)
        rows = []
        for t in range(n_samples):
            if t > 0:
                state = int((trans_cdf[state] > rs.rand()).argmax())
            states[t] = state
            rows.append(self._sample_state(params, state, rs))
        return np.atleast_2d(np.array(rows)), states

    def get_stationary_distribution(self):
        """The stationary distribution of ``transmat_`` (its left eigenvector of eigenvalue
        one, normalised), shape (n_components,)."""
        check_is_fitted(self, "transmat_")
        eigvals, eigvecs = linalg.eig(np.asarray(self.transmat_, dtype=np.float64).T)
        vec = np.real_if_close(eigvecs[:, np.argmax(eigvals.real)])
        return np.real(vec / vec.sum())

    def _n_parameters(self):
        K = self.n_components
        counts = {"s": K - 1, "t": K * (K - 1)}
        counts.update(self._emission_n_parameters())
        return sum(v for k, v in counts.items() if k in self.params)

    def aic(self, X, lengths=None):
        """-2 log p(X) + 2 (free parameters of the letters in ``params``)."""
        return -2 * self.score(X, lengths) + 2 * self._n_parameters()

    def bic(self, X, lengths=None):
        """-2 log p(X) + (free parameters) log n_samples."""
        n = len(self._check_X(X, fitting=False))
        return -2 * self.score(X, lengths) + self._n_parameters() * np.log(n)

    def _flat_priors(self):
        """Whether the M-step is plain maximum likelihood (then the log-likelihood never
        decreases and the bound-decrease guard applies); hmmlearn's default emission priors
        make it a MAP step, whose log-likelihood may dip."""
        K = self.n_components
        return (np.all(self._prior("startprob_prior", (K,)) == 1.0)
                and np.all(self._prior("transmat_prior", (K, K)) == 1.0)
                and self._flat_emission_priors())
