"""Collapsed Gibbs sampling for ``LatentDirichletAllocation(method='gibbs')``.

The sweep and the log joint run in ``vbfast.topics._lda_gibbs`` (documents x vocabulary
partition; a dense conditional below _SPARSE_MIN_TOPICS topics, a sparse one from there on;
see that module). This module holds the data side of a fit
(``TokenData``: token arrays in the order the sub-steps read them, document blocks and
vocabulary slices, workspace; one sweep is its pass), the sampler method of one chain
(``CollapsedGibbs``: the chain's assignments and count tables), and ``sample``, which runs the
chains through ``vbfast._core.loop.run_fits`` and returns a ``GibbsResult`` for the estimator to
store.
"""
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from . import _lda_gibbs  # the compiled kernels (src_c/topics/_lda_gibbs.pyx)
from .._core.loop import Sampling, run_fits
from .._core.mcmc import effective_sample_size, split_rhat
from .._core.protocol import Method, Statistics
from .._core.sampling import RHAT_THRESHOLD, matching, n_sweeps
from .._core.sharding import n_groups
from .._core.threads import threads_for
from .._core.validation import check_random_state

__all__ = ["sample", "GibbsResult", "TokenData", "CollapsedGibbs"]

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
# The log joint's lgamma tables cover counts below this; larger counts (a long document, a
# frequent word) are computed by the same gammaln in the kernel, so the tables never cost
# 8 bytes a token (one document of 5e7 tokens needed 1.2 GB of them).
_TABLE_CAP = 1 << 16
# From this many topics on, the sparse conditional (see _lda_gibbs_kernels.h). Measured on
# the benchmark corpus, one thread, first sweeps from a random start, sparse time / dense
# time: 2.0 at K = 50, 1.7 at 150, 1.08 at 300, 0.77 at 500 (the sparse pass costs O(K_w),
# the word's topics, which fall as the chain mixes; the dense one O(K) throughout).
_SPARSE_MIN_TOPICS = 320
# Each pair's n_k row and workspace row start on this boundary and fill whole multiples of
# it: two threads write their pairs' rows at every token, and rows sharing a cache line (or
# the pair of lines the L2 prefetcher fetches together) would move between the cores at
# every write (at K = 50, unpadded, rows b and b + 1 shared a line in each row's first and
# last topics).
_ROW_ALIGN = 128


def _choose_sampler(n_components):
    """'dense' (O(K) a token in SIMD) below _SPARSE_MIN_TOPICS topics, 'sparse' (O(K_d +
    log K) a token) from there on: from K only."""
    return "sparse" if n_components >= _SPARSE_MIN_TOPICS else "dense"


