"""Online LDA: the lazy topics of a stochastic step (``OnlineTopics``), the mini-batch passes
over each mini-batch's own vocabulary (``MiniBatchData``), and their kernels, against the
dense NumPy update and scikit-learn."""
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import gammaln, psi

from vbfast._core import threads as threads_module
from vbfast.topics import _lda, _lda_online
from vbfast.topics import lda as lda_module
from vbfast.topics.lda import LatentDirichletAllocation, OnlineTopics, Topics


def _corpus(n_docs=120, n_words=300, n_topics=4, doc_len=30, seed=0):
    """Short documents over a large vocabulary: each mini-batch misses many words."""
    rng = np.random.RandomState(seed)
    topics = rng.dirichlet(np.full(n_words, 0.05), n_topics)
    theta = rng.dirichlet(np.full(n_topics, 0.3), n_docs)
    counts = np.array([rng.multinomial(doc_len, th @ topics) for th in theta], dtype=float)
    return sp.csr_matrix(counts)


def _lam(K=5, V=40, seed=0):
    return np.random.RandomState(seed).gamma(2.0, 1.0, (K, V))


# ---------------------------------------------------------------- kernels vs NumPy
def _gather(mu, words, scale, shift, totals, mean_field, fast=False, n_threads=1, extra=0):
    """gather_topics into fresh buffers with ``extra`` rows more than the words (kept as
    they were: NaN, and the padding columns zero)."""
    K = mu.shape[1]
    Kp = (K + 3) // 4 * 4
    B = _lda.pad_topics(np.zeros((words.size + extra, K)))
    B[:, :K] = np.nan
    log_B = np.full((words.size + extra, K), np.nan)
    topic_max = np.full(K, np.nan)
    _lda_online.gather_topics(mu, words, scale, shift, totals, mean_field, fast, B, log_B,
                              topic_max, n_threads)
    assert B.shape[1] == Kp and not B[:, K:].any() and B.ctypes.data % 64 == 0
    assert np.isnan(B[words.size:, :K]).all() and np.isnan(log_B[words.size:]).all()
    return B[:words.size], log_B[:words.size], topic_max


@pytest.fixture(params=[True, False], ids=["eight_lanes_if_cpu", "four_lanes"])
def lanes(request):
    previous = _lda_online._set_eight_lanes(request.param)
    yield request.param
    _lda_online._set_eight_lanes(previous)


@pytest.mark.parametrize("K", [6, 8, 1])
@pytest.mark.parametrize("fast", [False, True])
def test_gather_topics_are_the_dense_topics_columns(fast, K, lanes):
    lam = _lam(K=K)
    lam[0, 3] = 1e-3  # psi far below 0 and a small lambda's recurrence
    lam[-1, 17] = 3e4
    words = np.array([0, 3, 4, 17, 39], dtype=np.int64)
    scale, shift = 0.37, 0.21
    mu = np.ascontiguousarray(((lam - shift) / scale).T)
    lam = scale * mu.T + shift  # exactly what the kernel sees
    B, log_B, topic_max = _gather(mu, words, scale, shift, lam.sum(axis=1), True, fast,
                                  extra=3)
    elog = psi(lam) - psi(lam.sum(axis=1))[:, None]
    np.testing.assert_allclose(log_B, elog[:, words].T, rtol=1e-12, atol=1e-7 if fast else 0)
    np.testing.assert_allclose(B[:, :K], np.exp(log_B), rtol=1e-14)
    np.testing.assert_array_equal(topic_max, B[:, :K].max(axis=0))
    # the same values as the whole topics' (Topics, from the pass's own functions; their
    # totals summed in another order)
    dense = Topics(lam, True, 0.1, fast, 1)
    np.testing.assert_allclose(B[:, :K], dense.exp_beta[:, words].T, rtol=1e-13)
    np.testing.assert_allclose(log_B, dense.elog_beta[:, words].T, rtol=1e-13)


def test_gather_topics_point_topics():
    lam = _lam()
    words = np.array([1, 2, 30], dtype=np.int64)
    B, log_B, _ = _gather(np.ascontiguousarray(lam.T), words, 1.0, 0.0, lam.sum(axis=1),
                          False)
    beta = lam / lam.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(B[:, :5], beta[:, words].T, rtol=1e-15)
    np.testing.assert_allclose(log_B, np.log(beta[:, words].T), rtol=1e-14)


