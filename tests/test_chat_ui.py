"""`POST /chat/ui` on the wire: what `useChat` sends in, the AI SDK's UI message stream out.

The real SDK reading it is in test_chat_ui_aisdk.py; these check the bytes and the request rules.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fake_anthropic import FakeAnthropic, Reply
from tests.conftest import CURRENT_MODEL
from tests.service_client import read_stream


def ui_message(role: str, *parts: dict[str, Any], id: str = "m") -> dict[str, Any]:
    return {"id": id, "role": role, "parts": list(parts)}


def text(value: str, **extra: Any) -> dict[str, Any]:
    return {"type": "text", "text": value, **extra}


def ui_body(*messages: dict[str, Any], **options: Any) -> dict[str, Any]:
    """What DefaultChatTransport POSTs; `options` are its `body` option."""
    return {
        "id": "chat-1",
        "messages": list(messages) or [ui_message("user", text("Hello"))],
        "trigger": "submit-message",
        "messageId": None,
        **options,
    }


def chunks(client: httpx.Client, body: dict[str, Any]) -> tuple[httpx.Response, list[Any]]:
    with client.stream("POST", "/chat/ui", json=body) as response:
        stream = read_stream(response)
    assert all(event.name is None for event in stream.events)  # data-only SSE, as the SDK writes it
    return response, [event.data if event.data == "[DONE]" else event.json for event in stream.events]


def test_answer_is_the_ui_message_stream(client: httpx.Client, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.text(["Hi", " there"], thinking=["Greet. ", "Briefly."]))

    response, sent = chunks(client, ui_body(thinking="summarized"))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert response.headers.get_list("x-accel-buffering") == ["no"]  # proxies pass each chunk on at once
    message_id = sent[0]["messageId"]
    assert message_id.startswith("msg_")
    usage = sent[11]["messageMetadata"]["usage"]
    assert usage["outputTokens"] == 4  # thinking included
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"] > 4
    details = usage["inputTokenDetails"]
    assert (
        usage["inputTokens"]
        == details["noCacheTokens"] + details["cacheReadTokens"] + details["cacheWriteTokens"]
    )
    anthropic_usage = sent[11]["messageMetadata"]["anthropicUsage"]
    assert anthropic_usage["output_tokens"] == 4
    assert set(anthropic_usage) == {
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    }
    assert sent == [
        {"type": "start", "messageId": message_id, "messageMetadata": {"model": CURRENT_MODEL}},
        {"type": "start-step"},
        {"type": "reasoning-start", "id": "reasoning-0"},
        {"type": "reasoning-delta", "id": "reasoning-0", "delta": "Greet. "},
        {"type": "reasoning-delta", "id": "reasoning-0", "delta": "Briefly."},
        {"type": "reasoning-end", "id": "reasoning-0"},
        {"type": "text-start", "id": "text-0"},
        {"type": "text-delta", "id": "text-0", "delta": "Hi"},
        {"type": "text-delta", "id": "text-0", "delta": " there"},
        {"type": "text-end", "id": "text-0"},
        {"type": "finish-step"},
        {
            "type": "message-metadata",
            "messageMetadata": {
                "model": CURRENT_MODEL,
                "stopReason": "end_turn",
                "usage": usage,
                "anthropicUsage": anthropic_usage,
                "contextWindow": 200_000,  # the configured model's, known from start-up
            },
        },
        {"type": "finish", "finishReason": "stop"},
        "[DONE]",
    ]


def test_omitted_thinking_opens_a_reasoning_part_at_once_and_pings(
    client: httpx.Client, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text(["Hi"], thinking_seconds=1.0))

    with client.stream("POST", "/chat/ui", json=ui_body(thinking="omitted")) as response:
        stream = read_stream(response)

    types = [event.json["type"] for event in stream.events[:-1]]
    assert types[:3] == ["start", "start-step", "reasoning-start"]
    assert types[3:6] == ["reasoning-end", "text-start", "text-delta"]
    reasoning_started, text_started = stream.events[2].at, stream.events[4].at
    assert text_started - reasoning_started > 0.5  # "Thinking…" can show while the model thinks
    assert stream.pings >= 2  # SSE comments, which the SDK's parser skips


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content-filter"),
        ("pause_turn", "other"),
    ],
)
def test_stop_reason_becomes_the_finish_reason(
    client: httpx.Client, fake: FakeAnthropic, stop_reason: str, finish_reason: str
) -> None:
    fake.enqueue(Reply.text(["Hi"], stop_reason=stop_reason))

    _, sent = chunks(client, ui_body())

    assert sent[-2] == {"type": "finish", "finishReason": finish_reason}
    assert sent[-3]["messageMetadata"]["stopReason"] == stop_reason


def test_failure_after_text_ends_like_the_sdks_own_servers(client: httpx.Client, fake: FakeAnthropic) -> None:
    fake.enqueue(
        Reply.text(["Half", " an", " answer"], interval=0.1, error_after=2, error_message="Overloaded")
    )

    _, sent = chunks(client, ui_body())

    assert sent[-4:] == [
        {"type": "error", "errorText": "Overloaded"},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "error"},
        "[DONE]",
    ]


def test_only_text_reaches_the_model(client: httpx.Client, fake: FakeAnthropic) -> None:
    conversation = [
        ui_message("user", text("Name a prime."), {"type": "data-mood", "data": {"calm": True}}, id="u1"),
        ui_message(
            "assistant",
            {"type": "step-start"},
            {"type": "reasoning", "text": "Small ones are easy.", "state": "done"},
            text("7", state="done", providerMetadata={"x": {"y": 1}}),
            {"type": "source-url", "sourceId": "s1", "url": "https://example.com"},
            id="a1",
        ),
        ui_message("assistant", {"type": "step-start"}, {"type": "reasoning", "text": "…"}, id="a-stopped"),
        ui_message("user", text("A bigger"), text("one?"), id="u2"),
    ]
    body = ui_body(*conversation, system="Answer in one word.", model="claude-haiku-4-5", max_tokens=50)
    body["messages"][0]["metadata"] = {"createdAt": 1}  # the SDK's own fields are not ours to refuse

    response, _ = chunks(client, body)

    assert response.status_code == 200
    upstream = fake.received[-1].body
    assert upstream["messages"] == [
        {"role": "user", "content": "Name a prime."},
        {"role": "assistant", "content": "7"},
        {"role": "user", "content": "A bigger\n\none?"},
    ]
    assert (upstream["system"], upstream["model"], upstream["max_tokens"]) == (
        "Answer in one word.",
        "claude-haiku-4-5",
        50,
    )


@pytest.mark.parametrize(
    ("body", "location", "says"),
    [
        (
            ui_body(
                ui_message(
                    "user", text("What is this?"), {"type": "file", "mediaType": "image/png", "url": "data:,"}
                )
            ),
            ["body", "messages", 0, "parts", 1],
            "images and files are out of scope",
        ),
        (
            ui_body(
                ui_message("user", {"type": "tool-weather", "toolCallId": "t1", "state": "input-available"})
            ),
            ["body", "messages", 0, "parts", 0],
            "not supported",
        ),
        (
            ui_body(ui_message("user", {"type": "step-start"}), ui_message("assistant", text("  "))),
            ["body", "messages"],
            "no text to send",
        ),
        (ui_body(ui_message("system", text("Be brief."))), ["body", "messages", 0, "role"], "`system` field"),
        ({"messages": []}, ["body", "messages"], "at least 1"),
        (ui_body(model="gpt-4"), ["body", "model"], "must be one of"),
        (ui_body(thinking="loud"), ["body", "thinking"], "'summarized' or 'omitted'"),
        (ui_body(max_tokens=4097), ["body", "max_tokens"], "less than or equal to 4096"),
        (ui_body(sessionId="abc"), ["body", "sessionId"], "not permitted"),
    ],
    ids=[
        "file part",
        "tool part",
        "empty after dropping",
        "system message",
        "no messages",
        "model not allowed",
        "bad thinking",
        "max_tokens over ceiling",
        "unknown option",
    ],
)
def test_invalid_request_is_422_and_never_reaches_upstream(
    client: httpx.Client, fake: FakeAnthropic, body: dict[str, Any], location: list[Any], says: str
) -> None:
    response = client.post("/chat/ui", json=body)

    assert response.status_code == 422
    problems = response.json()["detail"]
    assert any(problem["loc"] == location and says in problem["msg"] for problem in problems), problems
    assert not fake.received


def test_failure_before_the_stream_is_chats_status_and_body(
    client: httpx.Client, fake: FakeAnthropic
) -> None:
    fake.enqueue(*[Reply.error(529, "overloaded_error", "Overloaded")] * 6)  # 3 attempts each

    ui = client.post("/chat/ui", json=ui_body())
    chat = client.post("/chat", json={"messages": [{"role": "user", "content": "Hello"}], "stream": True})

    assert ui.status_code == chat.status_code == 503
    assert ui.json() == chat.json()
    assert ui.json()["detail"]["type"] == "overloaded_error"
    assert ui.headers["retry-after"] == chat.headers["retry-after"]


def test_one_summary_line_per_request(client: httpx.Client, fake: FakeAnthropic, service) -> None:  # type: ignore[no-untyped-def]
    fake.enqueue(Reply.text(["Hi"]))

    with client.stream(
        "POST", "/chat/ui", json=ui_body(), headers={"X-Request-ID": "ui-summary-1"}
    ) as response:
        read_stream(response)

    summary = service.log.summary("ui-summary-1")
    assert summary["path"] == "/chat/ui"
    assert summary["status"] == 200
    assert summary["stream"] is True
    assert summary["outcome"] == "ok"
    assert summary["stop_reason"] == "end_turn"
    assert response.headers["x-request-id"] == "ui-summary-1"


def test_openapi_documents_the_route(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/chat/ui"]["post"]

    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert {"422", "429", "503"} <= set(operation["responses"])
    request = schema["components"]["schemas"]["ChatUIRequest"]["properties"]
    assert {"messages", "system", "model", "max_tokens", "thinking", "effort"} <= set(request)
    assert request["max_tokens"]["anyOf"][0]["maximum"] == 4096  # this deployment's ceiling, as for /chat
