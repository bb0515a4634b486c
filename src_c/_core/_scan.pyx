# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""One read of an array for validation: whether every value is finite, without the
(n_samples, n_features) boolean temporary of ``np.isfinite(X).all()``."""
from cython.parallel cimport prange

ctypedef fused real_t:
    float
    double

# values a chunk: each chunk's verdict goes to its own slot, so any thread may take any chunk
DEF SCAN_CHUNK = 65536


cdef inline bint _chunk_finite(const real_t* x, Py_ssize_t n) noexcept nogil:
    # x * 0 is 0 for a finite x and NaN for an infinite or NaN one, so the sums of the
    # products are 0 exactly when every value is finite; eight independent sums (the
    # compiler may not reorder one sum) keep the loop at the memory's pace
    cdef double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
    cdef double a4 = 0.0, a5 = 0.0, a6 = 0.0, a7 = 0.0
    cdef Py_ssize_t i, n8 = n - n % 8
    for i in range(0, n8, 8):
        a0 = a0 + x[i] * 0.0
        a1 = a1 + x[i + 1] * 0.0
        a2 = a2 + x[i + 2] * 0.0
        a3 = a3 + x[i + 3] * 0.0
        a4 = a4 + x[i + 4] * 0.0
        a5 = a5 + x[i + 5] * 0.0
        a6 = a6 + x[i + 6] * 0.0
        a7 = a7 + x[i + 7] * 0.0
    for i in range(n8, n):
        a0 = a0 + x[i] * 0.0
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) == 0.0


def all_finite(const real_t[::1] values, int n_threads):
    """Whether every entry of ``values`` (1-D, contiguous: a C-contiguous array's ravel)
    is finite, read once in chunks of 65,536 values on up to ``n_threads`` threads (the
    caller caps them)."""
    cdef Py_ssize_t n = values.shape[0]
    cdef Py_ssize_t n_chunks = (n + SCAN_CHUNK - 1) // SCAN_CHUNK, c, start
    cdef int bad = 0
    if n == 0:
        return True
    if n_threads < 1:
        raise ValueError("n_threads must be positive")
    with nogil:
        for c in prange(n_chunks, schedule='dynamic', chunksize=1, num_threads=n_threads):
            start = c * SCAN_CHUNK
            if not _chunk_finite(&values[start], min(SCAN_CHUNK, n - start)):
                bad += 1
    return bad == 0
