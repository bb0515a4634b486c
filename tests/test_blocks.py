"""Fits on data read block by block (numpy.memmap, zarr, h5py) and on dask arrays (threaded
scheduler and a real distributed.LocalCluster of spawned worker processes): the same bits as
the fit in memory, streamed checks, predictions by block."""
import os
import threading
import tracemalloc

import numpy as np
import pytest

from vbfast import BayesianGaussianMixture, GaussianMixture
from vbfast._core import blocks
from vbfast.emissions import gaussian as G
from vbfast.mixture import gaussian as MG
from _helpers import memmap_copy

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")


def _data(n=6000, d=3, seed=0, dtype=np.float64):
    rng = np.random.RandomState(seed)
    centres = np.array([[0.0] * d, [5.0] * d, [0.0, 5.0] + [-3.0] * (d - 2)])
    X = np.vstack([rng.normal(size=(n // 3, d)) + c for c in centres])
    return X[rng.permutation(len(X))].astype(dtype)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of one group per thread, so that a few thousand rows span many blocks."""
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 1)
    monkeypatch.setattr(blocks, "CHECK_BYTES", 4096)


ESTIMATORS = [
    GaussianMixture(3, covariance_type="full", random_state=0, n_threads=2),
    GaussianMixture(3, covariance_type="tied", random_state=0),
    GaussianMixture(3, covariance_type="diag", random_state=0, init_params="k-means++"),
    GaussianMixture(3, covariance_type="spherical", random_state=0,
                    init_params="random_from_data"),
    GaussianMixture(3, covariance_type="diag", random_state=0, init_params="random"),
    GaussianMixture(3, method="mean_field", covariance_type="full", random_state=0),
    BayesianGaussianMixture(n_components=3, covariance_type="tied", random_state=0),
    BayesianGaussianMixture(n_components=3, covariance_type="spherical", random_state=0,
                            weight_concentration_prior_type="dirichlet_distribution"),
    GaussianMixture(3, method="gibbs", covariance_type="diag", random_state=0, n_draws=10,
                    burn_in=5, n_chains=1),
    BayesianGaussianMixture(n_components=3, method="gibbs", covariance_type="full",
                            random_state=0, n_draws=10, burn_in=5, n_chains=2),
]


def _fitted(est):
    out = {name: getattr(est, name) for name in
           ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bounds_",
            "n_iter_")}
    if est.method == "gibbs":
        out["log_joint_trace_"] = est.log_joint_trace_
    return out


def _assert_same_fit(a, b):
    fa, fb = _fitted(a), _fitted(b)
    for name in fa:
        np.testing.assert_array_equal(fa[name], fb[name], err_msg=name)


def _clone(est):
    return type(est)(**est.get_params())


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: f"{type(e).__name__}-{e.method}-"
                         f"{e.covariance_type}-{e.init_params}")
def test_memmap_fit_is_the_in_memory_fit(est, small_blocks, tmp_path):
    X = _data()
    mm = memmap_copy(X, tmp_path)
    data = G.GaussianPass(blocks.BlockRows(mm), None, est.covariance_type, 3, 2)
    assert len(data.plan()) > 3  # many blocks
    a, b = _clone(est).fit(X), _clone(est).fit(mm)
    _assert_same_fit(a, b)  # bitwise: the same slots, the same Gibbs draws
    np.testing.assert_array_equal(b.predict_proba(mm), a.predict_proba(X))
    np.testing.assert_array_equal(b.score_samples(mm), a.score_samples(X))
    np.testing.assert_array_equal(b.predict(mm), a.predict(X))
    assert b.score(mm) == a.score(X)


def test_float32_and_weights_out_of_core(small_blocks, tmp_path):
    X = _data(dtype=np.float32)
    w = np.random.RandomState(1).uniform(0.5, 2.0, len(X))
    mm = memmap_copy(X, tmp_path)
    for est in (GaussianMixture(3, covariance_type="full", random_state=0),
                BayesianGaussianMixture(n_components=3, covariance_type="diag",
                                        random_state=0)):
        a = _clone(est).fit(X, sample_weight=w)
        b = _clone(est).fit(mm, sample_weight=w)
        _assert_same_fit(a, b)
        assert b.means_.dtype == np.float32


def test_zarr_and_h5py(small_blocks, tmp_path):
    zarr = pytest.importorskip("zarr")
    h5py = pytest.importorskip("h5py")
    X = _data()
    z = zarr.array(X, chunks=(700, 3))
    with h5py.File(os.path.join(tmp_path, "X.h5"), "w") as f:
        h = f.create_dataset("X", data=X, chunks=(500, 3))
        est = GaussianMixture(3, covariance_type="full", random_state=0)
        a = _clone(est).fit(X)
        for source in (z, h):
            b = _clone(est).fit(source)
            _assert_same_fit(a, b)
            np.testing.assert_array_equal(b.predict(source), a.predict(X))


def test_gibbs_draws_keyed_by_global_row():
    """A block's kernel call with its row offset draws the uniforms of the whole pass."""
    from vbfast.emissions import _gaussian_kernel as K

    u = K.uniforms(7, 3, 0, 1000)
    np.testing.assert_array_equal(K.uniforms(7, 3, 600, 1000), u[600:])
    X = _data(n=3000)
    data = G.GaussianPass(X, None, "diag", 3, 1)
    means = np.array([[0.0] * 3, [5.0] * 3, [0.0, 5.0, -3.0]]) - data.shift
    inputs = G.pass_inputs(means + data.shift, np.ones((3, 3)), "diag", data.shift,
                           np.zeros(3))
    z_all = np.empty(3000, dtype=np.int32)
    data.run(*inputs, sample_z=True, seed=5, sweep=2, z_out=z_all, compute_stats=False)
    z_tail = np.empty(1000, dtype=np.int32)
    part = G.GaussianPass(X[2000:], None, "diag", 3, 1, shift=data.shift)
    K.gmm_pass(X[2000:], np.empty(0), data.shift, *inputs, 2, np.empty((0, 0)),
               part.nk_slots, part.s1_slots, part.s2_slots, part.ll_slots, part.ent_slots,
               np.empty((0, 0)), np.empty(0), False, G.CHUNK_SIZE, 1, True, 5, 2, z_tail,
               2000)
    np.testing.assert_array_equal(z_tail, z_all[2000:])


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++"])
def test_sampled_initialisation_same_rule_in_memory(init_params, small_blocks, tmp_path,
                                                    monkeypatch):
    """Above INIT_SAMPLE_BYTES k-means runs on evenly spaced rows (in memory too), and every
    row starts in its nearest centre's component (k-means) or only the seeds do."""
    monkeypatch.setattr(MG, "INIT_SAMPLE_BYTES", 8 * 3 * 500)
    X = _data()
    mm = memmap_copy(X, tmp_path)
    est = GaussianMixture(3, random_state=0, init_params=init_params)
    data = G.GaussianPass(X, None, "full", 3, 1)
    assert MG.init_rows(data).shape == (500,)
    resp = est._initial_resp(data, np.random.RandomState(0))
    assert isinstance(resp, G.NearestCentres if init_params == "kmeans" else G.Seeds)
    a, b = _clone(est).fit(X), _clone(est).fit(mm)
    _assert_same_fit(a, b)
    assert a.converged_


def test_nearest_centres_and_seeds_one_hot():
    X = np.array([[0.0, 0.0], [10.0, 0.0], [0.1, 0.0], [9.0, 1.0]])
    nc = G.NearestCentres([[0.0, 0.0], [10.0, 0.0]])
    np.testing.assert_array_equal(nc.one_hot(X).argmax(1), [0, 1, 0, 1])
    seeds = G.Seeds([3, 1], 2, 4)
    expected = np.zeros((4, 2))
    expected[3, 0] = expected[1, 1] = 1.0
    np.testing.assert_array_equal(seeds.one_hot(), expected)
    np.testing.assert_array_equal(seeds.part(2, 4).one_hot(), expected[2:])


def test_streamed_validation_names_the_block(small_blocks, tmp_path):
    X = _data()
    X[4100, 1] = np.nan
    mm = memmap_copy(X, tmp_path)
    with pytest.raises(ValueError, match=r"NaN in block \d+ \(rows"):
        GaussianMixture(3).fit(mm)
    X[4100, 1] = np.inf
    mm = memmap_copy(X, tmp_path)
    est = GaussianMixture(3, random_state=0).fit(_data())
    with pytest.raises(ValueError, match="infinity in block"):
        est.predict(mm)
    with pytest.raises(ValueError, match="2-D"):
        GaussianMixture(3).fit(memmap_copy(np.zeros(10), tmp_path))
    with pytest.raises(ValueError, match="features"):
        est.predict(memmap_copy(np.zeros((10, 4)), tmp_path))
    with pytest.raises(ValueError, match="numeric"):
        GaussianMixture(3).fit(memmap_copy(np.zeros((10, 3), dtype="M8[s]"), tmp_path))


def test_no_n_by_d_temporary(monkeypatch, tmp_path):
    """A fit on a memmap allocates (numpy, traced) far less than X's size: checks, the shift,
    the passes and the initialisation all go block by block."""
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 256 << 10)
    monkeypatch.setattr(blocks, "CHECK_BYTES", 256 << 10)
    monkeypatch.setattr(MG, "INIT_SAMPLE_BYTES", 512 << 10)
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200_000, 8))
    mm = memmap_copy(X, tmp_path)
    del X
    est = GaussianMixture(4, covariance_type="diag", random_state=0, max_iter=3)
    peaks = []
    for step in (lambda: est.fit(mm), lambda: est.score_samples(mm)):
        tracemalloc.start()
        try:
            step()
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[0] < mm.nbytes / 8, (peaks, mm.nbytes)
    # the scores themselves (N,) plus a block's work
    assert peaks[1] < 8 * mm.shape[0] + mm.nbytes / 8, (peaks, mm.nbytes)


# ---------------------------------------------------------------------- dask
DASK_ESTIMATORS = [
    GaussianMixture(3, covariance_type="full", random_state=0),
    GaussianMixture(3, covariance_type="tied", random_state=0, init_params="k-means++"),
    BayesianGaussianMixture(n_components=3, covariance_type="diag", random_state=0),
    GaussianMixture(3, method="gibbs", covariance_type="spherical", random_state=0,
                    n_draws=5, burn_in=3, n_chains=1),
]


def _check_dask_fit(est, X, dX):
    a, b = _clone(est).fit(X), _clone(est).fit(dX)
    _assert_same_fit(a, b)
    proba = b.predict_proba(dX)
    assert isinstance(proba, da.Array)
    np.testing.assert_array_equal(proba.compute(), a.predict_proba(X))
    scores = b.score_samples(dX)
    assert isinstance(scores, da.Array)
    np.testing.assert_array_equal(scores.compute(), a.score_samples(X))
    np.testing.assert_array_equal(b.predict(dX).compute(), a.predict(X))
    score = b.score(dX)
    assert isinstance(score, float)
    np.testing.assert_allclose(score, a.score(X), rtol=1e-12)


@pytest.mark.parametrize("est", DASK_ESTIMATORS, ids=lambda e: f"{e.method}-"
                         f"{e.covariance_type}")
def test_dask_threaded_scheduler(est, small_blocks):
    X = _data()
    with dask.config.set(scheduler="threads"):
        _check_dask_fit(est, X, da.from_array(X, chunks=(1000, 3)))


def test_dask_bad_input(small_blocks):
    X = _data()
    est = GaussianMixture(3, random_state=0, max_iter=5)
    with dask.config.set(scheduler="sync"):
        bad = X.copy()
        bad[3500, 0] = np.nan
        with pytest.raises(ValueError, match=r"NaN in block \d+"):
            _clone(est).fit(da.from_array(bad, chunks=(1000, 3)))
        with pytest.warns(UserWarning, match="chunked along its columns"):
            b = _clone(est).fit(da.from_array(X, chunks=(1000, 1)))
        _assert_same_fit(b, _clone(est).fit(X))
        dX = da.from_array(X, chunks=(1000, 3))
        masked = dX[dX[:, 0] > -np.inf]  # unknown chunk sizes
        assert np.isnan(masked.chunks[0][0])
        _assert_same_fit(_clone(est).fit(masked), b)
        with pytest.raises(ValueError, match="features"):
            b.predict(da.from_array(np.zeros((10, 4)), chunks=5))
        with pytest.raises(ValueError, match=r"NaN in block 3"):
            b.predict(da.from_array(bad, chunks=(1000, 3))).compute()
        fitted = b.means_.copy()
        with pytest.raises(ValueError, match="NaN"):
            b.fit(da.from_array(bad, chunks=(1000, 3)))
        np.testing.assert_array_equal(b.means_, fitted)  # left as it was


def test_dask_local_cluster(cluster_client, with_timeout, small_blocks):
    """Two spawned worker processes: every block's pass runs on a worker, and the fit is
    the in-memory fit's bits."""
    from distributed import get_task_stream

    X = _data()
    dX = da.from_array(X, chunks=(1000, 3))
    for est in (DASK_ESTIMATORS[0], DASK_ESTIMATORS[3]):
        with get_task_stream(cluster_client) as stream:
            with_timeout(lambda: _check_dask_fit(est, X, dX))
        assert len({record["worker"] for record in stream.data}) == 2  # both workers


def test_dask_gram_grouped_otherwise(small_blocks, monkeypatch):
    """'tied' on Dask when the Gram matrix's groups are not the statistics' (slots budget
    shrunk so that they differ): summed per block, equal up to rounding."""
    monkeypatch.setattr(G, "SLOT_BUDGET", 1)  # the budget is then X's size / 8
    X = _data(d=40)
    data = G.GaussianPass(X, None, "tied", 3, 1)
    assert G.n_groups_for(len(X), 40 * 40, X.nbytes) != data.n_groups
    est = GaussianMixture(3, covariance_type="tied", random_state=0)
    with dask.config.set(scheduler="threads"):
        b = _clone(est).fit(da.from_array(X, chunks=(1000, 40)))
    a = _clone(est).fit(X)
    assert a.n_iter_ == b.n_iter_
    for name in ("means_", "covariances_", "lower_bounds_"):
        want = getattr(a, name)  # (near-zero covariances: relative to the largest entry)
        np.testing.assert_allclose(getattr(b, name), want, rtol=1e-10,
                                   atol=1e-10 * np.abs(want).max())


def test_dask_worker_killed_mid_fit(cluster_client, with_timeout, small_blocks):
    """A worker process killed during a fit (its Nanny restarts it): the fit completes with
    the same result (lost blocks recomputed from their source) or fails with an error and
    leaves the estimator unfitted; never a different model. (Last: it restarts a worker.)"""
    import signal

    X = _data()
    dX = da.from_array(X, chunks=(1000, 3))
    est = GaussianMixture(3, method="gibbs", covariance_type="diag", random_state=0,
                          n_draws=300, burn_in=100, n_chains=1)
    expected = _clone(est).fit(X)
    pids = list(cluster_client.run(os.getpid).values())
    b = _clone(est)
    timer = threading.Timer(1.5, os.kill, (pids[0], signal.SIGKILL))
    timer.start()
    try:
        with_timeout(lambda: b.fit(dX), 300)
    except Exception as exc:  # noqa: BLE001 (a clear error is allowed; the state is checked)
        assert not hasattr(b, "means_"), exc
    else:
        _assert_same_fit(b, expected)
    finally:
        timer.cancel()
