"""The deployment artifact `sam build` makes (run by `make sam-check`, which `make test` runs):
each function's folder holds the handlers, the library without the local stack, and the
runtime lock's packages as Lambda's Python 3.13 wheels. Skipped unless SAM_BUILD_DIR names
a build (the Makefile target sets it)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from pipeline.local.template import load_template

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ["SAM_BUILD_DIR"]) if os.environ.get("SAM_BUILD_DIR") else None
FUNCTIONS = ("IngestFunction", "ApiFunction", "ReconcileFunction")

needs_build = pytest.mark.skipif(BUILD is None, reason="run by `make sam-check` (SAM_BUILD_DIR)")


def locked() -> dict[str, str]:
    """Distribution name (normalized) -> version, from requirements/runtime.lock."""
    text = (REPO / "requirements" / "runtime.lock").read_text()
    return {
        re.sub(r"[-_.]+", "_", name).lower(): version
        for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==([^ \\]+)", text, re.MULTILINE)
    }


def built_functions() -> dict[str, dict[str, object]]:
    assert BUILD is not None
    document = yaml.load((BUILD / "template.yaml").read_text(), Loader=yaml.BaseLoader)
    return {name: document["Resources"][name]["Properties"] for name in FUNCTIONS}


@needs_build
@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_ships_its_handler_and_the_library_without_the_local_stack(
    function: str,
) -> None:
    assert BUILD is not None
    properties = built_functions()[function]
    folder = BUILD / str(properties["CodeUri"])
    handler = str(load_template()["Resources"][function]["Properties"]["Handler"])
    module = handler.rsplit(".", 1)[0].replace(".", "/") + ".py"
    assert (folder / module).is_file(), f"{function}: no {module}"
    assert (folder / "pipeline" / "__init__.py").is_file()
    assert not (folder / "pipeline" / "local").exists(), "the local stack is not deployed"
    assert not (folder / "tests").exists() and not (folder / "load").exists()
    assert not list(folder.rglob("__pycache__"))


@needs_build
@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_ships_the_runtime_lock_as_python_313_wheels(function: str) -> None:
    assert BUILD is not None
    folder = BUILD / str(built_functions()[function]["CodeUri"])
    shipped = {
        re.sub(r"[-_.]+", "_", m[1]).lower(): m[2]
        for m in (re.fullmatch(r"(.+)-([^-]+)\.dist-info", p.name) for p in folder.iterdir())
        if m
    }
    assert shipped == locked()
    compiled = [p.name for p in folder.rglob("*.so")]
    assert compiled, "no compiled extension (pydantic-core, aiohttp ...)"
    assert all("cpython-313-x86_64-linux-gnu" in name or ".abi3." in name for name in compiled), (
        compiled
    )
