"""Gaussian emissions: ``GaussianHMM`` (covariance types 'full', 'tied', 'diag', 'spherical').

The emission log-densities come from ``vbfast.hmm._hmm.gaussian_log_density`` (chunk-parallel
over rows), the emission statistics from the mixture's Gaussian pass
(``vbfast.emissions.gaussian.GaussianPass`` driven by the posteriors as responsibilities,
chunk-parallel), so one long sequence is not left on one core for its emission work. Over
many sequences ('diag' / 'spherical', K <= SMALL_K, ``Sequences.spread``) one fused kernel
(``_hmm.gaussian_em_pass``) does all three per sequence instead (``_fused_pass``).

The M-step is hmmlearn's (Huang, Acero & Hon, *Spoken Language Processing*, pp. 443-445), with
N_k = sum_n gamma_nk, w = ``means_weight``, mu_0 = ``means_prior``, Psi = ``covars_prior``,
nu = ``covars_weight``:

    mu_k = (w mu_0 + sum_n gamma_nk x_n) / (w + N_k)
    C_k  = w (mu_k - mu_0)(mu_k - mu_0)^T + sum_n gamma_nk (x_n - mu_k)(x_n - mu_k)^T
    full:      Sigma_k = (Psi + C_k) / (max(nu - D, 0) + N_k)
    tied:      Sigma   = (Psi + sum_k C_k) / (max(nu - D, 0) + sum_k N_k)
    diag:      sigma2_kj = (Psi + diag(C_k)_j) / max(max(nu - 1, 0) + N_k, 1e-5)
    spherical: the mean over j of the diag ones

computed in coordinates shifted by the data mean (better conditioned than hmmlearn's raw
second moments; the same estimates), then floored by ``min_covar``.
"""
import numpy as np

from ..emissions import gaussian as G
from .._core.clustering import kmeans
from .._core.sharding import n_groups
from .._core.validation import check_array, check_random_state, check_scalar, check_option
from . import _hmm
from ._conjugate import GaussianConjugate
from ._sequences import LONG_MAX_STATES
from .base import _METHODS, EMPTY_STATE, BaseHMM, init_arguments

_CODES = {"full": 0, "tied": 1, "diag": 2, "spherical": 3}
LOG_2PI = np.log(2.0 * np.pi)
CHUNK_SIZE = 256
# 'diag' / 'spherical' statistics at K <= SMALL_K run in the HMM's own register kernel
# (``_hmm.gaussian_stats``) over groups of rows: at least ROWS_PER_STATS_GROUP rows a group,
# at most MAX_STATS_GROUPS groups (a rule on n_samples only: the same bits for any thread
# count)
SMALL_K = 16
ROWS_PER_STATS_GROUP = 2048
MAX_STATS_GROUPS = 128


def _canonical_shape(covariance_type, K, D):
    return {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}[
        covariance_type]


