"""LDA benchmarks: vbfast, scikit-learn (n_jobs=1 and 2) and gensim side by side.

The corpus (``_lda_data.make_corpus``) is drawn from a known LDA with a fixed seed: 20,000
training documents x 20,000 words, ~150 tokens a document, K=50, plus held-out documents from
the same topics (sizes overridable by VBFAST_LDA_N_DOCS / VBFAST_LDA_N_WORDS /
VBFAST_LDA_N_HELDOUT for quick runs).

Benchmarks (``library`` in vbfast / sklearn_n_jobs1 / sklearn_n_jobs2 / gensim):

- ``LdaBatchPass.time_fit_one_pass``: one batch pass, ``fit`` with learning_method='batch',
  max_iter=1. vbfast and scikit-learn start from the same initial topics (random_state=0) and
  both also run their final E-step for ``bound_`` inside ``fit``; gensim runs
  ``LdaModel(passes=1, update_every=0, iterations=100, gamma_threshold=1e-3,
  alpha=eta=1/K)`` (one E-step over the corpus, one M-step; no perplexity evaluation).
- ``LdaBatchPass.track_heldout_perplexity``: perplexity of the held-out documents after that
  one pass (lower is better). vbfast and scikit-learn n_jobs=1 agree to ~1e-8 relative (same
  updates, same random draws); scikit-learn with n_jobs=2 does not reproduce its own n_jobs=1
  result, since each joblib worker receives a copy of the random state and draws the same
  initial gamma stream for its slice of documents, so its perplexity differs by several
  percent (4-9 % in small runs) either way. As in scikit-learn, perplexity =
  exp(-ELBO / tokens) with the ELBO including the topics' term, which dominates on a small
  held-out set: compare the libraries with each other, not with a training perplexity.
  gensim's value (``exp(-log_perplexity)``, float32, its own initial topics) is informational.
- ``LdaBatchPass.track_heldout_plugin_perplexity``: a second, library-independent held-out
  score without the topics' term: exp(-sum x_dw log(theta_d . beta_w) / tokens) with the
  normalised topics and each held-out document's inferred proportions. With 20,000 words
  the ELBO-based perplexity is astronomically large (4e15 on 4,000 documents x 20,000 words),
  dominated by the topic term; this one reads on the scale of the vocabulary (a uniform model
  scores n_words).
- ``LdaOnlineUpdate.time_partial_fit``: one online update on a 2,000-document mini-batch
  (``partial_fit`` with batch_size=2000; gensim ``LdaModel.update`` with chunksize=2000),
  on a model already updated once in ``setup``.
- ``LdaOnlineUpdate.track_docs_per_second``: the same update timed inside the benchmark, as
  documents per second (best of 2). To convert a ``time_partial_fit`` result:
  documents/s = 2000 / seconds (the mini-batch is the first 2,000 documents again when the
  corpus has fewer than 4,000).

- ``LdaOnlineRealCorpus.time_fit``: the online workload gensim users live in, on a real
  corpus (``_lda_data.real_corpus``: gensim's test file head500.noblanks.cor, 250 Wikipedia
  articles cut into 225-token documents, 10,000 most frequent words; 1,306 training and 146
  held-out documents): ``fit`` with learning_method='online', 10 passes, K = 20, at
  batch_size 128 and 1,024 (``_lda_data.real_online_fit``), for vbfast (all cores and one
  thread), scikit-learn n_jobs=1 and 2, gensim ``LdaModel(passes=10, chunksize=batch_size)``.
  ``track_heldout_perplexity``: the held-out perplexity after that fit (vbfast and
  scikit-learn n_jobs=1 agree to ~1e-8 relative; gensim's is informational, as above).

Run (see README.md): ``asv run --python=same --bench bench_lda``; a quick smoke test with a
small corpus: ``VBFAST_LDA_N_DOCS=1000 VBFAST_LDA_N_WORDS=2000 asv run --python=same --quick
--bench bench_lda``.

As a script, one process, the table for reports:

    python benchmarks/bench_lda.py [--n-docs 20000] [--n-words 20000] [--repeat 1]
                                   [--no-gensim] [--no-online]
    python benchmarks/bench_lda.py --online-real [--batch-sizes 128 1024] [--repeat 3]
                                   [--no-gensim]

``--online-real`` prints the real-corpus online workload alone: every library fitted once per
round, the rounds alternating the libraries, the best of ``--repeat`` rounds each.

    python benchmarks/bench_lda.py --batch-real [--components 20 100] [--alphas default 0.1]
                                   [--repeat 3]

``--batch-real`` prints one batch pass (``fit(max_iter=1)``, including the final E-step for
``bound_``, as above) on the real corpus of ``--online-real`` for each K in ``--components``
and each alpha in ``--alphas`` ("default" is 1/K; topic_word_prior stays 1/K): vbfast
``n_threads=1`` and ``2``, scikit-learn ``n_jobs=1`` and ``2``, from the same initial topics,
rounds alternating the four, the best of ``--repeat`` wall-clock seconds and of CPU seconds
(``time.process_time``, this process only: meaningful for the one-thread contenders, whose
ratio it gives too, and less disturbed by other processes on a loaded machine).
"""
import os
import sys
import time

