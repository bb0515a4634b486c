"""Degenerate mixture components (issue 19): ``on_degenerate='reseed'`` (default) re-seeds a
component below one point (EM) or with a covariance that is not positive-definite (EM, mean
field, Gibbs) by splitting another; ``'raise'`` is scikit-learn's behaviour."""
import re
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.mixture import GaussianMixture as SKGaussianMixture

import vbfast
import vbfast._core.threads
from vbfast import BayesianGaussianMixture, DegenerateComponentWarning, GaussianMixture
from vbfast._core import loop
from vbfast._core.protocol import Method
from vbfast._registry import fingerprint, fitted_attributes
from vbfast.emissions import degenerate as DG

COV_TYPES = ["full", "tied", "diag", "spherical"]
ILL_DEFINED = re.escape(
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
    "number of components, increase reg_covar, or scale the input data.")


def _quiet(est, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X)


def sites_and_scattered(seed, reps=4, n_features=1):
    """The issue's scenario: 5 sites, each repeated ``reps`` times, plus 30 scattered points."""
    rng = np.random.RandomState(seed)
    sites = rng.uniform(-5, 5, size=(5, n_features))
    return np.vstack([np.repeat(sites, reps, axis=0),
                      rng.normal(0.0, 5.0, size=(30, n_features))])


def four_blobs(seed, n=100):
    rng = np.random.RandomState(seed)
    centres = np.array([[0, 0], [12, 0], [0, 12], [12, 12.0]])
    return np.vstack([rng.normal(size=(n, 2)) + c for c in centres])


# one start far from every point: that component takes no data at the first E-step
FAR_START = np.array([[0, 0], [12, 0], [6, 12], [200, 200.0]])


def blobs_and_a_pair(n=60):
    """Three blobs in 3-D and two far points: a component holding only the pair has a
    rank-one scatter, singular with reg_covar=0."""
    rng = np.random.RandomState(0)
    blobs = np.vstack([rng.normal(size=(n, 3)) + c for c in ([0, 0, 0], [8, 0, 0], [0, 8, 0])])
    return np.vstack([blobs, [[30.0, 30, 30], [31.0, 31, 30]]])


# ------------------------------------------------------------------ parameter
@pytest.mark.parametrize("cls", [GaussianMixture, BayesianGaussianMixture])
@pytest.mark.parametrize("value", ["foo", "RAISE", None, 1])
def test_on_degenerate_outside_the_set_is_refused(cls, value):
    X = four_blobs(0, n=10)
    with pytest.raises(ValueError, match="on_degenerate must be one of"):
        cls(n_components=2, on_degenerate=value).fit(X)
    assert cls().get_params()["on_degenerate"] == "reseed"


# ------------------------------------------------------------------ EM: below one point
def test_issue_scenario_no_component_below_one_point():
    """5 repeated sites + 30 scattered points, K=8, 10 seeds. Without re-seeding components
    are left below one point's weight (spikes on single scattered points, whose covariance is
    reg_covar alone); with it, none is, and a fit that re-seeded nothing is the same fit."""
    n_left, n_reseeded = 0, 0
    for seed in range(10):
        X = sites_and_scattered(seed)
        raised = _quiet(GaussianMixture(8, random_state=seed, on_degenerate="raise"), X)
        fit = _quiet(GaussianMixture(8, random_state=seed), X)
        below = raised.weights_ * len(X) < 1.0
        n_left += bool(below.any())
        n_reseeded += fit.n_reseeds_ > 0
        assert np.all(fit.weights_ * len(X) >= 1.0), seed
        assert raised.n_reseeds_ == 0
        if below.any():
            assert fit.n_reseeds_ > 0, seed
        if fit.n_reseeds_ == 0:
            for name, value in fitted_attributes(raised).items():
                if name != "lower_bounds_":
                    assert fingerprint(value) == fingerprint(getattr(fit, name)), name
        assert np.isfinite(fit.score_samples(X)).all()
    assert n_left >= 5 and n_reseeded >= n_left  # the scenario reproduces


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_component_without_data_is_reseeded_and_the_fit_improves(covariance_type):
    """A component that starts far from every point has no data. 'raise' keeps it empty (3
    components for 4 clusters); 'reseed' splits the component spanning two clusters, whose
    excess cost is the largest, and the log-likelihood is higher."""
    for seed in range(3):
        X = four_blobs(seed)
        kw = dict(covariance_type=covariance_type, means_init=FAR_START, random_state=0)
        raised = _quiet(GaussianMixture(4, on_degenerate="raise", **kw), X)
        fit = _quiet(GaussianMixture(4, **kw), X)
        assert raised.weights_.min() * len(X) < 1e-10
        assert fit.n_reseeds_ == 1
        assert np.all(fit.weights_ * len(X) >= 1.0)
        assert fit.score(X) >= raised.score(X)
        if covariance_type != "spherical":  # (no per-axis spread: the split axis is a guess)
            assert fit.score(X) > raised.score(X) + 0.3
            assert_allclose(np.sort(fit.weights_), 0.25, atol=0.01)


