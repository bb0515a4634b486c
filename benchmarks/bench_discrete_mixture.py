"""Latent class analysis (BernoulliMixture) benchmark: vbfast and StepMix side by side.

N = 1,000,000 respondents, 20 binary items, 8 classes, drawn once from a random latent class
model; both libraries start EM from the same parameters (StepMix's own initialisation after one
iteration) and run exactly ``MAX_ITER`` = 50 EM iterations (vbfast tol=0; StepMix's E- and
M-steps called directly, which is what its ``fit`` loop runs). vbfast uses every core; StepMix
is NumPy (its BLAS's default threads). StepMix is skipped when not installed.

As a script, ``python benchmarks/bench_discrete_mixture.py --n 20000`` runs one timing at a
smaller size and prints both times, their ratio and the difference of the final
log-likelihoods.
"""
import time
import warnings

import numpy as np

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


def fit_vbfast(X, start, max_iter=MAX_ITER):
    from vbfast import BernoulliMixture
    est = BernoulliMixture(len(start[0]), weights_init=start[0], probabilities_init=start[1],
                           max_iter=max_iter, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    return est.score(X)


def fit_stepmix(X, start, max_iter=MAX_ITER):
    from stepmix import StepMix
    k = len(start[0])
    sm = StepMix(n_components=k, measurement="bernoulli", max_iter=1, random_state=0,
                 progress_bar=0, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm.fit(X[:max(k, 100)])  # builds the model objects; parameters replaced below
        params = sm.get_parameters()
        params["weights"] = start[0].copy()
        params["measurement"]["pis"] = start[1].copy()
        sm.set_parameters(params)
        for _ in range(max_iter):
            _, log_resp = sm._e_step(X)
            sm._m_step(X, np.exp(log_resp))
        return sm.score(X)


class BernoulliMixtureEM:
    """One EM fit of MAX_ITER iterations from a fixed start."""

    params = (LIBRARIES,)
    param_names = ["library"]
    timeout = 1800
    number = 1
    repeat = 2
    rounds = 1
    warmup_time = 0

    def setup_cache(self):
        X = make_data()
        return {"X": X, "start": make_start(X)}

    def setup(self, cache, library):
        if library == "stepmix":
            try:
                import stepmix  # noqa: F401
            except ImportError:
                raise NotImplementedError("stepmix is not installed")

    def time_fit(self, cache, library):
        (fit_vbfast if library == "vbfast" else fit_stepmix)(cache["X"], cache["start"])


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=N_SAMPLES)
    parser.add_argument("--max-iter", type=int, default=MAX_ITER)
    args = parser.parse_args(argv)
    X = make_data(n=args.n)
    start = make_start(X)
    t0 = time.perf_counter()
    ll_v = fit_vbfast(X, start, args.max_iter)
    t_v = time.perf_counter() - t0
    print(f"vbfast : {t_v:.3f} s  mean log-likelihood {ll_v:.12f}")
    try:
        t0 = time.perf_counter()
        ll_s = fit_stepmix(X, start, args.max_iter)
        t_s = time.perf_counter() - t0
        print(f"stepmix: {t_s:.3f} s  mean log-likelihood {ll_s:.12f}")
        print(f"ratio stepmix / vbfast = {t_s / t_v:.2f}x; |difference| {abs(ll_v - ll_s):.2e}")
    except ImportError:
        print("stepmix not installed")


if __name__ == "__main__":
    main()
