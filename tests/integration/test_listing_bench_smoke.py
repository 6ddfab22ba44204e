"""`python -m load listing` runs end to end on small tables (counts checked, never timings)."""

from __future__ import annotations

import json
from pathlib import Path

from load import listing


def test_the_listing_benchmark_runs_and_reports_its_counts(tmp_path: Path) -> None:
    out = tmp_path / "listing.json"
    listing.main(
        ["--sizes", "2000,6000", "--interleaved-pages", "20", "--out", str(out)]
    )  # exit status: timing targets
    document = json.loads(out.read_text())
    results = document["results"]
    assert {r["scenario"] for r in results} == {name for name, _, _ in listing.SCENARIOS}
    assert all(r["empty_pages"] == 0 for r in results)
    full = [r for r in results if r["scenario"].startswith("full walk")]
    assert all(r["returned"] in (2000, 6000) for r in full)
    assert all(r["rows_read_per_item_excl_lookahead"] <= 2 for r in full)
    assert len(document["interleaved"]) == 2
