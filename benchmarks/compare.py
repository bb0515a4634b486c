"""vbfast against scikit-learn, side by side in one process, without asv.

    python benchmarks/compare.py [--repeat 3] [--n-samples 200000] [--max-iter 20] [--memory]
                                 [--blas-threads N]

For each covariance type, both libraries fit the same data (``_data.make_data``) from the same
initial parameters (``_data.make_init``) for exactly ``--max-iter`` EM iterations (tol=0), and
score the data once with ``score_samples``. Each time is the best of ``--repeat`` runs (the two
libraries alternate within a repeat). The table gives

- fit s/iter: wall time of ``fit`` divided by ``n_iter_`` (the user's view: it includes each
  library's set-up, e.g. scikit-learn's extra initial M-step; vbfast's ``iteration_times_``
  median is printed in the ``vbfast iter`` column for the loop alone),
- score_samples seconds for one pass over the N rows,
- ratio = sklearn / vbfast (> 1 means vbfast is faster),
- |dLB|: the difference of the final lower bounds, a check that both ran the same EM.

A last line relates the full-covariance E-step to a NumPy (N, D) @ (D, K*D) matmul of the same
FLOP count (2 N K D^2) on BLAS's default threads. ``--memory`` adds the peak of the memory
allocated through Python and NumPy (tracemalloc) during one more fit of each library; C-level
allocations outside NumPy are not counted. ``--blas-threads N`` limits BLAS (scikit-learn and
the matmul reference) to N threads; by default BLAS keeps its own default (every core). On a
loaded machine multithreaded OpenBLAS can slow scikit-learn down several-fold on these small
(D=16) products, so when the ratios look extreme, compare with ``--blas-threads 1``.

vbfast must be importable (``pip install .``); failing that, the repository root holding this
script is tried (an in-place build, ``python setup.py build_ext --inplace``).
"""
import argparse
import os
import sys
import time

import numpy as np

if __package__:  # python -m benchmarks.compare
    from . import _data
else:  # python benchmarks/compare.py: benchmarks/ is sys.path[0]
    import importlib.util

    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, _here)
    if importlib.util.find_spec("vbfast") is None:  # not installed: try an in-place build
        sys.path.insert(1, os.path.dirname(_here))
    import _data


def _best_of(fn, repeat):
    best = float("inf")
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _peak_traced_bytes(fn):
    import tracemalloc

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _warm_up(X, libraries):
    """A tiny fit and score per library: imports, thread pools and lazy state out of the timing."""
    small = np.ascontiguousarray(X[:2000])
    init = _data.make_init(small, "full")
    for lib in libraries:
        model = _data.fit_quietly(_data.make_estimator(lib, "full", init, max_iter=2), small)
        model.score_samples(small)


