"""What Anthropic's stream events mean: the one reading of them that both modes share.

Anything unexpected either carries nothing a user needs and is skipped (pings, signatures,
blocks and events of types added later), or is malformed and fails the answer with an
`UpstreamError`: a stream is never cut silently, nor shown with a piece missing.
"""

import re
from typing import Any

import orjson

from app.services.chat_request import ChatParams
from app.services.errors import ErrorKind, UpstreamError, from_error_body
from app.services.sse_decoder import SseDecoder
from app.services.stream_events import Piece, Text, Thinking, Usage

_THINKING_SHOWN_LATER = Thinking("")


def _malformed(what: str) -> UpstreamError:
    return UpstreamError(ErrorKind.UPSTREAM, f"Anthropic sent {what}.", retryable=True)


class Answer:
    """One answer as its events arrive: pieces out, and what its start and end carry kept."""

    __slots__ = (
        "_choice",
        "_summarized",
        "error",
        "finished",
        "id",
        "model",
        "started",
        "stop_reason",
        "usage",
    )

    def __init__(self, params: ChatParams) -> None:
        self._choice = params.model
        # Thinking text will follow, so the start of a thinking block needs no signal of its own.
        self._summarized = params.thinking == "summarized"
        self.id = ""
        self.model = params.model.name
        self.usage = Usage()
        self.stop_reason: str | None = None
        self.started = False
        self.finished = False
        # An error that arrived after pieces of the same read: raised once those are relayed.
        self.error: UpstreamError | None = None

    def pieces(self, events: list[dict[str, Any]]) -> list[Piece]:
        """The pieces of these events. A failure among them is raised at once if no piece came
        before it, else kept in `error`, to raise once those pieces are relayed."""
        pieces: list[Piece] = []
        try:
            for event in events:
                kind = event.get("type")
                if kind == "content_block_delta":
                    self._delta(event.get("delta"), pieces)
                elif kind == "content_block_start":
                    self._block_started(event.get("content_block"), pieces)
                elif kind == "message_start":
                    self._message_started(event.get("message"))
                elif kind == "message_delta":
                    self._message_delta(event)
                elif kind == "message_stop":
                    self.finished = True
                elif kind == "error":
                    raise from_error_body(event, model=self._choice)
                # ping, content_block_stop and event types added later carry nothing to show.
        except UpstreamError as error:
            if not pieces:
                raise
            self.error = error
        return pieces

    def _delta(self, delta: object, pieces: list[Piece]) -> None:
        if not isinstance(delta, dict):
            raise _malformed("a content delta without its delta")
        delta_type = delta.get("type")
        if delta_type == "text_delta":
            text = delta.get("text")
            if type(text) is not str:
                raise _malformed("a text delta without its text")
            pieces.append(Text(text))
        elif delta_type == "thinking_delta":
            thinking = delta.get("thinking")
            if type(thinking) is not str:
                raise _malformed("a thinking delta without its text")
            if thinking:
                pieces.append(Thinking(thinking))
        # signature_delta and the delta types of other blocks carry nothing to show.

    def _block_started(self, block: object, pieces: list[Piece]) -> None:
        if not isinstance(block, dict):
            raise _malformed("a content block without its content")
        block_type = block.get("type")
        if block_type == "text":
            if text := block.get("text"):  # empty in practice: the text follows as deltas
                pieces.append(Text(str(text)))
        elif block_type == "redacted_thinking" or (block_type == "thinking" and not self._summarized):
            pieces.append(_THINKING_SHOWN_LATER)
        # Blocks of other types (tools are out of scope; types added later) are not shown.

    def _message_started(self, message: object) -> None:
        if not isinstance(message, dict):
            raise _malformed("a message start without its message")
        self.started = True
        self.id = str(message.get("id", ""))
        self.model = str(message.get("model") or self.model)
        usage = message.get("usage")
        if isinstance(usage, dict):
            self._count_usage(usage)

    def _message_delta(self, event: dict[str, Any]) -> None:
        delta = event.get("delta")
        if isinstance(delta, dict):
            self.stop_reason = delta.get("stop_reason", self.stop_reason)
        usage = event.get("usage")
        if isinstance(usage, dict):
            self._count_usage(usage)

    def _count_usage(self, usage: dict[str, Any]) -> None:
        """Counts as Anthropic sends them: in `message_start`, then cumulative in `message_delta`."""
        for name in _USAGE_FIELDS:
            if type(value := usage.get(name)) is int:
                setattr(self.usage, name, value)


_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


# Greedy to the end of the line: a lazy `(.*?)\r?$` tried the line's end at every byte and cost
# three times the JSON parsing. A CR left before the LF is JSON whitespace, so the array still parses.
_DATA_LINE = re.compile(rb"^data: ?(.*)", re.MULTILINE)


def events_of_body(body: bytes) -> list[dict[str, Any]]:
    """All the events of a whole SSE body.

    Anthropic sends one `data:` line per event, so the lines are parsed as one JSON array: one
    C call instead of one per event. Anything else (lines ended by a lone `\r` find no event
    here) falls back to the incremental decoder.
    """
    try:
        events = orjson.loads(b"[" + b",".join(_DATA_LINE.findall(body)) + b"]")
        if events and all(type(event) is dict for event in events):
            return list(events)
    except orjson.JSONDecodeError:
        pass
    decoder = SseDecoder()
    return decoder.feed(body + b"\n\n")


def read_whole(body: bytes, answer: Answer) -> list[Piece]:
    if not body.lstrip().startswith((b"event:", b"data:", b":")):
        raise _malformed("a body that is not an event stream")
    return answer.pieces(events_of_body(body))
