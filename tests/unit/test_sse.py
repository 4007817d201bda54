"""The SSE decoder: Anthropic's bytes to event payloads, however the chunks fall.

Like the anthropic SDK's own tests/test_streaming.py: a recorded stream, with each of the three line
endings SSE allows, split at every byte and fed one byte at a time, must decode to the same events.
"""

import json
from typing import Any

import pytest

from app.chat.errors import ErrorKind, UpstreamError
from app.upstream.sse import MAX_PENDING_BYTES, SseDecoder, _block_by_block, events_of

TRICKY_TEXT = 'He said "hi" \\ C:\\path\\ line one\nline two\ttab café 日本語 🙂'

# A recorded answer with summarized thinking, as Anthropic streams it (event name, payload).
RECORDED: list[tuple[str, dict[str, Any]]] = [
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-5-5",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 25,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 1,
                },
            },
        },
    ),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
    ),
    ("ping", {"type": "ping"}),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Hmm… 🤔"},
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {
                "type": "signature_delta",
                "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pk",
            },
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": TRICKY_TEXT}},
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "data: x"}},
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": "\n\ndata: y\r\n"},
        },
    ),
    ("ping", {"type": "ping"}),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 42},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]
EXPECTED = [payload for _, payload in RECORDED]
LINE_ENDINGS = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}


def encode(events: list[tuple[str, dict[str, Any]]], newline: str) -> bytes:
    text = "".join(
        f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n" for name, data in events
    )
    # JSON escapes every line break inside its strings, so this changes the line endings only.
    return text.replace("\n", newline).encode()


def decode(*chunks: bytes) -> list[dict[str, Any]]:
    decoder = SseDecoder()
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def error_event(message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": "api_error", "message": message}}


NOT_JSON = error_event("Anthropic sent an event that is not JSON.")
NOT_AN_OBJECT = error_event("Anthropic sent an event that is not a JSON object.")


@pytest.mark.parametrize("newline", LINE_ENDINGS.values(), ids=LINE_ENDINGS.keys())
def test_the_recorded_stream_decodes_in_one_chunk(newline: str) -> None:
    assert decode(encode(RECORDED, newline)) == EXPECTED


@pytest.mark.parametrize("newline", LINE_ENDINGS.values(), ids=LINE_ENDINGS.keys())
def test_the_recorded_stream_decodes_split_in_two_at_every_byte(newline: str) -> None:
    raw = encode(RECORDED, newline)
    for cut in range(len(raw) + 1):
        assert decode(raw[:cut], raw[cut:]) == EXPECTED, f"split at byte {cut}: {raw[:cut][-20:]!r}"


@pytest.mark.parametrize("newline", LINE_ENDINGS.values(), ids=LINE_ENDINGS.keys())
def test_the_recorded_stream_decodes_one_byte_at_a_time(newline: str) -> None:
    raw = encode(RECORDED, newline)
    assert decode(*(raw[i : i + 1] for i in range(len(raw)))) == EXPECTED


@pytest.mark.parametrize("newline", LINE_ENDINGS.values(), ids=LINE_ENDINGS.keys())
def test_events_are_dispatched_as_soon_as_their_blank_line_arrives(newline: str) -> None:
    raw = encode(RECORDED, newline)
    # `\r\n\r` is already a blank line: a lone `\r` ends a line, and the next `\n` is skipped.
    blank_line = raw.index(("}" + newline).encode()) + 1 + len(newline)
    decoder = SseDecoder()
    assert decoder.feed(raw[:blank_line]) == []
    assert decoder.feed(raw[blank_line : blank_line + 1]) == EXPECTED[:1]
    assert decoder.feed(raw[blank_line + 1 :]) == EXPECTED[1:]


# Every SSE feature Anthropic does not use: a comment, id and retry fields, an event whose data spans
# two lines, data without the space, extra blank lines.
FULL_SSE = (
    ": connected\n\n"
    "id: 1\nretry: 3000\nevent: message_start\n"
    'data: {"type": "message_start",\ndata:"message": {"id": "msg_1"}}\n\n\n\n'
    'event: ping\n: a comment inside\ndata:{"type": "ping"}\n\n'
    "event: no_data\n\n"
    'data: {"type": "content_block_delta",\ndata: "delta": {"type": "text_delta",\ndata: "text": "é🙂"}}\n\n'
)
FULL_SSE_EVENTS = [
    {"type": "message_start", "message": {"id": "msg_1"}},
    {"type": "ping"},
    {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "é🙂"}},
]


