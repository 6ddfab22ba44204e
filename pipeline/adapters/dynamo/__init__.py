"""DynamoDB adapters: the only modules that call DynamoDB."""
