"""Stepwise (online) EM and stochastic variational inference for Gaussian mixtures, the
method objects behind ``partial_fit``.

Both keep running statistics s_t standing for ``total_samples`` rows: a batch's statistics
S_B (at the current theta or q(theta)) are scaled to the data size, c = total_samples / W_B
(W_B the batch's weight), and blended:

    s_t = (1 - rho_t) s_{t-1} + rho_t c S_B,    rho_t = (learning_offset + t)^-learning_decay,

the first step of a stream taking rho = 1 (s_1 = c S_B). Then theta (EM: the M-step) or q(theta)
(mean field: the closed-form update) is computed from s_t as a batch fit computes it from the
statistics of the whole data. That is stepwise EM (Cappe & Moulines 2009); for mean field, whose
natural parameters are affine in (N_k, sum r x, sum r x x^T), it is exactly stochastic
variational inference's step lambda_t = (1 - rho) lambda_{t-1} + rho lambda_hat(B) (Hoffman et
al. 2013), as LDA's online VB does for its topics.

The running statistics are kept per component as (N_k, S1_k = sum r (x - s0), C_k), C_k the
scatter about the component's own mean S1_k / N_k (a (D, D) matrix for 'full', its diagonal for
'diag', its trace for 'spherical'), in coordinates shifted by the stream's first batch mean s0;
'tied' keeps the Gram matrix sum w (x - s0)(x - s0)^T instead of scatters, which it blends
linearly. Blending two such sets is Chan et al.'s pairwise merge,

    C = C_a + C_b + N_a N_b / (N_a + N_b) (m_a - m_b)(m_a - m_b)^T,

exact for the raw moments it stands for, without the cancellation of raw second moments for a
component far from s0.
"""
import numpy as np

from ..emissions import gaussian as G
from .._core.protocol import Method, Statistics
from .._core.validation import check_scalar


def learning_rate(n_batch_iter, learning_offset, learning_decay):
    """rho_t = (learning_offset + t)^-learning_decay."""
    return float(np.power(learning_offset + n_batch_iter, -learning_decay))


class StreamFrame:
    """What the M-step and the q(theta) update read from "the data" of a stream: the fixed
    shift s0, the sizes, the covariance type, and for 'tied' the Gram matrix the statistics
    being turned into parameters stand for (``gram_now``, set by ``Stochastic``)."""

    def __init__(self, shift, n_components, covariance_type, total_samples):
        self.shift = np.ascontiguousarray(shift, dtype=np.float64)
        self.n_features = self.shift.shape[0]
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.covariance = G.COVARIANCES[covariance_type]
        self.weight_sum = float(total_samples)
        self.gram_now = None

    def gram(self):
        return self.gram_now


class Batch:
    """The data object of one ``partial_fit`` step: the batch as one shard, the pass in the
    stream's coordinates (shifted by s0). Its statistics carry the batch's weight W_B and, for
    'tied', its Gram matrix about s0 besides the pass's fields."""

    def __init__(self, gaussian_pass):
        self.gaussian = gaussian_pass  # a GaussianPass over the batch, shifted by s0

    def shards(self):
        return (None,)

    def run_pass(self, shard, inputs):
        stats = self.gaussian.run_pass(shard, inputs)
        fields = dict(stats.items(), weight=self.gaussian.weight_sum)
        if self.gaussian.covariance.uses_gram:
            fields["gram"] = self.gaussian.gram()
        return Statistics(**fields)


def _scatter_term(delta, covariance_type):
    """delta delta^T in the layout of the scatters: (K, D, D), (K, D) or (K,)."""
    if covariance_type == "full":
        return delta[:, :, None] * delta[:, None, :]
    if covariance_type == "diag":
        return delta ** 2
    return (delta ** 2).sum(axis=1)


def _per_component(values, covariance_type):
    """(K,) values broadcast against the scatters' layout."""
    return values[:, None, None] if covariance_type == "full" else (
        values[:, None] if covariance_type == "diag" else values)


