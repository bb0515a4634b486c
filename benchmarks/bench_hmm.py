"""Hidden Markov model (Baum-Welch EM) benchmarks: vbfast and hmmlearn side by side, from the
same starting parameters (``init_params=''``), exactly N_ITER iterations (tol=0 for vbfast,
tol=-inf for hmmlearn, whose monitor stops on a gain below tol).

Workloads (issue 15):

- 'long': hmmlearn's own ``scripts/benchmark.py`` Gaussian workload: 4 states, full
  covariance, 1-D, one sequence of T = 50,000, 100 iterations.
- 'many': 1,000 sequences of 1,000, 10 states, D = 8, diag covariance, 5 iterations.
- 'short' and 'one': the per-sequence overhead, 500 sequences of 10 against one sequence of
  5,000 (4 states, D = 2, diag, 10 iterations; never scaled); the script prints each
  library's ratio short / one (target for vbfast: <= 1.5).

- 'gibbs': the 'many' data sampled by vbfast's blocked Gibbs sampler (FFBS, then theta |
  states; one chain, GIBBS_SWEEPS sweeps): sweeps per second (hmmlearn has no sampler).

Libraries: 'vbfast' (``--threads``, default 2), 'hmmlearn-scaling' and 'hmmlearn-log' (its
default).

As a script, ``python benchmarks/bench_hmm.py [--scale 0.1] [--repeat 3]`` times every
workload ``repeat`` times per library, the libraries alternated within each round, and
prints the best times, the ratios hmmlearn / vbfast from that same run, the per-sequence
overhead ratio ('short' / 'one') of each library, Gibbs sweeps per second, and the load
average before and after.
"""
import os
import argparse
import time
import warnings

import numpy as np

try:  # asv imports this module as ``benchmarks.bench_hmm``
    from ._asv import OneCallSamples
except ImportError:  # run as a script, or imported with benchmarks/ on sys.path
    from _asv import OneCallSamples

LIBRARIES = ("vbfast", "hmmlearn-scaling", "hmmlearn-log")
WORKLOADS = {
    # name: (n_states, covariance_type, n_features, n_sequences, length, n_iter)
    "long": (4, "full", 1, 1, 50_000, 100),
    "many": (10, "diag", 8, 1_000, 1_000, 5),
    "short": (4, "diag", 2, 500, 10, 10),
    "one": (4, "diag", 2, 1, 5_000, 10),
}
GIBBS_SWEEPS = 5


def make_workload(name, scale=1.0, seed=0):
    """(X, lengths, start parameters dict, covariance_type, n_iter) of a workload, with
    ``scale`` times the samples (sequence length for 'long', sequence count for 'many')."""
    K, ctype, D, S, T, n_iter = WORKLOADS[name]
    if name == "long":
        T = max(100, int(T * scale))
    elif name == "many":
        S = max(2, int(S * scale))
    rng = np.random.RandomState(seed)
    means = rng.normal(scale=3.0, size=(K, D))
    trans = rng.dirichlet(np.full(K, 1.0), size=K) + 4 * np.eye(K)
    trans /= trans.sum(axis=1, keepdims=True)
    N = S * T
    z = np.empty(N, dtype=int)
    for s in range(S):
        z[s * T] = rng.randint(K)
        u = rng.rand(T)
        cdf = np.cumsum(trans, axis=1)
        for t in range(1, T):
            z[s * T + t] = min(int(np.searchsorted(cdf[z[s * T + t - 1]], u[t])), K - 1)
    X = means[z] + rng.normal(size=(N, D))
    lengths = np.full(S, T)
    # the start: perturbed truth, flat transitions (the same for both libraries)
    start = {"startprob_": np.full(K, 1.0 / K),
             "transmat_": np.full((K, K), 1.0 / K),
             "means_": means + rng.normal(scale=0.5, size=means.shape),
             "covars_": (np.tile(np.eye(D) * 1.5, (K, 1, 1)) if ctype == "full"
                         else np.full((K, D), 1.5))}
    return X, lengths, start, ctype, n_iter


def make_estimator(library, K, ctype, n_iter, start, n_threads=None, method="em"):
    if library == "vbfast":
        from vbfast.hmm import GaussianHMM

        est = GaussianHMM(K, ctype, init_params="", n_iter=n_iter, tol=0.0,
                          n_threads=n_threads)
        if method == "gibbs":
            est.set_params(method="gibbs", n_draws=GIBBS_SWEEPS - 1, burn_in=1, n_chains=1,
                           random_state=0)
    else:
        from hmmlearn.hmm import GaussianHMM

        est = GaussianHMM(K, ctype, init_params="", n_iter=n_iter, tol=-np.inf,
                          implementation=library.split("-")[1])
    for name, value in start.items():
        setattr(est, name, value.copy())
    return est


