"""Regression tests for the Gaussian-mixture defects of issue 18 (part 2): each test failed
before its fix."""
import tracemalloc
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import logsumexp

from vbfast import BayesianGaussianMixture, GaussianMixture
from vbfast.emissions import gaussian as G
from vbfast.mixture import _gibbs as GS

COV_TYPES = ["full", "tied", "diag", "spherical"]


def _quiet():
    warnings.simplefilter("ignore")


def exact_log_density(X, weights, means, prec_chol, covariance_type):
    """log sum_k w_k N(x | m_k, (U_k U_k^T)^{-1}), written out per component in float64."""
    X = np.asarray(X, dtype=np.float64)
    K, D = means.shape
    out = np.empty((X.shape[0], K))
    for k in range(K):
        d = X - means[k]
        if covariance_type == "full":
            y = d @ prec_chol[k]
            logdet = np.log(np.diag(prec_chol[k])).sum()
        elif covariance_type == "tied":
            y = d @ prec_chol
            logdet = np.log(np.diag(prec_chol)).sum()
        elif covariance_type == "diag":
            y = d * prec_chol[k]
            logdet = np.log(prec_chol[k]).sum()
        else:
            y = d * prec_chol[k]
            logdet = D * np.log(prec_chol[k])
        with np.errstate(divide="ignore"):
            out[:, k] = (np.log(weights[k]) + logdet - 0.5 * D * np.log(2 * np.pi)
                         - 0.5 * (y ** 2).sum(axis=1))
    return logsumexp(out, axis=1)


# --------------------------------------------------------------------------- 3
def test_gibbs_many_components_default_weight_prior():
    """Gamma(1/K) draws underflowed to 0 and log(1 - v) became -inf: 'log joint became inf'."""
    X = np.random.RandomState(0).normal(size=(500, 2))
    for prior_type in ("dirichlet_process", "dirichlet_distribution"):
        with warnings.catch_warnings():
            _quiet()
            gm = BayesianGaussianMixture(n_components=100, method="gibbs",
                                         covariance_type="diag", n_draws=60, burn_in=60,
                                         weight_concentration_prior_type=prior_type,
                                         random_state=0).fit(X)
        assert np.isfinite(gm.log_joint_trace_).all()
        assert_allclose(gm.weights_.sum(), 1.0)


def test_log_weight_draws_have_the_right_distribution():
    """The log-space draws of tiny-shape Gammas: finite, and their Dirichlet means right."""
    rng = np.random.default_rng(0)
    alpha = np.array([1e-3, 1e-3, 0.5, 2.0, 7.0])
    draws = np.array([GS.draw_log_weights(("dirichlet", alpha), rng)[0]
                      for _ in range(20000)])
    assert np.isfinite(draws).all()
    assert_allclose(np.exp(draws).mean(axis=0), alpha / alpha.sum(), atol=0.01)
    a, b = np.array([1.0, 3.0]), np.array([1e-3, 2.0])
    sticks = [GS.draw_log_weights(("sticks", a, b), rng) for _ in range(20000)]
    log_v = np.array([s[1] for s in sticks])
    log_1mv = np.array([s[2] for s in sticks])
    assert np.isfinite(log_1mv).all() and np.isfinite(log_v).all()
    assert_allclose(np.exp(log_v).mean(axis=0), a / (a + b), atol=0.01)
    assert_allclose(np.exp(log_v) + np.exp(log_1mv), 1.0, rtol=1e-12)


