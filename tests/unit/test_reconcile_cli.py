"""The reconcile CLI's pieces that need no services: targets, progress line, summary, errors."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from pipeline.local import reconcile_cli
from pipeline.local.cli import _parser, main
from pipeline.reconcile import Summary


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def parse(*argv: str) -> argparse.Namespace:
    return _parser("python -m pipeline").parse_args(["reconcile", *argv])


def test_default_target_is_the_local_stack_with_template_names() -> None:
    target = reconcile_cli.resolve_target(parse())
    assert target.endpoint_url == "http://127.0.0.1:4000"
    assert (target.bucket, target.table) == ("serverless-event4", "files")
    assert target.credentials is not None


def test_bucket_and_table_name_an_aws_target() -> None:
    target = reconcile_cli.resolve_target(parse("--bucket", "b", "--table", "t"))
    assert (target.bucket, target.table, target.endpoint_url) == ("b", "t", None)
    assert target.credentials is None


def test_bucket_without_table_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reconcile", "--bucket", "b"]) == 2
    assert "--bucket and --table go together" in capsys.readouterr().err


def test_concurrency_is_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reconcile", "--concurrency", "0"]) == 2
    assert "--concurrency" in capsys.readouterr().err


def test_progress_draws_on_a_terminal_only() -> None:
    summary = Summary(listed=12_345, rows=12_000, missing=345, repaired=300, seconds=2.0)
    summary.last_key = "photos/2026/img_0001.jpg"
    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        progress = reconcile_cli.Progress(stream)
        progress(summary)
        progress.close()
    assert pipe.getvalue() == ""
    line = terminal.getvalue()
    assert line.startswith("\r") and line.endswith("\n")
    assert "12,345 listed" in line and "missing 345" in line and "6,172 keys/s" in line


def test_human_summary_names_failures_and_an_unfinished_run(tmp_path: Path) -> None:
    summary = Summary(listed=10, missing=2, repaired=1, failed=1, failures={"k": "why"})
    target = reconcile_cli.Target("b", "t")
    text = reconcile_cli._human(summary, target, "p/")
    assert "s3://b/p/" in text and "failed: 'k': why" in text
    assert "run the same command again to resume" in text


def test_drifted_keys_are_named_bounded_per_kind() -> None:
    # Given a dry run that found 150 missing keys and 1 stale one
    summary = Summary(dry_run=True, complete=True, missing=150, stale=1)
    for i in range(150):
        summary.name_drift("missing", f"m/{i:03d}")
    summary.name_drift("stale", "s")

    # Then the report names the first 100 of a kind and counts the rest
    named = summary.report()["drifted_keys"]
    assert named["missing"] == {"keys": [f"m/{i:03d}" for i in range(100)], "more": 50}
    assert named["stale"] == {"keys": ["s"], "more": 0}
    assert named["extra"] == {"keys": [], "more": 0}
    # and --list prints them, with the count of the others
    text = reconcile_cli._human(summary, reconcile_cli.Target("b", "t"), "", listed=True)
    assert "missing: 'm/000'" in text and "missing: ... and 50 more" in text
    assert "stale: 's'" in text
    assert "m/000" not in reconcile_cli._human(summary, reconcile_cli.Target("b", "t"), "")


@pytest.mark.parametrize(
    ("summary", "status"),
    [
        (Summary(dry_run=True, complete=True), 0),
        (Summary(dry_run=True, complete=True, extra=1), 3),
        (Summary(dry_run=False, complete=True, extra=1, repaired=1), 0),
        (Summary(dry_run=False, complete=True, extra=1, failed=1), 1),
        (Summary(dry_run=True, complete=False, extra=1), 130),
    ],
)
def test_exit_status_says_whether_a_dry_run_found_drift(summary: Summary, status: int) -> None:
    assert reconcile_cli._status(summary) == status
