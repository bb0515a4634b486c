"""GaussianHMM and CategoricalHMM by mean field and Gibbs: the FFBS kernel against the exact
posterior (enumerated paths), thread and grouping invariance of its draws, the KL terms of the
ELBO against Monte Carlo, a monotone ELBO, switched-off states, sticky transitions, recovery
of known parameters by the sampler."""
import itertools

import numpy as np
import pytest
from scipy import stats

import vbfast
from vbfast.hmm import CategoricalHMM, GaussianHMM
from vbfast.hmm import _ffbs
from vbfast.hmm._conjugate import GaussianConjugate
from vbfast.hmm._sequences import Sequences
from _helpers import dirichlet_expected_log, hmm_mean_field

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
# fixed-length fits (tol=0) for the bound traces: their non-convergence warning is expected
pytestmark = pytest.mark.filterwarnings("ignore:Best performing initialization did not")


def _ffbs_draw(logprob, pi, A, lengths, seed=3, sweep=0, n_threads=1, sequences=None):
    seqs = sequences or Sequences(lengths, logprob.shape[0], n_threads)
    K = logprob.shape[1]
    states = np.empty(logprob.shape[0], dtype=np.int32)
    seq_ll = np.full(seqs.n_sequences, np.nan)
    ts = np.empty((seqs.n_groups, K * K))
    ss = np.empty((seqs.n_groups, K))
    _ffbs.ffbs(np.ascontiguousarray(logprob), pi, A, seqs.offsets, seqs.group_bounds, seed,
               sweep, states, seq_ll, ts, ss, n_threads)
    return states, seq_ll, ts.sum(0).reshape(K, K), ss.sum(0)


def _exact_paths(lp, pi, A):
    """Every path of a short sequence and its log joint p(x, z)."""
    T, K = lp.shape
    paths = list(itertools.product(range(K), repeat=T))
    with np.errstate(divide="ignore"):
        logj = np.array([np.log(pi[z[0]]) + lp[0, z[0]] + sum(
            np.log(A[z[t - 1], z[t]]) + lp[t, z[t]] for t in range(1, T)) for z in paths])
    return paths, logj


def test_ffbs_matches_enumerated_posterior():
    rng = np.random.RandomState(0)
    K, T, n_rep = 3, 4, 30000
    pi = rng.dirichlet(np.ones(K))
    A = rng.dirichlet(np.ones(K), size=K)
    lp = rng.normal(scale=1.0, size=(T, K))
    paths, logj = _exact_paths(lp, pi, A)
    post = np.exp(logj - np.logaddexp.reduce(logj))
    # n_rep copies of the sequence: each has its own stream, so n_rep independent draws
    states, seq_ll, trans, start = _ffbs_draw(np.tile(lp, (n_rep, 1)), pi, A, [T] * n_rep)
    np.testing.assert_allclose(seq_ll, np.logaddexp.reduce(logj), rtol=1e-12)
    index = {p: i for i, p in enumerate(paths)}
    drawn = np.bincount([index[tuple(r)] for r in states.reshape(n_rep, T)],
                        minlength=len(paths))
    expected = post * n_rep
    keep = expected > 5
    chi2 = (((drawn - expected) ** 2 / expected)[keep]).sum()
    assert drawn[~keep].sum() <= max(5 * (~keep).sum(), 10)
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-3
    # counts of the drawn paths
    S = states.reshape(n_rep, T)
    np.testing.assert_array_equal(start, np.bincount(S[:, 0], minlength=K))
    np.testing.assert_array_equal(
        trans, np.bincount((S[:, :-1] * K + S[:, 1:]).ravel(), minlength=K * K).reshape(K, K))


