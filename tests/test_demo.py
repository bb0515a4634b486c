"""The Old Faithful loader and the ``python -m vbfast demo`` command."""

import math
import re

import numpy as np
import pytest

from vbfast.__main__ import main
from vbfast.datasets import load_old_faithful


def test_load_old_faithful():
    X = load_old_faithful()
    assert isinstance(X, np.ndarray)
    assert X.shape == (272, 2)
    assert X.dtype == np.float64
    assert X.flags.c_contiguous
    assert np.isfinite(X).all()
    eruptions, waiting = X[:, 0], X[:, 1]
    assert eruptions.min() == pytest.approx(1.6) and eruptions.max() == pytest.approx(5.1)
    assert waiting.min() == 43 and waiting.max() == 96
    assert np.array_equal(waiting, np.round(waiting))  # waiting times are whole minutes
    # First rows and column sums of R's datasets::faithful.
    np.testing.assert_allclose(X[:3], [[3.6, 79], [1.8, 54], [3.333, 74]])
    np.testing.assert_allclose(X.sum(axis=0), [948.677, 19284.0])


def test_load_old_faithful_return_X_y():
    X, y = load_old_faithful(return_X_y=True)
    assert X.shape == (272, 2) and y is None


def _table(out):
    """Rows of the demo's table: (K, BIC, loglik/n, iterations, converged, ms)."""
    rows = []
    for line in out.splitlines():
        m = re.match(r"^\s*(\d+)\s+(\S+)\s+(\S+)\s+(\d+)\s+(True|False)\s+(\S+)\s*$", line)
        if m:
            k, bic, ll, it, conv, ms = m.groups()
            rows.append((int(k), float(bic), float(ll), int(it), conv == "True", float(ms)))
    return rows


def test_demo_full_chooses_two_components(capsys):
    assert main(["demo", "--covariance-type", "full", "--max-components", "6",
                 "--n-threads", "2", "--seed", "0"]) == 0
    out = capsys.readouterr().out

    rows = _table(out)
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6]
    for k, bic, ll, it, conv, ms in rows:
        assert math.isfinite(bic) and math.isfinite(ll) and math.isfinite(ms)
        assert it >= 1
    best = min(rows, key=lambda r: r[1])
    assert best[0] == 2

    m = re.search(r"Chosen by BIC: K = (\d+)", out)
    assert m and int(m.group(1)) == 2
    m = re.search(r"log-likelihood: (\S+) \(total\), (\S+) per sample", out)
    assert m
    total, per_sample = float(m.group(1)), float(m.group(2))
    assert math.isfinite(total) and math.isfinite(per_sample)
    assert total == pytest.approx(272 * best[2], abs=0.05)
    assert "weights:" in out and "means:" in out and "covariances (full):" in out


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_demo_other_covariance_types(capsys, covariance_type):
    assert main(["demo", "--covariance-type", covariance_type, "--max-components", "3"]) == 0
    out = capsys.readouterr().out
    rows = _table(out)
    assert [r[0] for r in rows] == [1, 2, 3]
    assert all(math.isfinite(r[1]) and math.isfinite(r[2]) for r in rows)
    assert f"covariances ({covariance_type}):" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("vbfast ")


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_bad_argument_exits_with_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--max-components", "0"])
    assert exc.value.code == 2
