"""GMMHMM by mean field and Gibbs: the ELBO against its definition enumerated over every state
path and every mixture component of tiny models (with independent NumPy / scipy references of
the expected log-densities and the KL terms), a monotone ELBO, the component draw kernel
against a NumPy reference, the sampler's conditional of (states, components) against the
exact posterior of a tiny model, recovery of known parameters, R-hat, thread invariance,
never NaN, bad input."""
import itertools
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from scipy.special import digamma, gammaln, logsumexp, multigammaln

import vbfast
from vbfast.hmm import GMMHMM, _gmm_components
from vbfast.hmm._sequences import Sequences
from vbfast.spectrum import available_methods
from _helpers import (assert_rejects_nonfinite, dirichlet_expected_log, hmm_gibbs_chain,
                      hmm_mean_field)

# fixed-length fits (tol=0) and short chains: their convergence warnings are expected
pytestmark = pytest.mark.filterwarnings("ignore:Best performing initialization did not",
                                        "ignore:.*R-hat.*", "ignore:.*split-R.*")

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
# two states, each a mixture of two well-separated Gaussians in 2-D
MEANS = np.array([[[-6.0, 0.0], [-2.0, 4.0]], [[5.0, -3.0], [8.0, 3.0]]])
WEIGHTS = np.array([[0.3, 0.7], [0.6, 0.4]])
TRANSMAT = np.array([[0.95, 0.05], [0.1, 0.9]])


def _data(seed=0, n=2000, scale=0.6):
    rng = np.random.RandomState(seed)
    z = [0]
    for _ in range(n - 1):
        z.append(rng.choice(2, p=TRANSMAT[z[-1]]))
    z = np.array(z)
    c = np.array([rng.choice(2, p=WEIGHTS[k]) for k in z])
    return MEANS[z, c] + scale * rng.randn(n, 2), z, c


# ------------------------------------------------------------------ references
def _expected_log_normal(x, m, beta, nu, psi, ctype):
    """E_q log N(x | mu, Lambda^-1) under one Normal-Wishart / Normal-Gamma q, from its
    textbook moments (m unshifted; psi = W^-1, or twice the Gamma rates)."""
    D = x.shape[-1]
    if ctype in ("full", "tied"):
        W = np.linalg.inv(psi)
        eld = (sum(digamma((nu + 1 - i) / 2) for i in range(1, D + 1)) + D * np.log(2)
               - np.linalg.slogdet(psi)[1])
        d = x - m
        return 0.5 * eld - 0.5 * D * np.log(2 * np.pi) - 0.5 * D / beta - 0.5 * nu * d @ W @ d
    a, b = nu / 2, psi / 2
    elog, mean = digamma(a) - np.log(b), a / b
    if ctype == "diag":
        return np.sum(0.5 * elog - 0.5 * np.log(2 * np.pi) - 0.5 / beta
                      - 0.5 * mean * (x - m) ** 2)
    return (0.5 * D * elog - 0.5 * D * np.log(2 * np.pi) - 0.5 * D / beta
            - 0.5 * mean * np.sum((x - m) ** 2))


def _wishart_parts(nu, psi, nu0, psi0):
    """-H[q(Lambda)] - E_q log p(Lambda) for q = Wishart(nu, psi^-1), p = Wishart(nu0,
    psi0^-1), and E_q log|Lambda|: scipy's entropy and the Wishart log-density's terms."""
    D = psi.shape[0]
    W = np.linalg.inv(psi)
    eld = (sum(digamma((nu + 1 - i) / 2) for i in range(1, D + 1)) + D * np.log(2)
           - np.linalg.slogdet(psi)[1])
    cross = (-0.5 * nu0 * D * np.log(2) + 0.5 * nu0 * np.linalg.slogdet(psi0)[1]
             - multigammaln(0.5 * nu0, D) + 0.5 * (nu0 - D - 1) * eld
             - 0.5 * np.trace(psi0 @ (nu * W)))
    return -stats.wishart(df=nu, scale=W).entropy() - cross, eld, nu * W


