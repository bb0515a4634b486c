"""What every sampler shares: its options, chain seeds, label alignment and the verdict of
the diagnostics (split-R-hat and ESS themselves are in ``vbfast._core.mcmc``)."""
import warnings

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from ..exceptions import convergence_warning_class
from .validation import check_scalar

# A sampler's fit is converged_ when every split-R-hat it reports is below this.
RHAT_THRESHOLD = 1.05


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
