"""Conjugate Bayesian algebra of the HMMs, shared by mean field and Gibbs.

The model adds priors to the HMM of ``vbfast.hmm.base``::

    pi  ~ Dir(a_pi),   A_i ~ Dir(a_A[i] + kappa e_i)      (``sticky`` kappa: Fox et al. 2011)
    categorical: B_k ~ Dir(emissionprob_prior)
    Poisson: lambda_kd ~ Gamma(lambdas_prior, rate lambdas_weight)   (``PoissonConjugate``)
    Gaussian, 'full':  Lambda_k ~ Wishart(W0, nu0), mu_k | Lambda_k ~ N(m0, (beta0 Lambda_k)^-1)
              'tied':  one Lambda ~ Wishart(W0, nu0), mu_k | Lambda ~ N(m0, (beta0 Lambda)^-1)
              'diag':  lambda_kj ~ Gamma(nu0/2, rate psi0_j/2), mu_kj | . ~ N(m0_j, 1/(beta0 lambda_kj))
              'spherical': lambda_k ~ Gamma(nu0/2, rate psi0/2), mu_k | . ~ N(m0, I/(beta0 lambda_k))

with psi0 = W0^{-1} (``scale_prior``), nu0 (``dof_prior``), beta0 (``beta_prior``), m0
(``means_prior``). Given expected (mean field) or drawn (Gibbs) state statistics
N_k = sum gamma_nk, s1_k = sum gamma_nk x'_n, s2_k (second moments), in coordinates
x' = x - c shifted by the data mean c, the posterior of every emission is of the same family:

    beta_k = beta0 + N_k,  m_k = (beta0 m0 + s1_k) / beta_k,  nu_k = nu0 + N_k (D N_k spherical)
    psi_k  = psi0 + s2_k + beta0 m0 m0^T - beta_k m_k m_k^T     (diagonal / trace for diag /
                                                                 spherical; summed over k, tied)

(written without dividing by N_k: an empty state gets its prior). The same function gives
q(theta) for mean field and p(theta | z, X) for Gibbs.

The emission objects (``GaussianConjugate``, ``CategoricalConjugate``,
``PoissonConjugate``, ``GMMConjugate``) hold the prior and do:
``update(stats) -> q``, ``expected_log_density(X, q)`` (E_q log p(x | z = k), the pass's
input), ``point_log_density(X, theta)`` (log p(x | z = k) at point parameters: the first
E-step of mean field, every Gibbs sweep), ``kl(q)`` (KL(q || prior)), ``point(q)``
(posterior-mean parameters), ``draw(q, rng)`` (a draw of theta), ``stats`` / ``hard_stats``
(from posteriors, or from drawn states: ``hard_stats(X, states, key)``, key = (seed, sweep)
for draws made there, GMMHMM's components). A pass calls one of the log-density methods and
then one of the statistics methods.
"""
import numpy as np
from scipy.special import digamma, gammaln

from .._core.sampling import match_draws
from .._core.validation import broadcast_parameter
from ..emissions import gaussian as G
from ..emissions.gaussian_prior import log_wishart_norm, multi_digamma
from . import _gmm_components, _hmm

LOG_2PI = np.log(2.0 * np.pi)
LOG_2 = np.log(2.0)
CHUNK_SIZE = 256
_CODES = {"full": 0, "tied": 1, "diag": 2, "spherical": 3}


# ---------------------------------------------------------------------- Dirichlet pieces
def dirichlet_expected_log(alpha, support):
    """E log p under Dir(alpha) over the ``support`` entries of the last axis; -inf off it
    (structural zeros: left-right models)."""
    alpha = np.where(support, alpha, 1.0)
    total = np.where(support, alpha, 0.0).sum(axis=-1, keepdims=True)
    return np.where(support, digamma(alpha) - digamma(total), -np.inf)


def dirichlet_kl(alpha, alpha0, support):
    """sum over rows of KL(Dir(alpha) || Dir(alpha0)), both restricted to ``support``:

        lnG(sum a) - sum lnG(a) - lnG(sum a0) + sum lnG(a0) + sum (a - a0)(psi(a) - psi(sum a))
    """
    a = np.where(support, alpha, 1.0)
    a0 = np.where(support, alpha0, 1.0)
    sa = np.where(support, a, 0.0).sum(axis=-1)
    sa0 = np.where(support, a0, 0.0).sum(axis=-1)
    terms = np.where(support, -gammaln(a) + gammaln(a0)
                     + (a - a0) * (digamma(a) - digamma(sa)[..., None]), 0.0)
    return float(np.sum(gammaln(sa) - gammaln(sa0) + terms.sum(axis=-1)))


def dirichlet_mean(alpha, support):
    alpha = np.where(support, alpha, 0.0)
    return alpha / alpha.sum(axis=-1, keepdims=True)


def dirichlet_draw(alpha, support, rng):
    """A draw of Dir(alpha) over ``support`` (rows of the last axis), by normalised gamma
    variates; a row whose variates all underflow (tiny alpha) falls back to a one-hot draw
    from the mean."""
    g = np.where(support, rng.standard_gamma(np.where(support, alpha, 1.0)), 0.0)
    s = g.sum(axis=-1, keepdims=True)
    out = g / np.where(s > 0, s, 1.0)
    bad = ~(s[..., 0] > 0)
    if np.any(bad):
        mean = dirichlet_mean(alpha, support)
        for idx in zip(*np.nonzero(bad)) if bad.ndim else [()]:
            row = np.zeros(alpha.shape[-1])
            row[rng.choice(alpha.shape[-1], p=mean[idx])] = 1.0
            out[idx] = row
    return out