def _normal_part(m, beta, m0, beta0, eld, prec_mean, D):
    """-H[q(mu | Lambda)] - E_q log p(mu | Lambda), averaged over q(Lambda)."""
    neg_entropy = -(0.5 * D * (1 + np.log(2 * np.pi)) - 0.5 * (D * np.log(beta) + eld))
    d = m - m0
    cross = (-0.5 * D * np.log(2 * np.pi) + 0.5 * (D * np.log(beta0) + eld)
             - 0.5 * beta0 * (D / beta + d @ prec_mean @ d))
    return neg_entropy - cross


def _gamma_parts(a, b, a0, b0):
    elog, mean = digamma(a) - np.log(b), a / b
    cross = a0 * np.log(b0) - gammaln(a0) + (a0 - 1) * elog - b0 * mean
    return -stats.gamma(a, scale=1 / b).entropy() - cross, elog, mean


def _dirichlet_kl_reference(a, a0):
    elog = digamma(a) - digamma(a.sum())
    cross = gammaln(a0.sum()) - gammaln(a0).sum() + ((a0 - 1) * elog).sum()
    return -stats.dirichlet(a).entropy() - cross


def _emission_kl_reference(q, shift, ctype, m0, beta0, cprior, cweight, D):
    """KL of every Gaussian's q from the prior given in hmmlearn's parameters (m0, beta0 per
    pair; cprior / cweight: Wishart inverse scale and dof, or Gamma shape and rate)."""
    K, M = q["beta"].shape
    m = q["m"] + shift
    total = 0.0
    for k in range(K):
        if ctype == "tied":
            part, eld, prec = _wishart_parts(q["nu"][k], q["psi"][k], cweight[k], cprior[k])
            total += part
        for j in range(M):
            if ctype == "full":
                part, eld, prec = _wishart_parts(q["nu"][k, j], q["psi"][k, j], cweight[k, j],
                                                 cprior[k, j])
                total += part
            if ctype in ("full", "tied"):
                total += _normal_part(m[k, j], q["beta"][k, j], m0[k, j], beta0[k, j], eld,
                                      prec, D)
                continue
            a, b = q["nu"][k, j] / 2, q["psi"][k, j] / 2
            if ctype == "diag":
                for d in range(D):
                    part, elog, mean = _gamma_parts(a, b[d], cprior[k, j, d],
                                                    cweight[k, j, d])
                    total += part + _normal_part(m[k, j, d:d + 1], q["beta"][k, j],
                                                 m0[k, j, d:d + 1], beta0[k, j], elog,
                                                 np.array([[mean]]), 1)
            else:
                part, elog, mean = _gamma_parts(a, b, cprior[k, j], cweight[k, j])
                total += part + _normal_part(m[k, j], q["beta"][k, j], m0[k, j],
                                             beta0[k, j], D * elog, mean * np.eye(D), D)
    return total


def _tiny_priors(ctype, K, M, D):
    rng = np.random.RandomState(3)
    if ctype in ("full", "tied"):
        lead = (K, M) if ctype == "full" else (K,)
        A = rng.randn(*lead, D, D)
        cprior = 0.3 * np.einsum("...ij,...kj->...ik", A, A) + 0.5 * np.eye(D)
        cweight = D + 0.5 + rng.rand(*lead)
    else:
        shape = (K, M, D) if ctype == "diag" else (K, M)
        cprior = np.broadcast_to((1.0 + rng.rand(K, M))[..., None] if ctype == "diag"
                                 else 1.0 + rng.rand(K, M), shape).copy()
        cweight = 0.2 + rng.rand(*shape)
    return cprior, cweight


