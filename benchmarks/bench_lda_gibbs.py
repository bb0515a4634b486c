"""LDA collapsed Gibbs sampling: vbfast (``method='gibbs'``) against tomotopy, tokens/s.

The corpus is ``_lda_data.make_corpus`` (20,000 documents x 20,000 words, ~150 tokens a
document, drawn from a K=50 LDA; sizes from VBFAST_LDA_N_DOCS / VBFAST_LDA_N_WORDS). Both
samplers run K=50 (``--n-topics`` for another K; vbfast's conditional is dense below
``_gibbs._SPARSE_MIN_TOPICS`` and sparse from there on) with the same symmetric priors
(alpha=0.1 per topic, eta=0.01 per word; the corpus was drawn with 0.1 and 0.05), from a
random initial assignment, 2 threads:

- vbfast: ``LatentDirichletAllocation(n_components=50, method='gibbs', doc_topic_prior=0.1,
  topic_word_prior=0.01, burn_in=SWEEPS - 1, n_draws=1, n_threads=2)``; the sweep time is
  ``sum(iteration_times_)`` (every sweep and its merge; not the set-up, the initial
  assignment or the final variational pass for ``bound_``).
- tomotopy: ``LDAModel(k=50, alpha=0.1, eta=0.01)`` with hyperparameter optimisation off
  (``optim_interval=0``), documents added and ``train(0)`` (its initial assignment) in set-up,
  then ``train(SWEEPS, workers=2)`` timed (its default parallel scheme).

tokens/s = tokens x sweeps / seconds. The first sweeps from a random start are the slowest for
both (every word still has many topics), so a second figure times sweeps SWEEPS+1..2 SWEEPS.
``track_log_joint_per_token`` reports log p(w, z) / tokens after SWEEPS sweeps (tomotopy's
``ll_per_word`` is the same quantity), to compare how far each sampler got.

tomotopy is a benchmark-only dependency (the ``bench`` extra), never needed to run or test
vbfast; without it its benchmarks are skipped.

asv: ``asv run --python=same --bench bench_lda_gibbs``.
As a script, one process, the table for reports:

    python benchmarks/bench_lda_gibbs.py [--n-docs 20000] [--n-words 20000] [--sweeps 20]
                                         [--threads 2] [--repeat 1] [--n-topics 50]

``--samplers dense,sparse`` instead compares vbfast's own conditionals (``_gibbs.TokenData``'s
``sampler``; the estimator chooses from K) in one process: each from the same random start,
their sweeps alternated, the time of every sweep (with its log joint, as
``iteration_times_``) and log p(w, z) a token after it, and each one's time over sweeps
1..SWEEPS and SWEEPS+1..2 SWEEPS against the first's: where one sampler overtakes another,
on the same machine load.

``--against PATH`` times this build's sweep against another build's (``PATH`` its
``_lda_gibbs`` extension module, e.g. main's) in one process: the same chain state every
round, the two alternated, each round started when no other thread is runnable if that
happens within 20 s (on a shared machine the rounds that start on idle cores are the ones
that show what a second thread gains), ``--rounds`` rounds; per-round wall ms, the best and
the median of the per-round ratios, CPU seconds, and whether the draws were the same.

``--balance`` prints, without timing anything, how evenly the sweep's (block, slice) pairs
split over ``--threads`` threads: the tokens of the busiest thread summed over the sub-steps
against an even share, for the claiming order of ``vbf_sweep_worker`` and for one shared
counter, pairs costing their tokens (a figure that does not need an idle machine).
"""
import os
import sys
import time

if __package__:  # asv imports this module as ``benchmarks.bench_lda_gibbs``
    from . import _lda_data
    from ._asv import OneCallSamples
elif __name__ == "__main__":  # python benchmarks/bench_lda_gibbs.py
    import importlib.util

    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, _here)
    if importlib.util.find_spec("vbfast") is None:  # not installed: try an in-place build
        sys.path.insert(1, os.path.dirname(_here))
    import _lda_data
    from _asv import OneCallSamples
else:  # imported as a top-level module with benchmarks/ on sys.path
    import _lda_data
    from _asv import OneCallSamples

import numpy as np

K = _lda_data.N_COMPONENTS
ALPHA = 0.1
ETA = 0.01
SWEEPS = 20
THREADS = 2
LIBRARIES = ("vbfast", "tomotopy")


