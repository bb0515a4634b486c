"""The estimator base every public estimator shares: scikit-learn's parameter protocol
without scikit-learn, and all-or-nothing fits (an interrupted or failed fit leaves the
estimator as it was)."""
import functools
import sys
from types import MethodType

import numpy as np

from .validation import check_is_fitted


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


class _AvailableIf:
    """A method that exists on an instance only while ``check(instance)`` is true (the
    semantics of scikit-learn's ``available_if``): otherwise reading it raises
    AttributeError, so ``hasattr`` is False. Read on the class it is the plain function
    (for docs and ``hasattr(cls, name)``), which checks its first argument when called."""

    def __init__(self, fn, check):
        self.fn = fn
        self.check = check
        functools.update_wrapper(self, fn)

    def _check(self, obj, owner):
        message = f"This {owner.__name__!r} has no attribute {self.fn.__name__!r}"
        try:
            available = self.check(obj)
        except Exception as exc:
            raise AttributeError(message) from exc
        if not available:
            raise AttributeError(message)

    def __get__(self, obj, owner=None):
        if obj is not None:
            self._check(obj, type(obj) if owner is None else owner)
            return MethodType(self.fn, obj)

        @functools.wraps(self.fn)
        def unbound(*args, **kwargs):
            self._check(args[0], owner)
            return self.fn(*args, **kwargs)

        return unbound


def available_if(check):
    """Decorate a method so that it exists only when ``check(self)`` is true (e.g.
    ``partial_fit`` for the methods where it means something)."""
    return lambda fn: _AvailableIf(fn, check)


class ParamsMixin:
    """scikit-learn's ``get_params`` / ``set_params`` and a short repr, without depending on
    scikit-learn. Subclasses list their constructor parameters in ``_param_names``."""

    _param_names = ()
    # old name -> new name of renamed parameters, refused by set_params with the new name
    _renamed_params = {}

    def __new__(cls, *args, **kwargs):
        # a renamed parameter given to the constructor is refused with its new spelling
        # (Python's own TypeError would only call the keyword unexpected)
        for name in kwargs:
            if name in cls._renamed_params and name not in cls._param_names:
                raise TypeError(f"{cls.__name__}() got {name!r}, which was renamed "
                                f"{cls._renamed_params[name]!r}.")
        return super().__new__(cls)

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


_TRANSFORM_OUTPUTS = ("default", "pandas", "polars")


def _wrap_output_method(method):
    """``method`` (transform or fit_transform, X its first argument) returning its array as
    the container ``set_output`` asked for."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        data = method(self, *args, **kwargs)
        X = args[0] if args else kwargs.get("X")
        return self._wrap_transform_output(data, X)

    wrapper._wraps_output = True
    return wrapper


class TransformerOutputMixin:
    """scikit-learn's ``get_feature_names_out`` (as its ``ClassNamePrefixFeaturesOutMixin``:
    ``<classname>0`` ... ``<classname>{n-1}``) and ``set_output`` for a transformer, without
    scikit-learn: ``transform`` and ``fit_transform`` return a pandas (or polars) DataFrame
    when asked. Subclasses define ``_n_features_out``, the number of output columns once
    fitted.

    The configuration lives in ``_sklearn_output_config``, the attribute scikit-learn's
    ``clone``, ``Pipeline`` and ``ColumnTransformer`` read. Without a ``set_output`` call the
    output follows scikit-learn's global ``transform_output`` when scikit-learn is imported
    (as scikit-learn's own transformers do), else it is the array.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # as scikit-learn's _SetOutputMixin: wrap the class's own transform methods, so the
        # estimator's code returns arrays and knows nothing of containers
        for name in ("transform", "fit_transform"):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_wraps_output", False):
                setattr(cls, name, _wrap_output_method(method))

    def get_feature_names_out(self, input_features=None):
        """Output feature names: the class name in lower case followed by 0, 1, ...

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only checked against the input features seen in ``fit`` (their number, and their
            names if ``fit`` saw names); the output names do not depend on them.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self, "n_features_in_")
        if input_features is not None:
            input_features = np.asarray(input_features, dtype=object)
            seen = getattr(self, "feature_names_in_", None)
            if seen is not None and not np.array_equal(seen, input_features):
                raise ValueError("input_features is not equal to feature_names_in_")
            if len(input_features) != self.n_features_in_:
                raise ValueError(f"input_features should have length equal to number of "
                                 f"features ({self.n_features_in_}), got "
                                 f"{len(input_features)}")
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self._n_features_out)], dtype=object)

    def set_output(self, *, transform=None):
        """Set the container ``transform`` and ``fit_transform`` return.

        Parameters
        ----------
        transform : {'default', 'pandas', 'polars'} or None, default=None
            'default': the NumPy array; 'pandas' / 'polars': a DataFrame with the columns
            ``get_feature_names_out()`` (and, for pandas, the index of a DataFrame input);
            None: leave the configuration unchanged.

        Returns
        -------
        self
        """
        if transform is None:
            return self
        if transform not in _TRANSFORM_OUTPUTS:
            raise ValueError(f"transform must be one of {list(_TRANSFORM_OUTPUTS)} or None, "
                             f"got {transform!r}")
        config = dict(getattr(self, "_sklearn_output_config", {}))
        config["transform"] = transform
        self._sklearn_output_config = config
        return self

    def _transform_output(self):
        """The container asked for: ``set_output``'s, else scikit-learn's global setting."""
        config = getattr(self, "_sklearn_output_config", {}).get("transform")
        if config is not None:
            return config
        sklearn = sys.modules.get("sklearn")  # never imported here
        if sklearn is not None and hasattr(sklearn, "get_config"):
            return sklearn.get_config().get("transform_output", "default")
        return "default"

    def _wrap_transform_output(self, data, X):
        output = self._transform_output()
        if output == "default":
            return data
        columns = self.get_feature_names_out()
        if output == "pandas":
            import pandas as pd

            # a DataFrame input keeps its index, as in scikit-learn
            index = X.index if isinstance(X, pd.DataFrame) else None
            return pd.DataFrame(data, index=index, columns=columns, copy=False)
        import polars as pl

        return pl.DataFrame(data, schema=list(columns), orient="row")