if __package__:  # asv imports this module as ``benchmarks.bench_lda``
    from . import _lda_data
    from ._asv import OneCallSamples
elif __name__ == "__main__":  # python benchmarks/bench_lda.py
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


def _cache():
    X, Xh, _ = _lda_data.make_corpus()
    return {"X": X, "X_heldout": Xh}


def _fit_batch(library, X, gensim_corpus=None, id2word=None):
    if library == "gensim":
        return _lda_data.gensim_batch_fit(gensim_corpus, id2word)
    return _lda_data.batch_estimator(library).fit(X)


def _warm_up(library, X, gensim_corpus=None, id2word=None):
    """A tiny batch fit: imports, OpenMP threads and joblib's worker processes (scikit-learn
    n_jobs=2 starts them on first use, seconds on a busy machine) out of the timing."""
    n = min(200, X.shape[0])
    if library == "gensim":
        _lda_data.gensim_batch_fit(gensim_corpus[:n], id2word)
    else:
        _lda_data.batch_estimator(library).fit(X[:n])


def _heldout_perplexity(library, model, Xh, gensim_heldout=None):
    if library == "gensim":
        return _lda_data.gensim_perplexity(model, gensim_heldout)
    return float(model.perplexity(Xh))


class LdaBatchPass(OneCallSamples):
    """One batch pass (max_iter=1) over the full corpus. scikit-learn's n_jobs=1 pass on the
    full corpus is tens of seconds on 2 cores, hence the long timeout and few repeats."""

    params = (list(_lda_data.LIBRARIES),)
    param_names = ["library"]
    timeout = 3600
    repeat = (1, 2, 60.0)

    def setup_cache(self):
        return _cache()

    def setup(self, cache, library):
        self.X = cache["X"]
        self.Xh = cache["X_heldout"]
        _lda_data.import_libraries()
        self.gensim_corpus = self.id2word = self.gensim_heldout = None
        if library == "gensim":
            self.gensim_corpus = _lda_data.to_gensim_corpus(self.X)
            self.gensim_heldout = _lda_data.to_gensim_corpus(self.Xh)
            self.id2word = _lda_data.gensim_id2word(self.X.shape[1])
        _warm_up(library, self.X, self.gensim_corpus, self.id2word)

    def time_fit_one_pass(self, cache, library):
        _fit_batch(library, self.X, self.gensim_corpus, self.id2word)

    def track_heldout_perplexity(self, cache, library):
        """Held-out perplexity after one batch pass (lower is better)."""
        model = _fit_batch(library, self.X, self.gensim_corpus, self.id2word)
        return _heldout_perplexity(library, model, self.Xh, self.gensim_heldout)

    track_heldout_perplexity.unit = "perplexity"

    def track_heldout_plugin_perplexity(self, cache, library):
        """Held-out plug-in perplexity after one batch pass (``_lda_data.plugin_perplexity``:
        exp(-mean log p(word) with point-estimate topics and proportions; lower is better)."""
        model = _fit_batch(library, self.X, self.gensim_corpus, self.id2word)
        return _lda_data.plugin_perplexity(library, model, self.Xh)

    track_heldout_plugin_perplexity.unit = "perplexity"


