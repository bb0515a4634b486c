"""Per-covariance-type algebra of the Gaussian mixture, shared by every fitting method.

Conventions (the same as scikit-learn's, so fitted attributes are interchangeable):

=============  =======================  ===================================================
type           covariances / precisions  precisions_cholesky_ U, with precision = U U^T
=============  =======================  ===================================================
'full'         (K, D, D)                 (K, D, D), upper triangular
'tied'         (D, D)                    (D, D), upper triangular
'diag'         (K, D)                    (K, D), 1 / sqrt(variances)
'spherical'    (K,)                      (K,), 1 / sqrt(variance)
=============  =======================  ===================================================

Each type is a ``CovarianceType`` (``COVARIANCES[covariance_type]``) holding its algebra; the
functions taking a ``covariance_type`` name call it.

The kernel works in coordinates shifted by a fixed vector (the data mean during a fit), and
centres the second moments at each component's mean ('full', 'diag', 'spherical'), so that they
are well conditioned even for a component far from the shift; the functions here take and
return shifted means where they say so.
"""
import numpy as np
from scipy import linalg
from scipy.linalg import lapack

from . import _gaussian_kernel as _gmm
from .._core.blocks import DaskRows, InMemoryRows, Rows, group_plan, rows_per_block
from .._core.protocol import Statistics
from .._core.sharding import n_groups
from .._core.threads import single_threaded_blas, threads_for

CHUNK_SIZE = 256
LOG_2PI = np.log(2.0 * np.pi)

_ILL_DEFINED = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
    "number of components, increase reg_covar, or scale the input data.")
#: scikit-learn's error for a covariance that is not positive-definite
ILL_DEFINED = _ILL_DEFINED


# The bound-decrease guard's relative tolerance (``vbfast._core.loop.guard``) for a bound
# computed in float64: rounding of sums of N terms stays far below it, so a larger decrease
# is a bug.
FLOAT64_BOUND_RTOL = 1e-10
# ... and for a bound from float32 passes (``GaussianPass.float32_work``). Each row's
# log p(x_n) = max_k log rho_nk + log sum_k exp(log rho_nk - max) comes from a float32 dot
# product of W = 2 D + 1 (or D + 2) terms, so its error is up to ~W u sum_j |coef_kj f_nj|,
# u = 2^-24; with the data centred at the shift and every component within
# FAR_FROM_SHIFT_F32 (2^12) of its own standard deviations squared from it, the terms are
# of the order of |log rho_nk| for the rows a component explains. These errors are
# rounding, of either sign, so the bound (their mean over the rows) moves by a few u |bound|
# from one theta to the next, less for large N, and the float32 statistics move the
# update's fixed point by the same order. Measured (EM and mean field, diag and spherical,
# 52 random problems of N 50..3,000, D 1..64, 200 iterations with tol=0; the test is
# tests/test_mixture_float32.py): relative decreases up to 7e-7 ~ 12 u. 2^-16 ~ 1.5e-5 =
# 256 u leaves a factor ~20 over that; a larger decrease is not rounding.
FLOAT32_BOUND_RTOL = 2.0 ** -16
# The covariance types whose passes may run in float32 for float32 X. 'full' / 'tied': the
# fused tiles (_full_tile_group in float32) centre every row at m_k in float32, so a row's
# ||(x - m_k) U_k||^2 carries ~D u of itself, the same order as the dot products above.
FLOAT32_TYPES = ("diag", "spherical", "full", "tied")
# ... when the data's spread leaves float32 room: those tiles square x - m_k and sum up to
# 32 rows a lane in float32 (max 3.4e38), so |x - shift| <= 2^48 and sample weights <= 2^20
# keep 32 w (2 |x - shift|)^2 below 1e37; wider data keeps float64 passes (its fitted
# parameters may then overflow float32 and be refused, as before).
FLOAT32_TILE_MAX_DEVIATION = 2.0 ** 48
FLOAT32_TILE_MAX_WEIGHT = 2.0 ** 20

# 'full' statistics of given responsibilities over float32 X (``float32_work``,
# ``_gmm.full_given32_form``) are float32 tiles centred at the pass's centres, the shift for
# a first pass ('diag' / 'spherical': the float32 tile's, about the shift): a component's S2
# about the shift then loses about log10 of its squared distance from the shift in its own
# standard deviations to the M-step's re-centring, of float32's 7.2 digits.
# ``centred_stats_from_resp`` centres a component beyond this (2^12, 3.6 digits;
# FAR_FROM_SHIFT in float64) at its mean by a second pass.
FAR_FROM_SHIFT_F32 = 2.0 ** 12

# Memory the statistics slots of one pass may take, in bytes: this much, or an eighth of the
# data's size when that is more.
SLOT_BUDGET = 64 << 20


