"""Degenerate components of a Gaussian mixture: which they are, and re-seeding them by a split.

A component is degenerate when

- it holds less than one point: N_k below the mean sample weight (1 without weights). It
  wastes its capacity: no data, or a spike on a single point whose covariance is ``reg_covar``
  alone. EM only: under the Bayesian methods a component without data is part of the answer
  (the Dirichlet(-process) prior switched it off, and its q(theta) or its draw is its prior);
- or its covariance is not positive-definite (the Cholesky factor fails): EM's estimate plus
  ``reg_covar``, the scale of mean field's q(Lambda_k), or the scale Psi_k of the Gibbs
  conditional of Lambda_k (scikit-learn's "ill-defined empirical covariance").

``on_degenerate='reseed'`` replaces each such component k (in index order) by half of a
*donor* j, split in two along its principal axis (v, lambda: the largest eigenpair of its
covariance less ``reg_covar``; for 'diag' its widest coordinate; for 'spherical' the
coordinate along which the component means spread most)::

    m_k, m_j = m_j +- sqrt(2/pi) sqrt(lambda) v,   C_k = C_j = C_j - (2/pi) lambda v v^T,
    N_k = N_j = N_j / 2

('diag': that variance times 1 - 2/pi; 'spherical': the variance times 1 - 2/(pi D), so the
trace is kept; 'tied': the shared covariance unchanged). These are the moments of the two
halves of N(m_j, C_j) cut through its mean across v, so the pair keeps the donor's weight,
mean and covariance. The split acts on the moments (N_k, mean, covariance) from which each
method computes its parameters, so every method re-seeds the same way: EM's estimates, mean
field's statistics before the q(theta) update, the Gibbs conditional's data moments.

The donor is the component with the largest excess contribution to the bound's loss,
N_j (H_j - H), H_j = 1/2 log det C_j (the per-point cost -E log N(x | m_j, C_j) up to a
constant) and H its N-weighted mean over the candidate donors: many points in a wide
component, the place where a second component gains most (the spikes of repeated points,
which are no candidates, do not enter the mean). It is scale-free (a change of units moves
every H_j alike), needs no pass over the data and depends on the parameters only, so the
re-seed is deterministic and independent of ``n_threads``. ('tied':
the H_j are equal and the donor is the heaviest component.) Re-seeding at the worst-explained
point instead would need a pass, and puts the new component on an outlier, where it collapses
into a single-point spike again. Donors must hold at least two points and spread: their
largest variance above ``reg_covar`` must exceed ``MIN_SPREAD`` times the mixture's variance
per dimension (a component on repeated copies of one point cannot be split).

Where no donor exists (e.g. fewer distinct points than components) re-seeding cannot help: a
component without data is kept as it is, and a covariance that is not positive-definite
raises today's ValueError. At most ``max_reseeds`` (2 K) components are re-seeded per run, so
that a fit cannot cycle; after that the run behaves as with ``on_degenerate='raise'``.
"""
import warnings

import numpy as np
from scipy import linalg

from . import gaussian as G
from ..exceptions import DegenerateComponentWarning

ON_DEGENERATE = ("reseed", "raise")

#: a donor's largest variance above reg_covar must exceed this times the mixture's variance
#: per dimension (a component on copies of one point has a spread of rounding, ~1e-16)
MIN_SPREAD = 1e-10

_HALF_OFFSET = np.sqrt(2.0 / np.pi)  # mean of the half-normal: |N(0, 1)|


class Reseeding:
    """How one fit treats degenerate components: ``on_degenerate``, one point's weight, the
    cap per run, and the count over every run (for the fit's one warning). ``run()`` gives
    each run (an initialisation, or a chain) its own ``RunReseeds``."""

    def __init__(self, on_degenerate, data):
        self.on_degenerate = on_degenerate
        self.one_point = data.weight_sum / data.n_samples
        self.max_reseeds = 2 * data.n_components
        self.total = 0

    def run(self):
        return RunReseeds(self)

    def warn(self, kept, stacklevel=5):
        """The fit's one warning, when any of its runs re-seeded; ``kept`` is the
        ``n_reseeds_`` stored (the kept run's, or the sum over the chains)."""
        if self.total:
            warnings.warn(
                f"{self.total} degenerate mixture component(s) (less than one point's weight, "
                "or a covariance not positive-definite) were re-seeded by splitting another "
                f"component (n_reseeds_ = {kept} in the fit kept). on_degenerate='raise' "
                "keeps scikit-learn's behaviour.", DegenerateComponentWarning,
                stacklevel=stacklevel)


