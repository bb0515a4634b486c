"""compare_methods on hidden Markov models (held-out log-likelihood per observation) and
``python -m vbfast demo --hmm``."""
import io
import re

import numpy as np
import pytest

from vbfast import GaussianHMM, GaussianMixture, PoissonHMM, compare_methods
from vbfast.__main__ import main
from vbfast.spectrum import available_methods

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _sequences(seed=0):
    rng = np.random.RandomState(seed)
    z = np.cumsum(rng.rand(400) < 0.1) % 2
    return (np.array([[-2.0], [2.0]])[z] + rng.normal(size=(400, 1))), [150, 250]


def test_compare_methods_on_an_hmm_with_lengths():
    X, lengths = _sequences(0)
    X_test, lengths_test = _sequences(1)
    est = GaussianHMM(2, n_iter=30, random_state=0)
    result = compare_methods(est, X, X_test, lengths=lengths, lengths_test=lengths_test)
    assert [r["method"] for r in result] == list(available_methods(est))
    em = result.estimators["em"]
    row = result["em"]
    # per observation: the total log-likelihood over the sequences / n_samples
    assert row["heldout"] == pytest.approx(em.score(X_test, lengths_test) / len(X_test))
    assert row["train_bound"] == pytest.approx(em.lower_bound_ / len(X))
    assert row["bound_kind"] == "log-likelihood" and row["n_iter"] == em.n_iter_
    assert result.unit == "obs" and result.heldout_on == "test"
    # the same fit as the estimator's own
    ref = GaussianHMM(2, n_iter=30, random_state=0).fit(X, lengths)
    np.testing.assert_array_equal(em.means_, ref.means_)
    assert "held-out/obs" in str(result)


def test_compare_methods_hmm_on_training_data_and_counts():
    rng = np.random.RandomState(0)
    X = rng.poisson(np.where(np.arange(300)[:, None] % 60 < 30, 2.0, 9.0), size=(300, 2))
    result = compare_methods(PoissonHMM(2, n_iter=20, random_state=0), X)
    assert result.heldout_on == "train"
    assert np.isfinite(result["em"]["heldout"])


def test_lengths_only_for_hmms():
    X = np.random.RandomState(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="hidden Markov models only"):
        compare_methods(GaussianMixture(2), X, lengths=[50])


def test_demo_hmm():
    out = io.StringIO()
    import sys
    old, sys.stdout = sys.stdout, out
    try:
        assert main(["demo", "--hmm"]) == 0
    finally:
        sys.stdout = old
    text = out.getvalue()
    assert "Old Faithful waiting times as a sequence" in text
    assert re.search(r"^em\s+\S+\s+\d+\s+True\s+-\d+\.\d+", text, flags=re.MULTILINE)
    means = re.search(r"mean waiting time \(minutes\): \[(\S+), (\S+)\]", text)
    short, long = float(means.group(1)), float(means.group(2))
    assert 50 < short < 60 and 75 < long < 85  # the two regimes of waits
    states = re.search(r"0 = shorter waits\): ([01]+)", text).group(1)
    assert len(states) == 68
