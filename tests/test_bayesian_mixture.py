"""vbfast.BayesianGaussianMixture / GaussianMixture(method='mean_field'): parity with
scikit-learn from the same initial responsibilities, the full ELBO (its constant offset from
scikit-learn's bound, computed independently here), monotonicity, the Dirichlet-process
pruning, the posterior predictive, validation of the priors, and the estimator API."""
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import digamma, gammaln, logsumexp
from scipy.stats import multivariate_t
from sklearn.base import clone
from sklearn.mixture import BayesianGaussianMixture as SKBayesianGaussianMixture

import vbfast
from vbfast import BayesianGaussianMixture, GaussianMixture

COV_TYPES = ["full", "tied", "diag", "spherical"]
PRIOR_TYPES = ["dirichlet_process", "dirichlet_distribution"]
POSTERIOR = ["mean_precision_", "means_", "degrees_of_freedom_", "covariances_",
             "precisions_", "precisions_cholesky_", "weights_"]


def make_blobs(n=600, d=3, seed=0, separation=5.0, spread=1.0):
    """Three clusters with different correlated shapes and unequal sizes, away from 0."""
    rng = np.random.RandomState(seed)
    centers = np.zeros((3, d))
    centers[1, :2] = separation
    centers[2, 1:3] = separation
    centers += 3.0
    y = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    A = rng.normal(size=(3, d, d)) * 0.4 + np.eye(d)
    X = centers[y] + spread * np.einsum("nij,nj->ni", A[y], rng.normal(size=(n, d)))
    return np.ascontiguousarray(X), y


def random_resp(n, k, seed=1):
    rng = np.random.RandomState(seed)
    resp = rng.uniform(size=(n, k))
    return resp / resp.sum(axis=1)[:, None]


class SKFromResp(SKBayesianGaussianMixture):
    """scikit-learn's estimator, initialised from fixed responsibilities ``_resp0``."""

    def _initialize_parameters(self, X, random_state, xp=None):
        self._initialize(X, self._resp0)


class VBFromResp(BayesianGaussianMixture):
    """vbfast's estimator, initialised from fixed responsibilities ``_resp0`` (the private
    hook every init_params goes through)."""

    def _initial_resp(self, data, random_state):
        return self._resp0


def fit_pair(X, resp, **kw):
    sk = SKFromResp(**kw)
    sk._resp0 = resp
    vb = VBFromResp(**kw)
    vb._resp0 = resp
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk.fit(X)
        vb.fit(X)
    return sk, vb


def constant_offset(X, K, covariance_type, prior_type, alpha0, beta0, nu0, psi0):
    """The terms of the ELBO that scikit-learn's lower bound leaves out, written from the
    model (not from vbfast's code): -N D/2 log 2pi from the likelihood, the prior
    normalisers K [D/2 log beta0 + log B(W0, nu0) + D(D-1)/4 log pi] of the Gauss-Wisharts
    (scikit-learn's Wishart normaliser also lacks the pi term), and the weight prior's
    normaliser."""
    n, D = X.shape
    if covariance_type in ("full", "tied"):
        log_det_psi0 = np.linalg.slogdet(psi0)[1]
    elif covariance_type == "diag":
        log_det_psi0 = np.sum(np.log(psi0))
    else:
        log_det_psi0 = D * np.log(psi0)
    log_gamma_d = 0.25 * D * (D - 1) * np.log(np.pi) + sum(gammaln(0.5 * (nu0 - i))
                                                          for i in range(D))
    log_b0 = 0.5 * nu0 * log_det_psi0 - 0.5 * nu0 * D * np.log(2) - log_gamma_d
    out = (-0.5 * n * D * np.log(2 * np.pi) + 0.5 * K * D * np.log(beta0)
           + K * (log_b0 + 0.25 * D * (D - 1) * np.log(np.pi)))
    if prior_type == "dirichlet_process":
        out += K * np.log(alpha0)  # each stick's prior Beta(1, alpha0) has 1/B = alpha0
    else:
        out += gammaln(K * alpha0) - K * gammaln(alpha0)
    return out


