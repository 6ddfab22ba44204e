"""`python -m pipeline up|demo`: the local stack's command line (see docs/local-stack.md)."""

from __future__ import annotations

import sys

from pipeline.local.cli import main

if __name__ == "__main__":
    sys.exit(main())
