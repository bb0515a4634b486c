"""Hidden Markov models (hmmlearn's API), fitted by Baum-Welch EM, mean-field variational Bayes
or blocked Gibbs sampling through vbfast's loop, with a scaled forward-backward, Viterbi and
forward-filtering backward-sampling in C, parallel over sequences."""
from .base import ConvergenceMonitor
from .categorical import CategoricalHMM
from .gaussian import GaussianHMM
from .gmm import GMMHMM
from .poisson import PoissonHMM

__all__ = ["GaussianHMM", "CategoricalHMM", "PoissonHMM", "GMMHMM", "ConvergenceMonitor"]