def gamma_kl(a, b, a0, b0):
    """KL(Gamma(a, rate b) || Gamma(a0, rate b0)), elementwise."""
    return ((a - a0) * digamma(a) - gammaln(a) + gammaln(a0) + a0 * (np.log(b) - np.log(b0))
            + a * (b0 - b) / b)


def _broadcast(value, shape, name):
    return broadcast_parameter(value, shape, name).copy()


# ---------------------------------------------------------------------- Gaussian
def default_scale_prior(Xd, ctype):
    """The default psi0 of one Gaussian: 1e-3 x the covariance of the (shifted) data, its
    variances floored at 1e-10 of the largest (1 for constant data) and its eigenvalues at
    that floor; (D, D) for 'full' / 'tied', its diagonal (D,) for 'diag', the mean variance
    for 'spherical'."""
    D = Xd.shape[1]
    cov = np.atleast_2d(np.cov(Xd.T)) if Xd.shape[0] > 1 else np.zeros((D, D))
    var = np.diag(cov).copy()
    floor = 1e-10 * var.max() if var.max() > 0 else 1.0
    var = np.maximum(var, floor)
    if ctype in ("full", "tied"):
        cov = cov.copy()
        cov[np.diag_indices(D)] = var
        w, V = np.linalg.eigh(0.5 * (cov + cov.T))
        return 1e-3 * ((V * np.maximum(w, floor)) @ V.T)
    if ctype == "diag":
        return 1e-3 * var
    return 1e-3 * var.mean()


