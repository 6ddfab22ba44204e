"""S3 file tracker: keeps the DynamoDB table `files` equal to a bucket's objects."""

__version__ = "0.1.0"
