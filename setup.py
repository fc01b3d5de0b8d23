"""The wheel's build step that pyproject.toml cannot declare: the kernels' machine code.

A wheel carries fastmlp's kernels compiled for a portable x86-64 level (``x86-64-v3``), so that
an installed fastmlp's first call compiles nothing (``src/fastmlp/_kernels/_jit.py`` says how
they are found and when they are not used). ``FASTMLP_BUILD_KERNELS`` chooses what is built:

- ``all``: every kernel ``fastmlp compile`` reaches. The release wheel:
  ``FASTMLP_BUILD_KERNELS=all pip wheel --no-deps -w dist .``
- ``common`` (the default, a plain ``pip install .``): the kernels of the README's commands and
  of scikit-learn's defaults. The rest compile on first use, as before.
- ``0``: none (editable installs never build them).

The kernels are compiled by ``python -m fastmlp.precompile ship`` in worker processes, with its
progress under ``pip -v``. A build host that cannot run x86-64-v3 code builds a wheel without
them, and says so. A wheel with kernels is tagged for its Python and platform, since they
are.
"""

import os
import subprocess
import sys

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py

CHOICES = {"all": "all", "common": "common", "0": None, "none": None}


def kernels_to_build():
    """``FASTMLP_BUILD_KERNELS``: "all", "common" or None."""
    value = os.environ.get("FASTMLP_BUILD_KERNELS", "common").strip().lower()
    if value not in CHOICES:
        sys.exit(f"FASTMLP_BUILD_KERNELS must be one of {', '.join(CHOICES)}, got {value!r}")
    return CHOICES[value]


def runtime_requirements():
    """Return the project's dependencies: the build needs them to compile the kernels."""
    from setuptools.config.pyprojecttoml import load_file

    here = os.path.dirname(os.path.abspath(__file__))
    return load_file(os.path.join(here, "pyproject.toml"))["project"]["dependencies"]


class BuildPyWithKernels(build_py):
    """Copy the package, then compile its kernels into ``fastmlp/_shipped_kernels``."""

    def run(self):
        """Copy the sources as setuptools does, then build the kernels into the copy."""
        super().run()
        self.distribution.shipped_kernels = False
        target = os.path.join(os.path.abspath(self.build_lib), "fastmlp", "_shipped_kernels")
        which = kernels_to_build()
        if which is None or getattr(self, "editable_mode", False):
            if os.path.isdir(target):  # an earlier build's, in a reused build folder
                import shutil

                shutil.rmtree(target)
            return
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        env["PYTHONPATH"] = os.pathsep.join(
            [os.path.abspath(self.build_lib)]
            + [path for path in env.get("PYTHONPATH", "").split(os.pathsep) if path])
        command = [sys.executable, "-m", "fastmlp.precompile", "ship", target,
                   "--kernels", which]
        self.announce(f"compiling fastmlp's kernels: {' '.join(command)}", level=2)
        subprocess.run(command, env=env, check=True)
        self.distribution.shipped_kernels = os.path.isfile(os.path.join(target, "BUILD.json"))


class BdistWheelWithKernels(bdist_wheel):
    """A wheel tagged for this Python and platform when it carries machine code."""

    def run(self):
        """Build first: whether kernels were compiled decides the wheel's tags."""
        self.run_command("build")
        if getattr(self.distribution, "shipped_kernels", False):
            self.root_is_pure = False
            # the files go to platlib, as an extension's would
            self.distribution.has_ext_modules = lambda: True
        super().run()


setup(
    cmdclass={"build_py": BuildPyWithKernels, "bdist_wheel": BdistWheelWithKernels},
    # read by the build front end (pip, build) as requirements of the build itself
    setup_requires=runtime_requirements() if kernels_to_build() else [],
)
