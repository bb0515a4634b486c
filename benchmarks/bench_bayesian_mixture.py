"""Bayesian (mean-field) Gaussian mixture benchmarks: vbfast and scikit-learn side by side.

The data of ``bench_mixture.py`` (``_data.make_data``: N=200,000, D=16, float64), K=16
components, exactly ``MAX_ITER`` = 20 iterations (tol=0, n_init=1), for each covariance type,
with scikit-learn's default priors (Dirichlet process, data mean and covariance).

Both libraries start from the same initial responsibilities: ``init_params='random'`` with
``random_state=0`` draws the same uniform (N, K) responsibilities in both
(``RandomState.uniform``, rows normalised), so their first q(theta) update and every iteration
after it coincide (``compare_bayesian`` below checks that the final ELBOs agree up to vbfast's
documented offset). vbfast runs on every core
(``n_threads=None``); scikit-learn uses its BLAS's default thread count.

    python benchmarks/bench_bayesian_mixture.py [--n-samples 200000] [--repeat 1]
                                                [--blas-threads N]

prints s/iter for each library and covariance type and the ratio sklearn / vbfast.
"""
import warnings

import numpy as np

try:  # asv imports this module as ``benchmarks.bench_bayesian_mixture``
    from . import _data
    from ._asv import OneCallSamples
except ImportError:  # run as a script, or imported with benchmarks/ on sys.path
    import _data
    from _asv import OneCallSamples


def make_bayesian_estimator(library, covariance_type, n_components=_data.N_COMPONENTS,
                            max_iter=_data.MAX_ITER):
    """An unfitted BayesianGaussianMixture of ``library`` running max_iter iterations exactly
    from the responsibilities that ``init_params='random'`` gives with seed 0.

    ('random_from_data' would also draw the same rows in both, but its responsibilities are
    zero on all other rows, and from such rows scikit-learn's 'tied' initial covariance uses
    the uncentred X^T X, which depends on the origin; vbfast's is centred, so the 'tied' fits
    would start apart.)"""
    common = dict(n_components=n_components, covariance_type=covariance_type, tol=0.0,
                  max_iter=max_iter, n_init=1, init_params="random",
                  random_state=0)
    if library == "vbfast":
        import vbfast

        return vbfast.BayesianGaussianMixture(n_threads=None, **common)
    if library == "sklearn":
        from sklearn.mixture import BayesianGaussianMixture

        return BayesianGaussianMixture(**common)
    raise ValueError(f"unknown library {library!r}")


def _fit(library, covariance_type, X):
    est = make_bayesian_estimator(library, covariance_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X)


class BayesianGaussianMixtureFit(OneCallSamples):
    """One mean-field fit of MAX_ITER iterations from fixed initial responsibilities."""

    params = (list(_data.COVARIANCE_TYPES), list(_data.LIBRARIES))
    param_names = ["covariance_type", "library"]
    timeout = 900
    repeat = 3

    def setup_cache(self):
        return _data.make_data()

    def setup(self, X, covariance_type, library):
        # import the library before the timed call
        make_bayesian_estimator(library, covariance_type)

    def time_fit(self, X, covariance_type, library):
        _fit(library, covariance_type, X)

    def peakmem_fit(self, X, covariance_type, library):
        _fit(library, covariance_type, X)


def compare_bayesian(n_samples=_data.N_SAMPLES, repeat=1, blas_threads=None):
    """Best-of-``repeat`` fit time per iteration (fit wall time / n_iter_, so including the
    initialisation) of both libraries; prints a table with the ratio sklearn / vbfast and the
    relative gap between vbfast's ELBO minus the documented offset and scikit-learn's bound.
    On a loaded machine multithreaded BLAS can slow scikit-learn down many-fold on these small
    products; ``blas_threads=1`` is the fairer comparison then."""
    import time

    if blas_threads is not None:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=blas_threads, user_api="blas"):
            return compare_bayesian(n_samples, repeat)
    X = _data.make_data(n_samples=n_samples)
    print(f"N={X.shape[0]}, D={X.shape[1]}, K={_data.N_COMPONENTS}, "
          f"{_data.MAX_ITER} iterations")
    print(f"{'covariance':>10} {'vbfast s/it':>12} {'sklearn s/it':>13} {'ratio':>7} "
          f"{'|dLB| rel':>10}")
    for ct in _data.COVARIANCE_TYPES:
        best = {}
        fitted = {}
        for _ in range(repeat):
            for lib in _data.LIBRARIES:
                t0 = time.perf_counter()
                est = _fit(lib, ct, X)
                t = (time.perf_counter() - t0) / est.n_iter_
                best[lib] = min(best.get(lib, np.inf), t)
                fitted[lib] = est
        vb, sk = fitted["vbfast"], fitted["sklearn"]
        from vbfast.emissions.gaussian import GaussianPass
        from vbfast.emissions.gaussian_prior import resolve_priors, sklearn_bound_offset

        # the priors the fit used (defaults filled in from X)
        priors = resolve_priors(vb, GaussianPass(X, None, ct, _data.N_COMPONENTS, 1))
        offset = sklearn_bound_offset(priors, ct, _data.N_COMPONENTS, X.shape[1], X.shape[0])
        # with reg_covar > 0 the difference also holds reg/2 sum_k N_k tr(E[Lambda_k])
        P = np.asarray(vb.precisions_)
        nk = vb.mean_precision_ - vb.mean_precision_prior_
        tr = {"full": lambda: np.trace(P, axis1=1, axis2=2), "tied": lambda: np.trace(P),
              "diag": lambda: P.sum(axis=1), "spherical": lambda: X.shape[1] * P}[ct]()
        offset += 0.5 * vb.reg_covar * float(np.sum(nk * tr))
        d = abs(vb.lower_bound_ - offset - float(np.ravel(sk.lower_bound_)[0]))
        print(f"{ct:>10} {best['vbfast']:12.4f} {best['sklearn']:13.4f} "
              f"{best['sklearn'] / best['vbfast']:7.2f} {d / abs(vb.lower_bound_):10.1e}")


if __name__ == "__main__":
    import argparse
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-samples", type=int, default=_data.N_SAMPLES)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="limit BLAS (scikit-learn) to this many threads")
    args = parser.parse_args()
    compare_bayesian(args.n_samples, args.repeat, args.blas_threads)
