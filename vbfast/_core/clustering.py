"""K-means and greedy k-means++ seeding, used to initialise the mixture models.

The algorithms follow scikit-learn's ``KMeans(algorithm='lloyd')`` and ``_kmeans_plusplus``
(same use of the random stream, same tolerance, same relocation of empty clusters); the
passes over the data are the OpenMP kernels of :mod:`vbfast._kmeans`, whose results do not
depend on the number of threads. Inputs are assumed validated by the caller: ``X`` 2-D,
finite, C-contiguous float32 or float64.
"""
import numbers

import numpy as np

from . import _kmeans
from .threads import single_threaded_blas, threads_for
from .validation import check_random_state

__all__ = ["kmeans", "kmeans_plusplus", "lloyd"]


def _check_n_threads(n_threads, n_samples):
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral) \
            or n_threads < 1:
        raise ValueError(f"n_threads must be an int >= 1, got {n_threads!r}")
    return threads_for(int(n_threads), n_samples)


def _as_sample_weight(sample_weight, n_samples):
    """float64 C-contiguous weights; ones when ``sample_weight`` is None."""
    if sample_weight is None:
        return np.ones(n_samples, dtype=np.float64)
    return np.ascontiguousarray(sample_weight, dtype=np.float64)


def _tolerance(X, tol):
    """Absolute tolerance on the squared center shift: ``tol`` times the mean feature variance.

    This is scikit-learn's definition, which makes ``tol`` independent of the data's scale.
    """
    if tol == 0:
        return 0.0
    # np.var(X, axis=0) would allocate an N x D temporary (the largest buffer of a GMM fit
    # with k-means initialisation); row blocks keep it small.
    n_samples = X.shape[0]
    mean = X.mean(axis=0, dtype=np.float64)
    sq_sum = np.zeros(X.shape[1])
    for start in range(0, n_samples, 65536):
        centred = X[start:start + 65536] - mean
        sq_sum += np.einsum("ij,ij->j", centred, centred)
    return float(np.mean(sq_sum / n_samples) * tol)


def kmeans_plusplus(X, n_clusters, sample_weight=None, random_state=None,
                    n_local_trials=None, n_threads=1):
    """Choose initial centers by greedy k-means++.

    The first center is a row drawn with probability proportional to ``sample_weight``.
    Every further center is the best, by total weighted potential
    ``sum_i w_i min_c ||x_i - c||^2``, of ``n_local_trials`` candidate rows drawn with
    probability proportional to their weighted contribution to the current potential.
    This is scikit-learn's ``_kmeans_plusplus``, drawing the same random numbers.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64, C-contiguous
        The data.
    n_clusters : int
        Number of centers to choose.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weights of the rows; None means all ones. Rows of weight 0 are never
        chosen.
    random_state : None, int or numpy.random.RandomState, default=None
        Source of randomness. A ``RandomState`` is used (and advanced) in place.
    n_local_trials : int, default=None
        Number of candidates tried for every center after the first; None means
        ``2 + int(log(n_clusters))``.
    n_threads : int, default=1
        Number of OpenMP threads for the distance passes. The result does not depend on it.

    Returns
    -------
    centers : ndarray of shape (n_clusters, n_features), float64
        The chosen centers, ``X[indices]``.
    indices : ndarray of shape (n_clusters,), intp
        Row indices of the chosen centers.
    """
    n_threads = _check_n_threads(n_threads, X.shape[0])
    rs = check_random_state(random_state)
    n_samples = X.shape[0]
    w = _as_sample_weight(sample_weight, n_samples)
    if n_local_trials is None:
        # What Arthur and Vassilvitskii tried; also scikit-learn's default.
        n_local_trials = 2 + int(np.log(n_clusters))

    indices = np.full(n_clusters, -1, dtype=np.intp)
    # Buffers for the whole seeding: clipped distances per candidate and the cumulative
    # weighted potential used for sampling.
    dist_buf = np.empty((max(n_local_trials, 1), n_samples), dtype=np.float64)
    cum_pot = np.empty(n_samples, dtype=np.float64)

    first = rs.choice(n_samples, p=w / w.sum())
    indices[0] = first
    _kmeans.min_sq_dist_update(X, w, X[[first]].astype(np.float64),
                               np.full(n_samples, np.inf), dist_buf[:1], n_threads)
    closest = dist_buf[0].copy()

    for c in range(1, n_clusters):
        # Sample candidates with probability proportional to w_i * closest_i. Scaling the
        # uniforms by the last cumulative sum (scikit-learn uses the potential computed
        # separately, equal up to rounding) keeps every value inside the table, so rows of
        # zero weight or zero distance cannot be drawn.
        np.multiply(w, closest, out=cum_pot)
        np.cumsum(cum_pot, out=cum_pot)
        rand_vals = rs.uniform(size=n_local_trials) * cum_pot[-1]
        candidate_ids = np.searchsorted(cum_pot, rand_vals)
        np.clip(candidate_ids, None, n_samples - 1, out=candidate_ids)

        # Keep the candidate that leaves the smallest total potential.
        trial_dist = dist_buf[:n_local_trials]
        pots = _kmeans.min_sq_dist_update(
            X, w, X[candidate_ids].astype(np.float64), closest, trial_dist, n_threads)
        best = int(np.argmin(pots))
        closest[:] = trial_dist[best]
        indices[c] = candidate_ids[best]

    return X[indices].astype(np.float64), indices


