"""How Anthropic's failures become `UpstreamError`s: kinds, retryability and the wait it asks for."""

import email.utils
import time

import anthropic
import httpx2
import pytest

from app.chat.errors import ErrorKind
from app.chat.params import ModelChoice
from app.upstream.errors import ended_early, from_error_body, malformed, retry_after_seconds
from app.upstream.sdk_errors import from_sdk_error, from_transport_error

CONFIGURED = ModelChoice("claude-sonnet-5-5", configured=True)
REQUESTED = ModelChoice("claude-3-5-sonnet-latest", configured=False)
URL = "https://api.anthropic.com/v1/messages"


def retry_after(**headers: str) -> float | None:
    return retry_after_seconds(
        httpx2.Headers({name.replace("_", "-"): value for name, value in headers.items()})
    )


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        pytest.param({"retry_after_ms": "1500", "retry_after": "9"}, 1.5, id="retry-after-ms wins"),
        pytest.param({"retry_after_ms": "250"}, 0.25, id="milliseconds"),
        pytest.param({"retry_after": "7"}, 7.0, id="seconds"),
        pytest.param({"retry_after": "2.5"}, 2.5, id="fractional seconds"),
        pytest.param({"retry_after_ms": "soon", "retry_after": "3"}, 3.0, id="bad ms falls back to seconds"),
        pytest.param({"retry_after": "soon"}, None, id="garbage"),
        pytest.param({"retry_after": ""}, None, id="empty"),
        pytest.param({"retry_after": "-3"}, 0.0, id="negative seconds"),
        pytest.param({"retry_after_ms": "-3000"}, 0.0, id="negative ms"),
        pytest.param({"retry_after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0, id="a date in the past"),
        pytest.param({}, None, id="none"),
        pytest.param({"x_ratelimit_reset": "5"}, None, id="other headers"),
    ],
)
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(**headers) == seconds


def test_retry_after_as_an_http_date_is_relative_to_now() -> None:
    date = email.utils.formatdate(time.time() + 10, usegmt=True)  # whole seconds: up to 1 s less
    seconds = retry_after(retry_after=date)
    assert seconds is not None
    assert 8.5 <= seconds <= 10.5


@pytest.mark.parametrize("value", ["nan", "inf", "infinity"])
@pytest.mark.parametrize("header", ["retry_after", "retry_after_ms"])
def test_retry_after_that_is_not_a_finite_number_is_garbage(header: str, value: str) -> None:
    assert retry_after(**{header: value}) is None


def body(error_type: str, message: str = "upstream says no") -> dict[str, object]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