@pytest.mark.parametrize("K", [20, 7])
def test_gather_topics_identical_for_any_thread_count_and_lanes(K):
    """Chunks of 512 words in parallel: 1, 2 and 3 threads and both lane counts give the
    same bits (1,300 words: three chunks, the last one partial)."""
    rng = np.random.RandomState(5)
    mu = rng.gamma(0.3, 2.0, (2000, K)) + 0.01
    words = np.sort(rng.choice(2000, 1300, replace=False)).astype(np.int64)
    totals = mu.sum(axis=0)
    results = []
    for eight in (True, False):
        previous = _lda_online._set_eight_lanes(eight)
        try:
            results += [_gather(mu, words, 1.0, 0.0, totals, True, n_threads=t)
                        for t in (1, 2, 3)]
        finally:
            _lda_online._set_eight_lanes(previous)
    for got in results[1:]:
        for a, b in zip(got, results[0]):
            np.testing.assert_array_equal(a, b)


def test_gather_topics_refuse_bad_input():
    mu = np.ones((10, 3))
    B, log_B, topic_max = _lda.pad_topics(np.zeros((4, 3))), np.empty((4, 3)), np.empty(3)
    with pytest.raises(ValueError, match="out of range"):
        _lda_online.gather_topics(mu, np.array([10], dtype=np.int64), 1.0, 0.0, np.ones(3),
                                  True, False, B, log_B, topic_max)
    with pytest.raises(ValueError, match="positive"):
        _lda_online.gather_topics(mu, np.array([1], dtype=np.int64), 1.0, 0.0, np.zeros(3),
                                  True, False, B, log_B, topic_max)
    with pytest.raises(ValueError, match="B must be"):
        _lda_online.gather_topics(mu, np.arange(5, dtype=np.int64), 1.0, 0.0, np.ones(3),
                                  True, False, B, log_B, topic_max)
    with pytest.raises(ValueError, match="B must be"):
        _lda_online.gather_topics(mu, np.arange(2, dtype=np.int64), 1.0, 0.0, np.ones(3),
                                  True, False, np.zeros((4, 3)), log_B, topic_max)
    with pytest.raises(ValueError, match="topic_max"):
        _lda_online.gather_topics(mu, np.arange(2, dtype=np.int64), 1.0, 0.0, np.ones(3),
                                  True, False, B, log_B, np.empty(2))
    with pytest.raises(ValueError, match="n_threads"):
        _lda_online.gather_topics(mu, np.arange(2, dtype=np.int64), 1.0, 0.0, np.ones(3),
                                  True, False, B, log_B, topic_max, 0)
    topic_max[:] = 5.0
    _lda_online.gather_topics(mu, np.zeros(0, dtype=np.int64), 1.0, 0.0, np.ones(3), True,
                              False, B, log_B, topic_max)
    assert np.all(topic_max == 0)


def test_online_fit_same_bits_with_four_or_eight_lanes():
    X = _corpus(n_docs=60)
    fits = []
    for eight in (True, False):
        previous = _lda_online._set_eight_lanes(eight)
        try:
            fits.append(LatentDirichletAllocation(4, learning_method="online", batch_size=16,
                                                  max_iter=2, random_state=0).fit(X))
        finally:
            _lda_online._set_eight_lanes(previous)
    np.testing.assert_array_equal(fits[0].components_, fits[1].components_)
    np.testing.assert_array_equal(fits[0].lower_bounds_, fits[1].lower_bounds_)


@pytest.mark.parametrize("mean_field", [True, False])
def test_topic_term_word_major_is_the_topics_term(mean_field):
    lam = _lam(K=7, V=50, seed=3)
    eta = 0.3
    got = _lda.topic_term_word_major(np.ascontiguousarray(lam.T), lam.sum(axis=1), eta,
                                     mean_field)
    if mean_field:
        elog = psi(lam) - psi(lam.sum(axis=1))[:, None]
        expected = (np.sum((eta - lam) * elog) + np.sum(gammaln(lam) - gammaln(eta))
                    + np.sum(gammaln(eta * 50) - gammaln(lam.sum(axis=1))))
    else:
        expected = np.sum(eta * np.log(lam / lam.sum(axis=1, keepdims=True)))
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    np.testing.assert_allclose(got, Topics(lam, mean_field, eta, False, 1).topic_term(),
                               rtol=1e-13)


