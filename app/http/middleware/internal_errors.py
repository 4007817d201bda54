"""Any exception that escapes a handler: a JSON 500 in the service's error shape, logged once.

Starlette hands such exceptions to its ServerErrorMiddleware, which sits outside every other
middleware: its plain-text 500 carries no request id and no CORS headers, and the exception is
raised again, so the server logs it a second time. This middleware sits inside the others
instead (CORS, body limit, request log), so the 500 gets both headers, and it ends the
exception's journey here, with one log line that has the traceback.
"""

from typing import Any

import structlog
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.errors import error_body
from app.http.middleware.request_log import add_to_request_summary
from app.observability.summary import INTERNAL_ERROR

log = structlog.get_logger(__name__)


class _Failed:
    """For a route with no chat summary of its own (a chat route's is already internal_error)."""

    def log_fields(self) -> dict[str, Any]:
        return {"outcome": INTERNAL_ERROR, "error_type": INTERNAL_ERROR}

    def still_running(self) -> None:
        return None


class InternalErrorMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception:
            log.exception(INTERNAL_ERROR, response_started=started)
            add_to_request_summary(_Failed())
            if started:
                # Too late for a status: the server closes the connection, so the client sees
                # an incomplete response rather than one that looks finished.
                return
            response = JSONResponse(
                error_body(INTERNAL_ERROR, "The service failed unexpectedly; the request id is in the logs."),
                status_code=500,
            )
            await response(scope, receive, send)