class LdaOnlineUpdate(OneCallSamples):
    """One online update on a mini-batch of MINIBATCH (2,000) documents."""

    params = (list(_lda_data.LIBRARIES),)
    param_names = ["library"]
    timeout = 1800
    repeat = (1, 3, 60.0)

    def setup_cache(self):
        return _cache()

    def setup(self, cache, library):
        X = cache["X"]
        m = _lda_data.MINIBATCH
        self.first, self.batch = X[:m], X[m:2 * m]
        if self.batch.shape[0] == 0:  # tiny corpus: reuse the first mini-batch
            self.batch = self.first
        self.library = library
        _lda_data.import_libraries()
        total = X.shape[0]
        if library != "gensim":
            _warm_up(library, X)
        if library == "gensim":
            self.first = _lda_data.to_gensim_corpus(self.first)
            self.batch = _lda_data.to_gensim_corpus(self.batch)
            self.model = _lda_data.gensim_online_model(_lda_data.gensim_id2word(X.shape[1]))
            _lda_data.gensim_update(self.model, self.first)
        else:
            self.model = _lda_data.online_estimator(library, total)
            self.model.partial_fit(self.first)

    def _update(self):
        if self.library == "gensim":
            _lda_data.gensim_update(self.model, self.batch)
        else:
            self.model.partial_fit(self.batch)

    def time_partial_fit(self, cache, library):
        self._update()

    def track_docs_per_second(self, cache, library):
        """Documents per second of one online update (best of 2)."""
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            self._update()
            best = min(best, time.perf_counter() - t0)
        return len(self.batch) / best if library == "gensim" else self.batch.shape[0] / best

    track_docs_per_second.unit = "documents/s"


class LdaOnlineRealCorpus(OneCallSamples):
    """The online workload on the real corpus (``_lda_data.real_online_fit``): 10 passes of
    mini-batches of ``batch_size`` documents, K = 20. Skipped (NotImplementedError in setup)
    when gensim's test data, which hold the corpus, are not installed."""

    params = (list(_lda_data.REAL_LIBRARIES), [128, 1024])
    param_names = ["library", "batch_size"]
    timeout = 1800
    repeat = (1, 3, 60.0)

    def setup_cache(self):
        try:
            X, Xh = _lda_data.real_corpus()
        except FileNotFoundError:
            return None
        return {"X": X, "X_heldout": Xh}

    def setup(self, cache, library, batch_size):
        if cache is None:
            raise NotImplementedError("gensim's test data (the real corpus) are not installed")
        self.X, self.Xh = cache["X"], cache["X_heldout"]
        _lda_data.import_libraries()
        self.corpus = self.id2word = self.heldout = None
        if library == "gensim":
            self.corpus = _lda_data.to_gensim_corpus(self.X)
            self.heldout = _lda_data.to_gensim_corpus(self.Xh)
            self.id2word = _lda_data.gensim_id2word(self.X.shape[1])
        else:
            _warm_up(library.split("_n_threads")[0], self.X)

    def _fit(self, library, batch_size):
        return _lda_data.real_online_fit(library, self.X, batch_size, self.corpus, self.id2word)

    def time_fit(self, cache, library, batch_size):
        self._fit(library, batch_size)

    def track_heldout_perplexity(self, cache, library, batch_size):
        """Held-out perplexity after the fit (lower is better)."""
        model = self._fit(library, batch_size)
        if library == "gensim":
            return _lda_data.gensim_perplexity(model, self.heldout)
        return float(model.perplexity(self.Xh))

    track_heldout_perplexity.unit = "perplexity"


