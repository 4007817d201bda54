"""When and how long to wait before asking Anthropic again."""

from collections.abc import Callable

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from app.chat.errors import UpstreamError
from app.config import Settings

log = structlog.get_logger(__name__)


def _upstream_error(state: RetryCallState) -> UpstreamError | None:
    exc = state.outcome.exception() if state.outcome else None
    return exc if isinstance(exc, UpstreamError) else None


class _stop_if_asked_to_wait_over(stop_base):  # tenacity's naming
    def __init__(self, ceiling: float) -> None:
        self.ceiling = ceiling

    def __call__(self, retry_state: RetryCallState) -> bool:
        error = _upstream_error(retry_state)
        return bool(error and error.retry_after is not None and error.retry_after > self.ceiling)


def retrying(
    settings: Settings, on_retry: Callable[[], None], may_retry: Callable[[], bool]
) -> AsyncRetrying:
    """One request's attempts: exponential backoff with jitter, except that the server's
    `retry-after` wins. One per request, before the answer's start and after it alike, so the
    attempts and the backoff go on from where they were.

    A `retry-after` longer than the ceiling stops at once: sleeping that long would hold the
    client for nothing, so it gets the status and `Retry-After` to come back later instead.
    `may_retry` is asked at each failure: a stream that has shown the client some of the answer
    cannot take it back.
    """
    backoff = wait_exponential_jitter(
        multiplier=settings.retry_initial_wait,
        max=settings.retry_max_wait,
        jitter=settings.retry_initial_wait,
    )

    def retryable(exc: BaseException) -> bool:
        return isinstance(exc, UpstreamError) and exc.retryable and may_retry()

    def wait(state: RetryCallState) -> float:
        error = _upstream_error(state)
        if error is not None and error.retry_after is not None:
            return error.retry_after
        return backoff(state)

    def before_sleep(state: RetryCallState) -> None:
        on_retry()
        error = _upstream_error(state)
        log.warning(
            "upstream_retry",
            attempt=state.attempt_number,
            error_type=error.kind.value if error else None,
            error=error.message if error else None,
            upstream_request_id=error.request_id if error else None,
            wait_s=round(state.upcoming_sleep, 3),
        )

    return AsyncRetrying(
        retry=retry_if_exception(retryable),
        stop=stop_after_attempt(settings.retry_attempts)
        | _stop_if_asked_to_wait_over(settings.retry_max_wait),
        wait=wait,
        before_sleep=before_sleep,
        reraise=True,
    )
