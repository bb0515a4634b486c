"""GaussianHMM and CategoricalHMM (method='em'): agreement with hmmlearn from the same start,
never NaN on the hmmlearn issue cases, bad input refused with a ValueError naming it, and the
hmmlearn API (decode, sample, aic / bic, monitor_, covars_, zeros kept)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import vbfast
from vbfast.hmm import CategoricalHMM, GaussianHMM
from _helpers import assert_rejects_nonfinite, assert_same_hmm_scores

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

COV_TYPES = ["full", "tied", "diag", "spherical"]
TRANS = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]])
MEANS = np.array([[0.0, 0.0], [3.0, 3.0], [-3.0, 3.0]])


def sample_gaussian(n=600, seed=0):
    rng = np.random.RandomState(seed)
    z = np.empty(n, dtype=int)
    z[0] = 0
    for t in range(1, n):
        z[t] = rng.choice(3, p=TRANS[z[t - 1]])
    return MEANS[z] + rng.normal(size=(n, 2)), z


def start_covars(ct):
    return {"full": np.tile(np.eye(2) * 2, (3, 1, 1)), "tied": np.eye(2) * 2,
            "diag": np.full((3, 2), 2.0), "spherical": np.full(3, 2.0)}[ct]


def set_start(model, ct):
    model.startprob_ = np.array([0.4, 0.3, 0.3])
    model.transmat_ = np.full((3, 3), 1 / 3)
    model.means_ = np.array([[0.5, 0.0], [2.0, 2.5], [-2.0, 2.0]])
    model.covars_ = start_covars(ct)
    return model


# ---------------------------------------------------------------------------- hmmlearn
@pytest.mark.parametrize("ct", COV_TYPES)
@pytest.mark.parametrize("priors", [{}, {"means_weight": 0.5, "means_prior": 1.0,
                                         "covars_prior": 0.3, "covars_weight": 4.0,
                                         "transmat_prior": 2.0, "startprob_prior": 1.5}])
def test_agrees_with_hmmlearn_from_the_same_start(ct, priors):
    hmm = pytest.importorskip("hmmlearn.hmm")
    X, _ = sample_gaussian()
    lengths = [200, 150, 250]
    ours = set_start(GaussianHMM(3, ct, init_params="", n_iter=10, tol=0, **priors), ct)
    theirs = set_start(hmm.GaussianHMM(3, ct, init_params="", n_iter=10, tol=0,
                                       implementation="scaling", **priors), ct)
    ours.fit(X, lengths)
    theirs.fit(X, lengths)
    rtol = 1e-8
    assert_allclose(list(ours.monitor_.history), list(theirs.monitor_.history), rtol=rtol)
    assert_allclose(ours.lower_bounds_, list(theirs.monitor_.history), rtol=rtol)
    assert_allclose(ours.startprob_, theirs.startprob_, rtol=rtol, atol=1e-12)
    assert_allclose(ours.transmat_, theirs.transmat_, rtol=rtol, atol=1e-12)
    assert_allclose(ours.means_, theirs.means_, rtol=rtol, atol=1e-12)
    their_cov = theirs._covars_[:, 0] if ct == "spherical" else theirs._covars_
    assert_allclose(ours._covars_, their_cov, rtol=rtol)
    if ct != "spherical":  # (hmmlearn's own covars_ view is broken for fitted spherical)
        assert_allclose(ours.covars_, theirs.covars_, rtol=rtol)
    assert_same_hmm_scores(ours, theirs, X, lengths)
    assert_allclose(ours.aic(X, lengths), theirs.aic(X, lengths), rtol=1e-12)
    assert_allclose(ours.bic(X, lengths), theirs.bic(X, lengths), rtol=1e-12)
    assert_allclose(ours.get_stationary_distribution(),
                    theirs.get_stationary_distribution(), rtol=1e-8)


@pytest.mark.parametrize("ct,K,D", [("full", 4, 1), ("tied", 3, 1), ("diag", 10, 3),
                                    ("spherical", 6, 2), ("diag", 17, 2)])
def test_agrees_with_hmmlearn_one_feature_and_more_states(ct, K, D):
    """The one-feature shortcut ('full' / 'tied' at D = 1) and the padded small-K kernels
    (K = 6, 10: padded to 8, 12 lanes; K = 17: the general ones), 10 iterations from the same
    start."""
    hmm = pytest.importorskip("hmmlearn.hmm")
    rng = np.random.RandomState(K + D)
    means = rng.normal(scale=3.0, size=(K, D))
    z = rng.randint(K, size=1500)
    z = np.repeat(z[::5], 5)  # stretches of one state
    X = means[z] + rng.normal(size=(len(z), D))
    lengths = [700, 1, 299, 500]
    start = {"startprob_": np.full(K, 1.0 / K), "transmat_": np.full((K, K), 1.0 / K),
             "means_": means + rng.normal(scale=0.5, size=means.shape)}
    cov = {"full": np.tile(np.eye(D) * 1.5, (K, 1, 1)), "tied": np.eye(D) * 1.5,
           "diag": np.full((K, D), 1.5), "spherical": np.full(K, 1.5)}[ct]
    fits = []
    for model in (GaussianHMM(K, ct, init_params="", n_iter=10, tol=0),
                  hmm.GaussianHMM(K, ct, init_params="", n_iter=10, tol=-np.inf,
                                  implementation="scaling")):
        for name, value in start.items():
            setattr(model, name, value.copy())
        model.covars_ = cov.copy()
        fits.append(model.fit(X, lengths))
    ours, theirs = fits
    assert_allclose(list(ours.monitor_.history), list(theirs.monitor_.history), rtol=1e-8)
    assert_allclose(ours.transmat_, theirs.transmat_, rtol=1e-8, atol=1e-12)
    assert_allclose(ours.means_, theirs.means_, rtol=1e-8, atol=1e-12)
    their_cov = theirs._covars_[:, 0] if ct == "spherical" else theirs._covars_
    assert_allclose(ours._covars_, their_cov, rtol=1e-8)


def test_categorical_agrees_with_hmmlearn_including_random_init():
    hmm = pytest.importorskip("hmmlearn.hmm")
    rng = np.random.RandomState(0)
    gen = hmm.CategoricalHMM(3, random_state=0)
    gen.startprob_ = np.array([0.5, 0.3, 0.2])
    gen.transmat_ = TRANS
    gen.emissionprob_ = rng.dirichlet(np.ones(5), 3)
    S, _ = gen.sample(500, random_state=3)
    ours = CategoricalHMM(3, random_state=0, n_iter=10, tol=0).fit(S, [200, 300])
    theirs = hmm.CategoricalHMM(3, random_state=0, n_iter=10, tol=0).fit(S, [200, 300])
    assert_allclose(list(ours.monitor_.history), list(theirs.monitor_.history), rtol=1e-8)
    for name in ("startprob_", "transmat_", "emissionprob_"):
        assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-8, atol=1e-12)
    X1, Z1 = ours.sample(20, random_state=5)
    X2, Z2 = theirs.sample(20, random_state=5)
    assert_array_equal(X1, X2)
    assert_array_equal(Z1, Z2)


def test_gaussian_sample_matches_hmmlearn():
    hmm = pytest.importorskip("hmmlearn.hmm")
    ours = set_start(GaussianHMM(3, "full"), "full")
    theirs = set_start(hmm.GaussianHMM(3, "full"), "full")
    X1, Z1 = ours.sample(30, random_state=1, currstate=2)
    X2, Z2 = theirs.sample(30, random_state=1, currstate=2)
    assert_allclose(X1, X2)
    assert_array_equal(Z1, Z2)
    assert Z1[0] == 2


# ---------------------------------------------------------------------------- API
def test_exported():
    assert vbfast.GaussianHMM is GaussianHMM and vbfast.CategoricalHMM is CategoricalHMM


def test_fit_from_scratch_recovers_the_states():
    X, z = sample_gaussian(1500, seed=1)
    # EM finds local optima (hmmlearn too, from the same start): the best of a few starts
    model = max((GaussianHMM(3, "full", n_iter=50, random_state=seed).fit(X)
                 for seed in range(4)), key=lambda m: m.lower_bound_)
    states = model.predict(X)
    # a label permutation apart
    agree = max(np.mean(states == np.array(p)[z]) for p in
                __import__("itertools").permutations(range(3)))
    assert agree > 0.95
    assert model.monitor_.iter == model.n_iter_ == len(model.lower_bounds_)
    assert np.all(np.diff(model.lower_bounds_) > -1e-6 * abs(model.lower_bounds_[-1]))
    assert model.converged_ and model.monitor_.converged
    assert model.n_features == 2 and model.covars_.shape == (3, 2, 2)
    map_lp, map_states = model.decode(X, algorithm="map")
    assert np.isfinite(map_lp) and map_lp <= 0
    assert_array_equal(map_states, model.predict_proba(X).argmax(axis=1))


def test_score_sequences_sums_to_score():
    X, _ = sample_gaussian(300)
    model = GaussianHMM(3, random_state=0, n_iter=5).fit(X, [100, 200])
    per = model.score_sequences(X, [100, 50, 150])
    assert per.shape == (3,)
    assert_allclose(per.sum(), model.score(X, [100, 50, 150]), rtol=1e-13)


def test_zeros_in_startprob_and_transmat_stay_zero():
    X, _ = sample_gaussian(400)
    model = GaussianHMM(3, "diag", init_params="mc", n_iter=20, random_state=0)
    model.startprob_ = np.array([1.0, 0.0, 0.0])
    model.transmat_ = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    model.fit(X)
    assert model.startprob_[1] == 0 and model.startprob_[2] == 0
    assert model.transmat_[0, 2] == 0 and model.transmat_[1, 0] == 0
    assert np.all(model.transmat_[2, :2] == 0)
    assert_allclose(model.transmat_.sum(axis=1), 1.0)


def test_init_params_overwriting_a_set_parameter_warns():
    X, _ = sample_gaussian(100)
    model = GaussianHMM(3, n_iter=1, random_state=0)
    model.startprob_ = np.array([0.4, 0.3, 0.3])
    with pytest.warns(UserWarning, match="startprob_.*overwritten"):
        model.fit(X)


@pytest.mark.parametrize("ct,K", [("diag", 3), ("spherical", 3), ("diag", 10)])
def test_fused_pass_agrees_with_hmmlearn_and_the_three_passes(ct, K, monkeypatch):
    """Many short sequences ('diag' / 'spherical', K <= 16): the fused EM pass
    (``_hmm.gaussian_em_pass``) runs; 10 iterations from the same start agree with hmmlearn
    within 1e-8, and with the three separate passes (forced by making no sequence set
    'spread') within 1e-11; the fit is bitwise the same for 1, 2, 3 threads."""
    hmm = pytest.importorskip("hmmlearn.hmm")
    from vbfast.hmm import _sequences

    rng = np.random.RandomState(K)
    D = 3
    means = rng.normal(scale=1.0, size=(K, D))  # (overlapping: no early convergence)
    lengths = [1, 2] + list(rng.randint(20, 80, size=60))
    z = np.repeat(rng.randint(K, size=sum(lengths)), 1)
    z = np.repeat(z[::4], 4)[:sum(lengths)]
    X = means[z] + rng.normal(size=(len(z), D))
    start = {"startprob_": np.full(K, 1.0 / K), "transmat_": np.full((K, K), 1.0 / K),
             "means_": means + rng.normal(scale=0.5, size=means.shape),
             "covars_": np.full((K, D), 1.5) if ct == "diag" else np.full(K, 1.5)}

    def fit(model):
        for name, value in start.items():
            setattr(model, name, value.copy())
        return model.fit(X, lengths)

    assert _sequences.Sequences(lengths, len(X), 1).spread
    fused = [fit(GaussianHMM(K, ct, init_params="", n_iter=10, tol=0,
                                 n_threads=t))
             for t in (1, 2, 3)]
    theirs = fit(hmm.GaussianHMM(K, ct, init_params="", n_iter=10, tol=-np.inf,
                                 implementation="scaling"))
    monkeypatch.setattr(_sequences, "SPREAD_SHARE", 10 ** 9)
    assert not _sequences.Sequences(lengths, len(X), 1).spread
    three = fit(GaussianHMM(K, ct, init_params="", n_iter=10, tol=0, n_threads=2))
    ours = fused[0]
    for name in ("startprob_", "transmat_", "means_", "_covars_", "lower_bounds_"):
        assert all(getattr(f, name).tobytes() == getattr(ours, name).tobytes()
                   for f in fused[1:])
        assert_allclose(getattr(ours, name), getattr(three, name), rtol=1e-11, atol=1e-13)
    assert_allclose(list(ours.monitor_.history), list(theirs.monitor_.history), rtol=1e-8)
    assert_allclose(ours.startprob_, theirs.startprob_, rtol=1e-8, atol=1e-12)
    assert_allclose(ours.transmat_, theirs.transmat_, rtol=1e-8, atol=1e-12)
    assert_allclose(ours.means_, theirs.means_, rtol=1e-8, atol=1e-12)
    their_cov = theirs._covars_[:, 0] if ct == "spherical" else theirs._covars_
    assert_allclose(ours._covars_, their_cov, rtol=1e-8)


def test_deterministic_for_any_thread_count():
    X, _ = sample_gaussian(3000, seed=2)
    lengths = [500] * 6
    fits = [GaussianHMM(3, "full", n_iter=5, random_state=0, n_threads=t).fit(X, lengths)
            for t in (1, 2)]
    for name in ("startprob_", "transmat_", "means_", "_covars_", "lower_bounds_"):
        assert getattr(fits[0], name).tobytes() == getattr(fits[1], name).tobytes()
    # the small-K kernels ('diag' / 'spherical' statistics and log-densities, padded lanes)
    for ct in ("diag", "spherical"):
        fits = [GaussianHMM(10, ct, n_iter=3, random_state=0, n_threads=t).fit(X, lengths)
                for t in (1, 2)]
        for name in ("startprob_", "transmat_", "means_", "_covars_", "lower_bounds_"):
            assert getattr(fits[0], name).tobytes() == getattr(fits[1], name).tobytes()


# ---------------------------------------------------------------------------- never NaN
def _all_finite(model):
    params = [model.startprob_, model.transmat_]
    params += [model.means_, model._covars_] if hasattr(model, "means_") else \
        [model.emissionprob_]
    return all(np.isfinite(p).all() for p in params)


@pytest.mark.parametrize("ct", COV_TYPES)
def test_unvisited_states_never_nan(ct):
    """hmmlearn #169 #186 #285: more states than the data support -> "startprob_ must sum
    to 1 (got nan)" and zero transmat rows. Here unvisited states keep their parameters."""
    rng = np.random.RandomState(0)
    X = np.repeat(rng.normal(size=(3, 2)) * 10, 40, axis=0)  # 3 distinct points, duplicated
    X = X + rng.normal(scale=1e-3, size=X.shape)
    model = GaussianHMM(8, ct, n_iter=30, random_state=0).fit(X, [60, 60])
    assert _all_finite(model)
    assert_allclose(model.transmat_.sum(axis=1), 1.0)
    assert_allclose(model.startprob_.sum(), 1.0)
    assert np.isfinite(model.score(X))
    assert model.n_kept_states_ > 0


