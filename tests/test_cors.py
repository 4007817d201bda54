"""A frontend on another origin: every answer of the chat endpoints, errors included, is readable
by the page (CHAT_CORS_ORIGINS), and other origins are refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fake_anthropic import FakeAnthropic, Reply
from tests.conftest import FRONTEND_ORIGIN, Service

# A valid body for each chat endpoint.
BODIES: dict[str, dict[str, Any]] = {
    "/chat": {"messages": [{"role": "user", "content": "hi"}], "stream": True},
    "/chat/ui": {
        "id": "c1",
        "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}],
    },
}

# (case, how the body is changed, what the fake answers, the status expected)
CASES = [
    ("answer", {}, [], 200),
    ("invalid", {"max_tokens": 0}, [], 422),
    ("unsupported media type", "text/plain", [], 415),
    ("too large", "x" * 1_100_000, [], 413),
    ("upstream rejects", {}, [Reply.error(400, "invalid_request_error", "upstream says no")], 400),
    ("upstream overloaded", {}, [Reply.error(529, "overloaded_error")] * 3, 503),
]


def _send(http: httpx.Client, path: str, change: object, origin: str) -> httpx.Response:
    headers = {"Origin": origin, "X-Request-ID": "cors-test"}
    if change == "text/plain":
        return http.post(path, content=b"hi", headers={**headers, "Content-Type": "text/plain"})
    if isinstance(change, str):  # a body over the limit, declared by its Content-Length
        return http.post(path, json={**BODIES[path], "system": change}, headers=headers)
    assert isinstance(change, dict)
    return http.post(path, json={**BODIES[path], **change}, headers=headers)


@pytest.mark.parametrize("path", list(BODIES))
@pytest.mark.parametrize(("case", "change", "replies", "status"), CASES, ids=[case[0] for case in CASES])
def test_every_answer_is_readable_by_the_allowed_origin(
    frontend_service: Service,
    fake: FakeAnthropic,
    path: str,
    case: str,
    change: object,
    replies: list[Reply],
    status: int,
) -> None:
    fake.enqueue(*replies)
    with httpx.Client(base_url=frontend_service.url, timeout=15) as http:
        response = _send(http, path, change, FRONTEND_ORIGIN)

    assert response.status_code == status, response.text
    assert response.headers["access-control-allow-origin"] == FRONTEND_ORIGIN
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()
    assert response.headers["x-request-id"] == "cors-test"


@pytest.mark.parametrize("path", list(BODIES))
def test_preflight_is_answered_for_the_allowed_origin_only(frontend_service: Service, path: str) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-request-id",
    }
    with httpx.Client(base_url=frontend_service.url, timeout=15) as http:
        allowed = http.options(path, headers={"Origin": FRONTEND_ORIGIN, **preflight})
        other = http.options(path, headers={"Origin": "http://evil.example", **preflight})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == FRONTEND_ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert {"content-type", "x-request-id"} <= {
        header.strip().lower() for header in allowed.headers["access-control-allow-headers"].split(",")
    }
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers


def test_a_page_on_the_allowed_origin_may_resume_with_last_event_id(frontend_service: Service) -> None:
    preflight = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "last-event-id"}
    with httpx.Client(base_url=frontend_service.url, timeout=15) as http:
        allowed = http.options("/chat/streams/some-stream", headers={"Origin": FRONTEND_ORIGIN, **preflight})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == FRONTEND_ORIGIN
    assert "last-event-id" in allowed.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize("path", list(BODIES))
def test_other_origins_get_no_cors_headers(frontend_service: Service, fake: FakeAnthropic, path: str) -> None:
    with httpx.Client(base_url=frontend_service.url, timeout=15) as http:
        response = _send(http, path, {"max_tokens": 0}, "http://evil.example")

    assert response.status_code == 422
    assert "access-control-allow-origin" not in response.headers