def test_ffbs_log_space_fallback_is_exact():
    # the scaled filter underflows at t = 1 (scale 1e-300): redone in log space
    lp = np.array([[0.0, -1000.0], [-1000.0, 0.0]])
    pi = np.array([0.5, 0.5])
    A = np.array([[1.0, 1e-300], [0.5, 0.5]])
    states, seq_ll, _, _ = _ffbs_draw(lp, pi, A, [2])
    _, logj = _exact_paths(lp, pi, A)
    np.testing.assert_allclose(seq_ll[0], np.logaddexp.reduce(logj), rtol=1e-12)
    np.testing.assert_array_equal(states, [0, 1])


def test_ffbs_impossible_sequence():
    lp = np.array([[0.0, -np.inf], [-np.inf, 0.0]])
    states, seq_ll, trans, start = _ffbs_draw(lp, np.array([1.0, 0.0]), np.eye(2), [2])
    assert seq_ll[0] == -np.inf and not states.any() and trans.sum() == 0 and start.sum() == 0


def test_ffbs_draws_do_not_depend_on_threads_or_groups():
    rng = np.random.RandomState(1)
    K = 4
    lengths = rng.randint(1, 400, size=300)
    N = lengths.sum()
    lp = rng.normal(size=(N, K))
    pi = rng.dirichlet(np.ones(K))
    A = rng.dirichlet(np.ones(K), size=K)
    one = _ffbs_draw(lp, pi, A, lengths, n_threads=1)
    two = _ffbs_draw(lp, pi, A, lengths, n_threads=2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    seqs = Sequences(lengths, N, 1)
    assert seqs.n_groups > 1
    # one group holding every sequence: the same draws (streams keyed by sequence)
    seqs.group_bounds = np.array([0, len(lengths)], dtype=np.int64)
    seqs.n_groups = 1
    single = _ffbs_draw(lp, pi, A, lengths, sequences=seqs)
    np.testing.assert_array_equal(one[0], single[0])
    np.testing.assert_array_equal(one[2], single[2])
    other = _ffbs_draw(lp, pi, A, lengths, sweep=1)
    assert not np.array_equal(one[0], other[0])
    assert 0.0 <= _ffbs.uniform_at(3, 0, 5, 7) < 1.0


def _gauss_data(seed=0, T=600, D=2, n_seq=3):
    rng = np.random.RandomState(seed)
    A = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.1, 0.1, 0.8]])
    means = np.array([[0.0] * D, [4.0] * D, [-4.0, 4.0] + [0.0] * (D - 2)])[:, :D]
    z = [0]
    for _ in range(T * n_seq - 1):
        z.append(rng.choice(3, p=A[z[-1]]))
    z = np.array(z)
    X = means[z] + rng.normal(scale=0.7, size=(len(z), D))
    return X, [T] * n_seq, z, A, means


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_kl_and_draws_match_monte_carlo(ct):
    """conj.kl(q) = E_q[log q - log p] estimated from conj.draw(q) with scipy's densities."""
    X, lengths, _, _, _ = _gauss_data(D=2, T=100, n_seq=1)
    est = GaussianHMM(2, ct, beta_prior=0.5, dof_prior=3.5)
    conj = GaussianConjugate(est, X, 1, {})
    rng = np.random.RandomState(2)
    resp = rng.dirichlet(np.ones(2), size=len(X))
    q = conj.update(conj.stats(X, resp))
    gen = np.random.Generator(np.random.PCG64(0))
    n = 4000
    vals = np.empty(n)
    c = conj.shift
    for i in range(n):
        th = conj.draw(q, gen)
        vals[i] = _log_q_minus_log_p(conj, q, th, c, ct)
    mc, se = vals.mean(), vals.std() / np.sqrt(n)
    assert abs(conj.kl(q) - mc) < 5 * se + 1e-6