def tomotopy_model(X, seed=0, n_topics=None):
    """A tomotopy LDAModel holding the documents of X (CSR counts), initialised (train(0))."""
    import tomotopy as tp

    model = tp.LDAModel(k=K if n_topics is None else n_topics, alpha=ALPHA, eta=ETA, seed=seed)
    model.optim_interval = 0  # keep alpha and eta fixed, as vbfast does
    vocab = np.array([str(i) for i in range(X.shape[1])], dtype=object)
    indptr, indices = X.indptr, X.indices
    counts = X.data.astype(np.int64)
    for d in range(X.shape[0]):
        lo, hi = indptr[d], indptr[d + 1]
        if hi > lo:
            model.add_doc(vocab[np.repeat(indices[lo:hi], counts[lo:hi])].tolist())
    model.train(0, workers=THREADS)
    return model


def vbfast_fit(X, sweeps, n_threads=THREADS, seed=0, n_topics=None):
    from vbfast import LatentDirichletAllocation

    return LatentDirichletAllocation(K if n_topics is None else n_topics, method="gibbs",
                                     doc_topic_prior=ALPHA, topic_word_prior=ETA,
                                     burn_in=sweeps - 1, n_draws=1, n_threads=n_threads,
                                     random_state=seed).fit(X)


def vbfast_tokens_per_second(X, sweeps, n_threads=THREADS, n_topics=None):
    """(tokens/s over the first ``sweeps`` sweeps, over sweeps+1..2 sweeps, log joint/token)."""
    est = vbfast_fit(X, 2 * sweeps, n_threads, n_topics=n_topics)
    n = float(X.sum())
    t = np.asarray(est.iteration_times_)
    return (n * sweeps / t[:sweeps].sum(), n * sweeps / t[sweeps:].sum(),
            est.lower_bounds_[sweeps - 1] / n)


def tomotopy_tokens_per_second(X, sweeps, workers=THREADS, n_topics=None):
    model = tomotopy_model(X, n_topics=n_topics)
    n = float(X.sum())
    t0 = time.perf_counter()
    model.train(sweeps, workers=workers)
    first = time.perf_counter() - t0
    ll = model.ll_per_word
    t0 = time.perf_counter()
    model.train(sweeps, workers=workers)
    second = time.perf_counter() - t0
    return n * sweeps / first, n * sweeps / second, ll


def _have_tomotopy():
    try:
        import tomotopy  # noqa: F401
    except ImportError:
        return False
    return True


class LdaGibbsSweeps(OneCallSamples):
    """Tokens per second of collapsed Gibbs sweeps, vbfast vs tomotopy on 2 threads."""

    params = (list(LIBRARIES),)
    param_names = ["library"]
    timeout = 3600
    repeat = 1

    def setup_cache(self):
        X, _, _ = _lda_data.make_corpus()
        return X

    def setup(self, X, library):
        if library == "tomotopy" and not _have_tomotopy():
            raise NotImplementedError("tomotopy is not installed")
        self.result = (vbfast_tokens_per_second if library == "vbfast"
                       else tomotopy_tokens_per_second)(X, SWEEPS)

    def track_tokens_per_second(self, X, library):
        """Tokens/s over the first SWEEPS sweeps from a random start."""
        return self.result[0]

    track_tokens_per_second.unit = "tokens/s"

    def track_tokens_per_second_later(self, X, library):
        """Tokens/s over sweeps SWEEPS+1 .. 2 SWEEPS."""
        return self.result[1]

    track_tokens_per_second_later.unit = "tokens/s"

    def track_log_joint_per_token(self, X, library):
        """log p(w, z) / tokens after SWEEPS sweeps (higher is further along)."""
        return self.result[2]

    track_log_joint_per_token.unit = "nats/token"


