"""Issue 17's Gaussian-mixture targets in one run: vbfast against scikit-learn, side by side.

    python benchmarks/gmm_targets.py [--repeat 2] [--n-samples 200000] [--max-iter 20]
                                     [--cases full tied diag spherical bgm_full bgm_diag
                                              pycave_full pycave_diag] [--pycave-max-iter 5]

For each case both libraries fit the same data (``_data.make_data``: D = 16, K = 16) for exactly
``--max-iter`` iterations (tol=0) from the same start (GaussianMixture: ``_data.make_init``;
BayesianGaussianMixture: ``bench_bayesian_mixture.make_bayesian_estimator``), alternating
within each repeat; each time is the best of ``--repeat``. Two cases, run only when named, are
PyCave's published workloads, each with its own data and start by the same rules:
``pycave_full``, 'full' at N = 100,000, D = 32, K = 16 (``_data.PYCAVE_FULL``, ``--max-iter``
iterations whatever ``--n-samples``), and ``pycave_diag``, 'diag' at N = 1,000,000, D = 64,
K = 64 (``_data.PYCAVE_DIAG``, ``--pycave-max-iter`` iterations). Printed per case:

- s/iter of each library (wall time of ``fit`` / ``n_iter_``, each fit started ``SETTLE``
  seconds after the previous one) and ratio = sklearn / vbfast;
- vbfast on the data as float32: s/iter and the ratio float64 / float32 (> 1: float32 faster),
  and the largest relative difference of the fitted means from the float64 fit's;
- GFLOP/s of vbfast's float64 fit counted in scikit-learn's formulation (``model_flops``),
  and that as a fraction of this run's DGEMM rate (a 2,000 x 2,000 NumPy matmul on BLAS's
  default threads, best of 3, measured first, under the same load).

The machine's load average is printed: on a shared machine use the ratios, not the times.
"""
import argparse
import os
import sys
import time

import numpy as np

if __package__:
    from . import _data
    from .bench_bayesian_mixture import make_bayesian_estimator
else:
    import importlib.util

    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, _here)
    if importlib.util.find_spec("vbfast") is None:
        sys.path.insert(1, os.path.dirname(_here))
    import _data
    from bench_bayesian_mixture import make_bayesian_estimator

# Seconds of sleep before each timed fit: OpenBLAS's worker threads spin for about 0.1 s
# (2^28 cycles) after a multi-threaded BLAS call (the DGEMM rate, scikit-learn's fit) and would
# share a core with the next fit's threads, whichever library it is.
SETTLE = 0.3

DEFAULT_CASES = ("full", "tied", "diag", "spherical", "bgm_full", "bgm_diag")
PYCAVE = {"pycave_full": _data.PYCAVE_FULL, "pycave_diag": _data.PYCAVE_DIAG}
CASES = DEFAULT_CASES + tuple(PYCAVE)


def model_flops(covariance_type, n, d, k):
    """FLOPs of one EM iteration in scikit-learn's formulation (multiply-adds x 2): 'full' E-step
    (x - m_k) U_k and M-step (r (x - m_k))^T (x - m_k): 2 N K D^2 each; 'tied' E-step 2 N K D^2,
    Gram X^T X 2 N D^2; 'diag' E-step x a_k and x^2 p_k (4 N K D), M-step r^T x and r^T x^2
    (4 N K D); 'spherical' E-step 2 N K D + the norms, M-step r^T x and r^T ||x||^2."""
    if covariance_type == "full":
        return 4.0 * n * k * d * d
    if covariance_type == "tied":
        return 2.0 * n * k * d * d + 2.0 * n * d * d
    if covariance_type == "diag":
        return 8.0 * n * k * d
    return 4.0 * n * k * d + 2.0 * n * k


def dgemm_rate(repeat=3, size=2000):
    a = np.random.default_rng(0).normal(size=(size, size))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size ** 3 / best


