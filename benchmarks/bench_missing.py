"""Missing values: a fit with 10% of the values missing at random against the complete-data
fit of the same data (issue 19's target: N = 200,000, D = 16, K = 16, 'full', at most 3x).

Both fits start EM from the same parameters (``_data.make_init`` on the complete data) and
run the same number of iterations (tol=0); the ratio is of the median per-iteration times
(``iteration_times_``, the passes and M-steps; the one-off grouping of rows by pattern and
the imputed copy are timed separately as "setup"). The two sides alternate, best of
``--repeat``, so that the load of a shared machine hits both alike.

    python benchmarks/bench_missing.py [--repeat 3] [--iters 10] [--frac 0.1] [--types full]

As an asv suite: ``MissingFit.time_fit`` (10 iterations, 'full') for ``missing`` in
error (complete data) / marginalize (10% NaN).
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    from . import _data
except ImportError:
    import _data

from vbfast import GaussianMixture


def make_missing(X, frac, seed=1):
    """X with each value NaN with probability ``frac`` (missing completely at random)."""
    rng = np.random.default_rng(seed)
    Xm = X.copy()
    Xm[rng.random(X.shape) < frac] = np.nan
    return Xm


def fit(X, covariance_type, init, iters, missing):
    gm = GaussianMixture(_data.N_COMPONENTS, covariance_type=covariance_type, tol=0.0,
                         max_iter=iters, missing=missing, **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        gm.fit(X)
        total = time.perf_counter() - t0
    return total, float(np.median(gm.iteration_times_)), gm


class MissingFit:
    params = (["error", "marginalize"],)
    param_names = ["missing"]
    timeout = 600

    def setup(self, missing):
        X = _data.make_data()
        self.init = _data.make_init(X, "full")
        self.X = X if missing == "error" else make_missing(X, 0.1)

    def time_fit(self, missing):
        fit(self.X, "full", self.init, 10, missing)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--frac", type=float, default=0.1)
    ap.add_argument("--types", nargs="+", default=["full"])
    args = ap.parse_args()
    X = _data.make_data()
    Xm = make_missing(X, args.frac)
    complete = np.mean(~np.isnan(Xm).any(axis=1))
    from vbfast.emissions.gaussian_missing import Patterns
    n_pat = Patterns(Xm).n_patterns
    print(f"N={X.shape[0]} D={X.shape[1]} K={_data.N_COMPONENTS} missing {args.frac:.0%}: "
          f"{complete:.1%} complete rows, {n_pat} patterns; load {os.getloadavg()}")
    for ctype in args.types:
        init = _data.make_init(X, ctype)
        best = {"error": (np.inf, np.inf), "marginalize": (np.inf, np.inf)}
        for _ in range(args.repeat):
            for name, data in (("error", X), ("marginalize", Xm)):
                total, per_iter, _ = fit(data, ctype, init, args.iters, name)
                best[name] = (min(best[name][0], total), min(best[name][1], per_iter))
        (t_c, i_c), (t_m, i_m) = best["error"], best["marginalize"]
        print(f"{ctype:9s} complete: fit {t_c:.2f} s, {i_c * 1e3:.0f} ms/iter | "
              f"10% missing: fit {t_m:.2f} s, {i_m * 1e3:.0f} ms/iter | "
              f"ratio per iter {i_m / i_c:.2f}, whole fit {t_m / t_c:.2f}")


if __name__ == "__main__":
    main()
