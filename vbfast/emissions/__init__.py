"""Emission units: the per-component densities, their statistics and conjugate priors, shared
by every family (mixtures now, hidden Markov models next)."""
