"""The one status table: every error kind has a status, every status is documented, and clients are
told when to come back."""

import json

import anthropic
import httpx2
import pytest

from app.chat.errors import ErrorKind, UpstreamError
from app.chat.params import ModelChoice
from app.http.errors import ERROR_RESPONSES, MEANING_OF_STATUS, STATUS_BY_KIND, upstream_error_response
from app.upstream.sdk_errors import from_sdk_error


def test_every_error_kind_has_a_status() -> None:
    assert set(STATUS_BY_KIND) == set(ErrorKind)


def test_every_status_is_documented_and_in_the_openapi_responses() -> None:
    for status in STATUS_BY_KIND.values():
        assert MEANING_OF_STATUS[status]
        assert ERROR_RESPONSES[status]["description"] == MEANING_OF_STATUS[status]
    assert {400, 413, 415, 500} <= set(ERROR_RESPONSES)  # the service's own refusals


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_the_response_has_the_kinds_status_and_body(kind: ErrorKind) -> None:
    response = upstream_error_response(UpstreamError(kind, "It failed."))
    assert response.status_code == STATUS_BY_KIND[kind]
    assert json.loads(response.body) == {"detail": {"type": kind.value, "message": "It failed."}}
    assert ("retry-after" in response.headers) is (response.status_code in {429, 503})


@pytest.mark.parametrize("kind", [ErrorKind.RATE_LIMITED, ErrorKind.OVERLOADED])
@pytest.mark.parametrize(
    ("retry_after", "header"),
    [(None, "5"), (0.0, "1"), (0.2, "1"), (1.0, "1"), (2.1, "3"), (30.0, "30")],
)
def test_retry_after_is_whole_seconds_at_least_one_five_by_default(
    kind: ErrorKind, retry_after: float | None, header: str
) -> None:
    response = upstream_error_response(UpstreamError(kind, "Later.", retry_after=retry_after))
    assert response.headers["retry-after"] == header


def test_no_retry_after_on_other_statuses_even_when_upstream_gave_one() -> None:
    response = upstream_error_response(UpstreamError(ErrorKind.UPSTREAM, "Failed.", retry_after=3))
    assert response.status_code == 502
    assert "retry-after" not in response.headers


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_a_429_whose_retry_after_is_not_a_number_still_answers_429(value: str) -> None:
    request = httpx2.Request("POST", "https://api.anthropic.com/v1/messages")
    response = httpx2.Response(429, headers={"retry-after": value}, request=request)
    sdk_error = anthropic.RateLimitError("Error code: 429", response=response, body=None)
    error = from_sdk_error(sdk_error, model=ModelChoice("claude-sonnet-5-5", configured=True))
    assert upstream_error_response(error).status_code == 429


def test_details_go_beside_the_type_and_message() -> None:
    error = UpstreamError(
        ErrorKind.CONTEXT_WINDOW_EXCEEDED, "Too long.", details={"input_tokens": 3001, "context_window": 2000}
    )
    response = upstream_error_response(error)
    assert response.status_code == 400
    assert json.loads(response.body) == {
        "detail": {
            "type": "context_window_exceeded",
            "message": "Too long.",
            "input_tokens": 3001,
            "context_window": 2000,
        }
    }
