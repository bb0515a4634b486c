"""What every sampler shares: its options, chain seeds, label alignment and the verdict of
the diagnostics (split-R-hat and ESS themselves are in ``vbfast._core.mcmc``); and NumPy's
legacy draws made faster, bit for bit (``legacy_gamma``)."""
import warnings

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from ..exceptions import convergence_warning_class
from . import _legacy_random
from .validation import check_scalar

# A sampler's fit is converged_ when every split-R-hat it reports is below this.
RHAT_THRESHOLD = 1.05

# legacy_gamma draws in C from this many draws on: below, reading and writing the state
# (RandomState.get_state / set_state convert the 624 key words in a Python loop, ~0.1-0.2
# ms each way) costs more than C saves (~20-30 ns a draw; break-even ~10,000 draws).
LEGACY_GAMMA_MIN_DRAWS = 16384


def legacy_gamma(random_state, shape, scale, size, min_draws=LEGACY_GAMMA_MIN_DRAWS):
    """``random_state.gamma(shape, scale, size)``: the same numbers, bit for bit, and the same
    state of ``random_state`` after (its MT19937 words and its cached Gaussian).

    X ~ scale Gamma(shape), density x^(shape-1) e^(-x / scale) / (Gamma(shape) scale^shape),
    by NumPy's legacy algorithms (Marsaglia-Tsang for shape > 1, polar Gaussians). For a
    RandomState on MT19937 (every ``check_random_state`` result but one wrapping another bit
    generator), scalar ``shape`` and ``scale`` and a ``size`` of at least
    ``LEGACY_GAMMA_MIN_DRAWS`` draws, the draws are one C loop (``_legacy_random.gamma_fill``,
    ~1.5-2x faster) on the state read by ``get_state`` and written back by ``set_state``;
    otherwise NumPy's own call.

    Parameters
    ----------
    random_state : numpy.random.RandomState
    shape, scale : float, not negative (ValueError "shape < 0" / "scale < 0", as NumPy)
    size : int or tuple of ints
    min_draws : int
        Fewer draws than this are NumPy's call (the state's round trip would cost more).

    Returns
    -------
    ndarray of float64, shape ``size``
    """
    try:
        n_draws = float(np.prod(size, dtype=np.float64))
    except (TypeError, ValueError):  # not a size: NumPy's call says so
        n_draws = -1.0
    if (not isinstance(random_state, np.random.RandomState) or size is None
            or np.ndim(shape) != 0 or np.ndim(scale) != 0 or n_draws < min_draws):
        return random_state.gamma(shape, scale, size)
    state = random_state.get_state(legacy=False)
    if state["bit_generator"] != "MT19937":
        return random_state.gamma(shape, scale, size)
    shape, scale = float(shape), float(scale)
    for value, name in ((shape, "shape"), (scale, "scale")):
        if not np.isnan(value) and np.signbit(value):
            raise ValueError(f"{name} < 0")
    out = np.empty(size, dtype=np.float64)
    key = np.array(state["state"]["key"], dtype=np.uint32)
    pos, has_gauss, gauss = _legacy_random.gamma_fill(
        key, int(state["state"]["pos"]), bool(state["has_gauss"]), float(state["gauss"]),
        shape, scale, out.reshape(-1))
    random_state.set_state({"bit_generator": "MT19937", "state": {"key": key, "pos": pos},
                            "has_gauss": int(has_gauss), "gauss": gauss})
    return out


def check_sampler_parameters(est):
    """Validate a sampler's options ``n_draws`` (kept per chain), ``burn_in``, ``thin``,
    ``n_chains`` (ValueError naming the parameter); returns them as ints."""
    check_scalar(est.n_draws, "n_draws", "int", min_val=1)
    check_scalar(est.burn_in, "burn_in", "int", min_val=0)
    check_scalar(est.thin, "thin", "int", min_val=1)
    check_scalar(est.n_chains, "n_chains", "int", min_val=1)
    return int(est.n_draws), int(est.burn_in), int(est.thin), int(est.n_chains)


def n_sweeps(n_draws, burn_in, thin):
    """Sweeps per chain: the burn-in, then ``thin`` sweeps per kept draw."""
    return burn_in + n_draws * thin


def matching(reference, items, metric="sqeuclidean"):
    """The permutation ``perm`` of ``items``' rows that best matches ``reference``'s rows
    (Hungarian algorithm on the ``metric`` distances): ``items[perm]`` lines up with
    ``reference``. Both are (K, d)."""
    _, perm = linear_sum_assignment(cdist(reference, items, metric))
    return perm


def match_draws(draws):
    """Permutations lining up every draw's items with a reference: ``draws`` (C, S, K, d)
    (chains, draws, items, features) -> ``perms`` (C, S, K) with ``draws[c, s, perms[c, s]]``
    matched (``matching``, squared distances). The reference is the last draw of chain 0,
    then the mean of the matched draws: two rounds."""
    C, S, K = draws.shape[:3]
    reference = draws[0, -1]
    for _ in range(2):
        perms = np.empty((C, S, K), dtype=np.intp)
        for c in range(C):
            for s in range(S):
                perms[c, s] = matching(reference, draws[c, s])
        matched = np.take_along_axis(draws, perms[..., None], axis=2)
        reference = matched.reshape(-1, K, draws.shape[-1]).mean(axis=0)
    return perms


def warn_if_not_converged(max_rhat, what, advice="Increase burn_in or n_draws."):
    """The sampler's ConvergenceWarning: too few draws for a diagnostic (``max_rhat`` NaN), or
    a split-R-hat of ``what`` at or above ``RHAT_THRESHOLD``. Returns ``converged_``."""
    category = convergence_warning_class()
    if np.isnan(max_rhat):
        warnings.warn("Fewer than 4 draws kept per chain: no convergence diagnostics "
                      "(converged_ is False). Increase n_draws.", category, stacklevel=3)
        return False
    if max_rhat >= RHAT_THRESHOLD:
        warnings.warn(
            f"The Gibbs chains may not have converged: the largest split-R-hat of {what} is "
            f"{max_rhat:.3f} (threshold {RHAT_THRESHOLD}). {advice}", category, stacklevel=3)
        return False
    return True
