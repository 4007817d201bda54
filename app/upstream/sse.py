"""Anthropic's Server-Sent Events, from bytes to the JSON payload of each event: the one decoder
both modes read through."""

import re
from typing import Any

import orjson

from app.upstream.errors import malformed

# Anthropic's events are a few hundred bytes; a buffer this large without an event boundary
# means upstream is not speaking SSE at all.
MAX_PENDING_BYTES = 1 << 20

# Greedy to the end of the line: a lazy `(.*?)$` tried the line's end at every byte and cost
# three times the JSON parsing.
_DATA_LINE = re.compile(rb"^data: ?(.*)", re.MULTILINE)


class SseDecoder:
    """Splits the byte stream into the JSON payloads of its events.

    Anthropic names each event twice, in `event:` and in the payload's `type`, so only the
    `data:` lines are kept. Chunks may split events (and `\\r\\n`) anywhere. An event that is
    not a JSON object becomes an in-band `error` event after the events before it, so the
    answer fails the way an error from Anthropic fails it, its text up to there relayed.
    """

    __slots__ = ("_pending", "_skip_lf")

    def __init__(self) -> None:
        self._pending = b""
        self._skip_lf = False

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        if not chunk:
            return []
        if self._skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._skip_lf = False
        if b"\r" in chunk:
            # A line ends at `\r\n`, `\n` or a lone `\r`. A chunk's last `\r` ends its line
            # now (a stream may end there) and the next chunk's leading `\n` is its second half.
            self._skip_lf = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = self._pending + chunk if self._pending else chunk
        end = buffer.rfind(b"\n\n")
        if end < 0:
            if len(buffer) > MAX_PENDING_BYTES:
                raise malformed("a stream that is not Server-Sent Events")
            self._pending = buffer
            return []
        self._pending = buffer[end + 2 :]
        return events_of(buffer[:end])


def events_of(blocks: bytes) -> list[dict[str, Any]]:
    """The payloads of whole events (`blocks`: events separated by blank lines, `\\n` only).

    Anthropic sends one `data:` line per event, so a read's events are parsed as one JSON array:
    one C call instead of one per event, the difference between JSON mode costing more or less
    than a relay that asks Anthropic not to stream. Anything else is read block by block.
    """
    payloads = _DATA_LINE.findall(blocks)
    if payloads and len(payloads) == blocks.count(b"\n\n") + 1 and b"\n\n\n" not in blocks:
        try:
            events = orjson.loads(b"[" + b",".join(payloads) + b"]")
        except orjson.JSONDecodeError:
            pass  # a malformed event: found, after the events before it, below
        else:
            # As many `data:` lines as blocks, and as many values as lines: one value per block,
            # unless a block held two lines and another none; the slow path tells those apart.
            if (
                len(events) == len(payloads)
                and all(type(event) is dict for event in events)
                and all(block.count(b"data:") == 1 for block in blocks.split(b"\n\n"))
            ):
                return events  # type: ignore[no-any-return]
    return _block_by_block(blocks)


def _block_by_block(blocks: bytes) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for block in blocks.split(b"\n\n"):
        lines = [line for line in block.split(b"\n") if line.startswith(b"data:")]
        if not lines:
            continue  # a comment, or an event with no data
        raw = b"\n".join(line[6:] if line.startswith(b"data: ") else line[5:] for line in lines)
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            events.append(_error_event("Anthropic sent an event that is not JSON."))
            break
        if type(payload) is not dict:
            events.append(_error_event("Anthropic sent an event that is not a JSON object."))
            break
        events.append(payload)
    return events


def _error_event(message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": "api_error", "message": message}}
