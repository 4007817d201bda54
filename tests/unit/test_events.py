"""The event reader: what Anthropic's events mean, as pieces, a start and an end."""

from typing import Any

import pytest

from app.chat.answer import Compacted, Handover, Pieces, Text, Thinking, Usage
from app.chat.errors import ErrorKind, UpstreamError
from app.chat.params import ChatParams, ModelChoice
from app.config import ThinkingDisplay
from app.upstream.events import EventReader

MODEL = "claude-sonnet-5-5"


def params(thinking: ThinkingDisplay | None = None, *, configured: bool = True) -> ChatParams:
    return ChatParams(
        model=ModelChoice(MODEL, configured=configured),
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=1024,
        system=None,
        thinking=thinking,
    )


def message_start(**usage: int) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-5-5-20260101",
            "content": [],
            "stop_reason": None,
            "usage": usage or {"input_tokens": 25, "output_tokens": 1},
        },
    }


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def delta(index: int, **fields: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": fields}


def text(index: int, value: str) -> dict[str, Any]:
    return delta(index, type="text_delta", text=value)


def block_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


PING = {"type": "ping"}
SIGNATURE = delta(0, type="signature_delta", signature="EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgx")
MESSAGE_STOP = {"type": "message_stop"}


def message_delta(stop_reason: str | None = "end_turn", **usage: object) -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": usage or {"output_tokens": 42},
    }


THINKING_BLOCK = block_start(0, {"type": "thinking", "thinking": "", "signature": ""})
TEXT_BLOCK = block_start(1, {"type": "text", "text": ""})

SUMMARIZED = [
    message_start(),
    THINKING_BLOCK,
    PING,
    delta(0, type="thinking_delta", thinking="Let me think"),
    delta(0, type="thinking_delta", thinking=" about it."),
    SIGNATURE,
    block_stop(0),
    TEXT_BLOCK,
    text(1, "Hello"),
    text(1, ', "world" \\ 🙂'),
    block_stop(1),
    message_delta(),
    MESSAGE_STOP,
]
OMITTED = [
    message_start(),
    THINKING_BLOCK,
    SIGNATURE,
    block_stop(0),
    TEXT_BLOCK,
    text(1, "Hello"),
    block_stop(1),
    message_delta(),
    MESSAGE_STOP,
]


def test_summarized_thinking_is_its_text_then_the_answer() -> None:
    reader = EventReader(params("summarized"))
    assert reader.read(SUMMARIZED) == (
        [Thinking("Let me think"), Thinking(" about it."), Text("Hello"), Text(', "world" \\ 🙂')],
        None,
    )


def test_reading_event_by_event_gives_the_same_pieces() -> None:
    reader = EventReader(params("summarized"))
    pieces: Pieces = []
    for event in SUMMARIZED:
        batch, error = reader.read([event])
        assert error is None
        pieces += batch
    assert pieces == EventReader(params("summarized")).read(SUMMARIZED)[0]


@pytest.mark.parametrize("thinking", ["omitted", None])
def test_thinking_not_shown_is_one_marker_at_the_block_start(thinking: ThinkingDisplay | None) -> None:
    # An empty Thinking: the marker an encoder shows as "the model is thinking"; the signature is no piece.
    assert EventReader(params(thinking)).read(OMITTED) == ([Thinking(""), Text("Hello")], None)