def run(n_samples, max_iter, repeat, covariance_types, memory, blas_threads=None,
        out=sys.stdout):
    if blas_threads is not None:
        import threadpoolctl

        # load every BLAS first (scipy's comes with scikit-learn and vbfast): threadpoolctl
        # limits only the libraries already loaded
        _data.import_libraries()

        with threadpoolctl.threadpool_limits(limits=blas_threads, user_api="blas"):
            return run(n_samples, max_iter, repeat, covariance_types, memory, None, out)
    libs = _data.LIBRARIES
    X = _data.make_data(n_samples=n_samples)
    n, d = X.shape
    k = _data.N_COMPONENTS
    _warm_up(X, libs)

    import sklearn
    import threadpoolctl
    import vbfast
    from vbfast._core.threads import resolve_n_threads

    blas = [f"{i['internal_api']} {i['num_threads']} threads"
            for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    print(f"N={n} D={d} K={k} float64, max_iter={max_iter} (tol=0), best of {repeat}; "
          f"vbfast {getattr(vbfast, '__version__', '?')} n_threads={resolve_n_threads(None)}, "
          f"scikit-learn {sklearn.__version__} ({', '.join(blas) or 'BLAS ?'}); "
          f"{os.cpu_count()} cores", file=out)
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()[0]
        print(f"load average before the runs: {load:.2f}", file=out)
        if load > 0.5 * (os.cpu_count() or 1):
            print("warning: the machine is busy; multithreaded BLAS (scikit-learn) slows down "
                  "several-fold under contention, so the ratios are unreliable "
                  "(rerun when idle, or compare with --blas-threads 1)", file=out)

    header = (f"{'covariance':<10} {'vbfast s/iter':>13} {'sklearn s/iter':>14} {'ratio':>6} "
              f"{'vbfast iter':>11} {'vbfast score s':>14} {'sklearn score s':>15} "
              f"{'ratio':>6} {'|dLB|':>8}")
    if memory:
        header += f" {'vbfast MB':>9} {'sklearn MB':>10}"
    print(header, file=out)
    print("-" * len(header), file=out)

    score_full = {}
    for ct in covariance_types:
        init = _data.make_init(X, ct)
        fit_t = {lib: float("inf") for lib in libs}
        models = {}
        for _ in range(repeat):
            for lib in libs:
                est = _data.make_estimator(lib, ct, init, max_iter=max_iter)
                t0 = time.perf_counter()
                _data.fit_quietly(est, X)
                fit_t[lib] = min(fit_t[lib], time.perf_counter() - t0)
                models[lib] = est
        n_iter = {lib: models[lib].n_iter_ for lib in libs}
        if n_iter["vbfast"] != n_iter["sklearn"]:
            print(f"warning: {ct}: n_iter_ differs: {n_iter}", file=out)
        per_iter = {lib: fit_t[lib] / max(n_iter[lib], 1) for lib in libs}
        loop_iter = float(np.median(models["vbfast"].iteration_times_))
        score_t = {lib: _best_of(lambda m=models[lib]: m.score_samples(X), repeat)[0]
                   for lib in libs}
        if ct == "full":
            score_full = score_t
        dlb = abs(float(models["vbfast"].lower_bound_) - float(models["sklearn"].lower_bound_))
        line = (f"{ct:<10} {per_iter['vbfast']:>13.4f} {per_iter['sklearn']:>14.4f} "
                f"{per_iter['sklearn'] / per_iter['vbfast']:>6.2f} {loop_iter:>11.4f} "
                f"{score_t['vbfast']:>14.4f} {score_t['sklearn']:>15.4f} "
                f"{score_t['sklearn'] / score_t['vbfast']:>6.2f} {dlb:>8.1e}")
        if memory:
            mb = {lib: _peak_traced_bytes(lambda lib=lib: _data.fit_quietly(
                _data.make_estimator(lib, ct, init, max_iter=max_iter), X)) / 2**20
                for lib in libs}
            line += f" {mb['vbfast']:>9.1f} {mb['sklearn']:>10.1f}"
        print(line, file=out)

    W, buf = _data.matmul_operands(X)
    t_mm, _ = _best_of(lambda: _data.chunked_matmul(X, W, buf), repeat)
    flops = _data.estep_flops(n, d, k)
    line = (f"\nBLAS reference: (N, D) @ (D, K*D) matmul, {flops / 1e9:.2f} GFLOP: "
            f"{t_mm:.4f} s = {flops / t_mm / 1e9:.1f} GFLOP/s")
    if score_full:
        line += ("; full score_samples at the same FLOP count: "
                 + ", ".join(f"{lib} {flops / score_full[lib] / 1e9:.1f} GFLOP/s "
                             f"({score_full[lib] / t_mm:.2f}x the matmul time)" for lib in libs))
    print(line, file=out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best kept)")
    parser.add_argument("--n-samples", type=int, default=_data.N_SAMPLES)
    parser.add_argument("--max-iter", type=int, default=_data.MAX_ITER)
    parser.add_argument("--covariance-types", nargs="+", default=list(_data.COVARIANCE_TYPES),
                        choices=_data.COVARIANCE_TYPES)
    parser.add_argument("--memory", action="store_true",
                        help="also report the peak traced (Python/NumPy) memory of one fit")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="limit BLAS to this many threads (default: BLAS's own default)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    run(args.n_samples, args.max_iter, args.repeat, args.covariance_types, args.memory,
        args.blas_threads)


if __name__ == "__main__":
    main()
