"""Fits in a child process made by fork after a multi-threaded fit in the parent.

libgomp is not fork-safe: a forked child that enters a multi-threaded OpenMP region after the
parent ran one hangs. vbfast runs a forked child's passes on one thread (results do not
depend on the thread count), so the child finishes and computes the parent's numbers.
Python's default start method on Linux is fork, so this is what multiprocessing users get.
"""
import multiprocessing
import sys

import numpy as np
import pytest

from vbfast import GaussianMixture, LatentDirichletAllocation
from vbfast._core import threads

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="fork with libgomp: Linux")


def _blobs():
    return np.random.RandomState(0).normal(size=(6000, 3))


def _counts():
    return np.random.RandomState(0).poisson(0.5, size=(400, 60)).astype(float)


def _fits():
    """One fit per kernel family, each asking for 2 threads."""
    gm = GaussianMixture(2, random_state=0, n_threads=2, max_iter=5).fit(_blobs())
    lda = LatentDirichletAllocation(3, random_state=0, n_threads=2, max_iter=2).fit(_counts())
    gibbs = LatentDirichletAllocation(3, method="gibbs", random_state=0, n_threads=2,
                                      burn_in=2).fit(_counts())
    return (gm.lower_bounds_, lda.components_, gibbs.components_,
            threads.resolve_n_threads(2))


@pytest.mark.filterwarnings("ignore::vbfast.ConvergenceWarning")
def test_fit_in_a_child_forked_after_a_parallel_fit():
    if threads.available_cores() < 2:
        pytest.skip("the parent's passes are parallel only with 2 cores or more")
    parent = _fits()
    assert threads._parallel_used  # the parent did run parallel passes
    pool = multiprocessing.get_context("fork").Pool(1)
    try:
        child = pool.apply_async(_fits).get(timeout=120)  # a hang fails here
    finally:
        pool.terminate()
    for a, b in zip(parent[:3], child[:3]):
        np.testing.assert_array_equal(a, b)
    assert child[3] == 1  # the child's passes ran on one thread
    assert parent[3] == 2
