"""Data read block by block: out-of-core arrays (``numpy.memmap``, zarr, h5py, anything with
``shape``, ``dtype``, ``ndim`` and row slicing) and ``dask.array`` s.

A pass cuts its rows into fixed chunks and the chunks into groups (``sharding.n_groups``),
each group with its own statistics slot, reduced in group order. A **block plan** cuts the
rows into blocks of whole groups: a block's kernel call fills exactly the slots of its groups,
with the same rows in each as the pass over the whole array would put there, and the slots
are then reduced as always. So a fit on blocks gives the bits of the fit in memory, whatever
the blocks' sizes, the order they are computed in and where (a Dask worker, this process).

``Rows`` is what a data object reads its rows through: ``InMemoryRows`` (an ndarray: blocks
are views), ``BlockRows`` (an out-of-core array, read and checked block by block) and
``DaskRows`` (a persisted dask array rechunked to the plan; every block's task runs where the
block lives, on whatever scheduler is active, and the results come back in block order).
``Rows.map(plan, fn, per_block, shared)`` returns ``[fn(X_b, *per_block[b], *shared)]`` in
block order; ``fn`` is a module-level function (picklable). ``Rows.map_fold`` adds a running
sum continued block by block in block order (``fold``; on Dask a chain of tasks on the
workers), for statistics that are one sequential sum over all rows (LDA's word-topic counts);
``Rows.map_part`` runs a function on one block (a mini-batch inside it).

A data set may also hold counts (LDA): its blocks are then checked by another ``flaw``
function (NaN, infinity, negative counts) and a dask array's blocks are converted once, before
they are persisted (``prepare``: to scipy.sparse CSR), whatever they were (dense, or
scipy.sparse blocks of a dask array).

Dask is an optional dependency, imported only when a dask array is passed.
"""
import warnings

import numpy as np

from .validation import all_finite, check_shape

# Bytes of X one block of a blocked pass reads (a block is at least one group per thread).
BLOCK_BYTES = 64 << 20
# Bytes of X a streamed check reads at a time.
CHECK_BYTES = 16 << 20


def is_dask_array(X):
    """Whether X is a dask array (without importing dask)."""
    return type(X).__module__.split(".")[0] == "dask" and hasattr(X, "chunks") \
        and hasattr(X, "compute")


def is_block_source(X):
    """Whether X is read block by block rather than as one ndarray: a ``numpy.memmap``, or an
    array-like that is not an ndarray but has ``shape``, ``dtype``, ``ndim`` and slicing (zarr
    arrays, h5py datasets); not sparse matrices and not dask arrays (see ``is_dask_array``)."""
    if isinstance(X, np.memmap):
        return True
    if isinstance(X, np.ndarray) or is_dask_array(X) or hasattr(X, "nnz"):
        return False
    return all(hasattr(X, a) for a in ("shape", "dtype", "ndim", "__getitem__"))


def _target_dtype(dtype, name, dtypes=(np.float64, np.float32)):
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} must be numeric (real), got "
                         f"dtype {dtype}")
    if dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric, got dtype {dtype}")
    return dtype if dtype in dtypes else np.dtype(dtypes[0])


FINITE = "every value must be finite"


def _check_block(block, name, start, index, flaw=None, requirement=FINITE):
    bad = (flaw or _block_flaw)(block)
    if bad is not None:
        raise ValueError(f"{name} contains {bad} in block {index} (rows {start} to "
                         f"{start + block.shape[0] - 1}); {requirement}.")


def _check_shape_2d(shape, ndim, name):
    if ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (n_samples, n_features), got "
                         f"{ndim}-D array of shape {tuple(shape)}.")