@pytest.mark.parametrize(
    ("error_type", "status", "kind", "retryable"),
    [
        ("invalid_request_error", 400, ErrorKind.BAD_REQUEST, False),
        ("authentication_error", 401, ErrorKind.AUTHENTICATION, False),
        ("permission_error", 403, ErrorKind.PERMISSION, False),
        ("not_found_error", 404, ErrorKind.MODEL_NOT_FOUND, False),
        ("request_too_large", 413, ErrorKind.REQUEST_TOO_LARGE, False),
        ("rate_limit_error", 429, ErrorKind.RATE_LIMITED, True),
        ("api_error", 500, ErrorKind.UPSTREAM, True),
        ("overloaded_error", 529, ErrorKind.OVERLOADED, True),
        ("timeout_error", 504, ErrorKind.TIMEOUT, True),
        # In-band, without a status: only the kinds worth another attempt are retried.
        ("timeout_error", None, ErrorKind.TIMEOUT, False),
        ("overloaded_error", None, ErrorKind.OVERLOADED, True),
        # The type wins over the status; the status still makes a 5xx retryable.
        ("invalid_request_error", 500, ErrorKind.BAD_REQUEST, True),
        ("rate_limit_error", 400, ErrorKind.RATE_LIMITED, True),
        # An unknown type: the status says what it is.
        ("an_error_added_later", 400, ErrorKind.BAD_REQUEST, False),
        ("an_error_added_later", 401, ErrorKind.AUTHENTICATION, False),
        ("an_error_added_later", 403, ErrorKind.PERMISSION, False),
        ("an_error_added_later", 404, ErrorKind.MODEL_NOT_FOUND, False),
        ("an_error_added_later", 408, ErrorKind.TIMEOUT, True),
        ("an_error_added_later", 409, ErrorKind.UPSTREAM, True),
        ("an_error_added_later", 413, ErrorKind.REQUEST_TOO_LARGE, False),
        ("an_error_added_later", 429, ErrorKind.RATE_LIMITED, True),
        ("an_error_added_later", 500, ErrorKind.UPSTREAM, True),
        ("an_error_added_later", 503, ErrorKind.UPSTREAM, True),
        ("an_error_added_later", 504, ErrorKind.TIMEOUT, True),
        ("an_error_added_later", 529, ErrorKind.OVERLOADED, True),
        ("an_error_added_later", None, ErrorKind.UPSTREAM, True),
    ],
)
def test_error_types_and_statuses_to_kinds(
    error_type: str, status: int | None, kind: ErrorKind, retryable: bool
) -> None:
    error = from_error_body(body(error_type), model=REQUESTED, status=status, request_id="req_1")
    assert (error.kind, error.retryable, error.request_id) == (kind, retryable, "req_1")


def test_the_upstream_message_is_kept() -> None:
    error = from_error_body(
        body("invalid_request_error", "messages: at least one message is required"), model=CONFIGURED
    )
    assert error.message == "messages: at least one message is required"


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        (None, 503, "Anthropic answered with an error (HTTP 503)."),
        ("<html>Bad gateway</html>", 502, "Anthropic answered with an error (HTTP 502)."),
        ({"error": "overloaded"}, 529, "Anthropic answered with an error (HTTP 529)."),
        ({"error": {"type": "api_error", "message": ""}}, None, "Anthropic sent an error."),
        ({"error": {"type": "api_error", "message": 5}}, None, "Anthropic sent an error."),
    ],
)
def test_a_body_without_a_message_gets_one(payload: object, status: int | None, message: str) -> None:
    assert from_error_body(payload, model=CONFIGURED, status=status).message == message


def test_the_configured_model_not_found_tells_the_operator_to_set_chat_model() -> None:
    error = from_error_body(body("not_found_error", "model: claude-sonnet-5-5"), model=CONFIGURED, status=404)
    assert error.kind is ErrorKind.CONFIGURED_MODEL_NOT_FOUND
    assert not error.retryable
    assert "'claude-sonnet-5-5'" in error.message
    assert "model: claude-sonnet-5-5" in error.message  # what upstream said
    assert "Set CHAT_MODEL to a current model" in error.message


def test_a_fallback_model_not_found_names_the_fallback_setting() -> None:
    fallback = ModelChoice("claude-gone-1", configured=True, setting="CHAT_FALLBACK_MODELS")
    error = from_error_body(body("not_found_error", "model: claude-gone-1"), model=fallback, status=404)
    assert error.kind is ErrorKind.CONFIGURED_MODEL_NOT_FOUND
    assert "Set CHAT_FALLBACK_MODELS to a current model" in error.message


def test_a_requested_model_not_found_tells_the_client_to_choose_another() -> None:
    error = from_error_body(body("not_found_error"), model=REQUESTED, status=404)
    assert error.kind is ErrorKind.MODEL_NOT_FOUND
    assert "'claude-3-5-sonnet-latest'" in error.message
    assert "request's `model` field" in error.message


def test_an_authentication_error_points_at_the_api_key_not_at_upstreams_words() -> None:
    error = from_error_body(body("authentication_error", "invalid x-api-key"), model=CONFIGURED, status=401)
    assert error.message == "Anthropic rejected the service's API key (check ANTHROPIC_API_KEY)."