def _log_q_minus_log_p(conj, q, th, c, ct):
    D, K = conj.D, conj.K
    mu = th["means"] - c
    out = 0.0
    if ct in ("full", "tied"):
        covs = th["covars"] if ct == "full" else np.broadcast_to(th["covars"], (K, D, D))
        for k in range(K):
            lam = np.linalg.inv(covs[k])
            for sign, m, beta in ((1, q["m"][k], q["beta"][k]),
                                  (-1, conj.m0[k], conj.beta0[k])):
                out += sign * stats.multivariate_normal.logpdf(mu[k], m, covs[k] / beta)
            if ct == "full" or k == 0:
                nu = q["nu"][k] if ct == "full" else q["nu"]
                psi = q["psi"][k] if ct == "full" else q["psi"]
                nu0 = conj.nu0[k] if ct == "full" else conj.nu0
                psi0 = conj.psi0[k] if ct == "full" else conj.psi0
                out += stats.wishart.logpdf(lam, nu, np.linalg.inv(psi))
                out -= stats.wishart.logpdf(lam, nu0, np.linalg.inv(psi0))
        return out
    lam = 1.0 / th["covars"]
    if ct == "diag":
        a, b = 0.5 * q["nu"][:, None], 0.5 * q["psi"]
        a0, b0 = 0.5 * conj.nu0[:, None], 0.5 * conj.psi0
        beta, beta0 = q["beta"][:, None], conj.beta0[:, None]
        out += stats.gamma.logpdf(lam, a, scale=1 / b).sum()
        out -= stats.gamma.logpdf(lam, a0, scale=1 / b0).sum()
        out += stats.norm.logpdf(mu, q["m"], 1 / np.sqrt(beta * lam)).sum()
        out -= stats.norm.logpdf(mu, conj.m0, 1 / np.sqrt(beta0 * lam)).sum()
        return out
    a, b = 0.5 * q["nu"], 0.5 * q["psi"]
    out += stats.gamma.logpdf(lam, a, scale=1 / b).sum()
    out -= stats.gamma.logpdf(lam, 0.5 * conj.nu0, scale=2 / conj.psi0).sum()
    sd = 1 / np.sqrt(q["beta"] * lam)[:, None]
    sd0 = 1 / np.sqrt(conj.beta0 * lam)[:, None]
    out += stats.norm.logpdf(mu, q["m"], sd).sum() - stats.norm.logpdf(mu, conj.m0, sd0).sum()
    return out


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
@pytest.mark.parametrize("seed", range(4))
def test_mean_field_elbo_never_decreases(ct, seed):
    X, lengths, _, _, _ = _gauss_data(seed=seed, T=200)
    with vbfast.config_context(bound_decrease="raise"):
        m = GaussianHMM(4, ct, method="mean_field", n_iter=60, tol=0, random_state=seed,
                        sticky=seed).fit(X, lengths)
    lb = m.lower_bounds_
    assert np.all(np.diff(lb) >= -1e-9 * np.abs(lb[1:]))
    assert np.isfinite(m.score(X, lengths))
    np.testing.assert_allclose(m.transmat_.sum(axis=1), 1.0)
    assert m.scale_posterior_.shape[0] in (2, 4)


@pytest.mark.parametrize("seed", range(4))
def test_categorical_mean_field_elbo_never_decreases(seed):
    rng = np.random.RandomState(seed)
    B = rng.dirichlet(np.ones(5) * 0.5, size=3)
    z = np.cumsum(rng.rand(900) < 0.05) % 3
    X = np.array([[rng.choice(5, p=B[k])] for k in z])
    with vbfast.config_context(bound_decrease="raise"):
        m = CategoricalHMM(3, method="mean_field", n_iter=80, tol=0,
                           random_state=seed).fit(X, [300, 600])
    assert np.all(np.diff(m.lower_bounds_) >= -1e-9 * np.abs(m.lower_bounds_[1:]))
    np.testing.assert_allclose(m.emissionprob_, m.emissionprob_posterior_ /
                               m.emissionprob_posterior_.sum(1, keepdims=True))


