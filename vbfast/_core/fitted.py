"""Storing fitted parameters: computed in float64, kept in the dtype of the data."""
import numpy as np


def cast_fitted(name, value, dtype):
    """A fitted parameter (computed in float64) in X's dtype; a value that overflows float32
    is refused rather than stored as inf."""
    value = np.asarray(value, dtype=np.float64)
    with np.errstate(over="ignore"):
        out = value.astype(dtype, copy=False)
    if out.dtype != value.dtype:
        finite = np.isfinite(value)
        if np.any(finite & ~np.isfinite(out)):
            raise ValueError(
                f"The fitted {name} overflow {np.dtype(dtype).name} (the dtype of X): "
                f"magnitudes up to {np.max(np.abs(value[finite])):.3g}. Fit X as float64, "
                "or rescale it.")
    return out
