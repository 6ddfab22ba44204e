"""Ingest: S3 notifications (S3's and EventBridge's shapes) to row writes, one batch at a time."""