@pytest.mark.parametrize("ct", ["diag", "full"])
@pytest.mark.parametrize("seed", range(3))
def test_mean_field_switches_off_redundant_states(ct, seed):
    """8 states fitted to 3-state data: the ELBO's Occam factor empties 5 of them (with a
    sticky prior; without one, 3-4 of 8 stay in use from k-means starts, the extra one a
    local optimum of lower ELBO)."""
    X, lengths, _, _, _ = _gauss_data(seed=5, T=500)
    m = GaussianHMM(8, ct, method="mean_field", n_iter=200, tol=1e-4, random_state=seed,
                    sticky=10.0).fit(X, lengths)
    occupancy = m.predict_proba(X, lengths).sum(axis=0) / len(X)
    assert (occupancy > 0.02).sum() == 3
    three = GaussianHMM(3, ct, method="mean_field", n_iter=200, tol=1e-4, random_state=seed,
                        sticky=10.0).fit(X, lengths)
    # the empty states' q equal their priors (no KL cost left); what remains is the Occam
    # factor of the larger transition Dirichlets: a bound a little below the 3-state one
    assert 0 < three.lower_bound_ - m.lower_bound_ < 0.03 * abs(three.lower_bound_)


def _categorical_data(seed, n=1500):
    rng = np.random.RandomState(seed)
    B = np.array([[.85, .05, .05, .05, 0, 0], [0, .05, .85, .05, .05, 0],
                  [0, 0, .05, .05, .05, .85]])
    B /= B.sum(axis=1, keepdims=True)
    A = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.1, 0.1, 0.8]])
    z = [0]
    for _ in range(n - 1):
        z.append(rng.choice(3, p=A[z[-1]]))
    return np.array([[rng.choice(6, p=B[k])] for k in z]), [n // 3] * 3


@pytest.mark.parametrize("kind", ["diag", "spherical", "tied", "full", "categorical"])
def test_mean_field_switches_off_redundant_states_with_the_defaults(kind):
    """8 states fitted to data from 3 well-separated states with the default priors
    (Dirichlet 1/K on the start and transition rows, no sticky bias) and tolerance: the
    merge moves at convergence leave at most 4 states with an expected occupancy of one
    observation or more, 3 from most starts, and the ELBO never decreases (guard set to
    raise) although states are merged. (Without the merge moves 1/K rows keep 5-7 states in
    use; Dirichlet 1 rows leave categorical states in use: see docs/hmm.md.)"""
    if kind == "categorical":
        X, lengths = _categorical_data(0)
        make = lambda seed: CategoricalHMM(8, method="mean_field", n_iter=2000,  # noqa
                                           random_state=seed)
    else:
        X, lengths, _, _, _ = _gauss_data(seed=5, T=500)
        make = lambda seed: GaussianHMM(8, kind, method="mean_field", n_iter=2000,  # noqa
                                        random_state=seed)
    used, merges = [], []
    for seed in range(4):
        with vbfast.config_context(bound_decrease="raise"):
            m = make(seed).fit(X, lengths)
        assert m.converged_
        lb = m.lower_bounds_
        assert np.all(np.diff(lb) >= -1e-9 * np.abs(lb[1:]))
        occupancy = m.predict_proba(X, lengths).sum(axis=0)
        used.append(int((occupancy >= 1.0).sum()))
        merges.append(m.n_merges_)
    assert max(used) <= 4 and used.count(3) >= 2, used
    assert sum(merges) > 0


@pytest.mark.parametrize("kind", ["full", "tied", "categorical"])
def test_merge_statistics_are_the_merged_posteriors(kind):
    """A merge of states i and j adds their statistics: the emission statistics of the
    posteriors with column j added into column i, the start and transition counts with row
    and column j added into i."""
    if kind == "categorical":
        X, lengths = _categorical_data(1, 300)
        est = CategoricalHMM(4, method="mean_field", random_state=0)
    else:
        X, lengths, _, _, _ = _gauss_data(seed=2, T=100)
        est = GaussianHMM(4, kind, method="mean_field", random_state=0)
    Xs, seqs, conj, method = hmm_mean_field(est, X, lengths)
    inputs = method.pass_inputs(seqs)
    fb = seqs.forward_backward(conj.expected_log_density(Xs, inputs["q_emission"]),
                               inputs["startprob"], inputs["transmat"])
    method._stats = method.data.run_pass(seqs, inputs)
    merged = method._merged_stats(0, 2)
    post = fb["posteriors"].copy()
    post[:, 0] += post[:, 2]
    post[:, 2] = 0.0
    ref = conj.stats(Xs, post)
    for name in conj.merge_fields:
        np.testing.assert_allclose(merged[name], ref[name], rtol=1e-9, atol=1e-9)
    trans = fb["trans"].copy()
    trans[0] += trans[2]
    trans[:, 0] += trans[:, 2]
    trans[2] = trans[:, 2] = 0.0
    np.testing.assert_allclose(merged["trans"], trans, rtol=1e-12)
    assert merged["start"][2] == 0 and merged["start"].sum() == pytest.approx(len(lengths))


def test_sticky_raises_self_transitions():
    X, lengths, _, _, _ = _gauss_data(seed=6, T=150)
    base = GaussianHMM(3, method="mean_field", n_iter=50, random_state=0).fit(X, lengths)
    sticky = GaussianHMM(3, method="mean_field", n_iter=50, random_state=0,
                         sticky=2000.0).fit(X, lengths)
    assert np.diag(sticky.transmat_).mean() > np.diag(base.transmat_).mean() + 0.02


def test_mean_field_keeps_structural_zeros():
    X, lengths, _, _, _ = _gauss_data(seed=7, T=200)
    A = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    m = GaussianHMM(3, method="mean_field", init_params="mc", n_iter=20, random_state=0)
    m.startprob_ = np.array([1.0, 0.0, 0.0])
    m.transmat_ = A
    m.fit(X, lengths)
    assert np.all(m.transmat_[A == 0] == 0) and m.startprob_[1] == 0 == m.startprob_[2]
    np.testing.assert_allclose(m.transmat_.sum(axis=1), 1.0)


def _matched(est_means, true_means):
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist
    return linear_sum_assignment(cdist(true_means, est_means))[1]


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_gibbs_recovers_parameters(ct):
    X, lengths, z, A, means = _gauss_data(seed=8, T=700)
    m = GaussianHMM(3, ct, method="gibbs", n_draws=60, burn_in=40, n_chains=2,
                    random_state=0).fit(X, lengths)
    perm = _matched(m.means_, means)
    np.testing.assert_allclose(m.means_[perm], means, atol=0.15)
    np.testing.assert_allclose(m.transmat_[np.ix_(perm, perm)], A, atol=0.05)
    np.testing.assert_allclose(np.sqrt(np.diagonal(m.covars_, axis1=1, axis2=2)), 0.7,
                               atol=0.08)
    ps = m.posterior_samples_
    assert ps["means"].shape == (2, 60, 3, 2) and ps["log_joint"].shape == (2, 60)
    assert m.log_joint_trace_.shape == (2, 100)
    assert m.sampler_diagnostics_["max_rhat"] < 1.05 and m.converged_


def test_gibbs_categorical_recovers_parameters():
    rng = np.random.RandomState(9)
    B = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]])
    A = np.array([[0.95, 0.05], [0.1, 0.9]])
    z = [0]
    for _ in range(5999):
        z.append(rng.choice(2, p=A[z[-1]]))
    X = np.array([[rng.choice(4, p=B[k])] for k in z])
    m = CategoricalHMM(2, method="gibbs", n_draws=300, burn_in=100, random_state=0).fit(
        X, [3000, 3000])
    perm = _matched(m.emissionprob_, B)
    np.testing.assert_allclose(m.emissionprob_[perm], B, atol=0.04)
    np.testing.assert_allclose(m.transmat_[np.ix_(perm, perm)], A, atol=0.04)
    assert m.converged_


