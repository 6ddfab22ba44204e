"""The read side: the API's routes, the S3-like listing and its page tokens."""
