"""Each call's path, named once: the routers, the API-key gate's permissions and the hot path
use these (the health paths are `api.routes.health`'s), and the HTTP methods the service
knows."""

SAVE_TRANSACTION = "/save-transaction/{flight_route}"
GET_TRANSACTION = "/get-transaction/{flight_route}"
ROUTE_TRANSACTIONS = "/v1/routes/{route}/transactions"
TRANSACTIONS = "/v1/transactions"
USAGE = "/v1/usage"

# The methods a route may answer, HEAD wherever GET is (`api.head`), and OPTIONS, never routed.
# They are the metrics' method labels too; any other method is counted as OTHER.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