def _relocate_empty_clusters(X, w, offset, labels, sq_dist, sums, weights):
    """Move every empty cluster onto one of the rows farthest from their centers.

    As in scikit-learn: the ``n_empty`` rows with the largest squared distance to their
    assigned center (in the pass that left the clusters empty) are taken, farthest first,
    and each becomes the sole member of one empty cluster; its weighted contribution is
    moved from its old cluster's statistics to the new one. Ties go to the lowest row index,
    rows of weight 0 (which cannot make a cluster non-empty) and rows already sitting on
    their center are never taken, so an empty cluster may stay empty (e.g. more clusters
    than distinct rows). ``sums`` and ``weights`` are modified in place; labels are left
    alone since the next pass reassigns every row.

    Returns
    -------
    bool
        Whether any cluster was relocated.
    """
    empty = np.flatnonzero(weights == 0)
    if empty.size == 0:
        return False
    eligible = np.where(w > 0, sq_dist, -1.0)
    # Stable sort on the negated distance: farthest first, ties to the lowest index.
    far = np.argsort(-eligible, kind="stable")[:empty.size]
    far = far[eligible[far] > 0]
    if far.size == 0:
        return False
    empty = empty[:far.size]

    contrib = (X[far].astype(np.float64) - offset) * w[far, None]
    old = labels[far]
    # Unbuffered so that two far rows from the same old cluster are both subtracted.
    np.subtract.at(sums, old, contrib)
    np.subtract.at(weights, old, w[far])
    sums[empty] = contrib
    weights[empty] = w[far]
    return True