class RunReseeds:
    """The re-seeding of one run: its count and the methods' hook ``settle``."""

    def __init__(self, fit):
        self.fit = fit
        self.n_reseeds = 0

    def settle(self, nk, means, cov, covariance_type, reg_covar, factor, scale, empty=False,
               summed=False):
        """The method's factors of moments whose degenerate components are re-seeded first.

        nk (K,), means (K, D), cov (the type's layout): the moments the method computes its
        parameters from, changed in place by a re-seed (``summed``: cov holds N_k times the
        covariance, N_k D times the variance for 'spherical'). ``factor()`` computes the
        method's factors from them, raising ValueError on a covariance that is not
        positive-definite; ``scale()`` is then the matrix it factored (for the failing
        mask). ``empty`` also re-seeds the components below one point (EM). Returns
        ``factor()``'s result and the number re-seeded. With ``on_degenerate='raise'``, or
        once the run has re-seeded ``max_reseeds`` components, this is ``factor()``."""
        fit = self.fit
        left = fit.max_reseeds - self.n_reseeds
        if fit.on_degenerate != "reseed" or left <= 0:
            return factor(), 0
        targets = (np.asarray(nk) < fit.one_point) if empty else np.zeros(len(nk), bool)
        if not targets.any():
            try:
                return factor(), 0
            except ValueError:
                pass
        failing = failing_components(scale(), covariance_type)
        if covariance_type == "tied" and failing.any():
            raise ValueError(G.ILL_DEFINED)  # one shared covariance: no component to re-seed
        targets |= failing
        done = split_into(targets, nk, means, cov, covariance_type, reg_covar, fit.one_point,
                          left, summed)
        n = int(done.sum())
        self.n_reseeds += n
        fit.total += n
        if np.any(failing & ~done):
            raise ValueError(G.ILL_DEFINED)  # re-seeding cannot help
        return factor(), n


def settle(reseeds, nk, means, cov, covariance_type, reg_covar, factor, scale, empty=False,
           summed=False):
    """``reseeds.settle(...)``, or ``(factor(), 0)`` without a ``RunReseeds`` (a method built
    outside an estimator behaves as ``on_degenerate='raise'``)."""
    if reseeds is None:
        return factor(), 0
    return reseeds.settle(nk, means, cov, covariance_type, reg_covar, factor, scale, empty,
                          summed)


def failing_components(covariances, covariance_type):
    """(K,) bool: the components whose covariance (or Wishart scale) in the type's layout is
    not positive-definite by the test ``gaussian.precision_cholesky`` applies; 'tied': one
    entry (the shared matrix)."""
    cov = np.asarray(covariances, dtype=np.float64)
    if covariance_type in ("diag", "spherical"):
        bad = ~(cov > 0.0) | ~np.isfinite(cov)
        return bad if covariance_type == "spherical" else bad.any(axis=1)
    stack = cov[None] if covariance_type == "tied" else cov
    out = np.zeros(len(stack), dtype=bool)
    for k, c in enumerate(stack):
        try:
            G.precision_cholesky(c[None], "full")
        except ValueError:
            out[k] = True
    return out


def _per_point(cov, nk, covariance_type, D, summed):
    """The covariances (type layout) of moments whose cov may be sums (``summed``)."""
    if not summed or covariance_type == "tied":
        return np.asarray(cov, dtype=np.float64)
    n = np.where(nk > 0, nk, 1.0) * (D if covariance_type == "spherical" else 1.0)
    return np.asarray(cov, dtype=np.float64) / n.reshape((-1,) + (1,) * (np.ndim(cov) - 1))


def _eigen(c, covariance_type, axis):
    """(largest variance, unit axis) of one component's covariance ('tied': the shared one);
    'spherical' splits along the coordinate ``axis``."""
    D = len(axis) if np.ndim(axis) else None
    if covariance_type in ("full", "tied"):
        w, V = linalg.eigh(c, check_finite=False)
        v = V[:, -1]
        if v[np.argmax(np.abs(v))] < 0:  # a fixed sign: eigh's is arbitrary
            v = -v
        return float(w[-1]), v
    v = np.zeros(D)
    if covariance_type == "diag":
        d = int(np.argmax(c))
        v[d] = 1.0
        return float(c[d]), v
    v[int(np.argmax(axis))] = 1.0
    return float(c), v