def compare_samplers(X, samplers, sweeps, n_threads=THREADS, n_topics=None, seed=0):
    """Per-sweep seconds and log p(w, z) a token, {sampler: (times, log joints)}: the samplers
    of ``_gibbs.TokenData`` from one random start, their sweeps alternated (the order flipped
    every sweep). A sweep's time is that of the fit's pass (the sweep and the log joint
    after it), as in ``iteration_times_``."""
    from vbfast.topics import _gibbs

    n_topics = K if n_topics is None else n_topics
    doc_ptr, words = _gibbs._tokens(X)
    states = {s: _gibbs.TokenData(doc_ptr, words, X.shape[1], n_topics, ALPHA, ETA, n_threads,
                                  sampler=s) for s in samplers}
    n = states[samplers[0]].N
    z0 = np.random.default_rng(seed).integers(0, n_topics, size=n, dtype=np.int32)
    chains = {s: states[s].new_chain(z0) for s in samplers}
    out = {s: ([], []) for s in samplers}
    for i in range(sweeps):
        for s in (samplers if i % 2 == 0 else samplers[::-1]):
            t0 = time.perf_counter()
            log_joint = states[s].sweep(chains[s], seed, 0, i)
            out[s][0].append(time.perf_counter() - t0)
            out[s][1].append(log_joint / n)
    return out


def pair_tokens(state):
    """(B, B) tokens of each pair of a ``_gibbs.TokenData``'s sweep: entry [s, b] is pair b of
    sub-step s (document block b, vocabulary slice (b + s) mod B)."""
    B = state.P
    doc_block = np.repeat(np.arange(B), np.diff(state.part_ptr))
    token_block = np.repeat(doc_block, np.diff(state.doc_ptr))
    step = (state.slice_of[state.words] - token_block) % B
    return np.bincount(step * B + token_block, minlength=B * B).reshape(B, B)


def claim_orders(B, n_threads, scheme):
    """The order in which each thread claims the pairs of a sub-step: 'counter' (every thread
    the next pair from one counter, in order) or 'own' (``vbf_sweep_worker``: a thread's own
    range of blocks first, then the others' from their ends)."""
    if scheme == "counter":
        return [list(range(B))] * n_threads
    orders = []
    for t in range(n_threads):
        lo, hi = t * B // n_threads, (t + 1) * B // n_threads
        orders.append(list(range(lo, hi)) + list(range(B - 1, hi - 1, -1))
                      + list(range(lo - 1, -1, -1)))
    return orders


def sub_step_makespan(cost, orders):
    """(makespan, thread of each pair) of one sub-step whose pairs cost ``cost`` (B,), the
    threads claiming in ``orders``: the thread free first claims its next unclaimed pair."""
    clock = [0.0] * len(orders)
    pos = [0] * len(orders)
    owner = np.full(len(cost), -1)
    while True:
        live = [t for t in range(len(orders)) if pos[t] < len(orders[t])]
        if not live:
            return max(clock), owner
        t = min(live, key=lambda u: (clock[u], u))
        b = orders[t][pos[t]]
        pos[t] += 1
        if owner[b] < 0:
            owner[b] = t
            clock[t] += cost[b]


def balance_report(X, n_threads, n_topics):
    """For the sweep of X: (sum over sub-steps of the busiest thread's tokens) / (tokens /
    threads) for each claiming scheme, pairs costing their tokens; and how often the
    threads hold adjacent pairs' blocks in one sub-step (under 'counter' always, the blocks'
    owners changing at random)."""
    from vbfast.topics import _gibbs

    doc_ptr, words = _gibbs._tokens(X)
    state = _gibbs.TokenData(doc_ptr, words, X.shape[1], n_topics, ALPHA, ETA, n_threads)
    T = pair_tokens(state)
    B = state.P
    print(f"B = {B}, tokens a pair: mean {T.mean():.0f}, min {T.min()}, max {T.max()}, "
          f"coefficient of variation {T.std() / T.mean():.3f}")
    for scheme in ("counter", "own"):
        orders = claim_orders(B, n_threads, scheme)
        spans, kept = [], 0
        prev = None
        for s in range(B):
            span, owner = sub_step_makespan(T[s].astype(float), orders)
            spans.append(span)
            if prev is not None:
                kept += int(np.sum(owner == prev))
            prev = owner
        print(f"{scheme:>8}: busiest thread / even share {sum(spans) / (T.sum() / n_threads):.4f}"
              f"; blocks on the same thread as in the sub-step before: {kept} of {B * (B - 1)}")


def _runnable_threads():
    with open("/proc/loadavg") as f:
        return int(f.read().split()[3].split("/")[0])


