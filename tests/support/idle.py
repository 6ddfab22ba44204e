"""Settings for tests that run reconcile on a local stack they have waited idle."""

from __future__ import annotations

IDLE_TOTALS_TIMING = {
    "RECONCILE_TOTALS_SETTLE_S": "0",
    "RECONCILE_TOTALS_SETTLE_MARGIN_S": "0",
    "RECONCILE_TOTALS_STAMP_MARGIN_S": "1",
}
"""reconcile's folder-counter timing (`pipeline.core.settings.TotalsTiming`) when no ingest
invocation and no counter update can be in flight: the test waited for the stack to be idle
(`Stack.wait_until_idle`: queue empty, no invocation running) or sends it nothing. The
settle (the ingest function's timeout on AWS) and its margin wait for deltas still in flight,
and there are none; the stamp margin (a counter update's request timeout) becomes 1 s, so a
test that changes a counter by hand waits 2 s, not 21, before reconcile may repair it. The
waits themselves are proven with forced interleavings in tests/unit/test_reconcile_totals.py."""
STAMP_MARGIN_S = int(IDLE_TOTALS_TIMING["RECONCILE_TOTALS_STAMP_MARGIN_S"])