@pytest.mark.parametrize("mean_field", [True, False])
def test_topic_term_word_major_same_bits_for_any_thread_count(mean_field):
    # V = 1,300 words: three chunks of the parallel sum (512 words each), added in order
    lam = _lam(K=6, V=1300, seed=4)
    args = (np.ascontiguousarray(lam.T), lam.sum(axis=1), 0.2, mean_field)
    one = _lda.topic_term_word_major(*args, n_threads=1)
    assert _lda.topic_term_word_major(*args, n_threads=2) == one
    assert _lda.topic_term_word_major(*args, n_threads=3) == one
    np.testing.assert_allclose(one, Topics(lam, mean_field, 0.2, False, 1).topic_term(),
                               rtol=1e-13)
    with pytest.raises(ValueError, match="n_threads"):
        _lda.topic_term_word_major(*args, n_threads=0)


def test_add_rows():
    mu = np.arange(12.0).reshape(4, 3)
    totals = mu.sum(axis=0)
    rows = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    _lda.add_rows(mu, np.array([3, 1], dtype=np.int64), rows, 0.5, totals)
    expected = np.arange(12.0).reshape(4, 3)
    expected[3] += 0.5 * rows[0]
    expected[1] += 0.5 * rows[1]
    np.testing.assert_array_equal(mu, expected)
    np.testing.assert_allclose(totals, expected.sum(axis=0), rtol=1e-15)


def _online_topics(topics):
    """``OnlineTopics`` of given ``Topics`` (a continued model's), accurate digamma, 1 thread."""
    return OnlineTopics(topics.lam, topics.mean_field, topics.eta, False, 1, topics)


# ---------------------------------------------------------------- the lazy step
@pytest.mark.parametrize("mean_field", [True, False])
@pytest.mark.parametrize("decay", [0.7, 0.0])
def test_lazy_steps_equal_the_dense_update(mean_field, decay):
    """lambda <- (1 - rho) lambda + rho (eta + D/|b| S) step after step, S on a few words; with
    decay 0 (rho = 1) every step takes the dense path."""
    rng = np.random.RandomState(1)
    K, V, eta = 4, 60, 0.25
    lam = rng.gamma(100.0, 0.01, (K, V))
    online = _online_topics(Topics(lam, mean_field, eta, False, 1))
    dense = lam.copy()
    for step in range(1, 30):
        words = np.sort(rng.choice(V, size=rng.randint(1, 12), replace=False)).astype(np.int64)
        rho = (10.0 + step) ** -decay
        S = rng.gamma(1.0, 1.0, (words.size, K))
        # the pass's inputs at those words, before the step, are the dense topics' columns
        B, log_B, topic_max = online.at_words(words)
        want = Topics(dense, mean_field, eta, False, 1)
        np.testing.assert_allclose(B[:, :K], want.exp_beta[:, words].T, rtol=1e-11)
        np.testing.assert_allclose(topic_max, want.exp_beta[:, words].max(axis=1), rtol=1e-11)
        online.step(words, S, rho, 7.0)
        suff = np.zeros((K, V))
        suff[:, words] = S.T
        dense = dense * (1 - rho) + rho * (eta + 7.0 * suff)
        if step % 10 == 0:  # an epoch's end: the bound's topic term, lambda folded
            np.testing.assert_allclose(online.topic_term(),
                                       Topics(dense, mean_field, eta, False, 1).topic_term(),
                                       rtol=1e-11)
            assert online.scale == 1.0 and online.shift == 0.0
    np.testing.assert_allclose(online.topics().lam, dense, rtol=1e-12)
    np.testing.assert_allclose(online.totals(), dense.sum(axis=1), rtol=1e-12)


