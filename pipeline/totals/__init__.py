"""Folder totals: how many live files, and how many bytes, under every folder of a bucket.

- `folders`: which folders a key counts in ("a/b/c.txt" -> "", "a/", "a/b/").
- `deltas`: what one row transition (old image -> new image) changes.
- `stream`: the totals consumer: a batch of the table's stream, one shard, folded into
  per-folder sums, each applied once under a per-shard watermark (`WatermarkedCounters`
  port, DynamoDB adapter in `pipeline.adapters.dynamo.stream_totals`).
- `walk`, `audit`: reconcile's recount of totals in S3 order, and its drift repair.
"""
