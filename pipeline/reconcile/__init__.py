"""Reconcile: the merge join of a bucket with the table, and its composition root."""
