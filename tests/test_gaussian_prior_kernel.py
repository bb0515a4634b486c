"""The 'diag' mean-field iteration in C (``vbfast.emissions._gaussian_prior_kernel``) against
slow obvious NumPy references: the q(theta) update, the expectations and the pass inputs bit
for bit (they decide the fit's trajectory), the ELBO to rounding; and whole fits equal to the
NumPy path's."""
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import digamma

import vbfast
from vbfast import BayesianGaussianMixture
from vbfast.emissions import _gaussian_prior_kernel as _prior
from vbfast.emissions import gaussian as G
from vbfast.emissions import gaussian_prior as BG

PRIOR_TYPES = ["dirichlet_process", "dirichlet_distribution"]
# D below NumPy's 8-wide pairwise block, at it, past it with a tail, and past 128 (halves)
SHAPES = [(1, 1), (3, 5), (16, 16), (7, 21), (4, 131)]


def _moments(K, D, seed):
    rng = np.random.default_rng(seed)
    nk = rng.gamma(2.0, 50.0, size=K) + 10 * np.finfo(float).eps
    nk[0] = 10 * np.finfo(float).eps  # an empty component
    xk = rng.normal(0.0, 3.0, size=(K, D))
    sk = rng.gamma(2.0, 0.5, size=(K, D)) + 1e-6
    m0 = rng.normal(0.0, 0.1, size=D)
    psi0 = rng.gamma(3.0, 1.0, size=D)
    shift = rng.normal(0.0, 5.0, size=D)
    return nk, xk, sk, m0, psi0, shift


def _reference_q(nk, xk, sk, m0, psi0, shift, beta0, nu0, alpha0, prior_type):
    """The NumPy update (``MeanFieldFitState._q_from_moments`` for 'diag', the module's
    expectation functions), written out."""
    D = xk.shape[1]
    if prior_type == "dirichlet_process":
        wc = (1.0 + nk, alpha0 + np.hstack((np.cumsum(nk[::-1])[-2::-1], 0.0)))
    else:
        wc = alpha0 + nk
    beta = beta0 + nk
    means = (beta0 * m0 + nk[:, None] * xk) / beta[:, None]
    diff = xk - m0
    nu = nu0 + nk
    cov = psi0 + nk[:, None] * (sk + (beta0 / beta)[:, None] * diff ** 2)
    cov /= nu[:, None]
    with np.errstate(invalid="ignore"):  # (a failing scale: NaN factors)
        prec_chol = 1.0 / np.sqrt(cov)
    with np.errstate(invalid="ignore"):
        log_det_w = 2.0 * np.log(prec_chol).sum(axis=1) - D * np.log(nu)
    i = np.arange(D)[:, None]
    e_log_det = digamma(0.5 * nu - 0.5 * i).sum(axis=0) + D * np.log(2.0) + log_det_w
    return {"wc": wc, "e_log_pi": BG.expected_log_weights(wc, prior_type), "beta": beta,
            "means": means + shift, "nu": nu, "cov": cov, "prec_chol": prec_chol,
            "log_det_w": log_det_w, "e_log_det": e_log_det}


def _c_q(nk, xk, sk, m0, psi0, shift, beta0, nu0, alpha0, prior_type):
    K, D = xk.shape
    stick = prior_type == "dirichlet_process"
    out = {name: np.empty(K) for name in ("wc_a", "e_log_pi", "beta", "nu", "log_det_w",
                                          "e_log_det")}
    out["wc_b"] = np.empty(K) if stick else np.empty(0)
    for name in ("means", "cov", "prec_chol"):
        out[name] = np.empty((K, D))
    ok = _prior.diag_q_update(nk, xk, sk, m0, psi0, shift, beta0, nu0, alpha0, stick,
                              out["wc_a"], out["wc_b"], out["e_log_pi"], out["beta"],
                              out["means"], out["nu"], out["cov"], out["prec_chol"])
    if ok:
        _prior.diag_expectations(np.log(out["prec_chol"]), np.log(out["nu"]), out["nu"],
                                 out["log_det_w"], out["e_log_det"])
    out["wc"] = (out["wc_a"], out["wc_b"]) if stick else out["wc_a"]
    return ok, out


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("K, D", SHAPES)
def test_diag_q_update_is_numpys_bit_for_bit(prior_type, K, D):
    args = _moments(K, D, seed=K * 100 + D) + (1.3, D + 0.5, 0.7, prior_type)
    want = _reference_q(*args)
    ok, got = _c_q(*args)
    assert ok
    for name in ("e_log_pi", "beta", "means", "nu", "cov", "prec_chol", "log_det_w",
                 "e_log_det"):
        assert_array_equal(got[name], want[name], err_msg=name)
    if prior_type == "dirichlet_process":
        assert_array_equal(got["wc"][0], want["wc"][0])
        assert_array_equal(got["wc"][1], want["wc"][1])
    else:
        assert_array_equal(got["wc"], want["wc"])


