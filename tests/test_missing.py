"""missing='marginalize' in GaussianMixture / BayesianGaussianMixture: NaN integrated out.

The compiled pass over incomplete rows is checked against a slow, obvious NumPy reference of
one EM iteration (per row: the observed block's marginal density by scipy, the conditional
mean and covariance of the missing block by solves with Sigma_oo), and the predictions
against the marginal densities (Gaussian for EM, Student-t for mean field).
"""
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import digamma, logsumexp

import vbfast
from vbfast import BayesianGaussianMixture, GaussianMixture
from vbfast.emissions import gaussian as G
from vbfast.emissions import gaussian_missing as GM
from vbfast.mixture import _missing as MI

COV_TYPES = ("full", "tied", "diag", "spherical")


def _data(n=240, D=4, frac=0.25, seed=0, n_empty=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0] * D, [4.0] * D, [0.0, 5.0] + [-3.0] * (D - 2)])
    X = centres[rng.integers(0, 3, n)] + rng.normal(size=(n, D)) @ np.triu(
        0.3 * np.ones((D, D)) + 0.7 * np.eye(D))
    X[rng.random(X.shape) < frac] = np.nan
    if n_empty:
        X[rng.choice(n, n_empty, replace=False)] = np.nan
    return X.astype(dtype)


def _params(covariance_type, K, D, seed=1):
    """Some valid parameters (weights, means, covariances in the type's layout)."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(K) * 3)
    means = rng.normal(size=(K, D)) * 3
    a = rng.normal(size=(K, D, D))
    full = np.einsum("kij,klj->kil", a, a) / D + np.eye(D)
    cov = {"full": full, "tied": full[0], "diag": np.diagonal(full, axis1=1, axis2=2).copy(),
           "spherical": np.diagonal(full, axis1=1, axis2=2).mean(1)}[covariance_type]
    return weights, means, cov


def _full(cov, covariance_type, K, D):
    """(K, D, D) covariance matrices from the type's layout."""
    if covariance_type == "full":
        return np.asarray(cov)
    if covariance_type == "tied":
        return np.broadcast_to(cov, (K, D, D))
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in cov])
    return np.stack([c * np.eye(D) for c in cov])


def _precisions(cov, covariance_type):
    if covariance_type in ("full",):
        return np.linalg.inv(cov)
    if covariance_type == "tied":
        return np.linalg.inv(cov)
    return 1.0 / cov


def reference_em_step(X, weights, means, cov, covariance_type, reg_covar):
    """One EM iteration on X with NaN, row by row: returns (mean log-likelihood over all
    rows, new weights, means, covariances in the type's layout)."""
    N, D = X.shape
    K = means.shape[0]
    covs = _full(cov, covariance_type, K, D)
    ll = 0.0
    nk = np.zeros(K)
    s1 = np.zeros((K, D))
    s2 = np.zeros((K, D, D))
    for x in X:
        o = ~np.isnan(x)
        m = ~o
        if not o.any():
            continue
        logp = np.array([np.log(weights[k]) + stats.multivariate_normal.logpdf(
            x[o], means[k, o], covs[k][np.ix_(o, o)]) for k in range(K)])
        lpn = logsumexp(logp)
        ll += lpn
        r = np.exp(logp - lpn)
        for k in range(K):
            S = covs[k]
            xh = x.copy()
            C = np.zeros((D, D))
            if m.any():
                S_oo = S[np.ix_(o, o)]
                xh[m] = means[k, m] + S[np.ix_(m, o)] @ np.linalg.solve(S_oo,
                                                                        x[o] - means[k, o])
                C[np.ix_(m, m)] = S[np.ix_(m, m)] - S[np.ix_(m, o)] @ np.linalg.solve(
                    S_oo, S[np.ix_(o, m)])
            nk[k] += r[k]
            s1[k] += r[k] * xh
            s2[k] += r[k] * (np.outer(xh, xh) + C)
    mu = s1 / nk[:, None]
    scatter = s2 - nk[:, None, None] * np.einsum("ki,kj->kij", mu, mu)
    full = scatter / nk[:, None, None] + reg_covar * np.eye(D)
    new_cov = {"full": full,
               "tied": scatter.sum(0) / nk.sum() + reg_covar * np.eye(D),
               "diag": np.diagonal(full, axis1=1, axis2=2),
               "spherical": np.diagonal(full, axis1=1, axis2=2).mean(1)}[covariance_type]
    return ll / N, nk / nk.sum(), mu, new_cov


