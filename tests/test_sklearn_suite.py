"""scikit-learn's own tests of its GaussianMixture, BayesianGaussianMixture and
LatentDirichletAllocation, run against vbfast's classes (issue 18, part 1).

The test files are taken from the installed scikit-learn (never copied into this repository),
copied to a temporary directory with only the import of the estimator classes rewritten to
vbfast's (``from vbfast import GaussianMixture``); everything else, scikit-learn's private
helpers that the tests call on their own included, is unchanged. They run with pytest in a
subprocess, with scikit-learn's conftest as a plugin (its fixtures: ``global_random_seed``,
``global_dtype``), float32 tests and SciPy's array API enabled. Every test must pass or skip,
except those in ``EXPECTED_FAILURES``, each with its reason; and every listed test must fail,
so that the list stays honest (a listed test that starts passing, or disappears from a new
scikit-learn, fails here until it is taken off the list).
"""
import re
from pathlib import Path

import pytest

from _helpers import assert_listed_test_fails, assert_unlisted_tests_pass

sklearn = pytest.importorskip("sklearn")

# file in the installed scikit-learn -> (pattern of its import of the estimator classes,
# the classes it may import); the import becomes ``from vbfast import <the same names>``.
SUITE = {
    "mixture/tests/test_gaussian_mixture.py": r"from sklearn\.mixture import",
    "mixture/tests/test_bayesian_mixture.py": r"from sklearn\.mixture import",
    "mixture/tests/test_mixture.py": r"from sklearn\.mixture import",
    "decomposition/tests/test_online_lda.py": r"from sklearn\.decomposition import",
}
ESTIMATORS = {"GaussianMixture", "BayesianGaussianMixture", "LatentDirichletAllocation"}

WORDING = ("matches scikit-learn's exact error-message wording; vbfast raises the same "
           "exception type with its own message (the rest of the test passes with the match "
           "removed)")
PRIVATE = ("calls or mocks scikit-learn's private methods or functions, which vbfast's "
           "classes do not have: {}")
ARRAY_API = ("expects NotImplementedError for init_params='kmeans' / 'k-means++' under "
             "array_api_dispatch=True, a limitation of scikit-learn's array-API code path; "
             "vbfast has no array-API dispatch and fits NumPy input with any init_params (the "
             "test fits NumPy data for every namespace id)")
FLOAT32_MEAN = ("asserts score() equal to score_samples().mean() to 7 decimals; for float32 "
                "X vbfast's score averages the float32 log-densities in float64 (documented "
                "in GaussianMixture.score), the test's mean is a float32 sum, 3e-7 away")

_GM = "test_gaussian_mixture.py::"
_BGM = "test_bayesian_mixture.py::"
_LDA = "test_online_lda.py::"

EXPECTED_FAILURES = {
    # error-message wording
    _GM + "test_check_weights": WORDING,
    _GM + "test_check_means": WORDING,
    _GM + "test_check_precisions": WORDING,
    _GM + "test_sample": WORDING,
    _BGM + "test_bayesian_mixture_precisions_prior_initialisation": WORDING,
    # scikit-learn's private API
    _BGM + "test_compare_covar_type": PRIVATE.format(
        "_initialize_parameters, _m_step, _estimate_log_prob on the estimator"),
    _GM + "test_gaussian_mixture_all_init_does_not_estimate_gaussian_parameters[42]":
        PRIVATE.format("mocks sklearn.mixture._gaussian_mixture._estimate_gaussian_parameters "
                       "and counts its calls"),
    _LDA + "test_lda_preplexity_mismatch": PRIVATE.format("_perplexity_precomp_distr"),
    # numerics
    _GM + "test_score[float32]": FLOAT32_MEAN,
}
for _dtype in ("float32", "float64"):
    for _cov in ("full", "tied", "diag", "spherical"):
        EXPECTED_FAILURES[_GM + f"test_gaussian_mixture_precisions_init[{_dtype}-42-{_cov}]"] = \
            PRIVATE.format("_set_parameters (in the test's helper _calculate_precisions)")
