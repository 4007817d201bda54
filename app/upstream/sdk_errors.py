"""The SDK's and the transport's exceptions as `UpstreamError`."""

import anthropic
import httpx2

from app.chat.errors import ErrorKind, UpstreamError
from app.chat.params import ModelChoice
from app.upstream.errors import from_error_body, retry_after_seconds


def from_sdk_error(exc: anthropic.APIError, *, model: ModelChoice) -> UpstreamError:
    if isinstance(exc, anthropic.APITimeoutError):
        return UpstreamError(ErrorKind.TIMEOUT, "Anthropic did not answer in time.", retryable=True)
    if isinstance(exc, anthropic.APIConnectionError):
        return UpstreamError(ErrorKind.CONNECTION, "Could not connect to Anthropic.", retryable=True)
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        error = from_error_body(exc.body, model=model, status=status, request_id=exc.request_id)
        if status >= 500 and error.kind is ErrorKind.BAD_REQUEST:
            error.kind = ErrorKind.UPSTREAM
        headers = exc.response.headers
        error.retry_after = retry_after_seconds(headers)
        should_retry = headers.get("x-should-retry")
        if should_retry in ("true", "false"):
            error.retryable = should_retry == "true"
        return error
    return UpstreamError(ErrorKind.UPSTREAM, "Anthropic's answer could not be read.")


def from_transport_error(exc: httpx2.TransportError) -> UpstreamError:
    """A failure while reading a stream body, which the SDK leaves to the caller."""
    if isinstance(exc, httpx2.TimeoutException):
        return UpstreamError(
            ErrorKind.TIMEOUT, "Anthropic stopped sending for longer than the read time-out.", retryable=True
        )
    return UpstreamError(ErrorKind.CONNECTION, "The connection to Anthropic broke off.", retryable=True)
