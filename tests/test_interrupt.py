"""Ctrl-C during a fit, over every estimator variant of ``vbfast._registry``: the estimator is
left unfitted, or at its previous complete fit, never half-updated.

The interrupt is injected at a kernel call (``kernel_spy`` wraps every compiled kernel): that
is where a real SIGINT surfaces, since the kernels run without the GIL and Python raises
KeyboardInterrupt when control comes back to it. Calls are counted on an uninterrupted fit so
the interrupt lands at the start, the middle and near the end of the iterations.
"""
import signal
import warnings

import numpy as np
import pytest

from vbfast._registry import ESTIMATORS, fingerprint, fitted_attributes, prediction_outputs


def _state(est):
    """Everything the estimator holds, bit-exact."""
    return fingerprint(dict(vars(est)))


def _interrupt_after(kernel_spy, n_calls, real_signal):
    def hook(name):
        if len(kernel_spy.calls) > n_calls:
            kernel_spy.hook = None
            if real_signal:
                signal.raise_signal(signal.SIGINT)  # the default handler raises it
            raise KeyboardInterrupt
    kernel_spy.calls.clear()
    kernel_spy.hook = hook


def _quiet(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


@pytest.mark.parametrize("where", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("entry", ESTIMATORS, ids=[e.name for e in ESTIMATORS])
def test_interrupted_fit(entry, where, kernel_spy):
    params = dict(random_state=0, **entry.fixed_length_params(6))
    X_old = entry.sample_data(n_samples=200, seed=5)
    X_new = entry.sample_data(n_samples=250, seed=6)
    _quiet(entry.make(**params).fit, X_new)
    n_calls = len(kernel_spy.calls)
    assert n_calls >= 6
    stop_at = int(where * n_calls)
    real_signal = where == 0.5 and signal.getsignal(signal.SIGINT) is signal.default_int_handler

    # an unfitted estimator stays unfitted
    est = entry.make(**params)
    before = _state(est)
    _interrupt_after(kernel_spy, stop_at, real_signal)
    with pytest.raises(KeyboardInterrupt):
        _quiet(est.fit, X_new)
    assert _state(est) == before
    assert not [k for k in vars(est) if k.endswith("_")]

    # a fitted estimator keeps its previous fit, and predicts as before
    kernel_spy.hook = None
    _quiet(est.fit, X_old)
    before = _state(est)
    predictions = fingerprint(prediction_outputs(est, X_old))
    _interrupt_after(kernel_spy, stop_at, real_signal)
    with pytest.raises(KeyboardInterrupt):
        _quiet(est.fit, X_new)
    kernel_spy.hook = None
    assert _state(est) == before
    assert fingerprint(prediction_outputs(est, X_old)) == predictions

    # and it can be fitted again normally
    _quiet(est.fit, X_new)
    assert np.all(np.isfinite(est.lower_bounds_))


_PARTIAL = [e for e in ESTIMATORS if e.partial_fit]


@pytest.mark.parametrize("where", [0.0, 0.99])
@pytest.mark.parametrize("entry", _PARTIAL, ids=[e.name for e in _PARTIAL])
def test_interrupted_partial_fit(entry, where, kernel_spy):
    X = entry.sample_data(n_samples=300, seed=7)
    # count the kernel calls of an uninterrupted second step, to interrupt at the first and
    # at the last of them
    probe = entry.make(random_state=0)
    _quiet(probe.partial_fit, X[:100])
    kernel_spy.calls.clear()
    _quiet(probe.partial_fit, X[100:])
    stop_at = int(where * len(kernel_spy.calls))
    assert len(kernel_spy.calls) >= 1

    est = entry.make(random_state=0)
    _quiet(est.partial_fit, X[:100])
    before = _state(est)
    _interrupt_after(kernel_spy, stop_at, False)
    with pytest.raises(KeyboardInterrupt):
        est.partial_fit(X[100:])
    kernel_spy.hook = None
    assert _state(est) == before  # the traces, the running statistics and the random stream
    # and the stream continues as if the interrupted call had not been made
    _quiet(est.partial_fit, X[100:])
    assert fingerprint(fitted_attributes(est)) == fingerprint(fitted_attributes(probe))
