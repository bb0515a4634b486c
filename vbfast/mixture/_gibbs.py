"""Blocked Gibbs sampling for the Bayesian Gaussian mixture: p(z, theta | X) by simulation.

The model is the one of ``vbfast.emissions.gaussian_prior`` (the mean-field variant's priors, from
``resolve_priors``), with these choices where a covariance type needs one:

    weights     dirichlet_distribution: pi ~ Dir(alpha0, ..., alpha0)
                dirichlet_process: truncated stick-breaking (Ishwaran & James 2001):
                    v_k ~ Beta(1, gamma0) for k < K, v_K = 1, pi_k = v_k prod_{j<k} (1 - v_j)
    'full'      Lambda_k ~ Wishart(W0, nu0), mu_k | Lambda_k ~ N(m0, (beta0 Lambda_k)^{-1})
    'tied'      ONE Lambda ~ Wishart(W0, nu0) shared by all components,
                mu_k | Lambda ~ N(m0, (beta0 Lambda)^{-1})
    'diag'      Lambda_k = diag(lambda_k1..lambda_kD), lambda_kj ~ Gamma(nu0/2, rate psi0_j/2)
                (the marginal of a diagonal of Wishart(diag(1/psi0), nu0)),
                mu_kj | lambda_kj ~ N(m0_j, 1 / (beta0 lambda_kj))
    'spherical' Lambda_k = lambda_k I, lambda_k ~ Gamma(nu0 D/2, rate psi0 D/2),
                mu_k | lambda_k ~ N(m0, I / (beta0 lambda_k))
    z_n | pi ~ Cat(pi),  x_n | z_n = k ~ N(mu_k, Lambda_k^{-1}),  W0^{-1} = psi0.

Every block has an exact conjugate conditional, so each sweep is

    1. z | theta, X           in the kernel pass (``_gmm.gmm_pass`` with ``sample_z``), which
                              also returns the hard-count statistics and log p(X, z | theta);
    2. weights | z            Dirichlet(alpha0 + N_k), or v_k ~ Beta(1 + N_k,
                              gamma0 + sum_{j>k} N_j) (k < K);
    3. (mu_k, Lambda_k) | z, X  Normal-Wishart / Normal-Gamma with
                              beta_k = beta0 + N_k,  m_k = (beta0 m0 + N_k xbar_k) / beta_k,
                              nu_k = nu0 + N_k,
                              Psi_k = psi0 + S_k + beta0 N_k / beta_k (xbar_k - m0)(...)^T
                              (S_k the scatter about xbar_k; for 'tied' nu = nu0 + N and Psi
                              sums the K scatter and mean terms; 'diag' takes the diagonals,
                              'spherical' the traces / D), Lambda_k drawn first, then mu_k.

The posterior means of these conditionals are the mean-field updates of
``MeanFieldFitState.update`` without ``reg_covar`` ('full', 'diag', 'spherical'); 'tied' is a
different model from the mean-field 'tied' (which restricts q(Lambda_k) of the per-component
model), so its conditional uses nu0 + N rather than nu0 + N / K. ``reg_covar`` is not used: the
conditionals are the exact posteriors, and psi0 keeps every Psi_k positive-definite.

Random numbers: the z draws come from the kernel's counter-based stream keyed by
(chain seed, sweep, row), so they do not depend on the thread count; the K-sized parameter
draws use a NumPy Generator per chain. Wishart draws use the Bartlett decomposition.
"""
import numpy as np
from scipy import linalg
from scipy.special import gammaln

from ..emissions import degenerate as DG
from ..emissions import gaussian_prior as BG
from ..emissions import gaussian as G
from .._core.loop import Sampling, iterate, run_fits
from .._core.mcmc import effective_sample_size, split_rhat
from .._core.protocol import Method
from .._core.sampling import matching, n_sweeps, warn_if_not_converged
from .._core.threads import single_threaded_blas

_LOG_2PI = G.LOG_2PI


