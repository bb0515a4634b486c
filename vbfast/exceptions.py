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


class NotFittedError(ValueError, AttributeError):
    """The estimator is used before ``fit``."""


_interop_not_fitted = None


def not_fitted_error_class():
    """The class to raise for use before ``fit``: ``NotFittedError``, or, when scikit-learn is
    already imported, a subclass of both it and scikit-learn's ``NotFittedError``, so code
    (pipelines, meta-estimators, the estimator checks) catching scikit-learn's class works.
    scikit-learn is never imported for this."""
    global _interop_not_fitted
    sk = sys.modules.get("sklearn.exceptions")
    if sk is None:
        return NotFittedError
    if _interop_not_fitted is None:
        _interop_not_fitted = type("NotFittedError", (NotFittedError, sk.NotFittedError),
                                   {"__module__": __name__, "__doc__": NotFittedError.__doc__})
    return _interop_not_fitted