def status_error(
    status: int, payload: object, headers: dict[str, str] | None = None
) -> anthropic.APIStatusError:
    response = httpx2.Response(status, headers=headers or {}, request=httpx2.Request("POST", URL))
    return anthropic.APIStatusError(f"Error code: {status}", response=response, body=payload)


@pytest.mark.parametrize(
    ("status", "payload", "headers", "kind", "retryable", "wait"),
    [
        pytest.param(
            529,
            body("overloaded_error"),
            {"retry-after": "3"},
            ErrorKind.OVERLOADED,
            True,
            3.0,
            id="overloaded",
        ),
        pytest.param(
            429,
            body("rate_limit_error"),
            {"retry-after-ms": "1500"},
            ErrorKind.RATE_LIMITED,
            True,
            1.5,
            id="429",
        ),
        pytest.param(400, body("invalid_request_error"), {}, ErrorKind.BAD_REQUEST, False, None, id="400"),
        pytest.param(
            500, body("invalid_request_error"), {}, ErrorKind.UPSTREAM, True, None, id="5xx invalid request"
        ),
        pytest.param(503, None, {}, ErrorKind.UPSTREAM, True, None, id="5xx without a body"),
        pytest.param(
            529,
            body("overloaded_error"),
            {"x-should-retry": "false"},
            ErrorKind.OVERLOADED,
            False,
            None,
            id="x-should-retry false",
        ),
        pytest.param(
            400,
            body("invalid_request_error"),
            {"x-should-retry": "true"},
            ErrorKind.BAD_REQUEST,
            True,
            None,
            id="x-should-retry true",
        ),
        pytest.param(
            529,
            body("overloaded_error"),
            {"x-should-retry": "maybe"},
            ErrorKind.OVERLOADED,
            True,
            None,
            id="x-should-retry garbage",
        ),
        pytest.param(
            404, body("not_found_error"), {}, ErrorKind.CONFIGURED_MODEL_NOT_FOUND, False, None, id="404"
        ),
    ],
)
def test_status_errors_from_the_sdk(
    status: int,
    payload: object,
    headers: dict[str, str],
    kind: ErrorKind,
    retryable: bool,
    wait: float | None,
) -> None:
    error = from_sdk_error(
        status_error(status, payload, {"request-id": "req_011", **headers}), model=CONFIGURED
    )
    assert (error.kind, error.retryable, error.retry_after) == (kind, retryable, wait)
    assert error.request_id == "req_011"


def test_time_outs_and_connection_failures_from_the_sdk() -> None:
    request = httpx2.Request("POST", URL)
    timeout = from_sdk_error(anthropic.APITimeoutError(request=request), model=CONFIGURED)
    assert (timeout.kind, timeout.retryable) == (ErrorKind.TIMEOUT, True)
    connection = from_sdk_error(anthropic.APIConnectionError(request=request), model=CONFIGURED)
    assert (connection.kind, connection.retryable) == (ErrorKind.CONNECTION, True)


def test_any_other_sdk_error_is_an_upstream_error_not_retried() -> None:
    response = httpx2.Response(200, request=httpx2.Request("POST", URL))
    error = from_sdk_error(anthropic.APIResponseValidationError(response, body={}), model=CONFIGURED)
    assert (error.kind, error.retryable) == (ErrorKind.UPSTREAM, False)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx2.ReadTimeout("timed out"), ErrorKind.TIMEOUT),
        (httpx2.RemoteProtocolError("peer closed connection"), ErrorKind.CONNECTION),
        (httpx2.ReadError("connection reset"), ErrorKind.CONNECTION),
    ],
)
def test_transport_errors_while_reading_the_stream(exc: httpx2.TransportError, kind: ErrorKind) -> None:
    error = from_transport_error(exc)
    assert (error.kind, error.retryable) == (kind, True)