def test_online_fit_builds_its_topics_once(monkeypatch):
    """A fresh online fit keeps its random initial lambda word-major (no K x V E[log beta] of
    it): ``Topics`` is built once, for the fitted attributes."""
    X = _corpus(n_docs=60)
    built = []
    init = Topics.__init__

    def counting_init(self, *args, **kwargs):
        built.append(1)
        init(self, *args, **kwargs)

    monkeypatch.setattr(Topics, "__init__", counting_init)
    vb = LatentDirichletAllocation(4, learning_method="online", batch_size=16, max_iter=2,
                                   random_state=0).fit(X)
    assert len(built) == 1
    assert np.isfinite(vb.lower_bounds_).all() and vb.components_.shape == (4, X.shape[1])


def test_lazy_topics_leave_the_given_topics_alone():
    lam = _lam()
    topics = Topics(lam, True, 0.1, False, 1)
    before = topics.lam.copy()
    online = _online_topics(topics)
    assert online.topics() is topics  # nothing changed yet: the same object
    online.step(np.array([2, 5], dtype=np.int64), np.ones((2, 5)), 0.5, 3.0)
    np.testing.assert_array_equal(topics.lam, before)
    assert online.topics() is not topics


# ---------------------------------------------------------------- estimator
def test_mini_batch_vocabulary_and_local_pass():
    X = _corpus(n_docs=40)
    data = lda_module.MiniBatchData(X, 4, 1, 16)
    for shard in data.shards():
        words, indptr, indices, counts, _ = data._batch(shard)
        start, stop = shard
        Xb = X[start:stop]
        np.testing.assert_array_equal(words, np.unique(Xb.indices))
        np.testing.assert_array_equal(words[indices], Xb.indices)
        np.testing.assert_array_equal(indptr, Xb.indptr)
        np.testing.assert_array_equal(counts, Xb.data)


@pytest.mark.parametrize("method", ["mean_field", "variational_em"])
def test_online_fit_equals_the_dense_passes(method):
    """The passes over each mini-batch's words give the statistics and bound terms of the pass
    over the whole vocabulary (B's other rows are never read)."""
    X = _corpus(n_docs=50)
    lam = _lam(K=4, V=X.shape[1], seed=2)
    topics = Topics(lam, method == "mean_field", 0.25, False, 1)
    online = _online_topics(topics)
    data = lda_module.MiniBatchData(X, 4, 1, 16)
    dense = lda_module.DocumentData(X, 4, 1, 16)
    for shard in data.shards():
        n = shard[1] - shard[0]
        gamma = np.random.RandomState(0).gamma(100.0, 0.01, (n, 4))
        words = data.vocabulary(shard)
        B, log_B, topic_max = online.at_words(words)
        got = data.run_pass(shard, {"B": B, "logB": log_B, "topic_max": topic_max,
                                    "gamma": gamma.copy(), "alpha": 0.25, "max_iter": 50,
                                    "tol": 1e-6, "fast": False, "stats": True,
                                    "gamma_prev": None, "words": words})
        want = dense.run_pass(shard, topics.pass_inputs(gamma.copy(), 0.25, 50, 1e-6, False,
                                                        True, True))
        want_word_topic = want.topic_word.T  # DocumentData's statistics are topic-major
        np.testing.assert_allclose(got.word_topic, want_word_topic[words], rtol=1e-12,
                                   atol=1e-300)
        assert not want_word_topic[np.setdiff1d(np.arange(X.shape[1]), words)].any()
        np.testing.assert_allclose(got.bound_terms, want.bound_terms, rtol=1e-12)


@pytest.mark.parametrize("learning_decay, evaluate_every", [(0.7, -1), (0.0, -1), (0.7, 1)])
def test_parity_with_sklearn_small_batches(learning_decay, evaluate_every):
    """Mini-batches of 7 short documents over 300 words (each sees a tenth of the vocabulary),
    the lazy topics against scikit-learn's dense update: the same arithmetic up to rounding
    (and with evaluate_every, the same perplexity checks stopping at the same iteration)."""
    import sklearn.decomposition as skd

    X = _corpus()
    kw = dict(learning_method="online", max_iter=6, batch_size=7, random_state=3,
              learning_decay=learning_decay, evaluate_every=evaluate_every, perp_tol=5.0)
    sk = skd.LatentDirichletAllocation(4, **kw).fit(X)
    vb = LatentDirichletAllocation(4, **kw)
    vb._digamma = "sklearn"
    vb.fit(X)
    np.testing.assert_allclose(vb.components_, sk.components_, rtol=1e-8)
    np.testing.assert_allclose(vb.exp_dirichlet_component_, sk.exp_dirichlet_component_,
                               rtol=1e-8)
    np.testing.assert_allclose(vb.bound_, sk.bound_, rtol=1e-9)
    np.testing.assert_allclose(vb.perplexity(X), sk.perplexity(X), rtol=1e-9)
    assert vb.n_batch_iter_ == sk.n_batch_iter_ and vb.n_iter_ == sk.n_iter_