# ====================================================================== conditionals
def conditional_posterior(stats, centers_shifted, priors, covariance_type, shift, gram=None):
    """Parameters of p(theta | X, z) from hard-count statistics of one sampled pass.

    Parameters
    ----------
    stats : dict
        ``nk`` (K,), ``s1`` (K, D) and ``s2`` from ``GaussianPass.run`` (shifted coordinates;
        S2 centred at ``centers_shifted``).
    centers_shifted : ndarray of shape (K, D)
        The means the pass was given (not used by 'tied').
    priors : dict
        From ``gaussian_prior.resolve_priors``.
    covariance_type : str
    shift : ndarray of shape (D,)
        The pass's shift; m0 is moved into shifted coordinates with it.
    gram : ndarray of shape (D, D), optional
        sum_n w_n (x_n - shift)(x_n - shift)^T, needed for 'tied'.

    Returns
    -------
    post : dict
        ``weights``: ("dirichlet", alpha (K,)) or ("sticks", a (K-1,), b (K-1,));
        ``beta`` (K,), ``m`` (K, D) shifted posterior means of mu;
        ``nu``: (K,) ('full', 'diag', 'spherical') or float ('tied');
        ``psi``: the scale inverse, (K, D, D) 'full', (D, D) 'tied', (K, D) 'diag', (K,)
        'spherical' (for the Gamma types shape = nu/2 and rate = psi/2 per dimension for
        'diag', shape = nu D/2 and rate = psi D/2 for 'spherical').
    """
    nk, xbar, scatter = data_moments(stats, centers_shifted, covariance_type, gram)
    return posterior_from_moments(nk, xbar, scatter, priors, covariance_type, shift,
                                  stats["s1"])


def data_moments(stats, centers_shifted, covariance_type, gram=None):
    """(N_k (K,), xbar_k (K, D) shifted, scatter) of hard-count statistics: the scatter
    about xbar_k, (K, D, D) 'full', (D, D) within-component 'tied', (K, D) 'diag', (K,)
    summed over the dimensions 'spherical' (``conditional_posterior``'s arguments)."""
    nk = np.asarray(stats["nk"], dtype=np.float64)
    s1 = np.asarray(stats["s1"], dtype=np.float64)
    occupied = nk > 0
    safe_nk = np.where(occupied, nk, 1.0)
    xbar = np.where(occupied[:, None], s1 / safe_nk[:, None], 0.0)
    if covariance_type == "full":
        c = xbar - centers_shifted
        scatter = stats["s2"] - nk[:, None, None] * c[:, :, None] * c[:, None, :]
    elif covariance_type == "tied":
        scatter = gram - (nk[:, None] * xbar).T @ xbar
    elif covariance_type == "diag":
        # S2 is centred at the pass's centres, as for 'full'
        c = xbar - centers_shifted
        scatter = np.maximum(stats["s2"] - nk[:, None] * c ** 2, 0.0)
    else:
        c = xbar - centers_shifted
        scatter = np.maximum(stats["s2"] - nk * (c ** 2).sum(axis=1), 0.0)
    return nk, xbar, scatter


def posterior_from_moments(nk, xbar, scatter, priors, covariance_type, shift, s1=None):
    """``conditional_posterior`` from the data moments (``data_moments``); ``s1``, the sums
    N_k xbar_k as the pass gave them (the default: computed)."""
    K, D = xbar.shape
    if s1 is None:
        s1 = nk[:, None] * xbar
    s1 = np.asarray(s1, dtype=np.float64)
    if priors["type"] == "dirichlet_process":
        rest = np.hstack((np.cumsum(nk[::-1])[-2::-1], 0.0))  # sum_{j>k} N_j
        weights = ("sticks", 1.0 + nk[:-1], priors["alpha0"] + rest[:-1])
    else:
        weights = ("dirichlet", priors["alpha0"] + nk)

    beta0, nu0, psi0 = priors["beta0"], priors["nu0"], priors["psi0"]
    m0 = np.asarray(priors["m0"], dtype=np.float64) - shift
    beta = beta0 + nk
    m = (beta0 * m0 + s1) / beta[:, None]
    d = xbar - m0
    shrink = beta0 * nk / beta
    if covariance_type == "full":
        psi = psi0 + scatter + shrink[:, None, None] * d[:, :, None] * d[:, None, :]
        psi = 0.5 * (psi + np.swapaxes(psi, 1, 2))
        nu = nu0 + nk
    elif covariance_type == "tied":
        psi = psi0 + scatter + (shrink[:, None] * d).T @ d
        psi = 0.5 * (psi + psi.T)
        nu = float(nu0 + nk.sum())
    elif covariance_type == "diag":
        psi = psi0 + scatter + shrink[:, None] * d ** 2
        nu = nu0 + nk
    else:
        psi = psi0 + (scatter + shrink * (d ** 2).sum(axis=1)) / D
        nu = nu0 + nk
    return {"weights": weights, "beta": beta, "m": m, "nu": nu, "psi": psi}