def test_what_cannot_be_read_is_worth_another_attempt() -> None:
    for error in (malformed("a riddle"), ended_early()):
        assert (error.kind, error.retryable) == (ErrorKind.UPSTREAM, True)
    assert malformed("a riddle").message == "Anthropic sent a riddle."


@pytest.mark.parametrize(
    ("status", "error_type", "unavailable"),
    [
        pytest.param(529, "overloaded_error", True, id="overloaded"),
        pytest.param(500, "api_error", True, id="server error"),
        pytest.param(503, None, True, id="5xx of no known type"),
        pytest.param(504, None, True, id="gateway time-out"),
        pytest.param(408, None, True, id="408 is a time-out, not a client error"),
        pytest.param(None, "overloaded_error", True, id="in-band overloaded"),
        pytest.param(None, "api_error", True, id="in-band api_error"),
        pytest.param(400, "invalid_request_error", False, id="bad request"),
        pytest.param(401, "authentication_error", False, id="bad key"),
        pytest.param(404, "not_found_error", False, id="unknown model"),
        pytest.param(413, "request_too_large", False, id="too large"),
        pytest.param(429, "rate_limit_error", False, id="rate limited: 4xx never falls back"),
        pytest.param(422, None, False, id="undocumented 4xx"),
        pytest.param(None, "invalid_request_error", False, id="in-band bad request"),
    ],
)
def test_which_failures_another_model_may_not_share(
    status: int | None, error_type: str | None, unavailable: bool
) -> None:
    body = {"type": "error", "error": {"type": error_type, "message": "m"}} if error_type else {}
    assert from_error_body(body, model=CONFIGURED, status=status).model_unavailable is unavailable


def test_a_broken_connection_or_a_time_out_may_not_be_shared() -> None:
    assert from_transport_error(httpx2.ReadTimeout("slow")).model_unavailable
    assert from_transport_error(httpx2.RemoteProtocolError("cut")).model_unavailable
    assert malformed("a text delta without its text").model_unavailable
    assert ended_early().model_unavailable


def test_a_prompt_too_long_is_the_context_window_error_with_anthropics_figures() -> None:
    message = "prompt is too long: 201234 tokens > 200000 maximum"
    error = from_error_body(
        body("invalid_request_error", message), model=CONFIGURED, status=400, request_id="r"
    )
    assert error.kind is ErrorKind.CONTEXT_WINDOW_EXCEEDED
    assert error.details == {"input_tokens": 201234, "context_window": 200000}
    assert "201,234 tokens, the model takes 200,000" in error.message
    assert (error.retryable, error.model_unavailable, error.status, error.request_id) == (
        False,
        False,
        400,
        "r",
    )


def test_a_prompt_too_long_without_figures_is_still_the_context_window_error() -> None:
    error = from_error_body(body("invalid_request_error", "Prompt is too long"), model=CONFIGURED, status=400)
    assert error.kind is ErrorKind.CONTEXT_WINDOW_EXCEEDED
    assert error.details == {"input_tokens": None, "context_window": None}


def test_the_same_words_in_another_error_type_are_not_the_context_window() -> None:
    message = "prompt is too long: 3 tokens > 2 maximum"
    assert (
        from_error_body(body("api_error", message), model=CONFIGURED, status=500).kind is ErrorKind.UPSTREAM
    )
    other = from_error_body(body("invalid_request_error", "messages: empty"), model=CONFIGURED, status=400)
    assert (other.kind, other.details) == (ErrorKind.BAD_REQUEST, None)


def test_an_overflow_through_the_sdk() -> None:
    payload = {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "prompt is too long: 3001 tokens > 2000 maximum",
        },
    }
    error = from_sdk_error(status_error(400, payload), model=CONFIGURED)
    assert (error.kind, error.details) == (
        ErrorKind.CONTEXT_WINDOW_EXCEEDED,
        {"input_tokens": 3001, "context_window": 2000},
    )