def _log_volume(c, covariance_type, D, floor):
    """1/2 log det of one covariance, eigenvalues floored at ``floor`` (a singular scatter of
    mean field's moments, whose q(Lambda) is still proper, stays finite)."""
    if covariance_type in ("full", "tied"):
        w = linalg.eigvalsh(c, check_finite=False)
        return 0.5 * float(np.log(np.maximum(w, floor)).sum())
    if covariance_type == "diag":
        return 0.5 * float(np.log(np.maximum(c, floor)).sum())
    return 0.5 * D * float(np.log(max(float(c), floor)))


def split_into(targets, nk, means, cov, covariance_type, reg_covar, one_point, limit,
               summed=False):
    """Re-seed the ``targets`` (K,) bool, in index order, each as the second half of a donor
    split along its principal axis (see the module docstring); nk, means and cov are changed
    in place. Returns the (K,) bool of the targets re-seeded (at most ``limit``): the others
    had no donor."""
    ctype = covariance_type
    nk_arr = np.asarray(nk, dtype=np.float64)
    K, D = means.shape
    C = np.array(_per_point(cov, nk_arr, ctype, D, summed))  # a copy, written back at the end
    degenerate = np.array(targets, dtype=bool)
    done = np.zeros(K, dtype=bool)
    changed = np.zeros(K, dtype=bool)
    # the mixture's variance per dimension from the moments of the sound components (the
    # scale the donors' spread is measured against)
    sound = ~degenerate & (nk_arr > 0)
    if not sound.any():
        return done
    w = nk_arr[sound] / nk_arr[sound].sum()
    centre = w @ means[sound]
    between = w @ (means[sound] - centre) ** 2  # (D,)
    if ctype == "tied":
        within = np.full(int(sound.sum()), max(np.trace(C) - D * reg_covar, 0.0))
    elif ctype == "full":
        within = np.maximum(np.trace(C[sound], axis1=1, axis2=2) - D * reg_covar, 0.0)
    elif ctype == "diag":
        within = np.maximum(C[sound].sum(axis=1) - D * reg_covar, 0.0)
    else:
        within = np.maximum(D * (C[sound] - reg_covar), 0.0)
    scale = (float(w @ within) + float(between.sum())) / D
    min_spread = MIN_SPREAD * scale
    if not min_spread > 0.0:
        return done
    floor = min_spread + reg_covar
    for k in np.flatnonzero(degenerate):
        if done.sum() >= limit:
            break
        # donors: sound, at least two points, and a spread to split
        best, best_score = -1, -np.inf
        cands = [j for j in range(K) if not degenerate[j] and nk_arr[j] >= 2.0 * one_point]
        if not cands:
            break
        axes = {j: _eigen(C if ctype == "tied" else C[j], ctype, between) for j in cands}
        cands = [j for j in cands if axes[j][0] - reg_covar > min_spread]
        if not cands:
            break
        if ctype == "tied":
            scores = {j: nk_arr[j] for j in cands}
        else:
            h = {j: _log_volume(C[j], ctype, D, floor) for j in cands}
            h_mean = sum(nk_arr[j] * h[j] for j in cands) / sum(nk_arr[j] for j in cands)
            scores = {j: nk_arr[j] * (h[j] - h_mean) for j in cands}
        for j in cands:  # the first of equal scores
            if scores[j] > best_score:
                best, best_score = j, scores[j]
        j = best
        lam, v = axes[j]
        lam -= reg_covar
        offset = _HALF_OFFSET * np.sqrt(lam) * v
        half = 0.5 * nk_arr[j]
        means[k] = means[j] + offset
        means[j] = means[j] - offset
        if ctype == "full":
            cj = C[j] - (2.0 / np.pi) * lam * np.outer(v, v)
            cj = 0.5 * (cj + cj.T)
        elif ctype == "diag":
            cj = C[j] - (2.0 / np.pi) * lam * v
        elif ctype == "spherical":
            cj = C[j] - (2.0 / (np.pi * D)) * lam
        if ctype != "tied":
            C[k] = C[j] = cj
        nk_arr[k] = nk_arr[j] = half
        degenerate[k] = False
        done[k] = changed[k] = changed[j] = True
    if done.any():
        nk[:] = nk_arr
        if ctype != "tied":
            mult = np.ones(K)
            if summed:
                mult = nk_arr * (D if ctype == "spherical" else 1.0)
            for j in np.flatnonzero(changed):
                cov[j] = C[j] * mult[j]
    return done
