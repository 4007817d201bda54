"""Requests the service refuses before calling Anthropic, with FastAPI's 422 shape."""

from collections.abc import Callable

import httpx
import pytest

from fake_anthropic import FakeAnthropic
from tests.conftest import Service

USER = {"role": "user", "content": "hi"}


@pytest.mark.parametrize(
    ("body", "location", "says"),
    [
        ({"messages": []}, ["body", "messages"], "at least 1"),
        ({}, ["body", "messages"], "required"),
        (
            {"messages": [{"role": "system", "content": "be nice"}]},
            ["body", "messages", 0, "role"],
            "`system` field",
        ),
        (
            {"messages": [{"role": "robot", "content": "hi"}]},
            ["body", "messages", 0, "role"],
            "'user' or 'assistant'",
        ),
        ({"messages": [{"role": "user", "content": ""}]}, ["body", "messages", 0, "content"], ""),
        ({"messages": [{"role": "user", "content": " \n\t"}]}, ["body", "messages", 0, "content"], ""),
        ({"messages": [{"role": "user", "content": 42}]}, ["body", "messages", 0, "content"], "string"),
        ({"messages": [USER], "temperature": 0.2}, ["body", "temperature"], "not permitted"),
        ({"messages": [USER], "strem": True}, ["body", "strem"], "not permitted"),
        ({"messages": [USER], "max_tokens": 0}, ["body", "max_tokens"], "greater than or equal to 1"),
        ({"messages": [USER], "max_tokens": 4097}, ["body", "max_tokens"], "less than or equal to 4096"),
        ({"messages": [USER], "model": "gpt-4"}, ["body", "model"], "must be one of"),
    ],
)
def test_invalid_request_is_422_and_never_reaches_upstream(
    client: httpx.Client, fake: FakeAnthropic, body: dict[str, object], location: list[object], says: str
) -> None:
    response = client.post("/chat", json=body)

    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(error["loc"] == location and says in error["msg"] for error in errors), errors
    assert not fake.received


def test_body_over_the_size_limit_is_refused_with_413(client: httpx.Client, fake: FakeAnthropic) -> None:
    huge = {"messages": [{"role": "user", "content": "x" * 1_100_000}]}  # limit: 1 MiB

    declared = client.post("/chat", json=huge)

    def chunked():  # type: ignore[no-untyped-def]  # no Content-Length: counted as it arrives
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(200):
            yield b"x" * 10_000
        yield b'"}]}'

    streamed = client.post("/chat", content=chunked(), headers={"Content-Type": "application/json"})

    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["detail"]["type"] == "request_too_large"
    assert not fake.received


@pytest.mark.parametrize(
    ("content", "headers", "status", "error_type"),
    [
        (b'{"messages": [', {"Content-Type": "application/json"}, 422, None),
        (b"", {"Content-Type": "application/json"}, 422, None),
        (
            b'{"messages": [{"role": "user", "content": "hi"}]}',
            {"Content-Type": "text/plain"},
            415,
            "unsupported_media_type",
        ),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', {}, 415, "unsupported_media_type"),
        (
            b'{"messages": [{"role": "user", "content": "h\xff\xfei"}]}',
            {"Content-Type": "application/json"},
            400,
            "bad_request",
        ),
        (
            b'{"messages":' + b"[" * 5000 + b"]" * 5000 + b"}",
            {"Content-Type": "application/json"},
            400,
            "bad_request",
        ),
        (
            b'{"messages": [{"role": "user", "content": "a\\u0000b"}]}',
            {"Content-Type": "application/json"},
            422,
            None,
        ),
        (
            b'{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}',
            {"Content-Type": "application/json"},
            422,
            None,
        ),
        (
            b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": "5"}',
            {"Content-Type": "application/json"},
            422,
            None,
        ),
        (b"[1, 2]", {"Content-Type": "application/json"}, 422, None),
    ],
    ids=[
        "malformed",
        "empty",
        "text-plain",
        "no-content-type",
        "invalid-utf8",
        "deeply-nested",
        "nul",
        "stream-as-string",
        "max-tokens-as-string",
        "not-an-object",
    ],
)
def test_unreadable_body_is_a_clear_4xx(
    client: httpx.Client,
    fake: FakeAnthropic,
    content: bytes,
    headers: dict[str, str],
    status: int,
    error_type: str | None,
) -> None:
    response = client.post("/chat", content=content, headers=headers)

    assert response.status_code == status
    detail = response.json()["detail"]
    if error_type is None:  # FastAPI's validation list
        assert isinstance(detail, list)
        assert detail[0]["msg"]
    else:
        assert detail["type"] == error_type
        assert detail["message"]
    assert not fake.received


