"""The reconcile CLI's pieces that need no services: targets, progress line, summary, errors."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
from pathlib import Path

import pytest

from pipeline.local import reconcile_cli
from pipeline.local.cli import _parser, main
from pipeline.local.state import STATE_ENV, LocalStack, published, read_local_stack
from pipeline.reconcile.ports import Summary


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def no_local_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No `up` running (its state file is this test's own), AWS credentials in the env."""
    path = tmp_path / "state" / "stack.json"
    monkeypatch.setenv(STATE_ENV, str(path))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return path


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


def test_without_a_local_stack_or_credentials_the_error_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no running `up` and no AWS credentials anywhere
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # When reconcile names only a bucket / Then one line says what to do
    assert main(["reconcile", "--bucket", "legacy-bucket"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {reconcile_cli.NO_TARGET}" and "\n" not in err


def running(path: Path) -> LocalStack:
    return LocalStack(
        pid=os.getpid(),
        region="eu-west-1",
        bucket="stack-bucket",
        table="files-x",
        queue_name="q-x",
        api_url="http://127.0.0.1:1",
        endpoints={"s3": "http://127.0.0.1:2", "dynamodb": "http://127.0.0.1:3"},
        credentials={"aws_access_key_id": "a", "aws_secret_access_key": "b"},
    )


def test_a_running_up_is_found_by_its_state_file_and_gone_after(no_local_stack: Path) -> None:
    # Given `up` published its state
    with published(running(no_local_stack)) as path:
        assert path == no_local_stack and (path.stat().st_mode & 0o777) == 0o600
        # When reconcile is given no target / Then it is the running stack, service by service
        target = reconcile_cli.resolve_target(parse())
        assert (target.bucket, target.table, target.region) == (
            "stack-bucket",
            "files-x",
            "eu-west-1",
        )
        assert target.client_kwargs("dynamodb")["endpoint_url"] == "http://127.0.0.1:3"
        assert target.client_kwargs("s3")["endpoint_url"] == "http://127.0.0.1:2"
        assert target.client_kwargs("ssm")["aws_access_key_id"] == "a"
    # And after `up` exits the file is gone
    assert not no_local_stack.exists() and read_local_stack() is None


def test_a_state_file_whose_process_is_gone_is_ignored(no_local_stack: Path) -> None:
    stale = running(no_local_stack)
    no_local_stack.parent.mkdir(parents=True)
    no_local_stack.write_text(json.dumps(dataclasses.asdict(stale) | {"pid": 2**22 + 7}))
    assert read_local_stack() is None
    assert reconcile_cli.resolve_target(parse()).endpoint_url == "http://127.0.0.1:4000"


def test_a_bucket_the_running_stack_lacks_is_named_in_the_error(
    no_local_stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a running `up` whose S3 endpoint does not answer (so it has no such bucket)
    with published(running(no_local_stack)):
        # When reconcile names a bucket without a table / Then one line says what to do
        assert main(["reconcile", "--bucket", "elsewhere"]) == 2
    err = capsys.readouterr().err
    assert "the running local stack has no bucket 'elsewhere'" in err and "--table" in err


def test_totals_settle_is_the_flag_else_the_environment_else_60(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RECONCILE_TOTALS_SETTLE_S", raising=False)
    monkeypatch.delenv("RECONCILE_TOTALS_SETTLE_MARGIN_S", raising=False)
    monkeypatch.delenv("RECONCILE_TOTALS_STAMP_MARGIN_S", raising=False)
    assert reconcile_cli._totals_timing(None) == (60, 5, 20)
    monkeypatch.setenv("RECONCILE_TOTALS_SETTLE_S", "7")
    monkeypatch.setenv("RECONCILE_TOTALS_SETTLE_MARGIN_S", "0")
    assert reconcile_cli._totals_timing(None) == (7, 0, 20)
    assert reconcile_cli._totals_timing(2.5) == (2.5, 0, 20)
    assert reconcile_cli._totals_timing(-1) == (0, 0, 20)
