"""Shared corpus and estimator construction for the LDA benchmarks (``bench_lda.py``).

Imported by asv as ``benchmarks._lda_data`` and by ``bench_lda.py`` run as a script as
``_lda_data``. Nothing here is named like an asv benchmark, so asv's discovery skips it.

The corpus is drawn from a known LDA model with a fixed seed:

- K=50 topics, each beta_k ~ Dirichlet(0.05) over V words,
- per document theta_d ~ Dirichlet(0.1), length N_d ~ Poisson(150) (at least 1 token),
- topic counts n_dk ~ Multinomial(N_d, theta_d), then each token's word ~ Categorical(beta_k).

Sizes come from the module constants below, overridable by environment variables so that a
quick run (including a quick ``asv run``) can use a smaller corpus:

    VBFAST_LDA_N_DOCS (default 20000)   training documents
    VBFAST_LDA_N_WORDS (default 20000)  vocabulary size
    VBFAST_LDA_N_HELDOUT (default n_docs // 10)  held-out documents, for perplexity

The held-out documents come from the same model (same topics), drawn after the training ones.
"""
import os
import warnings

import numpy as np
import scipy.sparse as sp

N_DOCS = int(os.environ.get("VBFAST_LDA_N_DOCS", 20000))
N_WORDS = int(os.environ.get("VBFAST_LDA_N_WORDS", 20000))
N_HELDOUT = int(os.environ.get("VBFAST_LDA_N_HELDOUT", max(100, N_DOCS // 10)))
N_COMPONENTS = 50
DOC_LENGTH = 150
MINIBATCH = 2000  # documents per online update (partial_fit / gensim update)
MAX_DOC_UPDATE_ITER = 100  # scikit-learn's default; gensim's `iterations` is set to it
MEAN_CHANGE_TOL = 1e-3  # scikit-learn's default; gensim's `gamma_threshold` is set to it
DATA_SEED = 20240917
TOPIC_CONCENTRATION = 0.05
DOC_CONCENTRATION = 0.1

# Libraries in the side-by-side benchmarks: vbfast on every core, scikit-learn on one process
# and on two (its best on the 2-core benchmark machine), gensim's LdaModel.
LIBRARIES = ("vbfast", "sklearn_n_jobs1", "sklearn_n_jobs2", "gensim")


def make_corpus(n_docs=None, n_words=None, n_heldout=None, n_components=N_COMPONENTS,
                doc_length=DOC_LENGTH, seed=DATA_SEED):
    """Return (X_train, X_heldout, true_topics): CSR float64 counts and the (K, V) topics."""
    n_docs = N_DOCS if n_docs is None else int(n_docs)
    n_words = N_WORDS if n_words is None else int(n_words)
    n_heldout = (max(100, n_docs // 10) if n_docs != N_DOCS else N_HELDOUT) \
        if n_heldout is None else int(n_heldout)
    rng = np.random.default_rng(seed)
    K, V = n_components, n_words
    beta = rng.dirichlet(np.full(V, TOPIC_CONCENTRATION), size=K)
    D = n_docs + n_heldout
    theta = rng.dirichlet(np.full(K, DOC_CONCENTRATION), size=D)
    lengths = np.maximum(1, rng.poisson(doc_length, size=D))
    ndk = rng.multinomial(lengths, theta)  # (D, K) topic counts per document
    doc_of = np.repeat(np.repeat(np.arange(D), K), ndk.ravel())
    topic_of = np.repeat(np.tile(np.arange(K), D), ndk.ravel())
    word_of = np.empty_like(topic_of)
    for k in range(K):
        sel = np.flatnonzero(topic_of == k)
        word_of[sel] = rng.choice(V, size=sel.size, p=beta[k])
    X = sp.coo_matrix((np.ones(doc_of.size), (doc_of, word_of)), shape=(D, V)).tocsr()
    X.sum_duplicates()
    X.sort_indices()
    return X[:n_docs], X[n_docs:], beta


def to_gensim_corpus(X):
    """A CSR matrix as gensim's bag-of-words: a list of [(word_id, count), ...] per document
    (built once, outside any timing)."""
    indptr, indices, data = X.indptr, X.indices, X.data
    return [list(zip(indices[indptr[i]:indptr[i + 1]].tolist(),
                     data[indptr[i]:indptr[i + 1]].tolist()))
            for i in range(X.shape[0])]


def import_libraries():
    import sklearn.decomposition  # noqa: F401

    import vbfast  # noqa: F401


def _prior(K):
    return 1.0 / K


def batch_estimator(library, max_iter=1, n_components=N_COMPONENTS, doc_topic_prior=None):
    """An unfitted batch estimator: one pass (max_iter=1), the same initial topics for vbfast
    and scikit-learn (random_state=0: vbfast draws them exactly as scikit-learn does).
    ``library``: vbfast (all cores), vbfast_n_threadsT, sklearn_n_jobsJ; ``doc_topic_prior``
    alpha (None: 1/K)."""
    alpha = _prior(n_components) if doc_topic_prior is None else doc_topic_prior
    common = dict(n_components=n_components, learning_method="batch", max_iter=max_iter,
                  doc_topic_prior=alpha, topic_word_prior=_prior(n_components),
                  max_doc_update_iter=MAX_DOC_UPDATE_ITER, mean_change_tol=MEAN_CHANGE_TOL,
                  evaluate_every=-1, random_state=0)
    if library.startswith("vbfast"):
        from vbfast import LatentDirichletAllocation

        threads = (int(library[len("vbfast_n_threads"):])
                   if library.startswith("vbfast_n_threads") else None)
        return LatentDirichletAllocation(n_threads=threads, **common)
    if library.startswith("sklearn_n_jobs"):
        from sklearn.decomposition import LatentDirichletAllocation

        return LatentDirichletAllocation(n_jobs=int(library[len("sklearn_n_jobs"):]), **common)
    raise ValueError(library)


def online_estimator(library, total_samples, n_components=N_COMPONENTS):
    """An unfitted online estimator whose partial_fit makes one natural-gradient step per
    MINIBATCH documents (batch_size=MINIBATCH)."""
    common = dict(n_components=n_components, learning_method="online", batch_size=MINIBATCH,
                  total_samples=total_samples, learning_decay=0.7, learning_offset=10.0,
                  doc_topic_prior=_prior(n_components), topic_word_prior=_prior(n_components),
                  max_doc_update_iter=MAX_DOC_UPDATE_ITER, mean_change_tol=MEAN_CHANGE_TOL,
                  random_state=0)
    if library == "vbfast":
        from vbfast import LatentDirichletAllocation

        return LatentDirichletAllocation(n_threads=None, **common)
    if library.startswith("sklearn_n_jobs"):
        from sklearn.decomposition import LatentDirichletAllocation

        return LatentDirichletAllocation(n_jobs=int(library[len("sklearn_n_jobs"):]), **common)
    raise ValueError(library)


def gensim_id2word(n_words):
    """id2word for gensim: given, so that LdaModel does not scan the corpus for num_terms."""
    return {i: str(i) for i in range(n_words)}


def gensim_batch_fit(corpus, id2word, n_components=N_COMPONENTS):
    """gensim's LdaModel, one batch pass: passes=1, update_every=0 (one M-step after the whole
    corpus), the E-step's iterations/gamma_threshold matched to max_doc_update_iter /
    mean_change_tol, alpha = eta = 1/K, no perplexity logging (eval_every=None). gensim keeps its
    default dtype (float32) and its own random initial topics."""
    from gensim.models import LdaModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LdaModel(corpus=corpus, num_topics=n_components, id2word=id2word, passes=1,
                        update_every=0, chunksize=MINIBATCH, iterations=MAX_DOC_UPDATE_ITER,
                        gamma_threshold=MEAN_CHANGE_TOL, alpha=_prior(n_components),
                        eta=_prior(n_components), eval_every=None, random_state=0)


def gensim_online_model(id2word, n_components=N_COMPONENTS):
    """An empty gensim LdaModel for online updates (update_every=1, one M-step per chunk of
    MINIBATCH documents, decay/offset as scikit-learn's learning_decay/learning_offset)."""
    from gensim.models import LdaModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LdaModel(corpus=None, num_topics=n_components, id2word=id2word, passes=1,
                        update_every=1, chunksize=MINIBATCH, iterations=MAX_DOC_UPDATE_ITER,
                        gamma_threshold=MEAN_CHANGE_TOL, alpha=_prior(n_components),
                        eta=_prior(n_components), decay=0.7, offset=10.0, eval_every=None,
                        random_state=0)


def gensim_update(model, chunk):
    """One online update of a gensim model on ``chunk`` (one M-step for up to MINIBATCH docs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.update(chunk, chunksize=MINIBATCH, update_every=1, passes=1, eval_every=None)
    return model


def gensim_perplexity(model, corpus):
    """exp(-per-word bound) on a held-out corpus (gensim's own log_perplexity gives the
    per-word bound; its log line prints 2**(-bound), here the natural base as in scikit-learn)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(np.exp(-model.log_perplexity(corpus)))


def plugin_perplexity(library, model, X):
    """Library-independent held-out perplexity from point estimates: exp(-sum_dw x_dw
    log(theta_d . beta_w) / tokens), beta the normalised topics and theta_d each document's
    normalised topic proportions inferred on X itself (a document-completion style score, no
    topic term). Unlike the ELBO-based ``perplexity``, it does not grow with the vocabulary's
    topic term, so it stays readable on a small held-out set."""
    if library == "gensim":
        beta = model.get_topics().astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gamma, _ = model.inference(to_gensim_corpus(X))
        theta = gamma / gamma.sum(axis=1, keepdims=True)
    else:
        comp = np.asarray(model.components_, dtype=np.float64)
        beta = comp / comp.sum(axis=1, keepdims=True)
        theta = np.asarray(model.transform(X), dtype=np.float64)
        theta = theta / theta.sum(axis=1, keepdims=True)
    X = X.tocsr()
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    p = np.einsum("nk,nk->n", theta[rows], beta[:, X.indices].T)
    return float(np.exp(-np.sum(X.data * np.log(p)) / X.data.sum()))


# ---------------------------------------------------------------------- a real corpus
REAL_DOC_TOKENS = 225  # tokens per document when the articles are cut up
REAL_VOCABULARY = 10000  # the most frequent words kept
REAL_COMPONENTS = 20


def real_corpus(doc_tokens=REAL_DOC_TOKENS, n_words=REAL_VOCABULARY):
    """A real corpus shipped with gensim (no download): ``head500.noblanks.cor`` of gensim's
    test data, the first 250 English Wikipedia articles, stemmed, one article a line.

    Tokens are the alphabetic words of 2+ letters, lower-cased; each article is cut into
    consecutive documents of ``doc_tokens`` tokens (a shorter tail of at least half that is a
    document too, a shorter one is dropped); the vocabulary is the ``n_words`` most frequent
    words (ties by first appearance), other tokens dropped. Every tenth document is held out:
    with the defaults 1,306 training documents and 146 held-out ones, 10,000 words.

    Returns (X_train, X_heldout) as CSR float64 counts, or raises FileNotFoundError when
    gensim (or its test data) is not installed."""
    import collections
    import importlib.util

    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("gensim is not installed: its test data hold the real corpus")
    path = os.path.join(list(spec.submodule_search_locations)[0], "test", "test_data",
                        "head500.noblanks.cor")
    with open(path, encoding="utf8") as f:
        articles = [[w.lower() for w in line.split() if w.isalpha() and len(w) > 1]
                    for line in f]
    docs = [a[i:i + doc_tokens] for a in articles for i in range(0, len(a), doc_tokens)
            if len(a[i:i + doc_tokens]) >= doc_tokens // 2]
    counts = collections.Counter(w for d in docs for w in d)
    vocab = {w: j for j, (w, _) in enumerate(counts.most_common(n_words))}
    rows, cols = [], []
    for i, d in enumerate(docs):
        ids = [vocab[w] for w in d if w in vocab]
        rows.extend([i] * len(ids))
        cols.extend(ids)
    X = sp.coo_matrix((np.ones(len(rows)), (rows, cols)),
                      shape=(len(docs), len(vocab))).tocsr()
    X.sum_duplicates()
    X.sort_indices()
    held = np.zeros(len(docs), dtype=bool)
    held[::10] = True
    return X[~held], X[held]


REAL_PASSES = 10  # epochs of the online workload (max_iter; gensim's passes)
REAL_LIBRARIES = ("vbfast", "vbfast_n_threads1", "sklearn_n_jobs1", "sklearn_n_jobs2",
                  "gensim")


def real_online_fit(library, X, batch_size, corpus=None, id2word=None,
                    n_components=REAL_COMPONENTS, passes=REAL_PASSES):
    """The online workload on the real corpus: ``fit`` with learning_method='online',
    ``batch_size``, max_iter=passes (each pass one epoch of mini-batches), K = n_components,
    the default priors 1/K, learning_decay=0.7, learning_offset=10, random_state=0 (vbfast
    and scikit-learn start from the same topics and draw the same gammas). gensim: LdaModel
    with chunksize=batch_size, update_every=1 (a step per mini-batch), passes, decay/offset
    as learning_decay/learning_offset, iterations/gamma_threshold as
    max_doc_update_iter/mean_change_tol, alpha = eta = 1/K, no evaluation during training
    (``corpus``, ``id2word``: ``to_gensim_corpus(X)``, ``gensim_id2word``)."""
    if library == "gensim":
        from gensim.models import LdaModel

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return LdaModel(corpus=corpus, num_topics=n_components, id2word=id2word,
                            passes=passes, update_every=1, chunksize=batch_size,
                            iterations=MAX_DOC_UPDATE_ITER, gamma_threshold=MEAN_CHANGE_TOL,
                            alpha=_prior(n_components), eta=_prior(n_components), decay=0.7,
                            offset=10.0, eval_every=None, random_state=0)
    common = dict(n_components=n_components, learning_method="online", batch_size=batch_size,
                  max_iter=passes, learning_decay=0.7, learning_offset=10.0,
                  max_doc_update_iter=MAX_DOC_UPDATE_ITER, mean_change_tol=MEAN_CHANGE_TOL,
                  evaluate_every=-1, random_state=0)
    if library.startswith("vbfast"):
        from vbfast import LatentDirichletAllocation

        threads = 1 if library == "vbfast_n_threads1" else None
        return LatentDirichletAllocation(n_threads=threads, **common).fit(X)
    if library.startswith("sklearn_n_jobs"):
        from sklearn.decomposition import LatentDirichletAllocation

        return LatentDirichletAllocation(n_jobs=int(library[len("sklearn_n_jobs"):]),
                                         **common).fit(X)
    raise ValueError(library)
