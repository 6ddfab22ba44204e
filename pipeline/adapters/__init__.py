"""Adapters: the only modules that call AWS (DynamoDB, S3, SSM) and the client runtime."""
