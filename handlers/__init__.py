"""Thin Lambda entry points; all logic lives in `pipeline`."""
