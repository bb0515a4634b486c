"""The one loop that drives every method of every family.

An iteration passes over the data object's shards in order, each pass's statistics going to
the method's update; then the method gives the iteration's bound (the log-likelihood for EM,
the ELBO for mean field and variational EM, the log joint for Gibbs). Around that the loop
owns what all methods share: restarts (``n_runs``: EM's ``n_init``, a sampler's chains),
convergence on the bound, the bound-decrease guard, verbose progress, the traces (bound and
wall time per iteration, as arrays), the non-finite check, and for samplers the collection of
the kept draws (after ``burn_in``, every ``thin``-th sweep).

It returns results; the estimator stores them as fitted attributes once the whole fit has
succeeded (``all_or_nothing``), so an interrupted fit leaves the estimator as it was.
"""
import time
import warnings
from dataclasses import dataclass

import numpy as np

from ..exceptions import BoundDecreaseWarning, convergence_warning_class
from .config import get_config


@dataclass
class RunResult:
    """One run (an initialisation, or a sampler's chain).

    bound : float
        The bound after the last iteration.
    n_iter : int
    converged : bool
    bounds, times : ndarray of shape (n_iter,)
        The bound and the wall time of every iteration.
    attributes : dict
        The method's fitted attributes at the end of the run.
    draws : dict or None
        Samplers: every kept draw, each name stacked over draws (leading axis n_draws).
    kept : ndarray or None
        Samplers: the (0-based) iterations whose draws were kept.
    warns : bool
        The method's ``warns_not_converged``.
    """

    bound: float
    n_iter: int
    converged: bool
    bounds: np.ndarray
    times: np.ndarray
    attributes: dict
    draws: dict = None
    kept: np.ndarray = None
    warns: bool = True


@dataclass(frozen=True)
class Sampling:
    """How a sampler's draws are kept: after ``burn_in`` sweeps, every ``thin``-th one."""

    burn_in: int
    thin: int

    def keeps(self, sweep):
        """Whether the draw after 0-based ``sweep`` is kept."""
        return sweep >= self.burn_in and (sweep - self.burn_in + 1) % self.thin == 0


# The guard's relative tolerance unless the method says otherwise (``bound_rtol``).
BOUND_RTOL = 1e-10


def guard(prev, bound, n_iter, stacklevel=4, rtol=BOUND_RTOL):
    """Warn (or raise, per ``vbfast.set_config(bound_decrease=...)``) on a bound decrease
    larger than ``rtol`` relative: for exact updates that is a bug, not rounding.

    ``rtol`` is the precision the method computes its bound in: 1e-10 for float64 work (the
    rounding of a float64 sum over the rows stays far below it); a method whose passes run in
    float32 exposes a looser ``bound_rtol`` (the Gaussian mixtures' ``FLOAT32_BOUND_RTOL``,
    whose docstring derives it)."""
    decrease = prev - bound
    if decrease <= rtol * max(abs(prev), abs(bound), 1e-300):
        return
    action = get_config()["bound_decrease"]
    if action == "ignore":
        return
    msg = (f"The lower bound decreased at iteration {n_iter}: from {prev!r} to {bound!r} "
           f"(by {decrease:.3e}, relative {decrease / max(abs(prev), 1e-300):.3e}).")
    if action == "raise":
        raise FloatingPointError(msg)
    warnings.warn(msg, BoundDecreaseWarning, stacklevel=stacklevel)


def iterate(method, data):
    """One iteration: every shard's pass and update, in shard order; returns the bound."""
    method.start_iteration()
    for shard in data.shards():
        method.update(data.run_pass(shard, method.pass_inputs(shard)))
    return float(method.bound())


