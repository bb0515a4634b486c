"""Shared data, initial parameters and estimator construction for the mixture benchmarks.

Imported by ``bench_mixture.py`` (asv imports it as ``benchmarks._data``) and by ``compare.py``
(run as a script, which imports it as ``_data``). Nothing here is named like an asv benchmark
(``time_*``, ``peakmem_*``, ``mem_*``, ``track_*``), so asv's discovery skips it.

Everything is deterministic: the data come from a fixed seed and the initial parameters from a
fixed rule, so that vbfast and scikit-learn start EM from exactly the same point and run the same
number of iterations (``tol=0``), and their timings compare like for like.
"""
import warnings

import numpy as np

N_SAMPLES = 200_000
N_FEATURES = 16
N_COMPONENTS = 16
MAX_ITER = 20
DATA_SEED = 20240611
INIT_SEED = 7

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

# PyCave's published full-covariance workload (issue 17): N = 100,000, D = 32, K = 16
PYCAVE_FULL = {"n_samples": 100_000, "n_features": 32, "n_components": 16}
# and its diag workload: N = 1,000,000, D = 64, K = 64 (512 MB of float64 rows), fewer
# iterations (scikit-learn takes ~25 s an iteration)
PYCAVE_DIAG = {"n_samples": 1_000_000, "n_features": 64, "n_components": 64}
PYCAVE_DIAG_MAX_ITER = 5
LIBRARIES = ("vbfast", "sklearn")


def make_data(n_samples=N_SAMPLES, n_features=N_FEATURES, n_components=N_COMPONENTS,
              seed=DATA_SEED):
    """Draw X (n_samples, n_features), float64, C-contiguous, from a random Gaussian mixture.

    The true mixture has Dirichlet(2) weights, N(0, 4^2) means and random full covariances
    A A^T / D + s I with a per-component scale; rows are shuffled so that no chunk of the data
    belongs to one component.
    """
    rng = np.random.default_rng(seed)
    D, K = n_features, n_components
    weights = rng.dirichlet(np.full(K, 2.0))
    means = rng.normal(0.0, 4.0, size=(K, D))
    counts = rng.multinomial(n_samples, weights)
    parts = []
    for k in range(K):
        A = rng.normal(size=(D, D))
        scale = rng.uniform(0.5, 2.0)
        cov = scale * (A @ A.T / D + 0.5 * np.eye(D))
        L = np.linalg.cholesky(cov)
        parts.append(means[k] + rng.standard_normal((counts[k], D)) @ L.T)
    X = np.concatenate(parts)
    X = X[rng.permutation(n_samples)]
    return np.ascontiguousarray(X, dtype=np.float64)


def make_init(X, covariance_type, n_components=N_COMPONENTS, seed=INIT_SEED):
    """Initial (weights_init, means_init, precisions_init) for ``covariance_type``, as a dict.

    A k-means-free rule, cheap and identical for both libraries: uniform weights, K distinct
    random rows of X as means, and the inverse of the data covariance as every component's
    precision (its diagonal for 'diag', its mean variance for 'spherical').
    """
    rng = np.random.default_rng(seed)
    n_samples, D = X.shape
    K = n_components
    idx = np.sort(rng.choice(n_samples, size=K, replace=False))
    means = np.array(X[idx], dtype=np.float64)
    cov = np.cov(X, rowvar=False)
    if covariance_type == "full":
        prec = np.linalg.inv(cov)
        prec = 0.5 * (prec + prec.T)
        precisions = np.repeat(prec[None], K, axis=0)
    elif covariance_type == "tied":
        prec = np.linalg.inv(cov)
        precisions = 0.5 * (prec + prec.T)
    elif covariance_type == "diag":
        precisions = np.repeat((1.0 / np.diag(cov))[None], K, axis=0)
    elif covariance_type == "spherical":
        precisions = np.full(K, 1.0 / np.mean(np.diag(cov)))
    else:
        raise ValueError(f"unknown covariance_type {covariance_type!r}")
    return {"weights_init": np.full(K, 1.0 / K), "means_init": means,
            "precisions_init": np.ascontiguousarray(precisions)}


def make_all_inits(X, n_components=N_COMPONENTS):
    """{covariance_type: make_init(X, covariance_type)} for the four covariance types."""
    return {ct: make_init(X, ct, n_components) for ct in COVARIANCE_TYPES}


def import_libraries():
    """Import vbfast and scikit-learn's mixture module: a benchmark's setup calls this for either
    library, so that the peak memory of both starts from the same resident baseline."""
    import sklearn.mixture  # noqa: F401
    import vbfast  # noqa: F401


def make_estimator(library, covariance_type, init, max_iter=MAX_ITER):
    """An unfitted GaussianMixture of ``library`` starting from ``init``, running max_iter EM
    iterations exactly (tol=0, n_init=1).

    scikit-learn always computes initial responsibilities and one M-step from them, even when
    all three ``*_init`` are given; ``init_params='random_from_data'`` makes the responsibilities
    cheap (K one-hot rows) so that k-means does not enter the timing. vbfast skips its
    initialisation when all three are given. vbfast runs on every core (``n_threads=None``);
    scikit-learn uses its BLAS's default thread count (every core).
    """
    n_components = len(init["weights_init"])
    common = dict(n_components=n_components, covariance_type=covariance_type, tol=0.0,
                  max_iter=max_iter, n_init=1, init_params="random_from_data",
                  random_state=0, **init)
    if library == "vbfast":
        import vbfast

        return vbfast.GaussianMixture(n_threads=None, **common)
    if library == "sklearn":
        from sklearn.mixture import GaussianMixture

        return GaussianMixture(**common)
    raise ValueError(f"unknown library {library!r}")


def fit_quietly(estimator, X):
    """estimator.fit(X) without the ConvergenceWarning that tol=0 always raises."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator.fit(X)


def estep_flops(n_samples, n_features, n_components):
    """Multiply-adds x2 of the full-covariance E-step's products (x_n - m_k) U_k: 2 N K D^2,
    the FLOP count of the (N, D) @ (D, K*D) matmul used as the BLAS reference."""
    return 2.0 * n_samples * n_components * n_features ** 2


MATMUL_CHUNK = 8192


def matmul_operands(X, n_components=N_COMPONENTS, seed=INIT_SEED, chunk=MATMUL_CHUNK):
    """(W, out) for ``chunked_matmul``: W of shape (D, K*D), so that X @ W has the FLOP count
    of the full E-step, and an output buffer of ``chunk`` rows (the full (N, K*D) product would
    take 400 MB at the default sizes; the E-step never holds it either)."""
    rng = np.random.default_rng(seed)
    D = X.shape[1]
    W = np.ascontiguousarray(rng.normal(size=(D, n_components * D)))
    out = np.empty((min(chunk, X.shape[0]), n_components * D))
    return W, out


def chunked_matmul(X, W, out):
    """X @ W computed ``len(out)`` rows at a time into ``out`` (BLAS's default threads)."""
    chunk = out.shape[0]
    n = X.shape[0]
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        np.matmul(X[start:stop], W, out=out[:stop - start])
    return out