class GaussianConjugate:
    """Normal-Wishart ('full', 'tied') / Normal-Gamma ('diag', 'spherical') emissions.

    Defaults (documented on ``GaussianHMM``): m0 = the data mean (``means_prior`` when it is
    not all zero), beta0 = 1, nu0 = D, psi0 = 1e-3 x the data covariance (its diagonal for
    'diag', the mean variance for 'spherical'; variances floored at 1e-10 of the largest, 1 for
    constant data): a weak prior that scales with the data.
    """

    def __init__(self, est, X, n_threads, cache):
        K, D = est.n_components, X.shape[1]
        self.est, self.K, self.D, self.ctype = est, K, D, est.covariance_type
        # the per-state statistics (additive over states: merge moves add two of them);
        # 'tied''s s2 is the Gram matrix of all the data, the same for any states
        self.merge_fields = ("nk", "s1") if self.ctype == "tied" else ("nk", "s1", "s2")
        self.n_threads = n_threads
        # the mixture's Gaussian pass: its shift c (the data mean) and its statistic slots,
        # reused by the estimator's _emission_stats through the cache
        cache["pass"] = G.GaussianPass(X, None, self.ctype, K, n_threads)
        self.cache = cache
        self.shift = cache["pass"].shift.copy()
        Xd = np.asarray(X, dtype=np.float64) - self.shift
        m0 = np.asarray(est.means_prior, dtype=np.float64)
        m0 = np.zeros((K, D)) if np.all(m0 == 0) else _broadcast(
            m0 if m0.ndim != 1 or m0.shape[0] != K or K == D else m0[:, None], (K, D),
            "means_prior") - self.shift
        self.m0 = m0
        self.beta0 = _broadcast(1.0 if est.beta_prior is None else est.beta_prior, (K,),
                                "beta_prior")
        if np.any(self.beta0 <= 0):
            raise ValueError("beta_prior must be positive")
        nu0 = float(D) if est.dof_prior is None else est.dof_prior
        if self.ctype == "tied":
            self.nu0 = float(_broadcast(nu0, (), "dof_prior"))
            if self.nu0 <= D - 1:
                raise ValueError(f"dof_prior must be greater than n_features - 1 = {D - 1}, "
                                 f"got {self.nu0}")
        else:
            self.nu0 = _broadcast(nu0, (K,), "dof_prior")
            low = D - 1 if self.ctype == "full" else 0
            if np.any(self.nu0 <= low):
                raise ValueError(f"dof_prior must be greater than {low}, got {nu0}")
        self.psi0 = self._scale_prior(est.scale_prior, Xd)

    @classmethod
    def units(cls, ctype, m0, beta0, nu0, psi0, shift, n_threads):
        """The algebra (``update``, ``kl``, ``draw``, ``covariances``, expected log
        determinants) of len(beta0) Gaussians under the given, already checked priors, with
        no estimator and no pass: ``GMMHMM``'s (state, component) pairs ('tied': one unit per
        state, its components sharing the precision). m0 (n, D) in coordinates shifted by
        ``shift``; nu0 and psi0 in the type's shapes."""
        self = cls.__new__(cls)
        self.est, self.cache, self.n_threads = None, None, n_threads
        self.K, self.D = m0.shape
        self.ctype = ctype
        self.merge_fields = ("nk", "s1") if ctype == "tied" else ("nk", "s1", "s2")
        self.shift = shift
        self.m0, self.beta0, self.nu0, self.psi0 = m0, beta0, nu0, psi0
        return self

    def _scale_prior(self, value, Xd):
        K, D, ctype = self.K, self.D, self.ctype
        if value is None:
            psi = default_scale_prior(Xd, ctype)
            if ctype == "full":
                return np.tile(psi, (K, 1, 1))
            if ctype == "diag":
                return np.tile(psi, (K, 1))
            return psi if ctype == "tied" else np.full(K, psi)
        shape = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}[ctype]
        psi = _broadcast(value, shape, "scale_prior")
        if ctype in ("full", "tied"):
            for p in psi.reshape(-1, D, D):
                if not np.allclose(p, p.T) or np.any(np.linalg.eigvalsh(p) <= 0):
                    raise ValueError("scale_prior must be symmetric positive-definite")
        elif np.any(psi <= 0):
            raise ValueError("scale_prior must be positive")
        return psi

    # -- statistics
    def point_log_density(self, X, params):
        return self.est._log_density(X, params, self.n_threads)

    def stats(self, X, posteriors):
        return self.est._emission_stats(X, posteriors, None, self.n_threads, self.cache)

    def hard_stats(self, X, states, key=None):
        gpass = self.cache["pass"]
        s = gpass.stats_from_resp(G.HardAssignments(states, self.K))
        out = {"nk": s["nk"], "s1": s["s1"],
               "s2": gpass.gram() if self.ctype == "tied" else s["s2"]}
        return out

    # -- posterior
    def update(self, stats):
        """q (or p(theta | z)) from the statistics: dict m (K, D) shifted, beta (K,), nu, psi."""
        nk, s1, s2 = stats["nk"], stats["s1"], stats["s2"]
        beta = self.beta0 + nk
        m = (self.beta0[:, None] * self.m0 + s1) / beta[:, None]
        ctype = self.ctype
        if ctype in ("full", "tied"):
            outer = lambda a, w: w[:, None, None] * a[:, :, None] * a[:, None, :]  # noqa
            extra = outer(self.m0, self.beta0) - outer(m, beta)
            if ctype == "full":
                psi = self.psi0 + s2 + extra
                nu = self.nu0 + nk
            else:
                psi = self.psi0 + s2 + extra.sum(axis=0)
                nu = self.nu0 + nk.sum()
            psi = 0.5 * (psi + np.swapaxes(psi, -1, -2))
        elif ctype == "diag":
            # psi >= psi0 in exact arithmetic (Cauchy-Schwarz): the floor only undoes rounding
            psi = np.maximum(self.psi0 + s2 + self.beta0[:, None] * self.m0 ** 2
                             - beta[:, None] * m ** 2, self.psi0)
            nu = self.nu0 + nk
        else:
            psi = np.maximum(self.psi0 + s2 + self.beta0 * (self.m0 ** 2).sum(axis=1)
                             - beta * (m ** 2).sum(axis=1), self.psi0)
            nu = self.nu0 + self.D * nk
        return {"m": m, "beta": beta, "nu": nu, "psi": psi}

    def _expected_log_det(self, q):
        """E log|Lambda_k| (full/tied: (K,) / scalar) or E log lambda (diag (K, D),
        spherical (K,))."""
        D = self.D
        if self.ctype in ("full", "tied"):
            logdet_psi = np.linalg.slogdet(q["psi"])[1]
            return multi_digamma(0.5 * q["nu"], D) + D * LOG_2 - logdet_psi
        nu = q["nu"][:, None] if self.ctype == "diag" else q["nu"]
        return digamma(0.5 * nu) - np.log(0.5 * q["psi"])

    def covariances(self, q):
        """(E Lambda)^{-1} = psi / nu in the type's canonical shape."""
        if self.ctype == "full":
            return q["psi"] / q["nu"][:, None, None]
        if self.ctype == "diag":
            return q["psi"] / q["nu"][:, None]
        return q["psi"] / q["nu"]

    def expected_log_density(self, X, q):
        """E_q log N(x_n | mu_k, Lambda_k^{-1}) = 1/2 E log|Lambda_k| - D/2 log 2 pi - D/(2 beta_k)
        - 1/2 (x_n - m_k)^T E[Lambda_k] (x_n - m_k), (N, K): the Gaussian kernel at means m_k and
        precisions E Lambda_k = nu_k W_k with the constant replaced."""
        K, D = self.K, self.D
        cov = self.covariances(q)
        if self.ctype in ("full", "tied"):
            prec = np.ascontiguousarray(G.precision_cholesky(cov, self.ctype)).ravel()
        else:
            prec = np.ascontiguousarray(1.0 / cov).ravel()
        eld = self._expected_log_det(q)
        if self.ctype == "diag":
            eld = eld.sum(axis=1)
        elif self.ctype == "spherical":
            eld = D * eld
        log_const = np.ascontiguousarray(np.broadcast_to(
            0.5 * eld - 0.5 * D * LOG_2PI - 0.5 * D / q["beta"], (K,)), dtype=np.float64)
        out = np.empty((X.shape[0], K))
        _hmm.gaussian_log_density(X, np.ascontiguousarray(q["m"] + self.shift), prec,
                                  _CODES[self.ctype],
                                  log_const, out, CHUNK_SIZE, self.n_threads)
        return out

    def kl(self, q):
        """KL(q(mu, Lambda) || p(mu, Lambda)) summed over states (see the module docstring)."""
        D, ctype = self.D, self.ctype
        m, beta, nu, psi = q["m"], q["beta"], q["nu"], q["psi"]
        b0 = self.beta0
        diff = m - self.m0
        if ctype in ("full", "tied"):
            W = np.linalg.inv(psi)
            W = 0.5 * (W + np.swapaxes(W, -1, -2))
            logdet_psi = np.linalg.slogdet(psi)[1]
            logdet_psi0 = np.linalg.slogdet(self.psi0)[1]
            eld = multi_digamma(0.5 * nu, D) + D * LOG_2 - logdet_psi
            Wk = W if ctype == "full" else np.broadcast_to(W, (self.K, D, D))
            nuk = nu if ctype == "full" else np.full(self.K, nu)
            quad = np.einsum("ki,kij,kj->k", diff, Wk, diff)
            normal = (0.5 * D * np.log(beta / b0) - 0.5 * D + 0.5 * D * b0 / beta
                      + 0.5 * b0 * nuk * quad)
            wishart = (log_wishart_norm(-logdet_psi, nu, D)
                       - log_wishart_norm(-logdet_psi0, self.nu0, D)
                       + 0.5 * (nu - self.nu0) * eld - 0.5 * nu * D
                       + 0.5 * nu * np.einsum("...ij,...ji->...", self.psi0, W))
            return float(normal.sum() + np.sum(wishart))
        if ctype == "diag":
            a, b = 0.5 * nu[:, None], 0.5 * psi
            a0, r0 = 0.5 * self.nu0[:, None], 0.5 * self.psi0
            normal = (0.5 * np.log(beta / b0)[:, None] - 0.5 + 0.5 * (b0 / beta)[:, None]
                      + 0.5 * b0[:, None] * (a / b) * diff ** 2)
            return float(normal.sum() + gamma_kl(a, b, a0, r0).sum())
        a, b = 0.5 * nu, 0.5 * psi
        normal = (0.5 * D * np.log(beta / b0) - 0.5 * D + 0.5 * D * b0 / beta
                  + 0.5 * b0 * (a / b) * (diff ** 2).sum(axis=1))
        return float(normal.sum() + gamma_kl(a, b, 0.5 * self.nu0, 0.5 * self.psi0).sum())

    def point(self, q):
        return {"means": q["m"] + self.shift, "covars": self.covariances(q)}

    def q_attributes(self, q):
        """hmmlearn's VariationalGaussianHMM names: means_posterior_, beta_posterior_,
        dof_posterior_, scale_posterior_ (psi = W^{-1}, the type's shape)."""
        return {"means_posterior_": q["m"] + self.shift, "beta_posterior_": q["beta"].copy(),
                "dof_posterior_": np.array(q["nu"], dtype=np.float64),
                "scale_posterior_": q["psi"].copy()}

    def draw(self, q, rng):
        """theta ~ the Normal-Wishart / Normal-Gamma q: {'means', 'covars'} (canonical)."""
        K, D, ctype = self.K, self.D, self.ctype
        m, beta, nu, psi = q["m"], q["beta"], q["nu"], q["psi"]
        eps = rng.standard_normal((K, D))
        if ctype in ("full", "tied"):
            if ctype == "full":
                cov = np.stack([_draw_inverse_wishart(psi[k], nu[k], rng) for k in range(K)])
            else:
                cov = _draw_inverse_wishart(psi, nu, rng)
            covk = cov if ctype == "full" else np.broadcast_to(cov, (K, D, D))
            means = m + np.stack([np.linalg.cholesky(covk[k] / beta[k]) @ eps[k]
                                  for k in range(K)])
        elif ctype == "diag":
            lam = rng.gamma(0.5 * nu[:, None], 2.0 / psi)
            cov = 1.0 / lam
            means = m + eps * np.sqrt(cov / beta[:, None])
        else:
            lam = rng.gamma(0.5 * nu, 2.0 / psi)
            cov = 1.0 / lam
            means = m + eps * np.sqrt(cov / beta)[:, None]
        return {"means": means + self.shift, "covars": cov}

    def features(self, params):
        """(K, d) per-state vectors for the label matching of draws: the means."""
        return params["means"]

    def permute(self, params, perm):
        out = {"means": params["means"][..., perm, :]}
        out["covars"] = params["covars"] if self.ctype == "tied" else \
            params["covars"][..., perm] if self.ctype == "spherical" else \
            params["covars"][..., perm, :] if self.ctype == "diag" else \
            params["covars"][..., perm, :, :]
        return out


