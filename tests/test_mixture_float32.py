"""Gaussian mixtures fitted on float32 X (issue 17; diag / spherical, and full / tied through
their fused tiles): the passes run in float32 (``GaussianPass.float32_work``; the kernel's
float32 tiles are tested in ``test_gmm_kernel.py``), the statistics summed in float64. Checked here: the optimum against
the float64 fit of the same data, the guard's tolerance following the passes' precision, and
the bound never decreasing by more than ``FLOAT32_BOUND_RTOL`` over many seeds with the guard
raising.
"""
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

from vbfast import BayesianGaussianMixture, GaussianMixture, config_context
from vbfast._core.loop import BOUND_RTOL, guard
from vbfast.emissions import gaussian as G
from vbfast.exceptions import BoundDecreaseWarning


def blobs(seed, n=3000, d=4, k=3, scale=6.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * scale + rng.uniform(-40, 40, size=d)
    z = rng.integers(k, size=n)
    X = centres[z] + rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=(k, d))[z]
    return np.ascontiguousarray(X.astype(np.float32))


@pytest.mark.parametrize("estimator", ["em", "bayesian"])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical", "full", "tied"])
def test_float32_fit_reaches_the_float64_optimum(covariance_type, estimator):
    """The same float32 data fitted with float32 passes and (as float64) with float64
    passes, from the same start to convergence: the optima agree within float32 tolerance,
    and the float32 fit's guard tolerance is the float32 one."""
    X = blobs(3)

    def fit(data):
        if estimator == "em":
            est = GaussianMixture(3, covariance_type=covariance_type, tol=1e-9, max_iter=500,
                                  random_state=0)
        else:
            est = BayesianGaussianMixture(n_components=3, covariance_type=covariance_type,
                                          tol=1e-9, max_iter=500, random_state=0)
        with config_context(bound_decrease="raise"):
            return est.fit(data)

    f32, f64 = fit(X), fit(X.astype(np.float64))
    assert f32.converged_ and f64.converged_
    assert f32.means_.dtype == np.float32
    scale = np.abs(f64.means_).max()
    assert_allclose(f32.means_, f64.means_, atol=2e-5 * scale)
    assert_allclose(f32.weights_, f64.weights_, atol=2e-5)
    assert_allclose(f32.covariances_, f64.covariances_, rtol=1e-4)
    assert_allclose(f32.lower_bound_, f64.lower_bound_, rtol=1e-6)


def test_bound_rtol_follows_the_passes_precision():
    """EM / mean field on float32 data expose FLOAT32_BOUND_RTOL, float64 data the float64
    one; the guard tolerates a decrease below its rtol and not one
    above it."""
    X = blobs(4, n=400)
    for ctype, dtype, want in [("diag", np.float32, G.FLOAT32_BOUND_RTOL),
                               ("spherical", np.float32, G.FLOAT32_BOUND_RTOL),
                               ("diag", np.float64, BOUND_RTOL),
                               ("full", np.float32, G.FLOAT32_BOUND_RTOL),
                               ("tied", np.float32, G.FLOAT32_BOUND_RTOL),
                               ("full", np.float64, BOUND_RTOL),
                               ("tied", np.float64, BOUND_RTOL)]:
        data = G.GaussianPass(X.astype(dtype), None, ctype, 3, 1, float32_work=True)
        assert data.bound_rtol == want, (ctype, dtype)
    assert G.FLOAT64_BOUND_RTOL == BOUND_RTOL
    assert BOUND_RTOL < G.FLOAT32_BOUND_RTOL < 1e-4
    with config_context(bound_decrease="raise"):
        guard(-100.0, -100.0 * (1 + 50 * BOUND_RTOL), 3, rtol=G.FLOAT32_BOUND_RTOL)
        with pytest.raises(FloatingPointError, match="decreased at iteration 3"):
            guard(-100.0, -100.0 * (1 + 50 * BOUND_RTOL), 3)
        with pytest.raises(FloatingPointError, match="decreased"):
            guard(-100.0, -100.0 * (1 + 2 * G.FLOAT32_BOUND_RTOL), 3,
                  rtol=G.FLOAT32_BOUND_RTOL)


def monotone_case(seed):
    """A random small problem: N 50..1,500 rows, D 1..12, K 2..6, clusters around an offset."""
    rng = np.random.default_rng(seed)
    n, d, k = int(rng.integers(50, 1500)), int(rng.integers(1, 13)), int(rng.integers(2, 7))
    X = (rng.normal(size=(n, d)) * rng.uniform(0.3, 3.0, size=d)
         + rng.integers(0, k, size=(n, 1)) * rng.uniform(-4, 4, size=d)
         + rng.uniform(-50, 50, size=d))
    return np.ascontiguousarray(X.astype(np.float32)), k


@pytest.mark.parametrize("covariance_type", ["diag", "spherical", "full", "tied"])
def test_float32_bound_monotone_under_its_tolerance(covariance_type):
    """Many seeds, 100 iterations each with tol=0 (well past convergence, where rounding is
    all that moves the bound), the guard raising: no decrease beyond FLOAT32_BOUND_RTOL,
    EM and mean field. Some of the fits do decrease by more than the float64 tolerance
    (which float32 passes would trip)."""
    beyond_float64 = 0
    for seed in range(12):
        X, k = monotone_case(seed)
        for est in (GaussianMixture(k, covariance_type=covariance_type, max_iter=100, tol=0,
                                    random_state=seed),
                    BayesianGaussianMixture(n_components=k, covariance_type=covariance_type,
                                            max_iter=100, tol=0, random_state=seed)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=UserWarning)
                warnings.simplefilter("error", category=BoundDecreaseWarning)
                with config_context(bound_decrease="raise"):
                    est.fit(X)
            b = np.asarray(est.lower_bounds_)
            decrease = (b[:-1] - b[1:]) / np.abs(b[:-1])
            beyond_float64 += int((decrease > BOUND_RTOL).any())
    assert beyond_float64 > 0


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_float32_full_tied_wide_data_keeps_float64_passes(covariance_type):
    """The float32 'full' / 'tied' tiles square x - m in float32: data spread beyond
    FLOAT32_TILE_MAX_DEVIATION from the shift, or sample weights beyond
    FLOAT32_TILE_MAX_WEIGHT, keep float64 passes (and the float64 guard tolerance)."""
    X = blobs(1, n=300)
    ok = G.GaussianPass(X, None, covariance_type, 3, 1, float32_work=True)
    assert ok.float32_work and ok.bound_rtol == G.FLOAT32_BOUND_RTOL
    wide = X.copy()
    wide[7, 0] = np.float32(ok.shift[0] + 2.0 * G.FLOAT32_TILE_MAX_DEVIATION)
    assert not G.GaussianPass(wide, None, covariance_type, 3, 1, float32_work=True).float32_work
    w = np.ones(len(X))
    assert G.GaussianPass(X, w, covariance_type, 3, 1, float32_work=True).float32_work
    w[3] = 2.0 * G.FLOAT32_TILE_MAX_WEIGHT
    heavy = G.GaussianPass(X, w, covariance_type, 3, 1, float32_work=True)
    assert not heavy.float32_work and heavy.bound_rtol == BOUND_RTOL
