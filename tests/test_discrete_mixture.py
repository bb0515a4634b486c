"""BernoulliMixture, CategoricalMixture, MultinomialMixture: EM, mean field, Gibbs."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import logsumexp

from vbfast import BernoulliMixture, CategoricalMixture, MultinomialMixture
from vbfast.exceptions import ConvergenceWarning


def _lca_data(N=3000, seed=0, sizes=(2, 3, 4, 3, 2, 5), missing=0.0):
    rng = np.random.RandomState(seed)
    K = 3
    pi = np.array([0.5, 0.3, 0.2])
    probs = [np.stack([np.eye(L)[k % L] * 0.7 + 0.3 / L for k in range(K)]) for L in sizes]
    z = rng.choice(K, N, p=pi)
    X = np.column_stack([(rng.uniform(size=N)[:, None] > np.cumsum(p[z], axis=1)).sum(axis=1)
                         for p in probs]).astype(float)
    if missing:
        X[rng.uniform(size=X.shape) < missing] = np.nan
    return X, z, pi, probs


def _binary(N=2000, seed=0):
    rng = np.random.RandomState(seed)
    p = np.array([[0.9] * 4 + [0.1] * 4, [0.1] * 4 + [0.9] * 4, [0.8, 0.2] * 4])
    z = rng.choice(3, N, p=[0.4, 0.35, 0.25])
    return (rng.uniform(size=(N, 8)) < p[z]).astype(float), z, p


def _agreement(a, b, K):
    from scipy.optimize import linear_sum_assignment
    C = np.zeros((K, K))
    np.add.at(C, (a, b), 1)
    r, c = linear_sum_assignment(-C)
    return C[r, c].sum() / len(a)


@pytest.mark.parametrize("method", ["em", "mean_field"])
def test_bound_monotone_and_recovery(method):
    X, z, pi, probs = _lca_data(missing=0.1)
    est = CategoricalMixture(3, method=method, n_init=3, random_state=0, tol=0.0,
                             max_iter=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X)
    lb = est.lower_bounds_
    assert np.all(np.diff(lb) >= -1e-10 * np.abs(lb[1:]))
    assert _agreement(est.predict(X), z, 3) > 0.9
    np.testing.assert_allclose(np.sort(est.weights_), np.sort(pi), atol=0.04)


def test_bernoulli_em_recovers_and_gibbs_agrees():
    X, z, p = _binary()
    em = BernoulliMixture(3, n_init=3, random_state=0).fit(X)
    assert _agreement(em.predict(X), z, 3) > 0.9
    order = np.argsort(em.probabilities_[:, 0] + 2 * em.probabilities_[:, 4])
    gibbs = BernoulliMixture(3, method="gibbs", n_draws=100, burn_in=100, n_chains=2,
                             random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gibbs.fit(X)
    g_order = np.argsort(gibbs.probabilities_[:, 0] + 2 * gibbs.probabilities_[:, 4])
    np.testing.assert_allclose(gibbs.probabilities_[g_order], em.probabilities_[order],
                               atol=0.05)
    assert gibbs.posterior_samples_["probabilities"].shape == (2, 100, 3, 8)
    assert np.isfinite(gibbs.sampler_diagnostics_["max_rhat"])
    assert abs(gibbs.score(X) - em.score(X)) < 0.02


def test_gibbs_chains_agree_and_recover_known_parameters():
    # moderately separated classes (item probabilities drawn in [0.1, 0.9], unequal shares):
    # chains started at random used to settle in different optima (R-hat ~2); from the
    # common EM start they agree and recover the generating parameters
    from scipy.optimize import linear_sum_assignment
    rng = np.random.RandomState(0)
    K, D, N = 4, 12, 3000
    probs = np.clip(rng.beta(1, 1, size=(K, D)), 0.1, 0.9)
    pi = np.array([0.4, 0.3, 0.2, 0.1])
    X = (rng.uniform(size=(N, D)) < probs[rng.choice(K, N, p=pi)]).astype(float)
    g = BernoulliMixture(K, method="gibbs", n_draws=150, burn_in=100, n_chains=4,
                         random_state=1).fit(X)
    assert g.sampler_diagnostics_["max_rhat"] < 1.1 and g.converged_
    r, c = linear_sum_assignment(((g.probabilities_[:, None] - probs[None]) ** 2).sum(-1))
    assert np.abs(g.probabilities_[r] - probs[c]).max() < 0.1
    np.testing.assert_allclose(g.weights_[r], pi[c], atol=0.03)
    # every chain's draws sit around the same values (no chain in another optimum)
    per_chain = g.posterior_samples_["probabilities"].mean(axis=1)
    assert np.abs(per_chain - per_chain.mean(axis=0)).max() < 0.05


def test_dirichlet_process_weights_prune_and_elbo_is_monotone():
    X, z, _ = _binary()
    m = BernoulliMixture(8, method="mean_field", weight_concentration_prior_type=
                         "dirichlet_process", max_iter=500, random_state=0).fit(X)
    assert m.converged_ and np.all(np.diff(m.lower_bounds_) >= -1e-9 * abs(m.lower_bound_))
    assert np.sum(m.weights_ > 0.05) == 3 and _agreement(m.predict(X), z, 8) > 0.9
    a, b = m.weight_concentration_
    assert a.shape == b.shape == (8,) and np.isclose(a.sum() - 8, len(X))
    # the stick KL against a Monte-Carlo estimate
    from vbfast.emissions import discrete as DE
    rng = np.random.RandomState(0)
    a, b, g0 = np.array([3.0, 2.0]), np.array([4.0, 0.5]), 0.7
    v = rng.beta(a, b, size=(400000, 2))
    from scipy.stats import beta as B
    mc = np.mean(np.sum(B.logpdf(v, a, b) - B.logpdf(v, 1.0, g0), axis=1))
    assert abs(DE.stick_kl(a, b, g0) - mc) < 0.01
    e = np.mean(np.log(np.column_stack([v[:, 0], (1 - v[:, 0]) * v[:, 1]])), axis=0)
    np.testing.assert_allclose(DE.stick_expected_log(a, b), e, atol=0.01)
    with pytest.raises(ValueError, match="needs method='mean_field'"):
        BernoulliMixture(2, weight_concentration_prior_type="dirichlet_process").fit(X)


def test_multinomial_refuses_nan():
    X = np.ones((5, 3))
    X[1, 2] = np.nan
    with pytest.raises(ValueError, match="no missing values"):
        MultinomialMixture(2).fit(X)


def test_em_loglikelihood_matches_numpy():
    X, _, _, _ = _lca_data(N=500, missing=0.2)
    est = CategoricalMixture(3, random_state=0, max_iter=20).fit(X)
    logp = np.log(est.weights_)[None, :].repeat(len(X), 0)
    for j, P in enumerate(est.probabilities_):
        obs = ~np.isnan(X[:, j])
        codes = np.searchsorted(est.categories_[j], X[obs, j])
        logp[obs] += np.log(P[:, codes].T)
    # atol: a row with every item missing has log p = logsumexp(log pi), 0 up to rounding
    np.testing.assert_allclose(est.score_samples(X), logsumexp(logp, axis=1), rtol=1e-12,
                               atol=1e-14)
    # every item missing: the posterior is the class shares
    row = np.full((1, X.shape[1]), np.nan)
    np.testing.assert_allclose(est.predict_proba(row)[0], est.weights_, rtol=1e-12)


def test_pandas_input_and_categories():
    pd = pytest.importorskip("pandas")
    X, _, _, _ = _lca_data(N=400, missing=0.05)
    names = np.array(["never", "sometimes", "often", "always", "n/a"], dtype=object)
    df = pd.DataFrame({f"q{j}": pd.Series([None if np.isnan(v) else names[int(v)]
                                           for v in X[:, j]], dtype=object)
                       for j in range(X.shape[1])})
    df["q0"] = df["q0"].astype("category")
    a = CategoricalMixture(3, random_state=0, max_iter=30).fit(df)
    b = CategoricalMixture(3, random_state=0, max_iter=30).fit(X)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-12)
    assert list(a.categories_[1]) == sorted(names[:3])
    assert list(a.feature_names_in_) == list(df.columns)
    bad = df.iloc[:3].copy()
    bad["q1"] = bad["q1"].astype(object)
    bad.iloc[0, 1] = "unheard of"
    with pytest.raises(ValueError, match="never saw"):
        a.predict(bad)
    a.set_params(handle_unknown="missing")
    assert a.predict_proba(bad).shape == (3, 3)


def test_bernoulli_booleans_and_missing():
    X, _, _ = _binary(N=300)
    B = X.astype(bool)
    a = BernoulliMixture(2, random_state=0, max_iter=20).fit(B)
    b = BernoulliMixture(2, random_state=0, max_iter=20).fit(X)
    np.testing.assert_array_equal(a.probabilities_, b.probabilities_)
    Xm = X.copy()
    Xm[0, :] = np.nan
    est = BernoulliMixture(2, random_state=0, max_iter=20).fit(Xm)
    np.testing.assert_allclose(est.predict_proba(Xm[:1])[0], est.weights_, rtol=1e-12)


@pytest.mark.parametrize("method", ["em", "mean_field", "gibbs"])
def test_multinomial_sparse_equals_dense(method):
    rng = np.random.RandomState(0)
    X = rng.poisson(1.0, size=(300, 40)) * (rng.uniform(size=(300, 40)) < 0.3)
    X[5] = 0
    kw = dict(n_draws=10, burn_in=5) if method == "gibbs" else dict(max_iter=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MultinomialMixture(3, method=method, random_state=0, **kw).fit(X)
        b = MultinomialMixture(3, method=method, random_state=0, **kw).fit(sp.csr_matrix(X))
    np.testing.assert_array_equal(a.probabilities_, b.probabilities_)
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(sp.csr_matrix(X)))
    assert np.isfinite(a.score_samples(X)).all()


def test_multinomial_loglikelihood_includes_coefficient():
    from scipy.stats import multinomial
    rng = np.random.RandomState(1)
    X = rng.poisson(2.0, size=(50, 6))
    est = MultinomialMixture(2, random_state=0, max_iter=10).fit(X)
    ref = [logsumexp([np.log(w) + multinomial.logpmf(x, x.sum(), p)
                      for w, p in zip(est.weights_, est.probabilities_)]) for x in X]
    np.testing.assert_allclose(est.score_samples(X), ref, rtol=1e-10)


def test_integer_sample_weight_equals_repeated_rows():
    X, _, _, _ = _lca_data(N=300)
    w = np.random.RandomState(2).randint(0, 3, size=300)
    start = CategoricalMixture(3, random_state=0, max_iter=1).fit(X)
    kw = dict(weights_init=start.weights_, probabilities_init=start.probabilities_,
              max_iter=15, tol=0.0)
    a = CategoricalMixture(3, **kw).fit(X, sample_weight=w)
    b = CategoricalMixture(3, **kw).fit(np.repeat(X, w, axis=0))
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-10)
    for pa, pb in zip(a.probabilities_, b.probabilities_):
        np.testing.assert_allclose(pa, pb, rtol=1e-10, atol=1e-14)


def test_map_smoothing_keeps_probabilities_inside():
    X, _, _ = _binary(N=200)
    X[:, 0] = 1.0  # a constant item
    ml = BernoulliMixture(2, random_state=0).fit(X)
    assert np.all(ml.probabilities_[:, 0] == 1.0)  # ML on the boundary, no NaN
    assert np.isfinite(ml.score_samples(X)).all()
    Y = X.copy()
    Y[0, 0] = 0.0
    assert np.isfinite(ml.score(X)) and ml.score_samples(Y)[0] == -np.inf
    smooth = BernoulliMixture(2, item_prior=2.0, random_state=0).fit(X)
    assert np.all((smooth.probabilities_ > 0) & (smooth.probabilities_ < 1))
    lb = smooth.lower_bounds_
    assert np.all(np.diff(lb) >= -1e-10 * np.abs(lb[1:]))


@pytest.mark.parametrize("method", ["em", "mean_field", "gibbs"])
def test_degenerate_data(method):
    kw = dict(n_draws=8, burn_in=4) if method == "gibbs" else {}
    X = np.array([[0, 1, 2], [1, 0, 2], [0, 1, 2]] * 3, dtype=float)  # 2 distinct patterns
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = CategoricalMixture(5, method=method, random_state=0, **kw).fit(X)
    assert np.isfinite(est.weights_).all() and np.isclose(est.weights_.sum(), 1.0)
    for p in est.probabilities_:
        assert np.isfinite(p).all()
    assert np.isfinite(est.score_samples(X)).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = CategoricalMixture(3, method=method, random_state=0, handle_unknown="missing",
                                 **kw).fit(X[:1])  # more classes than rows
    assert np.isfinite(one.predict_proba(X)).all()  # unseen levels left out


@pytest.mark.parametrize("X,match", [
    ([[0, 1], [2, -3]], "negative codes"),
    ([[0, 1.5], [2, 1]], "non-integer codes"),
    ([[0, np.inf], [2, 1]], "infinity"),
    ([["a"], [None]], None),
])
def test_categorical_bad_input(X, match):
    est = CategoricalMixture(2, random_state=0, max_iter=5)
    if match is None:
        est.fit(np.array(X, dtype=object))  # labels with a missing value are fine
        return
    with pytest.raises(ValueError, match=match):
        est.fit(X)


def test_bad_input_other_mixtures():
    with pytest.raises(ValueError, match="binary"):
        BernoulliMixture(2).fit([[0, 2], [1, 0]])
    with pytest.raises(ValueError, match="infinity"):
        BernoulliMixture(2).fit([[0, np.inf], [1, 0]])
    with pytest.raises(ValueError, match="Negative"):
        MultinomialMixture(2).fit([[0, -2], [1, 0]])
    with pytest.raises(ValueError, match="infinity"):
        MultinomialMixture(2).fit([[0, np.inf], [1, 0]])
    with pytest.raises(ValueError, match="item_prior"):
        BernoulliMixture(2, item_prior=0.5).fit([[0, 1], [1, 0]])
    est = CategoricalMixture(2, random_state=0, max_iter=5).fit([[0, 1], [1, 0], [1, 1]])
    with pytest.raises(ValueError, match="never saw"):
        est.predict([[0, 7]])
    with pytest.raises(ValueError, match="features"):
        est.predict([[0, 1, 1]])


def _categorical_fuzz_cases():
    rng = np.random.RandomState(5)
    for _ in range(30):
        N, D = rng.randint(1, 30), rng.randint(1, 5)
        X = rng.randint(0, 4, size=(N, D)).astype(float)
        X[rng.uniform(size=X.shape) < rng.choice([0.0, 0.3, 1.0])] = np.nan
        yield X, rng.randint(1, 4), rng.choice(["em", "mean_field", "gibbs"])


def test_categorical_fuzz_fit_or_refuse():
    for X, K, method in _categorical_fuzz_cases():
        est = CategoricalMixture(K, method=method, random_state=0, max_iter=20, n_draws=5,
                                 burn_in=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X)
        assert np.isfinite(est.weights_).all()
        assert all(np.isfinite(p).all() for p in est.probabilities_)
        proba = est.predict_proba(X)
        assert np.isfinite(proba).all()
        assert not np.isnan(est.score_samples(X)).any()


def test_same_loglikelihood_as_stepmix_from_the_same_start():
    stepmix = pytest.importorskip("stepmix")
    X, _, _ = _binary(N=1000, seed=3)
    sm = stepmix.StepMix(n_components=3, measurement="bernoulli", max_iter=1, random_state=0,
                         progress_bar=0, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm.fit(X)
    start = sm.get_parameters()
    weights0 = np.array(start["weights"])
    pis0 = np.array(start["measurement"]["pis"])
    n_iter = 30
    for _ in range(n_iter):  # StepMix's own EM iterations from its parameters
        _, log_resp = sm._e_step(X)
        sm._m_step(X, np.exp(log_resp))
    ours = BernoulliMixture(3, weights_init=weights0, probabilities_init=pis0,
                            max_iter=n_iter, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X)
    np.testing.assert_allclose(ours.score(X), sm.score(X), rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours.probabilities_, np.array(sm.get_parameters()
                                                             ["measurement"]["pis"]),
                               atol=1e-8)


def test_lca_outputs():
    X, _, _, _ = _lca_data(N=1500, missing=0.02)
    est = CategoricalMixture(3, random_state=0, n_init=2).fit(X)
    perm = est.order_classes()
    assert np.all(np.diff(est.weights_) <= 0) and sorted(perm) == [0, 1, 2]
    se = est.standard_errors(X)
    binomial = np.sqrt(est.weights_ * (1 - est.weights_) / len(X))
    assert np.all(se["weights"] >= 0.9 * binomial) and np.all(se["weights"] < 2 * binomial)
    assert all(np.isfinite(s).all() and s.shape == p.shape
               for s, p in zip(se["probabilities"], est.probabilities_))
    gof = est.goodness_of_fit(X)
    complete = X[~np.isnan(X).any(axis=1)]
    pats, counts = np.unique(complete, axis=0, return_counts=True)
    expected = len(complete) * np.exp(est.score_samples(pats))
    np.testing.assert_allclose(gof["g_squared"], 2 * np.sum(counts * np.log(counts / expected)),
                               rtol=1e-10)
    np.testing.assert_allclose(gof["chi_squared"], np.sum((counts - expected) ** 2 / expected),
                               rtol=1e-10)
    assert gof["n_parameters"] == 2 + 3 * (1 + 2 + 3 + 2 + 1 + 4)
    assert np.isclose(gof["aic"], est.aic(X)) and np.isclose(gof["bic"], est.bic(X))
    assert "G^2" in est.summary(X, print_out=False)
