"""Repeated fits do not leak: 200 fit + predict calls, cycling over every estimator variant of
``vbfast._registry`` (with 1 and 2 threads), leave resident memory and the Python heap where a
warm-up left them, up to allocator noise.

Thresholds: a leak of one copy of X per mixture fit alone would add 100 * 9.6 kB = 0.96 MB
of RSS here (more for per-iteration leaks; checked by injecting one); the RSS noise measured on
Linux was ~0.06 MB, the threshold is 0.5 MB. Peak memory of a large fit is an asv benchmark (benchmarks/bench_memory.py).
"""
import gc
import os
import sys
import tracemalloc
import warnings

import pytest

from vbfast._registry import ESTIMATORS, prediction_outputs

N_FITS = 200


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _fit_predict_loop(n_fits, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(n_fits):
            entry, X = data[i % len(data)]
            est = entry.make(random_state=i, n_threads=1 + i % 2, max_iter=5).fit(X)
            prediction_outputs(est, X)
    gc.collect()


@pytest.fixture(scope="module")
def data():
    # 400 rows x 3 features (dense), 100 documents x 40 words (counts)
    return [(e, e.sample_data(n_samples=400 if e.data == "dense" else 100, seed=i))
            for i, e in enumerate(ESTIMATORS)]


def test_no_python_heap_growth(data):
    """Python-level objects (numpy arrays included), on every platform; fewer fits because
    tracing slows them down: a leaked X per fit would still add 48 * 6.4 kB = 300 kB."""
    n_fits = 6 * len(data)
    _fit_predict_loop(2 * len(data), data)  # warm-up: caches, thread pools, lazy imports
    tracemalloc.start()
    try:
        _fit_predict_loop(len(data), data)
        before = tracemalloc.get_traced_memory()[0]
        _fit_predict_loop(n_fits, data)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 100 * 1024, f"Python heap grew by {(after - before) / 1e6:.3f} MB"


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="reads the resident set size from /proc (Linux only); the Python "
                           "heap test above runs everywhere")
def test_no_resident_memory_growth(data):
    _fit_predict_loop(3 * len(data), data)
    before = _rss_bytes()
    _fit_predict_loop(N_FITS, data)
    grown = _rss_bytes() - before
    assert grown < 512 * 1024, f"RSS grew by {grown / 1e6:.3f} MB over {N_FITS} fits"


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("weighted", [False, True])
def test_initial_hard_assignments_without_n_by_k_array(covariance_type, weighted, monkeypatch):
    """k-means-style initial labels give the statistics of their one-hot (N, K) array, built
    block by block (blocks shrunk here to a group each so that 1000 rows span several): the
    very bits of the pass over the (N, K) array."""
    import numpy as np

    from vbfast._core import blocks
    from vbfast.emissions import gaussian as G

    rng = np.random.RandomState(0)
    X = rng.normal(size=(1000, 3)) + 10.0
    w = rng.uniform(0.5, 2.0, size=1000) if weighted else None
    labels = rng.randint(-1, 4, size=1000)  # -1: a row in no component
    one_hot = np.zeros((1000, 4))
    one_hot[labels >= 0, labels[labels >= 0]] = 1.0
    data = G.GaussianPass(X, w, covariance_type, 4, 2)
    expected = data.stats_from_resp(one_hot)
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 1)
    assert len(data.plan(extra_row_bytes=32)) > 2
    got = data.stats_from_resp(G.HardAssignments(labels, 4))
    assert sorted(got) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
