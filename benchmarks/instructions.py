"""A fixed workload run ``reps`` times, for instruction counts (valgrind's callgrind), which do
not depend on what else the machine runs. The cost of one fit is the count of a run with
reps=2 minus that of reps=1 (imports and data generation cancel):

    OPENBLAS_NUM_THREADS=1 valgrind --tool=callgrind --callgrind-out-file=a.out \
        python benchmarks/instructions.py em_diag 1
    (the same with 2), then: grep totals a.out

Cases: em_full, em_diag, em_diag_given, em_sph_given, mf_full, gibbs_diag, predict,
lda_batch, lda_online, lda_gibbs, lca_bernoulli (20 binary items, K = 8, 20,000 rows, 10 EM
iterations from a given start), lca_categorical (10 items of 5 levels, the same), and the HMM
workloads of ``bench_hmm.py`` scaled down: hmm_many (50 sequences of 1,000, K = 10, D = 8,
diag, 5 EM iterations), hmm_long (one sequence of 50,000, K = 4, full, D = 1, 10 EM
iterations), hmm_short (500 sequences of 10, 10 iterations), hmm_gibbs (hmm_many's data, 5
Gibbs sweeps, one chain) (one thread each). OPENBLAS_NUM_THREADS=1 keeps OpenBLAS's
idle worker threads, whose spinning valgrind counts, out of the totals."""
import inspect
import sys
import warnings

import numpy as np


def main(case, reps):
    warnings.simplefilter("ignore")
    from vbfast import (BayesianGaussianMixture, BernoulliMixture, CategoricalMixture,
                        GaussianMixture, LatentDirichletAllocation)

    draws = ("n_draws" if "n_draws" in inspect.signature(GaussianMixture).parameters
             else "n_samples")  # (the name before the rename, to count old builds)
    rng = np.random.RandomState(0)
    X = rng.normal(size=(20000, 16)) + rng.randint(4, size=(20000, 1)) * 3.0
    topics = rng.dirichlet(np.full(2000, 0.05), size=20)
    theta = rng.dirichlet(np.full(20, 0.1), size=1000)
    C = np.array([rng.multinomial(80, t @ topics) for t in theta], dtype=np.float64)
    rng0 = np.random.RandomState(1)
    z = rng.randint(8, size=20000)
    B = (rng.uniform(size=(20000, 20)) < rng.beta(0.5, 0.5, size=(8, 20))[z]).astype(float)
    cum = np.cumsum(rng.dirichlet(np.full(5, 0.5), size=(8, 10))[z], axis=2)
    Q = (rng.uniform(size=(20000, 10, 1)) > cum).sum(axis=2).clip(0, 4).astype(float)
    Q[:5] = np.arange(5)[:, None]  # every level seen
    lca_start = dict(weights_init=np.full(8, 1 / 8), max_iter=10, tol=0, n_threads=1)
    if case.startswith("hmm_"):
        sys.path.insert(0, __file__.rsplit("/", 1)[0])
        from bench_hmm import make_estimator, make_workload

        workload = {"hmm_many": "many", "hmm_gibbs": "many", "hmm_long": "long",
                    "hmm_short": "short"}[case]
        hmm_data = make_workload(workload, {"many": 0.05, "long": 1.0, "short": 1.0}[workload])
    common = dict(init_params="random_from_data", random_state=0, n_threads=1)

    def run():
        if case in ("em_full", "em_diag"):
            GaussianMixture(16, covariance_type=case[3:], max_iter=5, tol=0, **common).fit(X)
        elif case in ("em_diag_given", "em_sph_given"):
            ctype = "diag" if case == "em_diag_given" else "spherical"
            means = X[rng0.choice(len(X), 16, replace=False)]
            var = X.var(axis=0)
            prec = (np.tile(1 / var, (16, 1)) if ctype == "diag"
                    else np.full(16, 1 / var.mean()))
            GaussianMixture(16, covariance_type=ctype, max_iter=10, tol=0,
                            weights_init=np.full(16, 1 / 16), means_init=means,
                            precisions_init=prec, **common).fit(X)
        elif case == "mf_full":
            BayesianGaussianMixture(n_components=16, covariance_type="full", max_iter=5, tol=0,
                                    **common).fit(X)
        elif case == "gibbs_diag":
            GaussianMixture(16, covariance_type="diag", method="gibbs", burn_in=2, n_chains=1,
                            **common, **{draws: 4}).fit(X)
        elif case == "predict":
            gm = GaussianMixture(16, covariance_type="full", max_iter=1, tol=0,
                                 **common).fit(X[:2000])
            for _ in range(5):
                gm.predict_proba(X)
        elif case == "lda_batch":
            LatentDirichletAllocation(20, max_iter=2, random_state=0, n_threads=1).fit(C)
        elif case == "lda_online":
            LatentDirichletAllocation(20, max_iter=1, learning_method="online", batch_size=16,
                                      random_state=0, n_threads=1).fit(C)
        elif case == "lda_gibbs":
            LatentDirichletAllocation(20, method="gibbs", burn_in=2, random_state=0,
                                      n_threads=1, **{draws: 3}).fit(C)
        elif case == "lca_bernoulli":
            BernoulliMixture(8, probabilities_init=np.random.RandomState(2).uniform(
                0.2, 0.8, size=(8, 20)), **lca_start).fit(B)
        elif case == "lca_categorical":
            CategoricalMixture(8, probabilities_init=tuple(np.random.RandomState(2).dirichlet(
                np.full(5, 5.0), size=8) for _ in range(10)), **lca_start).fit(Q)
        elif case.startswith("hmm_"):
            Xh, lengths, start, ctype, n_iter = hmm_data
            n_iter = 10 if case == "hmm_long" else n_iter
            est = make_estimator("vbfast", len(start["startprob_"]), ctype, n_iter, start)
            est.n_threads = 1
            if case == "hmm_gibbs":
                est.set_params(method="gibbs", n_draws=3, burn_in=2, n_chains=1,
                               random_state=0)
            est.fit(Xh, lengths)
        else:
            raise SystemExit(f"unknown case {case!r}")

    for _ in range(reps):
        run()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
