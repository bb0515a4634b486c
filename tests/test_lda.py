"""LatentDirichletAllocation: the pass against a NumPy reference, scikit-learn parity,
determinism across thread counts, the bound, bad input, and the text helper."""
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.special import gammaln, logsumexp, psi

import vbfast
from vbfast.topics import _lda
from vbfast.topics import lda as lda_module
from vbfast.exceptions import NotFittedError
from vbfast.topics.lda import LatentDirichletAllocation, Topics
from vbfast.text import count_matrix

EPS = np.finfo(np.float64).eps


def _corpus(n_docs=200, n_words=60, n_topics=4, doc_len=50, seed=0, concentration=0.1):
    rng = np.random.RandomState(seed)
    topics = rng.dirichlet(np.full(n_words, concentration), n_topics)
    theta = rng.dirichlet(np.full(n_topics, 0.3), n_docs)
    counts = np.array([rng.multinomial(doc_len, th @ topics) for th in theta], dtype=float)
    return sp.csr_matrix(counts), topics


# ---------------------------------------------------------------- the pass vs NumPy
def _reference_pass(X, B, gamma0, alpha, max_iter, tol):
    """Slow per-document loop: scikit-learn's _update_doc_distribution with an exact digamma,
    plus the statistics and the bound's per-document terms."""
    n, K = gamma0.shape
    gamma = gamma0.copy()
    sst = np.zeros_like(B)  # (V, K)
    word_term = doc_term = 0.0
    for d in range(n):
        ids = X.indices[X.indptr[d]:X.indptr[d + 1]]
        cnts = X.data[X.indptr[d]:X.indptr[d + 1]].astype(np.float64)
        Bd = B[ids]  # (n_d, K)
        g = gamma[d].copy()
        t = np.exp(psi(g) - psi(g.sum()))
        for _ in range(max_iter):
            last = g
            norm = Bd @ t + EPS
            g = t * (Bd.T @ (cnts / norm)) + alpha
            t = np.exp(psi(g) - psi(g.sum()))
            if np.abs(last - g).mean() < tol:
                break
        gamma[d] = g
        norm = Bd @ t + EPS
        sst[ids] += np.outer(cnts / norm, t)
        elog = psi(g) - psi(g.sum())
        if len(ids):
            word_term += cnts @ logsumexp(elog[None, :] + np.log(Bd), axis=1)
        doc_term += np.sum((alpha - g) * elog + gammaln(g) - gammaln(alpha))
        doc_term += gammaln(K * alpha) - gammaln(g.sum())
    return gamma, sst, word_term, doc_term


def _pass_with_stats(X, B, gamma, alpha, max_iter, G, threads, start=0, stop=None):
    """lda_pass on documents [start, stop) of X then word_topic_stats: (suff (V, K), bound
    slots (G, 2))."""
    stop = X.shape[0] if stop is None else stop
    V, K = B.shape
    ratio = np.full(X.nnz, np.nan)
    t = np.empty((stop - start, K))
    bnd = np.empty((G, 2))
    indptr = X.indptr[start:stop + 1]
    _lda.lda_pass(indptr, X.indices, X.data, B, np.log(B), gamma, alpha, max_iter, 1e-3,
                  EPS, ratio, t, bnd, threads)
    suff = np.empty((V, K))
    _lda.word_topic_stats(*_lda.word_major_pattern(indptr, X.indices, V), ratio, t, B, suff,
                          threads)
    return suff, bnd


@pytest.mark.parametrize("data_dtype,index_dtype",
                         [(np.float64, np.int32), (np.float32, np.int64)])
@pytest.mark.parametrize("max_iter", [0, 1, 100])
def test_pass_matches_numpy_reference(data_dtype, index_dtype, max_iter):
    X, _ = _corpus(n_docs=40, n_words=30, n_topics=3, doc_len=20, seed=1)
    X = X.tolil()
    X[7] = 0  # an empty document
    X = X.tocsr()
    X.eliminate_zeros()
    X = X.astype(data_dtype)
    X.indices = X.indices.astype(index_dtype)
    X.indptr = X.indptr.astype(index_dtype)
    rng = np.random.RandomState(3)
    K, V = 3, X.shape[1]
    lam = rng.gamma(1.0, 1.0, (K, V)) + 0.1
    B = np.ascontiguousarray(np.exp(psi(lam) - psi(lam.sum(1))[:, None]).T)
    gamma0 = rng.gamma(100.0, 0.01, (X.shape[0], K))
    alpha = 0.3
    ref_gamma, ref_sst, ref_word, ref_doc = _reference_pass(X, B, gamma0, alpha, max_iter,
                                                            1e-3)
    G = 5
    gamma = gamma0.copy()
    out = _pass_with_stats(X, B, gamma, alpha, max_iter, G, 2)
    bnd = out[1]
    np.testing.assert_allclose(gamma, ref_gamma, rtol=1e-12)
    np.testing.assert_allclose(out[0], ref_sst * B, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(bnd.sum(0), [ref_word, ref_doc], rtol=1e-11)
    # the empty document keeps the prior once updated
    if max_iter > 0:
        np.testing.assert_allclose(gamma[7], alpha)


def test_pass_bound_survives_underflow():
    # exp(E[log beta]) underflows to 0 for some words: the bound falls back to log-sum-exp.
    X = sp.csr_matrix(np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]]))
    logB = np.array([[-800.0, -801.0], [-1.0, -2.0], [-0.5, -3.0]])
    B = np.exp(logB)
    gamma = np.ones((2, 2))
    bnd = np.empty((1, 2))
    _lda.lda_pass(X.indptr, X.indices, X.data, B, logB, gamma, 0.5, 0, 1e-3, EPS,
                  np.empty(0), np.empty((0, 0)), bnd, 1)
    elog = psi(1.0) - psi(2.0)
    expected = 2 * logsumexp(elog + logB[0]) + 1 * logsumexp(elog + logB[1]) \
        + 3 * logsumexp(elog + logB[1]) + 1 * logsumexp(elog + logB[2])
    assert np.isfinite(bnd[0, 0])
    np.testing.assert_allclose(bnd[0, 0], expected, rtol=1e-12)


def test_pass_rejects_bad_shapes():
    X = sp.csr_matrix(np.ones((3, 4)))
    B = np.ones((4, 2))
    with pytest.raises(ValueError, match="indptr"):
        _lda.lda_pass(X.indptr, X.indices, X.data, B, B, np.ones((2, 2)), 0.5, 5, 1e-3, EPS,
                      np.empty(0), np.empty((0, 0)), np.empty((1, 2)), 1)
    bad = X.indices.copy()
    bad[0] = 9
    with pytest.raises(ValueError, match="out of range"):
        _lda.lda_pass(X.indptr, bad, X.data, B, B, np.ones((3, 2)), 0.5, 5, 1e-3, EPS,
                      np.empty(0), np.empty((0, 0)), np.empty((1, 2)), 1)
    with pytest.raises(ValueError, match="out of range"):
        _lda.word_major_pattern(X.indptr, bad, 4)
    with pytest.raises(ValueError, match="ratio_out"):
        _lda.lda_pass(X.indptr, X.indices, X.data, B, B, np.ones((3, 2)), 0.5, 5, 1e-3, EPS,
                      np.empty(3), np.empty((0, 0)), np.empty((1, 2)), 1)


