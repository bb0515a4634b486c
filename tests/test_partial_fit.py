"""partial_fit of the Gaussian mixtures: stepwise EM (method='em') and stochastic variational
inference (method='mean_field', BayesianGaussianMixture), and the registry's partial_fit
entries (samplers have no partial_fit attribute at all)."""
import pickle
import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from vbfast import BayesianGaussianMixture, GaussianMixture, LatentDirichletAllocation
from vbfast._registry import ESTIMATORS, fingerprint, fitted_attributes
from vbfast.mixture import _stochastic as ST

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
K, D = 3, 3
CENTRES = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 0.0], [-5.0, 4.0, 3.0]])
SCALES = np.array([1.0, 0.7, 1.4])


def _mixture(n, seed, centres=CENTRES, scales=SCALES):
    rng = np.random.RandomState(seed)
    z = rng.randint(len(centres), size=n)
    return centres[z] + scales[z, None] * rng.normal(size=(n, centres.shape[1]))


def _init(ctype):
    """Given initial parameters (theta_0 known to the reference)."""
    weights = np.array([0.3, 0.3, 0.4])
    means = CENTRES + 0.5
    prec = {"full": np.stack([np.eye(D) * 0.8] * K), "tied": np.eye(D) * 0.8,
            "diag": np.full((K, D), 0.8), "spherical": np.full(K, 0.8)}[ctype]
    return {"weights_init": weights, "means_init": means, "precisions_init": prec}


def _covariances(prec, ctype):
    if ctype == "full":
        return np.linalg.inv(prec)
    if ctype == "tied":
        return np.linalg.inv(prec)
    return 1.0 / prec


def _resp(X, weights, means, covs, ctype):
    """p(z = k | x) with scipy's densities (covariances in the estimator's layout)."""
    cols = []
    for k in range(len(weights)):
        cov = {"full": lambda: covs[k], "tied": lambda: covs,
               "diag": lambda: np.diag(covs[k]),
               "spherical": lambda: covs[k] * np.eye(X.shape[1])}[ctype]()
        cols.append(np.log(weights[k]) + multivariate_normal(means[k], cov).logpdf(X))
    logp = np.column_stack(cols)
    logp -= logp.max(axis=1, keepdims=True)
    r = np.exp(logp)
    return r / r.sum(axis=1, keepdims=True)


def _raw_moments(X, r, w):
    """N_k, sum r x, sum r x x^T (weighted), the statistics stepwise EM blends."""
    rw = r * w[:, None]
    return rw.sum(0), rw.T @ X, np.einsum("nk,ni,nj->kij", rw, X, X)


def _m_step(stats, ctype, reg_covar):
    """EM's parameters from raw moments."""
    nk, s1, s2 = stats
    means = s1 / nk[:, None]
    cov_full = s2 / nk[:, None, None] - means[:, :, None] * means[:, None, :]
    if ctype == "full":
        cov = cov_full + reg_covar * np.eye(D)
    elif ctype == "tied":
        cov = (cov_full * nk[:, None, None]).sum(0) / nk.sum() + reg_covar * np.eye(D)
    elif ctype == "diag":
        cov = np.diagonal(cov_full, axis1=1, axis2=2) + reg_covar
    else:
        cov = np.diagonal(cov_full, axis1=1, axis2=2).mean(1) + reg_covar
    return nk / nk.sum(), means, cov


