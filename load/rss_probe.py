"""Peak RSS of one ingest invocation, in a fresh process (run by `load.writer`).

    python -m load.rss_probe --sink-url http://127.0.0.1:PORT --records 10000

Prints one JSON line: the peak RSS (VmHWM) after the imports (`baseline_mb`), once the
event is built (`before_mb`), after one cold invocation (`peak_mb`, the process peak Lambda
would bill against its memory size) and the difference (`delta_mb`).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path


def _maxrss_mb() -> float:
    """Peak RSS of this process image: VmHWM on Linux (ru_maxrss survives exec from a big
    parent), ru_maxrss elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    kilobytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kilobytes / (1024 * 1024) if sys.platform == "darwin" else kilobytes / 1024


def main(argv: list[str] | None = None) -> int:
    """Cold-start the handler against the sink, invoke it once, print the RSS figures."""
    parser = argparse.ArgumentParser(prog="python -m load.rss_probe", description=__doc__)
    parser.add_argument("--sink-url", required=True)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)

    from load.events import sqs_event
    from load.writer_designs import IngestHandler

    handler = IngestHandler(args.sink_url, args.concurrency)
    baseline = _maxrss_mb()
    event = sqs_event(args.records, run="rss")
    before = _maxrss_mb()
    response = handler(event)
    peak = _maxrss_mb()
    payload_mb = len(json.dumps(event)) / 1e6  # after the peak: this string is large too
    handler.close()
    print(
        json.dumps(
            {
                "records": args.records,
                "baseline_mb": round(baseline, 1),
                "before_mb": round(before, 1),
                "peak_mb": round(peak, 1),
                "delta_mb": round(peak - before, 1),
                "event_mb": round(before - baseline, 1),
                "event_json_mb": round(payload_mb, 2),
                "failures": len(response.get("batchItemFailures") or []),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
