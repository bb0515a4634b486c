"""Gibbs sampling for Gaussian mixtures: the kernel's sampled-z mode, each conditional update,
the sampler's reproducibility and its recovery of known parameters."""
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats as sps
from scipy.special import logsumexp

import vbfast
from vbfast.emissions import gaussian as G
from vbfast.mixture import _gibbs as GS
from vbfast.emissions import _gaussian_kernel as _gmm
from vbfast.exceptions import BoundDecreaseWarning, ConvergenceWarning

COV_TYPES = ["full", "tied", "diag", "spherical"]


# --------------------------------------------------------------------------- helpers
def random_theta(rng, covariance_type, K, D):
    """Random weights, shifted means, precision factors, and the precisions Lambda_k (K, D, D)
    written out independently of the factors, for the references."""
    weights = rng.dirichlet(np.full(K, 2.0))
    means = rng.normal(size=(K, D)) * 1.5
    if covariance_type == "full":
        A = rng.normal(size=(K, D, D))
        cov = A @ np.swapaxes(A, 1, 2) / D + 0.3 * np.eye(D)
        Lam = np.linalg.inv(cov)
    elif covariance_type == "tied":
        A = rng.normal(size=(D, D))
        cov = A @ A.T / D + 0.3 * np.eye(D)
        Lam = np.repeat(np.linalg.inv(cov)[None], K, axis=0)
    elif covariance_type == "diag":
        cov = rng.uniform(0.3, 2.5, size=(K, D))
        Lam = np.stack([np.diag(1.0 / c) for c in cov])
    else:
        cov = rng.uniform(0.3, 2.5, size=K)
        Lam = np.stack([np.eye(D) / c for c in cov])
    return weights, means, G.precision_cholesky(cov, covariance_type), Lam


def log_const_em(weights, prec_chol, covariance_type, D):
    return np.log(weights) + G.log_det_cholesky(prec_chol, covariance_type, D) \
        - 0.5 * D * np.log(2 * np.pi)


def sampled_pass(X, covariance_type, weights, means_shifted, prec_chol, seed, sweep,
                 n_threads=2, shift=None):
    """One sampled pass through ``GaussianPass``; returns (stats, z, resp, data)."""
    K, D = means_shifted.shape
    data = G.GaussianPass(X, None, covariance_type, K, n_threads, shift=shift)
    prec_flat, aux, quad = G.kernel_arrays(means_shifted, prec_chol, covariance_type)
    lc = np.ascontiguousarray(log_const_em(weights, prec_chol, covariance_type, D) + quad)
    z = np.full(X.shape[0], -1, dtype=np.int32)
    resp = np.full((X.shape[0], K), np.nan, dtype=X.dtype)
    stats = data.run(np.ascontiguousarray(means_shifted), prec_flat, aux, lc, resp_out=resp,
                     sample_z=True, seed=seed, sweep=sweep, z_out=z)
    return stats, z, resp, data


def three_component_data(rng, n, covariance_type="full"):
    """Data from a known, well-separated 3-component mixture in 2-D."""
    weights = np.array([0.5, 0.3, 0.2])
    means = np.array([[0.0, 0.0], [5.0, 1.0], [1.0, 6.0]])
    covs = np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.6, -0.2], [-0.2, 0.8]],
                     [[0.4, 0.0], [0.0, 1.2]]])
    if covariance_type == "diag":
        covs = covs * np.eye(2)
    z = rng.choice(3, size=n, p=weights)
    X = np.empty((n, 2))
    for k in range(3):
        X[z == k] = rng.multivariate_normal(means[k], covs[k], size=(z == k).sum())
    return X, weights, means, covs


def default_priors(X, covariance_type, K, prior_type="dirichlet_distribution"):
    est = vbfast.BayesianGaussianMixture(n_components=K, covariance_type=covariance_type,
                                         weight_concentration_prior_type=prior_type)
    data = G.GaussianPass(X, None, covariance_type, K, 1)
    return vbfast.emissions.gaussian_prior.resolve_priors(est, data), data