def trace_precisions(est):
    """sum_k N_k tr(E[Lambda_k]) with N_k = beta_k - beta0 (the reg_covar term)."""
    P = np.asarray(est.precisions_)
    nk = est.mean_precision_ - est.mean_precision_prior_
    D = est.means_.shape[1]
    tr = {"full": lambda: np.trace(P, axis1=1, axis2=2), "tied": lambda: np.trace(P),
          "diag": lambda: P.sum(axis=1), "spherical": lambda: D * P}[est.covariance_type]()
    return float(np.sum(nk * tr))


# ---------------------------------------------------------------------- parity
@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_parity_with_sklearn(covariance_type, prior_type):
    X, _ = make_blobs(n=500, d=3, seed=3)
    K = 5
    resp = random_resp(len(X), K)
    sk, vb = fit_pair(X, resp, n_components=K, covariance_type=covariance_type,
                      weight_concentration_prior_type=prior_type, tol=0.0, max_iter=20,
                      reg_covar=0.0)
    assert vb.n_iter_ == sk.n_iter_ == 20
    for name in POSTERIOR:
        assert_allclose(getattr(vb, name), getattr(sk, name), rtol=1e-7, atol=1e-12,
                        err_msg=name)
    assert_allclose(np.asarray(vb.weight_concentration_),
                    np.asarray(sk.weight_concentration_), rtol=1e-7)
    offset = constant_offset(X, K, covariance_type, prior_type, sk.weight_concentration_prior_,
                             sk.mean_precision_prior_, sk.degrees_of_freedom_prior_,
                             sk.covariance_prior_)
    sk_bound = float(np.ravel(sk.lower_bound_)[0])  # 'tied' gives shape (1,) in sklearn
    assert_allclose(vb.lower_bound_ - offset, sk_bound, rtol=1e-7)
    # the E-step on new data (q(z) for new points) too
    X_new, _ = make_blobs(n=100, d=3, seed=9)
    assert_allclose(vb.predict_proba(X_new), sk.predict_proba(X_new), rtol=1e-6, atol=1e-10)
    assert_array_equal(vb.predict(X_new), sk.predict(X_new))
    # the priors actually used are reported like scikit-learn's
    assert_allclose(vb.mean_prior_, sk.mean_prior_, rtol=1e-12)
    assert_allclose(vb.covariance_prior_, sk.covariance_prior_, rtol=1e-10)
    assert vb.degrees_of_freedom_prior_ == sk.degrees_of_freedom_prior_


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_parity_with_reg_covar_and_custom_priors(covariance_type):
    """reg_covar > 0: same updates as scikit-learn, and the bound differs by the documented
    constant plus reg_covar / 2 * sum_k N_k tr(E[Lambda_k])."""
    X, _ = make_blobs(n=400, d=3, seed=4)
    K, D = 4, 3
    psi0 = {"full": np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0.0, 0.1, 1.5]]),
            "tied": np.diag([1.0, 2.0, 0.5]), "diag": np.array([1.0, 0.5, 2.0]),
            "spherical": 0.7}[covariance_type]
    kw = dict(n_components=K, covariance_type=covariance_type,
              weight_concentration_prior_type="dirichlet_distribution",
              weight_concentration_prior=0.3, mean_precision_prior=0.5,
              mean_prior=np.array([1.0, 2.0, 3.0]), degrees_of_freedom_prior=D + 1.5,
              covariance_prior=psi0, tol=0.0, max_iter=20, reg_covar=1e-3)
    sk, vb = fit_pair(X, random_resp(len(X), K, seed=5), **kw)
    for name in POSTERIOR:
        assert_allclose(getattr(vb, name), getattr(sk, name), rtol=1e-7, atol=1e-12,
                        err_msg=name)
    offset = constant_offset(X, K, covariance_type, "dirichlet_distribution", 0.3, 0.5,
                             D + 1.5, psi0)
    assert_allclose(vb.lower_bound_ - offset - 0.5 * 1e-3 * trace_precisions(vb),
                    float(np.ravel(sk.lower_bound_)[0]), rtol=1e-7)