def log_standard_gamma(shape, rng):
    """log G for G ~ Gamma(shape, 1), elementwise, finite for any shape > 0.

    A Gamma(a) draw with a << 1 is below the smallest double with high probability (for
    a = 1e-2 about once in 1e-300^0.01 = 1 in 1000), so its log is taken by
    G = G' U^(1/a), G' ~ Gamma(a + 1), U ~ Uniform(0, 1) (Marsaglia & Tsang): log G =
    log G' + log(U) / a. Shapes >= 1 are drawn directly (the same stream as before).
    """
    shape = np.asarray(shape, dtype=np.float64)
    small = shape < 1.0
    g = rng.standard_gamma(np.where(small, shape + 1.0, shape))
    with np.errstate(divide="ignore"):
        out = np.log(g)
    if small.any():
        # 1 - U is in (0, 1]: its log is finite
        out[small] += np.log1p(-rng.random(int(small.sum()))) / shape[small]
    return out


def draw_log_weights(weights_post, rng):
    """log pi from its conditional: ``("dirichlet", alpha)`` or ``("sticks", a, b)``.

    Everything stays in log space (``log_standard_gamma``; v = Ga / (Ga + Gb),
    log(1 - v) = log Gb - log(Ga + Gb)), so no weight or stick rounds to exactly 0 or 1,
    whatever the concentration: log pi and log(1 - v) are always finite. Returns
    (log_pi (K,), log_v, log_1mv) (the last two None for the Dirichlet).
    """
    if weights_post[0] == "dirichlet":
        log_g = log_standard_gamma(weights_post[1], rng)
        return log_g - _logsumexp(log_g), None, None
    _, a, b = weights_post
    log_ga, log_gb = log_standard_gamma(a, rng), log_standard_gamma(b, rng)
    log_total = np.logaddexp(log_ga, log_gb)
    log_v = log_ga - log_total
    log_1mv = log_gb - log_total
    log_pi = np.hstack((log_v, 0.0)) + np.hstack((0.0, np.cumsum(log_1mv)))
    return log_pi, log_v, log_1mv


def _logsumexp(a):
    m = a.max()
    return m + np.log(np.exp(a - m).sum())


def bartlett_factor(nu, D, rng):
    """Upper-triangular B with B B^T ~ Wishart(nu, I_D).

    The Bartlett decomposition reversed (J A J for the usual lower A, J the reversal): B_ii^2 ~
    chi^2(nu - (D - 1 - i)), B_ij ~ N(0, 1) for j > i, zero below.
    """
    B = np.triu(rng.standard_normal((D, D)), 1)
    B[np.arange(D), np.arange(D)] = np.sqrt(rng.chisquare(nu - (D - 1 - np.arange(D))))
    return B


def draw_wishart_cholesky(psi, nu, rng):
    """Upper factor U (Lambda = U U^T) of Lambda ~ Wishart(nu, psi^{-1}).

    With M = chol(psi)^{-T} (upper, M M^T = psi^{-1}) and B from ``bartlett_factor``,
    U = M B is upper triangular and U U^T = M (B B^T) M^T ~ Wishart(nu, M M^T).
    """
    M = G.precision_cholesky(psi[None], "full")[0]
    return M @ bartlett_factor(nu, psi.shape[0], rng)


