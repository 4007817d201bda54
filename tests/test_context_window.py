"""How full a conversation is: the meter on every answer, counting before sending, and the turn
that no longer fits the model's context window, refused with a typed error."""

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fake_anthropic import FakeAnthropic, Reply
from tests.conftest import CURRENT_MODEL, Service, process_backend_only
from tests.service_client import chat_body, read_stream

pytestmark = process_backend_only

# The service's default system prompt ("You are the default assistant.") counts in the fake's estimate.
SYSTEM_WORDS = 5
WINDOW = 200_000  # the fake's max_input_tokens for a model the test gives none


def words(count: int, word: str = "word") -> str:
    return " ".join([word] * count)


def conversation(*turns: str) -> list[dict[str, str]]:
    roles = ("user", "assistant")
    return [{"role": roles[number % 2], "content": text} for number, text in enumerate(turns)]


def prompt_of(usage: dict[str, int]) -> int:
    return usage["input_tokens"] + usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"]


def end_event(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    with client.stream("POST", "/chat", json={**body, "stream": True}) as response:
        stream = read_stream(response)
    assert response.status_code == 200
    assert stream.names[-2] == "end"
    end: dict[str, Any] = stream.events[-2].json
    return end


def test_json_answer_says_how_full_the_conversation_is(client: httpx.Client, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.text(["Seven", " and", " eleven."]))

    turns = conversation("Name two primes please", "Two and three", "Two more")
    body = client.post("/chat", json={"messages": turns}).json()

    # 4 + 3 + 2 words of conversation and the system prompt's 5, then 3 tokens of answer.
    assert body["usage"]["input_tokens"] == 9 + SYSTEM_WORDS
    assert body["context"] == {"used": 9 + SYSTEM_WORDS + 3, "window": WINDOW}


def test_stream_end_says_the_same(client: httpx.Client, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.text(["Seven", " and", " eleven."]))

    end = end_event(client, {"messages": conversation("Name two primes please", "Two and three", "Two more")})

    assert end["context"] == {"used": 9 + SYSTEM_WORDS + 3, "window": WINDOW}


def test_the_meter_counts_the_prompt_cache_and_grows_turn_by_turn(
    client: httpx.Client, fake: FakeAnthropic
) -> None:
    # Long enough to be cached: the second turn reads the first from the cache and writes the rest.
    history = [words(1500)]
    used = []
    for answer in (["a"] * 10, ["b"] * 20):
        fake.enqueue(Reply.text(answer))
        body = client.post("/chat", json={"messages": conversation(*history)}).json()
        usage = body["usage"]
        assert body["context"] == {"used": prompt_of(usage) + usage["output_tokens"], "window": WINDOW}
        used.append(body["context"]["used"])
        history += [body["content"], words(100, "more")]

    assert usage["cache_read_input_tokens"] > 0  # the second turn's prompt was partly cached
    assert used == [1500 + SYSTEM_WORDS + 10, 1500 + SYSTEM_WORDS + 1 + 100 + 20]


def test_a_models_window_is_null_until_looked_up_then_known(
    start_service: Callable[..., Service], fake: FakeAnthropic
) -> None:
    other = "claude-haiku-4-5"
    # A service of its own: no earlier test has made it look this model up.
    service = start_service(CHAT_ALLOWED_MODELS=f"{CURRENT_MODEL},{other}")
    fake.context_windows[other] = 64_000
    looked_up_before = list(fake.model_lookups).count(other)
    with httpx.Client(base_url=service.url, timeout=10) as client:
        first = client.post("/chat", json=chat_body(model=other)).json()
        assert first["context"]["window"] is None  # the look-up was started, not waited for
        assert fake.wait_for(lambda: list(fake.model_lookups).count(other) > looked_up_before)
        windows = []
        deadline = time.monotonic() + 5
        while not windows or (windows[-1] is None and time.monotonic() < deadline):
            windows.append(end_event(client, chat_body(model=other))["context"]["window"])
    assert windows[-1] == 64_000
    assert list(fake.model_lookups).count(other) == looked_up_before + 1  # once per model per process


def test_count_tokens_is_the_next_turns_billed_input(client: httpx.Client, fake: FakeAnthropic) -> None:
    # With the prompt cache at work: a first turn writes it, the counted turn reads part of it.
    history = conversation(words(1200), "Noted.", words(300, "and"))
    options = {"system": "Be brief and kind.", "thinking": "summarized", "effort": "low"}
    fake.enqueue(Reply.text(["Noted."]))
    assert client.post("/chat", json={"messages": history[:1], **options}).status_code == 200

    counted = client.post("/chat/count_tokens", json={"messages": history, **options})

    assert counted.status_code == 200
    assert counted.json() == {"input_tokens": 1200 + 1 + 300 + 4, "context_window": WINDOW}
    asked = fake.received[-1]
    assert asked.path == "/v1/messages/count_tokens"
    # Counted as it would be sent: the same prompt and options, none of what counting does not take.
    assert asked.body == {
        "model": CURRENT_MODEL,
        "messages": history,
        "system": "Be brief and kind.",
        "thinking": {"type": "adaptive", "display": "summarized"},
        "output_config": {"effort": "low"},
        "cache_control": {"type": "ephemeral"},
    }
    fake.enqueue(Reply.text(["Fine."]))
    usage = client.post("/chat", json={"messages": history, **options}).json()["usage"]
    assert usage["cache_read_input_tokens"] > 0
    assert prompt_of(usage) == counted.json()["input_tokens"]


def test_count_tokens_uses_the_configured_system_prompt_and_logs_a_summary(
    service: Service, client: httpx.Client, fake: FakeAnthropic
) -> None:
    response = client.post(
        "/chat/count_tokens", json=chat_body("Three words here"), headers={"x-request-id": "count-1"}
    )

    assert response.json()["input_tokens"] == 3 + SYSTEM_WORDS
    assert fake.received[-1].body["system"] == "You are the default assistant."
    summary = service.log.summary("count-1")
    assert (summary["path"], summary["status"], summary["outcome"]) == ("/chat/count_tokens", 200, "ok")
    scrape = httpx.get(f"{service.url}/metrics", timeout=5).text
    counted = [
        sample.value
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
        if sample.name == "chat_requests_total" and sample.labels.get("mode") == "count_tokens"
    ]
    assert sum(counted) >= 1


def test_count_tokens_is_retried_and_its_errors_mapped_like_chat(
    client: httpx.Client, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.error(529, "overloaded_error"), Reply.text())
    assert client.post("/chat/count_tokens", json=chat_body("Hi")).json()["input_tokens"] == 1 + SYSTEM_WORDS
    assert len(fake.received) == 2

    fake.enqueue(Reply.error(403, "permission_error", "not allowed"))
    refused = client.post("/chat/count_tokens", json=chat_body("Hi"))
    assert refused.status_code == 403
    assert refused.json() == {"detail": {"type": "permission_error", "message": "not allowed"}}


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"messages": []}, ["body", "messages"]),
        ({**chat_body(), "stream": True}, ["body", "stream"]),
        ({**chat_body(), "max_tokens": 0}, ["body", "max_tokens"]),
    ],
    ids=["no messages", "stream is not counted", "invalid option"],
)
def test_count_tokens_validates_like_chat(
    client: httpx.Client, fake: FakeAnthropic, body: dict[str, Any], where: list[str]
) -> None:
    response = client.post("/chat/count_tokens", json=body)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == where
    assert len(fake.received) == 0


