"""`python -m pipeline.read.api --openapi [FILE]`: print or write the OpenAPI document."""

from pipeline.read.api.openapi import main

raise SystemExit(main())
