"""Mean-field variational Bayes for the HMMs (MacKay 1997; Beal 2003, ch. 3).

q(z) q(pi) prod_i q(A_i) q(emissions), every factor of q(theta) conjugate
(``vbfast.hmm._conjugate``). One iteration of the loop:

- the pass (E-step): the scaled forward-backward kernel fed the *sub-normalised* parameters
  pi~_k = exp(E log pi_k), A~_ij = exp(E log A_ij) and l~_nk = E_q log p(x_n | z_n = k). Its
  posteriors and expected counts are q(z)'s, and its log normaliser
  log Z = sum_s log sum_z pi~_{z_0} prod_t A~_{z_{t-1} z_t} prod_t exp(l~_{t z_t});
- the update: q(pi) = Dir(a_pi + sum_s gamma_{s,0}), q(A_i) = Dir(a_A[i] + kappa e_i +
  sum_t xi_t(i, .)), the emission q from the expected statistics;
- the bound: at q(z) optimal for q(theta),

      ELBO = log Z(q(theta)) - KL(q(pi) || p(pi)) - sum_i KL(q(A_i) || p(A_i))
             - KL(q(emissions) || p(emissions)),

  exact, and evaluated at the q(theta) the pass used. Each iteration is a coordinate ascent
  step (q(z) then q(theta)), so the ELBO never decreases: the loop's guard is armed.

Zeros of the initial ``startprob_`` / ``transmat_`` stay zero (the Dirichlets live on the
other entries), as in EM. Letters missing from ``params`` keep their initial q.

Merge moves (Hughes, Stephenson & Sudderth 2015). Coordinate ascent from a k-means start
with more states than the data need gets stuck where one cluster is split between states:
emptying one of them lowers the ELBO at every step of the way, although the fit without it
is better. So when the bound has converged, the method tries to merge states: each used state
(expected visits >= 1) but the most visited, least visited first, into each of its
``MERGE_TARGETS`` nearest more-visited states by the emission parameters (``features`` of the
conjugate unit). A merge adds the pair's expected
statistics (start, transition rows and columns, emission statistics: all additive) into one
state, leaving the other at its prior; ``MERGE_PASSES`` coordinate-ascent passes from there
give the candidate's ELBO, and the first candidate whose ELBO exceeds the converged one by
more than ``tol`` is kept and the loop goes on. The next iteration's bound is then at least
the candidate's, so the bound still never decreases. Merges are tried only when every letter
of the model is fitted and there are no structural zeros (a merge would move counts onto
them). Each round costs at most 2 K x ``MERGE_PASSES`` passes (counted in the next
iteration's time); it ends the fit when no candidate is better.
"""
import numpy as np

from .._core.protocol import Method, Statistics
from ._conjugate import dirichlet_expected_log, dirichlet_kl, dirichlet_mean
from ._sequences import SequenceData

# coordinate-ascent passes run from a merged candidate before its ELBO is compared
MERGE_PASSES = 3
# states a candidate for removal is tried merging into (its nearest more-visited ones)
MERGE_TARGETS = 2


class TransitionPrior:
    """The Dirichlet priors of pi and of the rows of A (``startprob_prior``,
    ``transmat_prior`` plus ``sticky`` on the diagonal) and their supports (the non-zero
    entries of the initial parameters)."""

    def __init__(self, est, params):
        K = est.n_components
        self.start0 = est._prior("startprob_prior", (K,)).copy()
        self.trans0 = est._prior("transmat_prior", (K, K)) + float(est.sticky) * np.eye(K)
        if np.any(self.start0 <= 0) or np.any(self.trans0 <= 0):
            raise ValueError("startprob_prior and transmat_prior must be positive for "
                             f"method={est.method!r} (Dirichlet concentrations)")
        self.start_support = params["startprob"] > 0
        self.trans_support = params["transmat"] > 0


class VBData(SequenceData):
    """The data object of mean field: X, its sequences, the emission's conjugate unit."""

    def __init__(self, X, sequences, conj):
        super().__init__(X, sequences)
        self.conj = conj

    def run_pass(self, shard, inputs):
        """Forward-backward at the sub-normalised parameters: Statistics with log_likelihood
        (log Z), seq_ll, start (K,), trans (K, K) and the emission statistics."""
        logprob = inputs["logprob"]
        if logprob is None:
            logprob = self.conj.expected_log_density(self.X, inputs["q_emission"])
        fb = shard.forward_backward(logprob, inputs["startprob"], inputs["transmat"])
        del logprob
        emission = self.conj.stats(self.X, fb["posteriors"])
        return Statistics(log_likelihood=fb["log_likelihood"], seq_ll=fb["seq_ll"],
                          start=fb["start"], trans=fb["trans"], **emission)