def overflow(client: httpx.Client, mode: str, body: dict[str, Any]) -> httpx.Response:
    if mode == "ui":
        text = body["messages"][0]["content"]
        ui = {
            "id": "c1",
            "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": text}]}],
        }
        return client.post("/chat/ui", json=ui)
    return client.post("/chat", json={**body, "stream": mode == "stream"})


@pytest.mark.parametrize("mode", ["json", "stream", "ui"])
def test_a_conversation_over_the_window_is_a_typed_error_not_retried(
    client: httpx.Client, fake: FakeAnthropic, mode: str
) -> None:
    fake.context_windows[CURRENT_MODEL] = 2_000

    response = overflow(client, mode, chat_body(words(2_996)))

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert detail == {
        "type": "context_window_exceeded",
        "message": "The conversation is too long for the model's context window (3,001 tokens, the "
        "model takes 2,000): start a new conversation, or shorten this one.",
        "input_tokens": 3_001,
        "context_window": 2_000,
    }
    assert len(fake.received) == 1  # not retried, and no fallback


def test_without_figures_from_anthropic_the_window_is_the_catalogs(
    client: httpx.Client, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.error(400, "invalid_request_error", "prompt is too long"))

    detail = client.post("/chat", json=chat_body()).json()["detail"]

    assert (detail["type"], detail["input_tokens"], detail["context_window"]) == (
        "context_window_exceeded",
        None,
        WINDOW,
    )


def test_an_answer_that_ran_into_the_window_says_so(client: httpx.Client, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.text(["Cut"], stop_reason="model_context_window_exceeded"))
    assert client.post("/chat", json=chat_body()).json()["stop_reason"] == "model_context_window_exceeded"

    fake.enqueue(Reply.text(["Cut"], stop_reason="model_context_window_exceeded"))
    ui = {"id": "c1", "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "Hi"}]}]}
    with client.stream("POST", "/chat/ui", json=ui) as response:
        chunks = [event.json for event in read_stream(response).events if event.data != "[DONE]"]
    assert chunks[-1] == {"type": "finish", "finishReason": "length"}
    assert chunks[-2]["messageMetadata"]["stopReason"] == "model_context_window_exceeded"


def test_after_a_fallback_the_window_is_the_answering_models(
    start_service: Callable[..., Service], fake: FakeAnthropic
) -> None:
    fallback = "claude-opus-4-1"
    fake.context_windows[fallback] = 100_000  # as the model check reads it at start-up
    service = start_service(CHAT_FALLBACK_MODELS=fallback)
    fake.context_windows[fallback] = 100_000  # the fake forgets it between tests
    fake.overloaded_models.add(CURRENT_MODEL)
    fake.enqueue(Reply.text(["From", " the", " fallback."]))

    body = httpx.post(f"{service.url}/chat", json=chat_body("Hi"), timeout=10).json()

    assert body["model"] == fallback
    assert body["context"] == {"used": 1 + SYSTEM_WORDS + 3, "window": 100_000}


def test_openapi_documents_count_tokens_and_the_meter(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]

    operation = spec["paths"]["/chat/count_tokens"]["post"]
    assert {"400", "429", "502", "503"} <= set(operation["responses"])
    request = schemas["CountTokensRequest"]
    assert set(request["properties"]) == set(schemas["ChatRequest"]["properties"]) - {"stream"}
    assert request["properties"]["max_tokens"] == schemas["ChatRequest"]["properties"]["max_tokens"]
    assert set(schemas["CountTokensResponse"]["properties"]) == {"input_tokens", "context_window"}
    assert set(schemas["ContextUse"]["properties"]) == {"used", "window"}
    assert "context" in schemas["ChatResponse"]["properties"]
    assert {"input_tokens", "context_window"} <= set(schemas["ErrorDetail"]["properties"])