def draw_parameters(post, covariance_type, rng):
    """One draw of theta = (log pi, mu, Lambda) from ``conditional_posterior``'s result.

    Returns a dict: ``log_weights`` (K,), ``means`` (K, D) shifted, ``prec_chol`` in the
    estimator's layout, plus ``log_v`` / ``log_1mv`` for the stick-breaking prior.
    """
    log_pi, log_v, log_1mv = draw_log_weights(post["weights"], rng)
    m, beta, nu, psi = post["m"], post["beta"], post["nu"], post["psi"]
    K, D = m.shape
    eps = rng.standard_normal((K, D))
    if covariance_type in ("full", "tied"):
        if covariance_type == "full":
            prec_chol = np.stack([draw_wishart_cholesky(psi[k], nu[k], rng) for k in range(K)])
            chols = prec_chol
        else:
            prec_chol = draw_wishart_cholesky(psi, nu, rng)
            chols = np.broadcast_to(prec_chol, (K, D, D))
        # mu_k = m_k + U_k^{-T} eps_k / sqrt(beta_k): covariance U^{-T} U^{-1} / beta = (beta
        # Lambda)^{-1}
        means = np.stack([linalg.solve_triangular(chols[k], eps[k], trans="T", lower=False)
                          for k in range(K)]) / np.sqrt(beta)[:, None] + m
    elif covariance_type == "diag":
        lam = rng.gamma(0.5 * nu[:, None], 2.0 / psi, size=(K, D))
        prec_chol = np.sqrt(lam)
        means = m + eps / (np.sqrt(beta)[:, None] * prec_chol)
    else:
        lam = rng.gamma(0.5 * D * nu, 2.0 / (D * psi), size=K)
        prec_chol = np.sqrt(lam)
        means = m + eps / (np.sqrt(beta) * prec_chol)[:, None]
    return {"log_weights": log_pi, "log_v": log_v, "log_1mv": log_1mv, "means": means,
            "prec_chol": prec_chol}


def log_prior(theta, priors, covariance_type, shift):
    """log p(theta) of a draw (the stick-breaking prior as the density of the sticks v)."""
    K, D = theta["means"].shape
    if priors["type"] == "dirichlet_process":
        g0 = priors["alpha0"]
        out = float(np.sum(np.log(g0) + (g0 - 1.0) * theta["log_1mv"]))
    else:
        a0 = priors["alpha0"]
        out = float(gammaln(K * a0) - K * gammaln(a0) + (a0 - 1.0) * theta["log_weights"].sum())
    beta0, nu0, psi0 = priors["beta0"], priors["nu0"], priors["psi0"]
    diff = theta["means"] - (np.asarray(priors["m0"], dtype=np.float64) - shift)
    U = theta["prec_chol"]
    if covariance_type in ("full", "tied"):
        chols = U if covariance_type == "full" else U[None]
        log_det = 2.0 * np.log(np.diagonal(chols, axis1=1, axis2=2)).sum(axis=1)  # log|Lambda|
        lam = np.einsum("kij,klj->kil", chols, chols)
        log_norm = BG.log_wishart_norm(-priors["log_det_psi0"], nu0, D)
        out += float(np.sum(log_norm + 0.5 * (nu0 - D - 1.0) * log_det
                            - 0.5 * np.einsum("ij,kij->k", psi0, lam)))
        log_det_k = np.broadcast_to(log_det, (K,))
        if covariance_type == "full":
            quad = ((np.einsum("ki,kij->kj", diff, U)) ** 2).sum(axis=1)
        else:
            quad = ((diff @ U) ** 2).sum(axis=1)
        out += float(np.sum(0.5 * D * np.log(beta0) - 0.5 * D * _LOG_2PI + 0.5 * log_det_k
                            - 0.5 * beta0 * quad))
    elif covariance_type == "diag":
        lam = U ** 2
        a, b = 0.5 * nu0, 0.5 * psi0
        out += float(np.sum(a * np.log(b) - gammaln(a) + (a - 1.0) * np.log(lam) - b * lam))
        out += float(np.sum(0.5 * np.log(beta0 * lam) - 0.5 * _LOG_2PI
                            - 0.5 * beta0 * lam * diff ** 2))
    else:
        lam = U ** 2
        a, b = 0.5 * nu0 * D, 0.5 * psi0 * D
        out += float(np.sum(a * np.log(b) - gammaln(a) + (a - 1.0) * np.log(lam) - b * lam))
        out += float(np.sum(0.5 * D * np.log(beta0 * lam) - 0.5 * D * _LOG_2PI
                            - 0.5 * beta0 * lam * (diff ** 2).sum(axis=1)))
    return out


