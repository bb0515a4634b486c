"""From tokenised text to the document-term counts the topic models take."""
from collections import Counter

import numpy as np
import scipy.sparse as sp

__all__ = ["count_matrix"]


def count_matrix(documents, *, min_count=1, vocabulary=None, dtype=np.float64):
    """Turn a list of token lists into a CSR document-term count matrix and its vocabulary.

    Parameters
    ----------
    documents : iterable of iterables of hashable tokens (usually strings), one per document;
        a bare string is rejected (it would be read as a sequence of characters)
    min_count : int, default=1
        Keep only tokens occurring at least this many times in the whole corpus (ignored when
        ``vocabulary`` is given).
    vocabulary : sequence of tokens, optional
        Use this vocabulary (in this order), e.g. the one returned for the training corpus;
        tokens not in it are dropped.
    dtype : dtype of the counts, default float64
        Any numeric dtype that holds every count: bool (which would cap the counts at 1)
        and integer types too small for the largest count are refused.

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_documents, n_words); a document whose tokens are
        all dropped is an empty row
    vocabulary : list of tokens; column j of X counts vocabulary[j]. Without a given
        vocabulary, tokens are sorted by decreasing corpus count, ties in order of first
        appearance.
    """
    if isinstance(documents, (str, bytes)):
        raise TypeError("documents must be a list of token lists, not a string")
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        raise ValueError("dtype=bool cannot hold counts (every count above 1 would become "
                         "True, i.e. 1); use a numeric dtype, e.g. float64 or int32.")
    if dtype.kind not in "iuf":
        raise ValueError(f"dtype must be a real numeric dtype for counts, got {dtype}")
    docs = []
    for i, doc in enumerate(documents):
        if isinstance(doc, (str, bytes)):
            raise TypeError(f"document {i} is a string; pass a list of tokens "
                            "(e.g. text.split()) for each document")
        docs.append(list(doc))
    if vocabulary is None:
        if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) \
                or min_count < 1:
            raise ValueError(f"min_count must be an int >= 1, got {min_count!r}")
        totals = Counter()
        for doc in docs:
            totals.update(doc)
        first = {}
        for doc in docs:
            for tok in doc:
                first.setdefault(tok, len(first))
        vocab = [tok for tok, c in totals.items() if c >= min_count]
        vocab.sort(key=lambda tok: (-totals[tok], first[tok]))
    else:
        vocab = list(vocabulary)
        if len(set(vocab)) != len(vocab):
            raise ValueError("vocabulary has duplicate tokens")
    index = {tok: j for j, tok in enumerate(vocab)}
    indptr = [0]
    indices = []
    data = []
    for doc in docs:
        counts = Counter(index[tok] for tok in doc if tok in index)
        cols = sorted(counts)
        indices.extend(cols)
        data.extend(counts[c] for c in cols)
        indptr.append(len(indices))
    counts = np.asarray(data, dtype=np.int64)
    if dtype.kind in "iu" and counts.size and counts.max() > np.iinfo(dtype).max:
        raise ValueError(f"dtype={dtype} cannot hold the largest count, {counts.max()} "
                         f"(at most {np.iinfo(dtype).max}); use a wider dtype.")
    X = sp.csr_matrix((counts.astype(dtype), np.asarray(indices, dtype=np.int32),
                       np.asarray(indptr, dtype=np.int32)), shape=(len(docs), len(vocab)))
    return X, vocab
