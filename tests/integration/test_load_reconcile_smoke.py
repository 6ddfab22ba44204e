"""Smoke run of the reconcile benchmark (tiny sizes), so that it cannot rot; no speed asserted:
at this size the speed target is reported as not judged (too small), and the exit is 0."""

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
        [sys.executable, "-m", "load", "reconcile", "--keys", "3000", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert all(t["met"] is None and "too small" in t["note"] for t in report["targets"])
    assert "run too small for this target to mean anything" in done.stderr
    results = {r["mode"]: r for r in report["results"]}
    assert set(results) == {"fake", "sink"}
    for result in results.values():
        # 3,000 keys: 30 missing (every 100th) + 3 stale (every 1,000th), all repaired
        assert (result["listed"], result["missing"], result["stale"]) == (3000, 30, 3)
        assert (result["repaired"], result["failed"]) == (33, 0)
        assert result["peak_mb"] > 0
