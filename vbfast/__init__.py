"""vbfast: latent-variable models fitted across the methods spectrum (Gibbs sampling, mean-field
variational Bayes, EM, variational EM), with Cython/OpenMP kernels and a scikit-learn-style API.
"""
from ._core.config import config_context, get_config, set_config
from .exceptions import (BoundDecreaseWarning, ConvergenceWarning, DegenerateComponentWarning,
                         NotFittedError)
from .mixture import BayesianGaussianMixture, GaussianMixture
from .mixture import BernoulliMixture, CategoricalMixture, MultinomialMixture
from .topics import LatentDirichletAllocation
from .hmm import CategoricalHMM, GaussianHMM, GMMHMM, PoissonHMM
from .spectrum import compare_methods

__version__ = "0.1.0"

__all__ = ["GaussianMixture", "BayesianGaussianMixture", "BernoulliMixture",
           "CategoricalMixture", "MultinomialMixture", "LatentDirichletAllocation",
           "GaussianHMM", "CategoricalHMM", "PoissonHMM", "GMMHMM", "compare_methods", "ConvergenceWarning",
           "BoundDecreaseWarning", "DegenerateComponentWarning", "NotFittedError",
           "get_config", "set_config", "config_context", "__version__"]
