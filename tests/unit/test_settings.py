"""The ingest write mode setting: default, opt-in, and a clear error for anything else."""

from __future__ import annotations

import pytest

from pipeline.settings import Settings, SettingsError, WriteMode


def test_the_default_write_mode_is_conditional() -> None:
    assert Settings.from_env({"TABLE_NAME": "files"}).write_mode is WriteMode.CONDITIONAL


@pytest.mark.parametrize("raw", ["batch", " BATCH "])
def test_the_batch_mode_is_opt_in(raw: str) -> None:
    settings = Settings.from_env({"TABLE_NAME": "files", "INGEST_WRITE_MODE": raw})
    assert settings.write_mode is WriteMode.BATCH


def test_an_unknown_write_mode_names_the_allowed_ones() -> None:
    with pytest.raises(SettingsError, match=r"INGEST_WRITE_MODE must be one of conditional, batch"):
        Settings.from_env({"TABLE_NAME": "files", "INGEST_WRITE_MODE": "fast"})
