"""Gaussian-mixture emissions: ``GMMHMM``.

Each state k emits from a mixture of ``n_mix`` Gaussians: p(x | z = k) = sum_m w_km
N(x; mu_km, Sigma_km). The (state, component) pairs are treated as K M Gaussians: their
log-densities come from ``_hmm.gaussian_log_density`` (chunk-parallel), the state's is their
log-sum-exp with the log weights, and the emission statistics are the mixture's Gaussian pass
(``GaussianPass.stats_from_resp``, chunk-parallel) over the responsibilities
r_nkm = gamma_nk w_km N(x_n; mu_km, Sigma_km) / p(x_n | z = k).

The M-step is hmmlearn's, with N_km = sum_n r_nkm, lambda = ``means_weight``, mu_0 =
``means_prior`` and hmmlearn's covariance priors (``covars_prior`` / ``covars_weight``, whose
default None means hmmlearn's type-dependent values, which make the update plain maximum
likelihood):

    w_km      = max(N_km + a_km - 1, 0) / sum_m (...)              (a = ``weights_prior``)
    mu_km     = (lambda mu_0 + sum_n r_nkm x_n) / (lambda + N_km)
    C_km      = sum_n r_nkm (x_n - mu_km^old)(x_n - mu_km^old)^T   (at the E-step's means,
                                                                   as hmmlearn)
    full:      Sigma_km = (Psi^T + lambda (mu_km - mu_0)(..)^T + C_km) / (N_km + nu + D + 2)
    diag:      sigma2   = (lambda (mu_km - mu_0)^2 + 2 beta + diag C_km) / (N_km + 2 alpha + 3)
    spherical: sigma2   = (lambda ||mu_km - mu_0||^2 + 2 beta + tr C_km) / (D (N_km + 1)
                                                                         + 2 alpha + 2)
    tied:      Sigma_k  = (Psi^T + sum_m lambda (..)(..)^T + sum_m C_km) / (N_k + M + nu + D + 1)

computed in coordinates shifted by the data mean and then floored by ``min_covar``
(hmmlearn does not floor); a (state, component) pair with no expected count keeps its mean
and covariance (hmmlearn's would be 0 / 0).

``method='mean_field'`` and ``'gibbs'`` read the same priors as the conjugate prior this
M-step is the MAP of (``_conjugate.GMMConjugate``): w_k ~ Dir(``weights_prior``), and per
(state, component) a Normal-Wishart ('full'; 'tied': one Wishart precision per state, shared
by its components) or Normal-Gamma ('diag', 'spherical') prior with m0 = ``means_prior``,
beta0 = ``means_weight``, and ('full' / 'tied') inverse-Wishart scale ``covars_prior`` and
degrees of freedom ``covars_weight``, or ('diag' / 'spherical') every precision
~ Gamma(shape ``covars_prior``, rate ``covars_weight``). hmmlearn's defaults are improper
(flat), so the Bayesian methods replace them: ``means_prior`` all 0 -> the data mean,
``means_weight`` all 0 -> 1, ``covars_prior`` / ``covars_weight`` None -> nu0 = D and
psi0 = 1e-3 x the data covariance (``GaussianHMM``'s Bayesian defaults).

Mean field's pass is the forward-backward at exp(E log pi), exp(E log A) and
l~_nk = log sum_m exp(E log w_km + E log N(x_n | mu_km, Lambda_km)); q(z, c) is then the
optimum for q(theta) (the components are independent given the states), its statistics the
responsibilities gamma_nk softmax_m(.), and the ELBO log Z minus the KL terms is exact. A
Gibbs sweep draws the paths by FFBS at theta, then every observation's component given its
state (``_gmm_components``, keyed (seed, sweep, row)), then theta from its conjugate
posterior.
"""
import numpy as np

from ..emissions import gaussian as G
from .._core.clustering import kmeans
from .._core.validation import check_array, check_option, check_random_state, check_scalar
from . import _gmm_components, _hmm
from ._conjugate import GMMConjugate
from .base import _METHODS, EMPTY_STATE, BaseHMM, _dirichlet_update, init_arguments
from .gaussian import CHUNK_SIZE, LOG_2PI, _CODES, _floor_eigenvalues

