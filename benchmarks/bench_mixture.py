"""Gaussian mixture benchmarks: vbfast and scikit-learn side by side.

N=200,000 rows, D=16, K=16, float64, drawn once from a random mixture (``_data.make_data``);
both libraries start EM from the same parameters (``_data.make_init``) and run exactly
``MAX_ITER`` iterations (tol=0, n_init=1). vbfast uses every core (n_threads=None), scikit-learn
its BLAS's default thread count.

The data and the initial parameters are made once per class by ``setup_cache`` (asv pickles the
result and hands it to every ``setup`` and benchmark as the first argument).
"""
import numpy as np

try:  # asv imports this module as ``benchmarks.bench_mixture``
    from . import _data
    from ._asv import OneCallSamples
except ImportError:  # imported as a top-level module, e.g. with benchmarks/ on sys.path
    import _data
    from _asv import OneCallSamples


def _cache():
    X = _data.make_data()
    return {"X": X, "inits": _data.make_all_inits(X)}


class GaussianMixtureFit(OneCallSamples):
    """One EM fit of MAX_ITER iterations from a fixed initialisation.

    scikit-learn's full-covariance fit took 25-35 s on a 2-core machine, and far longer
    on a busy machine (multithreaded BLAS under contention), hence the long timeout."""

    params = (list(_data.COVARIANCE_TYPES), list(_data.LIBRARIES))
    param_names = ["covariance_type", "library"]
    timeout = 1800
    repeat = 3

    def setup_cache(self):
        return _cache()

    def setup(self, cache, covariance_type, library):
        self.X = cache["X"]
        self.init = cache["inits"][covariance_type]
        self.covariance_type = covariance_type
        self.library = library
        # both libraries imported whichever is measured: the same baseline for peakmem_fit
        _data.import_libraries()

    def _fit(self):
        est = _data.make_estimator(self.library, self.covariance_type, self.init)
        return _data.fit_quietly(est, self.X)

    def time_fit(self, cache, covariance_type, library):
        self._fit()

    def peakmem_fit(self, cache, covariance_type, library):
        self._fit()


class GaussianMixtureScoreSamples(OneCallSamples):
    """One ``score_samples`` (an E-step without statistics) on the N rows, at parameters fitted
    by one EM iteration from the fixed initialisation."""

    params = (list(_data.COVARIANCE_TYPES), list(_data.LIBRARIES))
    param_names = ["covariance_type", "library"]
    timeout = 600
    repeat = 5

    def setup_cache(self):
        return _cache()

    def setup(self, cache, covariance_type, library):
        self.X = cache["X"]
        est = _data.make_estimator(library, covariance_type, cache["inits"][covariance_type],
                                   max_iter=1)
        self.model = _data.fit_quietly(est, self.X)
        self.model.score_samples(self.X[:1000])  # warm-up (thread pools, lazy state)

    def time_score_samples(self, cache, covariance_type, library):
        self.model.score_samples(self.X)


class MatmulReference(OneCallSamples):
    """A plain NumPy (N, D) @ (D, K*D) matmul, in row chunks: the FLOP count (2 N K D^2) of the
    full-covariance E-step's products, on BLAS's default threads. time_score_samples('full', ...)
    divided by this relates the E-step's FLOP rate to BLAS's."""

    timeout = 600
    repeat = 5

    def setup_cache(self):
        return _data.make_data()

    def setup(self, X):
        self.X = X
        self.W, self.out = _data.matmul_operands(X)
        _data.chunked_matmul(X[:1000], self.W, self.out)  # warm-up

    def time_matmul_full_estep_flops(self, X):
        _data.chunked_matmul(self.X, self.W, self.out)

    def track_matmul_gflops(self, X):
        """Best of 3 runs, in GFLOP/s."""
        import time

        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            _data.chunked_matmul(self.X, self.W, self.out)
            best = min(best, time.perf_counter() - t0)
        n, d = self.X.shape
        return _data.estep_flops(n, d, _data.N_COMPONENTS) / best / 1e9

    track_matmul_gflops.unit = "GFLOP/s"


class GaussianMixtureFitPyCave(OneCallSamples):
    """PyCave's published workloads, one GaussianMixture EM fit (tol=0) from the same start for
    both libraries (``_data.make_init`` rules), and vbfast on the same rows as float32:
    'full' is ``_data.PYCAVE_FULL`` (N = 100,000, D = 32, K = 16, MAX_ITER iterations), 'diag'
    is ``_data.PYCAVE_DIAG`` (N = 1,000,000, D = 64, K = 64, 512 MB of float64 rows,
    ``_data.PYCAVE_DIAG_MAX_ITER`` iterations)."""

    params = (["full", "diag"], ["vbfast", "vbfast_float32", "sklearn"])
    param_names = ["covariance_type", "library"]
    timeout = 3600
    repeat = 2

    def setup_cache(self):
        cache = {}
        for covariance_type, shape in (("full", _data.PYCAVE_FULL),
                                       ("diag", _data.PYCAVE_DIAG)):
            X = _data.make_data(**shape)
            cache[covariance_type] = (X, _data.make_init(
                X, covariance_type, n_components=shape["n_components"]))
        return cache

    def setup(self, cache, covariance_type, library):
        X, self.init = cache[covariance_type]
        self.X = X.astype(np.float32) if library == "vbfast_float32" else X
        self.library = "vbfast" if library == "vbfast_float32" else library
        self.max_iter = (_data.PYCAVE_DIAG_MAX_ITER if covariance_type == "diag"
                         else _data.MAX_ITER)
        _data.import_libraries()

    def time_fit(self, cache, covariance_type, library):
        est = _data.make_estimator(self.library, covariance_type, self.init,
                                   max_iter=self.max_iter)
        _data.fit_quietly(est, self.X)
