"""The command the docs use is the one `make` installs, and `--help` tells the truth."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def _commands() -> set[str]:
    """The subcommands the command line really has (from its parser)."""
    import argparse

    from pipeline.local.cli import _parser

    actions = _parser()._subparsers._group_actions  # type: ignore[union-attr]
    return {
        name for a in actions if isinstance(a, argparse._SubParsersAction) for name in a.choices
    }


COMMANDS = _commands()


@pytest.mark.skipif(
    Path(sys.prefix).resolve() != (REPO / ".venv").resolve(),
    reason="checks the venv `make` builds (.venv)",
)
def test_make_installs_the_console_command_the_docs_use() -> None:
    command = REPO / ".venv" / "bin" / "s3-file-tracker"
    assert command.exists(), "make .venv/.installed did not install s3-file-tracker"
    done = subprocess.run(
        [str(command), "watch", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.startswith("usage: s3-file-tracker watch")


def test_the_docs_name_only_commands_that_exist() -> None:
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    named = {
        match
        for doc in docs
        for match in re.findall(
            r"(?:s3-file-tracker|python -m pipeline) ([a-z][a-z-]+)", doc.read_text()
        )
    }
    assert named and named <= COMMANDS, named - COMMANDS


def test_help_says_where_the_handlers_run() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    text = " ".join(done.stdout.split())
    assert "in-process" not in text
    assert "execution-environment processes" in text
