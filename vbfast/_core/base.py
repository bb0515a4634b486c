"""The iteration loop shared by every fitting method.

A method is a small object (a "fit state") holding its current theta or q(theta). The loop asks it
for one step at a time: a pass over the data followed by the update of the global quantities,
returning the lower bound (log-likelihood for EM, ELBO for mean field, log joint for Gibbs).
The loop owns everything around that: initialisation and n_init restarts, warm starts,
convergence on the bound, the bound-decrease guard, verbose progress, the traces
(``lower_bounds_`` and per-iteration wall time) and non-convergence warnings. Fitted attributes
are set once, at the end, from the best run, so an interrupted fit (Ctrl-C between iterations)
leaves the estimator as it was.
"""
import functools
import time
import warnings

import numpy as np

from .config import get_config
from ..exceptions import BoundDecreaseWarning, ConvergenceWarning


def all_or_nothing(fit_method):
    """Decorate a fitting method so that if it raises (KeyboardInterrupt included), the
    estimator's attributes are put back as they were before the call: an interrupted fit
    leaves the estimator unfitted or at its previous complete fit, never half-updated.

    The snapshot is shallow (a fit replaces its fitted arrays rather than writing into them);
    lists are copied (traces appended in place) and numpy RandomState objects have their state
    saved, so that an interrupted ``partial_fit`` does not advance the random stream either.
    """

    @functools.wraps(fit_method)
    def wrapper(self, *args, **kwargs):
        saved = dict(self.__dict__)
        saved_lists = {k: list(v) for k, v in saved.items() if type(v) is list}
        saved_rng = {k: v.get_state() for k, v in saved.items()
                     if isinstance(v, np.random.RandomState)}
        try:
            return fit_method(self, *args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            for k, items in saved_lists.items():
                saved[k][:] = items
            for k, state in saved_rng.items():
                saved[k].set_state(state)
            raise

    return wrapper


class ParamsMixin:
    """scikit-learn's ``get_params`` / ``set_params`` and a short repr, without depending on
    scikit-learn. Subclasses list their constructor parameters in ``_param_names``."""

    _param_names = ()

    def get_params(self, deep=True):
        """Parameters of this estimator, as a dict."""
        return {name: getattr(self, name) for name in self._param_names}

    def set_params(self, **params):
        """Set parameters; returns self."""
        for name, value in params.items():
            if name not in self._param_names:
                raise ValueError(f"Invalid parameter {name!r} for {type(self).__name__}; "
                                 f"valid parameters are {sorted(self._param_names)}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = type(self)().get_params()

        def is_default(value, default):
            if value is default:
                return True
            if isinstance(value, np.ndarray) or type(value) is not type(default):
                return False
            return value == default

        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not is_default(v, defaults[k])]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):
        """scikit-learn's estimator tags, for its estimator checks and meta-estimators.

        scikit-learn is imported here only, when scikit-learn itself asks for the tags, so
        vbfast never imports it at run time."""
        from sklearn.utils import Tags, TargetTags

        tags = Tags(estimator_type=None, target_tags=TargetTags(required=False),
                    transformer_tags=None, regressor_tags=None, classifier_tags=None)
        self._update_sklearn_tags(tags)
        return tags

    def _update_sklearn_tags(self, tags):
        """Adjust scikit-learn ``tags`` in place (subclasses)."""


class FitState:
    """Interface of a method's fit state (documented here; the loop duck-types it).

    step() -> float
        One pass over the data and one update; returns the bound (as each method defines it).
    parameters() -> dict
        The current parameters, as fitted attributes (name -> value), copied.
    monotone : bool
        Whether the bound provably never decreases (EM, mean field), which arms the guard.
    """

    monotone = True


class IterativeFitMixin:
    """Runs ``n_init`` fits of a method's fit state and keeps the best (highest bound).

    Subclasses provide ``_new_fit_state(data, random_state, warm)`` and
    ``_store_fitted(parameters)``; the estimator's parameters ``n_init``, ``max_iter``,
    ``tol``, ``verbose``, ``verbose_interval``, ``warm_start`` are read here.
    """

    def _run_fits(self, data, random_state):
        warm = bool(self.warm_start) and hasattr(self, "converged_")
        n_init = 1 if warm else self.n_init
        best = None
        for init in range(n_init):
            t0 = time.perf_counter()
            state = self._new_fit_state(data, random_state, warm)
            if self.verbose:
                print(f"Initialization {init}")
            bounds, times = [], []
            bound = -np.inf
            converged = False
            n_iter = 0
            t_iter = time.perf_counter()
            for n_iter in range(1, self.max_iter + 1):
                prev = bound
                bound = float(state.step())
                now = time.perf_counter()
                bounds.append(bound)
                times.append(now - t_iter)
                t_iter = now
                if not np.isfinite(bound):
                    raise ValueError(
                        f"The lower bound became {bound} at iteration {n_iter}: the data or "
                        "the parameters overflow. Scale the input data or increase reg_covar.")
                change = bound - prev
                if n_iter > 1 and state.monotone:
                    self._guard(prev, bound, n_iter)
                if self.verbose >= 2 and n_iter % self.verbose_interval == 0:
                    print(f"  Iteration {n_iter}\t time lapse {now - t0:.5f}s\t "
                          f"bound change {change:.5g}")
                elif self.verbose == 1 and n_iter % self.verbose_interval == 0:
                    print(f"  Iteration {n_iter}")
                if abs(change) < self.tol:
                    converged = True
                    break
            if self.verbose:
                status = "converged" if converged else "did not converge"
                print(f"Initialization {status}. time lapse {time.perf_counter() - t0:.5f}s\t "
                      f"lower bound {bound:.5f}")
            if best is None or bound > best["bound"]:
                best = {"bound": bound, "parameters": state.parameters(), "n_iter": n_iter,
                        "converged": converged, "bounds": bounds, "times": times}
        if not best["converged"] and self.max_iter > 0:
            warnings.warn(
                f"Best of {n_init} initialisation(s) did not converge in max_iter="
                f"{self.max_iter} iterations. Try different init parameters, or increase "
                "max_iter or tol, or check for degenerate data.", ConvergenceWarning,
                stacklevel=3)
        self._store_fitted(best["parameters"])
        self.converged_ = best["converged"]
        self.n_iter_ = best["n_iter"]
        self.lower_bound_ = best["bound"]
        self.lower_bounds_ = np.asarray(best["bounds"], dtype=np.float64)
        self.iteration_times_ = np.asarray(best["times"], dtype=np.float64)
        return self

    @staticmethod
    def _guard(prev, bound, n_iter):
        """Warn (or raise, per ``vbfast.set_config(bound_decrease=...)``) on a bound decrease
        larger than a relative 1e-10: for exact updates that is a bug, not rounding."""
        decrease = prev - bound
        if decrease <= 1e-10 * max(abs(prev), abs(bound), 1e-300):
            return
        action = get_config()["bound_decrease"]
        if action == "ignore":
            return
        msg = (f"The lower bound decreased at iteration {n_iter}: from {prev!r} to {bound!r} "
               f"(by {decrease:.3e}, relative {decrease / max(abs(prev), 1e-300):.3e}).")
        if action == "raise":
            raise FloatingPointError(msg)
        warnings.warn(msg, BoundDecreaseWarning, stacklevel=4)
