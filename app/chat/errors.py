"""The service's failures, as the HTTP side sees them: a kind each, mapped to a status in one place."""

from enum import StrEnum


class ErrorKind(StrEnum):
    BAD_REQUEST = "invalid_request_error"
    AUTHENTICATION = "authentication_error"
    PERMISSION = "permission_error"
    MODEL_NOT_FOUND = "model_not_found"
    CONFIGURED_MODEL_NOT_FOUND = "configured_model_not_found"
    REQUEST_TOO_LARGE = "request_too_large"
    RATE_LIMITED = "rate_limit_error"
    OVERLOADED = "overloaded_error"
    UPSTREAM = "upstream_error"
    CONNECTION = "upstream_connection_error"
    TIMEOUT = "upstream_timeout"


class UpstreamError(Exception):
    """Anthropic could not answer. `kind` says why; the HTTP layer maps it to a status."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.request_id = request_id


class ClientDisconnected(Exception):
    """The client closed the connection while its answer was being worked on."""
