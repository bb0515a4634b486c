"""Warnings and errors raised by vbfast."""
import sys


class ConvergenceWarning(UserWarning):
    """A fit stopped at ``max_iter`` before the lower bound converged."""


class BoundDecreaseWarning(RuntimeWarning):
    """The lower bound (ELBO or log-likelihood) decreased between iterations.

    For exact EM and mean-field updates the bound cannot decrease, so a decrease beyond
    rounding signals a wrong update, bad numerical conditioning, or (for EM with
    ``reg_covar``) the regularisation moving the optimum.
    """


class DegenerateComponentWarning(UserWarning):
    """A fit re-seeded degenerate mixture components (``on_degenerate='reseed'``): components
    with less than one point's weight, or whose covariance was not positive-definite, were
    replaced by splitting another component. Emitted once per fit; the count is the fitted
    ``n_reseeds_``."""


class NotFittedError(ValueError, AttributeError):
    """The estimator is used before ``fit``."""


_interop = {}


def _with_sklearn_base(cls):
    """``cls``, or, when scikit-learn is already imported, a subclass of both ``cls`` and
    scikit-learn's class of the same name, so that code catching or filtering scikit-learn's
    class (pipelines, meta-estimators, warning filters, the estimator checks) sees ours too.
    scikit-learn is never imported for this."""
    sk = sys.modules.get("sklearn.exceptions")
    if sk is None:
        return cls
    if cls not in _interop:
        _interop[cls] = type(cls.__name__, (cls, getattr(sk, cls.__name__)),
                             {"__module__": __name__, "__doc__": cls.__doc__})
    return _interop[cls]


def not_fitted_error_class():
    """The class to raise for use before ``fit`` (see ``_with_sklearn_base``)."""
    return _with_sklearn_base(NotFittedError)


def convergence_warning_class():
    """The class of the warning a fit that did not converge emits (see
    ``_with_sklearn_base``)."""
    return _with_sklearn_base(ConvergenceWarning)
