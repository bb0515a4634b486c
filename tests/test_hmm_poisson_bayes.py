"""PoissonHMM by mean field and Gibbs: the Gamma-Poisson conjugate unit against NumPy / scipy
references, the ELBO against its definition enumerated over every state path, a monotone
ELBO, the sampler against the exact posterior of a tiny model, recovery of known rates."""
import itertools

import numpy as np
import pytest
from scipy import stats
from scipy.special import digamma, gammaln

import vbfast
from vbfast.hmm import PoissonHMM
from vbfast.hmm._conjugate import PoissonConjugate
from vbfast.spectrum import available_methods
from _helpers import dirichlet_expected_log, hmm_gibbs_chain, hmm_mean_field

# fixed-length fits (tol=0) for the bound traces: their non-convergence warning is expected
pytestmark = pytest.mark.filterwarnings("ignore:Best performing initialization did not")

RATES = np.array([[1.0, 8.0], [5.0, 0.5], [12.0, 3.0]])
TRANSMAT = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.1, 0.1, 0.8]])


def _counts(seed=0, n=3000):
    rng = np.random.RandomState(seed)
    z = [0]
    for _ in range(n - 1):
        z.append(rng.choice(3, p=TRANSMAT[z[-1]]))
    z = np.array(z)
    return rng.poisson(RATES[z]).astype(np.float64), z


def _matched(est, true):
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist
    return linear_sum_assignment(cdist(true, est))[1]


def test_conjugate_unit_against_references():
    X, z = _counts(1, 200)
    est = PoissonHMM(3, lambdas_prior=[[2.0], [0.5], [1.5]], lambdas_weight=0.7,
                     method="mean_field")
    conj = PoissonConjugate(est, X, 1, {})
    rng = np.random.RandomState(0)
    post = rng.dirichlet(np.ones(3), size=len(X))
    q = conj.update(conj.stats(X, post))
    np.testing.assert_allclose(q["shape"], np.array([[2.0], [0.5], [1.5]]) + post.T @ X)
    np.testing.assert_allclose(q["rate"], 0.7 + np.broadcast_to(post.sum(0)[:, None], (3, 2)))
    # E_q log Poisson(x | lambda_k), term by term
    a, b = q["shape"], q["rate"]
    ref = np.array([[np.sum(x * (digamma(a[k]) - np.log(b[k])) - a[k] / b[k]
                            - gammaln(x + 1)) for k in range(3)] for x in X])
    np.testing.assert_allclose(conj.expected_log_density(X, q), ref, rtol=1e-12)
    # KL(q || p) = -H(q) - E_q log p, with scipy's entropy
    elog, mean = digamma(a) - np.log(b), a / b
    a0, b0 = conj.shape0, conj.rate0
    cross = a0 * np.log(b0) - gammaln(a0) + (a0 - 1) * elog - b0 * mean
    kl = (-stats.gamma(a, scale=1 / b).entropy() - cross).sum()
    np.testing.assert_allclose(conj.kl(q), kl, rtol=1e-10)
    # hard statistics of drawn states: one-hot references
    onehot = np.eye(3)[z]
    hard = conj.hard_stats(X, z.astype(np.int32))
    np.testing.assert_array_equal(hard["post"], onehot.sum(0))
    np.testing.assert_allclose(hard["obs"], onehot.T @ X)
    np.testing.assert_allclose(conj.point(q)["lambdas"], a / b)


def test_default_prior_is_weak_at_the_data_mean():
    X, _ = _counts(2, 300)
    X[:, 1] = 0  # an all-zero feature: shape floored, never 0
    conj = PoissonConjugate(PoissonHMM(3, method="gibbs"), X, 1, {})
    np.testing.assert_allclose(conj.shape0, np.tile([X[:, 0].mean(), 1e-3], (3, 1)))
    np.testing.assert_array_equal(conj.rate0, np.ones((3, 2)))
    m = PoissonHMM(2, method="mean_field", n_iter=20, random_state=0).fit(X, [100, 200])
    assert np.all(m.lambdas_[:, 1] < 1e-3) and np.all(np.isfinite(m.lambdas_))


@pytest.mark.parametrize("prior, weight", [(0.0, 1.0), (1.0, 0.0), (-1.0, -1.0)])
def test_bad_gamma_prior_refused(prior, weight):
    X, _ = _counts(3, 50)
    for method in ("mean_field", "gibbs"):
        with pytest.raises(ValueError, match="lambdas_prior"):
            PoissonHMM(2, method=method, lambdas_prior=prior,
                       lambdas_weight=weight).fit(X)


