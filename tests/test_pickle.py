"""Pickle round trip and deepcopy of fitted estimators, every variant of
``vbfast._registry``: the copies hold bit-identical fitted attributes and predict the same."""
import copy
import pickle
import warnings

import pytest

from vbfast._registry import ESTIMATORS, fingerprint, fitted_attributes, prediction_outputs

CASES = [pytest.param(entry, extra, id=f"{entry.name}{'-' + vid if vid else ''}")
         for entry in ESTIMATORS for vid, extra in entry.variants()]


@pytest.mark.parametrize("entry,extra", CASES)
def test_pickle_and_deepcopy_of_fitted(entry, extra):
    X = entry.sample_data(n_samples=200, seed=8)
    X_new = entry.sample_data(n_samples=50, seed=9)
    est = entry.make(random_state=0, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    expected = fingerprint(prediction_outputs(est, X_new))
    attributes = fingerprint(fitted_attributes(est))
    for clone in (pickle.loads(pickle.dumps(est, protocol=pickle.HIGHEST_PROTOCOL)),
                  pickle.loads(pickle.dumps(est, protocol=2)), copy.deepcopy(est)):
        assert type(clone) is type(est)
        assert clone.get_params().keys() == est.get_params().keys()
        assert fingerprint(fitted_attributes(clone)) == attributes
        assert fingerprint(prediction_outputs(clone, X_new)) == expected
    # the original is unaffected by predictions of its copies
    assert fingerprint(prediction_outputs(est, X_new)) == expected


@pytest.mark.parametrize("entry", ESTIMATORS, ids=[e.name for e in ESTIMATORS])
def test_pickle_unfitted_then_fit(entry):
    X = entry.sample_data(n_samples=200, seed=10)
    est = pickle.loads(pickle.dumps(entry.make(random_state=0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = est.fit(X)
        b = entry.make(random_state=0).fit(X)
    assert fingerprint(fitted_attributes(a)) == fingerprint(fitted_attributes(b))
