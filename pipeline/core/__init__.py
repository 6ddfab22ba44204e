"""The core: the record model, settings, retry, tokens and event fields. No AWS."""
