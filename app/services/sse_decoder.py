"""Anthropic's Server-Sent Events, from bytes to the JSON payload of each event."""

from typing import Any

import orjson

from app.services.errors import ErrorKind, UpstreamError

# Anthropic's events are a few hundred bytes; a buffer this large without an event boundary
# means upstream is not speaking SSE at all.
MAX_PENDING_BYTES = 1 << 20


def _unreadable(what: str) -> UpstreamError:
    return UpstreamError(ErrorKind.UPSTREAM, f"Anthropic sent {what}.", retryable=True)


class SseDecoder:
    """Splits the byte stream into the JSON payloads of its events.

    Anthropic names each event twice, in `event:` and in the payload's `type`, so only the
    `data:` lines are kept. Chunks may split events (and `\\r\\n`) anywhere.
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
        *blocks, self._pending = (self._pending + chunk).split(b"\n\n")
        if len(self._pending) > MAX_PENDING_BYTES:
            raise _unreadable("a stream that is not Server-Sent Events")
        events: list[dict[str, Any]] = []
        for block in blocks:
            try:
                payload = _payload(block)
            except _Unreadable as exc:
                # The events before it still count (their text is relayed); the answer then
                # fails the way an in-band error fails it.
                events.append(_error_event(str(exc)))
                break
            if payload is not None:
                events.append(payload)
        return events


class _Unreadable(Exception):
    pass


def _error_event(message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": "api_error", "message": message}}


def _payload(block: bytes) -> dict[str, Any] | None:
    data = [line for line in block.split(b"\n") if line.startswith(b"data:")]
    if not data:
        return None  # a comment, or an event with no data
    raw = b"\n".join(line[6:] if line.startswith(b"data: ") else line[5:] for line in data)
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _Unreadable("Anthropic sent an event that is not JSON.") from None
    if not isinstance(payload, dict):
        raise _Unreadable("Anthropic sent an event that is not a JSON object.")
    return payload
