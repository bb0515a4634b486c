"""Sequences: ``lengths`` checked, the sequences grouped for the parallel passes, and the
forward-backward and Viterbi passes over them (kernels in ``src_c/hmm/_hmm.pyx``)."""
import numbers

import numpy as np

from . import _hmm
from .._core.sharding import n_groups
from .._core.threads import cores_busy, threads_for

# Rows per group (at least; whole sequences, so a group may hold more), and at most this
# many groups: enough groups that two to a few threads get even shares of a few thousand
# rows (three groups on two threads left one thread two thirds of the work), few enough that
# the (G, K, K) slots stay small.
ROWS_PER_GROUP = 512
MAX_GROUPS = 128
# Threads are worth starting from this much work per thread, in units of n_samples K (K + 8)
# (the forward-backward's K^2 a row plus the emission work). While other threads compete
# for every core a parallel region can cost a scheduler time slice, more than a small pass
# itself: then MIN_WORK_PER_THREAD. With a core free a region costs microseconds, and
# MIN_WORK_PER_THREAD_IDLE (~0.1 ms of one thread's work) is worth a thread.
MIN_WORK_PER_THREAD = 1 << 20
MIN_WORK_PER_THREAD_IDLE = 1 << 16
# One sequence of up to this many states goes through the long-sequence pass (forward and
# backward recursions on two threads, ``_hmm.forward_backward_long``).
LONG_MAX_STATES = 16
# A fused pass (a sequence's emission work on its group's thread) needs no sequence longer
# than n_samples / SPREAD_SHARE, else that sequence's thread does most of the work.
SPREAD_SHARE = 8


def _pass_threads(n_threads, work, busy, n_groups=None):
    """Threads for a fit's passes: ``threads_for`` with MIN_WORK_PER_THREAD units a thread
    while other threads run on every other core (``busy``: ``cores_busy()``, a snapshot taken
    once per fit), MIN_WORK_PER_THREAD_IDLE otherwise. The results do not depend on the
    choice."""
    return threads_for(n_threads, work,
                       MIN_WORK_PER_THREAD if busy else MIN_WORK_PER_THREAD_IDLE, n_groups)


def _long_pass_threads(n_threads, work, busy):
    """Threads for the long-sequence pass: as ``_pass_threads``, but one while other threads
    run on every other core: its two recursions then wait on each other's time slices,
    measured at load 12 on 2 cores: 34 ms an iteration of the 'long' benchmark on two
    threads, 19 ms on one. (The 1-minute load average, used before, counted the user's own
    previous fit and sent the next one to one thread on an otherwise idle 2-core machine.)
    The result does not depend on the choice."""
    return 1 if busy else threads_for(n_threads, work, MIN_WORK_PER_THREAD_IDLE)


def check_lengths(lengths, n_samples):
    """``lengths`` as an int64 array of positive sequence lengths summing to ``n_samples``
    (None: one sequence). ValueError naming what is wrong."""
    if lengths is None:
        return np.array([n_samples], dtype=np.int64)
    if isinstance(lengths, numbers.Integral) and not isinstance(lengths, bool):
        lengths = [lengths]
    arr = np.asarray(lengths)
    if arr.ndim != 1:
        raise ValueError(f"lengths must be a 1-D array of sequence lengths, got shape "
                         f"{arr.shape}")
    if arr.size == 0:
        raise ValueError("lengths is empty: give at least one sequence length")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"lengths must be integers, got {arr}")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"lengths must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if np.any(arr <= 0):
        bad = np.flatnonzero(arr <= 0)
        raise ValueError(f"lengths must be positive: lengths[{bad[0]}] = {arr[bad[0]]} "
                         f"({bad.size} sequence(s) of length <= 0)")
    total = int(arr.sum())
    if total != n_samples:
        raise ValueError(f"lengths sum to {total} but X has {n_samples} samples: the "
                         "lengths must add up to n_samples")
    return arr