def stream_statistics(stats, centres, covariance_type):
    """A pass's statistics (S2 centred at the pass's ``centres``, shifted (K, D)) as running
    statistics: N_k, S1_k and the scatter about S1_k / N_k (or the Gram matrix for 'tied'),
    with the bound terms and the weight.

    sum r (y - m)(y - m)^T = S2_c - a a^T / N, a = S1 - N c = sum r (y - c); a component
    without responsibility has no scatter. Rounding can leave a 'diag' / 'spherical' scatter
    (GEMM form about the shift) slightly below 0 for a component without spread: 0 then."""
    nk, s1 = stats["nk"], stats["s1"]
    fields = {"nk": nk, "s1": s1, "log_likelihood": stats["log_likelihood"],
              "entropy_term": stats["entropy_term"], "weight": stats["weight"]}
    if covariance_type == "tied":
        fields["gram"] = stats["gram"]
        return Statistics(**fields)
    a = s1 - nk[:, None] * centres
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(nk > 0.0, 1.0 / np.where(nk > 0.0, nk, 1.0), 0.0)
    scatter = stats["s2"] - _per_component(inv, covariance_type) * _scatter_term(
        a, covariance_type)
    if covariance_type != "full":
        scatter = np.maximum(scatter, 0.0)
    fields["scatter"] = scatter
    return Statistics(**fields)


def merge(a, b, covariance_type):
    """The running statistics of the union of what ``a`` and ``b`` stand for: every field
    added, the scatters merged pairwise (Chan et al.) about the merged means."""
    if covariance_type == "tied":  # every field additive
        return a + b
    fields = {k: v + b[k] for k, v in a.items() if k != "scatter"}
    na, nb = a["nk"], b["nk"]
    both = (na > 0.0) & (nb > 0.0)
    safe_a, safe_b = np.where(both, na, 1.0), np.where(both, nb, 1.0)
    delta = np.where(both[:, None], a["s1"] / safe_a[:, None] - b["s1"] / safe_b[:, None], 0.0)
    weight = np.where(both, safe_a * safe_b / (safe_a + safe_b), 0.0)
    fields["scatter"] = (a["scatter"] + b["scatter"] + _per_component(weight, covariance_type)
                         * _scatter_term(delta, covariance_type))
    return Statistics(**fields)


def kernel_form(running, covariance_type, n_features):
    """(statistics, centres) as a pass at those centres would have given them, for
    ``estimate_parameters`` and the q(theta) update: S2 is the scatter, centred at the
    components' means S1 / N (0, the shift, for a component without responsibility)."""
    nk, s1 = running["nk"], running["s1"]
    fields = {"nk": nk, "s1": s1, "log_likelihood": running["log_likelihood"],
              "entropy_term": running["entropy_term"]}
    if covariance_type == "tied":
        fields["s2"] = np.empty(0)
        return Statistics(**fields), np.zeros_like(s1)
    safe = np.where(nk > 0.0, nk, 1.0)
    centres = np.where((nk > 0.0)[:, None], s1 / safe[:, None], 0.0)
    fields["s2"] = running["scatter"]
    return Statistics(**fields), centres


def check_stream_parameters(est):
    """The parameters of ``partial_fit``'s stochastic steps (LDA's names and ranges)."""
    check_scalar(est.learning_offset, "learning_offset", "real", min_val=1.0)
    check_scalar(est.learning_decay, "learning_decay", "real", min_val=0.0, max_val=1.0)
    check_scalar(est.total_samples, "total_samples", "real", min_val=0.0, include_min=False)


def store_step(est, bound, elapsed, n_batch_iter, continuing):
    """A partial_fit step's trace on the estimator: ``lower_bounds_`` and
    ``iteration_times_`` gain the step (``continuing``: after the stream's earlier steps,
    else anew), ``lower_bound_``, ``n_iter_`` (the steps), ``converged_`` (False: a stream
    does not converge) and ``n_batch_iter_``."""
    bounds = est.lower_bounds_ if continuing else np.empty(0)
    times = est.iteration_times_ if continuing else np.empty(0)
    est.lower_bounds_ = np.append(bounds, bound)
    est.iteration_times_ = np.append(times, elapsed)
    est.lower_bound_ = float(bound)
    est.n_iter_ = int(est.lower_bounds_.shape[0])
    est.converged_ = False
    est.n_batch_iter_ = n_batch_iter


class _Stepwise(Method):
    """What both stepwise methods share: the inner batch method, the running statistics and
    the step count, the blend s_t = (1 - rho_t) s_{t-1} + rho_t S_B (``add``: how two
    statistics add), the bound of the last step, the inner method's attributes."""

    monotone = False
    warns_not_converged = False

    def __init__(self, inner, running, n_batch_iter, learning_offset, learning_decay,
                 mean_field):
        self.inner = inner
        self.running = running
        self.n_batch_iter = n_batch_iter
        self.learning_offset = learning_offset
        self.learning_decay = learning_decay
        self.mean_field = mean_field
        self.bound_kind = "ELBO" if mean_field else "log-likelihood"
        self._bound = None

    def blend(self, batch, add):
        """The running statistics after this step (the batch itself for a stream's first)."""
        if self.running is None:
            return batch
        rho = learning_rate(self.n_batch_iter, self.learning_offset, self.learning_decay)
        return add(self.running.scale(1.0 - rho), batch.scale(rho))

    def advance(self, running, bound):
        self.running = running
        self.n_batch_iter += 1
        self._bound = bound

    def bound(self):
        return self._bound

    def attributes(self):
        return self.inner.attributes()