def _draw_inverse_wishart(psi, nu, rng):
    """Sigma = Lambda^{-1}, Lambda ~ Wishart(nu, psi^{-1}) by the Bartlett decomposition:
    Lambda = L B B^T L^T, L L^T = psi^{-1}, B lower with B_ii^2 ~ chi2(nu - i), B_ij ~ N(0, 1)."""
    D = psi.shape[0]
    B = np.tril(rng.standard_normal((D, D)), -1)
    B[np.arange(D), np.arange(D)] = np.sqrt(rng.chisquare(nu - np.arange(D)))
    # Sigma = L^{-T} B^{-T} B^{-1} L^{-1}, and L^{-T} L^{-1} = psi: with C = chol(psi) (lower),
    # L^{-1} = C^T up to an orthogonal factor that B absorbs in distribution
    C = np.linalg.cholesky(psi)
    M = np.linalg.solve(B, C.T)      # B^{-1} C^T
    cov = M.T @ M
    return 0.5 * (cov + cov.T)


# ---------------------------------------------------------------------- categorical
class CategoricalConjugate:
    """Dirichlet rows: B_k ~ Dir(emissionprob_prior), q(B_k) = Dir(prior + O_k)."""

    def __init__(self, est, X, n_threads, cache, n_symbols):
        K, V = est.n_components, n_symbols
        self.est, self.K, self.V, self.n_threads, self.cache = est, K, V, n_threads, cache
        self.merge_fields = ("obs",)   # per-state statistics (merge moves add two of them)
        self.prior = _broadcast(est.emissionprob_prior, (K, V), "emissionprob_prior")
        if np.any(self.prior <= 0):
            raise ValueError("emissionprob_prior must be positive for method='mean_field' / "
                             "'gibbs' (a Dirichlet prior)")
        self.support = np.ones((K, V), dtype=bool)

    def point_log_density(self, X, params):
        return self.est._log_density(X, params, self.n_threads)

    def stats(self, X, posteriors):
        return self.est._emission_stats(X, posteriors, {"emissionprob": self.prior},
                                        self.n_threads, self.cache)

    def hard_stats(self, X, states, key=None):
        K, V = self.K, self.V
        return {"obs": np.bincount(states.astype(np.intp) * V + X, minlength=K * V)
                .reshape(K, V).astype(np.float64)}

    def update(self, stats):
        return {"lam": self.prior + stats["obs"]}

    def expected_log_density(self, X, q):
        return np.ascontiguousarray(dirichlet_expected_log(q["lam"], self.support).T[X])

    def kl(self, q):
        return dirichlet_kl(q["lam"], self.prior, self.support)

    def point(self, q):
        return {"emissionprob": dirichlet_mean(q["lam"], self.support)}

    def q_attributes(self, q):
        return {"emissionprob_posterior_": q["lam"].copy()}

    def draw(self, q, rng):
        return {"emissionprob": dirichlet_draw(q["lam"], self.support, rng)}

    def features(self, params):
        return params["emissionprob"]

    def permute(self, params, perm):
        return {"emissionprob": params["emissionprob"][..., perm, :]}