@pytest.mark.parametrize("method", ["mean_field", "variational_em"])
def test_online_identical_for_any_thread_count(method, monkeypatch):
    monkeypatch.setattr(lda_module, "_MIN_NNZ_PER_THREAD", 1)  # really use the threads
    monkeypatch.setattr(lda_module, "_MIN_ENTRIES_PER_THREAD", 1)
    X = _corpus(n_docs=150)
    fits = [LatentDirichletAllocation(4, learning_method="online", batch_size=20, max_iter=3,
                                      method=method, random_state=0, n_threads=t).fit(X)
            for t in (1, 2)]
    assert np.array_equal(fits[0].components_, fits[1].components_)
    assert np.array_equal(fits[0].lower_bounds_, fits[1].lower_bounds_)
    assert fits[0].bound_ == fits[1].bound_


@pytest.mark.parametrize("method", ["mean_field", "variational_em"])
def test_partial_fit_stream_continues_bit_for_bit_after_pickling(method):
    X = _corpus(n_docs=90)
    kw = dict(batch_size=20, total_samples=1000, random_state=4, method=method)
    straight = LatentDirichletAllocation(4, **kw)
    straight.partial_fit(X[:45])
    resumed = pickle.loads(pickle.dumps(straight))
    straight.partial_fit(X[45:])
    resumed.partial_fit(X[45:])
    np.testing.assert_array_equal(resumed.components_, straight.components_)
    np.testing.assert_array_equal(resumed.lower_bounds_, straight.lower_bounds_)
    assert resumed.n_batch_iter_ == straight.n_batch_iter_ == 1 + 3 + 3



def test_vectorised_lgamma_against_scipy():
    x = np.concatenate([np.logspace(-289, 289, 4001), np.linspace(0.01, 20.0, 4001),
                        [1.0, 2.0, 0.5, 7.999999, 8.0, 8.000001]])
    expected = gammaln(x)
    err = np.abs(_lda.lgamma_vector(x) - expected) / np.maximum(1.0, np.abs(expected))
    assert err.max() < 2e-14


@pytest.mark.parametrize("extreme", [1e-300, 1e295])
def test_topic_term_word_major_outside_the_vectorised_range(extreme):
    """A word with a lambda outside (1e-290, 1e290) is summed by scipy's gammaln."""
    lam = _lam(K=5, V=20, seed=4)
    lam[2, 7] = extreme
    got = _lda.topic_term_word_major(np.ascontiguousarray(lam.T), lam.sum(axis=1), 0.2, True)
    # (with 1e295, terms of ~1e297 cancel: equal up to rounding of their size)
    np.testing.assert_allclose(got, Topics(lam, True, 0.2, False, 1).topic_term(), rtol=1e-13,
                               atol=1e-13 * abs(gammaln(extreme)))