# ------------------------------------------------------------ stepwise EM against NumPy
@pytest.mark.parametrize("ctype", COVARIANCE_TYPES)
def test_stepwise_em_steps_against_numpy_reference(ctype):
    XA, XB, XC = _mixture(400, 1), _mixture(250, 2), _mixture(300, 3)
    wA, wB, wC = (np.random.RandomState(s).uniform(0.5, 2.0, size=len(X))
                  for s, X in ((4, XA), (5, XB), (6, XC)))
    total, offset, decay, reg = 5000.0, 4.0, 0.6, 1e-3
    init = _init(ctype)
    gm = GaussianMixture(K, covariance_type=ctype, total_samples=total, reg_covar=reg,
                         learning_offset=offset, learning_decay=decay, **init)
    weights, means = init["weights_init"], init["means_init"]
    covs = _covariances(init["precisions_init"], ctype)
    running = None
    for t, (X, w) in enumerate([(XA, wA), (XB, wB), (XC, wC)], start=1):
        gm.partial_fit(X, sample_weight=w)
        r = _resp(X, weights, means, covs, ctype)
        batch = [s * (total / w.sum()) for s in _raw_moments(X, r, w)]
        if running is None:  # the first step of a stream: rho = 1
            running = batch
        else:
            rho = (offset + t) ** -decay
            running = [(1 - rho) * a + rho * b for a, b in zip(running, batch)]
        weights, means, covs = _m_step(running, ctype, reg)
        np.testing.assert_allclose(gm.weights_, weights, rtol=1e-9)
        np.testing.assert_allclose(gm.means_, means, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(gm.covariances_, covs, rtol=1e-8, atol=1e-10)
        assert gm.n_batch_iter_ == t + 1
    assert gm.lower_bounds_.shape == (3,) and gm.n_iter_ == 3 and not gm.converged_


def _natural(est, ctype):
    """Natural parameters of q(theta) (those stochastic VI blends): the weights' Dirichlet /
    Beta parameters, beta, beta m, nu, and W^-1 + beta m m^T (nu W = precisions_)."""
    wc = est.weight_concentration_
    wc = np.concatenate(wc) if isinstance(wc, tuple) else wc
    beta, m, nu = est.mean_precision_, est.means_, est.degrees_of_freedom_
    if ctype == "full":
        w_inv = nu[:, None, None] * est.covariances_ + beta[:, None, None] * \
            m[:, :, None] * m[:, None, :]
    else:  # diag
        w_inv = nu[:, None] * est.covariances_ + beta[:, None] * m ** 2
    return [wc, beta, beta[:, None] * m, nu, w_inv]


@pytest.mark.parametrize("prior", ["dirichlet_process", "dirichlet_distribution"])
@pytest.mark.parametrize("ctype", ["full", "diag"])
def test_stochastic_vi_blends_natural_parameters(ctype, prior):
    """lambda_t = (1 - rho) lambda_{t-1} + rho lambda_hat(B), lambda_hat(B) the update from the
    batch's statistics alone (what a stream's first step gives)."""
    XA, XB = _mixture(500, 1), _mixture(300, 2)
    est = BayesianGaussianMixture(n_components=K, covariance_type=ctype, random_state=0,
                                  weight_concentration_prior_type=prior, total_samples=4000,
                                  learning_offset=3.0, learning_decay=0.8)
    est.partial_fit(XA)
    before = _natural(est, ctype)
    alone = pickle.loads(pickle.dumps(est))
    del alone._stream  # the step on B then stands alone: rho = 1
    alone.partial_fit(XB)
    est.partial_fit(XB)
    rho = (3.0 + 2) ** -0.8
    for got, a, b in zip(_natural(est, ctype), before, _natural(alone, ctype)):
        np.testing.assert_allclose(got, (1 - rho) * a + rho * b, rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------ the first call
@pytest.mark.parametrize("ctype", COVARIANCE_TYPES)
@pytest.mark.parametrize("method", ["em", "mean_field"])
def test_first_call_is_one_iteration_from_the_initialisation(ctype, method):
    """The first call initialises from its batch as fit does (init_params, random_state), and
    its step (rho = 1, the batch scaled to total_samples = its size) is fit's first
    iteration."""
    X = _mixture(600, 4)
    kw = dict(covariance_type=ctype, method=method, random_state=3,
              total_samples=X.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = GaussianMixture(K, max_iter=1, **kw).fit(X)
    got = GaussianMixture(K, **kw).partial_fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-9,
                                   atol=1e-12, err_msg=name)
    if method == "em":
        assert got.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-12)


def test_first_call_errors():
    X = _mixture(10, 0)
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        GaussianMixture(20).partial_fit(X)
    with pytest.raises(ValueError, match="means_init must have shape"):
        GaussianMixture(K, means_init=np.zeros((2, D))).partial_fit(X)
    with pytest.raises(ValueError, match="not supported with method='mean_field'"):
        GaussianMixture(K, method="mean_field", means_init=CENTRES).partial_fit(X)
    for bad in ({"learning_decay": 1.5}, {"learning_offset": 0.5}, {"total_samples": 0}):
        est = GaussianMixture(K, **bad)
        with pytest.raises(ValueError, match=next(iter(bad))):
            est.partial_fit(X)
        assert not hasattr(est, "weights_")
    # later batches may have fewer rows than components
    est = GaussianMixture(K, random_state=0).partial_fit(X)
    est.partial_fit(X[:1])
    assert est.n_iter_ == 2


def test_n_features_fixed_by_the_first_call():
    est = GaussianMixture(K, random_state=0).partial_fit(_mixture(100, 0))
    before = fingerprint(dict(vars(est)))
    with pytest.raises(ValueError, match="X has 2 features, but GaussianMixture is expecting 3"):
        est.partial_fit(_mixture(100, 1)[:, :2])
    assert fingerprint(dict(vars(est))) == before
    with pytest.raises(ValueError, match="NaN"):
        est.partial_fit(np.full((5, D), np.nan))
    assert fingerprint(dict(vars(est))) == before


def test_empty_batch_is_ignored_with_a_warning():
    est = GaussianMixture(K, random_state=0)
    with pytest.warns(UserWarning, match="empty batch"):
        est.partial_fit(np.empty((0, D)))
    assert not [k for k in vars(est) if k.endswith("_")]
    est.partial_fit(_mixture(100, 0))
    before = fingerprint(dict(vars(est)))
    with pytest.warns(UserWarning, match="empty batch"):
        assert est.partial_fit(np.empty((0, D))) is est
    assert fingerprint(dict(vars(est))) == before


@pytest.mark.parametrize("ctype", COVARIANCE_TYPES)
@pytest.mark.parametrize("method", ["em", "mean_field"])
def test_integer_sample_weight_equals_repeated_rows(ctype, method):
    batches = [_mixture(200, s) for s in range(3)]
    weights = [np.random.RandomState(10 + s).randint(0, 4, size=200) for s in range(3)]
    init = _init(ctype) if method == "em" else {"init_params": "random_from_data"}
    kw = dict(covariance_type=ctype, method=method, random_state=0, total_samples=1000,
              **init)
    a, b = GaussianMixture(K, **kw), GaussianMixture(K, **kw)
    for X, w in zip(batches, weights):
        a.partial_fit(X, sample_weight=w)
        b.partial_fit(np.repeat(X, w, axis=0))
        if method == "mean_field":  # the random rows of the first call differ: same start
            break
    if method == "mean_field":
        a = GaussianMixture(K, **{**kw, "init_params": "kmeans"})
        b = pickle.loads(pickle.dumps(a.partial_fit(batches[0])))
        for X, w in zip(batches[1:], weights[1:]):
            a.partial_fit(X, sample_weight=w)
            b.partial_fit(np.repeat(X, w, axis=0))
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-12,
                                   err_msg=name)


