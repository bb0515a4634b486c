"""Collapsed Gibbs sampling for ``LatentDirichletAllocation(method='gibbs')``.

The sweep and the log joint run in ``vbfast.topics._lda_gibbs`` (dense conditional, documents x
vocabulary partition; see that module). This module owns the data side of a fit (token arrays
in the order the sub-steps read them, document blocks and vocabulary slices, count tables,
workspace), the sweeps of every chain, the kept draws and the diagnostics, and sets the
estimator's fitted attributes.
"""
import time

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from scipy.special import gammaln

from . import _lda_gibbs  # the compiled kernels (src_c/topics/_lda_gibbs.pyx)
from .._core.threads import resolve_n_threads
from .._core.validation import check_random_state, check_scalar

__all__ = ["fit_gibbs", "GibbsState"]

# The documents go into B blocks and the vocabulary into B slices, B = N / this (at most
# _MAX_PARTITIONS): from the data size only, never the thread count, so that a fit is bitwise
# identical for any n_threads. A sweep is B sub-steps of B (block, slice) pairs; the pairs of a
# sub-step run in parallel, so B must be a few times the thread count for the threads to share
# a sub-step's work evenly (12 for 3 million tokens), while every document is visited once a
# sub-step (D B visits a sweep) and n_k is exchanged once a sub-step.
_TOKENS_PER_PARTITION = 1 << 18
_MAX_PARTITIONS = 64
# Words per block of the log joint's sums.
_WORDS_PER_BLOCK = 512
# Below this many tokens a sweep is not worth a parallel region (results are unaffected).
_MIN_TOKENS_PER_THREAD = 20000
# Below this many counts a thread, the log joint's sums run on fewer threads (the same).
_MIN_COUNTS_PER_THREAD_LJ = 1 << 22
_INT32_MAX = np.iinfo(np.int32).max
# converged_ when the split-R-hat of the log joint is below this (as for the mixtures' sampler)
RHAT_THRESHOLD = 1.05


def check_gibbs_parameters(est):
    """Check the sampler's options; return (n_samples, burn_in, thin, n_chains)."""
    check_scalar(est.n_samples, "n_samples", "int", min_val=1)
    check_scalar(est.burn_in, "burn_in", "int", min_val=0)
    check_scalar(est.thin, "thin", "int", min_val=1)
    check_scalar(est.n_chains, "n_chains", "int", min_val=1)
    if not isinstance(est.store_samples, (bool, np.bool_)):
        raise TypeError(f"store_samples must be a bool, got {est.store_samples!r}")
    return int(est.n_samples), int(est.burn_in), int(est.thin), int(est.n_chains)


def _tokens(X):
    """CSR integer counts -> (doc_ptr (D+1,) int64, words (N,) int32), tokens in document
    order."""
    counts = X.data
    if counts.size and not np.array_equal(counts, np.rint(counts)):
        raise ValueError("method='gibbs' samples a topic for every token, so X must hold "
                         "integer counts; got non-integer values.")
    counts = counts.astype(np.int64)
    total = int(counts.sum())
    if total > _INT32_MAX:
        raise ValueError(f"X has {total} tokens; method='gibbs' supports at most "
                         f"{_INT32_MAX} (int32 counts).")
    cum = np.zeros(counts.size + 1, np.int64)
    np.cumsum(counts, out=cum[1:])
    doc_ptr = np.ascontiguousarray(cum[X.indptr])
    words = np.repeat(X.indices.astype(np.int32), counts)
    return doc_ptr, words


