"""The long-sequence forward-backward pass (``_hmm.forward_backward_long``: one sequence, the
forward and backward recursions apart, rescaled by powers of two every other step, combined
over chunks) against a log-space NumPy reference and against the per-sequence scaled pass;
bitwise the same for one and two threads. The Gaussian long pass
(``_hmm.gaussian_long_pass``: densities from X and emission statistics inside it) against
NumPy densities and sums, bitwise against the separate passes, and GaussianHMM's one-sequence
EM through it against hmmlearn; the M-step's batched eigenvalue floor against the rule
applied matrix by matrix.

Reference, all in log space (the ``ref_fb`` fixture of conftest.py):
    log alpha_0 = log pi + l_0,   log alpha_t(j) = logsumexp_i(log alpha_{t-1}(i) + log A_ij) + l_tj
    log beta_{T-1} = 0,           log beta_t(i) = logsumexp_j(log A_ij + l_{t+1,j} + log beta_{t+1}(j))
    gamma_t = exp(log alpha_t + log beta_t - log p),
    sum_t xi_t(i, j) = sum_t exp(log alpha_t(i) + log A_ij + l_{t+1,j} + log beta_{t+1}(j) - log p).
"""
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from vbfast.hmm import GaussianHMM, _hmm, _sequences, gaussian
from vbfast.hmm._sequences import Sequences






def _long(logprob, startprob, transmat, n_threads, what="all"):
    T, K = logprob.shape
    post = np.full((T, K), np.nan) if what == "all" else np.empty((0, 0))
    trans = np.full((K, K), np.nan) if what != "ll" else np.empty((0, 0))
    start = np.full(K, np.nan) if what != "ll" else np.empty(0)
    ll = _hmm.forward_backward_long(logprob, startprob, transmat, post, trans, start,
                                    n_threads)
    return ll, post, trans, start


def _group_path(monkeypatch, logprob, startprob, transmat):
    """The per-sequence scaled pass (the one for many sequences) on the same sequence."""
    with monkeypatch.context() as m:
        m.setattr(_sequences, "LONG_MAX_STATES", 0)
        T = logprob.shape[0]
        return Sequences([T], T, 1).forward_backward(logprob, startprob, transmat)


@pytest.mark.parametrize("K", [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16])
@pytest.mark.parametrize("zeros", [False, True])
@pytest.mark.parametrize("T", [1, 2, 3, 1201])
def test_long_pass_matches_log_space_reference(K, zeros, T, ref_fb, random_model):
    rng = np.random.default_rng(100 * K + T + zeros)
    logprob = rng.normal(scale=3.0, size=(T, K)) - 2.0
    startprob, transmat = random_model(rng, K, zeros)
    ll_ref, post_ref, start_ref, trans_ref = ref_fb(logprob, startprob, transmat)
    ll, post, trans, start = _long(logprob, startprob, transmat, 1)
    assert np.isfinite(ll)  # the long pass itself answered (no fallback)
    assert_allclose(ll, ll_ref, rtol=1e-12)
    assert_allclose(post, post_ref, rtol=1e-9, atol=1e-13)
    assert_allclose(start, start_ref, rtol=1e-9, atol=1e-13)
    assert_allclose(trans, trans_ref, rtol=1e-9, atol=1e-11)
    # what Sequences returns for one sequence is this pass
    out = Sequences([T], T, 2).forward_backward(logprob, startprob, transmat)
    assert out["seq_ll"][0] == ll and out["n_log_space"] == 0
    assert_array_equal(out["posteriors"], post)
    assert_array_equal(out["trans"], trans)
    # forward only and statistics only: the same numbers
    assert _long(logprob, startprob, transmat, 1, "ll")[0] == ll
    assert_array_equal(_long(logprob, startprob, transmat, 1, "stats")[2], trans)


@pytest.mark.parametrize("K,T", [(4, 50_000), (3, 9_999), (10, 8_193), (1, 5000), (16, 4097),
                                 (5, 1025)])
