"""Latent Dirichlet allocation: the estimator and its variational methods.

The pass is the Cython/OpenMP kernel of ``vbfast.topics._lda`` (per-document fixed point,
statistics and bound terms in one sweep) over ``DocumentData``'s shards; ``MeanField`` and
``VariationalEM`` hold lambda (as ``Topics``) and update it, batch or by stochastic steps,
driven by ``vbfast._core.loop``. Documents out of core or on Dask go through
``BlockedDocumentData`` (the same bits, block by block). Collapsed Gibbs sampling is in
``vbfast.topics._gibbs``.
"""
import functools
import threading
import weakref

import numpy as np
from scipy.special import gammaln

from . import _gibbs, _lda, _lda_online
from ._data import check_count_rows, check_counts, check_total, count_flaw, csr_block, priors
from .._core.base import (ParamsMixin, TransformerOutputMixin, all_or_nothing,
                          available_if)
from .._core.blocks import DaskRows, Rows, is_block_source, is_dask_array, rows_per_read
from .._core.loop import iterate, run_fits, store_trace
from .._core.protocol import Method, Statistics
from .._core.sampling import check_sampler_parameters, legacy_gamma
from .._core.sharding import n_groups
from .._core.threads import (ShortRegionThreads, resolve_n_threads, single_threaded_blas,
                             threads_for)
from .._core.validation import (check_is_fitted, check_option, check_random_state,
                                check_scalar)

__all__ = ["LatentDirichletAllocation"]

# Documents go into at most _MAX_GROUPS groups of at least _MIN_DOCS_PER_GROUP documents, each
# group with its own bound slot. None of this depends on the thread count, so results are
# bitwise identical for any n_threads. The statistics need no per-group copies: the pass leaves
# per-(document, word) ratios and the kernel sums them word by word (``word_topic_stats``).
_MAX_GROUPS = 256
_MIN_DOCS_PER_GROUP = 16
# Below this many non-zeros per thread a parallel region is not worth its start-up.
_MIN_NNZ_PER_THREAD = 20000
# Below this many (topic, word) entries per thread, the topics' E[log beta] is computed by one
# thread: ~1 ms of work (a mini-batch's words), less than a parallel region can lose waiting
# for a descheduled thread on a busy machine (measured 1.2 ms on one thread, 15 ms on two).
_MIN_ENTRIES_PER_THREAD = 250000
# The same while the other cores are idle, for an online fit's mini-batches (a parallel region
# then costs microseconds; ``ShortRegionThreads``): ~0.5 ms of work a thread (a non-zero of
# the pass ~0.3 us, a (word, topic) entry of the topics at the words ~15 ns, one thread).
_MIN_NNZ_PER_THREAD_IDLE = 2000
_MIN_ENTRIES_PER_THREAD_IDLE = 32768
# While other threads compete for the cores, a mini-batch's pass takes a thread per this many
# times _MIN_NNZ_PER_THREAD non-zeros (240,000: ~70 ms of work a thread): its threads spin at
# the region's end for one that was descheduled. Measured at load 8 on 2 cores, 10 epochs of
# 1,024-document mini-batches: 1.70 s on two threads, 1.06 s on one.
_BUSY_MINI_BATCH_FACTOR = 12
# A batch pass's statistics are summed document by document (``word_topic_stats_by_document``)
# up to this many (topic, word) entries: a (V, K) workspace of 2 MB, L2's size, whose rows the
# documents' words hit at random; beyond it word by word over the word-major pattern (built
# once per fit). Real corpus, one thread, the pattern built and summed against the sums by
# document: K = 20 4.1 / 2.3 ms, K = 50 7.0 / 5.5, K = 100 8.3 / 9.4.
_MAX_ENTRIES_BY_DOCUMENT = 1 << 18
_EPS = np.finfo(np.float64).eps
# The inference methods of this family (the library's vocabulary).
_METHODS = ("mean_field", "variational_em", "gibbs")


# One lock per estimator object (held outside it, so that pickling, deepcopy and clone never
# see it): fits of one object from several Python threads run one after another, each on the
# state the previous one stored, instead of interleaving their writes (issue 18, defect 10).
_FIT_LOCKS = weakref.WeakKeyDictionary()
_FIT_LOCKS_GUARD = threading.Lock()


def _one_fit_at_a_time(fit_method):
    """Decorate a fitting method so that calls on the same estimator object are serialised."""

    @functools.wraps(fit_method)
    def wrapper(self, *args, **kwargs):
        with _FIT_LOCKS_GUARD:
            lock = _FIT_LOCKS.setdefault(self, threading.RLock())
        with lock:
            return fit_method(self, *args, **kwargs)

    return wrapper


def _variational_method(lda):
    """Whether ``partial_fit`` exists: the variational methods have an online update."""
    return lda.method != "gibbs"


def _dirichlet_loglik(prior, distr, dirichlet_distr, size):
    """E_q[log p(x | prior)] - E_q[log q(x)] for Dirichlet rows (scikit-learn's helper)."""
    score = np.sum((prior - distr) * dirichlet_distr)
    score += np.sum(gammaln(distr) - gammaln(prior))
    score += np.sum(gammaln(prior * size) - gammaln(np.sum(distr, 1)))
    return score


def _n_groups(n_docs):
    """Document groups for a pass: from the data size only, never the thread count."""
    return n_groups(n_docs, _MIN_DOCS_PER_GROUP, _MAX_GROUPS)


def _check_documents(X, n_features=None):
    """The checked counts of X: canonical CSR (``check_counts``), or ``Rows`` read by
    blocks for an out-of-core or a dask array (``check_count_rows``)."""
    if is_dask_array(X) or is_block_source(X):
        return check_count_rows(X, n_features=n_features)
    return check_counts(X, n_features=n_features)


def _document_data(X, n_components, n_threads, batch_size=None, stats=True):
    """The data object of X checked by ``_check_documents``."""
    if isinstance(X, Rows):
        return BlockedDocumentData(X, n_components, n_threads, batch_size, stats)
    if batch_size is not None and stats:  # the online methods' mini-batches
        return MiniBatchData(X, n_components, n_threads, batch_size)
    return DocumentData(X, n_components, n_threads, batch_size, stats)


def _perplexity(n, word_cnt, doc_bound, topic_term, total_samples=None):
    """exp(-bound / number of words) of n documents with ``word_cnt`` words, the bound = the
    documents' terms + the topic term; with ``total_samples`` they stand for a corpus of that
    many documents."""
    if total_samples is not None:
        doc_bound *= float(total_samples) / n
        word_cnt *= float(total_samples) / n
    bound = doc_bound + topic_term
    # No words: nothing is predicted; the limit of exp(-bound / n_words) for bound <= 0.
    return float(np.exp(-bound / word_cnt)) if word_cnt > 0 else float("inf")


class DocumentData:
    """The data side of the LDA pass: the CSR arrays, their shards (every document, or
    mini-batches of ``batch_size``), and for the statistics the per-position ratios and the
    word-major pattern of each shard (built once, reused by every pass over that shard).

    ``stats=False``: passes for the document-topic parameters and the bound only (no
    statistics buffers)."""

    def __init__(self, X, n_components, n_threads, batch_size=None, stats=True):
        self.X = X
        self.K = n_components
        self.V = X.shape[1]
        self.n_threads = n_threads
        n = X.shape[0]
        step = max(1, n if batch_size is None else batch_size)
        self._shards = [(start, min(start + step, n)) for start in range(0, n, step)]
        self.everything = (0, n)
        self.n_docs = n
        self._ratio = np.empty(X.nnz) if stats else np.empty(0)
        self._patterns = {}
        # the threads of the topics' K x V regions (``topics_threads``)
        self.region_threads = ShortRegionThreads(n_threads)

    def topics_threads(self, entries):
        """Threads for building topics of ``entries`` (topic, word) entries for this data's
        fit: two threads from 32,768 entries a thread while the other cores are idle (a batch
        pass's topics at K = 20, V = 10,000: ~5 ms of work), else from 250,000."""
        return self.region_threads(entries, _MIN_ENTRIES_PER_THREAD,
                                   _MIN_ENTRIES_PER_THREAD_IDLE)

    def shards(self):
        return self._shards

    def word_count(self):
        """The number of words (the sum of the counts, in X's dtype as scikit-learn)."""
        return float(self.X.data.sum())

    def start_gamma(self, shard, random_state, K, keep=False):
        """The pass's starting gamma of the documents of ``shard``: Gamma(100, 0.01) draws
        from ``random_state`` (as scikit-learn), or ones (``random_state`` None)."""
        start, stop = shard
        if random_state is None:
            return np.ones((stop - start, K))
        return legacy_gamma(random_state, 100.0, 0.01, (stop - start, K))

    def _pattern(self, start, stop):
        key = (start, stop)
        if key not in self._patterns:
            X = self.X
            self._patterns[key] = _lda.word_major_pattern(X.indptr[start:stop + 1], X.indices,
                                                          self.V)
        return self._patterns[key]

    def run_pass(self, shard, inputs):
        """E-step over the documents [start, stop) = ``shard`` with the ``inputs`` of
        ``Topics.pass_inputs``; gamma (inputs["gamma"]) is updated in place.

        Returns Statistics of ``bound_terms`` [word term, document term] (zeros unless
        ``bound``), ``n_docs`` and, with ``stats``, ``topic_word`` (K, V) = B^T * expected
        topic-word counts (topic-major, as lambda)."""
        start, stop = shard
        X = self.X
        n = stop - start
        stats = inputs["stats"]
        bnd = np.empty((_n_groups(n), 2))
        indptr = X.indptr[start:stop + 1]
        nnz = int(indptr[-1] - indptr[0])
        threads = threads_for(self.n_threads, nnz, _MIN_NNZ_PER_THREAD, n_groups=bnd.shape[0])
        t = np.empty((n, self.K) if stats else (0, 0))
        ratio = self._ratio if stats else np.empty(0)
        B = inputs["B"]
        _lda.lda_pass(indptr, X.indices, X.data, B, inputs["logB"], inputs["gamma"],
                      inputs["alpha"], inputs["max_iter"], inputs["tol"], _EPS, ratio, t, bnd,
                      threads, inputs["fast"], inputs["gamma_prev"], inputs["topic_max"])
        fields = {"bound_terms": bnd.sum(axis=0), "n_docs": n}
        if stats:
            # topic-major, lambda's layout: the batch update adds eta in place (no K x V
            # transpose into a new array); ~2 ms of work at K = 20, so two threads only
            # while the other core is idle
            suff = np.empty((self.K, self.V))
            stats_threads = self.region_threads(nnz, _BUSY_MINI_BATCH_FACTOR
                                                * _MIN_NNZ_PER_THREAD, _MIN_NNZ_PER_THREAD_IDLE)
            if self.K * self.V <= _MAX_ENTRIES_BY_DOCUMENT:
                # the same sums document by document into a (V, K) workspace that stays in
                # L2: no word-major pattern to build (K = 20, V = 10,000: 2.3 ms against
                # the pattern's 2.7 + the sums' 1.4)
                _lda.word_topic_stats_by_document(indptr, X.indices, ratio, t, B,
                                                  np.empty((self.V, self.K)), suff,
                                                  stats_threads)
            else:
                _lda.word_topic_stats(*self._pattern(start, stop), ratio, t, B, suff,
                                      stats_threads, topic_major=True)
            fields["topic_word"] = suff
        return Statistics(**fields)


