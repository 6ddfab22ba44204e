"""`s3-file-tracker browse`: a local web page over the read API (see docs/browse.md)."""