def test_long_pass_bitwise_identical_for_one_and_two_threads(K, T, random_model):
    rng = np.random.default_rng(K * T)
    logprob = rng.normal(scale=4.0, size=(T, K))
    startprob, transmat = random_model(rng, K)
    runs = [_long(logprob, startprob, transmat, n) for n in (1, 2, 3)]
    for ll, post, trans, start in runs[1:]:
        assert ll == runs[0][0]
        assert post.tobytes() == runs[0][1].tobytes()
        assert trans.tobytes() == runs[0][2].tobytes()
        assert start.tobytes() == runs[0][3].tobytes()
    assert np.isfinite(runs[0][0]) and not np.isnan(runs[0][1]).any()
    assert_allclose(runs[0][1].sum(axis=1), 1.0, rtol=1e-12)
    assert_allclose(runs[0][2].sum(), T - 1, rtol=1e-10)


def test_very_long_sequence_with_tiny_emission_probabilities(monkeypatch, random_model):
    """100,000 frames whose densities differ by hundreds of nats between states, a transition
    matrix with zeros: the power-of-two rescaling keeps every sum in range, and the answer
    equals the per-step scaled pass's."""
    rng = np.random.default_rng(5)
    K, T = 5, 100_000
    logprob = rng.normal(scale=60.0, size=(T, K)) - 700.0
    startprob, transmat = random_model(rng, K)
    transmat[0, 1] = transmat[2, 3] = transmat[4, 0] = 0.0
    transmat /= transmat.sum(axis=1, keepdims=True)
    ll, post, trans, start = _long(logprob, startprob, transmat, 2)
    ref = _group_path(monkeypatch, logprob, startprob, transmat)
    assert ref["n_log_space"] == 0 and np.isfinite(ll)
    assert_allclose(ll, ref["seq_ll"][0], rtol=1e-12)
    assert_allclose(post, ref["posteriors"], atol=1e-9)
    assert_allclose(trans, ref["trans"], rtol=1e-8, atol=1e-8)
    assert trans[0, 1] == 0.0 and trans[2, 3] == 0.0 and trans[4, 0] == 0.0


@pytest.mark.parametrize("gap", [200.0, 300.0, 800.0])
def test_states_far_apart_redone_by_the_per_step_pass(gap):
    """The model can only stay in state 0, whose density is exp(-gap) below state 1's every
    frame: alpha lives on state 0 and shrinks by exp(-gap) a step, beta's own scaling follows
    state 1 and its state-0 lane underflows, so the normaliser sum_i alpha_t(i) beta_t(i)
    leaves the range: the long pass declines (NaN), the sequence is redone by the per-step
    scaled pass (here in log space: its beta overflows), and the answer is exact."""
    T = 41
    logprob = np.zeros((T, 2))
    logprob[:, 0] = -gap
    startprob, transmat = np.array([1.0, 0.0]), np.eye(2)
    assert np.isnan(_long(logprob, startprob, transmat, 1)[0])
    out = Sequences([T], T, 1).forward_backward(logprob, startprob, transmat)
    assert_allclose(out["seq_ll"][0], -gap * T, rtol=1e-13)
    assert_array_equal(out["posteriors"], np.tile([1.0, 0.0], (T, 1)))
    assert_allclose(out["trans"], [[T - 1, 0], [0, 0]], rtol=1e-13)


def test_long_pass_argument_errors():
    with pytest.raises(ValueError, match="K <= 16"):
        _long(np.zeros((5, 17)), np.full(17, 1 / 17), np.full((17, 17), 1 / 17), 1)
    with pytest.raises(ValueError, match="do not match"):
        _long(np.zeros((5, 3)), np.full(2, 0.5), np.full((3, 3), 1 / 3), 1)


# ------------------------------------------------ the Gaussian long pass (densities and
# emission statistics inside the long-sequence pass: ``_hmm.gaussian_long_pass``)
def _gauss_inputs(rng, K, D, spherical):
    means = rng.normal(scale=2.0, size=(K, D))
    var = rng.uniform(0.5, 2.0, size=K if spherical else (K, D))
    prec = 1.0 / var
    log_det = 0.5 * (D * np.log(prec) if spherical else np.log(prec).sum(axis=1))
    log_const = log_det - 0.5 * D * np.log(2 * np.pi)
    return means, prec, log_const