@pytest.mark.parametrize("ct", COV_TYPES)
def test_constant_stretches_and_collinear_data(ct):
    """hmmlearn #408 #528 #569: covariances that stop being positive-definite. Here they are
    floored by min_covar every iteration."""
    t = np.linspace(0, 1, 300)
    X = np.column_stack([t, 2 * t, -t])  # rank one
    X[100:200] = 0.5  # a constant stretch
    model = GaussianHMM(3, ct, n_iter=20, random_state=0).fit(X)
    assert _all_finite(model)
    cov = model.covars_
    assert np.all(np.linalg.eigvalsh(cov) >= model.min_covar * (1 - 1e-9))
    assert np.isfinite(model.score(X))


def test_fewer_samples_than_states():
    X = np.array([[0.0], [1.0], [2.0]])
    model = GaussianHMM(5, "diag", n_iter=5, random_state=0).fit(X)
    assert _all_finite(model)
    assert np.isfinite(model.score(X))
    cat = CategoricalHMM(5, n_iter=5, random_state=0).fit(np.array([[0], [1]]))
    assert _all_finite(cat)


def test_categorical_symbols_unseen_in_a_sequence():
    S = np.array([[0], [1], [0], [2], [1], [0], [1], [1]])
    model = CategoricalHMM(3, n_features=6, n_iter=20, random_state=0).fit(S, [4, 4])
    assert _all_finite(model)
    assert model.emissionprob_.shape == (3, 6)
    assert np.all(model.emissionprob_[:, 3:] == 0)
    assert_allclose(model.emissionprob_.sum(axis=1), 1.0)
    assert model.score(np.array([[5]])) == -np.inf  # never NaN
    assert model.n_features == 6  # the parameter is left as given


