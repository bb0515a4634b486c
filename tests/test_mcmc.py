"""Tests of the MCMC diagnostics (vbfast._core.mcmc)."""
import numpy as np
import pytest

from vbfast._core.mcmc import effective_sample_size, split_rhat


# ---------------------------------------------------------------------------------------------
# Slow, obvious references written from BDA3 section 11.4-11.5
# ---------------------------------------------------------------------------------------------

def reference_halves(chains):
    """List of half-chains (1-d arrays) of one scalar; middle draw dropped if odd."""
    out = []
    for chain in chains:
        n = len(chain) // 2
        out.append(np.array(chain[:n], dtype=float))
    for chain in chains:
        n = len(chain) // 2
        out.append(np.array(chain[len(chain) - n:], dtype=float))
    return out


def reference_rhat(chains):
    halves = reference_halves(chains)
    m, n = len(halves), len(halves[0])
    means = [sum(h) / n for h in halves]
    grand = sum(means) / m
    B = n / (m - 1) * sum((mu - grand) ** 2 for mu in means)
    W = sum(sum((x - mu) ** 2 for x in h) / (n - 1) for h, mu in zip(halves, means)) / m
    var_plus = (n - 1) / n * W + B / n
    return np.sqrt(var_plus / W)


def reference_ess(chains):
    halves = reference_halves(chains)
    m, n = len(halves), len(halves[0])
    means = [h.mean() for h in halves]
    grand = np.mean(means)
    B = n / (m - 1) * sum((mu - grand) ** 2 for mu in means)
    W = np.mean([h.var(ddof=1) for h in halves])
    var_plus = (n - 1) / n * W + B / n
    rho = np.empty(n)
    for t in range(n):
        acov_t = np.mean([np.sum((h[:n - t] - h.mean()) * (h[t:] - h.mean())) / n
                          for h in halves])
        rho[t] = 1 - (W - acov_t) / var_plus
    rho[0] = 1.0
    total, previous, k = 0.0, np.inf, 0
    while 2 * k + 1 < n:
        pair = rho[2 * k] + rho[2 * k + 1]
        if pair <= 0:
            break
        previous = min(previous, pair)
        total += previous
        k += 1
    tau = -1 + 2 * total
    return m * n / max(tau, 1 / np.log10(m * n))


def ar1(rng, n_chains, n_draws, phi):
    """Stationary AR(1) chains x_t = phi x_{t-1} + e_t with unit marginal variance."""
    x = np.empty((n_chains, n_draws))
    x[:, 0] = rng.standard_normal(n_chains)
    noise = rng.standard_normal((n_chains, n_draws)) * np.sqrt(1 - phi ** 2)
    for t in range(1, n_draws):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return x


# ---------------------------------------------------------------------------------------------
# Against the references
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_chains, n_draws", [(1, 40), (3, 51), (4, 100)])
@pytest.mark.parametrize("phi", [0.0, 0.6, -0.4])
def test_matches_reference(n_chains, n_draws, phi):
    rng = np.random.default_rng(3)
    draws = ar1(rng, n_chains, n_draws, phi) + rng.normal(size=(n_chains, 1)) * 0.3
    np.testing.assert_allclose(split_rhat(draws), reference_rhat(draws), rtol=1e-12)
    np.testing.assert_allclose(effective_sample_size(draws), reference_ess(draws), rtol=1e-10)


def test_array_shape_matches_per_scalar_calls():
    rng = np.random.default_rng(0)
    draws = rng.standard_normal((3, 60, 2, 4)).cumsum(axis=1) * 0.1 + rng.standard_normal(
        (3, 60, 2, 4))
    rhat = split_rhat(draws)
    ess = effective_sample_size(draws)
    assert rhat.shape == (2, 4) and ess.shape == (2, 4)
    for i in range(2):
        for j in range(4):
            assert rhat[i, j] == pytest.approx(split_rhat(draws[:, :, i, j]), rel=1e-12)
            assert ess[i, j] == pytest.approx(effective_sample_size(draws[:, :, i, j]),
                                              rel=1e-10)
    assert isinstance(split_rhat(draws[:, :, 0, 0]), float)
    assert isinstance(effective_sample_size(draws[:, :, 0, 0]), float)


# ---------------------------------------------------------------------------------------------
# Known cases
# ---------------------------------------------------------------------------------------------

def test_iid_draws():
    rng = np.random.default_rng(1)
    draws = rng.standard_normal((4, 2000, 5))
    rhat = split_rhat(draws)
    ess = effective_sample_size(draws)
    assert np.all(np.abs(rhat - 1) < 0.01)
    # for iid draws ESS ~ m n; the estimator's sd is a few percent of that
    assert np.all(np.abs(ess / 8000 - 1) < 0.15)


@pytest.mark.parametrize("phi", [0.5, 0.9])
def test_ar1_ess_matches_theory(phi):
    rng = np.random.default_rng(2)
    n_chains, n_draws = 4, 5000
    expected = n_chains * n_draws * (1 - phi) / (1 + phi)
    ess = np.array([effective_sample_size(ar1(rng, n_chains, n_draws, phi)) for _ in range(5)])
    assert np.all(np.abs(ess / expected - 1) < 0.25)
    assert abs(ess.mean() / expected - 1) < 0.1


def test_antithetic_chain_capped_above_n():
    rng = np.random.default_rng(4)
    draws = ar1(rng, 2, 2000, -0.5)
    ess = effective_sample_size(draws)
    assert ess > 4000  # negative autocorrelation: more informative than iid
    assert ess <= 4000 * np.log10(4000)


def test_separated_chains_have_large_rhat():
    rng = np.random.default_rng(5)
    draws = rng.standard_normal((4, 500)) + np.array([0.0, 0.0, 3.0, 3.0])[:, None]
    assert split_rhat(draws) > 1.5
    # within-chain drift also shows up, thanks to the split
    trend = np.linspace(0, 5, 500)[None, :] + rng.standard_normal((1, 500))
    assert split_rhat(trend) > 1.5


def test_constant_draws():
    assert split_rhat(np.ones((2, 10))) == 1.0
    assert np.isnan(effective_sample_size(np.ones((2, 10))))
    assert split_rhat(np.array([[1.0] * 10, [2.0] * 10])) == np.inf


@pytest.mark.parametrize("bad, error", [
    (np.zeros(10), ValueError),
    (np.zeros((2, 3)), ValueError),
    (np.array([[0.0, 1.0, np.nan, 2.0, 3.0]]), ValueError),
    (np.array([["a", "b", "c", "d"]]), TypeError),
])
def test_bad_input(bad, error):
    with pytest.raises(error):
        split_rhat(bad)
    with pytest.raises(error):
        effective_sample_size(bad)