# --------------------------------------------------------------------------- the kernel
@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sampled_pass_against_reference(covariance_type, dtype):
    rng = np.random.default_rng(11)
    N, D, K = 5 * G.CHUNK_SIZE + 37, 3, 4
    X = (rng.normal(size=(N, D)) * 2 + 3).astype(dtype)
    weights, means, prec_chol, Lam = random_theta(rng, covariance_type, K, D)
    shift = X.mean(axis=0, dtype=np.float64)
    stats, z, resp, data = sampled_pass(X, covariance_type, weights, means, prec_chol, 7, 3)
    Xs = X.astype(np.float64) - shift

    # responsibilities: the ones a soft pass gives
    soft = np.empty((N, K), dtype=dtype)
    prec_flat, aux, quad = G.kernel_arrays(means, prec_chol, covariance_type)
    lc = np.ascontiguousarray(log_const_em(weights, prec_chol, covariance_type, D) + quad)
    data.run(np.ascontiguousarray(means), prec_flat, aux, lc, resp_out=soft,
             compute_stats=False)
    # (bitwise for diag / spherical; 'full' and 'tied' soft passes take the fused tiles,
    # the sampled pass the GEMM / Cholesky forms: the same numbers to rounding)
    if covariance_type in ("full", "tied"):
        assert_allclose(resp, soft, rtol=1e-12 if dtype == np.float64 else 1e-6,
                        atol=1e-14 if dtype == np.float64 else 1e-7)
    else:
        assert_array_equal(resp, soft)
    log_rho = np.stack([np.log(weights[k]) + sps.multivariate_normal.logpdf(
        Xs, means[k], np.linalg.inv(Lam[k])) for k in range(K)], axis=1)
    r_ref = np.exp(log_rho - logsumexp(log_rho, axis=1, keepdims=True))
    assert_allclose(resp, r_ref, atol=1e-5 if dtype == np.float32 else 1e-10)

    # z: inverse CDF of the responsibilities at the documented uniforms
    if dtype == np.float64:
        u = _gmm.uniforms(7, 3, 0, N)
        cum = np.cumsum(resp, axis=1)
        z_ref = (cum <= (u * cum[:, -1])[:, None]).sum(axis=1)
        assert_array_equal(z, z_ref)
    assert z.min() >= 0 and z.max() < K

    # hard-count statistics and the complete-data log-likelihood
    onehot = np.eye(K)[z]
    assert_array_equal(stats["nk"], onehot.sum(axis=0))
    assert_allclose(stats["s1"], onehot.T @ Xs, rtol=1e-10, atol=1e-9)
    if covariance_type == "full":
        for k in range(K):
            d = Xs[z == k] - means[k]
            assert_allclose(stats["s2"][k], d.T @ d, rtol=1e-10, atol=1e-8)
    # diag and spherical S2 centred at the means too (issue 18, defect 4)
    elif covariance_type == "diag":
        assert_allclose(stats["s2"], np.stack([((Xs[z == k] - means[k]) ** 2).sum(axis=0)
                                               for k in range(K)]), rtol=1e-10, atol=1e-8)
    elif covariance_type == "spherical":
        assert_allclose(stats["s2"], [((Xs[z == k] - means[k]) ** 2).sum() for k in range(K)],
                        rtol=1e-10)
    tol = 1e-4 if dtype == np.float32 else 1e-9
    assert_allclose(stats["log_likelihood"], log_rho[np.arange(N), z].sum(), rtol=tol)
    assert stats["entropy_term"] == 0.0


def test_uniforms_look_uniform_and_depend_on_the_key():
    u = _gmm.uniforms(5, 0, 0, 200000)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert sps.kstest(u, "uniform").pvalue > 1e-3
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01
    assert not np.array_equal(u[:100], _gmm.uniforms(5, 1, 0, 100))
    assert not np.array_equal(u[:100], _gmm.uniforms(6, 0, 0, 100))
    assert_array_equal(u[50:150], _gmm.uniforms(5, 0, 50, 150))


def test_single_site_draw_goodness_of_fit():
    """Many sweeps over a few rows: the frequency of each z_n against the kernel's own r_n."""
    rng = np.random.default_rng(3)
    K, D, n_sweeps = 4, 2, 4000
    X = np.array([[0.0, 0.0], [1.0, -0.5], [0.3, 0.8]])
    weights, means, prec_chol, _ = random_theta(rng, "full", K, D)
    means = means * 0.2  # overlapping components: every r_nk well above zero
    counts = np.zeros((3, K))
    resp = None
    for sweep in range(n_sweeps):
        _, z, resp, _ = sampled_pass(X, "full", weights, means, prec_chol, 99, sweep,
                                     shift=np.zeros(D))
        counts[np.arange(3), z] += 1
    assert n_sweeps * resp.min() > 5  # the chi-square approximation holds
    for n in range(3):
        p = sps.chisquare(counts[n], n_sweeps * resp[n]).pvalue
        assert p > 1e-3, (counts[n], n_sweeps * resp[n])