@pytest.mark.parametrize("newline", LINE_ENDINGS.values(), ids=LINE_ENDINGS.keys())
def test_every_sse_feature_decodes_however_the_chunks_fall(newline: str) -> None:
    raw = FULL_SSE.replace("\n", newline).encode()
    assert decode(raw) == FULL_SSE_EVENTS
    for cut in range(len(raw) + 1):
        assert decode(raw[:cut], raw[cut:]) == FULL_SSE_EVENTS, f"split at byte {cut}: {raw[:cut][-20:]!r}"
    assert decode(*(raw[i : i + 1] for i in range(len(raw)))) == FULL_SSE_EVENTS


@pytest.mark.parametrize("character", ["é", "日", "🙂"])
def test_a_character_cut_in_half_across_chunks_is_joined(character: str) -> None:
    raw = encode(RECORDED, "\n")
    encoded = character.encode()
    middle = raw.index(encoded) + len(encoded) // 2
    decoder = SseDecoder()
    before = decoder.feed(raw[:middle])
    assert character not in json.dumps(before, ensure_ascii=False)  # the event was not complete yet
    assert before + decoder.feed(raw[middle:]) == EXPECTED


def test_a_stream_ending_in_a_lone_cr_is_complete_without_another_chunk() -> None:
    raw = encode(RECORDED, "\r")
    assert raw.endswith(b"}\r\r")
    assert SseDecoder().feed(raw) == EXPECTED


def test_a_chunk_ending_between_cr_and_lf_dispatches_now_and_skips_the_lf() -> None:
    raw = encode(RECORDED, "\r\n")
    decoder = SseDecoder()
    assert decoder.feed(raw[:-1]) == EXPECTED  # ends `}\r\n\r`: the event's blank line is already here
    assert decoder.feed(raw[-1:]) == []  # the `\n` of that `\r\n`, not another blank line
    assert decoder.feed(b'data: {"type":"ping"}\r\n\r\n') == [{"type": "ping"}]


def test_an_empty_chunk_between_cr_and_lf_does_not_lose_the_pairing() -> None:
    decoder = SseDecoder()
    # Were the `\n` after the empty chunk taken as a line of its own, the event would end after `{"type":`.
    chunks = [b'data: {"type":\r', b"", b'\ndata: "a"}\r\n\r', b"", b"\n", b'data: {"type":"b"}\r\n\r\n']
    assert [event for chunk in chunks for event in decoder.feed(chunk)] == [{"type": "a"}, {"type": "b"}]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b'data: {"type":"ping"}\n\n', [{"type": "ping"}], id="data with a space"),
        pytest.param(b'data:{"type":"ping"}\n\n', [{"type": "ping"}], id="data without a space"),
        pytest.param(b'data:  {"type":"ping"}\n\n', [{"type": "ping"}], id="data with two spaces"),
        pytest.param(
            b'event: message_stop\ndata: {"type":\ndata: "message_stop"}\n\n',
            [{"type": "message_stop"}],
            id="multi-line data",
        ),
        pytest.param(
            # Joined with `\n` as the SSE spec says: `1\n2` is not a number, `12` would be.
            b'data: {"type":"x","n":1\ndata: 2}\n\n',
            [NOT_JSON],
            id="multi-line data is joined with a line feed",
        ),
        pytest.param(b": ping\n\n", [], id="a comment"),
        pytest.param(b"event: ping\n\n", [], id="an event without data"),
        pytest.param(b": hi\nevent: ping\n\n: there\n\n", [], id="comments and no data"),
        pytest.param(
            b'\n\n\n: keep-alive\n\n\n\ndata: {"type":"a"}\n\n\n\n\ndata: {"type":"b"}\n\n\n',
            [{"type": "a"}, {"type": "b"}],
            id="extra blank lines",
        ),
        pytest.param(
            b'id: 7\nretry: 3000\nevent: ping\ndata: {"type":"ping"}\n\n',
            [{"type": "ping"}],
            id="id and retry ignored",
        ),
        pytest.param(
            b'event: x\ndata: {"type":"a"}\n: a comment\n\n',
            [{"type": "a"}],
            id="a comment inside an event",
        ),
        pytest.param(b"data: {}\n\n", [{}], id="an empty object"),
    ],
)
def test_event_shapes(raw: bytes, expected: list[dict[str, Any]]) -> None:
    assert decode(raw) == expected
    assert decode(*(raw[i : i + 1] for i in range(len(raw)))) == expected


