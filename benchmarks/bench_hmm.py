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

Libraries: 'vbfast' (every core), 'hmmlearn-scaling' and 'hmmlearn-log' (its default).

As a script, ``python benchmarks/bench_hmm.py [--scale 0.1] [--repeat 1]`` times every
workload once per library at ``scale`` times the sample count (and iterations for 'long')
and prints the times and the ratios hmmlearn / vbfast.
"""
import argparse
import time
import warnings

import numpy as np

LIBRARIES = ("vbfast", "hmmlearn-scaling", "hmmlearn-log")
WORKLOADS = {
    # name: (n_states, covariance_type, n_features, n_sequences, length, n_iter)
    "long": (4, "full", 1, 1, 50_000, 100),
    "many": (10, "diag", 8, 1_000, 1_000, 5),
    "short": (4, "diag", 2, 500, 10, 10),
    "one": (4, "diag", 2, 1, 5_000, 10),
}


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


def make_estimator(library, K, ctype, n_iter, start):
    if library == "vbfast":
        from vbfast.hmm import GaussianHMM

        est = GaussianHMM(K, ctype, init_params="", n_iter=n_iter, tol=0.0)
    else:
        from hmmlearn.hmm import GaussianHMM

        est = GaussianHMM(K, ctype, init_params="", n_iter=n_iter, tol=-np.inf,
                          implementation=library.split("-")[1])
    for name, value in start.items():
        setattr(est, name, value.copy())
    return est


class _HMMFit:
    workload = None
    scale = 1.0
    params = (list(LIBRARIES),)
    param_names = ["library"]
    timeout = 3600
    number = 1
    repeat = 1
    rounds = 1
    warmup_time = 0

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workloads", nargs="*", default=list(WORKLOADS))
    parser.add_argument("--libraries", nargs="*", default=list(LIBRARIES))
    args = parser.parse_args()
    all_times = {}
    for name in args.workloads:
        X, lengths, start, ctype, n_iter = make_workload(name, args.scale)
        K = len(start["startprob_"])
        print(f"{name}: X {X.shape}, {len(lengths)} sequence(s), K={K}, {ctype}, "
              f"{n_iter} iterations")
        times, bounds = {}, {}
        for library in args.libraries:
            best = np.inf
            for _ in range(args.repeat):
                est = make_estimator(library, K, ctype, n_iter, start)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t0 = time.perf_counter()
                    est.fit(X, lengths)
                    best = min(best, time.perf_counter() - t0)
            times[library] = best
            bounds[library] = est.monitor_.history[-1]
            print(f"  {library:18s} {best:9.3f} s   last log-likelihood {bounds[library]:.10g}")
        for library in args.libraries:
            if library != "vbfast" and "vbfast" in times:
                print(f"  vbfast is {times[library] / times['vbfast']:.1f}x {library}")
        all_times[name] = times
    if "short" in all_times and "one" in all_times:
        for library, t in all_times["short"].items():
            if library in all_times["one"]:
                print(f"per-sequence overhead, {library}: 500 x 10 costs "
                      f"{t / all_times['one'][library]:.2f}x one sequence of 5,000")


if __name__ == "__main__":
    main()
