"""Small real data sets shipped with vbfast, each with its source in a ``.txt`` file beside it."""

from importlib import resources

import numpy as np

__all__ = ["load_old_faithful"]

_FEATURE_NAMES = ("eruptions", "waiting")


def load_old_faithful(return_X_y=False):
    """Load the Old Faithful geyser data (R's ``datasets::faithful``).

    272 eruptions of the Old Faithful geyser, Yellowstone National Park: the
    eruption time and the waiting time to the next eruption, both in minutes.
    Source: the R ``datasets`` package (Härdle 1991; see also Azzalini & Bowman
    1990); public domain. See ``old_faithful.txt`` in this package for details.

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(X, None)`` like scikit-learn's loaders of
        unlabelled data, instead of ``X`` alone.

    Returns
    -------
    X : ndarray of shape (272, 2), dtype float64
        Columns: ``eruptions`` (minutes), ``waiting`` (minutes).
    """
    ref = resources.files(__name__).joinpath("old_faithful.csv")
    with ref.open("r", encoding="utf-8") as f:
        X = np.loadtxt(f, delimiter=",", skiprows=1, dtype=np.float64)
    X = np.ascontiguousarray(X)
    if return_X_y:
        return X, None
    return X
