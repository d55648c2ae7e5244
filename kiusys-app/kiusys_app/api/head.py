"""HEAD is answered as GET would be, without the body, wherever GET is."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """The app sees a GET on this very scope, so that what the gate and the router add to it
    (the client, the route) reach the access log and the metrics; the method is HEAD again
    once the app has answered. The server keeps its own view of HEAD: no body goes out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        scope["method"] = "GET"
        try:
            await self.app(scope, receive, _without_body(send))
        finally:
            scope["method"] = "HEAD"


def _without_body(send: Send) -> Send:
    async def send_head(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return send_head