def test_sampled_pass_rejects_bad_combinations():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2))
    data = G.GaussianPass(X, None, "diag", 2, 1)
    weights, means, prec_chol, _ = random_theta(rng, "diag", 2, 2)
    prec_flat, aux, quad = G.kernel_arrays(means, prec_chol, "diag")
    lc = log_const_em(weights, prec_chol, "diag", 2) + quad
    with pytest.raises(ValueError, match="resp_in"):
        data.run(means, prec_flat, aux, lc, resp_in=np.full((50, 2), 0.5), sample_z=True)
    with pytest.raises(ValueError, match="z_out"):
        data.run(means, prec_flat, aux, lc, z_out=np.zeros(50, dtype=np.int32))
    with pytest.raises(ValueError, match="z_out"):
        data.run(means, prec_flat, aux, lc, sample_z=True, z_out=np.zeros(49, dtype=np.int32))


# --------------------------------------------------------------------------- conditionals
def reference_posterior(Xs, z, K, priors, covariance_type, m0s):
    """p(theta | X, z) parameters written out per component from the rows of each."""
    D = Xs.shape[1]
    beta0, nu0, psi0 = priors["beta0"], priors["nu0"], priors["psi0"]
    out = {"beta": [], "m": [], "nu": [], "psi": []}
    scatter_total = np.zeros((D, D))
    mean_terms = np.zeros((D, D))
    for k in range(K):
        Xk = Xs[z == k]
        n = len(Xk)
        xbar = Xk.mean(axis=0) if n else np.zeros(D)
        S = (Xk - xbar).T @ (Xk - xbar)
        beta = beta0 + n
        m = (beta0 * m0s + n * xbar) / beta
        dd = np.outer(xbar - m0s, xbar - m0s) * beta0 * n / beta
        out["beta"].append(beta)
        out["m"].append(m)
        out["nu"].append(nu0 + n)
        if covariance_type == "full":
            out["psi"].append(psi0 + S + dd)
        elif covariance_type == "diag":
            out["psi"].append(psi0 + np.diag(S) + np.diag(dd))
        elif covariance_type == "spherical":
            out["psi"].append(psi0 + (np.trace(S) + np.trace(dd)) / D)
        scatter_total += S
        mean_terms += dd
    out = {k: np.array(v) for k, v in out.items()}
    if covariance_type == "tied":
        out["nu"] = nu0 + len(Xs)
        out["psi"] = psi0 + scatter_total + mean_terms
    counts = np.bincount(z, minlength=K).astype(float)
    if priors["type"] == "dirichlet_process":
        rest = np.array([counts[k + 1:].sum() for k in range(K)])
        out["weights"] = ("sticks", 1 + counts[:-1], priors["alpha0"] + rest[:-1])
    else:
        out["weights"] = ("dirichlet", priors["alpha0"] + counts)
    return out


@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.parametrize("prior_type", ["dirichlet_process", "dirichlet_distribution"])
def test_conditional_posterior_against_reference(covariance_type, prior_type):
    rng = np.random.default_rng(5)
    X, *_ = three_component_data(rng, 600, covariance_type)
    K = 4  # one component stays empty
    priors, data = default_priors(X, covariance_type, K, prior_type)
    weights, means, prec_chol, _ = random_theta(rng, covariance_type, K, 2)
    weights = np.array([0.4, 0.3, 0.3, 1e-300])
    stats, z, _, data = sampled_pass(X, covariance_type, weights, means, prec_chol, 1, 0,
                                     shift=data.shift)
    assert np.bincount(z, minlength=K)[3] == 0
    gram = data.gram() if covariance_type == "tied" else None
    post = GS.conditional_posterior(stats, means, priors, covariance_type, data.shift, gram)
    Xs = X - data.shift
    ref = reference_posterior(Xs, z, K, priors, covariance_type, priors["m0"] - data.shift)
    for name in ("beta", "m", "nu", "psi"):
        assert_allclose(post[name], ref[name], rtol=1e-9, atol=1e-9, err_msg=name)
    assert post["weights"][0] == ref["weights"][0]
    for a, b in zip(post["weights"][1:], ref["weights"][1:]):
        assert_allclose(a, b, rtol=1e-12)