def check_rows(X, name="X", ensure_min_samples=1, n_features=None,
               estimator_name="the estimator", flaw=None, requirement=FINITE, prepare=None):
    """The checked ``Rows`` of X: an ndarray (``check_array``'s rules are the caller's),
    an out-of-core array or a dask array, with their shape, dtype (float32 kept, any other
    numeric dtype read as float64) and finiteness checked block by block (no N x D
    temporary); the error names the block.

    ``flaw(block)``: None or what is wrong with a block ('NaN', 'infinity', ...; default
    non-finite values), ``requirement`` the rule the error states; ``prepare(block)``: a
    dask array's blocks converted once before they are persisted (see ``DaskRows``)."""
    if is_dask_array(X):
        return DaskRows(X, name, ensure_min_samples, n_features, estimator_name, flaw,
                        requirement, prepare)
    return BlockRows(X, name, ensure_min_samples, n_features, estimator_name, flaw,
                     requirement)


class Rows:
    """The rows of a data set as a pass reads them (see the module docstring).

    Attributes: ``shape`` (N, D), ``dtype`` (float32 or float64, what the kernel reads),
    ``nbytes`` (of the whole data in that dtype)."""

    blocked = True  # passes go block by block

    @property
    def nbytes(self):
        return int(self.shape[0]) * int(self.shape[1]) * self.dtype.itemsize

    def __len__(self):
        return self.shape[0]

    def map(self, plan, fn, per_block=None, shared=()):
        raise NotImplementedError

    def map_fold(self, plan, fn, fold, per_block=None, shared=(), fold_shared=()):
        """``([out_b], acc)``: per block ``(out_b, carry_b) = fn(X_b, *per_block[b],
        *shared)``, and ``acc = fold(acc, X_b, carry_b, *fold_shared)`` over the blocks in
        block order from ``acc = None``: a sum continued block by block (the bits of one
        sequential sum over all rows), computed where the blocks are; only ``out_b`` and the
        final ``acc`` come back."""
        outs, acc = [], None
        for b, (start, stop, _, _) in enumerate(plan):
            X_b = self[start:stop]
            out, carry = fn(X_b, *(per_block[b] if per_block else ()), *shared)
            acc = fold(acc, X_b, carry, *fold_shared)
            outs.append(out)
        return outs, acc

    def map_part(self, plan, b, fn, args=()):
        """``fn(X_b, *args)`` for block ``b`` of ``plan`` alone (where it lives)."""
        start, stop, _, _ = plan[b]
        return fn(self[start:stop], *args)

    def take(self, rows):
        """The rows at sorted indices ``rows`` as an ndarray."""
        raise NotImplementedError


class InMemoryRows(Rows):
    """An ndarray's rows: blocks are views."""

    blocked = False

    def __init__(self, X):
        self.X = X
        self.shape, self.dtype = X.shape, X.dtype

    def __getitem__(self, key):
        return self.X[key]

    def map(self, plan, fn, per_block=None, shared=()):
        return [fn(self.X[start:stop], *(per_block[b] if per_block else ()), *shared)
                for b, (start, stop, _, _) in enumerate(plan)]

    def take(self, rows):
        return self.X[rows]


