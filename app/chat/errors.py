"""The service's failures, as the HTTP side sees them: a kind each, mapped to a status in one place."""

from enum import StrEnum


class ErrorKind(StrEnum):
    BAD_REQUEST = "invalid_request_error"
    AUTHENTICATION = "authentication_error"
    PERMISSION = "permission_error"
    MODEL_NOT_FOUND = "model_not_found"
    CONFIGURED_MODEL_NOT_FOUND = "configured_model_not_found"
    REQUEST_TOO_LARGE = "request_too_large"
    CONTEXT_WINDOW_EXCEEDED = "context_window_exceeded"
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
        status: int | None = None,
        details: dict[str, int | None] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.request_id = request_id
        self.status = status  # Anthropic's HTTP status, when the failure came with one
        # Figures a client can act on, beside `type` and `message` in the error body
        # (context_window_exceeded: input_tokens, context_window).
        self.details = details

    @property
    def model_unavailable(self) -> bool:
        """The model could not answer for a reason another model need not share: overloaded,
        a server error, a time-out (a 408 included) or a broken connection. A 4xx other than
        those says the request itself is wrong, which another model would refuse all the same."""
        if self.kind in _UNAVAILABLE_KINDS:
            return True
        return self.kind is ErrorKind.UPSTREAM and (self.status is None or self.status >= 500)


_UNAVAILABLE_KINDS = frozenset({ErrorKind.OVERLOADED, ErrorKind.CONNECTION, ErrorKind.TIMEOUT})


class ClientDisconnected(Exception):
    """The client closed the connection while its answer was being worked on."""