# ====================================================================== one chain
class GibbsFitState(Method):
    """One chain of the blocked Gibbs sampler, a method of the protocol
    (``vbfast._core.protocol``).

    An iteration is one sweep: the pass at the current theta draws z and gives the hard-count
    statistics with log p(X, z | theta) (``pass_inputs`` asks the kernel for ``sample_z``,
    keyed by (chain seed, sweep)); ``update`` then redraws theta from p(theta | X, z). The
    bound is the log joint log p(X, z_t, theta_{t-1}) at the state just after the z block: not
    a bound, and not monotone (so the loop's bound-decrease guard never applies).
    """

    monotone = False
    bound_kind = "log joint"
    overflow_advice = "Scale the input data."

    def __init__(self, data, covariance_type, priors, rng, kernel_seed, running=None,
                 reseeds=None):
        self.data = data
        self.covariance_type = covariance_type
        self.priors = priors
        self.rng = rng
        self.kernel_seed = int(kernel_seed)
        self.running = running  # a RunningPosterior: draws not stored (store_samples=False)
        # degenerate components (``vbfast.emissions.degenerate``): a component without data
        # is drawn from its prior already; only a conditional whose Wishart / Gamma scale is
        # not positive-definite is re-seeded
        self.reseeds = reseeds
        self.n_reseeds = 0
        self.sweep = 0
        self.theta = None
        self._centers = None
        self._log_joint = None

    @classmethod
    def from_resp(cls, data, covariance_type, priors, rng, kernel_seed, resp, running=None,
                  reseeds=None):
        """Start from a draw of p(theta | X, z) with the (soft) initial responsibilities
        standing in for the hard counts."""
        state = cls(data, covariance_type, priors, rng, kernel_seed, running, reseeds)
        stats, centers = data.centred_stats_from_resp(resp)
        state._draw_theta(stats, centers)
        return state

    def _draw_theta(self, stats, centers_shifted):
        """theta ~ p(theta | X, z); a component whose conditional scale is not
        positive-definite is re-seeded first (its data moments split from another's)."""
        data, ctype = self.data, self.covariance_type
        gram = data.gram() if data.covariance.uses_gram else None
        nk, xbar, scatter = data_moments(stats, centers_shifted, ctype, gram)
        post = {}
        split = [False]

        def draw():
            # the pass's sums S1 = N_k xbar_k until a re-seed changed the moments
            post.update(posterior_from_moments(nk, xbar, scatter, self.priors, ctype,
                                               data.shift, None if split[0] else stats["s1"]))
            return draw_parameters(post, ctype, self.rng)

        def failed_scale():  # asked for once a draw failed, before the moments are split
            split[0] = True
            return post["psi"]

        self.theta, n = DG.settle(self.reseeds, nk, xbar, scatter, ctype, 0.0, draw,
                                  failed_scale, summed=True)
        self.n_reseeds += n
        self.bound_reset = n > 0
        return n

    def kernel_inputs(self):
        """(shifted centres, factor array, aux, c_k) of EM's pass at the current draw: for
        'diag' / 'spherical' the GEMM form about the shift (centre 0) except for components
        far from it, which are centred at their means (``G.pass_inputs``); for 'full' /
        'tied' the means."""
        th, D = self.theta, self.data.n_features
        log_const = (th["log_weights"] + G.log_det_cholesky(th["prec_chol"],
                                                            self.covariance_type, D)
                     - 0.5 * D * _LOG_2PI)
        # (the drawn means are in the shifted coordinates already: shift 0)
        return G.pass_inputs(th["means"], th["prec_chol"], self.covariance_type, 0.0,
                             log_const)

    # ---- the protocol
    def pass_inputs(self, shard):
        inputs = self.kernel_inputs()
        self._centers = inputs[0]
        return inputs, {"sample_z": True, "seed": self.kernel_seed, "sweep": self.sweep}

    def update(self, stats):
        self._log_joint = stats["log_likelihood"] + log_prior(
            self.theta, self.priors, self.covariance_type, self.data.shift)
        self._draw_theta(stats, self._centers)
        self.sweep += 1

    def bound(self):
        return self._log_joint

    def current(self):
        """The current theta in original coordinates: weights, means, precisions_cholesky."""
        th = self.theta
        return {"weights": np.exp(th["log_weights"]), "means": th["means"] + self.data.shift,
                "precisions_cholesky": np.array(th["prec_chol"])}

    def draw(self):
        """The kept draw: the current theta; without stored samples, its weights and means
        relabelled by the running posterior, which keeps the precisions' running sum."""
        theta = self.current()
        if self.running is None:
            return theta
        return self.running.add(theta)

    def attributes(self):
        return {**self.current(), "n_reseeds_": self.n_reseeds}

    def step(self):
        """One sweep outside the loop (benchmarks, tests); returns its log joint."""
        return iterate(self, self.data)