# ------------------------------------------------------------ determinism and pickling
def _stream(est, n_steps=3):
    for s in range(n_steps):
        est.partial_fit(_mixture(300 + 50 * s, 20 + s))
    return est


@pytest.mark.parametrize("ctype", COVARIANCE_TYPES)
@pytest.mark.parametrize("cls, method", [(GaussianMixture, "em"),
                                         (GaussianMixture, "mean_field"),
                                         (BayesianGaussianMixture, "mean_field")])
def test_bitwise_identical_for_any_thread_count(cls, method, ctype):
    kw = dict(n_components=K, covariance_type=ctype, random_state=0, method=method)
    one = _stream(cls(n_threads=1, **kw))
    two = _stream(cls(n_threads=2, **kw))
    assert fingerprint(fitted_attributes(one)) == fingerprint(fitted_attributes(two))


@pytest.mark.parametrize("ctype", COVARIANCE_TYPES)
@pytest.mark.parametrize("method", ["em", "mean_field"])
def test_pickle_mid_stream_continues_identically(ctype, method):
    est = GaussianMixture(K, covariance_type=ctype, method=method, random_state=0)
    _stream(est, 2)
    copy = pickle.loads(pickle.dumps(est))
    for e in (est, copy):
        e.partial_fit(_mixture(300, 40))
        e.partial_fit(_mixture(200, 41))
    assert fingerprint(fitted_attributes(est)) == fingerprint(fitted_attributes(copy))
    np.testing.assert_array_equal(est.predict_proba(_mixture(50, 9)),
                                  copy.predict_proba(_mixture(50, 9)))