def test_pass_identical_for_any_thread_count():
    X, _ = _corpus(n_docs=300, n_words=80, seed=2)
    rng = np.random.RandomState(0)
    B = np.ascontiguousarray(rng.dirichlet(np.ones(80), 4).T)
    results = []
    for threads in (1, 2, 3):
        gamma = np.ones((300, 4))
        out, bnd = _pass_with_stats(X, B, gamma, 0.25, 100, 7, threads)
        results.append((gamma, out, bnd.sum(0)))
    for gamma, out, b in results[1:]:
        assert np.array_equal(gamma, results[0][0])
        assert np.array_equal(out, results[0][1])
        assert np.array_equal(b, results[0][2])


def test_pass_ratios_same_with_and_without_the_bound():
    # The ratios come from the bound's dot products when the bound is wanted, from their own
    # loop otherwise: the same values either way (zero counts included).
    X, _ = _corpus(n_docs=50, n_words=30, n_topics=3, seed=8)
    X = X.copy()
    X.data[5] = 0.0  # an explicit zero count, kept in the pattern
    B = np.ascontiguousarray(np.random.RandomState(2).dirichlet(np.ones(30), 3).T)
    out = []
    for logB in (np.log(B), np.empty((0, 0))):
        ratio = np.full(X.nnz, np.nan)
        _lda.lda_pass(X.indptr, X.indices, X.data, B, logB, np.ones((50, 3)), 0.3, 20, 1e-3,
                      EPS, ratio, np.empty((50, 3)), np.empty((4, 2)), 2)
        out.append(ratio)
    assert np.all(np.isfinite(out[0])) and out[0][5] == 0.0
    np.testing.assert_array_equal(out[0], out[1])