def compare_builds(X, other_path, rounds, n_threads=THREADS, n_topics=None, wait_idle=20.0,
                   seed=0):
    """Per-round seconds (wall and CPU of the process) of one sweep by this build's
    ``_lda_gibbs`` and by another build's (the extension module at ``other_path``, e.g.
    main's), {'this': (wall, cpu), 'other': (wall, cpu)}, and whether every round's draws
    were the same. Every round both start from the same chain state (copies; the chain then
    goes on from this build's), in alternating order. The other build gets workspace of
    its own widths, unpadded (as builds before 2026-12-02 allocated it); this build
    ``TokenData``'s. Before each round, up to ``wait_idle`` seconds for no other runnable
    thread (Linux), so that on a shared machine the rounds tend to start on idle cores;
    the rounds that did are returned as a mask."""
    import importlib.util

    from vbfast.topics import _gibbs, _lda_gibbs

    spec = importlib.util.spec_from_file_location("other_build._lda_gibbs", other_path)
    other = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(other)
    n_topics = K if n_topics is None else n_topics
    doc_ptr, words = _gibbs._tokens(X)
    st = _gibbs.TokenData(doc_ptr, words, X.shape[1], n_topics, ALPHA, ETA, n_threads)
    sparse = st.sampler == "sparse"
    width = (other.sparse_scratch_width if sparse else other.dense_scratch_width)(n_topics)
    scratch = {"this": (st.scratch_i, st.scratch_d),
               "other": (np.empty((st.P, n_topics), np.int32), np.empty((st.P, width)))}
    modules = {"this": _lda_gibbs, "other": other}
    state = st.new_chain(np.random.default_rng(seed).integers(0, n_topics, size=st.N,
                                                               dtype=np.int32))

    def sweep(name, chain, index):
        head = (st.doc_ptr, st.words, st.slice_of, st.part_ptr, chain["z"], chain["ndk"],
                chain["nwk"], chain["nk"], st.cursor)
        extra = (st.wl_ptr, st.wlist, st.wlen) if sparse else ()
        tail = (*scratch[name], st.alpha, st.eta, np.uint64(seed + 1), np.uint64(0),
                np.uint64(index), n_threads)
        kernel = modules[name].sweep_sparse if sparse else modules[name].sweep
        t0, c0 = time.perf_counter(), time.process_time()
        kernel(*head, *extra, *tail)
        return time.perf_counter() - t0, time.process_time() - c0

    out = {"this": ([], []), "other": ([], [])}
    idle, same = [], True
    for r in range(rounds):
        t_end = time.time() + wait_idle
        while _runnable_threads() > 1 and time.time() < t_end:
            time.sleep(0.02)
        idle.append(_runnable_threads() <= 1)
        chains = {n: {a: v.copy() for a, v in state.items()} for n in out}
        for n in (("other", "this") if r % 2 == 0 else ("this", "other")):
            wall, cpu = sweep(n, chains[n], r)
            out[n][0].append(wall)
            out[n][1].append(cpu)
        same = same and np.array_equal(chains["this"]["z"], chains["other"]["z"])
        state = chains["this"]
    return {n: (np.array(w), np.array(c)) for n, (w, c) in out.items()}, np.array(idle), same


def _print_builds(out, idle, same, n_tokens):
    (w1, c1), (w0, c0) = out["this"], out["other"]
    print("round " + "".join(f"{h:>12}" for h in ("other ms", "this ms", "other/this"))
          + "  started idle")
    for r in range(len(w1)):
        print(f"{r + 1:>5} {1e3 * w0[r]:>11.1f} {1e3 * w1[r]:>11.1f} {w0[r] / w1[r]:>11.3f}"
              f"  {'yes' if idle[r] else 'no'}")
    for label, m in (("all rounds", np.ones(len(w1), bool)), ("rounds started idle", idle)):
        if m.any():
            print(f"{label} ({m.sum()}): best other {1e3 * w0[m].min():.1f} ms, this "
                  f"{1e3 * w1[m].min():.1f} ms ({n_tokens / w1[m].min() / 1e6:.2f} M tokens/s)"
                  f", other / this {w0[m].min() / w1[m].min():.3f} (best), "
                  f"{np.median(w0[m] / w1[m]):.3f} (median of rounds); CPU s a sweep, "
                  f"medians: other {np.median(c0[m]):.3f}, this {np.median(c1[m]):.3f}")
    print("draws: " + ("the same in every round" if same else "differ"))


