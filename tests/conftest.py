"""Fixtures shared by the hardening tests (the estimator variants are in vbfast._registry)."""
import importlib
import importlib.machinery
import importlib.util
import os
import pkgutil
import subprocess
import sys
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
