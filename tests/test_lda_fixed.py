"""The batch pass's work outside the E-step (issue 17, ldafixed): the topic-word statistics
summed topic-major or document by document against the plain NumPy sum, bit for bit, for any
thread count; whole fits the same bits on either path and any thread count."""
import numpy as np
import pytest
import scipy.sparse as sp

from vbfast.topics import _lda
from vbfast.topics import lda as lda_module
from vbfast.topics.lda import LatentDirichletAllocation


def _counts(n_docs, n_words, seed, density=0.2):
    rng = np.random.RandomState(seed)
    X = sp.random(n_docs, n_words, density=density, random_state=rng, format="csr")
    X.data = np.ceil(X.data * 5)
    X.sum_duplicates()
    return X


def _plain_sums(X, start, stop, ratio, t, V):
    """(V, K) sum over the entries of each word, documents start..stop-1 in order, of
    ratio_p t_d, each product rounded, then added: the order every kernel must keep."""
    out = np.zeros((V, t.shape[1]))
    for d in range(start, stop):
        for p in range(X.indptr[d], X.indptr[d + 1]):
            out[X.indices[p]] = out[X.indices[p]] + ratio[p] * t[d - start]
    return out


@pytest.mark.parametrize("K", [1, 3, 8, 20, 33])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_word_topic_sums_topic_major_and_by_document_bits(K, index_dtype):
    # documents 5..44 of 50 (indptr a slice: absolute positions), 150 words (three groups of
    # the topic-major kernel's 64 words, the last one short), some words without entries
    dense = _counts(50, 150, seed=K).toarray()
    dense[:, [7, 70, 149]] = 0.0
    X = sp.csr_matrix(dense)
    X.indptr, X.indices = X.indptr.astype(index_dtype), X.indices.astype(index_dtype)
    V, start, stop = X.shape[1], 5, 45
    rng = np.random.RandomState(K + 1)
    ratio, t = rng.rand(X.nnz), rng.rand(stop - start, K)
    B = _lda.pad_topics(rng.rand(V, K))
    indptr = X.indptr[start:stop + 1]
    expected = _plain_sums(X, start, stop, ratio, t, V) * B[:, :K]
    assert np.count_nonzero(expected.any(axis=1)) < V  # words without entries: zeros
    pattern = _lda.word_major_pattern(indptr, X.indices, V)
    for threads in (1, 2, 3):
        got = np.full((K, V), np.nan)
        _lda.word_topic_stats(*pattern, ratio, t, B, got, threads, topic_major=True)
        np.testing.assert_array_equal(got, expected.T)
        got = np.full((K, V), np.nan)
        _lda.word_topic_stats_by_document(indptr, X.indices, ratio, t, B,
                                          np.full((V, K), np.nan), got, threads)
        np.testing.assert_array_equal(got, expected.T)
    # topic-major, continued from earlier sums and unscaled (the blocked data's use)
    begin = rng.rand(V, K)
    expected = begin.copy()
    for w in range(V):
        for i in range(pattern[0][w], pattern[0][w + 1]):
            expected[w] = expected[w] + ratio[pattern[1][i]] * t[pattern[2][i]]
    for threads in (1, 2):
        got = begin.T.copy()  # C order, a copy (for K = 1 begin.T is contiguous)
        _lda.word_topic_stats(*pattern, ratio, t, B, got, threads, accumulate=True,
                              scale=False, topic_major=True)
        np.testing.assert_array_equal(got, expected.T)


