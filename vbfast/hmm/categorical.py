"""Categorical emissions: ``CategoricalHMM`` (symbols 0 .. n_features - 1, X of shape
(n_samples, 1)).

l_nk = log B[k, x_n]; the emission statistics are the expected symbol counts
O[k, v] = sum_n gamma_nk [x_n = v]; the M-step is hmmlearn's: B[k] proportional to
max(emissionprob_prior - 1 + O[k], 0) (a state with no expected count keeps its row).
"""
import numpy as np

from .._core.validation import as_real_array, check_random_state, check_scalar
from ._conjugate import CategoricalConjugate
from .base import _METHODS, BaseHMM, init_arguments


class CategoricalHMM(BaseHMM):
    """Hidden Markov model with categorical emissions.

    x_t | z_t = k ~ Cat(B[k]). Parameters, attributes and methods as hmmlearn's
    ``CategoricalHMM``, fitted by Baum-Welch EM through vbfast's loop and kernels.

    Parameters
    ----------
    n_components : int, default=1
    startprob_prior, transmat_prior : float, array or None, default=None
        As in ``GaussianHMM`` (None: 1.0 for 'em', 1 / n_components for the Bayesian methods).
    emissionprob_prior : float or array of shape (K, n_features), default=1.0
        Dirichlet prior of every emission row.
    n_features : int or None, default=None
        Number of symbols; None: inferred from the data as max(X) + 1 when fitting (this
        parameter is left as given; the fitted number is ``emissionprob_.shape[1]``).
    algorithm, random_state, n_iter, tol, verbose, implementation, method, n_threads
        As in ``GaussianHMM``.
    params, init_params : str, default='ste'
        's' startprob, 't' transmat, 'e' emissionprob.
    sticky, n_draws, burn_in, thin, n_chains
        As in ``GaussianHMM`` ('mean_field' and 'gibbs'). The Bayesian methods put Dirichlet
        priors ``startprob_prior``, ``transmat_prior`` (+ ``sticky``) and
        ``emissionprob_prior`` (every entry > 0) on the parameters.

    Attributes
    ----------
    startprob_ : (K,), transmat_ : (K, K), emissionprob_ : (K, n_symbols)
    monitor_, lower_bounds_, iteration_times_, lower_bound_, n_iter_, converged_,
    n_kept_states_ : as in ``GaussianHMM``
    startprob_posterior_, transmat_posterior_, emissionprob_posterior_ : 'mean_field': the
        Dirichlet concentrations of q (hmmlearn's ``VariationalCategoricalHMM`` names)
    n_merges_ : 'mean_field', as in ``GaussianHMM``
    posterior_samples_, sampler_diagnostics_, log_joint_trace_ : 'gibbs', as in
        ``GaussianHMM``
    """

    _methods = _METHODS

    _emission_letters = "e"
    _param_names = BaseHMM._base_param_names + (
        "emissionprob_prior", "n_features") + BaseHMM._bayes_param_names

    def __init__(self, n_components=1, startprob_prior=None, transmat_prior=None, *,
                 emissionprob_prior=1.0, n_features=None, algorithm="viterbi",
                 random_state=None, n_iter=10, tol=1e-2, verbose=False, params="ste",
                 init_params="ste", implementation="log", method="em", n_threads=None,
                 sticky=0.0, n_draws=200, burn_in=100, thin=1, n_chains=2):
        super().__init__(**init_arguments(locals()))

    def _check_emission_parameters(self):
        if self.n_features is not None:
            check_scalar(self.n_features, "n_features", "int", min_val=1)

    def _n_symbols(self):
        if "emissionprob_" in self.__dict__:
            return np.asarray(self.emissionprob_).shape[1]
        return self.n_features

    def _check_X(self, X, fitting):
        """Symbols as an (n_samples,) intp array; ValueError for non-integer, negative,
        too-large, NaN or infinite symbols, or more than one column."""
        if hasattr(X, "toarray") and hasattr(X, "nnz"):
            raise TypeError("X is a sparse matrix; CategoricalHMM needs dense symbols of "
                            "shape (n_samples, 1) (use X.toarray()).")
        arr = as_real_array(X, "X", "integer symbols")
        if arr.ndim == 2 and arr.shape[0] == 0:
            raise ValueError(f"X has 0 samples (shape={arr.shape}) while a minimum of 1 is "
                             "required.")
        if arr.ndim == 2 and arr.shape[1] == 0:
            raise ValueError(f"X has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is "
                             "required.")
        if arr.ndim == 1:
            raise ValueError("X must be a 2-D array of shape (n_samples, 1) of symbols, got "
                             "a 1-D array: use X.reshape(-1, 1)")
        if arr.ndim != 2 or arr.shape[1] != 1:
            raise ValueError(f"X must have shape (n_samples, 1) (one symbol per sample), "
                             f"got shape {arr.shape}")
        if arr.shape[0] < 1:
            raise ValueError("X has 0 samples; at least one is required")
        arr = arr[:, 0]
        if arr.dtype.kind == "f":
            if not np.isfinite(arr).all():
                bad = "NaN" if np.isnan(arr).any() else "infinity"
                raise ValueError(f"X contains {bad}; symbols must be non-negative integers")
            if np.any(arr != np.floor(arr)):
                raise ValueError("Symbols should be integers: X has non-integer values")
        if np.any(arr < 0):
            raise ValueError("Symbols should be nonnegative: X has negative values")
        symbols = arr.astype(np.intp)
        limit = self.n_features if fitting else self._n_symbols()
        if fitting and "emissionprob_" in self.__dict__ and "e" not in self.init_params:
            limit = self._n_symbols()
        if limit is not None and symbols.max() >= limit:
            raise ValueError(f"Largest symbol is {symbols.max()} but the model only emits "
                             f"symbols up to {limit - 1}")
        return symbols

    def _flat_emission_priors(self):
        return bool(np.all(np.asarray(self.emissionprob_prior) == 1.0))

    def _initial_emission(self, X):
        K = self.n_components
        V = self.n_features if self.n_features is not None else int(X.max()) + 1
        if self._needs_init("e", "emissionprob_"):
            # hmmlearn draws from the RandomState of random_state afresh (for an int seed)
            B = check_random_state(self.random_state).rand(K, V)
            B /= B.sum(axis=1, keepdims=True)
        else:
            B = self._check_distribution("emissionprob_", self.emissionprob_,
                                         (K, np.asarray(self.emissionprob_).shape[-1]))
            if B.shape[1] <= X.max():
                raise ValueError(f"Largest symbol is {X.max()} but emissionprob_ has "
                                 f"{B.shape[1]} columns")
        return {"emissionprob": B}

    def _conjugate(self, X, n_threads, cache, params):
        return CategoricalConjugate(self, X, n_threads, cache,
                                    params["emissionprob"].shape[1])

    def _current_emission(self):
        K = self.n_components
        B = np.asarray(self.emissionprob_, dtype=np.float64)
        return {"emissionprob": self._check_distribution("emissionprob_", B,
                                                         (K, B.shape[-1]))}

    def _log_density(self, X, params, n_threads):
        with np.errstate(divide="ignore"):
            logB = np.log(params["emissionprob"])
        return np.ascontiguousarray(logB.T[X])

    def _emission_stats(self, X, posteriors, params, n_threads, cache):
        V = params["emissionprob"].shape[1]
        # bincount adds in row order: deterministic
        obs = np.stack([np.bincount(X, weights=posteriors[:, k], minlength=V)
                        for k in range(posteriors.shape[1])])
        return {"obs": obs}

    def _emission_m_step(self, params, stats, priors):
        if "e" not in self.params:
            return {}, 0
        B = params["emissionprob"]
        prior = np.broadcast_to(np.asarray(self.emissionprob_prior, dtype=np.float64),
                                B.shape)
        new = np.maximum(prior - 1.0 + stats["obs"], 0.0)
        sums = new.sum(axis=1, keepdims=True)
        empty = ~(sums > 0)
        new = np.where(empty, B, new / np.where(empty, 1.0, sums))
        return {"emissionprob": new}, int(np.count_nonzero(empty))

    def _set_params(self, attributes, X):
        self.startprob_ = attributes["startprob"]
        self.transmat_ = attributes["transmat"]
        self.emissionprob_ = attributes["emissionprob"]
        self.n_features_in_ = 1

    def _emission_n_parameters(self):
        K = self.n_components
        return {"e": K * (self._n_symbols() - 1)}

    def _sample_state(self, params, state, rs):
        cdf = np.cumsum(params["emissionprob"][state])
        return [(cdf > rs.rand()).argmax()]
