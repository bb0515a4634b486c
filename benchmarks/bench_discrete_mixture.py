"""Discrete-mixture benchmarks (issue 16): vbfast side by side with StepMix and with LDA.

- ``BernoulliMixtureEM``: N = 1,000,000 respondents, 20 binary items, 8 classes, drawn once from
  a random latent class model; both libraries start EM from the same parameters (StepMix's own
  initialisation after one iteration) and run exactly ``MAX_ITER`` = 50 EM iterations (vbfast
  tol=0; StepMix's E- and M-steps called directly, which is what its ``fit`` loop runs).
- ``CategoricalMixtureEM``: the same with 10 items of 5 levels (StepMix's 'categorical'
  measurement, integer codes), from the same random start.
- ``MultinomialMixtureVsLda``: ``MultinomialMixture`` (K = 50, EM) on the LDA benchmarks'
  20k x 20k sparse corpus (``_lda_data``), one EM iteration and 10, against one batch pass of
  vbfast's ``LatentDirichletAllocation`` (K = 50) on the same corpus: what a mixture of
  unigrams costs next to the topic model.

vbfast uses every core; StepMix is NumPy (its BLAS's default threads). StepMix is skipped when
not installed. The timings are of the fits only (encoding the data, the iterations and, for
vbfast, its final log-likelihood pass); the log-likelihoods compared are computed afterwards.

As a script, ``python benchmarks/bench_discrete_mixture.py`` runs all three side by side in one
process, each contender ``--repeat`` times, alternated, and prints the best times, the ratios,
the final mean log-likelihoods of both libraries and the load average. At N = 1M a StepMix fit
of 50 iterations takes minutes: ``--stepmix-iter 5`` times StepMix for 5 iterations (from the
same start) and reports the per-iteration ratio, StepMix's seconds per iteration over vbfast's
whole 50-iteration fit divided by 50; the log-likelihoods are then compared after 5 iterations
of both. ``--n``, ``--max-iter``, ``--docs`` (the corpus size), ``--which`` choose the sizes and
the cases.
"""
import os
import time
import warnings

import numpy as np

try:  # asv imports this module as ``benchmarks.bench_discrete_mixture``
    from ._asv import OneCallSamples
except ImportError:  # run as a script, or imported with benchmarks/ on sys.path
    from _asv import OneCallSamples

N_SAMPLES = 1_000_000
N_ITEMS = 20
N_CLASSES = 8
MAX_ITER = 50
LIBRARIES = ["vbfast", "stepmix"]


def make_data(n=N_SAMPLES, d=N_ITEMS, k=N_CLASSES, seed=0):
    rng = np.random.RandomState(seed)
    probs = rng.beta(0.5, 0.5, size=(k, d))
    z = rng.choice(k, n, p=rng.dirichlet(np.full(k, 5.0)))
    return (rng.uniform(size=(n, d)) < probs[z]).astype(np.float64)


