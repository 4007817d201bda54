"""Failures before the first token are retried out of the client's sight; after it, never."""

import itertools
import time

import httpx
import pytest

from fake_anthropic import FakeAnthropic, Reply
from tests.conftest import Service
from tests.service_client import chat_body, read_stream

MODES = pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
ANSWER = ["All", " good", "."]
TOKENS = ["a", "b", "c", "d", "e"]


def answer_text(client: httpx.Client, stream: bool) -> tuple[int, str]:
    if not stream:
        response = client.post("/chat", json=chat_body())
        return response.status_code, response.json().get("content", "")
    with client.stream("POST", "/chat", json=chat_body(stream=True)) as response:
        events = read_stream(response)
    assert events.done
    return response.status_code, events.text


@MODES
def test_rate_limit_then_success_reaches_the_client_as_success(
    client: httpx.Client, fake: FakeAnthropic, stream: bool
) -> None:
    fake.enqueue(Reply.error(429, "rate_limit_error", headers={"retry-after-ms": "400"}), Reply.text(ANSWER))

    started = time.monotonic()
    status, text = answer_text(client, stream)

    assert (status, text) == (200, "All good.")
    assert len(fake.received) == 2
    assert time.monotonic() - started >= 0.4  # retry-after-ms honoured


@MODES
def test_server_errors_are_retried_with_backoff(
    client: httpx.Client, service: Service, fake: FakeAnthropic, stream: bool
) -> None:
    fake.enqueue(Reply.error(500, "api_error"), Reply.error(529, "overloaded_error"), Reply.text(ANSWER))
    request_id = f"req-backoff-{stream}"

    with client.stream(
        "POST", "/chat", json=chat_body(stream=stream), headers={"X-Request-ID": request_id}
    ) as response:
        response.read()

    assert response.status_code == 200
    assert len(fake.received) == 3
    waits = [
        line["wait_s"] for line in service.log.for_request(request_id) if line["event"] == "upstream_retry"
    ]
    assert len(waits) == 2
    assert 0 < waits[0] < waits[1], waits  # exponential: the second wait is the longer
    arrivals = [received.started for received in fake.received]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert all(gap >= wait for gap, wait in zip(gaps, waits, strict=True)), (gaps, waits)  # they happened


def test_one_backoff_spans_the_start_of_the_stream(
    client: httpx.Client, service: Service, fake: FakeAnthropic
) -> None:
    # Overloaded before Anthropic accepts the request, then after `start` but before any text:
    # the second wait goes on from the first (at least twice the initial 0.05 s) instead of
    # starting over, and the three attempts are the request's, not three more after `start`.
    fake.enqueue(
        Reply.error(529, "overloaded_error"),
        Reply(error_after=0, error_type="overloaded_error"),
        Reply(error_after=0, error_type="overloaded_error"),
        Reply.text(ANSWER),
    )
    request_id = "req-one-backoff"

    with client.stream(
        "POST", "/chat", json=chat_body(stream=True), headers={"X-Request-ID": request_id}
    ) as response:
        stream = read_stream(response)

    assert stream.names == ["start", "error"]  # the third attempt was the last
    assert len(fake.received) == 3
    waits = [
        line["wait_s"] for line in service.log.for_request(request_id) if line["event"] == "upstream_retry"
    ]
    assert len(waits) == 2
    assert waits[1] >= 0.1, waits


def test_retry_after_beyond_the_ceiling_fails_fast(client: httpx.Client, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.error(429, "rate_limit_error", headers={"retry-after": "30"}))  # ceiling is 2 s

    started = time.monotonic()
    response = client.post("/chat", json=chat_body())

    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"
    assert time.monotonic() - started < 1
    assert len(fake.received) == 1


@pytest.mark.parametrize(
    ("upstream", "status", "kind"),
    [
        (Reply.error(400, "invalid_request_error"), 400, "invalid_request_error"),
        (Reply.error(500, "api_error", headers={"x-should-retry": "false"}), 502, "upstream_error"),
    ],
    ids=["client-error", "should-retry-false"],
)
def test_not_retried_when_retrying_cannot_help(
    client: httpx.Client, fake: FakeAnthropic, upstream: Reply, status: int, kind: str
) -> None:
    fake.enqueue(upstream, Reply.text(ANSWER))

    response = client.post("/chat", json=chat_body())

    assert response.status_code == status
    assert response.json()["detail"]["type"] == kind
    assert len(fake.received) == 1


