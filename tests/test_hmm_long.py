"""The long-sequence forward-backward pass (``_hmm.forward_backward_long``: one sequence, the
forward and backward recursions apart, rescaled by powers of two every other step, combined
over chunks) against a log-space NumPy reference and against the per-sequence scaled pass;
bitwise the same for one and two threads.

Reference, all in log space (as in test_hmm_kernel.py):
    log alpha_0 = log pi + l_0,   log alpha_t(j) = logsumexp_i(log alpha_{t-1}(i) + log A_ij) + l_tj
    log beta_{T-1} = 0,           log beta_t(i) = logsumexp_j(log A_ij + l_{t+1,j} + log beta_{t+1}(j))
    gamma_t = exp(log alpha_t + log beta_t - log p),
    sum_t xi_t(i, j) = sum_t exp(log alpha_t(i) + log A_ij + l_{t+1,j} + log beta_{t+1}(j) - log p).
"""
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import logsumexp

from vbfast.hmm import _hmm, _sequences
from vbfast.hmm._sequences import Sequences


def ref_fb(logprob, startprob, transmat):
    T, K = logprob.shape
    with np.errstate(divide="ignore"):
        lpi, lA = np.log(startprob), np.log(transmat)
    la = np.empty((T, K))
    lb = np.zeros((T, K))
    la[0] = lpi + logprob[0]
    for t in range(1, T):
        la[t] = logsumexp(la[t - 1][:, None] + lA, axis=0) + logprob[t]
    for t in range(T - 2, -1, -1):
        lb[t] = logsumexp(lA + logprob[t + 1] + lb[t + 1], axis=1)
    ll = logsumexp(la[-1])
    post = np.exp(la + lb - ll)
    # all the xi_t at once: (T - 1, K, K)
    xi = np.exp(la[:-1, :, None] + lA[None] + (logprob[1:] + lb[1:])[:, None, :] - ll)
    return ll, post, post[0], xi.sum(axis=0)


def random_model(rng, K, zeros=False):
    startprob = rng.dirichlet(np.ones(K))
    transmat = rng.dirichlet(np.ones(K), size=K)
    if zeros:  # left-right: upper bidiagonal, start in state 0
        transmat = np.triu(transmat) - np.triu(transmat, 2)
        transmat[-1, -1] = 1.0
        transmat /= transmat.sum(axis=1, keepdims=True)
        startprob = np.eye(K)[0]
    return startprob, transmat


def _long(logprob, startprob, transmat, n_threads, what="all"):
    T, K = logprob.shape
    post = np.full((T, K), np.nan) if what == "all" else np.empty((0, 0))
    trans = np.full((K, K), np.nan) if what != "ll" else np.empty((0, 0))
    start = np.full(K, np.nan) if what != "ll" else np.empty(0)
    ll = _hmm.forward_backward_long(logprob, startprob, transmat, post, trans, start,
                                    n_threads)
    return ll, post, trans, start


def _group_path(monkeypatch, logprob, startprob, transmat):
    """The per-sequence scaled pass (the one for many sequences) on the same sequence."""
    with monkeypatch.context() as m:
        m.setattr(_sequences, "LONG_MAX_STATES", 0)
        T = logprob.shape[0]
        return Sequences([T], T, 1).forward_backward(logprob, startprob, transmat)


@pytest.mark.parametrize("K", [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16])
@pytest.mark.parametrize("zeros", [False, True])
@pytest.mark.parametrize("T", [1, 2, 3, 1201])
def test_long_pass_matches_log_space_reference(K, zeros, T):
    rng = np.random.default_rng(100 * K + T + zeros)
    logprob = rng.normal(scale=3.0, size=(T, K)) - 2.0
    startprob, transmat = random_model(rng, K, zeros)
    ll_ref, post_ref, start_ref, trans_ref = ref_fb(logprob, startprob, transmat)
    ll, post, trans, start = _long(logprob, startprob, transmat, 1)
    assert np.isfinite(ll)  # the long pass itself answered (no fallback)
    assert_allclose(ll, ll_ref, rtol=1e-12)
    assert_allclose(post, post_ref, rtol=1e-9, atol=1e-13)
    assert_allclose(start, start_ref, rtol=1e-9, atol=1e-13)
    assert_allclose(trans, trans_ref, rtol=1e-9, atol=1e-11)
    # what Sequences returns for one sequence is this pass
    out = Sequences([T], T, 2).forward_backward(logprob, startprob, transmat)
    assert out["seq_ll"][0] == ll and out["n_log_space"] == 0
    assert_array_equal(out["posteriors"], post)
    assert_array_equal(out["trans"], trans)
    # forward only and statistics only: the same numbers
    assert _long(logprob, startprob, transmat, 1, "ll")[0] == ll
    assert_array_equal(_long(logprob, startprob, transmat, 1, "stats")[2], trans)


