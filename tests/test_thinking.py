"""Today's Claude thinks before it answers: the stream speaks at once, shows the thinking, and a
long think is neither cut nor paid for twice."""

import time

import httpx
import pytest

from fake_anthropic import FakeAnthropic, Reply
from tests.conftest import Service, process_backend_only
from tests.service_client import EventStream, chat_body, iter_events, read_stream

MODES = pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
SUMMARY = ["The user greets me. ", "A short greeting ", "fits best."]


def test_stream_starts_and_pings_while_the_model_thinks(client: httpx.Client, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.text(["Hi", " there"], thinking_seconds=2.0))
    sent_at = time.monotonic()

    with client.stream("POST", "/chat", json=chat_body(stream=True)) as response:
        stream = EventStream(response)
        events = iter_events(response, stream)
        start = next(events)
        first_text = next(event for event in events if event.name == "delta")
        pings_before_text = stream.pings
        list(events)

    assert start.name == "start"
    assert start.at - sent_at < (first_text.at - sent_at) / 4, "start waited for the thinking"
    assert stream.names[:2] == ["start", "thinking"]  # a UI can say "Thinking…" at once
    assert pings_before_text >= 2  # the service's pings (every 0.3 s) kept the connection alive
    assert stream.text == "Hi there"
    assert stream.done


def test_summarized_thinking_is_relayed_in_order_before_the_text(
    client: httpx.Client, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text(["Hello", "!"], thinking=SUMMARY, thinking_seconds=0.3))

    with client.stream("POST", "/chat", json=chat_body(stream=True, thinking="summarized")) as response:
        stream = read_stream(response)

    assert stream.names == ["start", "thinking", "thinking", "thinking", "delta", "delta", "end", None]
    assert [event.json for event in stream.events if event.name == "thinking"] == [
        {"type": "thinking", "text": piece} for piece in SUMMARY
    ]
    assert stream.text == "Hello!"
    assert fake.received[-1].body["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert not any("signature" in event.data for event in stream.events)  # never reaches the client


@pytest.mark.parametrize(
    "reply", [Reply.text(["Hi"], thinking=SUMMARY), Reply.text(["Hi"], redacted_thinking=True)]
)
def test_thinking_that_is_not_shown_is_one_empty_thinking_event(
    client: httpx.Client, fake: FakeAnthropic, reply: Reply
) -> None:
    fake.enqueue(reply)

    with client.stream("POST", "/chat", json=chat_body(stream=True, thinking="omitted")) as response:
        stream = read_stream(response)

    assert stream.names == ["start", "thinking", "delta", "end", None]
    assert stream.events[1].json == {"type": "thinking", "text": ""}
    assert stream.text == "Hi"


@pytest.mark.parametrize("fault", ["error", "reset", "truncate", "stall"])
def test_a_failure_while_thinking_is_retried_invisibly(
    client: httpx.Client, fake: FakeAnthropic, fault: str
) -> None:
    fake.enqueue(
        Reply.text(["lost"], thinking_seconds=0.2, fault_while_thinking=fault),
        Reply.text(["Hello", " again"], thinking_seconds=0.1),
    )

    with client.stream("POST", "/chat", json=chat_body(stream=True)) as response:
        stream = read_stream(response)

    assert stream.names.count("start") == 1
    assert "error" not in stream.names
    assert stream.text == "Hello again"
    assert stream.done
    assert len(fake.received) == 2


def test_a_failure_after_thinking_text_was_shown_ends_the_stream_with_an_error(
    client: httpx.Client, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text(["never"], thinking=SUMMARY, thinking_seconds=0.3, fault_while_thinking="error"))

    with client.stream("POST", "/chat", json=chat_body(stream=True, thinking="summarized")) as response:
        stream = read_stream(response)

    assert stream.names[:2] == ["start", "thinking"]
    assert stream.names[-1] == "error"
    assert stream.events[-1].json["error"]["type"] == "overloaded_error"
    assert not stream.done
    assert len(fake.received) == 1  # text already shown: a second answer would contradict it


def test_json_answer_survives_a_think_longer_than_the_read_timeout(
    client: httpx.Client, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text(["Done", "."], thinking=SUMMARY, thinking_seconds=2.4))  # read time-out: 1.5 s

    response = client.post("/chat", json=chat_body(thinking="summarized"))

    assert response.status_code == 200
    body = response.json()
    assert body["content"] == "Done."
    assert body["thinking"] == "".join(SUMMARY)
    assert body["usage"]["output_tokens"] == 2 + len(SUMMARY)  # thinking counts as output
    assert len(fake.received) == 1


def test_json_answer_has_no_thinking_unless_summarized(client: httpx.Client, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.text(["Yes"], thinking=SUMMARY))

    body = client.post("/chat", json=chat_body()).json()

    assert body["content"] == "Yes"
    assert body["thinking"] is None


@MODES
def test_thinking_and_effort_reach_upstream_only_when_set(
    client: httpx.Client, fake: FakeAnthropic, stream: bool
) -> None:
    with client.stream("POST", "/chat", json=chat_body(stream=stream)) as response:
        response.read()
    plain = fake.received[-1].body
    with client.stream(
        "POST", "/chat", json=chat_body(stream=stream, thinking="omitted", effort="xhigh")
    ) as response:
        response.read()
    chosen = fake.received[-1].body

    assert "thinking" not in plain
    assert "output_config" not in plain
    assert chosen["thinking"] == {"type": "adaptive", "display": "omitted"}
    assert chosen["output_config"] == {"effort": "xhigh"}


@process_backend_only  # a service of its own; the resolution is a unit test (test_chat_params.py)
def test_server_defaults_for_thinking_and_effort_yield_to_the_request(
    start_service, fake: FakeAnthropic
) -> None:  # type: ignore[no-untyped-def]
    service: Service = start_service(CHAT_THINKING="summarized", CHAT_EFFORT="low")
    with httpx.Client(base_url=service.url, timeout=15) as client:
        client.post("/chat", json=chat_body())
        defaults = fake.received[-1].body
        client.post("/chat", json=chat_body(thinking="omitted", effort="max"))
        chosen = fake.received[-1].body

    assert defaults["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert defaults["output_config"] == {"effort": "low"}
    assert chosen["thinking"] == {"type": "adaptive", "display": "omitted"}
    assert chosen["output_config"] == {"effort": "max"}


@pytest.mark.parametrize(
    "options",
    [
        {"thinking": "verbose"},
        {"thinking": True},
        {"effort": "extreme"},
        {"effort": "HIGH"},
        {"thinking": None, "effort": 3},
    ],
)
def test_bad_thinking_or_effort_options_are_rejected(
    client: httpx.Client, fake: FakeAnthropic, options: dict[str, object]
) -> None:
    response = client.post("/chat", json=chat_body(**options))

    assert response.status_code == 422
    assert {error["loc"][-1] for error in response.json()["detail"]} & {"thinking", "effort"}
    assert not fake.received


def test_a_model_that_refuses_the_option_is_relayed_as_400(client: httpx.Client, fake: FakeAnthropic) -> None:
    # Today's models answer 400 to a prefilled assistant turn; the service relays Anthropic's words.
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]

    response = client.post("/chat", json={"messages": history})

    assert response.status_code == 400
    assert "prefill" in response.json()["detail"]["message"]