def _ref_log_density(X, means, prec, log_const, spherical):
    """l_tk = c_k - 1/2 sum_j p_kj (x_tj - mu_kj)^2 (p_k for every j: 'spherical')."""
    P = np.repeat(prec[:, None], X.shape[1], axis=1) if spherical else prec
    d = X.astype(np.float64)[:, None, :] - means[None]
    return log_const[None] - 0.5 * (d * d * P[None]).sum(axis=2)


def _gauss_long(X, means, prec, log_const, shift, startprob, transmat, n_threads):
    T, D = X.shape
    K = means.shape[0]
    spherical = prec.ndim == 1
    work = _hmm.LongWork(T, K, D, spherical)
    work.post[...] = np.nan  # (every entry written by the pass)
    work.em_slots[...] = np.nan
    ll, start, trans, nk, s1, s2 = _hmm.gaussian_long_pass(
        X, means, np.ascontiguousarray(prec.ravel()), 3 if spherical else 2, log_const, shift,
        startprob, transmat, work, n_threads)
    if np.isfinite(ll):  # the statistics: the chunks' slots added in chunk order
        Kp = (K + 3) // 4 * 4
        total = work.em_slots.sum(axis=0)
        assert nk.tobytes() == total[:K].tobytes()
        assert s1.tobytes() == total[Kp:Kp + D * Kp].reshape(D, Kp)[:, :K].T.tobytes()
        ref_s2 = total[Kp + D * Kp:]
        ref_s2 = ref_s2[:K] if spherical else ref_s2.reshape(D, Kp)[:, :K].T
        assert s2.tobytes() == ref_s2.tobytes()
    return ll, trans, start, nk, s1, s2, work.post.copy(), work.em_slots.copy()


@pytest.mark.parametrize("spherical", [False, True])
@pytest.mark.parametrize("K,D,T", [(4, 1, 9000), (1, 1, 7), (3, 2, 4097), (5, 3, 1),
                                   (8, 1, 2), (16, 2, 300), (6, 4, 8193)])
