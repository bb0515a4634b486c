"""Gibbs sampling for the Gaussian mixture: sweeps per second.

The data of ``bench_mixture.py`` (``_data.make_data``: N=200,000, D=16, float64) and K=16
components, for each covariance type, with the default priors (those of
``BayesianGaussianMixture``). One sweep is the sampled-z kernel pass over all N rows (log
densities, normalise, draw z, hard-count statistics, log p(X, z | theta)) followed by the
K-sized draws of theta | z. There is no peer library with a parallel Gibbs sampler for
Gaussian mixtures to run side by side, so this suite reports vbfast alone:
``track_sweeps_per_second`` is the figure quoted in the README.

    python benchmarks/bench_gibbs_mixture.py [--n-samples 200000] [--sweeps 5]

prints s/sweep and sweeps/s per covariance type.
"""
import time

import numpy as np

try:  # asv imports this module as ``benchmarks.bench_gibbs_mixture``
    from . import _data
except ImportError:  # run as a script
    import _data

N_SWEEPS = 5


def make_state(X, covariance_type, n_components=_data.N_COMPONENTS, n_threads=None):
    """A started chain (one sweep already run, so theta is a draw given real counts)."""
    import vbfast
    from vbfast.emissions import gaussian_prior as BG
    from vbfast.emissions import gaussian as G
    from vbfast.mixture import _gibbs as GS
    from vbfast._core.threads import resolve_n_threads

    est = vbfast.BayesianGaussianMixture(n_components=n_components,
                                         covariance_type=covariance_type, method="gibbs")
    data = G.GaussianPass(X, None, covariance_type, n_components,
                          resolve_n_threads(n_threads))
    priors = BG.resolve_priors(est, data)
    rng = np.random.default_rng(0)
    resp = np.eye(n_components)[rng.integers(0, n_components, X.shape[0])]
    state = GS.GibbsFitState.from_resp(data, covariance_type, priors, rng, 12345, resp)
    state.step()
    return state


class GaussianMixtureGibbsSweep:
    """One Gibbs sweep on N=200,000 x D=16, K=16, every core."""

    params = list(_data.COVARIANCE_TYPES)
    param_names = ["covariance_type"]
    timeout = 600

    def setup_cache(self):
        return _data.make_data()

    def setup(self, X, covariance_type):
        from vbfast._core.threads import single_threaded_blas

        self._blas = single_threaded_blas()
        self._blas.__enter__()
        self.state = make_state(X, covariance_type)

    def teardown(self, X, covariance_type):
        self._blas.__exit__(None, None, None)

    def time_sweep(self, X, covariance_type):
        self.state.step()

    def track_sweeps_per_second(self, X, covariance_type):
        t0 = time.perf_counter()
        for _ in range(N_SWEEPS):
            self.state.step()
        return N_SWEEPS / (time.perf_counter() - t0)

    track_sweeps_per_second.unit = "sweeps/s"


def main():
    import argparse

    from vbfast._core.threads import single_threaded_blas

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=_data.N_SAMPLES)
    parser.add_argument("--sweeps", type=int, default=N_SWEEPS)
    parser.add_argument("--n-threads", type=int, default=None)
    args = parser.parse_args()
    X = _data.make_data(n_samples=args.n_samples)
    print(f"N={X.shape[0]} D={X.shape[1]} K={_data.N_COMPONENTS}, {args.sweeps} sweeps")
    with single_threaded_blas():
        for ctype in _data.COVARIANCE_TYPES:
            state = make_state(X, ctype, n_threads=args.n_threads)
            t0 = time.perf_counter()
            for _ in range(args.sweeps):
                state.step()
            per_sweep = (time.perf_counter() - t0) / args.sweeps
            print(f"{ctype:10s} {per_sweep:8.4f} s/sweep  {1 / per_sweep:7.2f} sweeps/s")


if __name__ == "__main__":
    main()
