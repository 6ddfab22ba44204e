"""`pip install .` / `pip install -e .` in a fresh venv, then the console command.

How, and why this way (CI time is precious, robustness matters more):
- The fresh venv is created without pip and reaches the project venv's site-packages (pip and
  the runtime dependencies) through a `.pth` file: no resolver run, no dependency download.
- The install itself is `pip install --no-deps .` *with* build isolation, exactly what a user
  runs: pip fetches only the build backend the pyproject names (setuptools>=77, about 1 MB,
  from pip's cache after the first run). `--no-build-isolation` would build with whatever
  setuptools the project venv happens to have (65.x in Python 3.11 venvs, too old for the
  SPDX `license` string) and so would not test the pyproject's `[build-system]` at all. CI
  already needs PyPI to create the project venv, so this adds no new point of failure.
- The source is copied to a temporary directory first: setuptools writes `build/` and
  `*.egg-info` next to the sources, which must not land in the work tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
SOURCES = [
    "pyproject.toml",
    "setup.py",
    "MANIFEST.in",
    "README.md",
    "template.yaml",
    "openapi.json",
    "pipeline",
    "handlers",
]


def _fresh_venv(root: Path) -> Path:
    """A venv without pip that sees the project venv's packages; returns its python."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120
    )
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    Path(purelib, "project-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.mark.parametrize("editable", [False, True], ids=["install", "editable"])
def test_pip_install_then_the_console_command(tmp_path: Path, editable: bool) -> None:
    # Given a copy of the project's sources and a fresh venv
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, source / name)
    python = _fresh_venv(tmp_path / "venv")
    # When the project is installed as a user would (dependencies already present)
    target = ["-e", str(source)] if editable else [str(source)]
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", *target],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    # Then the console command runs from the venv's bin/, outside the sources
    command = tmp_path / "venv" / "bin" / "s3-file-tracker"
    helped = subprocess.run(
        [str(command), "--help"], cwd=tmp_path, env=_env(), capture_output=True, text=True
    )
    assert helped.returncode == 0, helped.stderr
    assert "up" in helped.stdout and "demo" in helped.stdout
    version = subprocess.run(
        [str(command), "--version"], cwd=tmp_path, env=_env(), capture_output=True, text=True
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.split() == ["s3-file-tracker", _project_version()]
    # and the installed packages are the runtime ones, the local stack included
    located = subprocess.run(
        [
            str(python),
            "-c",
            "import pipeline.local.cli, importlib.util as u;"
            "print(pipeline.local.cli.__file__);"
            "print(u.find_spec('handlers.api').origin);"
            "print(u.find_spec('tests'), u.find_spec('load'))",
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert located.returncode == 0, located.stderr
    cli_file, handler_file, leaked = located.stdout.splitlines()
    expected_root = source if editable else tmp_path / "venv"
    assert Path(cli_file).is_relative_to(expected_root)
    assert Path(handler_file).is_relative_to(expected_root)
    assert leaked == "None None"
    # and the template and the API description are found from another folder: the wheel
    # ships build-time copies of the top-level files (setup.py), an editable install reads them
    found = subprocess.run(
        [
            str(python),
            "-c",
            "from pipeline.local.template import TEMPLATE_PATH, OPENAPI_PATH, read_stack_config;"
            "print(TEMPLATE_PATH); print(OPENAPI_PATH); print(read_stack_config().table)",
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode == 0, found.stderr
    template, openapi, table = found.stdout.splitlines()
    assert Path(template).is_relative_to(expected_root) and table == "files"
    assert Path(template).read_bytes() == (REPO / "template.yaml").read_bytes()
    assert Path(openapi).read_bytes() == (REPO / "openapi.json").read_bytes()
    if not editable:  # the whole local stack, from a folder with no project file in it
        demo = subprocess.run(
            [str(command), "demo"],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert demo.returncode == 0 and "demo OK" in demo.stdout, demo.stdout + demo.stderr


def _project_version() -> str:
    namespace: dict[str, str] = {}
    exec((REPO / "pipeline" / "__init__.py").read_text(), namespace)
    return namespace["__version__"]