# ---------------------------------------------------------------------------- bad input
def test_bad_input_raises_value_error_naming_it():
    X, _ = sample_gaussian(50)
    model = GaussianHMM(2, n_iter=2, random_state=0)
    with pytest.raises(ValueError, match="lengths sum to 40"):
        model.fit(X, [20, 20])
    with pytest.raises(ValueError, match="lengths must be positive"):
        model.fit(X, [50, 0])
    with pytest.raises(ValueError, match="lengths must be positive"):
        model.fit(X, [60, -10])
    assert_rejects_nonfinite(model.fit, X)
    user = GaussianHMM(2, init_params="mc", n_iter=2)
    user.startprob_ = np.array([0.5, 0.5])
    user.transmat_ = np.array([[0.5, 0.6], [0.5, 0.5]])
    with pytest.raises(ValueError, match="transmat_ rows must sum to 1"):
        user.fit(X)
    user.transmat_ = np.array([[0.5, 0.5], [0.5, 0.5]])
    user.startprob_ = np.array([0.7, 0.7])
    with pytest.raises(ValueError, match="startprob_ must sum to 1"):
        user.fit(X)
    with pytest.raises(ValueError, match="covariance_type"):
        GaussianHMM(2, "bogus").fit(X)
    fitted = GaussianHMM(2, n_iter=2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="features"):
        fitted.score(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="lengths sum"):
        fitted.predict(X, [10])
    with pytest.raises(ValueError, match="algorithm"):
        fitted.decode(X, algorithm="forward")


