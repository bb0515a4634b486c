"""LDA's variational fits on documents read block by block (numpy.memmap, zarr, h5py) and on
dask arrays of dense or scipy.sparse CSR row blocks (threaded scheduler, and a real
distributed.LocalCluster of spawned worker processes): the bits of the fit in memory, lazy
block-wise transform, scores as numbers, checks that name the block."""
import os

import numpy as np
import pytest
import scipy.sparse as sp

from vbfast import LatentDirichletAllocation
from vbfast._core import blocks
from vbfast.topics import _lda
from vbfast.topics import lda as L
from _helpers import memmap_copy

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")


def _corpus(n=600, v=50, k=4, seed=0, dtype=np.float64):
    """Integer counts from k topics (some empty documents)."""
    rng = np.random.RandomState(seed)
    topics = rng.dirichlet(np.full(v, 0.1), size=k)
    theta = rng.dirichlet(np.full(k, 0.3), size=n)
    lengths = rng.poisson(30, size=n)
    lengths[::97] = 0
    X = np.vstack([rng.multinomial(m, p / p.sum()) for m, p in zip(lengths, theta @ topics)])
    return X.astype(dtype)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of a few documents, so that a few hundred documents span many blocks."""
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(blocks, "CHECK_BYTES", 4096)


ESTIMATORS = [
    LatentDirichletAllocation(4, max_iter=6, random_state=0, n_threads=2),
    LatentDirichletAllocation(4, max_iter=5, random_state=1, method="variational_em",
                              doc_topic_prior=0.02),
    LatentDirichletAllocation(4, max_iter=5, random_state=2, monotone=True),
    LatentDirichletAllocation(4, max_iter=30, random_state=3, evaluate_every=2,
                              perp_tol=1.0),
    LatentDirichletAllocation(4, max_iter=3, random_state=4, learning_method="online",
                              batch_size=64, total_samples=600),
]


def _ids(est):
    return f"{est.method}-{est.learning_method}-monotone{est.monotone}-" \
        f"every{est.evaluate_every}"


def _clone(est):
    return type(est)(**est.get_params())


def _assert_same_fit(a, b):
    """Bitwise the same fit; bound_ within 1e-13 (its number of words is summed per block
    in float64, in memory as numpy sums X.data)."""
    for name in ("components_", "exp_dirichlet_component_", "lower_bounds_", "n_iter_",
                 "n_batch_iter_", "converged_", "lower_bound_"):
        np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)
    np.testing.assert_allclose(b.bound_, a.bound_, rtol=1e-13)


@pytest.mark.parametrize("est", ESTIMATORS, ids=_ids)
def test_memmap_fit_is_the_in_memory_fit(est, small_blocks, tmp_path):
    X = _corpus()
    mm = memmap_copy(X, tmp_path)
    data = L.BlockedDocumentData(blocks.BlockRows(mm), 4, 1,
                                 64 if est.learning_method == "online" else None)
    assert len(data.plan) >= 5  # many blocks, cutting the pass's document groups
    a, b = _clone(est).fit(X), _clone(est).fit(mm)
    if est.evaluate_every > 0:
        assert a.converged_ and a.n_iter_ < est.max_iter  # the perplexity check stopped it
    _assert_same_fit(a, b)
    np.testing.assert_array_equal(b.transform(mm), a.transform(X))
    assert b.score(mm) == a.score(X)
    np.testing.assert_allclose(b.perplexity(mm), a.perplexity(X), rtol=1e-13)


def test_float32_and_sparse_reference(small_blocks, tmp_path):
    X = _corpus(dtype=np.float32)
    mm = memmap_copy(X, tmp_path)
    est = LatentDirichletAllocation(4, max_iter=4, random_state=0)
    a, b = _clone(est).fit(sp.csr_matrix(X)), _clone(est).fit(mm)
    _assert_same_fit(a, b)
    assert b.components_.dtype == np.float32
    t = b.transform(mm)
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t, a.transform(X))


def test_zarr_and_h5py(small_blocks, tmp_path):
    zarr = pytest.importorskip("zarr")
    h5py = pytest.importorskip("h5py")
    X = _corpus()
    est = ESTIMATORS[0]
    a = _clone(est).fit(X)
    z = zarr.array(X, chunks=(70, 50))
    with h5py.File(os.path.join(tmp_path, "X.h5"), "w") as f:
        h = f.create_dataset("X", data=X, chunks=(50, 50))
        for source in (z, h):
            b = _clone(est).fit(source)
            _assert_same_fit(a, b)
            np.testing.assert_array_equal(b.transform(source), a.transform(X))


def test_word_topic_sums_continued_block_by_block():
    """word_topic_stats continued block by block (accumulate, unscaled, B at the end) is
    the one call over all documents, bit for bit."""
    X = sp.csr_matrix(_corpus(n=300))
    V, K = X.shape[1], 4
    rng = np.random.RandomState(0)
    ratio = rng.uniform(size=X.nnz)
    t = rng.uniform(size=(X.shape[0], K))
    B = _lda.pad_topics(rng.uniform(size=(V, K)))
    whole = np.empty((V, K))
    _lda.word_topic_stats(*_lda.word_major_pattern(X.indptr, X.indices, V), ratio, t, B,
                          whole, 2)
    acc = np.zeros((V, K))
    for start, stop in ((0, 13), (13, 13), (13, 200), (200, 300)):
        Xb = X[start:stop]
        p0, p1 = X.indptr[start], X.indptr[stop]
        _lda.word_topic_stats(*_lda.word_major_pattern(Xb.indptr, Xb.indices, V),
                              ratio[p0:p1], t[start:stop], B, acc, 1, accumulate=True,
                              scale=False)
    np.testing.assert_array_equal(acc * B[:, :K], whole)


def test_group_bound_is_the_kernel_sum():
    """The documents' own terms added into the groups' slots in document order are the
    kernel's slots, summed as in memory, whatever the blocks."""
    X = sp.csr_matrix(_corpus(n=700))
    topics = L.Topics(np.random.RandomState(0).gamma(100.0, 0.01, (4, 50)), True, 0.25,
                      False, 1)
    n = X.shape[0]
    args = lambda slots, gamma: (X.indptr, X.indices, X.data, topics.sweep_B(),  # noqa: E731
                                 topics.log_B(), gamma, 0.25, 50, 1e-3, L._EPS, np.empty(0),
                                 np.empty((0, 0)), slots, 2, False, None, topics.topic_max)
    slots = np.empty((L._n_groups(n), 2))
    _lda.lda_pass(*args(slots, np.ones((n, 4))))
    terms = np.empty((n, 2))
    _lda.lda_pass(*args(terms, np.ones((n, 4))))
    cuts = [0, 5, 5, 111, 333, 334, 700]
    parts = [terms[a:b] for a, b in zip(cuts, cuts[1:])]
    np.testing.assert_array_equal(L._group_bound(parts, n), slots.sum(axis=0))