# ---------------------------------------------------------------------- Poisson
class PoissonConjugate:
    """Gamma rates: lambda_kd ~ Gamma(a0_kd, rate b0_kd), q(lambda_kd) = Gamma(a0_kd + O_kd,
    b0_kd + P_k), with P_k = sum_n gamma_nk (or the drawn state counts) and
    O_kd = sum_n gamma_nk x_nd.

    The prior is hmmlearn's Gamma of ``PoissonHMM`` in its alpha-beta notation: shape
    a0 = ``lambdas_prior``, rate b0 = ``lambdas_weight`` (each a scalar or broadcast to
    (n_components, n_features); both must then be positive). With both at their constructor
    default 0 (an improper flat prior, plain maximum likelihood in EM) the Bayesian methods
    use a weak prior that scales with the data: b0 = 1 (one pseudo-observation) and
    a0_d = the mean count of feature d (at least 1e-3), so the prior mean of every rate is
    the data mean.
    """

    def __init__(self, est, X, n_threads, cache):
        K, D = est.n_components, X.shape[1]
        self.est, self.K, self.D, self.n_threads, self.cache = est, K, D, n_threads, cache
        self.merge_fields = ("post", "obs")   # per-state statistics (merge moves add them)
        shape = _broadcast(est.lambdas_prior, (K, D), "lambdas_prior")
        rate = _broadcast(est.lambdas_weight, (K, D), "lambdas_weight")
        if np.all(shape == 0) and np.all(rate == 0):
            shape = np.tile(np.maximum(X.mean(axis=0), 1e-3), (K, 1))
            rate = np.ones((K, D))
        elif np.any(shape <= 0) or np.any(rate <= 0):
            raise ValueError(
                f"lambdas_prior and lambdas_weight (the Gamma prior's shape and rate) must be "
                f"positive for method={est.method!r}, or both 0 (the default: a weak prior "
                f"at the data mean), got {est.lambdas_prior!r} and {est.lambdas_weight!r}")
        self.shape0, self.rate0 = shape, rate
        # sum_d log x_nd!, (N,): the same for every state and every iteration
        self.log_factorial = gammaln(X + 1.0).sum(axis=1)

    def point_log_density(self, X, params):
        return self.est._log_density(X, params, self.n_threads)

    def stats(self, X, posteriors):
        return self.est._emission_stats(X, posteriors, None, self.n_threads, self.cache)

    def hard_stats(self, X, states, key=None):
        K = self.K
        states = states.astype(np.intp)
        # bincount adds in row order: deterministic
        obs = np.stack([np.bincount(states, weights=X[:, d], minlength=K)
                        for d in range(self.D)], axis=1)
        return {"post": np.bincount(states, minlength=K).astype(np.float64), "obs": obs}

    def update(self, stats):
        """q(lambda) (or p(lambda | z, X)): {'shape': (K, D), 'rate': (K, D)}."""
        return {"shape": self.shape0 + stats["obs"],
                "rate": self.rate0 + stats["post"][:, None]}

    def expected_log_density(self, X, q):
        """E_q log Poisson(x_n | lambda_k) = sum_d (x_nd E log lambda_kd - E lambda_kd
        - log x_nd!), with E log lambda = psi(a) - log b and E lambda = a / b: (N, K)."""
        elog = digamma(q["shape"]) - np.log(q["rate"])
        out = X @ elog.T
        out -= (q["shape"] / q["rate"]).sum(axis=1)
        out -= self.log_factorial[:, None]
        return np.ascontiguousarray(out)

    def kl(self, q):
        return float(gamma_kl(q["shape"], q["rate"], self.shape0, self.rate0).sum())

    def point(self, q):
        return {"lambdas": q["shape"] / q["rate"]}

    def q_attributes(self, q):
        return {"lambdas_shape_posterior_": q["shape"].copy(),
                "lambdas_rate_posterior_": q["rate"].copy()}

    def draw(self, q, rng):
        """lambda ~ Gamma(shape, rate), kept at least the smallest positive float (a draw that
        underflows to 0 would rule out every positive count)."""
        return {"lambdas": np.maximum(rng.gamma(q["shape"], 1.0 / q["rate"]),
                                      np.finfo(np.float64).tiny)}

    def features(self, params):
        return params["lambdas"]

    def permute(self, params, perm):
        return {"lambdas": params["lambdas"][..., perm, :]}


