"""The one place where service errors become HTTP statuses and bodies."""

import json
import math
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.responses import Response

from app.chat.errors import ClientDisconnected, ErrorKind, UpstreamError
from app.chat.params import InvalidOptions
from app.http.schemas.chat import ErrorResponse
from app.resumable.errors import ResumeUnavailable, StreamNotFound

STATUS_BY_KIND = {
    ErrorKind.BAD_REQUEST: 400,
    ErrorKind.AUTHENTICATION: 401,
    ErrorKind.PERMISSION: 403,
    ErrorKind.MODEL_NOT_FOUND: 400,
    ErrorKind.CONFIGURED_MODEL_NOT_FOUND: 502,
    ErrorKind.REQUEST_TOO_LARGE: 413,
    ErrorKind.CONTEXT_WINDOW_EXCEEDED: 400,
    ErrorKind.RATE_LIMITED: 429,
    ErrorKind.OVERLOADED: 503,
    ErrorKind.UPSTREAM: 502,
    ErrorKind.CONNECTION: 502,
    ErrorKind.TIMEOUT: 504,
}

# What each status of a chat route means, for /docs: the statuses of the table above, and the
# service's own refusals (400 unparsable body, 413 body limit, 415, 500).
MEANING_OF_STATUS = {
    400: "Anthropic rejected the request, the requested model does not exist (`model_not_found`), "
    "the conversation does not fit the model's context window (`context_window_exceeded`, with "
    "`input_tokens` and `context_window`), or the body is not valid JSON (`bad_request`).",
    401: "Anthropic rejected the service's API key.",
    403: "The API key may not use this model or feature.",
    413: "The request body is over the size limit, or the conversation too large for Anthropic.",
    415: "The body is not sent as JSON.",
    429: "Rate-limited by Anthropic after retries; see `Retry-After`.",
    500: "The service failed unexpectedly (`internal_error`); the request id is in its logs.",
    502: "Anthropic failed, could not be reached, or the configured model is retired.",
    503: "Anthropic is overloaded after retries; see `Retry-After`.",
    504: "Anthropic did not answer in time.",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": MEANING_OF_STATUS[status]}
    for status in sorted(set(STATUS_BY_KIND.values()) | {400, 413, 415, 500})
}

# Statuses after which the client should come back later; it is told when.
_COME_BACK_LATER = {429, 503}
DEFAULT_RETRY_AFTER_S = 5


def error_body(
    error_type: str, message: str, details: dict[str, int | None] | None = None
) -> dict[str, dict[str, Any]]:
    return {"detail": {"type": error_type, "message": message, **(details or {})}}


def upstream_error_response(error: UpstreamError) -> JSONResponse:
    status = STATUS_BY_KIND[error.kind]
    headers = {}
    if status in _COME_BACK_LATER:
        wait = error.retry_after if error.retry_after is not None else DEFAULT_RETRY_AFTER_S
        headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return JSONResponse(
        error_body(error.kind.value, error.message, error.details), status_code=status, headers=headers
    )


async def _handle_upstream_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UpstreamError)
    return upstream_error_response(exc)


async def _handle_http_error(_: Request, exc: Exception) -> JSONResponse:
    """Starlette's and FastAPI's own errors (unparsable body, 404, 405) in the same shape."""
    assert isinstance(exc, HTTPException)
    if isinstance(exc.detail, dict):
        body = {"detail": exc.detail}
    else:
        error_type = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
        body = error_body(error_type, str(exc.detail))
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


# A 422 says where the input is wrong; echoing a 600 KB message back says nothing more.
MAX_ECHOED_INPUT = 200


def _short_input(error: dict[str, Any]) -> dict[str, Any]:
    value = error.get("input")
    if isinstance(value, str):
        if len(value) > MAX_ECHOED_INPUT:
            return {**error, "input": value[:MAX_ECHOED_INPUT] + "…"}
    # json, not orjson: a JSON body may hold integers beyond 64 bits, which orjson refuses.
    elif isinstance(value, dict | list) and len(json.dumps(value, default=str)) > MAX_ECHOED_INPUT:
        return {key: item for key, item in error.items() if key != "input"}
    return error


def _validation_error(errors: Sequence[dict[str, Any]]) -> JSONResponse:
    """FastAPI's own 422 list (clients parse it), with long inputs cut short."""
    return JSONResponse(
        {"detail": jsonable_encoder([_short_input(error) for error in errors])}, status_code=422
    )


async def _handle_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _validation_error(exc.errors())


async def _handle_invalid_options(_: Request, exc: Exception) -> JSONResponse:
    """Limits of this deployment (allowed models, the max_tokens ceiling): a 422 like the schema's."""
    assert isinstance(exc, InvalidOptions)
    return _validation_error(
        [
            {
                "type": problem.type,
                "loc": ("body", problem.option),
                "msg": problem.message,
                "input": problem.input,
            }
            | ({"ctx": problem.ctx} if problem.ctx else {})
            for problem in exc.problems
        ]
    )


# nginx's "client closed request": nobody reads it, but the summary line shows it.
CLIENT_CLOSED_REQUEST = 499


async def _handle_client_disconnected(_: Request, exc: Exception) -> Response:
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _handle_stream_not_found(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        error_body("stream_not_found", "No answer under this id: it never was, or it has expired."),
        status_code=404,
    )


async def _handle_resume_unavailable(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        error_body("resume_unavailable", "Answers cannot be resumed or stopped right now; try again."),
        status_code=503,
        headers={"Retry-After": str(DEFAULT_RETRY_AFTER_S)},
    )


# The statuses of the resume and stop routes, for /docs.
RESUME_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No answer under this id (`stream_not_found`)."},
    503: {
        "model": ErrorResponse,
        "description": "Redis, where answers are kept, cannot be reached (`resume_unavailable`).",
    },
}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StreamNotFound, _handle_stream_not_found)
    app.add_exception_handler(ResumeUnavailable, _handle_resume_unavailable)
    app.add_exception_handler(ClientDisconnected, _handle_client_disconnected)
    app.add_exception_handler(UpstreamError, _handle_upstream_error)
    app.add_exception_handler(HTTPException, _handle_http_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(InvalidOptions, _handle_invalid_options)
