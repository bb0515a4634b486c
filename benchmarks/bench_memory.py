"""Peak memory of a large Gaussian mixture fit, against the issue's budget.

N = 1,000,000 rows, D = 16, K = 16, float64, 'full' covariances, k-means initialisation,
10 EM iterations. Budget: 1.5 x (X + the N x K responsibilities) = 1.5 x (128 MB + 128 MB)
= 384 MB (10^6 bytes to the MB); the figure includes the interpreter, numpy and scipy.

``peakmem_fit`` is asv's measure (the peak resident memory of the benchmark process, X
included). ``track_peak_fraction_of_budget`` runs the fit in a fresh process that resets the
kernel's high-water mark (Linux ``/proc/self/clear_refs``) once X exists, so that it measures
X plus what the fit adds, and returns peak / budget (< 1 is within budget). The same
measurement as a script: ``python benchmarks/bench_memory.py``.

Measured on the 2-core dev machine (script, once): peak 265 MB = 0.69 x budget (X 128 MB +
interpreter and libraries ~72 MB + 65 MB added by the fit, mostly k-means++'s distance
buffers). Before two fixes it was 363 MB = 0.95 x budget: the k-means tolerance used
``np.var(X, axis=0)`` (an N x D temporary) and the initial responsibilities were an N x K
one-hot array (now labels expanded block by block). ``init_params='random'`` still draws an
N x K array (scikit-learn's random stream).

High-D 'full' covariances (issue 18, defect 12): ``HighDimFull`` fits K = 5, D = 2,000,
N = 3,000 (48 MB of float64 data; K D^2 = 160 MB per covariance-sized array) for 10 EM
iterations (tol=0) from the same start in both libraries (uniform weights, K random rows as
means, the inverse data covariance as every precision), each fit in a fresh process:
``track_peak_rss_mb`` is the process's peak RSS (X and the initial precisions included),
``track_fit_seconds`` the wall time of ``fit``. As a script, both libraries alternate and the
table also gives the memory the fit added and its CPU seconds (the time a loaded machine
distorts least):

    python benchmarks/bench_memory.py --highd [--repeat 2] [--threads 1] [--max-iter 10]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

try:  # asv imports this module as ``benchmarks.bench_memory``
    from ._asv import OneCallSamples
except ImportError:  # run as a script, or imported with benchmarks/ on sys.path
    from _asv import OneCallSamples

N_SAMPLES = 1_000_000
N_FEATURES = 16
N_COMPONENTS = 16
MAX_ITER = 10
BUDGET_BYTES = 1.5 * (N_SAMPLES * N_FEATURES * 8 + N_SAMPLES * N_COMPONENTS * 8)


def make_X(n_samples=N_SAMPLES, n_features=N_FEATURES, n_components=N_COMPONENTS, seed=0):
    """A float64 mixture sample written in place, chunk by chunk: no N-sized temporaries, so
    the process's peak is X plus the fit."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 4.0, size=(n_components, n_features))
    X = np.empty((n_samples, n_features))
    step = 65536
    for start in range(0, n_samples, step):
        stop = min(start + step, n_samples)
        labels = rng.integers(n_components, size=stop - start)
        X[start:stop] = means[labels] + rng.standard_normal((stop - start, n_features))
    return X


def fit(X):
    import warnings

    from vbfast import GaussianMixture

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixture(N_COMPONENTS, covariance_type="full", max_iter=MAX_ITER,
                               tol=0.0, random_state=0).fit(X)


def _vm_hwm_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure():
    """Peak RSS of (X + the fit) in this process, in bytes; Linux only."""
    import vbfast  # noqa: F401  (imports before the reset, as a user's would be)

    X = make_X()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark to the current RSS
    before = _vm_hwm_bytes()
    fit(X)
    peak = _vm_hwm_bytes()
    return {"rss_before_fit": before, "peak": peak, "budget": BUDGET_BYTES,
            "fraction_of_budget": peak / BUDGET_BYTES,
            "added_by_fit": peak - before}


class GaussianMixturePeakMemory(OneCallSamples):
    timeout = 3600
    repeat = 1

    def setup(self):
        self.X = make_X()

    def peakmem_fit(self):
        fit(self.X)

    def track_peak_fraction_of_budget(self):
        out = subprocess.run([sys.executable, os.path.abspath(__file__)], check=True,
                             capture_output=True, text=True).stdout
        return json.loads(out.splitlines()[-1])["fraction_of_budget"]

    track_peak_fraction_of_budget.unit = "peak / budget"


HIGHD_SAMPLES, HIGHD_FEATURES, HIGHD_COMPONENTS, HIGHD_ITER = 3000, 2000, 5, 10
HIGHD_LIBRARIES = ("vbfast", "sklearn")