def test_an_unfinished_event_is_not_dispatched() -> None:
    assert decode(b'data: {"type":"ping"}\n') == []


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        pytest.param(b"data: not json", NOT_JSON, id="not json"),
        pytest.param(b'data: {"type":"cut', NOT_JSON, id="cut json"),
        pytest.param(b"data: ", NOT_JSON, id="empty data"),
        pytest.param(b"data: [DONE]", NOT_JSON, id="openai's done"),
        pytest.param(b'data: [{"type":"ping"}]', NOT_AN_OBJECT, id="an array"),
        pytest.param(b"data: null", NOT_AN_OBJECT, id="null"),
        pytest.param(b'data: "ping"', NOT_AN_OBJECT, id="a string"),
        pytest.param(b"data: 1", NOT_AN_OBJECT, id="a number"),
        pytest.param(b'data: {"type":"a"},{"type":"b"}', NOT_JSON, id="two objects on one line"),
    ],
)
def test_a_malformed_event_becomes_an_error_after_the_events_before_it(
    bad: bytes, error: dict[str, Any]
) -> None:
    raw = b'data: {"type":"ping"}\n\n' + bad + b'\n\ndata: {"type":"message_stop"}\n\n'
    # The events after it in the same read are not decoded: the error ends the answer.
    assert decode(raw) == [{"type": "ping"}, error]


def test_the_events_of_a_read_before_a_malformed_one_are_kept() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b'data: {"type":"a"}\n\n') == [{"type": "a"}]
    assert decoder.feed(b'data: {"type":"b"}\n\ndata: {oops}\n\n') == [{"type": "b"}, NOT_JSON]


