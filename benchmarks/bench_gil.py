"""Two fits in two Python threads against the same two fits one after the other, each fit
with ``n_threads=1``: the kernels release the GIL, so on two idle cores the threaded pair
should take about half the time of the sequential pair (compare ``time_two_fits`` across the
``mode`` parameter). The results are equal either way (tests/test_gil.py).

GaussianMixture: N=100,000, D=16, K=8, 'full', 10 EM iterations (tol=0) from k-means.
LatentDirichletAllocation: 2,000 documents, 500 words, 10 topics, 10 batch iterations.
"""
import threading
import warnings

import numpy as np

N_ITER = 10


def _gmm_data(seed):
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 4.0, size=(8, 16))
    return means[rng.integers(8, size=100_000)] + rng.standard_normal((100_000, 16))


def _lda_data(seed):
    rng = np.random.default_rng(seed)
    topics = rng.dirichlet(np.full(500, 0.1), size=10)
    theta = rng.dirichlet(np.full(10, 0.3), size=2000)
    return np.array([rng.multinomial(100, t @ topics) for t in theta], dtype=np.float64)


def _make(model):
    from vbfast import GaussianMixture, LatentDirichletAllocation

    if model == "GaussianMixture":
        return GaussianMixture(8, covariance_type="full", max_iter=N_ITER, tol=0.0,
                               random_state=0, n_threads=1)
    return LatentDirichletAllocation(10, max_iter=N_ITER, random_state=0, n_threads=1)


def _fit(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _make(model).fit(X)


class TwoFits:
    params = (["GaussianMixture", "LatentDirichletAllocation"], ["sequential", "threaded"])
    param_names = ["model", "mode"]
    timeout = 600
    number = 1
    repeat = 3
    warmup_time = 0

    def setup(self, model, mode):
        make = _gmm_data if model == "GaussianMixture" else _lda_data
        self.data = [make(1), make(2)]
        _fit(model, self.data[0])  # imports, thread pools, BLAS controller

    def time_two_fits(self, model, mode):
        if mode == "sequential":
            for X in self.data:
                _fit(model, X)
            return
        threads = [threading.Thread(target=_fit, args=(model, X)) for X in self.data]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
