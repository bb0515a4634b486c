"""Mixture models."""
from .gaussian import BayesianGaussianMixture, GaussianMixture

__all__ = ["GaussianMixture", "BayesianGaussianMixture"]
