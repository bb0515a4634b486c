"""The HMM kernels (``vbfast.hmm._hmm``: scaled forward-backward, Viterbi, Gaussian
log-densities) against slow, obvious NumPy references in log space, and against hmmlearn's
own C kernels when it is installed.

Reference, per sequence, all in log space:
    log alpha_0 = log pi + l_0,   log alpha_t(j) = logsumexp_i(log alpha_{t-1}(i) + log A_ij) + l_tj
    log beta_{T-1} = 0,           log beta_t(i) = logsumexp_j(log A_ij + l_{t+1,j} + log beta_{t+1}(j))
    log p = logsumexp log alpha_{T-1},  gamma_t = exp(log alpha_t + log beta_t - log p),
    xi_t(i, j) = exp(log alpha_t(i) + log A_ij + l_{t+1,j} + log beta_{t+1}(j) - log p).
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import logsumexp

from vbfast.hmm import _hmm
from vbfast.hmm._sequences import Sequences, check_lengths




def ref_viterbi(logprob, startprob, transmat, lengths):
    K = logprob.shape[1]
    with np.errstate(divide="ignore"):
        lpi, lA = np.log(startprob), np.log(transmat)
    states = []
    lls = []
    a = 0
    for T in lengths:
        l = logprob[a:a + T]
        delta = lpi + l[0]
        back = np.zeros((T, K), dtype=int)
        for t in range(1, T):
            x = delta[:, None] + lA
            back[t] = x.argmax(axis=0)
            delta = x.max(axis=0) + l[t]
        path = [int(delta.argmax())]
        lls.append(delta.max())
        for t in range(T - 1, 0, -1):
            path.append(back[t, path[-1]])
        states += path[::-1]
        a += T
    return np.array(lls), np.array(states)




@pytest.mark.parametrize("K,lengths,zeros", [
    (3, [50], False), (4, [1, 2, 30, 7, 1], False), (2, [5000, 17, 3000], False),
    (5, [40, 40], True), (1, [10, 3], False), (10, [300, 1, 2, 45], False),
    (10, [60, 30], True), (13, [200, 3], False), (16, [50, 2], False), (17, [150, 1], False),
    (23, [80, 5], True)])
def test_forward_backward_matches_log_space_reference(K, lengths, zeros, ref_fb,
                                                      random_model):
    rng = np.random.default_rng(K + len(lengths))
    N = sum(lengths)
    logprob = rng.normal(scale=3.0, size=(N, K)) - 2.0
    startprob, transmat = random_model(rng, K, zeros)
    seqs = Sequences(lengths, N, n_threads=2)
    out = seqs.forward_backward(logprob, startprob, transmat)
    ll, post, start, trans = ref_fb(logprob, startprob, transmat, lengths)
    assert_allclose(out["seq_ll"], ll, rtol=1e-12)
    assert_allclose(out["posteriors"], post, rtol=1e-9, atol=1e-13)
    assert_allclose(out["start"], start, rtol=1e-9, atol=1e-13)
    assert_allclose(out["trans"], trans, rtol=1e-9, atol=1e-11)
    assert out["n_log_space"] == 0
    only = seqs.forward_backward(logprob, startprob, transmat, posteriors=False, stats=False)
    assert_allclose(only["seq_ll"], ll, rtol=1e-12)
    stats_only = seqs.forward_backward(logprob, startprob, transmat, posteriors=False)
    assert_array_equal(stats_only["trans"], out["trans"])


def test_underflow_falls_back_to_log_space_exactly(ref_fb):
    """Emission densities ~1e-400 apart between the states the model allows: the scaled pass
    underflows, the sequence is redone in log space, and the answer is still exact."""
    rng = np.random.default_rng(0)
    K, T = 3, 60
    logprob = rng.normal(size=(T, K))
    logprob[20:25, 0] = 0.0
    logprob[20:25, 1:] = -900.0  # state 0 is best there ...
    transmat = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    startprob = np.array([0.0, 0.5, 0.5])  # ... but can never be reached
    seqs = Sequences([T], T, 1)
    out = seqs.forward_backward(logprob, startprob, transmat)
    ll, post, start, trans = ref_fb(logprob, startprob, transmat, [T])
    assert out["n_log_space"] == 1
    assert_allclose(out["seq_ll"], ll, rtol=1e-12)
    assert_allclose(out["posteriors"], post, atol=1e-12)
    assert_allclose(out["trans"], trans, rtol=1e-9, atol=1e-12)
    assert np.isfinite(out["posteriors"]).all()


def test_impossible_sequence_gives_minus_inf_not_nan():
    logprob = np.array([[0.0, -np.inf], [-np.inf, 0.0]])  # must be in state 0 then 1
    transmat = np.eye(2)  # ... but cannot move
    seqs = Sequences([2], 2, 1)
    out = seqs.forward_backward(logprob, np.array([0.5, 0.5]), transmat)
    assert out["seq_ll"][0] == -np.inf
    assert not np.isnan(out["posteriors"]).any()
    assert_array_equal(out["trans"], 0.0)
    ll, states = seqs.viterbi(logprob, np.array([0.5, 0.5]), transmat)
    assert ll[0] == -np.inf and not np.isnan(ll).any()


@pytest.mark.parametrize("K,lengths,zeros", [(3, [50], False), (4, [1, 2, 30, 7, 1], False),
                                             (5, [40, 41], True)])
def test_viterbi_matches_reference(K, lengths, zeros, random_model):
    rng = np.random.default_rng(7 * K)
    N = sum(lengths)
    logprob = rng.normal(scale=2.0, size=(N, K))
    startprob, transmat = random_model(rng, K, zeros)
    seqs = Sequences(lengths, N, 2)
    ll, states = seqs.viterbi(logprob, startprob, transmat)
    ll_ref, states_ref = ref_viterbi(logprob, startprob, transmat, lengths)
    assert_allclose(ll, ll_ref, rtol=1e-12)
    assert_array_equal(states, states_ref)


def test_bitwise_identical_for_any_thread_count(random_model):
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 400, size=300)
    N, K = int(lengths.sum()), 4
    logprob = rng.normal(scale=3.0, size=(N, K))
    startprob, transmat = random_model(rng, K)
    outs = []
    for n_threads in (1, 2, 3, 8):
        seqs = Sequences(lengths, N, n_threads)
        seqs.n_threads = n_threads  # force it (threads_for caps at the cores)
        out = seqs.forward_backward(logprob, startprob, transmat)
        outs.append((out["seq_ll"].tobytes(), out["posteriors"].tobytes(),
                     out["trans"].tobytes(), out["start"].tobytes(),
                     seqs.viterbi(logprob, startprob, transmat)[1].tobytes()))
    assert all(o == outs[0] for o in outs)
    assert Sequences(lengths, N, 1).n_groups > 1


def test_groups_depend_on_lengths_only():
    lengths = [3000, 5, 5, 4000, 1, 1, 1, 7000]
    a = Sequences(lengths, sum(lengths), 1)
    b = Sequences(lengths, sum(lengths), 2)
    assert_array_equal(a.group_bounds, b.group_bounds)
    assert a.group_bounds[0] == 0 and a.group_bounds[-1] == len(lengths)
    assert np.all(np.diff(a.group_bounds) >= 0)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("K", [1, 2, 3, 10, 17])
def test_gaussian_log_density(covariance_type, dtype, K):
    from scipy.stats import multivariate_normal
    from vbfast.hmm.gaussian import _log_density_inputs

    rng = np.random.default_rng(1)
    D, N = 4, 700
    X = rng.normal(size=(N, D)).astype(dtype)
    means = rng.normal(size=(K, D))
    A = rng.normal(size=(K, D, D))
    full = A @ A.transpose(0, 2, 1) + D * np.eye(D)
    covars = {"full": full, "tied": full[0], "diag": np.diagonal(full, axis1=1, axis2=2).copy(),
              "spherical": full[:, 0, 0].copy()}[covariance_type]
    dense = {"full": full, "tied": np.tile(full[0], (K, 1, 1)),
             "diag": np.array([np.diag(c) for c in covars]) if covariance_type == "diag" else None,
             "spherical": np.array([c * np.eye(D) for c in covars])
             if covariance_type == "spherical" else None}[covariance_type]
    out = np.empty((N, K))
    prec, code, log_const = _log_density_inputs(covars, covariance_type, K, D)
    _hmm.gaussian_log_density(X, means, prec, code, log_const, out, 256, 2)
    ref = np.stack([multivariate_normal(means[k], dense[k]).logpdf(X.astype(np.float64))
                    for k in range(K)], axis=1)
    assert_allclose(out, ref, rtol=1e-10)


@pytest.mark.parametrize("spherical", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("K,N", [(3, 5000), (10, 701), (16, 9000), (1, 3), (2, 1)])
def test_gaussian_stats_against_numpy(spherical, dtype, K, N):
    """The small-K emission statistics: nk, s1, s2 of the posteriors (rows read as padded
    vectors straight from post up to its end) equal the obvious sums, bitwise the same for
    any thread count."""
    rng = np.random.default_rng(K * N)
    D = 3
    X = (rng.normal(size=(N, D)) * 4 + 2).astype(dtype)
    post = rng.dirichlet(np.ones(K), size=N)
    shift = X.astype(np.float64).mean(axis=0)
    Kp = (K + 3) // 4 * 4
    width = Kp * (1 + D + (1 if spherical else D))
    outs = []
    for n_threads in (1, 2, 3):
        slots = np.full((5, width), np.nan)
        _hmm.gaussian_stats(X, post, shift, spherical, slots, 256, n_threads)
        outs.append(slots.tobytes())
    assert outs[1] == outs[0] and outs[2] == outs[0]
    total = slots.sum(axis=0)
    y = X.astype(np.float64) - shift
    assert_allclose(total[:K], post.sum(axis=0), rtol=1e-12)
    assert_allclose(total[Kp:Kp + D * Kp].reshape(D, Kp)[:, :K].T, post.T @ y, rtol=1e-10,
                    atol=1e-10)
    s2 = total[Kp + D * Kp:]
    ref = post.T @ (y ** 2).sum(axis=1) if spherical else post.T @ y ** 2
    got = s2[:K] if spherical else s2.reshape(D, Kp)[:, :K].T
    assert_allclose(got, ref, rtol=1e-10)


def test_check_lengths_errors():
    with pytest.raises(ValueError, match="sum to 9 but X has 10"):
        check_lengths([4, 5], 10)
    with pytest.raises(ValueError, match="positive"):
        check_lengths([10, 0], 10)
    with pytest.raises(ValueError, match="positive"):
        check_lengths([12, -2], 10)
    with pytest.raises(ValueError, match="integers"):
        check_lengths([4.5, 5.5], 10)
    with pytest.raises(ValueError, match="1-D"):
        check_lengths([[10]], 10)
    assert_array_equal(check_lengths(None, 7), [7])
    assert_array_equal(check_lengths([3.0, 4.0], 7), [3, 4])


hmmc = pytest.importorskip("hmmlearn._hmmc", reason="hmmlearn not installed")


@pytest.mark.parametrize("K,T", [(4, 2000), (2, 1), (6, 300)])
def test_against_hmmlearn_kernels(K, T, random_model):
    rng = np.random.default_rng(K * T)
    logprob = rng.normal(scale=3.0, size=(T, K))
    startprob, transmat = random_model(rng, K)
    seqs = Sequences([T], T, 1)
    out = seqs.forward_backward(logprob, startprob, transmat)
    ll, fwd = hmmc.forward_log(startprob, transmat, logprob)
    bwd = hmmc.backward_log(startprob, transmat, logprob)
    assert_allclose(out["seq_ll"][0], ll, rtol=1e-12)
    gamma = np.exp(fwd + bwd - logsumexp(fwd + bwd, axis=1, keepdims=True))
    assert_allclose(out["posteriors"], gamma, rtol=1e-9, atol=1e-13)
    if T > 1:
        xi = np.exp(hmmc.compute_log_xi_sum(fwd, transmat, bwd, logprob))
        assert_allclose(out["trans"], xi, rtol=1e-9, atol=1e-12)
    vll, vstates = hmmc.viterbi(startprob, transmat, logprob)
    ll2, states = seqs.viterbi(logprob, startprob, transmat)
    assert_allclose(ll2[0], vll, rtol=1e-12)
    assert_array_equal(states, vstates)


# ------------------------------------------------------------ the fused Gaussian EM pass
def _em_pass(X, means, covars, spherical, startprob, transmat, seqs, n_threads,
             stats_shift=None):
    """gaussian_em_pass's outputs, slots summed in group order."""
    from vbfast.hmm.gaussian import _log_density_inputs

    ct = "spherical" if spherical else "diag"
    (N, D), K, G = X.shape, means.shape[0], seqs.n_groups
    Kp = (K + 3) // 4 * 4
    prec, code, log_const = _log_density_inputs(covars, ct, K, D)
    shift = X.astype(np.float64).mean(axis=0) if stats_shift is None else stats_shift
    slots = (np.full((G, K * K), np.nan), np.full((G, K), np.nan),
             np.full((G, Kp * (1 + D + (1 if spherical else D))), np.nan))
    seq_ll = np.full(seqs.n_sequences, np.nan)
    n_log = np.full(G, -1, dtype=np.int32)
    _hmm.gaussian_em_pass(X, means, prec, code, log_const, shift, startprob, transmat,
                          seqs.offsets, seqs.group_bounds, *slots, seq_ll, n_log, n_threads)
    return seq_ll, slots, n_log, shift