@pytest.mark.parametrize("bad", [-1.0, -1e-3, np.nan, np.inf])
def test_diag_q_update_reports_a_variance_not_positive(bad):
    nk, xk, sk, m0, psi0, shift = _moments(4, 6, seed=3)
    sk[2, 3] = bad
    xk[2, 3] = m0[3]
    psi0 = np.full(6, 1e-300)
    ok, _ = _c_q(nk, xk, sk, m0, psi0, shift, 1.0, 6.0, 0.25, "dirichlet_process")
    assert not ok
    sk[2, 3] = 1.0
    ok, _ = _c_q(nk, xk, sk, m0, psi0, shift, 1.0, 6.0, 0.25, "dirichlet_process")
    assert ok


def test_diag_kernels_refuse_inconsistent_shapes():
    K, D = 3, 4
    with pytest.raises(ValueError, match="inconsistent shapes"):
        _prior.diag_pass_inputs(np.zeros((K, D)), np.ones((K, D)), np.zeros(D + 1),
                                np.zeros(K), np.zeros(K), np.ones(K), 1.0, np.empty((K, D)),
                                np.empty((K, 2 * D)), np.empty(K))
    with pytest.raises(ValueError, match="inconsistent shapes"):
        _prior.diag_expectations(np.zeros((K, D)), np.zeros(K), np.ones(K + 1), np.empty(K),
                                 np.empty(K))


@pytest.mark.parametrize("K, D", SHAPES)
def test_diag_pass_inputs_are_numpys_bit_for_bit(K, D):
    """centres, aux and c_k as ``gaussian.pass_inputs`` with ``expected_log_const``, including
    components past ``FAR_FROM_SHIFT`` (centred at their means) and a NaN factor."""
    rng = np.random.default_rng(K + D)
    nk, xk, sk, m0, psi0, shift = _moments(K, D, seed=D)
    _, q = _c_q(nk, xk, sk, m0, psi0, shift, 1.0, D + 1.0, 0.5, "dirichlet_process")
    means, prec_chol = q["means"].copy(), q["prec_chol"].copy()
    if K >= 3:
        means[1] = shift + 3e3 * np.sqrt(q["cov"][1])  # delta^2 = 9e6 D > 2^20: far
        prec_chol[2, 0] = np.nan
    e_log_pi, e_log_det = rng.normal(size=K), rng.normal(size=K)
    beta = q["beta"]
    log_const = e_log_pi + 0.5 * e_log_det - 0.5 * D / beta - 0.5 * D * G.LOG_2PI
    want = G.pass_inputs(means, prec_chol, "diag", shift, log_const)
    centres, aux, c = np.empty((K, D)), np.empty((K, 2 * D)), np.empty(K)
    _prior.diag_pass_inputs(means, prec_chol, shift, e_log_pi, e_log_det, beta,
                            G.FAR_FROM_SHIFT, centres, aux, c)
    assert_array_equal(centres, want[0])
    assert_array_equal(aux, want[2])
    assert_array_equal(c, want[3])
    if K >= 3:
        assert centres[1].any() and centres[2].any() and not centres[0].any()


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("K, D", SHAPES)
def test_diag_elbo_matches_numpy_to_rounding(prior_type, K, D):
    """``diag_elbo`` against the fit state's NumPy ELBO (the code every other covariance type
    runs) at the same q(theta) and statistics: equal up to the sums' rounding."""
    rng = np.random.default_rng(7 * K + D)
    nk, xk, sk, m0, psi0, shift = _moments(K, D, seed=K + 2 * D)
    priors = {"type": prior_type, "alpha0": 0.7, "beta0": 1.3, "nu0": D + 0.5,
              "m0": m0 + shift, "psi0": psi0, "log_det_psi0": float(np.log(psi0).sum())}
    _, q = _c_q(nk, xk, sk, m0, psi0, shift, 1.3, D + 0.5, 0.7, prior_type)
    data = SimpleNamespace(shift=shift, n_components=K, n_features=D)
    state = BG.MeanFieldFitState(data, "diag", 0.0, priors, q["wc"], q["beta"], q["means"],
                                 q["nu"], q["prec_chol"])
    centres = np.where(rng.uniform(size=(K, 1)) < 0.5, 0.0, rng.normal(size=(K, D)))
    stats = {"nk": nk, "s1": nk[:, None] * (xk + rng.normal(0.0, 0.1, size=(K, D))),
             "s2": nk[:, None] * (sk + (xk - centres) ** 2),
             "entropy_term": -float(nk.sum()) * 0.3}
    got = state.elbo(stats, centres)
    state._diag = False
    want = state.elbo(stats, centres)
    scale = np.abs(stats["s2"]).sum() + nk.sum() * D + abs(want)
    assert got != 0.0 and abs(got - want) <= 1e-13 * scale