def z_score_ok(samples, expected, sd_of_mean, limit=5.0):
    return np.all(np.abs(samples - expected) <= limit * sd_of_mean + 1e-12)


def test_wishart_draw_moments():
    """Bartlett draws: E[Lambda] = nu W and Var(Lambda_ij) = nu (W_ij^2 + W_ii W_jj)."""
    rng = np.random.default_rng(0)
    psi = np.array([[2.0, 0.3, -0.4], [0.3, 1.0, 0.2], [-0.4, 0.2, 1.5]])
    nu, n = 6.5, 10000
    W = np.linalg.inv(psi)
    draws = np.empty((n, 3, 3))
    for i in range(n):
        U = GS.draw_wishart_cholesky(psi, nu, rng)
        assert i or np.allclose(U, np.triu(U))
        draws[i] = U @ U.T
    var = nu * (W ** 2 + np.outer(np.diag(W), np.diag(W)))
    assert z_score_ok(draws.mean(axis=0), nu * W, np.sqrt(var / n))
    # the variance's own standard error is about sqrt(kurtosis) times larger; 15% is loose
    assert_allclose(draws.var(axis=0), var, rtol=0.15)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_parameter_draw_moments(covariance_type):
    """E and Var of the drawn precisions and means against the closed forms of the
    conditionals (Normal-Wishart / Normal-Gamma)."""
    rng = np.random.default_rng(1)
    K, D, n = 2, 2, 5000
    beta = np.array([3.0, 10.0])
    m = np.array([[0.5, -1.0], [2.0, 0.0]])
    if covariance_type == "full":
        psi = np.array([[[2.0, 0.5], [0.5, 1.0]], [[1.0, -0.2], [-0.2, 3.0]]])
        nu = np.array([6.0, 9.0])
    elif covariance_type == "tied":
        psi, nu = np.array([[2.0, 0.5], [0.5, 1.0]]), 7.0
    elif covariance_type == "diag":
        psi, nu = np.array([[2.0, 0.5], [1.0, 3.0]]), np.array([6.0, 9.0])
    else:
        psi, nu = np.array([2.0, 0.7]), np.array([6.0, 9.0])
    post = {"weights": ("dirichlet", np.array([2.0, 5.0])), "beta": beta, "m": m, "nu": nu,
            "psi": psi}
    draws = [GS.draw_parameters(post, covariance_type, rng) for _ in range(n)]
    mu = np.stack([d["means"] for d in draws])
    U = np.stack([d["prec_chol"] for d in draws])
    assert z_score_ok(mu.mean(axis=0), m, mu.std(axis=0) / np.sqrt(n))
    if covariance_type in ("full", "tied"):
        lam = np.einsum("...ij,...kj->...ik", U, U)
        nu_k = np.broadcast_to(nu, (K,))
        psi_k = np.broadcast_to(psi, (K, D, D))
        if covariance_type == "tied":
            lam = np.repeat(lam[:, None], K, axis=1)
        for k in range(K):
            W = np.linalg.inv(psi_k[k])
            assert z_score_ok(lam[:, k].mean(axis=0), nu_k[k] * W,
                              lam[:, k].std(axis=0) / np.sqrt(n))
            # Cov(mu_k) = E[(beta Lambda)^{-1}] = psi / (beta (nu - D - 1))
            assert_allclose(np.cov(mu[:, k].T), psi_k[k] / (beta[k] * (nu_k[k] - D - 1)),
                            rtol=0.12, atol=0.005)
    else:
        lam = U ** 2
        shape = 0.5 * nu if covariance_type == "diag" else 0.5 * nu * D
        rate = 0.5 * psi if covariance_type == "diag" else 0.5 * psi * D
        shape = shape[:, None] if covariance_type == "diag" else shape
        mean, var = shape / rate, shape / rate ** 2
        assert z_score_ok(lam.mean(axis=0), mean, np.sqrt(var / n))
        assert_allclose(lam.var(axis=0), var, rtol=0.15)
        # Var(mu_kj) = E[1 / (beta lambda)] = rate / (beta (shape - 1))
        expected = rate / (np.reshape(beta, (K,) + (1,) * (np.ndim(rate) - 1)) * (shape - 1))
        expected = np.broadcast_to(np.reshape(expected, (K, -1)), (K, D))
        assert_allclose(mu.var(axis=0), expected, rtol=0.12)
    # weights: Dirichlet(2, 5)
    w = np.exp(np.stack([d["log_weights"] for d in draws]))
    assert_allclose(w.sum(axis=1), 1.0, rtol=1e-12)
    assert z_score_ok(w.mean(axis=0), [2 / 7, 5 / 7], np.sqrt(2 * 5 / (49 * 8) / n))


