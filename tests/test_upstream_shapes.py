"""Anthropic's answers in all their shapes, and upstream that misbehaves: relayed whole, or ended
with a clear error, never cut silently.

Each shape once over HTTP, on the subprocess: the decoder's and the reader's edge cases (every
line ending split at every byte, malformed events, unknown blocks) are unit tests
(tests/unit/test_sse.py, test_events.py), and the container runs the same code."""

import httpx
import pytest

from fake_anthropic import FakeAnthropic, Reply
from tests.conftest import process_backend_only
from tests.service_client import chat_body, read_stream

pytestmark = process_backend_only

MODES = pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
TOKENS = ["one", " two", " three", " four"]


def answer(client: httpx.Client, stream: bool) -> tuple[int, str, str | None]:
    """Status, text and stop reason, as a frontend would read them in either mode."""
    if not stream:
        response = client.post("/chat", json=chat_body())
        body = response.json()
        return response.status_code, body.get("content", ""), body.get("stop_reason")
    with client.stream("POST", "/chat", json=chat_body(stream=True)) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, "", None
        events = read_stream(response)
    assert events.done
    return 200, events.text, events.events[-2].json["stop_reason"]


@MODES
@pytest.mark.parametrize("stop_reason", ["max_tokens", "refusal", "stop_sequence"])
def test_every_stop_reason_is_relayed(
    client: httpx.Client, fake: FakeAnthropic, stream: bool, stop_reason: str
) -> None:
    fake.enqueue(Reply.text(TOKENS, stop_reason=stop_reason))

    assert answer(client, stream) == (200, "one two three four", stop_reason)


@MODES
def test_an_answer_in_several_text_blocks_is_relayed_whole(
    client: httpx.Client, fake: FakeAnthropic, stream: bool
) -> None:
    fake.enqueue(Reply.text(TOKENS, split_text_at=2))

    assert answer(client, stream) == (200, "one two three four", "end_turn")


@MODES
def test_a_block_of_an_unknown_type_is_skipped(
    client: httpx.Client, fake: FakeAnthropic, stream: bool
) -> None:
    fake.enqueue(Reply.text(TOKENS, unknown_block=True))

    assert answer(client, stream) == (200, "one two three four", "end_turn")


@MODES
@pytest.mark.parametrize("line_ending", ["\r\n", "\r"], ids=["crlf", "cr"])
def test_every_line_ending_of_server_sent_events_is_read(
    client: httpx.Client, fake: FakeAnthropic, stream: bool, line_ending: str
) -> None:
    fake.enqueue(Reply.text(TOKENS, line_ending=line_ending))

    assert answer(client, stream) == (200, "one two three four", "end_turn")


@pytest.mark.parametrize("malformed", ["missing_text", "not_json"])
def test_a_malformed_event_midway_ends_the_stream_with_an_error_event(
    client: httpx.Client, fake: FakeAnthropic, malformed: str
) -> None:
    fake.enqueue(Reply.text(TOKENS, malformed=malformed, malformed_after=2, interval=0.02))

    with client.stream("POST", "/chat", json=chat_body(stream=True)) as response:
        stream = read_stream(response)

    assert stream.text == "one two"
    assert stream.names[-1] == "error"
    assert stream.events[-1].json["error"]["type"] == "upstream_error"
    assert "Anthropic sent" in stream.events[-1].json["error"]["message"]


@MODES
@pytest.mark.parametrize("malformed", ["missing_text", "not_json"])
def test_a_malformed_event_before_any_text_is_retried_then_a_502(
    client: httpx.Client, fake: FakeAnthropic, stream: bool, malformed: str
) -> None:
    fake.enqueue(*[Reply.text(TOKENS, malformed=malformed, malformed_after=0)] * 3)

    with client.stream("POST", "/chat", json=chat_body(stream=stream)) as response:
        response.read()

    assert len(fake.received) == 3
    if response.status_code == 200:
        # The stream had started (Anthropic's message_start came in an earlier read than the
        # malformed event): it ends with the error event instead of a status.
        assert stream
        assert read_stream(response).names == ["start", "error"]
    else:
        assert response.status_code == 502
        assert response.json()["detail"]["type"] == "upstream_error"


@MODES
def test_a_200_that_is_not_an_event_stream_is_a_502(
    client: httpx.Client, fake: FakeAnthropic, stream: bool
) -> None:
    fake.enqueue(*[Reply(raw_body=b"<html>Welcome to the captive portal</html>")] * 3)

    with client.stream("POST", "/chat", json=chat_body(stream=stream)) as response:
        response.read()

    assert response.status_code == 502
    detail = response.json()["detail"]
    assert detail["type"] == "upstream_error"
    assert "instead of an event stream" in detail["message"]