def test_gibbs_same_draws_for_any_thread_count():
    X, lengths, _, _, _ = _gauss_data(seed=10, T=3000, n_seq=4)
    kw = dict(method="gibbs", n_draws=5, burn_in=3, n_chains=2, random_state=1)
    with pytest.warns(Warning):
        a = GaussianHMM(3, "full", n_threads=1, **kw).fit(X, lengths)
    with pytest.warns(Warning):
        b = GaussianHMM(3, "full", n_threads=2, **kw).fit(X, lengths)
    for name in a.posterior_samples_:
        np.testing.assert_array_equal(a.posterior_samples_[name], b.posterior_samples_[name])
    np.testing.assert_array_equal(a.log_joint_trace_, b.log_joint_trace_)


def test_bad_bayes_parameters():
    X, lengths, _, _, _ = _gauss_data(T=50)
    with pytest.raises(ValueError, match="sticky"):
        GaussianHMM(2, method="mean_field", sticky=-1).fit(X, lengths)
    with pytest.raises(ValueError, match="n_draws"):
        GaussianHMM(2, method="gibbs", n_draws=0).fit(X, lengths)
    with pytest.raises(ValueError, match="transmat_prior"):
        GaussianHMM(2, method="mean_field", transmat_prior=0.0).fit(X, lengths)
    with pytest.raises(ValueError, match="dof_prior"):
        GaussianHMM(2, "full", method="mean_field", dof_prior=0.5).fit(X, lengths)
    with pytest.raises(ValueError, match="emissionprob_prior"):
        CategoricalHMM(2, method="gibbs", emissionprob_prior=0.0).fit([[0], [1], [0]])


