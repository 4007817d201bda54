"""The app factory and its lifespan (one Anthropic client per process): wiring only."""

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import TYPE_CHECKING

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from opentelemetry.trace import Tracer
from pydantic import ValidationError

from app.config import Settings, get_settings
from app.http.errors import install_error_handlers
from app.http.middleware.body_limit import BodySizeLimitMiddleware
from app.http.middleware.drain import CloseWhenDrainingMiddleware
from app.http.middleware.internal_errors import InternalErrorMiddleware
from app.http.middleware.request_log import RequestLogMiddleware
from app.http.middleware.tracing import ServerSpanMiddleware
from app.http.openapi import document_configured_limits
from app.http.routes import chat, chat_ui, count_tokens, health, metrics, resume
from app.http.routes.demo import install_demo_page
from app.observability.log import configure_logging
from app.observability.metrics import MODEL_RETIREMENTS, record_request, set_build_info
from app.resumable.resumption import Resumption
from app.resumable.store import ResumeStore
from app.streaming.response import OpenStreams
from app.streaming.shutdown import Draining
from app.upstream.client import anthropic_client
from app.upstream.model_catalog import ModelCatalog
from app.upstream.model_check import watch_models
from app.upstream.stream import Upstream

if TYPE_CHECKING:
    from app.observability.tracing import Tracing

log = structlog.get_logger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    if settings is None:
        settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format, settings.anthropic_api_key.get_secret_value())
    draining = Draining(settings.shutdown_grace, settings.drain_pause)
    tracing: Tracing | None = None  # made per worker, in the lifespan; None: traces are off

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal tracing
        if (traces_url := settings.otlp_traces_url) is not None:
            # Imported only when on: the SDK, its exporter and protobuf are 4 MB of a worker.
            from app.observability.tracing import Tracing

            tracing = Tracing(traces_url, settings.otel_service_name, app.version)
        client = anthropic_client(settings)
        app.state.settings = settings
        wait_at_most = min(settings.connect_timeout, 5.0)
        catalog = ModelCatalog(client, wait_at_most)
        app.state.upstream = Upstream(client, settings, tracing.tracer if tracing else None, catalog)
        draining.watch_signals()
        app.state.draining = draining
        app.state.open_streams = OpenStreams(settings.ping_interval, draining)
        app.state.open_streams.start()
        resumption = None
        if settings.redis_url is not None:
            # Per worker, after the fork: a Redis connection pool is not shared across processes.
            store = ResumeStore(settings.redis_url.get_secret_value(), settings.resume_ttl)
            resumption = Resumption(store, settings.resume_grace, draining)
            resumption.start()
        app.state.resumption = resumption
        set_build_info(app.version, settings.model)
        # Start-up's objects (FastAPI, pydantic, the SDK's types: about 200,000) never die, and
        # each full collection walked them all: an 80 ms stall of every stream in the worker.
        gc.collect()
        gc.freeze()
        log.info(
            "started", model=settings.model, base_url=str(client.base_url), resumable=resumption is not None
        )
        # In the background: start-up (and the health check) does not wait for Anthropic.
        model_check = asyncio.ensure_future(
            watch_models(client, settings, MODEL_RETIREMENTS.update, wait_at_most, catalog)
        )
        try:
            yield
        finally:
            model_check.cancel()
            await asyncio.wait([model_check])  # ended, whether by this or by a failure of its own
            await catalog.aclose()
            if resumption is not None:
                await resumption.aclose()
            await app.state.open_streams.aclose()
            await client.close()
            if tracing is not None:
                # Blocks the loop for at most a few seconds, once nothing is left to serve.
                tracing.shutdown()
            log.info("stopped")

    app = FastAPI(
        title="chat-service",
        summary="Real-time access to Claude for the web frontend.",
        version="0.1.0",
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry would switch itself on whenever a global tracer provider
        # appears (and, with FASTAPI_OTEL_AUTO_CONFIGURE, export to the same OTEL_* endpoint):
        # a second server span per request, plus spans per dependency and serialisation, whose
        # "endpoint" span ends when a stream's response object is returned, before the stream.
        # The service's own span (app/http/middleware/tracing.py) is the one server span.
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
    )
    app.include_router(chat.router)
    app.include_router(chat_ui.router)
    app.include_router(count_tokens.router)
    app.include_router(resume.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    if settings.demo_page:
        install_demo_page(app)
    install_error_handlers(app)
    document_configured_limits(app, settings)
    # The last added is the outermost. Errors made by the inner two (a 500, a 413) pass through
    # CORS, so that a browser can read them, and through the request log (X-Request-ID).
    app.add_middleware(InternalErrorMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["POST", "GET"],
            # Last-Event-ID: a page on another origin resuming an answer with fetch.
            allow_headers=["Content-Type", "X-Request-ID", "Last-Event-ID", settings.end_user_header],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(CloseWhenDrainingMiddleware, draining=draining)
    if settings.otlp_traces_url is not None:
        # Inside the request log (which clears the log context first), around everything else.
        app.add_middleware(ServerSpanMiddleware, tracer=lambda: _tracer_of(tracing))
    app.add_middleware(RequestLogMiddleware, on_summary=record_request)
    return app


def _tracer_of(tracing: "Tracing | None") -> Tracer:
    assert tracing is not None, "a request before the lifespan started"
    return tracing.tracer


def settings_or_exit() -> Settings:
    """The settings, or a clear log line and exit status 1 if they are incomplete or invalid."""
    try:
        return get_settings()
    except ValidationError as exc:
        configure_logging()
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper() or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        if any(error["loc"] == ("ANTHROPIC_API_KEY",) for error in exc.errors()):
            problems += " (set ANTHROPIC_API_KEY in the environment or in .env)"
        log.error("invalid_configuration", problems=problems)
        raise SystemExit(1) from None


@cache
def _default_app() -> FastAPI:
    return create_app()


def __getattr__(name: str) -> FastAPI:
    # `app.main:app` is built on first access rather than at import, so that importing this
    # module (tests, tools) needs no configuration in the environment.
    if name == "app":
        return _default_app()
    raise AttributeError(name)