def make_start(X, k=N_CLASSES):
    """(weights, item probabilities (K, D)): StepMix's initialisation after one EM iteration
    when StepMix is installed, else vbfast's."""
    try:
        from stepmix import StepMix
    except ImportError:
        from vbfast import BernoulliMixture
        est = BernoulliMixture(k, max_iter=1, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X)
        return est.weights_, est.probabilities_
    sm = StepMix(n_components=k, measurement="bernoulli", max_iter=1, random_state=0,
                 progress_bar=0, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm.fit(X)
    p = sm.get_parameters()
    return np.array(p["weights"]), np.array(p["measurement"]["pis"])


def _fit_vbfast_em(estimator, X, start, max_iter):
    """vbfast's ``estimator`` (a discrete mixture's class name) by EM from ``start``,
    ``max_iter`` iterations; the estimator."""
    import vbfast
    est = getattr(vbfast, estimator)(len(start[0]), weights_init=start[0],
                                     probabilities_init=start[1], max_iter=max_iter, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    return est


def fit_vbfast(X, start, max_iter=MAX_ITER):
    """vbfast's BernoulliMixture EM from ``start``, ``max_iter`` iterations; the estimator."""
    return _fit_vbfast_em("BernoulliMixture", X, start, max_iter)


def _stepmix_em(X, start, measurement, pis, max_iter):
    from stepmix import StepMix
    k = len(start[0])
    sm = StepMix(n_components=k, measurement=measurement, max_iter=1, random_state=0,
                 progress_bar=0, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm.fit(X[:max(k, 100)])  # builds the model objects; parameters replaced below
        params = sm.get_parameters()
        params["weights"] = start[0].copy()
        params["measurement"]["pis"] = pis
        sm.set_parameters(params)
        for _ in range(max_iter):
            _, log_resp = sm._e_step(X)
            sm._m_step(X, np.exp(log_resp))
    return sm


def fit_stepmix(X, start, max_iter=MAX_ITER):
    """StepMix's EM (its E- and M-steps, as its ``fit`` loop) from ``start``; the model."""
    return _stepmix_em(X, start, "bernoulli", start[1].copy(), max_iter)


class BernoulliMixtureEM(OneCallSamples):
    """One EM fit of MAX_ITER iterations from a fixed start."""

    params = (LIBRARIES,)
    param_names = ["library"]
    timeout = 1800
    repeat = 2

    def setup_cache(self):
        X = make_data()
        return {"X": X, "start": make_start(X)}

    def setup(self, cache, library):
        import vbfast  # noqa: F401  (import time is not the fit's)
        if library == "stepmix":
            try:
                import stepmix  # noqa: F401
            except ImportError:
                raise NotImplementedError("stepmix is not installed")

    def time_fit(self, cache, library):
        (fit_vbfast if library == "vbfast" else fit_stepmix)(cache["X"], cache["start"])


# ---------------------------------------------------------------------- categorical
N_LEVELS = 5
N_CAT_ITEMS = 10


def make_categorical(n=N_SAMPLES, d=N_CAT_ITEMS, levels=N_LEVELS, k=N_CLASSES, seed=0):
    """Integer codes (n, d) in [0, levels) from a random latent class model (every level seen)."""
    rng = np.random.RandomState(seed)
    probs = rng.dirichlet(np.full(levels, 0.5), size=(k, d))  # (K, D, L)
    z = rng.choice(k, n, p=rng.dirichlet(np.full(k, 5.0)))
    cum = np.cumsum(probs[z], axis=2)
    X = (rng.uniform(size=(n, d, 1)) > cum).sum(axis=2).astype(np.float64)
    X[:levels] = np.arange(levels)[:, None]  # every level present in every item
    return np.minimum(X, levels - 1)


def categorical_start(d=N_CAT_ITEMS, levels=N_LEVELS, k=N_CLASSES, seed=1):
    """(weights, tuple of (K, levels) per item): a random start both libraries use."""
    rng = np.random.RandomState(seed)
    return np.full(k, 1.0 / k), tuple(rng.dirichlet(np.full(levels, 5.0), size=k)
                                      for _ in range(d))


def fit_vbfast_categorical(X, start, max_iter=MAX_ITER):
    return _fit_vbfast_em("CategoricalMixture", X, start, max_iter)


def fit_stepmix_categorical(X, start, max_iter=MAX_ITER):
    # StepMix's layout: pis[k, j * L + l]
    return _stepmix_em(X, start, "categorical", np.hstack(start[1]).copy(), max_iter)


def mean_loglik(model, X):
    """The mean log-likelihood per row of a fitted vbfast estimator or StepMix model."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(model.score(X))


class CategoricalMixtureEM(OneCallSamples):
    """One EM fit of MAX_ITER iterations from a fixed start: 10 items of 5 levels."""

    params = (LIBRARIES,)
    param_names = ["library"]
    timeout = 1800
    repeat = 2

    def setup_cache(self):
        return {"X": make_categorical(), "start": categorical_start()}

    def setup(self, cache, library):
        BernoulliMixtureEM.setup(self, cache, library)

    def time_fit(self, cache, library):
        (fit_vbfast_categorical if library == "vbfast" else fit_stepmix_categorical)(
            cache["X"], cache["start"])


# ---------------------------------------------------------------------- multinomial vs LDA
N_TOPICS = 50


def _corpus(n_docs=None):
    try:
        from . import _lda_data as LD
    except ImportError:  # run as a script
        import _lda_data as LD
    return LD.make_corpus(n_docs=n_docs, n_words=None if n_docs is None else n_docs)[0]


def fit_multinomial(X, max_iter):
    from vbfast import MultinomialMixture
    est = MultinomialMixture(N_TOPICS, max_iter=max_iter, tol=0.0, random_state=0,
                             item_prior=1.01)  # a touch of smoothing: rare words unseen in a class
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    return est


def lda_pass(X):
    from vbfast import LatentDirichletAllocation
    est = LatentDirichletAllocation(N_TOPICS, learning_method="batch", max_iter=1,
                                    doc_topic_prior=1.0 / N_TOPICS,
                                    topic_word_prior=1.0 / N_TOPICS, evaluate_every=-1,
                                    random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    return est


class MultinomialMixtureVsLda(OneCallSamples):
    """MultinomialMixture EM (1 and 10 iterations) next to one batch LDA pass, same corpus."""

    params = (["multinomial_1_iter", "multinomial_10_iter", "lda_1_pass"],)
    param_names = ["fit"]
    timeout = 1800
    repeat = 2

    def setup_cache(self):
        return _corpus()

    def time_fit(self, X, fit):
        if fit == "lda_1_pass":
            lda_pass(X)
        else:
            fit_multinomial(X, 1 if fit == "multinomial_1_iter" else 10)


def _best(fits, repeat):
    """Run each (name, function) ``repeat`` times, alternated; the best time of each and the
    last result of each."""
    times, results = {}, {}
    for _ in range(repeat):
        for name, f in fits:
            t0 = time.perf_counter()
            results[name] = f()
            t = time.perf_counter() - t0
            times[name] = min(times.get(name, np.inf), t)
    return times, results


def _load():
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=N_SAMPLES)
    parser.add_argument("--max-iter", type=int, default=MAX_ITER)
    parser.add_argument("--stepmix-iter", type=int, default=None,
                        help="StepMix's iterations (default --max-iter): fewer gives a "
                             "per-iteration ratio")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--which", choices=["bernoulli", "categorical", "multinomial", "all"],
                        default="all")
    parser.add_argument("--docs", type=int, default=None,
                        help="documents (and words) of the multinomial corpus; default 20000")
    args = parser.parse_args(argv)
    try:
        import stepmix  # noqa: F401
        have_stepmix = True
    except ImportError:
        have_stepmix = False
    # imports and first-call costs (threadpoolctl's library scan, OpenMP start) kept out of
    # the timings, as asv's setup does
    import vbfast  # noqa: F401
    fit_vbfast(make_data(n=500), make_start(make_data(n=500)), 2)
    print(f"{_load()}; {os.cpu_count()} cores; best of {args.repeat}, alternated")
    m_iter = args.max_iter if args.stepmix_iter is None else args.stepmix_iter
    rows = []
    cases = []
    if args.which in ("bernoulli", "all"):
        X = make_data(n=args.n)
        cases.append(("BernoulliMixture", X, make_start(X), fit_vbfast, fit_stepmix))
    if args.which in ("categorical", "all"):
        cases.append(("CategoricalMixture", make_categorical(n=args.n), categorical_start(),
                      fit_vbfast_categorical, fit_stepmix_categorical))
    for name, X, start, fv, fs in cases:
        fits = [("vbfast", lambda: fv(X, start, args.max_iter))]
        if have_stepmix:
            fits.append(("stepmix", lambda: fs(X, start, m_iter)))
        times, res = _best(fits, args.repeat)
        t_v = times["vbfast"]
        line = (f"{name} N={X.shape[0]:,} D={X.shape[1]} K={len(start[0])}: vbfast "
                f"{args.max_iter} iterations {t_v:.3f} s ({t_v / args.max_iter * 1e3:.1f} "
                "ms/iteration)")
        if not have_stepmix:
            print(line + "; stepmix not installed")
            continue
        t_s = times["stepmix"]
        line += (f", stepmix {m_iter} iterations {t_s:.3f} s ({t_s / m_iter * 1e3:.1f} "
                 f"ms/iteration)")
        ratio = (t_s / m_iter) / (t_v / args.max_iter)
        # the same number of iterations on both sides for the log-likelihoods
        est = res["vbfast"] if m_iter == args.max_iter else fv(X, start, m_iter)
        ll_v, ll_s = mean_loglik(est, X), mean_loglik(res["stepmix"], X)
        print(line)
        print(f"  ratio stepmix / vbfast {'per iteration ' if m_iter != args.max_iter else ''}"
              f"= {ratio:.1f}x; mean log-likelihood after {m_iter} iterations: vbfast "
              f"{ll_v:.12f}, stepmix {ll_s:.12f} (|difference| {abs(ll_v - ll_s):.1e})")
        rows.append((name, ratio))
    if args.which in ("multinomial", "all"):
        X = _corpus(args.docs)
        times, _ = _best([("multinomial_1", lambda: fit_multinomial(X, 1)),
                          ("multinomial_10", lambda: fit_multinomial(X, 10)),
                          ("lda", lambda: lda_pass(X))], args.repeat)
        per_iter = (times["multinomial_10"] - times["multinomial_1"]) / 9
        print(f"MultinomialMixture K={N_TOPICS} on {X.shape[0]:,} x {X.shape[1]:,} "
              f"({int(X.sum()):,} tokens): EM 1 iteration {times['multinomial_1']:.3f} s, "
              f"10 iterations {times['multinomial_10']:.3f} s ({per_iter * 1e3:.1f} "
              f"ms/iteration); LatentDirichletAllocation K={N_TOPICS} one batch pass "
              f"{times['lda']:.3f} s")
        print(f"  one LDA pass / one MultinomialMixture iteration = {times['lda'] / per_iter:.1f}x;"
              f" one LDA pass / a whole 10-iteration fit = "
              f"{times['lda'] / times['multinomial_10']:.2f}x")
    print(_load())


if __name__ == "__main__":
    main()
