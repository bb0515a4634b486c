"""Every public estimator, once per fitting-method variant, for the library-wide tests.

The hardening tests (``tests/test_estimator_checks.py``, ``tests/test_determinism.py``,
``tests/test_robustness.py``, ...) run over ``ESTIMATORS``: a new estimator, or a new
``method=`` of an existing one, is covered by all of them by adding one ``Entry`` here.

Nothing here imports scikit-learn: the reasons for the scikit-learn checks that cannot apply
are plain strings, keyed by the check's function name.
"""
from dataclasses import dataclass, field

import numpy as np

from .topics import LatentDirichletAllocation
from .mixture import BayesianGaussianMixture, GaussianMixture
from .hmm import CategoricalHMM, GaussianHMM, GMMHMM, PoissonHMM
from .mixture import BernoulliMixture, CategoricalMixture, MultinomialMixture


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
    data : {'dense', 'dense_missing', 'counts', 'symbols', 'binary', 'categorical'}
        What ``fit`` takes: real-valued dense rows (for 'dense_missing' with NaN missing), a
        document-term count matrix (dense or sparse, non-negative), integer symbols of shape
        (n_samples, 1) (one sequence: the HMMs' ``lengths`` default), 0/1 rows with NaN
        missing, or integer codes per item (NaN missing).
    grid : dict
        Further parameter values the determinism / pickle / fuzzing tests cover for this
        variant (each value tried on its own), e.g. every ``covariance_type``.
    expected_failed_checks : dict
        scikit-learn check name -> why it cannot apply to this variant. Listed, never
        silently skipped: ``parametrize_with_checks`` marks them xfail (strict).
    partial_fit : bool
        Whether the variant has ``partial_fit`` (an online step: stepwise EM, stochastic VI,
        LDA's online VB); samplers have no such attribute at all. Tested against
        ``hasattr(entry.make(), "partial_fit")``; the library-wide tests of ``partial_fit``
        (interrupts, pickling mid-stream) run over the variants that have it.
    """

    name: str
    cls: type
    params: dict
    data: str = "dense"
    grid: dict = field(default_factory=dict)
    expected_failed_checks: dict = field(default_factory=dict)
    partial_fit: bool = False

    def make(self, **overrides):
        """A fresh, unfitted estimator of this variant. ``max_iter`` is passed as ``n_iter``
        to the estimators that call it so (the HMMs, after hmmlearn)."""
        if "max_iter" in overrides and "max_iter" not in self.cls._param_names:
            overrides["n_iter"] = overrides.pop("max_iter")
        return self.cls(**{**self.params, **overrides})

    def variants(self):
        """(id, extra params) for the base variant and each ``grid`` value."""
        out = [("", {})]
        base = self.make().get_params()
        for name, values in self.grid.items():
            out += [(f"{name}={v}", {name: v}) for v in values if base[name] != v]
        return out

    def fixed_length_params(self, n_iter):
        """Parameters making a fit run exactly ``n_iter`` iterations (no early convergence),
        so that tests compare long enough traces."""
        names = self.make().get_params()
        if names.get("method") == "gibbs":  # a sampler runs burn_in + n_draws * thin sweeps
            return {"burn_in": 1, "n_draws": n_iter - 1, "thin": 1}
        out = {"max_iter": n_iter}
        for name in ("tol", "perp_tol"):
            if name in names:
                out[name] = 0.0
        return out

    def sample_data(self, n_samples=300, seed=0, n_features=None):
        """Data this variant fits: well-separated Gaussian blobs (3 clusters, 3 features),
        or counts drawn from a 3-topic LDA model (40 words, ~30 tokens a document)."""
        rng = np.random.RandomState(seed)
        if self.data == "symbols":  # a sticky 3-state chain over 6 symbols
            B = rng.dirichlet(np.full(n_features or 6, 0.5), size=3)
            z = np.cumsum(rng.rand(n_samples) < 0.1) % 3
            return np.array([[rng.choice(B.shape[1], p=B[k])] for k in z])
        if self.data in ("dense", "dense_missing"):
            D = n_features or 3
            centers = rng.normal(scale=2.0, size=(3, D))
            labels = rng.randint(3, size=n_samples)
            X = centers[labels] + rng.normal(size=(n_samples, D))
            if self.data == "dense_missing":
                # about 10% of the values missing (NaN), the first 4 rows complete, and row
                # 4 (if any) with no observed value
                missing = rng.uniform(size=X.shape) < 0.1
                missing[:4] = False
                missing[4:5] = True
                X[missing] = np.nan
            return X
        if self.data in ("binary", "categorical"):
            # 3 latent classes; binary: n_features 0/1 items; categorical: items of 2-4
            # levels coded 1..L; about 5% of the answers missing (NaN)
            D = n_features or 6
            levels = np.full(D, 2) if self.data == "binary" else 2 + np.arange(D) % 3
            labels = rng.randint(3, size=n_samples)
            X = np.empty((n_samples, D))
            for j, L in enumerate(levels):
                probs = rng.dirichlet(np.full(L, 0.3), size=3)
                u = rng.uniform(size=n_samples)[:, None]
                X[:, j] = (u > np.cumsum(probs[labels], axis=1)).sum(axis=1)
                X[:L, j] = np.arange(L)[:n_samples]  # every level present in every sample
            if self.data == "categorical":
                X += 1
            missing = rng.uniform(size=X.shape) < 0.05
            missing[:4] = False
            X[missing] = np.nan
            return X
        V = n_features or 40
        topics = rng.dirichlet(np.full(V, 0.2), size=3)
        theta = rng.dirichlet(np.full(3, 0.5), size=n_samples)
        lengths = rng.poisson(30, size=n_samples) + 1
        return np.array([rng.multinomial(n, t @ topics) for n, t in zip(lengths, theta)],
                        dtype=np.float64)


_COVARIANCE_TYPES = {"covariance_type": ["full", "tied", "diag", "spherical"]}
# the Gaussian mixtures: every covariance type, and scikit-learn's behaviour on degenerate
# components (the default re-seeds them)
_GAUSSIAN_MIXTURE_GRID = {**_COVARIANCE_TYPES, "on_degenerate": ["reseed", "raise"]}

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

# The collapsed Gibbs sampler draws a topic for every token, so it takes integer counts only
# (non-integer input is refused with a ValueError); scikit-learn's checks feed non-negative
# real-valued data (uniform or shifted normal draws) to a positive-only estimator.
_GIBBS_COUNTS = (
    "scikit-learn feeds non-integer non-negative values; method='gibbs' samples one topic per "
    "token and refuses non-integer counts with a ValueError (tests/test_lda_gibbs.py covers "
    "this estimator's behaviour on integer counts: fit, transform, pickling, determinism).")
# (check_array_api_input, run by tests/test_estimator_checks.py in a subprocess, does not apply
# for the same reason: NON_INTEGER_INPUT below.)
NON_INTEGER_INPUT = {"LatentDirichletAllocation-gibbs": _GIBBS_COUNTS}
for _cls in ("BernoulliMixture", "CategoricalMixture"):  # 0/1 answers or integer codes only
    for _method in ("em", "mean_field", "gibbs"):
        NON_INTEGER_INPUT[f"{_cls}-{_method}"] = (
            "scikit-learn feeds real-valued data; binary / categorical mixtures take 0/1 "
            "answers or integer codes and refuse other values with a ValueError.")
_LDA_GIBBS_FAILS = {name: _GIBBS_COUNTS for name in (
    "check_fit_score_takes_y",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_n_features_in_after_fitting",
    "check_estimators_dtypes",
    "check_dtype_object",
    "check_pipeline_consistency",
    "check_estimators_nan_inf",
    "check_estimator_sparse_tag",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_preserve_dtypes",
    "check_transformer_n_iter",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit2d_1sample",
    "check_fit2d_1feature",
    "check_dict_unchanged",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit2d_predict1d",
)}

# The HMMs take hmmlearn's fit(X, lengths=None): scikit-learn's checks pass y positionally,
# which lands in ``lengths`` and is refused (its entries do not sum to n_samples).
_HMM_Y_AS_LENGTHS = (
    "hmmlearn's signature fit(X, lengths=None): the check calls fit(X, y) and y is taken as "
    "the sequence lengths, refused with a ValueError because they do not sum to n_samples "
    "(tests/test_hmm.py covers fit, predict, pickling, dtypes, NaN/inf refusal and "
    "determinism with lengths given properly).")
_HMM_CONTEXT = (
    "An HMM's predictions for a sample depend on its neighbours in the sequence (the "
    "posterior of z_t uses the whole sequence), so reordering or subsetting rows changes "
    "them by design.")
_HMM_FAILS = {name: _HMM_Y_AS_LENGTHS for name in (
    "check_fit_score_takes_y", "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters", "check_estimators_fit_returns_self",
    "check_readonly_memmap_input", "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit", "check_estimators_dtypes", "check_dtype_object",
    "check_pipeline_consistency", "check_estimators_nan_inf", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_fit2d_1feature", "check_dict_unchanged",
    "check_fit_idempotent", "check_fit_check_is_fitted", "check_n_features_in",
    "check_fit2d_predict1d")}
# check_array_api_input (run in a subprocess, see NON_INTEGER_INPUT) calls fit(X, y) too
NON_INTEGER_INPUT.update({f"{_cls}-{_method}": _HMM_Y_AS_LENGTHS
                          for _cls in ("GaussianHMM", "CategoricalHMM")
                          for _method in ("em", "mean_field", "gibbs")})
NON_INTEGER_INPUT.update({"PoissonHMM-em": _HMM_Y_AS_LENGTHS, "GMMHMM-em": _HMM_Y_AS_LENGTHS})
NON_INTEGER_INPUT.update({f"{_cls}-{_method}": _HMM_Y_AS_LENGTHS
                          for _cls in ("PoissonHMM", "GMMHMM")
                          for _method in ("mean_field", "gibbs")})
_HMM_FAILS.update({"check_methods_sample_order_invariance": _HMM_CONTEXT,
                   "check_methods_subset_invariance": _HMM_CONTEXT})
# CategoricalHMM reads integer symbols of shape (n_samples, 1): scikit-learn feeds real values
_CATEGORICAL_HMM_FAILS = {**_HMM_FAILS, "check_fit2d_1sample": (
    "scikit-learn fits one sample of 10 real-valued features; CategoricalHMM takes one "
    "integer symbol per sample, shape (n_samples, 1), and refuses other shapes and "
    "non-integer values with a ValueError.")}
# PoissonHMM reads non-negative integer counts: scikit-learn feeds real values
_POISSON_HMM_FAILS = {**_HMM_FAILS, **{name: (
    "scikit-learn feeds real-valued (and negative) data; PoissonHMM takes non-negative "
    "integer counts and refuses anything else with a ValueError naming it "
    "(tests/test_hmm_poisson_gmm.py covers fit, predict and bad input on counts).") for name in (
    "check_fit2d_1sample", "check_methods_sample_order_invariance",
    "check_methods_subset_invariance")}}
# Discrete mixtures: scikit-learn's checks feed real-valued data; binary and categorical
# mixtures take 0/1 answers or integer codes and refuse anything else with a ValueError.
_DISCRETE_INPUT = (
    "scikit-learn feeds real-valued data; BernoulliMixture / CategoricalMixture take 0/1 "
    "answers or integer codes and refuse other values with a ValueError naming them "
    "(tests/test_discrete_mixture.py covers fit, predict, pickling and bad input on their "
    "data).")
_DISCRETE_PARAMS = {"n_components": 2, "max_iter": 20}
_DISCRETE_GIBBS = {"n_components": 2, "n_draws": 20, "burn_in": 10, "n_chains": 2}
_DISCRETE_SAMPLE_WEIGHT = (
    "The random initialisation (random rows as seeds) draws differently for a weighted row "
    "than for the same row repeated, so the two fits start from different points. From the "
    "same start integer weights equal repeated rows: "
    "tests/test_discrete_mixture.py::test_integer_sample_weight_equals_repeated_rows.")
_SPARSE_PROBA = (
    "scikit-learn's sparse-input check reads classifier_tags.multi_class of any estimator "
    "with predict_proba (a density estimator has none); sparse counts are covered by "
    "tests/test_discrete_mixture.py::test_multinomial_sparse_equals_dense.")
_BERNOULLI_CHECKS = (
    "check_all_zero_sample_weights_error",
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_dtype_object",
    "check_estimators_dtypes",
    "check_estimators_fit_returns_self",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_fit2d_1feature",
    "check_fit2d_1sample",
    "check_fit2d_predict1d",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_fit_score_takes_y",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_pipeline_consistency",
    "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input",
    "check_sample_weight_equivalence_on_dense_data",
    "check_sample_weights_list",
    "check_sample_weights_not_an_array",
    "check_sample_weights_not_overwritten",
    "check_sample_weights_pandas_series",
    "check_sample_weights_shape",
)
# CategoricalMixture fails the same checks but for four of the sample-weight ones, which pass
_CATEGORICAL_CHECKS = tuple(c for c in _BERNOULLI_CHECKS if c not in (
    "check_sample_weights_not_an_array",
    "check_sample_weights_not_overwritten",
    "check_sample_weights_pandas_series",
    "check_sample_weights_shape",
))
_DISCRETE_FAILS = {}
for _method in ("em", "mean_field", "gibbs"):
    _DISCRETE_FAILS[f"BernoulliMixture-{_method}"] = {
        c: _DISCRETE_INPUT for c in _BERNOULLI_CHECKS}
    _DISCRETE_FAILS[f"CategoricalMixture-{_method}"] = {
        c: _DISCRETE_INPUT for c in _CATEGORICAL_CHECKS}
    _DISCRETE_FAILS[f"MultinomialMixture-{_method}"] = {
        "check_sample_weight_equivalence_on_dense_data": _DISCRETE_SAMPLE_WEIGHT,
        "check_sample_weight_equivalence_on_sparse_data": _DISCRETE_SAMPLE_WEIGHT,
        "check_estimator_sparse_array": _SPARSE_PROBA,
        "check_estimator_sparse_matrix": _SPARSE_PROBA}

ESTIMATORS = [
    Entry("GaussianMixture-em", GaussianMixture, {"method": "em", "n_components": 2},
          grid=_GAUSSIAN_MIXTURE_GRID, expected_failed_checks=_MIXTURE_FAILS, partial_fit=True),
    Entry("GaussianMixture-mean_field", GaussianMixture,
          {"method": "mean_field", "n_components": 2}, grid=_GAUSSIAN_MIXTURE_GRID,
          expected_failed_checks=_MIXTURE_FAILS, partial_fit=True),
    Entry("BayesianGaussianMixture-dirichlet_process", BayesianGaussianMixture,
          {"n_components": 2, "weight_concentration_prior_type": "dirichlet_process"},
          grid=_GAUSSIAN_MIXTURE_GRID, expected_failed_checks=_MIXTURE_FAILS, partial_fit=True),
    Entry("BayesianGaussianMixture-dirichlet_distribution", BayesianGaussianMixture,
          {"n_components": 2, "weight_concentration_prior_type": "dirichlet_distribution"},
          grid=_GAUSSIAN_MIXTURE_GRID, expected_failed_checks=_MIXTURE_FAILS, partial_fit=True),
    Entry("GaussianMixture-gibbs", GaussianMixture,
          {"method": "gibbs", "n_components": 2, "n_draws": 20, "burn_in": 10,
           "n_chains": 2}, grid=_GAUSSIAN_MIXTURE_GRID, expected_failed_checks=_MIXTURE_FAILS),
    Entry("BayesianGaussianMixture-gibbs", BayesianGaussianMixture,
          {"method": "gibbs", "n_components": 2, "n_draws": 20, "burn_in": 10,
           "n_chains": 2, "weight_concentration_prior_type": "dirichlet_process"},
          grid=_GAUSSIAN_MIXTURE_GRID, expected_failed_checks=_MIXTURE_FAILS),
    # missing='marginalize' on data with NaN (method='gibbs' refuses it)
    Entry("GaussianMixture-em-missing", GaussianMixture,
          {"method": "em", "n_components": 2, "missing": "marginalize"},
          data="dense_missing", grid=_COVARIANCE_TYPES, expected_failed_checks=_MIXTURE_FAILS),
    Entry("GaussianMixture-mean_field-missing", GaussianMixture,
          {"method": "mean_field", "n_components": 2, "missing": "marginalize"},
          data="dense_missing", grid=_COVARIANCE_TYPES, expected_failed_checks=_MIXTURE_FAILS),
    Entry("BayesianGaussianMixture-missing", BayesianGaussianMixture,
          {"n_components": 2, "missing": "marginalize",
           "weight_concentration_prior_type": "dirichlet_distribution"},
          data="dense_missing", grid=_COVARIANCE_TYPES, expected_failed_checks=_MIXTURE_FAILS),
    Entry("LatentDirichletAllocation-gibbs", LatentDirichletAllocation,
          {"method": "gibbs", "n_components": 3, "n_draws": 10, "burn_in": 10},
          data="counts", expected_failed_checks=_LDA_GIBBS_FAILS),
    Entry("LatentDirichletAllocation-mean_field-batch-monotone", LatentDirichletAllocation,
          {"method": "mean_field", "learning_method": "batch", "n_components": 3,
           "max_iter": 5, "monotone": True}, data="counts", partial_fit=True),
    Entry("LatentDirichletAllocation-mean_field-batch", LatentDirichletAllocation,
          {"method": "mean_field", "learning_method": "batch", "n_components": 3,
           "max_iter": 5}, data="counts", partial_fit=True),
    Entry("LatentDirichletAllocation-mean_field-online", LatentDirichletAllocation,
          {"method": "mean_field", "learning_method": "online", "n_components": 3,
           "max_iter": 5, "batch_size": 64}, data="counts", partial_fit=True),
    Entry("LatentDirichletAllocation-variational_em-batch", LatentDirichletAllocation,
          {"method": "variational_em", "learning_method": "batch", "n_components": 3,
           "max_iter": 5}, data="counts", partial_fit=True),
    Entry("LatentDirichletAllocation-variational_em-online", LatentDirichletAllocation,
          {"method": "variational_em", "learning_method": "online", "n_components": 3,
           "max_iter": 5, "batch_size": 64}, data="counts", partial_fit=True),
    Entry("GaussianHMM-em", GaussianHMM, {"method": "em", "n_components": 2, "n_iter": 5},
          grid=_COVARIANCE_TYPES, expected_failed_checks=_HMM_FAILS),
    Entry("CategoricalHMM-em", CategoricalHMM, {"method": "em", "n_components": 2,
                                                "n_iter": 5},
          data="symbols", expected_failed_checks=_CATEGORICAL_HMM_FAILS),
    Entry("GaussianHMM-mean_field", GaussianHMM,
          {"method": "mean_field", "n_components": 2, "n_iter": 5},
          grid=_COVARIANCE_TYPES, expected_failed_checks=_HMM_FAILS),
    Entry("GaussianHMM-gibbs", GaussianHMM,
          {"method": "gibbs", "n_components": 2, "n_draws": 20, "burn_in": 10, "n_chains": 2},
          grid=_COVARIANCE_TYPES, expected_failed_checks=_HMM_FAILS),
    Entry("CategoricalHMM-mean_field", CategoricalHMM,
          {"method": "mean_field", "n_components": 2, "n_iter": 5},
          data="symbols", expected_failed_checks=_CATEGORICAL_HMM_FAILS),
    Entry("CategoricalHMM-gibbs", CategoricalHMM,
          {"method": "gibbs", "n_components": 2, "n_draws": 20, "burn_in": 10, "n_chains": 2},
          data="symbols", expected_failed_checks=_CATEGORICAL_HMM_FAILS),
    Entry("PoissonHMM-em", PoissonHMM, {"method": "em", "n_components": 2, "n_iter": 5},
          data="counts", expected_failed_checks=_POISSON_HMM_FAILS),
    Entry("PoissonHMM-mean_field", PoissonHMM,
          {"method": "mean_field", "n_components": 2, "n_iter": 5},
          data="counts", expected_failed_checks=_POISSON_HMM_FAILS),
    Entry("PoissonHMM-gibbs", PoissonHMM,
          {"method": "gibbs", "n_components": 2, "n_draws": 20, "burn_in": 10, "n_chains": 2},
          data="counts", expected_failed_checks=_POISSON_HMM_FAILS),
    Entry("GMMHMM-em", GMMHMM, {"method": "em", "n_components": 2, "n_mix": 2, "n_iter": 5},
          grid=_COVARIANCE_TYPES, expected_failed_checks=_HMM_FAILS),
    Entry("GMMHMM-mean_field", GMMHMM,
          {"method": "mean_field", "n_components": 2, "n_mix": 2, "n_iter": 5},
          grid=_COVARIANCE_TYPES, expected_failed_checks=_HMM_FAILS),
    Entry("GMMHMM-gibbs", GMMHMM,
          {"method": "gibbs", "n_components": 2, "n_mix": 2, "n_draws": 20, "burn_in": 10,
           "n_chains": 2},
          grid=_COVARIANCE_TYPES, expected_failed_checks=_HMM_FAILS),
]

for _cls, _data in ((BernoulliMixture, "binary"), (CategoricalMixture, "categorical"),
                    (MultinomialMixture, "counts")):
    for _method in ("em", "mean_field", "gibbs"):
        _params = {"method": _method, **(_DISCRETE_GIBBS if _method == "gibbs"
                                         else _DISCRETE_PARAMS)}
        _name = f"{_cls.__name__}-{_method}"
        ESTIMATORS.append(Entry(_name, _cls, _params, data=_data,
                                expected_failed_checks=_DISCRETE_FAILS.get(_name, {}),
                                grid=({"weight_concentration_prior_type": ["dirichlet_process"]}
                                      if _method == "mean_field" else {}),
                                partial_fit=_method != "gibbs"))


def fitted_attributes(estimator):
    """The fitted attributes (public names ending in '_'), without the wall-clock trace."""
    return {k: v for k, v in vars(estimator).items()
            if k.endswith("_") and not k.startswith("_") and k != "iteration_times_"}


def fingerprint(value):
    """A bit-exact, comparable representation of a fitted attribute (arrays by their bytes,
    dtype and shape; floats by their bits; RandomState by its state)."""
    if isinstance(value, np.random.RandomState):
        state = value.get_state()
        return ("RandomState", state[0], state[1].tobytes(), state[2:])
    if isinstance(value, (tuple, list)):
        return (type(value).__name__,) + tuple(fingerprint(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, fingerprint(v)) for k, v in value.items()))
    if isinstance(value, (np.ndarray, np.generic, float)):
        arr = np.asarray(value)
        return ("array", arr.dtype.str, arr.shape, np.ascontiguousarray(arr).tobytes())
    return value


_PREDICTION_METHODS = ("predict", "predict_proba", "score_samples", "score", "transform",
                       "perplexity")


def prediction_outputs(estimator, X):
    """Every prediction method the estimator has, applied to X: {method name: output}."""
    return {name: getattr(estimator, name)(X) for name in _PREDICTION_METHODS
            if hasattr(estimator, name)}