def test_pass_on_a_range_of_documents():
    # Online mini-batches pass a slice of indptr (absolute positions): the statistics of
    # documents [40, 95) equal those of the same documents as a matrix of their own.
    X, _ = _corpus(n_docs=120, n_words=50, seed=4)
    B = np.ascontiguousarray(np.random.RandomState(1).dirichlet(np.ones(50), 3).T)
    gamma = np.ones((55, 3))
    out, bnd = _pass_with_stats(X, B, gamma, 0.3, 50, 4, 2, start=40, stop=95)
    sub = X[40:95]
    gamma_sub = np.ones((55, 3))
    ref_gamma, ref_sst, ref_word, ref_doc = _reference_pass(sub, B, gamma_sub, 0.3, 50, 1e-3)
    np.testing.assert_allclose(gamma, ref_gamma, rtol=1e-12)
    np.testing.assert_allclose(out, ref_sst * B, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(bnd.sum(0), [ref_word, ref_doc], rtol=1e-11)


def _run_pass(X, B, gamma, alpha, max_iter, tol=1e-3, fast=False, threads=2,
              max_block=1 << 20):
    """lda_pass with the statistics and the bound: (skip outcome, ratio, t, bound terms)."""
    ratio = np.full(X.nnz, np.nan)
    t = np.empty(gamma.shape)
    bnd = np.empty((3, 2))
    outcome = _lda.lda_pass(X.indptr, X.indices, X.data, B, np.log(B), gamma, alpha,
                            max_iter, tol, EPS, ratio, t, bnd, threads, fast,
                            max_block=max_block)
    return outcome, ratio, t, bnd.sum(0)


def _check_against_reference(X, B, gamma, ratio, t, bnd, ref):
    """A pass's gamma, word-topic statistics and bound against ``_reference_pass``'s."""
    ref_gamma, ref_sst, ref_word, ref_doc = ref
    np.testing.assert_allclose(gamma, ref_gamma, rtol=1e-10)
    suff = np.empty_like(B)
    _lda.word_topic_stats(*_lda.word_major_pattern(X.indptr, X.indices, B.shape[0]), ratio,
                          t, B, suff, 2)
    np.testing.assert_allclose(suff, ref_sst * B, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(bnd, [ref_word, ref_doc], rtol=1e-10)


@pytest.mark.parametrize("K", [8, 13, 50])
def test_pass_skipping_dead_topics_matches_reference(K):
    # Documents about a few of K sparse topics, with a small alpha (t_k ~ exp(-1/alpha) / N
    # at gamma_k = alpha): most topics reach gamma_k = alpha exactly within a few sweeps and
    # the sweeps then skip them, checked at each sweep (with K=13 one document's check fails
    # and its sweep is redone). gamma, the statistics and the bound still match the plain
    # NumPy fixed point, which never skips.
    X, topics = _corpus(n_docs=60, n_words=300, n_topics=K, doc_len=80, seed=K,
                        concentration=0.05)
    rng = np.random.RandomState(K)
    lam = topics * 500 + rng.gamma(0.05, 1.0, topics.shape) + 0.01
    B = np.ascontiguousarray(np.exp(psi(lam) - psi(lam.sum(1))[:, None]).T)
    gamma0 = rng.gamma(100.0, 0.01, (60, K))
    alpha = 0.02
    ref = _reference_pass(X, B, gamma0, alpha, 100, 1e-4)
    ref_gamma, _, ref_word, ref_doc = ref
    gamma = gamma0.copy()
    (n_skipping, n_redone), ratio, t, bnd = _run_pass(X, B, gamma, alpha, 100, tol=1e-4)
    assert n_skipping >= 8 and n_redone <= 1
    _check_against_reference(X, B, gamma, ratio, t, bnd, ref)
    # bitwise the same on one thread
    gamma_1 = gamma0.copy()
    out_1 = _run_pass(X, B, gamma_1, alpha, 100, tol=1e-4, threads=1)
    assert np.array_equal(gamma_1, gamma) and np.array_equal(out_1[1], ratio)
    assert np.array_equal(out_1[3], bnd)
    # scikit-learn's digamma skips the same way
    gamma = gamma0.copy()
    assert _run_pass(X, B, gamma, alpha, 100, tol=1e-4, fast=True)[0][0] >= 8
    # the word-major sweep (no room for the topic-major copy) drops nothing, same result
    gamma_w = gamma0.copy()
    out_w = _run_pass(X, B, gamma_w, alpha, 100, tol=1e-4, max_block=0)
    assert out_w[0] == (0, 0)
    np.testing.assert_allclose(gamma_w, ref_gamma, rtol=1e-10)
    np.testing.assert_allclose(out_w[3], [ref_word, ref_doc], rtol=1e-10)
    # a larger alpha keeps every t_k far above the skipping threshold: no gamma reaches alpha
    # exactly, and without freezing (test_pass_freezing_topics_matches_reference) nothing
    # leaves the sweeps
    previous = _lda._set_freezing(False)
    try:
        gamma = gamma0.copy()
        assert _run_pass(X, B, gamma, 0.05, 100, tol=1e-4)[0] == (0, 0)
    finally:
        _lda._set_freezing(previous)


@pytest.mark.parametrize("lanes", [0, 4])
@pytest.mark.parametrize("K,alpha", [(8, 0.05), (20, 0.05), (50, 0.05), (50, 0.02)])
def test_pass_freezing_topics_matches_reference(lanes, K, alpha):
    # With alpha = 0.05 no gamma_k reaches alpha exactly (t_k ~ exp(psi(alpha)) / N is not
    # small enough), but most settle within 1e-9 of it: those are frozen (their rows summed
    # into one, weighted by rho_k, their gamma set once at the end). gamma, the statistics and
    # the bound match the plain NumPy fixed point (which freezes nothing) and the pass without
    # freezing to rounding, and the pass gives the same bits on one thread and on three.
    X, topics = _corpus(n_docs=60, n_words=300, n_topics=K, doc_len=120, seed=K + 7,
                        concentration=0.05)
    rng = np.random.RandomState(K)
    lam = topics * 500 + rng.gamma(0.05, 1.0, topics.shape) + 0.01
    B = np.ascontiguousarray(np.exp(psi(lam) - psi(lam.sum(1))[:, None]).T)
    gamma0 = rng.gamma(100.0, 0.01, (60, K))
    ref_gamma, ref_sst, ref_word, ref_doc = _reference_pass(X, B, gamma0, alpha, 100, 1e-4)
    previous = _lda._set_sweep_lanes(lanes)
    try:
        gamma = gamma0.copy()
        (n_skipping, n_redone), ratio, t, bnd = _run_pass(X, B, gamma, alpha, 100, tol=1e-4)
        gamma_3 = gamma0.copy()
        out_3 = _run_pass(X, B, gamma_3, alpha, 100, tol=1e-4, threads=3)
        previous_freezing = _lda._set_freezing(False)
        try:
            gamma_plain = gamma0.copy()
            out_plain = _run_pass(X, B, gamma_plain, alpha, 100, tol=1e-4)
        finally:
            _lda._set_freezing(previous_freezing)
    finally:
        _lda._set_sweep_lanes(previous)
    assert n_skipping >= 30 and n_redone == 0
    np.testing.assert_allclose(gamma, ref_gamma, rtol=1e-10)
    # (the fixed point stops short of convergence and carries a rounding difference along:
    # without freezing, eight lanes and four differ by up to ~1e-12 here too)
    np.testing.assert_allclose(gamma, gamma_plain, rtol=1e-11)
    # the frozen topics' gamma sits just above alpha, as the full sweeps leave it
    near = (gamma_plain - alpha) < alpha * 2.0 ** -24
    assert near.mean() > 0.3
    np.testing.assert_allclose(gamma[near] - alpha, gamma_plain[near] - alpha, rtol=1e-5)
    suff = np.empty_like(B)
    _lda.word_topic_stats(*_lda.word_major_pattern(X.indptr, X.indices, B.shape[0]), ratio,
                          t, B, suff, 2)
    np.testing.assert_allclose(suff, ref_sst * B, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(bnd, [ref_word, ref_doc], rtol=1e-10)
    np.testing.assert_allclose(t, out_plain[2], rtol=1e-10)
    assert np.array_equal(gamma_3, gamma) and np.array_equal(out_3[1], ratio)
    assert np.array_equal(out_3[3], bnd)


def test_pass_failed_freezing_redoes_the_document():
    # A frozen topic whose final gamma leaves the frozen range fails its document's freezing:
    # the document is redone from its starting gamma over every topic. With the range made
    # empty (_set_thaw_factor(0)) every freezing fails, and the pass gives the bits of the
    # pass without freezing (alpha = 0.05: no gamma reaches alpha exactly, nothing dropped).
    K, alpha = 20, 0.05
    X, topics = _corpus(n_docs=40, n_words=300, n_topics=K, doc_len=120, seed=3,
                        concentration=0.05)
    rng = np.random.RandomState(3)
    lam = topics * 500 + rng.gamma(0.05, 1.0, topics.shape) + 0.01
    B = np.ascontiguousarray(np.exp(psi(lam) - psi(lam.sum(1))[:, None]).T)
    gamma0 = rng.gamma(100.0, 0.01, (40, K))
    previous = _lda._set_thaw_factor(0.0)
    try:
        gamma = gamma0.copy()
        (n_skipping, n_redone), ratio, t, bnd = _run_pass(X, B, gamma, alpha, 100, tol=1e-4)
    finally:
        _lda._set_thaw_factor(previous)
    previous = _lda._set_freezing(False)
    try:
        gamma_plain = gamma0.copy()
        outcome, ratio_plain, t_plain, bnd_plain = _run_pass(X, B, gamma_plain, alpha, 100,
                                                             tol=1e-4)
    finally:
        _lda._set_freezing(previous)
    assert outcome == (0, 0)
    assert n_skipping >= 20 and n_redone == n_skipping
    assert np.array_equal(gamma, gamma_plain) and np.array_equal(ratio, ratio_plain)
    assert np.array_equal(t, t_plain) and np.array_equal(bnd, bnd_plain)
    # with the default range no freezing fails here
    gamma = gamma0.copy()
    assert _run_pass(X, B, gamma, alpha, 100, tol=1e-4)[0] == (n_skipping, 0)


@pytest.mark.parametrize("lanes", [0, 4])
@pytest.mark.parametrize("K,alpha", [(4, 0.3), (13, 0.1), (20, 0.02), (100, 0.1)])
def test_live_sweep_lanes_match_reference(lanes, K, alpha):
    # The live sweep runs eight lanes where the CPU has AVX-512F (words in chunks of 32, then
    # eight at a time) and four elsewhere; lanes=4 forces the four-lane version. Documents of
    # 1 to ~140 distinct words cover every chunk/tail combination; alpha=0.02 drops dead
    # topics. Either version matches the NumPy fixed point, and gives the same bits on one
    # and on two threads.
    X, topics = _corpus(n_docs=40, n_words=400, n_topics=K, doc_len=200, seed=K,
                        concentration=0.05)
    X = sp.vstack([X, sp.csr_matrix(np.eye(1, 400, 7) * 3.0)]).tocsr()  # a one-word document
    rng = np.random.RandomState(K)
    lam = topics * 300 + rng.gamma(0.1, 1.0, topics.shape) + 0.01
    B = np.ascontiguousarray(np.exp(psi(lam) - psi(lam.sum(1))[:, None]).T)
    gamma0 = rng.gamma(100.0, 0.01, (X.shape[0], K))
    ref = _reference_pass(X, B, gamma0, alpha, 100, 1e-4)
    previous = _lda._set_sweep_lanes(lanes)
    try:
        assert _lda._sweep_lanes() in ((4,) if lanes == 4 else (4, 8))
        gamma = gamma0.copy()
        _, ratio, t, bnd = _run_pass(X, B, gamma, alpha, 100, tol=1e-4)
        gamma_1 = gamma0.copy()
        out_1 = _run_pass(X, B, gamma_1, alpha, 100, tol=1e-4, threads=1)
    finally:
        _lda._set_sweep_lanes(previous)
    _check_against_reference(X, B, gamma, ratio, t, bnd, ref)
    assert np.array_equal(gamma_1, gamma) and np.array_equal(out_1[1], ratio)
    assert np.array_equal(out_1[3], bnd)


def test_sweep_lanes_setting_is_checked():
    with pytest.raises(ValueError, match="lanes"):
        _lda._set_sweep_lanes(8)


def test_pass_long_document_swept_word_major():
    # A document whose topic-major copy would pass 8 MB (20,000 distinct words x 53 rows of
    # K=50 padded, plus the zero row) is swept word-major over all topics, without dropping
    # any; the short documents beside it still drop theirs. Both match the NumPy reference.
    K, V = 50, 20000
    rng = np.random.RandomState(5)
    topics = rng.dirichlet(np.full(V, 0.05), K)
    counts = np.zeros((3, V))
    counts[0] = rng.multinomial(100, topics[:3].mean(0))
    counts[1] = 1.0 + rng.poisson(0.5, V)  # every word
    counts[2] = rng.multinomial(100, topics[5:7].mean(0))
    X = sp.csr_matrix(counts)
    lam = topics * 5000 + 0.01
    B = np.ascontiguousarray(np.exp(psi(lam) - psi(lam.sum(1))[:, None]).T)
    gamma0 = rng.gamma(100.0, 0.01, (3, K))
    ref_gamma = _reference_pass(X, B, gamma0, 0.02, 30, 1e-3)[0]
    gamma = gamma0.copy()
    outcome = _run_pass(X, B, gamma, 0.02, 30)[0]
    assert outcome == (2, 0)
    np.testing.assert_allclose(gamma, ref_gamma, rtol=1e-10)


def test_pass_skipping_falls_back_when_the_check_fails():
    # Topics 2..7 have B = 0 on the document's words: after the first sweep their gamma is
    # alpha exactly (whatever t_k), so the next sweep skips them; but with alpha = 0.3 their
    # t is ~0.01 and their M_k = 0.99 (from a word outside the document), so the check
    # cannot vouch for them: that sweep is redone over all topics and the document finishes
    # without skipping. The result is the plain fixed point's.
    K, V = 8, 10
    B = np.full((V, K), 1e-3)
    B[:4, 2:] = 0.0
    B[0:2, 0] = B[2:4, 1] = 0.45
    B[5:10, 2:] = 0.2
    B[9, 2:] = 0.99
    X = sp.csr_matrix(np.array([[3.0, 2.0, 4.0, 1.0, 0, 0, 0, 0, 0, 0]]))
    gamma0 = np.random.RandomState(0).gamma(100.0, 0.01, (1, K))
    with np.errstate(divide="ignore"):
        ref_gamma = _reference_pass(X, B, gamma0, 0.3, 100, 1e-3)[0]
        gamma = gamma0.copy()
        outcome = _run_pass(X, B, gamma, 0.3, 100)[0]
    assert outcome == (1, 1)
    np.testing.assert_allclose(gamma, ref_gamma, rtol=1e-12)
    np.testing.assert_array_equal(gamma[:, 2:], 0.3)


@pytest.mark.parametrize("K", [1, 3, 4, 7, 50])
def test_vectorised_dirichlet_expectation_matches_scipy(K):
    # The pass's own digamma/exp (four lanes at a time, tails padded) against scipy, over the
    # range gamma takes (>= the prior, up to long documents' counts). The difference of two
    # digammas is compared relative to the size of the terms (it cancels).
    rng = np.random.default_rng(K)
    gamma = np.exp(rng.uniform(np.log(1e-6), np.log(1e7), (3000, K)))
    gamma[::3] = rng.uniform(1e-3, 20.0, (1000, K))
    elog, t = _lda.dirichlet_expectation(gamma)
    psi_total = psi(gamma.sum(axis=1, keepdims=True))
    ref = psi(gamma) - psi_total
    scale = np.maximum(1.0, np.abs(psi(gamma)) + np.abs(psi_total))
    assert np.max(np.abs(elog - ref) / scale) < 1e-14
    ok = ref > -700
    with np.errstate(under="ignore"):
        ref_t = np.exp(ref)
    np.testing.assert_allclose(t[ok], ref_t[ok], rtol=1e-13 * max(1.0, np.abs(ref[ok]).max()))
    assert np.all(t[~ok] < 1e-300)
    with pytest.raises(ValueError, match="positive"):
        _lda.dirichlet_expectation(np.array([[1.0, 0.0]]))


@pytest.mark.parametrize("K, V", [(1, 1), (3, 7), (4, 256), (7, 600), (21, 1031)])
def test_mean_field_topics_match_numpy(K, V):
    # The fused topics (E[log beta], the padded word-major B, its per-topic max and the topic
    # term in one sweep over word chunks of 256) against the separate functions and scipy:
    # E[log beta] and B the same bits as dirichlet_expectation's, the term as scikit-learn's.
    rng = np.random.RandomState(K * 1000 + V)
    lam = rng.gamma(2.0, 1.0, (K, V)) + 10.0 ** rng.uniform(-3, 4, (K, V))
    eta = 0.3
    elog, B, topic_max, term = _lda.mean_field_topics(lam, eta, 1)
    ref_elog, ref_t = _lda.dirichlet_expectation(lam)
    np.testing.assert_array_equal(elog, ref_elog)
    np.testing.assert_array_equal(B, _lda.pad_topics(ref_t.T))
    assert B.ctypes.data % 64 == 0 and B.shape == (V, (K + 3) // 4 * 4)
    np.testing.assert_array_equal(topic_max, ref_t.max(axis=1))
    ref = (np.sum((eta - lam) * (psi(lam) - psi(lam.sum(axis=1))[:, None]))
           + np.sum(gammaln(lam) - gammaln(eta))
           + np.sum(gammaln(eta * V) - gammaln(lam.sum(axis=1))))
    np.testing.assert_allclose(term, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(term, lda_module._dirichlet_loglik(eta, lam, ref_elog, V),
                               rtol=1e-12, atol=1e-12)
    # the same bits for any thread count (topics and chunks each by one thread)
    for threads in (2, 3):
        other = _lda.mean_field_topics(lam, eta, threads)
        for a, b in zip(other[:3], (elog, B, topic_max)):
            np.testing.assert_array_equal(a, b)
        assert other[3] == term
    # eight lanes (AVX-512) and four: the same values, the term's sum grouped otherwise
    previous = _lda._set_sweep_lanes(4)
    try:
        four = _lda.mean_field_topics(lam, eta, 1)
    finally:
        _lda._set_sweep_lanes(previous)
    for a, b in zip(four[:3], (elog, B, topic_max)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(four[3], term, rtol=1e-12, atol=1e-12)


def test_mean_field_topics_term_cancels_exactly_and_falls_back():
    # lambda = eta (no counts: one word of one topic, or every entry) gives a topic term of
    # exactly 0, as scipy's differences do (the robustness case of counts ~1e-150, whose
    # perplexity exp(-bound / 1e-150) needs it)
    for K, V in [(1, 1), (3, 5)]:
        assert _lda.mean_field_topics(np.full((K, V), 0.25), 0.25, 1)[3] == 0.0
        assert Topics(np.full((K, V), 0.25), True, 0.25, False, 1).topic_term() == 0.0
    # outside the vectorised lgamma's range: None, and Topics takes scipy's term
    lam = np.random.RandomState(0).gamma(2.0, 1.0, (3, 9))
    lam[1, 4] = 1e-300
    assert _lda.mean_field_topics(lam, 0.2, 1)[3] is None
    elog = _lda.dirichlet_expectation(lam)[0]
    assert Topics(lam, True, 0.2, False, 1).topic_term() == \
        lda_module._dirichlet_loglik(0.2, lam, elog, 9)
    assert _lda.mean_field_topics(np.ones((2, 3)), 1e-300, 1)[3] is None
    with pytest.raises(ValueError, match="positive"):
        _lda.mean_field_topics(np.array([[1.0, 0.0]]), 0.1, 1)
    with pytest.raises(ValueError, match="n_threads"):
        _lda.mean_field_topics(np.ones((2, 3)), 0.1, 0)


@pytest.mark.parametrize("K", [1, 3, 4, 7, 50])
def test_log_free_expectation_matches_scipy(K):
    # The sweeps' t = exp(psi(gamma_k) - psi(sum gamma)), computed as y exp(-1/(2y) - ...)
    # without a logarithm, against scipy over the range gamma takes.
    rng = np.random.default_rng(K + 100)
    gamma = np.exp(rng.uniform(np.log(1e-6), np.log(1e7), (3000, K)))
    gamma[::3] = rng.uniform(1e-3, 20.0, (1000, K))
    t = _lda.exp_expectation(gamma)
    ref = psi(gamma) - psi(gamma.sum(axis=1, keepdims=True))
    ok = ref > -700
    with np.errstate(under="ignore"):
        ref_t = np.exp(ref)
    # exp's relative error grows with the size of its argument
    np.testing.assert_allclose(t[ok], ref_t[ok], rtol=1e-13 * max(1.0, np.abs(ref[ok]).max()))
    assert np.all(t[~ok] < 1e-290)
    # and the pass's full expectation agrees with it, for any thread count
    elog1, t1 = _lda.dirichlet_expectation(gamma, n_threads=1)
    elog2, t2 = _lda.dirichlet_expectation(gamma, n_threads=2)
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_array_equal(elog1, elog2)
    np.testing.assert_allclose(t[ok], t1[ok], rtol=1e-13 * max(1.0, np.abs(ref[ok]).max()))


def test_eight_lane_expectation_is_the_four_lane_one():
    # The sweeps' t on eight lanes (AVX-512, the total in the lane after the K values, blocks
    # of up to four vectors) gives the four-lane function's bits, for every K around the
    # vector and block boundaries (on a CPU without AVX-512 both runs are the four lanes).
    for K in [1, 2, 7, 8, 9, 15, 16, 20, 23, 24, 31, 32, 33, 40, 63, 64, 65, 100, 257]:
        rng = np.random.default_rng(K)
        gamma = np.exp(rng.uniform(np.log(1e-6), np.log(1e7), (200, K)))
        gamma[::2] = rng.uniform(1e-3, 20.0, (100, K))
        eight = _lda.exp_expectation(gamma)
        previous = _lda._set_sweep_lanes(4)
        try:
            four = _lda.exp_expectation(gamma)
        finally:
            _lda._set_sweep_lanes(previous)
        np.testing.assert_array_equal(eight, four)
        ref = psi(gamma) - psi(gamma.sum(axis=1, keepdims=True))
        ok = ref > -700
        np.testing.assert_allclose(eight[ok], np.exp(ref[ok]),
                                   rtol=1e-13 * max(1.0, np.abs(ref[ok]).max()))


def test_vectorised_log_of_the_bound():
    # the bound's log sum_k t_k B_wk: within 2 ulp of numpy's log, the same bits on eight and
    # four lanes, any length (tails of 1 to 7)
    x = np.exp(np.random.default_rng(3).uniform(-690.0, 690.0, 1003))
    x[:5] = [1.0, 2.0, 0.5, 1e-300, 1e300]
    ref = np.log(x)
    for n in [0, 1, 5, 8, 13, 1003]:
        got = _lda.log_vector(x[:n])
        assert np.all(np.abs(got - ref[:n]) <= 2 * np.spacing(np.abs(ref[:n])))
        previous = _lda._set_sweep_lanes(4)
        try:
            np.testing.assert_array_equal(_lda.log_vector(x[:n]), got)
        finally:
            _lda._set_sweep_lanes(previous)
    assert _lda.log_vector(np.array([1.0]))[0] == 0.0


@pytest.mark.parametrize("K", [3, 4, 50])
def test_pass_with_padded_topics_equals_unpadded(K):
    # The sweep reads rows of B padded with zeros to a multiple of 4 topics; a (V, K) B is
    # padded by the pass itself, with the same result bit for bit. Non-zero padding is refused.
    X, _ = _corpus(n_docs=40, n_words=30, n_topics=3, seed=9)
    B = np.ascontiguousarray(np.random.RandomState(3).dirichlet(np.ones(30), K).T)
    Bp = _lda.pad_topics(B)
    assert Bp.shape == (30, -(-K // 4) * 4) and np.all(Bp[:, K:] == 0)
    np.testing.assert_array_equal(Bp[:, :K], B)
    outs = []
    for b in (B, Bp):
        gamma = np.ones((40, K))
        ratio = np.empty(X.nnz)
        t = np.empty((40, K))
        bnd = np.empty((3, 2))
        _lda.lda_pass(X.indptr, X.indices, X.data, b, np.log(B), gamma, 0.3, 30, 1e-4, EPS,
                      ratio, t, bnd, 2)
        outs.append((gamma, ratio, t, bnd))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    if Bp.shape[1] > K:
        Bp[3, K] = 1e-3
        with pytest.raises(ValueError, match="padding"):
            _lda.lda_pass(X.indptr, X.indices, X.data, Bp, np.log(B), np.ones((40, K)), 0.3,
                          30, 1e-4, EPS, np.empty(X.nnz), np.empty((40, K)), np.empty((3, 2)), 2)


def test_topics_for_the_sweep_are_aligned_also_after_unpickling():
    # The sweep's 32-byte loads of B's rows must not straddle cache lines, so B is padded into
    # a 64-byte aligned buffer; an unpickled model re-pads its copy once, with equal results.
    import pickle
    X, _ = _corpus(n_docs=60, n_words=40, n_topics=3, seed=11)
    est = LatentDirichletAllocation(5, max_iter=3, random_state=0).fit(X)
    B = est._topics.sweep_B()
    assert B.ctypes.data % 64 == 0 and B.shape == (40, 8) and np.all(B[:, 5:] == 0)
    other = pickle.loads(pickle.dumps(est))
    assert other._topics.sweep_B().ctypes.data % 64 == 0
    np.testing.assert_array_equal(other._topics.sweep_B(), B)
    np.testing.assert_array_equal(other.transform(X), est.transform(X))


@pytest.mark.parametrize("K", [1, 3, 8, 20, 33, 100])
def test_word_topic_stats_bits_of_the_plain_sum(K):
    # out[w, k] = B[w, k] sum_i ratio_i t[doc_i, k] over w's entries in document order, each
    # product rounded, then added (no fused multiply-add): the AVX-512 rows (blocks of up to 32
    # topics held in registers) give the bits of this NumPy loop
    X, _ = _corpus(n_docs=40, n_words=30, seed=K)
    V = X.shape[1]
    rng = np.random.RandomState(K)
    ratio, t = rng.rand(X.nnz), rng.rand(X.shape[0], K)
    B = _lda.pad_topics(rng.rand(V, K))
    pattern = _lda.word_major_pattern(X.indptr, X.indices, V)
    word_ptr, word_pos, word_doc = pattern
    start = rng.rand(V, K)
    expected = start.copy()
    for w in range(V):
        for i in range(word_ptr[w], word_ptr[w + 1]):
            expected[w] = expected[w] + ratio[word_pos[i]] * t[word_doc[i]]
    got = start.copy()
    _lda.word_topic_stats(*pattern, ratio, t, B, got, 1, accumulate=True, scale=False)
    np.testing.assert_array_equal(got, expected)
    expected = np.zeros((V, K))
    for w in range(V):
        for i in range(word_ptr[w], word_ptr[w + 1]):
            expected[w] = expected[w] + ratio[word_pos[i]] * t[word_doc[i]]
    expected *= B[:, :K]
    for threads in (1, 2):
        got = np.empty((V, K))
        _lda.word_topic_stats(*pattern, ratio, t, B, got, threads)
        np.testing.assert_array_equal(got, expected)


def test_word_major_pattern_is_a_stable_transpose():
    X, _ = _corpus(n_docs=30, n_words=12, seed=5)
    word_ptr, word_pos, word_doc = _lda.word_major_pattern(X.indptr[10:21], X.indices, 12)
    doc_of = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    expected_pos = [p for w in range(12)
                    for p in range(X.indptr[10], X.indptr[20]) if X.indices[p] == w]
    assert word_ptr[-1] == X.indptr[20] - X.indptr[10]
    np.testing.assert_array_equal(word_pos, expected_pos)
    np.testing.assert_array_equal(word_doc, doc_of[expected_pos] - 10)
    np.testing.assert_array_equal(np.diff(word_ptr),
                                  np.bincount(X.indices[X.indptr[10]:X.indptr[20]],
                                              minlength=12))


# ---------------------------------------------------------------- scikit-learn parity
def _sk():
    import sklearn.decomposition

    return sklearn.decomposition


def test_initial_topics_are_sklearns_draws():
    skd = _sk()
    X, _ = _corpus()
    sk = skd.LatentDirichletAllocation(4, max_iter=0, random_state=5).fit(X)
    vb = LatentDirichletAllocation(4, max_iter=0, random_state=5).fit(X)
    assert np.array_equal(vb.components_, sk.components_)
    # and so does the gamma draw that follows (the first E-step's initialisation)
    rs_sk, rs_vb = sk.random_state_, vb.random_state_
    assert np.array_equal(rs_sk.gamma(100.0, 0.01, (3, 4)), rs_vb.gamma(100.0, 0.01, (3, 4)))


@pytest.mark.parametrize("learning_method", ["batch", "online"])
def test_parity_with_sklearn_same_arithmetic(learning_method):
    """With scikit-learn's approximate digamma the arithmetic is the same: 1e-6 relative."""
    skd = _sk()
    X, _ = _corpus()
    kw = dict(learning_method=learning_method, max_iter=5, batch_size=64, random_state=1)
    sk = skd.LatentDirichletAllocation(4, **kw).fit(X)
    vb = LatentDirichletAllocation(4, n_threads=2, **kw)
    vb._digamma = "sklearn"
    vb.fit(X)
    np.testing.assert_allclose(vb.components_, sk.components_, rtol=1e-6)
    np.testing.assert_allclose(vb.exp_dirichlet_component_, sk.exp_dirichlet_component_,
                               rtol=1e-6)
    np.testing.assert_allclose(vb.bound_, sk.bound_, rtol=1e-6)
    np.testing.assert_allclose(vb.perplexity(X), sk.perplexity(X), rtol=1e-6)
    np.testing.assert_allclose(vb.score(X), sk.score(X), rtol=1e-6)
    np.testing.assert_allclose(vb.transform(X), sk.transform(X), rtol=1e-6, atol=1e-12)
    assert vb.n_iter_ == sk.n_iter_ and vb.n_batch_iter_ == sk.n_batch_iter_


def test_parity_with_sklearn_accurate_digamma():
    """The default (exact digamma) differs from scikit-learn only by its digamma's error."""
    skd = _sk()
    X, _ = _corpus()
    sk = skd.LatentDirichletAllocation(4, max_iter=5, random_state=1).fit(X)
    vb = LatentDirichletAllocation(4, max_iter=5, random_state=1)
    vb.fit(X)
    np.testing.assert_allclose(vb.components_, sk.components_, rtol=2e-5)
    np.testing.assert_allclose(vb.perplexity(X), sk.perplexity(X), rtol=1e-6)


def test_parity_with_sklearn_partial_fit_and_evaluate_every():
    skd = _sk()
    X, _ = _corpus(n_docs=150)
    kw = dict(batch_size=50, random_state=2, total_samples=1000)
    sk = skd.LatentDirichletAllocation(4, **kw)
    vb = LatentDirichletAllocation(4, **kw)
    vb._digamma = "sklearn"
    for _ in range(2):
        sk.partial_fit(X)
        vb.partial_fit(X)
    np.testing.assert_allclose(vb.components_, sk.components_, rtol=1e-6)
    np.testing.assert_allclose(vb.perplexity(X, sub_sampling=True),
                               sk._perplexity_precomp_distr(X, sub_sampling=True), rtol=1e-6)
    kw = dict(max_iter=30, evaluate_every=2, perp_tol=0.5, random_state=0)
    sk = skd.LatentDirichletAllocation(4, **kw).fit(X)
    vb = LatentDirichletAllocation(4, **kw)
    vb._digamma = "sklearn"
    vb.fit(X)
    assert vb.n_iter_ == sk.n_iter_ < 30
    assert vb.converged_ and np.isfinite(vb.lower_bound_)
    np.testing.assert_allclose(vb.components_, sk.components_, rtol=1e-6)


# ---------------------------------------------------------------- estimator behaviour
@pytest.mark.parametrize("method", ["mean_field", "variational_em"])
def test_identical_for_any_thread_count(method, monkeypatch):
    monkeypatch.setattr(lda_module, "_MIN_NNZ_PER_THREAD", 1)  # really use the threads
    X, _ = _corpus(n_docs=300)
    fits = [LatentDirichletAllocation(4, max_iter=4, method=method, random_state=0,
                                      n_threads=t).fit(X) for t in (1, 2)]
    assert np.array_equal(fits[0].components_, fits[1].components_)
    assert np.array_equal(fits[0].lower_bounds_, fits[1].lower_bounds_)
    assert fits[0].bound_ == fits[1].bound_
    assert np.array_equal(fits[0].transform(X), fits[1].transform(X))


@pytest.mark.parametrize("method", ["mean_field", "variational_em"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_bound_never_decreases(method, seed):
    # monotone=True: every pass keeps, per document, the better of the new and the previous
    # gamma, and the guard (set to raise on a relative decrease of 1e-10) never fires at the
    # default mean_change_tol.
    X, _ = _corpus(n_docs=300, seed=4 + seed)
    est = LatentDirichletAllocation(4, max_iter=15, method=method, random_state=seed,
                                    monotone=True)
    with vbfast.config_context(bound_decrease="raise"):
        est.fit(X)
    lb = est.lower_bounds_
    assert lb.shape == (15,) and est.iteration_times_.shape == (15,)
    assert np.all(np.diff(lb) >= -1e-10 * np.abs(lb[1:]))
    assert est.n_iter_ == 15 and est.converged_ is False and np.isfinite(est.lower_bound_)


@pytest.mark.parametrize("method", ["mean_field", "variational_em"])
def test_batch_bound_with_random_restarts_rises_when_e_step_converges(method):
    # The default (scikit-learn's random restart of every E-step): with a tight E-step the
    # bound still rises to within 1e-7 relative on this corpus (no guarantee: a restart can
    # end in a worse local optimum).
    X, _ = _corpus(n_docs=300, seed=4)
    est = LatentDirichletAllocation(4, max_iter=15, method=method, mean_change_tol=1e-5,
                                    random_state=0).fit(X)
    lb = est.lower_bounds_
    assert np.all(np.diff(lb) >= -1e-7 * np.abs(lb[1:]))


def test_keep_better_rule_in_the_pass():
    # A document whose previous gamma scores higher keeps it; the pass's bound is the sum of
    # the per-document maxima (checked against two plain passes).
    X, _ = _corpus(n_docs=60, n_words=30, n_topics=3, seed=6)
    rng = np.random.RandomState(0)
    B = np.ascontiguousarray(rng.dirichlet(np.ones(30), 3).T)
    logB = np.log(B)
    gamma0 = rng.gamma(100.0, 0.01, (60, 3))
    gamma_prev = rng.gamma(2.0, 5.0, (60, 3))

    def one_pass(gamma, max_iter, prev=None):
        bnd = np.empty((60, 2))  # one group per document: per-document terms
        _lda.lda_pass(X.indptr, X.indices, X.data, B, logB, gamma, 0.3, max_iter, 1e-3, EPS,
                      np.empty(0), np.empty((0, 0)), bnd, 1, False, prev)
        return bnd.sum(axis=1)

    g_new = gamma0.copy()
    new_terms = one_pass(g_new, 2)  # few sweeps: some documents end below gamma_prev
    prev_terms = one_pass(gamma_prev.copy(), 0)
    g = gamma0.copy()
    terms = one_pass(g, 2, gamma_prev)
    keep = prev_terms > new_terms
    assert 0 < keep.sum() < 60
    np.testing.assert_array_equal(g[keep], gamma_prev[keep])
    np.testing.assert_array_equal(g[~keep], g_new[~keep])
    np.testing.assert_allclose(terms, np.maximum(new_terms, prev_terms), rtol=1e-13)


def test_variational_em_point_topics_and_recovery():
    X, topics = _corpus(n_docs=400, n_words=40, n_topics=3, doc_len=100, seed=5,
                        concentration=0.05)
    est = LatentDirichletAllocation(3, method="variational_em", max_iter=60,
                                    random_state=0).fit(X)
    beta = est.exp_dirichlet_component_
    np.testing.assert_allclose(beta.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(beta, est.components_ / est.components_.sum(1)[:, None])
    # Hungarian matching of fitted to true topics on the L1 distance
    for fitted in (beta, LatentDirichletAllocation(3, max_iter=60, random_state=0)
                   .fit(X).components_):
        fitted = fitted / fitted.sum(1, keepdims=True)
        cost = np.abs(topics[:, None, :] - fitted[None, :, :]).sum(-1)
        rows, cols = linear_sum_assignment(cost)
        assert cost[rows, cols].max() < 0.15


def test_dense_sparse_and_integer_input_agree():
    X, _ = _corpus(n_docs=80)
    a = LatentDirichletAllocation(4, max_iter=3, random_state=0).fit(X)
    b = LatentDirichletAllocation(4, max_iter=3, random_state=0).fit(X.toarray().astype(int))
    c = LatentDirichletAllocation(4, max_iter=3, random_state=0).fit(sp.csc_matrix(X))
    assert np.array_equal(a.components_, b.components_)
    assert np.array_equal(a.components_, c.components_)
    f = LatentDirichletAllocation(4, max_iter=3, random_state=0).fit(X.astype(np.float32))
    assert f.components_.dtype == np.float32
    assert f.transform(X.astype(np.float32)).dtype == np.float32
    np.testing.assert_allclose(f.components_, a.components_, rtol=1e-5)


def test_fit_transform_equals_transform():
    X, _ = _corpus(n_docs=80)
    est = LatentDirichletAllocation(4, max_iter=3, random_state=0)
    Y = est.fit_transform(X)
    np.testing.assert_array_equal(Y, est.transform(X))
    np.testing.assert_allclose(Y.sum(1), 1.0)


def test_empty_documents_get_the_prior():
    X, _ = _corpus(n_docs=50)
    X = X.tolil()
    X[[3, 10]] = 0
    X = X.tocsr()
    est = LatentDirichletAllocation(4, doc_topic_prior=0.2, max_iter=3, random_state=0).fit(X)
    np.testing.assert_allclose(est.transform(X)[[3, 10]], 0.25)
    np.testing.assert_allclose(est.transform(X, normalize=False)[[3, 10]], 0.2)
    assert np.isfinite(est.score(X)) and np.isfinite(est.bound_)
    # a corpus of empty documents still fits: topics stay at the prior
    Z = sp.csr_matrix((5, 6))
    est = LatentDirichletAllocation(2, max_iter=2, random_state=0).fit(Z)
    np.testing.assert_allclose(est.components_, 0.5)
    np.testing.assert_allclose(est.transform(Z), 0.5)


@pytest.mark.parametrize("bad,match", [
    (np.array([[1.0, -1.0], [0.0, 2.0]]), "Negative values"),
    (np.array([[1.0, np.nan], [0.0, 2.0]]), "NaN"),
    (sp.csr_matrix(np.array([[1.0, np.inf], [0.0, 2.0]])), "infinity"),
    (np.zeros((3, 0)), "0 feature"),
    (np.zeros((0, 3)), "minimum of 1"),
    (np.array([["a", "b"]]), "numeric"),
    (np.ones(3), "2-D"),
])
@pytest.mark.parametrize("params", [dict(max_iter=1),
                                    dict(method="gibbs", burn_in=1, n_draws=1)])
def test_bad_input(bad, match, params):
    # the same validation for every method (the sampler's own, integer counts, is tested in
    # test_lda_gibbs.py)
    with pytest.raises(ValueError, match=match):
        LatentDirichletAllocation(2, **params).fit(bad)


def test_bad_parameters_and_fitted_checks():
    X, _ = _corpus(n_docs=20)
    with pytest.raises(ValueError, match="learning_method"):
        LatentDirichletAllocation(learning_method="sgd").fit(X)
    with pytest.raises(ValueError, match="method"):
        LatentDirichletAllocation(method="slice").fit(X)
    with pytest.raises(ValueError, match="n_components"):
        LatentDirichletAllocation(0).fit(X)
    with pytest.raises(ValueError, match="doc_topic_prior"):
        LatentDirichletAllocation(2, doc_topic_prior=-1.0).fit(X)
    with pytest.raises(NotFittedError):
        LatentDirichletAllocation(2).transform(X)
    est = LatentDirichletAllocation(2, max_iter=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="features"):
        est.transform(X[:, :10])
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(X[:, :10])
    with pytest.raises(ValueError, match="Negative values"):
        est.transform(-X)
    assert est.get_params()["n_components"] == 2
    assert "n_components=2" in repr(est.set_params(max_iter=3))
    assert vbfast.LatentDirichletAllocation is LatentDirichletAllocation


# ---------------------------------------------------------------- text helper
def test_count_matrix():
    docs = [["b", "a", "b"], ["c", "b"], [], ["a", "d", "d", "d"]]
    X, vocab = count_matrix(docs)
    assert vocab == ["b", "d", "a", "c"]  # by count, ties by first appearance
    assert sp.isspmatrix_csr(X) and X.shape == (4, 4)
    np.testing.assert_array_equal(X.toarray(), [[2, 0, 1, 0], [1, 0, 0, 1], [0, 0, 0, 0],
                                                [0, 3, 1, 0]])
    X2, vocab2 = count_matrix(docs, min_count=2)
    assert vocab2 == ["b", "d", "a"]
    np.testing.assert_array_equal(X2.toarray(), X.toarray()[:, :3])
    X3, vocab3 = count_matrix([["d", "zz", "a"]], vocabulary=vocab)
    assert vocab3 == vocab
    np.testing.assert_array_equal(X3.toarray(), [[0, 1, 1, 0]])
    with pytest.raises(TypeError):
        count_matrix(["a b c"])
    with pytest.raises(ValueError, match="min_count"):
        count_matrix(docs, min_count=0)
    with pytest.raises(ValueError, match="duplicate"):
        count_matrix(docs, vocabulary=["a", "a"])
    # from tokens to topics
    est = LatentDirichletAllocation(2, max_iter=2, random_state=0).fit(X)
    assert est.transform(X).shape == (4, 2)


# ---------------------------------------------------------------- a real corpus
def _lee_corpus():
    """gensim's test corpus lee_background.cor (300 news articles), found without importing
    gensim (only its data file is used)."""
    import importlib.util
    import os
    import re

    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("gensim (a test dependency, for its data only) is not installed; "
                    'pip install ".[test]"')
    path = os.path.join(list(spec.submodule_search_locations)[0], "test", "test_data",
                        "lee_background.cor")
    if not os.path.exists(path):
        pytest.fail(f"gensim's test corpus is missing: {path}")
    stop = set("the a an and or of to in on for is are was were be been it its this that with "
               "as at by from has have had he she they we you i not but said will would his "
               "her their there which who about after also more than one two".split())
    with open(path, encoding="utf-8") as f:
        docs = [[w for w in re.findall(r"[a-z]+", line.lower()) if len(w) > 2 and w not in stop]
                for line in f if line.strip()]
    return docs


def test_lee_corpus_heldout_perplexity_not_worse_than_sklearn():
    skd = _sk()
    docs = _lee_corpus()
    train, test = docs[:250], docs[250:]
    X, vocab = count_matrix(train, min_count=3)
    Xt, _ = count_matrix(test, vocabulary=vocab)
    kw = dict(n_components=8, max_iter=8, random_state=0)
    vb = LatentDirichletAllocation(**kw).fit(X)
    sk = skd.LatentDirichletAllocation(**kw).fit(X)
    p_vb, p_sk = vb.perplexity(Xt), sk.perplexity(Xt)
    assert np.isfinite(p_vb) and p_vb <= p_sk * (1 + 1e-4)
    top = [[vocab[j] for j in np.argsort(-row)[:5]] for row in vb.components_]
    assert all(len(set(t)) == 5 for t in top)


# ============================================================ scikit-learn drop-in (issue 18)
def test_get_feature_names_out():
    X = _corpus(n_docs=40, n_words=20)[0]
    lda = LatentDirichletAllocation(3, max_iter=2, random_state=0)
    with pytest.raises(NotFittedError):
        lda.get_feature_names_out()
    lda.fit(X)
    names = lda.get_feature_names_out()
    assert names.dtype == object
    assert list(names) == [f"latentdirichletallocation{i}" for i in range(3)]
    assert list(lda.get_feature_names_out([f"w{j}" for j in range(20)])) == list(names)
    with pytest.raises(ValueError, match="input_features should have length"):
        lda.get_feature_names_out(["a", "b"])


def test_pipeline_get_feature_names_out():
    pytest.importorskip("sklearn")
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.pipeline import make_pipeline

    docs = ["apple banana apple", "goal match goal", "banana apple pear", "match goal team"]
    pipe = make_pipeline(CountVectorizer(),
                         LatentDirichletAllocation(2, max_iter=2, random_state=0)).fit(docs)
    assert list(pipe.get_feature_names_out()) == ["latentdirichletallocation0",
                                                  "latentdirichletallocation1"]


def test_set_output_pandas():
    pd = pytest.importorskip("pandas")
    X = _corpus(n_docs=40, n_words=20)[0]
    dense = X.toarray() if sp.issparse(X) else np.asarray(X)
    frame = pd.DataFrame(dense, index=[f"doc{i}" for i in range(len(dense))])
    lda = LatentDirichletAllocation(3, max_iter=2, random_state=0)
    expected = lda.fit_transform(X)
    assert isinstance(expected, np.ndarray)  # the default is the array
    assert lda.set_output(transform="pandas") is lda
    for out in (lda.transform(frame), lda.fit_transform(frame)):
        assert isinstance(out, pd.DataFrame)
        assert list(out.columns) == list(lda.get_feature_names_out())
        assert list(out.index) == list(frame.index)
        np.testing.assert_allclose(out.to_numpy(), expected, rtol=1e-12)
    assert isinstance(lda.transform(X), pd.DataFrame)  # sparse input: a default index
    assert lda.set_output(transform=None) is lda  # None changes nothing
    assert isinstance(lda.transform(X), pd.DataFrame)
    lda.set_output(transform="default")
    assert isinstance(lda.transform(X), np.ndarray)
    with pytest.raises(ValueError, match="transform must be one of"):
        lda.set_output(transform="arrow")


def test_set_output_follows_sklearn_config_and_clone():
    pd = pytest.importorskip("pandas")
    sklearn = pytest.importorskip("sklearn")
    from sklearn.base import clone

    X = _corpus(n_docs=40, n_words=20)[0]
    lda = LatentDirichletAllocation(3, max_iter=2, random_state=0).fit(X)
    with sklearn.config_context(transform_output="pandas"):
        assert isinstance(lda.transform(X), pd.DataFrame)
    assert isinstance(lda.transform(X), np.ndarray)
    lda.set_output(transform="pandas")
    assert isinstance(clone(lda).fit(X).transform(X), pd.DataFrame)


def test_n_jobs_is_an_alias_of_n_threads():
    pytest.importorskip("sklearn")
    from sklearn.base import clone

    X = _corpus(n_docs=40, n_words=20)[0]
    ref = LatentDirichletAllocation(3, max_iter=3, random_state=0, n_threads=2).fit(X)
    lda = LatentDirichletAllocation(3, max_iter=3, random_state=0, n_jobs=2)
    assert lda.get_params()["n_jobs"] == 2
    assert clone(lda).n_jobs == 2
    np.testing.assert_array_equal(lda.fit(X).components_, ref.components_)
    lda.set_params(n_jobs=-1).fit(X)  # joblib's "all cores"
    np.testing.assert_array_equal(lda.transform(X), ref.transform(X))
    gibbs = LatentDirichletAllocation(3, method="gibbs", n_draws=3, burn_in=2,
                                      random_state=0, n_jobs=-1).fit(X.astype(np.int64))
    assert gibbs.components_.shape == (3, 20)
    with pytest.raises(ValueError, match="n_jobs is an alias of n_threads"):
        LatentDirichletAllocation(3, n_threads=1, n_jobs=2).fit(X)
    with pytest.raises(ValueError, match="n_jobs must be a non-zero int"):
        LatentDirichletAllocation(3, n_jobs=0).fit(X)


@pytest.mark.parametrize("Kp", [4, 8, 20, 100, 132])
def test_word_dots_are_the_one_word_dots_bit_for_bit(Kp):
    # The pass takes a document's dot products t . B_w (for the final ratios and the bound)
    # eight words at a time (vbf_dots: AVX2 without FMA, or the baseline); each must be the
    # bits of the one-word vbf_dot (baseline multiplies and adds, four lanes, vbf_hsum), so
    # that the ratios, statistics and bound are unchanged. 1 to 21 words cover the groups of
    # eight and the tail; values spread over decades so that rounding shows.
    rng = np.random.RandomState(Kp)
    B = np.exp(rng.normal(0.0, 6.0, (50, Kp)))
    t = np.exp(rng.normal(0.0, 6.0, Kp))
    for n in (1, 7, 8, 9, 16, 21):
        ids = rng.randint(0, 50, n).astype(np.int64)
        dots, each = _lda._word_dots(B, ids, t)
        assert np.array_equal(dots, each)
        np.testing.assert_allclose(dots, B[ids] @ t, rtol=1e-13)
    with pytest.raises(ValueError, match="Kp"):
        _lda._word_dots(B, np.zeros(1, np.int64), t[:-1])