def _partitions(doc_ptr):
    """Document offsets of the document blocks: about _TOKENS_PER_PARTITION tokens each."""
    n_docs = doc_ptr.shape[0] - 1
    n_tokens = int(doc_ptr[-1])
    P = int(min(_MAX_PARTITIONS, max(1, -(-n_tokens // _TOKENS_PER_PARTITION))))
    cuts = np.searchsorted(doc_ptr, np.arange(1, P) * (n_tokens / P))
    return np.unique(np.concatenate([[0], cuts, [n_docs]])).astype(np.int64)


def _slices(freq, B):
    """The vocabulary slice of each word, (V,) int32 in [0, B): contiguous ranges of word
    indices holding about N / B tokens each (a slice's load is within the largest word
    frequency of N / B). Contiguous, so that the n_kw rows of words in different slices (which
    different threads write at the same time) share no cache line but at the B boundaries:
    measured 8-13 % faster on two threads than dealing the words to the slices by frequency,
    where neighbouring rows belonged to different slices."""
    freq = np.asarray(freq, np.int64)
    total = int(freq.sum())
    if total == 0:
        return np.zeros(freq.shape[0], np.int32)
    before = np.cumsum(freq) - freq  # tokens of the words before w
    return np.minimum(B - 1, before * B // total).astype(np.int32)


class GibbsState:
    """The data side of a collapsed Gibbs fit and the state of its chains.

    Parameters
    ----------
    doc_ptr : (D + 1,) int64, token offsets of the documents.
    words : (N,) int32, word of each token (tokens in document order).
    n_words, n_components : V and K.
    alpha, eta : symmetric Dirichlet priors of theta_d and beta_k.
    n_threads : threads for the kernels (results do not depend on it).
    part_ptr : (B + 1,) int64 document offsets of the document blocks, or None for the default.
    slice_of : (V,) int vocabulary slice of each word in [0, B), or None for the default.

    The tokens of each document are reordered (stably) so that each sub-step's are the next
    run: ``self.words`` is that order, and every per-token array (``z``) follows it. Per chain:
    ``z`` (N,) int32 topic of every token, ``nwk`` (V, K) int32 topic-word counts (word-major),
    ``ndk`` (D, K) int32 document-topic counts, ``nk`` (K,) int32 topic totals.
    """

    def __init__(self, doc_ptr, words, n_words, n_components, alpha, eta, n_threads,
                 part_ptr=None, slice_of=None):
        self.doc_ptr = np.ascontiguousarray(doc_ptr, np.int64)
        words = np.ascontiguousarray(words, np.int32)
        self.V, self.K = int(n_words), int(n_components)
        self.alpha, self.eta = float(alpha), float(eta)
        V, K = self.V, self.K
        N = words.shape[0]
        D = self.doc_ptr.shape[0] - 1
        self.N, self.D = N, D
        self.part_ptr = _partitions(self.doc_ptr) if part_ptr is None else \
            np.ascontiguousarray(part_ptr, np.int64)
        self.P = B = self.part_ptr.shape[0] - 1
        freq = np.bincount(words, minlength=V).astype(np.int64)
        self.slice_of = _slices(freq, B) if slice_of is None else \
            np.ascontiguousarray(slice_of, np.int32)
        if self.slice_of.shape != (V,) or (V and (self.slice_of.min() < 0
                                                  or self.slice_of.max() >= B)):
            raise ValueError("slice_of must give every word a slice in [0, B)")
        # within each document of block b, the tokens by (slice - b) mod B, the order of the
        # sub-steps (stable: with B = 1 the order of X)
        doc_len = np.diff(self.doc_ptr)
        doc_of = np.repeat(np.arange(D, dtype=np.int64), doc_len)
        block_of_doc = np.repeat(np.arange(B, dtype=np.int64), np.diff(self.part_ptr))
        if N and B > 1:
            key = (self.slice_of[words] - block_of_doc[doc_of]) % B
            words = words[np.argsort(doc_of * B + key, kind="stable")]
        self.words = np.ascontiguousarray(words, np.int32)
        self._doc_of = doc_of
        n_blocks = max(1, -(-V // _WORDS_PER_BLOCK))
        self.block_ptr = np.minimum(np.arange(n_blocks + 1, dtype=np.int64) * _WORDS_PER_BLOCK,
                                    V)
        max_len = int(doc_len.max()) if doc_len.size else 0
        n = np.arange(max_len + 1, dtype=np.float64)
        self.lg_alpha = gammaln(n + alpha) - gammaln(alpha)
        self.lg_doclen = gammaln(K * alpha) - gammaln(n + K * alpha)
        m = np.arange(int(freq.max()) + 1 if V else 1, dtype=np.float64)
        self.lg_eta = gammaln(m + eta) - gammaln(eta)
        # threads: never more than the pairs of a sub-step, nor than the data size makes
        # worthwhile
        self.n_threads_sweep = int(max(1, min(n_threads, B, N // _MIN_TOKENS_PER_THREAD)))
        # the log joint's sums read (D + V) K counts: ~1 ms for the benchmark corpus, less
        # than a parallel region costs when a thread is descheduled, so threads only for more
        self.n_threads_lj = int(max(1, min(n_threads, n_blocks,
                                           (D + V) * K // _MIN_COUNTS_PER_THREAD_LJ)))
        self.cursor = np.empty(D, np.int64)
        self.scratch_i = np.empty((B, K), np.int32)
        self.scratch_d = np.empty((B, 4 * K), np.float64)
        self.part_lj = np.empty(B)
        self.block_lj = np.empty(n_blocks)
        self.chains = []

    def add_chain(self, z):
        """Start a chain at the assignments ``z`` (N,), in the order of ``self.words``;
        return its index."""
        z = np.array(z, dtype=np.int32, copy=True)  # the chain owns (and overwrites) it
        if z.shape != (self.N,) or (self.N and (z.min() < 0 or z.max() >= self.K)):
            raise ValueError("z must have one topic in [0, K) per token")
        V, K, D = self.V, self.K, self.D
        chain = {"z": z, "nwk": np.zeros((V, K), np.int32), "nk": np.zeros(K, np.int32),
                 "ndk": np.zeros((D, K), np.int32)}
        if self.N:
            chain["nwk"][:] = np.bincount(self.words.astype(np.int64) * K + z,
                                          minlength=V * K).reshape(V, K)
            chain["ndk"][:] = np.bincount(self._doc_of * K + z,
                                          minlength=D * K).reshape(D, K)
            chain["nk"][:] = np.bincount(z, minlength=K)
        self.chains.append(chain)
        return len(self.chains) - 1

    def log_joint(self, c):
        """log p(w, z) of chain ``c``'s current state (from its counts)."""
        chain = self.chains[c]
        _lda_gibbs.log_joint_terms(self.doc_ptr, chain["ndk"], chain["nwk"], self.part_ptr,
                                   self.block_ptr, self.lg_alpha, self.lg_doclen, self.lg_eta,
                                   self.part_lj, self.block_lj, self.n_threads_lj)
        V, K = self.V, self.K
        return float(np.sum(self.part_lj)) + float(np.sum(self.block_lj)) \
            + K * gammaln(V * self.eta) - float(np.sum(gammaln(chain["nk"] + V * self.eta)))

    def sweep(self, c, seed, sweep_index):
        """One sweep of chain ``c``; return the log joint log p(w, z) after it."""
        chain = self.chains[c]
        if self.N == 0:
            return 0.0
        _lda_gibbs.sweep(self.doc_ptr, self.words, self.slice_of, self.part_ptr, chain["z"],
                         chain["ndk"], chain["nwk"], chain["nk"], self.cursor, self.scratch_i,
                         self.scratch_d, self.alpha, self.eta, np.uint64(seed), np.uint64(c),
                         np.uint64(sweep_index), self.n_threads_sweep)
        return self.log_joint(c)

    def doc_topic_counts(self, c):
        """n_dk (D, K) int32 of chain ``c``."""
        return self.chains[c]["ndk"].copy()


def log_joint(doc_ptr, words, z, n_words, n_components, alpha, eta):
    """log p(w, z) of LDA with theta and beta integrated out (NumPy, for checks)."""
    K, V = n_components, n_words
    z = np.asarray(z, np.int64)
    words = np.asarray(words, np.int64)
    D = doc_ptr.shape[0] - 1
    doc_of = np.repeat(np.arange(D), np.diff(doc_ptr))
    ndk = np.bincount(doc_of * K + z, minlength=D * K).reshape(D, K)
    nkw = np.bincount(z * V + words, minlength=K * V).reshape(K, V)
    nd = ndk.sum(axis=1)
    lj = np.sum(gammaln(ndk + alpha) - gammaln(alpha)) \
        + np.sum(gammaln(K * alpha) - gammaln(nd + K * alpha))
    lj += np.sum(gammaln(nkw + eta) - gammaln(eta)) \
        + np.sum(gammaln(V * eta) - gammaln(nkw.sum(axis=1) + V * eta))
    return float(lj)


def _align_to(reference, topics):
    """Permutation of ``topics``' rows that best matches ``reference``'s (Hungarian matching
    on the L1 distance of the normalised rows)."""
    a = reference / reference.sum(axis=1, keepdims=True)
    b = topics / topics.sum(axis=1, keepdims=True)
    _, perm = linear_sum_assignment(cdist(a, b, "cityblock"))
    return perm


def fit_gibbs(est, X, doc_topic=True):
    """Fit ``est`` (a LatentDirichletAllocation with method='gibbs') by collapsed Gibbs
    sampling and set its fitted attributes; if ``doc_topic``, return the unnormalised
    document-topic parameters of X (what ``transform(X, normalize=False)`` gives)."""
    from .lda import _check_counts  # here, not at import: lda imports this module lazily

    est._check_parameters()
    n_samples, burn_in, thin, n_chains = check_gibbs_parameters(est)
    n_threads = resolve_n_threads(est.n_threads, est.n_jobs)
    X = _check_counts(X)
    n_docs, V = X.shape
    doc_ptr, words = _tokens(X)
    K = est.n_components
    alpha = 1.0 / K if est.doc_topic_prior is None else float(est.doc_topic_prior)
    eta = 1.0 / K if est.topic_word_prior is None else float(est.topic_word_prior)
    rs = check_random_state(est.random_state)
    seed = int(rs.randint(0, 2 ** 63 - 1, dtype=np.int64))
    state = GibbsState(doc_ptr, words, V, K, alpha, eta, n_threads)
    for c in range(n_chains):
        init = np.random.default_rng([seed & 0xFFFFFFFF, seed >> 32, c])
        state.add_chain(init.integers(0, K, size=state.N, dtype=np.int32))

    n_sweeps = burn_in + n_samples * thin
    trace = np.empty((n_chains, n_sweeps))
    times = []
    sums = [np.zeros((V, K), np.int64) for _ in range(n_chains)]
    samples = np.empty((n_chains, n_samples, K, V), np.int32) if est.store_samples else None
    kept = 0
    for s in range(n_sweeps):
        t0 = time.perf_counter()
        keep = s >= burn_in and (s - burn_in + 1) % thin == 0
        for c in range(n_chains):
            trace[c, s] = state.sweep(c, seed, s)
            if keep:
                nwk = state.chains[c]["nwk"]
                sums[c] += nwk
                if samples is not None:
                    samples[c, kept] = nwk.T
        kept += keep
        times.append(time.perf_counter() - t0)
        if est.verbose:
            print("sweep: %d of %d, log joint (chain 0): %.4f" % (s + 1, n_sweeps, trace[0, s]))

    # posterior mean pseudo-counts per chain; chains' topics aligned to chain 0's
    means = [eta + sums[c].T / n_samples for c in range(n_chains)]
    perms = [np.arange(K)]
    for c in range(1, n_chains):
        perms.append(_align_to(means[0], means[c]))
        means[c] = means[c][perms[c]]
        if samples is not None:
            samples[c] = samples[c][:, perms[c]]
    components = np.mean(means, axis=0)

    est.random_state_ = rs
    est.n_features_in_ = V
    est.doc_topic_prior_ = alpha
    est.topic_word_prior_ = eta
    est.n_iter_ = n_sweeps
    est._dtype = X.dtype
    est.log_joint_trace_ = trace
    est.lower_bounds_ = trace[0].copy()
    est.lower_bound_ = float(trace[0, -1]) if n_sweeps else float("nan")
    est.iteration_times_ = times
    est.chain_topic_permutations_ = np.array(perms)
    est.posterior_samples_ = samples
    kept_trace = trace[:, burn_in:][:, thin - 1::thin]
    rhat, ess = _diagnostics(kept_trace)
    est.sampler_diagnostics_ = {"rhat": {"log_joint": rhat}, "ess": {"log_joint": ess},
                                "max_rhat": rhat}
    est.converged_ = bool(rhat < RHAT_THRESHOLD)
    est._set_lambda(components)
    # perplexity on the training data, as the variational methods; a corpus without a word has
    # none (the limit exp(-bound / n_words) is +inf, as lda._perplexity_of takes it)
    est.bound_ = est.perplexity(X) if state.N else float("inf")
    if doc_topic:
        return est.transform(X, normalize=False).astype(np.float64)
    return None


def _diagnostics(draws):
    """Split-R-hat and ESS of the log joint over the kept sweeps, (n_chains, n_samples); the
    log joint does not depend on the topics' labels, so no relabelling is needed."""
    from .._core.mcmc import effective_sample_size, split_rhat

    if draws.shape[1] < 4 or np.ptp(draws) == 0:  # too short to split, or constant
        return float("nan"), float("nan")
    return float(split_rhat(draws)), float(effective_sample_size(draws))
