"""The methods spectrum as a user-facing comparison: one model, one data set, every method.

``compare_methods`` fits the same model (an unfitted vbfast estimator with its settings) by each
applicable inference method — from full inference by Gibbs sampling (accurate, slow) through
mean-field variational Bayes to EM / variational EM (fast) — and returns a table of wall time,
iterations (sweeps for Gibbs), held-out score and training bound, plus the per-iteration traces
for plotting. matplotlib is needed only for ``MethodComparison.plot``.
"""
import time
import warnings

import numpy as np
import scipy.sparse as sp

from .hmm import base as _hmm_base
from .mixture.gaussian import _METHODS as MIXTURE_METHODS
from .mixture.gaussian import BayesianGaussianMixture, GaussianMixture
from .topics.lda import _METHODS as LDA_METHODS
from .topics.lda import LatentDirichletAllocation

__all__ = ["compare_methods", "MethodComparison"]

# Every method of each family, from the most accurate (and slowest) to the fastest, in the
# library's vocabulary. A method appears in a comparison only if the estimator accepts it.
_SPECTRUM_ORDER = ("gibbs", "mean_field", "em", "variational_em")

# What ``lower_bound_`` is for each method, and so how the table normalises it.
_BOUND_KIND = {"em": "log-likelihood", "mean_field": "ELBO", "variational_em": "ELBO",
               "gibbs": None}


def _family(estimator):
    if isinstance(estimator, LatentDirichletAllocation):
        return "lda"
    if isinstance(estimator, _hmm_base.BaseHMM):
        return "hmm"
    if isinstance(estimator, GaussianMixture):
        return "mixture"
    raise TypeError("compare_methods takes a vbfast GaussianMixture, BayesianGaussianMixture, "
                    "LatentDirichletAllocation or hidden Markov model, got "
                    f"{type(estimator).__name__}")


def available_methods(estimator):
    """The inference methods ``estimator``'s class accepts, slowest (most accurate) first."""
    family = _family(estimator)
    if family == "lda":
        methods = LDA_METHODS
    elif family == "hmm":
        methods = type(estimator)._methods
    elif "method" not in estimator.get_params():  # BayesianGaussianMixture: mean field
        methods = (getattr(estimator, "method", "mean_field"),)
    elif isinstance(estimator, BayesianGaussianMixture):
        methods = tuple(m for m in MIXTURE_METHODS if m != "em")  # its priors imply a posterior
    else:
        methods = MIXTURE_METHODS
    return tuple(m for m in _SPECTRUM_ORDER if m in methods)


def _n_units(family, X):
    """Samples (mixtures) or tokens (LDA): what per-unit scores are divided by. X has been
    fitted or scored already, so it is valid (a list, an array or a sparse matrix)."""
    if family == "lda":
        return float(X.sum()) if sp.issparse(X) else float(np.sum(np.asarray(X, np.float64)))
    return float(np.shape(X)[0])


def _unusable(estimator, methods):
    """{method: why} for the methods that ``estimator``'s settings rule out: only EM starts
    from given initial parameters; Gibbs does not marginalise missing values."""
    out = {}
    missing = getattr(estimator, "missing", "error")
    if missing != "error" and "gibbs" in methods:
        out["gibbs"] = f"missing={missing!r} (the sampler does not marginalise missing values)"
    given = [name for name in ("weights_init", "means_init", "precisions_init")
             if getattr(estimator, name, None) is not None]
    if given:
        out.update({m: f"{', '.join(given)} set (only method='em' starts from given "
                       "parameters)" for m in methods if m != "em" and m not in out})
    return out


def _heldout_score(family, est, X, lengths=None):
    """Mean held-out log-likelihood per sample (mixtures), per token (LDA: -log perplexity,
    the ELBO per token) or per observation (HMMs: log p of the sequences / n_samples)."""
    if family == "lda":
        return -float(np.log(est.perplexity(X)))
    if family == "hmm":
        return float(est.score(X, lengths)) / _n_units(family, X)
    return float(est.score(X))


def _train_bound(family, method, est, X):
    """The fitted model's training bound per sample / token, where the method defines one."""
    kind = _BOUND_KIND.get(method)
    if kind is None or not hasattr(est, "lower_bound_"):
        return None
    if family == "mixture" and method == "em":
        return float(est.lower_bound_)  # already the mean log-likelihood per sample
    return float(est.lower_bound_) / _n_units(family, X)


