"""Tests of the k-means kernels (vbfast._core._kmeans) and of vbfast._core.clustering."""
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.cluster import kmeans_plusplus as sk_kmeans_plusplus
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from vbfast._core import _kmeans
from vbfast._core.clustering import kmeans, kmeans_plusplus, lloyd


# ---------------------------------------------------------------------------------------------
# NumPy references and helpers
# ---------------------------------------------------------------------------------------------

def reference_pass(X, w, centers, offset):
    """Slow, obvious Lloyd pass: (labels, sq_dist, sums, weights, inertia)."""
    Xs = X.astype(np.float64) - offset
    d2 = ((Xs[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    labels = np.argmin(d2, axis=1)  # first minimum: ties to the lowest index
    sq_dist = d2[np.arange(len(X)), labels]
    K, D = centers.shape
    sums = np.zeros((K, D))
    weights = np.zeros(K)
    for k in range(K):
        members = labels == k
        sums[k] = (w[members, None] * Xs[members]).sum(axis=0)
        weights[k] = w[members].sum()
    return labels, sq_dist, sums, weights, float(w @ sq_dist)


def run_pass(X, w, centers, offset, n_threads=1):
    """Call the kernel with freshly allocated outputs."""
    n, K = len(X), len(centers)
    labels = np.full(n, -7, dtype=np.int32)
    sq_dist = np.full(n, np.nan)
    sums = np.full((K, X.shape[1]), np.nan)
    weights = np.full(K, np.nan)
    inertia = _kmeans.lloyd_pass(X, w, centers, offset, labels, sq_dist, sums, weights,
                                 n_threads)
    return labels, sq_dist, sums, weights, inertia


def assert_bitwise_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
        else:
            assert x == y


def nearest(X, centers):
    d2 = ((X.astype(np.float64)[:, None, :] - centers[None]) ** 2).sum(axis=2)
    return d2.argmin(axis=1), d2.min(axis=1)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=3000, n_features=4, centers=6, cluster_std=0.6,
                      random_state=0)
    return np.ascontiguousarray(X), y


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------

def test_n_groups_depends_on_n_samples_only():
    chunk, max_groups = _kmeans.CHUNK_SIZE, _kmeans.MAX_GROUPS
    assert _kmeans.n_groups(0) == 0
    assert _kmeans.n_groups(1) == 1
    assert _kmeans.n_groups(chunk) == 1
    assert _kmeans.n_groups(chunk + 1) == 2
    assert _kmeans.n_groups(chunk * max_groups) == max_groups
    assert _kmeans.n_groups(10**7) == max_groups
    # Large slots (clusters x features) mean fewer groups, never fewer than MIN_GROUPS.
    budget, min_groups = _kmeans.SLOT_BUDGET, _kmeans.MIN_GROUPS
    assert _kmeans.n_groups(10**7, budget // 20) == 20
    assert _kmeans.n_groups(10**7, budget) == min_groups
    assert _kmeans.n_groups(3 * chunk, budget) == 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_samples", [1, 255, 257, 5000, 40000])
def test_lloyd_pass_matches_reference(dtype, weighted, n_samples):
    rng = np.random.default_rng(n_samples)
    D, K = 5, 7
    X = (rng.normal(size=(n_samples, D)) * 3 + 10).astype(dtype)
    w = rng.uniform(0.1, 3.0, size=n_samples) if weighted else np.ones(n_samples)
    offset = X.mean(axis=0, dtype=np.float64)
    centers = rng.normal(size=(K, D)) * 3

    labels, sq_dist, sums, weights, inertia = run_pass(X, w, centers, offset)
    r_labels, r_sq, r_sums, r_weights, r_inertia = reference_pass(X, w, centers, offset)

    np.testing.assert_array_equal(labels, r_labels)
    np.testing.assert_allclose(sq_dist, r_sq, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sums, r_sums, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(weights, r_weights, rtol=1e-12)
    assert inertia == pytest.approx(r_inertia, rel=1e-12)


def test_lloyd_pass_without_offset_and_offset_invariance():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1000, 3))
    w = np.ones(1000)
    centers = rng.normal(size=(4, 3))
    zero = np.zeros(3)
    labels, sq_dist, sums, weights, inertia = run_pass(X, w, centers, zero)
    r = reference_pass(X, w, centers, zero)
    np.testing.assert_array_equal(labels, r[0])
    assert inertia == pytest.approx(r[4], rel=1e-12)
    # The same geometry expressed in a shifted frame gives the same partition.
    shift = np.array([5.0, -2.0, 7.0])
    labels2, sq2, sums2, weights2, inertia2 = run_pass(X, w, centers - shift, shift)
    np.testing.assert_array_equal(labels2, labels)
    np.testing.assert_allclose(sq2, sq_dist, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sums2 + weights2[:, None] * shift, sums, atol=1e-9)


def test_lloyd_pass_ties_go_to_lowest_index():
    # Integer data and centers: every distance is computed exactly whatever the order of
    # the floating-point operations, so the ties below are exact.
    rng = np.random.default_rng(2)
    X = rng.integers(-4, 5, size=(3000, 3)).astype(np.float64)
    centers = np.array([[1.0, 0, 0], [1.0, 0, 0], [-1.0, 0, 0], [0, 2.0, 0], [0, 2.0, 0]])
    labels, *_ = run_pass(X, np.ones(len(X)), centers, np.zeros(3))
    r_labels = reference_pass(X, np.ones(len(X)), centers, np.zeros(3))[0]
    np.testing.assert_array_equal(labels, r_labels)
    assert not np.isin(labels, [1, 4]).any()  # duplicates never win
    # Rows equidistant from centers 0 and 2 (x = 0, closer to them than to center 3).
    tie = (X[:, 0] == 0) & (X[:, 1] <= 0)
    assert tie.any() and (labels[tie] == 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_samples", [5000, 40000])
def test_lloyd_pass_bitwise_identical_across_thread_counts(dtype, n_samples):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(n_samples, 6)).astype(dtype)
    w = rng.uniform(0.5, 2.0, size=n_samples)
    centers = rng.normal(size=(9, 6))
    offset = X.mean(axis=0, dtype=np.float64)
    ref = run_pass(X, w, centers, offset, n_threads=1)
    for n_threads in (2, 3):
        assert_bitwise_equal(run_pass(X, w, centers, offset, n_threads=n_threads), ref)


def test_lloyd_pass_integer_weights_equal_repeated_rows():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(2000, 4))
    counts = rng.integers(1, 4, size=2000)
    X_rep = np.repeat(X, counts, axis=0)
    centers = rng.normal(size=(5, 4))
    offset = np.zeros(4)
    labels, _, sums, weights, inertia = run_pass(X, counts.astype(np.float64), centers, offset)
    labels_r, _, sums_r, weights_r, inertia_r = run_pass(X_rep, np.ones(len(X_rep)),
                                                         centers, offset)
    np.testing.assert_array_equal(np.repeat(labels, counts), labels_r)
    np.testing.assert_allclose(sums, sums_r, rtol=1e-12, atol=1e-10)
    np.testing.assert_array_equal(weights, weights_r)
    assert inertia == pytest.approx(inertia_r, rel=1e-12)


def test_lloyd_pass_rejects_inconsistent_shapes():
    X = np.zeros((10, 3))
    with pytest.raises(ValueError):
        _kmeans.lloyd_pass(X, np.ones(10), np.zeros((2, 4)), np.zeros(3),
                           np.empty(10, np.int32), np.empty(10), np.empty((2, 3)),
                           np.empty(2), 1)
    with pytest.raises(ValueError):
        _kmeans.lloyd_pass(X, np.ones(9), np.zeros((2, 3)), np.zeros(3),
                           np.empty(10, np.int32), np.empty(10), np.empty((2, 3)),
                           np.empty(2), 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_min_sq_dist_update_matches_reference(dtype):
    rng = np.random.default_rng(5)
    n = 5000
    X = rng.normal(size=(n, 7)).astype(dtype)
    w = rng.uniform(0.0, 2.0, size=n)
    candidates = rng.normal(size=(4, 7))
    closest = rng.uniform(0.0, 20.0, size=n)

    d2 = ((X.astype(np.float64)[None] - candidates[:, None]) ** 2).sum(axis=2)
    for current in (np.full(n, np.inf), closest):
        expected = np.minimum(d2, current)
        out = np.empty((4, n))
        pot = _kmeans.min_sq_dist_update(X, w, candidates, current, out, 1)
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(pot, expected @ w, rtol=1e-12)
        # Bitwise identical with more threads.
        out2 = np.empty((4, n))
        pot2 = _kmeans.min_sq_dist_update(X, w, candidates, current, out2, 2)
        np.testing.assert_array_equal(out2, out)
        np.testing.assert_array_equal(pot2, pot)


# ---------------------------------------------------------------------------------------------
# k-means++
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_plusplus_matches_sklearn(blobs, weighted):
    # Same algorithm and same use of the random stream: the same seeds are chosen.
    X, _ = blobs
    w = np.random.default_rng(6).uniform(0.5, 2.0, size=len(X)) if weighted else None
    for seed in range(3):
        centers, indices = kmeans_plusplus(X, 6, sample_weight=w, random_state=seed)
        sk_centers, sk_indices = sk_kmeans_plusplus(X, 6, sample_weight=w, random_state=seed)
        np.testing.assert_array_equal(indices, sk_indices)
        np.testing.assert_array_equal(centers, sk_centers)


def test_kmeans_plusplus_properties(blobs):
    X, _ = blobs
    X32 = X.astype(np.float32)
    centers, indices = kmeans_plusplus(X32, 10, random_state=0)
    assert centers.dtype == np.float64 and centers.shape == (10, X.shape[1])
    assert indices.shape == (10,)
    assert len(np.unique(indices)) == 10
    np.testing.assert_array_equal(centers, X32[indices].astype(np.float64))

    # Rows of weight zero are never chosen.
    w = np.ones(len(X))
    w[::2] = 0.0
    for seed in range(5):
        _, idx = kmeans_plusplus(X, 10, sample_weight=w, random_state=seed,
                                 n_local_trials=1)
        assert (idx % 2 == 1).all()


def test_kmeans_plusplus_random_state_handling(blobs):
    X, _ = blobs
    a = kmeans_plusplus(X, 5, random_state=42)[1]
    np.testing.assert_array_equal(kmeans_plusplus(X, 5, random_state=42)[1], a)
    np.testing.assert_array_equal(
        kmeans_plusplus(X, 5, random_state=np.random.RandomState(42))[1], a)
    # A RandomState instance is advanced in place.
    rs = np.random.RandomState(42)
    first = kmeans_plusplus(X, 5, random_state=rs)[1]
    np.testing.assert_array_equal(first, a)
    assert rs.uniform() != np.random.RandomState(42).uniform()
    with pytest.raises(ValueError):
        kmeans_plusplus(X, 5, random_state="zero")


def test_kmeans_plusplus_thread_invariance():
    X, _ = make_blobs(n_samples=6000, n_features=5, centers=8, random_state=1)
    ref = kmeans_plusplus(X, 8, random_state=0, n_threads=1)
    assert_bitwise_equal(kmeans_plusplus(X, 8, random_state=0, n_threads=2), ref)


# ---------------------------------------------------------------------------------------------
# k-means
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_matches_sklearn_on_blobs(blobs, dtype, weighted):
    X, y = blobs
    X = X.astype(dtype)
    w = np.random.default_rng(7).uniform(0.5, 2.0, size=len(X)) if weighted else None
    centers, labels, inertia, n_iter = kmeans(X, 6, sample_weight=w, random_state=0)
    km = KMeans(n_clusters=6, n_init=1, random_state=0).fit(X, sample_weight=w)

    assert adjusted_rand_score(labels, km.labels_) == 1.0
    assert adjusted_rand_score(labels, y) == 1.0
    assert inertia == pytest.approx(km.inertia_, rel=1e-2)
    assert centers.dtype == np.float64 and centers.shape == (6, X.shape[1])
    assert labels.shape == (len(X),)
    assert 1 <= n_iter <= 300


def test_kmeans_bitwise_identical_across_thread_counts():
    X, _ = make_blobs(n_samples=5000, n_features=5, centers=7, cluster_std=2.0,
                      random_state=2)
    w = np.random.default_rng(8).uniform(0.5, 2.0, size=len(X))
    ref = kmeans(X, 7, sample_weight=w, random_state=3, n_threads=1)
    for n_threads in (2, 4):
        assert_bitwise_equal(kmeans(X, 7, sample_weight=w, random_state=3,
                                    n_threads=n_threads), ref)


def test_kmeans_reproducible(blobs):
    X, _ = blobs
    a = kmeans(X, 6, random_state=11)
    assert_bitwise_equal(kmeans(X, 6, random_state=11), a)
    assert_bitwise_equal(kmeans(X, 6, random_state=np.random.RandomState(11)), a)


@pytest.mark.parametrize("max_iter, tol", [(1, 1e-4), (2, 0.5), (300, 1e-4), (300, 0.0)])
def test_kmeans_labels_and_inertia_match_returned_centers(max_iter, tol):
    X, _ = make_blobs(n_samples=4000, n_features=3, centers=5, cluster_std=3.0,
                      random_state=4)
    w = np.random.default_rng(9).uniform(0.5, 2.0, size=len(X))
    centers, labels, inertia, n_iter = kmeans(X, 5, sample_weight=w, random_state=0,
                                              max_iter=max_iter, tol=tol)
    ref_labels, ref_sq = nearest(X, centers)
    np.testing.assert_array_equal(labels, ref_labels)
    assert inertia == pytest.approx(w @ ref_sq, rel=1e-10)
    assert n_iter <= max_iter
    if max_iter == 1:
        assert n_iter == 1
    if tol == 0.0:
        # Fixed point: every center is the weighted mean of its members.
        for k in range(5):
            m = labels == k
            np.testing.assert_allclose(centers[k], w[m] @ X[m] / w[m].sum(), rtol=1e-10,
                                       atol=1e-10)


def test_lloyd_integer_weights_equal_repeated_rows():
    X, _ = make_blobs(n_samples=1500, n_features=3, centers=4, cluster_std=2.5,
                      random_state=5)
    counts = np.random.default_rng(10).integers(1, 4, size=len(X))
    X_rep = np.repeat(X, counts, axis=0)
    init = X[[0, 10, 20, 30]]
    # tol=0: both runs go to the fixed point (the relative tolerance uses the unweighted
    # variance of X, which differs between the two data sets).
    c_w, l_w, i_w, n_w = lloyd(X, init, sample_weight=counts, tol=0.0)
    c_r, l_r, i_r, n_r = lloyd(X_rep, init, tol=0.0)
    np.testing.assert_allclose(c_w, c_r, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(np.repeat(l_w, counts), l_r)
    assert i_w == pytest.approx(i_r, rel=1e-10)
    assert n_w == n_r


def test_lloyd_relocates_empty_cluster_to_farthest_row():
    X, _ = make_blobs(n_samples=600, n_features=2, centers=[[0, 0], [10, 0], [0, 10]],
                      cluster_std=0.5, random_state=6)
    outlier = np.array([[30.0, 30.0]])
    X = np.ascontiguousarray(np.vstack([X, outlier]))
    init = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [-1000.0, -1000.0]])

    # After one iteration, the empty 4th cluster sits on the row farthest from its center.
    centers, labels, inertia, n_iter = lloyd(X, init, max_iter=1)
    np.testing.assert_allclose(centers[3], outlier[0], atol=1e-12)
    assert n_iter == 1
    np.testing.assert_array_equal(labels, nearest(X, centers)[0])

    # Run to convergence: no cluster is left empty, and scikit-learn (which relocates
    # the same way) finds the same partition.
    centers, labels, inertia, n_iter = lloyd(X, init)
    assert np.bincount(labels, minlength=4).min() > 0
    km = KMeans(n_clusters=4, init=init, n_init=1).fit(X)
    assert adjusted_rand_score(labels, km.labels_) == 1.0
    assert inertia == pytest.approx(km.inertia_, rel=1e-9)
    # Deterministic across thread counts, relocation included.
    assert_bitwise_equal(lloyd(X, init, n_threads=2), lloyd(X, init, n_threads=1))


def test_kmeans_more_clusters_than_distinct_rows():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, -2.0]]), 20, axis=0)
    centers, labels, inertia, n_iter = kmeans(X, 5, random_state=0)
    assert np.isfinite(centers).all()
    assert labels.min() >= 0 and labels.max() < 5
    assert inertia == pytest.approx(0.0, abs=1e-12)
    assert len(np.unique(labels)) == 3


