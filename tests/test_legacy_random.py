"""``legacy_gamma`` (NumPy's legacy Gamma draws in C, src_c/common/vbf_mt19937.h) against
``RandomState.gamma`` itself: the same bits and the same state after."""
import numpy as np
import pytest

from vbfast._core import _legacy_random
from vbfast._core.sampling import LEGACY_GAMMA_MIN_DRAWS, legacy_gamma


def _same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(
        a.view(np.uint64), b.view(np.uint64))


def _same_stream_after(ours, numpys):
    """The next draws of every kind agree (words, the cached Gaussian, the position)."""
    ours_state, numpys_state = ours.get_state(), numpys.get_state()
    assert ours_state[0] == numpys_state[0]
    assert np.array_equal(ours_state[1], numpys_state[1])
    assert ours_state[2:] == numpys_state[2:]
    assert ours.standard_normal() == numpys.standard_normal()
    assert ours.random_sample() == numpys.random_sample()
    assert _same_bits(ours.gamma(3.0, 1.0, 5), numpys.gamma(3.0, 1.0, 5))


@pytest.mark.parametrize("shape", [100.0, 2.5, 1.0 + 1e-12, 1.0, 0.7, 1e-3, 0.0])
@pytest.mark.parametrize("size", [0, 1, 7, 313, (20, 157), (3, 0)])
@pytest.mark.parametrize("seed", [0, 1, 12345])
@pytest.mark.parametrize("cached_gauss", [False, True])
def test_legacy_gamma_is_numpys(shape, size, seed, cached_gauss):
    ours, numpys = np.random.RandomState(seed), np.random.RandomState(seed)
    if cached_gauss:  # a Gaussian left over in the cache, which the first draw consumes
        ours.standard_normal(1), numpys.standard_normal(1)
    got = legacy_gamma(ours, shape, 0.01, size, min_draws=0)
    assert _same_bits(got, numpys.gamma(shape, 0.01, size))
    _same_stream_after(ours, numpys)


def test_legacy_gamma_across_refills_and_positions():
    """Many seeds, every position in a block of 624 words touched (odd prefixes of words
    drawn first), blocks long enough to cross several refills, scales other than 0.01."""
    for seed in range(40):
        ours, numpys = np.random.RandomState(seed), np.random.RandomState(seed)
        prefix = seed * 7 % 624
        ours.randint(2 ** 31, size=prefix), numpys.randint(2 ** 31, size=prefix)
        for shape, scale, size in [(100.0, 0.01, (20, 311)), (5.0, 3.0, 1001),
                                   (0.3, 2.0, 999), (1.0, 0.5, 17)]:
            assert _same_bits(legacy_gamma(ours, shape, scale, size, min_draws=0),
                              numpys.gamma(shape, scale, size))
        _same_stream_after(ours, numpys)


def test_legacy_gamma_special_values():
    """shape and scale at the edges give NumPy's numbers (inf, NaN, zero) too."""
    for shape, scale in [(np.inf, 1.0), (np.nan, 1.0), (2.0, np.nan), (2.0, np.inf),
                         (0.0, np.inf), (2.0, 0.0), (np.float32(3.5), 2)]:
        ours, numpys = np.random.RandomState(5), np.random.RandomState(5)
        assert _same_bits(legacy_gamma(ours, shape, scale, 11, min_draws=0),
                          numpys.gamma(shape, scale, 11))
        _same_stream_after(ours, numpys)


def test_legacy_gamma_other_bit_generator_and_arrays_use_numpy():
    """A RandomState on another bit generator, array-valued shape, size None: NumPy's own
    call (the same numbers as it, trivially, and the same types of result)."""
    ours = np.random.RandomState(np.random.PCG64(3))
    numpys = np.random.RandomState(np.random.PCG64(3))
    assert _same_bits(legacy_gamma(ours, 100.0, 0.01, 9, min_draws=0),
                      numpys.gamma(100.0, 0.01, 9))
    ours, numpys = np.random.RandomState(3), np.random.RandomState(3)
    shapes = np.array([0.5, 2.0, 100.0])
    assert _same_bits(legacy_gamma(ours, shapes, 0.01, 3, min_draws=0),
                      numpys.gamma(shapes, 0.01, 3))
    assert legacy_gamma(ours, 2.0, 1.0, None, min_draws=0) == numpys.gamma(2.0, 1.0, None)
    _same_stream_after(ours, numpys)


@pytest.mark.parametrize("shape, scale, size", [
    (-1.0, 1.0, 3), (1.0, -1.0, 3), (-0.0, 1.0, 3), (1.0, -0.0, 3), (-np.inf, 1.0, 3),
    ("a", 1.0, 3), (None, 1.0, 3), (1j, 1.0, 3), (1.0, 1.0, -1), (1.0, 1.0, 2.5),
    (1.0, 1.0, (2, -1)), (1.0, 1.0, "a"), (-1.0, 1.0, -1)])
def test_legacy_gamma_refuses_what_numpy_refuses(shape, scale, size):
    """Bad shape, scale or size: the error type NumPy raises (and its message for a negative
    parameter), the state untouched."""
    with pytest.raises(Exception) as numpys_error:
        np.random.RandomState(0).gamma(shape, scale, size)
    ours = np.random.RandomState(0)
    before = ours.get_state()
    with pytest.raises(numpys_error.type) as our_error:
        legacy_gamma(ours, shape, scale, size, min_draws=0)
    if "< 0" in str(numpys_error.value):
        assert str(our_error.value) == str(numpys_error.value)
    after = ours.get_state()
    assert np.array_equal(before[1], after[1]) and before[2:] == after[2:]


def test_legacy_gamma_default_threshold():
    """Blocks above and below ``LEGACY_GAMMA_MIN_DRAWS`` (C, then NumPy's call, in turns on
    one stream): NumPy's numbers and state either way."""
    ours, numpys = np.random.RandomState(8), np.random.RandomState(8)
    for size in [(20, LEGACY_GAMMA_MIN_DRAWS // 20 + 1), (3, 5), (LEGACY_GAMMA_MIN_DRAWS,),
                 LEGACY_GAMMA_MIN_DRAWS - 1]:
        assert _same_bits(legacy_gamma(ours, 100.0, 0.01, size),
                          numpys.gamma(100.0, 0.01, size))
        _same_stream_after(ours, numpys)


def test_gamma_fill_refuses_a_bad_state():
    out = np.empty(3)
    with pytest.raises(ValueError, match="624 words"):
        _legacy_random.gamma_fill(np.zeros(5, dtype=np.uint32), 0, False, 0.0, 2.0, 1.0, out)
    with pytest.raises(ValueError, match="624 words"):
        _legacy_random.gamma_fill(np.zeros(624, dtype=np.uint32), 625, False, 0.0, 2.0, 1.0,
                                  out)
