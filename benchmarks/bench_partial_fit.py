"""partial_fit (stepwise EM) against batch EM: held-out log-likelihood and throughput.

Streams N rows (default 1,000,000; D = 16, K = 16, the random mixture of ``_data.py``) in
batches of 10,000 rows for two passes through ``GaussianMixture.partial_fit``, and fits batch
EM (``fit``, k-means init, tol 1e-3) on the same rows. Prints, per covariance type, the
held-out log-likelihood per sample of both (100,000 further rows of the same mixture), their
relative difference (target: within 0.5%), and the throughput: rows per second of the
partial_fit steps against rows per second of one batch EM iteration over the same rows (its
median iteration time).

    python benchmarks/bench_partial_fit.py [--n-samples 1000000] [--batch 10000]
        [--passes 2] [--covariance-types full diag] [--n-threads 2]
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _data import make_data  # noqa: E402

from vbfast import GaussianMixture  # noqa: E402

N_HELDOUT = 100_000


def run(covariance_type, X, X_test, batch, passes, n_threads, seed):
    K = 16
    stream = GaussianMixture(K, covariance_type=covariance_type, random_state=seed,
                             total_samples=X.shape[0], n_threads=n_threads)
    t0 = time.perf_counter()
    for _ in range(passes):
        for start in range(0, X.shape[0], batch):
            stream.partial_fit(X[start:start + batch])
    stream_time = time.perf_counter() - t0
    # the steps alone (the first call's k-means initialisation excluded)
    steps_time = float(np.sum(stream.iteration_times_))
    n_steps = stream.iteration_times_.shape[0]

    batch_em = GaussianMixture(K, covariance_type=covariance_type, random_state=seed,
                               max_iter=300, n_threads=n_threads)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch_em.fit(X)
    batch_time = time.perf_counter() - t0
    em_iter = float(np.median(batch_em.iteration_times_))

    ll_stream, ll_batch = stream.score(X_test), batch_em.score(X_test)
    return {
        "covariance_type": covariance_type, "heldout_stream": ll_stream,
        "heldout_batch": ll_batch, "rel_diff": (ll_batch - ll_stream) / abs(ll_batch),
        "stream_s": stream_time, "steps": n_steps,
        "stream_rows_per_s": n_steps * batch / steps_time,
        "batch_s": batch_time, "batch_iters": batch_em.n_iter_,
        "em_iter_rows_per_s": X.shape[0] / em_iter,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--covariance-types", nargs="+", default=["full", "diag"])
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = make_data(n_samples=args.n_samples + N_HELDOUT)
    X, X_test = data[:args.n_samples], data[args.n_samples:]
    print(f"N = {args.n_samples:,}, D = {X.shape[1]}, K = 16, batches of {args.batch:,} rows, "
          f"{args.passes} passes; held-out {N_HELDOUT:,} rows; load {os.getloadavg()[0]:.2f}")
    header = ("cov", "held-out stream", "held-out batch EM", "rel. diff", "stream s",
              "batch EM s (iters)", "partial_fit rows/s", "EM iter rows/s", "ratio")
    print(" | ".join(header))
    for ctype in args.covariance_types:
        r = run(ctype, X, X_test, args.batch, args.passes, args.n_threads, args.seed)
        print(f"{ctype} | {r['heldout_stream']:.5f} | {r['heldout_batch']:.5f} | "
              f"{100 * r['rel_diff']:.3f}% | {r['stream_s']:.1f} | "
              f"{r['batch_s']:.1f} ({r['batch_iters']}) | {r['stream_rows_per_s']:,.0f} | "
              f"{r['em_iter_rows_per_s']:,.0f} | "
              f"{r['stream_rows_per_s'] / r['em_iter_rows_per_s']:.2f}", flush=True)


if __name__ == "__main__":
    main()