class MeanField(Method):
    """Mean-field VB for an HMM (see the module docstring). Starts from q(theta) given by one
    exact E-step at the initial point parameters ``params``."""

    bound_kind = "ELBO"
    monotone = True
    overflow_advice = ("Every sequence has probability zero under q (zeros in startprob_ / "
                       "transmat_ ruling out the data), or the data overflow.")

    def __init__(self, est, data, params):
        self.est = est
        self.data = data
        self.conj = data.conj
        self.prior = TransitionPrior(est, params)
        self.letters = est.params
        emission_logprob = self.conj.point_log_density(data.X, params)
        stats = data.run_pass(data.sequences, {"logprob": emission_logprob,
                                               "startprob": params["startprob"],
                                               "transmat": params["transmat"]})
        self.q = self._posterior(stats, None)
        self.kl = self._kl(self.q)
        self._stats = stats   # the statistics self.q comes from (merge moves add them up)
        self._bound = None
        self.n_merged = 0
        p = self.prior
        self._can_merge = (est.n_components > 1 and p.start_support.all()
                           and p.trans_support.all()
                           and all(c in self.letters for c in "st" + est._emission_letters))

    def _posterior(self, stats, old):
        p = self.prior
        q = {}
        q["start"] = (p.start0 + stats["start"] if old is None or "s" in self.letters
                      else old["start"])
        q["trans"] = (p.trans0 + stats["trans"] if old is None or "t" in self.letters
                      else old["trans"])
        letters = self.est._emission_letters
        if old is None or any(c in self.letters for c in letters):
            q["emission"] = self.conj.update(stats)
        else:
            q["emission"] = old["emission"]
        return q

    def _kl(self, q):
        p = self.prior
        return (dirichlet_kl(q["start"], p.start0, p.start_support)
                + dirichlet_kl(q["trans"], p.trans0, p.trans_support)
                + self.conj.kl(q["emission"]))

    def pass_inputs(self, shard):
        p = self.prior
        return {"logprob": None, "q_emission": self.q["emission"],
                "startprob": np.exp(dirichlet_expected_log(self.q["start"], p.start_support)),
                "transmat": np.exp(dirichlet_expected_log(self.q["trans"], p.trans_support))}

    def update(self, stats):
        # the ELBO of the q(theta) the pass used, at its optimal q(z)
        self._bound = stats["log_likelihood"] - self.kl
        self.q = self._posterior(stats, self.q)
        self.kl = self._kl(self.q)
        self._stats = stats

    def bound(self):
        return self._bound

    def converged(self, n_iter, prev_bound, bound, tol):
        """Converged when the bound moved less than ``tol`` and no merge of two states
        raises it by more than ``tol`` (see the module docstring)."""
        if not abs(bound - prev_bound) < tol:
            return False
        return not (self._can_merge and self._try_merges(bound, tol))

    def _merge_candidates(self):
        """Pairs (keep, drop) of used states: each used state but the most visited, with the
        ``MERGE_TARGETS`` nearest states visited more (squared distance of the emission
        features; ties by index), the least visited states first."""
        stats = self._stats
        visits = stats["start"] + stats["trans"].sum(axis=0)
        used = np.flatnonzero(visits >= 1.0)
        if len(used) < 2:
            return []
        used = used[np.lexsort((used, -visits[used]))]    # most visited first
        feats = np.asarray(self.conj.features(self.conj.point(self.q["emission"])),
                           dtype=np.float64).reshape(len(visits), -1)[used]
        pairs = []
        for rank in range(len(used) - 1, 0, -1):
            dist = ((feats[:rank] - feats[rank]) ** 2).sum(axis=1)
            for target in np.argsort(dist, kind="stable")[:MERGE_TARGETS]:
                pairs.append((int(used[target]), int(used[rank])))
        return pairs

    def _merged_stats(self, i, j):
        """The last pass's statistics with state j's added into state i (j left empty)."""
        stats = self._stats
        out = {}
        start = stats["start"].copy()
        start[i] += start[j]
        start[j] = 0.0
        trans = stats["trans"].copy()
        trans[i] += trans[j]
        trans[j] = 0.0
        trans[:, i] += trans[:, j]
        trans[:, j] = 0.0
        out["start"], out["trans"] = start, trans
        for name in self.conj.merge_fields:
            value = np.array(stats[name], dtype=np.float64, copy=True)
            value[i] += value[j]
            value[j] = 0.0
            out[name] = value
        for name in stats.keys():
            out.setdefault(name, stats[name])
        return out

    def _try_merges(self, bound, tol):
        data, seqs = self.data, self.data.sequences
        for i, j in self._merge_candidates():
            q = self._posterior(self._merged_stats(i, j), None)
            kl = self._kl(q)
            for _ in range(MERGE_PASSES):
                old_q = self.q
                self.q = q
                try:
                    stats = data.run_pass(seqs, self.pass_inputs(seqs))
                finally:
                    self.q = old_q
                elbo = stats["log_likelihood"] - kl
                q = self._posterior(stats, None)
                kl = self._kl(q)
            if np.isfinite(elbo) and elbo > bound + max(tol, 1e-10 * abs(bound)):
                self.q, self.kl, self._stats = q, kl, stats
                self.n_merged += 1
                return True
        return False

    def attributes(self):
        p = self.prior
        out = {"startprob": dirichlet_mean(self.q["start"], p.start_support),
               "transmat": dirichlet_mean(self.q["trans"], p.trans_support)}
        out.update(self.conj.point(self.q["emission"]))
        posterior = {"startprob_posterior_": np.where(p.start_support, self.q["start"], 0.0),
                     "transmat_posterior_": np.where(p.trans_support, self.q["trans"], 0.0)}
        posterior.update(self.conj.q_attributes(self.q["emission"]))
        posterior["n_merges_"] = int(self.n_merged)
        out["posterior"] = posterior
        return out
