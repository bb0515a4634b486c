"""The discrete-mixture pass and emission units against slow NumPy references."""
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import digamma, gammaln, logsumexp

from vbfast.emissions import _discrete_kernel as dk
from vbfast.emissions import discrete as DE


def _random_case(rng, N=700, K=4, sizes=(2, 3, 5, 2), missing=0.2, counts=False,
                 empty_row=True):
    blocks = DE.Blocks(sizes)
    L = blocks.n_columns
    if counts:
        X = rng.poisson(1.0, size=(N, L)).astype(np.float64) * (rng.uniform(size=(N, L)) < 0.4)
        X[3] = 0.0  # an empty row
        A = sp.csr_matrix(X)
        A.eliminate_zeros()
        indptr, indices, values = A.indptr, A.indices, A.data
        dense = X
    else:
        codes = np.column_stack([rng.randint(s, size=N) for s in sizes])
        miss = rng.uniform(size=codes.shape) < missing
        miss[5] = empty_row  # a row with every item missing
        dense = np.zeros((N, L))
        rows, cols = np.nonzero(~miss)
        dense[rows, blocks.offsets[cols] + codes[rows, cols]] = 1.0
        A = sp.csr_matrix(dense)
        indptr, indices, values = A.indptr, A.indices, None
    theta = blocks.normalise(rng.uniform(0.05, 1.0, size=(L, K)))
    log_theta = np.log(theta)
    log_const = np.log(rng.dirichlet(np.ones(K)))
    w = rng.uniform(0.2, 2.0, size=N)
    return blocks, indptr, indices, values, dense, log_theta, log_const, w


