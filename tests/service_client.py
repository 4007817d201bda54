"""What a frontend and an operator see: the `/chat` event stream as it arrives, and the log lines."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Event:
    name: str | None
    data: str
    at: float  # time.monotonic() when its blank line arrived
    id: str | None = None  # its `id:` line (a resumable answer's events are numbered)

    @property
    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class EventStream:
    response: httpx.Response | None  # None when read over a bare socket (`raw_stream`)
    events: list[Event] = field(default_factory=list)
    pings: int = 0

    @property
    def names(self) -> list[str | None]:
        return [event.name for event in self.events]

    @property
    def text(self) -> str:
        return "".join(event.json["text"] for event in self.events if event.name == "delta")

    @property
    def deltas(self) -> list[Event]:
        return [event for event in self.events if event.name == "delta"]

    @property
    def done(self) -> bool:
        return bool(self.events) and self.events[-1].name is None and self.events[-1].data == "[DONE]"


class _EventLines:
    """SSE lines to events, one line at a time: what `iter_events` and `raw_stream` share."""

    def __init__(self, stream: EventStream) -> None:
        self.stream = stream
        self.name: str | None = None
        self.id: str | None = None
        self.data: list[str] = []

    def feed(self, line: str) -> Event | None:
        """The event this line completes (a blank line after `data:`), if any."""
        if line == "":
            event = None
            if self.data:
                event = Event(self.name, "\n".join(self.data), time.monotonic(), self.id)
                self.stream.events.append(event)
            self.name, self.id, self.data = None, None, []
            return event
        if line.startswith(":"):
            self.stream.pings += 1
        elif line.startswith("event:"):
            self.name = line[6:].strip()
        elif line.startswith("id:"):
            self.id = line[3:].strip()
        elif line.startswith("data:"):
            self.data.append(line[6:] if line.startswith("data: ") else line[5:])
        return None


def iter_events(response: httpx.Response, stream: EventStream | None = None) -> Iterator[Event]:
    """Parses SSE as bytes arrive, yielding each event the moment its blank line is read."""
    lines = _EventLines(stream or EventStream(response))
    for line in response.iter_lines():
        if (event := lines.feed(line)) is not None:
            yield event


def read_stream(response: httpx.Response) -> EventStream:
    stream = EventStream(response)
    for _ in iter_events(response, stream):
        pass
    return stream


async def raw_stream(port: int, body: dict[str, Any], host: str = "127.0.0.1") -> tuple[int, EventStream]:
    """POST /chat over a bare socket (`Connection: close`), read to its end: (status, events).

    For loops of thousands of streams: httpx's client costs several times the CPU per stream,
    which on 2 cores is taken from the service under test (the soak took 65 s instead of 39 s).
    """
    payload = json.dumps(body).encode()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            b"POST /chat HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (host.encode(), len(payload), payload)
        )
        raw = await reader.read(-1)
    finally:
        writer.close()
    head, _, content = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    if any(line.lower() == "transfer-encoding: chunked" for line in header_lines):
        content = _unchunked(content)
    stream = EventStream(None)
    lines = _EventLines(stream)
    for line in content.decode().split("\n"):
        lines.feed(line)
    return int(status_line.split()[1]), stream


def _unchunked(content: bytes) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line, _, rest = content.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return b"".join(parts)
        parts.append(rest[:size])
        content = rest[size + 2 :]


def chat_body(text: str = "Say hello", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **extra}


class LogReader:
    """The service's output, as JSON lines."""

    def __init__(self, read: Callable[[], str]) -> None:
        self._read = read

    def text(self) -> str:
        return self._read()

    def lines(self) -> list[dict[str, Any]]:
        """Complete lines only: the service's stdout is block-buffered, so the file can end in
        the first part of a line whose rest is still in the buffer."""
        complete, _, _ = self.text().rpartition("\n")
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def for_request(self, request_id: str, *, wait_for_summary: bool = True) -> list[dict[str, Any]]:
        """The lines of one request; the summary line is written once the response is over."""
        deadline = time.monotonic() + 5
        while True:
            lines = [line for line in self.lines() if line.get("request_id") == request_id]
            if (
                not wait_for_summary
                or any(line["event"] == "request" for line in lines)
                or time.monotonic() > deadline
            ):
                return lines
            time.sleep(0.02)

    def summary(self, request_id: str) -> dict[str, Any]:
        return next(line for line in self.for_request(request_id) if line["event"] == "request")