def test_method_mean_field_is_bayesian_gaussian_mixture():
    X, _ = make_blobs(n=300, seed=2)
    kw = dict(n_components=4, covariance_type="full", random_state=0, max_iter=30)
    a = BayesianGaussianMixture(**kw).fit(X)
    b = GaussianMixture(method="mean_field", **kw).fit(X)
    for name in POSTERIOR + ["lower_bounds_"]:
        assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert_array_equal(a.score_samples(X), b.score_samples(X))
    assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    with pytest.raises(ValueError, match="not supported with method='mean_field'"):
        GaussianMixture(method="mean_field", n_components=2,
                        means_init=np.zeros((2, 3))).fit(X)


# ---------------------------------------------------------------------- the ELBO
@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_elbo_never_decreases(covariance_type, prior_type):
    for seed in range(3):
        X, _ = make_blobs(n=400, d=3, seed=10 + seed, separation=3.0)
        est = BayesianGaussianMixture(n_components=6, covariance_type=covariance_type,
                                      weight_concentration_prior_type=prior_type,
                                      init_params="random", random_state=seed, tol=0.0,
                                      max_iter=60)
        with vbfast.config_context(bound_decrease="raise"), warnings.catch_warnings():
            warnings.simplefilter("ignore", vbfast.ConvergenceWarning)
            est.fit(X)
        bounds = est.lower_bounds_
        assert len(bounds) == 60
        assert np.all(np.diff(bounds) >= -1e-10 * np.abs(bounds[1:])), (seed, bounds)
        assert bounds[-1] > bounds[0]