def _reference(dense, log_theta, log_const, w):
    lr = log_const + dense @ log_theta
    lpn = logsumexp(lr, axis=1)
    r = np.exp(lr - lpn[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        rlogr = np.where(r > 0, r * np.log(r), 0.0).sum(axis=1)
    return {"resp": r, "lpn": lpn, "ll": w @ lpn, "ent": w @ rlogr,
            "nk": (w[:, None] * r).sum(axis=0), "s": dense.T @ (w[:, None] * r)}


def _check_pass(data, dense, lt, lc, w):
    """The pass over ``data`` at (lt, lc) against ``_reference`` (w None: unit weights):
    responsibilities, log p(x_n), log-likelihood, entropy term, N_k and S. Returns the
    responsibilities."""
    N, K = dense.shape[0], lt.shape[1]
    resp, lpn = np.empty((N, K)), np.empty(N)
    stats = data.run(lt, lc, resp_out=resp, log_prob_norm_out=lpn)
    ref = _reference(dense, lt, lc, np.ones(N) if w is None else w)
    np.testing.assert_allclose(resp, ref["resp"], rtol=1e-12, atol=1e-15)
    # (atol: rows with log p near 0 (a row with every item missing has log p =
    # logsumexp(lc), 0 up to rounding), where an ulp of the sum of exponentials is 1e-16)
    np.testing.assert_allclose(lpn, ref["lpn"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(stats.log_likelihood, ref["ll"], rtol=1e-12)
    np.testing.assert_allclose(stats.entropy_term, ref["ent"], rtol=1e-10)
    np.testing.assert_allclose(stats.nk, ref["nk"], rtol=1e-12)
    np.testing.assert_allclose(stats.s, ref["s"], rtol=1e-12, atol=1e-12)
    return resp


@pytest.mark.parametrize("counts", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_pass_matches_numpy(counts, weighted):
    rng = np.random.RandomState(0)
    blocks, indptr, indices, values, dense, lt, lc, w = _random_case(rng, counts=counts)
    w = w if weighted else None
    data = DE.DiscreteData(indptr, indices, values, blocks.n_columns, lt.shape[1], w, 2)
    resp = _check_pass(data, dense, lt, lc, w)
    # a row with nothing observed gets the prior
    empty = 3 if counts else 5
    np.testing.assert_allclose(resp[empty], np.exp(lc - logsumexp(lc)), rtol=1e-12)


@pytest.mark.parametrize("item_sizes", [None, (2, 3, 5, 2)])
def test_unweighted_bound_terms_from_batched_logs(item_sizes):
    """Unit weights and no per-row outputs: the pass sums the rows' log s as the log of their
    product (flushed before it can overflow); the same bound terms as row by row."""
    rng = np.random.RandomState(6)
    K = 20  # nearly equal classes: s close to 20 a row, 20^256 > 2^600 flushes mid-chunk
    blocks, indptr, indices, values, dense, lt, lc, w = _random_case(rng, N=3000, K=K)
    lt = np.log(blocks.normalise(np.exp(lt * 0.01)))
    lc = np.full(K, -np.log(K))
    data = DE.DiscreteData(indptr, indices, values, blocks.n_columns, K, None, 2,
                           item_sizes=item_sizes)
    batched = data.run(lt, lc)
    row_by_row = data.run(lt, lc, log_prob_norm_out=np.empty(dense.shape[0]))
    ref = _reference(dense, lt, lc, np.ones(dense.shape[0]))
    np.testing.assert_allclose(batched.log_likelihood, ref["ll"], rtol=1e-13)
    np.testing.assert_allclose(batched.entropy_term, ref["ent"], rtol=1e-12)
    np.testing.assert_allclose(batched.log_likelihood, row_by_row.log_likelihood, rtol=1e-14)
    np.testing.assert_array_equal(batched.s, row_by_row.s)


def test_pass_float32_values_and_resp_in():
    rng = np.random.RandomState(1)
    blocks, indptr, indices, values, dense, lt, lc, w = _random_case(rng, counts=True)
    d64 = DE.DiscreteData(indptr, indices, values, blocks.n_columns, 4, w, 1)
    d32 = DE.DiscreteData(indptr, indices, values.astype(np.float32), blocks.n_columns, 4, w, 1)
    a, b = d64.run(lt, lc), d32.run(lt, lc)  # small integer counts are exact in float32
    assert a.log_likelihood == b.log_likelihood
    np.testing.assert_array_equal(a.s, b.s)
    resp = rng.dirichlet(np.ones(4), size=dense.shape[0])
    st = d64.stats_from_resp(resp)
    np.testing.assert_allclose(st.s, dense.T @ (w[:, None] * resp), rtol=1e-12)
    np.testing.assert_allclose(st.nk, w @ resp, rtol=1e-12)


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("sample_z", [False, True])
def test_pass_bitwise_identical_for_any_thread_count(sample_z, packed, monkeypatch):
    import vbfast._core.threads as T
    monkeypatch.setattr(T, "MIN_ROWS_PER_THREAD", 1)
    rng = np.random.RandomState(2)
    blocks, indptr, indices, values, dense, lt, lc, w = _random_case(rng, N=5000)
    outs = []
    for n_threads in (1, 2, 3):
        data = DE.DiscreteData(indptr, indices, values, blocks.n_columns, 4, w, n_threads,
                               item_sizes=blocks.sizes if packed else None)
        assert (data.packing is not None) == packed
        z = np.empty(dense.shape[0], dtype=np.int32) if sample_z else None
        st = data.run(lt, lc, sample_z=sample_z, seed=7, sweep=3, z_out=z)
        outs.append((st.log_likelihood, st.entropy_term, st.nk.tobytes(), st.s.tobytes(),
                     None if z is None else z.tobytes()))
    assert outs[0] == outs[1] == outs[2]


@pytest.mark.parametrize("sizes, missing", [
    ((2,) * 20, 0.0),             # the benchmark's shape: 8 + 8 + 4 binary items
    ((2,) * 13, 0.15),            # missing answers: a "missing" digit in every group
    ((5,) * 10, 0.0),
    ((2, 3, 5, 2, 300, 3, 3), 0.3),  # an item too large to pack stays alone
])
@pytest.mark.parametrize("weighted", [False, True])
def test_packed_items_match_numpy(sizes, missing, weighted):
    rng = np.random.RandomState(5)
    blocks, indptr, indices, values, dense, lt, lc, w = _random_case(
        rng, N=1500, K=6, sizes=sizes, missing=missing, empty_row=missing > 0)
    w = w if weighted else None
    data = DE.DiscreteData(indptr, indices, values, blocks.n_columns, 6, w, 2,
                           item_sizes=blocks.sizes)
    assert data.packing is not None
    assert data._indices.shape[0] < indices.shape[0]  # fewer lookups than answers
    if sizes == (2,) * 20:
        assert [len(g) for g in data.packing.groups] == [8, 8, 4]
    N, K = dense.shape[0], 6
    resp = _check_pass(data, dense, lt, lc, w)
    if missing:  # row 5 has every item missing: no code at all, the prior as posterior
        assert data._indptr[6] == data._indptr[5]
        np.testing.assert_allclose(resp[5], np.exp(lc - logsumexp(lc)), rtol=1e-12)
    # statistics of given responsibilities go through the codes too
    r = rng.dirichlet(np.ones(K), size=N)
    np.testing.assert_allclose(data.stats_from_resp(r).s,
                               dense.T @ ((w if weighted else np.ones(N))[:, None] * r),
                               rtol=1e-12, atol=1e-12)


def test_pack_rows_codes_are_mixed_radix_numbers():
    # items (3, 2, 4) in one group, item 1 with missing answers: radices (3, 3, 4), strides
    # (1, 3, 9); a missing answer is digit 2 of item 1
    packing = DE.ItemPacking([3, 2, 4], [False, True, False], max_codes=64)
    assert packing.groups == [[0, 1, 2]] and packing.n_columns == 36
    rows = [[0, 3, 5], [2, 4, 8], [1, 6]]  # (0, 0, 0), (2, 1, 3), (1, missing, 1)
    indptr = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    indices = np.concatenate(rows).astype(np.int32)
    out_ptr, out_idx = packing.pack(indptr, indices)
    np.testing.assert_array_equal(out_ptr, [0, 1, 2, 3])
    np.testing.assert_array_equal(out_idx, [0, 2 + 3 + 27, 1 + 6 + 9])
    # the packing matrix sums each code's items' table rows
    T = np.arange(9.0)[:, None] * 10.0 ** np.arange(2)
    np.testing.assert_array_equal((packing.matrix @ T)[1 + 6 + 9], T[1] + T[6])
    # a row answering item 0 twice is not one-hot: refused, the caller keeps the rows
    assert packing.pack(np.array([0, 2], dtype=np.int64),
                        np.array([0, 1], dtype=np.int32)) is None
    data = DE.DiscreteData(np.array([0, 2]), np.array([0, 1], dtype=np.int32), None, 9, 2,
                           None, 1, item_sizes=[3, 2, 4])
    assert data.packing is None


def test_sampled_z_uses_keyed_uniforms_and_hard_counts():
    rng = np.random.RandomState(3)
    blocks, indptr, indices, values, dense, lt, lc, w = _random_case(rng, N=400)
    data = DE.DiscreteData(indptr, indices, values, blocks.n_columns, 4, w, 2)
    z = np.empty(400, dtype=np.int32)
    st = data.run(lt, lc, sample_z=True, seed=11, sweep=5, z_out=z)
    ref = _reference(dense, lt, lc, w)
    u = dk.uniforms(11, 5, 0, 400)
    expected = (np.cumsum(ref["resp"], axis=1) <= u[:, None] *
                ref["resp"].sum(axis=1)[:, None]).sum(axis=1)
    np.testing.assert_array_equal(z, expected)
    onehot = np.eye(4)[z]
    np.testing.assert_allclose(st.nk, w @ onehot, rtol=1e-12)
    np.testing.assert_allclose(st.s, dense.T @ (w[:, None] * onehot), rtol=1e-12)
    lr = lc + dense @ lt
    np.testing.assert_allclose(st.log_likelihood, w @ lr[np.arange(400), z], rtol=1e-12)


def test_zero_probabilities_never_nan():
    # class 0 gives level 0 of the item probability 0, class 1 level 1: a row can be
    # excluded from one class (-inf) or from both (uniform responsibilities, -inf density)
    indptr = np.array([0, 1, 2, 4])
    indices = np.array([0, 1, 0, 3], dtype=np.int32)
    lt = DE.safe_log(np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.0, 0.0]]))
    for sizes in (None, [2, 2]):  # as they are, and packed into one group
        data = DE.DiscreteData(indptr, indices, None, 4, 2, None, 1, item_sizes=sizes)
        assert (data.packing is None) == (sizes is None)
        resp, lpn = np.empty((3, 2)), np.empty(3)
        st = data.run(lt, np.log([0.5, 0.5]), resp_out=resp, log_prob_norm_out=lpn)
        np.testing.assert_array_equal(resp, [[0, 1], [1, 0], [0.5, 0.5]])
        assert lpn[2] == -np.inf and np.isfinite(lpn[:2]).all()
        assert not np.isnan(st.s).any() and not np.isnan(st.entropy_term)


def test_bad_csr_is_refused():
    with pytest.raises(ValueError, match="column index"):
        DE.DiscreteData(np.array([0, 1]), np.array([5], dtype=np.int32), None, 4, 2, None, 1)


# ---------------------------------------------------------------- the emission units
def test_map_and_ml():
    blocks = DE.Blocks([2, 3])
    S = np.array([[3.0, 0.0], [1.0, 0.0], [0.0, 2.0], [2.0, 2.0], [2.0, 0.0]])
    ml = DE.map_probabilities(S, blocks)
    np.testing.assert_allclose(ml[:2, 0], [0.75, 0.25])
    np.testing.assert_allclose(ml[:2, 1], [0.5, 0.5])  # no mass: uniform
    np.testing.assert_allclose(ml[2:, 1], [0.5, 0.5, 0.0])
    smooth = DE.map_probabilities(S, blocks, beta=2.0)
    np.testing.assert_allclose(smooth[2:, 1], [3 / 7, 3 / 7, 1 / 7])
    np.testing.assert_allclose(DE.map_weights([1.0, 3.0]), [0.25, 0.75])


def test_dirichlet_algebra_against_scipy():
    from scipy import stats
    rng = np.random.RandomState(4)
    blocks = DE.Blocks([3, 2])
    lam = rng.uniform(0.5, 3.0, size=(5, 2))
    el = DE.expected_log(lam, blocks)
    np.testing.assert_allclose(el[:3, 0], digamma(lam[:3, 0]) - digamma(lam[:3, 0].sum()))
    # KL by Monte Carlo is noisy; check the closed form on one block against the textbook form
    a, b = lam[:3, 1], np.full(3, 0.7)
    kl = (gammaln(a.sum()) - gammaln(a).sum() - gammaln(b.sum()) + gammaln(b).sum()
          + np.sum((a - b) * (digamma(a) - digamma(a.sum()))))
    one = DE.Blocks([3])
    assert np.isclose(DE.kl_dirichlet(lam[:3, 1:2], 0.7, one), kl, rtol=1e-12)
    theta = rng.dirichlet(np.ones(3))
    assert np.isclose(DE.dirichlet_log_pdf(np.log(theta)[:, None], a[:, None], one),
                      stats.dirichlet(a).logpdf(theta), rtol=1e-12)
    g = np.exp(DE.draw_log_probabilities(np.tile(lam, (1, 4000)), blocks,
                                         np.random.default_rng(0)))
    np.testing.assert_allclose(blocks.sums(g), 1.0, rtol=1e-12)
    mean = g.reshape(5, 4000, 2).mean(axis=1)
    np.testing.assert_allclose(mean, blocks.normalise(lam), atol=0.02)
