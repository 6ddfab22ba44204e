"""Settings for tests that run reconcile on a local stack they have waited idle."""

from __future__ import annotations

IDLE_TOTALS_TIMING = {
    "RECONCILE_TOTALS_SETTLE_S": "5",
    "RECONCILE_TOTALS_SETTLE_MARGIN_S": "1",
    "RECONCILE_TOTALS_STAMP_MARGIN_S": "1",
}
"""reconcile's folder-counter timing (`pipeline.core.settings.TotalsTiming`) when no ingest
invocation is in flight: the test waited for the stack to be idle (`Stack.wait_until_idle`:
queue empty, no invocation running, the table's stream consumed) or sends it nothing. The
settle still covers the stream's lag behind the rows, because reconcile's own repairs write
rows whose deltas reach the counters through the stream during the run (the local stream
poller passes every 0.2 s; 5 s plus 1 s of margin covers it on a loaded box, where AWS's
default is a minute). The stamp margin (a counter update's request timeout) becomes 1 s, so a
test that changes a counter by hand waits 2 s, not 21, before reconcile may repair it. The
waits themselves are proven with forced interleavings in tests/unit/test_reconcile_totals.py."""
STAMP_MARGIN_S = int(IDLE_TOTALS_TIMING["RECONCILE_TOTALS_STAMP_MARGIN_S"])
