"""Every public estimator, once per fitting-method variant, for the library-wide tests.

The hardening tests (``tests/test_estimator_checks.py``, ``tests/test_determinism.py``,
``tests/test_robustness.py``, ...) run over ``ESTIMATORS``: a new estimator, or a new
``method=`` of an existing one, is covered by all of them by adding one ``Entry`` here.

Nothing here imports scikit-learn: the reasons for the scikit-learn checks that cannot apply
are plain strings, keyed by the check's function name.
"""
from dataclasses import dataclass, field

from .lda import LatentDirichletAllocation
from .mixture import BayesianGaussianMixture, GaussianMixture


@dataclass(frozen=True)
class Entry:
    """One estimator variant.

    name : str
        Test id.
    cls : type
        The public estimator class.
    params : dict
        Constructor parameters selecting the variant (``method=...``), plus whatever keeps
        the checks fast (``max_iter``); ``random_state`` is set by the tests.
    data : {'dense', 'counts'}
        What ``fit`` takes: real-valued dense rows, or a document-term count matrix (dense
        or sparse, non-negative).
    grid : dict
        Further parameter values the determinism / pickle / fuzzing tests cover for this
        variant (each value tried on its own), e.g. every ``covariance_type``.
    expected_failed_checks : dict
        scikit-learn check name -> why it cannot apply to this variant. Listed, never
        silently skipped: ``parametrize_with_checks`` marks them xfail (strict).
    """

    name: str
    cls: type
    params: dict
    data: str = "dense"
    grid: dict = field(default_factory=dict)
    expected_failed_checks: dict = field(default_factory=dict)

    def make(self, **overrides):
        """A fresh, unfitted estimator of this variant."""
        return self.cls(**{**self.params, **overrides})


_COVARIANCE_TYPES = {"covariance_type": ["full", "tied", "diag", "spherical"]}

# Reasons shared by the mixture variants.
_MIXTURE_FAILS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "The random initialisation (k-means / k-means++ seeding from random_state) draws "
        "differently for a weighted row than for the same row repeated, so the two fits start "
        "from different points and may converge to different (e.g. label-permuted) optima. "
        "From the same initial parameters, integer weights and repeated rows give the same "
        "fit: tests/test_mixture.py::test_integer_sample_weight_equals_repeated_rows, "
        "tests/test_bayesian_mixture.py::test_sample_weight_equals_repetition."),
}

ESTIMATORS = [
    Entry("GaussianMixture-em", GaussianMixture, {"method": "em", "n_components": 2},
          grid=_COVARIANCE_TYPES, expected_failed_checks=_MIXTURE_FAILS),
    Entry("GaussianMixture-mean_field", GaussianMixture,
          {"method": "mean_field", "n_components": 2}, grid=_COVARIANCE_TYPES, expected_failed_checks=_MIXTURE_FAILS),
    Entry("BayesianGaussianMixture-dirichlet_process", BayesianGaussianMixture,
          {"n_components": 2, "weight_concentration_prior_type": "dirichlet_process"},
          grid=_COVARIANCE_TYPES, expected_failed_checks=_MIXTURE_FAILS),
    Entry("BayesianGaussianMixture-dirichlet_distribution", BayesianGaussianMixture,
          {"n_components": 2, "weight_concentration_prior_type": "dirichlet_distribution"},
          grid=_COVARIANCE_TYPES, expected_failed_checks=_MIXTURE_FAILS),
    Entry("LatentDirichletAllocation-mean_field-batch", LatentDirichletAllocation,
          {"method": "mean_field", "learning_method": "batch", "n_components": 3,
           "max_iter": 5}, data="counts"),
    Entry("LatentDirichletAllocation-mean_field-online", LatentDirichletAllocation,
          {"method": "mean_field", "learning_method": "online", "n_components": 3,
           "max_iter": 5, "batch_size": 16}, data="counts"),
    Entry("LatentDirichletAllocation-variational_em-batch", LatentDirichletAllocation,
          {"method": "variational_em", "learning_method": "batch", "n_components": 3,
           "max_iter": 5}, data="counts"),
    Entry("LatentDirichletAllocation-variational_em-online", LatentDirichletAllocation,
          {"method": "variational_em", "learning_method": "online", "n_components": 3,
           "max_iter": 5, "batch_size": 16}, data="counts"),
]
