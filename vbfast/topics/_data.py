"""What every LDA method shares about its input and its priors: the document-term count
matrix as canonical CSR, and the symmetric Dirichlet priors' defaults."""
import numpy as np
import scipy.sparse as sp

from .._core.blocks import check_rows
from .._core.validation import as_real_array, check_shape

__all__ = ["check_counts", "check_count_rows", "check_total", "count_flaw", "csr_block",
           "priors", "MAX_TOTAL_COUNT"]

# What the streamed checks of counts read by block (``count_flaw``) require.
COUNTS_RULE = "document-term counts must be finite and >= 0"

# The variational bound sums terms of the size of (count) x log(count or probability), about
# 700 x the counts at worst, and gammaln of the topics' pseudo-counts: with the counts' total
# below 1e300 every one of them stays well inside float64 (1.8e308).
MAX_TOTAL_COUNT = 1e300
# Word indices are int32 in the sampler and in the kernels' per-word loops.
_INT32_MAX = np.iinfo(np.int32).max


def priors(n_components, doc_topic_prior, topic_word_prior):
    """(alpha, eta): the symmetric Dirichlet priors of theta_d and beta_k, each 1 / K unless
    given."""
    default = 1.0 / n_components
    alpha = default if doc_topic_prior is None else float(doc_topic_prior)
    eta = default if topic_word_prior is None else float(topic_word_prior)
    return alpha, eta


def _canonical(X):
    """X (CSR) with its duplicates summed (a copy if it had any) and one dtype for indptr
    and indices, as the kernels take them."""
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    if X.indptr.dtype != X.indices.dtype:
        idx = np.int64 if np.int64 in (X.indptr.dtype, X.indices.dtype) else np.int32
        X.indptr = X.indptr.astype(idx)
        X.indices = X.indices.astype(idx)
    return X


def check_counts(X, name="X", n_features=None, min_samples=1,
                 estimator_name="LatentDirichletAllocation"):
    """Return X as canonical CSR (float32 or float64 data; int32/int64 indices of one type).

    Dense input is converted once; negative, NaN and infinite counts are rejected.
    """
    if sp.issparse(X):
        X = sp.csr_matrix(X)
    else:
        arr = as_real_array(X, name, "numeric counts")
        if arr.dtype == np.float16:  # scipy.sparse has no float16: computed in float64
            arr = arr.astype(np.float64)
        if arr.ndim != 2:
            raise ValueError(f"{name} must be a 2-D document-term matrix of shape "
                             f"(n_documents, n_words), got {arr.ndim}-D array. Reshape your "
                             "data: x.reshape(1, -1) for a single document.")
        X = sp.csr_matrix(arr)
    if X.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} must hold real counts, got "
                         f"dtype {X.dtype}")
    if X.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric counts, got dtype {X.dtype}")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    check_shape(X.shape, name, min_samples, 1, n_features, estimator_name)
    if X.shape[1] > _INT32_MAX:
        raise ValueError(f"{name} has a vocabulary of {X.shape[1]} words; "
                         f"{estimator_name} supports at most {_INT32_MAX} words (2^31 - 1: "
                         "int32 word indices), and needs n_components x n_words doubles "
                         "for the topics.")
    if not np.isfinite(X.data).all():
        bad = "NaN" if np.isnan(X.data).any() else "infinity"
        raise ValueError(f"{name} contains {bad}; document-term counts must be finite.")
    if (X.data < 0).any():
        raise ValueError(f"Negative values in data passed to {name}: document-term counts "
                         "must be >= 0.")
    return _canonical(X)


def csr_block(block):
    """A block of rows (ndarray or scipy.sparse) as the CSR ``check_counts`` makes of it
    (float32 kept, other dtypes as float64, canonical, one index dtype), without checking
    its values (``count_flaw`` does): the same rows as the CSR of the whole matrix."""
    if sp.issparse(block):
        X = sp.csr_matrix(block)
    else:
        block = np.asarray(block)
        X = sp.csr_matrix(block.astype(np.float64) if block.dtype == np.float16 else block)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    return _canonical(X)


def count_flaw(block):
    """None, or what makes a block of counts (ndarray or scipy.sparse) invalid: 'NaN',
    'infinity' or 'negative counts' (a Dask task: runs where the block lives)."""
    values = block.data if sp.issparse(block) else np.asarray(block)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        return "NaN" if np.isnan(values).any() else "infinity"
    if values.size and values.min() < 0:
        return "negative counts"
    return None


def check_count_rows(X, name="X", n_features=None,
                     estimator_name="LatentDirichletAllocation"):
    """An out-of-core array (memmap, zarr, h5py: dense counts) or a dask array (row blocks
    of dense counts or scipy.sparse matrices) as checked ``Rows`` (``vbfast._core.blocks``):
    shape, dtype and every block's counts (``count_flaw``, the error names the block); a
    dask array's blocks are persisted as CSR (``csr_block``)."""
    rows = check_rows(X, name, 1, n_features, estimator_name, flaw=count_flaw,
                      requirement=COUNTS_RULE, prepare=csr_block)
    if rows.shape[1] > _INT32_MAX:
        raise ValueError(f"{name} has a vocabulary of {rows.shape[1]} words; "
                         f"{estimator_name} supports at most {_INT32_MAX} words.")
    return rows


def check_total(X, scale=1.0, name="X", why="", total=None):
    """Refuse counts whose total, times ``scale`` (what a mini-batch stands for), exceeds
    ``MAX_TOTAL_COUNT``: the variational bound and the topics' pseudo-counts would overflow
    float64 and end in NaN. ``why`` explains the scale in the message. ``total``: the sum
    of the counts when X is read by blocks (X unused)."""
    if total is None:
        total = float(np.sum(X.data, dtype=np.float64))
    if not total * scale <= MAX_TOTAL_COUNT:  # also catches an overflowing sum (inf)
        raise ValueError(
            f"The counts of {name} sum to {total:.6g}{why}; LatentDirichletAllocation's "
            f"variational methods support a total of at most {MAX_TOTAL_COUNT:g} (beyond it "
            "the bound and the topics' pseudo-counts overflow float64). Divide the counts by "
            "a constant (the priors then weigh relatively more).")