def lloyd(X, centers_init, sample_weight=None, max_iter=300, tol=1e-4, n_threads=1):
    """Lloyd's k-means iterations from given centers.

    Stops when the labels no longer change (the centers are then a fixed point), when the
    squared center shift summed over clusters is at most ``tol`` times the mean per-feature
    variance of ``X`` (scikit-learn's criterion), or after ``max_iter`` iterations. Empty
    clusters are relocated to the rows farthest from their centers. The returned labels
    and inertia are those of the returned centers.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64, C-contiguous
        The data.
    centers_init : array-like of shape (n_clusters, n_features)
        Initial centers.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weights of the rows; None means all ones.
    max_iter : int, default=300
        Maximum number of iterations.
    tol : float, default=1e-4
        Relative tolerance on the center shift (see above).
    n_threads : int, default=1
        Number of OpenMP threads. The result does not depend on it.

    Returns
    -------
    centers : ndarray of shape (n_clusters, n_features), float64
        Final centers.
    labels : ndarray of shape (n_samples,), int32
        Index of the nearest final center of every row (ties to the lowest index).
    inertia : float
        Weighted sum of squared distances of the rows to their assigned centers.
    n_iter : int
        Number of iterations run.
    """
    n_threads = _check_n_threads(n_threads, X.shape[0])
    n_samples, n_features = X.shape
    w = _as_sample_weight(sample_weight, n_samples)
    tol_abs = _tolerance(X, tol)

    # Work in a frame centred on the data mean: the kernels subtract the offset while
    # copying rows, which keeps the expanded distances accurate without copying X.
    offset = X.mean(axis=0, dtype=np.float64)
    centers = np.array(centers_init, dtype=np.float64, order="C") - offset
    n_clusters = centers.shape[0]

    # Buffers sized once.
    new_centers = np.empty_like(centers)
    labels = np.empty(n_samples, dtype=np.int32)
    sq_dist = np.empty(n_samples, dtype=np.float64)
    sums = np.empty((n_clusters, n_features), dtype=np.float64)
    weights = np.empty(n_clusters, dtype=np.float64)

    def one_pass(c):
        return _kmeans.lloyd_pass(X, w, c, offset, labels, sq_dist, sums, weights,
                                  n_threads)

    with single_threaded_blas():
        fixed_point = False
        n_iter = 0
        for n_iter in range(1, max_iter + 1):
            inertia = one_pass(centers)
            relocated = _relocate_empty_clusters(X, w, offset, labels, sq_dist, sums, weights)
            # Clusters still empty keep their previous center.
            new_centers[:] = centers
            np.divide(sums, weights[:, None], out=new_centers, where=weights[:, None] > 0)
            shift = float(np.sum((new_centers - centers) ** 2))
            centers, new_centers = new_centers, centers
            if not relocated and np.array_equal(centers, new_centers):
                # Unchanged labels give bitwise unchanged centers: the labels and inertia of
                # this pass are already those of the final centers.
                fixed_point = True
                break
            if shift <= tol_abs:
                break
        if not fixed_point:
            # One more assignment so that labels and inertia match the returned centers.
            inertia = one_pass(centers)

    return centers + offset, labels, float(inertia), n_iter


def kmeans(X, n_clusters, sample_weight=None, random_state=None, max_iter=300, tol=1e-4,
           n_threads=1):
    """K-means clustering: greedy k-means++ seeding followed by Lloyd's iterations.

    The equivalent of scikit-learn's ``KMeans(n_clusters, n_init=1,
    random_state=random_state).fit(X, sample_weight=sample_weight)``, which is what
    ``GaussianMixture(init_params='kmeans')`` runs.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64, C-contiguous
        The data.
    n_clusters : int
        Number of clusters.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weights of the rows; None means all ones.
    random_state : None, int or numpy.random.RandomState, default=None
        Source of randomness for the seeding. A ``RandomState`` is used in place.
    max_iter : int, default=300
        Maximum number of Lloyd iterations.
    tol : float, default=1e-4
        Stop when the squared center shift summed over clusters is at most ``tol`` times
        the mean per-feature variance of ``X``.
    n_threads : int, default=1
        Number of OpenMP threads. The result does not depend on it.

    Returns
    -------
    centers : ndarray of shape (n_clusters, n_features), float64
        Final centers.
    labels : ndarray of shape (n_samples,), int32
        Index of the nearest final center of every row.
    inertia : float
        Weighted sum of squared distances of the rows to their assigned centers.
    n_iter : int
        Number of Lloyd iterations run.
    """
    n_threads = _check_n_threads(n_threads, X.shape[0])
    w = _as_sample_weight(sample_weight, X.shape[0])
    centers_init, _ = kmeans_plusplus(X, n_clusters, sample_weight=w,
                                      random_state=random_state, n_threads=n_threads)
    return lloyd(X, centers_init, sample_weight=w, max_iter=max_iter, tol=tol,
                 n_threads=n_threads)
