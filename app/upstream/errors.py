"""Anthropic's error bodies and `retry-after` headers, and streams it cannot read, as `UpstreamError`.

No SDK here: the decoder and the event reader, which use it, are pure. The SDK's and the
transport's exceptions are mapped in sdk_errors.py, on top of this."""

import email.utils
import math
import re
import time
from collections.abc import Mapping

from app.chat.errors import ErrorKind, UpstreamError
from app.chat.params import ModelChoice
from app.config import MODEL_SETTING

# Error types Anthropic sends in bodies and in-band `error` events.
_KIND_BY_ERROR_TYPE = {
    "invalid_request_error": ErrorKind.BAD_REQUEST,
    "authentication_error": ErrorKind.AUTHENTICATION,
    "permission_error": ErrorKind.PERMISSION,
    "not_found_error": ErrorKind.MODEL_NOT_FOUND,
    "request_too_large": ErrorKind.REQUEST_TOO_LARGE,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "overloaded_error": ErrorKind.OVERLOADED,
    "api_error": ErrorKind.UPSTREAM,
    "timeout_error": ErrorKind.TIMEOUT,
}
_RETRYABLE_KINDS = {ErrorKind.RATE_LIMITED, ErrorKind.OVERLOADED, ErrorKind.UPSTREAM}
_RETRYABLE_STATUSES = {408, 409, 429}


def _kind_for_status(status: int) -> ErrorKind:
    match status:
        case 400:
            return ErrorKind.BAD_REQUEST
        case 401:
            return ErrorKind.AUTHENTICATION
        case 403:
            return ErrorKind.PERMISSION
        case 404:
            return ErrorKind.MODEL_NOT_FOUND
        case 413:
            return ErrorKind.REQUEST_TOO_LARGE
        case 429:
            return ErrorKind.RATE_LIMITED
        case 529:
            return ErrorKind.OVERLOADED
        case 408 | 504:
            return ErrorKind.TIMEOUT
        case _:
            return ErrorKind.UPSTREAM


def _finite_number(value: str | None) -> float | None:
    # float() also reads "nan" and "inf", which no server means as a wait.
    try:
        number = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Anthropic's `retry-after-ms`, else `retry-after` (seconds or an HTTP date)."""
    if (millis := _finite_number(headers.get("retry-after-ms"))) is not None:
        return max(millis / 1000, 0.0)
    if (value := headers.get("retry-after")) is None:
        return None
    if (seconds := _finite_number(value)) is not None:
        return max(seconds, 0.0)
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(email.utils.mktime_tz(parsed) - time.time(), 0.0)


def _describe(kind: ErrorKind, upstream_message: str, model: ModelChoice) -> str:
    if kind is ErrorKind.CONFIGURED_MODEL_NOT_FOUND:
        return (
            f"The configured model {model.name!r} is unknown to Anthropic or retired "
            f"(upstream said: {upstream_message}). Set {model.setting} to a current model, "
            f"e.g. {model.setting}=claude-sonnet-5-5."
        )
    if kind is ErrorKind.MODEL_NOT_FOUND:
        return (
            f"The model {model.name!r} is unknown to Anthropic or retired "
            f"(upstream said: {upstream_message}). Choose another in the request's `model` "
            f"field, or leave it out to use the server's {MODEL_SETTING}."
        )
    if kind is ErrorKind.AUTHENTICATION:
        return "Anthropic rejected the service's API key (check ANTHROPIC_API_KEY)."
    return upstream_message


# Anthropic's words for a conversation over the model's context window, e.g.
# "prompt is too long: 201234 tokens > 200000 maximum"; the figures are read when present.
_PROMPT_TOO_LONG = re.compile(r"prompt is too long(?::\s*(\d+)\s*tokens\s*>\s*(\d+)\s*maximum)?", re.I)


def context_window_exceeded(
    message: str, *, status: int | None = None, request_id: str | None = None
) -> UpstreamError | None:
    """The error for a conversation that does not fit, if Anthropic's 400 says so."""
    if (match := _PROMPT_TOO_LONG.search(message)) is None:
        return None
    used, window = (int(figure) if figure else None for figure in match.groups())
    figures = f" ({used:,} tokens, the model takes {window:,})" if used and window else ""
    return UpstreamError(
        ErrorKind.CONTEXT_WINDOW_EXCEEDED,
        f"The conversation is too long for the model's context window{figures}: "
        "start a new conversation, or shorten this one.",
        status=status,
        request_id=request_id,
        details={"input_tokens": used, "context_window": window},
    )


def from_error_body(
    body: object, *, model: ModelChoice, status: int | None = None, request_id: str | None = None
) -> UpstreamError:
    """An error from Anthropic's JSON error shape, as an HTTP body or an in-band `error` event."""
    error = body.get("error") if isinstance(body, dict) else None
    error_type = error.get("type") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or not message:
        message = (
            f"Anthropic answered with an error (HTTP {status})." if status else "Anthropic sent an error."
        )
    if isinstance(error_type, str) and error_type in _KIND_BY_ERROR_TYPE:
        kind = _KIND_BY_ERROR_TYPE[error_type]
    else:
        kind = _kind_for_status(status) if status else ErrorKind.UPSTREAM
    if kind is ErrorKind.MODEL_NOT_FOUND and model.configured:
        kind = ErrorKind.CONFIGURED_MODEL_NOT_FOUND
    if kind is ErrorKind.BAD_REQUEST and (
        too_long := context_window_exceeded(message, status=status, request_id=request_id)
    ):
        return too_long
    retryable = kind in _RETRYABLE_KINDS or (
        status is not None and (status in _RETRYABLE_STATUSES or status >= 500)
    )
    return UpstreamError(
        kind, _describe(kind, message, model), retryable=retryable, request_id=request_id, status=status
    )


def malformed(what: str) -> UpstreamError:
    """Anthropic sent something this service cannot read: worth another attempt."""
    return UpstreamError(ErrorKind.UPSTREAM, f"Anthropic sent {what}.", retryable=True)


def ended_early() -> UpstreamError:
    return UpstreamError(
        ErrorKind.UPSTREAM, "Anthropic's stream ended before the answer did.", retryable=True
    )
