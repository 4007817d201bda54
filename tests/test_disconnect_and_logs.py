"""What operators rely on: no tokens paid for after a client leaves, and logs they can use."""

import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import pytest

from fake_anthropic import FakeAnthropic, Reply, input_tokens
from tests.conftest import API_KEY, Service
from tests.service_client import chat_body, iter_events


def test_client_leaving_mid_stream_closes_upstream_within_a_second(
    client: httpx.Client, service: Service, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text(["tok"] * 200, interval=0.05))  # 10 s of answer

    with client.stream("POST", "/chat", json=chat_body(stream=True)) as response:
        request_id = response.headers["x-request-id"]
        for event in iter_events(response):
            if event.name == "delta" and event.json["text"] == "tok":
                break
        left_at = time.monotonic()
    # Leaving the block closed the connection mid-answer.

    assert fake.wait_for(lambda: fake.received[-1].client_gone, timeout=1.0)
    gone_at = fake.received[-1].client_gone_at
    assert gone_at is not None
    assert gone_at - left_at < 1.0
    assert not fake.received[-1].finished
    summary = service.log.summary(request_id)
    assert summary["outcome"] == "client_disconnected"
    assert any(line["event"] == "client_disconnected" for line in service.log.for_request(request_id))


def test_client_leaving_before_a_whole_answer_stops_the_upstream_call(
    client: httpx.Client, service: Service, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text(["tok"] * 24, interval=0.05))  # the JSON answer comes after 1.2 s

    with pytest.raises(httpx.ReadTimeout):
        client.post("/chat", json=chat_body(), headers={"X-Request-ID": "req-left-1"}, timeout=0.3)
    left_at = time.monotonic()

    assert fake.wait_for(lambda: fake.received[-1].client_gone, timeout=1.0)
    gone_at = fake.received[-1].client_gone_at
    assert gone_at is not None
    assert gone_at - left_at < 0.5
    assert not fake.received[-1].finished
    summary = service.log.summary("req-left-1")
    assert (summary["status"], summary["outcome"]) == (499, "client_disconnected")


def test_client_leaving_while_the_service_waits_to_retry_stops_the_retries(
    client: httpx.Client, service: Service, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.error(429, "rate_limit_error", headers={"retry-after": "2"}), Reply.text())
    calls_before = len(fake.received)

    with pytest.raises(httpx.ReadTimeout):
        client.post("/chat", json=chat_body(stream=True), headers={"X-Request-ID": "req-left-2"}, timeout=0.5)

    summary = service.log.summary("req-left-2")
    assert (summary["status"], summary["outcome"]) == (499, "client_disconnected")
    # A retry would arrive once the 2 s retry-after is over: wait for it a little longer than that.
    assert not fake.wait_for_requests(calls_before + 2, timeout=2.5), "retried after the client left"
    assert len(fake.received) == calls_before + 1


def test_each_request_has_one_summary_line_with_what_operators_ask(
    client: httpx.Client, service: Service, fake: FakeAnthropic
) -> None:
    fake.enqueue(
        Reply.error(429, "rate_limit_error", headers={"retry-after-ms": "10"}), Reply.text(["Hi", "!"])
    )

    with client.stream(
        "POST", "/chat", json=chat_body(stream=True), headers={"X-Request-ID": "req-log-1"}
    ) as response:
        response.read()

    lines = service.log.for_request("req-log-1")
    summaries = [line for line in lines if line["event"] == "request"]
    assert len(summaries) == 1
    summary = summaries[0]
    assert (
        summary
        | {
            "method": "POST",
            "path": "/chat",
            "status": 200,
            "stream": True,
            "model": "claude-sonnet-5-5",
            "retries": 1,
            "input_tokens": input_tokens(fake.received[-1].body),
            "output_tokens": 2,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
            "stop_reason": "end_turn",
            "outcome": "ok",
            "level": "info",
        }
        == summary
    )
    assert summary["upstream_request_id"].startswith("req_fake")
    assert summary["duration_ms"] >= summary["ttft_ms"] > 0
    retry_lines = [line for line in lines if line["event"] == "upstream_retry"]
    assert len(retry_lines) == 1
    assert retry_lines[0]["error_type"] == "rate_limit_error"


def test_logs_are_json_lines_without_the_key_or_the_prompt(
    client: httpx.Client, service: Service, start_service
) -> None:  # type: ignore[no-untyped-def]
    client.post("/chat", json=chat_body("my secret prompt"))
    bad_key = start_service(ANTHROPIC_API_KEY="sk-ant-wrong-key-1234")
    httpx.post(f"{bad_key.url}/chat", json=chat_body("my secret prompt"))

    for log in (service.log, bad_key.log):
        text = log.text()
        assert log.lines()  # every line parses as JSON
        assert API_KEY not in text
        assert "sk-ant-wrong-key-1234" not in text
        assert "my secret prompt" not in text


def test_a_model_near_its_end_of_life_is_named_in_a_warning_line(
    start_service: Callable[..., Service],
) -> None:
    # The SDK's table of models near their end of life, so that the test follows SDK upgrades.
    from anthropic._data import DEPRECATED_MODELS

    if not DEPRECATED_MODELS:
        pytest.skip("this SDK version lists no model near its end of life")
    model, end_of_life = next(iter(DEPRECATED_MODELS.items()))
    service = start_service(CHAT_MODEL=model, CHAT_ALLOWED_MODELS=None)

    for _ in range(3):
        assert httpx.post(f"{service.url}/chat", json=chat_body(), timeout=10).status_code == 200

    deadline = time.monotonic() + 5
    while not (warnings := [line for line in service.log.lines() if "end-of-life" in line["event"]]):
        assert time.monotonic() < deadline, "no end-of-life warning in the log"
        time.sleep(0.05)
    assert warnings[0]["level"] == "warning"
    assert model in warnings[0]["event"]
    assert end_of_life in warnings[0]["event"]


def test_missing_api_key_stops_start_up_with_a_clear_message(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", "0"],
        env={"PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode != 0
    assert "ANTHROPIC_API_KEY" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