class Sequences:
    """The sequences of X: offsets, the groups of the parallel passes and their slots.

    The groups depend on ``lengths`` only (never on the thread count): G =
    n_groups(n_samples, ROWS_PER_GROUP, MAX_GROUPS), and sequence s goes to group
    floor(offset_s G / n_samples), so each group is a run of consecutive whole sequences of
    about n_samples / G rows. Every pass's per-group statistics are reduced in group order.
    ``spread``: no sequence holds more than 1 / SPREAD_SHARE of the rows (then a family's
    fused EM pass, which leaves each sequence's emission work on one thread, is used).
    """

    def __init__(self, lengths, n_samples, n_threads, n_components=1):
        self.lengths = check_lengths(lengths, n_samples)
        self.n_samples = int(n_samples)
        self.n_sequences = self.lengths.shape[0]
        self.offsets = np.zeros(self.n_sequences + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=self.offsets[1:])
        G = n_groups(n_samples, ROWS_PER_GROUP, MAX_GROUPS)
        group_of = (self.offsets[:-1] * G) // max(n_samples, 1)
        self.group_bounds = np.searchsorted(group_of, np.arange(G + 1), side="left").astype(
            np.int64)
        self.group_bounds[-1] = self.n_sequences
        self.n_groups = G
        # (a rule on the lengths only, like the groups: the same path for any thread count)
        self.spread = bool(self.lengths.max() * SPREAD_SHARE <= self.n_samples)
        filled = int(np.count_nonzero(np.diff(self.group_bounds)))
        work = n_samples * n_components * (n_components + 8)
        busy = cores_busy()  # (one snapshot for both rules)
        self.n_threads = _pass_threads(n_threads, work, busy, n_groups=filled)
        # one sequence: the long-sequence pass, whose two recursions can use two threads
        self.long_threads = (_long_pass_threads(n_threads, work, busy)
                             if self.n_sequences == 1 else 1)

    def forward_backward(self, logprob, startprob, transmat, posteriors=True, stats=True,
                         post_out=None):
        """Scaled forward-backward over every sequence.

        Parameters
        ----------
        logprob : ndarray of shape (n_samples, K), float64
            Emission log-densities log p(x_n | z_n = k).
        startprob : (K,), transmat : (K, K)
        posteriors, stats : bool
            Whether to return the posteriors gamma (n_samples, K) and the expected start and
            transition counts.
        post_out : ndarray of shape (n_samples, K), float64, optional
            Where to write the posteriors (a fit reuses one buffer: no fresh pages to fault
            in every iteration).

        Returns
        -------
        dict with 'seq_ll' (n_sequences,) log p per sequence, 'log_likelihood' (their sum),
        'n_log_space' (sequences redone in log space), and as asked 'posteriors', 'start'
        (K,) = sum_s gamma_{s,0}, 'trans' (K, K) = sum_s sum_t xi_{s,t}.
        """
        K = logprob.shape[1]
        G = self.n_groups
        if not posteriors:
            post = np.empty((0, 0))
        elif post_out is not None and post_out.shape == (self.n_samples, K):
            post = post_out
        else:
            post = np.empty((self.n_samples, K))
        if self.n_sequences == 1 and K <= LONG_MAX_STATES:
            out = self._forward_backward_long(logprob, startprob, transmat, post, stats)
            if out is not None:
                return out
        trans_slots = np.empty((G, K * K)) if stats else np.empty((0, 0))
        start_slots = np.empty((G, K)) if stats else np.empty((0, 0))
        seq_ll = np.full(self.n_sequences, np.nan)
        n_log = np.zeros(G, dtype=np.int32)
        _hmm.forward_backward(np.ascontiguousarray(logprob, dtype=np.float64),
                              np.ascontiguousarray(startprob, dtype=np.float64),
                              np.ascontiguousarray(transmat, dtype=np.float64),
                              self.offsets, self.group_bounds, post, trans_slots,
                              start_slots, seq_ll, n_log, self.n_threads)
        if np.isnan(seq_ll).any():
            raise MemoryError("the forward-backward pass could not allocate its lattices")
        # seq_ll summed in sequence order: fixed, whatever the thread count
        out = {"seq_ll": seq_ll, "log_likelihood": float(np.sum(seq_ll)),
               "n_log_space": int(n_log.sum())}
        if posteriors:
            out["posteriors"] = post
        if stats:
            # group order: numpy adds the rows of a C-ordered array one after another
            out["trans"] = trans_slots.sum(axis=0).reshape(K, K)
            out["start"] = start_slots.sum(axis=0)
        return out

    def _forward_backward_long(self, logprob, startprob, transmat, post, stats):
        """One sequence by ``_hmm.forward_backward_long`` (the same outputs as
        ``forward_backward``), or None when its scaled sums under/overflow: the caller then
        takes the per-sequence pass, which redoes the sequence in log space if need be."""
        K = logprob.shape[1]
        trans = np.empty((K, K)) if stats else np.empty((0, 0))
        start = np.empty(K) if stats else np.empty(0)
        ll = _hmm.forward_backward_long(np.ascontiguousarray(logprob, dtype=np.float64),
                                        np.ascontiguousarray(startprob, dtype=np.float64),
                                        np.ascontiguousarray(transmat, dtype=np.float64),
                                        post, trans, start, self.long_threads)
        if np.isnan(ll):
            return None
        out = {"seq_ll": np.array([ll]), "log_likelihood": float(ll), "n_log_space": 0}
        if post.shape[0] > 0:
            out["posteriors"] = post
        if stats:
            out["trans"] = trans
            out["start"] = start
        return out

    def viterbi(self, logprob, startprob, transmat):
        """(log p(x, path) per sequence (n_sequences,), the path (n_samples,) int)."""
        states = np.zeros(self.n_samples, dtype=np.int32)
        seq_ll = np.full(self.n_sequences, np.nan)
        _hmm.viterbi(np.ascontiguousarray(logprob, dtype=np.float64),
                     np.ascontiguousarray(startprob, dtype=np.float64),
                     np.ascontiguousarray(transmat, dtype=np.float64),
                     self.offsets, self.group_bounds, states, seq_ll, self.n_threads)
        if np.isnan(seq_ll).any():
            raise MemoryError("the Viterbi pass could not allocate its lattices")
        return seq_ll, states.astype(np.intp)


class SequenceData:
    """What every HMM data object (the protocol's) holds: X and its ``Sequences``, passed
    over as one shard (every sequence; the passes run groups of whole sequences in
    parallel)."""

    def __init__(self, X, sequences):
        self.X = X
        self.sequences = sequences

    def shards(self):
        return (self.sequences,)
