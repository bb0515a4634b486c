"""The estimator base every public estimator shares: scikit-learn's parameter protocol
without scikit-learn, and all-or-nothing fits (an interrupted or failed fit leaves the
estimator as it was)."""
import functools

import numpy as np


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
    # old name -> new name of renamed parameters, refused by set_params with the new name
    _renamed_params = {}

    def get_params(self, deep=True):
        """Parameters of this estimator, as a dict."""
        return {name: getattr(self, name) for name in self._param_names}

    def set_params(self, **params):
        """Set parameters; returns self."""
        for name, value in params.items():
            if name in self._renamed_params and name not in self._param_names:
                raise ValueError(f"Parameter {name!r} of {type(self).__name__} was renamed "
                                 f"{self._renamed_params[name]!r}.")
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
