"""Discrete emission units: Bernoulli, categorical and multinomial classes of a mixture.

Layout. Every variant is a set of **blocks** partitioning L one-hot columns: a categorical item
j with L_j levels is the block [offset_j, offset_j + L_j) (a Bernoulli item is a block of two
levels, "0" and "1"); a multinomial over V words is one block of V columns. Per class k, each
block holds a probability vector theta_{b,.,k} on the simplex. Parameters and statistics are
(L, K) arrays (the class on the last axis: the kernel's table rows are contiguous in k):

    log p(x_n | z_n = k) = sum_l x_nl log theta_lk        (x_n one-hot or counts; a missing
                                                            item contributes nothing)
    S[l, k] = sum_n w_n r_nk x_nl,   N_k = sum_n w_n r_nk   (from ``DiscreteData.run``)

Priors (conjugate): pi ~ Dir(alpha, ..., alpha) and theta_{b,.,k} ~ Dir(beta, ..., beta) for
every block and class (a Beta(beta, beta) for a Bernoulli item).

- EM: the MAP point (ML when alpha = beta = 1) theta_lk = (S_lk + beta - 1) / sum_{l in b}
  (S_lk + beta - 1); a block-class with no mass left gets the uniform vector. A probability
  may be exactly 0 under ML; its log is -inf in the table, which the pass handles (never NaN).
- Mean field: q(theta_{b,.,k}) = Dir(lambda_{b,.,k}), lambda = beta + S; E log theta =
  digamma(lambda) - digamma(sum_{l in b} lambda); the ELBO term -KL(q || prior).
- Gibbs: theta_{b,.,k} | z ~ Dir(beta + S_{b,.,k}), drawn from normalised Gamma variates in log
  space.
"""
import numpy as np
import scipy.sparse as sp
from scipy.special import betaln, digamma, gammaln

from .._core.protocol import Statistics
from .._core.sharding import n_groups
from .._core import threads as _threads
from .._core.threads import single_threaded_blas, threads_for
from . import _discrete_kernel as _dk

CHUNK_SIZE = 256
# items are packed into groups of at most this many joint codes (see ``ItemPacking``): a
# group's table rows and statistics rows (Kp doubles each) stay in a core's L1/L2 cache
PACK_CODES = 256