class Stochastic(_Stepwise):
    """One stochastic step per shard around a batch method ``inner`` (``EM`` or
    ``MeanFieldFitState``, its ``data`` the stream's ``StreamFrame``): the pass at the inner
    method's theta or q(theta), the blend of the scaled statistics into the running ones
    (see the module docstring), then the inner method's M-step (``m_step``) or q(theta) update
    (``update_q``) from them.

    The bound of a step: for EM the batch's mean log-likelihood per sample at theta before
    the step (as EM's ``lower_bound_``); for mean field the ELBO of the batch's statistics
    scaled to ``total_samples``, at q(theta) after the step (as LDA's ``partial_fit``).
    Neither is monotone (each batch is other data)."""

    def __init__(self, inner, frame, running, n_batch_iter, *, learning_offset,
                 learning_decay, mean_field):
        super().__init__(inner, running, n_batch_iter, learning_offset, learning_decay,
                         mean_field)
        self.frame = frame
        self._centres = None

    def pass_inputs(self, shard):
        inputs = self.inner.kernel_inputs(self.frame.shift)
        self._centres = inputs[0]
        return inputs, {}

    def update(self, stats):
        frame, ctype = self.frame, self.frame.covariance_type
        weight = float(stats["weight"])
        scale = frame.weight_sum / weight
        batch = stream_statistics(stats, self._centres, ctype).scale(scale)
        running = self.blend(batch, lambda a, b: merge(a, b, ctype))
        kstats, centres = kernel_form(running, ctype, frame.n_features)
        frame.gram_now = running["gram"] if ctype == "tied" else None
        if self.mean_field:
            self.inner.update_q(kstats, centres)
            # the ELBO of the batch standing for total_samples rows, at the new q(theta)
            frame.gram_now = stats["gram"] * scale if ctype == "tied" else None
            bound = self.inner.elbo(stats.scale(scale), self._centres)
        else:
            self.inner.m_step(kstats, centres, overwrite_s2=False)
            bound = stats["log_likelihood"] / weight
        frame.gram_now = None
        self.advance(running, bound)


# ---------------------------------------------------------------------- discrete mixtures
class DiscreteBatch:
    """The data object of one discrete-mixture ``partial_fit`` step: the batch's
    ``DiscreteData`` as one shard; its statistics carry the batch's weight and the sum of
    its row constants (the multinomial coefficients) besides the pass's fields."""

    def __init__(self, discrete_data):
        self.discrete = discrete_data

    def shards(self):
        return (None,)

    def run_pass(self, shard, inputs):
        stats = self.discrete.run_pass(shard, inputs)
        return Statistics(**dict(stats.items()), weight=self.discrete.weight_sum,
                          row_const=self.discrete.row_const_sum)


class StochasticDiscrete(_Stepwise):
    """Stepwise EM / stochastic VI for the discrete mixtures around their ``EM`` /
    ``MeanField``: their statistics (N_k, the level counts S) are linear, so the running
    statistics are the plain blend s_t = (1 - rho_t) s_{t-1} + rho_t c S_B (``Statistics``'
    own ``scale`` and ``+``), then EM's M-step (``m_step``) or the q(theta) update (``set_q``)
    from them. Bounds as ``Stochastic``'s."""

    def __init__(self, inner, running, n_batch_iter, *, total_samples, learning_offset,
                 learning_decay, mean_field):
        super().__init__(inner, running, n_batch_iter, learning_offset, learning_decay,
                         mean_field)
        self.total_samples = float(total_samples)
        self.overflow_advice = inner.overflow_advice

    def pass_inputs(self, shard):
        return self.inner.pass_inputs(shard)

    def update(self, stats):
        weight = float(stats["weight"])
        batch = stats.scale(self.total_samples / weight)
        running = self.blend(batch, lambda a, b: a + b)
        if self.mean_field:
            self.inner.set_q(running)
            bound = self.inner.elbo(batch, batch["row_const"])
        else:
            self.inner.m_step(running)
            bound = stats["log_likelihood"] / weight
        self.advance(running, bound)