@pytest.mark.parametrize("ctype", COVARIANCE_TYPES)
def test_elbo_equals_enumerated_definition(ctype):
    """The bound of one iteration equals E_q[log p(X, z, c, theta)] + H[q(z, c)] +
    H[q(theta)], q(z, c) enumerated over every state path and every component of each
    observation of a tiny GMMHMM (two sequences), the KL terms from scipy's entropies and
    the priors read from hmmlearn's parameters."""
    K, M, D = 2, 2, 2
    X = np.array([[0.1, 1.0], [1.5, -0.3], [2.8, 0.4], [-1.0, 0.7], [0.6, 2.2]])
    lengths = [3, 2]
    cprior, cweight = _tiny_priors(ctype, K, M, D)
    wprior = np.array([[1.5, 0.7], [0.9, 2.0]])
    mprior = np.array([0.3, -0.2])
    est = GMMHMM(K, n_mix=M, covariance_type=ctype, method="mean_field", random_state=0,
                 sticky=0.4, startprob_prior=0.7, transmat_prior=1.6, weights_prior=wprior,
                 means_prior=mprior, means_weight=0.8, covars_prior=cprior,
                 covars_weight=cweight)
    Xs, seqs, conj, method = hmm_mean_field(est, X, lengths)
    q = method.q
    method.update(method.data.run_pass(seqs, method.pass_inputs(seqs)))
    elog = dirichlet_expected_log
    lpi, lA = elog(q["start"]), elog(q["trans"])
    qe = q["emission"]
    lw = elog(qe["weights"])
    m = qe["m"] + conj.shift
    lc = np.empty((len(X), K, M))
    for n in range(len(X)):
        for k in range(K):
            for j in range(M):
                if ctype == "tied":
                    nu, psi = qe["nu"][k], qe["psi"][k]
                else:
                    nu, psi = qe["nu"][k, j], qe["psi"][k, j]
                lc[n, k, j] = lw[k, j] + _expected_log_normal(X[n], m[k, j], qe["beta"][k, j],
                                                              nu, psi, ctype)
    data_term = 0.0
    start = 0
    for T in lengths:
        lb = lc[start:start + T]
        pairs = list(itertools.product(range(K), range(M)))
        score = np.array([lpi[p[0][0]] + sum(lb[t, p[t][0], p[t][1]] for t in range(T))
                          + sum(lA[p[t - 1][0], p[t][0]] for t in range(1, T))
                          for p in itertools.product(pairs, repeat=T)])
        assert len(score) == (K * M) ** T
        qz = np.exp(score - np.logaddexp.reduce(score))
        data_term += (qz * score).sum() - (qz * np.log(qz)).sum()
        start += T
    prior = method.prior
    # hmmlearn's parameters as given: Wishart (inverse scale, dof) or Gamma (shape, rate)
    a0, b0 = cprior, cweight
    kl = (_dirichlet_kl_reference(q["start"], prior.start0)
          + sum(_dirichlet_kl_reference(q["trans"][i], prior.trans0[i]) for i in range(K))
          + sum(_dirichlet_kl_reference(qe["weights"][k], wprior[k]) for k in range(K))
          + _emission_kl_reference(qe, conj.shift, ctype, np.broadcast_to(mprior, (K, M, D)),
                                   np.full((K, M), 0.8), a0, b0, D))
    np.testing.assert_allclose(prior.trans0, 1.6 + 0.4 * np.eye(2))
    np.testing.assert_allclose(method.bound(), data_term - kl, rtol=1e-10)