def _log_density_inputs(covars, covariance_type, K, D):
    """(precision array, kernel code, c_k (K,)) for ``_hmm.gaussian_log_density`` from the
    covariances in their canonical shape; ValueError if one is not positive-definite."""
    covars = np.asarray(covars, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        U = G.precision_cholesky(covars, covariance_type)
        log_det = G.log_det_cholesky(U, covariance_type, D)
        prec = np.ascontiguousarray(U).ravel()
    else:  # (the long pass's code: the same inputs on every path)
        prec, log_const = _hmm.diag_precisions(np.ascontiguousarray(covars).reshape(-1), K, D,
                                               covariance_type == "spherical")
        return prec, _CODES[covariance_type], log_const
    log_const = np.broadcast_to(log_det - 0.5 * D * LOG_2PI, (K,))
    return prec, _CODES[covariance_type], np.ascontiguousarray(log_const, dtype=np.float64)


def _unpack_small_k(total, K, D, spherical):
    """nk (K,), s1 (K, D), s2 ((K, D) 'diag', (K,) 'spherical') from a summed
    ``_hmm.gaussian_stats`` slot [nk (Kp,), s1 (D, Kp), s2 (D, Kp) or (Kp,)]."""
    Kp = (K + 3) // 4 * 4
    s2 = total[Kp + D * Kp:]
    return {"nk": total[:K].copy(), "s1": total[Kp:Kp + D * Kp].reshape(D, Kp)[:, :K].T.copy(),
            "s2": s2[:K].copy() if spherical else s2.reshape(D, Kp)[:, :K].T.copy()}


def _full_covars(covars, covariance_type, K, D):
    """hmmlearn's ``covars_`` view: (K, D, D) for every type."""
    covars = np.asarray(covars, dtype=np.float64)
    if covariance_type == "full":
        return covars.copy()
    if covariance_type == "tied":
        return np.tile(covars, (K, 1, 1))
    if covariance_type == "diag":
        return np.array([np.diag(c) for c in covars]).reshape(K, D, D)
    return covars[:, None, None] * np.eye(D)[None]


def _validate_covars(covars, covariance_type, K, D=None):
    """User-given covariances in the type's shape (hmmlearn's): returns the canonical form
    ('spherical' (K,), also from hmmlearn's (K, D) tiled form). ValueError naming covars_."""
    covars = np.array(covars, dtype=np.float64)
    if not np.isfinite(covars).all():
        raise ValueError("covars_ contains NaN or infinity")
    if covariance_type == "spherical":
        if covars.ndim == 2 and covars.shape[0] == K:
            covars = covars.mean(axis=1)
        if covars.shape != (K,):
            raise ValueError(f"'spherical' covars_ must have shape ({K},), got {covars.shape}")
        if np.any(covars <= 0):
            raise ValueError("'spherical' covars_ must be positive")
    elif covariance_type == "diag":
        if covars.ndim != 2 or covars.shape[0] != K or (D is not None and covars.shape[1] != D):
            raise ValueError(f"'diag' covars_ must have shape (n_components, n_features), "
                             f"got {covars.shape}")
        if np.any(covars <= 0):
            raise ValueError("'diag' covars_ must be positive")
    elif covariance_type == "tied":
        if covars.ndim != 2 or covars.shape[0] != covars.shape[1] or (
                D is not None and covars.shape[0] != D):
            raise ValueError(f"'tied' covars_ must have shape (n_features, n_features), got "
                             f"{covars.shape}")
        if not np.allclose(covars, covars.T) or np.any(np.linalg.eigvalsh(covars) <= 0):
            raise ValueError("'tied' covars_ must be symmetric, positive-definite")
    else:
        if covars.ndim != 3 or covars.shape[0] != K or covars.shape[1] != covars.shape[2] or (
                D is not None and covars.shape[1] != D):
            raise ValueError(f"'full' covars_ must have shape (n_components, n_features, "
                             f"n_features), got {covars.shape}")
        for k, cv in enumerate(covars):
            if not np.allclose(cv, cv.T) or np.any(np.linalg.eigvalsh(cv) <= 0):
                raise ValueError(f"component {k} of 'full' covars_ must be symmetric, "
                                 "positive-definite")
    return covars


def _per_state(value, K, D, name):
    """A prior given as a scalar, per state (K,), or per state and feature (K, D), as a
    (K, D)-broadcastable array."""
    value = np.asarray(value, dtype=np.float64)
    if value.ndim == 1 and value.shape[0] == K and K != D:
        value = value[:, None]
    try:
        return np.broadcast_to(value, (K, D))
    except ValueError:
        raise ValueError(f"{name} must be a scalar, or of shape ({K},) or ({K}, {D}), got "
                         f"shape {value.shape}") from None


def _floor_eigenvalues(cov, floor):
    """Symmetric matrices (..., D, D) with their eigenvalues below ``floor`` raised to it
    (each unchanged when none is): one batched ``eigh`` for a stack, a closed form for
    D = 1 (the 1 x 1 case of the same rule)."""
    cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
    if cov.shape[-1] == 1:
        return np.maximum(cov, floor)
    w, V = np.linalg.eigh(cov)
    low = w.min(axis=-1) < floor
    if not low.any():
        return cov
    raised = (V * np.maximum(w, floor)[..., None, :]) @ np.swapaxes(V, -1, -2)
    return np.where(low[..., None, None], raised, cov)


class GaussianHMM(BaseHMM):
    """Hidden Markov model with Gaussian emissions.

    x_t | z_t = k ~ N(mu_k, Sigma_k). Parameters, attributes and methods as hmmlearn's
    ``GaussianHMM`` (same defaults, ``covars_`` read as (K, D, D) and written in the type's
    shape), fitted by Baum-Welch EM through vbfast's loop and kernels; see
    ``vbfast.hmm.base`` for the differences (unvisited states keep their parameters,
    covariances floored by ``min_covar`` every iteration, never NaN).

    Parameters
    ----------
    n_components : int, default=1
        Number of states K.
    covariance_type : {'spherical', 'diag', 'full', 'tied'}, default='diag'
    min_covar : float, default=1e-3
        Added to the diagonal of the initial covariance; floor of the covariances' eigenvalues
        (variances) at every iteration.
    startprob_prior, transmat_prior : float, array or None, default=None
        Dirichlet priors of the start distribution and of every transition row. None: 1.0
        for 'em' (hmmlearn's default: maximum likelihood), 1 / n_components for
        'mean_field' and 'gibbs' (hmmlearn's ``VariationalGaussianHMM`` default: sparse
        rows, so that with merge moves mean field switches off states the data do not need).
    means_prior, means_weight : float or array, default=0
        Normal prior of the means (mean, precision weight).
    covars_prior, covars_weight : float or array, default=1e-2, 1
        Inverse-gamma ('spherical', 'diag') or inverse-Wishart ('full', 'tied') prior.
    algorithm : {'viterbi', 'map'}, default='viterbi'
        Decoder of ``decode`` / ``predict``.
    random_state : int, RandomState or None
    n_iter : int, default=10
        Maximum number of EM iterations.
    tol : float, default=1e-2
        Stop when the log-likelihood gains less than this.
    verbose : bool or int, default=False
    params, init_params : str, default='stmc'
        Letters of the parameters updated by EM / initialised by ``fit``: 's' startprob,
        't' transmat, 'm' means, 'c' covars.
    implementation : {'log', 'scaling'}, default='log'
        Accepted for compatibility; vbfast always runs its scaled forward-backward (exact
        log-space fallback where it would underflow).
    method : {'em', 'mean_field', 'gibbs'}, default='em'
        'em': Baum-Welch. 'mean_field': variational Bayes (``vbfast.hmm._mean_field``;
        ``lower_bounds_`` is the exact ELBO, never decreasing). 'gibbs': blocked Gibbs
        sampling with forward-filtering backward-sampling (``vbfast.hmm._gibbs``). Both
        Bayesian methods use the Dirichlet priors ``startprob_prior`` / ``transmat_prior``
        (+ ``sticky``) and a Normal-Wishart ('full', 'tied') or Normal-Gamma ('diag',
        'spherical') prior on the emissions (``vbfast.hmm._conjugate``), with:
    beta_prior : float or (K,), default=None (1)
        Precision scale beta0 of the means' prior N(m0, (beta0 Lambda)^-1). m0 is
        ``means_prior`` for these methods, the data mean when ``means_prior`` is all zero (the
        default).
    dof_prior : float or (K,), default=None (n_features)
        Wishart degrees of freedom nu0 ('full', 'tied'), or twice the Gamma shape of every
        precision ('diag', 'spherical').
    scale_prior : array, default=None (1e-3 x the data covariance)
        psi0 = W0^{-1}: the inverse Wishart scale ('full' (K, D, D), 'tied' (D, D)) or twice
        the Gamma rate ('diag' (K, D), 'spherical' (K,)); None: 1e-3 times the data's
        covariance (its diagonal for 'diag', mean variance for 'spherical'), so the default
        prior is weak and scales with the data.
    sticky : float, default=0
        Self-transition bias kappa >= 0 added to the diagonal of the transition prior (Fox et
        al.'s sticky HMM); 'mean_field' and 'gibbs'.
    n_draws, burn_in, thin, n_chains : int, default=200, 100, 1, 2
        'gibbs': draws kept per chain, sweeps discarded first, keep every ``thin``-th sweep,
        number of chains. ``n_iter`` and ``tol`` do not apply to it.
    n_threads : int or None, default=None
        OpenMP threads (None: every core); results do not depend on it.

    Attributes
    ----------
    startprob_ : (K,), transmat_ : (K, K), means_ : (K, D)
    covars_ : (K, D, D) (property; its setter takes the type's shape: 'spherical' (K,),
        'diag' (K, D), 'full' (K, D, D), 'tied' (D, D))
    n_features : int (the number of features, from ``means_``)
    monitor_ : ConvergenceMonitor
    lower_bounds_, iteration_times_ : (n_iter_,) log-likelihood and wall time per iteration
    lower_bound_, n_iter_, converged_, n_kept_states_ (times a state, transition row or start
        vector with no expected count kept its previous value)

    With ``method='mean_field'`` the parameters are the posterior means under q (covars_ =
    (E Lambda)^{-1}), and q's parameters are ``startprob_posterior_``,
    ``transmat_posterior_`` (Dirichlet concentrations), ``means_posterior_``,
    ``beta_posterior_``, ``dof_posterior_``, ``scale_posterior_`` (hmmlearn's
    ``VariationalGaussianHMM`` names); ``n_merges_`` counts the merges of two states kept
    at convergence (``vbfast.hmm._mean_field``). With ``method='gibbs'`` they are the means of the
    relabelled draws, and ``posterior_samples_`` (startprob, transmat, means, covars,
    log_joint; leading axes (n_chains, n_draws)), ``sampler_diagnostics_`` (split-R-hat and
    ESS), ``log_joint_trace_`` (n_chains, n_sweeps) are set; ``lower_bounds_`` is chain 0's
    trace of log p(X, z | theta) and ``converged_`` says whether every split-R-hat is below
    1.05.
    """

    _methods = _METHODS

    _emission_letters = "mc"
    _param_names = BaseHMM._base_param_names + (
        "covariance_type", "min_covar", "means_prior", "means_weight", "covars_prior",
        "covars_weight", "beta_prior", "dof_prior", "scale_prior") + BaseHMM._bayes_param_names

    def __init__(self, n_components=1, covariance_type="diag", min_covar=1e-3,
                 startprob_prior=None, transmat_prior=None, means_prior=0, means_weight=0,
                 covars_prior=1e-2, covars_weight=1, algorithm="viterbi", random_state=None,
                 n_iter=10, tol=1e-2, verbose=False, params="stmc", init_params="stmc",
                 implementation="log", method="em", n_threads=None, beta_prior=None,
                 dof_prior=None, scale_prior=None, sticky=0.0, n_draws=200, burn_in=100,
                 thin=1, n_chains=2):
        super().__init__(**init_arguments(locals()))

    # ------------------------------------------------------------------ attributes
    @property
    def covars_(self):
        """Covariances as (K, D, D) matrices, whatever the type (hmmlearn's view)."""
        if "_covars_" not in self.__dict__:
            raise AttributeError("covars_")
        K = self.n_components
        cov = self._covars_
        D = cov.shape[-1] if self.covariance_type != "spherical" else self.n_features
        return _full_covars(cov, self.covariance_type, K, D)

    @covars_.setter
    def covars_(self, covars):
        D = np.asarray(self.means_).shape[1] if hasattr(self, "means_") else None
        self._covars_ = _validate_covars(covars, self.covariance_type, self.n_components, D)

    @property
    def n_features(self):
        """Number of features (from ``means_``)."""
        if "means_" not in self.__dict__:
            raise AttributeError("n_features")
        return np.asarray(self.means_).shape[1]

    # ------------------------------------------------------------------ checks
    def _check_emission_parameters(self):
        check_option(self.covariance_type, "covariance_type", _CODES)
        check_scalar(self.min_covar, "min_covar", "real", min_val=0.0)

    def _check_X(self, X, fitting):
        n_features = None if fitting else self.n_features
        return check_array(X, n_features=n_features, estimator_name=type(self).__name__)

    def _flat_emission_priors(self):
        return (np.all(np.asarray(self.means_weight) == 0)
                and np.all(np.asarray(self.covars_prior) == 0)
                and np.all(np.asarray(self.covars_weight) <= (
                    1 if self.covariance_type in ("diag", "spherical") else 0)))

    # ------------------------------------------------------------------ emission unit
    def _initial_emission(self, X):
        K, (N, D) = self.n_components, X.shape
        if self._needs_init("m", "means_"):
            if N >= K:
                means, _, _, _ = kmeans(X, K, random_state=check_random_state(
                    self.random_state), n_threads=1)
            else:  # fewer samples than states: states start on samples (some shared)
                rs = check_random_state(self.random_state)
                means = np.asarray(X, dtype=np.float64)[rs.randint(N, size=K)]
        else:
            means = np.array(self.means_, dtype=np.float64)
            if means.shape != (K, D):
                raise ValueError(f"means_ must have shape ({K}, {D}), got {means.shape}")
            if not np.isfinite(means).all():
                raise ValueError("means_ contains NaN or infinity")
        if self._needs_init("c", "covars_"):
            Xd = np.asarray(X, dtype=np.float64)
            cv = np.atleast_2d(np.cov(Xd.T)) if N > 1 else np.zeros((D, D))
            cv = cv + self.min_covar * np.eye(D)
            covars = {"full": np.tile(cv, (K, 1, 1)), "tied": cv,
                      "diag": np.tile(np.diag(cv), (K, 1)),
                      "spherical": np.full(K, np.diag(cv).mean())}[self.covariance_type]
            if not np.all(np.linalg.eigvalsh(cv) > 0):  # constant features, min_covar 0
                covars = _validate_covars(covars, self.covariance_type, K, D)
        else:
            covars = _validate_covars(self._covars_, self.covariance_type, K, D)
        return {"means": np.asarray(means, dtype=np.float64), "covars": covars}

    def _conjugate(self, X, n_threads, cache, params):
        return GaussianConjugate(self, X, n_threads, cache)

    def _current_emission(self):
        return {"means": np.asarray(self.means_, dtype=np.float64),
                "covars": np.asarray(self._covars_, dtype=np.float64)}

    def _density_form(self, params):
        """(covariance type, covariances) the log-densities are computed in: one feature's
        'full' / 'tied' 1 x 1 covariances as 'diag' variances (K, 1) (the affine form of
        'diag' costs less than a triangular product per state and chunk)."""
        K, D = params["means"].shape
        ctype, covars = self.covariance_type, params["covars"]
        if D == 1 and ctype in ("full", "tied"):
            ctype = "diag"
            covars = np.broadcast_to(np.asarray(covars, dtype=np.float64).reshape(-1),
                                     (K,)).reshape(K, 1)
        return ctype, covars

    def _log_density(self, X, params, n_threads):
        K, D = params["means"].shape
        ctype, covars = self._density_form(params)
        prec, code, log_const = _log_density_inputs(covars, ctype, K, D)
        out = np.empty((X.shape[0], K))
        _hmm.gaussian_log_density(X, np.ascontiguousarray(params["means"]), prec, code,
                                  log_const, out, CHUNK_SIZE, n_threads)
        return out

    def _emission_stats(self, X, posteriors, params, n_threads, cache):
        """N_k, shifted S1 and S2 (and the shifted Gram matrix for 'tied') through the
        mixture's Gaussian pass, chunk-parallel; coordinates shifted by the data mean."""
        one_feature = X.shape[1] == 1 and self.covariance_type in ("full", "tied")
        if "pass" not in cache:  # built once per fit: its slots, its shift, its Gram matrix
            # (one feature: the 'diag' pass gives the same sums, S2 as (K, 1), for less)
            cache["pass"] = G.GaussianPass(X, None, "diag" if one_feature
                                           else self.covariance_type, self.n_components,
                                           n_threads)
        gpass = cache["pass"]
        K = self.n_components
        ctype = "diag" if one_feature else self.covariance_type
        if ctype in ("diag", "spherical") and self.covariance_type != "tied" and K <= SMALL_K:
            return self._small_k_stats(X, posteriors, gpass.shift, ctype, n_threads, cache)
        stats = gpass.stats_from_resp(posteriors)
        out = {"nk": stats["nk"], "s1": stats["s1"], "shift": gpass.shift.copy()}
        if self.covariance_type == "tied":
            out["s2"] = gpass.gram()
        elif one_feature:
            out["s2"] = stats["s2"].reshape(-1, 1, 1)
        else:
            out["s2"] = stats["s2"]
        return out

    def _fused_pass(self, X, sequences, params, cache):
        """'diag' / 'spherical' at K <= SMALL_K over spread sequences: the log-densities,
        forward-backward and emission statistics of each sequence in one kernel
        (``_hmm.gaussian_em_pass``), per-group slots added in group order; one sequence:
        ``_long_pass``. None otherwise."""
        K, D = params["means"].shape
        ctype = self.covariance_type
        if sequences.n_sequences == 1 and K <= LONG_MAX_STATES:
            return self._long_pass(X, sequences, params, cache)
        if ctype not in ("diag", "spherical") or K > SMALL_K or not sequences.spread:
            return None
        G, Kp, spherical = sequences.n_groups, (K + 3) // 4 * 4, ctype == "spherical"
        if "em_slots" not in cache:  # once per fit: the statistics' shift and the slots
            cache["stats_shift"] = np.mean(X, axis=0, dtype=np.float64)
            cache["em_slots"] = (np.empty((G, K * K)), np.empty((G, K)),
                                 np.empty((G, Kp * (1 + D + (1 if spherical else D)))))
        trans_slots, start_slots, emission_slots = cache["em_slots"]
        prec, code, log_const = _log_density_inputs(params["covars"], ctype, K, D)
        seq_ll = np.full(sequences.n_sequences, np.nan)
        n_log = np.zeros(G, dtype=np.int32)
        _hmm.gaussian_em_pass(X, np.ascontiguousarray(params["means"]), prec, code, log_const,
                              cache["stats_shift"], np.ascontiguousarray(params["startprob"]),
                              np.ascontiguousarray(params["transmat"]), sequences.offsets,
                              sequences.group_bounds, trans_slots, start_slots,
                              emission_slots, seq_ll, n_log, sequences.n_threads)
        if np.isnan(seq_ll).any():
            raise MemoryError("the fused EM pass could not allocate its lattices")
        # group order: numpy adds the rows of a C-ordered array one after another
        emission = _unpack_small_k(emission_slots.sum(axis=0), K, D, spherical)
        return dict(log_likelihood=float(np.sum(seq_ll)), seq_ll=seq_ll,
                    start=start_slots.sum(axis=0), trans=trans_slots.sum(axis=0).reshape(K, K),
                    n_log_space=int(n_log.sum()), shift=cache["stats_shift"].copy(),
                    **emission)

    def _long_pass(self, X, sequences, params, cache):
        """One sequence, K <= LONG_MAX_STATES, 'diag' / 'spherical' (and one feature's
        'full'): the long-sequence pass with the log-densities made inside it from X and the
        emission statistics from each chunk's posteriors (``_hmm.gaussian_long_pass``: its
        buffers, a ``LongWork``, kept for the fit; the statistics reduced in C). None for
        'tied' (its statistics are the Gram matrix), other covariance types, or when the
        pass declines (under/overflow: the three separate passes then redo the iteration, in
        log space where needed)."""
        K, D = params["means"].shape
        ctype = self.covariance_type
        if ctype == "tied" or (ctype == "full" and D > 1):
            return None
        spherical = ctype == "spherical"
        if "long_work" not in cache:  # once per fit: the statistics' shift, the buffers
            cache["long_shift"] = np.mean(X, axis=0, dtype=np.float64)
            cache["long_work"] = _hmm.LongWork(X.shape[0], K, D, spherical)
        # ('full' at D = 1: the (K, 1, 1) covariances as 'diag' variances)
        prec, log_const = _hmm.diag_precisions(
            np.ascontiguousarray(params["covars"], dtype=np.float64).reshape(-1), K, D,
            spherical)
        ll, start, trans, nk, s1, s2 = _hmm.gaussian_long_pass(
            X, np.ascontiguousarray(params["means"]), prec, 3 if spherical else 2, log_const,
            cache["long_shift"], np.ascontiguousarray(params["startprob"]),
            np.ascontiguousarray(params["transmat"]), cache["long_work"],
            sequences.long_threads)
        if np.isnan(ll):
            return None
        if ctype == "full":  # one feature
            s2 = s2.reshape(-1, 1, 1)
        return dict(log_likelihood=float(ll), seq_ll=np.array([ll]), start=start, trans=trans,
                    n_log_space=0, shift=cache["long_shift"].copy(), nk=nk, s1=s1, s2=s2)

    def _small_k_stats(self, X, posteriors, shift, ctype, n_threads, cache):
        """N_k, S1 and S2 ('diag' (K, D) / 'spherical' (K,); one feature: (K, 1, 1)) about
        ``shift`` by ``_hmm.gaussian_stats``: its per-group slots added in group order."""
        (N, D), K = X.shape, self.n_components
        Kp = (K + 3) // 4 * 4
        spherical = ctype == "spherical"
        width = Kp * (1 + D + (1 if spherical else D))
        if cache.get("small_k_slots") is None:
            cache["small_k_slots"] = np.empty((n_groups(N, ROWS_PER_STATS_GROUP,
                                                        MAX_STATS_GROUPS), width))
        slots = cache["small_k_slots"]
        _hmm.gaussian_stats(X, np.ascontiguousarray(posteriors, dtype=np.float64), shift,
                            spherical, slots, CHUNK_SIZE, n_threads)
        # (numpy adds the rows of a C-ordered array in order)
        out = _unpack_small_k(slots.sum(axis=0), K, D, spherical)
        if self.covariance_type == "full":  # one feature
            out["s2"] = out["s2"].reshape(-1, 1, 1)
        out["shift"] = shift.copy()
        return out

    def _m_step(self, params, stats, priors=None):
        """``BaseHMM._m_step``; for 'diag', 'spherical' and one feature's 'full' the same
        formulas in one compiled call (``_hmm.gaussian_m_step_small``: ~15 us against ~0.1 ms
        for ~30 small NumPy operations, 5 % of an iteration of the 'long' benchmark)."""
        priors = {} if priors is None else priors
        if "small" not in priors:  # (the fit's first update)
            priors["small"] = self._small_m_step_priors(params["means"].shape)
        if priors["small"] is None:
            return super()._m_step(params, stats, priors)
        kind, arrays = priors["small"]
        return _hmm.gaussian_m_step_small(stats, params, arrays, kind, self.params,
                                          float(self.min_covar), EMPTY_STATE)

    def _small_m_step_priors(self, shape):
        """(kind, prior arrays) of ``_hmm.gaussian_m_step_small`` for this estimator's
        priors, or None where it does not apply ('tied', 'full' with D > 1, a prior that
        does not broadcast as the NumPy M-step would broadcast it: that one raises)."""
        K, D = shape
        ctype = self.covariance_type
        if ctype == "tied" or (ctype == "full" and D > 1):
            return None
        cw = np.asarray(self.covars_weight, dtype=np.float64)
        psi = np.asarray(self.covars_prior, dtype=np.float64)
        try:
            if ctype == "full":
                nu = np.maximum(cw - D, 0.0)
                nu = nu[:, None, None] if nu.ndim == 1 else nu
                nu = np.broadcast_to(nu, (K, 1, 1)).reshape(K, 1)
                psi = np.broadcast_to(psi, (K, 1, 1)).reshape(K, 1)
            else:
                nu = np.maximum(cw - 1.0, 0.0)
                nu = nu[:, None] if nu.ndim == 1 else nu
                nu = np.broadcast_to(nu, np.broadcast_shapes(nu.shape, (K, 1), (K, D)))
                psi = _per_state(psi, K, D, "covars_prior")
                if ctype == "spherical":
                    nu, psi = nu[:, :1], psi.mean(axis=1)[:, None]
            arrays = (self._prior("startprob_prior", (K,)),
                      self._prior("transmat_prior", (K, K)),
                      _per_state(self.means_weight, K, D, "means_weight"),
                      _per_state(self.means_prior, K, D, "means_prior"), psi, nu)
        except ValueError:
            return None
        arrays = tuple(np.ascontiguousarray(a, dtype=np.float64) for a in arrays)
        if arrays[4].shape[0] != K or arrays[5].shape != arrays[4].shape:
            return None
        return {"diag": 0, "spherical": 1, "full": 2}[ctype], arrays

    def _emission_m_step(self, params, stats, priors):
        K, D = params["means"].shape
        nk = stats["nk"]
        c = stats["shift"]  # (Statistics of one shard: not summed over shards)
        s1, s2 = stats["s1"], stats["s2"]
        if "means_weight" not in priors:  # (the fit's first update: the prior arrays)
            priors["means_weight"] = _per_state(self.means_weight, K, D, "means_weight")
            priors["means_prior"] = _per_state(self.means_prior, K, D, "means_prior")
        w = priors["means_weight"]
        mp = priors["means_prior"] - c
        empty = nk < EMPTY_STATE
        m = params["means"] - c
        if "m" in self.params:
            with np.errstate(divide="ignore", invalid="ignore"):
                new_m = (w * mp + s1) / (w + nk[:, None])
            m = np.where(empty[:, None], m, new_m)
        covars = params["covars"]
        if "c" in self.params:
            covars = self._covariance_update(m, mp, w, nk, s1, s2, covars, empty, K, D)
        kept = int(np.count_nonzero(empty)) if ("m" in self.params or "c" in self.params) \
            else 0
        return {"means": m + c, "covars": covars}, kept

    def _covariance_update(self, m, mp, w, nk, s1, s2, old, empty, K, D):
        ctype = self.covariance_type
        cw = np.asarray(self.covars_weight, dtype=np.float64)
        prior = np.asarray(self.covars_prior, dtype=np.float64)
        d = m - mp
        if ctype in ("diag", "spherical"):
            cw1 = np.maximum(cw - 1.0, 0.0)
            cw1 = cw1[:, None] if cw1.ndim == 1 else cw1
            c_d = np.maximum(cw1 + nk[:, None], 1e-5)
            prior = _per_state(prior, K, D, "covars_prior")
            if ctype == "diag":
                c_n = w * d ** 2 + s2 - 2.0 * m * s1 + m ** 2 * nk[:, None]
                cov = (prior + c_n) / c_d
            else:  # s2: sum_n gamma ||x||^2; the mean over features of the diag estimate
                c_n = ((w * d ** 2).sum(axis=1) + s2 - 2.0 * (m * s1).sum(axis=1)
                       + (m ** 2).sum(axis=1) * nk) / D
                cov = (prior.mean(axis=1) + c_n) / c_d[:, 0]
            cov = np.maximum(cov, self.min_covar)
            return np.where(empty[:, None] if ctype == "diag" else empty, old, cov)
        cvweight = np.maximum(cw - D, 0.0)
        wk = w[:, 0]  # (means_weight per state)
        outer = lambda a, b: a[:, :, None] * b[:, None, :]  # noqa: E731
        if ctype == "full":
            # s2: sum_n gamma (x - shift)(x - shift)^T in shifted coordinates
            c_n = (wk[:, None, None] * outer(d, d) + s2 - outer(s1, m) - outer(m, s1)
                   + nk[:, None, None] * outer(m, m))
            cvw = cvweight[:, None, None] if np.ndim(cvweight) == 1 else cvweight
            with np.errstate(divide="ignore", invalid="ignore"):
                cov = (prior + c_n) / (cvw + nk[:, None, None])
            # (an unvisited state's 0 / 0 replaced before the batched eigh, then its old value)
            cov = _floor_eigenvalues(np.where(empty[:, None, None], np.eye(D), cov),
                                     self.min_covar)
            return np.where(empty[:, None, None], old, cov)
        # tied: s2 is the Gram matrix sum_n (x - shift)(x - shift)^T
        c_n = ((wk[:, None, None] * outer(d, d)).sum(axis=0) + s2
               - (outer(s1, m) + outer(m, s1)).sum(axis=0)
               + (nk[:, None, None] * outer(m, m)).sum(axis=0))
        cov = (prior + c_n) / (np.mean(cvweight) + nk.sum())
        return _floor_eigenvalues(cov, self.min_covar)

    def _set_params(self, attributes, X):
        self.startprob_ = attributes["startprob"]
        self.transmat_ = attributes["transmat"]
        self.means_ = attributes["means"]
        self._covars_ = attributes["covars"]
        self.n_features_in_ = X.shape[1]

    def _emission_n_parameters(self):
        K, D = self.n_components, self.n_features
        return {"m": K * D, "c": {"spherical": K, "diag": K * D,
                                  "full": K * D * (D + 1) // 2,
                                  "tied": D * (D + 1) // 2}[self.covariance_type]}

    def _sample_state(self, params, state, rs):
        cov = _full_covars(params["covars"], self.covariance_type, self.n_components,
                           params["means"].shape[1])
        return rs.multivariate_normal(params["means"][state], cov[state])
