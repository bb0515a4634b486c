"""Build the Cython kernels in ``src_c/<subpackage>/`` as extension modules of the matching
``vbfast`` subpackage.

OpenMP is used where the compiler supports it (probed by compiling a tiny program); elsewhere
the kernels are built serially and ``prange`` runs on one thread.
"""
import glob
import os
import shlex
import sys
import tempfile
import textwrap

import numpy as np
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _openmp_flags(compiler):
    """Return (compile_args, link_args) enabling OpenMP, or ([], []) if the compiler lacks it."""
    if sys.platform == "win32" and compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    code = textwrap.dedent(
        """
        #include <omp.h>
        int main(void) {
            int n = 0;
            #pragma omp parallel reduction(+:n)
            n += 1;
            return n > 0 ? 0 : 1;
        }
        """
    )
    env_ldflags = [] if compiler.compiler_type == "msvc" else \
        shlex.split(os.environ.get("LDFLAGS", ""))
    for cflags, lflags in candidates:
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write(code)
            try:
                objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
                # The executable linker does not get $LDFLAGS (the extension linker does),
                # where e.g. macOS builds say where libomp is: pass them to the probe too.
                compiler.link_executable(objs, os.path.join(tmp, "probe"),
                                         extra_postargs=lflags + env_ldflags)
            except Exception:
                continue
        return cflags, lflags
    if os.environ.get("VBFAST_REQUIRE_OPENMP"):  # wheel builds: fail rather than go serial
        raise RuntimeError("vbfast: VBFAST_REQUIRE_OPENMP is set but the compiler has no "
                           "working OpenMP (tried: %r)" % (candidates,))
    print("vbfast: the compiler has no OpenMP; building the kernels single-threaded.",
          file=sys.stderr)
    return [], []


class BuildExt(build_ext):
    def build_extensions(self):
        cflags, lflags = _openmp_flags(self.compiler)
        if self.compiler.compiler_type == "msvc":
            opt = ["/O2"]
        else:
            opt = ["-O3"]
        for ext in self.extensions:
            ext.extra_compile_args = opt + cflags + ext.extra_compile_args
            ext.extra_link_args = lflags + ext.extra_link_args
        super().build_extensions()


def _extensions():
    from Cython.Build import cythonize

    # src_c/ mirrors the package: src_c/<sub>/<name>.pyx builds vbfast.<sub>.<name>; the
    # shared headers are in src_c/common/. Every header beside the .pyx and in common/ is a
    # dependency, so editing one rebuilds the extensions that may include it (Cython's own
    # scan misses headers included from other headers).
    common = sorted(glob.glob(os.path.join("src_c", "common", "*.h")))
    exts = []
    for path in sorted(glob.glob(os.path.join("src_c", "*", "*.pyx"))):
        sub = os.path.basename(os.path.dirname(path))
        name = os.path.splitext(os.path.basename(path))[0]
        exts.append(Extension(
            f"vbfast.{sub}.{name}", [path],
            depends=common + sorted(glob.glob(os.path.join(os.path.dirname(path), "*.h"))),
            include_dirs=[np.get_include(), os.path.join("src_c", "common"),
                          os.path.dirname(path)],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
        ))
    return cythonize(
        exts,
        include_path=[os.path.join("src_c", "common")],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