# ---------------------------------------------------------------------- script
def _best_of(fn, repeat):
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(description="LDA: vbfast vs scikit-learn vs gensim, one "
                                "process (see the module docstring).")
    p.add_argument("--n-docs", type=int, default=_lda_data.N_DOCS)
    p.add_argument("--n-words", type=int, default=_lda_data.N_WORDS)
    p.add_argument("--n-heldout", type=int, default=None,
                   help="held-out documents (default n_docs // 10, at least 100)")
    p.add_argument("--repeat", type=int, default=1, help="best of this many fits")
    p.add_argument("--no-gensim", action="store_true")
    p.add_argument("--no-online", action="store_true")
    p.add_argument("--online-real", action="store_true",
                   help="only the online workload on the real corpus (LdaOnlineRealCorpus)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 1024])
    p.add_argument("--batch-real", action="store_true",
                   help="only one batch pass on the real corpus, for each K and alpha")
    p.add_argument("--components", type=int, nargs="+", default=[20, 100],
                   help="K values of --batch-real")
    p.add_argument("--alphas", nargs="+", default=["default", "0.1"],
                   help="doc_topic_prior values of --batch-real ('default': 1/K)")
    args = p.parse_args(argv)

    import numpy as np

    if args.online_real:
        return online_real(args.batch_sizes, args.repeat, not args.no_gensim)
    if args.batch_real:
        return batch_real(args.components, args.alphas, args.repeat)

    _lda_data.import_libraries()
    t0 = time.perf_counter()
    X, Xh, _ = _lda_data.make_corpus(args.n_docs, args.n_words, args.n_heldout)
    print(f"corpus: {X.shape[0]} documents x {X.shape[1]} words, {int(X.sum())} tokens "
          f"({X.sum() / X.shape[0]:.1f} per document), {X.nnz} non-zeros; held out "
          f"{Xh.shape[0]} documents; K={_lda_data.N_COMPONENTS} "
          f"(made in {time.perf_counter() - t0:.1f} s)")
    print(f"cores: {os.cpu_count()}; vbfast n_threads=None; max_doc_update_iter="
          f"{_lda_data.MAX_DOC_UPDATE_ITER}, mean_change_tol={_lda_data.MEAN_CHANGE_TOL}")

    libs = [lib for lib in _lda_data.LIBRARIES if not (args.no_gensim and lib == "gensim")]
    gc = gh = id2word = None
    if "gensim" in libs:
        gc, gh = _lda_data.to_gensim_corpus(X), _lda_data.to_gensim_corpus(Xh)
        id2word = _lda_data.gensim_id2word(X.shape[1])

    for lib in libs:
        _warm_up(lib, X, gc, id2word)

    rows = {}
    for lib in libs:
        secs, model = _best_of(lambda: _fit_batch(lib, X, gc, id2word), args.repeat)
        perp = _heldout_perplexity(lib, model, Xh, gh)
        plug = _lda_data.plugin_perplexity(lib, model, Xh)
        it = getattr(model, "iteration_times_", None)
        rows[lib] = (secs, it[0] if it else float("nan"), perp, model, plug)

    vb = rows["vbfast"]
    print("\nbatch: one pass (fit, max_iter=1; vbfast and scikit-learn include the final "
          "E-step for bound_)")
    print(f"{'library':<18}{'s / pass':>10}{'ratio / vbfast':>16}{'held-out perplexity':>22}"
          f"{'rel. diff vs vbfast':>21}{'plug-in perplexity':>20}")
    for lib, (secs, _, perp, _, plug) in rows.items():
        print(f"{lib:<18}{secs:>10.3f}{secs / vb[0]:>16.2f}{perp:>22.6g}"
              f"{(perp - vb[2]) / vb[2]:>21.2e}{plug:>20.2f}")
    print("(held-out perplexity: scikit-learn's definition, exp(-ELBO / tokens) with the "
          "topics' term; plug-in: exp(-mean log theta_d.beta_w), see plugin_perplexity)")
    print(f"(vbfast's EM iteration alone, iteration_times_[0]: {vb[1]:.3f} s)")
    sk = rows["sklearn_n_jobs1"][3]
    print("max |components_ vbfast - sklearn| / max|components_|: "
          f"{np.abs(vb[3].components_ - sk.components_).max() / np.abs(sk.components_).max():.2e}")
    best_sk = min(rows[k][0] for k in rows if k.startswith("sklearn"))
    print(f"ratio best scikit-learn / vbfast: {best_sk / vb[0]:.2f}")
    if "gensim" in rows:
        print(f"ratio gensim / vbfast: {rows['gensim'][0] / vb[0]:.2f}  (gensim: float32, its "
              "own initial topics; its perplexity is informational)")

    if args.no_online:
        return
    m = _lda_data.MINIBATCH
    first, batch = X[:m], X[m:2 * m]
    if batch.shape[0] == 0:
        batch = first
    n_total = X.shape[0]
    print(f"\nonline: one update on a {batch.shape[0]}-document mini-batch, after one "
          "update in set-up (best of 2)")
    print(f"{'library':<18}{'s / update':>12}{'documents/s':>14}{'vbfast speed-up':>17}")
    online = {}
    for lib in libs:
        if lib == "gensim":
            f_, b_ = _lda_data.to_gensim_corpus(first), _lda_data.to_gensim_corpus(batch)
            model = _lda_data.gensim_online_model(id2word)
            _lda_data.gensim_update(model, f_)
            secs, _ = _best_of(lambda: _lda_data.gensim_update(model, b_), 2)
        else:
            model = _lda_data.online_estimator(lib, n_total)
            model.partial_fit(first)
            secs, _ = _best_of(lambda: model.partial_fit(batch), 2)
        online[lib] = secs
    for lib, secs in online.items():
        print(f"{lib:<18}{secs:>12.3f}{batch.shape[0] / secs:>14.0f}"
              f"{secs / online['vbfast']:>17.2f}")


BATCH_REAL_LIBRARIES = ("vbfast_n_threads1", "sklearn_n_jobs1", "vbfast_n_threads2",
                        "sklearn_n_jobs2")


def batch_real(components, alphas, repeat):
    """One batch pass on the real corpus for each K and alpha, vbfast and scikit-learn on one
    and two threads side by side in this process."""
    _lda_data.import_libraries()
    X, Xh = _lda_data.real_corpus()
    print(f"real corpus (gensim head500.noblanks.cor): {X.shape[0]} documents x {X.shape[1]} "
          f"words, {int(X.sum())} tokens, {X.nnz} non-zeros; held out {Xh.shape[0]}; one "
          f"batch pass (fit, max_iter=1); best of {repeat} rounds, libraries alternated")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"cores: {os.cpu_count()}; load average at start: {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f}")
    libs = BATCH_REAL_LIBRARIES
    for lib in libs:  # imports, OpenMP threads, joblib's workers out of the timing
        _lda_data.batch_estimator(lib, n_components=components[0]).fit(X[:200])
    for K in components:
        for a in alphas:
            alpha = 1.0 / K if a == "default" else float(a)
            best = {lib: [float("inf"), float("inf"), None] for lib in libs}
            for _ in range(repeat):
                for lib in libs:
                    est = _lda_data.batch_estimator(lib, n_components=K, doc_topic_prior=alpha)
                    t0, c0 = time.perf_counter(), time.process_time()
                    est.fit(X)
                    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
                    b = best[lib]
                    b[1] = min(b[1], cpu)
                    if secs < b[0]:
                        b[0], b[2] = secs, est
            print(f"\nK={K}, alpha={alpha:.4g}")
            print(f"{'library':<20}{'s / pass':>10}{'CPU s':>8}{'held-out perplexity':>22}"
                  f"{'rel. diff vs vbfast':>21}")
            vb_perp = float(best["vbfast_n_threads1"][2].perplexity(Xh))
            for lib in libs:
                secs, cpu, est = best[lib]
                perp = float(est.perplexity(Xh))
                print(f"{lib:<20}{secs:>10.3f}{cpu:>8.3f}{perp:>22.10g}"
                      f"{(perp - vb_perp) / vb_perp:>21.2e}")
            one, two = best["vbfast_n_threads1"], best["vbfast_n_threads2"]
            print(f"ratios: scikit-learn n_jobs=1 / vbfast n_threads=1 "
                  f"{best['sklearn_n_jobs1'][0] / one[0]:.1f}x wall, "
                  f"{best['sklearn_n_jobs1'][1] / one[1]:.1f}x CPU; "
                  f"n_jobs=2 / n_threads=2 {best['sklearn_n_jobs2'][0] / two[0]:.1f}x wall")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"\nload average at end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


