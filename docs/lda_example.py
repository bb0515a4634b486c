"""Topics of a real corpus with vbfast.LatentDirichletAllocation: from raw text to top words.

The corpus is ``lee_background.cor`` (300 Australian news articles, one a line) that ships in
gensim's test data. Only the data file is used: it is found through
``importlib.util.find_spec('gensim')`` without importing gensim's models.

    python docs/lda_example.py

Documents 1-250 train the model, the last 50 are held out for perplexity. If scikit-learn is
installed, its held-out perplexity at the same settings is printed for comparison.
"""
import importlib.util
import os
import re
import sys

try:
    import vbfast  # noqa: F401
except ImportError:  # an in-place build in the repository holding this script
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vbfast import LatentDirichletAllocation
from vbfast.text import count_matrix

STOP = set("""
the a an and or of to in on for is are was were be been being it its this that these those with
as at by from has have had he she they we you i not but said says will would his her their there
which who whom about after also more than one two three into over out up has mr mrs ms can could
new last first year years what when where while all any some other our them him been if no so
do does did just may might now only before because very most such per then than through under
""".split())


def lee_background_path():
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("gensim is not installed (its test data holds the corpus): pip install gensim")
    path = os.path.join(list(spec.submodule_search_locations)[0], "test", "test_data",
                        "lee_background.cor")
    if not os.path.exists(path):
        sys.exit(f"gensim's test corpus is missing: {path}")
    return path


def tokenize(line):
    """Lowercase words of at least three letters, without the stop words."""
    return [w for w in re.findall(r"[a-z]+", line.lower()) if len(w) > 2 and w not in STOP]


def main():
    with open(lee_background_path(), encoding="utf-8") as f:
        docs = [tokenize(line) for line in f if line.strip()]
    train, test = docs[:-50], docs[-50:]
    X, vocab = count_matrix(train, min_count=3)
    X_test, _ = count_matrix(test, vocabulary=vocab)
    print(f"{len(docs)} documents: {X.shape[0]} for training, {X_test.shape[0]} held out; "
          f"{X.shape[1]} words occurring at least 3 times; {int(X.sum())} training tokens")

    lda = LatentDirichletAllocation(n_components=10, random_state=0).fit(X)
    print(f"fitted: method={lda.method!r}, learning_method={lda.learning_method!r}, "
          f"{lda.n_iter_} iterations in {sum(lda.iteration_times_):.3f} s\n")

    for k, row in enumerate(lda.components_):
        top = [vocab[j] for j in row.argsort()[::-1][:10]]
        print(f"topic {k}: {' '.join(top)}")

    print(f"\ntraining perplexity (bound_): {lda.bound_:.1f}")
    print(f"held-out perplexity (last 50 documents): {lda.perplexity(X_test):.1f}")

    try:  # the same fit with scikit-learn, for comparison, if it is installed
        from sklearn.decomposition import LatentDirichletAllocation as SkLDA
    except ImportError:
        return
    sk = SkLDA(n_components=10, random_state=0).fit(X)
    print(f"scikit-learn, same settings and initial topics: held-out perplexity "
          f"{sk.perplexity(X_test):.1f}")


if __name__ == "__main__":
    main()
