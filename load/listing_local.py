"""Listing on the local stack's engine (AWS's DynamoDB Local): seeded over HTTP, paged through
the real reader (`python -m load listing --local N`)."""

from __future__ import annotations

import time
from typing import Any

from load.report import console, fmt, percentile


def bucket_name(index: int) -> str:
    """The name of the benchmark's `index`-th bucket."""
    return f"load-{index}"


def local_engine(items: int, pages: int = 10, buckets: int = 1) -> dict[str, Any]:
    """Page latency and rows read on the local stack's DynamoDB engine (AWS's DynamoDB Local).

    Seeds `items` rows per bucket (`buckets` of them, the same keys, one table) over HTTP,
    then times `pages` pages of each bucket's walk (limit 100 and 1000) through
    `DynamoFileReader.for_bucket`, as the read API pages, counting rows read per entry.
    """
    from concurrent.futures import ThreadPoolExecutor

    import boto3

    from pipeline.adapters.dynamo.reader import DynamoFileReader
    from pipeline.adapters.dynamo.schema import create_files_table
    from pipeline.core.model import item_key, name_shard_of
    from pipeline.local.dynamodb_local import DynamoDBLocal
    from pipeline.read.listing import read_page

    results: dict[str, Any] = {"items": items, "buckets": buckets, "engine": "DynamoDB Local"}
    with DynamoDBLocal() as engine:
        client = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            endpoint_url=engine.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        create_files_table(client, "files")

        def write(job: tuple[str, int]) -> None:
            bucket, start = job
            batch = []
            for i in range(start, min(start + 25, items)):
                name = f"p{i % 32:02d}/object {i:08d}.bin"
                item = {
                    "pk": {"S": item_key(bucket, name)},
                    "filename": {"S": name},
                    "bucket": {"S": bucket},
                    "name_shard": {"S": name_shard_of(bucket, name)},
                    "size": {"N": str(i)},
                }
                batch.append({"PutRequest": {"Item": item}})
            requests: dict[str, Any] = {"files": batch}
            while requests:
                requests = client.batch_write_item(RequestItems=requests)["UnprocessedItems"]

        names = [bucket_name(number) for number in range(buckets)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, [(b, start) for b in names for start in range(0, items, 25)]))
        index = DynamoFileReader(client, "files")
        for bucket in names:
            reader = index.for_bucket(bucket)
            for limit in (100, 1_000):
                latencies = []
                read = returned = empty = 0
                cursor = None
                for _ in range(pages):
                    t0 = time.perf_counter()
                    page = read_page(reader, limit, cursor=cursor)
                    latencies.append(time.perf_counter() - t0)
                    read += page.stats.rows_read
                    returned += len(page.items)
                    empty += page.cursor is not None and not page.items
                    cursor = page.cursor
                    if cursor is None:
                        break
                label = f"DynamoDB Local, {bucket}, limit {limit}"
                results[f"{label}, p50 ms"] = (percentile(latencies, 50) or 0) * 1e3
                results[f"{label}, rows read per entry"] = read / max(returned, 1)
                results[f"{label}, empty pages"] = empty
                if any(item["bucket"] != bucket for item in page.items):
                    raise AssertionError(f"a page of {bucket} listed another bucket's row")
    for key, value in results.items():
        console.print(f"{key}: {fmt(value, 3) if isinstance(value, float) else value}")
    return results