def test_streamed_checks_name_the_block(small_blocks, tmp_path):
    X = _corpus()
    est = LatentDirichletAllocation(4, max_iter=2, random_state=0).fit(X)
    fitted = est.components_.copy()
    for value, what in ((np.nan, "NaN"), (np.inf, "infinity"), (-1.0, "negative counts")):
        bad = X.copy()
        bad[401, 7] = value
        mm = memmap_copy(bad, tmp_path, f"bad{what[:3]}.npy")
        with pytest.raises(ValueError, match=rf"{what} in block \d+ \(rows"):
            est.fit(mm)
        np.testing.assert_array_equal(est.components_, fitted)  # left as it was
        with pytest.raises(ValueError, match=rf"{what} in block \d+"):
            est.transform(mm)
    with pytest.raises(ValueError, match="features"):
        est.transform(memmap_copy(np.zeros((10, 7)), tmp_path, "cols.npy"))


# ---------------------------------------------------------------------- dask
def _dask_sources(X, rows=97):
    """The same documents as dense row blocks and as scipy.sparse CSR row blocks."""
    dense = da.from_array(X, chunks=(rows, X.shape[1]))
    sparse = dense.map_blocks(sp.csr_matrix, dtype=X.dtype,
                              meta=sp.csr_matrix((0, 0), dtype=X.dtype))
    return {"dense": dense, "csr": sparse}