def test_should_retry_true_retries_an_otherwise_final_error(
    client: httpx.Client, fake: FakeAnthropic
) -> None:
    fake.enqueue(
        Reply.error(400, "invalid_request_error", headers={"x-should-retry": "true"}), Reply.text(ANSWER)
    )

    assert answer_text(client, False) == (200, "All good.")


@pytest.mark.parametrize(
    "failure",
    [
        Reply(error_after=0, error_type="overloaded_error"),
        Reply(reset_after=0),
        Reply(truncate_after=0),
        Reply(extra_events=[("message_delta", "{not json")]),
    ],
    ids=["in-band-error", "reset", "truncated", "garbage"],
)
def test_stream_failure_before_the_first_token_is_retried(
    client: httpx.Client, fake: FakeAnthropic, failure: Reply
) -> None:
    fake.enqueue(failure, Reply.text(ANSWER))

    assert answer_text(client, True) == (200, "All good.")
    assert len(fake.received) == 2


def test_in_band_error_before_the_stream_starts_that_persists_is_an_http_status(
    client: httpx.Client, fake: FakeAnthropic
) -> None:
    fake.enqueue(*[Reply(error_at_start=True, error_type="overloaded_error")] * 3)

    response = client.post("/chat", json=chat_body(stream=True))

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.json()["detail"]["type"] == "overloaded_error"
    assert len(fake.received) == 3


def test_in_band_error_after_the_start_that_persists_ends_the_stream_with_an_error_event(
    client: httpx.Client, fake: FakeAnthropic
) -> None:
    # Anthropic accepted the request, so `start` went out at once; the retries that follow are
    # invisible until the attempts run out.
    fake.enqueue(*[Reply(error_after=0, error_type="overloaded_error")] * 3)

    with client.stream("POST", "/chat", json=chat_body(stream=True)) as response:
        stream = read_stream(response)

    assert response.status_code == 200
    assert stream.names == ["start", "error"]
    assert stream.events[-1].json["error"]["type"] == "overloaded_error"
    assert len(fake.received) == 3


@pytest.mark.parametrize(
    "failure",
    [
        Reply(
            tokens=TOKENS,
            interval=0.05,
            error_after=3,
            error_type="overloaded_error",
            error_message="Overloaded",
        ),
        Reply(tokens=TOKENS, interval=0.05, reset_after=3),
        Reply(tokens=TOKENS, interval=0.05, truncate_after=3),
    ],
    ids=["in-band-error", "reset", "truncated"],
)
def test_failure_after_the_first_token_ends_the_stream_with_an_error_event(
    client: httpx.Client, fake: FakeAnthropic, failure: Reply
) -> None:
    fake.enqueue(failure, Reply.text(ANSWER))

    with client.stream("POST", "/chat", json=chat_body(stream=True)) as response:
        stream = read_stream(response)

    assert response.status_code == 200
    assert stream.text == "abc"  # nothing repeated, nothing from a retry
    assert stream.names[-1] == "error"
    error = stream.events[-1].json
    assert error["type"] == "error"
    assert error["error"]["type"] in ("overloaded_error", "upstream_error", "upstream_connection_error")
    assert error["error"]["message"]
    assert not stream.done
    assert len(fake.received) == 1


def test_stall_after_the_first_token_ends_with_an_error_after_the_read_timeout(
    client: httpx.Client, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply(tokens=["a", "b", "c"], stall_after=1))

    started = time.monotonic()
    with client.stream("POST", "/chat", json=chat_body(stream=True)) as response:
        stream = read_stream(response)

    assert stream.text == "a"
    assert stream.events[-1].json["error"]["type"] == "upstream_timeout"
    assert 1.4 <= time.monotonic() - started < 4  # CHAT_READ_TIMEOUT is 1.5 s
    assert fake.wait_for(lambda: fake.received[-1].client_gone, timeout=1)