# ------------------------------------------------------------ failures leave the state
def test_a_failed_step_leaves_the_estimator_as_it_was(monkeypatch):
    est = _stream(GaussianMixture(K, random_state=0), 2)
    before = fingerprint(dict(vars(est)))

    def broken(*args, **kwargs):
        raise RuntimeError("injected")

    monkeypatch.setattr(ST, "merge", broken)
    with pytest.raises(RuntimeError, match="injected"):
        est.partial_fit(_mixture(100, 5))
    assert fingerprint(dict(vars(est))) == before
    monkeypatch.undo()
    est.partial_fit(_mixture(100, 5))
    assert est.n_iter_ == 3


@pytest.mark.filterwarnings("ignore::vbfast.ConvergenceWarning")
def test_continuing_a_fit_and_what_cannot_be_continued():
    X = _mixture(500, 0)
    est = GaussianMixture(K, random_state=0).fit(X)
    means = est.means_.copy()
    est.partial_fit(_mixture(200, 1))  # a stream starting from the fitted parameters
    assert est.n_iter_ == 1 and est.n_batch_iter_ == 2
    np.testing.assert_allclose(est.means_[np.argsort(est.means_[:, 0])],
                               means[np.argsort(means[:, 0])], atol=0.5)
    for change, words in (({"method": "mean_field"}, "method='em'"),
                          ({"covariance_type": "diag"}, "covariance_type='full'"),
                          ({"n_components": 4}, "3 components")):
        before = fingerprint(fitted_attributes(est))
        est.set_params(**change)
        with pytest.raises(ValueError, match=words):
            est.partial_fit(X)
        assert fingerprint(fitted_attributes(est)) == before
        est.set_params(**{k: GaussianMixture(K).get_params()[k] for k in change})
    bgm = BayesianGaussianMixture(n_components=K, random_state=0).partial_fit(X)
    bgm.set_params(weight_concentration_prior_type="dirichlet_distribution")
    with pytest.raises(ValueError, match="weight_concentration_prior_type"):
        bgm.partial_fit(X)
    # a fit ends the stream: the next partial_fit starts one from the fit
    est.fit(X)
    assert not hasattr(est, "n_batch_iter_") and not hasattr(est, "_stream")
    est.partial_fit(X)
    assert est.n_iter_ == 1
    # a model fitted by Gibbs cannot be continued
    g = GaussianMixture(K, method="gibbs", n_draws=5, burn_in=5, n_chains=1,
                        random_state=0).fit(X)
    g.set_params(method="em")
    with pytest.raises(ValueError, match="method='gibbs'"):
        g.partial_fit(X)