# --------------------------------------------------------------------------- 4
@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
@pytest.mark.parametrize("far", [1e5, 1e10])
def test_em_component_far_from_the_data_mean(covariance_type, far):
    """A singleton component far from the global mean: its covariance is reg_covar, and the
    other component's is the exact one of the 59 points."""
    rng = np.random.RandomState(0)
    X = np.vstack([rng.normal(size=(59, 3)), np.full((1, 3), far)])
    gm = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    far_k = int(np.argmax(gm.means_[:, 0]))
    near_k = 1 - far_k
    # The estimates' own convention (scikit-learn's): N_k gets 10 eps, which moves the
    # singleton's mean by delta from the point (towards the shift, the global mean), so its
    # exact variance is reg_covar + delta^2 (before: 1.9e5 at 1e10, or no fit at all), delta
    # itself rounded to a multiple of the spacing of doubles near `far` (hence rtol 0.2)
    eps10 = 10 * np.finfo(np.float64).eps
    delta = (far - X.mean(axis=0)[0]) * eps10 / (1 + eps10)
    assert_allclose(gm.means_[far_k], far - delta, rtol=1e-15)
    excess = lambda c: np.asarray(c) - 1e-6 * (np.eye(3) if c.ndim == 2 else 1)  # noqa: E731
    # x - shift (the global mean, ~far / 60) rounds at ~far * 1e-18: that much, no more
    assert_allclose(gm.means_[near_k], X[:59].mean(axis=0), rtol=0, atol=far * 1e-16 + 1e-12)
    cov = np.asarray(gm.covariances_)
    d = X[:59] - X[:59].mean(axis=0)
    tol = dict(rtol=1e-9, atol=far * 1e-16)  # the same rounding of x - shift
    if covariance_type == "full":
        assert_allclose(excess(cov[far_k]), np.full((3, 3), delta ** 2), rtol=0.2)
        assert_allclose(cov[near_k], d.T @ d / 59 + 1e-6 * np.eye(3), **tol)
    elif covariance_type == "diag":
        assert_allclose(excess(cov[far_k]), np.full(3, delta ** 2), rtol=0.2)
        assert_allclose(cov[near_k], (d ** 2).mean(axis=0) + 1e-6, **tol)
    else:
        assert_allclose(cov[far_k] - 1e-6, delta ** 2, rtol=0.2)
        assert_allclose(cov[near_k], (d ** 2).mean() + 1e-6, **tol)
    exact = exact_log_density(X, gm.weights_, gm.means_, gm.precisions_cholesky_,
                              covariance_type)
    assert_allclose(gm.score_samples(X), exact, rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_singleton_without_reg_covar_stays_positive(covariance_type):
    """Centred statistics give a singleton an exact variance of 0, and the GEMM form's
    S2 / N_k - m^2 cancels to 0 or below; with reg_covar=0 it is scikit-learn's
    10 eps m^2 / N_k instead, so the fit does not fail. The whole start is given (weights,
    means and precisions), so no random k-means labelling decides which component starts
    on the singleton."""
    X = np.vstack([np.random.RandomState(0).uniform(size=(29, 3)), [[3.0, 3.0, 3.0]]])
    shape = (2, 3) if covariance_type == "diag" else (2,)
    for max_iter in (1, 2, 3):
        with warnings.catch_warnings():
            _quiet()
            gm = GaussianMixture(2, covariance_type=covariance_type, reg_covar=0.0,
                                 weights_init=[0.5, 0.5],
                                 means_init=[[0.5, 0.5, 0.5], [3.0, 3.0, 3.0]],
                                 precisions_init=np.ones(shape), max_iter=max_iter,
                                 random_state=0).fit(X)
        assert np.all(np.asarray(gm.covariances_) > 0)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_cancelled_variance_takes_the_pseudo_point(covariance_type):
    """S2 / N_k - m^2 about the shift (the GEMM form) that rounds to 0 or below gives the
    variance a component without spread has exactly, 10 eps m^2 / N_k, never <= 0."""
    x = np.array([[2.5, -1.0, 0.75]])
    for s2 in (x ** 2 * (1 - 1e-14), x ** 2 * (1 - 1e-12)):  # remainders below zero
        stats = {"nk": np.array([1.0]), "s1": x.copy(),
                 "s2": s2 if covariance_type == "diag" else s2.sum(axis=1)}
        _, means, cov = G.estimate_parameters(stats, covariance_type, 0.0, np.zeros((1, 3)))
        nk = 1.0 + 10 * np.finfo(np.float64).eps
        pseudo = 10 * np.finfo(np.float64).eps * means ** 2 / nk
        expected = pseudo if covariance_type == "diag" else pseudo.sum(axis=1) / 3
        assert np.all(cov > 0)
        assert_allclose(cov, expected, rtol=1e-6)


# --------------------------------------------------------------------------- 5
@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.parametrize("beta0", [1e-20, 1e-300])
def test_gibbs_score_samples_vague_mean_prior(covariance_type, beta0):
    X = np.random.default_rng(0).normal(size=(200, 2))
    with warnings.catch_warnings():
        _quiet()
        gs = BayesianGaussianMixture(n_components=5, covariance_type=covariance_type,
                                     method="gibbs", mean_precision_prior=beta0, n_draws=30,
                                     burn_in=30, random_state=0).fit(X)
    ps = gs.posterior_samples_
    S = ps["weights"].shape[0] * ps["weights"].shape[1]
    per_draw = np.array([
        exact_log_density(X, w, m, u, covariance_type) for w, m, u in zip(
            ps["weights"].reshape(S, -1), ps["means"].reshape((S,) + ps["means"].shape[2:]),
            ps["precisions_cholesky"].reshape((S,) + ps["precisions_cholesky"].shape[2:]))])
    exact = logsumexp(per_draw, axis=0) - np.log(S)
    assert_allclose(gs.score_samples(X), exact, rtol=1e-9, atol=1e-8)


# --------------------------------------------------------------------------- 7
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_mean_field_score_samples_huge_finite_points(covariance_type):
    X = np.random.default_rng(0).normal(size=(100, 2))
    bgm = BayesianGaussianMixture(n_components=2, covariance_type=covariance_type,
                                  random_state=0).fit(X)
    big = np.array([[1e10, 0.0], [1e154, 0.0], [1e155, 0.0], [-1e200, 3e250], [1e300, 1e300]])
    out = bgm.score_samples(big)
    assert np.isfinite(out).all()
    # the Student-t tail: log density ~ -(dof + D) log |x| + const, so the decrease from
    # |x| = 1e154 to 1e155 is (dof + D) log 10 for the dominant component
    nu = np.broadcast_to(bgm.degrees_of_freedom_, (2,))
    dof = nu + 1 - 2
    drop = out[1] - out[2]
    assert np.min(dof + 2) * np.log(10) - 1e-6 <= drop <= np.max(dof + 2) * np.log(10) + 1e-6
    # the same formula with the quadratic form scaled by hand, in the range where it does
    # not overflow
    moderate = np.array([[0.5, -1.0], [1e3, 0.0], [1e10, 0.0], [1e100, -1e99]])
    ref = _student_t_reference(bgm, moderate)
    assert_allclose(bgm.score_samples(moderate), ref, rtol=1e-9)


def _student_t_reference(bgm, X):
    """The mixture of Student-t densities by scipy, with (D, D) matrices written out."""
    from scipy import stats

    K, D = bgm.means_.shape
    nu = np.broadcast_to(bgm.degrees_of_freedom_, (K,))
    prec = np.asarray(bgm.precisions_)
    if bgm.covariance_type == "tied":
        prec = np.broadcast_to(prec, (K, D, D))
    elif bgm.covariance_type == "diag":
        prec = np.stack([np.diag(p) for p in prec])
    elif bgm.covariance_type == "spherical":
        prec = np.stack([p * np.eye(D) for p in prec])
    parts = []
    for k in range(K):
        dof = nu[k] + 1 - D
        beta = bgm.mean_precision_[k]
        L = dof * beta / ((1 + beta) * nu[k]) * prec[k]
        t = stats.multivariate_t(loc=bgm.means_[k], shape=np.linalg.inv(L), df=dof)
        parts.append(np.log(bgm.weights_[k]) + t.logpdf(X))
    return logsumexp(np.stack(parts, axis=1), axis=1)


# --------------------------------------------------------------------------- 8
def test_predictions_use_the_fitted_method():
    X = np.random.default_rng(0).normal(size=(100, 2))
    gm = GaussianMixture(2, method="mean_field", random_state=0).fit(X)
    proba, scores = gm.predict_proba(X), gm.score_samples(X)
    gm.set_params(method="em")
    assert_allclose(gm.predict_proba(X), proba, rtol=0, atol=0)
    assert_allclose(gm.score_samples(X), scores, rtol=0, atol=0)
    em = GaussianMixture(2, random_state=0).fit(X)
    em_scores = em.score_samples(X)
    em.set_params(method="gibbs")
    assert_allclose(em.score_samples(X), em_scores, rtol=0, atol=0)


def test_predictions_use_the_fitted_shape():
    X = np.random.default_rng(0).normal(size=(100, 2))
    gm = GaussianMixture(2, random_state=0).fit(X)
    proba, scores, labels = gm.predict_proba(X), gm.score_samples(X), gm.predict(X)
    gm.set_params(n_components=5, covariance_type="diag")
    assert_allclose(gm.predict_proba(X), proba, rtol=0, atol=0)
    assert_allclose(gm.score_samples(X), scores, rtol=0, atol=0)
    assert (gm.predict(X) == labels).all()
    assert gm.sample(5)[0].shape == (5, 2)
    assert np.isfinite(gm.bic(X))


@pytest.mark.parametrize("change", [
    {"n_components": 3}, {"covariance_type": "diag"},
    {"weight_concentration_prior_type": "dirichlet_distribution"}])
def test_warm_start_that_cannot_apply_starts_cold(change):
    X = np.random.default_rng(0).normal(size=(100, 2))
    bgm = BayesianGaussianMixture(n_components=2, random_state=0, warm_start=True).fit(X)
    bgm.set_params(**change)
    with pytest.warns(UserWarning, match="warm_start"):
        bgm.fit(X)
    K = change.get("n_components", 2)
    assert bgm.means_.shape == (K, 2)
    cold = BayesianGaussianMixture(**{**bgm.get_params(), "warm_start": False})
    with warnings.catch_warnings():
        _quiet()
        cold.fit(X)
    assert_allclose(bgm.means_, cold.means_, rtol=0, atol=0)


def test_warm_start_into_gibbs_is_refused_clearly():
    X = np.random.default_rng(0).normal(size=(100, 2))
    bgm = BayesianGaussianMixture(n_components=2, random_state=0, warm_start=True).fit(X)
    means = bgm.means_
    with pytest.raises(ValueError, match="warm_start is not supported with method='gibbs'"):
        bgm.set_params(method="gibbs").fit(X)
    assert bgm.means_ is means


@pytest.mark.parametrize("change", [{"n_components": 3}, {"covariance_type": "diag"},
                                    {"method": "mean_field"}])
def test_em_warm_start_that_cannot_apply_starts_cold(change):
    X = np.random.default_rng(0).normal(size=(100, 2))
    gm = GaussianMixture(2, random_state=0, warm_start=True).fit(X)
    gm.set_params(**change)
    with pytest.warns(UserWarning, match="warm_start"):
        gm.fit(X)
    assert gm.means_.shape == (change.get("n_components", 2), 2)


# --------------------------------------------------------------------------- 9
@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.parametrize("scale", [1e-16, 1e-300, 1e306])
def test_em_does_not_depend_on_the_scale_of_sample_weight(covariance_type, scale):
    X = np.random.default_rng(0).normal(size=(100, 2))
    w = np.random.default_rng(1).integers(1, 4, size=100).astype(float)
    ref = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(
        X, sample_weight=w)
    gm = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(
        X, sample_weight=w * scale)
    assert_allclose(gm.means_, ref.means_, rtol=1e-9)
    assert_allclose(gm.covariances_, ref.covariances_, rtol=1e-9)
    assert_allclose(gm.lower_bound_, ref.lower_bound_, rtol=1e-9)


# --------------------------------------------------------------------------- 11
def test_bayesian_mixture_overflowing_data_is_refused_clearly():
    X = np.random.default_rng(0).normal(size=(100, 2))
    with pytest.raises(ValueError, match="overflow"):
        BayesianGaussianMixture(n_components=2, random_state=0).fit(X * 1e154)


def test_bayesian_mixture_outlier_message_is_not_constant_column():
    X = np.vstack([np.random.default_rng(0).normal(size=(100, 2)), [[1e12, 1e12]]])
    with pytest.raises(ValueError) as info:
        BayesianGaussianMixture(n_components=2, random_state=0).fit(X)
    msg = str(info.value)
    assert "numerically singular" in msg and "outlier" in msg
    # the diagonal prior has no such problem
    BayesianGaussianMixture(n_components=2, covariance_type="diag", random_state=0).fit(X)


@pytest.mark.parametrize("verbose", [True, False])
def test_verbose_accepts_bools(verbose, capsys):
    X = np.random.default_rng(0).normal(size=(100, 2))
    GaussianMixture(2, verbose=verbose, random_state=0).fit(X)
    assert bool(capsys.readouterr().out) == verbose


# --------------------------------------------------------------------------- 12
def test_statistics_slots_scale_with_memory():
    """Full covariance with large K D^2: few slots (8 per-group slots of 160 MB each before),
    a number that depends on the sizes only (never on the thread count)."""
    K, D, N = 5, 2000, 3000
    slot = K + K * D + K * D * D
    assert G.n_groups_for(N, slot, N * D * 8) == 2
    # small models keep their groups (and so their results)
    assert G.n_groups_for(100000, 4 + 4 * 6 + 4 * 36) == 128
    assert G.n_groups_for(20011, 4 + 4 * 6 + 4 * 36) == 79
    # at most the slot budget, or an eighth of the data, in slots (but at least two)
    for K, D in [(5, 300), (20, 100), (3, 1000)]:
        slot = K * D * (D + 1) + K
        n = G.n_groups_for(10 ** 6, slot, 10 ** 6 * D * 8)
        assert n == 2 or n * slot * 8 <= max(G.SLOT_BUDGET, 10 ** 6 * D)


def test_slot_plan_one_s2_slot_when_k_d2_is_large():
    """K=5, D=2000, N=3000: S2 in one slot (the panel sweep) instead of 2 groups of 160 MB
    slots plus their sum; the small statistics keep their per-group slots. The plan depends on
    the sizes only."""
    plan = G.slot_plan(3000, "full", 5, 2000, 3000 * 2000 * 8)
    assert plan == (12, 1, True) and plan.s2_panels and plan.n_s2_slots == 1
    # the ordinary workloads keep their per-group S2 slots (and so their results)
    assert G.slot_plan(200000, "full", 16, 16, 200000 * 16 * 8) == (128, 128, False)
    assert G.slot_plan(20011, "full", 4, 6) == (79, 79, False)
    for ctype in ("tied", "diag", "spherical"):
        assert not G.slot_plan(3000, ctype, 5, 2000, 3000 * 2000 * 8).s2_panels
    # per-group slots while the budget holds min(MIN_S2_GROUPS, the data's groups) of them
    for K, D, N in [(5, 300, 10 ** 6), (20, 100, 10 ** 6), (3, 1000, 10 ** 5), (3, 420, 1200)]:
        plan = G.slot_plan(N, "full", K, D, N * D * 8)
        slot = K + K * D + K * D * D
        groups = G.n_groups(N, G.CHUNK_SIZE, 128)
        fits = max(G.SLOT_BUDGET, N * D) // (8 * slot)
        assert plan.s2_panels == (fits < min(G.MIN_S2_GROUPS, groups))
        if not plan.s2_panels:
            assert plan.n_groups * slot * 8 <= max(G.SLOT_BUDGET, N * D)


@pytest.fixture
def small_slot_budget(monkeypatch):
    """A 1 MB slot budget: 'full' at K=3, D=200 (a 0.96 MB S2 slot) takes the panel sweep."""
    monkeypatch.setattr(G, "SLOT_BUDGET", 1 << 20)
    assert G.slot_plan(1500, "full", 3, 200).s2_panels


def _high_d_data(N=1500, K=3, D=200):
    rng = np.random.default_rng(0)
    return 3.0 * rng.normal(size=(K, D))[rng.integers(K, size=N)] + rng.normal(size=(N, D))


def test_full_covariance_panel_pass_keeps_no_s2_slot(small_slot_budget):
    X = _high_d_data()
    data = G.GaussianPass(X, None, "full", 3, 2)
    assert data.slot_plan.s2_panels and data.s2_slots is None
    held = sum(a.nbytes for a in (data.nk_slots, data.s1_slots, data.ll_slots,
                                  data.ent_slots))
    assert held < 3 * 200 * 200 * 8 / 10  # a tenth of one S2
    with warnings.catch_warnings():
        _quiet()
        gm = GaussianMixture(3, max_iter=2, tol=0, random_state=0).fit(X)
    inputs = G.pass_inputs(gm.means_, gm.precisions_cholesky_, "full", data.shift,
                           G.plugin_log_const(gm.weights_, gm.precisions_cholesky_, "full",
                                              200))
    first, second = data.run(*inputs), data.run(*inputs)
    # each pass's S2 is its own array (handed over), the same numbers
    assert not np.shares_memory(first["s2"], second["s2"]) and data.s2_slots is None
    assert np.array_equal(first["s2"], second["s2"])


@pytest.mark.parametrize("method", ["em", "mean_field", "gibbs"])
def test_full_covariance_panel_pass_thread_invariant_and_close(small_slot_budget, method):
    X = _high_d_data()
    kw = dict(method=method, max_iter=3, tol=0, random_state=0)
    if method == "gibbs":
        kw = dict(method=method, n_draws=2, burn_in=1, n_chains=1, random_state=0)
    with warnings.catch_warnings():
        _quiet()
        fits = [GaussianMixture(3, n_threads=t, **kw).fit(X) for t in (1, 2)]
        G.SLOT_BUDGET = 64 << 20  # per-group slots (the fixture restores the budget)
        assert not G.slot_plan(1500, "full", 3, 200).s2_panels
        grouped = GaussianMixture(3, n_threads=2, **kw).fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_",
                 "precisions_"):
        assert np.array_equal(getattr(fits[0], name), getattr(fits[1], name)), name
        assert_allclose(getattr(fits[0], name), getattr(grouped, name), rtol=1e-7,
                        atol=1e-9 * np.abs(getattr(grouped, name)).max())


