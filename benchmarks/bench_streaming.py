"""asv suites of the ways past one machine's memory, each side by side with the in-memory
batch fit on the same data (``_data.make_data``: N=200,000, D=16, K=16, float64):

- ``PartialFit``: 20 ``partial_fit`` steps of 10,000 rows (one pass over the rows; the first
  call starts from the given parameters) against one batch EM iteration over the same rows
  (``fit`` with ``max_iter=1`` from the same start). The scripts with the accuracy target are
  ``bench_partial_fit.py`` (1M rows).
- ``OutOfCore``: ``MAX_ITER`` EM iterations on a ``numpy.memmap`` of the rows (the file in
  the page cache) against the same fit in memory (bitwise the same result). The 4 GB case and
  the Dask cluster are in ``bench_blocks.py``.
- ``LdaOutOfCore``: ``LatentDirichletAllocation`` (batch mean field, K=20, 3 iterations) on a
  memmap of dense counts (``_lda_data.make_corpus``, 4,000 documents x 2,000 words, 64 MB)
  against the same corpus in memory as CSR (bitwise the same result; the memmap side reads
  and converts its blocks to CSR in every pass).

    asv run --quick --bench bench_streaming
"""
import os
import tempfile
import warnings

import numpy as np

try:  # asv imports this module as ``benchmarks.bench_streaming``
    from . import _data, _lda_data
    from ._asv import OneCallSamples
except ImportError:  # imported as a top-level module, e.g. with benchmarks/ on sys.path
    import _data
    import _lda_data
    from _asv import OneCallSamples

from vbfast import GaussianMixture, LatentDirichletAllocation

BATCH = 10_000


class PartialFit(OneCallSamples):
    params = (["full", "diag"], ["partial_fit_pass", "em_iteration"])
    param_names = ["covariance_type", "side"]
    repeat = 3
    timeout = 600

    def setup_cache(self):
        return _data.make_data()

    def setup(self, X, covariance_type, side):
        self.X = X
        self.init = _data.make_init(X, covariance_type)
        self.covariance_type = covariance_type

    def _start(self):
        return GaussianMixture(_data.N_COMPONENTS, covariance_type=self.covariance_type,
                               total_samples=self.X.shape[0], tol=0.0, max_iter=1,
                               **self.init)

    def time_pass(self, X, covariance_type, side):
        est = self._start()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if side == "em_iteration":
                est.fit(X)
            else:
                for start in range(0, X.shape[0], BATCH):
                    est.partial_fit(X[start:start + BATCH])


class OutOfCore(OneCallSamples):
    params = (["diag", "full"], ["memmap", "memory"])
    param_names = ["covariance_type", "source"]
    repeat = 3
    timeout = 900

    def setup(self, covariance_type, source):
        X = _data.make_data()
        self.dir = tempfile.mkdtemp()
        path = os.path.join(self.dir, "X.npy")
        np.save(path, X)
        self.X = np.load(path, mmap_mode="r") if source == "memmap" else X
        np.asarray(self.X).sum()  # the file into the page cache
        self.init = _data.make_init(X, covariance_type)

    def teardown(self, covariance_type, source):
        for name in os.listdir(self.dir):
            os.remove(os.path.join(self.dir, name))
        os.rmdir(self.dir)

    def time_fit(self, covariance_type, source):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            GaussianMixture(_data.N_COMPONENTS, covariance_type=covariance_type, tol=0.0,
                            max_iter=_data.MAX_ITER, **self.init).fit(self.X)

    def peakmem_fit(self, covariance_type, source):
        self.time_fit(covariance_type, source)


class LdaOutOfCore(OneCallSamples):
    params = (["memmap", "memory_csr"],)
    param_names = ["source"]
    repeat = 3
    timeout = 900

    def setup(self, source):
        X, _, _ = _lda_data.make_corpus(n_docs=4000, n_words=2000, n_heldout=0)
        if source == "memmap":
            self.dir = tempfile.mkdtemp()
            path = os.path.join(self.dir, "X.npy")
            np.save(path, X.toarray())
            self.X = np.load(path, mmap_mode="r")
            np.asarray(self.X).sum()  # the file into the page cache
        else:
            self.dir = None
            self.X = X

    def teardown(self, source):
        if self.dir is not None:
            for name in os.listdir(self.dir):
                os.remove(os.path.join(self.dir, name))
            os.rmdir(self.dir)

    def time_fit(self, source):
        LatentDirichletAllocation(20, max_iter=3, random_state=0).fit(self.X)