class MiniBatchData(DocumentData):
    """``DocumentData`` for the online methods: each mini-batch also has its own vocabulary
    (the sorted distinct words of its documents), its CSR column indices renumbered into it
    and the word-major pattern of those (built once, reused every epoch), so that a pass fed
    the topics at the mini-batch's words only (``inputs["words"]``, see ``OnlineTopics``)
    costs O(its non-zeros x K) and returns ``word_topic`` of shape (V_b, K) for its V_b words
    instead of (V, K). Passes without ``words`` (every document, for the bound or
    predictions) are ``DocumentData``'s."""

    def __init__(self, X, n_components, n_threads, batch_size):
        super().__init__(X, n_components, n_threads, batch_size, stats=False)
        self._batches = {}
        # the passes' outputs, allocated once for the largest mini-batch and reused: a
        # mini-batch's pass allocates no arrays of its size (fresh pages cost page faults and
        # zeroing every time). Each pass's ``word_topic`` is a view of ``_suff``, valid until
        # the next pass: the loop hands it to the method's update first.
        self._batch_ratio = np.empty(0)
        self._t = np.empty((0, n_components))
        self._suff = np.empty((0, n_components))
        self.region_threads = ShortRegionThreads(n_threads)

    def _batch(self, shard):
        if shard not in self._batches:
            start, stop = shard
            X = self.X
            p0, p1 = int(X.indptr[start]), int(X.indptr[stop])
            words, local = np.unique(X.indices[p0:p1], return_inverse=True)
            indptr = X.indptr[start:stop + 1] - X.indptr[start]
            local = local.reshape(-1).astype(indptr.dtype)
            self._batches[shard] = (words.astype(np.int64), indptr, local, X.data[p0:p1],
                                    _lda.word_major_pattern(indptr, local, words.size))
        return self._batches[shard]

    def vocabulary(self, shard):
        """The mini-batch's words: (V_b,) int64, sorted."""
        return self._batch(shard)[0]

    def run_pass(self, shard, inputs):
        """As ``DocumentData.run_pass``; with ``inputs["words"]`` (this shard's
        ``vocabulary``) B, logB and topic_max are the topics at those words, and
        ``word_topic`` is (V_b, K), row i for word words[i]."""
        if "words" not in inputs:
            return super().run_pass(shard, inputs)
        start, stop = shard
        words, indptr, indices, counts, pattern = self._batch(shard)
        n = stop - start
        bnd = np.empty((_n_groups(n), 2))
        threads = self.region_threads(indices.size,
                                      _BUSY_MINI_BATCH_FACTOR * _MIN_NNZ_PER_THREAD,
                                      _MIN_NNZ_PER_THREAD_IDLE, n_groups=bnd.shape[0])
        if self._batch_ratio.size < indices.size:
            self._batch_ratio = np.empty(indices.size)
        if self._t.shape[0] < n:
            self._t = np.empty((n, self.K))
        if self._suff.shape[0] < words.size:
            self._suff = np.empty((words.size, self.K))
        t, ratio = self._t[:n], self._batch_ratio[:indices.size]
        B, log_B = inputs["B"], inputs["logB"]
        if words.size == 0:  # no word at all: a row nobody reads, so that the bound is wanted
            log_B = np.zeros((1, self.K))
            _lda.lda_pass(indptr, indices, counts, _lda.pad_topics(log_B), log_B,
                          inputs["gamma"], inputs["alpha"], inputs["max_iter"], inputs["tol"],
                          _EPS, ratio, t, bnd, threads, inputs["fast"], None,
                          inputs["topic_max"])
            return Statistics(bound_terms=bnd.sum(axis=0), n_docs=n,
                              word_topic=np.empty((0, self.K)))
        _lda.lda_pass(indptr, indices, counts, B, log_B, inputs["gamma"],
                      inputs["alpha"], inputs["max_iter"], inputs["tol"], _EPS, ratio, t, bnd,
                      threads, inputs["fast"], None, inputs["topic_max"])
        suff = self._suff[:words.size]
        _lda.word_topic_stats(*pattern, ratio, t, B, suff, threads)
        return Statistics(bound_terms=bnd.sum(axis=0), n_docs=n, word_topic=suff)


class BlockGamma:
    """The starting gamma of a pass over documents read by blocks, block by block: ``starts``
    per block None (ones) or the state of the random stream where the block's draws begin
    (the block's task draws them itself: the draws of the one (N, K) call in memory, and no
    (N, K) array on the client); with ``keep`` the pass stores each block's final gamma in
    ``final`` (the next pass's ``gamma_prev`` for ``monotone``)."""

    def __init__(self, starts, keep):
        self.starts = starts
        self.keep = keep
        self.final = None


