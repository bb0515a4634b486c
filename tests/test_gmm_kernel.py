"""The Gaussian-mixture pass kernel ``vbfast.emissions._gaussian_kernel`` against a slow, obvious NumPy reference.

The reference computes everything the ``gmm_pass`` docstring defines, directly from the
precision matrices Lambda_k = U_k U_k^T (no GEMM form, no folded constants):

    log rho_nk = c_k - 1/2 (x_n - m_k)^T Lambda_k (x_n - m_k)
    r_nk = softmax_k log rho_nk,   log p(x_n) = logsumexp_k log rho_nk
    N_k = sum w r,  S1_k = sum w r x,  S2 per covariance type,
    LL = sum w log p,  H = sum w sum_k r log r,

all in coordinates shifted by ``shift``.
"""
import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from vbfast.emissions import gaussian as G
from vbfast.emissions import _gaussian_kernel as _gmm
from vbfast._core.threads import single_threaded_blas

CHUNK = G.CHUNK_SIZE
COV_TYPES = ["full", "tied", "diag", "spherical"]
CODES = {"full": 0, "tied": 1, "diag": 2, "spherical": 3}
# N not a multiple of the chunk size, spanning several chunks (and groups).
N_ODD = 5 * CHUNK + 37


# --------------------------------------------------------------------------- problem set-up
def make_data(rng, n, d, dtype=np.float64):
    """Rows around an offset far from the origin, so the shift matters."""
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=d) + rng.uniform(-5, 5, size=d)
    return np.ascontiguousarray(X.astype(dtype))


def make_params(rng, covariance_type, K, D):
    """Random weights, shifted means and covariances; returns a dict with the precision
    matrices Lambda_k (K, D, D) for the reference and the factors for the kernel."""
    weights = rng.dirichlet(np.full(K, 2.0))
    means = rng.normal(size=(K, D)) * 1.5
    if covariance_type == "full":
        A = rng.normal(size=(K, D, D))
        cov = A @ np.swapaxes(A, 1, 2) / D + 0.3 * np.eye(D)
    elif covariance_type == "tied":
        A = rng.normal(size=(D, D))
        cov = A @ A.T / D + 0.3 * np.eye(D)
    elif covariance_type == "diag":
        cov = rng.uniform(0.3, 2.5, size=(K, D))
    else:
        cov = rng.uniform(0.3, 2.5, size=K)
    prec_chol = G.precision_cholesky(cov, covariance_type)
    # Lambda_k written out from the covariances, independently of the factors.
    if covariance_type == "full":
        Lam = np.linalg.inv(cov)
    elif covariance_type == "tied":
        Lam = np.repeat(np.linalg.inv(cov)[None], K, axis=0)
    elif covariance_type == "diag":
        Lam = np.stack([np.diag(1.0 / c) for c in cov])
    else:
        Lam = np.stack([np.eye(D) / c for c in cov])
    return {"weights": weights, "means": means, "cov": cov, "prec_chol": prec_chol,
            "Lam": Lam, "type": covariance_type}


def kernel_inputs(p):
    """(prec_flat, aux, log_const) for the kernel, via the library's helpers."""
    K, D = p["means"].shape
    prec_flat, aux, quad = G.kernel_arrays(p["means"], p["prec_chol"], p["type"])
    log_const = (np.log(p["weights"]) + G.log_det_cholesky(p["prec_chol"], p["type"], D)
                 - 0.5 * D * np.log(2 * np.pi) + quad)
    return (np.ascontiguousarray(prec_flat, dtype=np.float64), np.ascontiguousarray(aux),
            np.ascontiguousarray(log_const))


def s2_size(covariance_type, K, D):
    return {"full": K * D * D, "tied": 0, "diag": K * D, "spherical": K}[covariance_type]


