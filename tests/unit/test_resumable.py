"""Resumable answers, the pure parts: numbered events, where a reader that comes back starts,
how a stopped or abandoned answer closes in each format, the keys of one answer."""

import json
from typing import Any

import pytest

from app.chat.answer import End, Start, Text, Thinking, Usage
from app.http.middleware.request_log import _loggable_path
from app.observability.summary import ChatSummary
from app.resumable.readers import after_event
from app.resumable.resumption import new_stream_id
from app.resumable.store import Chunk, Keys
from app.streaming.formats.chat_events import ChatEventsEncoder
from app.streaming.formats.ui_messages import UIMessageStreamEncoder
from app.streaming.relay import closing_frames

START = Start("msg_01", "claude-sonnet-5-5")
# A piece whose text looks like an event id line and a frame boundary: it must not fool a reader.
TRICKY = "id: 4\n\nid: 5\n"


def events(raw: bytes) -> list[dict[str, Any]]:
    """Each event's fields; `data` parsed unless it is [DONE]."""
    *frames, rest = raw.split(b"\n\n")
    assert rest == b""
    parsed = []
    for frame in frames:
        fields: dict[str, Any] = {}
        for line in frame.decode().split("\n"):
            name, _, value = line.partition(": ")
            fields[name] = value if name != "data" or value == "[DONE]" else json.loads(value)
        parsed.append(fields)
    return parsed


def numbered_answer() -> tuple[ChatEventsEncoder, list[bytes]]:
    encoder = ChatEventsEncoder(stream_id="s" * 43)
    frames = [
        encoder.start(START),
        encoder.pieces([Thinking("hmm"), Text("Hello")]),
        encoder.pieces([Text(TRICKY)]),
        encoder.pieces([Text(" world"), Text("!")]),
        encoder.end(End("end_turn", Usage(input_tokens=5, output_tokens=4))),
    ]
    return encoder, frames


def test_a_resumable_streams_events_are_numbered_from_one_and_its_start_names_the_stream() -> None:
    encoder, frames = numbered_answer()
    parsed = events(b"".join(frames))
    assert [event["id"] for event in parsed] == [str(n) for n in range(1, 9)]
    assert parsed[0]["data"]["stream_id"] == "s" * 43
    assert parsed[-1]["data"] == "[DONE]"
    assert encoder.last_event_id == 8


def test_without_resumption_the_stream_is_unchanged() -> None:
    encoder = ChatEventsEncoder()
    raw = encoder.start(START) + encoder.pieces([Text("Hi")]) + encoder.end(End("end_turn", Usage()))
    assert b"id: " not in raw
    assert b"stream_id" not in raw
    assert events(raw)[0]["data"] == {"type": "start", "id": "msg_01", "model": "claude-sonnet-5-5"}


@pytest.mark.parametrize("last_seen", range(9))
def test_a_reader_that_comes_back_gets_each_event_after_the_last_it_saw_once(last_seen: int) -> None:
    _, frames = numbered_answer()
    # As the store keeps them: a few frames to an entry, the entry named by its last event's id.
    chunks, last_id = [], 0
    for group in (frames[:2], frames[2:4], frames[4:]):
        last_id += len(events(b"".join(group)))
        chunks.append(Chunk(b"0-%d" % last_id, b"".join(group), last_id, group is frames[4:]))
    sent = b""
    seen: int | None = last_seen
    for chunk in chunks:
        part = after_event(chunk, seen) if seen is not None else chunk.frames
        if part:
            seen = None
        sent += part
    assert [int(event["id"]) for event in events(sent)] == list(range(last_seen + 1, 9))


def test_an_entry_cut_at_an_event_keeps_the_text_that_looks_like_a_boundary_whole() -> None:
    _, frames = numbered_answer()
    chunk = Chunk(b"0-8", b"".join(frames), 8, True)
    rest = events(after_event(chunk, 3))
    assert rest[0] == {"id": "4", "event": "delta", "data": {"type": "delta", "text": TRICKY}}


def test_a_stopped_answer_ends_as_an_answer_does_with_the_reason_stopped() -> None:
    chat = ChatEventsEncoder(stream_id="s" * 43)
    chat.start(START)
    ending = events(closing_frames(chat, "stopped"))
    assert [event.get("event") for event in ending] == ["end", None]
    assert ending[0]["data"]["stop_reason"] == "stopped"
    assert [event["id"] for event in ending] == ["2", "3"]

    ui = UIMessageStreamEncoder()
    ui.start(START)
    ui.pieces([Text("Hel")])
    chunks = [event["data"] for event in events(closing_frames(ui, "stopped"))]
    assert [c if c == "[DONE]" else c["type"] for c in chunks] == [
        "text-end",
        "finish-step",
        "message-metadata",
        "finish",
        "[DONE]",
    ]
    assert chunks[2]["messageMetadata"]["stopReason"] == "stopped"
    assert chunks[3] == {"type": "finish", "finishReason": "other"}


@pytest.mark.parametrize(
    ("ending", "error_type"), [("abandoned", "answer_abandoned"), ("shutdown", "service_restarting")]
)
def test_an_abandoned_or_cut_answer_ends_with_an_error_event(ending: Any, error_type: str) -> None:
    chat = ChatEventsEncoder(stream_id="s" * 43)
    (event,) = events(closing_frames(chat, ending))
    assert event["event"] == "error"
    assert event["data"]["error"]["type"] == error_type


def test_stream_ids_are_256_random_bits_url_safe() -> None:
    ids = {new_stream_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(stream_id) == 43 and stream_id.isascii() for stream_id in ids)
    assert all(
        set(stream_id) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for stream_id in ids
    )


def test_the_keys_of_one_answer_share_a_hash_tag() -> None:
    keys = Keys.of("abc")
    tags = {
        key[key.index("{") : key.index("}") + 1]
        for key in (keys.events, keys.meta, keys.readers, keys.resumed)
    }
    assert tags == {"{abc}"}


@pytest.mark.parametrize(
    ("ending", "outcome"), [("stopped", "stopped"), ("abandoned", "abandoned"), ("shutdown", "shutdown")]
)
def test_what_ended_an_answer_is_its_outcome(ending: Any, outcome: str) -> None:
    summary = ChatSummary(model="m", stream=True)
    summary.mark_cancelled_for(ending)
    assert summary.ended(GeneratorExit()) == outcome


def test_a_paths_secret_id_stays_out_of_the_log_line() -> None:
    class Route:
        path = "/chat/streams/{stream_id}"

    assert _loggable_path({"path": "/chat/streams/SECRET", "route": Route()}) == "/chat/streams/{stream_id}"
    assert _loggable_path({"path": "/chat"}) == "/chat"