class BlockedDocumentData(DocumentData):
    """``DocumentData`` over ``Rows`` (``vbfast._core.blocks``): an out-of-core array read
    block by block, or a dask array whose blocks (persisted as CSR) are passed where they
    live. The results are the bits of the pass over the CSR matrix in memory:

    - each block's documents go through ``lda_pass`` with one bound slot per document, and
      the client adds the documents' terms into the in-memory pass's group slots (groups of
      the whole data, ``_n_groups``) in document order (``_group_bound``);
    - the word-topic statistics are one sum per (word, topic) over the documents in order
      (``word_topic_stats``): each block's sum continues the previous block's
      (``Rows.map_fold``; on Dask a chain of tasks on the workers, each block's ratios and
      t staying where they were made), scaled by B on the client;
    - a batch pass's random starting gamma is drawn by each block's task from the stream's
      state at the block (``BlockGamma``).

    So blocks may start anywhere (a dask array keeps its row chunks). Online learning's
    mini-batches: blocks of whole mini-batches (a dask array is rechunked to them once), each
    mini-batch one task on its block, as ``DocumentData.run_pass`` on its rows."""

    def __init__(self, rows, n_components, n_threads, batch_size=None, stats=True):
        self.rows = rows
        self.K = n_components
        self.N, self.V = rows.shape
        self.n_threads = n_threads
        self.stats = stats
        n = self.N
        step = max(1, n if batch_size is None else batch_size)
        self._shards = [(start, min(start + step, n)) for start in range(0, n, step)]
        self.everything = (0, n)
        self.n_docs = n
        self.online = batch_size is not None and step < n
        if isinstance(rows, DaskRows):
            plan = rows.chunk_plan()
            if self.online:  # blocks of whole mini-batches, about the chunks' size
                per = max(1, int(np.median([b - a for a, b, _, _ in plan])) // step)
                plan = _even_plan(n, per * step)
        else:
            per_block = rows_per_read(self.V * rows.dtype.itemsize)
            plan = _even_plan(n, max(1, per_block // step) * step if self.online
                              else per_block)
        self.plan = plan
        self._block_rows = plan[0][1] - plan[0][0] if plan else 1
        self._word_count = None

    def word_count(self):
        """The sum of the counts (float64 per block, added in block order)."""
        if self._word_count is None:
            parts = self.rows.map(self.plan, _block_word_count)
            self._word_count = float(np.sum(parts, dtype=np.float64)) if parts else 0.0
        return self._word_count

    def start_gamma(self, shard, random_state, K, keep=False):
        if shard != self.everything or not self.plan:
            return super().start_gamma(shard, random_state, K, keep)
        starts = []
        for start, stop, _, _ in self.plan:
            if random_state is None:
                starts.append(None)
            else:  # the state at the block, then the block's draws to move past them
                starts.append(random_state.get_state())
                legacy_gamma(random_state, 100.0, 0.01, (stop - start, K))
        return BlockGamma(starts, keep)

    def _topic_args(self, inputs):
        """The topics' arrays a task needs: B (V, Kp), topic_max and E[log beta] (K, V)
        (the pass reads its transpose; empty without the bound)."""
        logB = inputs["logB"]
        return (inputs["B"], inputs["topic_max"],
                logB.T if logB.shape[0] else None)

    def run_pass(self, shard, inputs):
        if shard != self.everything:
            return self._run_minibatch(shard, inputs)
        gamma, prev = inputs["gamma"], inputs["gamma_prev"]
        stats = inputs["stats"]
        B, topic_max, elog = self._topic_args(inputs)
        per_block = [(b, stop - start, gamma.starts[b], None if prev is None else prev.final[b])
                     for b, (start, stop, _, _) in enumerate(self.plan)]
        shared = (B, topic_max, elog, inputs["alpha"], inputs["max_iter"], inputs["tol"],
                  inputs["fast"], gamma.keep, stats, self.n_threads)
        if stats:
            outs, acc = self.rows.map_fold(self.plan, _block_pass, _block_word_topic,
                                           per_block, shared, (B, self.n_threads))
        else:
            outs = self.rows.map(self.plan, _block_pass_out, per_block, shared)
        if gamma.keep:
            gamma.final = [g for _, g in outs]
        fields = {"bound_terms": _group_bound([t for t, _ in outs], self.N),
                  "n_docs": self.N}
        if stats:
            if acc is None:
                acc = np.zeros((self.V, self.K))
            fields["word_topic"] = np.multiply(acc, B[:, :self.K], out=acc)
        return Statistics(**fields)

    def _run_minibatch(self, shard, inputs):
        start, stop = shard
        b = start // self._block_rows
        offset = self.plan[b][0]
        B, topic_max, elog = self._topic_args(inputs)
        bound_terms, suff = self.rows.map_part(
            self.plan, b, _minibatch_pass,
            (start - offset, stop - offset, inputs["gamma"], B, topic_max, elog,
             inputs["alpha"], inputs["max_iter"], inputs["tol"], inputs["fast"],
             inputs["stats"], self.n_threads))
        fields = {"bound_terms": bound_terms, "n_docs": stop - start}
        if inputs["stats"]:
            fields["word_topic"] = suff
        return Statistics(**fields)


def _even_plan(n, step):
    """Blocks of ``step`` rows (the last shorter), in ``Rows``' plan format."""
    return tuple((a, min(a + step, n), i, i + 1) for i, a in enumerate(range(0, n, step)))


def _group_bound(term_blocks, n_docs):
    """The bound terms [word, doc] of the in-memory pass over ``n_docs`` documents, from
    the documents' own terms given block by block ((n_b, 2) each, in document order): each
    group's slot is the sequential sum of its documents' terms (``np.add.accumulate``, as
    the kernel adds them), the slots summed as ``DocumentData.run_pass`` sums them."""
    G = _n_groups(n_docs)
    per_group = -(-n_docs // G)
    slots = np.zeros((G, 2))
    pos = 0
    for terms in term_blocks:
        i, n = 0, terms.shape[0]
        while i < n:
            g = (pos + i) // per_group
            end = min(n, (g + 1) * per_group - pos)
            slots[g] = np.add.accumulate(np.vstack([slots[g:g + 1], terms[i:end]]),
                                         axis=0)[-1]
            i = end
        pos += n
    return slots.sum(axis=0)


def _sweep_layout(B, K):
    """B as the sweep wants it (64-byte aligned, ``pad_topics``): a copy sent to a Dask
    worker may have lost the alignment (the same values either way)."""
    return B if _lda.is_aligned(B) else _lda.pad_topics(B[:, :K])


def _start_of(start, n, K):
    """A block's starting gamma: ones (start None) or draws from the stream's state."""
    if start is None:
        return np.ones((n, K))
    rs = np.random.RandomState()
    rs.set_state(start)
    return legacy_gamma(rs, 100.0, 0.01, (n, K))


def _check_block_shape(X, index, n_rows, V):
    """A block must have the rows its chunk declares and X's columns (a dask array built from
    pieces may hold a block of another shape)."""
    if X.shape != (n_rows, V):
        raise ValueError(f"X's block {index} has shape {X.shape}, but the array declares "
                         f"({n_rows}, {V}) for it: every block needs the {V} columns (words) "
                         "of X and the rows of its chunk.")


def _block_pass(X_b, index, n_rows, start, gamma_prev, B, topic_max, elog, alpha, max_iter,
                tol, fast, keep, stats, n_threads):
    """One block's documents through ``lda_pass`` (a module-level function of arrays: a Dask
    task runs it where the block lives), one bound slot per document. Returns
    ((terms (n, 2), final gamma if ``keep``), carry): carry = (indptr, indices, ratio, t),
    what ``_block_word_topic`` needs, or None without ``stats``."""
    X = csr_block(X_b)
    _check_block_shape(X, index, n_rows, B.shape[0])
    n, K = X.shape[0], topic_max.shape[0]
    B = _sweep_layout(B, K)
    gamma = _start_of(start, n, K)
    if n == 0:
        return (np.zeros((0, 2)), gamma if keep else None), \
            ((X.indptr, X.indices, np.empty(0), np.empty((0, K))) if stats else None)
    terms = np.empty((n, 2))
    ratio = np.empty(X.nnz) if stats else np.empty(0)
    t = np.empty((n, K) if stats else (0, 0))
    threads = threads_for(n_threads, X.nnz, _MIN_NNZ_PER_THREAD, n_groups=n)
    _lda.lda_pass(X.indptr, X.indices, X.data, B,
                  elog.T if elog is not None else np.empty((0, 0)), gamma, alpha, max_iter,
                  tol, _EPS, ratio, t, terms, threads, fast, gamma_prev, topic_max)
    if elog is None:
        terms[:] = 0.0
    return (terms, gamma if keep else None), \
        ((X.indptr, X.indices, ratio, t) if stats else None)


def _block_pass_out(*args):
    """``_block_pass`` without the carry (passes without statistics)."""
    return _block_pass(*args)[0]


def _block_word_topic(acc, X_b, carry, B, n_threads):
    """The word-topic sums over the documents before this block (``acc``, None for the
    first) continued over this block's documents (unscaled; ``word_topic_stats``)."""
    indptr, indices, ratio, t = carry
    V, K = B.shape[0], t.shape[1]
    acc = np.zeros((V, K)) if acc is None else acc
    if t.shape[0]:
        threads = threads_for(n_threads, ratio.shape[0], _MIN_NNZ_PER_THREAD)
        _lda.word_topic_stats(*_lda.word_major_pattern(indptr, indices, V), ratio, t, B, acc,
                              threads, accumulate=True, scale=False)
    return acc


def _minibatch_pass(X_b, lo, hi, gamma, B, topic_max, elog, alpha, max_iter, tol, fast,
                    stats, n_threads):
    """Documents [lo, hi) of a block as ``DocumentData.run_pass`` passes a mini-batch:
    (bound terms [word, doc], word-topic statistics (V, K) or None)."""
    X = csr_block(X_b[lo:hi])
    n, K, V = X.shape[0], topic_max.shape[0], B.shape[0]
    B = _sweep_layout(B, K)
    bnd = np.empty((_n_groups(n), 2))
    threads = threads_for(n_threads, X.nnz, _MIN_NNZ_PER_THREAD, n_groups=bnd.shape[0])
    ratio = np.empty(X.nnz) if stats else np.empty(0)
    t = np.empty((n, K) if stats else (0, 0))
    _lda.lda_pass(X.indptr, X.indices, X.data, B,
                  elog.T if elog is not None else np.empty((0, 0)), gamma, alpha, max_iter,
                  tol, _EPS, ratio, t, bnd, threads, fast, None, topic_max)
    suff = None
    if stats:
        suff = np.empty((V, K))
        _lda.word_topic_stats(*_lda.word_major_pattern(X.indptr, X.indices, V), ratio, t, B,
                              suff, threads)
    return bnd.sum(axis=0), suff


def _block_word_count(X_b):
    """A block's sum of counts in float64."""
    return float(np.sum(csr_block(X_b).data, dtype=np.float64))


def _block_documents(X_b, B, topic_max, elog, alpha, max_iter, tol, fast, normalize, dtype,
                     n_threads, block_info=None):
    """Predictions of one block (a Dask task, block by block; or a block read from an
    out-of-core array): with ``elog`` None the (n, K) document-topic distribution
    (``transform``), else the documents' (n, 3) [word term, doc term, words] for ``score``
    and ``perplexity``. The block's counts are checked first (the error names the block)."""
    flaw = count_flaw(X_b)
    if flaw is not None:
        where = ""
        if block_info is not None and 0 in block_info:
            where = f" in block {block_info[0]['chunk-location'][0]}"
        raise ValueError(f"X contains {flaw}{where}; document-term counts must be finite "
                         "and >= 0.")
    X = csr_block(X_b)
    if block_info is not None and 0 in block_info:
        (start, stop), _ = block_info[0]["array-location"]
        _check_block_shape(X, block_info[0]["chunk-location"][0], stop - start, B.shape[0])
    n, K = X.shape[0], topic_max.shape[0]
    B = _sweep_layout(B, K)
    gamma = np.ones((n, K))
    if n == 0:
        return np.empty((0, K if elog is None else 3), dtype=dtype)
    terms = np.empty((n, 2))
    threads = threads_for(n_threads, X.nnz, _MIN_NNZ_PER_THREAD, n_groups=n)
    _lda.lda_pass(X.indptr, X.indices, X.data, B,
                  elog.T if elog is not None else np.empty((0, 0)), gamma, alpha, max_iter,
                  tol, _EPS, np.empty(0), np.empty((0, 0)), terms, threads, fast, None,
                  topic_max)
    if elog is not None:
        words = np.asarray(X.sum(axis=1), dtype=np.float64).reshape(n, 1)
        return np.hstack([terms, words])
    if normalize:
        gamma /= gamma.sum(axis=1)[:, np.newaxis]
    return gamma.astype(dtype, copy=False)


class Topics:
    """lambda (K, V) and what the pass needs from it: exp(E[log beta]) (mean field) or beta
    itself (point topics) as ``exp_beta``, its log ``elog_beta``, the per-topic max of B, and
    the bound's topic term. Built once per lambda and never changed.

    Three K x V arrays and no more (at V = 1e6 each is 8 K MB): ``lam``, ``elog_beta`` and
    the word-major padded B the pass sweeps; ``exp_beta`` is a (K, V) view of that B and
    ``log_B`` a (V, K) view of ``elog_beta``.

    A fitted estimator also records on its stored topics what predictions need besides them
    (``alpha``, ``method``), so that a prediction reads one object (see
    ``LatentDirichletAllocation._fitted_state``)."""

    alpha = None
    method = None

    def __init__(self, lam, mean_field, eta, fast, n_threads, threads=None):
        lam = np.ascontiguousarray(lam, dtype=np.float64)
        self.lam = lam
        self.mean_field = mean_field
        self.eta = eta
        self._topic_term = None
        if mean_field and threads is None:  # the caller's choice, else the data-size rule
            threads = threads_for(n_threads, lam.size, _MIN_ENTRIES_PER_THREAD)
        if mean_field and not fast:
            # E[log beta], the pass's padded B, its per-topic max and the topic term in one
            # sweep over K x V, topics or word chunks in parallel (the term None: scipy's
            # gammaln for it, see topic_term)
            self.elog_beta, self._B, self.topic_max, self._topic_term = \
                _lda.mean_field_topics(lam, eta, threads)
            return
        if mean_field:
            # E[log beta] and its exp with scikit-learn's digamma
            self.elog_beta, exp_beta = _lda.dirichlet_expectation(lam, fast, threads)
        else:
            exp_beta = lam / lam.sum(axis=1, keepdims=True)
            with np.errstate(divide="ignore"):
                self.elog_beta = np.log(exp_beta)
        # max_w B_wk, for the pass's check when it skips a document's dead topics
        self.topic_max = exp_beta.max(axis=1)
        self._B = _lda.pad_topics(exp_beta.T)  # (V, Kp); exp_beta is kept only as its view

    @property
    def exp_beta(self):
        """exp(E[log beta]) (mean field) or beta: (K, V), a view of the pass's padded B."""
        return self._B[:, :self.lam.shape[0]].T

    @property
    def K(self):
        return self.lam.shape[0]

    @property
    def V(self):
        return self.lam.shape[1]

    def sweep_B(self):
        """exp(E[log beta]) word-major, padded and 64-byte aligned for the pass (an unpickled
        model's copy may have lost the alignment: padded again once)."""
        B = self._B
        if B.shape[1] % 4 or not _lda.is_aligned(B):
            self._B = B = _lda.pad_topics(self.exp_beta.T)
        return B

    def log_B(self):
        """E[log beta] word-major, (V, K): a strided view (the pass reads it only where the
        bound's exp underflows), not a copy."""
        return self.elog_beta.T

    def topic_term(self):
        """The bound's topic part: E[log p(beta|eta)] - E[log q(beta)] (mean field), or the
        log prior sum eta log beta of the MAP objective (point topics)."""
        # (mean field with the accurate digamma: computed with E[log beta] when the topics
        # were built, ``_lda.mean_field_topics``; else, or out of its range, here)
        if self._topic_term is None:  # a K x V sum: once per topics
            if self.mean_field:
                self._topic_term = _dirichlet_loglik(self.eta, self.lam, self.elog_beta,
                                                     self.lam.shape[1])
            else:
                with np.errstate(invalid="ignore"):
                    self._topic_term = float(np.sum(self.eta * self.elog_beta))
        return self._topic_term

    def pass_inputs(self, gamma, alpha, max_iter, tol, fast, stats, bound, gamma_prev=None):
        """The pass's inputs at these topics, starting the documents from ``gamma`` (with
        ``gamma_prev`` each keeps the better of its new gamma and gamma_prev: see
        ``_lda.lda_pass``)."""
        return {"B": self.sweep_B(), "topic_max": self.topic_max,
                "logB": self.log_B() if bound else np.empty((0, 0)), "gamma": gamma,
                "alpha": float(alpha), "max_iter": int(max_iter), "tol": float(tol),
                "fast": bool(fast), "stats": stats, "gamma_prev": gamma_prev}


# An online fit folds scale and shift into mu before scale falls below this (it shrinks by
# 1 - rho a step), so that mu's entries, which grow as 1 / scale, stay far from overflow.
_MIN_SCALE = 1e-100


class OnlineTopics:
    """lambda during an online fit, in a form whose stochastic step costs O(V_b K) for a
    mini-batch of V_b distinct words instead of O(V K).

    The step lambda <- (1 - rho) lambda + rho (eta + D / |b| S), S the mini-batch's expected
    counts (zero outside its words), moves every entry by the same affine map x -> (1 - rho) x
    + rho eta and adds rho D / |b| S on the batch's words. So lambda is kept as

        lambda_kw = scale mu_wk + shift,    mu (V, K) word-major,

    with the topics' totals sum_w lambda_kw = scale sum_w mu_wk + V shift (the sums of mu
    kept up to date): a step updates scale, shift and the rows of mu at the batch's words, and
    the pass gets E[log beta] (or beta) at the next mini-batch's words only
    (``_lda_online.gather_topics``, into buffers kept for the fit). ``topics`` builds the
    whole ``Topics`` (for the bound, predictions, ``components_``) and folds scale and shift
    back into mu, so that rounding does not accumulate in them from one epoch to the next. The values equal the dense
    update's up to rounding (a few ulps).

    ``topics``: lambda as ``Topics`` when the caller has it (a fitted model continued), else
    None (a fresh fit's random lambda: its E[log beta] over K x V is never needed).
    ``region_threads`` (a ``ShortRegionThreads``, or None): the threads of its K x V and
    mini-batch regions, else ``threads_for``'s data-size rule."""

    def __init__(self, lam, mean_field, eta, fast, n_threads, topics=None,
                 region_threads=None):
        self.mean_field = mean_field
        self.eta = eta
        self.fast = fast
        self.n_threads = n_threads
        self.region_threads = region_threads
        self.mu = np.ascontiguousarray(lam.T)  # a copy: the caller's lambda stays
        self.scale, self.shift = 1.0, 0.0
        self.mu_totals = lam.sum(axis=1)
        self._topics = topics  # lambda as Topics while it is current, else None
        # the pass's inputs at a mini-batch's words, allocated once and grown to the largest
        # mini-batch (``at_words(..., reuse=True)``): B zero-padded and aligned for the pass
        self._B = _lda.pad_topics(np.zeros((0, self.K)))
        self._log_B = np.empty((0, self.K))

    @property
    def K(self):
        return self.mu.shape[1]

    @property
    def V(self):
        return self.mu.shape[0]

    def totals(self):
        """(K,) sum_w lambda_kw."""
        return self.scale * self.mu_totals + self.V * self.shift

    def _threads(self, entries):
        """Threads of a region over ``entries`` (word, topic) entries."""
        if self.region_threads is not None:
            return self.region_threads(entries, _MIN_ENTRIES_PER_THREAD,
                                       _MIN_ENTRIES_PER_THREAD_IDLE)
        return threads_for(self.n_threads, entries, _MIN_ENTRIES_PER_THREAD)

    def at_words(self, words, reuse=False):
        """The pass's B (V_b, Kp), logB (V_b, K) and topic_max (K,) at ``words`` only: the
        maximum over those words bounds a dead topic's share in the pass just as well, since
        the mini-batch has no other words.

        With ``reuse`` B and logB are views of buffers kept for the next call (valid until
        then: a mini-batch's pass reads them before the next step), else new arrays."""
        Vb, K = words.size, self.K
        if reuse:
            if self._B.shape[0] < Vb:
                self._B = _lda.pad_topics(np.zeros((Vb, K)))
                self._log_B = np.empty((Vb, K))
            B, log_B = self._B[:Vb], self._log_B[:Vb]
        else:
            B, log_B = _lda.pad_topics(np.zeros((Vb, K))), np.empty((Vb, K))
        topic_max = np.empty(K)
        _lda_online.gather_topics(self.mu, words, self.scale, self.shift, self.totals(),
                                  self.mean_field, self.fast, B, log_B, topic_max,
                                  self._threads(Vb * K))
        return B, log_B, topic_max

    def step(self, words, word_topic, weight, doc_ratio):
        """lambda <- (1 - weight) lambda + weight (eta + doc_ratio S), S = ``word_topic``
        (V_b, K) at ``words`` and zero elsewhere."""
        scale = self.scale * (1.0 - weight)
        if not scale >= _MIN_SCALE:  # (weight 1 with learning_decay=0) fold, step densely
            self._fold()
            self.mu *= 1.0 - weight
            self.mu += weight * self.eta
            self.mu[words] += (weight * doc_ratio) * word_topic
            self.mu_totals = self.mu.sum(axis=0)
        else:
            self.shift = self.shift * (1.0 - weight) + weight * self.eta
            self.scale = scale
            _lda.add_rows(self.mu, words, word_topic, weight * doc_ratio / scale,
                          self.mu_totals)
        self._topics = None

    def _fold(self):
        """mu <- lambda (scale 1, shift 0)."""
        if self.scale != 1.0 or self.shift != 0.0:
            self.mu *= self.scale
            self.mu += self.shift
            self.scale, self.shift = 1.0, 0.0

    def topic_term(self):
        """``Topics.topic_term`` at the current lambda, from mu word-major (no K x V
        transposes or padded copies: the bound of every epoch of a fit needs this alone)."""
        if self._topics is not None:
            return self._topics.topic_term()
        self._fold()
        self.mu_totals = self.mu.sum(axis=0)  # afresh: no rounding carried over
        return _lda.topic_term_word_major(self.mu, self.mu_totals, self.eta, self.mean_field,
                                          self.fast, self._threads(self.mu.size))

    def topics(self):
        """lambda as ``Topics`` (built once per lambda), scale and shift folded into mu."""
        if self._topics is None:
            lam = np.empty((self.K, self.V))
            np.multiply(self.mu.T, self.scale, out=lam)
            lam += self.shift
            self._fold()  # the same two roundings: mu is lam.T exactly
            self.mu_totals = lam.sum(axis=1)
            self._topics = Topics(lam, self.mean_field, self.eta, self.fast, self.n_threads,
                                  self._threads(lam.size))
        return self._topics


def infer(data, topics, alpha, max_iter, tol, fast, bound):
    """The document-topic parameters gamma of every document of ``data`` from the
    deterministic (ones) start, and the documents' bound terms (0 unless ``bound``)."""
    gamma = data.start_gamma(data.everything, None, data.K)
    stats = data.run_pass(data.everything, topics.pass_inputs(gamma, alpha, max_iter, tol, fast,
                                                              False, bound))
    bnd = stats.bound_terms
    return gamma, float(bnd[0] + bnd[1])


class MeanField(Method):
    """Mean-field variational Bayes for LDA: q(theta_d) q(z_d) per document and a Dirichlet
    q(beta_k) = Dir(lambda_k) per topic; the pass is fed exp(E[log beta]).

    Batch (``online=False``): one shard, every document; the update sets lambda = eta + the
    expected counts, and the bound is the ELBO at the topics the pass ran at. Online: the
    shards are mini-batches, each update a stochastic step lambda <- (1 - rho) lambda +
    rho (eta + total_samples / n_batch expected counts), rho = (learning_offset +
    n_batch_iter)^-learning_decay; the bound is the sum over the epoch's mini-batches of the
    documents' terms (each at the topics of its time), plus the topic term at the end (with
    ``scale_bound``, the documents' terms scaled to ``total_samples``, as ``partial_fit``).

    Each pass starts every document from a fresh random gamma (as scikit-learn); with
    ``keep_better`` (batch ``monotone``) each keeps the better of it and its previous
    gamma, so that the bound never decreases.

    ``converged`` is LDA's rule: every ``evaluate_every`` iterations (if > 0) the perplexity
    of the whole data at the current topics, converged when it moved less than ``perp_tol``.
    """

    mean_field = True
    bound_kind = "ELBO"
    overflow_advice = "Check the counts of X and the priors."
    # scikit-learn's LDA does not warn at max_iter: without evaluate_every it has no
    # convergence check at all
    warns_not_converged = False

    def __init__(self, data, topics, random_state, *, alpha, eta, max_doc_update_iter,
                 mean_change_tol, fast, n_threads, online=False, learning_offset=10.0,
                 learning_decay=0.7, total_samples=None, n_batch_iter=1, keep_better=False,
                 evaluate_every=-1, perp_tol=0.1, max_iter=10, verbose=0, scale_bound=False):
        self.data = data
        self.topics = topics
        self.random_state = random_state
        self.alpha, self.eta = alpha, eta
        self.max_doc_update_iter = max_doc_update_iter
        self.mean_change_tol = mean_change_tol
        self.fast = fast
        self.n_threads = n_threads
        self.online = online
        self.learning_offset, self.learning_decay = learning_offset, learning_decay
        self.total_samples = total_samples
        self.n_batch_iter = n_batch_iter
        self.keep_better = keep_better
        self.monotone = keep_better  # only then does the bound never decrease
        self.evaluate_every, self.perp_tol = evaluate_every, perp_tol
        self.max_iter, self.verbose = max_iter, verbose
        self.scale_bound = scale_bound
        self.perplexity_converged = False
        self._last_perplexity = None
        self._gamma = None
        self._doc_bound = 0.0
        self._topic_before = None
        # Online: lambda in the lazy form whose step costs O(mini-batch), made whole as Topics
        # only for the bound and the fitted attributes (``_current_topics``).
        self._online = None
        if online:
            region_threads = getattr(data, "region_threads", None)
            if isinstance(topics, OnlineTopics):
                topics.region_threads = region_threads
                self._online = topics
            else:
                self._online = OnlineTopics(topics.lam, topics.mean_field, topics.eta, fast,
                                            n_threads, topics, region_threads)
        self._batch_words = None
        if online:
            self.topics = None

    def start_iteration(self):
        self._doc_bound = 0.0
        if not self.online:
            # the pass computes the documents' terms at the topics before the update: with
            # the topic term at those topics this is the ELBO of that point
            self._topic_before = self.topics.topic_term()

    def _current_topics(self):
        """The topics now, as ``Topics`` (online: built from ``OnlineTopics`` if stale)."""
        return self._online.topics() if self.online else self.topics

    def pass_inputs(self, shard):
        gamma = self.data.start_gamma(shard, self.random_state, self.data.K,
                                      self.keep_better)
        if self.online:
            # the topics at the mini-batch's words only (MiniBatchData.run_pass); documents
            # read by blocks (BlockedDocumentData) get them at every word, the same values
            local = isinstance(self.data, MiniBatchData)
            words = self._batch_words = (self.data.vocabulary(shard) if local
                                         else np.arange(self.data.V, dtype=np.int64))
            B, log_B, topic_max = self._online.at_words(words, reuse=local)
            inputs = {"B": B, "topic_max": topic_max, "logB": log_B, "gamma": gamma,
                      "alpha": float(self.alpha), "max_iter": int(self.max_doc_update_iter),
                      "tol": float(self.mean_change_tol), "fast": bool(self.fast),
                      "stats": True, "gamma_prev": None}
            if local:
                inputs["words"] = words
            return inputs
        gamma_prev = self._gamma if self.keep_better else None
        self._gamma = gamma
        return self.topics.pass_inputs(gamma, self.alpha, self.max_doc_update_iter,
                                       self.mean_change_tol, self.fast, True, True, gamma_prev)

    def update(self, stats):
        if self.online:
            # the stochastic step on the mini-batch's words (V_b, K) statistics
            weight = np.power(self.learning_offset + self.n_batch_iter, -self.learning_decay)
            doc_ratio = float(self.total_samples) / stats.n_docs
            self._online.step(self._batch_words, stats.fields.pop("word_topic"), weight,
                              doc_ratio)
            bnd = stats.bound_terms
            self._doc_bound += float(bnd[0] + bnd[1])
            self.n_batch_iter += 1
            return
        # the statistics are taken out of ``stats`` (made for this update only): topic-major
        # (K, V) ones (``DocumentData``) become lambda in place, word-major (V, K) ones
        # (documents read by blocks) are freed as soon as lambda is computed: the peak memory
        # counts K x V arrays
        eta = self.eta
        lam = stats.fields.pop("topic_word", None)
        if lam is not None:
            np.add(eta, lam, out=lam)
        else:
            suff = stats.fields.pop("word_topic").T
            lam = np.empty(suff.shape)  # C order: no second copy in Topics
            np.add(eta, suff, out=lam)
            del suff
        bnd = stats.bound_terms
        self._doc_bound = float(bnd[0] + bnd[1])
        # the old topics go before the new ones are built (their three K x V arrays)
        self.topics = None
        threads = (self.data.topics_threads(lam.size) if isinstance(self.data, DocumentData)
                   and not isinstance(self.data, BlockedDocumentData) else None)
        self.topics = Topics(lam, self.mean_field, eta, self.fast, self.n_threads, threads)
        self.n_batch_iter += 1

    def bound(self):
        if not self.online:
            return self._doc_bound + self._topic_before
        doc_bound = self._doc_bound
        if self.scale_bound:
            n = self.data.everything[1] - self.data.everything[0]
            doc_bound = doc_bound * float(self.total_samples) / n
        return doc_bound + self._online.topic_term()

    def converged(self, n_iter, prev_bound, bound, tol):
        if self.evaluate_every > 0 and n_iter % self.evaluate_every == 0:
            topics = self._current_topics()
            _, doc_bound = infer(self.data, topics, self.alpha, self.max_doc_update_iter,
                                 self.mean_change_tol, self.fast, True)
            perplexity = _perplexity(self.data.n_docs, self.data.word_count(), doc_bound,
                                     topics.topic_term())
            if self.verbose:
                print("iteration: %d of max_iter: %d, perplexity: %.4f"
                      % (n_iter, self.max_iter, perplexity))
            if self._last_perplexity and abs(self._last_perplexity - perplexity) < self.perp_tol:
                self.perplexity_converged = True
                return True
            self._last_perplexity = perplexity
        elif self.verbose:
            print("iteration: %d of max_iter: %d" % (n_iter, self.max_iter))
        return False

    def attributes(self):
        return {"topics": self._current_topics(), "n_batch_iter_": self.n_batch_iter,
                "converged_": self.perplexity_converged}


class VariationalEM(MeanField):
    """Variational EM for LDA: q(theta_d) q(z_d) per document, topics beta as a point
    estimate beta_k proportional to lambda_k = eta + expected counts (the MAP estimate under a
    Dirichlet(eta + 1) prior); the pass is fed beta. Batch and online as ``MeanField``."""

    mean_field = False


class LatentDirichletAllocation(TransformerOutputMixin, ParamsMixin):
    """Latent Dirichlet allocation (Blei, Ng, Jordan 2003) by variational inference.

    The per-document updates (the fixed point for gamma_d and phi_dn), the expected topic-word
    counts and the per-document bound terms run in one Cython pass, documents distributed over
    OpenMP threads; results are bitwise identical for any ``n_threads``.

    Methods (the library's ``method`` vocabulary) and how they map to scikit-learn:

    ``method='mean_field'`` (default)
        Mean field over the topics too: a Dirichlet q(beta_k) = Dir(lambda_k) per topic, with
        ``components_`` = lambda and the E-step fed exp(E[log beta]). With
        ``learning_method='batch'`` this is batch variational Bayes, exactly scikit-learn's
        ``LatentDirichletAllocation(learning_method='batch')`` (same update rules, same random
        draws from ``random_state``); with ``learning_method='online'`` it is the stochastic
        variational inference of Hoffman, Blei & Bach (2010), scikit-learn's 'online'.
    ``method='variational_em'``
        Variational EM with point-estimate topics: q(theta_d) q(z_d) per document, topics
        beta as a point estimate beta_k proportional to eta + expected counts (the MAP
        estimate under a Dirichlet(eta + 1) prior). ``components_`` holds those pseudo-counts
        and ``exp_dirichlet_component_`` holds beta itself (what the E-step is fed).
    ``method='gibbs'``
        Collapsed Gibbs sampling (theta and beta integrated out; ``vbfast.topics._gibbs``)
        from uniformly random topics: the dense full conditional of each token, swept in
        parallel over a documents x vocabulary partition (exact document-topic and
        topic-word counts, only the topic totals stale within a sub-step; blocks from the
        data size only, each pair with its own random stream, so a fit is reproducible and
        bitwise identical for any ``n_threads``). ``n_chains`` chains of
        ``burn_in + n_draws * thin`` sweeps;
        ``components_`` = eta + the topic-word counts averaged over the kept sweeps (chains'
        topics aligned to the first chain's by Hungarian matching, then averaged).
        ``transform``, ``score`` and ``perplexity`` use the variational E-step with these
        posterior-mean topics as point topics, as for 'variational_em'. X must hold integer
        counts.

    Speed: with a small ``doc_topic_prior`` (below about 0.03, e.g. the default 1 / K for
    K >= 35) the topics a document does not use reach gamma_dk = alpha exactly within a few
    sweeps, and its later sweeps skip them (checked at each sweep to change no bit of gamma):
    on 20,000 documents with K = 50 this halves the time of a pass.

    Deliberate differences from scikit-learn: the digamma function is accurate to about 1e-15
    (scikit-learn uses a faster approximation, absolute error up to ~1e-8); float32
    input is computed in float64 (results returned in float32), with float64's machine epsilon
    in the normaliser; ``n_jobs`` is an alias of ``n_threads``.

    Parameters
    ----------
    n_components, doc_topic_prior, topic_word_prior, learning_method, learning_decay,
    learning_offset, max_iter, batch_size, evaluate_every, total_samples, perp_tol,
    mean_change_tol, max_doc_update_iter, verbose, random_state
        As in scikit-learn (priors default to 1 / n_components).
    method : {'mean_field', 'variational_em', 'gibbs'}, default='mean_field'
    monotone : bool, default=False
        Batch learning only. Every batch E-step starts each document from a fresh random gamma
        (as scikit-learn). Each fixed-point sweep raises the document's bound, but a fresh
        start can end in a worse local optimum than the previous pass reached, so the bound
        can decrease from one pass to the next. With ``monotone=True`` each document keeps
        whichever of its new gamma and its previous pass's gamma has the higher bound at the
        current topics: the bound then never decreases (a decrease is a bug and warns, or
        raises under ``vbfast.config_context(bound_decrease='raise')``). The greedy rule
        explores less: on the corpora we measured (gensim's Lee corpus, K=8; a synthetic
        2,000-document corpus, K=20; 10 passes, 3 seeds) the default reached a higher ELBO in
        every run and a held-out perplexity 3-10 % lower, hence the default.
    n_threads : int or None, default=None (all cores); negative counts back from all cores.
    n_jobs : int or None, default=None
        Alias of ``n_threads`` with scikit-learn's name, so that code written for scikit-learn
        runs unchanged: None means ``n_threads``' default (all cores, not joblib's one), -1 all
        cores, -2 all but one. Give ``n_threads`` or ``n_jobs``, not two different values.
    n_draws, burn_in, thin, n_chains : int, default=100, 200, 1, 1
        method='gibbs' only: sweeps kept per chain, sweeps discarded first, keep every
        ``thin``-th sweep after the burn-in, independent chains.
    store_samples : bool, default=False
        method='gibbs' only: keep every kept sweep's topic-word counts in
        ``posterior_samples_`` (n_chains * n_draws * K * V int32s).

    Attributes
    ----------
    components_ : (n_components, n_features) variational parameters lambda (mean field) or
        topic pseudo-counts (variational EM); normalise the rows for topic-word probabilities.
    exp_dirichlet_component_ : exp(E[log beta]) (mean field) or beta (variational EM).
    n_iter_, n_batch_iter_, doc_topic_prior_, topic_word_prior_, n_features_in_ : as in
        scikit-learn.
    bound_ : final perplexity on the training data (scikit-learn's meaning of ``bound_``);
        inf if the training data have no words (or so few, e.g. fractional counts ~1e-150,
        that it overflows).
    lower_bound_ : the ELBO of the training data at the fitted topics (from the same final
        E-step as ``bound_``).
    converged_ : whether the perplexity check (``evaluate_every`` > 0) stopped the fit before
        ``max_iter``.
    lower_bounds_ : (n_iter_,) array, the variational bound (ELBO) of each iteration, from the
        training passes themselves (for 'online', the sum over mini-batches of one epoch, each
        at the topics of its time, plus the topic term at the end of the epoch).
    iteration_times_ : wall time of each iteration in seconds.

    method='gibbs' also sets (``lower_bounds_`` then holds the first chain's log joint
    log p(w, z) after each sweep, ``lower_bound_`` its last value: not a bound, and not
    monotone; ``n_iter_`` is the number of sweeps per chain; ``iteration_times_`` are per
    sweep of all chains; ``converged_`` is True when the log joint's split-R-hat is below
    1.05):

    log_joint_trace_ : (n_chains, n_sweeps) log p(w, z) after every sweep of every chain.
    sampler_diagnostics_ : dict, {"rhat": {"log_joint": float}, "ess": {"log_joint": float},
        "max_rhat": float}: split-R-hat and effective sample size of the log joint over the
        kept sweeps of all chains (NaN with fewer than 4 kept sweeps). The log joint does not
        depend on the topics' labels, so label switching does not affect them.
    chain_topic_permutations_ : (n_chains, K) the permutation applied to each chain's topics
        to align them with the first chain's.
    posterior_samples_ : (n_chains, n_draws, K, V) int32 topic-word counts n_kw of the
        kept sweeps (aligned), or None unless ``store_samples``; given a draw, beta_k is
        Dirichlet(eta + n_k.).

    Examples
    --------
    From token lists to topics, without another library:

    >>> from vbfast import LatentDirichletAllocation
    >>> from vbfast.text import count_matrix
    >>> docs = [["apple", "banana", "apple"], ["goal", "match", "goal"], ["banana", "apple"]]
    >>> X, vocab = count_matrix(docs)
    >>> lda = LatentDirichletAllocation(n_components=2, random_state=0).fit(X)
    >>> top = [[vocab[j] for j in row.argsort()[::-1][:2]] for row in lda.components_]
    >>> lda.transform(X).shape
    (3, 2)
    """

    _param_names = ("n_components", "doc_topic_prior", "topic_word_prior", "learning_method",
                    "learning_decay", "learning_offset", "max_iter", "batch_size",
                    "evaluate_every", "total_samples", "perp_tol", "mean_change_tol",
                    "max_doc_update_iter", "verbose", "random_state", "method", "n_threads",
                    "monotone", "n_draws", "burn_in", "thin", "n_chains", "store_samples",
                    "n_jobs")
    # set_params and the constructor name the new spelling of a renamed parameter
    _renamed_params = {"n_samples": "n_draws"}

    # 'accurate' (digamma to ~1e-15: the pass's vectorised one, scipy's in Python) or 'sklearn'
    # (scikit-learn's approximation, for tests that reproduce scikit-learn's arithmetic
    # exactly); not a parameter.
    _digamma = "accurate"

    def __init__(self, n_components=10, *, doc_topic_prior=None, topic_word_prior=None,
                 learning_method="batch", learning_decay=0.7, learning_offset=10.0,
                 max_iter=10, batch_size=128, evaluate_every=-1, total_samples=1e6,
                 perp_tol=1e-1, mean_change_tol=1e-3, max_doc_update_iter=100, verbose=0,
                 random_state=None, method="mean_field", n_threads=None, monotone=False,
                 n_draws=100, burn_in=200, thin=1, n_chains=1, store_samples=False,
                 n_jobs=None):
        self.n_components = n_components
        self.doc_topic_prior = doc_topic_prior
        self.topic_word_prior = topic_word_prior
        self.learning_method = learning_method
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.evaluate_every = evaluate_every
        self.total_samples = total_samples
        self.perp_tol = perp_tol
        self.mean_change_tol = mean_change_tol
        self.max_doc_update_iter = max_doc_update_iter
        self.verbose = verbose
        self.random_state = random_state
        self.method = method
        self.n_threads = n_threads
        self.monotone = monotone
        # method='gibbs' only (vbfast.topics._gibbs)
        self.n_draws = n_draws
        self.burn_in = burn_in
        self.thin = thin
        self.n_chains = n_chains
        self.store_samples = store_samples
        self.n_jobs = n_jobs

    def _update_sklearn_tags(self, tags):
        from sklearn.utils import TransformerTags  # optional dependency: only when asked

        tags.transformer_tags = TransformerTags(preserves_dtype=["float32", "float64"])
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True

    # ------------------------------------------------------------------ checks
    def _check_parameters(self):
        check_scalar(self.n_components, "n_components", "int", min_val=1)
        for name in ("doc_topic_prior", "topic_word_prior"):
            if getattr(self, name) is not None:
                check_scalar(getattr(self, name), name, "real", min_val=0.0, include_min=False)
        check_option(self.learning_method, "learning_method", {"batch", "online"})
        check_option(self.method, "method", set(_METHODS))
        if not isinstance(self.monotone, (bool, np.bool_)):
            raise TypeError(f"monotone must be a bool, got {self.monotone!r}")
        check_scalar(self.learning_decay, "learning_decay", "real", min_val=0.0, max_val=1.0)
        check_scalar(self.learning_offset, "learning_offset", "real", min_val=1.0)
        check_scalar(self.max_iter, "max_iter", "int", min_val=0)
        check_scalar(self.batch_size, "batch_size", "int", min_val=1)
        check_scalar(self.evaluate_every, "evaluate_every", "int")
        check_scalar(self.total_samples, "total_samples", "real", min_val=0.0,
                     include_min=False)
        check_scalar(self.perp_tol, "perp_tol", "real", min_val=0.0)
        check_scalar(self.mean_change_tol, "mean_change_tol", "real", min_val=0.0)
        check_scalar(self.max_doc_update_iter, "max_doc_update_iter", "int", min_val=0)
        return resolve_n_threads(self.n_threads, self.n_jobs)

    # ------------------------------------------------------------------ fitting
    def _start(self, X, online=False, threads=None):
        """A fresh model for X: priors, random_state_ and the random initial topics
        (``Topics``; with ``online`` an ``OnlineTopics``, without the K x V E[log beta] that
        the stochastic steps never read)."""
        self.random_state_ = check_random_state(self.random_state)
        self.doc_topic_prior_, self.topic_word_prior_ = priors(
            self.n_components, self.doc_topic_prior, self.topic_word_prior)
        self.n_features_in_ = X.shape[1]
        self._dtype = X.dtype
        self.n_batch_iter_ = 1
        self.n_iter_ = 0
        lam = legacy_gamma(self.random_state_, 100.0, 0.01, (self.n_components, X.shape[1]))
        if online:
            return OnlineTopics(lam, self.method == "mean_field", self.topic_word_prior_,
                                self._digamma == "sklearn",
                                resolve_n_threads(self.n_threads, self.n_jobs))
        return self._topics_of(lam, threads)

    def _topics_of(self, lam, threads=None):
        return Topics(lam, self.method == "mean_field", self.topic_word_prior_,
                      self._digamma == "sklearn", resolve_n_threads(self.n_threads, self.n_jobs),
                      threads)

    def _store_topics(self, topics, method):
        """Store fitted topics, with what predictions need besides them (``_fitted_state``)."""
        topics.alpha = self.doc_topic_prior_
        topics.method = method
        self.components_ = topics.lam.astype(self._dtype, copy=False)
        self.exp_dirichlet_component_ = topics.exp_beta.astype(self._dtype, copy=False)
        self._topics = topics  # last: a prediction reading it sees one whole fit

    def _variational(self, data, topics, **options):
        cls = MeanField if self.method == "mean_field" else VariationalEM
        return cls(data, topics, self.random_state_, alpha=self.doc_topic_prior_,
                   eta=self.topic_word_prior_, max_doc_update_iter=self.max_doc_update_iter,
                   mean_change_tol=self.mean_change_tol, fast=self._digamma == "sklearn",
                   n_threads=data.n_threads, learning_offset=self.learning_offset,
                   learning_decay=self.learning_decay, n_batch_iter=self.n_batch_iter_,
                   **options)

    def _infer(self, data, bound, topics=None):
        topics = self._topics if topics is None else topics
        return infer(data, topics, topics.alpha, self.max_doc_update_iter,
                     self.mean_change_tol, self._digamma == "sklearn", bound)

    @_one_fit_at_a_time
    @all_or_nothing
    def fit(self, X, y=None):
        """Fit the model to the document-term matrix X (sparse or dense counts)."""
        with single_threaded_blas():
            if self.method == "gibbs":
                self._fit_gibbs(X)
            else:
                self._fit(X)
        return self

    def _fit(self, X):
        """Fit by a variational method; return the final (unnormalised) gamma of X, from the
        pass that sets bound_ (X read by blocks: a ``BlockGamma``, not the gamma)."""
        n_threads = self._check_parameters()
        X = _check_documents(X)
        online = self.learning_method == "online"
        data = _document_data(X, self.n_components, n_threads,
                              self.batch_size if online else None)
        # a mini-batch's statistics are scaled up to the corpus, n / (its documents)
        check_total(X, X.shape[0] / min(self.batch_size, X.shape[0]) if online else 1.0,
                    why=" (times n_samples / batch_size for learning_method='online')"
                    if online else "",
                    total=data.word_count() if isinstance(data, BlockedDocumentData) else None)
        # Batch passes redraw gamma at random, as scikit-learn does; with ``monotone`` each
        # document then keeps the better of its new gamma and the previous pass's, so the
        # bound never decreases, which the loop's guard checks. The initial topics are the
        # method's alone (no reference here), so that they are freed at its first update.
        threads = (data.topics_threads(X.shape[1] * self.n_components)
                   if type(data) is DocumentData else None)
        method = self._variational(
            data, self._start(X, online, threads), online=online, total_samples=X.shape[0],
            keep_better=not online and bool(self.monotone), evaluate_every=self.evaluate_every,
            perp_tol=self.perp_tol, max_iter=self.max_iter, verbose=self.verbose)
        result = run_fits(lambda run: method, data, max_iter=self.max_iter)
        store_trace(self, result)
        result_n_iter = result.n_iter
        fitted = result.attributes
        self._store_topics(fitted["topics"], self.method)
        self.n_batch_iter_ = fitted["n_batch_iter_"]
        self.converged_ = fitted["converged_"]
        # scikit-learn's count: the iteration whose perplexity check stopped the fit is not
        self.n_iter_ = result_n_iter - self.converged_
        gamma, doc_bound = self._infer(data, True)
        self.bound_ = _perplexity(data.n_docs, data.word_count(), doc_bound,
                                  self._topics.topic_term())
        self.lower_bound_ = float(doc_bound + self._topics.topic_term())
        return gamma

    def _fit_gibbs(self, X):
        """Fit by collapsed Gibbs sampling (``_gibbs.sample``); return X checked."""
        n_threads = self._check_parameters()
        n_draws, burn_in, thin, n_chains = check_sampler_parameters(self)
        if not isinstance(self.store_samples, (bool, np.bool_)):
            raise TypeError(f"store_samples must be a bool, got {self.store_samples!r}")
        X = check_counts(X)
        alpha, eta = priors(self.n_components, self.doc_topic_prior, self.topic_word_prior)
        result = _gibbs.sample(X, self.n_components, alpha, eta, n_draws=n_draws,
                               burn_in=burn_in, thin=thin, n_chains=n_chains,
                               store_samples=self.store_samples,
                               random_state=self.random_state, n_threads=n_threads,
                               verbose=self.verbose)
        trace = result.log_joint_trace
        self.random_state_ = result.random_state
        self.n_features_in_ = X.shape[1]
        self.doc_topic_prior_, self.topic_word_prior_ = alpha, eta
        self.n_iter_ = trace.shape[1]
        self._dtype = X.dtype
        self.log_joint_trace_ = trace
        self.lower_bounds_ = trace[0].copy()
        self.lower_bound_ = float(trace[0, -1])
        self.iteration_times_ = result.times
        self.chain_topic_permutations_ = result.permutations
        self.posterior_samples_ = result.samples
        self.sampler_diagnostics_ = result.diagnostics
        self.converged_ = result.converged
        self._store_topics(self._topics_of(result.components), "gibbs")
        # perplexity on the training data, as the variational methods; a corpus without a
        # word has none (the limit exp(-bound / n_words) is +inf, as _perplexity takes it)
        self.bound_ = self.perplexity(X) if result.n_tokens else float("inf")
        return X

    @available_if(_variational_method)
    @_one_fit_at_a_time
    @all_or_nothing
    def partial_fit(self, X, y=None):
        """One online (stochastic variational) update per mini-batch of X.

        Only for the variational methods: with ``method='gibbs'`` the estimator has no
        ``partial_fit`` attribute (a collapsed Gibbs chain has no online update).
        The first call (on an unfitted estimator) starts a model; later calls continue the
        fitted one. A model that cannot be continued raises a ValueError, leaving it as it
        is: one fitted by ``method='gibbs'`` (``partial_fit`` is an online variational
        update), or by a method or ``n_components`` other than the current parameters'
        (``set_params`` after the fit); call ``fit`` to start again.
        """
        n_threads = self._check_parameters()
        first_time = not hasattr(self, "_topics")
        if not first_time:
            self._check_continuable()
        X = check_counts(X, n_features=None if first_time else self.n_features_in_)
        check_total(X, float(self.total_samples) / min(self.batch_size, X.shape[0]),
                    why=" (times total_samples / batch_size: each mini-batch stands for "
                    "total_samples documents)")
        if first_time:
            self._store_topics(self._start(X), self.method)
            self.lower_bounds_ = np.empty(0)
            self.iteration_times_ = np.empty(0)
        data = MiniBatchData(X, self.n_components, n_threads, self.batch_size)
        method = self._variational(data, self._topics, online=True,
                                   total_samples=self.total_samples, scale_bound=True)
        with single_threaded_blas():
            bound = iterate(method, data)
        fitted = method.attributes()
        self._store_topics(fitted["topics"], self.method)
        self.n_batch_iter_ = fitted["n_batch_iter_"]
        self.lower_bounds_ = np.append(self.lower_bounds_, bound)
        return self

    def _check_continuable(self):
        """Raise a ValueError if ``partial_fit`` cannot continue the fitted model with the
        current parameters."""
        state = self._fitted_state()
        fitted = state.method or ("gibbs" if hasattr(self, "log_joint_trace_") else
                                  "mean_field" if state.mean_field else "variational_em")
        if fitted == "gibbs":
            raise ValueError("partial_fit cannot continue this model: it was fitted with "
                             "method='gibbs' (collapsed Gibbs sampling), and partial_fit is an "
                             "online variational update. Call fit to start a new model, or "
                             "partial_fit on an unfitted copy.")
        if fitted != self.method:
            raise ValueError(f"partial_fit cannot continue this model: it was fitted with "
                             f"method={fitted!r}, and method is now {self.method!r}. Set "
                             f"method={fitted!r} back, or call fit to start a new model.")
        if state.K != self.n_components:
            raise ValueError(f"partial_fit cannot continue this model: it has {state.K} "
                             f"topics, and n_components is now {self.n_components}. Set "
                             f"n_components={state.K} back, or call fit to start a new model.")

    # ------------------------------------------------------------------ inference
    def _fitted_state(self):
        """The fitted topics, with the prior alpha and the method they were fitted with:
        everything a prediction needs, read once, so that predictions come from the fit and
        not from parameters changed since (``set_params``), and never mix two fits stored
        by other threads."""
        check_is_fitted(self, "components_")
        state = self._topics
        if state.alpha is None:  # topics of a model pickled before they recorded alpha
            state.alpha = self.doc_topic_prior_
        return state

    def _fitted_pass(self, X, state):
        n_threads = resolve_n_threads(self.n_threads, self.n_jobs)
        X = _check_documents(X, n_features=state.V)
        return X, _document_data(X, state.K, n_threads, stats=False)

    def _block_predictions(self, X, state, what, normalize=True):
        """``transform`` ('transform': (n, K)) or the documents' bound terms and words
        ('terms': (n, 3), see ``_block_documents``) of a dask array (a lazy dask array, block
        by block where the blocks live) or an out-of-core array (an ndarray, read block by
        block); the same bits per document as in memory."""
        n_threads = resolve_n_threads(self.n_threads, self.n_jobs)
        # (a dask array: shape and dtype checked, no computation; its blocks are checked
        # by their tasks)
        rows = check_count_rows(X, n_features=state.V)
        dtype = rows.dtype
        args = (state.sweep_B(), state.topic_max,
                state.elog_beta if what == "terms" else None, float(state.alpha),
                int(self.max_doc_update_iter), float(self.mean_change_tol),
                self._digamma == "sklearn", normalize, dtype, n_threads)
        width = state.K if what == "transform" else 3
        if isinstance(rows, DaskRows):
            dX = rows.X
            return dX.map_blocks(_block_documents, *args, chunks=(dX.chunks[0], (width,)),
                                 dtype=dtype if what == "transform" else np.float64,
                                 meta=np.empty((0, 0), dtype=dtype))
        out = np.empty((rows.shape[0], width),
                       dtype=dtype if what == "transform" else np.float64)
        step = rows_per_read(rows.shape[1] * rows.dtype.itemsize + 8 * state.K)
        for start in range(0, rows.shape[0], step):
            out[start:start + step] = _block_documents(rows[start:start + step], *args)
        return out

    def _block_bound(self, X, state):
        """(documents, words, documents' bound) of a dask or out-of-core X, the bound
        summed as the in-memory pass sums it (``_group_bound``)."""
        terms = self._block_predictions(X, state, "terms")
        if is_dask_array(terms):
            terms = terms.compute()
        n = terms.shape[0]
        bnd = _group_bound([np.ascontiguousarray(terms[:, :2])], n)
        return n, float(np.sum(terms[:, 2])), float(bnd[0] + bnd[1])

    def _transform_with(self, state, X):
        """gamma (unnormalised) of X at the fitted ``state``."""
        X, data = self._fitted_pass(X, state)
        with single_threaded_blas():
            gamma, _ = self._infer(data, False, state)
        return gamma

    def transform(self, X, *, normalize=True):
        """Document-topic distribution of X (rows sum to one unless ``normalize=False``).

        A document without words gets the prior's distribution (uniform over topics)."""
        state = self._fitted_state()
        if is_dask_array(X) or is_block_source(X):
            with single_threaded_blas():
                return self._block_predictions(X, state, "transform", normalize)
        X, data = self._fitted_pass(X, state)
        with single_threaded_blas():
            gamma, _ = self._infer(data, False, state)
        if normalize:
            gamma /= gamma.sum(axis=1)[:, np.newaxis]
        return gamma.astype(X.dtype, copy=False)

    @_one_fit_at_a_time
    @all_or_nothing
    def fit_transform(self, X, y=None, *, normalize=True):
        """Fit, then transform X (reusing the fit's final pass over X)."""
        with single_threaded_blas():
            if self.method == "gibbs":
                gamma = self.transform(self._fit_gibbs(X), normalize=False).astype(np.float64)
            else:
                gamma = self._fit(X)
            if isinstance(gamma, BlockGamma):  # X read by blocks: transformed by blocks
                return self.transform(X, normalize=normalize)
        if normalize:
            gamma /= gamma.sum(axis=1)[:, np.newaxis]
        return gamma.astype(self._dtype, copy=False)

    def score(self, X, y=None):
        """The variational bound (ELBO) of X: scikit-learn's approximate log-likelihood (a
        number also for a dask array)."""
        state = self._fitted_state()
        if is_dask_array(X) or is_block_source(X):
            with single_threaded_blas():
                _, _, doc_bound = self._block_bound(X, state)
            return float(doc_bound + state.topic_term())
        X, data = self._fitted_pass(X, state)
        with single_threaded_blas():
            _, doc_bound = self._infer(data, True, state)
        return float(doc_bound + state.topic_term())

    def perplexity(self, X, sub_sampling=False):
        """exp(-bound / number of words) of X, the bound as in ``score`` (a number also for
        a dask array)."""
        state = self._fitted_state()
        if is_dask_array(X) or is_block_source(X):
            with single_threaded_blas():
                n, words, doc_bound = self._block_bound(X, state)
        else:
            X, data = self._fitted_pass(X, state)
            n, words = X.shape[0], float(X.data.sum())
            if X.data.any():
                with single_threaded_blas():
                    _, doc_bound = self._infer(data, True, state)
        if not words > 0:
            raise ValueError("X contains no words (every count is zero): its perplexity is "
                             "undefined.")
        return _perplexity(n, words, doc_bound, state.topic_term(),
                           self.total_samples if sub_sampling else None)

    @property
    def _n_features_out(self):
        """Output columns of ``transform``, for ``get_feature_names_out``: the topics."""
        return self.components_.shape[0]
