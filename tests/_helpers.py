"""Checks and set-ups that several test modules share (imported as ``_helpers``: pytest puts
this folder on sys.path)."""
import os
import threading

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import digamma

from vbfast.hmm import _gibbs, _mean_field
from vbfast.hmm._sequences import Sequences


def memmap_copy(X, tmp_path, name="X.npy"):
    """X written to ``tmp_path/name`` and opened read-only as a ``numpy.memmap``."""
    path = os.path.join(tmp_path, name)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=X.dtype, shape=X.shape)
    out[:] = X
    out.flush()
    del out
    return np.load(path, mmap_mode="r")


def run_together(work, n_threads, timeout):
    """Run ``work(i)`` for i < n_threads in Python threads released together (a barrier),
    each joined within ``timeout`` seconds (AssertionError if one is still running). Returns
    what they raised, reported here in the main thread."""
    errors, barrier = [], threading.Barrier(n_threads)

    def run(i):
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return errors


def hmm_mean_field(est, X, lengths):
    """An HMM's mean-field method as its fit builds it (one thread), before any update:
    ``(Xs, sequences, conj, method)``, Xs the checked X."""
    est._check_parameters()
    Xs = est._check_X(X, fitting=True)
    seqs = Sequences(lengths, len(Xs), 1)
    params = est._initial_parameters(Xs, seqs)
    conj = est._conjugate(Xs, 1, {}, params)
    method = _mean_field.MeanField(est, _mean_field.VBData(Xs, seqs, conj), params)
    return Xs, seqs, conj, method


def hmm_gibbs_chain(est, X):
    """An HMM's Gibbs chain over X as one sequence, as its fit builds it (one thread, the
    chain's generator PCG64(1), kernel seed 7): ``(sequences, conj, data, chain)``."""
    est._check_parameters()
    seqs = Sequences(None, len(X), 1)
    params = est._initial_parameters(X, seqs)
    conj = est._conjugate(X, 1, {}, params)
    data = _gibbs.GibbsData(X, seqs, conj, est)
    chain = _gibbs.Gibbs(est, data, params, np.random.Generator(np.random.PCG64(1)), 7)
    return seqs, conj, data, chain


def dirichlet_expected_log(a):
    """E[log p] under Dirichlet(a) along the last axis: psi(a) - psi(sum a)."""
    return digamma(a) - digamma(a.sum(axis=-1, keepdims=True))


def assert_same_hmm_scores(ours, theirs, X, lengths):
    """Two fitted HMMs (vbfast's and hmmlearn's) agree on score, score_samples and decode."""
    assert_allclose(ours.score(X, lengths), theirs.score(X, lengths), rtol=1e-12)
    lp, post = ours.score_samples(X, lengths)
    lp2, post2 = theirs.score_samples(X, lengths)
    assert_allclose(lp, lp2, rtol=1e-12)
    assert_allclose(post, post2, atol=1e-10)
    lv, sv = ours.decode(X, lengths)
    lv2, sv2 = theirs.decode(X, lengths)
    assert_allclose(lv, lv2, rtol=1e-12)
    assert_array_equal(sv, sv2)


def assert_rejects_nonfinite(fit, X):
    """``fit`` refuses X with a NaN, then with an infinity (ValueError naming it)."""
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit(bad)
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        fit(bad)


def assert_unlisted_tests_pass(outcomes, log, expected_failures, suite_name):
    """A peer suite run against vbfast: every failing test is on the expected list."""
    unexpected = sorted(t for t, v in outcomes.items()
                        if v == "failed" and t not in expected_failures)
    assert not unexpected, (f"{suite_name}'s tests failing against vbfast:\n"
                            + "\n".join(unexpected) + "\n\n" + log[-8000:])


def assert_listed_test_fails(outcomes, test_id, expected_failures):
    """A test on the expected list still fails (else it should come off the list)."""
    assert outcomes.get(test_id) == "failed", (
        f"{test_id} is listed as failing ({expected_failures[test_id]}) but "
        f"{outcomes.get(test_id, 'was not collected')}: take it off the list")
