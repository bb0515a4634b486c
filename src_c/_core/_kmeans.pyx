# cython: language_level=3
"""K-means kernels used to initialise the mixture models.

Two passes over the data, both parallel over rows with OpenMP:

* :func:`lloyd_pass` -- assign every row to its nearest center and return the per-cluster
  weighted sums, weights and the total weighted inertia (one Lloyd iteration, minus the
  division by the weights, which the Python layer does).
* :func:`min_sq_dist_update` -- squared distances of every row to a few candidate centers,
  clipped by the current closest distance, and the weighted potential of each candidate
  (the inner step of greedy k-means++).

Determinism
-----------
The results are bitwise identical for any number of threads. Rows are cut into chunks of
``CHUNK_SIZE`` rows, and the chunks into :func:`n_groups` consecutive groups; the grouping
depends on the size of the problem only. Each group is processed sequentially by a single
thread and accumulates into its own slot; once the parallel loop is over, the slots are
summed in group order. The thread count therefore only decides *which* thread processes a
group, never the order of any floating-point operation.

Numerics
--------
``X`` may be float32 or float64; everything else is float64 and every accumulation is done
in float64. Each chunk of rows is copied into a float64 buffer, shifted by ``offset``
(typically the mean of ``X``: the expanded distance ``||c||^2 - 2 x.c`` used for the argmin
loses precision when the data sit far from the origin, and shifting while copying costs
nothing and avoids a centred copy of ``X``). The expanded form, computed with BLAS ``dgemm``,
only decides the labels; the distance to the chosen center, the inertia and the sums are
computed directly from the differences.
"""
from cython cimport floating
from cython.parallel import prange, parallel
from libc.stdlib cimport malloc, calloc, free
from libc.stdint cimport uintptr_t
from scipy.linalg.cython_blas cimport dgemm

import numpy as np

#: Rows per chunk: the unit of work handed to BLAS and the granularity of the grouping.
CHUNK_SIZE = 256
#: Upper bound on the number of groups (hence of per-group accumulation slots).
MAX_GROUPS = 128
#: Budget, in float64 values, for all the per-group slots of one pass: when one slot is
#: large (many clusters times many features) there are fewer groups, though never fewer
#: than ``MIN_GROUPS`` (the rows permitting).
SLOT_BUDGET = 1 << 23
MIN_GROUPS = 8

cdef Py_ssize_t _CHUNK = CHUNK_SIZE
cdef Py_ssize_t _MAX_GROUPS = MAX_GROUPS
cdef Py_ssize_t _SLOT_BUDGET = SLOT_BUDGET
cdef Py_ssize_t _MIN_GROUPS = MIN_GROUPS
# Per-thread scratch buffers are aligned to 64 bytes so that every thread hands BLAS
# identically aligned memory (some BLAS libraries pick code paths by alignment).
cdef size_t _ALIGN = 64


cpdef Py_ssize_t n_groups(Py_ssize_t n_samples, Py_ssize_t slot_size=1):
    """Number of row groups used by the kernels.

    Parameters
    ----------
    n_samples : int
        Number of rows.
    slot_size : int, default=1
        Number of float64 values each group accumulates (``n_clusters * n_features`` for
        the Lloyd pass).

    Returns
    -------
    int
        ``min(ceil(n_samples / CHUNK_SIZE), MAX_GROUPS, max(MIN_GROUPS, SLOT_BUDGET //
        slot_size))``; 0 when there are no rows. It depends on the problem's size only,
        never on the number of threads.
    """
    cdef Py_ssize_t n_chunks = (n_samples + _CHUNK - 1) // _CHUNK
    cdef Py_ssize_t cap = _SLOT_BUDGET // slot_size if slot_size > 0 else _MAX_GROUPS
    if cap < _MIN_GROUPS:
        cap = _MIN_GROUPS
    if cap > _MAX_GROUPS:
        cap = _MAX_GROUPS
    return n_chunks if n_chunks < cap else cap