class BlockRows(Rows):
    """An out-of-core array (memmap, zarr, h5py, ...), read block by block: ``X[a:b]`` reads
    rows a to b - 1 as a C-contiguous ndarray of ``dtype`` (a view for a C-ordered memmap of
    that dtype: no copy)."""

    def __init__(self, X, name="X", ensure_min_samples=1, n_features=None,
                 estimator_name="the estimator", flaw=None, requirement=FINITE):
        if not is_block_source(X):
            raise TypeError(f"{name} must be an array with shape, dtype, ndim and row "
                            f"slicing, got {type(X).__name__}")
        _check_shape_2d(X.shape, X.ndim, name)
        self.source = X
        self.shape = tuple(int(s) for s in X.shape)
        self.dtype = _target_dtype(X.dtype, name)
        check_shape(self.shape, name, ensure_min_samples, 1, n_features, estimator_name)
        rows = max(1, CHECK_BYTES // max(1, self.shape[1] * self.dtype.itemsize))
        for index, start in enumerate(range(0, self.shape[0], rows)):
            _check_block(self[start:start + rows], name, start, index, flaw, requirement)
        self._last = None  # the block map_part read last (mini-batches read it once)

    def __getitem__(self, key):
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("blocked rows are read by contiguous row slices only")
        return np.ascontiguousarray(self.source[key], dtype=self.dtype)

    def map(self, plan, fn, per_block=None, shared=()):
        return [fn(self[start:stop], *(per_block[b] if per_block else ()), *shared)
                for b, (start, stop, _, _) in enumerate(plan)]

    def map_part(self, plan, b, fn, args=()):
        start, stop, _, _ = plan[b]
        if self._last is None or self._last[0] != (start, stop):
            self._last = None  # the previous block goes before the next is read
            self._last = ((start, stop), self[start:stop])
        return fn(self._last[1], *args)

    def take(self, rows):
        rows = np.asarray(rows, dtype=np.intp)
        out = np.empty((rows.shape[0], self.shape[1]), dtype=self.dtype)
        step = max(1, BLOCK_BYTES // max(1, self.shape[1] * self.dtype.itemsize))
        for start in range(0, self.shape[0], step):
            lo, hi = np.searchsorted(rows, [start, start + step])
            if hi > lo:
                out[lo:hi] = self[start:start + step][rows[lo:hi] - start]
        return out


class DaskRows(Rows):
    """A dask array's rows. ``plan_blocks(plan)`` rechunks it by rows to the plan's blocks
    (with a warning when it was chunked by columns) and persists it once; ``map`` then runs one
    task per block, where the block lives, and gathers the results in block order.

    Blocks may be ndarrays or scipy.sparse matrices; ``prepare`` converts each block once,
    before persisting (LDA: to CSR), and ``flaw`` checks the persisted blocks."""

    def __init__(self, X, name="X", ensure_min_samples=1, n_features=None,
                 estimator_name="the estimator", flaw=None, requirement=FINITE,
                 prepare=None):
        import dask.array as da

        if X.ndim != 2:
            _check_shape_2d(X.shape, X.ndim, name)
        if any(np.isnan(c) for cs in X.chunks for c in cs):
            X = X.compute_chunk_sizes()  # unknown chunk sizes (a boolean mask, ...)
        if len(X.chunks[1]) > 1:
            warnings.warn(f"{name} is chunked along its columns {X.chunks[1]}; rechunking it "
                          "by rows (every block needs whole rows).", UserWarning,
                          stacklevel=4)
            X = X.rechunk({1: -1})
        self.shape = tuple(int(s) for s in X.shape)
        self.dtype = _target_dtype(X.dtype, name)
        check_shape(self.shape, name, ensure_min_samples, 1, n_features, estimator_name)
        self.name = name
        self.X = X
        self._flaw = flaw or _block_flaw
        self._requirement = requirement
        self._prepare = prepare
        self._plan = None
        self._blocks = None
        self._da = da

    def plan_blocks(self, plan):
        """Rechunk to the plan's blocks, persist, and check every block (finite values)."""
        if self._plan == plan:
            return
        import dask

        rows = tuple(stop - start for start, stop, _, _ in plan)
        X = self.X.astype(self.dtype) if self.X.dtype != self.dtype else self.X
        if X.chunks[0] != rows:
            X = X.rechunk({0: rows, 1: -1})
        if self._prepare is not None:
            X = X.map_blocks(self._prepare, dtype=X.dtype, meta=self._prepare(X._meta))
        X = X.persist()
        self._blocks = [b for b in X.to_delayed().ravel()]
        bad = dask.compute(*[dask.delayed(self._flaw)(b) for b in self._blocks])
        for index, ((start, _, _, _), flaw) in enumerate(zip(plan, bad)):
            if flaw is not None:
                raise ValueError(f"{self.name} contains {flaw} in block {index} (rows "
                                 f"{start} and after); {self._requirement}.")
        self.X = X
        self._plan = plan

    def chunk_plan(self):
        """The plan of the array's own row chunks (a block per chunk; no group numbers):
        for passes whose result does not depend on where blocks start."""
        bounds = np.concatenate([[0], np.cumsum(self.X.chunks[0])]).astype(int).tolist()
        return tuple((a, b, i, i + 1) for i, (a, b) in enumerate(zip(bounds, bounds[1:])))

    @staticmethod
    def _shared(shared):
        """Large arrays as one task each (sent once per computation, not once per block)."""
        import dask

        return [dask.delayed(s) if isinstance(s, np.ndarray) and s.nbytes > 1 << 16 else s
                for s in shared]

    def map(self, plan, fn, per_block=None, shared=()):
        import dask

        self.plan_blocks(plan)
        shared = self._shared(shared)
        tasks = [dask.delayed(fn, pure=True)(blk, *(per_block[b] if per_block else ()),
                                            *shared)
                 for b, blk in enumerate(self._blocks)]
        return list(dask.compute(*tasks))

    def map_fold(self, plan, fn, fold, per_block=None, shared=(), fold_shared=()):
        """As ``Rows.map_fold``, in one computation: the blocks' tasks run in parallel where
        the blocks live, the fold is a chain of tasks in block order (each where its block's
        carry is, the running sum moving between workers), and only ``out_b`` and the final
        sum come back to the client."""
        import dask

        self.plan_blocks(plan)
        shared, fold_shared = self._shared(shared), self._shared(fold_shared)
        outs, acc = [], None
        for b, blk in enumerate(self._blocks):
            out, carry = dask.delayed(fn, pure=True, nout=2)(
                blk, *(per_block[b] if per_block else ()), *shared)
            acc = dask.delayed(fold, pure=True)(acc, blk, carry, *fold_shared)
            outs.append(out)
        outs, acc = dask.compute(outs, acc)
        return list(outs), acc

    def map_part(self, plan, b, fn, args=()):
        import dask

        self.plan_blocks(plan)
        args = self._shared(args)
        return dask.compute(dask.delayed(fn, pure=True)(self._blocks[b], *args))[0]

    def take(self, rows):
        return np.ascontiguousarray(self.X[np.asarray(rows, dtype=np.intp)].compute(),
                                    dtype=self.dtype)


def _block_flaw(block):
    """None, or 'NaN' / 'infinity' (a dask task: runs where the block lives)."""
    if all_finite(np.asarray(block)):
        return None
    return "NaN" if np.isnan(block).any() else "infinity"


def group_plan(n_samples, n_groups, chunk_size, rows_per_block):
    """Blocks of whole groups, as (start, stop, first group, end group) tuples.

    The pass over all rows puts ``per_group = ceil(n_chunks / n_groups)`` chunks of
    ``chunk_size`` rows in each group (the last group fewer, groups past the data empty). A
    block holds as many whole groups as fit in ``rows_per_block`` rows (at least one); a last
    group shorter than the others is a block on its own, so that a kernel call on a block of
    g groups (with g slots) puts the same rows in each slot as the pass over all rows."""
    n_chunks = -(-n_samples // chunk_size)
    per_group = -(-n_chunks // n_groups)
    group_rows = per_group * chunk_size
    used = -(-n_chunks // per_group)  # groups that hold rows
    per_block = max(1, rows_per_block // group_rows)
    full = n_samples // group_rows  # groups with per_group chunks
    plan = []
    g = 0
    while g < full:
        g1 = min(g + per_block, full)
        plan.append((g * group_rows, g1 * group_rows, g, g1))
        g = g1
    if used > full:
        plan.append((full * group_rows, n_samples, full, used))
    return tuple(plan)


def rows_per_block(row_bytes, group_rows, n_threads):
    """Rows of a block: ``BLOCK_BYTES`` of data, but at least a group per thread."""
    return max(BLOCK_BYTES // max(1, row_bytes), group_rows * max(1, n_threads))


def rows_per_read(row_bytes):
    """Rows of a block for work row by row (predictions): ``BLOCK_BYTES`` of it."""
    return max(1, BLOCK_BYTES // max(1, row_bytes))


def evenly_spaced(n_samples, m):
    """m sorted row indices spread evenly over [0, n_samples) (deterministic)."""
    return (np.arange(m, dtype=np.int64) * n_samples) // m
