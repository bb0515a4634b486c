"""Determinism over every estimator variant of ``vbfast._registry``: the thread count (OpenMP
and BLAS) never changes a bit of the fitted attributes, traces or predictions; the same
random_state gives the same fit; BLAS runs on one thread inside our parallel kernels."""
import warnings

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import vbfast._core.threads
import vbfast.topics.lda
from vbfast._registry import ESTIMATORS, fingerprint, fitted_attributes, prediction_outputs

CASES = [pytest.param(entry, extra, id=f"{entry.name}{'-' + vid if vid else ''}")
         for entry in ESTIMATORS for vid, extra in entry.variants()]


@pytest.fixture
def parallel_on_small_data(monkeypatch):
    """Let the kernels use every thread asked for even on test-sized data (the size
    thresholds only trade speed; results must not depend on them)."""
    monkeypatch.setattr(vbfast._core.threads, "MIN_ROWS_PER_THREAD", 1)
    monkeypatch.setattr(vbfast.topics.lda, "_MIN_NNZ_PER_THREAD", 1)


def _fit(entry, extra, X, **params):
    est = entry.make(random_state=0, **{**entry.fixed_length_params(6), **extra, **params})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at the small max_iter
        est.fit(X)
    return est


def _assert_identical(a, b, X):
    fa, fb = fitted_attributes(a), fitted_attributes(b)
    assert sorted(fa) == sorted(fb)
    assert "lower_bounds_" in fa
    for name in fa:
        assert fingerprint(fa[name]) == fingerprint(fb[name]), name
    pa, pb = prediction_outputs(a, X), prediction_outputs(b, X)
    for name in pa:
        assert fingerprint(pa[name]) == fingerprint(pb[name]), name


@pytest.mark.parametrize("entry,extra", CASES)
def test_n_threads_1_and_2_bitwise_identical(entry, extra, parallel_on_small_data):
    X = entry.sample_data(n_samples=600, seed=1)
    one = _fit(entry, extra, X, n_threads=1)
    two = _fit(entry, extra, X, n_threads=2)
    assert len(one.lower_bounds_) == 6
    _assert_identical(one, two, X)


@pytest.mark.parametrize("entry,extra", CASES)
def test_same_random_state_twice_identical(entry, extra):
    X = entry.sample_data(n_samples=300, seed=2)
    _assert_identical(_fit(entry, extra, X, n_threads=2), _fit(entry, extra, X, n_threads=2),
                      X)


def _blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.mark.parametrize("entry", ESTIMATORS, ids=[e.name for e in ESTIMATORS])
def test_blas_thread_count_does_not_change_results(entry):
    X = entry.sample_data(n_samples=400, seed=3)
    fits = []
    for blas_threads in (1, 2):
        with threadpool_limits(limits=blas_threads, user_api="blas"):
            fits.append(_fit(entry, {}, X, n_threads=2))
    _assert_identical(*fits, X)


@pytest.mark.parametrize("entry", ESTIMATORS, ids=[e.name for e in ESTIMATORS])
def test_blas_single_threaded_inside_kernels(entry, kernel_spy):
    """No oversubscription: while our OpenMP kernels run (n_threads=2), BLAS (which they call
    from every thread) is limited to one thread; the caller's BLAS setting is restored after."""
    assert _blas_threads(), "no BLAS library found by threadpoolctl; the test would be vacuous"
    seen = []
    kernel_spy.hook = lambda name: seen.append((name, _blas_threads()))
    X = entry.sample_data(n_samples=400, seed=4)
    with threadpool_limits(limits=2, user_api="blas"):
        est = _fit(entry, {}, X, n_threads=2)
        prediction_outputs(est, X)
        assert set(_blas_threads()) == {2}
    assert seen, "no kernel call was observed"
    bad = [(name, threads) for name, threads in seen if set(threads) != {1}]
    assert not bad, bad[:5]
