"""The finiteness scan (``vbfast._core._scan.all_finite`` through
``vbfast._core.validation.all_finite``) against NumPy's ``np.isfinite(X).all()``."""
import numpy as np
import pytest

from vbfast._core import _scan
from vbfast._core.validation import all_finite, check_array


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 65535, 65536, 65537, 200_003])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_all_finite_matches_numpy(dtype, n, n_threads):
    rng = np.random.RandomState(n)
    x = rng.standard_normal(n).astype(dtype) * 1e30
    assert _scan.all_finite(x, n_threads) is True
    # one bad value anywhere: the first, the last, a chunk's edges, inside the 8-value tail
    where = {0, n - 1, n // 2, 65535, 65536, n - n % 8} & set(range(n))
    for i in sorted(where):
        for bad in (np.nan, np.inf, -np.inf):
            y = x.copy()
            y[i] = bad
            assert _scan.all_finite(y, n_threads) is bool(np.isfinite(y).all()) is False


def test_all_finite_largest_values_and_signed_zero():
    # values whose products with 0 are -0.0 or 0.0, and the largest finite ones, pass
    for dtype in (np.float64, np.float32):
        info = np.finfo(dtype)
        x = np.array([info.max, -info.max, info.tiny, -0.0, 0.0, info.smallest_subnormal,
                      -info.smallest_subnormal] * 5, dtype=dtype)
        assert all_finite(x, 2)


def test_all_finite_other_layouts_fall_back_to_numpy():
    x = np.arange(24, dtype=np.float64).reshape(4, 6)
    assert all_finite(x[:, ::2])  # not contiguous
    y = x.copy()[:, ::2]
    y[1, 1] = np.inf
    assert not all_finite(y)
    assert all_finite(np.arange(5))  # integers
    assert not all_finite(np.array([1.0, np.nan], dtype=np.float16))


def test_all_finite_refuses_no_threads():
    with pytest.raises(ValueError, match="n_threads"):
        _scan.all_finite(np.zeros(3), 0)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_check_array_names_the_bad_value_and_keeps_the_input(n_threads):
    X = np.ones((70_000, 3))
    X[69_999, 2] = np.inf
    with pytest.raises(ValueError, match="contains infinity"):
        check_array(X, n_threads=n_threads)
    X[69_999, 2] = np.nan
    with pytest.raises(ValueError, match="contains NaN"):
        check_array(X, n_threads=n_threads)
    assert check_array(X, allow_nan=True, n_threads=n_threads) is X
    X[0, 0] = -np.inf
    before = X.copy()
    with pytest.raises(ValueError, match="infinity"):
        check_array(X, allow_nan=True, n_threads=n_threads)
    assert np.array_equal(before, X, equal_nan=True)