def _check_dask_fit(est, X, dX):
    a, b = _clone(est).fit(X), _clone(est).fit(dX)
    _assert_same_fit(a, b)
    t = b.transform(dX)
    assert isinstance(t, da.Array)
    assert t.chunks[0] == dX.chunks[0]
    np.testing.assert_array_equal(t.compute(), a.transform(X))
    score = b.score(dX)
    assert isinstance(score, float) and score == a.score(X)
    np.testing.assert_allclose(b.perplexity(dX), a.perplexity(X), rtol=1e-13)
    return b


@pytest.mark.parametrize("est", ESTIMATORS, ids=_ids)
@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_dask_threaded_scheduler(est, kind):
    X = _corpus()
    with dask.config.set(scheduler="threads"):
        _check_dask_fit(est, X, _dask_sources(X)[kind])


def test_dask_fit_transform_and_bad_input():
    X = _corpus()
    est = LatentDirichletAllocation(4, max_iter=3, random_state=0)
    with dask.config.set(scheduler="sync"):
        dX = _dask_sources(X)["csr"]
        t = _clone(est).fit_transform(dX)
        assert isinstance(t, da.Array)
        np.testing.assert_array_equal(t.compute(), _clone(est).fit_transform(X))
        with pytest.warns(UserWarning, match="chunked along its columns"):
            b = _clone(est).fit(da.from_array(X, chunks=(100, 20)))
        _assert_same_fit(_clone(est).fit(X), b)
        fitted = b.components_.copy()
        for value, what in ((np.nan, "NaN"), (-2.0, "negative counts")):
            bad = X.copy()
            bad[350, 3] = value
            for kind, dbad in _dask_sources(bad, rows=100).items():
                with pytest.raises(ValueError, match=rf"{what} in block 3"):
                    b.fit(dbad)
                np.testing.assert_array_equal(b.components_, fitted)
                with pytest.raises(ValueError, match=rf"{what} in block 3"):
                    b.transform(dbad).compute()
        with pytest.raises(ValueError, match="features"):
            b.transform(da.from_array(np.zeros((10, 7)), chunks=(5, 7)))
        with pytest.raises(ValueError, match="features"):
            b.score(_dask_sources(np.zeros((10, 7)))["csr"])
        # a block whose real shape is not what the array declares
        pieces = [da.from_delayed(dask.delayed(sp.csr_matrix)(X[a:a + 100, :49 if a == 200
                                                                else 50]),
                                  shape=(100, 50), dtype=X.dtype,
                                  meta=sp.csr_matrix((0, 0))) for a in range(0, 600, 100)]
        lying = da.concatenate(pieces)
        with pytest.raises(ValueError, match=r"block 2 has shape \(100, 49\)"):
            b.fit(lying)
        np.testing.assert_array_equal(b.components_, fitted)
        with pytest.raises(ValueError, match=r"block 2 has shape"):
            b.transform(lying).compute()


@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_dask_local_cluster(cluster_client, with_timeout, kind):
    """Two spawned worker processes: every block's pass and the chain of the word-topic
    sums run on the workers, and the fit is the in-memory fit's bits."""
    from distributed import get_task_stream

    X = _corpus()
    dX = _dask_sources(X)[kind]
    for est in (ESTIMATORS[0], ESTIMATORS[2]):
        with get_task_stream(cluster_client) as stream:
            with_timeout(lambda: _check_dask_fit(est, X, dX))
        names = {record["key"][0] if isinstance(record["key"], tuple) else record["key"]
                 for record in stream.data}
        assert any("_block_pass" in name for name in names)
        assert any("_block_word_topic" in name for name in names)
        assert len({record["worker"] for record in stream.data}) == 2  # both workers
