"""Blocked Gibbs sampling for the HMMs: z | theta by forward-filtering backward-sampling
(``vbfast.hmm._ffbs``, in C, every sequence's path drawn jointly), then theta | z from its
conjugate posterior (``vbfast.hmm._conjugate``: the priors of mean field, ``sticky``
included).

One sweep is one iteration of the loop: the pass draws the paths at the current theta
(sequence s at sweep t reads the counter-based stream key(seed, t, s): the draws do not depend
on the grouping or the thread count) and returns their counts and emission statistics; the
update draws pi ~ Dir(a_pi + n_start), A_i ~ Dir(a_A[i] + kappa e_i + n_i.), the emissions
from p(theta_emission | z, X). The trace (``lower_bounds_``) is the complete-data
log-likelihood log p(X, z | theta) of each sweep's draw of z at the theta it was drawn with.

Chains run one after another through ``run_fits`` (``n_runs=n_chains``,
``sampling=Sampling(burn_in, thin)``); the kept draws are relabelled across chains and draws
(Hungarian matching of the emission parameters to a reference) before the posterior means
and the diagnostics (split-R-hat and ESS of the log-likelihood trace and of the relabelled
emission parameters) are taken.
"""
import numpy as np

from .._core.loop import Sampling, run_fits
from .._core.mcmc import effective_sample_size, split_rhat
from .._core.protocol import Method, Statistics
from .._core.sampling import check_sampler_parameters, match_draws, n_sweeps
from . import _ffbs
from ._conjugate import dirichlet_draw
from ._mean_field import TransitionPrior
from ._sequences import SequenceData


class GibbsData(SequenceData):
    """The data object of the sampler: X, its sequences, the emission's conjugate unit."""

    def __init__(self, X, sequences, conj, model):
        super().__init__(X, sequences)
        self.conj = conj
        self.model = model

    def run_pass(self, shard, inputs):
        """Draw every path (FFBS) at theta = ``inputs['params']``: Statistics with log_joint
        (log p(X, z | theta)), log_likelihood (log p(X | theta)), start (K,), trans (K, K)
        counts and the emission statistics of the drawn states."""
        params = inputs["params"]
        seqs = shard
        logprob = self.conj.point_log_density(self.X, params)
        K = logprob.shape[1]
        G = seqs.n_groups
        states = np.empty(seqs.n_samples, dtype=np.int32)
        seq_ll = np.full(seqs.n_sequences, np.nan)
        trans_slots = np.empty((G, K * K))
        start_slots = np.empty((G, K))
        _ffbs.ffbs(np.ascontiguousarray(logprob), np.ascontiguousarray(params["startprob"]),
                   np.ascontiguousarray(params["transmat"]), seqs.offsets, seqs.group_bounds,
                   inputs["seed"], inputs["sweep"], states, seq_ll, trans_slots, start_slots,
                   seqs.n_threads)
        if np.isnan(seq_ll).any():
            raise MemoryError("the FFBS pass could not allocate its lattices")
        trans = trans_slots.sum(axis=0).reshape(K, K)
        start = start_slots.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_joint = (float(np.take_along_axis(logprob, states[:, None].astype(np.intp),
                                                  axis=1).sum())
                         + float(np.sum(np.where(start > 0, start * np.log(
                             params["startprob"]), 0.0)))
                         + float(np.sum(np.where(trans > 0, trans * np.log(
                             params["transmat"]), 0.0))))
        del logprob
        # (GMMHMM draws each observation's mixture component here, keyed (seed, sweep, row))
        emission = self.conj.hard_stats(self.X, states, (inputs["seed"], inputs["sweep"]))
        return Statistics(log_joint=log_joint, log_likelihood=float(seq_ll.sum()),
                          start=start, trans=trans, **emission)


class Gibbs(Method):
    """One chain of the blocked Gibbs sampler."""

    bound_kind = "log joint"
    monotone = False
    overflow_advice = ("Every sequence has probability zero under the drawn parameters, or "
                       "the data overflow.")

    def __init__(self, est, data, params, rng, kernel_seed):
        self.conj = data.conj
        self.prior = TransitionPrior(est, params)
        self.letters = est.params
        self.emission_letters = est._emission_letters
        self.params = {k: np.array(v, dtype=np.float64, copy=True) for k, v in params.items()}
        self.rng = rng
        self.seed = int(kernel_seed)
        self.sweep = 0
        self._bound = None

    def pass_inputs(self, shard):
        return {"params": self.params, "seed": self.seed, "sweep": self.sweep}

    def update(self, stats):
        self._bound = stats["log_joint"]
        self.sweep += 1
        p, rng, new = self.prior, self.rng, dict(self.params)
        if "s" in self.letters:
            new["startprob"] = dirichlet_draw(p.start0 + stats["start"], p.start_support, rng)
        if "t" in self.letters:
            new["transmat"] = dirichlet_draw(p.trans0 + stats["trans"], p.trans_support, rng)
        if any(c in self.letters for c in self.emission_letters):
            new.update(self.conj.draw(self.conj.update(stats), rng))
        self.params = new

    def bound(self):
        return self._bound

    def draw(self):
        return {k: np.array(v, copy=True) for k, v in self.params.items()}

    def attributes(self):
        return self.draw()