def test_elbo_against_dense_numpy_reference():
    """The ELBO from the pass's statistics equals the ELBO written densely in NumPy from
    q(z) = predict_proba after one more E-step... checked here at iteration 1: resp from the
    E-step at the initial q(theta), q(theta) updated from it."""
    X, _ = make_blobs(n=200, d=2, seed=6)
    N, D = X.shape
    K = 3
    resp0 = random_resp(N, K, seed=2)
    kw = dict(n_components=K, covariance_type="full", tol=0.0, reg_covar=0.0,
              weight_concentration_prior_type="dirichlet_distribution")
    init = VBFromResp(max_iter=0, **kw)
    init._resp0 = resp0
    one = VBFromResp(max_iter=1, **kw)
    one._resp0 = resp0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        init.fit(X)
        one.fit(X)
    # the E-step at init's q(theta) = q(z) of iteration 1
    r = init.predict_proba(X)
    # dense ELBO at (r, one's q(theta))
    alpha = one.weight_concentration_
    a0 = one.weight_concentration_prior_
    beta, m, nu = one.mean_precision_, one.means_, one.degrees_of_freedom_
    P = one.precisions_  # nu W
    W = P / nu[:, None, None]
    beta0, m0, nu0, psi0 = (one.mean_precision_prior_, one.mean_prior_,
                            one.degrees_of_freedom_prior_, one.covariance_prior_)
    e_log_pi = digamma(alpha) - digamma(alpha.sum())
    e_log_det = np.array([sum(digamma(0.5 * (nu[k] - i)) for i in range(D)) + D * np.log(2)
                          + np.linalg.slogdet(W[k])[1] for k in range(K)])

    def log_b(Wm, v):
        return (-0.5 * v * np.linalg.slogdet(Wm)[1] - 0.5 * v * D * np.log(2)
                - 0.25 * D * (D - 1) * np.log(np.pi)
                - sum(gammaln(0.5 * (v - i)) for i in range(D)))

    total = 0.0
    for k in range(K):
        d = X - m[k]
        quad = np.einsum("ni,ij,nj->n", d, P[k], d) + D / beta[k]
        total += np.sum(r[:, k] * (0.5 * e_log_det[k] - 0.5 * D * np.log(2 * np.pi)
                                   - 0.5 * quad + e_log_pi[k]))
        dm = m[k] - m0
        total += (0.5 * D * np.log(beta0 / (2 * np.pi)) + 0.5 * e_log_det[k]
                  - 0.5 * beta0 * (D / beta[k] + dm @ P[k] @ dm)
                  + log_b(np.linalg.inv(psi0), nu0) + 0.5 * (nu0 - D - 1) * e_log_det[k]
                  - 0.5 * np.trace(psi0 @ P[k]))
        total -= (0.5 * D * np.log(beta[k] / (2 * np.pi)) + 0.5 * e_log_det[k] - 0.5 * D
                  + log_b(W[k], nu[k]) + 0.5 * (nu[k] - D - 1) * e_log_det[k]
                  - 0.5 * nu[k] * D)
    total -= np.sum(r * np.log(r))
    total += (gammaln(K * a0) - K * gammaln(a0) + (a0 - 1) * e_log_pi.sum()
              - (gammaln(alpha.sum()) - gammaln(alpha).sum()
                 + np.sum((alpha - 1) * e_log_pi)))
    assert_allclose(one.lower_bounds_[0], total, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_estep_matches_numpy_reference(covariance_type):
    """The kernel's per-sample terms (q(z) and log of its normaliser) against the expected
    log joint written in NumPy."""
    X, _ = make_blobs(n=300, d=4, seed=7)
    est = BayesianGaussianMixture(n_components=3, covariance_type=covariance_type,
                                  random_state=0, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    N, D = X.shape
    K = 3
    a, b = est.weight_concentration_
    e_log_v = digamma(a) - digamma(a + b)
    e_log_1mv = digamma(b) - digamma(a + b)
    e_log_pi = e_log_v + np.concatenate([[0.0], np.cumsum(e_log_1mv)[:-1]])
    nu = np.broadcast_to(est.degrees_of_freedom_, (K,))
    prec = est.precisions_
    log_rho = np.empty((N, K))
    for k in range(K):
        Pk = {"full": lambda: prec[k], "tied": lambda: prec, "diag": lambda: np.diag(prec[k]),
              "spherical": lambda: prec[k] * np.eye(D)}[covariance_type]()
        e_log_det = (sum(digamma(0.5 * (nu[k] - i)) for i in range(D)) + D * np.log(2)
                     + np.linalg.slogdet(Pk / nu[k])[1])
        d = X - est.means_[k]
        quad = np.einsum("ni,ij,nj->n", d, Pk, d) + D / est.mean_precision_[k]
        log_rho[:, k] = e_log_pi[k] + 0.5 * e_log_det - 0.5 * D * np.log(2 * np.pi) - 0.5 * quad
    resp = np.exp(log_rho - logsumexp(log_rho, axis=1)[:, None])
    assert_allclose(est.predict_proba(X), resp, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------- pruning
def test_dirichlet_process_prunes_to_three_components():
    rng = np.random.RandomState(0)
    centers = np.array([[0.0, 0.0], [12.0, 0.0], [0.0, 12.0]])
    X = np.vstack([c + rng.normal(size=(400, 2)) for c in centers])
    est = BayesianGaussianMixture(n_components=10, weight_concentration_prior=1e-3,
                                  weight_concentration_prior_type="dirichlet_process",
                                  random_state=0, max_iter=500)
    est.fit(X)
    top3 = np.sort(est.weights_)[-3:]
    assert top3.sum() > 0.99
    assert est.n_effective_components_ == 3
    assert len(np.unique(est.predict(X))) == 3


# ---------------------------------------------------------------------- predictions
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_score_samples_is_student_t_posterior_predictive(covariance_type):
    X, _ = make_blobs(n=300, d=3, seed=8)
    est = BayesianGaussianMixture(n_components=3, covariance_type=covariance_type,
                                  random_state=0, max_iter=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    D, K = 3, 3
    nu = np.broadcast_to(est.degrees_of_freedom_, (K,))
    prec = est.precisions_
    X_new = X[:50] + 0.3
    parts = []
    for k in range(K):
        Pk = {"full": lambda: prec[k], "tied": lambda: prec, "diag": lambda: np.diag(prec[k]),
              "spherical": lambda: prec[k] * np.eye(D)}[covariance_type]()
        W = Pk / nu[k]
        dof = nu[k] + 1 - D
        beta = est.mean_precision_[k]
        shape = np.linalg.inv(dof * beta / (1 + beta) * W)
        parts.append(np.log(est.weights_[k])
                     + multivariate_t(est.means_[k], shape, df=dof).logpdf(X_new))
    assert_allclose(est.score_samples(X_new), logsumexp(np.array(parts), axis=0), rtol=1e-10)
    assert_allclose(est.score(X_new), np.mean(est.score_samples(X_new)))


def test_sample():
    X, _ = make_blobs(n=300, seed=1)
    est = BayesianGaussianMixture(n_components=3, random_state=0).fit(X)
    Xs, ys = est.sample(500)
    assert Xs.shape == (500, 3) and ys.shape == (500,)
    assert set(np.unique(ys)) <= set(range(3))


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize("kwargs, match", [
    (dict(weight_concentration_prior=-1.0), "weight_concentration_prior must be >"),
    (dict(weight_concentration_prior=0.0), "weight_concentration_prior must be >"),
    (dict(mean_precision_prior=-0.5), "mean_precision_prior must be >"),
    (dict(degrees_of_freedom_prior=1.5), "degrees_of_freedom_prior must be greater than"),
    (dict(mean_prior=np.zeros(2)), r"mean_prior must have shape \(3,\)"),
    (dict(mean_prior=np.array([0.0, np.nan, 1.0])), "mean_prior contains NaN"),
    (dict(covariance_prior=np.eye(2)), r"covariance_prior .* must have shape \(3, 3\)"),
    (dict(covariance_prior=-np.eye(3)), "positive-definite"),
    (dict(covariance_prior=np.array([[1.0, 2.0, 0], [2.0, 1.0, 0], [0, 0, 1.0]])),
     "positive-definite"),
    (dict(covariance_prior=np.array([[1.0, 0.5, 0], [0.0, 1.0, 0], [0, 0, 1.0]])),
     "symmetric"),
    (dict(covariance_type="diag", covariance_prior=np.array([1.0, -1.0, 1.0])),
     "must be positive"),
    (dict(covariance_type="diag", covariance_prior=np.ones((3, 3))), r"shape \(3,\)"),
    (dict(covariance_type="spherical", covariance_prior=-2.0), "must be positive"),
    (dict(covariance_type="spherical", covariance_prior=np.ones(3)), "positive real"),
    (dict(weight_concentration_prior_type="dirichlet"), "weight_concentration_prior_type"),
])
def test_bad_priors(kwargs, match):
    X, _ = make_blobs(n=100, seed=0)
    with pytest.raises(ValueError, match=match):
        BayesianGaussianMixture(n_components=2, **kwargs).fit(X)


# ---------------------------------------------------------------------- API
def test_sample_weight_equals_repetition():
    X, _ = make_blobs(n=150, seed=5)
    counts = np.random.RandomState(0).randint(1, 4, size=len(X))
    resp = random_resp(len(X), 3, seed=3)
    kw = dict(n_components=3, tol=0.0, max_iter=15, covariance_type="full")
    a = VBFromResp(**kw)
    a._resp0 = resp
    b = VBFromResp(**kw)
    b._resp0 = np.repeat(resp, counts, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.fit(X, sample_weight=counts.astype(float))
        b.fit(np.repeat(X, counts, axis=0))
    for name in POSTERIOR + ["lower_bounds_"]:
        assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, err_msg=name)


def test_thread_count_does_not_change_results():
    X, _ = make_blobs(n=5000, seed=4)
    fits = [BayesianGaussianMixture(n_components=4, covariance_type="full", random_state=0,
                                    max_iter=10, n_threads=t) for t in (1, 2)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in fits:
            f.fit(X)
    for name in POSTERIOR + ["lower_bounds_"]:
        assert_array_equal(getattr(fits[0], name), getattr(fits[1], name), err_msg=name)


def test_warm_start_continues_the_fit():
    X, _ = make_blobs(n=300, seed=6)
    resp = random_resp(len(X), 3, seed=4)
    kw = dict(n_components=3, tol=0.0, covariance_type="diag")
    straight = VBFromResp(max_iter=10, **kw)
    straight._resp0 = resp
    warm = VBFromResp(max_iter=5, warm_start=True, **kw)
    warm._resp0 = resp
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        straight.fit(X)
        warm.fit(X)
        warm.fit(X)
    for name in POSTERIOR:
        assert_allclose(getattr(warm, name), getattr(straight, name), rtol=1e-10,
                        err_msg=name)
    assert_allclose(warm.lower_bound_, straight.lower_bound_, rtol=1e-12)


def test_float32_and_params():
    X, _ = make_blobs(n=300, seed=7)
    est = BayesianGaussianMixture(n_components=3, random_state=0, covariance_type="tied")
    est.fit(X.astype(np.float32))
    assert est.means_.dtype == np.float32
    assert est.predict_proba(X.astype(np.float32)).dtype == np.float32
    assert np.isfinite(est.lower_bounds_).all()
    params = est.get_params()
    assert params["weight_concentration_prior_type"] == "dirichlet_process"
    assert params["method"] == "mean_field"  # 'gibbs' samples the same model
    c = clone(est)
    assert c.get_params() == params
    assert "covariance_type='tied'" in repr(est)


def test_guard_catches_a_wrong_update(monkeypatch):
    """A sabotaged q(theta) update (the means moved away after iteration 3) lowers the ELBO:
    the guard warns, or raises under bound_decrease='raise'."""
    from vbfast.emissions import gaussian_prior as BG

    real_update = BG.MeanFieldFitState.update_q
    calls = {"n": 0}

    def bad_update(self, stats, centers_shifted):
        real_update(self, stats, centers_shifted)
        calls["n"] += 1
        if calls["n"] == 4:  # the initial update is call 1
            self.means = self.means + 5.0

    monkeypatch.setattr(BG.MeanFieldFitState, "update_q", bad_update)
    X, _ = make_blobs(n=300, seed=3)
    est = BayesianGaussianMixture(n_components=3, random_state=0, max_iter=8, tol=0.0)
    with pytest.warns(vbfast.BoundDecreaseWarning, match="decreased at iteration"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", vbfast.ConvergenceWarning)
            est.fit(X)
    calls["n"] = 0
    with vbfast.config_context(bound_decrease="raise"):
        with pytest.raises(FloatingPointError, match="decreased at iteration"):
            est.fit(X)


def test_warm_start_after_em_fit_starts_cold():
    X, _ = make_blobs(n=200, seed=2)
    est = GaussianMixture(n_components=2, random_state=0, warm_start=True).fit(X)
    est.set_params(method="mean_field")
    est.fit(X)
    assert hasattr(est, "weight_concentration_")
    assert np.isfinite(est.lower_bound_)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
def test_expectations_follow_each_new_q(monkeypatch, covariance_type, prior_type):
    """The fit state computes log |W|, E[log |Lambda|] and E[log pi] once for each q(theta)
    and shares them between the ELBO and the next pass's inputs: after every update they
    equal, bit for bit, the module's functions evaluated afresh on the new q(theta)."""
    from vbfast.emissions import gaussian_prior as BG

    real_update = BG.MeanFieldFitState.update
    checked = {"n": 0}

    def checking_update(self, stats):
        real_update(self, stats)
        D = self.means.shape[1]
        args = (self.prec_chol, self.degrees_of_freedom, self.covariance_type, D)
        assert_array_equal(self.log_det_w, BG.log_det_W(*args))
        assert_array_equal(self.e_log_det, BG.expected_log_det(*args))
        assert_array_equal(self.e_log_pi,
                           BG.expected_log_weights(self.weight_concentration, prior_type))
        assert_array_equal(self.expected_log_const(), BG.expected_log_const(
            self.weight_concentration, prior_type, self.mean_precision,
            self.degrees_of_freedom, self.prec_chol, self.covariance_type, D))
        fresh = BG.kernel_inputs(self.weight_concentration, prior_type, self.mean_precision,
                                 self.means, self.degrees_of_freedom, self.prec_chol,
                                 self.covariance_type, self.data.shift)
        for got, want in zip(self.kernel_inputs(self.data.shift), fresh):
            assert_array_equal(got, want)
        checked["n"] += 1

    monkeypatch.setattr(BG.MeanFieldFitState, "update", checking_update)
    X, _ = make_blobs(n=300, seed=4)
    est = BayesianGaussianMixture(n_components=3, covariance_type=covariance_type,
                                  weight_concentration_prior_type=prior_type,
                                  random_state=0, max_iter=5, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", vbfast.ConvergenceWarning)
        est.fit(X)
    assert checked["n"] == 5