@pytest.mark.parametrize("thinking", ["summarized", "omitted"])
def test_a_redacted_thinking_block_is_the_marker_even_when_summarized(thinking: ThinkingDisplay) -> None:
    events = [message_start(), block_start(0, {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"})]
    assert EventReader(params(thinking)).read(events) == ([Thinking("")], None)


def test_an_empty_thinking_delta_is_no_piece() -> None:
    events = [message_start(), THINKING_BLOCK, delta(0, type="thinking_delta", thinking="")]
    assert EventReader(params("summarized")).read(events) == ([], None)


def test_a_text_block_that_starts_with_text_keeps_it() -> None:
    events = [message_start(), block_start(0, {"type": "text", "text": "Hi"}), text(0, "!")]
    assert EventReader(params()).read(events) == ([Text("Hi"), Text("!")], None)


def test_unknown_blocks_events_and_deltas_are_skipped() -> None:
    events = [
        message_start(),
        block_start(0, {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}),
        delta(0, type="input_json_delta", partial_json='{"city": "Par'),
        block_stop(0),
        {"type": "an_event_added_later", "payload": {"x": 1}},
        TEXT_BLOCK,
        delta(1, type="citations_delta", citation={"type": "char_location"}),
        text(1, "Hello"),
        block_start(2, {"type": "a_block_added_later"}),
        PING,
        message_delta(),
        MESSAGE_STOP,
    ]
    reader = EventReader(params("summarized"))
    assert reader.read(events) == ([Text("Hello")], None)
    assert reader.finished


def in_band_error(error_type: str, message: str = "Overloaded") -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


@pytest.mark.parametrize(
    ("error_type", "kind", "retryable"),
    [
        ("overloaded_error", ErrorKind.OVERLOADED, True),
        ("rate_limit_error", ErrorKind.RATE_LIMITED, True),
        ("api_error", ErrorKind.UPSTREAM, True),
        ("invalid_request_error", ErrorKind.BAD_REQUEST, False),
        ("an_error_added_later", ErrorKind.UPSTREAM, True),
    ],
)
def test_an_in_band_error_is_returned_with_the_pieces_before_it(
    error_type: str, kind: ErrorKind, retryable: bool
) -> None:
    events = [message_start(), TEXT_BLOCK, text(1, "Hel"), in_band_error(error_type), text(1, "lo")]
    pieces, error = EventReader(params()).read(events)
    assert pieces == [Text("Hel")]
    assert isinstance(error, UpstreamError)
    assert (error.kind, error.retryable, error.message) == (kind, retryable, "Overloaded")


def test_an_in_band_not_found_error_names_the_configured_model() -> None:
    _, error = EventReader(params(configured=True)).read([in_band_error("not_found_error", "model: x")])
    assert error is not None
    assert error.kind is ErrorKind.CONFIGURED_MODEL_NOT_FOUND
    assert "CHAT_MODEL" in error.message


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"type": "content_block_delta", "index": 1}, id="a delta without its delta"),
        pytest.param(
            {"type": "content_block_delta", "index": 1, "delta": "Hi"}, id="a delta that is a string"
        ),
        pytest.param(delta(1, type="text_delta"), id="a text delta without text"),
        pytest.param(delta(1, type="text_delta", text=None), id="a text delta with null text"),
        pytest.param(delta(1, type="text_delta", text=5), id="a text delta with a number"),
        pytest.param(delta(1, type="thinking_delta"), id="a thinking delta without thinking"),
        pytest.param(delta(1, type="thinking_delta", thinking=["x"]), id="a thinking delta with a list"),
        pytest.param({"type": "content_block_start", "index": 2}, id="a block start without its block"),
        pytest.param({"type": "content_block_start", "content_block": None}, id="a block start with null"),
        pytest.param({"type": "message_start"}, id="a message start without its message"),
        pytest.param({"type": "message_start", "message": "msg"}, id="a message start with a string"),
    ],
)
def test_a_malformed_event_fails_the_answer_after_the_pieces_before_it(bad: dict[str, Any]) -> None:
    events = [message_start(), TEXT_BLOCK, text(1, "Hel"), bad, text(1, "lo")]
    pieces, error = EventReader(params()).read(events)
    assert pieces == [Text("Hel")]
    assert isinstance(error, UpstreamError)
    assert error.kind is ErrorKind.UPSTREAM
    assert error.retryable
    assert error.message.startswith("Anthropic sent ")