def n_groups_for(n_samples, slot_size, data_bytes=0):
    """Number of statistics slots for a pass: depends on the data and model size only, never on
    the thread count (which is what makes results thread-count independent).

    Up to 128 groups, as many as fit in ``max(SLOT_BUDGET, data_bytes / 8)`` bytes of slots
    (``slot_size`` doubles each), but at least 2, so that two threads share the work even when
    one slot is as large as a full-covariance model with large K D^2 (which fits in memory
    anyway: the fitted covariances, precisions and factors are three times that size)."""
    budget = max(SLOT_BUDGET, data_bytes // 8)
    fit = budget // (8 * max(slot_size, 1))
    return n_groups(n_samples, CHUNK_SIZE, min(128, max(2, fit)))


# 'full' keeps per-group S2 slots while the budget holds this many of them (or as many as the
# data has groups, if fewer); below that, S2 takes one slot, filled by the panel sweep.
MIN_S2_GROUPS = 16


class SlotPlan(tuple):
    """How a pass's statistics are slotted: ``n_groups`` per-group slots of N_k, S1 and the
    bound terms; ``n_s2_slots`` slots of S2 (``n_groups``, or 1 with ``s2_panels``); and
    ``s2_panels``: 'full' S2 accumulated in one slot by the kernel's panel sweep (in parallel
    over (component, column panel) tasks after the row pass) rather than per group."""

    __slots__ = ()

    def __new__(cls, n_groups, n_s2_slots, s2_panels):
        return super().__new__(cls, (n_groups, n_s2_slots, s2_panels))

    n_groups = property(lambda self: self[0])
    n_s2_slots = property(lambda self: self[1])
    s2_panels = property(lambda self: self[2])


def slot_plan(n_samples, covariance_type, n_components, n_features, data_bytes=0):
    """The ``SlotPlan`` of a pass; from the sizes only, never the thread count.

    Per-group slots (``n_groups_for``) unless 'full' second moments are so large (K D^2) that
    the slot budget (``max(SLOT_BUDGET, data_bytes / 8)``) holds fewer than
    min(``MIN_S2_GROUPS``, the data's groups) slots: then S2 has one slot, filled by the
    panel sweep, and only the small statistics (K + K D numbers a group) are per group. At
    K=5, D=2000 that is one S2 slot of 160 MB instead of several."""
    K, D = n_components, n_features
    small = K + K * D
    s2 = COVARIANCES[covariance_type].second_moment_size(K, D)
    if covariance_type == "full":
        budget = max(SLOT_BUDGET, data_bytes // 8)
        fit = budget // (8 * (small + s2))
        if fit < min(MIN_S2_GROUPS, n_groups(n_samples, CHUNK_SIZE, 128)):
            return SlotPlan(n_groups_for(n_samples, small, data_bytes), 1, True)
    G = n_groups_for(n_samples, small + s2, data_bytes)
    return SlotPlan(G, G, False)


class GaussianPass:
    """The data side of a fit: X, weights, the shift, the statistics slots and the thread count.

    Built once per fit (the slots are the only buffers the passes need), then ``run`` is called
    once per iteration with the current per-component arrays.

    X is an ndarray, or ``Rows`` read block by block (``vbfast._core.blocks``: an out-of-core
    array, or a dask array whose blocks' passes run on the workers). A blocked pass runs the
    kernel on blocks of whole groups (``group_plan``) into the same slots, reduced in the
    same order: its statistics are the bits of the pass over the ndarray. The shift is the
    (weighted) column mean summed group by group (the same rule for every kind of X).
    """

    def __init__(self, X, sample_weight, covariance_type, n_components, n_threads, shift=None,
                 float32_work=False):
        self.rows = X if isinstance(X, Rows) else InMemoryRows(X)
        # float32 X (FLOAT32_TYPES): the fit's passes may run in float32 (the kernel's
        # ``float32_work``), and its bound then carries float32 rounding (``bound_rtol``)
        self.float32_work = bool(float32_work) and covariance_type in FLOAT32_TYPES \
            and self.rows.dtype == np.float32
        self.X = X
        self.n_samples, self.n_features = X.shape
        self.covariance_type = covariance_type
        self.covariance = COVARIANCES[covariance_type]
        self.n_components = n_components
        K, D = n_components, self.n_features
        # a row costs about K D^2 ('full'); more threads for fewer rows when rows are costly
        row_cost = max(1, K * D * D // 4096) if covariance_type == "full" else 1
        self.n_threads = threads_for(n_threads, self.n_samples * row_cost)
        self.sample_weight = sample_weight
        self._w = sample_weight if sample_weight is not None else np.empty(0)
        self.weight_sum = float(sample_weight.sum()) if sample_weight is not None \
            else float(self.n_samples)
        self.slot_plan = slot_plan(self.n_samples, covariance_type, K, D, self.rows.nbytes)
        G = self.slot_plan.n_groups
        self.n_groups = G
        # zeros: a blocked pass leaves the slots of groups past the data untouched
        self.nk_slots = np.zeros((G, K))
        self.s1_slots = np.zeros((G, K * D))
        # with s2_panels, S2's one slot is made by each pass that computes statistics and
        # handed over as its S2 (no copy, and nothing of that size kept between passes)
        self.s2_slots = (None if self.slot_plan.s2_panels else
                         np.zeros((G, self.covariance.second_moment_size(K, D))))
        self.ll_slots = np.zeros(G)
        self.ent_slots = np.zeros(G)
        self._gram = None
        if shift is None:
            shift = self.column_sums().sum(axis=0) / self.weight_sum
        self.shift = np.ascontiguousarray(shift, dtype=np.float64)
        if self.float32_work and covariance_type in ("full", "tied"):
            w_max = 1.0 if sample_weight is None else float(np.max(sample_weight, initial=0))
            self.float32_work = (
                w_max <= FLOAT32_TILE_MAX_WEIGHT and float(
                    self.group_sums(_max_deviation, self.shift).max(initial=0.0))
                <= FLOAT32_TILE_MAX_DEVIATION)

    @property
    def _float32_tiles(self):
        """'full' / 'tied' passes (and the Gram matrix) may take the float32 tiles."""
        return self.float32_work and self.covariance_type in ("full", "tied")

    @property
    def given_resp_float32(self):
        """Whether a pass of given responsibilities runs in float32 (float32 X working in
        float32: 'diag' / 'spherical' (the float32 tiles), 'full' without a panel sweep):
        then its S2 about the shift keeps float32's digits (``FAR_FROM_SHIFT_F32``)."""
        if not self.float32_work or self.covariance_type == "tied":
            return False
        return self.covariance_type in ("diag", "spherical") or (
            not self.slot_plan.s2_panels
            and _gmm.full_given32_form(self.n_components, self.n_features))

    @property
    def bound_rtol(self):
        """Relative tolerance of a bound computed from this data's passes:
        ``FLOAT32_BOUND_RTOL`` when they may run in float32, else ``FLOAT64_BOUND_RTOL``."""
        return FLOAT32_BOUND_RTOL if self.float32_work else FLOAT64_BOUND_RTOL

    def plan(self, n_groups=None, extra_row_bytes=0):
        """The block plan (``group_plan``) of a pass with ``n_groups`` groups (default the
        statistics'): (start, stop, first group, end group) per block."""
        G = self.n_groups if n_groups is None else n_groups
        n_chunks = -(-self.n_samples // CHUNK_SIZE)
        group_rows = -(-n_chunks // G) * CHUNK_SIZE
        row_bytes = self.n_features * self.rows.dtype.itemsize + extra_row_bytes
        return group_plan(self.n_samples, G, CHUNK_SIZE,
                          rows_per_block(row_bytes, group_rows, self.n_threads))

    def _weights_of(self, plan):
        w = self.sample_weight
        return [(None if w is None else w[start:stop],) for start, stop, _, _ in plan]

    def group_sums(self, fn, *args):
        """(groups, ...) per-group values of ``fn(X_g, w_g, *args)`` over the statistics'
        groups, in group order (reduce them with ``.sum(axis=0)``, which adds in that
        order); the same values for every kind of X."""
        plan = self.plan()
        n_chunks = -(-self.n_samples // CHUNK_SIZE)
        group_rows = -(-n_chunks // self.n_groups) * CHUNK_SIZE
        parts = self.rows.map(plan, _per_group, self._weights_of(plan),
                              (fn, group_rows) + args)
        return np.concatenate(parts, axis=0)

    def column_sums(self, shift=None):
        """(groups, D) per-group sums sum_n w_n x_n over the statistics' groups, in group
        order (``_gmm.group_column_sums``, block by block: the same values for every kind
        of X); with ``shift`` (D,) the square sums sum_n w_n (x_n - shift)^2."""
        plan = self.plan()
        n_chunks = -(-self.n_samples // CHUNK_SIZE)
        group_rows = -(-n_chunks // self.n_groups) * CHUNK_SIZE
        with single_threaded_blas():  # (an OpenMP kernel: no BLAS threads alongside)
            parts = self.rows.map(plan, _block_column_sums, self._weights_of(plan),
                                  (group_rows, self.n_threads, shift))
        return np.concatenate(parts, axis=0)

    def weighted_square_sums(self):
        """sum_n w_n (x_n - shift)^2 per feature (D,), summed group by group (in C, as the
        column sums)."""
        return self.column_sums(self.shift).sum(axis=0)

    def gram(self):
        """sum_n w_n (x_n - shift)(x_n - shift)^T (D, D), computed once ('tied' needs it)."""
        if self._gram is None:
            D = self.n_features
            G = n_groups_for(self.n_samples, D * D, self.rows.nbytes)
            if not self.rows.blocked:
                slots = np.empty((G, D * D))
                _gmm.weighted_gram(self.X, self._w, self.shift, slots, CHUNK_SIZE,
                                   self.n_threads, self._float32_tiles)
            else:
                # a dask array is chunked by the statistics' plan: with another number of
                # groups the Gram matrix is summed per block of that plan (equal to the
                # in-memory one up to rounding)
                own = not isinstance(self.rows, DaskRows) or G == self.n_groups
                plan = self.plan(G if own else None)
                per_block = [(w, g1 - g0 if own else 0) for (w,), (_, _, g0, g1)
                             in zip(self._weights_of(plan), plan)]
                parts = self.rows.map(plan, _block_gram, per_block,
                                      (self.shift, self.n_threads, self._float32_tiles))
                slots = np.zeros((G if own else len(plan), D * D))
                for b, ((_, _, g0, g1), part) in enumerate(zip(plan, parts)):
                    if own:
                        slots[g0:g1] = part
                    else:
                        slots[b] = part.sum(axis=0)
            self._gram = symmetrize_lower(slots.sum(axis=0).reshape(D, D))
        return self._gram

    def shards(self):
        """The whole data is one shard: the kernel itself runs chunks of rows in parallel."""
        return (None,)

    def run_pass(self, shard, inputs):
        """The pass of the protocol: ``inputs`` are ``run``'s positional and keyword
        arguments, a (tuple, dict) pair."""
        args, kwargs = inputs
        return self.run(*args, **kwargs)

    def run(self, means_shifted, prec_flat, aux, log_const, resp_in=None, resp_out=None,
            log_prob_norm_out=None, compute_stats=True, sample_z=False, seed=0, sweep=0,
            z_out=None, centred_full=None):
        """One kernel pass; returns the reduced ``Statistics`` (see ``_gmm.gmm_pass``).

        With ``sample_z`` the pass draws z (Gibbs) from the stream keyed by (seed, sweep) and
        the statistics are hard counts; "log_likelihood" is then log p(X, z | theta).
        ``resp_in`` is an (N, K) array or assignments (``HardAssignments``, ``Seeds``,
        ``NearestCentres``), whose one-hot rows are made block by block. A blocked pass (X
        read in blocks, or assignments) gives no per-row outputs.

        'full' in the kernel's GEMM form (``_gmm.full_gemm_form``) takes S2 about the shift
        and centres it; a component whose new S2 is too narrow for that
        (``full_gemm_cancelled``, e.g. one collapsing onto a few rows) gets a second pass
        with ``centred_full`` set for it (the exact centred form). The fused tiles
        (``_gmm.full_tile_form``) centre every component: no second pass."""
        K, D = self.n_components, self.n_features
        panels = self.slot_plan.s2_panels
        lazy = resp_in is not None and not isinstance(resp_in, np.ndarray)
        if self.rows.blocked or lazy:
            if resp_out is not None or log_prob_norm_out is not None or z_out is not None:
                raise ValueError("a blocked pass gives no per-row outputs")
            s2_panel = self._run_blocks(means_shifted, prec_flat, aux, log_const, resp_in,
                                        compute_stats, sample_z, seed, sweep, centred_full)
        else:
            X = self.X
            empty_out_2d = np.empty((0, 0), dtype=X.dtype)
            empty_out_1d = np.empty(0, dtype=X.dtype)
            s2_slots = self.s2_slots
            if panels:
                s2_slots = np.empty((1, self._s2_size(compute_stats)))
            _gmm.gmm_pass(
                X, self._w, self.shift, means_shifted, prec_flat, aux, log_const,
                self.covariance.code,
                resp_in if resp_in is not None else np.empty((0, 0)),
                self.nk_slots, self.s1_slots, s2_slots, self.ll_slots, self.ent_slots,
                resp_out if resp_out is not None else empty_out_2d,
                log_prob_norm_out if log_prob_norm_out is not None else empty_out_1d,
                compute_stats, CHUNK_SIZE, self.n_threads, sample_z, seed, sweep, z_out, 0,
                panels, centred_full, self.float32_work)
            s2_panel = s2_slots[0] if panels else None
        # Reduction over the groups in group order (numpy adds the rows of a C-ordered array
        # one after another along axis 0), independent of the thread count.
        stats = {"log_likelihood": float(self.ll_slots.sum()),
                 "entropy_term": float(self.ent_slots.sum())}
        if compute_stats:
            stats["nk"] = self.nk_slots.sum(axis=0)
            stats["s1"] = self.s1_slots.sum(axis=0).reshape(K, D)
            s2 = s2_panel if panels else self.s2_slots.sum(axis=0)
            stats["s2"] = self.covariance.reduce_s2(s2, K, D)
            # (the fused tiles' S2 is centred at each pass centre already, the very form a
            # second pass would take: nothing to redo. A collapsing component's S2 is then
            # exact up to its own rounding, and judged degenerate on that.)
            tiles = resp_in is None and _gmm.full_tile_form(K, D)
            if (self.covariance_type == "full" and not panels and not sample_z
                    and centred_full is None and _gmm.full_gemm_form(K, D)[0] and not tiles):
                redo = full_gemm_cancelled(stats["s2"], stats["nk"], means_shifted)
                if redo.any():
                    return self.run(means_shifted, prec_flat, aux, log_const, resp_in,
                                    resp_out, log_prob_norm_out, compute_stats, sample_z,
                                    seed, sweep, z_out, redo.astype(np.uint8))
        return Statistics(**stats)

    def _s2_size(self, compute_stats):
        """Length of a pass's S2 slot: empty for a panel sweep without statistics."""
        if self.slot_plan.s2_panels and not compute_stats:
            return 0
        return self.covariance.second_moment_size(self.n_components, self.n_features)

    def _run_blocks(self, means_shifted, prec_flat, aux, log_const, resp_in, compute_stats,
                    sample_z, seed, sweep, centred_full=None):
        """The pass block by block (``block_pass`` per block of whole groups, into the
        groups' slots). With ``s2_panels`` each block's S2 comes in one panel-swept slot,
        added here in block order; returns that sum (None otherwise)."""
        K = self.n_components
        panels = self.slot_plan.s2_panels
        lazy = resp_in is not None and not isinstance(resp_in, np.ndarray)
        plan = self.plan(extra_row_bytes=8 * K if lazy else 0)
        if isinstance(self.rows, DaskRows):
            plan = self.plan()  # the dask array is chunked by this one
        per_block = []
        for (start, stop, g0, g1), (w,) in zip(plan, self._weights_of(plan)):
            part = None
            if resp_in is not None:
                part = resp_in.part(start, stop) if lazy else resp_in[start:stop]
            per_block.append((w, part, g1 - g0, start))
        shared = (self.shift, means_shifted, prec_flat, aux, log_const, self.covariance.code,
                  self._s2_size(compute_stats), compute_stats, sample_z, seed, sweep,
                  self.n_threads, panels, centred_full, self.float32_work)
        if panels and not isinstance(self.rows, DaskRows):
            # one block's S2 at a time, added as it comes (no list of K D^2 arrays)
            results = (block_pass(self.rows[start:stop], *per_block[b], *shared)
                       for b, (start, stop, _, _) in enumerate(plan))
        else:
            results = self.rows.map(plan, block_pass, per_block, shared)
        s2_panel = None
        for (_, _, g0, g1), (nk, s1, s2, ll, ent) in zip(plan, results):
            self.nk_slots[g0:g1] = nk
            self.s1_slots[g0:g1] = s1
            if not panels:
                self.s2_slots[g0:g1] = s2
            elif s2_panel is None:
                s2_panel = s2[0]
            else:
                s2_panel += s2[0]
            self.ll_slots[g0:g1] = ll
            self.ent_slots[g0:g1] = ent
        return s2_panel

    def centred_stats_from_resp(self, resp, reg_covar=0.0):
        """Statistics of given responsibilities, for initialisation, with S2 about the shift
        except for the components far from it (``far_from_shift`` of the estimates S2 about
        the shift gives), whose S2 a second pass centres at their means: such a component
        then loses nothing to cancellation, and an ordinary fit takes one pass. Returns
        (stats, centres): the shifted (K, D) centres (0 = the shift) to pass to
        ``estimate_parameters`` with the statistics."""
        K, D = self.n_components, self.n_features
        zeros = np.zeros((K, D))
        first = self.stats_from_resp(resp, zeros)
        if not self.covariance.centred_s2:
            return first, zeros
        nk = first["nk"]
        _, means, cov = estimate_parameters(first, self.covariance_type, reg_covar, zeros)
        if self.given_resp_float32:
            far = self.covariance.far_from_shift(means, cov, FAR_FROM_SHIFT_F32)
        else:
            far = self.covariance.far_from_shift(means, cov)
        far &= nk > 0
        if not far.any():
            return first, zeros
        centers = zeros
        centers[far] = first["s1"][far] / nk[far, None]
        return self.stats_from_resp(resp, centers), centers

    def stats_from_resp(self, resp, centers_shifted=None):
        """Statistics of given responsibilities; S2 ('full', 'diag', 'spherical') is centred
        at ``centers_shifted`` (K, D) (default: the shift). ``resp``: an (N, K) array, or
        assignments (``HardAssignments``, ``Seeds``, ``NearestCentres``), whose one-hot rows
        are made and passed block by block (blocks of whole groups: the statistics of the
        (N, K) one-hot array) so that no N x K array exists."""
        K, D = self.n_components, self.n_features
        zeros_means = (np.zeros((K, D)) if centers_shifted is None
                       else np.ascontiguousarray(centers_shifted, dtype=np.float64))
        prec_flat, aux = self.covariance.dummy_kernel_arrays(K, D)
        if isinstance(resp, np.ndarray):
            resp = np.ascontiguousarray(resp, dtype=np.float64)
        return self.run(zeros_means, prec_flat, aux, np.zeros(K), resp_in=resp)


def block_pass(X, w, resp, n_groups, row_offset, shift, means_shifted, prec_flat, aux,
               log_const, cov_code, s2_size, compute_stats, sample_z, seed, sweep, n_threads,
               s2_panels=False, centred_full=None, float32_work=False):
    """The kernel on one block of whole groups (rows ``row_offset`` onwards of the data):
    returns its ``n_groups`` slots (nk, s1, s2, ll, ent); with ``s2_panels`` one S2 slot
    (the panel sweep's). A module-level function of picklable arguments: a Dask task runs it
    where the block lives. ``resp``: None, the block's (n, K) responsibilities, or
    assignments' ``part`` (its ``one_hot(X)``)."""
    K, D = log_const.shape[0], X.shape[1]
    X = np.ascontiguousarray(X)
    if resp is not None and not isinstance(resp, np.ndarray):
        resp = resp.one_hot(X)
    nk, s1 = np.empty((n_groups, K)), np.empty((n_groups, K * D))
    s2 = np.empty((1 if s2_panels else n_groups, s2_size))
    ll, ent = np.empty(n_groups), np.empty(n_groups)
    _gmm.gmm_pass(X, w if w is not None else np.empty(0), shift, means_shifted, prec_flat,
                  aux, log_const, cov_code, resp if resp is not None else np.empty((0, 0)),
                  nk, s1, s2, ll, ent, np.empty((0, 0), dtype=X.dtype),
                  np.empty(0, dtype=X.dtype), compute_stats, CHUNK_SIZE,
                  threads_for(n_threads, X.shape[0]), sample_z, seed, sweep, None,
                  row_offset, s2_panels, centred_full, float32_work)
    return nk, s1, s2, ll, ent


def full_gemm_cancelled(s2, nk, centres):
    """(K,) bool: the 'full' components whose S2 (K, D, D), taken about the shift in the
    kernel's GEMM form and centred at ``centres`` (K, D, shifted), may have lost more than
    ~6 digits: N_k ||c_k||^2 > 2^20 lambda_min(S2_k) (the terms summed are ~N_k ||c_k||^2,
    the result's smallest direction lambda_min; the rule of ``FAR_FROM_SHIFT``), or S2_k not
    finite. Such a component (e.g. one collapsing onto a few rows, whose exact S2 is
    singular) needs the centred form to be judged degenerate or not."""
    scale = nk * np.einsum("kd,kd->k", centres, centres)
    finite = np.isfinite(s2).all(axis=(1, 2))
    lam = np.full(nk.shape[0], -np.inf)
    with single_threaded_blas():
        lam[finite] = np.linalg.eigvalsh(s2[finite])[:, 0]
    return (scale > FAR_FROM_SHIFT * lam) & (nk > 0) & (scale > 0)


def _block_gram(X, w, n_groups, shift, n_threads, float32_work=False):
    """Per-group Gram slots of one block of ``n_groups`` whole groups (0: the block's own
    grouping, for a block not cut by the Gram matrix's plan); ``float32_work``: float32 X
    in float32 tiles (``_gmm.weighted_gram``)."""
    D = X.shape[1]
    X = np.ascontiguousarray(X)
    G = n_groups if n_groups else n_groups_for(X.shape[0], D * D, X.nbytes)
    slots = np.empty((G, D * D))
    _gmm.weighted_gram(X, w if w is not None else np.empty(0), shift, slots, CHUNK_SIZE,
                       threads_for(n_threads, X.shape[0]), float32_work)
    return slots


def _per_group(X, w, fn, group_rows, *args):
    """(groups in the block, ...) of ``fn(X_g, w_g, *args)`` per group of ``group_rows``."""
    return np.array([fn(X[s:s + group_rows], None if w is None else w[s:s + group_rows],
                        *args) for s in range(0, X.shape[0], group_rows)])


def _block_column_sums(X, w, group_rows, n_threads, shift=None):
    """(groups in the block, D) sum_n w_n x_n (with ``shift``: sum_n w_n (x_n - shift)^2) per
    group of ``group_rows`` rows, in float64 (a module-level function of arrays: a Dask task
    runs it where the block lives)."""
    X = np.ascontiguousarray(X)
    out = np.empty((-(-X.shape[0] // group_rows), X.shape[1]))
    _gmm.group_column_sums(X, w if w is not None else np.empty(0), group_rows, out,
                           threads_for(n_threads, X.shape[0]), shift)
    return out


def _max_deviation(X, w, shift):
    """An upper bound of max_n,j |x_nj - shift_j| (the weights play no part):
    max(max X - min shift, max shift - min X), from X's extremes in its own dtype (two
    contiguous reductions, no float64 copy of X). Exact when the shift's entries are
    equal, and within the spread of the shift's entries of the exact value otherwise: the
    float32 tiles' guard (FLOAT32_TILE_MAX_DEVIATION) asks only for the order of magnitude."""
    if X.shape[0] == 0:
        return 0.0
    high, low = float(np.max(X)), float(np.min(X))
    return max(high - float(np.min(shift)), float(np.max(shift)) - low, 0.0)


def random_resp(random_state, n_samples, n_components, n_threads=1):
    """(n_samples, n_components) uniform random responsibilities, each row normalised:
    ``u = random_state.uniform(size=(N, K)); u / u.sum(axis=1)[:, None]`` (scikit-learn's
    ``init_params='random'``), the same bits and the same state of ``random_state`` after.
    For a RandomState on MT19937 (every ``check_random_state`` result but one wrapping
    another bit generator) the draws and the normalisation are C loops
    (``_gmm.mt19937_random_resp``: the generator's words serially, the doubles and rows on
    ``n_threads`` threads, the same bits for any count; no (N, K) temporaries)."""
    state = random_state.get_state(legacy=False)
    if state["bit_generator"] != "MT19937":
        resp = random_state.uniform(size=(n_samples, n_components))
        resp /= resp.sum(axis=1)[:, None]
        return resp
    legacy = random_state.get_state()  # (name, key, pos, has_gauss, cached_gaussian)
    key = np.array(legacy[1], dtype=np.uint32)
    resp = np.empty((n_samples, n_components))
    pos = _gmm.mt19937_random_resp(key, int(legacy[2]), resp, max(1, int(n_threads)))
    random_state.set_state((legacy[0], key, pos, legacy[3], legacy[4]))
    return resp


class HardAssignments:
    """Initial hard assignments: ``labels`` (N,) in [0, K), or -1 for a row in no component;
    stands for the one-hot (N, K) responsibilities without storing them."""

    def __init__(self, labels, n_components):
        self.labels = np.asarray(labels, dtype=np.intp)
        self.n_components = n_components

    def one_hot(self, X=None, start=0, stop=None):
        """Rows [start, stop) (default all) as a float64 one-hot array (``X`` unused: the
        block's rows, which ``Seeds`` and ``NearestCentres`` read)."""
        stop = self.labels.shape[0] if stop is None else stop
        labels = self.labels[start:stop]
        out = np.zeros((stop - start, self.n_components))
        rows = np.flatnonzero(labels >= 0)
        out[rows, labels[rows]] = 1.0
        return out

    def part(self, start, stop):
        """The assignments of rows [start, stop)."""
        return HardAssignments(self.labels[start:stop], self.n_components)

    def toarray(self):
        return self.one_hot()


class Seeds:
    """One row per component (``indices`` (K,), row indices[k] in component k), every other
    row in none: k-means++ and random_from_data seeds, without an N-long label array."""

    def __init__(self, indices, n_components, n_samples):
        self.indices = np.asarray(indices, dtype=np.intp)
        self.n_components = n_components
        self.n_samples = n_samples

    def part(self, start, stop):
        keep = (self.indices >= start) & (self.indices < stop)
        out = Seeds(np.where(keep, self.indices - start, -1), self.n_components,
                    stop - start)
        return out

    def one_hot(self, X=None):
        out = np.zeros((self.n_samples, self.n_components))
        for k, i in enumerate(self.indices):
            if i >= 0:
                out[i, k] = 1.0
        return out

    def toarray(self):
        return self.one_hot()


class NearestCentres:
    """Every row in the component of its nearest centre (squared Euclidean distance, the
    first of equals): k-means' labels for the centres found on a sample of the rows."""

    def __init__(self, centres):
        self.centres = np.ascontiguousarray(centres, dtype=np.float64)
        self.n_components = self.centres.shape[0]

    def part(self, start, stop):
        return self

    def one_hot(self, X):
        X = np.asarray(X, dtype=np.float64)
        d2 = (X ** 2).sum(axis=1)[:, None] - 2.0 * X @ self.centres.T \
            + (self.centres ** 2).sum(axis=1)
        out = np.zeros((X.shape[0], self.n_components))
        out[np.arange(X.shape[0]), np.argmin(d2, axis=1)] = 1.0
        return out


def symmetrize_lower(a):
    """Copy the lower triangle of the last two axes onto the upper one."""
    lower = np.tril(a)
    return lower + np.swapaxes(np.tril(a, -1), -1, -2)


def symmetrize_upper_inplace(a):
    """Copy the upper triangle of each (D, D) matrix of a (K, D, D) array onto its lower one,
    in place."""
    symmetrize_lower_inplace(np.swapaxes(a, -1, -2))
    return a


# ``symmetrize_lower_inplace`` copies a whole stack at once up to this many numbers (8 MB)
SYMMETRIZE_STACKED_MAX = 1 << 20


def symmetrize_lower_inplace(a, block=64):
    """``symmetrize_lower`` of a (K, D, D) array in place (the same values: copies only): a
    stack of at most SYMMETRIZE_STACKED_MAX numbers with D <= ``block`` by one indexed copy,
    else one matrix at a time, so that no other K x D x D array is made, by blocks of
    ``block`` columns (strided copies, no index arrays)."""
    D = a.shape[-1]
    if D <= block and a.size <= SYMMETRIZE_STACKED_MAX:
        # the whole stack by one indexed copy (a temporary of K D (D - 1) / 2 numbers):
        # at small D the per-matrix copies' call overhead is the cost
        iu = np.triu_indices(D, 1)
        a[..., iu[0], iu[1]] = a[..., iu[1], iu[0]]
        return a
    width = min(block, D)
    upper = np.triu_indices(width, 1)
    for m in a:
        for j0 in range(0, D, width):
            j1 = min(j0 + width, D)
            diag = m[j0:j1, j0:j1]
            iu = upper if j1 - j0 == width else np.triu_indices(j1 - j0, 1)
            diag[iu] = diag.T[iu]
            if j1 < D:
                m[j0:j1, j1:] = m[j1:, j0:j1].T
    return a


class CovarianceType:
    """The algebra of one covariance type, in its layouts (the table above).

    One instance per type, in ``COVARIANCES``; callers hold the instance of their
    ``covariance_type`` (``GaussianPass.covariance``) and call its methods instead of
    branching on the name. ``precisions_cholesky_`` U is the upper factor with precision
    U U^T ('full', 'tied') or 1 / sqrt(variances) ('diag', 'spherical').
    """

    name = None
    code = None  # the kernel's covariance code (``_gmm.gmm_pass``)
    uses_gram = False  # the covariance estimate needs sum_n w_n (x_n - shift)(...)^T
    centred_s2 = True  # the pass centres S2 at the centres it is given

    def shape(self, K, D):
        """Shape of ``covariances_`` / ``precisions_`` / ``precisions_cholesky_``."""
        raise NotImplementedError

    def second_moment_size(self, K, D):
        """Length of one slot of the kernel's second-moment statistics S2."""
        raise NotImplementedError

    def n_parameters(self, K, D):
        """Free parameters of the covariances."""
        raise NotImplementedError

    def reduce_s2(self, s2, K, D):
        """The summed S2 slot (flat) in this type's layout: (K, D, D) symmetric 'full',
        (K, D) 'diag', (K,) 'spherical', empty 'tied' (which uses the Gram matrix)."""
        return s2

    def dummy_kernel_arrays(self, K, D):
        """Correctly shaped, unused factor arrays for a pass driven by given
        responsibilities: (prec_flat, aux)."""
        raise NotImplementedError

    def estimate_covariances(self, stats, nk_raw, nk, means, reg_covar, centers_shifted,
                             gram, overwrite_s2=False):
        """Covariances from the statistics, given N_k (raw and with 10 eps) and the shifted
        means (K, D); ``reg_covar`` on the diagonal (see ``estimate_parameters``).
        ``overwrite_s2``: the result may take the memory of ``stats["s2"]``."""
        raise NotImplementedError

    def precision_cholesky(self, covariances):
        """U from the covariances (ValueError if one is not positive-definite)."""
        raise NotImplementedError

    def precision_cholesky_from_precisions(self, precisions):
        """U straight from the precisions."""
        raise NotImplementedError

    def precisions_from_cholesky(self, prec_chol):
        """Precisions U U^T (or squared factors)."""
        raise NotImplementedError

    def covariances_from_cholesky(self, prec_chol):
        """Covariances (U U^T)^{-1}."""
        raise NotImplementedError

    def log_det_cholesky(self, prec_chol, n_features):
        """log det U per component (half the log-determinant of the precision); (K,) or a
        scalar ('tied')."""
        raise NotImplementedError

    def kernel_arrays(self, means_shifted, prec_chol):
        """(prec_flat, aux, quad_const): the per-component arrays the pass needs for the
        quadratic form, with S2 centred at ``means_shifted`` (see ``kernel_arrays``)."""
        raise NotImplementedError

    def pass_arrays(self, means_shifted, prec_chol):
        """(centres, prec_flat, aux, quad_const) for a pass (see ``pass_inputs``): by default
        centred at the means."""
        return (means_shifted,) + tuple(self.kernel_arrays(means_shifted, prec_chol))

    def far_from_shift(self, means_shifted, covariances):
        """(K,) bool: the components whose initial S2 is to be centred at their means."""
        return np.zeros(means_shifted.shape[0], dtype=bool)

    def check_precision_values(self, precisions):
        """Validate user-given precisions of the right shape (ValueError)."""
        raise NotImplementedError

    def sample_rows(self, rng, mean, covariances, k, count):
        """``count`` rows (count, D) drawn from component k: N(mean, covariances of k)."""
        raise NotImplementedError


def _stacked_precision_cholesky(covs):
    """U_k = L_k^{-T} (cov_k = L_k L_k^T) of (K, D, D) covariances: the inverse of the
    triangular factor (LAPACK trtri, D^3 / 3 flops; a solve against the identity takes D^3),
    never an inverse of cov_k."""
    out = np.empty_like(covs)
    for k, cov in enumerate(covs):
        # LAPACK potrf itself, as linalg.cholesky(lower=True, check_finite=False) calls it
        # (the same factor), without that wrapper's checks and batching (~20 us a matrix,
        # K of them an iteration)
        cov_chol, info = lapack.dpotrf(cov, lower=1, clean=1)
        if info != 0:
            raise ValueError(_ILL_DEFINED)
        # the transposed view of the factor: upper, no copy
        inv, info = lapack.dtrtri(cov_chol.T, lower=0, overwrite_c=1)
        if info != 0:
            raise ValueError(_ILL_DEFINED)
        out[k] = inv  # (L^T)^{-1} = L^{-T}, upper; the strict lower triangle is zero
    if not np.isfinite(out).all():
        raise ValueError(_ILL_DEFINED)
    return out


def _positive_definite(p):
    """Whether the symmetric, finite matrix p is positive-definite: whether its Cholesky
    factor exists (D^3 / 3 flops; eigenvalues cost several times that, 11 s a matrix at
    D = 2000 on a busy machine). On one BLAS thread, as every factorisation of a fit: on
    busy cores OpenBLAS's threads made it ten times slower."""
    with single_threaded_blas():
        try:
            linalg.cholesky(p, lower=True, check_finite=False)
        except linalg.LinAlgError:
            return False
    return True


def _stacked_cholesky_from_precisions(precs):
    """U_k = J chol(J P_k J) J of (K, D, D) precisions (J the reversal permutation): upper
    triangular, U U^T = P, without inverting P."""
    out = np.empty_like(precs, dtype=np.float64)
    for k, prec in enumerate(precs):
        lower = linalg.cholesky(prec[::-1, ::-1], lower=True)
        out[k] = lower[::-1, ::-1]
    return out


def _stacked_covariances_from_cholesky(chols):
    """(U_k U_k^T)^{-1} = U_k^{-T} U_k^{-1} of (K, D, D) factors, via triangular solves."""
    D = chols.shape[-1]
    out = np.empty_like(chols)
    for k, u in enumerate(chols):
        u_inv = linalg.solve_triangular(u, np.eye(D), lower=False)
        out[k] = u_inv.T @ u_inv
    return out


class Full(CovarianceType):
    """Each component its own (D, D) covariance."""

    name, code = "full", 0

    def shape(self, K, D):
        return (K, D, D)

    def second_moment_size(self, K, D):
        return K * D * D

    def n_parameters(self, K, D):
        return K * D * (D + 1) / 2.0

    def reduce_s2(self, s2, K, D):
        return symmetrize_lower_inplace(s2.reshape(K, D, D))

    def dummy_kernel_arrays(self, K, D):
        return np.zeros(K * D * D), np.empty((0, 0))

    def far_from_shift(self, means_shifted, covariances, limit=None):
        # the pass centres the quadratic form and S2 at the means anyway; the initial S2
        # about the shift is conditioned by each variance's m^2 / var, as for 'diag'
        # (``limit``: FAR_FROM_SHIFT_F32 for a float32 pass)
        return _far(means_shifted ** 2, np.diagonal(covariances, axis1=1, axis2=2), limit)

    def estimate_covariances(self, stats, nk_raw, nk, means, reg_covar, centers_shifted,
                             gram, overwrite_s2=False):
        # S2 is centred at the pass's centres: sum r (x - m)(x - m)^T = S2 - R d d^T
        D = means.shape[1]
        d = means - centers_shifted
        s2 = stats["s2"]
        cov = s2 if overwrite_s2 else np.empty_like(s2)
        for k in range(len(cov)):  # one matrix at a time: no K x D x D temporaries
            np.subtract(s2[k], nk_raw[k] * d[k][:, None] * d[k][None, :], out=cov[k])
            cov[k] /= nk[k]
        cov[:, np.arange(D), np.arange(D)] += reg_covar
        return cov

    def precision_cholesky(self, covariances):
        return _stacked_precision_cholesky(covariances)

    def precision_cholesky_from_precisions(self, precisions):
        return _stacked_cholesky_from_precisions(precisions)

    def precisions_from_cholesky(self, prec_chol):
        D = prec_chol.shape[-1]
        if D <= 64:  # one call for the stack; LAPACK calls per component cost more here
            return np.einsum("kij,klj->kil", prec_chol, prec_chol)
        # einsum's loops are not BLAS (32 s at K=5, D=2000): LAPACK lauum, D^3 / 3 flops
        out = np.empty_like(prec_chol, dtype=np.float64)
        for k, u in enumerate(prec_chol):
            # u^T (Fortran view) is lower triangular L; lauum gives L^T L = u u^T in its
            # lower triangle, which is the upper one of the C-ordered result
            prod, info = lapack.dlauum(np.asarray(u, dtype=np.float64).T, lower=1)
            out[k] = prod.T
        return symmetrize_upper_inplace(out)

    def covariances_from_cholesky(self, prec_chol):
        return _stacked_covariances_from_cholesky(prec_chol)

    def log_det_cholesky(self, prec_chol, n_features):
        return np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(axis=1)

    def kernel_arrays(self, means_shifted, prec_chol):
        K = means_shifted.shape[0]
        return (np.ascontiguousarray(prec_chol, dtype=np.float64).ravel(), np.empty((0, 0)),
                np.zeros(K))

    def check_precision_values(self, precisions):
        for k, p in enumerate(precisions):
            if not np.allclose(p, p.T):
                raise ValueError(f"precisions_init[{k}] is not symmetric")
            if not _positive_definite(p):
                raise ValueError(f"precisions_init[{k}] is not positive-definite")

    def sample_rows(self, rng, mean, covariances, k, count):
        return rng.multivariate_normal(mean, covariances[k], count)


class Tied(CovarianceType):
    """One (D, D) covariance shared by every component (the matrix algebra of 'full' on a
    stack of one)."""

    name, code = "tied", 1
    uses_gram = True
    centred_s2 = False

    def shape(self, K, D):
        return (D, D)

    def second_moment_size(self, K, D):
        return 0

    def n_parameters(self, K, D):
        return D * (D + 1) / 2.0

    def dummy_kernel_arrays(self, K, D):
        return np.zeros(D * D), np.zeros((K, D + 1))

    def estimate_covariances(self, stats, nk_raw, nk, means, reg_covar, centers_shifted,
                             gram, overwrite_s2=False):
        D = means.shape[1]
        cov = gram - (nk[:, None] * means).T @ means
        cov /= nk.sum()
        cov.flat[:: D + 1] += reg_covar
        return cov

    def precision_cholesky(self, covariances):
        return _stacked_precision_cholesky(covariances[None])[0]

    def precision_cholesky_from_precisions(self, precisions):
        return _stacked_cholesky_from_precisions(precisions[None])[0]

    def precisions_from_cholesky(self, prec_chol):
        return prec_chol @ prec_chol.T

    def covariances_from_cholesky(self, prec_chol):
        return _stacked_covariances_from_cholesky(prec_chol[None])[0]

    def log_det_cholesky(self, prec_chol, n_features):
        return float(np.log(np.diag(prec_chol)).sum())

    def kernel_arrays(self, means_shifted, prec_chol):
        K = means_shifted.shape[0]
        u = np.ascontiguousarray(prec_chol, dtype=np.float64)
        mu = means_shifted @ u
        aux = np.hstack([-2.0 * mu, np.ones((K, 1))])
        return u.ravel(), np.ascontiguousarray(aux), -0.5 * (mu ** 2).sum(axis=1)

    def check_precision_values(self, precisions):
        if not np.allclose(precisions, precisions.T):
            raise ValueError("precisions_init is not symmetric")
        if not _positive_definite(precisions):
            raise ValueError("precisions_init is not positive-definite")

    def sample_rows(self, rng, mean, covariances, k, count):
        return rng.multivariate_normal(mean, covariances, count)


class _Variances(CovarianceType):
    """The types whose precision factors are 1 / sqrt(variances), per dimension ('diag') or
    per component ('spherical')."""

    def precision_cholesky(self, covariances):
        if np.any(np.less_equal(covariances, 0.0)) or not np.isfinite(covariances).all():
            raise ValueError(_ILL_DEFINED)
        return 1.0 / np.sqrt(covariances)

    def precision_cholesky_from_precisions(self, precisions):
        return np.sqrt(precisions)

    def precisions_from_cholesky(self, prec_chol):
        return prec_chol ** 2

    def covariances_from_cholesky(self, prec_chol):
        return 1.0 / prec_chol ** 2

    def check_precision_values(self, precisions):
        if np.any(precisions <= 0):
            raise ValueError(f"precisions_init for covariance_type={self.name!r} must be "
                             "positive")

    def sample_rows(self, rng, mean, covariances, k, count):
        return mean + rng.standard_normal((count, mean.shape[0])) * np.sqrt(covariances[k])


# A 'diag' / 'spherical' component is centred at its mean (in the pass: quadratic form and
# S2; in the initial statistics: S2) when delta^2 = sum_j m_kj^2 / var_kj (m_k shifted: the
# squared distance in its own standard deviations from the shift, the data mean) exceeds
# this. The GEMM form about the shift sums terms of size delta^2 to a quadratic form of
# size ~D near the component (and S2 / N - m^2 to a variance var = m^2 / delta^2), so it
# loses about log10(delta^2) digits: at most ~6 below 2^20 (a component 1024 standard
# deviations from the data mean), which leaves ~10, as many as the estimates' own rounding
# keeps. Ordinary fits stay far below it and take the faster GEMM form for every component.
# It depends on the parameters only (never on threads or chunks).
FAR_FROM_SHIFT = 2.0 ** 20


def _far(m2, var, limit=None):
    """(K,) bool: sum_j m2_kj / var_kj > ``limit`` (default FAR_FROM_SHIFT); a variance that
    is not positive (a cancelled one) counts as infinitely narrow."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(var > 0.0, m2 / np.where(var > 0.0, var, 1.0),
                         np.where(m2 > 0.0, np.inf, 0.0))
    return ratio.sum(axis=1) > (FAR_FROM_SHIFT if limit is None else limit)


def _hybrid_arrays(means_shifted, p2, per_dim):
    """(centres, prec_flat, aux, quad_const) of the pass for 'diag' (``per_dim``, p2 (K, D))
    or 'spherical' (p2 (K,)): the GEMM form about the shift, aux = [-2 m p^2, p^2] and the
    folded -1/2 sum_j m_j^2 p_j^2 with centre 0, for every component but those beyond
    ``FAR_FROM_SHIFT``, which are centred at their means (aux [0, p^2], constant 0)."""
    means_shifted = np.asarray(means_shifted, dtype=np.float64)
    p2c = p2 if per_dim else p2[:, None]
    aux = np.hstack([-2.0 * means_shifted * p2c, p2c])
    quad = (-0.5 * (means_shifted ** 2 * p2).sum(1) if per_dim
            else -0.5 * p2 * (means_shifted ** 2).sum(1))
    delta2 = -2.0 * quad  # sum_j m_j^2 p_j^2
    far = ~(delta2 <= FAR_FROM_SHIFT)  # (NaN: centred too)
    centres = np.zeros_like(means_shifted)
    if far.any():
        centres[far] = means_shifted[far]
        aux[far, :means_shifted.shape[1]] = 0.0
        quad[far] = 0.0
    return (np.ascontiguousarray(centres), np.empty(0), np.ascontiguousarray(aux), quad)


def _positive(scatter, pseudo):
    """The GEMM form's S2 / N_k - m^2 where it is positive, else ``pseudo``, the value it
    has exactly for a component without spread (10 eps m^2 / N_k): the subtraction cancels
    to 0 or below for a singleton, by rounding that differs between SIMD paths."""
    return np.where(scatter > 0.0, scatter, pseudo)


def _variances(s2, s1, nk_raw, nk, means, centers_shifted, reg_covar, summed=False):
    """Variances ('diag' (K, D); with ``summed``, 'spherical''s (K,) sums over dimensions)
    from S2 centred at the pass's centres c (as for 'full'), exactly about the new means m:

        sum r (x - m)^2 = S2 - 2 d (S1 - R c) + R d^2,  d = m - c,  R = sum r,

    a sum of squares up to rounding whatever m (m = S1 / (R + 10 eps) need not be the
    weighted mean of a nearly empty component). Where it is not positive (a component
    without spread: a singleton, or only equal points) the variance is scikit-learn's
    10 eps m^2 / N_k (its 10 eps in N_k act as a pseudo-point at the shift), which keeps
    such a component positive even with ``reg_covar=0``, as scikit-learn does."""
    d = means - centers_shifted
    cross = d * (s1 - nk_raw[:, None] * centers_shifted)
    square = nk_raw[:, None] * d ** 2
    if summed:
        cross, square = cross.sum(axis=1)[:, None], square.sum(axis=1)[:, None]
    scatter = s2 - 2.0 * cross + square
    pseudo = (nk - nk_raw)[:, None] * (means ** 2 if not summed
                                       else (means ** 2).sum(axis=1)[:, None])
    scatter = np.where(scatter > 0.0, scatter, pseudo)
    out = scatter / nk[:, None] + reg_covar
    return out[:, 0] if summed else out


class Diag(_Variances):
    """Each component a diagonal covariance, (D,) variances."""

    name, code = "diag", 2

    def shape(self, K, D):
        return (K, D)

    def second_moment_size(self, K, D):
        return K * D

    def n_parameters(self, K, D):
        return K * D

    def reduce_s2(self, s2, K, D):
        return s2.reshape(K, D)

    def dummy_kernel_arrays(self, K, D):
        return np.empty(0), np.zeros((K, 2 * D))

    def estimate_covariances(self, stats, nk_raw, nk, means, reg_covar, centers_shifted,
                             gram, overwrite_s2=False):
        # S2 about the shift (centre 0): the estimate as before centring existed; S2 centred
        # at a far component's mean: exactly about the new mean
        out = _positive(stats["s2"] / nk[:, None] - means ** 2,
                        (nk - nk_raw)[:, None] * means ** 2 / nk[:, None]) + reg_covar
        centred = np.any(centers_shifted != 0.0, axis=1)
        if centred.any():
            out = np.where(centred[:, None],
                           _variances(stats["s2"], stats["s1"], nk_raw, nk, means,
                                      centers_shifted, reg_covar), out)
        return out

    def far_from_shift(self, means_shifted, covariances, limit=None):
        # (``limit``: FAR_FROM_SHIFT_F32 for a float32 pass)
        return _far(means_shifted ** 2, covariances, limit)

    def log_det_cholesky(self, prec_chol, n_features):
        return np.log(prec_chol).sum(axis=1)

    def kernel_arrays(self, means_shifted, prec_chol):
        # centred at the means: the pass reads p^2 from aux's last D columns and centres x at
        # each mean itself
        p2 = np.asarray(prec_chol, dtype=np.float64) ** 2
        aux = np.hstack([np.zeros_like(p2), p2])
        return np.empty(0), np.ascontiguousarray(aux), np.zeros(means_shifted.shape[0])

    def pass_arrays(self, means_shifted, prec_chol):
        return _hybrid_arrays(means_shifted, np.asarray(prec_chol, dtype=np.float64) ** 2,
                              True)


class Spherical(_Variances):
    """Each component one variance."""

    name, code = "spherical", 3

    def shape(self, K, D):
        return (K,)

    def second_moment_size(self, K, D):
        return K

    def n_parameters(self, K, D):
        return K

    def dummy_kernel_arrays(self, K, D):
        return np.empty(0), np.zeros((K, D + 1))

    def estimate_covariances(self, stats, nk_raw, nk, means, reg_covar, centers_shifted,
                             gram, overwrite_s2=False):
        D = means.shape[1]
        # as for 'diag': S2 about the shift (centre 0) as before centring existed
        m2 = (means ** 2).sum(axis=1)
        out = _positive(stats["s2"] / nk - m2, (nk - nk_raw) * m2 / nk) / D + reg_covar
        centred = np.any(centers_shifted != 0.0, axis=1)
        if centred.any():
            # the per-dimension scatter summed over dimensions: S2 holds the sums
            out = np.where(centred,
                           _variances(stats["s2"][:, None], stats["s1"], nk_raw, nk, means,
                                      centers_shifted, 0.0, summed=True) / D + reg_covar,
                           out)
        return out

    def far_from_shift(self, means_shifted, covariances, limit=None):
        return _far(means_shifted ** 2, np.asarray(covariances)[:, None], limit)

    def log_det_cholesky(self, prec_chol, n_features):
        return n_features * np.log(prec_chol)

    def kernel_arrays(self, means_shifted, prec_chol):
        # centred at the means: the pass reads p^2 from aux's last column and centres x at
        # each mean itself
        p2 = np.asarray(prec_chol, dtype=np.float64) ** 2
        aux = np.hstack([np.zeros_like(means_shifted), p2[:, None]])
        return np.empty(0), np.ascontiguousarray(aux), np.zeros(means_shifted.shape[0])

    def pass_arrays(self, means_shifted, prec_chol):
        return _hybrid_arrays(means_shifted, np.asarray(prec_chol, dtype=np.float64) ** 2,
                              False)


#: covariance_type -> its algebra
COVARIANCES = {c.name: c for c in (Full(), Tied(), Diag(), Spherical())}
#: covariance_type -> the kernel's code
COVARIANCE_TYPES = {name: c.code for name, c in COVARIANCES.items()}


# ---------------------------------------------------------------------- by type name
# The same algebra for callers holding a ``covariance_type`` name.
def second_moment_size(covariance_type, n_components, n_features):
    """Length of one slot of the kernel's second-moment statistics S2."""
    return COVARIANCES[covariance_type].second_moment_size(n_components, n_features)


def estimate_parameters(stats, covariance_type, reg_covar, centers_shifted, gram=None,
                        overwrite_s2=False):
    """Weights (unnormalised N_k), shifted means and covariances from pass statistics.

    The same estimates as scikit-learn's ``_estimate_gaussian_parameters``: N_k gets
    10 * eps so empty components do not divide by zero, and ``reg_covar`` is added to the
    diagonal. For 'full', S2 is centred at ``centers_shifted`` (the means the pass was given)
    and re-centred here at the new means:
        sum r (x - m)(x - m)^T = S2 - R d d^T,  d = m - centre,  R = sum r.
    ``gram`` (D, D) is needed by 'tied' only. ``overwrite_s2``: 'full' may compute the
    covariances in the memory of ``stats["s2"]`` (for a caller that uses the statistics once:
    no second K x D x D array).
    """
    nk_raw = stats["nk"]
    nk = nk_raw + 10 * np.finfo(np.float64).eps
    means = stats["s1"] / nk[:, None]
    cov = COVARIANCES[covariance_type].estimate_covariances(
        stats, nk_raw, nk, means, reg_covar, centers_shifted, gram, overwrite_s2)
    return nk, means, cov


def precision_cholesky(covariances, covariance_type):
    """Upper factor U of each precision (precision = U U^T) from the covariances.

    With the covariance Cholesky factor L (cov = L L^T), U = L^{-T}, found by a triangular
    solve rather than an explicit inverse.
    """
    return COVARIANCES[covariance_type].precision_cholesky(covariances)


def precision_cholesky_from_precisions(precisions, covariance_type):
    """Upper factor U with precision = U U^T, straight from a precision matrix.

    With J the reversal permutation, J chol(J P J) J is upper triangular and squares to P; this
    avoids inverting P.
    """
    return COVARIANCES[covariance_type].precision_cholesky_from_precisions(precisions)


def precisions_from_cholesky(prec_chol, covariance_type):
    """Precision matrices U U^T (or squared precisions for diag / spherical)."""
    return COVARIANCES[covariance_type].precisions_from_cholesky(prec_chol)


def covariances_from_cholesky(prec_chol, covariance_type):
    """Covariances (U U^T)^{-1} = U^{-T} U^{-1}, via triangular solves."""
    return COVARIANCES[covariance_type].covariances_from_cholesky(prec_chol)


def log_det_cholesky(prec_chol, covariance_type, n_features):
    """log det U per component (half the log-determinant of the precision); (K,) or scalar."""
    return COVARIANCES[covariance_type].log_det_cholesky(prec_chol, n_features)


def plugin_log_const(weights, prec_chol, covariance_type, n_features):
    """c_k = log pi_k + log det U_k - D/2 log(2 pi) of a pass at point estimates (K,); a zero
    weight gives log 0 = -inf, on purpose (the component takes no row)."""
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    return (log_weights + log_det_cholesky(prec_chol, covariance_type, n_features)
            - 0.5 * n_features * LOG_2PI)


def kernel_arrays(means_shifted, prec_chol, covariance_type):
    """The per-component arrays the pass needs for the quadratic form.

    Returns (prec_flat, aux, quad_const): for 'full' the flattened factors; for 'tied' (the
    GEMM form) the vectors a_k and the folded constant -1/2 ||m_k U||^2, which the caller
    adds to c_k; for 'diag' / 'spherical' [0, p_k^2] and zeros (the pass centres x and S2 at
    m_k itself, ``means_shifted`` being the centres passed). See
    ``src_c/emissions/_gaussian_kernel.pyx``; ``pass_inputs`` chooses the faster GEMM form
    where it is accurate.
    """
    return COVARIANCES[covariance_type].kernel_arrays(means_shifted, prec_chol)


def pass_inputs(means, prec_chol, covariance_type, shift, log_const):
    """Everything ``GaussianPass.run`` needs for a pass at given per-component quantities.

    ``log_const`` is the method's c_k without the folded quadratic constant (EM: log pi_k +
    log det U_k - D/2 log 2 pi; mean field: the expected version). Returns (shifted centres,
    factor array, aux, c_k including the folded constant). For 'diag' / 'spherical' the
    centres (which S2 is centred at: pass them on to ``estimate_parameters``) are 0 (the shift)
    for the components that take the GEMM form, the means for those far from the shift (see
    ``FAR_FROM_SHIFT``); for 'full' the means.
    """
    means_shifted = np.ascontiguousarray(np.asarray(means, dtype=np.float64) - shift)
    centres, prec_flat, aux, quad = COVARIANCES[covariance_type].pass_arrays(means_shifted,
                                                                             prec_chol)
    return centres, prec_flat, aux, np.ascontiguousarray(log_const + quad)


def n_covariance_parameters(covariance_type, n_components, n_features):
    """Free parameters of the covariances."""
    return COVARIANCES[covariance_type].n_parameters(n_components, n_features)


def check_precisions(precisions, covariance_type, n_components, n_features):
    """Validate user-given precisions: shape, symmetry and positive definiteness."""
    cov = COVARIANCES[covariance_type]
    shape = cov.shape(n_components, n_features)
    precisions = np.asarray(precisions, dtype=np.float64)
    if precisions.shape != shape:
        raise ValueError(f"precisions_init for covariance_type={covariance_type!r} must have "
                         f"shape {shape}, got {precisions.shape}")
    if not np.isfinite(precisions).all():
        raise ValueError("precisions_init contains NaN or infinity")
    cov.check_precision_values(precisions)
    return precisions