@pytest.mark.parametrize("max_doc_update_iter", [100, 0])
def test_parity_with_sklearn_with_mini_batches_without_words(max_doc_update_iter):
    """A mini-batch of empty documents has an empty vocabulary: its documents' bound terms
    are still those of the dense pass (non-zero when gamma keeps its random start)."""
    import sklearn.decomposition as skd

    X = sp.vstack([sp.csr_matrix((10, 300)), _corpus(n_docs=30)]).tocsr()
    kw = dict(batch_size=5, total_samples=100, random_state=0,
              max_doc_update_iter=max_doc_update_iter)
    sk = skd.LatentDirichletAllocation(4, **kw)
    vb = LatentDirichletAllocation(4, **kw)
    vb._digamma = "sklearn"
    sk.partial_fit(X)
    vb.partial_fit(X)
    np.testing.assert_allclose(vb.components_, sk.components_, rtol=1e-8)
    assert np.isfinite(vb.lower_bounds_).all()
    # an empty mini-batch's pass: the bound terms of the dense pass over the whole vocabulary
    topics = Topics(_lam(K=4, V=300), True, 0.25, False, 1)
    data = lda_module.MiniBatchData(X, 4, 1, 5)
    dense = lda_module.DocumentData(X, 4, 1, 5)
    shard = data.shards()[0]
    gamma = np.random.RandomState(1).gamma(100.0, 0.01, (5, 4))
    B, log_B, topic_max = _online_topics(topics).at_words(data.vocabulary(shard))
    assert B.shape[0] == 0
    got = data.run_pass(shard, {"B": B, "logB": log_B, "topic_max": topic_max,
                                "gamma": gamma.copy(), "alpha": 0.25,
                                "max_iter": max_doc_update_iter, "tol": 1e-3, "fast": False,
                                "stats": True, "gamma_prev": None,
                                "words": data.vocabulary(shard)})
    want = dense.run_pass(shard, topics.pass_inputs(gamma.copy(), 0.25, max_doc_update_iter,
                                                    1e-3, False, True, True))
    np.testing.assert_allclose(got.bound_terms, want.bound_terms, rtol=1e-14, atol=1e-300)
    assert got.word_topic.shape == (0, 4)
    assert (got.bound_terms[1] != 0) == (max_doc_update_iter == 0)


def test_short_region_threads_follow_the_idle_cores(monkeypatch):
    """Mini-batch regions: the low threshold while the other cores are idle, the data-size
    rule while other threads are runnable or their count is unknown; this process counted as
    the threads of its widest region since the last snapshot."""
    running = {"n": 1}
    monkeypatch.setattr(threads_module, "available_cores", lambda: 4)
    monkeypatch.setattr(threads_module, "runnable_threads", lambda: running["n"])
    regions = threads_module.ShortRegionThreads(4, refresh=0.0)
    assert regions(15000, 20000, 2000, n_groups=2) == 2
    assert regions(3000, 20000, 2000) == 1
    assert regions(15000, 20000, 2000, n_groups=8) == 4  # idle: 7 by work, 8 groups, 4 cores
    running["n"] = 4 + 2  # after a region of 4 threads: two other threads running
    assert regions(15000, 20000, 2000, n_groups=8) == 2  # one core free besides ours
    running["n"] = 9
    assert regions(15000, 20000, 2000, n_groups=8) == 1  # busy: the data-size rule
    assert regions(50000, 20000, 2000, n_groups=8) == 2
    running["n"] = None
    assert regions(15000, 20000, 2000, n_groups=8) == 1
    assert threads_module.ShortRegionThreads(1, refresh=0.0)(10 ** 6, 20000, 2000) == 1
    monkeypatch.setattr(threads_module, "runnable_threads", lambda: 1 / 0)  # not re-read
    cached = threads_module.ShortRegionThreads(4, refresh=3600.0)
    cached._checked, cached._free = threads_module.time.monotonic(), 3
    assert cached(15000, 20000, 2000, n_groups=8) == 4


def test_online_fit_on_idle_cores_is_the_same_fit(monkeypatch):
    """With every core idle the mini-batch regions take several threads: the same bits."""
    X = _corpus(n_docs=150)
    kw = dict(learning_method="online", batch_size=40, max_iter=2, random_state=0)
    busy = LatentDirichletAllocation(4, n_threads=1, **kw).fit(X)
    monkeypatch.setattr(threads_module, "runnable_threads", lambda: 1)
    monkeypatch.setattr(lda_module, "_MIN_NNZ_PER_THREAD_IDLE", 1)
    monkeypatch.setattr(lda_module, "_MIN_ENTRIES_PER_THREAD_IDLE", 1)
    idle = LatentDirichletAllocation(4, n_threads=2, **kw).fit(X)
    np.testing.assert_array_equal(idle.components_, busy.components_)
    np.testing.assert_array_equal(idle.lower_bounds_, busy.lower_bounds_)
