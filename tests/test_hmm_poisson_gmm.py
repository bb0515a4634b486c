"""PoissonHMM and GMMHMM (method='em'): agreement with hmmlearn from the same start, bad
input refused with a ValueError naming it, never NaN on degenerate data, the hmmlearn API."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import vbfast
from vbfast._core.threads import resolve_n_threads
from vbfast.hmm import GMMHMM, PoissonHMM, _sequences
from _helpers import assert_same_hmm_scores

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

LAM = np.array([[1.0, 5.0], [8.0, 0.5], [3.0, 3.0]])
MEANS = np.array([[0.0, 0.0], [4.0, 4.0], [-4.0, 4.0]])
LENGTHS = [200, 300]


def _states(n=500, seed=0):
    rng = np.random.RandomState(seed)
    return np.cumsum(rng.rand(n) < 0.1) % 3, rng


def poisson_data(seed=0):
    z, rng = _states(seed=seed)
    return rng.poisson(LAM[z])


def gmm_data(seed=0):
    z, rng = _states(seed=seed)
    # two scales within every state: a true two-component mixture
    return MEANS[z] + rng.normal(size=(500, 2)) * np.where(rng.rand(500, 1) < 0.5, 1, 0.3)


def set_poisson(m):
    m.startprob_ = np.array([0.4, 0.3, 0.3])
    m.transmat_ = np.full((3, 3), 1 / 3)
    m.lambdas_ = LAM + 0.7
    return m


def gmm_covars(ct):
    return {"diag": np.full((3, 2, 2), 1.5), "spherical": np.full((3, 2), 1.5),
            "full": np.tile(np.eye(2) * 1.5, (3, 2, 1, 1)),
            "tied": np.tile(np.eye(2) * 1.5, (3, 1, 1))}[ct]


def set_gmm(m, ct):
    m.startprob_ = np.array([0.4, 0.3, 0.3])
    m.transmat_ = np.full((3, 3), 1 / 3)
    m.weights_ = np.full((3, 2), 0.5)
    m.means_ = np.stack([MEANS + 0.5, MEANS - 0.5], axis=1)
    m.covars_ = gmm_covars(ct)
    return m


def _compare_common(ours, theirs, X, rtol=1e-8):
    assert_allclose(list(ours.monitor_.history), list(theirs.monitor_.history), rtol=rtol)
    assert_allclose(ours.lower_bounds_, list(theirs.monitor_.history), rtol=rtol)
    assert_allclose(ours.startprob_, theirs.startprob_, rtol=rtol, atol=1e-12)
    assert_allclose(ours.transmat_, theirs.transmat_, rtol=rtol, atol=1e-12)
    assert_same_hmm_scores(ours, theirs, X, LENGTHS)


@pytest.mark.parametrize("priors", [{}, {"lambdas_prior": 2.0, "lambdas_weight": 0.5,
                                         "transmat_prior": 2.0}])
def test_poisson_agrees_with_hmmlearn_from_the_same_start(priors):
    hmm = pytest.importorskip("hmmlearn.hmm")
    X = poisson_data()
    ours = set_poisson(PoissonHMM(3, init_params="", n_iter=10, tol=0, **priors))
    theirs = set_poisson(hmm.PoissonHMM(3, init_params="", n_iter=10, tol=0,
                                        implementation="scaling", **priors))
    ours.fit(X, LENGTHS)
    theirs.fit(X, LENGTHS)
    _compare_common(ours, theirs, X)
    assert_allclose(ours.lambdas_, theirs.lambdas_, rtol=1e-8)
    assert_allclose(ours.aic(X, LENGTHS), theirs.aic(X, LENGTHS), rtol=1e-12)
    assert_allclose(ours.bic(X, LENGTHS), theirs.bic(X, LENGTHS), rtol=1e-12)


@pytest.mark.parametrize("ct", ["diag", "spherical", "full", "tied"])
@pytest.mark.parametrize("priors", [{}, {"means_weight": 0.5, "means_prior": 1.0,
                                         "weights_prior": 2.0, "startprob_prior": 1.5}])
def test_gmm_agrees_with_hmmlearn_from_the_same_start(ct, priors):
    hmm = pytest.importorskip("hmmlearn.hmm")
    X = gmm_data()
    ours = set_gmm(GMMHMM(3, 2, covariance_type=ct, init_params="", n_iter=10, tol=0,
                          **priors), ct)
    theirs = set_gmm(hmm.GMMHMM(3, 2, covariance_type=ct, init_params="", n_iter=10,
                                tol=-np.inf, implementation="scaling", **priors), ct)
    ours.fit(X, LENGTHS)
    theirs.fit(X, LENGTHS)
    _compare_common(ours, theirs, X)
    assert_allclose(ours.weights_, theirs.weights_, rtol=1e-8, atol=1e-12)
    assert_allclose(ours.means_, theirs.means_, rtol=1e-8, atol=1e-12)
    assert_allclose(ours.covars_, theirs.covars_, rtol=1e-8)
    # hmmlearn counts n_mix - 1 free weights in all (not per state): aic differs by that
    extra = 2 * (3 - 1) * (2 - 1)
    assert_allclose(ours.aic(X, LENGTHS) - extra, theirs.aic(X, LENGTHS), rtol=1e-12)


def test_exported():
    assert vbfast.PoissonHMM is PoissonHMM and vbfast.GMMHMM is GMMHMM


def test_poisson_fit_from_scratch_recovers_the_rates():
    X = np.concatenate([poisson_data(s) for s in range(4)])
    m = PoissonHMM(3, n_iter=100, random_state=1).fit(X, [500] * 4)
    order = np.argsort(m.lambdas_[:, 0])
    assert_allclose(m.lambdas_[order], LAM[np.argsort(LAM[:, 0])], rtol=0.15, atol=0.2)
    Xs, Z = m.sample(50, random_state=0)
    assert Xs.shape == (50, 2) and Z.shape == (50,)
    assert np.all(Xs >= 0) and np.all(Xs == np.floor(Xs))


def test_gmm_fit_from_scratch_and_api():
    X = gmm_data()
    for ct in ["diag", "spherical", "full", "tied"]:
        m = GMMHMM(3, 2, covariance_type=ct, n_iter=20, random_state=0).fit(X, LENGTHS)
        assert np.isfinite(m.lower_bounds_).all()
        assert m.means_.shape == (3, 2, 2) and m.weights_.shape == (3, 2)
        assert_allclose(m.weights_.sum(axis=1), 1.0)
        Xs, Z = m.sample(20, random_state=0)
        assert Xs.shape == (20, 2)
        assert m.predict(X, LENGTHS).shape == (500,)
        assert np.isfinite(m.bic(X, LENGTHS))


def test_poisson_bad_input_refused():
    m = PoissonHMM(2, n_iter=2)
    with pytest.raises(ValueError, match="negative counts"):
        m.fit(np.array([[1], [-1], [2]]))
    with pytest.raises(ValueError, match="non-integer"):
        m.fit(np.array([[1.5], [1.0], [2.0]]))
    with pytest.raises(ValueError, match="NaN"):
        m.fit(np.array([[1.0], [np.nan], [2.0]]))
    with pytest.raises(ValueError, match="lengths"):
        m.fit(np.array([[1], [0], [2]]), [2, 2])
    m.fit(np.array([[1], [0], [2], [4]]))
    with pytest.raises(ValueError, match="negative counts"):
        m.score(np.array([[-3]]))
    bad = PoissonHMM(2, init_params="st")
    bad.lambdas_ = np.array([[1.0], [-1.0]])
    with pytest.raises(ValueError, match="lambdas_"):
        bad.fit(np.array([[1], [0], [2]]))


def test_gmm_bad_parameters_refused():
    X = gmm_data()
    m = GMMHMM(3, 2, init_params="st")
    m.weights_ = np.full((3, 2), 0.5)
    m.means_ = np.zeros((3, 2, 2))
    m.covars_ = np.full((3, 2), 1.0)  # 'diag' needs (3, 2, 2)
    with pytest.raises(ValueError, match="covars"):
        m.fit(X)
    m.covars_ = np.full((3, 2, 2), 1.0)
    m.weights_ = np.full((3, 2), 0.7)
    with pytest.raises(ValueError, match="weights_"):
        m.fit(X)


def test_poisson_zero_rates_and_all_zero_data_never_nan():
    X = np.zeros((30, 2), dtype=int)
    m = PoissonHMM(3, n_iter=5, random_state=0).fit(X)
    assert np.isfinite(m.lambdas_).all() and np.isfinite(m.lower_bounds_).all()
    # a feature that is zero in one state: rate 0 exactly, and the data still scores
    X = np.array([[0, 3], [0, 4], [5, 0], [6, 0]] * 20)
    m = PoissonHMM(2, n_iter=20, random_state=0).fit(X)
    assert np.isfinite(m.score(X)) and np.isfinite(m.predict_proba(X)).all()


@pytest.mark.parametrize("ct", ["diag", "spherical", "full", "tied"])
def test_gmm_degenerate_data_never_nan(ct):
    rng = np.random.RandomState(0)
    X = np.concatenate([np.full((40, 2), 3.0), rng.normal(size=(40, 2))])  # a constant stretch
    m = GMMHMM(4, 3, covariance_type=ct, n_iter=10, random_state=0).fit(X, [30, 50])
    for name in ("startprob_", "transmat_", "weights_", "means_", "covars_"):
        assert np.isfinite(getattr(m, name)).all(), name
    assert np.isfinite(m.score(X, [30, 50]))


def test_deterministic_for_any_thread_count():
    X = gmm_data()
    a = GMMHMM(3, 2, 1e-3, random_state=0, n_threads=1).fit(X, LENGTHS)
    b = GMMHMM(3, 2, 1e-3, random_state=0, n_threads=2).fit(X, LENGTHS)
    assert a.means_.tobytes() == b.means_.tobytes()
    assert a.covars_.tobytes() == b.covars_.tobytes()


def vbfast_cores():
    return resolve_n_threads(None)


@pytest.mark.parametrize("make", [
    lambda: (GMMHMM(3, 2, covariance_type="full", n_iter=5, random_state=0), gmm_data()),
    lambda: (GMMHMM(3, 2, covariance_type="diag", n_iter=5, random_state=0), gmm_data()),
    lambda: (PoissonHMM(3, n_iter=5, random_state=0), poisson_data()),
    lambda: (vbfast.GaussianHMM(3, "spherical", n_iter=5, random_state=0), gmm_data()),
    lambda: (vbfast.GaussianHMM(3, "tied", n_iter=5, random_state=0), gmm_data()),
])
def test_bitwise_identical_for_any_thread_count_with_threads_forced(monkeypatch, make):
    """Threads forced on small data (the work threshold lowered): every fitted array, the
    trace and the posteriors are the same bits for 1, 2 and 3 threads."""
    monkeypatch.setattr(_sequences, "MIN_WORK_PER_THREAD", 1)
    monkeypatch.setattr(_sequences, "MIN_WORK_PER_THREAD_IDLE", 1)
    monkeypatch.setattr(_sequences, "ROWS_PER_GROUP", 64)  # several groups of sequences
    lengths = [7, 120, 33, 90, 1, 249]  # (sums to 500) uneven groups, a length-1 sequence
    outs = []
    for n_threads in (1, 2, 3):
        est, X = make()
        est.set_params(n_threads=n_threads)
        est.fit(X, lengths)
        post = est.predict_proba(X, lengths)
        seqs = _sequences.Sequences(lengths, len(X), est.n_threads, est.n_components)
        assert seqs.n_groups > 1 and seqs.n_threads == min(n_threads, vbfast_cores())
        outs.append([np.asarray(v).tobytes() for k, v in sorted(vars(est).items())
                     if k.endswith("_") and not k.startswith("_") and k not in (
                         "iteration_times_", "monitor_")] + [post.tobytes()])
    assert outs[0] == outs[1] == outs[2]


@pytest.mark.parametrize("ct", ["full", "tied"])
def test_one_feature_full_and_tied_agree_with_hmmlearn(ct):
    """One feature takes the 'diag' kernels for 'full' / 'tied' (a 1 x 1 covariance is a
    variance): the same fit as hmmlearn's."""
    hmm = pytest.importorskip("hmmlearn.hmm")
    rng = np.random.RandomState(0)
    z = np.cumsum(rng.rand(600) < 0.1) % 3
    X = np.array([[0.0], [3.0], [-3.0]])[z] + rng.normal(size=(600, 1))
    fits = []
    for cls in (vbfast.GaussianHMM, hmm.GaussianHMM):
        m = cls(3, ct, init_params="", n_iter=10, tol=0, covars_prior=0.3, covars_weight=4.0)
        m.startprob_ = np.array([0.4, 0.3, 0.3])
        m.transmat_ = np.full((3, 3), 1 / 3)
        m.means_ = np.array([[0.5], [2.0], [-2.0]])
        m.covars_ = np.full((3, 1, 1), 2.0) if ct == "full" else np.full((1, 1), 2.0)
        fits.append(m.fit(X, [200, 400]))
    ours, theirs = fits
    assert_allclose(ours.lower_bounds_, list(theirs.monitor_.history), rtol=1e-10)
    assert_allclose(ours.covars_, theirs.covars_, rtol=1e-10)
    assert_allclose(ours.means_, theirs.means_, rtol=1e-10)