def test_gaussian_long_pass_against_numpy(spherical, K, D, T, ref_fb, random_model):
    """ll, start / transition counts against the log-space reference on NumPy densities;
    nk = sum_t gamma_t, s1 = sum_t gamma_t y_t, s2 = sum_t gamma_t y_t^2 ('spherical':
    ||y_t||^2) with y = x - shift, against NumPy sums of the reference posteriors."""
    rng = np.random.default_rng(1000 * K + 10 * D + T)
    means, prec, log_const = _gauss_inputs(rng, K, D, spherical)
    X = means[rng.integers(K, size=T)] + rng.normal(size=(T, D))
    shift = X.mean(axis=0)
    startprob, transmat = random_model(rng, K)
    ll, trans, start, nk, s1, s2, _, _ = _gauss_long(X, means, prec, log_const, shift,
                                                     startprob, transmat, 1)
    lp = _ref_log_density(X, means, prec, log_const, spherical)
    ll_ref, post_ref, start_ref, trans_ref = ref_fb(lp, startprob, transmat)
    assert np.isfinite(ll)
    assert_allclose(ll, ll_ref[0], rtol=1e-12)
    # (the tolerances of test_hmm_kernel.py's fused-pass test: the log-space reference
    # carries rounding errors of ~eps |log alpha_t| a step, ~1e-9 over thousands of steps)
    assert_allclose(start, start_ref, rtol=1e-8, atol=1e-12)
    assert_allclose(trans, trans_ref, rtol=1e-8, atol=1e-9)
    Y = X - shift
    assert_allclose(nk, post_ref.sum(axis=0), rtol=1e-8, atol=1e-11)
    assert_allclose(s1, post_ref.T @ Y, rtol=1e-8, atol=1e-8)
    ref_s2 = post_ref.T @ (Y ** 2).sum(axis=1) if spherical else post_ref.T @ Y ** 2
    assert_allclose(s2, ref_s2, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("spherical", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gaussian_long_pass_equals_the_separate_passes_bitwise(spherical, dtype,
                                                               random_model):
    """The same bits as ``gaussian_log_density`` then ``forward_backward_long`` (the densities
    made the same way, row by row), for 1, 2 and 3 threads; the emission slots bitwise the
    same for any thread count too, and their sums those of ``gaussian_stats`` on the
    posteriors (to rounding: other groups of rows)."""
    rng = np.random.default_rng(7 + spherical)
    K, D, T = 5, 2, 10_000
    means, prec, log_const = _gauss_inputs(rng, K, D, spherical)
    X = (means[np.repeat(rng.integers(K, size=T // 10 + 1), 10)[:T]]
         + rng.normal(size=(T, D))).astype(dtype)
    shift = X.mean(axis=0, dtype=np.float64)
    startprob, transmat = random_model(rng, K)
    runs = [_gauss_long(X, means, prec, log_const, shift, startprob, transmat, n)
            for n in (1, 2, 3)]
    lp = np.empty((T, K))
    _hmm.gaussian_log_density(X, means, np.ascontiguousarray(prec.ravel()),
                              3 if spherical else 2, log_const, lp, 256, 1)
    ll, post, trans, start = _long(lp, startprob, transmat, 1)
    for run in runs:
        assert run[0] == ll
        assert run[1].tobytes() == trans.tobytes() and run[2].tobytes() == start.tobytes()
        assert run[6].tobytes() == post.tobytes()
        assert run[7].tobytes() == runs[0][7].tobytes()
    Kp = 8
    slots = np.empty((4, Kp * (2 + D if spherical else 1 + 2 * D)))
    _hmm.gaussian_stats(X, post, shift, spherical, slots, 256, 1)
    total = slots.sum(axis=0)
    assert_allclose(runs[0][3], total[:K], rtol=1e-12)
    assert_allclose(runs[0][4], total[Kp:Kp + D * Kp].reshape(D, Kp)[:, :K].T, rtol=1e-11,
                    atol=1e-9)


def test_gaussian_long_pass_declines_on_underflow():
    """States far apart (as test_states_far_apart_redone_by_the_per_step_pass): the pass
    answers NaN, so that the caller redoes the iteration by the separate passes."""
    T = 41
    X = np.zeros((T, 1))
    means = np.array([[40.0], [0.0]])
    prec = np.array([[1.0], [1.0]])
    log_const = np.full(2, -0.5 * np.log(2 * np.pi))
    ll = _gauss_long(X, means, prec, log_const, np.zeros(1), np.array([1.0, 0.0]),
                     np.eye(2), 1)[0]
    assert np.isnan(ll)


def test_gaussian_long_pass_refuses_bad_shapes():
    rng = np.random.default_rng(0)
    means, prec, log_const = _gauss_inputs(rng, 3, 2, False)
    X = rng.normal(size=(50, 2))
    startprob, transmat = np.full(3, 1 / 3), np.full((3, 3), 1 / 3)

    def call(work=None, code=2, p=prec.ravel(), lc=log_const, sp=startprob):
        work = _hmm.LongWork(50, 3, 2, code == 3) if work is None else work
        return _hmm.gaussian_long_pass(X, means, p, code, lc, X.mean(axis=0), sp, transmat,
                                       work, 1)[0]

    assert np.isfinite(call())
    for work in (_hmm.LongWork(49, 3, 2), _hmm.LongWork(50, 4, 2), _hmm.LongWork(50, 3, 1),
                 _hmm.LongWork(50, 3, 2, True), _hmm.LongWork(50, 3, 2, backward=False)):
        with pytest.raises(ValueError, match="shapes do not match"):
            call(work)
    with pytest.raises(ValueError, match="shapes do not match"):
        call(p=prec.ravel()[:5])
    with pytest.raises(ValueError, match="shapes do not match"):
        call(lc=log_const[:2])
    with pytest.raises(ValueError, match="shapes do not match"):
        call(sp=np.full(4, 0.25))
    with pytest.raises(ValueError, match="cov_type 2 or 3"):
        call(code=0)
    with pytest.raises(ValueError, match="K <= 16"):
        _hmm.LongWork(50, 17, 2)
    with pytest.raises(TypeError):
        _hmm.gaussian_long_pass(X, means, prec.ravel(), 2, log_const, X.mean(axis=0),
                                startprob, transmat, None, 1)


@pytest.mark.parametrize("ct,D", [("full", 1), ("diag", 2), ("spherical", 3), ("tied", 1)])
def test_one_sequence_fit_agrees_with_hmmlearn_and_the_separate_passes(ct, D, monkeypatch):
    """One sequence: GaussianHMM's EM through the Gaussian long pass ('full' at D = 1, 'diag',
    'spherical'; 'tied' keeps the separate passes) agrees with hmmlearn 'scaling' within 1e-8
    and with the separate passes (forced) within 1e-11, bitwise the same for 1, 2, 3
    threads."""
    hmm = pytest.importorskip("hmmlearn.hmm")
    K, T = 4, 6000
    rng = np.random.RandomState(D)
    means = rng.normal(scale=1.5, size=(K, D))
    z = np.repeat(rng.randint(K, size=T // 8), 8)
    X = means[z] + rng.normal(size=(T, D))
    cov = {"full": np.tile(np.eye(D) * 1.5, (K, 1, 1)), "tied": np.eye(D) * 1.5,
           "diag": np.full((K, D), 1.5), "spherical": np.full(K, 1.5)}[ct]
    start = {"startprob_": np.full(K, 1.0 / K), "transmat_": np.full((K, K), 1.0 / K),
             "means_": means + rng.normal(scale=0.5, size=means.shape)}

    def fit(model):
        for name, value in start.items():
            setattr(model, name, value.copy())
        model.covars_ = cov.copy()
        return model.fit(X)

    calls = []
    real = _hmm.gaussian_long_pass
    monkeypatch.setattr(_hmm, "gaussian_long_pass", lambda *a: calls.append(1) or real(*a))
    fits = [fit(GaussianHMM(K, ct, init_params="", n_iter=8, tol=0, n_threads=t))
            for t in (1, 2, 3)]
    assert len(calls) == (0 if ct == "tied" else 24)
    theirs = fit(hmm.GaussianHMM(K, ct, init_params="", n_iter=8, tol=-np.inf,
                                 implementation="scaling"))
    monkeypatch.setattr(gaussian, "LONG_MAX_STATES", 0)
    separate = fit(GaussianHMM(K, ct, init_params="", n_iter=8, tol=0, n_threads=2))
    ours = fits[0]
    for name in ("startprob_", "transmat_", "means_", "_covars_", "lower_bounds_"):
        assert all(getattr(f, name).tobytes() == getattr(ours, name).tobytes()
                   for f in fits[1:])
        assert_allclose(getattr(ours, name), getattr(separate, name), rtol=1e-11,
                        atol=1e-13)
    assert_allclose(list(ours.monitor_.history), list(theirs.monitor_.history), rtol=1e-8)
    assert_allclose(ours.transmat_, theirs.transmat_, rtol=1e-8, atol=1e-12)
    assert_allclose(ours.means_, theirs.means_, rtol=1e-8, atol=1e-12)
    their_cov = theirs._covars_[:, 0] if ct == "spherical" else theirs._covars_
    assert_allclose(ours._covars_, their_cov, rtol=1e-8)


@pytest.mark.parametrize("D", [1, 2, 3])
def test_floor_eigenvalues_batched_matches_one_by_one(D):
    """The M-step's eigenvalue floor on a (K, D, D) stack equals the rule applied to each
    matrix alone: symmetrised, eigenvalues below the floor raised, the rest unchanged."""
    rng = np.random.default_rng(D)
    A = rng.normal(size=(6, D, D))
    stack = A @ np.swapaxes(A, 1, 2) + 1e-3 * rng.normal(size=(6, D, D))
    stack[0] = 1e-6 * np.eye(D)  # every eigenvalue below the floor
    floor = 0.05
    out = gaussian._floor_eigenvalues(stack, floor)
    for k in range(6):
        c = 0.5 * (stack[k] + stack[k].T)
        w, V = np.linalg.eigh(c)
        expect = c if w.min() >= floor else (V * np.maximum(w, floor)) @ V.T
        assert_allclose(out[k], expect, rtol=1e-12, atol=1e-15)
        assert np.linalg.eigvalsh(out[k]).min() >= floor * (1 - 1e-9)
    assert_allclose(out[0], floor * np.eye(D), rtol=1e-12)


@pytest.mark.parametrize("ct,D", [("diag", 1), ("diag", 3), ("spherical", 2), ("full", 1)])
@pytest.mark.parametrize("letters", ["stmc", "mc", "st", "c"])
def test_compiled_m_step_matches_the_numpy_m_step(ct, D, letters):
    """``_hmm.gaussian_m_step_small`` (GaussianHMM._m_step for 'diag', 'spherical' and one
    feature's 'full') against the NumPy M-step (``BaseHMM._m_step`` with
    ``_emission_m_step``), with priors of every shape, an unvisited state, a zero start
    entry and transition, a transition row with no counts, and a variance under min_covar."""
    from vbfast.hmm.base import BaseHMM

    rng = np.random.default_rng(len(letters) * 10 + D)
    K = 5
    est = GaussianHMM(K, ct, params=letters, min_covar=0.05,
                      startprob_prior=rng.uniform(1.0, 2.0, size=K),
                      transmat_prior=rng.uniform(1.0, 2.0, size=(K, K)),
                      means_prior=rng.normal(size=(K, D)), means_weight=rng.uniform(0, 1, K),
                      covars_prior=rng.uniform(0, 0.1, size=(K, D) if ct == "diag" else K),
                      covars_weight=rng.uniform(0.5, 4.0, size=K))
    if ct == "full":
        est.covars_prior = 0.02 * (np.arange(K) > 0)[:, None, None]
    est.means_weight[0] = est.covars_prior[0] = 0.0
    startprob = rng.dirichlet(np.ones(K))
    startprob[1] = 0.0
    startprob /= startprob.sum()
    transmat = rng.dirichlet(np.ones(K), size=K)
    transmat[2, 3] = 0.0
    transmat /= transmat.sum(axis=1, keepdims=True)
    covars = {"diag": rng.uniform(0.5, 2, (K, D)), "spherical": rng.uniform(0.5, 2, K),
              "full": rng.uniform(0.5, 2, (K, 1, 1))}[ct]
    params = {"startprob": startprob, "transmat": transmat,
              "means": rng.normal(size=(K, D)), "covars": covars}
    nk = rng.uniform(10, 100, K)
    nk[4] = 0.0  # unvisited
    shift = rng.normal(size=D)
    s1 = rng.normal(size=(K, D)) * nk[:, None]
    s2 = rng.uniform(1, 3, size=(K, D)) * nk[:, None] + s1 ** 2 / np.maximum(nk, 1)[:, None]
    s2[0] = s1[0] ** 2 / nk[0]  # state 0: no spread (its variance floored)
    s2 = {"diag": lambda: s2, "spherical": lambda: s2.sum(axis=1),
          "full": lambda: s2.reshape(K, 1, 1)}[ct]()
    trans = rng.uniform(0, 50, size=(K, K))
    trans[1] = 0.0  # (a row with no counts keeps its values: prior - 1 = 0 needs it)
    stats = {"start": rng.dirichlet(np.ones(K)), "trans": trans, "nk": nk, "s1": s1,
             "s2": s2, "shift": shift}
    est.transmat_prior = np.where(np.arange(K)[:, None] == 1, 1.0, est.transmat_prior)
    ours, kept = est._m_step(params, stats, {})
    theirs, their_kept = BaseHMM._m_step(est, params, stats, {})
    assert kept == their_kept == ("t" in letters) + ("m" in letters or "c" in letters)
    for name in ("startprob", "transmat", "means", "covars"):
        assert ours[name].shape == np.shape(theirs[name])
        assert_allclose(ours[name], theirs[name], rtol=1e-14, atol=1e-15, err_msg=name)
    if "c" in letters:  # the unvisited state keeps its variances
        assert ours["covars"].reshape(K, -1)[4].tolist() == covars.reshape(K, -1)[4].tolist()
    if letters == "mc":  # state 0, no spread and no prior on it: its variance floored
        assert ours["covars"].reshape(K, -1)[0].tolist() == [0.05] * (1 if ct == "spherical"
                                                                      else D)
