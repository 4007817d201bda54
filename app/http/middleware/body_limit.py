"""Refuses request bodies over the configured size before they are read into memory.

Why not FastAPI's own `FastAPI(max_body_size=...)` (Starlette's RequestBodyLimitMiddleware):
tried on FastAPI 0.165, it cannot keep the 413 contract. A body over the limit on /chat, on a
route that answers 415 first, or on an unknown path, was answered each time with a plain-text
"Content Too Large" and no X-Request-ID: FastAPI installs the limit outside every user middleware
(just inside ServerErrorMiddleware), and Starlette's responder sends that 413 itself, so neither
the error shape, nor the request log, nor CORS sees it.
"""

from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.errors import error_body


def _too_large(limit: int) -> dict[str, dict[str, str]]:
    return error_body("request_too_large", f"The request body is larger than {limit} bytes.")


class BodySizeLimitMiddleware:
    """Pure ASGI: a declared Content-Length over the limit is refused at once; a chunked body is
    counted as it arrives and refused as soon as it passes the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                response = JSONResponse(
                    _too_large(self.max_bytes), status_code=413, headers={"Connection": "close"}
                )
                await response(scope, receive, send)
                return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI lets an HTTPException from body reading through to its handler.
                    raise HTTPException(413, detail=_too_large(self.max_bytes)["detail"])
            return message

        await self.app(scope, counted_receive, send)