def _gamma_poisson_kl_reference(a, b, a0, b0):
    return (-stats.gamma(a, scale=1 / b).entropy()
            - (a0 * np.log(b0) - gammaln(a0) + (a0 - 1) * (digamma(a) - np.log(b))
               - b0 * a / b)).sum()


def test_elbo_equals_enumerated_definition():
    """The bound of one iteration equals E_q[log p(X, z, theta)] + H[q(z)] + H[q(theta)],
    with q(z) enumerated over every path of a tiny Poisson HMM (two sequences) and the KL
    terms from scipy's entropies."""
    X = np.array([[0, 3], [2, 1], [5, 0], [1, 1], [4, 2], [0, 0], [7, 1]], dtype=float)
    lengths = [4, 3]
    est = PoissonHMM(2, method="mean_field", random_state=0, sticky=0.4, startprob_prior=0.7,
                     transmat_prior=1.6, lambdas_prior=[[1.5, 0.5], [2.0, 1.0]],
                     lambdas_weight=0.8)
    Xs, seqs, conj, method = hmm_mean_field(est, X, lengths)
    q = method.q
    method.update(method.data.run_pass(seqs, method.pass_inputs(seqs)))
    elog = dirichlet_expected_log
    lpi, lA = elog(q["start"]), elog(q["trans"])
    a, b = q["emission"]["shape"], q["emission"]["rate"]
    lB = np.array([[np.sum(x * (digamma(a[k]) - np.log(b[k])) - a[k] / b[k]
                           - gammaln(x + 1)) for k in range(2)] for x in X])
    data_term = 0.0
    start = 0
    for T in lengths:
        lb = lB[start:start + T]
        paths = list(itertools.product(range(2), repeat=T))
        score = np.array([lpi[z[0]] + lb[0, z[0]] + sum(lA[z[t - 1], z[t]] + lb[t, z[t]]
                                                         for t in range(1, T)) for z in paths])
        qz = np.exp(score - np.logaddexp.reduce(score))
        data_term += (qz * score).sum() - (qz * np.log(qz)).sum()
        start += T
    prior = method.prior
    kl = (_dirichlet_kl_reference(q["start"], prior.start0)
          + sum(_dirichlet_kl_reference(q["trans"][i], prior.trans0[i]) for i in range(2))
          + _gamma_poisson_kl_reference(a, b, conj.shape0, conj.rate0))
    np.testing.assert_allclose(prior.trans0, 1.6 + 0.4 * np.eye(2))
    np.testing.assert_allclose(conj.shape0, [[1.5, 0.5], [2.0, 1.0]])
    np.testing.assert_allclose(method.bound(), data_term - kl, rtol=1e-10)


def _dirichlet_kl_reference(a, a0):
    """KL(Dir(a) || Dir(a0)) = -H(q) - E_q log p, with scipy's entropy."""
    elog = digamma(a) - digamma(a.sum())
    cross = gammaln(a0.sum()) - gammaln(a0).sum() + ((a0 - 1) * elog).sum()
    return -stats.dirichlet(a).entropy() - cross


@pytest.mark.parametrize("seed", range(8))
def test_mean_field_elbo_never_decreases(seed):
    X, _ = _counts(seed, 900)
    with vbfast.config_context(bound_decrease="raise"):
        m = PoissonHMM(3 + seed % 3, method="mean_field", n_iter=80, tol=0,
                       random_state=seed, sticky=float(seed % 2)).fit(X, [300, 600])
    lb = m.lower_bounds_
    assert len(lb) == 80
    assert np.all(np.diff(lb) >= -1e-9 * np.abs(lb[1:]))
    np.testing.assert_allclose(m.lambdas_, m.lambdas_shape_posterior_ /
                               m.lambdas_rate_posterior_)
    np.testing.assert_allclose(m.transmat_.sum(axis=1), 1.0)
    assert np.isfinite(m.score(X, [300, 600]))