@pytest.mark.parametrize("seed", range(6))
def test_mean_field_elbo_never_decreases(seed):
    X, _, _ = _data(seed, 900)
    ctype = COVARIANCE_TYPES[seed % 4]
    with vbfast.config_context(bound_decrease="raise"):
        m = GMMHMM(2 + seed % 2, n_mix=2 + seed % 2, covariance_type=ctype,
                   method="mean_field", n_iter=60, tol=0, random_state=seed,
                   sticky=float(seed % 2)).fit(X, [300, 600])
    lb = m.lower_bounds_
    assert len(lb) == 60
    assert np.all(np.diff(lb) >= -1e-9 * np.abs(lb[1:]))
    np.testing.assert_allclose(m.transmat_.sum(axis=1), 1.0)
    np.testing.assert_allclose(m.weights_.sum(axis=1), 1.0)
    np.testing.assert_allclose(m.weights_, m.weights_posterior_
                               / m.weights_posterior_.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(m.means_, m.means_posterior_)
    assert np.isfinite(m.score(X, [300, 600]))


def test_state_log_density_and_responsibilities_match_numpy():
    rng = np.random.RandomState(1)
    N, K, M = 700, 3, 4
    comp = rng.randn(N, K, M) * 20
    comp[3, 1] = -np.inf                      # a state impossible at x_3
    comp[4, 2, :2] = -np.inf
    post = rng.dirichlet(np.ones(K), size=N)
    out = np.empty((N, K))
    _gmm_components.state_log_density(comp.reshape(N, K * M), M, out, 64, 2)
    with np.errstate(divide="ignore"):
        ref = logsumexp(comp, axis=2)
    np.testing.assert_allclose(out, ref, rtol=1e-14)
    assert out[3, 1] == -np.inf
    resp = np.empty((N, K * M))
    _gmm_components.component_responsibilities(comp.reshape(N, K * M), post, M, resp, 64, 2)
    with np.errstate(invalid="ignore"):
        ref_resp = np.nan_to_num(np.exp(comp - ref[:, :, None])) * post[:, :, None]
    np.testing.assert_allclose(resp.reshape(N, K, M), ref_resp, rtol=1e-13, atol=1e-300)
    assert np.all(resp.reshape(N, K, M)[3, 1] == 0)
    one = np.empty((N, K * M))
    _gmm_components.component_responsibilities(comp.reshape(N, K * M), post, M, one, 256, 1)
    np.testing.assert_array_equal(one, resp)
    with pytest.raises(ValueError, match="shapes"):
        _gmm_components.state_log_density(comp.reshape(N, K * M), 5, out, 64, 1)


def test_component_draws_match_numpy_reference():
    rng = np.random.RandomState(0)
    N, K, M = 1000, 3, 4
    comp = rng.randn(N, K * M) * 3
    comp[5, :M] = -np.inf            # a state impossible at x_5: component 0
    comp[7, M:2 * M] = [-np.inf, 0.0, -np.inf, -np.inf]
    states = rng.randint(K, size=N).astype(np.int32)
    states[5], states[7] = 0, 1
    labels = np.empty(N, dtype=np.int32)
    _gmm_components.draw_components(comp, states, M, 11, 4, labels, 64, 2)
    ref = np.empty(N, dtype=np.int32)
    for n in range(N):
        row = comp[n, states[n] * M:(states[n] + 1) * M]
        if not np.isfinite(row).any():
            ref[n] = states[n] * M
            continue
        w = np.exp(row - row.max())
        u = _gmm_components.uniform_at(11, 4, n) * w.sum()
        ref[n] = states[n] * M + min(int(np.searchsorted(np.cumsum(w), u, side="right")),
                                     M - 1)
    np.testing.assert_array_equal(labels, ref)
    assert labels[5] == 0 and labels[7] == M + 1
    one = np.empty(N, dtype=np.int32)
    _gmm_components.draw_components(comp, states, M, 11, 4, one, 256, 1)
    np.testing.assert_array_equal(one, labels)
    other = np.empty(N, dtype=np.int32)
    _gmm_components.draw_components(comp, states, M, 11, 5, other, 64, 2)
    assert np.mean(other != labels) > 0.3  # another sweep, other draws
    with pytest.raises(ValueError, match="out of range"):
        _gmm_components.draw_components(comp, np.full(N, K, dtype=np.int32), M, 1, 0,
                                        labels, 64, 1)


def test_gibbs_state_and_component_draws_match_the_exact_posterior():
    """theta fixed (``params=''``), one sequence of three 1-D values 1, 2, 4 (every subset
    has its own sum, so the drawn statistic s1 of every (state, component) pair names the
    rows it holds): the sampler's joint draws of (z, c) against p(z, c | X, theta)
    enumerated over the 64 configurations."""
    X = np.array([[1.0], [2.0], [4.0]])
    pi = np.array([0.6, 0.4])
    A = np.array([[0.7, 0.3], [0.4, 0.6]])
    w = np.array([[0.5, 0.5], [0.3, 0.7]])
    mu = np.array([[[1.0], [3.0]], [[2.0], [4.5]]])
    var = np.array([[1.5, 2.0], [1.0, 3.0]])
    est = GMMHMM(2, n_mix=2, covariance_type="spherical", method="gibbs", params="",
                 init_params="", random_state=0)
    est.startprob_, est.transmat_ = pi, A
    est.weights_, est.means_, est.covars_ = w, mu, var
    seqs, conj, data, chain = hmm_gibbs_chain(est, X)
    x = X[:, 0]
    configs = list(itertools.product(range(4), repeat=3))   # pair index k * 2 + m per row
    index = {}
    for i, cfg in enumerate(configs):
        sums = np.zeros(4)
        for n, pair in enumerate(cfg):
            sums[pair] += x[n]
        index[tuple(np.round(sums, 6))] = i
    counts = np.zeros(len(configs))
    n_sweeps = 30000
    for s in range(n_sweeps):
        st = data.run_pass(seqs, chain.pass_inputs(seqs))
        chain.update(st)
        sums = st["s1"].reshape(4) + conj.shift[0] * st["nkm"].reshape(4)
        counts[index[tuple(np.round(sums, 6))]] += 1
    logp = np.empty(len(configs))
    for i, cfg in enumerate(configs):
        z, c = np.array(cfg) // 2, np.array(cfg) % 2
        logp[i] = (np.log(pi[z[0]]) + np.log(A[z[:-1], z[1:]]).sum()
                   + np.log(w[z, c]).sum()
                   + stats.norm.logpdf(x, mu[z, c, 0], np.sqrt(var[z, c])).sum())
    post = np.exp(logp - np.logaddexp.reduce(logp))
    np.testing.assert_allclose(counts / n_sweeps, post, atol=0.012)
    # theta untouched (no letters): the sampler kept the given parameters
    np.testing.assert_array_equal(chain.params["means"], mu)


def test_conditional_of_theta_is_the_conjugate_posterior():
    """p(theta | z, c, X) for 'diag': the update against the textbook Normal-Gamma posterior,
    and the mean of many draws against its mean."""
    X, z, c = _data(1, 300)
    est = GMMHMM(2, n_mix=2, covariance_type="diag", method="gibbs", weights_prior=1.3,
                 means_weight=0.5, covars_prior=2.0, covars_weight=0.7)
    est._check_parameters()
    conj = est._conjugate(X, 1, {}, None)
    labels = z * 2 + c
    onehot = np.eye(4)[labels]
    shift = conj.shift
    Xd = X - shift
    stats_ = {"nkm": onehot.sum(0).reshape(2, 2), "s1": (onehot.T @ Xd).reshape(2, 2, 2),
              "s2": (onehot.T @ Xd ** 2).reshape(2, 2, 2)}
    q = conj.update(stats_)
    n = stats_["nkm"][..., None]
    xbar = np.where(n > 0, stats_["s1"] / np.maximum(n, 1), 0) + shift
    m0 = X.mean(axis=0)   # means_prior 0: the data mean
    beta = 0.5 + n
    np.testing.assert_allclose(q["m"] + shift, (0.5 * m0 + n * xbar) / beta)
    np.testing.assert_allclose(q["weights"], 1.3 + stats_["nkm"])
    ss = (onehot.T @ X ** 2).reshape(2, 2, 2) - n * xbar ** 2
    rate = 0.7 + 0.5 * ss + 0.5 * 0.5 * n / beta * (xbar - m0) ** 2
    np.testing.assert_allclose(q["psi"] / 2, rate, rtol=1e-9)
    np.testing.assert_allclose(q["nu"] / 2, 2.0 + 0.5 * n[..., 0])
    rng = np.random.Generator(np.random.PCG64(0))
    draws = [conj.draw(q, rng) for _ in range(3000)]
    prec = np.mean([1 / d["covars"] for d in draws], axis=0)
    np.testing.assert_allclose(prec, (q["nu"] / 2)[..., None] / rate, rtol=0.05)
    np.testing.assert_allclose(np.mean([d["means"] for d in draws], axis=0), q["m"] + shift,
                               atol=0.05)
    np.testing.assert_allclose(np.mean([d["weights"] for d in draws], axis=0),
                               q["weights"] / q["weights"].sum(1, keepdims=True), atol=0.02)


def _matched_states(means):
    """Permutation of the fitted states onto the true ones (by the mixtures' means)."""
    est = np.einsum("km,kmd->kd", np.full((2, 2), 0.5), np.sort(means, axis=1))
    true = np.einsum("km,kmd->kd", np.full((2, 2), 0.5), np.sort(MEANS, axis=1))
    return linear_sum_assignment(cdist(true, est))[1]


@pytest.mark.parametrize("method", ["mean_field", "gibbs"])
@pytest.mark.parametrize("ctype", ["diag", "full"])
def test_recovers_known_parameters(method, ctype):
    X, z, c = _data(4, 2000)
    kw = (dict(n_iter=200) if method == "mean_field"
          else dict(n_draws=150, burn_in=100, n_chains=2))
    m = GMMHMM(2, n_mix=2, covariance_type=ctype, method=method, random_state=0,
               **kw).fit(X, [1000, 1000])
    perm = _matched_states(m.means_)
    np.testing.assert_allclose(m.transmat_[np.ix_(perm, perm)], TRANSMAT, atol=0.03)
    # the covariances against the posterior mean given the true (state, component) of every
    # row: the default prior (one pseudo-observation at the data mean) inflates the variance
    # of a component far from the data mean by ~ its squared distance / its count
    conj = m._conjugate(X, 1, {}, None)
    onehot = np.eye(4)[z * 2 + c]
    Xd = X - conj.shift
    s2 = (onehot.T @ Xd ** 2 if ctype == "diag"
          else np.einsum("nk,ni,nj->kij", onehot, Xd, Xd))
    given = conj.point(conj.update({"nkm": onehot.sum(0).reshape(2, 2),
                                    "s1": (onehot.T @ Xd).reshape(2, 2, 2),
                                    "s2": s2.reshape((2, 2) + s2.shape[1:])}))["covars"]
    for k in range(2):
        comp = linear_sum_assignment(cdist(MEANS[k], m.means_[perm[k]]))[1]
        np.testing.assert_allclose(m.means_[perm[k]][comp], MEANS[k], atol=0.12)
        np.testing.assert_allclose(m.weights_[perm[k]][comp], WEIGHTS[k], atol=0.05)
        np.testing.assert_allclose(m.covars_[perm[k]][comp], given[k], rtol=0.15, atol=0.03)
    if method == "gibbs":
        ps = m.posterior_samples_
        assert ps["means"].shape == (2, 150, 2, 2, 2) and ps["weights"].shape == (2, 150, 2, 2)
        assert ps["log_joint"].shape == (2, 150)
        # well mixed: every split-R-hat (log joint, the states' mixture means and spreads)
        assert m.sampler_diagnostics_["max_rhat"] < 1.05 and m.converged_
        # components relabelled within states: every draw's components near the mean's
        for k in range(2):
            drawn = ps["means"][:, :, perm[k]]
            assert np.abs(drawn - m.means_[perm[k]]).max() < 0.5
    else:
        assert m.converged_


@pytest.mark.parametrize("method", ["mean_field", "gibbs"])
def test_same_results_for_any_thread_count(method):
    rng = np.random.RandomState(5)
    n = 72_000   # enough work for the passes to start two threads
    z = np.cumsum(rng.rand(n) < 0.05) % 2
    c = (rng.rand(n) > WEIGHTS[z, 0]).astype(int)
    X = MEANS[z, c] + 0.6 * rng.randn(n, 2)
    lengths = [18_000] * 4
    assert Sequences(lengths, n, 2, 3).n_threads == 2
    kw = (dict(n_iter=4, tol=0) if method == "mean_field"
          else dict(n_draws=3, burn_in=2, n_chains=2))
    fits = []
    for n_threads in (1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits.append(GMMHMM(3, n_mix=2, covariance_type="full", method=method,
                               random_state=1, n_threads=n_threads, **kw)
                        .fit(X, lengths))
    a, b = fits
    np.testing.assert_array_equal(a.lower_bounds_, b.lower_bounds_)
    for name in ("startprob_", "transmat_", "weights_", "means_", "covars_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    if method == "gibbs":
        for name in a.posterior_samples_:
            np.testing.assert_array_equal(a.posterior_samples_[name],
                                          b.posterior_samples_[name])


@pytest.mark.parametrize("method", ["mean_field", "gibbs"])
@pytest.mark.parametrize("ctype", COVARIANCE_TYPES)
def test_never_nan_with_unvisited_states(method, ctype):
    """More states and components than the data need (one tight cluster), a constant
    stretch, and a sequence shorter than the number of states."""
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(40, 2) * 0.1, np.full((20, 2), 3.0), rng.randn(2, 2)])
    kw = (dict(n_iter=30) if method == "mean_field"
          else dict(n_draws=10, burn_in=5, n_chains=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = GMMHMM(4, n_mix=3, covariance_type=ctype, method=method, random_state=0,
                   **kw).fit(X, [60, 2])
    for name in ("startprob_", "transmat_", "weights_", "means_", "covars_"):
        assert np.isfinite(getattr(m, name)).all(), name
    assert np.isfinite(m.lower_bounds_).all()
    assert np.isfinite(m.score(X, [60, 2]))
    np.testing.assert_allclose(m.transmat_.sum(axis=1), 1.0)


@pytest.mark.parametrize("kw, match", [
    (dict(weights_prior=0.0), "weights_prior"),
    (dict(weights_prior=[[1.0, -1.0]]), "weights_prior"),
    (dict(means_weight=-1.0), "means_weight"),
    (dict(covariance_type="full", covars_weight=0.5), "covars_weight"),
    (dict(covariance_type="full", covars_prior=-np.eye(2)), "covars_prior"),
    (dict(covariance_type="tied", covars_prior=np.ones((2, 2))), "covars_prior"),
    (dict(covariance_type="diag", covars_prior=-1.0), "covars_prior"),
    (dict(covariance_type="spherical", covars_weight=0.0), "covars_weight"),
    (dict(means_prior=np.ones(5)), "means_prior"),
    (dict(sticky=-1.0), "sticky"),
    (dict(transmat_prior=0.0), "transmat_prior"),
])
def test_bad_priors_refused(kw, match):
    X, _, _ = _data(3, 50)
    for method in ("mean_field", "gibbs"):
        est = GMMHMM(2, n_mix=2, method=method, n_iter=3, n_draws=3, burn_in=1, **kw)
        with pytest.raises(ValueError, match=match):
            est.fit(X)
        assert not hasattr(est, "means_")   # a failed fit leaves the estimator as it was


@pytest.mark.parametrize("method", ["mean_field", "gibbs"])
def test_bad_input_refused(method):
    X, _, _ = _data(3, 50)
    est = GMMHMM(2, n_mix=2, method=method, n_iter=3, n_draws=3, burn_in=1)
    with pytest.raises(ValueError, match="lengths"):
        est.fit(X, [20, 20])
    with pytest.raises(ValueError, match="length"):
        est.fit(X, [50, 0])
    assert_rejects_nonfinite(est.fit, X)
    if method == "gibbs":
        with pytest.raises(ValueError, match="n_draws"):
            GMMHMM(2, method=method, n_draws=0).fit(X)


def test_compare_methods_offers_every_method():
    assert set(available_methods(GMMHMM(2))) == {"em", "mean_field", "gibbs"}
    X, _, _ = _data(6, 400)
    result = vbfast.compare_methods(
        GMMHMM(2, n_mix=2, n_iter=30, random_state=0, n_draws=20, burn_in=10), X[:300],
        X[300:], lengths=[150, 150], lengths_test=[100])
    assert {r["method"] for r in result} == {"em", "mean_field", "gibbs"}
    for r in result:
        assert np.isfinite(r["heldout"])