@pytest.mark.parametrize("spherical", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("K,D", [(1, 2), (3, 5), (10, 8), (16, 3)])
def test_gaussian_em_pass_against_numpy(spherical, dtype, K, D, ref_fb, random_model):
    """The fused pass (log-densities, forward-backward, emission statistics per sequence)
    equals the obvious computation: scipy's log-densities, the log-space forward-backward
    reference, the posterior-weighted sums in NumPy; bitwise the same for 1, 2, 3 threads."""
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(K * 10 + D)
    lengths = [1, 300, 7, 257, 2, 40] + list(rng.integers(1, 60, size=10))
    N = sum(lengths)
    means = rng.normal(scale=2.0, size=(K, D))
    X = (means[rng.integers(K, size=N)] + rng.normal(size=(N, D)) + 5.0).astype(dtype)
    means = means + 5.0
    covars = rng.uniform(0.5, 2.0, size=K if spherical else (K, D))
    startprob, transmat = random_model(rng, K)
    seqs = Sequences(lengths, N, 1)
    seqs.group_bounds = np.array([0, 2, 2, 5, 11, len(lengths)], dtype=np.int64)
    seqs.n_groups = 5  # (one empty)
    outs = []
    for n_threads in (1, 2, 3):
        seq_ll, slots, n_log, shift = _em_pass(X, means, covars, spherical, startprob,
                                               transmat, seqs, n_threads)
        outs.append(b"".join(a.tobytes() for a in (seq_ll, n_log) + slots))
    assert outs[1] == outs[0] and outs[2] == outs[0]
    cov = [np.eye(D) * (c if spherical else 1.0) * (1.0 if spherical else c)
           for c in covars]
    Xd = X.astype(np.float64)
    logprob = np.stack([multivariate_normal(means[k], cov[k]).logpdf(Xd).reshape(N)
                        for k in range(K)], axis=1)
    ll, post, start, trans = ref_fb(logprob, startprob, transmat, lengths)
    assert_allclose(seq_ll, ll, rtol=1e-10)
    assert n_log.sum() == 0
    assert_allclose(slots[0].sum(axis=0).reshape(K, K), trans, rtol=1e-8, atol=1e-9)
    assert_allclose(slots[1].sum(axis=0), start, rtol=1e-8, atol=1e-12)
    total = slots[2].sum(axis=0)
    Kp = (K + 3) // 4 * 4
    y = Xd - shift
    assert_allclose(total[:K], post.sum(axis=0), rtol=1e-9)
    assert_allclose(total[Kp:Kp + D * Kp].reshape(D, Kp)[:, :K].T, post.T @ y, rtol=1e-8,
                    atol=1e-8)
    s2 = total[Kp + D * Kp:]
    ref = post.T @ (y ** 2).sum(axis=1) if spherical else post.T @ y ** 2
    assert_allclose(s2[:K] if spherical else s2.reshape(D, Kp)[:, :K].T, ref, rtol=1e-9)


@pytest.mark.parametrize("spherical", [False, True])
def test_gaussian_em_pass_equals_the_three_passes_bitwise(spherical, random_model):
    """With one group, the fused pass adds the same terms in the same order as
    gaussian_log_density -> forward_backward -> gaussian_stats (one slot): the same bits."""
    from vbfast.hmm.gaussian import _log_density_inputs

    rng = np.random.default_rng(7)
    K, D = 6, 4
    lengths = [40, 1, 300, 13]
    N = sum(lengths)
    means = rng.normal(scale=3.0, size=(K, D))
    X = means[rng.integers(K, size=N)] + rng.normal(size=(N, D))
    covars = rng.uniform(0.5, 2.0, size=K if spherical else (K, D))
    startprob, transmat = random_model(rng, K)
    seqs = Sequences(lengths, N, 1)
    seqs.group_bounds = np.array([0, len(lengths)], dtype=np.int64)
    seqs.n_groups = 1
    seq_ll, slots, n_log, shift = _em_pass(X, means, covars, spherical, startprob, transmat,
                                           seqs, 2)
    ct = "spherical" if spherical else "diag"
    prec, code, log_const = _log_density_inputs(covars, ct, K, D)
    logprob = np.empty((N, K))
    _hmm.gaussian_log_density(X, means, prec, code, log_const, logprob, 256, 1)
    out = seqs.forward_backward(logprob, startprob, transmat)
    stats = np.empty((1, slots[2].shape[1]))
    _hmm.gaussian_stats(X, out["posteriors"], shift, spherical, stats, 256, 1)
    assert seq_ll.tobytes() == out["seq_ll"].tobytes()
    assert slots[0].reshape(K, K).tobytes() == out["trans"].tobytes()
    assert slots[1][0].tobytes() == out["start"].tobytes()
    # (the pad lanes of the sums may differ: they take the next row's values)
    Kp = (K + 3) // 4 * 4
    real = np.tile(np.arange(Kp) < K, stats.shape[1] // Kp)
    assert slots[2][:, real].tobytes() == stats[:, real].tobytes()


def test_gaussian_em_pass_log_space_fallback(ref_fb):
    """Densities exp(-45,000) apart and a state that cannot be reached: the scaled recursion
    underflows, the fused pass redoes that sequence in log space, exactly, and its
    statistics stay finite."""
    K, D = 3, 1
    means = np.array([[0.0], [30.0], [60.0]])
    covars = np.full((K, D), 0.01)
    rng = np.random.default_rng(1)
    z = np.r_[np.full(20, 1), np.full(5, 0), np.full(20, 2)]  # state 0 where 0 is impossible
    X = means[z] + rng.normal(scale=0.1, size=(len(z), D))
    X = np.r_[X, means[[1, 1, 2]] + 0.05]
    lengths = [45, 3]
    transmat = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    startprob = np.array([0.0, 0.5, 0.5])
    seqs = Sequences(lengths, len(X), 1)
    seq_ll, slots, n_log, shift = _em_pass(X, means, covars, False, startprob, transmat,
                                           seqs, 1)
    from scipy.stats import norm

    logprob = np.stack([norm(means[k, 0], 0.1).logpdf(X[:, 0]) for k in range(K)], axis=1)
    ll, post, start, trans = ref_fb(logprob, startprob, transmat, lengths)
    assert n_log.sum() == 1
    assert_allclose(seq_ll, ll, rtol=1e-12, atol=1e-10)
    assert_allclose(slots[0].sum(axis=0).reshape(K, K), trans, rtol=1e-9, atol=1e-12)
    total = slots[2].sum(axis=0)
    assert np.isfinite(total).all()
    assert_allclose(total[:K], post.sum(axis=0), rtol=1e-9, atol=1e-12)


def test_gaussian_em_pass_refuses_bad_shapes(random_model):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 2))
    seqs = Sequences([10, 10], 20, 1)
    startprob, transmat = random_model(rng, 3)
    args = [X, rng.normal(size=(3, 2)), np.ones(6), 2, np.zeros(3), np.zeros(2), startprob,
            transmat, seqs.offsets, seqs.group_bounds, np.empty((1, 9)), np.empty((1, 3)),
            np.empty((1, 4 * 5)), np.empty(2), np.zeros(1, dtype=np.int32), 1]
    _hmm.gaussian_em_pass(*args)  # the right shapes
    for i, bad in [(3, 0), (2, np.ones(5)), (12, np.empty((1, 19))), (5, np.zeros(3)),
                   (7, np.eye(2))]:
        wrong = list(args)
        wrong[i] = bad
        with pytest.raises(ValueError):
            _hmm.gaussian_em_pass(*wrong)