_COVARS_SHAPES = {"spherical": "(n_components, n_mix)",
                  "diag": "(n_components, n_mix, n_features)",
                  "full": "(n_components, n_mix, n_features, n_features)",
                  "tied": "(n_components, n_features, n_features)"}


def _state_log_density(comp, n_threads):
    """log sum_m exp(comp_nkm), (N, K), from the (N, K, M) component log-densities
    (compiled, chunk-parallel: ``_gmm_components.state_log_density``)."""
    N, K, M = comp.shape
    out = np.empty((N, K))
    _gmm_components.state_log_density(np.ascontiguousarray(comp).reshape(N, K * M), M, out,
                                      CHUNK_SIZE, n_threads)
    return out


def _default_covar_priors(ctype, M, D):
    """hmmlearn's defaults for covars_prior / covars_weight = None."""
    return {"full": (0.0, -(1.0 + D + 1.0)), "tied": (0.0, -(M + D + 1.0)),
            "diag": (-1.5, 0.0), "spherical": (-(M + 2.0) / 2.0, 0.0)}[ctype]


class GMMHMM(BaseHMM):
    """Hidden Markov model with Gaussian-mixture emissions.

    Parameters, attributes and methods as hmmlearn's ``GMMHMM`` (``covars_`` a plain array in
    the type's shape: 'spherical' (K, M), 'diag' (K, M, D), 'full' (K, M, D, D), 'tied'
    (K, D, D): one covariance per state, shared by its components), fitted by Baum-Welch EM,
    mean-field VB or blocked Gibbs sampling through vbfast's loop and kernels.

    Parameters
    ----------
    n_components : int, default=1
        Number of states K.
    n_mix : int, default=1
        Number of Gaussians M in every state's mixture.
    min_covar : float, default=1e-3
        Added to the diagonal of the initial covariance; floor of the covariances'
        eigenvalues (variances) at every iteration.
    startprob_prior, transmat_prior : float, array or None, default=None
        Dirichlet priors; None: 1.0 (hmmlearn's default) for 'em', 1 / n_components for
        'mean_field' and 'gibbs'.
    weights_prior : float or array of shape (K, M), default=1.0
        Dirichlet prior of every state's mixture weights.
    means_prior, means_weight : float or array, default=0.0
    covars_prior, covars_weight : float, array or None, default=None
        hmmlearn's covariance priors (None: its defaults, see the module docstring).
    algorithm : {'viterbi', 'map'}, default='viterbi'
    covariance_type : {'diag', 'spherical', 'full', 'tied'}, default='diag'
    random_state, n_iter, tol, verbose, implementation, method, n_threads
        As in ``GaussianHMM``.
    params, init_params : str, default='stmcw'
        's' startprob, 't' transmat, 'm' means, 'c' covars, 'w' mixture weights.

    sticky, n_draws, burn_in, thin, n_chains
        As in ``GaussianHMM`` ('mean_field' and 'gibbs').

    For ``method='mean_field'`` and ``'gibbs'`` the priors are read as the conjugate prior
    of the EM M-step (module docstring): w_k ~ Dir(``weights_prior``, positive); per
    (state, component) mu ~ N(``means_prior``, (``means_weight`` Lambda)^-1) (defaults: the
    data mean, 1); 'full' / 'tied': Lambda ~ Wishart with inverse scale ``covars_prior``
    ((K, M, D, D) / (K, D, D), symmetric positive-definite) and ``covars_weight`` degrees of
    freedom (> D - 1); 'diag' / 'spherical': every precision ~ Gamma(shape
    ``covars_prior``, rate ``covars_weight``), both positive. ``covars_prior`` /
    ``covars_weight`` None (the default): D degrees of freedom (Gamma shape D / 2) and a
    scale of 1e-3 x the data covariance (Gamma rate 5e-4 x the variance), as
    ``GaussianHMM``'s Bayesian defaults. ``startprob_prior`` / ``transmat_prior`` None: 1 /
    n_components.

    Attributes
    ----------
    startprob_ : (K,), transmat_ : (K, K), weights_ : (K, M), means_ : (K, M, D),
    covars_ : see above; n_features : int
    monitor_, lower_bounds_, iteration_times_, lower_bound_, n_iter_, converged_,
    n_kept_states_ : as in ``GaussianHMM``
    startprob_posterior_, transmat_posterior_, weights_posterior_ : 'mean_field': the
        Dirichlet concentrations of q
    means_posterior_ (K, M, D), beta_posterior_ (K, M), dof_posterior_ ((K, M); 'tied' (K,)),
    scale_posterior_ (psi = W^{-1} per pair; 'tied' per state) : 'mean_field': the
        Normal-Wishart / Normal-Gamma q of every Gaussian (``covars_`` is (E Lambda)^-1)
    n_merges_ : 'mean_field', as in ``GaussianHMM``
    posterior_samples_ (startprob, transmat, weights, means, covars, log_joint),
    sampler_diagnostics_, log_joint_trace_ : 'gibbs', as in ``GaussianHMM``; the draws'
        states and every state's components are relabelled across draws and chains
    """

    _methods = _METHODS

    _emission_letters = "mcw"
    _param_names = BaseHMM._base_param_names + (
        "n_mix", "min_covar", "weights_prior", "means_prior", "means_weight", "covars_prior",
        "covars_weight", "covariance_type") + BaseHMM._bayes_param_names

    def __init__(self, n_components=1, n_mix=1, min_covar=1e-3, startprob_prior=None,
                 transmat_prior=None, weights_prior=1.0, means_prior=0.0, means_weight=0.0,
                 covars_prior=None, covars_weight=None, algorithm="viterbi",
                 covariance_type="diag", random_state=None, n_iter=10, tol=1e-2,
                 verbose=False, params="stmcw", init_params="stmcw", implementation="log",
                 method="em", n_threads=None, sticky=0.0, n_draws=200, burn_in=100, thin=1,
                 n_chains=2):
        super().__init__(**init_arguments(locals()))

    @property
    def n_features(self):
        """Number of features (from ``means_``)."""
        if "means_" not in self.__dict__:
            raise AttributeError("n_features")
        return np.asarray(self.means_).shape[-1]

    # ------------------------------------------------------------------ checks
    def _check_emission_parameters(self):
        check_option(self.covariance_type, "covariance_type", _CODES)
        check_scalar(self.min_covar, "min_covar", "real", min_val=0.0)
        check_scalar(self.n_mix, "n_mix", "int", min_val=1)

    def _check_X(self, X, fitting):
        n_features = None if fitting else self.n_features
        return check_array(X, n_features=n_features, estimator_name=type(self).__name__)

    def _priors(self, D):
        """The priors broadcast to hmmlearn's shapes (its ``_fix_priors_shape``)."""
        K, M, ct = self.n_components, self.n_mix, self.covariance_type
        cp, cw = _default_covar_priors(ct, M, D)
        cp = cp if self.covars_prior is None else self.covars_prior
        cw = cw if self.covars_weight is None else self.covars_weight
        b = lambda v, shape: np.broadcast_to(np.asarray(v, dtype=np.float64), shape)  # noqa
        cshape = {"full": ((K, M, D, D), (K, M)), "tied": ((K, D, D), (K,)),
                  "diag": ((K, M, D), (K, M, D)), "spherical": ((K, M), (K, M))}[ct]
        return {"weights": b(self.weights_prior, (K, M)),
                "means": b(self.means_prior, (K, M, D)),
                "lambda": b(self.means_weight, (K, M)),
                "cprior": b(cp, cshape[0]), "cweight": b(cw, cshape[1])}

    def _flat_emission_priors(self):
        # hmmlearn's default covariance priors are maximum likelihood: the guard applies
        return (self.covars_prior is None and self.covars_weight is None
                and np.all(np.asarray(self.means_weight) == 0)
                and np.all(np.asarray(self.weights_prior) == 1.0))

    def _check_covars(self, covars, D):
        K, M, ct = self.n_components, self.n_mix, self.covariance_type
        covars = np.array(covars, dtype=np.float64)
        shape = {"spherical": (K, M), "diag": (K, M, D), "full": (K, M, D, D),
                 "tied": (K, D, D)}[ct]
        if covars.shape != shape:
            raise ValueError(f"{ct!r} mixture covars must have shape {_COVARS_SHAPES[ct]} = "
                             f"{shape}, actual shape: {covars.shape}")
        if not np.isfinite(covars).all():
            raise ValueError("covars_ contains NaN or infinity")
        if ct in ("spherical", "diag"):
            if np.any(covars <= 0):
                raise ValueError(f"{ct!r} mixture covars must be positive")
        else:
            for c in covars.reshape(-1, D, D):
                if not np.allclose(c, c.T) or np.any(np.linalg.eigvalsh(c) <= 0):
                    raise ValueError(f"{ct!r} mixture covars must be symmetric, "
                                     "positive-definite")
        return covars

    def _check_weights(self, weights):
        return self._check_distribution("weights_", weights, (self.n_components, self.n_mix))

    def _check_means(self, means, D):
        means = np.array(means, dtype=np.float64)
        if means.shape != (self.n_components, self.n_mix, D):
            raise ValueError(f"means_ must have shape (n_components, n_mix, n_features) = "
                             f"{(self.n_components, self.n_mix, D)}, actual shape: "
                             f"{means.shape}")
        if not np.isfinite(means).all():
            raise ValueError("means_ contains NaN or infinity")
        return means

    # ------------------------------------------------------------------ emission unit
    def _initial_emission(self, X):
        K, M, (N, D) = self.n_components, self.n_mix, X.shape
        Xd = np.asarray(X, dtype=np.float64)
        rs = check_random_state(self.random_state)
        cv = np.atleast_2d(np.cov(Xd.T)) if N > 1 else np.zeros((D, D))
        cv = cv + self.min_covar * np.eye(D)
        if self._needs_init("m", "means_"):
            # hmmlearn's: k-means into K clusters, then k-means into M within each (a cluster
            # too small for M draws its means around the centre of the clusters)
            if N >= K:
                centers, labels, _, _ = kmeans(Xd, K, random_state=rs, n_threads=1)
            else:
                centers, labels = Xd[rs.randint(N, size=K)], np.arange(N) % K
            means = np.empty((K, M, D))
            for k in range(K):
                members = Xd[labels == k]
                if members.shape[0] >= M:
                    means[k] = kmeans(members, M, random_state=rs, n_threads=1)[0]
                else:
                    means[k] = rs.multivariate_normal(centers.mean(axis=0), cv, size=M)
        else:
            means = self._check_means(self.means_, D)
        if self._needs_init("w", "weights_"):
            weights = np.full((K, M), 1.0 / M)
        else:
            weights = self._check_weights(self.weights_)
        if self._needs_init("c", "covars_"):
            if not np.all(np.linalg.eigvalsh(cv) > 0):  # constant features with min_covar 0
                cv = cv + 1e-6 * np.eye(D)
            covars = {"tied": np.broadcast_to(cv, (K, D, D)),
                      "full": np.broadcast_to(cv, (K, M, D, D)),
                      "diag": np.broadcast_to(np.diag(cv), (K, M, D)),
                      "spherical": np.full((K, M), cv.mean())}[self.covariance_type]
            covars = np.array(covars)
        else:
            covars = self._check_covars(self.covars_, D)
        return {"weights": weights, "means": means, "covars": covars}

    def _conjugate(self, X, n_threads, cache, params):
        return GMMConjugate(self, X, n_threads, cache)

    def _current_emission(self):
        D = self.n_features
        return {"weights": self._check_weights(self.weights_),
                "means": self._check_means(self.means_, D),
                "covars": self._check_covars(self.covars_, D)}

    def _component_log_density(self, X, params, n_threads):
        """log w_km + log N(x_n; mu_km, Sigma_km), shape (N, K, M)."""
        K, M, D = params["means"].shape
        ct = self.covariance_type
        covars = params["covars"]
        if ct == "tied":  # one covariance per state, shared by its components
            covars = np.repeat(covars, M, axis=0)
            code_type = "full"
        else:
            covars = covars.reshape((K * M,) + covars.shape[2:])
            code_type = ct
        if code_type == "full":
            U = G.precision_cholesky(covars, "full")
            log_det = G.log_det_cholesky(U, "full", D)
            prec = np.ascontiguousarray(U).ravel()
        else:
            prec = 1.0 / covars
            log_det = 0.5 * (np.log(prec).sum(axis=1) if code_type == "diag"
                             else D * np.log(prec))
            prec = np.ascontiguousarray(prec).ravel()
        with np.errstate(divide="ignore"):
            log_w = np.log(params["weights"]).ravel()
        log_const = np.ascontiguousarray(log_det - 0.5 * D * LOG_2PI + log_w)
        out = np.empty((X.shape[0], K * M))
        _hmm.gaussian_log_density(X, np.ascontiguousarray(params["means"].reshape(K * M, D)),
                                  prec, _CODES[code_type], log_const, out, CHUNK_SIZE,
                                  n_threads)
        return out.reshape(-1, K, M)

    def _log_density(self, X, params, n_threads):
        return _state_log_density(self._component_log_density(X, params, n_threads),
                                  n_threads)

    def _emission_stats(self, X, posteriors, params, n_threads, cache):
        """N_km, shifted S1 and S2 of the responsibilities r_nkm (see the module
        docstring), through the mixture's Gaussian pass over the K M pairs."""
        return self._stats_from_components(
            X, self._component_log_density(X, params, n_threads), posteriors, n_threads, cache)

    def _stats_from_components(self, X, comp, posteriors, n_threads, cache):
        """The emission statistics from the component log-densities ``comp`` (N, K, M) (log
        w_km + log N(x_n; mu_km, Sigma_km), or mean field's expected ones) and the state
        posteriors: r_nkm = gamma_nk softmax_m(comp_nk.)."""
        N, K, M = comp.shape
        D = X.shape[1]
        # (a state ruled out at x_n has gamma_nk = 0: its responsibilities are 0)
        resp = np.empty((N, K * M))
        _gmm_components.component_responsibilities(
            comp.reshape(N, K * M), np.ascontiguousarray(posteriors, dtype=np.float64), M,
            resp, CHUNK_SIZE, n_threads)
        if "pass" not in cache:  # built once per fit: its slots and its shift
            ct = "full" if self.covariance_type == "tied" else self.covariance_type
            cache["pass"] = G.GaussianPass(X, None, ct, K * M, n_threads)
        gpass = cache["pass"]
        stats = gpass.stats_from_resp(resp)
        s2 = stats["s2"]
        return {"nkm": stats["nk"].reshape(K, M), "s1": stats["s1"].reshape(K, M, D),
                "s2": s2.reshape((K, M) + s2.shape[1:]), "shift": gpass.shift.copy()}

    def _emission_m_step(self, params, stats, priors):
        K, M, D = params["means"].shape
        pri = self._priors(D)
        nkm, s1, s2, c = stats["nkm"], stats["s1"], stats["s2"], stats["shift"]
        empty = nkm < EMPTY_STATE
        new = dict(params)
        kept = 0
        if "w" in self.params:
            new["weights"], k = _dirichlet_update(nkm, pri["weights"], params["weights"])
            kept += k
        m_old = params["means"] - c
        m = m_old
        lam = pri["lambda"]
        mp = pri["means"] - c
        if "m" in self.params:
            with np.errstate(divide="ignore", invalid="ignore"):
                new_m = (lam[:, :, None] * mp + s1) / (lam + nkm)[:, :, None]
            m = np.where(empty[:, :, None], m_old, new_m)
            new["means"] = m + c
        if "c" in self.params:
            # (pairs with no count divide by ~0 and keep their old covariance)
            with np.errstate(divide="ignore", invalid="ignore"):
                new["covars"] = self._covariance_update(params, pri, nkm, s1, s2, m_old, m,
                                                        mp, lam, empty)
        if "m" in self.params or "c" in self.params:
            kept += int(np.count_nonzero(empty))
        new.pop("startprob", None)
        new.pop("transmat", None)
        return new, kept

    def _covariance_update(self, params, pri, nkm, s1, s2, m_old, m, mp, lam, empty):
        """hmmlearn's covariance update (module docstring), floored by ``min_covar``."""
        K, M, D = params["means"].shape
        ct = self.covariance_type
        d = m - mp
        outer = lambda a, b: a[..., :, None] * b[..., None, :]  # noqa: E731
        old = params["covars"]
        cp, cw = pri["cprior"], pri["cweight"]
        if ct in ("full", "tied"):
            # sum_n r (x - mu_old)(x - mu_old)^T from S2 centred at the shift
            c_n = (s2 - outer(s1, m_old) - outer(m_old, s1)
                   + nkm[:, :, None, None] * outer(m_old, m_old))
            prior_term = lam[:, :, None, None] * outer(d, d)
            if ct == "full":
                cov = ((np.swapaxes(cp, -1, -2) + prior_term + c_n)
                       / (nkm + 1 + cw + D + 1)[:, :, None, None])
                cov = np.array([[old[k, j] if empty[k, j] else
                                 _floor_eigenvalues(cov[k, j], self.min_covar)
                                 for j in range(M)] for k in range(K)])
            else:
                cov = ((prior_term.sum(axis=1) + np.swapaxes(cp, -1, -2)
                        + c_n.sum(axis=1))
                       / (nkm.sum(axis=1) + M + cw + D + 1)[:, None, None])
                empty_state = empty.all(axis=1)
                cov = np.array([old[k] if empty_state[k] else
                                _floor_eigenvalues(cov[k], self.min_covar)
                                for k in range(K)])
        else:
            c_n = s2 - 2.0 * m_old * s1 + nkm[:, :, None] * m_old ** 2 if ct == "diag" \
                else s2 - 2.0 * (m_old * s1).sum(-1) + nkm * (m_old ** 2).sum(-1)
            if ct == "diag":
                cov = ((lam[:, :, None] * d ** 2 + 2 * cw + c_n)
                       / (nkm[:, :, None] + 1 + 2 * (cp + 1)))
                cov = np.where(empty[:, :, None], old, np.maximum(cov, self.min_covar))
            else:
                cov = ((lam * (d ** 2).sum(-1) + 2 * cw + c_n)
                       / (D * (nkm + 1) + 2 * (cp + 1)))
                cov = np.where(empty, old, np.maximum(cov, self.min_covar))
        return cov

    def _set_params(self, attributes, X):
        self.startprob_ = attributes["startprob"]
        self.transmat_ = attributes["transmat"]
        self.weights_ = attributes["weights"]
        self.means_ = attributes["means"]
        self.covars_ = attributes["covars"]
        self.n_features_in_ = X.shape[1]

    def _emission_n_parameters(self):
        K, M, D = self.n_components, self.n_mix, self.n_features
        return {"m": K * M * D, "w": K * (M - 1),
                "c": {"spherical": K * M, "diag": K * M * D, "full": K * M * D * (D + 1) // 2,
                      "tied": K * D * (D + 1) // 2}[self.covariance_type]}

    def _sample_state(self, params, state, rs):
        m = rs.choice(self.n_mix, p=params["weights"][state])
        D = params["means"].shape[2]
        cov = params["covars"][state] if self.covariance_type == "tied" \
            else params["covars"][state, m]
        if self.covariance_type == "diag":
            cov = np.diag(cov)
        elif self.covariance_type == "spherical":
            cov = cov * np.eye(D)
        return rs.multivariate_normal(params["means"][state, m], cov)
