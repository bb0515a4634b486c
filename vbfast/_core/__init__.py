"""The shared core: estimator base, the fitting loop, validation, threads, configuration,
MCMC diagnostics and the k-means initialisation."""
