"""Convergence diagnostics for Markov chain Monte Carlo draws.

Both functions take draws shaped ``(n_chains, n_draws)`` for one scalar quantity, or
``(n_chains, n_draws, *shape)`` for an array of scalars, and return one value per scalar
(a float, or an array of ``shape``).

Definitions follow Gelman et al., *Bayesian Data Analysis* (3rd ed., 2013), section 11.4-11.5:
every chain is split into its first and second half (the middle draw is dropped when
``n_draws`` is odd), so that ``m = 2 n_chains`` half-chains of ``n = n_draws // 2`` draws each
enter the formulas. Splitting lets a single chain that is still drifting show up as R-hat > 1.
"""
import numpy as np

__all__ = ["split_rhat", "effective_sample_size"]


def _split_chains(draws):
    """Validate ``draws`` and return the half-chains, shape ``(2 n_chains, n, n_scalars)``."""
    draws = np.asarray(draws)
    if draws.ndim < 2:
        raise ValueError(
            "draws must have shape (n_chains, n_draws) or (n_chains, n_draws, *shape); "
            f"got an array with {draws.ndim} dimension(s)")
    if not (np.issubdtype(draws.dtype, np.floating) or np.issubdtype(draws.dtype, np.integer)
            or draws.dtype == np.bool_):
        raise TypeError(f"draws must be numeric, got dtype {draws.dtype}")
    n_chains, n_draws = draws.shape[:2]
    if n_chains < 1 or n_draws < 4:
        raise ValueError(
            f"need at least 1 chain and 4 draws per chain, got {n_chains} chain(s) of "
            f"{n_draws} draw(s)")
    draws = draws.astype(np.float64, copy=False)
    if not np.all(np.isfinite(draws)):
        raise ValueError("draws contain NaN or infinity")
    shape = draws.shape[2:]
    flat = draws.reshape(n_chains, n_draws, -1)
    half = n_draws // 2
    # drop the middle draw of an odd-length chain so both halves have the same length
    halves = np.concatenate([flat[:, :half], flat[:, n_draws - half:]], axis=0)
    return halves, shape


def _reshape(values, shape):
    return float(values[0]) if shape == () else values.reshape(shape)


def _variance_terms(halves):
    """Within-chain variance W and the pooled estimate var+ of the marginal variance.

    Returns ``(W, var_plus, chain_means)``; W and var_plus have one entry per scalar.
    """
    m, n, _ = halves.shape
    chain_means = halves.mean(axis=1)                      # (m, n_scalars)
    within = halves.var(axis=1, ddof=1).mean(axis=0)       # W = mean of s_j^2
    between_over_n = chain_means.var(axis=0, ddof=1)       # B / n
    var_plus = (n - 1) / n * within + between_over_n
    return within, var_plus, chain_means


def split_rhat(draws):
    r"""Split potential scale reduction factor :math:`\hat R` (BDA3, eq. 11.4).

    With ``m`` half-chains of ``n`` draws, half-chain means :math:`\bar\psi_{.j}` and variances
    :math:`s_j^2`,

    .. math::
        B = \frac{n}{m-1}\sum_j (\bar\psi_{.j} - \bar\psi_{..})^2,\quad
        W = \frac1m \sum_j s_j^2,\quad
        \widehat{\mathrm{var}}^+ = \frac{n-1}{n} W + \frac1n B,\quad
        \hat R = \sqrt{\widehat{\mathrm{var}}^+ / W}.

    Parameters
    ----------
    draws : array-like of shape (n_chains, n_draws) or (n_chains, n_draws, \*shape)
        Draws of one or more scalar quantities; ``n_draws >= 4``.

    Returns
    -------
    rhat : float or ndarray of shape ``shape``
        Near 1 when the chains mix; values above about 1.01 signal non-convergence. A scalar
        whose draws are all identical gets 1.0; one that is constant within each half-chain
        but differs between them gets ``inf``.

    Raises
    ------
    ValueError
        Fewer than 4 draws per chain, fewer than 2 dimensions, or non-finite draws.
    """
    halves, shape = _split_chains(draws)
    within, var_plus, _ = _variance_terms(halves)
    with np.errstate(divide="ignore", invalid="ignore"):
        rhat = np.sqrt(var_plus / within)
    rhat = np.where(within > 0, rhat, np.where(var_plus > 0, np.inf, 1.0))
    return _reshape(rhat, shape)


def _autocovariance(x):
    """Biased autocovariance of each column along axis 1, via FFT.

    ``x`` has shape ``(m, n, s)``; returns shape ``(m, n, s)`` with lag 0 equal to the variance
    with denominator n.
    """
    m, n, s = x.shape
    centred = x - x.mean(axis=1, keepdims=True)
    size = 1
    while size < 2 * n:
        size *= 2  # zero padding to >= 2n turns the circular correlation into the linear one
    spectrum = np.fft.rfft(centred, n=size, axis=1)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), n=size, axis=1)[:, :n]
    return acov / n


def effective_sample_size(draws):
    r"""Effective sample size of the draws, summed over chains (BDA3, section 11.5).

    The autocorrelation at lag t is estimated across the ``m`` half-chains as
    :math:`\hat\rho_t = 1 - (W - \overline{\mathrm{acov}}_t) / \widehat{\mathrm{var}}^+`, where
    :math:`\overline{\mathrm{acov}}_t` is the mean over half-chains of the within-chain
    autocovariance at lag t (the combination used by BDA3 and Stan). The sum is truncated with
    Geyer's initial monotone sequence: the pair sums
    :math:`P_k = \hat\rho_{2k} + \hat\rho_{2k+1}` are kept while positive and made
    non-increasing, and

    .. math::
        \hat\tau = -1 + 2\sum_k P_k, \qquad \mathrm{ESS} = m n / \hat\tau.

    Parameters
    ----------
    draws : array-like of shape (n_chains, n_draws) or (n_chains, n_draws, \*shape)
        Draws of one or more scalar quantities; ``n_draws >= 4``.

    Returns
    -------
    ess : float or ndarray of shape ``shape``
        Total effective sample size over all chains; about ``n_chains * n_draws`` for
        independent draws, fewer for autocorrelated ones (capped at
        ``m n log10(m n)`` as Stan does for antithetic chains). ``nan`` for a scalar whose
        draws are all identical (its autocorrelation is undefined).

    Raises
    ------
    ValueError
        Fewer than 4 draws per chain, fewer than 2 dimensions, or non-finite draws.
    """
    halves, shape = _split_chains(draws)
    m, n, n_scalars = halves.shape
    within, var_plus, _ = _variance_terms(halves)
    # the half-chain sample variance s_j^2 uses n - 1; acov lag 0 uses n
    mean_acov = _autocovariance(halves).mean(axis=0)       # (n, n_scalars)
    ess = np.full(n_scalars, np.nan)
    total = m * n
    for s in range(n_scalars):
        if var_plus[s] <= 0:
            continue
        rho = 1.0 - (within[s] - mean_acov[:, s]) / var_plus[s]
        rho[0] = 1.0
        n_pairs = n // 2
        pair_sums = rho[0:2 * n_pairs:2] + rho[1:2 * n_pairs:2]
        tau_sum = 0.0
        previous = np.inf
        for p in pair_sums:
            if p <= 0:
                break  # initial positive sequence ends at the first non-positive pair
            previous = min(previous, p)  # initial monotone sequence
            tau_sum += previous
        tau = -1.0 + 2.0 * tau_sum
        ess[s] = total / max(tau, 1.0 / np.log10(total))
    return _reshape(ess, shape)
