"""A synthetic S3 + DynamoDB + SSM endpoint for the reconcile benchmark (`load.reconcile`).

    python -m load.reconcile_sink --keys 1000000 --port 0     # prints {"port": N} when ready

It answers exactly the calls reconcile makes, from keys it generates (`key/000000042`, size
`i % 1000`), so the benchmark measures reconcile and the real adapters (botocore building,
sending and parsing every page), not an emulator:

- S3 ListObjectsV2 (1,000 keys a page, continuation tokens, StartAfter) and HeadObject;
- DynamoDB Query on the listing index (per shard, `#name >= :low` / BETWEEN, Limit,
  LastEvaluatedKey), BatchGetItem (no rows) and PutItem (accepted);
- SSM GetParameter (none saved), PutParameter, DeleteParameter.

The table lacks every 100th key (1 % missing) and has every 1,000th row with a wrong size
(0.1 % stale): every repair path but "extra" runs.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from pipeline.core.model import INDEX_SHARDS, item_key, name_shard_of, shard_of

BUCKET = "bench"
"""The bucket the benchmark reconciles (load/reconcile.py's target)."""

LAST_MODIFIED = "2026-01-01T00:00:00.000Z"


def key_of(i: int) -> str:
    return f"key/{i:09d}"


def etag_of(i: int) -> str:
    return hashlib.md5(str(i).encode()).hexdigest()


class Data:
    """The synthetic bucket and table."""

    def __init__(self, keys: int) -> None:
        self.keys = keys
        self.shards: list[list[str]] = [[] for _ in range(INDEX_SHARDS)]
        for i in range(keys):
            if i % 100 == 0:
                continue  # missing from the table
            key = key_of(i)
            self.shards[shard_of(key)].append(key)

    def row(self, key: str) -> dict[str, Any]:
        i = int(key[4:])
        size = i % 1000 + (1 if i % 1000 == 7 else 0)  # 0.1 % stale
        return {
            "pk": {"S": item_key(BUCKET, key)},
            "filename": {"S": key},
            "bucket": {"S": BUCKET},
            "size": {"N": str(size)},
            "etag": {"S": etag_of(i)},
            "event_time": {"S": LAST_MODIFIED},
            "event_name": {"S": "ObjectCreated:Put"},
            "name_shard": {"S": name_shard_of(BUCKET, key)},
        }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    data: Data

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: bytes, content_type: str, headers: Any = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # --- S3 ---------------------------------------------------------------------------
    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        start = 0
        if "continuation-token" in query:
            start = int(query["continuation-token"])
        elif query.get("start-after"):
            after = query["start-after"]
            start = int(after[4:]) + 1 if after.startswith("key/") else 0
        end = min(self.data.keys, start + int(query.get("max-keys", "1000")))
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>bench</Name><Prefix></Prefix><KeyCount>{end - start}</KeyCount>"
            f"<MaxKeys>1000</MaxKeys><IsTruncated>{'true' if end < self.data.keys else 'false'}"
            "</IsTruncated>"
        ]
        if end < self.data.keys:
            parts.append(f"<NextContinuationToken>{end}</NextContinuationToken>")
        for i in range(start, end):
            parts.append(
                f"<Contents><Key>{key_of(i)}</Key><LastModified>{LAST_MODIFIED}</LastModified>"
                f"<ETag>&quot;{etag_of(i)}&quot;</ETag><Size>{i % 1000}</Size>"
                "<StorageClass>STANDARD</StorageClass></Contents>"
            )
        parts.append("</ListBucketResult>")
        self._send(200, "".join(parts).encode(), "application/xml")

    def do_HEAD(self) -> None:
        key = unquote(urlparse(self.path).path.split("/", 2)[2])
        i = int(key[4:])
        headers = [
            ("ETag", f'"{etag_of(i)}"'),
            ("Last-Modified", "Thu, 01 Jan 2026 00:00:00 GMT"),
            ("Content-Length", str(i % 1000)),
        ]
        self.send_response(200)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()

    # --- DynamoDB and SSM -------------------------------------------------------------
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        target = self.headers.get("X-Amz-Target", "")
        kind = "application/x-amz-json-1.0"
        if target.endswith(".Query"):
            self._send(200, json.dumps(self._query(request)).encode(), kind)
        elif target.endswith(".BatchGetItem"):
            table = next(iter(request["RequestItems"]))
            self._send(200, json.dumps({"Responses": {table: []}}).encode(), kind)
        elif target.endswith((".PutItem", ".GetItem", ".UpdateItem")):
            self._send(200, b"{}", kind)  # folder counters: none stored, repairs accepted
        elif target == "AmazonSSM.GetParameter":
            body = {"__type": "ParameterNotFound", "message": "none"}
            self._send(400, json.dumps(body).encode(), "application/x-amz-json-1.1")
        elif target.startswith("AmazonSSM."):
            self._send(200, b"{}", "application/x-amz-json-1.1")
        else:
            body = {"__type": "UnknownOperationException", "message": target}
            self._send(400, json.dumps(body).encode(), kind)

    def _query(self, request: dict[str, Any]) -> dict[str, Any]:
        values = request["ExpressionAttributeValues"]
        keys = self.data.shards[int(values[":shard"]["S"].rsplit("/", 1)[1])]
        start = bisect.bisect_left(keys, values[":low"]["S"]) if ":low" in values else 0
        stop = bisect.bisect_right(keys, values[":high"]["S"]) if ":high" in values else len(keys)
        if "ExclusiveStartKey" in request:
            start = bisect.bisect_right(keys, request["ExclusiveStartKey"]["filename"]["S"])
        end = min(stop, start + int(request.get("Limit", 1000)))
        response: dict[str, Any] = {
            "Items": [self.data.row(key) for key in keys[start:end]],
            "Count": end - start,
        }
        if end < stop:
            last = keys[end - 1]
            response["LastEvaluatedKey"] = {
                "pk": {"S": item_key(BUCKET, last)},
                "filename": {"S": last},
                "name_shard": {"S": values[":shard"]["S"]},
            }
        return response


def main(argv: list[str] | None = None) -> int:
    """Serve until stdin closes."""
    parser = argparse.ArgumentParser(prog="python -m load.reconcile_sink", description=__doc__)
    parser.add_argument("--keys", type=int, required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    Handler.data = Data(args.keys)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    sys.stdin.read()  # the parent closes stdin to stop us
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