def test_categorical_bad_symbols():
    model = CategoricalHMM(2, n_iter=2, random_state=0)
    with pytest.raises(ValueError, match="integers"):
        model.fit(np.array([[0.5], [1.0]]))
    with pytest.raises(ValueError, match="nonnegative"):
        model.fit(np.array([[0], [-1]]))
    with pytest.raises(ValueError, match="NaN"):
        model.fit(np.array([[0.0], [np.nan]]))
    with pytest.raises(ValueError, match="shape"):
        model.fit(np.array([[0, 1], [1, 0]]))
    with pytest.raises(ValueError, match="Largest symbol is 4"):
        CategoricalHMM(2, n_features=3).fit(np.array([[0], [4]]))
    fitted = model.fit(np.array([[0], [1], [1], [0]]))
    with pytest.raises(ValueError, match="Largest symbol"):
        fitted.predict(np.array([[2]]))


def test_unfitted_raises_not_fitted():
    with pytest.raises(vbfast.NotFittedError):
        GaussianHMM(2).score(np.zeros((3, 1)))


def test_pickle_roundtrip():
    import pickle

    X, _ = sample_gaussian(200)
    model = GaussianHMM(3, "tied", n_iter=3, random_state=0).fit(X)
    copy = pickle.loads(pickle.dumps(model))
    assert_array_equal(copy.covars_, model.covars_)
    assert copy.score(X) == model.score(X)
