"""Composition roots: the clients and adapters of a run, wired once (reconcile's CLI and Lambda)."""
