"""POST /chat answers: one JSON body, or a stream of events, relaying exactly what Claude said."""

import time

import httpx

from fake_anthropic import TRICKY_TOKENS, FakeAnthropic, Reply, input_tokens
from tests.conftest import CURRENT_MODEL
from tests.service_client import chat_body, iter_events, read_stream


def test_json_answer_can_be_appended_to_the_history(client: httpx.Client, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.text(TRICKY_TOKENS))

    response = client.post("/chat", json=chat_body("Say hello"))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body == {
        "id": body["id"],
        "model": CURRENT_MODEL,
        "role": "assistant",
        "content": "".join(TRICKY_TOKENS),
        "thinking": None,
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": input_tokens(fake.received[-1].body),
            "output_tokens": len(TRICKY_TOKENS),
            "cache_creation_input_tokens": 0,  # below the cache's minimum size
            "cache_read_input_tokens": 0,
        },
        # The configured model's window is known from start-up (the model check asks for it).
        "context": {"used": input_tokens(fake.received[-1].body) + len(TRICKY_TOKENS), "window": 200_000},
    }
    assert body["id"].startswith("msg_")


def test_stream_relays_every_token_byte_for_byte_and_ends_with_done(
    client: httpx.Client, fake: FakeAnthropic, resumption_on: bool
) -> None:
    fake.enqueue(Reply.text(TRICKY_TOKENS))

    with client.stream("POST", "/chat", json=chat_body(stream=True)) as response:
        stream = read_stream(response)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert stream.names == ["start", *["delta"] * len(TRICKY_TOKENS), "end", None]
    assert [event.json["text"] for event in stream.deltas] == list(TRICKY_TOKENS)
    start, end = stream.events[0].json, stream.events[-2].json
    # A resumable answer numbers its events and says under which id to come back for it.
    resumable = {"stream_id": start["stream_id"]} if resumption_on else {}
    assert start == {"type": "start", "id": start["id"], "model": CURRENT_MODEL, **resumable}
    count = len(stream.events)
    ids = [str(number) for number in range(1, count + 1)] if resumption_on else [None] * count
    assert [event.id for event in stream.events] == ids
    usage = {
        "input_tokens": input_tokens(fake.received[-1].body),
        "output_tokens": len(TRICKY_TOKENS),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    context = {"used": usage["input_tokens"] + usage["output_tokens"], "window": 200_000}
    assert end == {"type": "end", "stop_reason": "end_turn", "usage": usage, "context": context}
    assert all(event.json["type"] == event.name for event in stream.events[:-1])
    assert stream.done


def test_stream_delivers_tokens_as_they_are_generated(client: httpx.Client, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.text(["one", " two", " three", " four", " five"], interval=0.25))

    with client.stream("POST", "/chat", json=chat_body(stream=True)) as response:
        events = iter_events(response)
        first = next(event for event in events if event.name == "delta")
        upstream_done_at_first_token = fake.received[-1].finished
        rest = list(events)

    assert first.json["text"] == "one"
    assert not upstream_done_at_first_token, "the first token waited for the whole answer"
    last = [event for event in rest if event.name == "delta"][-1]
    assert last.at - first.at >= 0.9  # four pauses of 0.25 s, relayed as they happened


def test_upstream_connections_are_reused_across_streams(client: httpx.Client, fake: FakeAnthropic) -> None:
    client.post("/chat", json=chat_body())  # makes sure a pooled connection exists
    before = fake.connections

    for _ in range(6):
        with client.stream("POST", "/chat", json=chat_body(stream=True)) as response:
            assert read_stream(response).done

    assert fake.connections - before <= 2  # at most one new connection per worker


def test_slow_stream_gets_keep_alive_comments(client: httpx.Client, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.text(["slow", " answer"], interval=1.0))  # service pings every 0.3 s

    with client.stream("POST", "/chat", json=chat_body(stream=True)) as response:
        stream = read_stream(response)

    assert stream.pings >= 2
    assert stream.text == "slow answer"
    assert stream.done


def test_history_system_prompt_and_limits_reach_upstream_unchanged(
    client: httpx.Client, fake: FakeAnthropic
) -> None:
    history = [
        {"role": "user", "content": "Name a prime."},
        {"role": "assistant", "content": "7"},
        {"role": "user", "content": "Another, bigger — with 🙂?"},
    ]
    for stream in (False, True):
        response = client.post(
            "/chat",
            json={
                "messages": history,
                "system": "Answer in one word.",
                "max_tokens": 77,
                "model": "claude-haiku-4-5",
                "stream": stream,
            },
        )
        assert response.status_code == 200
        sent = fake.received[-1].body
        assert sent["messages"] == history
        assert sent["system"] == "Answer in one word."
        assert sent["max_tokens"] == 77
        assert sent["model"] == "claude-haiku-4-5"
        assert sent["stream"] is True  # JSON mode reads Anthropic's stream too


def test_server_defaults_fill_what_the_request_leaves_out(client: httpx.Client, fake: FakeAnthropic) -> None:
    client.post("/chat", json=chat_body())

    sent = fake.received[-1].body
    assert sent["model"] == CURRENT_MODEL
    assert sent["system"] == "You are the default assistant."
    assert sent["max_tokens"] == 256
    assert set(sent) == {"model", "system", "max_tokens", "messages", "stream", "cache_control"}


def test_an_empty_system_prompt_means_none_not_the_server_default(
    client: httpx.Client, fake: FakeAnthropic
) -> None:
    for stream in (False, True):
        response = client.post("/chat", json=chat_body(system="", stream=stream))

        assert response.status_code == 200
        assert "system" not in fake.received[-1].body


def test_health_answers_without_calling_upstream(client: httpx.Client, fake: FakeAnthropic) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert not fake.received


def test_openapi_documents_the_contract(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/chat"]["post"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert {"400", "401", "429", "502", "503", "504"} <= set(operation["responses"])
    request = spec["components"]["schemas"]["ChatRequest"]
    assert request["additionalProperties"] is False
    assert set(request["properties"]) == {
        "messages",
        "stream",
        "system",
        "model",
        "max_tokens",
        "thinking",
        "effort",
        "compaction",
    }
    assert request["properties"]["effort"]["anyOf"][0]["enum"] == ["low", "medium", "high", "xhigh", "max"]


def test_request_id_is_echoed_or_made(client: httpx.Client) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "frontend-42"})
    made = client.get("/healthz")
    spoofed = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})

    assert given.headers["x-request-id"] == "frontend-42"
    assert len(made.headers["x-request-id"]) == 32
    assert spoofed.headers["x-request-id"] != "bad id\twith spaces"


def test_first_token_time_is_close_to_upstreams(client: httpx.Client, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.text(["quick"] * 3, interval=0.5))
    started = time.monotonic()
    with client.stream("POST", "/chat", json=chat_body(stream=True)) as response:
        first = next(event for event in iter_events(response) if event.name == "delta")
        assert first.at - started < 0.4  # the fake sends the first token at once
