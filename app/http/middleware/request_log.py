"""The request middleware: a request id on every log line, and one summary line per request."""

import asyncio
import contextvars
import os
import re
from collections.abc import Callable, Mapping, MutableMapping
from contextvars import ContextVar
from time import perf_counter
from typing import Any, Protocol

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# Probes and scrapes, every few seconds: a summary line each would drown the requests' lines.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

log = structlog.get_logger("app.request")


class SummarySource(Protocol):
    def log_fields(self) -> dict[str, Any]: ...

    def still_running(self) -> "asyncio.Future[None] | None":
        """What the line waits for when the work outlives the response (a resumable answer)."""
        ...


_summary_sources: ContextVar[list[SummarySource] | None] = ContextVar("summary_sources", default=None)


def add_to_request_summary(source: SummarySource) -> None:
    """Adds `source.log_fields()`, read when the response has been sent, to the summary line."""
    if (sources := _summary_sources.get()) is not None:
        sources.append(source)


class RequestLogMiddleware:
    """Pure ASGI (a BaseHTTPMiddleware would buffer and wrap streaming bodies).

    Binds a request id to every log line of the request, echoes it in `X-Request-ID`, and writes
    one summary line when the response is over, streamed or not.
    """

    def __init__(
        self, app: ASGIApp, on_summary: Callable[[str, int, float, Mapping[str, Any]], None] | None = None
    ) -> None:
        self.app = app
        self.on_summary = on_summary  # (path, status, seconds, summary fields): the metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        sources: list[SummarySource] = []
        _summary_sources.set(sources)
        header = (REQUEST_ID_HEADER.encode(), request_id.encode())
        status = 500
        started = perf_counter()

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        def write_summary(*_: object) -> None:
            fields: MutableMapping[str, Any] = {}
            for source in sources:
                fields.update(source.log_fields())
            path = _loggable_path(scope)
            if path not in PROBE_PATHS:
                log.info(
                    "request",
                    method=scope["method"],
                    path=path,
                    status=status,
                    duration_ms=round((perf_counter() - started) * 1000, 1),
                    **fields,
                )
                if self.on_summary is not None:
                    self.on_summary(path, status, perf_counter() - started, fields)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            running = [future for source in sources if (future := source.still_running()) is not None]
            if running:
                # The answer goes on without this response: its line, with this request's log
                # context, when it ends.
                running[0].add_done_callback(write_summary, context=contextvars.copy_context())
            else:
                write_summary()


def _loggable_path(scope: Scope) -> str:
    """The route's template where the path holds ids (`/chat/streams/{stream_id}`): those ids are
    secrets, kept out of the logs."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str) and "{" in template:
        return template
    return str(scope["path"])


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = str(value.decode("latin-1"))
            if _VALID_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return os.urandom(16).hex()  # as random as uuid4().hex, at a fraction of its cost
