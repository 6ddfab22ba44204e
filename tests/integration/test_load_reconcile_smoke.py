"""Smoke run of the reconcile benchmark (tiny sizes), so that it cannot rot; no speed asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_reconcile_benchmark_runs_both_sources(tmp_path: Path) -> None:
    out = tmp_path / "reconcile.json"
    done = subprocess.run(
        [sys.executable, "-m", "load", "reconcile", "--keys", "3000", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: a speed target missed at this size
    report = json.loads(out.read_text())
    results = {r["mode"]: r for r in report["results"]}
    assert set(results) == {"fake", "sink"}
    for result in results.values():
        # 3,000 keys: 30 missing (every 100th) + 3 stale (every 1,000th), all repaired
        assert (result["listed"], result["missing"], result["stale"]) == (3000, 30, 3)
        assert (result["repaired"], result["failed"]) == (33, 0)
        assert result["peak_mb"] > 0