def test_stick_breaking_draw_moments():
    rng = np.random.default_rng(2)
    a, b = np.array([3.0, 1.0, 2.0]), np.array([4.0, 2.5, 0.5])
    n = 40000
    draws = [GS.draw_log_weights(("sticks", a, b), rng) for _ in range(n)]
    pi = np.exp(np.stack([d[0] for d in draws]))
    v = np.exp(np.stack([d[1] for d in draws]))
    assert_allclose(pi.sum(axis=1), 1.0, rtol=1e-12)
    assert_allclose(np.exp(np.stack([d[2] for d in draws])), 1 - v, rtol=1e-9, atol=1e-15)
    ev = a / (a + b)
    assert z_score_ok(v.mean(axis=0), ev, np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)) / n))
    # E[pi_k] = E[v_k] prod_{j<k} (1 - E[v_j]) (the sticks are independent); last = 1 - sum
    e_pi = np.append(ev, 1.0) * np.concatenate(([1.0], np.cumprod(1 - ev)))
    assert z_score_ok(pi.mean(axis=0), e_pi, pi.std(axis=0) / np.sqrt(n))


@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.parametrize("prior_type", ["dirichlet_process", "dirichlet_distribution"])
def test_log_prior_against_scipy(covariance_type, prior_type):
    rng = np.random.default_rng(4)
    X, *_ = three_component_data(rng, 300, covariance_type)
    K, D = 3, 2
    priors, data = default_priors(X, covariance_type, K, prior_type)
    nk = np.array([100.0, 120.0, 80.0])
    post = {"weights": ("dirichlet", priors["alpha0"] + nk) if prior_type ==
            "dirichlet_distribution" else ("sticks", 1 + nk[:-1], priors["alpha0"] +
                                           np.array([200.0, 80.0])),
            "beta": np.full(K, 2.0), "m": rng.normal(size=(K, D)),
            "nu": 5.0 if covariance_type == "tied" else np.full(K, 5.0),
            "psi": {"full": np.repeat(np.eye(D)[None], K, 0), "tied": np.eye(D),
                    "diag": np.ones((K, D)), "spherical": np.ones(K)}[covariance_type]}
    theta = GS.draw_parameters(post, covariance_type, rng)
    got = GS.log_prior(theta, priors, covariance_type, data.shift)

    m0s = priors["m0"] - data.shift
    beta0, nu0, psi0 = priors["beta0"], priors["nu0"], priors["psi0"]
    if prior_type == "dirichlet_distribution":
        ref = sps.dirichlet.logpdf(np.exp(theta["log_weights"]), np.full(K, priors["alpha0"]))
    else:
        v = np.exp(theta["log_v"])
        ref = sps.beta.logpdf(v, 1.0, priors["alpha0"]).sum()
    U = theta["prec_chol"]
    for k in range(K):
        if covariance_type == "full":
            lam = U[k] @ U[k].T
        elif covariance_type == "tied":
            lam = U @ U.T
        elif covariance_type == "diag":
            lam = np.diag(U[k] ** 2)
        else:
            lam = np.eye(D) * U[k] ** 2
        ref += sps.multivariate_normal.logpdf(theta["means"][k], m0s,
                                              np.linalg.inv(beta0 * lam))
        if covariance_type == "full":
            ref += sps.wishart.logpdf(lam, nu0, np.linalg.inv(psi0))
        elif covariance_type == "diag":
            ref += sps.gamma.logpdf(np.diag(lam), 0.5 * nu0, scale=2.0 / psi0).sum()
        elif covariance_type == "spherical":
            ref += sps.gamma.logpdf(lam[0, 0], 0.5 * nu0 * D, scale=2.0 / (psi0 * D))
    if covariance_type == "tied":
        ref += sps.wishart.logpdf(U @ U.T, nu0, np.linalg.inv(psi0))
    assert_allclose(got, ref, rtol=1e-10)