def test_a_stream_without_blank_lines_over_the_limit_fails() -> None:
    decoder = SseDecoder()
    half = b"x" * (MAX_PENDING_BYTES // 2)
    assert decoder.feed(half) == []
    assert decoder.feed(half) == []  # exactly the limit is still allowed
    with pytest.raises(UpstreamError) as raised:
        decoder.feed(b"x")
    assert raised.value.kind is ErrorKind.UPSTREAM
    assert raised.value.retryable
    assert "not Server-Sent Events" in raised.value.message


def test_the_limit_is_on_what_is_pending_not_on_a_chunk() -> None:
    # Many events in one large chunk are fine: only bytes without an event boundary are held.
    event = b'event: ping\ndata: {"type": "ping"}\n\n'
    raw = event * (MAX_PENDING_BYTES // len(event) + 10)
    assert len(SseDecoder().feed(raw)) == MAX_PENDING_BYTES // len(event) + 10


# The fast path (one JSON array per read) must agree with reading block by block.
BLOCKS = [
    pytest.param(encode(RECORDED, "\n")[:-2], id="the recorded stream"),
    pytest.param(b'data: {"type":"ping"}', id="one event"),
    pytest.param(b'data:{"type":"a"}\n\ndata: {"type":"b"}', id="with and without the space"),
    pytest.param(b'event: ping\n\ndata: {"type":"a"}\ndata: {"type":"b"}', id="no data, then two data lines"),
    pytest.param(b'data: {"type":"a"}\ndata: {"type":"b"}\n\nevent: ping', id="two data lines, then no data"),
    pytest.param(b'data: {"type":"a",\ndata: "n":1}\n\ndata: {"type":"b"}', id="one event on two lines"),
    pytest.param(b': comment\n\ndata: {"type":"a"}', id="a comment block"),
    pytest.param(b'data: {"type":"a"}\n: comment', id="a comment line"),
    pytest.param(b'data: {"type":"a"}\n\n\n\ndata: {"type":"b"}', id="extra blank lines"),
    pytest.param(b'\n\ndata: {"type":"a"}', id="a leading blank line"),
    pytest.param(b'data: {"text":"data: x"}\n\ndata: {"type":"b"}', id="data: inside the json"),
    pytest.param(b'data: {"type":"a"}\n\ndata: 1,2', id="a comma in a payload"),
    pytest.param(b'data: {"type":"a"}\n\ndata: [1]', id="a json array"),
    pytest.param(b'data: {"type":"a"}\n\ndata: nope\n\ndata: {"type":"b"}', id="not json midway"),
    pytest.param(b'id: 1\ndata: {"type":"a"}\nretry: 5', id="other fields"),
    pytest.param(b"event: ping", id="no data at all"),
    pytest.param(b'event: a\ndata: {"type":"a"}\n\nevent: b\ndata:{"type":"b"}', id="event and data lines"),
    pytest.param(b'event: a\ndata: {"type":"a"}\n\nevent: b\ndata: 1,2', id="event lines, a comma"),
    pytest.param(b'event: a\ndata: {"type":"a"}\n\nevent: b\ndata: [1]', id="event lines, an array"),
    pytest.param(b'event: a\ndata: {"type":"a"}\n\nevent: b\ndata: nope', id="event lines, not json"),
    pytest.param(b'event: a\ndata: {"type":"a"}\n\ndata: {"type":"b"}\nevent: b', id="data before event"),
    pytest.param(b'event: a\ndata: {"type":"a"}\n\nevent: b\nid: 2', id="event lines, no data"),
    pytest.param(
        b'event: a\ndata: {"type":"a"}\n\nevent: b\ndata: {"type":"b"}\n', id="a trailing line feed"
    ),
    pytest.param(b'data: {"type":"a"}\ndata: {"type":"b"}\n\nevent: c\ndata: {"type":"c"}', id="data, data"),
    pytest.param(b'event: a\ndata: {"type":"a",\ndata: "n":1}', id="event, then two data lines"),
    pytest.param(b'event: a\ndata: {"type":"a"}\n\n: ping\ndata: {"type":"b"}', id="a comment first"),
    pytest.param(
        b'event: a\ndata: {"type":"a"}\nid: 1\nevent: b\ndata: {"type":"b"}', id="a block of five lines"
    ),
    pytest.param(
        b'event: a\ndata: {"type":"a"}\n\nevent: b\ndata: {"type":"b"},{"type":"c"}',
        id="two objects, one line",
    ),
    pytest.param(
        b'event: a\n{"type":"a"}\n\nevent: b\ndata: {"type":"b"}', id="json on a line without a field"
    ),
    pytest.param(b"", id="nothing"),
]


@pytest.mark.parametrize("blocks", BLOCKS)
def test_the_fast_path_agrees_with_reading_block_by_block(blocks: bytes) -> None:
    assert events_of(blocks) == _block_by_block(blocks)


def test_the_fast_path_does_not_accept_two_malformed_events_that_complete_each_other() -> None:
    blocks = b'event: a\ndata: {"type":"a"},{"type":"b","k":"\n\nevent: b\ndata: "}'
    assert _block_by_block(blocks) == [NOT_JSON]
    assert events_of(blocks) == _block_by_block(blocks)
