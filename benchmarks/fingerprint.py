"""Bit-exact before/after comparison of a change: fit every variant of vbfast._registry (two
seeds, small data) and record fingerprints of the fitted attributes and predictions.

    python benchmarks/fingerprint.py before.pkl      # with the old build importable
    python benchmarks/fingerprint.py after.pkl       # with the new one
    python benchmarks/fingerprint.py --compare before.pkl after.pkl

The comparison prints every attribute or prediction that differs (with its largest relative
difference) and the count of identical ones; variants added since ``before`` are skipped."""
import pickle, sys, warnings
import numpy as np

def collect():
    from vbfast._registry import ESTIMATORS, fitted_attributes, fingerprint, prediction_outputs
    out = {}
    for entry in ESTIMATORS:
        for vid, extra in entry.variants():
            for seed in (0, 1):
                X = entry.sample_data(n_samples=300, seed=seed)
                est = entry.make(random_state=seed, **extra)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    est.fit(X)
                    preds = prediction_outputs(est, X[:50])
                attrs = fitted_attributes(est)
                out[(entry.name, vid, seed)] = (
                    {k: fingerprint(v) for k, v in attrs.items()},
                    {k: fingerprint(v) for k, v in preds.items()},
                    {k: v for k, v in attrs.items()}, preds)
    return out

def maxdiff(a, b):
    try:
        a = np.asarray(a, dtype=float); b = np.asarray(b, dtype=float)
        if a.shape != b.shape: return "shape"
        with np.errstate(all="ignore"):
            d = np.abs(a - b) / np.maximum(np.abs(b), 1e-300)
        d = d[np.isfinite(d)]
        return float(d.max()) if d.size else 0.0
    except Exception as e:
        return "?"

if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        a = pickle.load(open(sys.argv[2], "rb")); b = pickle.load(open(sys.argv[3], "rb"))
        n_same = n_diff = 0
        for key in a:
            if key not in b:
                print("missing", key); n_diff += 1; continue
            fa, pa, ra, qa = a[key]; fb, pb, rb, qb = b[key]
            for k in set(fa) | set(fb):
                if fa.get(k) != fb.get(k):
                    n_diff += 1
                    print("DIFF attr", key, k, maxdiff(ra.get(k), rb.get(k)) if not isinstance(ra.get(k), dict) else "dict")
                else: n_same += 1
            for k in set(pa) | set(pb):
                if pa.get(k) != pb.get(k):
                    n_diff += 1
                    print("DIFF pred", key, k, maxdiff(qa.get(k), qb.get(k)))
                else: n_same += 1
        print(f"{len(a)} fits; {n_same} identical, {n_diff} different")
    else:
        out = collect()
        with open(sys.argv[1], "wb") as f:
            pickle.dump(out, f)
        print(len(out), "fits recorded")