def _print_comparison(out, sweeps):
    samplers = list(out)
    print("sweep " + "".join(f"{s + ' ms':>12}{s + ' lj/token':>18}" for s in samplers))
    for i in range(len(out[samplers[0]][0])):
        print(f"{i + 1:>5} " + "".join(f"{1e3 * out[s][0][i]:>12.1f}{out[s][1][i]:>18.4f}"
                                         for s in samplers))
    first = samplers[0]
    for s in samplers[1:]:
        a, b = np.asarray(out[first][0]), np.asarray(out[s][0])
        print(f"time {first} / {s}: {a[:sweeps].sum() / b[:sweeps].sum():.2f} (sweeps 1-{sweeps})"
              f", {a[sweeps:].sum() / b[sweeps:].sum():.2f} (later sweeps); log p(w, z) a token "
              f"after {sweeps} sweeps: {out[first][1][sweeps - 1]:.4f} / {out[s][1][sweeps - 1]:.4f}")


# ---------------------------------------------------------------------- script
def main(argv=None):
    import argparse

    global THREADS
    p = argparse.ArgumentParser(description="LDA collapsed Gibbs: vbfast vs tomotopy tokens/s "
                                "(see the module docstring).")
    p.add_argument("--n-docs", type=int, default=_lda_data.N_DOCS)
    p.add_argument("--n-words", type=int, default=_lda_data.N_WORDS)
    p.add_argument("--sweeps", type=int, default=SWEEPS)
    p.add_argument("--n-topics", type=int, default=K,
                   help="topics of both samplers (the corpus is drawn from 50)")
    p.add_argument("--threads", type=int, default=THREADS)
    p.add_argument("--repeat", type=int, default=1,
                   help="alternate the two libraries this many times; best of each")
    p.add_argument("--samplers", default=None,
                   help="comma-separated vbfast samplers (dense, sparse) to compare "
                   "with each other instead of the libraries")
    p.add_argument("--against", metavar="PATH", default=None,
                   help="time this build's sweep against another build's _lda_gibbs "
                   "extension module (see compare_builds) and stop")
    p.add_argument("--rounds", type=int, default=20, help="rounds of --against")
    p.add_argument("--balance", action="store_true",
                   help="print how evenly the sweep's pairs split over the threads "
                   "(tokens, no timing) and stop")
    args = p.parse_args(argv)
    THREADS = args.threads

    t0 = time.perf_counter()
    X, _, _ = _lda_data.make_corpus(args.n_docs, args.n_words, 100)
    n = int(X.sum())
    print(f"corpus: {X.shape[0]} documents x {X.shape[1]} words, {n} tokens; K={args.n_topics}, "
          f"alpha={ALPHA}, eta={ETA}; {args.sweeps} + {args.sweeps} sweeps, "
          f"{THREADS} threads (made in {time.perf_counter() - t0:.1f} s)")
    if args.balance:
        balance_report(X, THREADS, args.n_topics)
        return
    vbfast_fit(X[:200], 2)  # imports and OpenMP start-up out of the timing
    if args.against:
        out, idle, same = compare_builds(X, args.against, args.rounds, THREADS, args.n_topics)
        _print_builds(out, idle, same, n)
        return
    if args.samplers:
        out = compare_samplers(X, args.samplers.split(","), 2 * args.sweeps, THREADS,
                               args.n_topics)
        _print_comparison(out, args.sweeps)
        return
    best = {lib: (0.0, 0.0, None) for lib in LIBRARIES}
    for _ in range(args.repeat):  # alternate, so that both see the same machine load
        for lib in LIBRARIES:
            if lib == "tomotopy" and not _have_tomotopy():
                continue
            r = (vbfast_tokens_per_second if lib == "vbfast"
                 else tomotopy_tokens_per_second)(X, args.sweeps, THREADS, args.n_topics)
            b = best[lib]
            best[lib] = (max(b[0], r[0]), max(b[1], r[1]), r[2])
    print(f"{'library':<10}{'tokens/s, sweeps 1-' + str(args.sweeps):>24}"
          f"{'tokens/s, later sweeps':>24}{'log joint / token':>20}")
    for lib, (a, b, ll) in best.items():
        if ll is not None:
            print(f"{lib:<10}{a:>24.4g}{b:>24.4g}{ll:>20.4f}")
    if best["tomotopy"][2] is not None:
        v, t = best["vbfast"], best["tomotopy"]
        print(f"ratio vbfast / tomotopy: {v[0] / t[0]:.2f} (first sweeps), "
              f"{v[1] / t[1]:.2f} (later sweeps)")


if __name__ == "__main__":
    main()