cdef inline double* _aligned(void* raw) noexcept nogil:
    """First ``_ALIGN``-byte boundary at or after ``raw`` (which holds ``_ALIGN`` spare bytes)."""
    return <double*> ((<uintptr_t> raw + _ALIGN - 1) & ~(<uintptr_t> (_ALIGN - 1)))


cdef inline Py_ssize_t _group_start(Py_ssize_t g, Py_ssize_t n_grp,
                                    Py_ssize_t n_samples) noexcept nogil:
    """First row of group ``g``; group ``g`` is rows ``[_group_start(g), _group_start(g + 1))``.

    Groups are runs of whole chunks (only the very last chunk may be short), spread as
    evenly as possible.
    """
    cdef Py_ssize_t n_chunks = (n_samples + _CHUNK - 1) // _CHUNK
    cdef Py_ssize_t start = (g * n_chunks // n_grp) * _CHUNK
    return start if start < n_samples else n_samples


cdef inline double _sq_dist(const floating* x, const double* c, int n) noexcept nogil:
    """``||x - c||^2`` in float64.

    Four interleaved partial sums, combined in a fixed order: the order of the additions is
    part of the code (so still deterministic), and it lets the compiler use SIMD and
    pipelining that a single running sum forbids under strict IEEE semantics.
    """
    cdef:
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, d0, d1, d2, d3
        int j = 0
    while j + 4 <= n:
        d0 = <double> x[j] - c[j]
        d1 = <double> x[j + 1] - c[j + 1]
        d2 = <double> x[j + 2] - c[j + 2]
        d3 = <double> x[j + 3] - c[j + 3]
        s0 = s0 + d0 * d0
        s1 = s1 + d1 * d1
        s2 = s2 + d2 * d2
        s3 = s3 + d3 * d3
        j = j + 4
    while j < n:
        d0 = <double> x[j] - c[j]
        s0 = s0 + d0 * d0
        j = j + 1
    return (s0 + s1) + (s2 + s3)


# --------------------------------------------------------------------------------------------
# Lloyd pass
# --------------------------------------------------------------------------------------------

cdef void _lloyd_chunk(
        const floating* X, const double* sample_weight,
        Py_ssize_t start, Py_ssize_t end, int n_features, int n_clusters,
        const double* centers, const double* centers_sq_norms, const double* offset,
        int* labels, double* sq_dist,
        double* xbuf, double* dbuf,
        double* g_sums, double* g_weights, double* g_inertia) noexcept nogil:
    """Assign rows ``[start, end)`` and accumulate into one group's slot."""
    cdef:
        int m = <int> (end - start)
        Py_ssize_t i, row
        int j, k, label
        double d, best, s, w
        double alpha = -2.0, beta = 0.0
        char trans_t = b'T', trans_n = b'N'
        const floating* x
        double* xb

    # Copy the chunk to float64, shifted by the offset.
    for i in range(m):
        x = X + (start + i) * n_features
        xb = xbuf + i * n_features
        for j in range(n_features):
            xb[j] = <double> x[j] - offset[j]

    # dbuf[i, k] = -2 x_i . c_k (row-major, m x n_clusters). In BLAS's column-major terms
    # that buffer is the n_clusters x m matrix C^T X^T, with C and X read as their own
    # transposes (n_features x n_clusters and n_features x m, leading dimension n_features).
    dgemm(&trans_t, &trans_n, &n_clusters, &m, &n_features, &alpha,
          <double*> centers, &n_features, xbuf, &n_features, &beta, dbuf, &n_clusters)

    for i in range(m):
        row = start + i
        # argmin_k ||c_k||^2 - 2 x.c_k; strict '<' sends ties to the lowest index.
        best = dbuf[i * n_clusters] + centers_sq_norms[0]
        label = 0
        for k in range(1, n_clusters):
            d = dbuf[i * n_clusters + k] + centers_sq_norms[k]
            if d < best:
                best = d
                label = k
        labels[row] = label

        # Exact squared distance to the chosen center (the expanded form can round
        # to a slightly negative value and is only good enough for the argmin).
        xb = xbuf + i * n_features
        s = _sq_dist(xb, centers + label * n_features, n_features)
        sq_dist[row] = s

        w = sample_weight[row]
        g_inertia[0] += w * s
        g_weights[label] += w
        for j in range(n_features):
            g_sums[label * n_features + j] += w * xb[j]


cdef double _lloyd_pass(
        const floating[:, ::1] X, const double[::1] sample_weight,
        const double[:, ::1] centers, const double[::1] offset,
        int[::1] labels, double[::1] sq_dist,
        double[:, ::1] sums, double[::1] weights, int n_threads) except? -1:
    cdef:
        Py_ssize_t n_samples = X.shape[0]
        int n_features = <int> X.shape[1]
        int n_clusters = <int> centers.shape[0]
        Py_ssize_t slot_size = <Py_ssize_t> n_clusters * n_features
        Py_ssize_t n_grp = n_groups(n_samples, slot_size)
        Py_ssize_t g, start, end, c_start, c_end
        Py_ssize_t k, j
        double inertia = 0.0
        double* slot_sums = NULL
        double* slot_weights = NULL
        double* slot_inertia = NULL
        double* centers_sq_norms = NULL
        # Thread-private in the parallel block; initialised because Cython makes them
        # firstprivate.
        void* xbuf_raw = NULL
        void* dbuf_raw = NULL
        double* xbuf = NULL
        double* dbuf = NULL
        int failed = 0
        int* failed_ptr = &failed
        const floating* X_ptr
        const double* w_ptr = &sample_weight[0]
        const double* c_ptr = &centers[0, 0]
        const double* off_ptr = &offset[0]
        int* labels_ptr = &labels[0]
        double* sq_dist_ptr = &sq_dist[0]

    if n_samples == 0 or n_features == 0:
        # Degenerate: every distance is 0, every row goes to center 0.
        labels[:] = 0
        sq_dist[:] = 0.0
        sums[:, :] = 0.0
        weights[:] = 0.0
        if n_samples > 0:
            weights[0] = np.sum(np.asarray(sample_weight))
        return 0.0
    X_ptr = &X[0, 0]
    n_threads = max(1, min(n_threads, <int> n_grp))

    try:
        slot_sums = <double*> calloc(n_grp * slot_size, sizeof(double))
        slot_weights = <double*> calloc(n_grp * n_clusters, sizeof(double))
        slot_inertia = <double*> calloc(n_grp, sizeof(double))
        centers_sq_norms = <double*> malloc(n_clusters * sizeof(double))
        if (slot_sums == NULL or slot_weights == NULL or slot_inertia == NULL
                or centers_sq_norms == NULL):
            raise MemoryError()

        for k in range(n_clusters):
            centers_sq_norms[k] = 0.0
            for j in range(n_features):
                centers_sq_norms[k] += centers[k, j] * centers[k, j]

        with nogil, parallel(num_threads=n_threads):
            # Per-thread scratch: the float64 copy of a chunk and its distance block.
            xbuf_raw = malloc(_CHUNK * n_features * sizeof(double) + _ALIGN)
            dbuf_raw = malloc(_CHUNK * n_clusters * sizeof(double) + _ALIGN)
            xbuf = NULL
            dbuf = NULL
            if xbuf_raw == NULL or dbuf_raw == NULL:
                failed_ptr[0] = 1  # every writer writes 1: a benign race
            else:
                xbuf = _aligned(xbuf_raw)
                dbuf = _aligned(dbuf_raw)

            for g in prange(n_grp, schedule='dynamic', chunksize=1):
                if xbuf != NULL and dbuf != NULL:
                    # Assigned here (not through pointers) so that Cython makes them private.
                    start = _group_start(g, n_grp, n_samples)
                    end = _group_start(g + 1, n_grp, n_samples)
                    # One chunk at a time, in row order, into this group's slot.
                    c_start = start
                    while c_start < end:
                        c_end = c_start + _CHUNK
                        if c_end > end:
                            c_end = end
                        _lloyd_chunk(X_ptr, w_ptr, c_start, c_end, n_features, n_clusters,
                                     c_ptr, centers_sq_norms, off_ptr,
                                     labels_ptr, sq_dist_ptr, xbuf, dbuf,
                                     slot_sums + g * slot_size,
                                     slot_weights + g * n_clusters,
                                     slot_inertia + g)
                        c_start = c_end

            free(xbuf_raw)
            free(dbuf_raw)

        if failed:
            raise MemoryError()

        # Ordered reduction of the group slots.
        for k in range(n_clusters):
            weights[k] = 0.0
            for j in range(n_features):
                sums[k, j] = 0.0
        for g in range(n_grp):
            inertia += slot_inertia[g]
            for k in range(n_clusters):
                weights[k] += slot_weights[g * n_clusters + k]
                for j in range(n_features):
                    sums[k, j] += slot_sums[g * slot_size + k * n_features + j]
    finally:
        free(slot_sums)
        free(slot_weights)
        free(slot_inertia)
        free(centers_sq_norms)
    return inertia


def lloyd_pass(const floating[:, ::1] X, const double[::1] sample_weight,
               const double[:, ::1] centers, const double[::1] offset,
               int[::1] labels, double[::1] sq_dist,
               double[:, ::1] sums, double[::1] weights, int n_threads=1):
    """One Lloyd pass: assign rows to their nearest center and accumulate the statistics.

    All coordinates are taken relative to ``offset``: row ``i`` is treated as
    ``X[i] - offset`` and ``centers`` must be given in that shifted frame.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64, C-contiguous
        The data.
    sample_weight : ndarray of shape (n_samples,), float64
        Non-negative weight of every row.
    centers : ndarray of shape (n_clusters, n_features), float64, C-contiguous
        Current centers, in the frame shifted by ``offset``.
    offset : ndarray of shape (n_features,), float64
        Origin of the shifted frame (e.g. the mean of ``X``; zeros for no shift).
    labels : ndarray of shape (n_samples,), int32
        Output: index of the nearest center of every row (ties go to the lowest index).
    sq_dist : ndarray of shape (n_samples,), float64
        Output: squared Euclidean distance of every row to its assigned center.
    sums : ndarray of shape (n_clusters, n_features), float64
        Output (overwritten): ``sum_i w_i (X[i] - offset)`` over the rows assigned to each
        cluster.
    weights : ndarray of shape (n_clusters,), float64
        Output (overwritten): ``sum_i w_i`` over the rows assigned to each cluster.
    n_threads : int, default=1
        Number of OpenMP threads. The results do not depend on it.

    Returns
    -------
    inertia : float
        ``sum_i w_i * sq_dist[i]``.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], K = centers.shape[0]
    if K < 1:
        raise ValueError("lloyd_pass needs at least one center")
    if (sample_weight.shape[0] != n or labels.shape[0] != n or sq_dist.shape[0] != n
            or centers.shape[1] != d or offset.shape[0] != d
            or sums.shape[0] != K or sums.shape[1] != d or weights.shape[0] != K):
        raise ValueError("lloyd_pass: inconsistent array shapes")
    return _lloyd_pass(X, sample_weight, centers, offset, labels, sq_dist, sums, weights,
                       n_threads)


# --------------------------------------------------------------------------------------------
# k-means++ step
# --------------------------------------------------------------------------------------------

cdef void _min_sq_dist_rows(
        const floating* X, const double* sample_weight,
        Py_ssize_t start, Py_ssize_t end, Py_ssize_t n_samples, int n_features,
        const double* candidates, int n_cand, const double* closest,
        double* out, double* g_pot) noexcept nogil:
    """Rows ``[start, end)`` of :func:`min_sq_dist_update`, into one group's slot."""
    cdef:
        Py_ssize_t i
        int t, j
        double s, w
        const floating* x

    for i in range(start, end):
        x = X + i * n_features
        w = sample_weight[i]
        for t in range(n_cand):
            s = _sq_dist(x, candidates + t * n_features, n_features)
            if closest[i] < s:
                s = closest[i]
            out[t * n_samples + i] = s
            g_pot[t] += w * s


def min_sq_dist_update(const floating[:, ::1] X, const double[::1] sample_weight,
                       const double[:, ::1] candidates, const double[::1] closest_sq_dist,
                       double[:, ::1] out, int n_threads=1):
    """Squared distances to candidate centers, clipped by the current closest distance.

    For every candidate ``t`` and row ``i``::

        out[t, i] = min(closest_sq_dist[i], ||X[i] - candidates[t]||^2)
        potential[t] = sum_i sample_weight[i] * out[t, i]

    which is what greedy k-means++ needs to score a candidate. Pass ``closest_sq_dist``
    filled with ``inf`` to get the plain distances (first center).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64, C-contiguous
        The data.
    sample_weight : ndarray of shape (n_samples,), float64
        Non-negative weight of every row.
    candidates : ndarray of shape (n_candidates, n_features), float64, C-contiguous
        Candidate centers.
    closest_sq_dist : ndarray of shape (n_samples,), float64
        Squared distance of every row to its closest already chosen center.
    out : ndarray of shape (n_candidates, n_samples), float64, C-contiguous
        Output: the clipped squared distances. Must not alias ``closest_sq_dist``.
    n_threads : int, default=1
        Number of OpenMP threads. The results do not depend on it.

    Returns
    -------
    potential : ndarray of shape (n_candidates,), float64
        Weighted sum of ``out`` over the rows, for every candidate.
    """
    cdef:
        Py_ssize_t n_samples = X.shape[0]
        int n_features = <int> X.shape[1]
        int n_cand = <int> candidates.shape[0]
        Py_ssize_t n_grp = n_groups(n_samples, n_cand)
        Py_ssize_t g, t, start, end
        double* slot_pot = NULL
        const floating* X_ptr
        const double* w_ptr
        const double* cand_ptr
        const double* closest_ptr
        double* out_ptr
        double[::1] potential = np.zeros(n_cand, dtype=np.float64)

    if (sample_weight.shape[0] != n_samples or closest_sq_dist.shape[0] != n_samples
            or candidates.shape[1] != n_features or out.shape[0] != n_cand
            or out.shape[1] != n_samples):
        raise ValueError("min_sq_dist_update: inconsistent array shapes")
    if n_samples == 0 or n_cand == 0:
        return np.asarray(potential)
    if n_features == 0:
        # Every distance is 0.
        out[:, :] = 0.0
        return np.asarray(potential)

    X_ptr = &X[0, 0]
    w_ptr = &sample_weight[0]
    cand_ptr = &candidates[0, 0]
    closest_ptr = &closest_sq_dist[0]
    out_ptr = &out[0, 0]
    n_threads = max(1, min(n_threads, <int> n_grp))

    slot_pot = <double*> calloc(n_grp * n_cand, sizeof(double))
    if slot_pot == NULL:
        raise MemoryError()
    try:
        with nogil:
            for g in prange(n_grp, schedule='dynamic', chunksize=1, num_threads=n_threads):
                start = _group_start(g, n_grp, n_samples)
                end = _group_start(g + 1, n_grp, n_samples)
                _min_sq_dist_rows(X_ptr, w_ptr, start, end, n_samples, n_features,
                                  cand_ptr, n_cand, closest_ptr, out_ptr,
                                  slot_pot + g * n_cand)
        # Ordered reduction of the group slots.
        for g in range(n_grp):
            for t in range(n_cand):
                potential[t] += slot_pot[g * n_cand + t]
    finally:
        free(slot_pot)
    return np.asarray(potential)