# ====================================================================== the sampler
class RunningPosterior:
    """The posterior means over the kept draws of every chain without storing the draws'
    precisions (``store_samples=False``): each draw is relabelled when it is made, against a
    fixed reference (the first kept draw of the first chain; features scaled by the data's
    spread), and its precisions added to a running sum. Only weights and means (K (D + 1)
    numbers a draw) are kept, for the diagnostics and the means.

    Stored samples are relabelled after the fact instead, against a reference refined over
    all draws (``relabel``), so the two can pair an ambiguous draw's components differently.
    """

    def __init__(self, covariance_type, scale):
        self.covariance_type = covariance_type
        self.scale = scale
        self.reference = None
        self.sum_precisions = None
        self.count = 0

    def add(self, theta):
        """Relabel ``theta`` (``GibbsFitState.current``), add its precisions; returns its
        relabelled weights and means."""
        means = theta["means"]
        u = theta["precisions_cholesky"]
        if self.reference is None:
            self.reference = means / self.scale
        perm = matching(self.reference, means / self.scale)
        if self.covariance_type == "full":
            prec = np.einsum("kij,klj->kil", u, u)[perm]
        elif self.covariance_type == "tied":
            prec = u @ u.T
        else:
            prec = (u ** 2)[perm]
        self.sum_precisions = prec if self.sum_precisions is None else \
            self.sum_precisions + prec
        self.count += 1
        return {"weights": theta["weights"][perm], "means": means[perm]}

    def mean_precisions(self):
        return self.sum_precisions / self.count


def run_chains(data, priors, initial_resp, random_state, *, n_draws, burn_in, thin, n_chains,
               verbose=0, verbose_interval=10, store_samples=True, reseeding=None):
    """Run ``n_chains`` chains of ``burn_in + n_draws * thin`` sweeps through the one loop;
    returns the loop's ``RunResult`` of every chain (kept draws in ``draws``).

    Chain c's seeds come from ``SeedSequence(entropy).spawn(n_chains)[c]``, the entropy being
    drawn from ``random_state``; each chain's child is split again into the seed of its
    initialisation (``initial_resp(data, RandomState)``: k-means etc.), of its parameter draws
    (a PCG64 Generator) and of the kernel's z stream. Chains run one after another, each pass
    using every thread. Without ``store_samples`` the chains' draws of the precisions are
    not kept: returns (results, the ``RunningPosterior``) instead.
    """
    entropy = [int(e) for e in random_state.randint(0, 2 ** 32, size=4, dtype=np.int64)]
    chains = np.random.SeedSequence(entropy).spawn(n_chains)
    ctype = data.covariance_type
    running = None
    if not store_samples:
        spread = np.sqrt(BG._weighted_variance(data) / data.weight_sum)
        running = RunningPosterior(ctype, spread + 1e-12 * (1.0 + np.abs(data.shift)))

    def new_chain(c):
        init_seq, param_seq, kernel_seq = chains[c].spawn(3)
        init_rs = np.random.RandomState(np.random.MT19937(init_seq))
        rng = np.random.Generator(np.random.PCG64(param_seq))
        kernel_seed = int(kernel_seq.generate_state(1, np.uint64)[0])
        return GibbsFitState.from_resp(data, ctype, priors, rng, kernel_seed,
                                       initial_resp(data, init_rs), running,
                                       reseeding.run() if reseeding is not None else None)

    results = run_fits(new_chain, data, n_runs=n_chains,
                       max_iter=n_sweeps(n_draws, burn_in, thin), verbose=verbose,
                       verbose_interval=verbose_interval, sampling=Sampling(burn_in, thin))
    return results if store_samples else (results, running)