@pytest.mark.parametrize("method", ["mean_field", "gibbs"])
def test_recovers_known_rates(method):
    X, _ = _counts(4, 3000)
    kw = (dict(n_iter=200) if method == "mean_field"
          else dict(n_draws=150, burn_in=50, n_chains=2))
    m = PoissonHMM(3, method=method, random_state=0, **kw).fit(X, [1000] * 3)
    perm = _matched(m.lambdas_, RATES)
    np.testing.assert_allclose(m.lambdas_[perm], RATES, rtol=0.06, atol=0.06)
    np.testing.assert_allclose(m.transmat_[np.ix_(perm, perm)], TRANSMAT, atol=0.04)
    if method == "gibbs":
        ps = m.posterior_samples_
        assert ps["lambdas"].shape == (2, 150, 3, 2) and ps["log_joint"].shape == (2, 150)
        assert m.sampler_diagnostics_["max_rhat"] < 1.05 and m.converged_
    else:
        assert m.converged_


def test_gibbs_matches_the_exact_posterior_of_a_tiny_model():
    """One sequence of four counts 1, 2, 4, 8 (every subset has its own sum, so the drawn
    states' statistic O_0 names the path), pi and A fixed, Gamma(2, 1) rates: the sampler's
    joint draws (z, lambda) against the posterior enumerated over the 16 paths with the
    rates integrated out (the Gamma-Poisson marginal)."""
    X = np.array([[1.0], [2.0], [4.0], [8.0]])
    pi = np.array([0.7, 0.3])
    A = np.array([[0.6, 0.4], [0.3, 0.7]])
    a0, b0 = 2.0, 1.0
    est = PoissonHMM(2, method="gibbs", params="l", init_params="l", lambdas_prior=a0,
                     lambdas_weight=b0, random_state=0)
    est.startprob_, est.transmat_ = pi, A
    seqs, conj, data, chain = hmm_gibbs_chain(est, X)
    n_sweeps, burn = 40000, 100
    sums = np.empty(n_sweeps)
    lam0 = np.empty(n_sweeps)
    for s in range(n_sweeps):
        st = data.run_pass(seqs, chain.pass_inputs(seqs))
        chain.update(st)
        sums[s] = st["obs"][0, 0]
        lam0[s] = chain.params["lambdas"][0, 0]
    sums, lam0 = sums[burn:], lam0[burn:]
    x = X[:, 0]
    paths = list(itertools.product(range(2), repeat=4))
    logp = np.empty(len(paths))
    mean_lam0 = np.empty(len(paths))
    for i, z in enumerate(paths):
        z = np.array(z)
        lp = np.log(pi[z[0]]) + np.log(A[z[:-1], z[1:]]).sum()
        for k in range(2):
            n, S = (z == k).sum(), x[z == k].sum()
            lp += a0 * np.log(b0) - gammaln(a0) + gammaln(a0 + S) - (a0 + S) * np.log(b0 + n)
        logp[i] = lp - gammaln(x + 1).sum()
        mean_lam0[i] = (a0 + x[z == 0].sum()) / (b0 + (z == 0).sum())
    post = np.exp(logp - np.logaddexp.reduce(logp))
    path_sum = np.array([x[np.array(z) == 0].sum() for z in paths])
    drawn = np.array([np.mean(sums == v) for v in path_sum])
    np.testing.assert_allclose(drawn, post, atol=0.012)
    assert abs(lam0.mean() - (post * mean_lam0).sum()) < 0.05 * (post * mean_lam0).sum()


def test_gibbs_same_draws_for_any_thread_count():
    X, _ = _counts(5, 4000)
    kw = dict(method="gibbs", n_draws=5, burn_in=3, n_chains=2, random_state=1)
    with pytest.warns(Warning):
        a = PoissonHMM(3, n_threads=1, **kw).fit(X, [1000] * 4)
    with pytest.warns(Warning):
        b = PoissonHMM(3, n_threads=2, **kw).fit(X, [1000] * 4)
    for name in a.posterior_samples_:
        np.testing.assert_array_equal(a.posterior_samples_[name], b.posterior_samples_[name])


def test_compare_methods_offers_every_method():
    assert set(available_methods(PoissonHMM(2))) == {"em", "mean_field", "gibbs"}
    X, _ = _counts(6, 400)
    result = vbfast.compare_methods(
        PoissonHMM(3, n_iter=30, random_state=0, n_draws=20, burn_in=10), X,
        lengths=[200, 200])
    assert {r["method"] for r in result} == {"em", "mean_field", "gibbs"}
    for r in result:
        assert np.isfinite(r["heldout"])