def test_kmeans_single_cluster_and_tiny_inputs():
    rng = np.random.default_rng(12)
    X = rng.normal(size=(50, 3))
    w = rng.uniform(0.5, 2.0, size=50)
    centers, labels, inertia, _ = kmeans(X, 1, sample_weight=w, random_state=0)
    np.testing.assert_allclose(centers[0], w @ X / w.sum(), rtol=1e-12)
    assert (labels == 0).all()
    assert inertia == pytest.approx(w @ ((X - centers[0]) ** 2).sum(axis=1), rel=1e-12)

    centers, labels, inertia, _ = kmeans(X[:1], 1, random_state=0)
    np.testing.assert_array_equal(centers, X[:1])
    assert inertia == 0.0

    centers, labels, inertia, _ = kmeans(X[:4], 4, random_state=0)
    np.testing.assert_array_equal(np.sort(labels), np.arange(4))
    assert inertia == pytest.approx(0.0, abs=1e-24)


def test_kmeans_float32_close_to_float64():
    X, _ = make_blobs(n_samples=3000, n_features=4, centers=5, cluster_std=1.5,
                      random_state=7)
    X32 = X.astype(np.float32)
    c32, l32, i32, _ = kmeans(X32, 5, random_state=0)
    c64, l64, i64, _ = kmeans(X32.astype(np.float64), 5, random_state=0)
    np.testing.assert_array_equal(l32, l64)
    np.testing.assert_allclose(c32, c64, rtol=1e-10, atol=1e-10)
    assert i32 == pytest.approx(i64, rel=1e-10)


def test_kmeans_far_from_origin():
    # The kernels work relative to the data mean, so a large common offset does not cost
    # the accuracy of the expanded distances.
    X, y = make_blobs(n_samples=3000, n_features=3, centers=4, cluster_std=0.5,
                      random_state=8)
    c0, l0, i0, _ = kmeans(X, 4, random_state=0)
    c1, l1, i1, _ = kmeans(X + 1e6, 4, random_state=0)
    np.testing.assert_array_equal(l1, l0)
    np.testing.assert_allclose(c1 - 1e6, c0, atol=1e-6)
    assert i1 == pytest.approx(i0, rel=1e-6)
    assert adjusted_rand_score(l1, y) == 1.0


def test_invalid_n_threads(blobs):
    X, _ = blobs
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            kmeans(X, 3, n_threads=bad)