def relabel(samples, covariance_type):
    """Permute the components of every draw to match a reference (in place).

    ``samples``: ``weights`` (C, S, K), ``means`` (C, S, K, D), ``precisions_cholesky`` and
    ``precisions`` (C, S) + the estimator's shapes. The reference starts as the last draw of
    the first chain and is then replaced by the mean of the matched draws, and the matching
    repeated (two rounds). The cost of pairing reference component k with draw component j is
    the squared distance of their means, each feature scaled by the spread of all drawn means;
    ``vbfast._core.sampling.matching`` (Hungarian) finds the cheapest permutation per draw.
    """
    means = samples["means"]  # (C, S, K, D)
    C, S, K, D = means.shape
    if K == 1:
        return
    scale = means.reshape(-1, D).std(axis=0) + 1e-12
    reference = means[0, -1] / scale
    for _ in range(2):
        perms = np.empty((C, S, K), dtype=np.intp)
        for c in range(C):
            for s in range(S):
                perms[c, s] = matching(reference, means[c, s] / scale)
        matched = np.take_along_axis(means, perms[..., None], axis=2)
        reference = matched.reshape(-1, K, D).mean(axis=0) / scale
    for name in ("weights", "means", "precisions_cholesky", "precisions"):
        if name in ("precisions_cholesky", "precisions") and covariance_type == "tied":
            continue
        arr = samples[name]
        idx = perms.reshape(perms.shape + (1,) * (arr.ndim - 3))
        samples[name] = np.take_along_axis(arr, idx, axis=2)


def _posterior_summary(samples, covariance_type, precisions=None):
    """Fitted attributes from the (relabelled) kept draws: posterior means of pi, mu and
    Lambda (``precisions``: the last, when the draws do not hold them); covariances_ =
    (E Lambda)^{-1}, as the mean-field variant reports them."""
    flat = lambda a: a.reshape((-1,) + a.shape[2:])  # noqa: E731
    weights = flat(samples["weights"]).mean(axis=0)
    means = flat(samples["means"]).mean(axis=0)
    if precisions is None:
        precisions = flat(samples["precisions"]).mean(axis=0)
    if covariance_type in ("full", "tied"):
        prec_chol = G.precision_cholesky_from_precisions(precisions, covariance_type)
    else:
        prec_chol = np.sqrt(precisions)
    covariances = G.covariances_from_cholesky(prec_chol, covariance_type)
    return {"weights_": weights / weights.sum(), "means_": means, "precisions_": precisions,
            "precisions_cholesky_": prec_chol, "covariances_": covariances}


def posterior_fit(results, covariance_type, running=None):
    """The fit of the chains ``results`` (``run_chains``): returns ``(params, attributes)``.

    ``params``: the posterior summary in float64 (``weights_``, ``means_``, ``precisions_``,
    ``precisions_cholesky_``, ``covariances_``), to be cast to X's dtype. ``attributes``:
    ``posterior_samples_`` (every kept draw, leading axes (n_chains, n_draws), relabelled, with
    ``precisions`` and the ``log_joint`` of the kept sweeps), ``sampler_diagnostics_``,
    ``log_joint_trace_`` (n_chains, n_sweeps), and chain 0's ``lower_bounds_``,
    ``iteration_times_``, ``lower_bound_``, ``n_iter_``. With ``running`` (the
    ``RunningPosterior`` of ``store_samples=False``) the draws hold weights and means only,
    already relabelled, and the precisions' posterior mean is the running one.
    """
    samples = {name: np.stack([r.draws[name] for r in results]) for name in results[0].draws}
    if running is None:
        u = samples["precisions_cholesky"]
        samples["precisions"] = (np.einsum("...ij,...kj->...ik", u, u)
                                 if covariance_type in ("full", "tied") else u ** 2)
        relabel(samples, covariance_type)
    traces = np.stack([r.bounds for r in results])
    samples["log_joint"] = traces[:, results[0].kept]
    first = results[0]
    attributes = {"posterior_samples_": samples,
                  "sampler_diagnostics_": sampler_diagnostics(samples),
                  "log_joint_trace_": traces,
                  "lower_bounds_": first.bounds, "iteration_times_": first.times,
                  "lower_bound_": float(first.bound), "n_iter_": int(first.n_iter),
                  "n_reseeds_": int(sum(r.attributes.get("n_reseeds_", 0) for r in results))}
    precisions = running.mean_precisions() if running is not None else None
    return _posterior_summary(samples, covariance_type, precisions), attributes


