"""The ingest write mode setting: default, opt-in, and a clear error for anything else."""

from __future__ import annotations

import pytest

from pipeline.core.settings import Settings, SettingsError, TotalsTiming, WriteMode


def test_the_default_write_mode_is_conditional() -> None:
    assert Settings.from_env({"TABLE_NAME": "files"}).write_mode is WriteMode.CONDITIONAL


@pytest.mark.parametrize("raw", ["batch", " BATCH "])
def test_the_batch_mode_is_opt_in(raw: str) -> None:
    settings = Settings.from_env({"TABLE_NAME": "files", "INGEST_WRITE_MODE": raw})
    assert settings.write_mode is WriteMode.BATCH


def test_an_unknown_write_mode_names_the_allowed_ones() -> None:
    with pytest.raises(SettingsError, match=r"INGEST_WRITE_MODE must be one of conditional, batch"):
        Settings.from_env({"TABLE_NAME": "files", "INGEST_WRITE_MODE": "fast"})


def test_the_stacks_own_bucket_is_validated_and_is_reconciles_default() -> None:
    settings = Settings.from_env({"TABLE_NAME": "files", "TRACKED_BUCKET": "my-bucket.v2"})
    assert (settings.tracked_bucket, settings.reconcile_bucket) == ("my-bucket.v2", "my-bucket.v2")
    other = {"TABLE_NAME": "files", "TRACKED_BUCKET": "a-b", "RECONCILE_BUCKET": "c-d"}
    assert Settings.from_env(other).reconcile_bucket == "c-d"
    for bad in ("a/b", "UPPER", "x", "two..dots"):
        with pytest.raises(SettingsError, match="TRACKED_BUCKET: bucket must "):
            Settings.from_env({"TABLE_NAME": "files", "TRACKED_BUCKET": bad})


def test_the_totals_timing_defaults_to_aws_and_reads_its_three_variables() -> None:
    assert Settings.from_env({"TABLE_NAME": "files"}).reconcile_totals == TotalsTiming(60, 5, 20)
    env = {
        "RECONCILE_TOTALS_SETTLE_S": "30",
        "RECONCILE_TOTALS_SETTLE_MARGIN_S": "0",
        "RECONCILE_TOTALS_STAMP_MARGIN_S": "1",
    }
    assert TotalsTiming.from_env(env) == TotalsTiming(30, 0, 1)
    assert Settings.from_env({"TABLE_NAME": "files", **env}).reconcile_totals.settle_s == 30
    with pytest.raises(SettingsError, match=r"RECONCILE_TOTALS_STAMP_MARGIN_S must be an integer"):
        TotalsTiming.from_env({"RECONCILE_TOTALS_STAMP_MARGIN_S": "-1"})
