"""Logging set-up: structlog JSON lines on stdout.

Every stdlib logger (uvicorn's, gunicorn's, the SDK's) goes through the same renderer, so an
operator's log pipeline sees one format. The request middleware (app/http/middleware/request_log.py) binds
a request id to each line of a request and writes one summary line per request.
"""

import logging
import sys
import warnings
from collections.abc import Callable
from typing import Any

import orjson
import structlog

# Anthropic's keys are over 100 characters. A shorter value (a placeholder such as "x" in a test
# set-up) is no key, and scrubbing it would mangle ordinary words ("Worker e[REDACTED]iting").
MIN_SECRET_LENGTH = 16


def _redactor(secret: str) -> Callable[[Any, str, Any], Any]:
    # The key as it was given, and without the whitespace a pasted key often carries: a line
    # escapes a trailing newline (repr, then JSON), so only the key's core is found verbatim.
    secrets = sorted(
        {value for value in (secret, secret.strip()) if len(value) >= MIN_SECRET_LENGTH}, key=len
    )

    def redact(_: Any, __: str, line: Any) -> Any:
        if isinstance(line, str):
            for value in reversed(secrets):
                if value in line:
                    line = line.replace(value, "[REDACTED]")
        return line

    return redact


# Tracebacks without their frames' local variables: those hold request bodies (the prompt) and
# the SDK's request options, whose headers carry the API key.
_tracebacks = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


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
        *([] if console else [_tracebacks]),
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        if console
        else structlog.processors.JSONRenderer(serializer=_json),
        _redactor(secret),
    ]

    formatter = structlog.stdlib.ProcessorFormatter(
        # The request's context (request id, trace and span ids) on stdlib lines too: the SDK's,
        # a warning's, uvicorn's error lines written while serving a request.
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            timestamper,
        ],
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
    # The SDK's DEBUG lines print each request's options, the prompt included.
    logging.getLogger("anthropic").setLevel(max(logging.INFO, logging.getLevelNamesMapping()[level]))

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