@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_em_iteration_matches_reference(covariance_type, dtype):
    X = _data(n=150, frac=0.3, n_empty=3, dtype=dtype)
    K, D = 3, X.shape[1]
    weights, means, cov = _params(covariance_type, K, D)
    gm = GaussianMixture(K, covariance_type=covariance_type, missing="marginalize",
                         weights_init=weights, means_init=means,
                         precisions_init=_precisions(cov, covariance_type), max_iter=1,
                         reg_covar=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (not converged after one iteration)
        gm.fit(X)
    ll, w, mu, c = reference_em_step(X.astype(np.float64), weights, means, cov,
                                     covariance_type, 1e-4)
    tol = 1e-10 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(gm.lower_bound_, ll, rtol=tol)
    np.testing.assert_allclose(gm.weights_, w, rtol=tol, atol=tol)
    np.testing.assert_allclose(gm.means_, mu, rtol=tol, atol=tol)
    np.testing.assert_allclose(gm.covariances_, c, rtol=tol, atol=tol)
    assert gm.n_empty_rows_ == np.isnan(X).all(axis=1).sum() >= 3


def _reference_rows(X, weights, row):
    """Per row of X: log p(x_o) and the responsibilities, from ``row(x, observed)``; a row
    with nothing observed has log p = 0 and the weights as responsibilities."""
    ref_lp = np.empty(len(X))
    ref_resp = np.empty((len(X), len(weights)))
    for n, x in enumerate(X):
        o = ~np.isnan(x)
        if o.any():
            ref_lp[n], ref_resp[n] = row(x, o)
        else:
            ref_lp[n], ref_resp[n] = 0.0, weights
    return ref_lp, ref_resp


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_predictions_equal_reference_marginals_em(covariance_type):
    X = _data(seed=3, n_empty=2)
    gm = GaussianMixture(3, covariance_type=covariance_type, missing="marginalize",
                         random_state=0).fit(X)
    K, D = gm.means_.shape
    covs = _full(gm.covariances_, covariance_type, K, D)

    def row(x, o):
        logp = np.array([np.log(gm.weights_[k]) + stats.multivariate_normal.logpdf(
            x[o], gm.means_[k, o], covs[k][np.ix_(o, o)]) for k in range(K)])
        return logsumexp(logp), np.exp(logp - logsumexp(logp))

    ref_lp, ref_resp = _reference_rows(X, gm.weights_, row)
    np.testing.assert_allclose(gm.score_samples(X), ref_lp, rtol=1e-10)
    np.testing.assert_allclose(gm.predict_proba(X), ref_resp, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(gm.predict(X), gm.predict_proba(X).argmax(1))
    np.testing.assert_allclose(gm.score(X), ref_lp.mean(), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_predictions_equal_reference_marginals_mean_field(covariance_type):
    X = _data(seed=4, n_empty=2)
    bgm = BayesianGaussianMixture(n_components=3, covariance_type=covariance_type,
                                  missing="marginalize", random_state=0).fit(X)
    K, D = bgm.means_.shape
    prec = _full(bgm.precisions_, covariance_type, K, D)
    nu = np.broadcast_to(bgm.degrees_of_freedom_, (K,))
    beta = bgm.mean_precision_
    wc = bgm.weight_concentration_
    a, b = wc
    e_log_pi = (digamma(a) - digamma(a + b)
                + np.hstack([0, np.cumsum(digamma(b) - digamma(a + b))[:-1]]))

    def row(x, o):
        lt = np.empty(K)
        lz = np.empty(K)
        for k in range(K):
            P = prec[k]
            Sigma = np.linalg.inv(P)
            # Student-t predictive marginalised to o: same dof, shape (L^{-1})_oo
            dof = nu[k] + 1 - D
            L = dof * beta[k] / ((1 + beta[k]) * nu[k]) * P
            shape = np.linalg.inv(L)[np.ix_(o, o)]
            lt[k] = np.log(bgm.weights_[k]) + stats.multivariate_t.logpdf(
                x[o], bgm.means_[k, o], shape, df=dof)
            # q(z): E log pi + 1/2 E log|Lambda| - D/(2 beta) - D/2 log 2pi, integrated over
            # x_m: + |m|/2 log 2 pi - 1/2 log |P_mm|, times the observed block's Gaussian,
            # which together are D/2 log 2 pi - 1/2 log |P| + log N(x_o | m_o, Sigma_oo)
            e_log_det = (sum(digamma((nu[k] - i) / 2) for i in range(D)) + D * np.log(2)
                         + np.linalg.slogdet(P / nu[k])[1])
            c = (e_log_pi[k] + 0.5 * e_log_det - D / (2 * beta[k])
                 - 0.5 * D * np.log(2 * np.pi))
            S_oo = Sigma[np.ix_(o, o)]
            lz[k] = (c + 0.5 * D * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(P)[1]
                     + stats.multivariate_normal.logpdf(x[o], bgm.means_[k, o], S_oo))
        return logsumexp(lt), np.exp(lz - logsumexp(lz))

    ref_lp, ref_resp = _reference_rows(X, bgm.weights_, row)
    np.testing.assert_allclose(bgm.score_samples(X), ref_lp, rtol=1e-10)
    np.testing.assert_allclose(bgm.predict_proba(X), ref_resp, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.parametrize("method", ["em", "mean_field"])
def test_nothing_missing_equals_complete_fit(covariance_type, method):
    X = _data(frac=0.0)
    kw = dict(n_components=3, covariance_type=covariance_type, method=method,
              random_state=0, max_iter=20)
    a = GaussianMixture(**kw).fit(X)
    b = GaussianMixture(missing="marginalize", **kw).fit(X)
    for name in ("weights_", "means_", "covariances_", "lower_bounds_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert b.n_empty_rows_ == 0
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))


@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.filterwarnings("ignore::vbfast.exceptions.ConvergenceWarning")
def test_empty_rows_contribute_nothing(covariance_type):
    """EM from given parameters: adding rows without an observed value changes no
    statistic (the parameters agree to rounding; the bound is per row, so it scales)."""
    X = _data(frac=0.2, seed=5)
    X_more = np.vstack([X, np.full((7, X.shape[1]), np.nan)])
    K, D = 3, X.shape[1]
    weights, means, cov = _params(covariance_type, K, D)
    kw = dict(n_components=K, covariance_type=covariance_type, missing="marginalize",
              weights_init=weights, means_init=means,
              precisions_init=_precisions(cov, covariance_type), max_iter=5, tol=0)
    a = GaussianMixture(**kw).fit(X)
    b = GaussianMixture(**kw).fit(X_more)
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-12,
                                   atol=1e-13)
    np.testing.assert_allclose(a.lower_bounds_ * len(X), b.lower_bounds_ * len(X_more),
                               rtol=1e-12)
    assert b.n_empty_rows_ == 7
    np.testing.assert_allclose(b.predict_proba(X_more[-7:]),
                               np.tile(b.weights_, (7, 1)), rtol=1e-15)
    np.testing.assert_array_equal(b.score_samples(X_more[-7:]), 0.0)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.parametrize("cls,kw", [
    (GaussianMixture, {}), (GaussianMixture, {"method": "mean_field"}),
    (BayesianGaussianMixture, {"weight_concentration_prior_type": "dirichlet_distribution"}),
    (BayesianGaussianMixture, {})])
def test_bound_never_decreases(covariance_type, cls, kw):
    X = _data(n=400, frac=0.3, seed=6, n_empty=4)
    est = cls(n_components=4, covariance_type=covariance_type, missing="marginalize",
              random_state=0, max_iter=60, tol=0, reg_covar=0.0, **kw)
    with vbfast.config_context(bound_decrease="raise"), warnings.catch_warnings():
        warnings.simplefilter("ignore", vbfast.exceptions.ConvergenceWarning)
        est.fit(X)
    lb = est.lower_bounds_
    assert np.all(np.diff(lb) >= -1e-10 * np.abs(lb[1:]))
    assert lb[-1] > lb[0]


@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.parametrize("method", ["em", "mean_field"])
def test_threads_do_not_change_results(covariance_type, method):
    X = _data(n=3000, frac=0.15, seed=7, n_empty=5)
    fits = [GaussianMixture(3, covariance_type=covariance_type, method=method,
                            missing="marginalize", random_state=0, max_iter=10,
                            n_threads=t).fit(X) for t in (1, 2)]
    for name in ("weights_", "means_", "covariances_", "lower_bounds_"):
        np.testing.assert_array_equal(getattr(fits[0], name), getattr(fits[1], name))
    np.testing.assert_array_equal(fits[0].predict_proba(X), fits[1].predict_proba(X))
    np.testing.assert_array_equal(fits[0].score_samples(X), fits[1].score_samples(X))


def test_input_not_modified():
    X = _data(n_empty=2)
    X0 = X.copy()
    for method in ("em", "mean_field"):
        gm = GaussianMixture(3, method=method, missing="marginalize", random_state=0).fit(X)
        gm.predict_proba(X)
        gm.score_samples(X)
        np.testing.assert_array_equal(X, X0)


def test_inf_is_never_missing():
    X = _data()
    X[3, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        GaussianMixture(2, missing="marginalize").fit(X)
    gm = GaussianMixture(2, missing="marginalize", random_state=0).fit(_data())
    for name in ("predict", "predict_proba", "score_samples", "score"):
        with pytest.raises(ValueError, match="infinity"):
            getattr(gm, name)(X)


def test_nan_with_missing_error_is_refused():
    X = _data()
    with pytest.raises(ValueError, match="X contains NaN"):
        GaussianMixture(2).fit(X)
    gm = GaussianMixture(2, random_state=0).fit(_data(frac=0.0))
    with pytest.raises(ValueError, match="X contains NaN"):
        gm.predict(X)


@pytest.mark.parametrize("bad", ["drop", "Marginalize", None, 1])
def test_bad_missing_values(bad):
    for cls in (GaussianMixture, BayesianGaussianMixture):
        with pytest.raises(ValueError, match="missing"):
            cls(n_components=2, missing=bad).fit(_data(frac=0.0))


def test_gibbs_with_missing_refused():
    for cls in (GaussianMixture, BayesianGaussianMixture):
        with pytest.raises(ValueError, match="missing='marginalize' is not supported with "
                                             "method='gibbs'"):
            cls(n_components=2, method="gibbs", missing="marginalize").fit(_data())


def test_column_without_observed_values_refused():
    X = _data()
    X[:, 2] = np.nan
    with pytest.raises(ValueError, match=r"no observed value .* column\(s\) \[2\]"):
        GaussianMixture(2, missing="marginalize").fit(X)


def test_patterns_group_rows():
    X = np.array([[1.0, np.nan, 2.0], [np.nan, np.nan, np.nan], [3.0, 4.0, 5.0],
                  [6.0, np.nan, 7.0], [np.nan, 1.0, 2.0]])
    pat = GM.Patterns(X)
    np.testing.assert_array_equal(pat.complete, [2])
    np.testing.assert_array_equal(pat.empty, [1])
    assert sorted(pat.rows.tolist()) == [0, 3, 4]
    for row, p in zip(pat.rows, pat.row_pattern):
        np.testing.assert_array_equal(pat.missing[p], np.isnan(X[row]))
        mi = pat.miss_idx[pat.miss_off[p]:pat.miss_off[p + 1]]
        np.testing.assert_array_equal(mi, np.flatnonzero(np.isnan(X[row])))
    # rows of one pattern are consecutive
    assert np.all(np.diff(pat.row_pattern) >= 0)


def test_pattern_arrays_against_covariance_formulas():
    """L L^T = P_mm, and A = P_mm^{-1} P_m:, C = P_mm^{-1} against Sigma's regression and
    Schur forms."""
    rng = np.random.default_rng(0)
    K, D = 2, 5
    a = rng.normal(size=(K, D, D))
    cov = np.einsum("kij,klj->kil", a, a) + np.eye(D)
    U = G.precision_cholesky(cov, "full")
    X = rng.normal(size=(6, D))
    X[0, [1, 3]] = np.nan
    X[1, [0]] = np.nan
    X[2, [0, 2, 4]] = np.nan
    pat = GM.Patterns(X)
    arr = GM.pattern_arrays(pat, U)
    for p in range(pat.n_patterns):
        m = pat.missing[p]
        o = ~m
        j = m.sum()
        for k in range(K):
            S = cov[k]
            L = arr["l_mat"][arr["l_off"][p] + k * j * j:][:j * j].reshape(j, j)
            C = arr["c_mat"][arr["c_off"][p] + k * j * j:][:j * j].reshape(j, j)
            P = np.linalg.inv(S)
            L[np.diag_indices(j)] = 1.0 / np.diag(L)  # (stored inverted)
            np.testing.assert_allclose(L @ L.T, P[np.ix_(m, m)], rtol=1e-10)
            np.testing.assert_array_equal(L, np.tril(L))
            A = C @ P[m, :]
            B = S[np.ix_(m, o)] @ np.linalg.inv(S[np.ix_(o, o)])  # regression of m on o
            np.testing.assert_allclose(-A[:, o], B, atol=1e-10)
            np.testing.assert_allclose(
                C, S[np.ix_(m, m)] - B @ S[np.ix_(o, m)], atol=1e-10)


def test_gibbs_fitted_model_refuses_nan_rows():
    gm = GaussianMixture(2, method="gibbs", n_draws=5, burn_in=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(_data(frac=0.0))
    gm.set_params(missing="marginalize")
    with pytest.raises(ValueError, match="NaN.*gibbs"):
        gm.predict(_data())
    gm.predict(_data(frac=0.0))  # (complete rows are fine)


def test_warm_start_continues_with_missing_values():
    X = _data(frac=0.2, seed=9)
    kw = dict(n_components=3, missing="marginalize", random_state=0, tol=0)
    one = GaussianMixture(max_iter=6, **kw).fit(X)
    gm = GaussianMixture(max_iter=3, warm_start=True, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X)
        gm.fit(X)
    np.testing.assert_allclose(gm.means_, one.means_, rtol=1e-12)
    np.testing.assert_allclose(gm.covariances_, one.covariances_, rtol=1e-12)


def test_compare_methods_leaves_out_gibbs_with_missing_values():
    X = _data(frac=0.1)
    with pytest.warns(UserWarning, match="leaves out method='gibbs': missing='marginalize'"):
        result = vbfast.compare_methods(
            GaussianMixture(2, missing="marginalize", random_state=0, max_iter=20), X)
    assert [row["method"] for row in result.rows] == ["mean_field", "em"]


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_mean_field_pass_statistics_against_reference(covariance_type):
    """The pass at mean-field inputs: q(z_n), q(x_n,m | z_n = k) = N(x^, (nu W)_mm^{-1}) and
    the statistics the q(theta) update and the ELBO read (N_k, S1, S2 with the conditional
    covariance, sum r log r - sum r H[q(x_m | z)], log Z), row by row in NumPy."""
    X = _data(n=120, frac=0.3, seed=11, n_empty=2)
    bgm = BayesianGaussianMixture(n_components=3, covariance_type=covariance_type,
                                  missing="marginalize", random_state=0, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bgm.fit(X)
    K, D = bgm.means_.shape
    data = GM.MissingGaussianPass(X, None, covariance_type, K, 2)
    inputs = MI.missing_inputs_at_fit(bgm, "mean_field", covariance_type)
    centres = inputs.centres_shifted = (np.zeros((K, D)) if covariance_type == "tied"
                                        else bgm.means_ - data.shift)
    complete_inputs = G.pass_inputs(bgm.means_, bgm.precisions_cholesky_, covariance_type,
                                    data.shift, inputs.log_const)
    # the complete rows' centres must be those the statistics are centred at
    centres_c = complete_inputs[0]
    stats = data.run(*complete_inputs, missing=inputs)

    P = _full(bgm.precisions_, covariance_type, K, D)
    nk = np.zeros(K)
    s1 = np.zeros((K, D))
    s2 = np.zeros((K, D, D))
    ent = ll = 0.0
    for x in X:
        o = ~np.isnan(x)
        m = ~o
        if not o.any():
            continue
        complete = not m.any()
        lz = np.empty(K)
        xh = np.empty((K, D))
        C = np.zeros((K, D, D))
        H = np.zeros(K)
        for k in range(K):
            y = np.where(o, x - bgm.means_[k], 0.0)
            if m.any():
                Pmm = P[k][np.ix_(m, m)]
                y[m] = -np.linalg.solve(Pmm, P[k][np.ix_(m, o)] @ y[o])
                C[k][np.ix_(m, m)] = np.linalg.inv(Pmm)
                H[k] = 0.5 * np.linalg.slogdet(2 * np.pi * np.e * np.linalg.inv(Pmm))[1]
            xh[k] = y + bgm.means_[k]
            lz[k] = (inputs.log_const[k] + 0.5 * m.sum() * np.log(2 * np.pi)
                     - 0.5 * (np.linalg.slogdet(P[k][np.ix_(m, m)])[1] if m.any() else 0.0)
                     - 0.5 * y @ P[k] @ y)
        lse = logsumexp(lz)
        r = np.exp(lz - lse)
        ll += lse
        ent += r @ np.log(np.where(r > 0, r, 1.0)) - r @ H
        for k in range(K):
            # tied: about the shift (the complete rows' part is their Gram matrix)
            c = (centres_c if complete and covariance_type != "tied" else centres)[k]
            d = xh[k] - data.shift - c
            nk[k] += r[k]
            s1[k] += r[k] * (xh[k] - data.shift)
            s2[k] += r[k] * (np.outer(d, d) + C[k])
    np.testing.assert_allclose(stats["log_likelihood"], ll, rtol=1e-11)
    np.testing.assert_allclose(stats["entropy_term"], ent, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(stats["nk"], nk, rtol=1e-11)
    np.testing.assert_allclose(stats["s1"], s1, rtol=1e-10, atol=1e-10)
    if covariance_type == "full":
        np.testing.assert_allclose(stats["s2"], s2, rtol=1e-10, atol=1e-10)
    elif covariance_type == "diag":
        np.testing.assert_allclose(stats["s2"], np.diagonal(s2, axis1=1, axis2=2),
                                   rtol=1e-10, atol=1e-10)
    elif covariance_type == "spherical":
        np.testing.assert_allclose(stats["s2"], np.trace(s2, axis1=1, axis2=2), rtol=1e-10,
                                   atol=1e-10)
    else:  # tied: the expected sum_n sum_k r (x - shift)(x - shift)^T replaces the Gram
        np.testing.assert_allclose(data.gram(), s2.sum(0), rtol=1e-10, atol=1e-10)


def test_memmap_with_missing_values_is_read_whole(tmp_path):
    """Missing values are marginalised in memory: a memmap with NaN is read whole and fits
    (and predicts) as the same array in memory, bit for bit; without 'marginalize' the NaN
    is refused."""
    X = _data()
    path = tmp_path / "X.npy"
    np.save(path, X)
    Xm = np.load(path, mmap_mode="r")
    kw = dict(n_components=2, missing="marginalize", random_state=0)
    a = GaussianMixture(**kw).fit(Xm)
    b = GaussianMixture(**kw).fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.predict_proba(Xm), b.predict_proba(X))
    np.testing.assert_array_equal(a.score_samples(Xm), b.score_samples(X))
    with pytest.raises(ValueError, match="NaN"):
        GaussianMixture(n_components=2).fit(Xm)