class _HMMFit(OneCallSamples):
    workload = None
    scale = 1.0
    params = (list(LIBRARIES),)
    param_names = ["library"]
    timeout = 3600
    repeat = 1

    def setup_cache(self):
        return make_workload(self.workload, self.scale)

    def setup(self, cache, library):
        if library.startswith("hmmlearn"):
            try:
                import hmmlearn  # noqa: F401
            except ImportError:
                raise NotImplementedError("hmmlearn is not installed")
        self.cache = cache

    def time_fit(self, cache, library):
        X, lengths, start, ctype, n_iter = cache
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make_estimator(library, len(start["startprob_"]), ctype, n_iter, start).fit(
                X, lengths)


class HMMLongSequence(_HMMFit):
    """hmmlearn's benchmark workload: 4 states, full, 1-D, T = 50,000, 100 iterations."""

    workload = "long"


class HMMManySequences(_HMMFit):
    """1,000 x 1,000, 10 states, D = 8, diag, 5 iterations."""

    workload = "many"


class HMMShortSequences(_HMMFit):
    """Per-sequence overhead: 500 sequences of 10 (compare with HMMOneSequence)."""

    workload = "short"


class HMMOneSequence(_HMMFit):
    """Per-sequence overhead: one sequence of 5,000 (compare with HMMShortSequences)."""

    workload = "one"


class HMMGibbsManySequences(OneCallSamples):
    """Blocked Gibbs (FFBS) on the 'many' data: GIBBS_SWEEPS sweeps, one chain."""

    timeout = 3600
    repeat = 1

    def setup_cache(self):
        return make_workload("many")

    def time_gibbs(self, cache):
        X, lengths, start, ctype, _ = cache
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make_estimator("vbfast", len(start["startprob_"]), ctype, 1, start,
                           method="gibbs").fit(X, lengths)


def _fit_time(library, X, lengths, start, ctype, n_iter, n_threads, method="em"):
    est = make_estimator(library, len(start["startprob_"]), ctype, n_iter, start, n_threads,
                         method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est.fit(X, lengths)
        return time.perf_counter() - t0, est


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workloads", nargs="*", default=list(WORKLOADS) + ["gibbs"])
    parser.add_argument("--libraries", nargs="*", default=list(LIBRARIES))
    args = parser.parse_args()
    # imports outside the timings
    import vbfast.hmm  # noqa: F401
    if any(library.startswith("hmmlearn") for library in args.libraries):
        import hmmlearn.hmm  # noqa: F401
    print(f"load average before: {os.getloadavg()[0]:.1f}; vbfast n_threads={args.threads}; "
          f"best of {args.repeat}, libraries alternated")
    all_times = {}
    for name in args.workloads:
        if name == "gibbs":
            X, lengths, start, ctype, _ = make_workload("many", args.scale)
            best = min(_fit_time("vbfast", X, lengths, start, ctype, 1, args.threads,
                                 "gibbs")[0] for _ in range(args.repeat))
            print(f"gibbs (the 'many' data, one chain, {GIBBS_SWEEPS} sweeps): {best:.3f} s, "
                  f"{GIBBS_SWEEPS / best:.2f} sweeps/s, "
                  f"{GIBBS_SWEEPS * len(X) / best / 1e6:.2f} M rows x sweeps / s")
            continue
        X, lengths, start, ctype, n_iter = make_workload(name, args.scale)
        K = len(start["startprob_"])
        print(f"{name}: X {X.shape}, {len(lengths)} sequence(s), K={K}, {ctype}, "
              f"{n_iter} iterations")
        times = {library: np.inf for library in args.libraries}
        bounds = {}
        for _ in range(args.repeat):
            for library in args.libraries:
                t, est = _fit_time(library, X, lengths, start, ctype, n_iter, args.threads)
                times[library] = min(times[library], t)
                bounds[library] = est.monitor_.history[-1]
        for library in args.libraries:
            print(f"  {library:18s} {times[library]:9.3f} s   last log-likelihood "
                  f"{bounds[library]:.10g}")
        for library in args.libraries:
            if library != "vbfast" and "vbfast" in times:
                print(f"  vbfast is {times[library] / times['vbfast']:.1f}x {library}")
        all_times[name] = times
    if "short" in all_times and "one" in all_times:
        for library, t in all_times["short"].items():
            if library in all_times["one"]:
                print(f"per-sequence overhead, {library}: 500 x 10 costs "
                      f"{t / all_times['one'][library]:.2f}x one sequence of 5,000")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
