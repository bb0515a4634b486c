"""Fixtures shared by the hardening tests (the estimator variants are in vbfast._registry)."""
import importlib
import importlib.machinery
import importlib.util
import pkgutil

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