# ------------------------------------------------------------ samplers: no attribute
def test_samplers_have_no_partial_fit():
    assert not hasattr(GaussianMixture(method="gibbs"), "partial_fit")
    assert not hasattr(BayesianGaussianMixture(method="gibbs"), "partial_fit")
    assert not hasattr(LatentDirichletAllocation(method="gibbs"), "partial_fit")
    est = GaussianMixture(method="em")
    assert hasattr(est, "partial_fit")
    est.set_params(method="gibbs")  # the attribute follows the current method
    assert not hasattr(est, "partial_fit")
    with pytest.raises(AttributeError, match="partial_fit"):
        GaussianMixture.partial_fit(est, _mixture(10, 0))
    assert GaussianMixture.partial_fit.__doc__.startswith("One stochastic step")


@pytest.mark.parametrize("entry", ESTIMATORS, ids=[e.name for e in ESTIMATORS])
def test_registry_says_which_variants_have_partial_fit(entry):
    assert hasattr(entry.make(), "partial_fit") == entry.partial_fit
    if entry.params.get("method") == "gibbs":
        assert not entry.partial_fit


# ------------------------------------------------------------ accuracy
def test_streaming_reaches_batch_em_held_out_likelihood():
    """50,000 rows (D = 8, K = 8) streamed in batches of 2,000 for two passes: the held-out
    log-likelihood per sample is within 1% of batch EM's (the benchmark
    benchmarks/bench_partial_fit.py checks 1M rows against 0.5%)."""
    rng = np.random.RandomState(0)
    centres = rng.normal(scale=3.0, size=(8, 8))
    scales = rng.uniform(0.5, 1.5, size=8)
    X = _mixture(50_000, 1, centres, scales)
    X_test = _mixture(10_000, 2, centres, scales)
    stream = GaussianMixture(8, covariance_type="diag", random_state=0,
                             total_samples=X.shape[0])
    for _ in range(2):
        for start in range(0, X.shape[0], 2000):
            stream.partial_fit(X[start:start + 2000])
    batch = GaussianMixture(8, covariance_type="diag", random_state=0).fit(X)
    ll_stream, ll_batch = stream.score(X_test), batch.score(X_test)
    assert abs(ll_stream - ll_batch) <= 0.01 * abs(ll_batch)


# ------------------------------------------------------------ discrete mixtures
DISCRETE = [e for e in ESTIMATORS
            if e.cls.__name__ in ("BernoulliMixture", "CategoricalMixture", "MultinomialMixture")
            and e.partial_fit]


def test_bernoulli_stepwise_em_against_numpy_reference():
    rng = np.random.RandomState(0)
    p_true = rng.uniform(0.1, 0.9, size=(3, 6))
    batches = []
    for s in range(3):
        z = rng.randint(3, size=300)
        batches.append((rng.uniform(size=(300, 6)) < p_true[z]).astype(float))
    weights, probs = np.array([0.2, 0.3, 0.5]), rng.uniform(0.2, 0.8, size=(3, 6))
    total, offset, decay = 2000.0, 2.0, 0.75
    est = DISCRETE[0].cls(3, weights_init=weights, probabilities_init=probs,
                          total_samples=total, learning_offset=offset, learning_decay=decay)
    running = None
    for t, X in enumerate(batches, start=1):
        est.partial_fit(X)
        logp = np.log(weights) + X @ np.log(probs).T + (1 - X) @ np.log(1 - probs).T
        r = np.exp(logp - logp.max(1, keepdims=True))
        r /= r.sum(1, keepdims=True)
        batch = [r.sum(0) * total / len(X), r.T @ X * total / len(X)]
        if running is None:
            running = batch
        else:
            rho = (offset + t) ** -decay
            running = [(1 - rho) * a + rho * b for a, b in zip(running, batch)]
        weights, probs = running[0] / running[0].sum(), running[1] / running[0][:, None]
        np.testing.assert_allclose(est.weights_, weights, rtol=1e-10)
        np.testing.assert_allclose(est.probabilities_, probs, rtol=1e-10)