def _aligned_rows(n_rows, width, dtype):
    """An uninitialised (n_rows, width') C-contiguous array, width' = width rounded up to
    _ROW_ALIGN bytes, whose rows start at _ROW_ALIGN-byte boundaries."""
    itemsize = np.dtype(dtype).itemsize
    per_line = _ROW_ALIGN // itemsize
    width = -(-max(width, 1) // per_line) * per_line
    buf = np.empty(n_rows * width + per_line, dtype)
    start = (-buf.ctypes.data % _ROW_ALIGN) // itemsize
    return buf[start:start + n_rows * width].reshape(n_rows, width)


def _tokens(X):
    """CSR integer counts -> (doc_ptr (D+1,) int64, words (N,) int32), tokens in document
    order."""
    counts = X.data
    if counts.size and not np.array_equal(counts, np.rint(counts)):
        raise ValueError("method='gibbs' samples a topic for every token, so X must hold "
                         "integer counts; got non-integer values.")
    # the total in float64 first: counts beyond int64 (2^63, 1e300) would wrap when cast
    total = float(np.sum(counts, dtype=np.float64))
    if total > _INT32_MAX:
        shown = f"{int(total)}" if total < 1e16 else f"{total:.6g}"
        raise ValueError(f"X has {shown} tokens (the sum of its counts); method='gibbs' "
                         f"samples a topic for every token and supports at most {_INT32_MAX} "
                         "tokens (int32 counts).")
    counts = counts.astype(np.int64)
    cum = np.zeros(counts.size + 1, np.int64)
    np.cumsum(counts, out=cum[1:])
    doc_ptr = np.ascontiguousarray(cum[X.indptr])
    words = np.repeat(X.indices.astype(np.int32), counts)
    return doc_ptr, words


def _partitions(doc_ptr):
    """Document offsets of the document blocks: about _TOKENS_PER_PARTITION tokens each."""
    n_docs = doc_ptr.shape[0] - 1
    n_tokens = int(doc_ptr[-1])
    P = n_groups(n_tokens, _TOKENS_PER_PARTITION, _MAX_PARTITIONS)
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


class TokenData:
    """The data side of a collapsed Gibbs fit: the tokens, their partition and the workspace.
    Its pass is one sweep of a chain (``run_pass``); the chains' states belong to the sampler
    methods (``CollapsedGibbs``), each made by ``new_chain``.

    Parameters
    ----------
    doc_ptr : (D + 1,) int64, token offsets of the documents.
    words : (N,) int32, word of each token (tokens in document order).
    n_words, n_components : V and K.
    alpha, eta : symmetric Dirichlet priors of theta_d and beta_k.
    n_threads : threads for the kernels (results do not depend on it).
    part_ptr : (B + 1,) int64 document offsets of the document blocks, or None for the default.
    slice_of : (V,) int vocabulary slice of each word in [0, B), or None for the default.
    own_words : bool, default False. Whether ``words`` (int32, contiguous) may be reordered in
        place and kept, instead of copied.
    sampler : {'dense', 'sparse'} or None. The conditional (``_lda_gibbs.sweep`` or
        ``sweep_sparse``: the same stationary distribution, different arithmetic); None
        chooses from K (``_choose_sampler``).

    The tokens of each document are reordered (stably) so that each sub-step's are the next
    run: ``self.words`` is that order, and every per-token array (a chain's ``z``) follows it.

    Memory: ``words`` (int32) is the only per-token array kept here and a chain adds ``z``
    (int32): 8 bytes a token, plus the count tables ((D + V) K int32s); building them makes no
    N-sized temporary. The sparse sampler adds the words' (topic, count) lists: at most 8
    bytes a token, plus rounding each word's room up to 16 entries.
    """

    def __init__(self, doc_ptr, words, n_words, n_components, alpha, eta, n_threads,
                 part_ptr=None, slice_of=None, own_words=False, sampler=None):
        self.doc_ptr = np.ascontiguousarray(doc_ptr, np.int64)
        words = np.ascontiguousarray(words, np.int32) if own_words else \
            np.array(words, dtype=np.int32, copy=True)
        self.V, self.K = int(n_words), int(n_components)
        self.alpha, self.eta = float(alpha), float(eta)
        V, K = self.V, self.K
        N = words.shape[0]
        D = self.doc_ptr.shape[0] - 1
        self.N, self.D = N, D
        self.part_ptr = _partitions(self.doc_ptr) if part_ptr is None else \
            np.ascontiguousarray(part_ptr, np.int64)
        self.P = B = self.part_ptr.shape[0] - 1
        freq = _lda_gibbs.word_frequencies(words, V)
        self.slice_of = _slices(freq, B) if slice_of is None else \
            np.ascontiguousarray(slice_of, np.int32)
        if self.slice_of.shape != (V,) or (V and (self.slice_of.min() < 0
                                                  or self.slice_of.max() >= B)):
            raise ValueError("slice_of must give every word a slice in [0, B)")
        # within each document of block b, the tokens by (slice - b) mod B, the order of the
        # sub-steps (stable: with B = 1 the order of X)
        doc_len = np.diff(self.doc_ptr)
        if N and B > 1:
            _lda_gibbs.order_tokens(self.doc_ptr, words, self.slice_of, self.part_ptr)
        self.words = words
        n_blocks = max(1, -(-V // _WORDS_PER_BLOCK))
        self.block_ptr = np.minimum(np.arange(n_blocks + 1, dtype=np.int64) * _WORDS_PER_BLOCK,
                                    V)
        max_len = int(doc_len.max()) if doc_len.size else 0
        n = np.arange(min(max_len + 1, _TABLE_CAP), dtype=np.float64)
        self.lg_alpha = gammaln(n + alpha) - gammaln(alpha)
        self.lg_doclen = gammaln(K * alpha) - gammaln(n + K * alpha)
        m = np.arange(min(int(freq.max()) + 1 if V else 1, _TABLE_CAP), dtype=np.float64)
        self.lg_eta = gammaln(m + eta) - gammaln(eta)
        # threads: never more than the pairs of a sub-step, nor than the data size makes
        # worthwhile
        self.n_threads_sweep = threads_for(n_threads, N, _MIN_TOKENS_PER_THREAD, n_groups=B)
        # the log joint's sums read (D + V) K counts: ~1 ms for the benchmark corpus, less
        # than a parallel region costs when a thread is descheduled, so threads only for more
        self.n_threads_lj = threads_for(n_threads, (D + V) * K, _MIN_COUNTS_PER_THREAD_LJ,
                                        n_groups=n_blocks)
        self.cursor = np.empty(D, np.int64)
        self.scratch_i = _aligned_rows(B, K, np.int32)
        if sampler is None:
            sampler = _choose_sampler(K)
        if sampler not in ("dense", "sparse"):
            raise ValueError(f"sampler must be 'dense' or 'sparse', got {sampler!r}")
        self.sampler = sampler
        self.scratch_d = _aligned_rows(
            B, _lda_gibbs.dense_scratch_width(K) if sampler == "dense"
            else _lda_gibbs.sparse_scratch_width(K), np.float64)
        if sampler == "sparse":
            # each word's list of (topic, count): room for min(its tokens, K), in blocks of
            # 16 (see the kernel); at most 8 bytes a token
            self.wl_ptr = np.zeros(V + 1, np.int64)
            np.cumsum((np.minimum(freq, K) + 15) // 16 * 16, out=self.wl_ptr[1:])
            self.wlist = np.empty(2 * int(self.wl_ptr[-1]), np.int32)
            self.wlen = np.empty(V, np.int32)
        self.part_lj = np.empty(B)
        self.block_lj = np.empty(n_blocks)

    def new_chain(self, z, copy=True):
        """A chain's state at the assignments ``z`` (N,), in the order of ``self.words``: a
        dict of ``z`` (N,) int32 (a copy unless ``copy=False``: the chain overwrites it),
        ``nwk`` (V, K) int32 topic-word counts (word-major), ``ndk`` (D, K) int32
        document-topic counts and ``nk`` (K,) int32 topic totals."""
        z = np.array(z, dtype=np.int32, copy=True) if copy else \
            np.ascontiguousarray(z, np.int32)
        if z.shape != (self.N,) or (self.N and (z.min() < 0 or z.max() >= self.K)):
            raise ValueError("z must have one topic in [0, K) per token")
        V, K, D = self.V, self.K, self.D
        chain = {"z": z, "nwk": np.zeros((V, K), np.int32), "nk": np.zeros(K, np.int32),
                 "ndk": np.zeros((D, K), np.int32)}
        if self.N:
            _lda_gibbs.chain_counts(self.doc_ptr, self.words, z, chain["ndk"], chain["nwk"],
                                    chain["nk"])
        return chain

    def shards(self):
        """One shard, every token: a sweep's sub-steps pair every document block with every
        vocabulary slice."""
        return (None,)

    def run_pass(self, shard, inputs):
        """One sweep of the chain ``inputs`` = (chain, seed, chain index, sweep index), its
        counts updated in place; the statistics hold the log joint after it."""
        return Statistics(log_joint=self.sweep(*inputs))

    def log_joint(self, chain):
        """log p(w, z) of a chain's current state (from its counts)."""
        _lda_gibbs.log_joint_terms(self.doc_ptr, chain["ndk"], chain["nwk"], self.part_ptr,
                                   self.block_ptr, self.lg_alpha, self.lg_doclen, self.lg_eta,
                                   self.part_lj, self.block_lj, self.n_threads_lj,
                                   self.alpha, self.eta)
        V, K = self.V, self.K
        return float(np.sum(self.part_lj)) + float(np.sum(self.block_lj)) \
            + K * gammaln(V * self.eta) - float(np.sum(gammaln(chain["nk"] + V * self.eta)))

    def sweep(self, chain, seed, chain_index, sweep_index):
        """One sweep of ``chain``; return the log joint log p(w, z) after it. The random
        stream of each (block, slice) pair is keyed by (seed, chain index, sweep index), so a
        chain's draws do not depend on the other chains."""
        if self.N == 0:
            return 0.0
        if self.sampler == "sparse":
            _lda_gibbs.sweep_sparse(
                self.doc_ptr, self.words, self.slice_of, self.part_ptr, chain["z"],
                chain["ndk"], chain["nwk"], chain["nk"], self.cursor, self.wl_ptr, self.wlist,
                self.wlen, self.scratch_i, self.scratch_d, self.alpha, self.eta,
                np.uint64(seed), np.uint64(chain_index), np.uint64(sweep_index),
                self.n_threads_sweep)
            return self.log_joint(chain)
        _lda_gibbs.sweep(self.doc_ptr, self.words, self.slice_of, self.part_ptr, chain["z"],
                         chain["ndk"], chain["nwk"], chain["nk"], self.cursor, self.scratch_i,
                         self.scratch_d, self.alpha, self.eta, np.uint64(seed),
                         np.uint64(chain_index), np.uint64(sweep_index), self.n_threads_sweep)
        return self.log_joint(chain)


class CollapsedGibbs(Method):
    """The sampler method of one chain: its assignments and count tables, and the running
    sum of the topic-word counts of its kept sweeps (the posterior mean needs only that;
    the tables themselves are drawn only with ``store``, at n_draws V K int32s)."""

    monotone = False
    bound_kind = "log joint"

    def __init__(self, data, z, seed, chain_index, sampling, store, n_sweeps, verbose=0,
                 copy_z=True):
        self.chain = data.new_chain(z, copy=copy_z)
        self.seed = seed
        self.chain_index = chain_index
        self.sampling = sampling
        self.store = store
        self.n_sweeps = n_sweeps
        self.verbose = verbose
        self.sweep_index = 0
        self.nwk_sum = np.zeros((data.V, data.K), np.int64)
        self._log_joint = None

    def pass_inputs(self, shard):
        return self.chain, self.seed, self.chain_index, self.sweep_index

    def update(self, stats):
        # the sweep has already moved the chain (its counts are updated in place)
        self._log_joint = stats.log_joint
        if self.sampling.keeps(self.sweep_index):
            self.nwk_sum += self.chain["nwk"]
        self.sweep_index += 1
        if self.verbose:
            print("sweep: %d of %d, log joint (chain %d): %.4f"
                  % (self.sweep_index, self.n_sweeps, self.chain_index, self._log_joint))

    def bound(self):
        return self._log_joint

    def draw(self):
        return {"nwk": self.chain["nwk"].T.copy()} if self.store else {}

    def attributes(self):
        return {"nwk_sum": self.nwk_sum.copy()}


@dataclass
class GibbsResult:
    """A collapsed Gibbs fit, for the estimator to store.

    components : (K, V) eta + the topic-word counts averaged over the kept sweeps, each
        chain's topics aligned to the first chain's, then averaged over chains.
    log_joint_trace : (n_chains, n_sweeps) log p(w, z) after every sweep of every chain.
    times : (n_sweeps,) wall time of each sweep, summed over the chains.
    permutations : (n_chains, K) the permutation aligning each chain's topics.
    samples : (n_chains, n_draws, K, V) int32 kept topic-word counts (aligned), or None.
    diagnostics : {"rhat": {"log_joint": r}, "ess": {"log_joint": e}, "max_rhat": r}.
    converged : whether the log joint's split-R-hat is below ``RHAT_THRESHOLD``.
    random_state : the RandomState the chains' seed was drawn from.
    n_tokens : N.
    """

    components: np.ndarray
    log_joint_trace: np.ndarray
    times: np.ndarray
    permutations: np.ndarray
    samples: np.ndarray
    diagnostics: dict
    converged: bool
    random_state: np.random.RandomState
    n_tokens: int


def sample(X, n_components, alpha, eta, *, n_draws, burn_in, thin, n_chains, store_samples,
           random_state, n_threads, verbose=0):
    """Collapsed Gibbs sampling of LDA on the canonical CSR counts X: ``n_chains`` chains of
    ``burn_in + n_draws * thin`` sweeps from uniformly random topics, run one after another
    through the one loop; returns a ``GibbsResult``."""
    doc_ptr, words = _tokens(X)
    V, K = X.shape[1], n_components
    rs = check_random_state(random_state)
    seed = int(rs.randint(0, 2 ** 63 - 1, dtype=np.int64))
    # the sampler's own token array, reordered in place: no second copy of the tokens
    data = TokenData(doc_ptr, words, V, K, alpha, eta, n_threads, own_words=True)
    del words
    sampling = Sampling(burn_in, thin)
    total = n_sweeps(n_draws, burn_in, thin)

    def new_chain(c):
        init = np.random.default_rng([seed & 0xFFFFFFFF, seed >> 32, c])
        z = init.integers(0, K, size=data.N, dtype=np.int32)
        return CollapsedGibbs(data, z, seed, c, sampling, store_samples, total, verbose,
                              copy_z=False)

    chains = run_fits(new_chain, data, n_runs=n_chains, max_iter=total, sampling=sampling)

    # posterior mean pseudo-counts per chain; chains' topics aligned to chain 0's
    means = [eta + run.attributes["nwk_sum"].T / n_draws for run in chains]
    samples = [run.draws["nwk"] for run in chains] if store_samples else None
    perms = [np.arange(K)]
    for c in range(1, n_chains):
        perms.append(_align_to(means[0], means[c]))
        means[c] = means[c][perms[c]]
        if samples is not None:
            samples[c] = samples[c][:, perms[c]]
    trace = np.stack([run.bounds for run in chains])
    rhat, ess = _diagnostics(trace[:, burn_in:][:, thin - 1::thin])
    return GibbsResult(
        components=np.mean(means, axis=0), log_joint_trace=trace,
        times=np.sum([run.times for run in chains], axis=0), permutations=np.array(perms),
        samples=None if samples is None else np.stack(samples),
        diagnostics={"rhat": {"log_joint": rhat}, "ess": {"log_joint": ess}, "max_rhat": rhat},
        converged=bool(rhat < RHAT_THRESHOLD), random_state=rs, n_tokens=data.N)

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
    return matching(reference / reference.sum(axis=1, keepdims=True),
                    topics / topics.sum(axis=1, keepdims=True), "cityblock")


def _diagnostics(draws):
    """Split-R-hat and ESS of the log joint over the kept sweeps, (n_chains, n_draws); the
    log joint does not depend on the topics' labels, so no relabelling is needed."""
    if draws.shape[1] < 4 or np.ptp(draws) == 0:  # too short to split, or constant
        return float("nan"), float("nan")
    return float(split_rhat(draws)), float(effective_sample_size(draws))
