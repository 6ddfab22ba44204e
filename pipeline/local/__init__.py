"""The local stack: the pipeline on one machine, around the real handlers."""