@pytest.mark.parametrize("prior", ["dirichlet_distribution", "dirichlet_process"])
def test_discrete_stochastic_vi_blends_natural_parameters(prior):
    entry = next(e for e in DISCRETE if e.name == "CategoricalMixture-mean_field")
    X = entry.sample_data(n_samples=600, seed=3)
    est = entry.make(random_state=0, total_samples=5000, learning_offset=2.0,
                     weight_concentration_prior_type=prior)
    est.partial_fit(X[:300])

    def natural(e):
        wc = e.weight_concentration_
        return [np.concatenate(wc) if isinstance(wc, tuple) else wc,
                np.concatenate(e.probability_concentration_, axis=1)]

    before = natural(est)
    alone = pickle.loads(pickle.dumps(est))
    del alone._stream
    alone.partial_fit(X[300:])
    est.partial_fit(X[300:])
    rho = (2.0 + 2) ** -0.7
    for got, a, b in zip(natural(est), before, natural(alone)):
        np.testing.assert_allclose(got, (1 - rho) * a + rho * b, rtol=1e-10)


@pytest.mark.parametrize("entry", DISCRETE, ids=[e.name for e in DISCRETE])
def test_discrete_first_call_is_one_iteration_and_streams_are_deterministic(entry):
    X = entry.sample_data(n_samples=400, seed=2)
    kw = dict(random_state=1, total_samples=400)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = entry.make(max_iter=1, **kw).fit(X)
    got = entry.make(**kw).partial_fit(X)
    np.testing.assert_allclose(got.weights_, ref.weights_, rtol=1e-10)
    tables = [(got.probabilities_, ref.probabilities_)]
    if isinstance(got.probabilities_, tuple):  # categorical: one table per item
        tables = list(zip(got.probabilities_, ref.probabilities_))
    for a, b in tables:
        np.testing.assert_allclose(a, b, rtol=1e-10)
    # threads, pickling mid-stream, n_features
    one, two = entry.make(n_threads=1, **kw), entry.make(n_threads=2, **kw)
    for est in (one, two):
        est.partial_fit(X[:200])
    copy = pickle.loads(pickle.dumps(one))
    for est in (one, two, copy):
        est.partial_fit(X[200:])
    assert fingerprint(fitted_attributes(one)) == fingerprint(fitted_attributes(two))
    assert fingerprint(fitted_attributes(one)) == fingerprint(fitted_attributes(copy))
    before = fingerprint(dict(vars(one)))
    with pytest.raises(ValueError, match="features"):
        one.partial_fit(X[:, :-1])
    with pytest.warns(UserWarning, match="empty batch"):
        one.partial_fit(X[:0])
    assert fingerprint(dict(vars(one))) == before
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        entry.make(n_components=5).partial_fit(X[:3])
    one.set_params(method="gibbs")
    assert not hasattr(one, "partial_fit")


# ------------------------------------------------------------ every registry variant with one
PARTIAL = [e for e in ESTIMATORS if e.partial_fit]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("entry", PARTIAL, ids=[e.name for e in PARTIAL])
def test_registry_streams_are_deterministic_and_picklable(entry):
    X = entry.sample_data(n_samples=300, seed=11)
    one = entry.make(random_state=0, n_threads=1).partial_fit(X[:150])
    two = entry.make(random_state=0, n_threads=2).partial_fit(X[:150])
    copy = pickle.loads(pickle.dumps(one))
    for est in (one, two, copy):
        est.partial_fit(X[150:])
    assert fingerprint(fitted_attributes(one)) == fingerprint(fitted_attributes(two))
    assert fingerprint(fitted_attributes(one)) == fingerprint(fitted_attributes(copy))
    assert one.n_features_in_ == X.shape[1]
    with pytest.raises(ValueError, match="features"):
        one.partial_fit(X[:, :-1])
