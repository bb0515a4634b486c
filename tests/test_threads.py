"""The thread count every pass gets: capped at the cores available, whatever is asked."""
import numpy as np
import pytest

from vbfast import GaussianMixture, LatentDirichletAllocation
from vbfast._core import threads


@pytest.mark.parametrize("asked", [3, 2000, 10 ** 6, 2 ** 40])
def test_n_threads_capped_at_available_cores(asked):
    assert threads.resolve_n_threads(asked) == min(asked, threads.available_cores())
    assert threads.threads_for(asked, 10 ** 9) == min(asked, threads.available_cores())


@pytest.mark.filterwarnings("ignore::vbfast.ConvergenceWarning")
@pytest.mark.parametrize("asked", [2000, 2 ** 40])
def test_huge_n_threads_fits_as_all_cores(asked):
    """Every kernel (the LDA topics' expectation included) gets at most the cores: no
    thousands of threads per iteration, no overflow of a C int."""
    counts = np.random.RandomState(0).poisson(0.5, size=(200, 30)).astype(float)
    a = LatentDirichletAllocation(3, random_state=0, max_iter=3, n_threads=asked).fit(counts)
    b = LatentDirichletAllocation(3, random_state=0, max_iter=3, n_threads=None).fit(counts)
    np.testing.assert_array_equal(a.components_, b.components_)
    X = np.random.RandomState(0).normal(size=(3000, 2))
    g = GaussianMixture(2, random_state=0, n_threads=asked).fit(X)
    h = GaussianMixture(2, random_state=0).fit(X)
    np.testing.assert_array_equal(g.means_, h.means_)
