"""Logging: structlog JSON lines on stdout, and one summary line per request.

Every stdlib logger (uvicorn's, gunicorn's, the SDK's) goes through the same renderer, so an
operator's log pipeline sees one format. Each line of a request carries its request id.
"""

import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Mapping, MutableMapping
from contextvars import ContextVar
from time import perf_counter
from typing import Any, Protocol

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Probes and scrapes, every few seconds: a summary line each would drown the requests' lines.
_UNLOGGED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

log = structlog.get_logger("app.request")


def _redactor(secret: str) -> Callable[[Any, str, Any], Any]:
    def redact(_: Any, __: str, line: Any) -> Any:
        if secret and isinstance(line, str) and secret in line:
            return line.replace(secret, "[REDACTED]")
        return line

    return redact


class _NamedWriteLogger(structlog.WriteLogger):
    """structlog's plain writer, carrying the name given to `get_logger` for `add_logger_name`."""

    def __init__(self, name: str) -> None:
        super().__init__(sys.stdout)
        self.name = name


def _named_writer(*args: Any) -> _NamedWriteLogger:
    return _NamedWriteLogger(args[0] if args else "app")


def _json(event: Any, **_: Any) -> str:
    return orjson.dumps(event, default=repr).decode()


def configure_logging(level: str = "INFO", fmt: str = "auto", secret: str = "") -> None:
    """structlog for the app's own lines, and every stdlib logger through the same renderer.

    The app's lines skip the stdlib logging machinery (they are on every request's path, where
    it measured at a tenth of a non-streaming request's CPU); both write whole lines to stdout.
    `secret` (the API key) is scrubbed from every rendered line as a last line of defence.
    """
    console = fmt == "console" or (fmt == "auto" and sys.stdout.isatty())
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    tail: list[structlog.types.Processor] = [
        *([] if console else [structlog.processors.dict_tracebacks]),
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer(serializer=_json),
        _redactor(secret),
    ]

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name, timestamper],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "gunicorn", "gunicorn.error", "gunicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # The summary line below replaces uvicorn's access log, which knows no request id.
    logging.getLogger("uvicorn.access").handlers.clear()
    logging.getLogger("uvicorn.access").propagate = False
    logging.getLogger("uvicorn.access").disabled = True
    logging.captureWarnings(True)
    # The SDK says when a model nears its end of life with a DeprecationWarning, which Python
    # hides outside __main__: shown once per worker, it tells operators to change CHAT_MODEL
    # before requests start failing.
    warnings.filterwarnings("default", message=r"The model .* is deprecated", category=DeprecationWarning)
    # The SDK's transport logs every upstream call at INFO; the summary line already has it.
    logging.getLogger("httpx2").setLevel(logging.WARNING)

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.stdlib.add_logger_name,
            timestamper,
            *tail,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=_named_writer,
        cache_logger_on_first_use=True,
    )


class SummarySource(Protocol):
    def log_fields(self) -> dict[str, Any]: ...


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

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            fields: MutableMapping[str, Any] = {}
            for source in sources:
                fields.update(source.log_fields())
            if scope["path"] not in _UNLOGGED_PATHS:
                log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round((perf_counter() - started) * 1000, 1),
                    **fields,
                )
                if self.on_summary is not None:
                    self.on_summary(scope["path"], status, perf_counter() - started, fields)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = str(value.decode("latin-1"))
            if _VALID_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return os.urandom(16).hex()  # as random as uuid4().hex, at a fraction of its cost