def _run(method, data, run, *, max_iter, tol, verbose, verbose_interval, sampling,
         start_bound=-np.inf):
    sampler = sampling is not None
    unit, label = ("sweep", "Chain") if sampler else ("iteration", "Initialization")
    t0 = time.perf_counter()
    if verbose and not sampler:
        print(f"{label} {run}")
    bounds = np.empty(max_iter)
    times = np.empty(max_iter)
    draws, kept = [], []
    bound = start_bound
    converged = False
    n_iter = 0
    t_iter = time.perf_counter()
    for n_iter in range(1, max_iter + 1):
        prev = bound
        bound = iterate(method, data)
        now = time.perf_counter()
        bounds[n_iter - 1] = bound
        times[n_iter - 1] = now - t_iter
        t_iter = now
        if not np.isfinite(bound):
            what = "log joint" if method.bound_kind == "log joint" else "lower bound"
            where = f" of chain {run}" if sampler else ""
            raise ValueError(f"The {what} became {bound} at {unit} {n_iter}{where}: the data "
                             f"or the parameters overflow. {method.overflow_advice}")
        if sampler:
            if sampling.keeps(n_iter - 1):
                draws.append(method.draw())
                kept.append(n_iter - 1)
            if verbose >= 2 and n_iter % verbose_interval == 0:
                print(f"  Chain {run} sweep {n_iter}\t log joint {bound:.5f}")
            continue
        # Not against start_bound: a warm fit may be on other data, or from parameters
        # rounded to float32, where a lower first bound is no bug. Nor across a state the
        # method changed outside its update (``bound_reset``: e.g. a re-seeded component).
        reset = method.bound_reset
        if n_iter > 1 and method.monotone and not reset:
            guard(prev, bound, n_iter, rtol=getattr(method, "bound_rtol", BOUND_RTOL))
        if verbose >= 2 and n_iter % verbose_interval == 0:
            print(f"  Iteration {n_iter}\t time lapse {now - t0:.5f}s\t "
                  f"bound change {bound - prev:.5g}")
        elif verbose == 1 and n_iter % verbose_interval == 0:
            print(f"  Iteration {n_iter}")
        if not reset and method.converged(n_iter, prev, bound, tol):
            converged = True
            break
    if verbose:
        if sampler:
            print(f"Chain {run} done: {n_iter} sweeps, last log joint {bound:.5f}")
        else:
            status = "converged" if converged else "did not converge"
            print(f"{label} {status}. time lapse {time.perf_counter() - t0:.5f}s\t "
                  f"lower bound {bound:.5f}")
    stacked = None
    if sampler and draws:
        stacked = {name: np.stack([d[name] for d in draws]) for name in draws[0]}
    return RunResult(bound=bound, n_iter=n_iter, converged=converged,
                     bounds=bounds[:n_iter].copy(), times=times[:n_iter].copy(),
                     attributes=method.attributes(), draws=stacked,
                     kept=np.asarray(kept, dtype=np.intp) if sampler else None,
                     warns=method.warns_not_converged)


def run_fits(new_method, data, *, n_runs=1, max_iter, tol=0.0, verbose=0,
             verbose_interval=10, sampling=None, start_bound=-np.inf):
    """Run ``n_runs`` fits of the methods made by ``new_method(run)`` on ``data``.

    Optimisation (``sampling=None``): each run stops when ``method.converged`` says so or
    after ``max_iter`` iterations; returns the run with the highest final bound (the first
    of equals), warning if it did not converge. Sampling (a ``Sampling``): every run is a
    chain of exactly ``max_iter`` sweeps, the guard does not apply (the log joint is not a
    bound), and the list of every chain's result is returned.

    ``start_bound`` is the bound before the first iteration, for the first convergence check
    (not the guard): -inf for a fresh start; a warm start passes the previous fit's
    ``lower_bound_``, so that a fit continuing a converged one stops (and reports
    ``converged_``) after one iteration, as scikit-learn's ``warm_start`` does.
    """
    results = []
    best = None
    for run in range(n_runs):
        result = _run(new_method(run), data, run, max_iter=max_iter, tol=tol, verbose=verbose,
                      verbose_interval=verbose_interval, sampling=sampling,
                      start_bound=float(start_bound))
        if sampling is not None:
            results.append(result)
        elif best is None or result.bound > best.bound:
            best = result
    if sampling is not None:
        return results
    if not best.converged and max_iter > 0 and best.warns:
        # scikit-learn's wording first: users' warning filters match a message's start
        warnings.warn(
            "Best performing initialization did not converge. Try different init "
            "parameters, or increase max_iter, tol, or check for degenerate data. "
            f"(Best of {n_runs} initialisation(s), max_iter={max_iter}.)",
            convergence_warning_class(), stacklevel=4)
    return best


def store_trace(estimator, result):
    """The loop's fitted attributes of a run: ``converged_``, ``n_iter_``, ``lower_bound_``,
    ``lower_bounds_``, ``iteration_times_``."""
    estimator.converged_ = bool(result.converged)
    estimator.n_iter_ = int(result.n_iter)
    estimator.lower_bound_ = float(result.bound)
    estimator.lower_bounds_ = result.bounds
    estimator.iteration_times_ = result.times
