"""Folder totals: how many live files, and how many bytes, under every folder of a bucket.

- `folders`: which folders a key counts in ("a/b/c.txt" -> "", "a/", "a/b/").
- `deltas`: what one applied row transition changes, summed per (bucket, folder) per
  invocation, applied once per folder (`TotalsStore` port, DynamoDB adapter in
  `pipeline.adapters.dynamo.totals`).
- `walk`: the streaming per-folder accumulator reconcile uses to recompute totals in S3 order.
"""
