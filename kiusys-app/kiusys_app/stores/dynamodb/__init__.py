"""The DynamoDB store: the store's calls (`store`), its per-route batches (`coalescer`), the
wire that signs and sends each attempt (`wire`), what DynamoDB's errors mean (`errors`), the
retries and their budget (`retry`), the items of a route across regions (`regions`), and the
AWS credentials (`credentials`). Outside this package only the factory and the tests use it.
"""

from kiusys_app.stores.dynamodb.store import DynamoDBStore

__all__ = ["DynamoDBStore"]
