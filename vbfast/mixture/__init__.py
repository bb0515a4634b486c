"""Mixture models."""
from .gaussian import BayesianGaussianMixture, GaussianMixture
from .discrete import BernoulliMixture, CategoricalMixture, MultinomialMixture

__all__ = ["GaussianMixture", "BayesianGaussianMixture", "BernoulliMixture",
           "CategoricalMixture", "MultinomialMixture"]