# --------------------------------------------------------------------------- the sampler
def fit(X, **kw):
    params = dict(n_components=3, method="gibbs", n_draws=60, burn_in=30, random_state=0)
    params.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return vbfast.GaussianMixture(**params).fit(X)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_bitwise_identical_for_any_thread_count_and_reproducible(covariance_type):
    rng = np.random.default_rng(8)
    X, *_ = three_component_data(rng, 5000)  # enough rows for two threads to be used
    a = fit(X, covariance_type=covariance_type, n_threads=1, n_draws=8, burn_in=4)
    b = fit(X, covariance_type=covariance_type, n_threads=2, n_draws=8, burn_in=4)
    c = fit(X, covariance_type=covariance_type, n_threads=2, n_draws=8, burn_in=4)
    for other in (b, c):
        assert_array_equal(a.log_joint_trace_, other.log_joint_trace_)
        for name in a.posterior_samples_:
            assert_array_equal(a.posterior_samples_[name], other.posterior_samples_[name])
        assert_array_equal(a.means_, other.means_)
        assert_array_equal(a.covariances_, other.covariances_)
    d = fit(X, covariance_type=covariance_type, n_threads=2, n_draws=8, burn_in=4,
            random_state=1)
    assert not np.array_equal(a.log_joint_trace_, d.log_joint_trace_)
    # the chains differ from each other
    assert not np.array_equal(a.log_joint_trace_[0], a.log_joint_trace_[1])


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_recovers_known_mixture(covariance_type):
    """Posterior means within stated tolerances and 95% credible intervals covering the truth
    (weights, means, and the variances)."""
    rng = np.random.default_rng(2024)
    X, weights, means, covs = three_component_data(rng, 3000, covariance_type)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = vbfast.BayesianGaussianMixture(
            n_components=3, covariance_type=covariance_type, method="gibbs", n_draws=300,
            burn_in=50, n_chains=2, random_state=0,
            weight_concentration_prior_type="dirichlet_distribution").fit(X)
    # put the estimated components in the true order (nearest means)
    order = [int(np.argmin(((est.means_ - m) ** 2).sum(axis=1))) for m in means]
    assert sorted(order) == [0, 1, 2]
    assert est.converged_
    assert_allclose(est.weights_[order], weights, atol=0.03)
    assert_allclose(est.means_[order], means, atol=0.1)
    var = est.covariances_[order]
    true_var = covs if covariance_type == "full" else np.diagonal(covs, axis1=1, axis2=2)
    assert_allclose(var, true_var, atol=0.12)

    samples = est.posterior_samples_
    w = samples["weights"].reshape(-1, 3)[:, order]
    mu = samples["means"].reshape(-1, 3, 2)[:, order]
    lam = samples["precisions"].reshape((-1,) + samples["precisions"].shape[2:])[:, order]
    sigma2 = (np.linalg.inv(lam)[..., [0, 1], [0, 1]] if covariance_type == "full"
              else 1.0 / lam)
    true_sigma2 = np.diagonal(covs, axis1=1, axis2=2)
    # 15 intervals: if calibrated, each 95% one misses with probability 0.05 (0.75 misses
    # expected), so require at most 2 misses, and every 99.9% interval to cover.
    misses = 0
    for draws, truth in ((w, weights), (mu, means), (sigma2, true_sigma2)):
        lo, hi = np.percentile(draws, [2.5, 97.5], axis=0)
        misses += int(np.sum((truth < lo) | (truth > hi)))
        lo, hi = np.percentile(draws, [0.05, 99.95], axis=0)
        assert np.all((lo <= truth) & (truth <= hi)), (lo, truth, hi)
    assert misses <= 2
    # relabelling worked: within-draw spread of each mean is small against the separation
    assert mu.std(axis=0).max() < 0.1