def run_pass(X, w, shift, p, n_groups=None, resp_in=None, want_resp=False, want_lpn=False,
             compute_stats=True, chunk_size=CHUNK, n_threads=2, log_const=None,
             s2_panels=False, sample_z=False, float32_work=False):
    """Call ``gmm_pass`` with NaN-prefilled slots and outputs; return the raw results
    (``s2_panels``: S2 in one slot, by the panel sweep; ``float32_work``: float32 X may run
    in float32)."""
    K, D = p["means"].shape
    ctype = p["type"]
    prec_flat, aux, lc = kernel_inputs(p)
    if log_const is not None:
        lc = np.ascontiguousarray(log_const, dtype=np.float64)
    N = X.shape[0]
    n_chunks = -(-N // chunk_size)
    Gn = n_groups if n_groups is not None else min(n_chunks, 128)
    s2n = s2_size(ctype, K, D)
    out = {
        "nk": np.full((Gn, K), np.nan), "s1": np.full((Gn, K * D), np.nan),
        "s2": np.full((1 if s2_panels else Gn, s2n), np.nan), "ll": np.full(Gn, np.nan),
        "ent": np.full(Gn, np.nan),
        "resp": np.full((N, K), np.nan, dtype=X.dtype) if want_resp
        else np.empty((0, 0), dtype=X.dtype),
        "lpn": np.full(N, np.nan, dtype=X.dtype) if want_lpn else np.empty(0, dtype=X.dtype),
    }
    _gmm.gmm_pass(
        X, w if w is not None else np.empty(0), np.ascontiguousarray(shift, dtype=np.float64),
        np.ascontiguousarray(p["means"]), prec_flat, aux, lc, CODES[ctype],
        resp_in if resp_in is not None else np.empty((0, 0)),
        out["nk"], out["s1"], out["s2"], out["ll"], out["ent"], out["resp"], out["lpn"],
        compute_stats, chunk_size, n_threads, sample_z, 5, 1, None, 0, s2_panels, None,
        float32_work)
    return out


def reduce_slots(out, p):
    """Sum the per-group slots in order; full S2 reshaped (lower triangle only is defined)."""
    K, D = p["means"].shape
    red = {"nk": out["nk"].sum(axis=0), "s1": out["s1"].sum(axis=0).reshape(K, D),
           "ll": out["ll"].sum(), "ent": out["ent"].sum()}
    s2 = out["s2"].sum(axis=0)
    if p["type"] == "full":
        s2 = s2.reshape(K, D, D)
    elif p["type"] == "diag":
        s2 = s2.reshape(K, D)
    red["s2"] = s2
    return red


# --------------------------------------------------------------------------- the reference
def reference_log_rho(X, shift, p):
    """log rho_nk with an explicit quadratic form per row and component."""
    Xs = X.astype(np.float64) - shift
    K, D = p["means"].shape
    out = np.empty((Xs.shape[0], K))
    for k in range(K):
        diff = Xs - p["means"][k]
        quad = np.einsum("ni,ij,nj->n", diff, p["Lam"][k], diff)
        _, logdet = np.linalg.slogdet(p["Lam"][k])
        with np.errstate(divide="ignore"):
            c_k = np.log(p["weights"][k]) + 0.5 * logdet - 0.5 * D * np.log(2 * np.pi)
        out[:, k] = c_k - 0.5 * quad
    return out


def reference_stats(X, w, shift, p, resp=None):
    """Everything the kernel returns, by the docstring's definitions."""
    Xs = X.astype(np.float64) - shift
    N = Xs.shape[0]
    K, D = p["means"].shape
    w = np.ones(N) if w is None else w
    ref = {}
    if resp is None:
        log_rho = reference_log_rho(X, shift, p)
        lpn = logsumexp(log_rho, axis=1)
        resp = np.exp(log_rho - lpn[:, None])
        with np.errstate(divide="ignore", invalid="ignore"):
            rlogr = np.where(resp > 0, resp * np.log(resp), 0.0)
        ref["lpn"] = lpn
        ref["ll"] = float(np.sum(w * lpn))
        ref["ent"] = float(np.sum(w * rlogr.sum(axis=1)))
    ref["resp"] = resp
    wr = w[:, None] * resp
    ref["nk"] = wr.sum(axis=0)
    ref["s1"] = np.stack([(wr[:, k, None] * Xs).sum(axis=0) for k in range(K)])
    if p["type"] == "full":
        s2 = np.empty((K, D, D))
        for k in range(K):
            diff = Xs - p["means"][k]
            s2[k] = sum(wr[n, k] * np.outer(diff[n], diff[n]) for n in range(N))
        ref["s2"] = s2
    # diag and spherical: centred at the means, as full (issue 18: a component far from the
    # shift lost its variance to cancellation when S2 was taken about the shift)
    elif p["type"] == "diag":
        ref["s2"] = np.stack([(wr[:, k, None] * (Xs - p["means"][k]) ** 2).sum(axis=0)
                              for k in range(K)])
    elif p["type"] == "spherical":
        ref["s2"] = np.array([(wr[:, k] * ((Xs - p["means"][k]) ** 2).sum(axis=1)).sum()
                              for k in range(K)])
    else:
        ref["s2"] = np.zeros(0)
    # Magnitudes of the summed terms, for absolute tolerances of sums that cancel.
    ref["s1_scale"] = np.abs(wr).T @ np.abs(Xs)
    return ref


def assert_stats_close(red, ref, p, rtol):
    K, D = p["means"].shape
    assert_allclose(red["nk"], ref["nk"], rtol=rtol, atol=rtol * ref["nk"].sum())
    assert_allclose(red["s1"], ref["s1"], rtol=rtol, atol=rtol * ref["s1_scale"].max())
    if p["type"] == "full":
        # Only the lower triangle (row-major) is defined; compare it, then the symmetrised one.
        il = np.tril_indices(D)
        assert_allclose(red["s2"][:, il[0], il[1]], ref["s2"][:, il[0], il[1]], rtol=rtol,
                        atol=rtol * np.abs(ref["s2"]).max())
        assert_allclose(G.symmetrize_lower(red["s2"]), ref["s2"], rtol=rtol,
                        atol=rtol * np.abs(ref["s2"]).max())
    elif p["type"] == "tied":
        assert red["s2"].shape == (0,)
    else:
        assert_allclose(red["s2"], ref["s2"], rtol=rtol, atol=rtol * np.abs(ref["s2"]).max())


# --------------------------------------------------------------------------- tests
def test_reference_matches_scipy():
    """The reference itself: log p(x) equals a mixture of scipy multivariate normals."""
    rng = np.random.default_rng(0)
    X = make_data(rng, 50, 3)
    shift = X.mean(axis=0)
    for ctype in COV_TYPES:
        p = make_params(rng, ctype, 3, 3)
        ref = reference_stats(X, None, shift, p)
        dens = np.stack([
            np.log(p["weights"][k]) + multivariate_normal(
                p["means"][k] + shift, np.linalg.inv(p["Lam"][k])).logpdf(X)
            for k in range(3)], axis=1)
        assert_allclose(ref["lpn"], logsumexp(dens, axis=1), rtol=1e-12)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_pass_matches_reference(covariance_type, dtype, weighted):
    rng = np.random.default_rng([CODES[covariance_type], int(weighted),
                                 np.dtype(dtype).itemsize])
    K, D = 4, 5
    X = make_data(rng, N_ODD, D, dtype)
    w = rng.uniform(0.0, 3.0, size=N_ODD) if weighted else None
    if weighted:
        w[::17] = 0.0  # zero weights are allowed
    shift = X.astype(np.float64).mean(axis=0)
    p = make_params(rng, covariance_type, K, D)
    out = run_pass(X, w, shift, p, want_resp=True, want_lpn=True)
    red = reduce_slots(out, p)
    ref = reference_stats(X, w, shift, p)

    # The statistics and bound terms are accumulated in float64 whatever the input dtype,
    # from the exact same (float32-representable) data: tight for both dtypes.
    rtol = 1e-10
    assert_stats_close(red, ref, p, rtol)
    assert_allclose(red["ll"], ref["ll"], rtol=rtol)
    assert_allclose(red["ent"], ref["ent"], rtol=rtol, atol=rtol * abs(ref["ll"]))
    assert red["ent"] <= 0.0  # sum r log r <= 0

    # Per-row outputs are written in the input dtype.
    assert out["resp"].dtype == dtype and out["lpn"].dtype == dtype
    if dtype == np.float64:
        assert_allclose(out["resp"], ref["resp"], rtol=1e-10, atol=1e-12)
        assert_allclose(out["lpn"], ref["lpn"], rtol=1e-10)
    else:
        assert_allclose(out["resp"], ref["resp"], rtol=1e-5, atol=1e-6)
        assert_allclose(out["lpn"], ref["lpn"], rtol=1e-5)
    assert_allclose(out["resp"].sum(axis=1, dtype=np.float64), 1.0, rtol=1e-5 if
                    dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_pass_group_and_chunk_layout_does_not_change_the_sums(covariance_type):
    """Any number of groups (fewer, equal to, more than the chunks) and any chunk size give
    the same reduced statistics, and each agrees with the reference."""
    rng = np.random.default_rng(11)
    K, D = 3, 4
    X = make_data(rng, N_ODD, D)
    w = rng.uniform(0.5, 2.0, size=N_ODD)
    shift = X.mean(axis=0) + 0.3
    p = make_params(rng, covariance_type, K, D)
    ref = reference_stats(X, w, shift, p)
    n_chunks = -(-N_ODD // CHUNK)
    for n_groups, chunk in [(1, CHUNK), (2, CHUNK), (n_chunks, CHUNK), (n_chunks + 5, CHUNK),
                            (4, 100), (7, 1), (3, N_ODD + 10)]:
        out = run_pass(X, w, shift, p, n_groups=n_groups, chunk_size=chunk, want_lpn=True)
        assert np.isfinite(out["nk"]).all() and np.isfinite(out["ll"]).all(), \
            "every slot must be overwritten, even those of empty groups"
        red = reduce_slots(out, p)
        assert_stats_close(red, ref, p, 1e-10)
        assert_allclose(red["ll"], ref["ll"], rtol=1e-10)
        assert_allclose(red["ent"], ref["ent"], rtol=1e-10, atol=1e-10 * abs(ref["ll"]))
        assert_allclose(out["lpn"], ref["lpn"], rtol=1e-10)


@pytest.mark.parametrize("K,D", [(1, 1), (2, 1), (1, 3)])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_pass_small_shapes(covariance_type, K, D):
    """One component and / or one feature."""
    rng = np.random.default_rng([K, D, CODES[covariance_type]])
    X = make_data(rng, 300, D)
    w = rng.uniform(0.1, 2.0, size=300)
    shift = X.mean(axis=0)
    p = make_params(rng, covariance_type, K, D)
    out = run_pass(X, w, shift, p, want_resp=True, want_lpn=True)
    red = reduce_slots(out, p)
    ref = reference_stats(X, w, shift, p)
    assert_stats_close(red, ref, p, 1e-10)
    assert_allclose(red["ll"], ref["ll"], rtol=1e-10)
    assert_allclose(out["resp"], ref["resp"], rtol=1e-10, atol=1e-12)
    assert_allclose(out["lpn"], ref["lpn"], rtol=1e-10)
    if K == 1:
        assert np.all(out["resp"] == 1.0)
        assert red["ent"] == 0.0


def resp_problem(seed, covariance_type, dtype, weighted, K, D):
    """(rng, X, w, shift, params, soft responsibilities) of N_ODD rows for the resp_in
    tests."""
    rng = np.random.default_rng([seed, CODES[covariance_type], int(weighted),
                                 np.dtype(dtype).itemsize])
    X = make_data(rng, N_ODD, D, dtype)
    w = rng.uniform(0.0, 2.0, size=N_ODD) if weighted else None
    shift = X.astype(np.float64).mean(axis=0)
    p = make_params(rng, covariance_type, K, D)
    resp = np.ascontiguousarray(rng.dirichlet(np.full(K, 0.5), size=N_ODD))
    return rng, X, w, shift, p, resp


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_pass_given_responsibilities(covariance_type, dtype, weighted):
    """resp_in mode: N_k, S1, S2 of the given responsibilities (full S2 centred at the given
    means, which need not be the shift); the densities are not used."""
    K = 3
    rng, X, w, shift, p, resp = resp_problem(7, covariance_type, dtype, weighted, K, 4)
    resp[::5] = 0.0
    resp[::5, 1] = 1.0  # some hard assignments too
    out = run_pass(X, w, shift, p, resp_in=resp)
    red = reduce_slots(out, p)
    ref = reference_stats(X, w, shift, p, resp=resp)
    assert_stats_close(red, ref, p, 1e-10)

    # The factors are not used when the responsibilities are given: garbage precisions
    # (but the same means, which centre full S2) give the same statistics.
    p_bad = dict(p, prec_chol=np.full_like(p["prec_chol"], 1e300),
                 weights=np.full(K, 1.0 / K))
    with np.errstate(over="ignore", invalid="ignore"):
        out_bad = run_pass(X, w, shift, p_bad, resp_in=resp)
    red_bad = reduce_slots(out_bad, p)
    for name in ("nk", "s1", "s2"):
        assert np.array_equal(red_bad[name], red[name]), name


@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("K, D", [(6, 16), (16, 16), (5, 3), (9, 11), (1, 9), (4, 8), (7, 12)])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_tile_given_responsibilities(covariance_type, dtype, weighted, K, D):
    """Given responsibilities with every centre at the shift (the first pass of
    ``centred_stats_from_resp``: initialisation) take the fused float64 tile's statistics
    (w r component-major in place of the densities, the dense GEMM or, for one-hot rows,
    the nonzero ones alone; float64 diag with 8 < D <= 16 and dense rows: straight from the
    rows of X and r, vbf_gmm_given_stats, four components at a time, K not a multiple of
    four too): against the reference, ll / ent left zero, no per-row output written, bitwise the
    same for 1, 2 and 3 threads; soft rows, one-hot rows and chunks of 64-row tiles with a
    remainder (N = 5 chunks + 37 rows)."""
    rng, X, w, shift, p, soft = resp_problem(8, covariance_type, dtype, weighted, K, D)
    p["means"] = np.zeros((K, D))
    hard = np.zeros((N_ODD, K))
    hard[np.arange(N_ODD), rng.integers(0, K, N_ODD)] = 1.0
    for resp in (soft, hard):
        outs = [run_pass(X, w, shift, p, resp_in=resp, n_threads=t, want_resp=True,
                         want_lpn=True) for t in (1, 2, 3)]
        red = reduce_slots(outs[0], p)
        ref = reference_stats(X, w, shift, p, resp=resp)
        assert_stats_close(red, ref, p, 1e-10)
        assert not outs[0]["ll"].any() and not outs[0]["ent"].any()
        assert np.isnan(outs[0]["resp"]).all() and np.isnan(outs[0]["lpn"]).all()
        for other in outs[1:]:
            for name, value in outs[0].items():
                assert np.array_equal(value, other[name], equal_nan=True), name


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_pass_without_statistics(covariance_type):
    """compute_stats=False still gives the bound terms and per-row outputs, identical to a
    pass that also accumulates the statistics."""
    rng = np.random.default_rng(5)
    X = make_data(rng, N_ODD, 3)
    w = rng.uniform(0.5, 1.5, size=N_ODD)
    shift = X.mean(axis=0)
    p = make_params(rng, covariance_type, 3, 3)
    full = run_pass(X, w, shift, p, want_resp=True, want_lpn=True, compute_stats=True)
    lite = run_pass(X, w, shift, p, want_resp=True, want_lpn=True, compute_stats=False)
    for name in ("ll", "ent", "resp", "lpn"):
        assert np.array_equal(full[name], lite[name]), name
    ref = reference_stats(X, w, shift, p)
    assert_allclose(lite["ll"].sum(), ref["ll"], rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_pass_zero_weight_component(covariance_type):
    """A component with weight 0 (c_k = -inf) gets responsibility exactly 0, and 0 log 0
    counts as 0 in the entropy term."""
    rng = np.random.default_rng(3)
    K, D = 3, 2
    X = make_data(rng, 700, D)
    shift = X.mean(axis=0)
    p = make_params(rng, covariance_type, K, D)
    p["weights"] = np.array([0.6, 0.0, 0.4])
    with np.errstate(divide="ignore"):
        out = run_pass(X, None, shift, p, want_resp=True, want_lpn=True)
    red = reduce_slots(out, p)
    ref = reference_stats(X, None, shift, p)
    assert np.all(out["resp"][:, 1] == 0.0)
    assert red["nk"][1] == 0.0 and np.all(red["s1"][1] == 0.0)
    assert np.isfinite(red["ent"])
    assert_allclose(red["ent"], ref["ent"], rtol=1e-10)
    assert_allclose(red["ll"], ref["ll"], rtol=1e-10)
    assert_stats_close(red, ref, p, 1e-10)


def test_pass_no_component_has_density():
    """All c_k = -inf: log p(x) = -inf and the responsibilities stay uniform (not NaN)."""
    rng = np.random.default_rng(4)
    K, D = 3, 2
    X = make_data(rng, 300, D)
    p = make_params(rng, "diag", K, D)
    out = run_pass(X, None, X.mean(axis=0), p, want_resp=True, want_lpn=True,
                   log_const=np.full(K, -np.inf))
    assert np.all(out["lpn"] == -np.inf)
    assert_allclose(out["resp"], 1.0 / K, rtol=1e-15)
    assert out["ll"].sum() == -np.inf
    assert_allclose(out["nk"].sum(axis=0), 300.0 / K, rtol=1e-12)


@pytest.fixture
def blas_one_thread():
    """The library calls the kernels with BLAS limited to one thread (its own OpenMP threads
    call BLAS); without the limit, tiny BLAS calls from several threads crawl."""
    with single_threaded_blas():
        yield


@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_pass_bitwise_independent_of_thread_count(covariance_type):
    rng = np.random.default_rng(21)
    N, K, D = 20011, 4, 6
    X = make_data(rng, N, D)
    w = rng.uniform(0.0, 2.0, size=N)
    shift = X.mean(axis=0)
    p = make_params(rng, covariance_type, K, D)
    n_groups = G.n_groups_for(N, K + K * D + s2_size(covariance_type, K, D))
    assert n_groups > 4
    results = [run_pass(X, w, shift, p, n_groups=n_groups, want_resp=True, want_lpn=True,
                        n_threads=t) for t in (1, 2, 1, 3)]
    for other in results[1:]:
        for name, value in results[0].items():
            assert np.array_equal(value, other[name]), name
    resp = np.ascontiguousarray(results[0]["resp"])
    given = [run_pass(X, w, shift, p, n_groups=n_groups, resp_in=resp, n_threads=t)
             for t in (1, 2)]
    for name in ("nk", "s1", "s2"):
        assert np.array_equal(given[0][name], given[1][name]), name


@pytest.mark.usefixtures("blas_one_thread")
def test_pass_float32_bitwise_independent_of_thread_count():
    rng = np.random.default_rng(22)
    N, K, D = 20011, 3, 4
    X = make_data(rng, N, D, np.float32)
    shift = X.mean(axis=0, dtype=np.float64)
    p = make_params(rng, "full", K, D)
    a = run_pass(X, None, shift, p, n_groups=40, want_resp=True, want_lpn=True, n_threads=1)
    b = run_pass(X, None, shift, p, n_groups=40, want_resp=True, want_lpn=True, n_threads=2)
    for name, value in a.items():
        assert np.array_equal(value, b[name]), name


# --------------------------------------------------------------------------- S2 by panels
def reference_full_s2(X, shift, means, wr):
    """sum_n wr_nk (x_n - shift - m_k)(x_n - shift - m_k)^T (K, D, D), by matrix products."""
    Xs = X.astype(np.float64) - shift
    out = np.empty((means.shape[0],) + (X.shape[1],) * 2)
    for k, m in enumerate(means):
        diff = Xs - m
        out[k] = (wr[:, k, None] * diff).T @ diff
    return out


def panel_problem(dtype=np.float64, D=300):
    """D = 300: two panels of S2 (256 rows and a partial one); N = 1400 rows, so that a
    component holds more than one batch of rows; well separated (most r_nk exactly 0)."""
    rng = np.random.default_rng(31)
    N, K = 1400, 3
    X = make_data(rng, N, D, dtype)
    w = rng.uniform(0.2, 2.0, size=N)
    shift = X.mean(axis=0, dtype=np.float64)
    p = make_params(rng, "full", K, D)
    p["means"] = X[[3, 700, 1300]].astype(np.float64) - shift
    return X, w, shift, p


@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("inputs", ["computed", "given", "sampled"])
def test_s2_panels_match_reference_and_groups(inputs, dtype):
    X, w, shift, p = panel_problem(dtype)
    N, D = X.shape
    width, batch, n_panels = _gmm.panel_layout(D)
    assert n_panels == 2 and D % width and N > 2 * batch
    resp = None
    if inputs == "given":  # soft: every row in every component
        resp = np.random.default_rng(2).dirichlet(np.ones(3), size=N)
    kw = dict(resp_in=resp, want_resp=inputs != "given", sample_z=inputs == "sampled",
              n_groups=G.n_groups(N, CHUNK, 128))
    panels = run_pass(X, w, shift, p, s2_panels=True, **kw)
    groups = run_pass(X, w, shift, p, **kw)
    r = resp if resp is not None else panels["resp"].astype(np.float64)
    if inputs == "sampled":  # hard counts of the draws
        z = np.array([_draw(row, u) for row, u in zip(r, _gmm.uniforms(5, 1, 0, N))])
        r = np.eye(3)[z]
    elif inputs == "computed":
        assert (r == 0).mean() > 0.3  # the sweep skips these rows
    assert (r > 0).sum(axis=0).max() > _gmm.panel_layout(D)[1]  # several batches
    ref = reference_full_s2(X, shift, p["means"], w[:, None] * r)
    il = np.tril_indices(D)
    scale = np.abs(ref).max()
    s2 = panels["s2"][0].reshape(3, D, D)
    # (float32: the reference's r is the float32 resp_out, the kernel's float64)
    rtol = 1e-10 if dtype == np.float64 or inputs == "given" else 1e-5
    assert_allclose(s2[:, il[0], il[1]], ref[:, il[0], il[1]], rtol=rtol, atol=rtol * scale)
    assert np.all(np.triu(s2, 1) == 0)  # the upper triangle is left to reduce_s2
    assert_allclose(s2, groups["s2"].sum(axis=0).reshape(3, D, D), rtol=1e-10,
                    atol=1e-12 * scale)
    # everything else is the row pass's, bit for bit
    for name in ("nk", "s1", "ll", "ent", "resp", "lpn"):
        assert np.array_equal(panels[name], groups[name], equal_nan=True), name


def _draw(r, u):
    """The kernel's inverse-CDF draw of z from responsibilities r and a uniform u."""
    c = np.cumsum(r)
    return int(np.flatnonzero(u * c[-1] < c)[0])


@pytest.mark.usefixtures("blas_one_thread")
def test_s2_panels_bitwise_independent_of_thread_count():
    X, w, shift, p = panel_problem(D=520)
    N = X.shape[0]
    assert _gmm.panel_layout(520)[2] == 3
    runs = [run_pass(X, w, shift, p, s2_panels=True, n_groups=G.n_groups(N, CHUNK, 128),
                     n_threads=t) for t in (1, 2, 3, 1)]
    for other in runs[1:]:
        for name, value in runs[0].items():
            assert np.array_equal(value, other[name], equal_nan=True), name


def test_s2_panels_argument_checks():
    X, w, shift, p = panel_problem(D=4)
    prec_flat, aux, lc = kernel_inputs(p)
    K, D = p["means"].shape
    N = X.shape[0]

    def call(s2, ctype=0, compute_stats=True, prec=prec_flat, aux_=aux):
        _gmm.gmm_pass(X, w, shift, p["means"], prec, aux_, lc, ctype, np.empty((0, 0)),
                      np.empty((2, K)), np.empty((2, K * D)), s2, np.empty(2), np.empty(2),
                      np.empty((0, 0)), np.empty(0), compute_stats, CHUNK, 1, s2_panels=True)

    with pytest.raises(ValueError, match="one slot"):
        call(np.empty((2, K * D * D)))
    with pytest.raises(ValueError, match="full covariances"):
        q = make_params(np.random.default_rng(0), "diag", K, D)
        call(np.empty((1, K * D)), ctype=2, prec=np.empty(0), aux_=kernel_inputs(q)[1])
    with pytest.raises(ValueError, match="full covariance needs"):
        call(np.empty((1, 0)))  # statistics need the slot
    call(np.empty((1, 0)), compute_stats=False)  # log densities only: no slot
    assert N > 0


def test_pass_rejects_inconsistent_shapes():
    rng = np.random.default_rng(8)
    K, D = 2, 3
    X = make_data(rng, 100, D)
    p = make_params(rng, "full", K, D)
    prec_flat, aux, lc = kernel_inputs(p)
    shift = X.mean(axis=0)
    means = np.ascontiguousarray(p["means"])

    def call(X=X, w=np.empty(0), shift=shift, means=means, prec=prec_flat, aux=aux, lc=lc,
             code=0, resp_in=np.empty((0, 0)), nk=None, s1=None, s2=None, ll=None, ent=None,
             resp_out=np.empty((0, 0)), lpn=np.empty(0)):
        _gmm.gmm_pass(X, w, shift, means, prec, aux, lc, code, resp_in,
                      np.empty((2, K)) if nk is None else nk,
                      np.empty((2, K * D)) if s1 is None else s1,
                      np.empty((2, K * D * D)) if s2 is None else s2,
                      np.empty(2) if ll is None else ll, np.empty(2) if ent is None else ent,
                      resp_out, lpn, True, CHUNK, 1)

    call()  # the baseline is valid
    with pytest.raises(ValueError, match="at least one row"):
        call(X=np.empty((0, D)))
    with pytest.raises(ValueError, match="first dimension"):
        call(ll=np.empty(3))
    with pytest.raises(ValueError, match="shapes do not match"):
        call(shift=np.zeros(D + 1))
    with pytest.raises(ValueError, match="wrong shape"):
        call(s1=np.empty((2, K * D + 1)))
    with pytest.raises(ValueError, match="full covariance"):
        call(prec=prec_flat[:-1])
    with pytest.raises(ValueError, match="sample_weight"):
        call(w=np.ones(99))
    with pytest.raises(ValueError, match="resp_in"):
        call(resp_in=np.ones((100, K + 1)))
    with pytest.raises(ValueError, match="resp_out"):
        call(resp_out=np.ones((99, K)))
    with pytest.raises(ValueError, match="log_prob_norm_out"):
        call(lpn=np.ones(99))
    with pytest.raises(ValueError, match="diag covariance"):
        call(code=2, aux=np.zeros((K, D)), s2=np.empty((2, K * D)))


# --------------------------------------------------------------------------- weighted_gram
def reference_gram(X, w, shift):
    Xs = X.astype(np.float64) - shift
    w = np.ones(X.shape[0]) if w is None else w
    return np.einsum("n,ni,nj->ij", w, Xs, Xs)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_weighted_gram_matches_reference(dtype, weighted):
    rng = np.random.default_rng([31, int(weighted), np.dtype(dtype).itemsize])
    D = 5
    X = make_data(rng, N_ODD, D, dtype)
    w = rng.uniform(0.0, 3.0, size=N_ODD) if weighted else None
    shift = X.astype(np.float64).mean(axis=0) - 0.2
    ref = reference_gram(X, w, shift)
    scale = np.abs(reference_gram(np.abs(X.astype(np.float64) - shift), w, 0.0)).max()
    n_chunks = -(-N_ODD // CHUNK)
    il = np.tril_indices(D)
    for n_groups in (1, 3, n_chunks, n_chunks + 2):
        slots = np.full((n_groups, D * D), np.nan)
        _gmm.weighted_gram(X, w if w is not None else np.empty(0), shift, slots, CHUNK, 2)
        assert np.isfinite(slots).all(), "every slot must be overwritten"
        gram = slots.sum(axis=0).reshape(D, D)
        assert_allclose(gram[il], ref[il], rtol=1e-10, atol=1e-12 * scale)
        assert_allclose(G.symmetrize_lower(gram), ref, rtol=1e-10, atol=1e-12 * scale)


@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("D", [1, 5, 12, 64, 65])
def test_weighted_gram_float32_tiles_match_reference(D, weighted):
    """float32 X with ``float32_work``: the Gram matrix from the float32 tiles (D <= 64)
    within float32 rounding of the float64 reference, bitwise the same for 1, 2 and 3
    threads, not the float64 DSYRK's bits; D = 65 keeps the DSYRK (the same bits)."""
    rng = np.random.default_rng([40, D, int(weighted)])
    N = 3 * 512 + 77
    X = np.ascontiguousarray(make_data(rng, N, D).astype(np.float32))
    w = rng.uniform(0.0, 2.0, size=N) if weighted else np.empty(0)
    shift = X.astype(np.float64).mean(axis=0)
    runs = []
    for t in (1, 2, 3):
        slots = np.full((3, D * D), np.nan)
        _gmm.weighted_gram(X, w, shift, slots, CHUNK, t, True)
        runs.append(slots)
    for other in runs[1:]:
        assert np.array_equal(runs[0], other)
    as64 = np.full((3, D * D), np.nan)
    _gmm.weighted_gram(X, w, shift, as64, CHUNK, 2)
    assert np.array_equal(runs[0], as64) == (D > 64)
    got = G.symmetrize_lower(runs[0].sum(axis=0).reshape(D, D))
    ref = reference_gram(X, w if weighted else None, shift)
    assert_allclose(got, ref, rtol=2e-6, atol=2e-6 * np.abs(ref).max())


def test_weighted_gram_thread_count_and_errors():
    rng = np.random.default_rng(32)
    N, D = 20011, 4
    X = make_data(rng, N, D)
    w = rng.uniform(0, 2, size=N)
    shift = X.mean(axis=0)
    n_groups = G.n_groups_for(N, D * D)
    outs = []
    for t in (1, 2):
        slots = np.empty((n_groups, D * D))
        _gmm.weighted_gram(X, w, shift, slots, CHUNK, t)
        outs.append(slots)
    assert np.array_equal(outs[0], outs[1])
    assert_allclose(G.symmetrize_lower(outs[0].sum(axis=0).reshape(D, D)),
                    reference_gram(X, w, shift), rtol=1e-10)
    with pytest.raises(ValueError, match="out_slots"):
        _gmm.weighted_gram(X, w, shift, np.empty((2, D * D + 1)), CHUNK, 1)
    with pytest.raises(ValueError, match="sample_weight"):
        _gmm.weighted_gram(X, w[:-1], shift, np.empty((2, D * D)), CHUNK, 1)


def test_gaussian_pass_wrapper_matches_reference():
    """GaussianPass.run / gram (what the estimator calls) reduce the slots correctly."""
    rng = np.random.default_rng(41)
    K, D = 3, 3
    X = make_data(rng, N_ODD, D)
    w = rng.uniform(0.5, 2.0, size=N_ODD)
    for ctype in COV_TYPES:
        data = G.GaussianPass(X, w, ctype, K, 2)
        assert_allclose(data.shift, (w @ X) / w.sum(), rtol=1e-12)
        p = make_params(rng, ctype, K, D)
        prec_flat, aux, lc = kernel_inputs(p)
        resp = np.empty((N_ODD, K))
        stats = data.run(np.ascontiguousarray(p["means"]), prec_flat, aux, lc, resp_out=resp)
        ref = reference_stats(X, w, data.shift, p)
        assert_allclose(stats["log_likelihood"], ref["ll"], rtol=1e-10)
        assert_allclose(stats["entropy_term"], ref["ent"], rtol=1e-10)
        assert_allclose(stats["nk"], ref["nk"], rtol=1e-10)
        assert_allclose(stats["s1"], ref["s1"], rtol=1e-10, atol=1e-10 * ref["s1_scale"].max())
        if ctype != "tied":
            assert_allclose(stats["s2"], ref["s2"], rtol=1e-10,
                            atol=1e-10 * np.abs(ref["s2"]).max())
        assert_allclose(resp, ref["resp"], rtol=1e-10, atol=1e-12)
    assert_allclose(data.gram(), reference_gram(X, w, data.shift), rtol=1e-10,
                    atol=1e-12 * np.abs(reference_gram(X, w, data.shift)).max())


# --------------------------------------------------------------------------- hybrid form
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_pass_inputs_gemm_form_near_centred_far(covariance_type):
    """``pass_inputs`` gives diag / spherical components near the shift the GEMM form (centre
    0: S2 about the shift) and one beyond ``FAR_FROM_SHIFT`` its mean as centre; the pass
    follows both in one call (log densities and S2 about each centre), thread-invariantly."""
    rng = np.random.default_rng(7)
    K, D = 4, 3
    X = make_data(rng, N_ODD, D)
    shift = X.mean(axis=0)
    p = make_params(rng, covariance_type, K, D)
    far = 3e4  # sum_j m_j^2 p_j^2 > 2^20 for component 0 only
    p["means"][0] += far
    X[:40] = p["means"][0] + rng.normal(size=(40, D)) * 0.5 + shift
    log_const = (np.log(p["weights"]) + G.log_det_cholesky(p["prec_chol"], covariance_type, D)
                 - 0.5 * D * np.log(2 * np.pi))
    centres, prec_flat, aux, lc = G.pass_inputs(p["means"] + shift, p["prec_chol"],
                                                covariance_type, shift, log_const)
    assert np.all(centres[0] == p["means"][0]) and not centres[1:].any()
    Xs = X - shift
    quad = np.stack([((Xs - p["means"][k]) ** 2 * np.diag(p["Lam"][k])).sum(axis=1)
                     for k in range(K)], axis=1)
    log_rho = np.log(p["weights"]) + 0.5 * np.linalg.slogdet(p["Lam"])[1] \
        - 0.5 * D * np.log(2 * np.pi) - 0.5 * quad
    r = np.exp(log_rho - logsumexp(log_rho, axis=1, keepdims=True))
    results = []
    for n_threads in (1, 2):
        slots = {"nk": np.empty((8, K)), "s1": np.empty((8, K * D)),
                 "s2": np.empty((8, s2_size(covariance_type, K, D))),
                 "ll": np.empty(8), "ent": np.empty(8)}
        lpn = np.empty(N_ODD)
        _gmm.gmm_pass(X, np.empty(0), shift, centres, prec_flat, aux, lc,
                      CODES[covariance_type], np.empty((0, 0)), slots["nk"], slots["s1"],
                      slots["s2"], slots["ll"], slots["ent"], np.empty((0, 0)), lpn, True,
                      CHUNK, n_threads)
        results.append((lpn.copy(), slots["s2"].sum(axis=0)))
        assert_allclose(lpn, logsumexp(log_rho, axis=1), rtol=1e-12, atol=1e-9)
        d2 = [(Xs - centres[k]) ** 2 for k in range(K)]
        ref = np.stack([(r[:, k, None] * d2[k]).sum(axis=0) for k in range(K)])
        if covariance_type == "spherical":
            ref = ref.sum(axis=1)
        assert_allclose(slots["s2"].sum(axis=0).reshape(ref.shape), ref, rtol=1e-10)
    assert all(np.array_equal(a, b) for a, b in zip(results[0], results[1]))


def run_tile_pass(X, w, shift, p, n_groups, n_threads, chunk_size=CHUNK, want_rows=True,
                  compute_stats=True, float32_work=False):
    """The pass with every diag / spherical component in the GEMM form (the fused tiles),
    asked (``float32_work``) or not to run the tile in float32: inputs from ``pass_inputs``,
    which must centre no component at its mean."""
    K, D = p["means"].shape
    ctype = p["type"]
    with np.errstate(divide="ignore"):  # (zero weights: -inf constants)
        log_const = (np.log(p["weights"]) + G.log_det_cholesky(p["prec_chol"], ctype, D)
                     - 0.5 * D * np.log(2 * np.pi))
    centres, prec_flat, aux, lc = G.pass_inputs(p["means"] + shift, p["prec_chol"], ctype,
                                                shift, log_const)
    assert not centres.any()
    N = X.shape[0]
    out = {"nk": np.full((n_groups, K), np.nan), "s1": np.full((n_groups, K * D), np.nan),
           "s2": np.full((n_groups, s2_size(ctype, K, D)), np.nan),
           "ll": np.full(n_groups, np.nan), "ent": np.full(n_groups, np.nan),
           "resp": np.full((N, K) if want_rows else (0, 0), np.nan, dtype=X.dtype),
           "lpn": np.full(N if want_rows else 0, np.nan, dtype=X.dtype)}
    _gmm.gmm_pass(X, w if w is not None else np.empty(0), shift, centres, prec_flat, aux, lc,
                  CODES[ctype], np.empty((0, 0)), out["nk"], out["s1"], out["s2"], out["ll"],
                  out["ent"], out["resp"], out["lpn"], compute_stats, chunk_size, n_threads,
                  float32_work=float32_work)
    return out


@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("want_rows", [False, True], ids=["stats-only", "per-row"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_tile_pass_matches_reference(covariance_type, dtype, weighted, want_rows):
    """The fused diag / spherical tiles (log rho from one GEMM of [x, x^2, 1], the
    component-major log-sum-exp, [S1 | S2 | N] from one GEMM into the group's accumulator)
    against the slow reference, S2 about the shift (the centres are 0); K = 7: not a multiple
    of the four lanes, N not of the chunk or of four rows; bitwise the same for 1, 2 and 3
    threads."""
    check_tile_pass(covariance_type, dtype, weighted, want_rows, 7, 5, N_ODD + 2)


@pytest.mark.parametrize("D", [8, 13, 16, 17, 24])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_tile_pass_feature_blocks_match_reference(covariance_type, dtype, D):
    """The tiles' features built eight rows by eight features at a time (AVX-512), the
    features past the last multiple of 8 and the rows past the last multiple of 8 one by one:
    D = 8 to 24 with and without a remainder, N = 8 m + 5, weighted and with per-row
    outputs, against the reference and bitwise for 1, 2 and 3 threads."""
    check_tile_pass(covariance_type, dtype, True, True, 6, D, 8 * 77 + 5)


@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("chunk", [64, 128, 200, 256, 320])
def test_diag_tile_rows_match_reference(chunk):
    """The float64 diag tile cuts a chunk whose size is a multiple of 64 into tiles of 64
    rows (each tile's log rho, log-sum-exp and statistics GEMM; the accumulator summed tile
    after tile), other chunk sizes stay whole: N = 1,000 leaves a last chunk with a partial
    tile (40 rows for 64, 232 = 3 x 64 + 40 for 256); against the reference and bitwise for
    1, 2 and 3 threads, weighted, with per-row outputs."""
    rng = np.random.default_rng([61, chunk])
    K, D, N = 9, 16, 1000
    X = make_data(rng, N, D)
    w = rng.uniform(0.0, 3.0, size=N)
    shift = X.mean(axis=0)
    p = make_params(rng, "diag", K, D)
    ref = reference_stats(X, w, shift, {**p, "means": np.zeros((K, D))},
                          resp=reference_resp(X, shift, p))
    ref_lpn = logsumexp(reference_log_rho(X, shift, p), axis=1)
    results = [run_tile_pass(X, w, shift, p, 3, t, chunk_size=chunk) for t in (1, 2, 3)]
    red = reduce_slots(results[0], p)
    assert_stats_close(red, ref, p, 1e-10)
    assert_allclose(red["ll"], float(np.sum(w * ref_lpn)), rtol=1e-10)
    assert_allclose(results[0]["resp"], ref["resp"], rtol=1e-10, atol=1e-12)
    assert_allclose(results[0]["lpn"], ref_lpn, rtol=1e-10)
    for other in results[1:]:
        for name, value in results[0].items():
            assert np.array_equal(value, other[name], equal_nan=True), name


@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("K", [1, 8, 15, 16, 17])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_tile_estep_in_registers_component_counts(covariance_type, K):
    """The float64 tile's E-step in registers (log rho of eight rows for up to
    ESTEP_MAX_K = 16 components, padded with components of constant -inf, and its
    log-sum-exp without storing log rho; K = 17 takes the DGEMM and the separate
    log-sum-exp): D = 16, N = 8 m + 3 (a last vector of three rows), weighted, with and
    without per-row outputs, against the reference and bitwise for 1, 2 and 3 threads."""
    for want_rows in (True, False):
        check_tile_pass(covariance_type, np.float64, True, want_rows, K, 16, 8 * 97 + 3)


@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("K, D", [(1, 16), (5, 16), (8, 13), (16, 16), (15, 7), (3, 4)])
def test_tile_estep_dense_statistics(K, D):
    """The float64 diag register E-step's statistics when at least 3/4 of a 64-row block's
    w r are nonzero (overlapping components, the first iterations from a random start):
    the dense form (vbf_gmm_estep16_stats64_dense, four components at a time, zeros
    included), K not a multiple of four, D below 8 and 16, zero weights, N = 8 m + 3 (a
    last partial block), with and without per-row outputs, against the reference and
    bitwise for 1, 2 and 3 threads."""
    for want_rows in (True, False):
        check_tile_pass("diag", np.float64, True, want_rows, K, D, 8 * 97 + 3,
                        mean_scale=0.02)


@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("K", [17, 31, 32, 33, 64, 100, 129])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_tile_estep_in_blocks_component_counts(covariance_type, K):
    """Past 16 components the float64 tile's log rho by fused multiply-adds, sixteen rows
    and eight components at a time (the last block padded with components of constant
    -inf), stored, then its log-sum-exp eight rows at a time (up to ESTEP_BLOCKS_MAX_K =
    128; K = 129 takes the DGEMM): D = 16, weighted, with and without per-row outputs, in
    the default chunks (N = 8 m + 3: a last vector of three rows) and in chunks of 128 rows
    (the diag tile's 64 rows, feature rows 72 doubles apart; a last tile of 11 rows: a
    second group of three), against the reference and bitwise for 1, 2 and 3 threads."""
    for want_rows in (True, False):
        check_tile_pass(covariance_type, np.float64, True, want_rows, K, 16, 8 * 97 + 3)
    check_tile_pass(covariance_type, np.float64, True, True, K, 16, 128 * 6 + 64 + 11,
                    chunk_size=128)


@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("want_rows", [False, True], ids=["stats-only", "per-row"])
@pytest.mark.parametrize("K, D", [(1, 16), (5, 1), (5, 9), (16, 16), (16, 7), (12, 17)])
def test_tile_statistics_from_nonzero_responsibilities(K, D, want_rows):
    """The float64 diag tile's statistics from the nonzero w r_nk inside the register E-step
    (K <= 16, D <= 16; D = 17 keeps the statistics DGEMM): well separated clusters, so most
    r_nk are exactly 0, plus a component far from every row (its eight-row masks all
    empty) and two broad ones no row is far from (masks full); N = 8 m + 5 rows, weights
    with zeros, in 64-row tiles (a chunk of 128 rows) and in whole chunks; against the
    reference and bitwise for 1, 2 and 3 threads."""
    rng = np.random.default_rng([67, K, D])
    N = 8 * 131 + 5
    p = make_params(rng, "diag", K, D)
    means = rng.uniform(-40.0, 40.0, size=(K, D))
    cov = rng.uniform(0.2, 0.6, size=(K, D))
    if K > 3:
        means[0], cov[0] = 120.0, 1.5  # no row near: r = 0 below the cut-off
        means[1] = means[2] = 0.0
        cov[1] = cov[2] = 1e4  # every row within reach: r > 0
    p.update(means=means, cov=cov, prec_chol=G.precision_cholesky(cov, "diag"),
             Lam=np.stack([np.diag(1.0 / c) for c in cov]))
    rows_of = rng.integers(3 if K > 3 else 0, K, size=N)
    X = means[rows_of] + rng.normal(size=(N, D)) * np.sqrt(cov[rows_of])
    X = np.ascontiguousarray(X)
    shift = X.mean(axis=0)
    p["means"] = means - shift  # (the reference's and run_tile_pass' means: about the shift)
    w = rng.uniform(0.0, 3.0, size=N)
    w[::11] = 0.0
    ref_resp = reference_resp(X, shift, p)
    nonzero = ref_resp > 0
    if K > 3:  # the masks the test is about
        assert not nonzero[:, 0].any() and nonzero[:, 1:3].all()
        assert nonzero.sum(axis=1).mean() < 4.0
    ref = reference_stats(X, w, shift, {**p, "means": np.zeros((K, D))}, resp=ref_resp)
    for chunk_size in (128, CHUNK):
        results = [run_tile_pass(X, w, shift, p, 5, t, chunk_size=chunk_size,
                                 want_rows=want_rows) for t in (1, 2, 3)]
        red = reduce_slots(results[0], p)
        assert_stats_close(red, ref, p, 1e-10)
        if want_rows:
            assert_allclose(results[0]["resp"], ref_resp, rtol=1e-10, atol=1e-12)
        for other in results[1:]:
            for name, value in results[0].items():
                assert np.array_equal(value, other[name], equal_nan=True), name


def check_tile_pass(covariance_type, dtype, weighted, want_rows, K, D, N, chunk_size=CHUNK,
                    mean_scale=None):
    """The tile pass against the reference, bitwise for 1, 2 and 3 threads; ``mean_scale``:
    the means drawn that much closer together (overlapping components: every r nonzero)."""
    rng = np.random.default_rng([31, CODES[covariance_type], np.dtype(dtype).itemsize,
                                 int(weighted), K, D])
    X = make_data(rng, N, D, dtype)
    w = rng.uniform(0.0, 3.0, size=N) if weighted else None
    if weighted:
        w[::13] = 0.0
    shift = X.astype(np.float64).mean(axis=0)
    p = make_params(rng, covariance_type, K, D)
    if mean_scale is not None:
        p["means"] = p["means"] * mean_scale
    # the reference's S2 about the centres, 0 here; its responsibilities from the means
    ref = reference_stats(X, w, shift, {**p, "means": np.zeros((K, D))},
                          resp=reference_resp(X, shift, p))
    ref_lpn = logsumexp(reference_log_rho(X, shift, p), axis=1)
    ww = np.ones(N) if w is None else w
    ref_ll = float(np.sum(ww * ref_lpn))
    r = ref["resp"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ref_ent = float(np.sum(ww * np.where(r > 0, r * np.log(r), 0.0).sum(axis=1)))
    results = [run_tile_pass(X, w, shift, p, 9, t, want_rows=want_rows,
                             chunk_size=chunk_size) for t in (1, 2, 3)]
    red = reduce_slots(results[0], p)
    assert_stats_close(red, ref, p, 1e-10)
    assert_allclose(red["ll"], ref_ll, rtol=1e-10)
    assert_allclose(red["ent"], ref_ent, rtol=1e-9, atol=1e-10 * abs(ref_ll))
    if want_rows:
        tol = 1e-10 if dtype == np.float64 else 1e-5
        assert results[0]["resp"].dtype == dtype
        assert_allclose(results[0]["resp"], r, rtol=tol, atol=tol * 1e-2)
        assert_allclose(results[0]["lpn"], ref_lpn, rtol=tol)
    for other in results[1:]:
        for name, value in results[0].items():
            assert np.array_equal(value, other[name], equal_nan=True), name


def reference_resp(X, shift, p):
    log_rho = reference_log_rho(X, shift, p)
    return np.exp(log_rho - logsumexp(log_rho, axis=1, keepdims=True))


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_tile_pass_without_statistics_and_without_density(covariance_type):
    """Without statistics only the bound terms and per-row outputs are written (the slots
    zeroed); where every component's density is 0 (all weights 0, log pi = -inf) each row gets
    uniform responsibilities and log p(x) = -inf, as in the per-chunk form."""
    rng = np.random.default_rng(33)
    K, D = 3, 2
    X = make_data(rng, 700, D)
    shift = X.mean(axis=0)
    p = make_params(rng, covariance_type, K, D)
    out = run_tile_pass(X, None, shift, p, 3, 2, compute_stats=False)
    assert_allclose(out["lpn"], logsumexp(reference_log_rho(X, shift, p), axis=1),
                    rtol=1e-10)
    assert not out["nk"].any() and not out["s1"].any() and not out["s2"].any()
    p["weights"] = np.zeros(K)
    with np.errstate(divide="ignore"):
        out = run_tile_pass(X, None, shift, p, 3, 2)
    assert np.all(out["lpn"] == -np.inf) and np.all(out["ll"] == -np.inf)
    assert_allclose(out["resp"], 1.0 / K)
    assert not out["ent"].any()
    assert_allclose(out["nk"].sum(axis=0), 700.0 / K)


def separated_problem(rng, covariance_type, K, D, N, dtype=np.float64, n_between=0):
    """Components hundreds of standard deviations apart, rows drawn from them (every row's
    w r_nk nonzero for one component only: the tiles' sparse statistics), ``n_between``
    of them, spread over the data, moved onto the segment between two components' means
    where their densities are equal (two nonzero)."""
    p = make_params(rng, covariance_type, K, D)
    p["means"] = p["means"] * 40.0
    z = rng.integers(K, size=N)
    var = p["cov"] if covariance_type == "diag" else np.repeat(p["cov"][:, None], D, axis=1)
    X = p["means"][z] + rng.normal(size=(N, D)) * np.sqrt(var[z])
    a = z[:n_between]
    c = (a + 1 + rng.integers(K - 1, size=n_between)) % K

    def log_rho(x, k):
        return (np.log(p["weights"][k]) - 0.5 * np.log(2 * np.pi * var[k]).sum(axis=1)
                - 0.5 * ((x - p["means"][k]) ** 2 / var[k]).sum(axis=1))

    lo, hi = np.zeros(n_between), np.ones(n_between)  # bisection on the segment a -> c
    for _ in range(80):
        t = 0.5 * (lo + hi)
        x = p["means"][a] + t[:, None] * (p["means"][c] - p["means"][a])
        a_wins = log_rho(x, a) > log_rho(x, c)
        lo, hi = np.where(a_wins, t, lo), np.where(a_wins, hi, t)
    X[:n_between] = x
    X = X[rng.permutation(N)]
    shift = X.mean(axis=0)
    p["means"] = p["means"] - shift
    return np.ascontiguousarray((X).astype(dtype)), shift, p


@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("tile", ["float64", "float32-x", "float32-tile"])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_tile_sparse_statistics_match_reference(covariance_type, tile):
    """Well separated components: a chunk whose w r_nk are mostly exactly 0 takes its
    [S1 | S2 | N] from the nonzero ones alone (vbf_gmm_tile_stats_*sparse*), which must
    agree with the reference; chunks of 37 rows (not a multiple of the eight-row masks),
    256 and 600 (more than one list of 256 rows), D = 37 (not a multiple of the four or
    eight features a step), weights with zeros; bitwise the same for 1, 2 and 3 threads."""
    rng = np.random.default_rng([53, CODES[covariance_type], len(tile)])
    K, D, N = 64, 37, N_ODD
    dtype = np.float64 if tile == "float64" else np.float32
    X, shift, p = separated_problem(rng, covariance_type, K, D, N, dtype, n_between=N // 8)
    shift = X.astype(np.float64).mean(axis=0)
    w = rng.uniform(0.0, 3.0, size=N)
    w[::11] = 0.0
    ref = reference_about_shift(X, w, shift, p)
    ref_r = ref["resp"]
    # the data take the sparse form: one to three r_nk a row above the kernel's cut-off
    # (e^-50 ~ 2e-22 of the row's largest), some rows two or more
    live = (ref_r > 1e-21).sum(axis=1)
    assert live.max() <= 3 and (live >= 2).sum() > N // 50
    # (the float32 tile's nonzeros count twice; its masks are made where 4 a row would pay)
    weight = 2 if tile == "float32-tile" else 1
    diag = covariance_type == "diag"
    for b in (37, CHUNK, 600):
        assert _gmm.sparse_stats_form(weight * int(live[:b].sum()), b, K, D, diag)
        assert _gmm.sparse_stats_form(2 * weight * b, b, K, D, diag)
    assert not _gmm.sparse_stats_form(K * CHUNK, CHUNK, K, D, diag)
    rtol = 1e-10 if tile != "float32-tile" else 2e-5
    for chunk in (37, CHUNK, 600):
        results = [run_tile_pass(X, w, shift, p, 7, t, chunk_size=chunk,
                                 float32_work=tile == "float32-tile") for t in (1, 2, 3)]
        red = reduce_slots(results[0], p)
        assert_allclose(red["nk"], ref["nk"], rtol=rtol)
        assert_allclose(red["s1"], ref["s1"], rtol=rtol, atol=rtol * ref["s1_scale"].max())
        assert_allclose(red["s2"].reshape(-1), ref["s2"], rtol=rtol)
        assert_allclose(red["ll"], ref["ll"], rtol=1e-10 if rtol < 1e-6 else 1e-6)
        for other in results[1:]:
            for name, value in results[0].items():
                assert np.array_equal(value, other[name], equal_nan=True), name


# --------------------------------------------------------------------------- 'full' GEMM form
@pytest.mark.parametrize("K,D", [(5, 3), (7, 33), (4, 66)],
                         ids=["tiles", "tiles-d33", "cholesky-form"])
def test_full_pass_near_and_far_components(K, D):
    """'full' with its own responsibilities takes the fused tiles up to D = 64 (every
    component centred) and the per-component Cholesky / SYRK form beyond; a component 3e4
    of its standard deviations from the shift loses nothing in either. Against the
    reference, and thread-invariant (K = 5, 7: a last partial group of four in the
    vectorised log-sum-exp)."""
    rng = np.random.default_rng([11, D])
    X = make_data(rng, N_ODD, D)
    shift = X.mean(axis=0)
    p = make_params(rng, "full", K, D)
    # component 0 far: 3e4 / sqrt(cov) standard deviations, with 40 rows of its own
    p["means"][0] += 3e4
    X[:40] = p["means"][0] + shift + rng.normal(size=(40, D)) @ np.linalg.cholesky(
        p["cov"][0]).T
    ref = reference_stats(X, None, shift, p)
    outs = []
    with single_threaded_blas():
        for n_threads in (1, 2):
            out = run_pass(X, None, shift, p, n_groups=4, want_resp=True, want_lpn=True,
                           n_threads=n_threads)
            outs.append(out)
    red = reduce_slots(outs[0], p)
    assert_stats_close(red, ref, p, 1e-10)
    # the far component's S2 about its own mean, to the digits of its own size
    il = np.tril_indices(D)
    assert_allclose(red["s2"][0][il], ref["s2"][0][il], rtol=1e-9,
                    atol=1e-9 * np.abs(ref["s2"][0]).max())
    assert_allclose(outs[0]["lpn"], ref["lpn"], rtol=1e-10)
    assert_allclose(outs[0]["resp"], ref["resp"], rtol=1e-10, atol=1e-12)
    for key in ("nk", "s1", "s2", "ll", "ent", "resp", "lpn"):
        assert np.array_equal(outs[0][key], outs[1][key]), key


@pytest.mark.parametrize("K", [1, 3, 4, 6, 9])
def test_responsibilities_every_component_count(K):
    """The log-sum-exp runs four components at a time: any K (full groups, a partial last
    group, K < 4) gives the reference responsibilities, log p(x) and entropy term."""
    rng = np.random.default_rng([12, K])
    D = 2
    X = make_data(rng, 300, D)
    shift = X.mean(axis=0)
    p = make_params(rng, "diag", K, D)
    out = run_pass(X, None, shift, p, want_resp=True, want_lpn=True)
    red = reduce_slots(out, p)
    ref = reference_stats(X, None, shift, p)
    assert_allclose(out["resp"], ref["resp"], rtol=1e-11, atol=1e-14)
    assert_allclose(out["lpn"], ref["lpn"], rtol=1e-12)
    assert_allclose(red["ent"], ref["ent"], rtol=1e-10, atol=1e-12)


def test_full_collapsing_component_gets_the_centred_second_pass():
    """A 'full' component near the shift by its old precision but owning only two rows (its
    exact S2 is rank one): the GEMM form's S2 about the shift would keep rounding noise of
    size eps N_k ||c_k||^2 in the directions where the exact one is 0; ``full_gemm_cancelled``
    flags it and GaussianPass.run returns the statistics of a second pass taking it in the
    centred form, whose S2 is the reference's to the digits of its own size. (A pass
    computing its own responsibilities takes the fused tiles, which centre every component
    at its pass centre, the second pass's own form: their S2 of a collapsing component is
    flagged by the check, being singular, but GaussianPass.run takes no second pass and
    returns the tiles' bits.)"""
    rng = np.random.default_rng(42)
    K, D = 3, 3
    X = make_data(rng, N_ODD, D)
    data = G.GaussianPass(X, None, "full", K, 2)
    p = make_params(rng, "full", K, D)
    # component 0: narrow, at two rows 30 units from the shift (the rest far in its metric)
    pair = data.shift + np.array([30.0, 0.0, 0.0])
    X[3] = pair + [0.0, 1e-3, 0.0]
    X[700] = pair - [0.0, 1e-3, 0.0]
    p["means"][0] = pair - data.shift
    p["cov"][0] = np.eye(D) * 1e-2
    p["prec_chol"][0] = np.eye(D) * 10.0
    p["Lam"][0] = np.eye(D) * 100.0
    prec_flat, aux, lc = kernel_inputs(p)
    ref = reference_stats(X, None, data.shift, p)
    assert ref["nk"][0] == pytest.approx(2.0, abs=1e-6)
    first = run_pass(X, None, data.shift, p)  # the fused tiles: exact, singular
    s2_gemm = reduce_slots(first, p)["s2"]
    s2_gemm = G.symmetrize_lower(s2_gemm)
    assert G.full_gemm_cancelled(s2_gemm, ref["nk"], p["means"])[0]
    stats = data.run(np.ascontiguousarray(p["means"]), prec_flat, aux, lc)
    assert_allclose(stats["s2"][0], ref["s2"][0], rtol=1e-9, atol=1e-12 * ref["nk"][0])
    assert np.array_equal(stats["s2"][0], s2_gemm[0])  # the tiles' own bits: no second pass
    assert not G.full_gemm_cancelled(stats["s2"][1:], stats["nk"][1:], p["means"][1:]).any()


# --------------------------------------------------------------------------- float32 tiles
def tile_pass_f32(X, w, shift, p, n_groups, n_threads, float32_work, want_rows=True,
                  compute_stats=True, chunk_size=CHUNK):
    """``run_tile_pass`` asked (``float32_work``) or not to run the tile in float32."""
    return run_tile_pass(X, w, shift, p, n_groups, n_threads, chunk_size, want_rows,
                         compute_stats, float32_work)


def reference_about_shift(X, w, shift, p):
    """Responsibilities, log p(x_n), and the statistics about the shift, in float64 from the
    float32 data (S2 about the shift: the GEMM form's centres are 0)."""
    Xs = X.astype(np.float64) - shift
    log_rho = reference_log_rho(X, shift, p)
    lpn = logsumexp(log_rho, axis=1)
    r = np.exp(log_rho - lpn[:, None])
    ww = np.ones(X.shape[0]) if w is None else w
    wr = ww[:, None] * r
    sq = Xs ** 2 if p["type"] == "diag" else (Xs ** 2).sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = float(np.sum(ww * np.where(r > 0, r * np.log(r), 0.0).sum(axis=1)))
    return {"resp": r, "lpn": lpn, "ll": float(np.sum(ww * lpn)), "ent": ent,
            "nk": wr.sum(axis=0), "s1": wr.T @ Xs, "s2": (wr.T @ sq).reshape(-1),
            "s1_scale": np.abs(wr).T @ np.abs(Xs)}


def check_float32_tile(covariance_type, K, D, N, weighted, want_rows, chunk_size=CHUNK,
                       n_groups=5):
    """The float32 tile's pass against the float64 reference at float32 tolerance (weights
    with zeros when ``weighted``), bitwise the same for 1, 2 and 3 threads; returns the
    one-thread output and the problem (X, w, shift, p)."""
    rng = np.random.default_rng([43, CODES[covariance_type], K, D, N, int(weighted)])
    X = make_data(rng, N, D, np.float32)
    w = rng.uniform(0.0, 3.0, size=N) if weighted else None
    if weighted:
        w[::13] = 0.0
    shift = X.astype(np.float64).mean(axis=0)
    p = make_params(rng, covariance_type, K, D)
    ref = reference_about_shift(X, w, shift, p)
    results = [tile_pass_f32(X, w, shift, p, n_groups, t, True, want_rows=want_rows,
                             chunk_size=chunk_size) for t in (1, 2, 3)]
    red = reduce_slots(results[0], p)
    rtol = 2e-5
    assert_allclose(red["nk"], ref["nk"], rtol=rtol, atol=rtol * ref["nk"].sum() / K)
    assert_allclose(red["s1"], ref["s1"], rtol=rtol, atol=rtol * ref["s1_scale"].max())
    assert_allclose(red["s2"].reshape(-1), ref["s2"], rtol=rtol,
                    atol=rtol * np.abs(ref["s2"]).max())
    assert_allclose(red["ll"], ref["ll"], rtol=1e-6)
    assert_allclose(red["ent"], ref["ent"], rtol=1e-4, atol=1e-6 * abs(ref["ll"]))
    if want_rows:
        out = results[0]
        assert_allclose(out["resp"], ref["resp"], rtol=1e-4, atol=1e-5)
        assert_allclose(out["lpn"], ref["lpn"], rtol=1e-5)
        assert_allclose(out["resp"].sum(axis=1, dtype=np.float64), 1.0, rtol=1e-5)
    for other in results[1:]:
        for name, value in results[0].items():
            assert np.array_equal(value, other[name], equal_nan=True), name
    return results[0], X, w, shift, p


@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("want_rows", [False, True], ids=["stats-only", "per-row"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_float32_tile_matches_reference(covariance_type, weighted, want_rows):
    """The float32 tile against the float64 reference at float32 tolerance (K = 7: not a
    multiple of the lanes; N not of the chunk or of sixteen rows), bitwise the same for 1, 2
    and 3 threads, per-row outputs in float32, and not the float64 tile's bits (it did run
    in float32)."""
    out, X, w, shift, p = check_float32_tile(covariance_type, 7, 5, N_ODD + 3, weighted,
                                             want_rows, n_groups=9)
    if want_rows:
        assert out["resp"].dtype == np.float32 and out["lpn"].dtype == np.float32
    f64 = tile_pass_f32(X, w, shift, p, 9, 2, False, want_rows=want_rows)
    assert not np.array_equal(f64["s1"], out["s1"])


@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_float32_tile_chunk_sizes_and_small_shapes(covariance_type):
    """Chunks of 1, 100 and more rows than the data, one component and one feature: the
    float32 tile agrees with the reference."""
    for K, D, chunk, n_groups in [(1, 1, CHUNK, 3), (2, 1, 100, 4), (1, 3, 1, 7),
                                  (3, 4, N_ODD + 10, 2), (17, 3, 37, 5)]:
        rng = np.random.default_rng([K, D, chunk])
        X = make_data(rng, N_ODD, D, np.float32)
        w = rng.uniform(0.1, 2.0, size=N_ODD)
        shift = X.astype(np.float64).mean(axis=0)
        p = make_params(rng, covariance_type, K, D)
        out = tile_pass_f32(X, w, shift, p, n_groups, 2, True, chunk_size=chunk)
        ref = reference_about_shift(X, w, shift, p)
        red = reduce_slots(out, p)
        assert_allclose(red["nk"], ref["nk"], rtol=2e-5, atol=2e-5 * ref["nk"].sum())
        assert_allclose(red["s1"], ref["s1"], atol=2e-5 * ref["s1_scale"].max())
        assert_allclose(red["ll"], ref["ll"], rtol=1e-6)
        assert_allclose(out["lpn"], ref["lpn"], rtol=1e-5)
        if K == 1:
            assert np.all(out["resp"] == 1.0)


@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("K", [1, 8, 15, 16, 17, 31, 33, 64, 100, 128, 129])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_float32_tile_estep_component_counts(covariance_type, K):
    """The float32 tile's E-step by fused multiply-adds (vbf_gmm_tile_estep_f32): up to 16
    components in registers (sixteen rows a vector, padded with components of constant
    -inf), past 16 in blocks of eight components over thirty-two rows, stored, then the
    log-sum-exp sixteen rows at a time (up to ESTEP_BLOCKS_MAX_K = 128; K = 129 takes the
    SGEMM); D = 16, N = 16 m + 3 (a last vector of three rows; past 16 components also a
    last block of 19 rows: a second vector of three), weighted, with and without per-row
    outputs, and chunks of 100 rows (a partial last vector in every chunk): against the
    reference and bitwise for 1, 2 and 3 threads."""
    for want_rows in (True, False):
        check_float32_tile(covariance_type, K, 16, 16 * 61 + 3, True, want_rows)
    check_float32_tile(covariance_type, K, 16, 16 * 61 + 3, False, True, chunk_size=100)


@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("K", [4, 64])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_float32_tile_estep_wide_features(covariance_type, K):
    """The float32 E-step over many features (D = 64: W = 129 diag, 66 spherical feature
    rows a tile) and a chunk of 512 rows, against the reference and thread-invariant."""
    check_float32_tile(covariance_type, K, 64, 512 * 3 + 77, True, True, chunk_size=512)


@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_float32_tile_given_responsibilities(covariance_type, weighted):
    """Given responsibilities over float32 X working in float32, every centre at the shift
    (the first pass of ``centred_stats_from_resp``): the float32 tile's statistics of w r
    rounded to float32 (soft rows: the dense SGEMM; one-hot rows: the nonzero ones alone),
    against the float64 reference at float32 tolerance, ll / ent left zero, no per-row
    output, bitwise the same for 1, 2 and 3 threads, and not the float64 tile's bits."""
    K, D = 6, 16
    rng, X, w, shift, p, soft = resp_problem(9, covariance_type, np.float32, weighted, K, D)
    p["means"] = np.zeros((K, D))
    hard = np.zeros((N_ODD, K))
    hard[np.arange(N_ODD), rng.integers(0, K, N_ODD)] = 1.0
    for resp in (soft, hard):
        outs = [run_pass(X, w, shift, p, resp_in=resp, n_threads=t, want_resp=True,
                         want_lpn=True, float32_work=True) for t in (1, 2, 3)]
        red = reduce_slots(outs[0], p)
        ref = reference_stats(X, w, shift, p, resp=resp)
        assert_stats_close(red, ref, p, 2e-5)
        assert not outs[0]["ll"].any() and not outs[0]["ent"].any()
        assert np.isnan(outs[0]["resp"]).all() and np.isnan(outs[0]["lpn"]).all()
        for other in outs[1:]:
            for name, value in outs[0].items():
                assert np.array_equal(value, other[name], equal_nan=True), name
        f64 = run_pass(X, w, shift, p, resp_in=resp, n_threads=2, float32_work=False)
        assert not np.array_equal(f64["s1"], outs[0]["s1"])


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_float32_tile_without_density_and_far_component(covariance_type):
    """Every weight 0 (log pi = -inf): uniform responsibilities, log p = -inf, as the
    float64 tile. A component beyond FAR_FROM_SHIFT_F32 (sum_j m_j^2 p_j^2 > 2^12) sends
    the pass to the float64 tile: the float64 tile's bits."""
    rng = np.random.default_rng(51)
    K, D = 3, 2
    X = make_data(rng, 700, D, np.float32)
    shift = X.astype(np.float64).mean(axis=0)
    p = make_params(rng, covariance_type, K, D)
    zero = {**p, "weights": np.zeros(K)}
    with np.errstate(divide="ignore"):
        out = tile_pass_f32(X, None, shift, zero, 3, 2, True)
    assert np.all(out["lpn"] == -np.inf) and np.all(out["ll"] == -np.inf)
    assert_allclose(out["resp"], 1.0 / K)
    assert not out["ent"].any()
    # N_k: each chunk's sum of its float32 w r is one SGEMM in float32 (issue 17's float32
    # tile: only the sums over chunks are float64), in whatever order the BLAS kernel takes:
    # at most (b - 1) u of it off for b <= CHUNK terms of one sign (u = 2^-24), plus
    # float32(1/3)'s own 1e-8. Measured 1.4e-7 with OpenBLAS' Haswell SGEMM (sequential
    # sums; the kernel OpenBLAS picks on Zen 5), below 1e-7 with its SkylakeX kernel.
    assert_allclose(out["nk"].sum(axis=0), 700.0 / K, rtol=CHUNK * 2.0 ** -24)
    var = p["cov"] if covariance_type == "diag" else np.repeat(p["cov"][:, None], D, axis=1)
    far = p["means"].copy()
    far[1] = np.sqrt(5000.0 * var[1] / D)  # sum_j m_j^2 / var_j = 5000 > 2^12 (< 2^20)
    assert ((far ** 2 / var).sum(axis=1) < G.FAR_FROM_SHIFT).all()
    q = {**p, "means": far}
    a, b = (tile_pass_f32(X, None, shift, q, 3, 2, True),
            tile_pass_f32(X, None, shift, q, 3, 2, False))
    for name in a:
        assert np.array_equal(a[name], b[name], equal_nan=True), name
    near = {**p, "means": far * np.sqrt(4000.0 / 5000.0)}
    a, b = (tile_pass_f32(X, None, shift, near, 3, 2, True),
            tile_pass_f32(X, None, shift, near, 3, 2, False))
    assert not np.array_equal(a["s1"], b["s1"])


# --------------------------------------------------------------------------- 'full' fused tiles
def reference_full_tile_rows(X, shift, p):
    """log rho of the tiles' formula, written out: c_k - 1/2 ||(x_n - m_k) U_k||^2 with the
    factor U_k itself (not Lambda_k), one component at a time."""
    Xs = X.astype(np.float64) - shift
    K, D = p["means"].shape
    _, _, lc = kernel_inputs(p)
    return np.stack([lc[k] - 0.5 * (((Xs - p["means"][k]) @ p["prec_chol"][k]) ** 2).sum(1)
                     for k in range(K)], axis=1)


@pytest.mark.parametrize("K,D", [(1, 1), (3, 5), (5, 7), (16, 32), (2, 64), (3, 65)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_full_tiles_match_reference(K, D, dtype, weighted):
    """'full' with its own responsibilities takes the fused tiles up to D = 64 (D not a
    multiple of four: the padded triangle blocks; N not a multiple of the tile's 512 rows nor
    of the row blocks), the per-component Cholesky form beyond (65): log p(x), r, the bound
    terms and N_k, S1, S2 against the reference, with a component 1e5 away from the shift
    (the tiles centre every component: its S2 keeps the digits of its own size)."""
    assert _gmm.full_tile_form(K, D) == (D <= 64)
    rng = np.random.default_rng([31, K, D])
    N = 2 * 512 + 77
    X = make_data(rng, N, D)
    p = make_params(rng, "full", K, D)
    shift = X.mean(axis=0)
    p["means"][0] += 1e5
    X[:30] = p["means"][0] + shift + rng.normal(size=(30, D)) @ np.linalg.cholesky(
        p["cov"][0]).T
    X = np.ascontiguousarray(X.astype(dtype))
    w = rng.uniform(0.0, 2.0, size=N) if weighted else None
    ref = reference_stats(X, w, shift, p)
    with single_threaded_blas():
        out = run_pass(X, w, shift, p, n_groups=3, want_resp=True, want_lpn=True)
    red = reduce_slots(out, p)
    assert_stats_close(red, ref, p, 1e-10)
    il = np.tril_indices(D)
    assert_allclose(red["s2"][0][il], ref["s2"][0][il], rtol=1e-9,
                    atol=1e-9 * np.abs(ref["s2"][0]).max())
    tol = 1e-10 if dtype == np.float64 else 1e-6
    assert_allclose(out["lpn"], ref["lpn"], rtol=tol)
    assert_allclose(out["resp"], ref["resp"], rtol=tol, atol=tol * 1e-2)
    assert_allclose(red["ll"], ref["ll"], rtol=1e-10)
    assert_allclose(red["ent"], ref["ent"], rtol=1e-9, atol=1e-9 * N)
    lp = reference_full_tile_rows(X, shift, p)
    assert_allclose(out["lpn"], logsumexp(lp, axis=1).astype(dtype), rtol=tol)
    # without statistics: the same per-row outputs and bound terms, slots left at zero
    with single_threaded_blas():
        bare = run_pass(X, w, shift, p, n_groups=3, want_resp=True, want_lpn=True,
                        compute_stats=False)
    assert np.array_equal(bare["lpn"], out["lpn"]) and np.array_equal(bare["resp"],
                                                                       out["resp"])
    assert np.array_equal(bare["ll"], out["ll"]) and not bare["nk"].any()


@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("K,D", [(5, 7), (16, 32)])
def test_full_tiles_bitwise_independent_of_thread_count(K, D):
    """The tiles' sums depend on the data size only: 1, 2 and 3 threads give the same bits
    (groups of several tiles, a last partial tile)."""
    rng = np.random.default_rng([32, D])
    N = 9 * 512 + 301
    X = make_data(rng, N, D)
    w = rng.uniform(0.0, 2.0, size=N)
    p = make_params(rng, "full", K, D)
    shift = X.mean(axis=0)
    results = [run_pass(X, w, shift, p, n_groups=4, want_resp=True, want_lpn=True,
                        n_threads=t) for t in (1, 2, 3)]
    for other in results[1:]:
        for name, value in results[0].items():
            assert np.array_equal(value, other[name]), name


@pytest.mark.parametrize("K,D", [(1, 1), (3, 5), (6, 16), (2, 64), (3, 65)])
@pytest.mark.parametrize("weighted", [False, True])
def test_tied_tiles_match_reference(K, D, weighted):
    """'tied' with its own responsibilities takes the same tiles up to D = 64 (y = x U once
    a tile, then ||y_n - m_k U||^2 lane by lane; K not a multiple of the four components a
    block), the GEMM form beyond: against the reference, and bitwise for 1, 2, 3 threads."""
    rng = np.random.default_rng([33, K, D])
    N = 2 * 512 + 77
    X = make_data(rng, N, D)
    p = make_params(rng, "tied", K, D)
    shift = X.mean(axis=0)
    w = rng.uniform(0.0, 2.0, size=N) if weighted else None
    ref = reference_stats(X, w, shift, p)
    with single_threaded_blas():
        outs = [run_pass(X, w, shift, p, n_groups=3, want_resp=True, want_lpn=True,
                         n_threads=t) for t in (1, 2, 3)]
    red = reduce_slots(outs[0], p)
    assert_stats_close(red, ref, p, 1e-10)
    assert_allclose(outs[0]["lpn"], ref["lpn"], rtol=1e-10)
    assert_allclose(outs[0]["resp"], ref["resp"], rtol=1e-10, atol=1e-12)
    assert_allclose(red["ll"], ref["ll"], rtol=1e-10)
    for other in outs[1:]:
        for name, value in outs[0].items():
            assert np.array_equal(value, other[name]), name


# --------------------------------------------------------------------- 'full' / 'tied' in float32
@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("ctype", ["full", "tied"])
@pytest.mark.parametrize("K,D", [(1, 1), (3, 5), (5, 7), (4, 12), (16, 32), (2, 64)])
@pytest.mark.parametrize("weighted", [False, True])
def test_full_tied_float32_tiles_match_reference(ctype, K, D, weighted):
    """float32 X with ``float32_work``: the 'full' / 'tied' tiles in float32 (rows in blocks
    of 64, D not a multiple of four, N not a multiple of the tile) against the float64
    reference within float32 rounding; bitwise the same for 1, 2 and 3 threads; not the
    float64 tile's bits (the float32 kernels ran); without statistics the same rows."""
    rng = np.random.default_rng([34, K, D])
    N = 2 * 512 + 77
    X = np.ascontiguousarray(make_data(rng, N, D).astype(np.float32))
    p = make_params(rng, ctype, K, D)
    shift = X.astype(np.float64).mean(axis=0)
    w = rng.uniform(0.0, 2.0, size=N) if weighted else None
    ref = reference_stats(X, w, shift, p)
    outs = [run_pass(X, w, shift, p, n_groups=3, want_resp=True, want_lpn=True,
                     n_threads=t, float32_work=True) for t in (1, 2, 3)]
    for other in outs[1:]:
        for name, value in outs[0].items():
            assert np.array_equal(value, other[name]), name
    out = outs[0]
    as64 = run_pass(X, w, shift, p, n_groups=3, want_resp=True, want_lpn=True)
    assert not np.array_equal(out["s1"], as64["s1"])
    red = reduce_slots(out, p)
    assert_stats_close(red, ref, p, 2e-5)
    assert_allclose(out["lpn"], ref["lpn"], rtol=2e-5, atol=2e-5)
    assert_allclose(out["resp"], ref["resp"], atol=5e-5)
    assert_allclose(red["ll"], ref["ll"], rtol=2e-6)
    assert_allclose(red["ent"], ref["ent"], rtol=1e-4, atol=1e-4 * N)
    bare = run_pass(X, w, shift, p, n_groups=3, want_resp=True, want_lpn=True,
                    compute_stats=False, float32_work=True)
    assert np.array_equal(bare["lpn"], out["lpn"]) and np.array_equal(bare["resp"],
                                                                       out["resp"])
    assert not bare["nk"].any()


@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("ctype", ["full", "tied"])
def test_full_tied_float32_far_component_takes_the_float64_tile(ctype):
    """A component farther than 2^12 of its standard deviations from the shift (the kernel's
    FULL_FAR_FROM_SHIFT_F32) sends the float32 pass to the float64 tile: the very bits of the
    pass without float32_work; one 10^3 away keeps the float32 tile."""
    rng = np.random.default_rng(35)
    K, D, N = 3, 4, 700
    X = np.ascontiguousarray(make_data(rng, N, D).astype(np.float32))
    p = make_params(rng, ctype, K, D)
    shift = X.astype(np.float64).mean(axis=0)
    near = run_pass(X, None, shift, p, n_groups=2, want_resp=True, float32_work=True)
    as64 = run_pass(X, None, shift, p, n_groups=2, want_resp=True)
    assert not np.array_equal(near["s1"], as64["s1"])
    sd = np.sqrt(np.diag(p["cov"][1] if ctype == "full" else p["cov"]))
    p["means"][1] += 1e3 * sd / np.sqrt(D)
    kept = run_pass(X, None, shift, p, n_groups=2, want_resp=True, float32_work=True)
    as64 = run_pass(X, None, shift, p, n_groups=2, want_resp=True)
    assert not np.array_equal(kept["s1"], as64["s1"])
    p["means"][1] += 1e5 * sd
    far = run_pass(X, None, shift, p, n_groups=2, want_resp=True, float32_work=True)
    as64 = run_pass(X, None, shift, p, n_groups=2, want_resp=True)
    for name, value in far.items():
        assert np.array_equal(value, as64[name]), name


@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("K,D", [(1, 1), (3, 5), (16, 16), (2, 64)])
@pytest.mark.parametrize("weighted", [False, True])
def test_full_float32_given_responsibilities_match_reference(K, D, weighted):
    """'full', float32 X with ``float32_work`` and given responsibilities (a first pass):
    the float32 statistics tiles, S2 centred at the given centres (the shift for most
    components, a mean for one), against the float64 reference within float32 rounding;
    bitwise the same for 1, 2 and 3 threads; not the float64 GEMM form's bits; the factors
    unused. D = 65 (past the tiles) keeps the float64 form."""
    rng = np.random.default_rng([36, K, D, int(weighted)])
    N = 2 * 512 + 77
    X = np.ascontiguousarray(make_data(rng, N, D).astype(np.float32))
    p = make_params(rng, "full", K, D)
    shift = X.astype(np.float64).mean(axis=0)
    p["means"][:] = 0.0
    p["means"][-1] = X[:50].astype(np.float64).mean(axis=0) - shift
    w = rng.uniform(0.0, 2.0, size=N) if weighted else None
    resp = np.ascontiguousarray(rng.dirichlet(np.full(K, 0.5), size=N))
    resp[::7] = 0.0
    resp[::7, 0] = 1.0
    ref = reference_stats(X, w, shift, p, resp=resp)
    outs = [run_pass(X, w, shift, p, n_groups=3, resp_in=resp, n_threads=t,
                     float32_work=True) for t in (1, 2, 3)]
    for other in outs[1:]:
        for name, value in outs[0].items():
            assert np.array_equal(value, other[name], equal_nan=True), name
    as64 = run_pass(X, w, shift, p, n_groups=3, resp_in=resp)
    assert not np.array_equal(outs[0]["s2"], as64["s2"])
    red = reduce_slots(outs[0], p)
    assert_stats_close(red, ref, p, 2e-6)
    p_bad = dict(p, prec_chol=np.full_like(p["prec_chol"], 1e300))
    with np.errstate(over="ignore", invalid="ignore"):
        bad = run_pass(X, w, shift, p_bad, n_groups=3, resp_in=resp, float32_work=True)
    for name in ("nk", "s1", "s2"):
        assert np.array_equal(bad[name], outs[0][name]), name


def test_full_float32_given_responsibilities_past_the_tiles_keep_float64():
    """D = 65, past FULL_TILE_MAX_D: given responsibilities over float32 X take the float64
    form with or without ``float32_work`` (the same bits), and ``full_given32_form`` says
    so."""
    rng = np.random.default_rng(37)
    K, D, N = 2, 65, 300
    X = np.ascontiguousarray(make_data(rng, N, D).astype(np.float32))
    p = make_params(rng, "full", K, D)
    p["means"][:] = 0.0
    shift = X.astype(np.float64).mean(axis=0)
    resp = np.ascontiguousarray(rng.dirichlet(np.ones(K), size=N))
    a = run_pass(X, None, shift, p, n_groups=2, resp_in=resp, float32_work=True)
    b = run_pass(X, None, shift, p, n_groups=2, resp_in=resp)
    for name in ("nk", "s1", "s2"):
        assert np.array_equal(a[name], b[name]), name
    assert not _gmm.full_given32_form(K, D) and _gmm.full_given32_form(K, 64)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_float32_first_pass_centres_far_components_at_their_means(covariance_type):
    """``GaussianPass.centred_stats_from_resp`` for float32 X working in float32 ('full';
    'diag' / 'spherical': the float32 tile's statistics of the given w r):
    a component beyond FAR_FROM_SHIFT_F32 (2^12) of the shift in its own standard deviations
    (but within the float64 rule's 2^20) is centred at its mean by the second pass, so its
    covariance keeps float32's digits; float64 X leaves it at the shift (its digits
    suffice). The statistics agree with the float64 ones to float32 rounding; the far
    component's covariance to ~1e-6."""
    rng = np.random.default_rng(38)
    N, D, K = 6000, 3, 2
    X = rng.normal(size=(N, D)) * 0.01
    X[: N // 2] += 1.0  # two clusters 100 standard deviations apart: 1e4 > 2^12 squared
    labels = (np.arange(N) >= N // 2).astype(np.intp)
    resp = np.eye(K)[labels]
    out = {}
    for dtype in (np.float64, np.float32):
        data = G.GaussianPass(X.astype(dtype), None, covariance_type, K, 1,
                              float32_work=dtype == np.float32)
        assert data.given_resp_float32 == (dtype == np.float32)
        stats, centres = data.centred_stats_from_resp(resp)
        out[dtype] = G.estimate_parameters(stats, covariance_type, 0.0, centres), centres
    (nk64, m64, c64), centres64 = out[np.float64]
    (nk32, m32, c32), centres32 = out[np.float32]
    assert not centres64.any()
    assert centres32.any(axis=1).all()
    assert_allclose(nk32, nk64, rtol=1e-6)
    assert_allclose(m32, m64, rtol=1e-6, atol=1e-8)
    assert_allclose(c32, c64, rtol=1e-4, atol=1e-6 * 1e-4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_max_deviation_bounds_the_elementwise_maximum(dtype):
    """``_max_deviation`` from X's extremes: at least the max |x - shift| of the element-wise
    float64 computation, at most that plus the spread of the shift's entries, and exactly
    it for a shift of equal entries."""
    rng = np.random.default_rng(39)
    for n in (1, 64, 1000):
        X = (rng.standard_cauchy(size=(n, 7)) * 1e3).astype(dtype)
        for shift in (rng.normal(size=7) * 1e2, np.full(7, 3.5)):
            exact = float(np.max(np.abs(X.astype(np.float64) - shift)))
            bound = G._max_deviation(X, None, shift)
            assert exact <= bound <= exact + np.ptp(shift)
            if np.ptp(shift) == 0:
                assert bound == exact
    assert G._max_deviation(X[:0], None, shift) == 0.0


@pytest.mark.parametrize("K,D", [(1, 1), (16, 16), (3, 64), (2, 65), (2, 130)])
def test_symmetrize_inplace_matches_the_copy(K, D, monkeypatch):
    """``symmetrize_lower_inplace`` / ``symmetrize_upper_inplace``: the values of
    ``symmetrize_lower``, by the stacked copy (small stacks) and by the per-matrix blocks
    (D past the block, or a stack past SYMMETRIZE_STACKED_MAX)."""
    rng = np.random.default_rng([41, K, D])
    a = rng.normal(size=(K, D, D))
    expected = G.symmetrize_lower(a)
    upper = np.swapaxes(G.symmetrize_lower(np.swapaxes(a, -1, -2)), -1, -2)
    for limit in (G.SYMMETRIZE_STACKED_MAX, 0):
        monkeypatch.setattr(G, "SYMMETRIZE_STACKED_MAX", limit)
        assert np.array_equal(G.symmetrize_lower_inplace(a.copy()), expected)
        assert np.array_equal(G.symmetrize_upper_inplace(a.copy()), upper)


@pytest.mark.parametrize("seed, N, K, drawn_before", [
    (0, 2000, 16, 0), (1, 1000, 3, 1), (2, 777, 17, 5), (3, 50, 200, 3), (4, 311, 1, 0),
    (5, 10, 8, 623)])
def test_random_resp_is_numpys_uniform_normalised(seed, N, K, drawn_before):
    """``random_resp`` (init_params='random'; MT19937 in C) gives the bits of NumPy's
    ``uniform(size=(N, K))`` divided by its row sums (K < 8, 8..128 and above 128: each
    branch of NumPy's pairwise sum), from any position of the generator (an odd one, the
    last word before a refill) and leaves the RandomState where NumPy's calls leave it (its
    next uniforms and its cached Gaussian the same)."""
    a, b = np.random.RandomState(seed), np.random.RandomState(seed)
    for rs in (a, b):
        rs.random_sample(drawn_before)
        rs.standard_normal()  # (a cached second Gaussian, kept by the state)
    ref = a.uniform(size=(N, K))
    ref /= ref.sum(axis=1)[:, None]
    out = G.random_resp(b, N, K)
    assert np.array_equal(out, ref)
    assert np.array_equal(a.random_sample(7), b.random_sample(7))
    assert a.standard_normal() == b.standard_normal()


@pytest.mark.parametrize("n_threads", [2, 3])
@pytest.mark.parametrize("N, K", [(1000, 16), (257, 3), (39, 200), (1, 1)])
@pytest.mark.parametrize("pos", [0, 623, 624])
def test_random_resp_threads(pos, N, K, n_threads):
    """``random_resp`` on several threads (the generator's words serially, then the doubles
    and the rows in parallel blocks of 256 rows; N below, at and past a block, whole refills
    straight into the output and partial ones): NumPy's bits, and the state where NumPy's
    calls leave it, whatever the thread count."""
    key = np.random.default_rng([pos, N]).integers(0, 2 ** 32, size=624, dtype=np.uint32)
    a, b = np.random.RandomState(), np.random.RandomState()
    for rs in (a, b):
        rs.set_state(("MT19937", key, pos))
    ref = a.uniform(size=(N, K))
    ref /= ref.sum(axis=1)[:, None]
    assert np.array_equal(G.random_resp(b, N, K, n_threads), ref)
    assert a.get_state()[2] == b.get_state()[2]
    assert np.array_equal(a.get_state()[1], b.get_state()[1])
    assert np.array_equal(a.random_sample(5), b.random_sample(5))


def test_random_resp_other_bit_generator():
    """A RandomState around another bit generator (PCG64) draws through NumPy, as before."""
    a = np.random.RandomState(np.random.PCG64(3))
    b = np.random.RandomState(np.random.PCG64(3))
    ref = a.uniform(size=(40, 5))
    ref /= ref.sum(axis=1)[:, None]
    assert np.array_equal(G.random_resp(b, 40, 5), ref)
    with pytest.raises(ValueError, match="624"):
        _gmm.mt19937_random_resp(np.zeros(5, dtype=np.uint32), 0, np.empty((2, 2)))


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("D", [1, 8, 13])
def test_group_column_and_square_sums_match_numpy(D, dtype, weighted):
    """``group_column_sums``: per group of rows sum_n w_n x_n, and with a shift sum_n w_n
    (x_n - shift)^2 (the default covariance prior's variances), against NumPy (D below,
    at and past the eight columns a block), groups of 100 rows (the last shorter); bitwise
    the same for 1, 2 and 3 threads."""
    rng = np.random.default_rng([71, D, np.dtype(dtype).itemsize, int(weighted)])
    X = make_data(rng, 1037, D, dtype)
    w = rng.uniform(0.0, 2.0, size=X.shape[0]) if weighted else None
    shift = X.astype(np.float64).mean(axis=0) + 0.25
    ww = np.ones(X.shape[0]) if w is None else w
    x64 = X.astype(np.float64)
    for s in (None, shift):
        term = x64 if s is None else (x64 - s) ** 2
        ref = np.array([(ww[g:g + 100, None] * term[g:g + 100]).sum(axis=0)
                        for g in range(0, X.shape[0], 100)])
        outs = []
        for t in (1, 2, 3):
            out = np.full((11, D), np.nan)
            _gmm.group_column_sums(X, w if w is not None else np.empty(0), 100, out, t, s)
            outs.append(out)
        assert_allclose(outs[0], ref, rtol=1e-12)
        assert all(np.array_equal(outs[0], o) for o in outs[1:])
    with pytest.raises(ValueError, match="shift"):
        _gmm.group_column_sums(X, np.empty(0), 100, np.empty((11, D)), 1, np.zeros(D + 1))


@pytest.mark.parametrize("pos", [0, 1, 311, 623, 624])
def test_random_resp_from_any_word_position(pos):
    """From a state at any word position (odd ones come from 32-bit draws, e.g. randint;
    623: the first double's two words straddle a refill) ``random_resp`` gives NumPy's
    bits and leaves the state as NumPy does."""
    key = np.random.default_rng(pos).integers(0, 2 ** 32, size=624, dtype=np.uint32)
    a, b = np.random.RandomState(), np.random.RandomState()
    for rs in (a, b):
        rs.set_state(("MT19937", key, pos))
    ref = a.uniform(size=(700, 13))
    ref /= ref.sum(axis=1)[:, None]
    assert np.array_equal(G.random_resp(b, 700, 13), ref)
    assert np.array_equal(a.random_sample(5), b.random_sample(5))


@pytest.mark.usefixtures("blas_one_thread")
@pytest.mark.parametrize("K", [5, 16, 17, 40])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_register_estep_rows_without_density(covariance_type, dtype, K):
    """Every weight 0 (log pi = -inf) through each instance of the register E-steps of one
    source (_gaussian_tile_estep.h: float64 and float32 tiles, K <= 16 in registers, with
    the fused statistics for float64 diag, and 16 < K in blocks): every row uniform
    responsibilities, log p = -inf, sum r log r = 0, N_k = sum_n w_n / K; weighted, D = 16,
    N = 16 m + 3 (a partial last vector), with and without per-row outputs, bitwise the same
    for 1 and 2 threads."""
    rng = np.random.default_rng([71, K])
    D, N = 16, 16 * 37 + 3
    X = make_data(rng, N, D, dtype)
    w = rng.uniform(0.5, 2.0, size=N)
    shift = X.astype(np.float64).mean(axis=0)
    p = {**make_params(rng, covariance_type, K, D), "weights": np.zeros(K)}
    for want_rows in (True, False):
        with np.errstate(divide="ignore"):
            outs = [run_tile_pass(X, w, shift, p, 2, t, want_rows=want_rows,
                                  float32_work=dtype == np.float32) for t in (1, 2)]
        out = outs[0]
        assert np.all(out["ll"] == -np.inf)
        assert not out["ent"].any()
        assert_allclose(out["nk"].sum(axis=0), np.full(K, w.sum() / K), rtol=1e-6)
        if want_rows:
            assert np.all(out["lpn"] == -np.inf)
            assert_allclose(out["resp"], 1.0 / K, rtol=1e-6)
        for name, value in out.items():
            assert np.array_equal(value, outs[1][name], equal_nan=True), name
