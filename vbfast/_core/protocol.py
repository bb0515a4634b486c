"""The fitting protocol every family and method implements.

A fit alternates a **pass** over the data (the E-step, or a sampling sweep) with an **update**
of the global quantities (the M-step, the update of q(theta), or a draw of theta):

- A family's data object (``GaussianData``, LDA's ``DocumentData``, ...) has
  ``shards()`` (the pieces one iteration passes over, in a fixed order: the whole data for
  batch methods, mini-batches for stochastic ones) and ``run_pass(shard, inputs)`` (the
  compiled kernel) returning a ``Statistics``.
- A method object (EM, mean field, variational EM, stochastic VI, Gibbs) holds its current
  theta or q(theta). ``pass_inputs(shard)`` derives what the pass needs from it,
  ``update(stats)`` turns the shard's statistics into the new theta or q(theta), ``bound()``
  gives the iteration's bound once its shards are done, ``attributes()`` the fitted
  attributes; a sampler's ``draw()`` gives the current draw of theta.

``vbfast._core.loop.run_fits`` drives every method of every family through that interface.
"""
import numpy as np


class Statistics:
    """Additive, scalable, picklable sufficient statistics of a shard (named arrays and floats).

    ``a + b`` adds field by field (statistics of two shards, merged in shard order);
    ``scale(rho)`` multiplies every field (a mini-batch standing for the whole data); the
    per-item bound terms of the pass travel as fields too. Fields are read as attributes or
    items (``stats.nk`` or ``stats["nk"]``)."""

    __slots__ = ("fields",)

    def __init__(self, **fields):
        self.fields = fields

    def __getitem__(self, name):
        return self.fields[name]

    def __getattr__(self, name):
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(name) from None

    def __contains__(self, name):
        return name in self.fields

    def __iter__(self):
        return iter(self.fields)

    def __len__(self):
        return len(self.fields)

    def keys(self):
        return self.fields.keys()

    def items(self):
        return self.fields.items()

    def __add__(self, other):
        if self.fields.keys() != other.fields.keys():
            raise ValueError("cannot add statistics with different fields: "
                             f"{sorted(self.fields)} and {sorted(other.fields)}")
        return Statistics(**{k: v + other.fields[k] for k, v in self.fields.items()})

    def scale(self, rho):
        return Statistics(**{k: v * rho for k, v in self.fields.items()})

    def __getstate__(self):
        return self.fields

    def __setstate__(self, fields):
        self.fields = fields

    def __repr__(self):
        shapes = {k: np.shape(v) for k, v in self.fields.items()}
        return f"Statistics({shapes})"


class Method:
    """Base of the method objects: the defaults of the optional parts of the protocol.

    Attributes a method sets: ``monotone`` (the bound provably never decreases, which arms the
    bound-decrease guard), ``bound_kind`` ('log-likelihood', 'ELBO' or 'log joint': what
    ``lower_bounds_`` holds), ``bound_reset`` (per iteration: the bound follows a change of
    state outside the update, so the loop neither guards nor checks convergence on it)."""

    monotone = True
    bound_kind = "log-likelihood"
    # Set by the method (read by the loop after ``bound()``): this iteration's bound is not to
    # be compared with the previous one, because the method changed its state outside its
    # update (a re-seeded degenerate component): no bound-decrease guard, and no convergence
    # declared on it.
    bound_reset = False
    # The message of the error raised when the bound is not finite (the loop adds where).
    overflow_advice = "Scale the input data or increase reg_covar."
    # Whether a fit that ends at max_iter without converging warns (ConvergenceWarning).
    warns_not_converged = True

    def start_iteration(self):
        """Called before the first shard of each iteration."""

    def pass_inputs(self, shard):
        """What ``run_pass`` needs from theta or q(theta) for this shard."""
        raise NotImplementedError

    def update(self, stats):
        """The new theta or q(theta) from a shard's statistics."""
        raise NotImplementedError

    def bound(self):
        """The bound of the iteration that just ended."""
        raise NotImplementedError

    def converged(self, n_iter, prev_bound, bound, tol):
        """Whether to stop after iteration ``n_iter`` (default: the bound moved less than
        ``tol``)."""
        return abs(bound - prev_bound) < tol

    def attributes(self):
        """The fitted attributes at the current theta or q(theta) (name -> value), copied."""
        raise NotImplementedError

    def draw(self):
        """Samplers: the current draw of theta (name -> array), copied."""
        raise NotImplementedError
