"""Fixtures shared by the hardening tests (the estimator variants are in vbfast._registry)."""
import importlib
import importlib.machinery
import importlib.util
import os
import pkgutil
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import vbfast


def _kernel_modules():
    """vbfast's compiled extension modules (every src_c/*/*.pyx), found by file suffix."""
    mods = []
    for info in pkgutil.walk_packages(vbfast.__path__, "vbfast."):
        spec = importlib.util.find_spec(info.name)
        if (spec.origin or "").endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            mods.append(importlib.import_module(info.name))
    return mods


@pytest.fixture
def kernel_spy(monkeypatch):
    """Wrap every public function of the compiled kernels; returns a Spy with ``calls`` (the
    names called, in order) and ``hook`` (called as hook(name) before each kernel call, e.g.
    to record the BLAS thread count or raise KeyboardInterrupt)."""

    class Spy:
        calls = []
        hook = None

    spy = Spy()
    spy.calls = []
    modules = _kernel_modules()
    assert modules, "no compiled kernel modules found"
    for mod in modules:
        for name in dir(mod):
            func = getattr(mod, name)
            if name.startswith("_") or not callable(func) or isinstance(func, type):
                continue
            if getattr(func, "__module__", mod.__name__) != mod.__name__:
                continue

            def wrapper(*args, __func=func, __name=f"{mod.__name__}.{name}", **kwargs):
                spy.calls.append(__name)
                if spy.hook is not None:
                    spy.hook(__name)
                return __func(*args, **kwargs)

            monkeypatch.setattr(mod, name, wrapper)
    return spy


def _junit_outcomes(junit_xml):
    """test id ('file.py[::Class]::name[params]') -> 'passed', 'failed' or 'skipped'."""
    out = {}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        parts = case.get("classname").split(".")
        # classname: [<package>.]<module>[.<Class>]
        i = next(k for k, part in enumerate(parts) if part.startswith("test_"))
        test_id = "::".join([parts[i] + ".py"] + parts[i + 1:] + [case.get("name")])
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            out[test_id] = "failed"
        elif "skipped" in tags:
            out[test_id] = "skipped"
        else:
            out[test_id] = "passed"
    return out


@pytest.fixture(scope="session")
def run_peer_tests():
    """A function run(work, args, env, timeout) -> (outcomes, log): a peer's own test files,
    prepared in ``work``, run by pytest in a subprocess against the vbfast this process
    imported (first on PYTHONPATH); ``outcomes`` maps each test id to 'passed', 'failed' or
    'skipped'. A run that breaks (collection errors, usage) fails the calling test."""

    def run(work, args, env, timeout):
        work = Path(work)
        # a config file here stops pytest looking for one in the directories above
        (work / "pytest.ini").write_text("[pytest]\n")
        env = dict(os.environ, **env)
        vbfast_root = str(Path(vbfast.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (vbfast_root, env.get("PYTHONPATH"))
                                            if p)
        junit = work / "junit.xml"
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             f"--junitxml={junit}", "-rfE", "--tb=short", *args],
            cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
        # 0: all passed, 1: some failed; anything else is a breakage
        assert proc.returncode in (0, 1), proc.stdout[-5000:] + proc.stderr[-3000:]
        return _junit_outcomes(junit), proc.stdout

    return run


def _run_with_timeout(fn, seconds=240):
    """Run fn in a daemon thread; fail the test instead of hanging the run."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 (re-raised below)
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"timed out after {seconds} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.fixture
def with_timeout():
    """``with_timeout(fn, seconds=240)``: fn's value, or the test fails after ``seconds``."""
    return _run_with_timeout


@pytest.fixture(scope="module")
def cluster_client():
    """A ``distributed.Client`` on a LocalCluster of two spawned single-threaded worker
    processes under Nannies (libgomp is not fork-safe), closed after the module."""
    distributed = pytest.importorskip("distributed")
    dask = pytest.importorskip("dask")
    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn",
                          "distributed.comm.timeouts.connect": "60s"}):
        cluster = _run_with_timeout(lambda: distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
            worker_class=distributed.Nanny), 180)
        client = distributed.Client(cluster, timeout="60s")
        try:
            yield client
        finally:
            client.close(timeout=30)
            cluster.close(timeout=30)


# ---------------------------------------------------------------- HMM references (shared by
# tests/test_hmm_kernel.py and tests/test_hmm_long.py: test files cannot import each other)
import numpy as np  # noqa: E402
from scipy.special import logsumexp  # noqa: E402


def _ref_forward_backward(logprob, startprob, transmat, lengths=None):
    """Forward-backward in log space, sequence by sequence (the slow obvious reference):

        log alpha_0 = log pi + l_0,
        log alpha_t(j) = logsumexp_i(log alpha_{t-1}(i) + log A_ij) + l_tj,
        log beta_{T-1} = 0,  log beta_t(i) = logsumexp_j(log A_ij + l_{t+1,j} + log beta_{t+1}(j))
        gamma_t = exp(log alpha_t + log beta_t - log p),
        xi_t(i, j) = exp(log alpha_t(i) + log A_ij + l_{t+1,j} + log beta_{t+1}(j) - log p).

    Returns (seq_ll (n_sequences,), posteriors (n_samples, K), start counts (K,) = sum_s
    gamma_{s,0}, transition counts (K, K) = sum_s sum_t xi_{s,t}); lengths None: one
    sequence."""
    K = logprob.shape[1]
    lengths = [logprob.shape[0]] if lengths is None else lengths
    with np.errstate(divide="ignore"):
        lpi, lA = np.log(startprob), np.log(transmat)
    post = np.empty_like(logprob, dtype=np.float64)
    trans = np.zeros((K, K))
    start = np.zeros(K)
    seq_ll = []
    a = 0
    for T in lengths:
        lp = logprob[a:a + T]
        la = np.empty((T, K))
        lb = np.zeros((T, K))
        la[0] = lpi + lp[0]
        for t in range(1, T):
            la[t] = logsumexp(la[t - 1][:, None] + lA, axis=0) + lp[t]
        for t in range(T - 2, -1, -1):
            lb[t] = logsumexp(lA + lp[t + 1] + lb[t + 1], axis=1)
        ll = logsumexp(la[-1])
        seq_ll.append(ll)
        post[a:a + T] = np.exp(la + lb - ll)
        start += post[a]
        # the sequence's xi_t at once: (T - 1, K, K)
        trans += np.exp(la[:-1, :, None] + lA[None] + (lp[1:] + lb[1:])[:, None, :]
                        - ll).sum(axis=0)
        a += T
    return np.array(seq_ll), post, start, trans


def _random_hmm(rng, K, zeros=False):
    """(startprob (K,), transmat (K, K)) drawn from flat Dirichlets; zeros: a left-right
    model (upper bidiagonal, start in state 0)."""
    startprob = rng.dirichlet(np.ones(K))
    transmat = rng.dirichlet(np.ones(K), size=K)
    if zeros:
        transmat = np.triu(transmat) - np.triu(transmat, 2)
        transmat[-1, -1] = 1.0
        transmat /= transmat.sum(axis=1, keepdims=True)
        startprob = np.eye(K)[0]
    return startprob, transmat


@pytest.fixture
def ref_fb():
    """``ref_fb(logprob, startprob, transmat, lengths=None)``: the log-space forward-backward
    reference, (seq_ll, posteriors, start counts, transition counts)."""
    return _ref_forward_backward


@pytest.fixture
def random_model():
    """``random_model(rng, K, zeros=False)``: (startprob, transmat) of a random HMM."""
    return _random_hmm