# the ids scikit-learn's yield_namespace_device_dtype_combinations gives (whether or not the
# namespace is installed: the test never uses it)
_NAMESPACES = ("numpy-None-None", "array_api_strict-CPU_DEVICE-float64",
               "array_api_strict-device1-float32", "cupy-None-None", "torch-cpu-float64",
               "torch-cpu-float32", "torch-cuda-float64", "torch-cuda-float32",
               "torch-xpu-float64", "torch-xpu-float32", "torch-mps-float32",
               "dpnp-cpu-float64", "dpnp-cpu-float32", "dpnp-gpu-float64", "dpnp-gpu-float32")
for _ns in _NAMESPACES:
    for _init in ("kmeans", "k-means++"):
        EXPECTED_FAILURES[_GM + "test_gaussian_mixture_raises_where_array_api_not_implemented"
                          f"[{_ns}-{_init}]"] = ARRAY_API


def _rewrite(source, pattern, path):
    """``source`` with its one import of the estimator classes from scikit-learn turned into
    an import from vbfast; raises if there is not exactly one, or it imports anything else."""
    found = re.findall(rf"^{pattern} ([\w, ]+)$", source, flags=re.MULTILINE)
    assert len(found) == 1, f"{path}: expected one '{pattern} ...' line, found {found}"
    names = {n.strip() for n in found[0].split(",")}
    assert names <= ESTIMATORS, f"{path}: the import also brings {names - ESTIMATORS}"
    return re.sub(rf"^{pattern} ([\w, ]+)$", r"from vbfast import \1", source,
                  flags=re.MULTILINE)


@pytest.fixture(scope="module")
def suite(tmp_path_factory, run_peer_tests):
    root = Path(sklearn.__file__).parent
    work = tmp_path_factory.mktemp("sklearn_suite")
    for rel, pattern in SUITE.items():
        path = root / rel
        if not path.exists():
            pytest.fail(f"{path} is missing: scikit-learn {sklearn.__version__} installed "
                        "without its tests?")
        (work / path.name).write_text(_rewrite(path.read_text(), pattern, path))
    return run_peer_tests(
        work, ["-p", "sklearn.conftest", "."],
        {"SCIPY_ARRAY_API": "1", "SKLEARN_RUN_FLOAT32_TESTS": "1",
         "SKLEARN_TESTS_GLOBAL_RANDOM_SEED": "42"}, timeout=1200)


def test_the_suite_runs_against_vbfast(suite):
    outcomes, _ = suite
    files = {test_id.split("::")[0] for test_id in outcomes}
    assert files == {Path(rel).name for rel in SUITE}
    assert sum(v == "passed" for v in outcomes.values()) >= 150


def test_every_unlisted_test_passes(suite):
    outcomes, log = suite
    assert_unlisted_tests_pass(outcomes, log, EXPECTED_FAILURES, "scikit-learn")


@pytest.mark.parametrize("test_id", sorted(EXPECTED_FAILURES))
def test_listed_test_fails(suite, test_id):
    assert_listed_test_fails(suite[0], test_id, EXPECTED_FAILURES)


def test_rewrite_swaps_only_the_estimator_import():
    source = ("import numpy as np\nfrom sklearn.mixture import BayesianGaussianMixture, "
              "GaussianMixture\nfrom sklearn.mixture._gaussian_mixture import _helper\n")
    out = _rewrite(source, SUITE["mixture/tests/test_mixture.py"], "x")
    assert out == ("import numpy as np\nfrom vbfast import BayesianGaussianMixture, "
                   "GaussianMixture\nfrom sklearn.mixture._gaussian_mixture import _helper\n")
    with pytest.raises(AssertionError, match="also brings"):
        _rewrite("from sklearn.mixture import GaussianMixture, Other\n",
                 SUITE["mixture/tests/test_mixture.py"], "x")