# ------------------------------------------------------------------ covariances that fail
def test_singular_covariance_that_raised_now_fits():
    X = blobs_and_a_pair()
    for seed in range(3):
        kw = dict(covariance_type="full", reg_covar=0.0, random_state=seed)
        with pytest.raises(ValueError, match=ILL_DEFINED):
            _quiet(GaussianMixture(4, on_degenerate="raise", **kw), X)
        fit = _quiet(GaussianMixture(4, **kw), X)
        assert fit.n_reseeds_ >= 1
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            assert np.isfinite(getattr(fit, name)).all()
        assert np.all(np.linalg.eigvalsh(fit.covariances_) > 0)
        assert np.isfinite(fit.score_samples(X)).all()


@pytest.mark.parametrize("method", ["mean_field", "gibbs"])
@pytest.mark.parametrize("prior", ["dirichlet_process", "dirichlet_distribution"])
def test_bayesian_scale_that_is_not_positive_definite_is_reseeded(method, prior):
    """A covariance prior of 1e-300 I leaves the scale of a component holding the far pair
    (rank-one data) numerically singular: today's error with 'raise', a fit with 'reseed'."""
    X = blobs_and_a_pair()
    kw = dict(n_components=4, reg_covar=0.0, covariance_prior=1e-300 * np.eye(3),
              weight_concentration_prior_type=prior, method=method, random_state=0,
              n_draws=20, burn_in=20)
    with pytest.raises(ValueError, match=ILL_DEFINED):
        _quiet(BayesianGaussianMixture(on_degenerate="raise", **kw), X)
    fit = _quiet(BayesianGaussianMixture(**kw), X)
    assert fit.n_reseeds_ >= 1
    assert np.isfinite(fit.precisions_cholesky_).all()
    assert np.isfinite(fit.score_samples(X)).all()


