"""Once the worker is draining, every response closes its connection behind it."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.streaming.shutdown import Draining


class CloseWhenDrainingMiddleware:
    """Pure ASGI. A load balancer reuses its keep-alive connections to a replica; if the replica
    closed an idle one just as a request was sent on it, the request would be lost (a POST is
    not resent). Answering `Connection: close` while draining lets the balancer drop each
    connection itself, after a complete response."""

    def __init__(self, app: ASGIApp, draining: Draining) -> None:
        self.app = app
        self.draining = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.draining.started.is_set():
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, send_closing)