def test_long_single_message_within_the_limit_is_relayed(client: httpx.Client, fake: FakeAnthropic) -> None:
    long_text = "word " * 150_000  # 750 kB, under the 1 MiB limit

    response = client.post("/chat", json={"messages": [{"role": "user", "content": long_text}]})

    assert response.status_code == 200
    assert fake.received[-1].body["messages"][0]["content"] == long_text


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (
            {"messages": [{"role": "user", "content": "x" * 600_000 + "\x00"}]},
            ["body", "messages", 0, "content"],
        ),
        ({"messages": "x" * 600_000}, ["body", "messages"]),
        ({"messages": [USER], "model": "m" * 600_000}, ["body", "model"]),  # the service's own check
    ],
    ids=["content", "messages", "model"],
)
def test_a_large_invalid_input_is_not_echoed_back(
    client: httpx.Client, body: dict[str, object], location: list[object]
) -> None:
    response = client.post("/chat", json=body)

    assert response.status_code == 422
    assert len(response.content) < 2000, f"{len(response.content)} bytes of 422"
    error = next(error for error in response.json()["detail"] if error["loc"] == location)
    assert error["msg"]
    assert error["input"].endswith("…")
    assert len(error["input"]) < 300


def test_a_small_invalid_input_is_echoed_whole(client: httpx.Client) -> None:
    response = client.post("/chat", json={"messages": [{"role": "robot", "content": "hi"}]})

    assert response.json()["detail"][0]["input"] == "robot"


@pytest.mark.parametrize(
    ("method", "path", "content", "headers", "status"),
    [
        ("POST", "/chat", b'{"messages": [{"role": "user", "content": "h\xff"}]}', {}, 400),
        ("POST", "/chat", b"x" * 1_100_000, {}, 413),
        ("POST", "/chat", b'{"messages": []}', {"Content-Type": "text/plain"}, 415),
        ("POST", "/chat", b'{"messages": []}', {}, 422),
        ("POST", "/chat", b'{"messages": [{"role": "user", "content": "hi"}], "model": "gpt-4"}', {}, 422),
        ("GET", "/chat", b"", {}, 405),
        ("GET", "/nowhere", b"", {}, 404),
    ],
    ids=["400", "413", "415", "422", "422-server-check", "405", "404"],
)
def test_every_error_carries_the_request_id(
    client: httpx.Client, method: str, path: str, content: bytes, headers: dict[str, str], status: int
) -> None:
    sent = {"Content-Type": "application/json", "X-Request-ID": f"req-err-{status}", **headers}

    response = client.request(method, path, content=content or None, headers=sent)

    assert response.status_code == status
    assert response.headers["x-request-id"] == f"req-err-{status}"
    assert "detail" in response.json()


def test_a_body_over_the_limit_is_refused_in_a_way_a_browser_can_read(
    start_service: Callable[..., Service], fake: FakeAnthropic
) -> None:
    origin = "https://frontend.example"
    service = start_service(CHAT_CORS_ORIGINS=origin)
    huge = {"messages": [{"role": "user", "content": "x" * 1_100_000}]}

    response = httpx.post(
        f"{service.url}/chat", json=huge, headers={"Origin": origin, "X-Request-ID": "req-413"}
    )

    assert response.status_code == 413
    assert response.json()["detail"]["type"] == "request_too_large"
    assert response.headers["x-request-id"] == "req-413"
    assert response.headers["access-control-allow-origin"] == origin
    assert not fake.received


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/chat", b'{"messages": [{"role": "user", "n": 99999999999999999999999}]}'),
        ("/chat/ui", b'{"messages": [{"role": "user", "parts": [{"n": 99999999999999999999999}]}]}'),
    ],
)
def test_an_integer_beyond_64_bits_in_a_bad_request_is_still_a_422(
    client: httpx.Client, path: str, body: bytes
) -> None:
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 422, response.text
