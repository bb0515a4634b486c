"""Property-based fuzzing (hypothesis) of every estimator variant in ``vbfast._registry``.

Inputs vary over shape, dtype (float32/float64/int), memory layout (C, Fortran, strided views),
read-only buffers, sparse formats (count data), and degenerate content: one sample per
component, duplicate rows, constant columns, empty documents, magnitudes ~1e-150 and ~1e+150.
The property: the fit either raises a ValueError/TypeError with a message, or returns a model
whose fitted attributes and predictions contain no NaN (and no infinity except where a value
is legitimately -inf, e.g. a log of a zero weight). Never a crash, hang or silent NaN.
The examples are derandomized (the same on every run) and few, to keep the suite fast.
"""
import os
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vbfast._registry import ESTIMATORS, fitted_attributes, prediction_outputs

# 40 examples per test keep this file at a few seconds; VBFAST_FUZZ_EXAMPLES=400 for a longer
# hunt (run once, all passed, ~50 s).
SETTINGS = settings(max_examples=int(os.environ.get("VBFAST_FUZZ_EXAMPLES", 40)),
                    deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

DEGENERATE = ["none", "duplicate_rows", "constant_column", "one_per_component", "all_equal"]


@st.composite
def dense_cases(draw):
    return dict(
        n_samples=draw(st.integers(1, 40)),
        n_features=draw(st.integers(1, 5)),
        n_components=draw(st.integers(1, 3)),
        exponent=draw(st.sampled_from([0, 0, -150, 150, -20, 20])),
        dtype=draw(st.sampled_from(["float64", "float32", "int64"])),
        layout=draw(st.sampled_from(["C", "F", "strided"])),
        readonly=draw(st.booleans()),
        degenerate=draw(st.sampled_from(DEGENERATE)),
        seed=draw(st.integers(0, 2 ** 16)),
    )


@st.composite
def count_cases(draw):
    return dict(
        n_samples=draw(st.integers(1, 40)),
        n_features=draw(st.integers(1, 30)),
        n_components=draw(st.integers(1, 4)),
        density=draw(st.sampled_from([0.0, 0.05, 0.3, 1.0])),
        exponent=draw(st.sampled_from([0, 0, -150, 150, 3])),
        dtype=draw(st.sampled_from(["float64", "float32", "int64"])),
        layout=draw(st.sampled_from(["C", "F", "strided", "csr", "csc", "coo"])),
        readonly=draw(st.booleans()),
        degenerate=draw(st.sampled_from(DEGENERATE)),
        seed=draw(st.integers(0, 2 ** 16)),
    )


def _degrade(X, case, rng):
    kind = case["degenerate"]
    n = X.shape[0]
    if kind == "duplicate_rows" and n > 1:
        X = X[rng.randint(0, max(1, n // 3), size=n)]
    elif kind == "constant_column":
        X[:, rng.randint(X.shape[1])] = X[0, 0]
    elif kind == "one_per_component":
        X = X[:case["n_components"]]
    elif kind == "all_equal":
        X[:] = X[0]
    return X


def _lay_out(X, case):
    if case["dtype"] != "int64":
        with np.errstate(over="ignore"):  # float32 overflow: the estimator must reject inf
            X = X.astype(case["dtype"])
    else:
        X = np.rint(X).astype(np.int64)
    layout = case["layout"]
    if layout == "F":
        X = np.asfortranarray(X)
    elif layout == "strided":
        big = np.zeros((X.shape[0] * 2, X.shape[1] * 3), dtype=X.dtype)
        big[::2, ::3] = X
        X = big[::2, ::3]
        assert not X.flags.c_contiguous or X.size <= 1
    elif layout in ("csr", "csc", "coo"):
        X = getattr(sp, f"{layout}_matrix")(X)
    if case["readonly"]:
        for arr in ([X] if not sp.issparse(X) else
                    [getattr(X, a) for a in ("data", "indices", "indptr", "row", "col")
                     if hasattr(X, a)]):
            arr.setflags(write=False)
    return X


def _dense_data(case, nan_fraction=0.0):
    rng = np.random.RandomState(case["seed"])
    X = rng.normal(size=(case["n_samples"], case["n_features"]))
    X = _degrade(X, case, rng)
    if case["dtype"] != "int64":
        X = X * 10.0 ** case["exponent"]
        if nan_fraction:  # missing values (an integer array cannot hold NaN)
            X[np.random.RandomState(case["seed"] + 1).uniform(size=X.shape)
              < nan_fraction] = np.nan
    else:
        X = X * 100
    return _lay_out(X, case)


def _count_data(case):
    rng = np.random.RandomState(case["seed"])
    shape = (case["n_samples"], case["n_features"])
    X = rng.poisson(3.0, size=shape) * (rng.uniform(size=shape) < case["density"])
    X = _degrade(X.astype(np.float64), case, rng)
    if case["exponent"] and case["dtype"] != "int64":
        X = X * 10.0 ** case["exponent"]
    return _lay_out(X, case)


def _check_finite(name, value, no_words=False):
    """No NaN; no infinity except where documented."""
    if isinstance(value, tuple):
        for v in value:
            _check_finite(name, v)
        return
    arr = np.asarray(value)
    if arr.dtype.kind in "fc":
        assert not np.isnan(arr).any(), f"NaN in {name}"
        if name == "score_samples":  # a log-density may underflow to -inf far from the data
            return
        if name in ("bound_", "perplexity"):
            # a perplexity, exp(-bound / n_words): +inf without words (documented) or when
            # the counts are so small that it overflows; never NaN, never <= 0
            assert arr > 0, f"{name} = {arr}"
            if no_words:
                assert arr == np.inf
            return
        assert np.isfinite(arr).all(), f"non-finite values in {name}"


def _fit_or_clear_error(entry, case, X):
    est = entry.make(random_state=0, n_components=case["n_components"], max_iter=20)
    snapshot = None if sp.issparse(X) else X.copy()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence / bound-decrease warnings allowed
            est.fit(X)
    except (ValueError, TypeError) as exc:
        assert str(exc), "an error without a message"
        return None
    if snapshot is not None:  # the input is never written to
        np.testing.assert_array_equal(X, snapshot)
    no_words = entry.data == "counts" and not (X.sum() if sp.issparse(X) else np.sum(X))
    for name, value in fitted_attributes(est).items():
        _check_finite(name, value, no_words)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            outputs = prediction_outputs(est, X)
        except (ValueError, TypeError) as exc:
            # prediction may overflow where the fit did not; it must say so
            assert str(exc)
            return est
    for name, value in outputs.items():
        _check_finite(name, value)
    return est


_DENSE = [e for e in ESTIMATORS if e.data == "dense"]
_DENSE_MISSING = [e for e in ESTIMATORS if e.data == "dense_missing"]
_COUNTS = [e for e in ESTIMATORS if e.data == "counts"]


@pytest.mark.parametrize("entry", _DENSE, ids=[e.name for e in _DENSE])
@SETTINGS
@given(case=dense_cases(), covariance=st.sampled_from(["full", "tied", "diag", "spherical"]))
def test_dense_estimators_fit_or_refuse(entry, case, covariance):
    X = _dense_data(case)
    entry = type(entry)(**{**entry.__dict__, "params": {**entry.params,
                                                          "covariance_type": covariance}})
    _fit_or_clear_error(entry, case, X)


@pytest.mark.parametrize("entry", _DENSE_MISSING, ids=[e.name for e in _DENSE_MISSING])
@SETTINGS
@given(case=dense_cases(), covariance=st.sampled_from(["full", "tied", "diag", "spherical"]),
       nan_fraction=st.sampled_from([0.0, 0.1, 0.3, 0.7, 1.0]))
def test_dense_missing_estimators_fit_or_refuse(entry, case, covariance, nan_fraction):
    X = _dense_data(case, nan_fraction)
    entry = type(entry)(**{**entry.__dict__, "params": {**entry.params,
                                                          "covariance_type": covariance}})
    _fit_or_clear_error(entry, case, X)


@pytest.mark.parametrize("entry", _COUNTS, ids=[e.name for e in _COUNTS])
@SETTINGS
@given(case=count_cases())
def test_count_estimators_fit_or_refuse(entry, case):
    _fit_or_clear_error(entry, case, _count_data(case))


@pytest.mark.parametrize("entry", _DENSE, ids=[e.name for e in _DENSE])
def test_well_posed_degenerate_inputs_are_fitted(entry):
    """Degenerate but well-posed inputs must give a model, not an error."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    cases = {
        "constant column": np.column_stack([X[:, :2], np.full(60, 7.0)]),
        "duplicate rows": np.repeat(X[:20], 3, axis=0),
        "one sample per component": X[:2],
        "tiny magnitudes": X * 1e-150,
        "huge magnitudes": X * 1e150,
        "float32 Fortran read-only": _readonly(np.asfortranarray(X, dtype=np.float32)),
        "strided view": np.repeat(X, 2, axis=1)[:, ::2],
    }
    for what, data in cases.items():
        est = entry.make(random_state=0, n_components=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(data)
        for name, value in fitted_attributes(est).items():
            _check_finite(f"{what}: {name}", value)


def _readonly(X):
    X.setflags(write=False)
    return X


def test_float32_parameters_that_overflow_are_refused():
    X = np.random.RandomState(0).normal(size=(50, 2)) * 1e20  # variances ~1e40 > float32 max
    from vbfast import GaussianMixture

    est = GaussianMixture(2, random_state=0)
    with pytest.raises(ValueError, match="overflow float32"):
        est.fit(X.astype(np.float32))
    assert not hasattr(est, "means_")
    assert np.isfinite(est.fit(X).covariances_).all()  # float64 holds them


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_singular_default_covariance_prior_gets_reg_covar(covariance_type):
    from vbfast import BayesianGaussianMixture

    rng = np.random.RandomState(1)
    X = np.column_stack([rng.normal(size=40), np.full(40, 3.0)])  # a constant column
    est = BayesianGaussianMixture(n_components=2, covariance_type=covariance_type,
                                  reg_covar=1e-4, random_state=0).fit(X)
    cov = np.cov(X.T)  # the default prior, singular here
    expected = {"full": cov + 1e-4 * np.eye(2), "tied": cov + 1e-4 * np.eye(2),
                "diag": np.diag(cov) + 1e-4,
                # one variance for all columns: positive, so left alone
                "spherical": np.diag(cov).mean()}[covariance_type]
    np.testing.assert_allclose(est.covariance_prior_, expected, rtol=1e-12, atol=1e-15)
    assert np.isfinite(est.lower_bounds_).all()
    # a proper default prior is left alone (scikit-learn's default)
    Y = rng.normal(size=(40, 2))
    est = BayesianGaussianMixture(n_components=2, covariance_type="full", random_state=0)
    np.testing.assert_allclose(est.fit(Y).covariance_prior_, np.cov(Y.T), rtol=1e-12)


def test_lda_perplexity_of_no_words():
    from vbfast import LatentDirichletAllocation

    X = np.zeros((4, 5))
    est = LatentDirichletAllocation(2, max_iter=2, random_state=0).fit(X)
    assert est.bound_ == np.inf
    with pytest.raises(ValueError, match="no words"):
        est.perplexity(X)
