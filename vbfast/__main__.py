"""Command line: ``python -m vbfast demo [--spectrum]`` (and ``--version``).

The demo fits ``vbfast.GaussianMixture`` with K = 1..max_components to the Old
Faithful data, chooses K by BIC and prints the table and the chosen model. With
``--spectrum`` it instead fits one mixture by every inference method (``compare_methods``) on a
train/test split of the same data and prints time, iterations and held-out log-likelihood.
"""

import argparse
import sys
import time
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from . import GaussianHMM, GaussianMixture, __version__, compare_methods
from .datasets import load_old_faithful

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def _version():
    try:
        return version("vbfast")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return __version__


def _seed(text):
    value = int(text)
    if not 0 <= value < 2 ** 32:
        raise argparse.ArgumentTypeError(f"must be an int in [0, 2**32), got {value}")
    return value


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m vbfast",
        description="vbfast: fast latent-variable models (EM, variational Bayes, Gibbs).",
    )
    parser.add_argument("--version", action="version", version=f"vbfast {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="fit Gaussian mixtures to Old Faithful and choose K by BIC",
        description="Fit GaussianMixture with K = 1..MAX_COMPONENTS to the Old Faithful "
        "geyser data (272 x 2), choose K by BIC and print the chosen model.",
    )
    demo.add_argument("--covariance-type", choices=COVARIANCE_TYPES, default="full")
    demo.add_argument("--max-components", type=_positive_int, default=6)
    demo.add_argument("--n-init", type=_positive_int, default=3,
                      help="restarts per K (default: 3)")
    demo.add_argument("--n-threads", type=_positive_int, default=None,
                      help="threads for the kernels (default: all available)")
    demo.add_argument("--seed", type=_seed, default=0,
                      help="random_state, an int in [0, 2**32) (default: 0)")
    demo.add_argument("--spectrum", action="store_true",
                      help="compare the inference methods (Gibbs, mean field, EM) on one "
                      "mixture of --n-components components; held-out data: a random quarter "
                      "of the samples")
    demo.add_argument("--hmm", action="store_true",
                      help="fit a Gaussian hidden Markov model to the Old Faithful waiting "
                      "times as a sequence (eruption after eruption), compare the inference "
                      "methods on held-out eruptions and print the EM fit")
    demo.add_argument("--n-components", type=_positive_int, default=2,
                      help="components of the --spectrum mixture (default: 2)")
    demo.set_defaults(func=_demo)
    return parser


def _fmt(a, decimals=3):
    return np.array2string(np.round(np.asarray(a, dtype=float), decimals),
                           precision=decimals, suppress_small=True, separator=", ")


def _spectrum(args, out):
    X = load_old_faithful()
    order = np.random.default_rng(args.seed).permutation(X.shape[0])
    n_test = X.shape[0] // 4
    X_train, X_test = X[order[n_test:]], X[order[:n_test]]
    k = args.n_components
    est = GaussianMixture(n_components=k, covariance_type=args.covariance_type,
                          random_state=args.seed, n_threads=args.n_threads)
    print(f"Old Faithful: {X_train.shape[0]} training and {X_test.shape[0]} held-out samples; "
          f"GaussianMixture(n_components={k}, covariance_type={args.covariance_type!r}) by "
          "every method", file=out)
    print(file=out)
    result = compare_methods(est, X_train, X_test)
    print(result, file=out)
    print(file=out)
    print("Methods from the most accurate (full posterior) to the fastest (point estimates); "
          "held-out: mean log-likelihood per sample (posterior predictive for Bayesian "
          "methods).", file=out)
    return 0


def _hmm_demo(args, out):
    # the waiting times in the data set's row order, read as one sequence (short and long
    # waits form two regimes that tend to alternate); the last quarter is held out
    waiting = load_old_faithful()[:, 1:]
    n_test = waiting.shape[0] // 4
    train, test = waiting[:-n_test], waiting[-n_test:]
    k = args.n_components
    est = GaussianHMM(n_components=k, covariance_type="diag", n_iter=100, tol=1e-6,
                      random_state=args.seed, n_threads=args.n_threads)
    print(f"Old Faithful waiting times as a sequence: {train.shape[0]} eruptions to fit, the "
          f"next {test.shape[0]} held out; GaussianHMM(n_components={k})", file=out)
    print(file=out)
    result = compare_methods(est, train, test)
    print(result, file=out)
    print(file=out)
    hmm = result.estimators["em"] if "em" in result.estimators else est.fit(train)
    order = np.argsort(hmm.means_[:, 0])
    print(f"EM fit, states by mean waiting time (minutes): {_fmt(hmm.means_[order, 0], 1)}",
          file=out)
    print(f"standard deviations: {_fmt(np.sqrt(hmm.covars_[order, 0, 0]), 1)}", file=out)
    print(f"transition matrix:\n{_fmt(hmm.transmat_[np.ix_(order, order)])}", file=out)
    rank = np.argsort(order)
    states = rank[hmm.predict(test)]
    print("most likely states of the held-out eruptions (0 = shorter waits): "
          + "".join(str(s) for s in states), file=out)
    print("held-out: log p(held-out waits) / number of eruptions under each method's fit "
          "(the held-out eruptions as one sequence).", file=out)
    return 0


def _demo(args, out):
    if args.hmm:
        return _hmm_demo(args, out)
    if args.spectrum:
        return _spectrum(args, out)

    X = load_old_faithful()
    n, d = X.shape
    print(f"Old Faithful: {n} samples x {d} features (eruptions, waiting; minutes)", file=out)
    print(f"GaussianMixture(covariance_type={args.covariance_type!r}, n_init={args.n_init}, "
          f"random_state={args.seed}, n_threads={args.n_threads}), K = 1..{args.max_components}",
          file=out)
    print(file=out)

    header = f"{'K':>3} {'BIC':>12} {'loglik/n':>10} {'iter':>5} {'converged':>9} {'time ms':>9}"
    print(header, file=out)
    print("-" * len(header), file=out)
    fits = []
    for k in range(1, args.max_components + 1):
        gm = GaussianMixture(n_components=k, covariance_type=args.covariance_type,
                             n_init=args.n_init, random_state=args.seed,
                             n_threads=args.n_threads)
        t0 = time.perf_counter()
        gm.fit(X)
        ms = 1e3 * (time.perf_counter() - t0)
        bic, ll = float(gm.bic(X)), float(gm.score(X))
        fits.append((bic, k, gm, ll, ms))
        print(f"{k:>3} {bic:>12.3f} {ll:>10.4f} {gm.n_iter_:>5} {str(bool(gm.converged_)):>9} "
              f"{ms:>9.1f}", file=out)

    bic, k, gm, ll, ms = min(fits, key=lambda f: (f[0], f[1]))
    print(file=out)
    print(f"Chosen by BIC: K = {k}", file=out)
    print(f"weights:\n{_fmt(gm.weights_)}", file=out)
    print(f"means:\n{_fmt(gm.means_)}", file=out)
    print(f"covariances ({args.covariance_type}):\n{_fmt(gm.covariances_)}", file=out)
    print(f"log-likelihood: {ll * n:.3f} (total), {ll:.4f} per sample", file=out)
    print(f"BIC: {bic:.3f}", file=out)
    print(f"iterations: {gm.n_iter_} (converged: {bool(gm.converged_)})", file=out)
    print(f"time: {ms:.1f} ms (fit with n_init={args.n_init})", file=out)
    return 0


def main(argv=None):
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