# ====================================================================== blocks
class Blocks:
    """A partition of L columns into consecutive blocks (the items).

    ``offsets`` : (B + 1,) int64, block b = columns [offsets[b], offsets[b + 1]).
    """

    def __init__(self, sizes):
        sizes = np.asarray(sizes, dtype=np.int64)
        if sizes.ndim != 1 or np.any(sizes < 1):
            raise ValueError("every block needs at least one level")
        self.sizes = sizes
        self.offsets = np.concatenate(([0], np.cumsum(sizes)))
        self.n_columns = int(self.offsets[-1])
        self.block_of = np.repeat(np.arange(len(sizes)), sizes)

    def __len__(self):
        return len(self.sizes)

    def sums(self, a):
        """Per-block sums of the rows of ``a`` (L, K): (B, K)."""
        return np.add.reduceat(a, self.offsets[:-1], axis=0)

    def spread(self, b):
        """A (B, K) per-block array repeated onto the block's columns: (L, K)."""
        return b[self.block_of]

    def normalise(self, a):
        """Each block-class column of ``a`` (L, K, non-negative) divided by its sum; a
        block-class summing to 0 becomes uniform."""
        tot = self.spread(self.sums(a))
        uniform = 1.0 / self.sizes[self.block_of][:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(tot > 0, a / np.where(tot > 0, tot, 1.0), uniform)

    def __getstate__(self):
        return {"sizes": self.sizes}

    def __setstate__(self, state):
        self.__init__(state["sizes"])


def safe_log(a):
    """log of probabilities, -inf for exact zeros without a warning."""
    with np.errstate(divide="ignore"):
        return np.log(a)


# ====================================================================== point estimates
def map_probabilities(stats_s, blocks, beta=1.0):
    """EM's M-step for theta: (S + beta - 1) normalised per block and class (MAP under
    Dir(beta); ML for beta = 1). S (L, K) -> theta (L, K)."""
    return blocks.normalise(np.maximum(stats_s + (beta - 1.0), 0.0))


def map_weights(nk, alpha=1.0):
    """EM's M-step for pi: (N_k + alpha - 1) normalised (ML for alpha = 1)."""
    a = np.maximum(np.asarray(nk, dtype=np.float64) + (alpha - 1.0), 0.0)
    tot = a.sum()
    return a / tot if tot > 0 else np.full(a.shape, 1.0 / a.shape[0])


def log_prior_unnormalised(log_weights, log_theta, alpha, beta):
    """(alpha - 1) sum log pi + (beta - 1) sum log theta: what MAP-EM adds to the
    log-likelihood to get its monotone objective (0 for ML; zero-probability terms of a
    flat prior are not counted, avoiding 0 * -inf)."""
    out = 0.0
    if alpha != 1.0:
        out += (alpha - 1.0) * float(np.sum(log_weights))
    if beta != 1.0:
        out += (beta - 1.0) * float(np.sum(log_theta))
    return out


# ====================================================================== Dirichlet algebra
def q_update(stats_s, beta):
    """q(theta) = Dir(lambda), lambda = beta + S (L, K)."""
    return beta + stats_s


def expected_log(lam, blocks):
    """E_q log theta = digamma(lambda) - digamma(block sums), (L, K)."""
    return digamma(lam) - blocks.spread(digamma(blocks.sums(lam)))


def dirichlet_log_norm(lam, blocks):
    """log B(lambda) per block and class: sum lgamma(lambda) - lgamma(sum lambda), (B, K)."""
    return blocks.sums(gammaln(lam)) - gammaln(blocks.sums(lam))


def kl_dirichlet(lam, prior, blocks, elog=None):
    """sum over blocks and classes of KL(Dir(lambda) || Dir(prior)); ``prior`` scalar or
    (L, K). KL = log B(prior) - log B(lambda) + sum (lambda - prior) E log theta."""
    prior = np.broadcast_to(np.asarray(prior, dtype=np.float64), lam.shape)
    if elog is None:
        elog = expected_log(lam, blocks)
    return float(np.sum(dirichlet_log_norm(prior, blocks)) -
                 np.sum(dirichlet_log_norm(lam, blocks)) + np.sum((lam - prior) * elog))


def weights_expected_log(alpha):
    """E log pi under Dir(alpha) (K,)."""
    return digamma(alpha) - digamma(alpha.sum())


def weights_kl(alpha, alpha0):
    """KL(Dir(alpha) || Dir(alpha0, ..., alpha0))."""
    a0 = np.full(alpha.shape, float(alpha0))
    el = weights_expected_log(alpha)
    return float(gammaln(alpha.sum()) - gammaln(alpha).sum() - gammaln(a0.sum())
                 + gammaln(a0).sum() + np.sum((alpha - a0) * el))


def stick_update(nk, gamma0):
    """q(v_k) = Beta(a_k, b_k) of the truncated stick-breaking weights (v_k ~ Beta(1, gamma0),
    pi_k = v_k prod_{j<k} (1 - v_j)): a = 1 + N_k, b = gamma0 + sum_{j>k} N_j (the last
    stick's b keeps the prior's gamma0, as scikit-learn's truncation)."""
    nk = np.asarray(nk, dtype=np.float64)
    return 1.0 + nk, gamma0 + np.concatenate((np.cumsum(nk[::-1])[-2::-1], [0.0]))


def stick_expected_log(a, b):
    """E log pi_k = E log v_k + sum_{j<k} E log(1 - v_j) under q(v) (K,)."""
    d = digamma(a + b)
    e_log_1mv = digamma(b) - d
    return digamma(a) - d + np.concatenate(([0.0], np.cumsum(e_log_1mv)[:-1]))


def stick_kl(a, b, gamma0):
    """sum_k KL(Beta(a_k, b_k) || Beta(1, gamma0)) (log Beta(v | 1, g) = log g +
    (g - 1) log(1 - v))."""
    d = digamma(a + b)
    e_log_v, e_log_1mv = digamma(a) - d, digamma(b) - d
    e_log_q = -betaln(a, b) + (a - 1.0) * e_log_v + (b - 1.0) * e_log_1mv
    e_log_p = np.log(gamma0) + (gamma0 - 1.0) * e_log_1mv
    return float(np.sum(e_log_q - e_log_p))


def stick_mean_weights(a, b):
    """E[pi_k] = E v_k prod_{j<k} E(1 - v_j), renormalised over the K classes (the mass
    beyond the truncation spread proportionally, as scikit-learn's ``weights_``)."""
    s = a + b
    w = a / s * np.concatenate(([1.0], np.cumprod(b / s)[:-1]))
    return w / w.sum()


def dirichlet_log_pdf(log_theta, prior, blocks):
    """sum over blocks and classes of log Dir(theta | prior), from log theta (L, K)."""
    prior = np.broadcast_to(np.asarray(prior, dtype=np.float64), log_theta.shape)
    # a drawn probability that underflowed to 0 has density 0 only for prior < 1; clip the
    # log so that (prior - 1) * log theta stays finite (it is then a very low density)
    lt = np.maximum(log_theta, np.log(np.finfo(np.float64).tiny))
    return float(-np.sum(dirichlet_log_norm(prior, blocks)) + np.sum((prior - 1.0) * lt))


def draw_log_probabilities(lam, blocks, rng):
    """log theta ~ Dir(lambda) per block and class: Gamma variates normalised in log space."""
    g = rng.standard_gamma(lam)
    log_g = safe_log(g)
    return log_g - blocks.spread(safe_log(blocks.sums(g)))


# ====================================================================== packed items
class ItemPacking:
    """Consecutive items packed into groups, each group's joint answer one categorical code.

    A row of one-hot coded items costs the pass one table lookup and one statistics update an
    item; packed, it costs one a group (20 binary items: 3 instead of 20). Group g holds items
    j_0 < ... < j_{m-1} with radices r_i = L_i (+ 1 when the item has missing answers and
    m > 1: the digit L_i means "missing"); its codes c = sum_i d_i s_i with strides
    s_0 = 1, s_i = s_{i-1} r_{i-1} number prod_i r_i <= ``max_codes``. The packing matrix P
    (L', L) has P[c, column of (j_i, d_i)] = 1 for every non-missing digit, so that

        T' = P T        (the packed table: a code's log-probability is its items' sum)
        S  = P^T S'     (the item statistics from the codes' statistics)

    and log rho_nk = c_k + sum_g T'[code_ng, k] = c_k + sum_j T[x_nj, k] (up to rounding).
    A row with every item of a group missing has no code in it.

    Parameters
    ----------
    sizes : (B,) int, levels of each item; has_missing : (B,) bool
    max_codes : int
    """

    def __init__(self, sizes, has_missing, max_codes=PACK_CODES):
        sizes = np.asarray(sizes, dtype=np.int64)
        groups, current, n_codes = [], [], 1
        for j, size in enumerate(sizes):
            radix = int(size) + bool(has_missing[j])
            if current and n_codes * radix <= max_codes and len(current) < 63:
                current.append(j)
                n_codes *= radix
            else:
                if current:
                    groups.append(current)
                current, n_codes = [j], radix
        groups.append(current)
        self.groups = groups
        offsets = np.concatenate(([0], np.cumsum(sizes)))
        L = int(offsets[-1])
        G = len(groups)
        self.group_of_column = np.empty(L, dtype=np.int32)
        self.delta_of_column = np.empty(L, dtype=np.int64)
        self.bit_of_column = np.empty(L, dtype=np.int64)
        self.base_of_group = np.zeros(G, dtype=np.int64)
        self.column_of_group = np.zeros(G, dtype=np.int64)
        p_rows, p_cols = [], []
        first = 0
        for g, items in enumerate(groups):
            missing_digit = [bool(has_missing[j]) and len(items) > 1 for j in items]
            radices = [int(sizes[j]) + md for j, md in zip(items, missing_digit)]
            strides = np.concatenate(([1], np.cumprod(radices)[:-1])).astype(np.int64)
            n_codes = int(np.prod(radices))
            codes = np.arange(n_codes, dtype=np.int64)
            for i, j in enumerate(items):
                cols = np.arange(offsets[j], offsets[j + 1])
                levels = cols - offsets[j]
                self.group_of_column[cols] = g
                self.bit_of_column[cols] = 1 << i
                if missing_digit[i]:
                    self.base_of_group[g] += sizes[j] * strides[i]
                    self.delta_of_column[cols] = (levels - sizes[j]) * strides[i]
                else:
                    self.delta_of_column[cols] = levels * strides[i]
                digit = codes // strides[i] % radices[i]
                real = digit < sizes[j]
                p_rows.append(first + codes[real])
                p_cols.append(offsets[j] + digit[real])
            self.column_of_group[g] = first
            first += n_codes
        self.n_columns = first
        rows, cols = np.concatenate(p_rows), np.concatenate(p_cols)
        order = np.lexsort((cols, rows))  # each code's items in column order: a fixed sum
        self.matrix = sp.csr_matrix((np.ones(rows.shape[0]), (rows[order], cols[order])),
                                    shape=(first, L))
        self.matrix_t = self.matrix.T.tocsr()
        self.matrix_t.sort_indices()

    @classmethod
    def plan(cls, sizes, indptr, indices, max_codes=PACK_CODES):
        """The packing of these one-hot rows, or None when no group would hold two items."""
        sizes = np.asarray(sizes, dtype=np.int64)
        B, N = sizes.shape[0], indptr.shape[0] - 1
        if B < 2 or np.all(sizes[:-1] * sizes[1:] > max_codes):
            return None
        if indices.shape[0] == N * B:
            has_missing = np.zeros(B, dtype=bool)  # (a row answering an item twice: refused
        else:                                      # by ``pack``)
            block_of = np.repeat(np.arange(B, dtype=np.int32), sizes)
            has_missing = np.bincount(block_of[indices], minlength=B) < N
        packing = cls(sizes, has_missing, max_codes)
        return packing if len(packing.groups) < B else None

    def pack(self, indptr, indices):
        """The packed rows (indptr, indices), or None for rows that answer an item twice."""
        return _dk.pack_rows(indptr, indices, self.group_of_column, self.delta_of_column,
                             self.base_of_group, self.column_of_group, self.bit_of_column)


# ====================================================================== the data / the pass
class DiscreteData:
    """The data side of a discrete-mixture fit: one-hot (CSR) data, weights, the statistics
    slots and the thread count; ``run`` is the kernel pass.

    Parameters
    ----------
    indptr : (N + 1,) int64; indices : (nnz,) int32 columns; values : (nnz,) float or None
        (one-hot data: every non-zero is 1)
    n_columns : int
        L, the table's rows.
    n_components : int
    sample_weight : (N,) float64 or None
    n_threads : int (resolved)
    row_const : (N,) float64 or None
        Added to log p(x_n) (the multinomial coefficient log(n! / prod x!)): not part of the
        kernel, it does not depend on the class.
    item_sizes : (B,) int or None
        For one-hot coded items (``values`` None, at most one non-zero a row in each block of
        ``item_sizes`` columns): the levels of each item; the pass then runs on the items
        packed into groups (``ItemPacking``). The statistics and outputs are the same up to
        rounding, in the same (L, K) layout.
    """

    def __init__(self, indptr, indices, values, n_columns, n_components, sample_weight,
                 n_threads, row_const=None, item_sizes=None):
        self.indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        self.indices = np.ascontiguousarray(indices, dtype=np.int32)
        self.values = (np.empty(0) if values is None else
                       np.ascontiguousarray(values, dtype=values.dtype if values.dtype in
                                            (np.float32, np.float64) else np.float64))
        self.n_samples = self.indptr.shape[0] - 1
        self.n_columns = int(n_columns)
        self.n_components = int(n_components)
        self.sample_weight = sample_weight
        self._w = sample_weight if sample_weight is not None else np.empty(0)
        self.weight_sum = (float(sample_weight.sum()) if sample_weight is not None
                           else float(self.n_samples))
        self.row_const = row_const
        self.row_const_sum = 0.0
        if row_const is not None:
            self.row_const_sum = float(row_const @ sample_weight if sample_weight is not None
                                       else row_const.sum())
        # classes padded to whole 4-lane vectors (the kernel's table and slot rows)
        self.n_padded = (self.n_components + 3) // 4 * 4
        with single_threaded_blas():  # every kernel call runs under the BLAS limit
            _dk.check_csr(self.indptr, self.indices, self.n_columns)
        if self.values.shape[0] not in (0, self.indices.shape[0]):
            raise ValueError("indptr, indices and values do not describe one CSR matrix")
        # the rows the kernel reads: the items packed into groups where that pays
        self.packing = None
        self._indptr, self._indices, self._n_kernel_columns = \
            self.indptr, self.indices, self.n_columns
        if item_sizes is not None and self.values.shape[0] == 0:
            if int(np.sum(item_sizes)) != self.n_columns:
                raise ValueError("item_sizes must add up to n_columns")
            packing = ItemPacking.plan(item_sizes, self.indptr, self.indices)
            packed = None
            if packing is not None:
                with single_threaded_blas():  # every kernel call runs under the BLAS limit
                    packed = packing.pack(self.indptr, self.indices)
            if packed is not None:
                self.packing = packing
                self._indptr, self._indices = packed
                self._n_kernel_columns = packing.n_columns
        Kp = self.n_padded
        slot = self._n_kernel_columns * Kp + Kp
        budget = max(8, (64 << 20) // (8 * max(slot, 1)))
        G = n_groups(self.n_samples, CHUNK_SIZE, min(128, budget))
        # a row costs a few lookups, far less than a Gaussian row: count the work in table
        # lanes (nnz x Kp) so that a pass shorter than a scheduler time slice stays on one
        # thread (on busy cores a parallel region costs more than it saves)
        self.n_threads = threads_for(n_threads, max(self._indices.shape[0], self.n_samples) * Kp,
                                     min_work_per_thread=_threads.MIN_ROWS_PER_THREAD * 4096,
                                     n_groups=G)
        self.nk_slots = np.empty((G, Kp))
        self.stat_slots = np.empty((G, self._n_kernel_columns * Kp))
        self._table = np.zeros((self._n_kernel_columns, Kp))
        self._const = np.full(Kp, -np.inf)
        self.ll_slots = np.empty(G)
        self.ent_slots = np.empty(G)

    def shards(self):
        """The whole data is one shard: the kernel runs chunks of rows in parallel."""
        return (None,)

    def run_pass(self, shard, inputs):
        """The protocol's pass: ``inputs`` is ``run``'s keyword arguments."""
        return self.run(**inputs)

    def run(self, table, log_const, resp_in=None, resp_out=None, log_prob_norm_out=None,
            compute_stats=True, sample_z=False, seed=0, sweep=0, z_out=None):
        """One kernel pass; returns ``Statistics`` with ``log_likelihood`` (sum_n w_n log
        p(x_n), the row constants included; with ``sample_z`` log p(X, z | theta)),
        ``entropy_term`` (sum_n w_n sum_k r_nk log r_nk) and, with ``compute_stats``, ``nk``
        (K,) and ``s`` (L, K)."""
        K = self.n_components
        # the pass calls no BLAS, but the caller's BLAS threads must not compete with ours
        # (re-entrant: nested in a fit's own limit it costs a lock and a counter)
        with single_threaded_blas():
            self._run(table, log_const, resp_in, resp_out, log_prob_norm_out, compute_stats,
                      sample_z, seed, sweep, z_out)
        # reduction over groups in group order: independent of the thread count
        stats = {"log_likelihood": float(self.ll_slots.sum()) + self.row_const_sum,
                 "entropy_term": float(self.ent_slots.sum())}
        if log_prob_norm_out is not None and self.row_const is not None:
            log_prob_norm_out += self.row_const
        if compute_stats:
            stats["nk"] = self.nk_slots.sum(axis=0)[:K]
            s = self.stat_slots.sum(axis=0).reshape(self._n_kernel_columns, self.n_padded)
            if self.packing is not None:
                s = self.packing.matrix_t @ s  # the items' level counts from the codes'
            stats["s"] = np.ascontiguousarray(s[:, :K])
        return Statistics(**stats)

    def _run(self, table, log_const, resp_in, resp_out, log_prob_norm_out, compute_stats,
             sample_z, seed, sweep, z_out):
        K = self.n_components
        # the padded copies (lanes >= K: table 0, constant -inf) are reused by every pass
        self._table[:, :K] = table if self.packing is None else self.packing.matrix @ table
        self._const[:K] = log_const
        _dk.discrete_pass(
            self._indptr, self._indices, self.values, self._w, self._table, self._const,
            resp_in if resp_in is not None else np.empty((0, 0)),
            self.nk_slots, self.stat_slots, self.ll_slots, self.ent_slots,
            resp_out if resp_out is not None else np.empty((0, 0)),
            log_prob_norm_out if log_prob_norm_out is not None else np.empty(0),
            compute_stats, CHUNK_SIZE, self.n_threads, sample_z, seed, sweep, z_out, K)

    def stats_from_resp(self, resp):
        """Statistics (``nk``, ``s``) of given (N, K) responsibilities (initialisation)."""
        K = self.n_components
        resp = np.ascontiguousarray(resp, dtype=np.float64)
        return self.run(np.zeros((self.n_columns, K)), np.zeros(K), resp_in=resp)