def test_trace_is_log_joint_not_a_bound():
    rng = np.random.default_rng(6)
    X, *_ = three_component_data(rng, 800)
    with vbfast.config_context(bound_decrease="raise") if hasattr(vbfast, "config_context") \
            else warnings.catch_warnings():
        warnings.simplefilter("error", BoundDecreaseWarning)
        est = fit(X, n_draws=20, burn_in=10, thin=2, n_chains=3)
    assert est.n_iter_ == 10 + 20 * 2
    assert est.log_joint_trace_.shape == (3, 50)
    assert_array_equal(est.lower_bounds_, est.log_joint_trace_[0])
    assert est.iteration_times_.shape == (50,)
    assert np.any(np.diff(est.lower_bounds_) < 0)  # a sampler's trace goes down too
    kept = 10 + 2 * np.arange(1, 21) - 1
    assert_array_equal(est.posterior_samples_["log_joint"], est.log_joint_trace_[:, kept])
    s = est.posterior_samples_
    assert s["weights"].shape == (3, 20, 3) and s["means"].shape == (3, 20, 3, 2)
    assert s["precisions"].shape == (3, 20, 3, 2, 2)
    diag = est.sampler_diagnostics_
    assert np.shape(diag["rhat"]["sorted_weights"]) == (3,)
    assert np.isfinite(diag["ess"]["log_joint"]) and diag["ess"]["log_joint"] > 0

    # the log joint at the last sweep, recomputed: log p(X, z | theta) + log p(theta)
    # is what the state returns (checked on a fresh state with a known draw)
    priors, data = default_priors(X, "full", 3, "dirichlet_process")
    state = GS.GibbsFitState.from_resp(data, "full", priors, np.random.default_rng(0), 5,
                                       np.eye(3)[rng.integers(0, 3, len(X))])
    theta = {k: (v.copy() if v is not None else None) for k, v in state.theta.items()}
    value = state.step()
    Xs = X - data.shift
    u = theta["prec_chol"]
    log_rho = np.stack([theta["log_weights"][k] + sps.multivariate_normal.logpdf(
        Xs, theta["means"][k], np.linalg.inv(u[k] @ u[k].T)) for k in range(3)], axis=1)
    resp = np.exp(log_rho - logsumexp(log_rho, axis=1, keepdims=True))
    cum = np.cumsum(resp, axis=1)
    z = (cum <= (_gmm.uniforms(5, 0, 0, len(X)) * cum[:, -1])[:, None]).sum(axis=1)
    expected = log_rho[np.arange(len(X)), z].sum() + GS.log_prior(theta, priors, "full",
                                                                  data.shift)
    assert_allclose(value, expected, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("far", [False, True])
def test_sweep_pass_form_diag_spherical(covariance_type, far):
    """A sweep's pass for 'diag' / 'spherical' takes EM's form: the GEMM form about the shift
    (centre 0) for every component near it, the centred form for one drawn far from it
    (FAR_FROM_SHIFT); either way the log joint is that of the draw recomputed in NumPy."""
    rng = np.random.default_rng(4)
    X, *_ = three_component_data(rng, 700, "diag")
    priors, data = default_priors(X, covariance_type, 3)
    state = GS.GibbsFitState.from_resp(data, covariance_type, priors,
                                       np.random.default_rng(0), 7,
                                       np.eye(3)[rng.integers(0, 3, len(X))])
    if far:  # component 0 drawn ~1e4 standard deviations away
        state.theta["means"][0] = state.theta["means"][0] + 1e4 / np.min(
            state.theta["prec_chol"][0])
    theta = {k: (v.copy() if v is not None else None) for k, v in state.theta.items()}
    centres = state.kernel_inputs()[0]
    assert_array_equal(centres[1:], 0.0)
    assert_array_equal(centres[0], theta["means"][0] if far else 0.0)
    value = state.step()
    Xs = X - data.shift
    p = theta["prec_chol"] if covariance_type == "diag" else theta["prec_chol"][:, None] \
        * np.ones((1, 2))
    log_rho = np.stack([theta["log_weights"][k] + sps.norm.logpdf(
        Xs, theta["means"][k], 1.0 / p[k]).sum(axis=1) for k in range(3)], axis=1)
    resp = np.exp(log_rho - logsumexp(log_rho, axis=1, keepdims=True))
    cum = np.cumsum(resp, axis=1)
    z = (cum <= (_gmm.uniforms(7, 0, 0, len(X)) * cum[:, -1])[:, None]).sum(axis=1)
    expected = log_rho[np.arange(len(X)), z].sum() + GS.log_prior(
        theta, priors, covariance_type, data.shift)
    assert_allclose(value, expected, rtol=1e-9)


def test_score_samples_is_predictive_averaged_over_draws():
    rng = np.random.default_rng(9)
    X, *_ = three_component_data(rng, 600)
    est = fit(X, covariance_type="diag", n_draws=10, burn_in=5)
    X_test = rng.normal(size=(40, 2)) * 3
    s = est.posterior_samples_
    w = s["weights"].reshape(-1, 3)
    mu = s["means"].reshape(-1, 3, 2)
    lam = s["precisions"].reshape(-1, 3, 2)
    per_draw = np.stack([logsumexp(np.stack([np.log(w[d, k]) + sps.multivariate_normal.logpdf(
        X_test, mu[d, k], np.diag(1 / lam[d, k])) for k in range(3)], axis=1), axis=1)
        for d in range(len(w))])
    ref = logsumexp(per_draw, axis=0) - np.log(len(w))
    assert_allclose(est.score_samples(X_test), ref, rtol=1e-9)
    assert est.score(X_test) == pytest.approx(ref.mean(), rel=1e-9)
    # predict is plug-in at the posterior means
    assert est.predict(X).shape == (600,)
    assert_allclose(est.predict_proba(X).sum(axis=1), 1.0)


def test_bayesian_gaussian_mixture_gibbs_uses_its_priors():
    rng = np.random.default_rng(10)
    X, *_ = three_component_data(rng, 500)
    common = dict(n_components=3, method="gibbs", n_draws=10, burn_in=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = vbfast.BayesianGaussianMixture(**common).fit(X)
        b = vbfast.BayesianGaussianMixture(mean_precision_prior=50.0, **common).fit(X)
        g = vbfast.GaussianMixture(**common).fit(X)
    assert_array_equal(a.means_, g.means_)  # same default priors as GaussianMixture's
    assert b.mean_precision_prior_ == 50.0 and a.mean_precision_prior_ == 1.0
    assert not np.array_equal(a.means_, b.means_)
    assert "method='gibbs'" in repr(a)


@pytest.mark.parametrize("kw, match", [
    (dict(n_draws=0), "n_draws"), (dict(burn_in=-1), "burn_in"), (dict(thin=0), "thin"),
    (dict(n_chains=0), "n_chains"), (dict(warm_start=True), "warm_start"),
    (dict(means_init=np.zeros((3, 2))), "means_init"), (dict(method="gibs"), "method"),
])
def test_bad_sampler_parameters(kw, match):
    X = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match=match):
        fit(X, **kw)


@pytest.mark.parametrize("cls", [vbfast.GaussianMixture, vbfast.BayesianGaussianMixture])
def test_n_samples_renamed_n_draws(cls):
    """The draws kept per chain are ``n_draws``; the old name is refused, naming the new one
    (``sample(n_samples)`` keeps counting rows)."""
    est = cls(method="gibbs", n_draws=7)
    assert est.get_params()["n_draws"] == 7 and "n_samples" not in est.get_params()
    with pytest.raises(ValueError, match="'n_samples' .*renamed 'n_draws'"):
        est.set_params(n_samples=5)
    assert est.n_draws == 7
    with pytest.raises(TypeError, match="'n_samples', which was renamed 'n_draws'"):
        cls(n_samples=5)
    with pytest.raises(TypeError, match="'n_samples', which was renamed 'n_draws'"):
        cls(method="gibbs", n_samples=5, n_draws=3)


def test_bayesian_mixture_rejects_em():
    X = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="method"):
        vbfast.BayesianGaussianMixture(n_components=2, method="em").fit(X)