@pytest.mark.parametrize("given", [False, True], ids=["kmeans", "given"])
def test_full_covariance_fit_peak_memory(small_slot_budget, given):
    """Peak of the arrays a fit allocates (tracemalloc: numpy's allocations), in units of one
    (K, D, D) array: the parameters in the M-step (old factors, S2 turned covariances, new
    factors) and the three fitted K D^2 attributes, plus one matrix's temporaries. Before:
    7.05 (two S2 slots kept for the fit, their sum, the covariances beside S2, copies of
    the fitted arrays)."""
    K, D = 3, 200
    X = _high_d_data(K=K, D=D)
    kw = {}
    if given:
        kw = dict(weights_init=np.full(K, 1 / K), means_init=X[:K].copy(),
                  precisions_init=np.repeat(np.eye(D)[None], K, axis=0))
    gm = GaussianMixture(K, max_iter=3, tol=0, random_state=0, **kw)
    with warnings.catch_warnings():
        _quiet()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            gm.fit(X)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
    assert peak / (K * D * D * 8) < 4.5


def test_full_covariance_many_features_thread_invariant():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1200, 40))
    fits = [GaussianMixture(3, random_state=0, max_iter=3, n_threads=t).fit(X)
            for t in (1, 2)]
    for name in ("means_", "covariances_", "precisions_cholesky_"):
        assert np.array_equal(getattr(fits[0], name), getattr(fits[1], name))


