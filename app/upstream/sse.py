"""Anthropic's Server-Sent Events, from bytes to the JSON payload of each event: the one decoder
both modes read through."""

from typing import Any

import orjson

from app.upstream.errors import malformed

# Anthropic's events are a few hundred bytes; a buffer this large without an event boundary
# means upstream is not speaking SSE at all.
MAX_PENDING_BYTES = 1 << 20


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

    Anthropic sends every event as the same two lines, `event:` then one `data:` line, so a
    read's events are found with a few bytes operations over all of it instead of Python work
    per block: measured on a 200-token answer (206 events), 210 µs against 357 µs block by
    block, most of what keeps JSON mode, which reads a stream, cheap. (One `orjson.loads` of
    the lines joined into an array saved 60 µs more, but two malformed lines can complete each
    other across the joins.) Anything else is read block by block, with the same result.
    """
    lines = blocks.split(b"\n")
    names, data, blanks = lines[0::3], lines[1::3], lines[2::3]
    count = len(data)
    if count == 0 or len(names) != count or len(blanks) != count - 1 or blanks.count(b"") != count - 1:
        return _block_by_block(blocks)
    # Lines hold no `\n`, so a `\ndata:` in these joins is the start of a line: every block's
    # second line is its one `data:` line, and no first line is one.
    if (b"\n" + b"\n".join(data)).count(b"\ndata:") != count or (b"\n" + b"\n".join(names)).count(b"\ndata:"):
        return _block_by_block(blocks)
    loads = orjson.loads
    try:
        # After `data:`, a space is JSON whitespace.
        events = [loads(line[5:]) for line in data]
    except orjson.JSONDecodeError:
        return _block_by_block(blocks)  # finds the malformed event, after the events before it
    if not all(type(event) is dict for event in events):
        return _block_by_block(blocks)
    return events


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