def test_the_start_carries_the_id_and_the_model() -> None:
    reader = EventReader(params())
    assert (reader.started, reader.id, reader.model) == (False, "", MODEL)
    reader.read([message_start()])
    assert (reader.started, reader.id, reader.model) == (True, "msg_01", "claude-sonnet-5-5-20260101")


def test_a_start_without_a_model_keeps_the_requested_one() -> None:
    reader = EventReader(params())
    reader.read([{"type": "message_start", "message": {"id": "msg_2", "model": ""}}])
    assert (reader.id, reader.model) == ("msg_2", MODEL)


def test_usage_is_counted_at_the_start_then_overwritten_by_the_cumulative_counts() -> None:
    reader = EventReader(params())
    reader.read(
        [
            message_start(
                input_tokens=25, cache_creation_input_tokens=3, cache_read_input_tokens=7, output_tokens=1
            )
        ]
    )
    assert reader.usage == Usage(25, 1, 3, 7)
    reader.read([message_delta(output_tokens=10)])
    assert reader.usage == Usage(25, 10, 3, 7)
    reader.read([message_delta(output_tokens=42, input_tokens=26)])  # cumulative: not added up
    assert reader.usage == Usage(26, 42, 3, 7)


@pytest.mark.parametrize("value", ["30", 30.0, None, True, [30], {"n": 30}])
def test_usage_counts_that_are_not_integers_are_ignored(value: object) -> None:
    reader = EventReader(params())
    reader.read([message_start(input_tokens=25, output_tokens=1)])
    reader.read([message_delta(input_tokens=value, output_tokens=value, cache_read_input_tokens=value)])
    assert reader.usage == Usage(input_tokens=25, output_tokens=1)


def test_a_usage_that_is_not_an_object_is_ignored() -> None:
    reader = EventReader(params())
    reader.read([message_start(input_tokens=25, output_tokens=1)])
    assert reader.read([{"type": "message_delta", "delta": None, "usage": [1, 2]}]) == ([], None)
    assert reader.usage == Usage(input_tokens=25, output_tokens=1)


@pytest.mark.parametrize("stop_reason", ["end_turn", "max_tokens", "refusal", "pause_turn", None])
def test_the_stop_reason_is_the_message_deltas(stop_reason: str | None) -> None:
    reader = EventReader(params())
    reader.read([message_start(), message_delta(stop_reason)])
    assert reader.stop_reason == stop_reason


def test_the_answer_is_finished_only_at_message_stop() -> None:
    reader = EventReader(params("summarized"))
    reader.read(SUMMARIZED[:-1])
    assert not reader.finished
    reader.read(SUMMARIZED[-1:])
    assert reader.finished
    assert reader.stop_reason == "end_turn"
    assert reader.usage == Usage(input_tokens=25, output_tokens=42)


def fallback_block(index: int, to_model: str) -> dict[str, Any]:
    return block_start(
        index,
        {
            "type": "fallback",
            "from": {"model": "whoever"},
            "to": {"model": to_model},
            "trigger": {"type": "refusal", "category": "cyber"},
        },
    )


def test_a_handover_splits_a_read_between_the_model_that_declined_and_the_one_that_took_over() -> None:
    reader = EventReader(params())
    pieces, error = reader.read(
        [
            message_start(),
            block_start(0, {"type": "text", "text": ""}),
            text(0, "No"),
            fallback_block(1, "claude-b"),
            block_start(2, {"type": "text", "text": ""}),
            text(2, "Yes"),
            fallback_block(3, "claude-c"),
            block_start(4, {"type": "text", "text": ""}),
            text(4, "Sure"),
            text(4, "!"),
        ]
    )

    before, after = reader.take_marks(pieces)

    assert error is None
    assert before == [Text("No")]
    assert after == [
        Handover("claude-sonnet-5-5-20260101", "claude-b", "refusal"),
        [Text("Yes")],
        Handover("claude-b", "claude-c", "refusal"),
        [Text("Sure"), Text("!")],
    ]
    assert reader.marks == []  # taken once
    assert reader.model == "claude-sonnet-5-5-20260101"  # what `start` announces: the model asked