@pytest.mark.parametrize("K,T", [(4, 50_000), (3, 9_999), (10, 8_193), (1, 5000), (16, 4097)])
def test_long_pass_bitwise_identical_for_one_and_two_threads(K, T):
    rng = np.random.default_rng(K * T)
    logprob = rng.normal(scale=4.0, size=(T, K))
    startprob, transmat = random_model(rng, K)
    runs = [_long(logprob, startprob, transmat, n) for n in (1, 2, 3)]
    for ll, post, trans, start in runs[1:]:
        assert ll == runs[0][0]
        assert post.tobytes() == runs[0][1].tobytes()
        assert trans.tobytes() == runs[0][2].tobytes()
        assert start.tobytes() == runs[0][3].tobytes()
    assert np.isfinite(runs[0][0]) and not np.isnan(runs[0][1]).any()
    assert_allclose(runs[0][1].sum(axis=1), 1.0, rtol=1e-12)
    assert_allclose(runs[0][2].sum(), T - 1, rtol=1e-10)


def test_very_long_sequence_with_tiny_emission_probabilities(monkeypatch):
    """100,000 frames whose densities differ by hundreds of nats between states, a transition
    matrix with zeros: the power-of-two rescaling keeps every sum in range, and the answer
    equals the per-step scaled pass's."""
    rng = np.random.default_rng(5)
    K, T = 5, 100_000
    logprob = rng.normal(scale=60.0, size=(T, K)) - 700.0
    startprob, transmat = random_model(rng, K)
    transmat[0, 1] = transmat[2, 3] = transmat[4, 0] = 0.0
    transmat /= transmat.sum(axis=1, keepdims=True)
    ll, post, trans, start = _long(logprob, startprob, transmat, 2)
    ref = _group_path(monkeypatch, logprob, startprob, transmat)
    assert ref["n_log_space"] == 0 and np.isfinite(ll)
    assert_allclose(ll, ref["seq_ll"][0], rtol=1e-12)
    assert_allclose(post, ref["posteriors"], atol=1e-9)
    assert_allclose(trans, ref["trans"], rtol=1e-8, atol=1e-8)
    assert trans[0, 1] == 0.0 and trans[2, 3] == 0.0 and trans[4, 0] == 0.0


@pytest.mark.parametrize("gap", [200.0, 300.0, 800.0])
def test_states_far_apart_redone_by_the_per_step_pass(gap):
    """The model can only stay in state 0, whose density is exp(-gap) below state 1's every
    frame: alpha lives on state 0 and shrinks by exp(-gap) a step, beta's own scaling follows
    state 1 and its state-0 lane underflows, so the normaliser sum_i alpha_t(i) beta_t(i)
    leaves the range: the long pass declines (NaN), the sequence is redone by the per-step
    scaled pass (here in log space: its beta overflows), and the answer is exact."""
    T = 41
    logprob = np.zeros((T, 2))
    logprob[:, 0] = -gap
    startprob, transmat = np.array([1.0, 0.0]), np.eye(2)
    assert np.isnan(_long(logprob, startprob, transmat, 1)[0])
    out = Sequences([T], T, 1).forward_backward(logprob, startprob, transmat)
    assert_allclose(out["seq_ll"][0], -gap * T, rtol=1e-13)
    assert_array_equal(out["posteriors"], np.tile([1.0, 0.0], (T, 1)))
    assert_allclose(out["trans"], [[T - 1, 0], [0, 0]], rtol=1e-13)


def test_long_pass_argument_errors():
    with pytest.raises(ValueError, match="K <= 16"):
        _long(np.zeros((5, 17)), np.full(17, 1 / 17), np.full((17, 17), 1 / 17), 1)
    with pytest.raises(ValueError, match="do not match"):
        _long(np.zeros((5, 3)), np.full(2, 0.5), np.full((3, 3), 1 / 3), 1)
