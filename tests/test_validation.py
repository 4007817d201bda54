"""Requests the service refuses before calling Anthropic, with FastAPI's 422 shape."""

import httpx
import pytest

from tests.fakes.anthropic_api import FakeAnthropic

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