def test_relabel_undoes_permutations():
    """Draws that are known permutations of noisy copies of one parameter set come back in a
    common order."""
    rng = np.random.default_rng(12)
    C, S, K, D = 2, 30, 4, 3
    base = rng.normal(size=(K, D)) * 5
    base_w = np.array([0.1, 0.2, 0.3, 0.4])
    means = base + 0.05 * rng.normal(size=(C, S, K, D))
    weights = np.broadcast_to(base_w, (C, S, K)).copy()
    chols = np.broadcast_to(np.arange(1.0, K + 1)[:, None], (C, S, K, D)).copy()
    samples = {"weights": weights, "means": means, "precisions_cholesky": chols,
               "precisions": chols ** 2}
    perms = np.stack([[rng.permutation(K) for _ in range(S)] for _ in range(C)])
    for name in samples:
        idx = perms.reshape(perms.shape + (1,) * (samples[name].ndim - 3))
        samples[name] = np.take_along_axis(samples[name], idx, axis=2)
    GS.relabel(samples, "diag")
    # every draw now in the order of the first draw: the weights identify the components
    order = samples["weights"][0, 0]
    assert_array_equal(samples["weights"], np.broadcast_to(order, (C, S, K)))
    assert_array_equal(samples["precisions_cholesky"][..., 0] ** 2,
                       samples["precisions"][..., 0])
    # each component's precision travels with it (component k: weight 0.1 (k+1), factor k+1)
    assert_allclose(samples["precisions_cholesky"][..., 0], samples["weights"] * 10)
    assert np.abs(samples["means"] - samples["means"].mean(axis=(0, 1))).max() < 0.5