def _estimator(library, case, inits, max_iter):
    if case.startswith("bgm_"):
        return make_bayesian_estimator(library, case[4:], max_iter=max_iter)
    ct = _covariance_type(case)
    return _data.make_estimator(library, ct, inits[ct], max_iter=max_iter)


def _covariance_type(case):
    return case.rsplit("_", 1)[-1]


def _workload(n_samples, n_features, n_components):
    """(X, X as float32, initial parameters per covariance type)."""
    X = _data.make_data(n_samples=n_samples, n_features=n_features,
                        n_components=n_components)
    return X, X.astype(np.float32), _data.make_all_inits(X, n_components)


def run(n_samples, max_iter, repeat, cases, out=sys.stdout, pycave_max_iter=5):
    d, k = _data.N_FEATURES, _data.N_COMPONENTS
    workloads = {}
    if any(case not in PYCAVE for case in cases):
        workloads["default"] = _workload(n_samples, d, k)
    for case in cases:
        if case in PYCAVE:
            workloads[case] = _workload(**PYCAVE[case])
    _data.import_libraries()
    peak = dgemm_rate()
    pycave = "; ".join(f"{case}: {shape}" for case, shape in PYCAVE.items() if case in cases)
    print(f"N={n_samples} D={d} K={k}, max_iter={max_iter} (tol=0), best of {repeat}; "
          f"{pycave + ', pycave_diag max_iter=' + str(pycave_max_iter) + '; ' if pycave else ''}"
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
          f"DGEMM {peak / 1e9:.1f} GFLOP/s", file=out)
    header = (f"{'case':<11} {'vbfast s/it':>11} {'sklearn s/it':>12} {'ratio':>6} "
              f"{'f32 s/it':>9} {'f64/f32':>7} {'f32 dmean':>9} {'GFLOP/s':>8} "
              f"{'of DGEMM':>8}")
    print(header, file=out)
    print("-" * len(header), file=out)
    for case in cases:
        X, X32, inits = workloads[case if case in PYCAVE else "default"]
        n, d = X.shape
        k = inits["diag"]["means_init"].shape[0]
        iters = pycave_max_iter if case == "pycave_diag" else max_iter
        t = {"vbfast": np.inf, "sklearn": np.inf, "f32": np.inf}
        models = {}
        for _ in range(repeat):
            for name, lib, data in (("vbfast", "vbfast", X), ("sklearn", "sklearn", X),
                                    ("f32", "vbfast", X32)):
                est = _estimator(lib, case, inits, iters)
                time.sleep(SETTLE)
                t0 = time.perf_counter()
                _data.fit_quietly(est, data)
                t[name] = min(t[name], (time.perf_counter() - t0) / max(est.n_iter_, 1))
                models[name] = est
        m64, m32 = models["vbfast"].means_, models["f32"].means_
        dmean = float(np.max(np.abs(m32 - m64)) / np.max(np.abs(m64)))
        rate = model_flops(_covariance_type(case), n, d, k) / t["vbfast"]
        print(f"{case:<11} {t['vbfast']:>11.4f} {t['sklearn']:>12.4f} "
              f"{t['sklearn'] / t['vbfast']:>6.1f} {t['f32']:>9.4f} "
              f"{t['vbfast'] / t['f32']:>7.2f} {dmean:>9.1e} {rate / 1e9:>8.1f} "
              f"{rate / peak:>8.2f}", file=out, flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--n-samples", type=int, default=_data.N_SAMPLES)
    parser.add_argument("--max-iter", type=int, default=_data.MAX_ITER)
    parser.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES),
                        choices=CASES)
    parser.add_argument("--pycave-max-iter", type=int, default=5)
    args = parser.parse_args(argv)
    run(args.n_samples, args.max_iter, args.repeat, args.cases,
        pycave_max_iter=args.pycave_max_iter)


if __name__ == "__main__":
    main()