def test_tied_covariance_that_fails_raises():
    """One shared covariance: no component to re-seed, today's error."""
    X = four_blobs(0, n=20)
    X[:, 1] = 3.0  # a constant column: the tied covariance is singular at reg_covar=0
    with pytest.raises(ValueError, match=ILL_DEFINED):
        _quiet(GaussianMixture(3, covariance_type="tied", reg_covar=0.0, random_state=0), X)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_sklearn_regularisation_behaviour_kept(covariance_type):
    """scikit-learn's test_regularisation: 10 components on 2 distinct points. With
    reg_covar=0 no component can be split (none has a spread): today's error; with
    reg_covar=1e-6 the fit succeeds and the components without data stay as they are."""
    X = np.vstack((np.ones((5, 5)), np.zeros((5, 5))))
    gm = GaussianMixture(n_components=10, reg_covar=0, covariance_type=covariance_type,
                         random_state=np.random.RandomState(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match=ILL_DEFINED):
            gm.fit(X)
        gm.set_params(reg_covar=1e-6).fit(X)
    assert gm.n_reseeds_ == 0


# ------------------------------------------------------------------ 'raise' is today's fit
def test_raise_is_scikit_learns_fit():
    for seed in range(10):
        X = sites_and_scattered(seed)
        ours = _quiet(GaussianMixture(8, random_state=seed, on_degenerate="raise"), X)
        sk = _quiet(SKGaussianMixture(8, random_state=seed), X)
        assert ours.n_iter_ == sk.n_iter_
        assert_allclose(ours.lower_bound_, sk.lower_bound_, rtol=1e-9)
        assert_allclose(ours.weights_, sk.weights_, rtol=1e-6, atol=1e-12)


# ------------------------------------------------------------------ warning, guard
def test_warned_once_per_fit():
    X = sites_and_scattered(6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = GaussianMixture(8, random_state=6, n_init=3).fit(X)
    ours = [w for w in caught if issubclass(w.category, DegenerateComponentWarning)]
    assert fit.n_reseeds_ >= 2
    assert len(ours) == 1
    assert issubclass(DegenerateComponentWarning, UserWarning)
    assert f"n_reseeds_ = {fit.n_reseeds_}" in str(ours[0].message)
    for est in (GaussianMixture(8, random_state=3), GaussianMixture(8, random_state=6,
                                                                    on_degenerate="raise")):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.fit(sites_and_scattered(3 if est.on_degenerate == "reseed" else 6))
        assert not [w for w in caught if issubclass(w.category, DegenerateComponentWarning)]


def test_bound_guard_not_triggered_by_a_reseed():
    """A re-seed may lower the log-likelihood (here it does): the guard, set to raise, does
    not fire on it."""
    decreased = 0
    with vbfast.config_context(bound_decrease="raise"):
        for seed in range(10):
            X = sites_and_scattered(seed)
            fit = _quiet(GaussianMixture(8, random_state=seed), X)
            b = fit.lower_bounds_
            decreased += bool(np.any(np.diff(b) < -1e-6 * np.abs(b[1:])))
        for covariance_type in COV_TYPES:
            fit = _quiet(GaussianMixture(4, covariance_type=covariance_type,
                                         means_init=FAR_START, random_state=0),
                         four_blobs(0))
            assert fit.n_reseeds_ == 1
    assert decreased >= 1  # the guard would have fired


class _Scripted(Method):
    """Bounds and resets follow a script."""

    def __init__(self, bounds, resets):
        self.script = list(zip(bounds, resets))

    def pass_inputs(self, shard):
        return None

    def update(self, stats):
        self._bound, self.bound_reset = self.script.pop(0)

    def bound(self):
        return self._bound

    def attributes(self):
        return {}


class _NoData:
    def shards(self):
        return (None,)

    def run_pass(self, shard, inputs):
        return None


def test_loop_reads_bound_reset():
    """The loop skips the guard and the convergence check on an iteration the method marks,
    and keeps both armed on the others."""
    run = lambda bounds, resets, tol=1e-9: loop.run_fits(  # noqa: E731
        lambda r: _Scripted(bounds, resets), _NoData(), max_iter=len(bounds), tol=tol)
    with vbfast.config_context(bound_decrease="raise"):
        result = run([-3.0, -2.0, -5.0, -4.0, -3.0], [False, False, True, True, False])
        assert result.n_iter == 5
        with pytest.raises(FloatingPointError, match="iteration 4"):
            run([-3.0, -2.0, -5.0, -6.0], [False, False, True, False])
    # no convergence declared on a marked iteration, even with the bound unchanged
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run([-3.0, -2.0, -2.0, -2.0], [False, False, True, False], tol=1e-3)
    assert result.n_iter == 4 and result.converged


# ------------------------------------------------------------------ Bayesian: not empty
def test_mean_field_switched_off_components_untouched():
    """The Dirichlet-process prior switches off what the data do not need: such components
    hold (almost) no data, and they are the answer, not degenerate."""
    X = four_blobs(1, n=50)
    for prior in ("dirichlet_process", "dirichlet_distribution"):
        kw = dict(n_components=8, weight_concentration_prior=1e-3, random_state=0,
                  weight_concentration_prior_type=prior, max_iter=300)
        fit = _quiet(BayesianGaussianMixture(**kw), X)
        raised = _quiet(BayesianGaussianMixture(on_degenerate="raise", **kw), X)
        assert np.sum(fit.weights_ * len(X) < 1.0) >= 2
        assert fit.n_reseeds_ == 0
        for name, value in fitted_attributes(raised).items():
            assert fingerprint(value) == fingerprint(getattr(fit, name)), name


def test_gibbs_empty_components_untouched():
    """A component without data is drawn from its prior by the sampler already."""
    X = four_blobs(1, n=50)
    kw = dict(n_components=8, random_state=0, n_draws=20, burn_in=20, method="gibbs")
    fit = _quiet(BayesianGaussianMixture(**kw), X)
    raised = _quiet(BayesianGaussianMixture(on_degenerate="raise", **kw), X)
    assert fit.n_reseeds_ == 0
    assert np.any(fit.posterior_samples_["weights"] * len(X) < 1.0)
    for name, value in fitted_attributes(raised).items():
        assert fingerprint(value) == fingerprint(getattr(fit, name)), name


# ------------------------------------------------------------------ determinism
@pytest.fixture
def parallel_on_small_data(monkeypatch):
    monkeypatch.setattr(vbfast._core.threads, "MIN_ROWS_PER_THREAD", 1)


@pytest.mark.parametrize("case", ["em_empty", "em_singular", "mean_field", "gibbs"])
def test_reseeding_identical_for_any_thread_count(case, parallel_on_small_data):
    if case == "em_empty":
        X = four_blobs(0)
        make = lambda t: GaussianMixture(4, means_init=FAR_START, random_state=0,  # noqa: E731
                                         n_threads=t)
    elif case == "em_singular":
        X = blobs_and_a_pair(n=150)
        make = lambda t: GaussianMixture(4, reg_covar=0.0, random_state=0,  # noqa: E731
                                         n_threads=t)
    else:
        X = blobs_and_a_pair(n=150)
        # (a seed whose chains draw a component onto the pair alone: which seeds do depends
        # on the draws' last bits; mean field with five components, one of them left
        # without data and re-seeded)
        K = 5 if case == "mean_field" else 4
        seed = 0 if case == "mean_field" else 1
        make = lambda t: BayesianGaussianMixture(  # noqa: E731
            n_components=K, reg_covar=0.0, covariance_prior=1e-300 * np.eye(3),
            method=case, random_state=seed, n_draws=10, burn_in=10, n_threads=t)
    one, two = _quiet(make(1), X), _quiet(make(2), X)
    assert one.n_reseeds_ > 0
    fa, fb = fitted_attributes(one), fitted_attributes(two)
    assert sorted(fa) == sorted(fb)
    for name in fa:
        assert fingerprint(fa[name]) == fingerprint(fb[name]), name
    assert fingerprint(one.predict_proba(X)) == fingerprint(two.predict_proba(X))


# ------------------------------------------------------------------ the split itself
def _mixture_moments(nk, means, cov, covariance_type, idx):
    """Weight, mean and covariance ((D, D)) of the sub-mixture of components ``idx``."""
    D = means.shape[1]
    w = nk[idx] / nk[idx].sum()
    m = w @ means[idx]
    C = np.zeros((D, D))
    for i, k in zip(w, idx):
        c = {"full": lambda: cov[k], "diag": lambda: np.diag(cov[k]),
             "spherical": lambda: cov[k] * np.eye(D), "tied": lambda: cov}[covariance_type]()
        C += i * (c + np.outer(means[k] - m, means[k] - m))
    return nk[idx].sum(), m, C


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_split_keeps_the_donors_weight_mean_and_covariance(covariance_type):
    """The two halves are the moments of N(m_j, C_j) cut through its mean across the split
    axis: together they have the donor's weight, mean and covariance."""
    rng = np.random.RandomState(0)
    K, D = 4, 3
    A = rng.normal(size=(K, D, D))
    full = np.einsum("kij,klj->kil", A, A) + 0.1 * np.eye(D)
    cov = {"full": full, "diag": np.diagonal(full, axis1=1, axis2=2).copy(),
           "spherical": np.trace(full, axis1=1, axis2=2) / D}[covariance_type]
    nk = np.array([50.0, 0.2, 30.0, 20.0])
    means = rng.normal(size=(K, D))
    reg = 1e-6
    cov = cov + (reg * np.eye(D) if covariance_type == "full" else reg)
    before = (nk.copy(), means.copy(), cov.copy())
    done = DG.split_into(np.array([False, True, False, False]), nk, means, cov,
                         covariance_type, reg, 1.0, 10)
    assert done.tolist() == [False, True, False, False]
    donor = [j for j in (0, 2, 3) if nk[j] != before[0][j]]
    assert len(donor) == 1
    j = donor[0]
    assert nk[1] == nk[j] == before[0][j] / 2
    w0, m0, C0 = _mixture_moments(*before, covariance_type, [j])
    w1, m1, C1 = _mixture_moments(nk, means, cov, covariance_type, [1, j])
    assert_allclose(w1, w0)
    assert_allclose(m1, m0, atol=1e-12)
    if covariance_type == "spherical":  # one variance a component: the trace is kept
        assert_allclose(np.trace(C1), np.trace(C0), rtol=1e-12)
    else:
        assert_allclose(C1, C0, atol=1e-12)
    for k in (0, 2, 3):  # the others are unchanged
        if k != j:
            assert nk[k] == before[0][k] and np.all(means[k] == before[1][k])


def test_donor_is_the_wide_component_not_the_heavy_spike():
    """Many copies of one point (a heavy spike, no spread) are never split; the donor is the
    component with the largest excess cost N_j (H_j - H), H_j = 1/2 log det C_j, H the
    N-weighted mean over the candidates."""
    for n2, var2, n3, var3 in [(10.0, 4.0, 25.0, 1.0), (10.0, 1.5, 25.0, 1.0),
                               (30.0, 1.0, 10.0, 2.0)]:
        nk = np.array([40.0, 0.3, n2, n3])
        means = np.array([[0.0, 0.0], [5.0, 5.0], [3.0, 0.0], [-3.0, 2.0]])
        cov = np.array([1e-6 * np.eye(2), np.eye(2), var2 * np.eye(2), var3 * np.eye(2)])
        h = np.log([var2, var3])  # 1/2 log det of var I in 2-D
        h_mean = (n2 * h[0] + n3 * h[1]) / (n2 + n3)
        expected = 2 + int(np.argmax([n2 * (h[0] - h_mean), n3 * (h[1] - h_mean)]))
        done = DG.split_into(np.array([False, True, False, False]), nk, means, cov, "full",
                             1e-6, 1.0, 10)
        assert done[1] and nk[0] == 40.0
        assert nk[expected] == nk[1] == [n2, n3][expected - 2] / 2
    # no donor with a spread: nothing is done
    nk = np.array([40.0, 0.3, 10.0])
    cov = np.array([1e-6 * np.eye(2)] * 3)
    done = DG.split_into(np.array([False, True, False]), nk, means[:3].copy(), cov, "full",
                         1e-6, 1.0, 10)
    assert not done.any() and nk[1] == 0.3


def test_split_is_deterministic_and_capped():
    nk = np.array([40.0, 0.3, 0.1, 25.0])
    means = np.array([[0.0, 0.0], [5.0, 5.0], [3.0, 0.0], [-3.0, 2.0]])
    cov = np.array([[2.0, 0.5], [1.0, 3.0], [1.0, 1.0], [0.5, 0.5]])
    runs = []
    for _ in range(2):
        args = (nk.copy(), means.copy(), cov.copy())
        done = DG.split_into(np.array([False, True, True, False]), *args, "diag", 0.0, 1.0, 1)
        runs.append((done,) + args)
    assert runs[0][0].tolist() == [False, True, False, False]  # the cap: one re-seed
    for a, b in zip(runs[0], runs[1]):
        assert fingerprint(a) == fingerprint(b)


def test_failing_components():
    full = np.array([np.eye(2), [[1.0, 1.0], [1.0, 1.0]], np.zeros((2, 2))])
    assert DG.failing_components(full, "full").tolist() == [False, True, True]
    assert DG.failing_components(np.array([[1.0, 0.0], [1.0, 2.0]]), "diag").tolist() == \
        [True, False]
    assert DG.failing_components(np.array([1.0, -1.0, np.nan]), "spherical").tolist() == \
        [False, True, True]
    assert DG.failing_components(np.ones((2, 2)), "tied").tolist() == [True]


# ------------------------------------------------------------------ partial_fit
@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_partial_fit_reseeds_a_component_without_data(covariance_type):
    """A stream's step re-seeds as fit does: the far start takes no data in the first batch;
    with 'reseed' every component ends above one point and the count is summed over the
    stream; with 'raise' the empty component stays (scikit-learn's behaviour)."""
    X = four_blobs(0)
    batches = np.array_split(X[np.random.RandomState(1).permutation(len(X))], 4)
    fits = {}
    for on_degenerate in ("reseed", "raise"):
        gm = GaussianMixture(4, covariance_type=covariance_type, means_init=FAR_START,
                             total_samples=len(X), on_degenerate=on_degenerate,
                             random_state=0)
        counts = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for batch in batches:
                gm.partial_fit(batch)
                counts.append(gm.n_reseeds_)
        fits[on_degenerate] = (gm, counts)
    gm, counts = fits["reseed"]
    assert counts[0] > 0 and counts == sorted(counts)
    assert gm.weights_.min() * len(X) > 1.0
    raised, counts = fits["raise"]
    assert counts == [0] * len(batches)
    assert raised.weights_.min() * len(X) < 1.0
    assert gm.score(X) > raised.score(X)
