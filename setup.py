"""Build hook: ship template.yaml and openapi.json inside the package.

Both stay at the repository's top level (SAM deploys template.yaml from there). A wheel gets
a copy of each in `pipeline/local/data/`, made at build time from those same files, so an
installed `s3-file-tracker up|demo` works from any folder and no second copy is kept in the
repository to drift. Editable installs read the checkout's files directly
(`pipeline.local.template.shipped_file`). Everything else is in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("template.yaml", "openapi.json")
DATA_DIR = Path("pipeline", "local", "data")


class BuildPy(build_py):
    """`build_py`, plus the top-level files the local stack reads."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / DATA_DIR
        self.mkpath(str(target))
        for name in SHIPPED:
            self.copy_file(name, str(target / name))


setup(cmdclass={"build_py": BuildPy})
