"""The relay every wire format shares: frames in order, a failure midway as the encoder's error
frame, the answer closed whatever happens, and the outcome said once."""

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from app.chat.answer import AnswerEvent, End, Pieces, Start, Text, Thinking, Usage
from app.chat.errors import ErrorKind, UpstreamError
from app.observability.summary import ChatSummary
from app.streaming.formats.chat_events import ChatEventsEncoder
from app.streaming.relay import relay

START = Start("msg_01", "claude-sonnet-5-5")
THINKING: Pieces = [Thinking("Let me see.")]
HELLO: Pieces = [Text("Hel"), Text("lo")]
END = End("end_turn", Usage(input_tokens=5, output_tokens=7))
ENCODER = ChatEventsEncoder()  # stateless: the expected frames
FAILED_MIDWAY = ENCODER.error(
    "internal_error", "The service failed while relaying the answer; send the request again."
)


class FakeAnswer:
    """The answer's events after its start, then optionally a failure; remembers being closed."""

    def __init__(self, events: list[AnswerEvent], failure: BaseException | None = None) -> None:
        self.events = events
        self.failure = failure
        self.closed = False
        self.stream = self._stream()

    async def _stream(self) -> AsyncGenerator[AnswerEvent, None]:
        try:
            for event in self.events:
                yield event
            if self.failure is not None:
                raise self.failure
        finally:
            self.closed = True


def summary() -> ChatSummary:
    return ChatSummary(model="claude-sonnet-5-5", stream=True)


def relayed(answer: FakeAnswer, chat: ChatSummary, encoder: ChatEventsEncoder = ENCODER) -> list[bytes]:
    async def frames() -> list[bytes]:
        return [frame async for frame in relay(START, answer.stream, chat, encoder)]

    return asyncio.run(frames())


def test_an_answer_is_its_start_its_pieces_and_its_end() -> None:
    chat = summary()
    answer = FakeAnswer([THINKING, HELLO, END])
    assert relayed(answer, chat) == [
        ENCODER.start(START),
        ENCODER.pieces(THINKING),
        ENCODER.pieces(HELLO),
        ENCODER.end(END),
    ]
    assert chat.outcome == "ok"
    assert chat.error_type is None
    assert chat.ttft_ms is not None
    assert answer.closed


def test_thinking_alone_is_no_first_text() -> None:
    chat = summary()
    relayed(FakeAnswer([THINKING, End("max_tokens", Usage())]), chat)
    assert chat.ttft_ms is None
    assert chat.outcome == "ok"


def test_an_upstream_error_midway_is_the_encoders_error_frame(logs: list[dict[str, Any]]) -> None:
    chat = summary()
    failure = UpstreamError(ErrorKind.OVERLOADED, "Overloaded", retryable=True, request_id="req_7")
    frames = relayed(FakeAnswer([HELLO], failure), chat)
    assert frames == [
        ENCODER.start(START),
        ENCODER.pieces(HELLO),
        ENCODER.error("overloaded_error", "Overloaded"),
    ]
    assert b"[DONE]" not in b"".join(frames)
    assert (chat.outcome, chat.error_type, chat.upstream_request_id) == (
        "upstream_error",
        "overloaded_error",
        "req_7",
    )


def test_a_bug_in_the_answer_midway_is_an_internal_error_frame(logs: list[dict[str, Any]]) -> None:
    chat = summary()
    answer = FakeAnswer([HELLO], RuntimeError("a bug"))
    frames = relayed(answer, chat)
    assert frames == [ENCODER.start(START), ENCODER.pieces(HELLO), FAILED_MIDWAY]
    assert b"[DONE]" not in b"".join(frames)
    assert (chat.outcome, chat.error_type) == ("internal_error", "internal_error")
    assert [(log["event"], log["log_level"], log.get("exc_info")) for log in logs] == [
        ("stream_internal_error", "error", True)  # with its traceback, for whoever fixes the bug
    ]


class BrokenEncoder(ChatEventsEncoder):
    """Fails on the second batch of pieces: a bug of ours while the answer is still going."""

    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    def pieces(self, pieces: Pieces) -> bytes:
        self.batches += 1
        if self.batches == 2:
            raise RuntimeError("a bug")
        return super().pieces(pieces)


def test_a_bug_of_ours_midway_closes_the_answer_and_sends_the_internal_error_frame() -> None:
    chat = summary()
    answer = FakeAnswer([HELLO, HELLO, HELLO, END])
    closed_when_sent: list[bool] = []

    async def frames() -> list[bytes]:
        received: list[bytes] = []
        async for frame in relay(START, answer.stream, chat, BrokenEncoder()):
            received.append(frame)
            closed_when_sent.append(answer.closed)
        return received

    assert asyncio.run(frames()) == [ENCODER.start(START), ENCODER.pieces(HELLO), FAILED_MIDWAY]
    # It was suspended mid-answer: closed (and with it the upstream call) before the error frame
    # goes out, so a client slow to read it does not keep Anthropic generating.
    assert closed_when_sent == [False, False, True]
    assert chat.outcome == "internal_error"


def close_after(frames_wanted: int, answer: FakeAnswer, chat: ChatSummary) -> list[bytes]:
    async def client() -> list[bytes]:
        frames = relay(START, answer.stream, chat, ENCODER)
        received = [await anext(frames) for _ in range(frames_wanted)]
        await frames.aclose()  # the client went away (or the server is shutting the stream)
        return received

    return asyncio.run(client())


@pytest.mark.parametrize(("shutdown", "outcome"), [(False, "client_disconnected"), (True, "shutdown")])
def test_closing_the_relay_midway_closes_the_answer(shutdown: bool, outcome: str) -> None:
    chat = summary()
    if shutdown:
        chat.mark_ended_by_shutdown()
    answer = FakeAnswer([HELLO, HELLO, END])
    assert close_after(2, answer, chat) == [ENCODER.start(START), ENCODER.pieces(HELLO)]
    assert answer.closed
    assert chat.outcome == outcome
    assert chat.error_type is None


@pytest.mark.parametrize(("shutdown", "outcome"), [(False, "client_disconnected"), (True, "shutdown")])
def test_closing_the_relay_after_the_start_closes_the_unread_answer(shutdown: bool, outcome: str) -> None:
    chat = summary()
    if shutdown:
        chat.mark_ended_by_shutdown()
    answer = FakeAnswer([HELLO, END])
    assert close_after(1, answer, chat) == [ENCODER.start(START)]

    async def read_on() -> None:
        with pytest.raises(StopAsyncIteration):  # closed before it started: nothing more to read
            await anext(answer.stream)

    asyncio.run(read_on())
    assert chat.outcome == outcome


def test_a_cancellation_midway_propagates_and_counts_as_the_client_gone() -> None:
    chat = summary()
    answer = FakeAnswer([HELLO], asyncio.CancelledError())

    received: list[bytes] = []

    async def frames() -> None:
        async for frame in relay(START, answer.stream, chat, ENCODER):
            received.append(frame)

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(frames())
    assert received == [ENCODER.start(START), ENCODER.pieces(HELLO)]
    assert chat.outcome == "client_disconnected"
