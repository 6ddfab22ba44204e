"""The writer benchmark's change feed costs: write units per event by kind of change, with and
without the feed."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

from rich.table import Table

from load.events import sqs_event
from load.report import (
    fmt,
)
from load.sink import SinkProcess
from load.writer_config import DEFAULT_CONCURRENCY, PRICE_RRU, PRICE_WRU
from load.writer_designs import IngestHandler


def _units_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """Write units per design element billed between two sink stats."""
    old, new = before.get("units") or {}, after.get("units") or {}
    return {k: new[k] - old.get(k, 0.0) for k in new if new[k] - old.get(k, 0.0)}


@contextlib.contextmanager
def feed_off() -> Iterator[None]:
    """Stores opened meanwhile write no change feed attributes: the design without the feed."""
    from pipeline.adapters.dynamo.writer import DynamoFileStore

    original = DynamoFileStore.__init__

    def without_feed(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["stamper"] = None
        original(self, *args, **kwargs)

    DynamoFileStore.__init__ = without_feed  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoFileStore.__init__ = original  # type: ignore[method-assign]


CHANGE_KINDS = ("create", "overwrite", "delete")
MIXES = {
    "uploads (creates only)": {"create": 1.0},
    "churn (1/3 each)": {kind: 1 / 3 for kind in CHANGE_KINDS},
}
"""Mixes of changes the per-event cost is averaged over."""


def churn_events(records: int, run: str) -> list[tuple[str, dict[str, Any]]]:
    """Three events over the same keys: their creates, then overwrites, then deletes (each
    with a newer sequencer, as S3 sends them)."""
    create = sqs_event(records, run=run)
    events = [("create", create)]
    for step, kind in enumerate(("overwrite", "delete"), start=1):
        records_out = []
        for record in create["Records"]:
            body = json.loads(record["body"])
            s3 = body["Records"][0]["s3"]["object"]
            s3["sequencer"] = f"{int(s3['sequencer'], 16) + step * 0x1000000:018X}"
            if kind == "overwrite":
                s3["eTag"] = uuid.uuid4().hex
                s3["size"] += 1
            else:
                body["Records"][0]["eventName"] = "ObjectRemoved:Delete"
                s3.pop("size")
                s3.pop("eTag")
            records_out.append({**record, "body": json.dumps(body)})
        events.append((kind, {"Records": records_out}))
    return events


def feed_costs(sink: SinkProcess, records: int) -> dict[str, Any]:
    """Write and read units per event, per design element, for each kind of change, with and
    without the change feed (at 0 ms: units do not depend on latency)."""
    out: dict[str, Any] = {"records": records}
    for design in ("with_feed", "without_feed"):
        switch = feed_off() if design == "without_feed" else contextlib.nullcontext()
        with switch:
            handler = IngestHandler(sink.url, DEFAULT_CONCURRENCY)
            try:
                sink.configure(latency_ms=0, unprocessed_rate=0)
                handler(sqs_event(10, run=f"warmup-{design}"))
                kinds: dict[str, Any] = {}
                for kind, event in churn_events(records, run=f"{design}-{uuid.uuid4().hex[:6]}"):
                    before = sink.stats()
                    handler(event)
                    after = sink.stats()
                    units = {k: v / records for k, v in _units_delta(before, after).items()}
                    rru = (after["rru"] - before["rru"]) / records
                    kinds[kind] = {"units": units, "wru": sum(units.values()), "rru": rru}
            finally:
                handler.close()
        out[design] = kinds
    for mix, weights in MIXES.items():
        row: dict[str, Any] = {}
        for design in ("with_feed", "without_feed"):
            wru = sum(out[design][k]["wru"] * w for k, w in weights.items())
            rru = sum(out[design][k]["rru"] * w for k, w in weights.items())
            row[design] = {
                "wru": wru,
                "rru": rru,
                "usd_per_m": (wru * PRICE_WRU + rru * PRICE_RRU) * 1e6,
            }
        row["feed_added_wru"] = row["with_feed"]["wru"] - row["without_feed"]["wru"]
        out.setdefault("mixes", {})[mix] = row
    return out


def feed_costs_table(costs_doc: dict[str, Any]) -> Table:
    """Write units per event by design element and kind of change, with and without the feed."""
    elements = sorted(
        {
            e
            for d in ("with_feed", "without_feed")
            for k in costs_doc[d].values()
            for e in k["units"]
        },
        key=lambda e: (e != "table", e),
    )
    table = Table(
        title=f"Units per event by design element ({costs_doc['records']:,} keys per kind; "
        "on-demand $ per million events, DynamoDB requests only)"
    )
    for column in ("design", "change", *elements, "WRU total", "RRU", "$ / M events"):
        table.add_column(column, justify="left" if column in ("design", "change") else "right")
    for design in ("with_feed", "without_feed"):
        for kind in CHANGE_KINDS:
            r = costs_doc[design][kind]
            usd = (r["wru"] * PRICE_WRU + r["rru"] * PRICE_RRU) * 1e6
            table.add_row(
                design.replace("_", " "),
                kind,
                *(fmt(r["units"].get(e, 0.0), 2) for e in elements),
                fmt(r["wru"], 2),
                fmt(r["rru"], 2),
                fmt(usd, 3),
            )
    for mix, row in costs_doc["mixes"].items():
        for design in ("with_feed", "without_feed"):
            table.add_row(
                design.replace("_", " "),
                mix,
                *("" for _ in elements),
                fmt(row[design]["wru"], 2),
                fmt(row[design]["rru"], 2),
                fmt(row[design]["usd_per_m"], 3),
            )
    return table