def make_highd(n_samples=HIGHD_SAMPLES, n_features=HIGHD_FEATURES,
               n_components=HIGHD_COMPONENTS, seed=0):
    """(X, init): well-separated clusters (unit-variance noise about N(0, 1) centres), and the
    same start for both libraries: uniform weights, K random rows as means, the inverse data
    covariance (N > D) as every precision."""
    rng = np.random.default_rng(seed)
    K = n_components
    centres = rng.normal(size=(K, n_features))
    X = centres[rng.integers(K, size=n_samples)]
    X += rng.standard_normal(X.shape)
    means = X[np.sort(rng.choice(n_samples, K, replace=False))].copy()
    prec = np.linalg.inv(np.cov(X, rowvar=False))
    prec = 0.5 * (prec + prec.T)
    precisions = np.empty((K, n_features, n_features))
    precisions[:] = prec
    return X, {"weights_init": np.full(K, 1.0 / K), "means_init": means,
               "precisions_init": precisions}


def _highd_estimator(library, init, max_iter, threads):
    common = dict(n_components=len(init["weights_init"]), covariance_type="full", tol=0.0,
                  max_iter=max_iter, init_params="random_from_data", random_state=0, **init)
    if library == "vbfast":
        from vbfast import GaussianMixture

        return GaussianMixture(n_threads=threads, **common)
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(**common)


def measure_highd(library, max_iter=HIGHD_ITER, threads=None):
    """One high-D fit of ``library`` in this process: peak RSS, the RSS before the fit, wall
    and CPU seconds of ``fit``, the final lower bound. ``threads``: vbfast's n_threads and
    the BLAS limit (None: every core, BLAS's default)."""
    import warnings

    import threadpoolctl

    import sklearn.mixture  # noqa: F401  (both libraries loaded: the same baseline)
    import vbfast  # noqa: F401

    X, init = make_highd()
    limit = (threadpoolctl.threadpool_limits(limits=threads, user_api="blas")
             if threads is not None else None)
    est = _highd_estimator(library, init, max_iter, threads)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _vm_hwm_bytes()
    cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    seconds = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    if limit is not None:
        limit.restore_original_limits()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {"library": library, "peak": _vm_hwm_bytes(), "rss_before_fit": before,
            "seconds": seconds, "cpu_seconds": cpu, "lower_bound": float(est.lower_bound_),
            "n_iter": int(est.n_iter_)}


def run_highd(library, max_iter=HIGHD_ITER, threads=None):
    """``measure_highd`` in a fresh process (its peak RSS is the fit's alone)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--highd-worker", library,
           "--max-iter", str(max_iter)] + (["--threads", str(threads)] if threads else [])
    # the worker imports the vbfast this process imported (asv puts its build on sys.path,
    # not in the environment)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.splitlines()[-1])


def compare_highd(repeat=1, max_iter=HIGHD_ITER, threads=None):
    """Both libraries, alternating, ``repeat`` times; prints one row per fit."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"K={HIGHD_COMPONENTS} D={HIGHD_FEATURES} N={HIGHD_SAMPLES} full, {max_iter} EM "
          f"iterations, threads={threads or 'all'}; load average {load:.2f}")
    print("library   peak RSS MB  added by fit MB   fit s   CPU s   lower bound")
    for _ in range(repeat):
        for library in HIGHD_LIBRARIES:
            r = run_highd(library, max_iter, threads)
            added = r["peak"] - r["rss_before_fit"]
            print(f"{library:8s}  {r['peak'] / 1e6:11.0f}  {added / 1e6:15.0f}"
                  f"  {r['seconds']:6.1f}  {r['cpu_seconds']:6.1f}   {r['lower_bound']:.16g}",
                  flush=True)
    if hasattr(os, "getloadavg"):
        print(f"load average after: {os.getloadavg()[0]:.2f}")


class HighDimFull(OneCallSamples):
    """K = 5, D = 2,000, N = 3,000 'full' EM from the same start, per library (see the
    module docstring); each measurement is one fit in a fresh process."""

    params = list(HIGHD_LIBRARIES)
    param_names = ["library"]
    timeout = 3600
    repeat = 1

    def setup_cache(self):
        return {library: run_highd(library) for library in HIGHD_LIBRARIES}

    def track_peak_rss_mb(self, results, library):
        return results[library]["peak"] / 1e6

    track_peak_rss_mb.unit = "MB"

    def track_fit_seconds(self, results, library):
        return results[library]["seconds"]

    track_fit_seconds.unit = "seconds"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--highd", action="store_true",
                        help="the high-D full-covariance comparison (vbfast vs scikit-learn)")
    parser.add_argument("--highd-worker", choices=HIGHD_LIBRARIES, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--max-iter", type=int, default=HIGHD_ITER)
    parser.add_argument("--threads", type=int, default=None,
                        help="vbfast n_threads and the BLAS limit (default: every core)")
    args = parser.parse_args()
    if args.highd_worker:
        print(json.dumps(measure_highd(args.highd_worker, args.max_iter, args.threads)))
    elif args.highd:
        compare_highd(args.repeat, args.max_iter, args.threads)
    else:
        print(json.dumps(measure()))