def online_real(batch_sizes, repeat, with_gensim):
    """The real-corpus online workload, every library side by side in this process."""
    import numpy as np

    _lda_data.import_libraries()
    X, Xh = _lda_data.real_corpus()
    print(f"real corpus (gensim head500.noblanks.cor): {X.shape[0]} documents x {X.shape[1]} "
          f"words, {int(X.sum())} tokens, {X.nnz} non-zeros; held out {Xh.shape[0]} "
          f"documents; K={_lda_data.REAL_COMPONENTS}, learning_method='online', "
          f"{_lda_data.REAL_PASSES} passes; best of {repeat} rounds, libraries alternated")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"cores: {os.cpu_count()}; load average at start: {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f}")
    libs = [lib for lib in _lda_data.REAL_LIBRARIES if with_gensim or lib != "gensim"]
    corpus = heldout = id2word = None
    if "gensim" in libs:
        corpus, heldout = _lda_data.to_gensim_corpus(X), _lda_data.to_gensim_corpus(Xh)
        id2word = _lda_data.gensim_id2word(X.shape[1])
    for lib in libs:
        if lib != "gensim":
            _warm_up(lib.split("_n_threads")[0], X)
    for batch_size in batch_sizes:
        best = {lib: (float("inf"), None) for lib in libs}
        for _ in range(repeat):
            for lib in libs:
                t0 = time.perf_counter()
                model = _lda_data.real_online_fit(lib, X, batch_size, corpus, id2word)
                secs = time.perf_counter() - t0
                if secs < best[lib][0]:
                    best[lib] = (secs, model)
        vb_secs, vb_model = best["vbfast"]
        vb_perp = float(vb_model.perplexity(Xh))
        print(f"\nbatch_size={batch_size}")
        print(f"{'library':<20}{'s / fit':>10}{'s / vbfast':>12}{'held-out perplexity':>22}"
              f"{'rel. diff vs vbfast':>21}")
        for lib in libs:
            secs, model = best[lib]
            perp = (_lda_data.gensim_perplexity(model, heldout) if lib == "gensim"
                    else float(model.perplexity(Xh)))
            print(f"{lib:<20}{secs:>10.3f}{secs / vb_secs:>12.2f}{perp:>22.8g}"
                  f"{(perp - vb_perp) / vb_perp:>21.2e}")
        sk = best["sklearn_n_jobs1"][1]
        print("max |components_ vbfast - sklearn n_jobs=1| / max|components_|: "
              f"{np.abs(vb_model.components_ - sk.components_).max() / sk.components_.max():.2e}")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"\nload average at end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
