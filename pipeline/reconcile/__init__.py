"""Reconcile: the merge join of a bucket with the table, its repairs and its ports."""