def run_chains(est, X, sequences, conj, initial_params, random_state):
    """Every chain through the one loop; returns (fitted attributes, estimator attributes):
    posterior means of the relabelled draws and ``posterior_samples_``,
    ``sampler_diagnostics_``, ``log_joint_trace_`` and chain 0's trace."""
    n_draws, burn_in, thin, n_chains = check_sampler_parameters(est)
    entropy = [int(e) for e in random_state.randint(0, 2 ** 32, size=4, dtype=np.int64)]
    seeds = np.random.SeedSequence(entropy).spawn(n_chains)
    data = GibbsData(X, sequences, conj, est)

    def new_chain(c):
        param_seq, kernel_seq = seeds[c].spawn(2)
        rng = np.random.Generator(np.random.PCG64(param_seq))
        kernel_seed = int(kernel_seq.generate_state(1, np.uint64)[0])
        return Gibbs(est, data, initial_params, rng, kernel_seed)

    results = run_fits(new_chain, data, n_runs=n_chains, max_iter=n_sweeps(n_draws, burn_in, thin),
                       verbose=int(est.verbose), sampling=Sampling(burn_in, thin))
    samples = {name: np.stack([r.draws[name] for r in results]) for name in results[0].draws}
    samples = relabel(samples, conj)
    traces = np.stack([r.bounds for r in results])
    samples["log_joint"] = traces[:, results[0].kept]
    means = {name: samples[name].reshape((-1,) + samples[name].shape[2:]).mean(axis=0)
             for name in samples if name != "log_joint"}
    means["startprob"] = means["startprob"] / means["startprob"].sum()
    means["transmat"] = means["transmat"] / means["transmat"].sum(axis=1, keepdims=True)
    for name in ("emissionprob", "weights"):  # rows of probabilities (GMMHMM: weights)
        if name in means:
            means[name] /= means[name].sum(axis=-1, keepdims=True)
    return means, {"posterior_samples_": samples,
                   "sampler_diagnostics_": diagnostics(samples, conj),
                   "log_joint_trace_": traces, "first": results[0]}


def relabel(samples, conj):
    """Permute the states of every draw to match a reference (Hungarian matching of the
    emission parameters, squared distances; reference the last draw of chain 0, then the
    mean of the matched draws: two rounds). States, transitions rows and columns and the
    emission parameters move together."""
    feats = conj.features(samples)
    C, S, K = feats.shape[:3]
    # GMMHMM: the components within each state are matched too (``align_components``)
    align = getattr(conj, "align_components", None)
    if K == 1:
        return samples if align is None else align(samples)
    perms = match_draws(feats.reshape(C, S, K, -1))
    out = {}
    out["startprob"] = np.take_along_axis(samples["startprob"], perms, axis=2)
    A = np.take_along_axis(samples["transmat"], perms[..., :, None], axis=2)
    out["transmat"] = np.take_along_axis(A, perms[..., None, :], axis=3)
    emission = {k: v for k, v in samples.items() if k not in ("startprob", "transmat")}
    for name, value in emission.items():
        out[name] = np.empty_like(value)
    for c in range(C):
        for s in range(S):
            one = conj.permute({k: v[c, s] for k, v in emission.items()}, perms[c, s])
            for name in emission:
                out[name][c, s] = one[name]
    return out if align is None else align(out)


def diagnostics(samples, conj):
    """Split-R-hat and ESS of the log-likelihood trace and of the relabelled emission
    parameters (``features``); ``max_rhat`` is NaN with fewer than 4 draws a chain."""
    log_joint = samples["log_joint"]
    feats = conj.features(samples)
    if log_joint.shape[1] < 4:
        return {"rhat": {"log_joint": np.nan, "emission": np.full(feats.shape[2:], np.nan)},
                "ess": {"log_joint": np.nan, "emission": np.full(feats.shape[2:], np.nan)},
                "max_rhat": np.nan}
    with np.errstate(invalid="ignore", divide="ignore"):
        rhat = {"log_joint": split_rhat(log_joint), "emission": split_rhat(feats)}
        ess = {"log_joint": effective_sample_size(log_joint),
               "emission": effective_sample_size(feats)}
    values = np.hstack([np.ravel(rhat["log_joint"]), np.ravel(rhat["emission"])])
    max_rhat = float(np.nanmax(values)) if np.isfinite(values).any() else np.nan
    return {"rhat": rhat, "ess": ess, "max_rhat": max_rhat}
