"""Fits in concurrent Python threads, every estimator variant of ``vbfast._registry``: the
kernels release the GIL, and two fits running at once give exactly the results of the same
fits run one after the other; the BLAS thread limit they share is restored once both are done.
(The speed-up of two threaded fits over two sequential ones is measured in
``benchmarks/bench_gil.py``, not asserted here.)"""
import threading
import warnings

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from vbfast._registry import ESTIMATORS, fingerprint, fitted_attributes, prediction_outputs
from _helpers import run_together


def _fit(entry, X, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = entry.make(random_state=seed, n_threads=1,
                         **entry.fixed_length_params(5)).fit(X)
    return fingerprint((fitted_attributes(est), prediction_outputs(est, X)))


def _blas_threads():
    return sorted(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")


# warnings.catch_warnings is not thread-safe: filter the small max_iter's warning here instead
@pytest.mark.filterwarnings("ignore::vbfast.ConvergenceWarning")
@pytest.mark.parametrize("entry", ESTIMATORS, ids=[e.name for e in ESTIMATORS])
def test_two_threaded_fits_equal_sequential_fits(entry):
    jobs = [(entry.sample_data(n_samples=600, seed=11), 0),
            (entry.sample_data(n_samples=600, seed=12), 1)]
    with threadpool_limits(limits=2, user_api="blas"):
        blas_before = _blas_threads()
        sequential = [_fit(entry, X, seed) for X, seed in jobs]
        results = [None, None]

        def work(i):
            for _ in range(2):  # overlap the fits for several of their iterations
                results[i] = _fit(entry, *jobs[i])

        errors = run_together(work, 2, timeout=300)
        assert not errors, errors
        assert results == sequential
        assert _blas_threads() == blas_before  # the shared limit was released exactly once


def test_blas_limit_shared_by_overlapping_fits():
    """Fit A enters, fit B enters, A leaves while B still runs, then B leaves: B keeps BLAS at
    one thread until it is done, and the caller's setting comes back once, at the end."""
    from vbfast._core.threads import single_threaded_blas

    a_in, b_in, a_out, b_checked = (threading.Event() for _ in range(4))
    seen = {}

    def fit_a():
        with single_threaded_blas():
            a_in.set()
            b_in.wait(10)
        a_out.set()

    def fit_b():
        a_in.wait(10)
        with single_threaded_blas():
            b_in.set()
            a_out.wait(10)
            seen["inside B after A left"] = _blas_threads()
        b_checked.set()

    with threadpool_limits(limits=2, user_api="blas"):
        original = _blas_threads()
        assert set(original) == {2}
        threads = [threading.Thread(target=f) for f in (fit_a, fit_b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert b_checked.is_set()
        assert set(seen["inside B after A left"]) == {1}
        assert _blas_threads() == original


def test_blas_single_threaded_in_kernels_of_threaded_fits(kernel_spy):
    """A fit in a worker thread limits BLAS too, even after fits in the main thread and while
    the main thread holds its own threadpoolctl limit."""
    entry = ESTIMATORS[0]
    X = entry.sample_data(n_samples=300, seed=13)
    _fit(entry, X, 0)  # a fit in the main thread first
    seen = []
    kernel_spy.hook = lambda name: seen.append(_blas_threads())
    with threadpool_limits(limits=2, user_api="blas"):
        thread = threading.Thread(target=_fit, args=(entry, X, 0))
        thread.start()
        thread.join(60)
        assert set(_blas_threads()) == {2}
    assert seen and all(set(threads) == {1} for threads in seen), seen[:3]
