"""Input and parameter checks, in one place. Every check raises a ValueError or TypeError that
names the offending argument, so bad input never reaches a kernel."""
import numbers

import numpy as np

from ..exceptions import not_fitted_error_class
from . import _scan
from .threads import single_threaded_blas, threads_for


def as_real_array(X, name="X", what="numeric"):
    """``np.asarray(X)`` for real-valued input: object arrays converted to float64 (keeping
    TypeError for non-numbers, ValueError for bad strings), complex and non-numeric dtypes
    refused. ``what`` names what X must hold, for the messages."""
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{name} must be {what}, got an array of dtype object whose "
                            f"entries do not all convert to float ({exc})") from None
    if arr.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} must be {what} (real), got "
                         f"dtype {arr.dtype}")
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be {what}, got dtype {arr.dtype}")
    return arr


# Values from which the finiteness test reads the array in C: below it NumPy's test costs
# less than limiting BLAS around an OpenMP region (~45 us).
SCAN_MIN_VALUES = 1 << 17


def all_finite(arr, n_threads=1):
    """Whether every value of ``arr`` is finite. A C-contiguous float32 / float64 array of at
    least ``SCAN_MIN_VALUES`` values is read once in C (``_scan.all_finite``) on up to
    ``n_threads`` threads (the caller's resolved count; BLAS held to one thread meanwhile, as
    around every kernel), without ``np.isfinite``'s boolean temporary of arr's shape; any
    other array by NumPy."""
    if (arr.dtype in (np.float64, np.float32) and arr.flags.c_contiguous
            and arr.size >= SCAN_MIN_VALUES):
        n = threads_for(max(1, int(n_threads)), arr.size, min_work_per_thread=SCAN_MIN_VALUES)
        with single_threaded_blas():
            return _scan.all_finite(arr.reshape(-1), n)
    return bool(np.isfinite(arr).all())


def check_array(X, name="X", dtype=(np.float64, np.float32), ensure_min_samples=1,
                ensure_min_features=1, n_features=None, estimator_name="the estimator",
                allow_nan=False, n_threads=1):
    """Return X as a C-contiguous 2-D float32/float64 array, checked for finiteness.

    float32 input stays float32 (memory and fitted parameters follow it); any other numeric
    input becomes float64. A copy is made only if the layout or dtype requires one. With
    ``allow_nan`` NaN (a missing value) passes; infinity never does. The finiteness scan may
    use ``n_threads`` threads (``all_finite``).
    """
    if hasattr(X, "toarray") and hasattr(X, "nnz"):
        raise TypeError(f"{name} is a sparse matrix; this estimator needs dense data "
                        "(use X.toarray()).")
    arr = as_real_array(X, name)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), got {arr.ndim}-D "
            f"array of shape {arr.shape}. Reshape your data: 1-D data with x.reshape(-1, 1) for a single "
            "feature or x.reshape(1, -1) for a single sample.")
    target = arr.dtype if arr.dtype in dtype else dtype[0]
    arr = np.ascontiguousarray(arr, dtype=target)
    check_shape(arr.shape, name, ensure_min_samples, ensure_min_features, n_features,
                estimator_name)
    if not all_finite(arr, n_threads):
        if allow_nan:
            if np.isinf(arr).any():
                raise ValueError(f"{name} contains infinity; every value must be finite or "
                                 "NaN (missing): infinity is never treated as missing.")
            return arr
        bad = "NaN" if np.isnan(arr).any() else "infinity"
        raise ValueError(f"{name} contains {bad}; every value must be finite.")
    return arr


def check_shape(shape, name="X", ensure_min_samples=1, ensure_min_features=1, n_features=None,
                estimator_name="the estimator"):
    """Check a 2-D data shape against minimum sizes and the fitted number of features."""
    if shape[0] < ensure_min_samples:
        raise ValueError(f"{name} has {shape[0]} sample(s) (shape={shape}) while a minimum of "
                         f"{ensure_min_samples} is required.")
    if shape[1] < ensure_min_features:
        raise ValueError(f"{name} has {shape[1]} feature(s) (shape={shape}) while a minimum "
                         f"of {ensure_min_features} is required.")
    if n_features is not None and shape[1] != n_features:
        raise ValueError(f"{name} has {shape[1]} features, but {estimator_name} is expecting "
                         f"{n_features} features as input (the number it was fitted with).")


def check_sample_weight(sample_weight, n_samples):
    """Return a float64 (n_samples,) weight vector, or None for unit weights.

    Weights must be finite and non-negative, with a positive sum; integer weights are
    equivalent to repeating rows.
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number):
        sample_weight = np.full(n_samples, sample_weight, dtype=np.float64)
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "fiub":
        raise ValueError(f"sample_weight must be numeric, got dtype {w.dtype}")
    w = np.ascontiguousarray(w, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] != n_samples:
        raise ValueError(f"sample_weight must have shape ({n_samples},), got {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("sample_weight contains NaN or infinity")
    if (w < 0).any():
        raise ValueError("sample_weight has negative entries; weights must be >= 0")
    if not (w > 0).any():  # (not the sum, which may overflow for huge weights)
        raise ValueError("sample_weight sums to zero; at least one weight must be positive")
    return w


def broadcast_parameter(value, shape, name):
    """A prior-like parameter as a float64 array broadcast to ``shape`` (a read-only view);
    ValueError naming it if it does not broadcast or is not finite."""
    value = np.asarray(value, dtype=np.float64)
    try:
        value = np.broadcast_to(value, shape)
    except ValueError:
        raise ValueError(f"{name} must be a scalar or broadcast to shape {shape}, got shape "
                         f"{value.shape}") from None
    if not np.isfinite(value).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return value


def check_random_state(seed):
    """Turn None, an int or a RandomState into a numpy RandomState."""
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return np.random.RandomState(int(seed))
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(f"random_state must be None, an int or a numpy RandomState, got {seed!r}")


def check_scalar(value, name, kind, min_val=None, max_val=None, include_min=True,
                 include_max=True):
    """Check a scalar parameter's type ('int', 'real') and range; return it."""
    if kind == "int":
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        expected = "an int"
    else:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        expected = "a real number"
    if not ok:
        raise TypeError(f"{name} must be {expected}, got {value!r} of type "
                        f"{type(value).__name__}")
    if kind == "real" and not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if min_val is not None and (value < min_val or (value == min_val and not include_min)):
        op = ">=" if include_min else ">"
        raise ValueError(f"{name} must be {op} {min_val}, got {value!r}")
    if max_val is not None and (value > max_val or (value == max_val and not include_max)):
        op = "<=" if include_max else "<"
        raise ValueError(f"{name} must be {op} {max_val}, got {value!r}")
    return value


def check_option(value, name, options):
    """Check that a string parameter is one of ``options``."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return value


def check_is_fitted(estimator, attribute):
    """Raise NotFittedError unless the estimator has the fitted ``attribute``."""
    if not hasattr(estimator, attribute):
        raise not_fitted_error_class()(
            f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
            "appropriate arguments before using this estimator.")
