"""When Anthropic fails, the status says whose fault it is, in both modes, after retries."""

import time

import httpx
import pytest

from fake_anthropic import FakeAnthropic, Reply
from tests.conftest import Service
from tests.service_client import chat_body

MODES = pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])


def post_chat(client: httpx.Client, stream: bool, **extra: object) -> httpx.Response:
    """A /chat call as a frontend makes it; for a stream, the body is read to the end."""
    with client.stream("POST", "/chat", json=chat_body(stream=stream, **extra)) as response:
        response.read()
    return response


@MODES
@pytest.mark.parametrize(
    ("upstream_status", "error_type", "status", "kind"),
    [
        (400, "invalid_request_error", 400, "invalid_request_error"),
        (403, "permission_error", 403, "permission_error"),
        (413, "request_too_large", 413, "request_too_large"),
        (500, "api_error", 502, "upstream_error"),
    ],
)
def test_upstream_error_maps_to_status(
    client: httpx.Client,
    fake: FakeAnthropic,
    stream: bool,
    upstream_status: int,
    error_type: str,
    status: int,
    kind: str,
) -> None:
    fake.enqueue(*[Reply.error(upstream_status, error_type, "upstream says no")] * 3)

    response = post_chat(client, stream)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["detail"]["type"] == kind
    assert response.json()["detail"]["message"]


@MODES
@pytest.mark.parametrize(
    ("upstream", "status", "kind"),
    [
        (Reply.error(429, "rate_limit_error", headers={"retry-after": "1"}), 429, "rate_limit_error"),
        (Reply.error(529, "overloaded_error"), 503, "overloaded_error"),
        (Reply(drop=True), 502, "upstream_connection_error"),
    ],
    ids=["rate-limited", "overloaded", "connection-dropped"],
)
def test_retryable_failure_that_persists_answers_after_every_attempt(
    client: httpx.Client, fake: FakeAnthropic, stream: bool, upstream: Reply, status: int, kind: str
) -> None:
    fake.enqueue(*[upstream] * 3)

    response = post_chat(client, stream)

    assert response.status_code == status
    assert response.json()["detail"]["type"] == kind
    assert len(fake.received) == 3  # CHAT_RETRY_ATTEMPTS
    if status in (429, 503):
        assert int(response.headers["retry-after"]) >= 1


@MODES
def test_upstream_that_never_answers_times_out_with_504(
    client: httpx.Client, fake: FakeAnthropic, stream: bool
) -> None:
    fake.enqueue(*[Reply(hang=True)] * 3)

    started = time.monotonic()
    response = post_chat(client, stream)

    # Three attempts of CHAT_READ_TIMEOUT (1.5 s) and two short backoffs: not later than that.
    assert 4.5 <= time.monotonic() - started < 6.5
    assert response.status_code == 504
    assert response.json()["detail"]["type"] == "upstream_timeout"
    assert len(fake.received) == 3
    assert fake.wait_for(lambda: all(r.client_gone for r in fake.received), timeout=2)


@MODES
def test_bad_api_key_answers_401(start_service, stream: bool) -> None:  # type: ignore[no-untyped-def]
    service: Service = start_service(ANTHROPIC_API_KEY="sk-ant-wrong")
    with httpx.Client(base_url=service.url) as client:
        response = post_chat(client, stream)

    assert response.status_code == 401
    assert response.json() == {
        "detail": {
            "type": "authentication_error",
            "message": "Anthropic rejected the service's API key (check ANTHROPIC_API_KEY).",
        }
    }


@MODES
def test_retired_configured_model_names_the_setting(start_service, stream: bool) -> None:  # type: ignore[no-untyped-def]
    service: Service = start_service(CHAT_MODEL="claude-3-5-sonnet-latest")
    with httpx.Client(base_url=service.url) as client:
        response = post_chat(client, stream)

    assert response.status_code == 502
    detail = response.json()["detail"]
    assert detail["type"] == "configured_model_not_found"
    assert "'claude-3-5-sonnet-latest'" in detail["message"]
    assert "CHAT_MODEL" in detail["message"]


@MODES
def test_retired_model_in_the_request_is_the_clients_error(client: httpx.Client, stream: bool) -> None:
    response = post_chat(client, stream, model="claude-3-5-sonnet-latest")

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail["type"] == "model_not_found"
    assert "'claude-3-5-sonnet-latest'" in detail["message"]
    assert "`model`" in detail["message"]


def test_error_body_that_is_not_json_is_still_a_clear_502(client: httpx.Client, fake: FakeAnthropic) -> None:
    fake.enqueue(*[Reply(status=502, raw_body=b"<html>Bad Gateway</html>")] * 3)

    response = post_chat(client, False)

    assert response.status_code == 502
    assert response.json()["detail"]["type"] == "upstream_error"
