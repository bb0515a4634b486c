"""Warnings and errors raised by vbfast."""


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
