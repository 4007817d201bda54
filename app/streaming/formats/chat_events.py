"""`/chat`'s own event stream: start, thinking..., delta..., end, then `data: [DONE]`.

Each event names itself twice, in `event:` and in the JSON's `type`, like Anthropic's own stream.
The frames around each piece's text are constant bytes, so a token costs one JSON string encoding.

A resumable answer's stream (CHAT_REDIS_URL) numbers its events: each starts with `id: N`, N from
1, the `[DONE]` event too, so that a reader that comes back with `Last-Event-ID` is sent exactly
the events it missed; its `start` carries the `stream_id` to come back with.
"""

import orjson

from app.chat.answer import Compacted, End, Handover, Pieces, Start, Text

_DELTA_HEAD = b'event: delta\ndata: {"type":"delta","text":'
_THINKING_HEAD = b'event: thinking\ndata: {"type":"thinking","text":'
_TAIL = b"}\n\n"
DONE_FRAME = b"data: [DONE]\n\n"


def ending(end: End) -> dict[str, object]:
    """How an answer ended, as `/chat` says it in the `end` event and in the JSON answer alike:
    what a refusal or a compaction left only when there is one."""
    fields: dict[str, object] = {
        "stop_reason": end.stop_reason,
        "usage": end.usage.as_dict(),
        "context": end.context.as_dict() if end.context is not None else None,
    }
    if end.stop_details is not None:
        fields["stop_details"] = end.stop_details
    if end.compaction is not None:
        fields["compaction"] = end.compaction
    return fields


def _frame(event: str, data: dict[str, object]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps({"type": event, **data}) + b"\n\n"


class ChatEventsEncoder:
    def __init__(self, stream_id: str | None = None) -> None:
        """`stream_id`: the answer is resumable under that id, and its events are numbered."""
        self.headers: dict[str, str] = {}
        self.stream_id = stream_id
        self.last_event_id = 0

    def _numbered(self, frames: list[bytes]) -> bytes:
        if self.stream_id is None:
            return b"".join(frames)
        first = self.last_event_id + 1
        self.last_event_id += len(frames)
        return b"".join([b"id: %d\n" % number + frame for number, frame in enumerate(frames, first)])

    def start(self, start: Start) -> bytes:
        data: dict[str, object] = {"id": start.message_id, "model": start.model}
        if self.stream_id is not None:
            data["stream_id"] = self.stream_id
        return self._numbered([_frame("start", data)])

    def pieces(self, pieces: Pieces) -> bytes:
        return self._numbered(
            [
                (_DELTA_HEAD if type(piece) is Text else _THINKING_HEAD) + orjson.dumps(piece.text) + _TAIL
                for piece in pieces
            ]
        )

    def handover(self, handover: Handover) -> bytes:
        # The text so far was the declining model's: a client replaces it with what follows.
        return self._numbered(
            [
                _frame(
                    "fallback",
                    {
                        "from_model": handover.from_model,
                        "to_model": handover.to_model,
                        "reason": handover.reason,
                    },
                )
            ]
        )

    def compaction(self, compacted: Compacted) -> bytes:
        # Anthropic is summarising the older turns: a UI can say so before the text comes.
        return self._numbered([_frame("compaction", {"compaction": compacted.block})])

    def end(self, end: End) -> bytes:
        return self._numbered([_frame("end", ending(end)), DONE_FRAME])

    def error(self, error_type: str, message: str) -> bytes:
        return self._numbered([_frame("error", {"error": {"type": error_type, "message": message}})])
