"""compare_methods: the methods spectrum on one model, and the demo's spectrum mode."""
import io

import numpy as np
import pytest
import scipy.sparse as sp

from vbfast import (BayesianGaussianMixture, GaussianMixture, LatentDirichletAllocation,
                    compare_methods)
from vbfast.__main__ import main
from vbfast.datasets import load_old_faithful
from vbfast.spectrum import available_methods


def _split(seed=0):
    X = load_old_faithful()
    order = np.random.default_rng(seed).permutation(X.shape[0])
    return X[order[68:]], X[order[:68]]


def test_gaussian_mixture_spectrum_on_old_faithful():
    X_train, X_test = _split()
    result = compare_methods(GaussianMixture(2, random_state=0), X_train, X_test)
    methods = [row["method"] for row in result]
    assert methods == list(available_methods(GaussianMixture()))
    assert methods[-1] == "em" and "mean_field" in methods
    for row in result:
        # valid, comparable scores: finite, per sample, and close to each other (the same
        # model; a wrong normalisation would be off by orders of magnitude)
        assert np.isfinite(row["heldout"]) and row["time_s"] > 0 and row["n_iter"] >= 1
        assert abs(row["heldout"] - result["em"]["heldout"]) < 0.5
        seconds, trace = result.traces[row["method"]]
        assert seconds.shape == trace.shape == (row["n_iter"],)
        assert np.all(np.diff(seconds) >= 0)
    # each held-out score is the fitted estimator's own score on the test set
    for method, est in result.estimators.items():
        assert est.method == method
        assert result[method]["heldout"] == pytest.approx(est.score(X_test), rel=1e-12)
    assert result["em"]["train_bound"] == pytest.approx(result.estimators["em"].lower_bound_)
    assert result["mean_field"]["bound_kind"] == "ELBO"
    assert result["mean_field"]["train_bound"] == pytest.approx(
        result.estimators["mean_field"].lower_bound_ / X_train.shape[0])
    # Time ordering, loosely (it is noisy): the slowest method is not EM, and Gibbs (when
    # available) is slower than EM.
    times = {row["method"]: row["time_s"] for row in result}
    assert max(times, key=times.get) != "em"
    if "gibbs" in times:
        assert times["gibbs"] > times["em"]
    table = str(result)
    assert all(m in table for m in methods) and "held-out/sample" in table
    cols = result.to_dict()
    assert cols["method"] == methods and len(cols["heldout"]) == len(methods)


def test_lda_spectrum_scores_per_token():
    rng = np.random.default_rng(0)
    topics = rng.dirichlet(np.full(40, 0.1), 3)
    docs = np.array([rng.multinomial(60, rng.dirichlet(np.full(3, 0.3)) @ topics)
                     for _ in range(120)])
    X = sp.csr_matrix(docs[:100].astype(float))
    X_test = sp.csr_matrix(docs[100:].astype(float))
    result = compare_methods(LatentDirichletAllocation(3, max_iter=5, random_state=0), X,
                             X_test)
    assert [r["method"] for r in result] == list(available_methods(LatentDirichletAllocation()))
    for row in result:
        est = result.estimators[row["method"]]
        assert row["heldout"] == pytest.approx(-np.log(est.perplexity(X_test)), rel=1e-12)
        if row["bound_kind"] == "ELBO":
            assert row["train_bound"] == pytest.approx(est.lower_bound_ / X.sum())
    assert "held-out/token" in str(result)


def test_spectrum_without_test_set_and_with_a_subset_of_methods():
    X = load_old_faithful()
    result = compare_methods(GaussianMixture(2, random_state=0), X, methods=["em"])
    assert len(result) == 1 and result.heldout_on == "train"
    assert result["em"]["heldout"] == pytest.approx(result.estimators["em"].score(X))
    bgm = compare_methods(BayesianGaussianMixture(n_components=3, max_iter=1000, random_state=0), X)
    assert [r["method"] for r in bgm] == list(available_methods(BayesianGaussianMixture()))
    assert "em" not in [r["method"] for r in bgm]


def test_spectrum_bad_input():
    X = load_old_faithful()
    with pytest.raises(ValueError, match="does not support"):
        compare_methods(GaussianMixture(2), X, methods=["variational_em"])
    with pytest.raises(ValueError, match="at least one"):
        compare_methods(GaussianMixture(2), X, methods=[])
    with pytest.raises(TypeError, match="compare_methods takes"):
        compare_methods(object(), X)
    with pytest.raises(ValueError):
        compare_methods(GaussianMixture(2), np.full((10, 2), np.nan))


def test_plot_needs_matplotlib_only_when_asked():
    X = load_old_faithful()
    result = compare_methods(GaussianMixture(2, random_state=0), X, methods=["em"])
    try:
        import matplotlib
    except ImportError:
        with pytest.raises(ImportError, match="pip install matplotlib"):
            result.plot()
    else:
        matplotlib.use("Agg")
        fig = result.plot()
        assert len(fig.axes) == 2


def test_demo_spectrum_mode():
    out = io.StringIO()
    import vbfast.__main__ as cli

    args = cli.build_parser().parse_args(["demo", "--spectrum", "--n-components", "2"])
    assert cli._demo(args, out) == 0
    text = out.getvalue()
    assert "held-out" in text
    for method in available_methods(GaussianMixture()):
        assert method in text
    assert main(["demo", "--spectrum"]) == 0


def test_methods_given_as_one_string():
    X = load_old_faithful()
    result = compare_methods(GaussianMixture(2, random_state=0), X, methods="em")
    assert [row["method"] for row in result] == ["em"]


def test_lda_counts_given_as_a_list():
    counts = np.random.RandomState(0).poisson(1.0, size=(60, 20)).tolist()
    result = compare_methods(LatentDirichletAllocation(2, random_state=0, max_iter=3), counts,
                             methods=["variational_em"])
    assert np.isfinite(result["variational_em"]["heldout"])
    assert np.isfinite(result["variational_em"]["train_bound"])


def test_initial_parameters_leave_out_the_methods_that_cannot_use_them():
    X = load_old_faithful()
    est = GaussianMixture(2, random_state=0, means_init=[[2.0, 55.0], [4.5, 80.0]])
    with pytest.warns(UserWarning, match="method='gibbs'.*means_init"):
        result = compare_methods(est, X)
    assert [row["method"] for row in result] == ["em"]
    with pytest.raises(ValueError, match="method='mean_field': means_init"):
        compare_methods(est, X, methods=["mean_field", "em"])


def test_demo_refuses_a_negative_seed(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--seed", "-1"])
    assert exc.value.code == 2
    assert "--seed" in capsys.readouterr().err
