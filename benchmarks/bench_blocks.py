"""Out-of-core and Dask fits of a Gaussian mixture against the fit in memory, side by side.

1. memmap: a float64 .npy file of N x D rows (a K-component mixture, written block by block),
   fitted from ``np.load(mmap_mode='r')`` and from an in-memory copy, each in its own
   subprocess: peak anonymous memory (RssAnon of /proc/self/status, polled every 20 ms: the
   page cache is not counted) and the median time per iteration (``iteration_times_``), the
   file in the page cache (it is read once before); equality of the two fits.
2. Dask: a ``distributed.LocalCluster`` of 2 worker processes x 1 thread against the fit in
   memory with ``n_threads=2``, per-iteration time ratio (the sides alternated, best of
   ``--repeat``) and equality.

    python benchmarks/bench_blocks.py --n 32000000 --dir /work/tmp   # the 4 GB case
    python benchmarks/bench_blocks.py --n 4000000 --skip-dask         # 512 MB
    python benchmarks/bench_blocks.py --skip-memmap --dask-n 4000000
    python benchmarks/bench_blocks.py --skip-memmap --skip-dask --lda   # LDA on Dask

3. ``--lda``: ``LatentDirichletAllocation`` (batch mean field) on the same LocalCluster, the
   corpus of ``_lda_data.make_corpus`` (``--lda-docs`` x ``--lda-words``, K = ``--lda-k``)
   as a dask array of scipy.sparse CSR row blocks of ``--lda-block`` documents, against the
   fit of the CSR matrix in memory with ``n_threads=2``: per-iteration time ratio (alternated,
   best of ``--repeat``) and equality.

Every fit runs ``--iters`` iterations (tol=0) from k-means on an evenly spaced sample (the
rule above 64 MB of X, the same for both sides).
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np


def make_file(path, n, d, k, seed=0, rows=1 << 20):
    rng = np.random.RandomState(seed)
    centres = rng.normal(scale=4.0, size=(k, d))
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n, d))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        z = rng.randint(k, size=stop - start)
        out[start:stop] = centres[z] + rng.normal(size=(stop - start, d))
    out.flush()
    del out


def rss_anon_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return -1


def fit_one(path, mode, k, cov, iters, n_threads):
    """Runs in a subprocess: prints a JSON line."""
    from vbfast import GaussianMixture

    peak = [rss_anon_kb()]
    done = threading.Event()

    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], rss_anon_kb())
            time.sleep(0.02)

    X = np.load(path, mmap_mode="r")
    with open(path, "rb") as f:  # into the page cache
        while f.read(1 << 26):
            pass
    if mode == "memory":
        X = np.array(X)
    base = rss_anon_kb()
    t = threading.Thread(target=poll, daemon=True)
    t.start()
    t0 = time.perf_counter()
    est = GaussianMixture(k, covariance_type=cov, max_iter=iters, tol=0.0, random_state=0,
                          n_threads=n_threads).fit(X)
    wall = time.perf_counter() - t0
    done.set()
    t.join()
    print(json.dumps({"mode": mode, "peak_anon_mb": peak[0] / 1024,
                      "peak_over_start_mb": (peak[0] - base) / 1024,
                      "iter_times": est.iteration_times_.tolist(), "wall": wall,
                      "n_iter": est.n_iter_, "means": est.means_.tolist(),
                      "bounds": est.lower_bounds_.tolist()}))


def run_memmap(args):
    path = os.path.join(args.dir, f"bench_blocks_{args.n}x{args.d}.npy")
    if not os.path.exists(path):
        t0 = time.perf_counter()
        make_file(path, args.n, args.d, args.k)
        print(f"wrote {path} ({os.path.getsize(path) / 2**30:.2f} GiB) in "
              f"{time.perf_counter() - t0:.1f} s")
    try:
        results = {}
        for mode in ["memmap", "memory"] * args.repeat:
            out = subprocess.run(
                [sys.executable, __file__, "--child", path, mode, str(args.k), args.cov,
                 str(args.iters), str(args.threads)],
                check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            r = json.loads(out)
            best = results.get(mode)
            if best is None or np.median(r["iter_times"]) < np.median(best["iter_times"]):
                r["peak_anon_mb"] = max(r["peak_anon_mb"],
                                        best["peak_anon_mb"] if best else 0)
                results[mode] = r
        mm, mem = results["memmap"], results["memory"]
        same = (mm["n_iter"] == mem["n_iter"] and mm["means"] == mem["means"]
                and mm["bounds"] == mem["bounds"])
        print(f"memmap N={args.n} D={args.d} K={args.k} {args.cov}, {args.threads} threads, "
              f"{args.iters} iterations")
        for name, r in results.items():
            print(f"  {name:7s} peak RssAnon {r['peak_anon_mb']:8.1f} MB (fit: +"
                  f"{r['peak_over_start_mb']:.1f} MB)   median s/iter "
                  f"{np.median(r['iter_times']):.3f}   fit wall {r['wall']:.1f} s")
        print(f"  time/iter ratio memmap/memory "
              f"{np.median(mm['iter_times']) / np.median(mem['iter_times']):.3f}; "
              f"bitwise equal fits: {same}")
    finally:
        if not args.keep:
            os.remove(path)


def run_dask(args):
    import dask
    import dask.array as da
    import distributed

    from vbfast import GaussianMixture

    rng = np.random.RandomState(1)
    centres = rng.normal(scale=4.0, size=(args.k, args.d))
    X = centres[rng.randint(args.k, size=args.dask_n)] + rng.normal(size=(args.dask_n,
                                                                           args.d))
    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, \
                distributed.Client(cluster):
            dX = da.from_array(X, chunks=(1 << 18, args.d)).persist()
            for cov in ("diag", "full"):
                times = {"dask": [], "memory": []}
                fits = {}
                for _ in range(args.repeat):
                    for side, data, nt in (("dask", dX, 1), ("memory", X, 2)):
                        est = GaussianMixture(args.k, covariance_type=cov,
                                              max_iter=args.iters, tol=0.0, random_state=0,
                                              n_threads=nt).fit(data)
                        # iteration 1 of the Dask side includes nothing extra (the blocks are
                        # persisted before it); the median ignores outliers of a busy machine
                        times[side].append(float(np.median(est.iteration_times_)))
                        fits[side] = est
                same = np.array_equal(fits["dask"].means_, fits["memory"].means_) and \
                    fits["dask"].n_iter_ == fits["memory"].n_iter_
                rel = np.max(np.abs(fits["dask"].means_ - fits["memory"].means_)
                             / np.maximum(np.abs(fits["memory"].means_), 1e-300))
                print(f"dask LocalCluster 2x1 vs memory n_threads=2: N={args.dask_n} "
                      f"D={args.d} K={args.k} {cov}: s/iter dask {min(times['dask']):.3f} "
                      f"memory {min(times['memory']):.3f} ratio "
                      f"{min(times['dask']) / min(times['memory']):.3f}; bitwise equal "
                      f"{same} (max rel. diff of means {rel:.1e})")


def run_lda(args):
    import dask
    import dask.array as da
    import distributed

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _lda_data import make_corpus

    from vbfast import LatentDirichletAllocation

    X, _, _ = make_corpus(n_docs=args.lda_docs, n_words=args.lda_words, n_heldout=0)
    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, \
                distributed.Client(cluster):
            dX = da.from_array(X, chunks=(args.lda_block, X.shape[1]), asarray=False,
                               fancy=False).persist()
            client = distributed.get_client()
            times = {"dask": [], "memory": []}
            cpu = {"dask": [], "memory": []}  # CPU seconds of the fit: load-independent
            fits = {}
            for _ in range(args.repeat):
                for side, data, nt in (("dask", dX, 1), ("memory", X, 2)):
                    est = LatentDirichletAllocation(
                        args.lda_k, max_iter=args.iters, random_state=0, n_threads=nt)
                    before = _cpu_seconds(client)
                    est.fit(data)
                    cpu[side].append(_cpu_seconds(client) - before)
                    times[side].append(float(np.median(est.iteration_times_)))
                    fits[side] = est
            a, b = fits["memory"], fits["dask"]
            same = np.array_equal(a.components_, b.components_) and a.n_iter_ == b.n_iter_ \
                and np.array_equal(a.lower_bounds_, b.lower_bounds_)
            print(f"LDA dask LocalCluster 2x1 (CSR blocks of {args.lda_block} documents) vs "
                  f"memory n_threads=2: {X.shape[0]} documents, V={X.shape[1]}, "
                  f"nnz={X.nnz}, K={args.lda_k}, {args.iters} batch iterations: s/iter dask "
                  f"{min(times['dask']):.3f} memory {min(times['memory']):.3f} ratio "
                  f"{min(times['dask']) / min(times['memory']):.3f}; CPU s of the fit (this "
                  f"process + workers) dask {min(cpu['dask']):.2f} memory "
                  f"{min(cpu['memory']):.2f} ratio {min(cpu['dask']) / min(cpu['memory']):.3f}"
                  f"; bitwise equal {same}")


def _cpu_seconds(client):
    """CPU seconds used so far by this process and the cluster's worker processes."""
    workers = client.run(time.process_time)
    return time.process_time() + sum(workers.values())


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        path, mode, k, cov, iters, threads = sys.argv[2:8]
        return fit_one(path, mode, int(k), cov, int(iters), int(threads))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=32_000_000)
    p.add_argument("--d", type=int, default=16)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--cov", default="diag")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--dir", default="/tmp")
    p.add_argument("--keep", action="store_true", help="keep the data file")
    p.add_argument("--skip-memmap", action="store_true")
    p.add_argument("--skip-dask", action="store_true")
    p.add_argument("--dask-n", type=int, default=4_000_000)
    p.add_argument("--lda", action="store_true", help="also LDA on the LocalCluster")
    p.add_argument("--lda-docs", type=int, default=20_000)
    p.add_argument("--lda-words", type=int, default=5_000)
    p.add_argument("--lda-k", type=int, default=20)
    p.add_argument("--lda-block", type=int, default=2_500)
    args = p.parse_args()
    print(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "load average",
          os.getloadavg())
    if not args.skip_memmap:
        run_memmap(args)
    if not args.skip_dask:
        run_dask(args)
    if args.lda:
        run_lda(args)
    print("load average", os.getloadavg())


if __name__ == "__main__":
    main()
