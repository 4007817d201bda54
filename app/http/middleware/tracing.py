"""The server span: one per request, continuing the caller's trace (W3C `traceparent`).

Installed only when traces are on. Pure ASGI, like the request log: the span lasts until the
last byte of a streamed response has been sent, and the request's log lines carry its ids.
"""

from collections.abc import Callable
from typing import Final

import structlog
from opentelemetry import context, propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.middleware.request_log import PROBE_PATHS

_KNOWN_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"}
)


class _AsgiHeaders(Getter[Scope]):
    """The propagator's view of a request's headers, read straight from the ASGI scope."""

    def get(self, carrier: Scope, key: str) -> list[str] | None:
        name = key.lower().encode("latin-1")
        values = [value.decode("latin-1") for header, value in carrier["headers"] if header == name]
        return values or None

    def keys(self, carrier: Scope) -> list[str]:
        return [header.decode("latin-1") for header, _ in carrier["headers"]]


_HEADERS: Final = _AsgiHeaders()


class ServerSpanMiddleware:
    """Must sit inside the request log, which clears the log context each request: the ids bound
    here then reach every line of the request, its summary line included."""

    def __init__(self, app: ASGIApp, tracer: Callable[[], trace.Tracer]) -> None:
        self.app = app
        # A getter: the middleware is built before the lifespan has made the worker's tracer.
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Probes and scrapes, every few seconds, would bury the requests' traces (and cost).
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in _KNOWN_METHODS else "_OTHER"
        name = method if method != "_OTHER" else "HTTP"
        parent = propagate.extract(scope, getter=_HEADERS)
        span = self.tracer().start_span(
            name,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": scope["path"],
                "url.scheme": scope["scheme"],
                "network.protocol.version": scope["http_version"],
            },
        )
        token = context.attach(trace.set_span_in_context(span, parent))
        ids = span.get_span_context()
        structlog.contextvars.bind_contextvars(
            trace_id=format_trace_id(ids.trace_id), span_id=format_span_id(ids.span_id)
        )
        status: int | None = None

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        error: str | None = None
        try:
            await self.app(scope, receive, send_noting_status)
        except BaseException as exc:
            error = type(exc).__qualname__
            raise
        finally:
            # Named once routed, by its template (low cardinality): `POST /chat`.
            if (route := getattr(scope.get("route"), "path", None)) is not None:
                span.set_attribute("http.route", route)
                span.update_name(f"{name} {route}")
            if status is not None:
                span.set_attribute("http.response.status_code", status)
                if error is None and status >= 500:
                    error = str(status)
            if error is not None:
                span.set_attribute("error.type", error)
                span.set_status(StatusCode.ERROR)
            span.end()
            context.detach(token)
