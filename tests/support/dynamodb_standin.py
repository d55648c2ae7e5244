"""A DynamoDB stand-in: a raw ASGI app that answers every call at once, over real HTTP.

By default it answers each operation with the smallest successful body DynamoDB would send, so
that a benchmark measures only the caller's own cost. A test can make it answer every call
with an error instead, as DynamoDB's JSON protocol shapes them (`__type` and
`x-amzn-ErrorType`), or as something that is not DynamoDB at all (a proxy's HTML page):

    PUT /_standin/answer  {"status": 400, "error": "AccessDeniedException"}
    PUT /_standin/answer  {"status": 404, "content_type": "text/html", "body": "<h1>nope</h1>"}
    PUT /_standin/answer  {}            (back to instant success)

Usage: python -m tests.support.dynamodb_standin --port PORT
"""

import argparse
import json
from typing import Any

import uvicorn

CONTENT_TYPE = "application/x-amz-json-1.0"
CONTROL_PATH = "/_standin/answer"


def _success(operation: str, request: dict[str, Any]) -> dict[str, Any]:
    if operation == "UpdateItem":
        return {"Attributes": {"record": {"N": "1"}}}
    if operation == "BatchGetItem":
        return {"Responses": {table: [] for table in request.get("RequestItems", {})}}
    if operation == "Query":
        return {"Items": [], "Count": 0, "ScannedCount": 0}
    return {}  # GetItem of an absent item, PutItem, TransactWriteItems


class StandIn:
    def __init__(self) -> None:
        self.answer: dict[str, Any] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == CONTROL_PATH:
            self.answer = json.loads(body or b"{}")
            await self._send(send, 204, "application/json", b"")
            return
        if not self.answer:
            target = dict(scope["headers"]).get(b"x-amz-target", b"").decode()
            operation = target.rpartition(".")[2]
            payload = json.dumps(_success(operation, json.loads(body or b"{}"))).encode()
            await self._send(send, 200, CONTENT_TYPE, payload)
            return
        await self._send_configured(send)

    async def _send_configured(self, send: Any) -> None:
        answer = self.answer
        if "error" in answer:
            error = answer["error"]
            payload = json.dumps(
                {"__type": f"com.amazonaws.dynamodb.v20120810#{error}", "message": error}
            ).encode()
            extra = [(b"x-amzn-errortype", error.encode())]
            await self._send(send, answer.get("status", 400), CONTENT_TYPE, payload, extra)
            return
        await self._send(
            send,
            answer.get("status", 200),
            answer.get("content_type", "text/html"),
            answer.get("body", "").encode(),
        )

    @staticmethod
    async def _send(
        send: Any,
        status: int,
        content_type: str,
        body: bytes,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            *(extra or []),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


app = StandIn()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