# --------------------------------------------------------------------------- 13
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_gibbs_without_stored_samples(covariance_type):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(loc=c, size=(150, 3)) for c in (-5, 0, 5)])
    kw = dict(n_components=3, covariance_type=covariance_type, method="gibbs", n_draws=40,
              burn_in=40, n_chains=2, random_state=0)
    with warnings.catch_warnings():
        _quiet()
        full = GaussianMixture(**kw).fit(X)
        lean = GaussianMixture(**kw, store_samples=False).fit(X)
    assert set(lean.posterior_samples_) == {"weights", "means", "log_joint"}
    assert lean.posterior_samples_["means"].shape == full.posterior_samples_["means"].shape
    # the same chains; the well-separated components relabel the same way
    assert_allclose(lean.log_joint_trace_, full.log_joint_trace_, rtol=0, atol=0)
    for name in ("weights_", "means_", "precisions_", "covariances_"):
        assert_allclose(getattr(lean, name), getattr(full, name), rtol=1e-10, atol=1e-12)
    # score_samples: the plug-in density at the posterior means
    exact = exact_log_density(X, lean.weights_, lean.means_, lean.precisions_cholesky_,
                              covariance_type)
    assert_allclose(lean.score_samples(X), exact, rtol=1e-9)
    with pytest.raises(TypeError, match="store_samples"):
        GaussianMixture(**kw, store_samples="no").fit(X)


def test_gibbs_store_samples_memory():
    """K=20, D=100 'full' kept 1.2 GB of draws; without stored samples only weights and means
    remain: here K (D + 1) numbers a draw instead of K (2 D^2 + D + 1)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 30))
    with warnings.catch_warnings():
        _quiet()
        gm = GaussianMixture(4, method="gibbs", n_draws=20, burn_in=5, n_chains=1,
                             store_samples=False, random_state=0).fit(X)
    stored = sum(np.asarray(v).nbytes for v in gm.posterior_samples_.values())
    assert stored <= 20 * 4 * 31 * 8 + 20 * 8