def test_a_handover_with_nothing_after_it_yet() -> None:
    reader = EventReader(params())
    pieces, _ = reader.read([message_start(), fallback_block(0, "claude-b")])

    assert reader.take_marks(pieces) == (
        [],
        [Handover("claude-sonnet-5-5-20260101", "claude-b", "refusal")],
    )


def test_a_fallback_block_that_names_no_model_is_malformed() -> None:
    reader = EventReader(params())
    _, error = reader.read([message_start(), block_start(0, {"type": "fallback", "to": {}})])

    assert error is not None
    assert error.kind is ErrorKind.UPSTREAM


# Server-side compaction: the block as Anthropic streams it, before the answer's text.
SUMMARY = "The user asked about primes; 7 and 11 were given."
COMPACTION_STREAM = [
    block_start(0, {"type": "compaction"}),
    delta(0, type="compaction_delta", content=SUMMARY, encrypted_content="opaque=="),
    block_stop(0),
]


def compaction_usage(**usage: Any) -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 3, **usage},
    }


def test_a_compaction_block_is_assembled_as_it_came_and_marked_before_the_text() -> None:
    reader = EventReader(params())
    pieces, error = reader.read(
        [
            message_start(),
            *COMPACTION_STREAM,
            block_start(1, {"type": "text", "text": ""}),
            text(1, "Sure"),
        ]
    )

    before, after = reader.take_marks(pieces)

    block = {"type": "compaction", "content": SUMMARY, "encrypted_content": "opaque=="}
    assert error is None
    assert before == []
    assert after == [Compacted(block), [Text("Sure")]]
    assert reader.compaction == block
    assert reader.compactions == 1


def test_a_compaction_keeps_every_field_anthropic_sent_its_signature_included() -> None:
    reader = EventReader(params())
    reader.read(
        [
            message_start(),
            block_start(0, {"type": "compaction", "content": None, "tool_changes": []}),
            delta(0, type="compaction_delta", content=SUMMARY, encrypted_content=None),
            delta(0, type="signature_delta", signature="sig"),
            block_stop(0),
        ]
    )

    assert reader.compaction == {
        "type": "compaction",
        "content": SUMMARY,
        "encrypted_content": None,
        "tool_changes": [],
        "signature": "sig",
    }


def test_a_compaction_split_across_reads_is_marked_once_it_stops() -> None:
    reader = EventReader(params())
    first, _ = reader.read([message_start(), *COMPACTION_STREAM[:2]])
    assert reader.marks == []
    second, _ = reader.read(
        [COMPACTION_STREAM[2], block_start(1, {"type": "text", "text": ""}), text(1, "Hi")]
    )

    assert first == []
    assert reader.take_marks(second)[1][0] == Compacted(reader.compaction or {})


def test_the_compactions_tokens_are_read_from_the_usage_iterations_apart_from_the_answers() -> None:
    reader = EventReader(params())
    reader.read(
        [
            message_start(input_tokens=40, output_tokens=1),
            *COMPACTION_STREAM,
            compaction_usage(
                iterations=[
                    {
                        "type": "compaction",
                        "input_tokens": 90_000,
                        "output_tokens": 400,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 5_000,
                    },
                    {"type": "message", "input_tokens": 40, "output_tokens": 3},
                ]
            ),
            MESSAGE_STOP,
        ]
    )

    assert (reader.compaction_input_tokens, reader.compaction_output_tokens) == (95_000, 400)
    assert reader.usage.input_tokens == 40  # the answer's own figures
    assert reader.usage.output_tokens == 3


def test_an_answer_without_compaction_has_none() -> None:
    reader = EventReader(params())
    reader.read([message_start(), block_start(0, {"type": "text", "text": ""}), text(0, "Hi"), block_stop(0)])

    assert (reader.compaction, reader.compactions, reader.marks) == (None, 0, [])