def _fit(X, prior_type, numpy_path, monkeypatch, **kw):
    if numpy_path:
        real_init = BG.MeanFieldFitState.__init__

        def numpy_init(self, *args, **kwargs):
            real_init(self, *args, **kwargs)
            self._diag = False  # the NumPy code for 'diag' (from the first update on)

        monkeypatch.setattr(BG.MeanFieldFitState, "__init__", numpy_init)
    est = BayesianGaussianMixture(n_components=4, covariance_type="diag",
                                  weight_concentration_prior_type=prior_type,
                                  random_state=0, tol=0.0, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", vbfast.ConvergenceWarning)
        est.fit(X)
    monkeypatch.undo()
    return est


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_diag_fit_is_the_numpy_paths(monkeypatch, prior_type, dtype):
    """A whole 'diag' fit through the C helpers: the posterior bit for bit the NumPy path's,
    the ELBO trace within 1e-13 relative of it (its sums' order)."""
    rng = np.random.default_rng(11)
    X = np.concatenate([rng.normal(c, s, size=(150, 5)) for c, s in
                        ((0.0, 1.0), (6.0, 0.5), (-4.0, 2.0))]).astype(dtype)
    c_fit = _fit(X, prior_type, False, monkeypatch, max_iter=15)
    numpy_fit = _fit(X, prior_type, True, monkeypatch, max_iter=15)
    for name in ("means_", "covariances_", "precisions_cholesky_", "weights_",
                 "mean_precision_", "degrees_of_freedom_"):
        assert_array_equal(getattr(c_fit, name), getattr(numpy_fit, name), err_msg=name)
    assert_allclose(c_fit.lower_bounds_, numpy_fit.lower_bounds_, rtol=1e-13)
    assert c_fit.n_iter_ == numpy_fit.n_iter_ == 15


@pytest.mark.parametrize("K, D", SHAPES)
def test_diag_moments_are_estimate_parameters_bit_for_bit(K, D):
    """N_k, means and variances as ``gaussian.estimate_parameters`` for 'diag' with S2 about
    the shift: an empty component (the pseudo-point's variance), a singleton whose scatter
    cancels to 0 or below, NaN statistics; a centre not 0 is refused (the NumPy path)."""
    rng = np.random.default_rng(3 * K + D)
    nk = rng.gamma(2.0, 20.0, size=K)
    s1 = nk[:, None] * rng.normal(0.0, 2.0, size=(K, D))
    s2 = s1 ** 2 / nk[:, None] + nk[:, None] * rng.gamma(2.0, 1.0, size=(K, D))
    nk[0], s1[0], s2[0] = 0.0, 0.0, 0.0
    if K >= 3:
        x = rng.normal(size=D)
        nk[1], s1[1], s2[1] = 1.0, x, x * x
        s2[2, 0] = np.nan
    stats = {"nk": nk, "s1": s1, "s2": s2}
    centres = np.zeros((K, D))
    want = G.estimate_parameters(stats, "diag", 1e-6, centres)
    got = np.empty(K), np.empty((K, D)), np.empty((K, D))
    assert _prior.diag_moments(nk, s1, s2, centres, BG.NK_EPS, 1e-6, *got)
    for g, w in zip(got, want):
        assert_array_equal(g, w)
    centres[K - 1, D - 1] = 0.5
    assert not _prior.diag_moments(nk, s1, s2, centres, BG.NK_EPS, 1e-6, *got)


@pytest.mark.parametrize("diag_in_c", [True, False])
def test_failing_diag_scale_raises_and_leaves_it_for_the_reseed(diag_in_c):
    """A q(Lambda_k) scale that is not positive raises scikit-learn's error, with the state
    as the NumPy code leaves it: ``covariances`` the failing scales (``degenerate.settle``
    reads them to find the components to re-seed), the rest of q(theta) updated before."""
    K, D = 3, 4
    nk, xk, sk, m0, psi0, shift = _moments(K, D, seed=5)
    sk[1, 2] = -1e3
    xk[1, 2] = m0[2]
    priors = {"type": "dirichlet_process", "alpha0": 0.5, "beta0": 1.0, "nu0": D + 1.0,
              "m0": m0 + shift, "psi0": psi0, "log_det_psi0": float(np.log(psi0).sum())}
    data = SimpleNamespace(shift=shift, n_components=K, n_features=D)
    state = BG.MeanFieldFitState(data, "diag", 0.0, priors, None, None, None, None, None)
    state._diag = diag_in_c
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        state._q_from_moments(nk, xk, sk)
    want = _reference_q(nk, xk, sk, m0, psi0, shift, 1.0, D + 1.0, 0.5, "dirichlet_process")
    assert_array_equal(state.covariances, want["cov"])
    assert state.covariances[1, 2] < 0
    assert_array_equal(state.means, want["means"])
    assert_array_equal(state.degrees_of_freedom, want["nu"])


@pytest.mark.parametrize("D", [1, 3, 8, 16, 33])
@pytest.mark.parametrize("upper", [True, False])
def test_row_quad_forms_reference_and_row_invariance(D, upper):
    """||d_n U||^2 against a row-by-row NumPy reference (to rounding), and each row's value
    the same bits whatever block of rows it is computed in (1, 3, 7 or all rows)."""
    rng = np.random.default_rng(D)
    d = rng.normal(size=(50, D))
    U = rng.normal(size=(D, D))
    if upper:
        U = np.triu(U)
    reference = np.array([float(np.sum((row @ U) ** 2)) for row in d])
    out = np.empty(50)
    _prior.row_quad_forms(d, U, upper, out)
    assert_allclose(out, reference, rtol=1e-13)
    for size in (1, 3, 7):
        parts = np.empty(50)
        for s in range(0, 50, size):
            _prior.row_quad_forms(d[s:s + size], U, upper, parts[s:s + size])
        assert_array_equal(parts, out)
    with pytest.raises(ValueError, match="disagree"):
        _prior.row_quad_forms(d, U, upper, np.empty(49))


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_student_t_predictive_rows_do_not_depend_on_the_block(covariance_type):
    """The mean-field predictive density of a row: the same bits in any chunk of rows."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(301, 4))
    est = BayesianGaussianMixture(n_components=3, covariance_type=covariance_type,
                                  random_state=0, max_iter=20).fit(X)
    whole = est.score_samples(X)
    for size in (1, 3, 7, 100):
        parts = np.concatenate([est.score_samples(X[s:s + size])
                                for s in range(0, 301, size)])
        assert_array_equal(parts, whole)
