"""What every LDA method shares about its input and its priors: the document-term count
matrix as canonical CSR, and the symmetric Dirichlet priors' defaults."""
import numpy as np
import scipy.sparse as sp

from .._core.validation import as_real_array, check_shape

__all__ = ["check_counts", "priors"]


def priors(n_components, doc_topic_prior, topic_word_prior):
    """(alpha, eta): the symmetric Dirichlet priors of theta_d and beta_k, each 1 / K unless
    given."""
    default = 1.0 / n_components
    alpha = default if doc_topic_prior is None else float(doc_topic_prior)
    eta = default if topic_word_prior is None else float(topic_word_prior)
    return alpha, eta


def check_counts(X, name="X", n_features=None, min_samples=1,
                 estimator_name="LatentDirichletAllocation"):
    """Return X as canonical CSR (float32 or float64 data; int32/int64 indices of one type).

    Dense input is converted once; negative, NaN and infinite counts are rejected.
    """
    if sp.issparse(X):
        X = sp.csr_matrix(X)
    else:
        arr = as_real_array(X, name, "numeric counts")
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
    if not np.isfinite(X.data).all():
        bad = "NaN" if np.isnan(X.data).any() else "infinity"
        raise ValueError(f"{name} contains {bad}; document-term counts must be finite.")
    if (X.data < 0).any():
        raise ValueError(f"Negative values in data passed to {name}: document-term counts "
                         "must be >= 0.")
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    if X.indptr.dtype != X.indices.dtype:
        idx = np.int64 if np.int64 in (X.indptr.dtype, X.indices.dtype) else np.int32
        X.indptr = X.indptr.astype(idx)
        X.indices = X.indices.astype(idx)
    return X