def sampler_diagnostics(samples):
    """Split-R-hat and ESS of permutation-invariant summaries of the kept draws.

    The summaries are the log joint and the weights sorted in decreasing order (neither
    depends on the labelling, so label switching between or within chains cannot inflate
    them). Returns a dict with ``rhat`` and ``ess`` (each {"log_joint": float,
    "sorted_weights": (K,)}) and ``max_rhat`` (nan when fewer than 4 draws are kept).
    """
    log_joint = samples["log_joint"]
    sorted_weights = -np.sort(-samples["weights"], axis=2)
    if log_joint.shape[1] < 4:
        nan_k = np.full(sorted_weights.shape[2], np.nan)
        return {"rhat": {"log_joint": np.nan, "sorted_weights": nan_k},
                "ess": {"log_joint": np.nan, "sorted_weights": nan_k}, "max_rhat": np.nan}
    rhat = {"log_joint": split_rhat(log_joint), "sorted_weights": split_rhat(sorted_weights)}
    ess = {"log_joint": effective_sample_size(log_joint),
           "sorted_weights": effective_sample_size(sorted_weights)}
    max_rhat = float(np.nanmax(np.hstack([rhat["log_joint"], rhat["sorted_weights"]])))
    return {"rhat": rhat, "ess": ess, "max_rhat": max_rhat}


def check_convergence(diagnostics):
    """``converged_`` from ``sampler_diagnostics``: every split-R-hat below the threshold
    (``vbfast._core.sampling``); a ConvergenceWarning otherwise."""
    return warn_if_not_converged(diagnostics["max_rhat"], "the log joint and the sorted weights")


def predictive_log_density(samples, covariance_type, X, n_threads):
    """log p(x | X_train) estimated by the posterior predictive averaged over the kept draws:
    log (1/S) sum_s p(x | theta_s), a log-mean-exp over the S = n_chains * n_draws draws of
    ``samples`` (``posterior_samples_``). X (N, D) checked; returns (N,) in X's dtype."""
    ctype = covariance_type
    weights = samples["weights"].reshape((-1,) + samples["weights"].shape[2:])
    means = samples["means"].reshape((-1,) + samples["means"].shape[2:])
    chols = samples["precisions_cholesky"]
    chols = chols.reshape((-1,) + chols.shape[2:])
    n_draws, K, D = means.shape
    # The pass works in coordinates shifted by one vector, which must lie where the data are:
    # each draw's is the mean of its heaviest component (a weighted mean of all components
    # would follow the draws of an empty one, from its prior: far away under a vague prior).
    heaviest = np.argmax(weights, axis=1)
    data = G.GaussianPass(X, None, ctype, K, n_threads, shift=means[0, heaviest[0]])
    lpn = np.empty(X.shape[0], dtype=X.dtype)
    total = np.full(X.shape[0], -np.inf)
    with single_threaded_blas():
        for s in range(n_draws):
            shift = np.ascontiguousarray(means[s, heaviest[s]], dtype=np.float64)
            data.shift = shift
            log_const = G.plugin_log_const(weights[s], chols[s], ctype, D)
            data.run(*G.pass_inputs(means[s], chols[s], ctype, shift, log_const),
                     log_prob_norm_out=lpn, compute_stats=False)
            np.logaddexp(total, lpn, out=total)
    return (total - np.log(n_draws)).astype(X.dtype, copy=False)