def _dirichlet_kl_reference(a, a0):
    """KL(Dir(a) || Dir(a0)) = -H(q) - E_q log p, with scipy's entropy."""
    from scipy.special import digamma, gammaln
    elog = digamma(a) - digamma(a.sum())
    cross = gammaln(a0.sum()) - gammaln(a0).sum() + ((a0 - 1) * elog).sum()
    return -stats.dirichlet(a).entropy() - cross


def test_elbo_equals_enumerated_definition():
    """The bound of one iteration equals E_q[log p(X, z, theta)] + H[q(z)] + H[q(theta)],
    with q(z) enumerated over every path of a tiny categorical HMM and the Dirichlet terms
    from scipy's entropies."""
    rng = np.random.RandomState(3)
    X = rng.randint(3, size=(5, 1))
    est = CategoricalHMM(2, method="mean_field", random_state=0, sticky=0.7,
                         startprob_prior=0.8, transmat_prior=1.3, emissionprob_prior=0.6)
    Xs, seqs, conj, method = hmm_mean_field(est, X, None)
    q = method.q
    method.update(method.data.run_pass(seqs, method.pass_inputs(seqs)))
    elog = dirichlet_expected_log
    lpi, lA, lB = elog(q["start"]), elog(q["trans"]), elog(q["emission"]["lam"])
    x = Xs
    paths = list(itertools.product(range(2), repeat=5))
    score = np.array([lpi[z[0]] + lB[z[0], x[0]] + sum(lA[z[t - 1], z[t]] + lB[z[t], x[t]]
                                                        for t in range(1, 5)) for z in paths])
    qz = np.exp(score - np.logaddexp.reduce(score))
    data_term = (qz * score).sum() - (qz * np.log(qz)).sum()
    prior = method.prior
    kl = (_dirichlet_kl_reference(q["start"], prior.start0)
          + sum(_dirichlet_kl_reference(q["trans"][i], prior.trans0[i]) for i in range(2))
          + sum(_dirichlet_kl_reference(q["emission"]["lam"][k], conj.prior[k])
                for k in range(2)))
    np.testing.assert_allclose(prior.trans0, 1.3 + 0.7 * np.eye(2))
    np.testing.assert_allclose(method.bound(), data_term - kl, rtol=1e-10)