def test_word_topic_sums_by_document_refuse_bad_input():
    X = _counts(6, 10, seed=0, density=0.5)
    K, V = 3, 10
    ratio, t, B = np.ones(X.nnz), np.ones((6, K)), np.ones((V, K))
    work, out = np.empty((V, K)), np.empty((K, V))
    bad = X.indices.copy()
    bad[-1] = V
    with pytest.raises(ValueError, match="out of range"):
        _lda.word_topic_stats_by_document(X.indptr, bad, ratio, t, B, work, out)
    bad[-1] = -1
    with pytest.raises(ValueError, match="out of range"):
        _lda.word_topic_stats_by_document(X.indptr, bad, ratio, t, B, work, out)
    with pytest.raises(ValueError, match="shape"):
        _lda.word_topic_stats_by_document(X.indptr, X.indices, ratio, t, B, work,
                                          np.empty((K, V + 1)))
    with pytest.raises(ValueError, match="shape"):
        _lda.word_topic_stats_by_document(X.indptr, X.indices, ratio, np.ones((5, K)), B,
                                          work, out)
    with pytest.raises(ValueError, match="shorter"):
        _lda.word_topic_stats_by_document(X.indptr, X.indices, ratio[:-1], t, B, work, out)
    with pytest.raises(ValueError, match="positive"):
        _lda.word_topic_stats_by_document(X.indptr, X.indices, ratio, t, B, work, out, 0)
    # an empty document set: zeros
    _lda.word_topic_stats_by_document(X.indptr[:1], X.indices, ratio, np.ones((0, K)), B,
                                      work, out)
    np.testing.assert_array_equal(out, 0.0)


def _fitted(X, K, threads, max_iter, alpha=None):
    est = LatentDirichletAllocation(n_components=K, doc_topic_prior=alpha, max_iter=max_iter,
                                    random_state=3, n_threads=threads).fit(X)
    return (est.components_, est.exp_dirichlet_component_, est.transform(X),
            np.array([est.bound_, est.lower_bound_, est.perplexity(X[:20])]), est.lower_bounds_)


@pytest.mark.parametrize("K, max_iter, alpha", [(5, 1, None), (20, 2, 0.1), (7, 3, 0.3)])
def test_batch_fit_same_bits_either_statistics_path_and_any_threads(monkeypatch, K, max_iter,
                                                                    alpha):
    # the statistics by document (K V up to _MAX_ENTRIES_BY_DOCUMENT) and over the word-major
    # pattern give the same fit, bit for bit, on 1, 2 and 3 threads
    X = _counts(120, 300, seed=K)
    assert K * X.shape[1] <= lda_module._MAX_ENTRIES_BY_DOCUMENT
    reference = _fitted(X, K, 1, max_iter, alpha)
    for threads in (2, 3):
        for got, want in zip(_fitted(X, K, threads, max_iter, alpha), reference):
            np.testing.assert_array_equal(got, want)
    monkeypatch.setattr(lda_module, "_MAX_ENTRIES_BY_DOCUMENT", 0)
    for threads in (1, 2, 3):
        for got, want in zip(_fitted(X, K, threads, max_iter, alpha), reference):
            np.testing.assert_array_equal(got, want)


def test_batch_update_is_eta_plus_the_plain_sums():
    # one batch pass from the initial topics: lambda = eta + B^T * (the plain NumPy sums of
    # the first E-step's ratios and t), bit for bit
    X = _counts(60, 80, seed=11)
    K, V, eta = 4, X.shape[1], 0.25
    est = LatentDirichletAllocation(n_components=K, topic_word_prior=eta, max_iter=1,
                                    random_state=5)
    initial = est._start(X)
    gamma = lda_module.legacy_gamma(est.random_state_, 100.0, 0.01, (X.shape[0], K))
    ratio, t = np.empty(X.nnz), np.empty((X.shape[0], K))
    bnd = np.empty((lda_module._n_groups(X.shape[0]), 2))
    B = initial.sweep_B()
    _lda.lda_pass(X.indptr, X.indices, X.data, B, initial.log_B(), gamma, est.doc_topic_prior_,
                  est.max_doc_update_iter, est.mean_change_tol, lda_module._EPS, ratio, t, bnd,
                  1, False, None, initial.topic_max)
    expected = eta + (_plain_sums(X, 0, X.shape[0], ratio, t, V) * B[:, :K]).T
    est.fit(X)
    np.testing.assert_array_equal(est.components_, expected)