# ---------------------------------------------------------------------- Gaussian mixture
class GMMConjugate:
    """``GMMHMM``'s emissions: every state's mixture weights w_k ~ Dir(a0_k) and a
    Normal-Wishart / Normal-Gamma prior on every (state, component) Gaussian, the units of
    ``GaussianConjugate`` (``GaussianConjugate.units``): one unit over the K M pairs for
    'full', 'diag' and 'spherical'; for 'tied' one unit per state whose M components share its
    precision (Lambda_k ~ Wishart, mu_km | Lambda_k ~ N(m0_km, (beta0_km Lambda_k)^-1)).

    The priors are hmmlearn's ``GMMHMM`` parameters read as the conjugate prior their EM
    M-step is the MAP of (see ``GMMHMM``): a0 = ``weights_prior``, m0 = ``means_prior``,
    beta0 = ``means_weight``; 'full' / 'tied': psi0 = ``covars_prior`` (the inverse-Wishart
    scale), nu0 = ``covars_weight`` (its degrees of freedom); 'diag' / 'spherical': every
    precision ~ Gamma(shape ``covars_prior``, rate ``covars_weight``), i.e. nu0 = 2
    ``covars_prior``, psi0 = 2 ``covars_weight``. Defaults: ``means_prior`` all 0 -> m0 the
    data mean; ``means_weight`` all 0 -> beta0 = 1; ``covars_prior`` / ``covars_weight`` None
    -> nu0 = D and psi0 = 1e-3 x the data covariance (``default_scale_prior``), as
    ``GaussianHMM``'s Bayesian defaults. 'diag': one Gamma shape per Gaussian (the same for
    every feature, as ``GaussianConjugate``'s). Every mixture weight is free under the
    Dirichlet (zeros of a given ``weights_`` are not kept, unlike those of ``startprob_`` /
    ``transmat_``).

    Given q(theta) (or theta), the component log-densities c_nkm = E log w_km + E log
    N(x_n | mu_km, Lambda_km) (N, K, M) are kept from ``expected_log_density`` /
    ``point_log_density`` (which return their log-sum-exp over m, the state's) to the
    ``stats`` / ``hard_stats`` call of the same pass: mean field's responsibilities
    r_nkm = gamma_nk softmax_m(c_nk.), Gibbs's component draws c_n | z_n (keyed (seed, sweep,
    row), ``_gmm_components``).
    """

    def __init__(self, est, X, n_threads, cache):
        K, M, D = est.n_components, est.n_mix, X.shape[1]
        ctype = est.covariance_type
        self.est, self.K, self.M, self.D, self.ctype = est, K, M, D, ctype
        self.n_threads, self.cache = n_threads, cache
        self.merge_fields = ("nkm", "s1", "s2")   # per state (merge moves add two states')
        self._comp = None
        # the (state, component) pairs' Gaussian pass ('full' for 'tied', as EM): its shift
        cache["pass"] = G.GaussianPass(X, None, "full" if ctype == "tied" else ctype, K * M,
                                       n_threads)
        self.shift = shift = cache["pass"].shift.copy()
        Xd = np.asarray(X, dtype=np.float64) - shift
        method = est.method
        self.weights0 = _broadcast(est.weights_prior, (K, M), "weights_prior")
        if np.any(self.weights0 <= 0):
            raise ValueError(f"weights_prior must be positive for method={method!r} (a "
                             f"Dirichlet prior), got {est.weights_prior!r}")
        self.support = np.ones((K, M), dtype=bool)
        mp = _broadcast(est.means_prior, (K, M, D), "means_prior")
        m0 = np.zeros((K, M, D)) if np.all(mp == 0) else mp - shift
        beta0 = _broadcast(est.means_weight, (K, M), "means_weight")
        if np.all(beta0 == 0):
            beta0 = np.ones((K, M))
        elif np.any(beta0 <= 0):
            raise ValueError(f"means_weight must be positive for method={method!r} (or 0 "
                             f"everywhere, the default: 1), got {est.means_weight!r}")
        cp, cw = est.covars_prior, est.covars_weight
        if ctype in ("full", "tied"):
            lead = (K, M) if ctype == "full" else (K,)
            nu0 = np.full(lead, float(D)) if cw is None else _broadcast(cw, lead,
                                                                      "covars_weight")
            if np.any(nu0 <= D - 1):
                raise ValueError(f"covars_weight (the Wishart degrees of freedom) must be "
                                 f"greater than n_features - 1 = {D - 1} for "
                                 f"method={method!r}, got {cw!r}")
            if cp is None:
                psi0 = np.broadcast_to(default_scale_prior(Xd, ctype), lead + (D, D)).copy()
            else:
                psi0 = _broadcast(cp, lead + (D, D), "covars_prior")
                for p in psi0.reshape(-1, D, D):
                    if not np.allclose(p, p.T) or np.any(np.linalg.eigvalsh(p) <= 0):
                        raise ValueError("covars_prior (the inverse-Wishart scale) must be "
                                         f"symmetric positive-definite for method={method!r}")
        else:
            shape = (K, M, D) if ctype == "diag" else (K, M)
            nu0 = (np.full(shape, float(D)) if cp is None
                   else 2.0 * _broadcast(cp, shape, "covars_prior"))
            if np.any(nu0 <= 0):
                raise ValueError(f"covars_prior (the precisions' Gamma shape) must be positive "
                                 f"for method={method!r}, got {cp!r}")
            if ctype == "diag":  # GaussianConjugate's Normal-Gamma: one nu0 per Gaussian
                if not np.all(nu0 == nu0[..., :1]):
                    raise ValueError("'diag' covars_prior must be the same for every "
                                     f"feature for method={method!r}")
                nu0 = nu0[..., 0].copy()
            if cw is None:
                psi0 = np.broadcast_to(default_scale_prior(Xd, ctype), shape).copy()
            else:
                psi0 = 2.0 * _broadcast(cw, shape, "covars_weight")
                if np.any(psi0 <= 0):
                    raise ValueError(f"covars_weight (the precisions' Gamma rate) must be "
                                     f"positive for method={method!r}, got {cw!r}")
        if ctype == "tied":
            self.units = [GaussianConjugate.units("tied", m0[k], beta0[k], float(nu0[k]),
                                                  psi0[k], shift, n_threads)
                          for k in range(K)]
        else:
            self.units = [GaussianConjugate.units(
                ctype, m0.reshape(K * M, D), beta0.ravel(), nu0.reshape(K * M),
                psi0.reshape((K * M,) + psi0.shape[2:]), shift, n_threads)]

    # -- the units' view of q: (K, M, ...) arrays <-> each unit's
    def _unit_q(self, q, k):
        if self.ctype == "tied":
            return {"m": q["m"][k], "beta": q["beta"][k], "nu": q["nu"][k], "psi": q["psi"][k]}
        K, M = self.K, self.M
        return {"m": q["m"].reshape(K * M, -1), "beta": q["beta"].reshape(K * M),
                "nu": q["nu"].reshape(K * M),
                "psi": q["psi"].reshape((K * M,) + q["psi"].shape[2:])}

    def _stack(self, parts, names):
        """Per-unit results (dicts) as (K, M, ...) arrays (per state for 'tied' scalars)."""
        K, M = self.K, self.M
        if self.ctype == "tied":
            return {name: np.stack([np.asarray(p[name]) for p in parts]) for name in names}
        return {name: np.asarray(parts[0][name]).reshape((K, M) + np.shape(parts[0][name])[1:])
                for name in names}

    # -- statistics
    def _keep(self, comp):
        self._comp = comp
        N, K, M = comp.shape
        out = np.empty((N, K))
        _gmm_components.state_log_density(comp.reshape(N, K * M), M, out, CHUNK_SIZE,
                                          self.n_threads)
        return out

    def point_log_density(self, X, params):
        return self._keep(self.est._component_log_density(X, params, self.n_threads))

    def stats(self, X, posteriors):
        comp, self._comp = self._comp, None
        return self.est._stats_from_components(X, comp, posteriors, self.n_threads,
                                               self.cache)

    def hard_stats(self, X, states, key):
        """The component of every observation drawn given its state (``_gmm_components``,
        keyed (seed, sweep, row)), and the one-hot statistics of the (state, component)
        pairs: nkm (K, M), shifted s1 (K, M, D), s2 (the pass's per-pair second moments)."""
        comp, self._comp = self._comp, None
        K, M, N = self.K, self.M, X.shape[0]
        labels = np.empty(N, dtype=np.int32)
        _gmm_components.draw_components(comp.reshape(N, K * M), states, M, key[0], key[1],
                                        labels, CHUNK_SIZE, self.n_threads)
        del comp
        s = self.cache["pass"].stats_from_resp(G.HardAssignments(labels, K * M))
        s2 = s["s2"]
        return {"nkm": s["nk"].reshape(K, M), "s1": s["s1"].reshape(K, M, self.D),
                "s2": s2.reshape((K, M) + s2.shape[1:])}

    # -- posterior
    def update(self, stats):
        """q (or p(theta | z, c)): weights (K, M) Dirichlet concentrations; m (K, M, D)
        shifted, beta (K, M), nu ((K, M), 'tied' (K,)), psi (the type's shape per pair, per
        state for 'tied')."""
        K, M, D = self.K, self.M, self.D
        nkm, s1, s2 = stats["nkm"], stats["s1"], stats["s2"]
        if self.ctype == "tied":
            parts = [u.update({"nk": nkm[k], "s1": s1[k], "s2": s2[k].sum(axis=0)})
                     for k, u in enumerate(self.units)]
        else:
            parts = [self.units[0].update({"nk": nkm.reshape(K * M),
                                           "s1": s1.reshape(K * M, D),
                                           "s2": s2.reshape((K * M,) + s2.shape[2:])})]
        q = self._stack(parts, ("m", "beta", "nu", "psi"))
        q["weights"] = self.weights0 + nkm
        return q

    def _component_inputs(self, covs, elds):
        """Kernel inputs of the K M Gaussians from per-unit covariances and E log|Lambda|
        (or the point log-determinants): (precision array, code, log|U| per pair)."""
        K, M, D, ctype = self.K, self.M, self.D, self.ctype
        if ctype == "tied":
            cov = np.repeat(np.stack(covs), M, axis=0)
            eld = np.repeat(np.asarray(elds, dtype=np.float64), M)
            ctype = "full"
        else:
            cov, eld = covs[0], elds[0]
            if ctype == "diag":
                eld = eld.sum(axis=1)
            elif ctype == "spherical":
                eld = D * eld
        if ctype == "full":
            prec = np.ascontiguousarray(G.precision_cholesky(cov, "full")).ravel()
        else:
            prec = np.ascontiguousarray(1.0 / cov).ravel()
        return prec, _CODES[ctype], 0.5 * np.asarray(eld).reshape(K * M)

    def expected_log_density(self, X, q):
        """l~_nk = log sum_m exp(E log w_km + 1/2 E log|Lambda_km| - D/2 log 2 pi - D/(2
        beta_km) - 1/2 nu_km (x_n - m_km)^T W_km (x_n - m_km)), (N, K); the (N, K, M) terms
        are kept for the pass's ``stats``."""
        K, M, D = self.K, self.M, self.D
        covs, elds = [], []
        for k, u in enumerate(self.units):
            uq = self._unit_q(q, k)
            covs.append(u.covariances(uq) if self.ctype != "tied" else uq["psi"] / uq["nu"])
            elds.append(u._expected_log_det(uq))
        prec, code, half_eld = self._component_inputs(covs, elds)
        elog_w = dirichlet_expected_log(q["weights"], self.support).ravel()
        log_const = np.ascontiguousarray(half_eld - 0.5 * D * LOG_2PI
                                         - 0.5 * D / q["beta"].ravel() + elog_w)
        out = np.empty((X.shape[0], K * M))
        _hmm.gaussian_log_density(X, np.ascontiguousarray((q["m"] + self.shift)
                                                          .reshape(K * M, D)),
                                  prec, code, log_const, out, CHUNK_SIZE, self.n_threads)
        return self._keep(out.reshape(-1, K, M))

    def kl(self, q):
        return (dirichlet_kl(q["weights"], self.weights0, self.support)
                + sum(u.kl(self._unit_q(q, k)) for k, u in enumerate(self.units)))

    def point(self, q):
        """Posterior means: weights, means (K, M, D), covars = (E Lambda)^-1 in hmmlearn's
        ``GMMHMM`` shapes."""
        if self.ctype == "tied":
            covars = q["psi"] / q["nu"][:, None, None]
        else:
            covars = self._stack([{"c": self.units[0].covariances(self._unit_q(q, 0))}],
                                 ("c",))["c"]
        return {"weights": dirichlet_mean(q["weights"], self.support),
                "means": q["m"] + self.shift, "covars": covars}

    def q_attributes(self, q):
        return {"weights_posterior_": q["weights"].copy(),
                "means_posterior_": q["m"] + self.shift, "beta_posterior_": q["beta"].copy(),
                "dof_posterior_": np.array(q["nu"], dtype=np.float64),
                "scale_posterior_": q["psi"].copy()}

    def draw(self, q, rng):
        """theta ~ q: weights (Dirichlet rows), then every unit's Normal-Wishart /
        Normal-Gamma draw."""
        weights = dirichlet_draw(q["weights"], self.support, rng)
        parts = [u.draw(self._unit_q(q, k), rng) for k, u in enumerate(self.units)]
        out = self._stack(parts, ("means", "covars"))
        out["weights"] = weights
        return out

    def features(self, params):
        """(..., K, 2 D) per-state vectors for the label matching of draws, unchanged by a
        permutation of a state's components: the mixture's mean and its standard deviations
        (within- and between-component spread)."""
        w, mu, cov = params["weights"], params["means"], params["covars"]
        mean = np.einsum("...km,...kmd->...kd", w, mu)
        ctype = self.ctype
        if ctype == "full":
            var = np.diagonal(cov, axis1=-2, axis2=-1)
        elif ctype == "tied":
            var = np.diagonal(cov, axis1=-2, axis2=-1)[..., None, :]
        elif ctype == "diag":
            var = cov
        else:
            var = cov[..., None]
        second = np.einsum("...km,...kmd->...kd", w, var + mu ** 2)
        return np.concatenate([mean, np.sqrt(np.maximum(second - mean ** 2, 0.0))], axis=-1)

    def permute(self, params, perm):
        return {name: np.asarray(value)[perm] for name, value in params.items()}

    def align_components(self, samples):
        """Match the components within every state across draws (after the states are
        matched): Hungarian matching of the component means to a reference (the last draw
        of chain 0, then the mean of the matched draws: two rounds), per state."""
        M = self.M
        if M == 1:
            return samples
        means = samples["means"]
        out = {name: np.array(value, copy=True) for name, value in samples.items()}
        for k in range(means.shape[2]):
            perms = match_draws(means[:, :, k])  # (C, S, M, D) -> (C, S, M)
            for name in ("weights", "means") + (() if self.ctype == "tied" else ("covars",)):
                value = samples[name][:, :, k]
                idx = perms.reshape(perms.shape + (1,) * (value.ndim - 3))
                out[name][:, :, k] = np.take_along_axis(value, idx, axis=2)
        return out