class MethodComparison:
    """The result of ``compare_methods``: one row per method, plus traces.

    Attributes
    ----------
    rows : list of dict
        Per method: ``method``, ``time_s`` (wall time of ``fit``), ``n_iter`` (iterations, or
        sweeps for Gibbs), ``converged``, ``heldout`` (mean held-out log-likelihood per sample
        for mixtures, or per token for LDA, = -log perplexity; higher is better; on the
        training data when no test set was given), ``train_bound`` (the training bound per
        sample/token: log-likelihood for EM, ELBO for the variational methods, None for Gibbs,
        whose trace is the log joint, not a bound) and ``bound_kind``.
    traces : dict
        method -> (cumulative seconds (n_iter,), per-iteration trace (n_iter,)): the
        ``lower_bounds_`` of the fit (the log joint per sweep for Gibbs) against time.
    estimators : dict
        method -> the fitted estimator.
    heldout_on : {'test', 'train'}
        Which data the held-out column was scored on.
    """

    def __init__(self, rows, traces, estimators, heldout_on, unit):
        self.rows = rows
        self.traces = traces
        self.estimators = estimators
        self.heldout_on = heldout_on
        self.unit = unit

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, method):
        for row in self.rows:
            if row["method"] == method:
                return row
        raise KeyError(method)

    def to_dict(self):
        """Column name -> list of values, one per method (ready for ``pandas.DataFrame``)."""
        keys = ("method", "time_s", "n_iter", "converged", "heldout", "train_bound",
                "bound_kind")
        return {k: [row[k] for row in self.rows] for k in keys}

    def __str__(self):
        held = f"held-out/{self.unit}" if self.heldout_on == "test" else f"train/{self.unit}"
        header = (f"{'method':<15}{'time s':>10}{'iters':>7}{'converged':>11}{held:>16}"
                  f"{'bound/' + self.unit:>16}  bound")
        lines = [header, "-" * len(header)]
        for r in self.rows:
            tb = "—" if r["train_bound"] is None else f"{r['train_bound']:.5f}"
            lines.append(f"{r['method']:<15}{r['time_s']:>10.4f}{r['n_iter']:>7}"
                         f"{str(r['converged']):>11}{r['heldout']:>16.5f}{tb:>16}  "
                         f"{r['bound_kind'] or 'log joint (not a bound)'}")
        return "\n".join(lines)

    __repr__ = __str__

    def plot(self, axes=None):
        """Held-out score against wall time (left) and each method's trace against time
        (right). Needs matplotlib (``pip install matplotlib``); returns the figure."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:  # optional extra, never needed for fitting
            raise ImportError("MethodComparison.plot needs matplotlib: "
                              "pip install matplotlib") from exc
        if axes is None:
            fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        else:
            fig = axes[0].figure
        for r in self.rows:
            axes[0].scatter(r["time_s"], r["heldout"], label=r["method"])
            seconds, trace = self.traces[r["method"]]
            axes[1].plot(seconds, trace, marker=".", label=r["method"])
        axes[0].set_xscale("log")
        axes[0].set_xlabel("fit time (s)")
        axes[0].set_ylabel(f"held-out log-likelihood per {self.unit}")
        axes[1].set_xscale("log")
        axes[1].set_xlabel("time (s)")
        axes[1].set_ylabel("bound (ELBO) / log joint for Gibbs")
        for ax in axes:
            ax.legend()
        return fig


def compare_methods(estimator, X, X_test=None, methods=None, lengths=None,
                    lengths_test=None):
    """Fit ``estimator``'s model by each inference method and compare them.

    Parameters
    ----------
    estimator : GaussianMixture, BayesianGaussianMixture or LatentDirichletAllocation
        Unfitted; its parameters (``n_components``, ``random_state``, ``max_iter``, ...) are
        kept and only ``method`` changes from one fit to the next.
    X : array-like (n_samples, n_features), or document-term counts for LDA
        Training data.
    X_test : same kind as X, optional
        Held-out data for the score column; without it the column scores X itself.
    methods : str or sequence of str, optional
        Methods to compare (default: every method the estimator accepts, slowest first: 'gibbs',
        'mean_field', then 'em' for mixtures or 'variational_em' for LDA; those the
        estimator's settings rule out, such as every method but EM when ``means_init`` is set,
        are left out with a warning).
    lengths, lengths_test : array-like of int, optional
        Hidden Markov models only: the sequence lengths of X and X_test (None: one sequence).
        The held-out score and the bound are then per observation (sample).

    Returns
    -------
    MethodComparison
        Rows (method, time, iterations, held-out score per sample or token, training bound),
        traces for plotting, and the fitted estimators. ``print`` it for a table.
    """
    family = _family(estimator)
    if family != "hmm" and (lengths is not None or lengths_test is not None):
        raise ValueError("lengths / lengths_test apply to hidden Markov models only")
    allowed = available_methods(estimator)
    if methods is None:
        unusable = _unusable(estimator, allowed)
        for method, why in unusable.items():
            warnings.warn(f"compare_methods leaves out method={method!r}: {why}.",
                          UserWarning, stacklevel=2)
        methods = tuple(m for m in allowed if m not in unusable)
    else:
        methods = (methods,) if isinstance(methods, str) else tuple(methods)
        if not methods:
            raise ValueError("methods must name at least one method")
        unknown = [m for m in methods if m not in allowed]
        if unknown:
            raise ValueError(f"{type(estimator).__name__} does not support method(s) "
                             f"{unknown}; available: {list(allowed)}")
        unusable = _unusable(estimator, methods)
        if unusable:
            raise ValueError("compare_methods cannot fit "
                             + "; ".join(f"method={m!r}: {why}" for m, why in unusable.items()))
    params = estimator.get_params()
    rows, traces, fitted = [], {}, {}
    for method in methods:
        est = type(estimator)(**{**params, "method": method}) if "method" in params \
            else type(estimator)(**params)
        t0 = time.perf_counter()
        if family == "hmm":
            est.fit(X, lengths)
        else:
            est.fit(X)
        seconds = time.perf_counter() - t0
        if X_test is None:
            heldout = _heldout_score(family, est, X, lengths)
        else:
            heldout = _heldout_score(family, est, X_test, lengths_test)
        rows.append({
            "method": method,
            "time_s": seconds,
            "n_iter": int(est.n_iter_),
            "converged": bool(getattr(est, "converged_", False)),
            "heldout": heldout,
            "train_bound": _train_bound(family, method, est, X),
            "bound_kind": _BOUND_KIND.get(method),
        })
        trace = np.asarray(getattr(est, "lower_bounds_", []), dtype=np.float64)
        times = np.cumsum(np.asarray(getattr(est, "iteration_times_", []), dtype=np.float64))
        traces[method] = (times, trace)
        fitted[method] = est
    return MethodComparison(rows, traces, fitted, "train" if X_test is None else "test",
                            {"lda": "token", "hmm": "obs"}.get(family, "sample"))
