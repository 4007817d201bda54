"""A low-overhead load generator: raw asyncio streams, HTTP/1.1 and SSE parsed as bytes arrive.

One connection per request (`Connection: close`), the same for every target. The response is
read with one `read()` per socket read; chunked transfer encoding, `Content-Length` and
read-to-close bodies are decoded incrementally, and so is SSE with any line ending (`\\n`, `\\r\\n`
as sse-starlette sends, or `\\r`). Each token is timestamped (`time.perf_counter`) when the read
that completes its event returns, so time to first token and the gaps between tokens are what a
browser would see. Two kinds of target:

- `relay`: `POST /chat`, the service's event contract: `start`, `thinking`..., `delta`..., `end`,
  `data: [DONE]`, checked in that order (no `thinking` after the first `delta`), nothing after `[DONE]`;
- `anthropic`: `POST /v1/messages` with `"stream": true` straight to the fake Anthropic API,
  Anthropic's events (`message_start`, `thinking_delta`s before any `text_delta`), ending with
  `message_stop`: the floor, what the machine does with no relay in between.

The time of `start` (Anthropic's `message_start` for the floor) is kept too: with a model that
thinks before it answers, that is when a client learns its request was accepted.

A `resumable` relay target (the service with `CHAT_REDIS_URL`) must put an `id:` on every event,
1, 2, 3... in order (a relay target without it must put none), and `start` must carry the
`stream_id`. A request may drop its connection after its k-th token (`drop_after`), and `resume`
then continues the same `Result` on `GET /chat/streams/{stream_id}` with `Last-Event-ID`: its
events must continue the ids exactly where the dropped connection left them.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

RELAY = "relay"
ANTHROPIC = "anthropic"
READ_SIZE = 1 << 16
RELAY_JSON_KEYS = frozenset({"id", "model", "role", "content", "stop_reason", "usage"})
# The service adds the thinking summary (null unless asked for), the meter, and what a refusal or
# a compaction carries; the reference relay has none of them.
RELAY_JSON_OPTIONAL_KEYS = frozenset({"thinking", "context", "stop_details", "compaction"})


class ProtocolError(Exception):
    """The response broke HTTP, SSE or the event contract."""


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    kind: str  # RELAY or ANTHROPIC
    host: str = "127.0.0.1"
    # Ask for the thinking summary (`/chat`'s `thinking: "summarized"`, Anthropic's adaptive
    # thinking with display summarized); a relay that does not know the option ignores it.
    summarized: bool = False
    resumable: bool = False  # the service with resumption on: ids on every event, a stream id

    def request_bytes(self, stream: bool) -> bytes:
        payload: dict[str, Any] = {"messages": [{"role": "user", "content": "Benchmark"}], "stream": stream}
        path = b"/chat"
        if self.summarized:
            payload["thinking"] = "summarized"
        if self.kind == ANTHROPIC:
            payload |= {"model": "claude-sonnet-5-5", "max_tokens": 1024}
            if self.summarized:
                payload["thinking"] = {"type": "adaptive", "display": "summarized"}
            path = b"/v1/messages"
        body = orjson.dumps(payload)
        return (
            b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
            b"Accept: text/event-stream, application/json\r\nx-api-key: bench-key\r\n"
            b"anthropic-version: 2023-06-01\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (path, self.host.encode(), self.port, len(body), body)
        )

    def resume_bytes(self, stream_id: str, last_event_id: int) -> bytes:
        return (
            b"GET /chat/streams/%s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n"
            b"Last-Event-ID: %d\r\nConnection: close\r\n\r\n"
            % (stream_id.encode(), self.host.encode(), self.port, last_event_id)
        )


@dataclass(slots=True)
class Result:
    """One request as the client saw it."""

    status: int = 0
    started: float = 0.0  # before connecting: connection set-up counts in time to first token
    finished: float = 0.0
    start_time: float | None = None  # the read that completed `start` (floor: `message_start`)
    token_times: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)  # `thinking` events' texts ("" = thinking, not shown)
    done: bool = False  # ended with `[DONE]` (relay) / `message_stop` (floor), nothing after; or a JSON body
    output_tokens: int | None = None  # usage.output_tokens as reported in the `end` event or the JSON body
    error: str | None = None
    # Resumable targets
    stream_id: str | None = None  # from `start`
    last_event_id: int | None = None  # the last `id:` read
    dropped: bool = False  # the connection was dropped after `drop_after` tokens
    resumed_at: float | None = None  # before connecting again
    resume_first_event: float | None = None  # the read that completed the resumed stream's first event

    @property
    def ttft(self) -> float | None:
        return self.token_times[0] - self.started if self.token_times else None

    @property
    def time_to_start(self) -> float | None:
        return self.start_time - self.started if self.start_time is not None else None

    @property
    def resume_latency(self) -> float | None:
        if self.resumed_at is None or self.resume_first_event is None:
            return None
        return self.resume_first_event - self.resumed_at

    @property
    def gaps(self) -> list[float]:
        return [b - a for a, b in itertools.pairwise(self.token_times)]

    @property
    def text(self) -> str:
        return "".join(self.texts)


class _Dechunker:
    """Chunked transfer decoding, incremental; hands on partial chunks as soon as they arrive."""

    __slots__ = ("_buf", "_left", "finished")

    def __init__(self) -> None:
        self._buf = b""
        self._left = -1  # bytes of chunk data still to come; -1: a size line; -2: the CRLF after data
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        buf = self._buf + data if self._buf else data
        out = []
        while buf and not self.finished:
            if self._left == -1:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > 4096:
                        raise ProtocolError("chunk size line too long")
                    break
                try:
                    size = int(buf[:end].split(b";", 1)[0], 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size line {buf[:end][:40]!r}") from None
                buf = buf[end + 2 :]
                if size == 0:
                    self.finished = True  # trailers, if any, are not read
                    break
                self._left = size
            elif self._left == -2:
                if len(buf) < 2:
                    break
                if buf[:2] != b"\r\n":
                    raise ProtocolError("chunk data not followed by CRLF")
                buf = buf[2:]
                self._left = -1
            else:
                take = buf[: self._left]
                out.append(take)
                buf = buf[len(take) :]
                self._left -= len(take)
                if self._left == 0:
                    self._left = -2
        self._buf = buf
        return b"".join(out)


class _SseParser:
    """Events out of a byte stream: (event name or None, data, id or None) for each event with data.

    A line ends at `\\r\\n`, `\\n` or a lone `\\r`, as in the service's decoder: a read's last
    `\\r` ends its line at once (the stream may end there, or pause until the next token), and
    if the next read starts with `\\n`, that is the second half of a CRLF and is skipped."""

    __slots__ = ("_pending", "_skip_lf")

    def __init__(self) -> None:
        self._pending = b""
        self._skip_lf = False

    def feed(self, data: bytes) -> list[tuple[bytes | None, bytes, bytes | None]]:
        if not data:
            return []  # a read with only chunk framing: a CR before it still pairs with a LF after
        if self._skip_lf and data.startswith(b"\n"):
            data = data[1:]
        self._skip_lf = False
        if b"\r" in data:
            self._skip_lf = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *blocks, self._pending = (self._pending + data).split(b"\n\n")
        events = []
        for block in blocks:
            name = event_id = None
            lines = []
            for line in block.split(b"\n"):
                if line.startswith(b"data:"):
                    lines.append(line[6:] if line[5:6] == b" " else line[5:])
                elif line.startswith(b"event:"):
                    name = line[7:] if line[6:7] == b" " else line[6:]
                elif line.startswith(b"id:"):
                    event_id = line[4:] if line[3:4] == b" " else line[3:]
                # comments (": ping") and retry: lines are not needed here
            if lines:
                events.append((name, b"\n".join(lines), event_id))
        return events

    @property
    def leftover(self) -> bytes:
        return self._pending.strip()


class _RelayEvents:
    """The service's contract: start, thinking..., delta..., end, [DONE]; nothing after [DONE].
    With `resumable`, each event's id the one after the last; without, no ids."""

    __slots__ = ("first_at", "result", "resumable", "state")

    def __init__(self, result: Result, resumable: bool, state: int = 0) -> None:
        self.result = result
        self.resumable = resumable
        self.state = state  # 0: before start, 1: thinking or deltas, 2: after end, 3: after [DONE]
        self.first_at: float | None = None

    def take(self, name: bytes | None, data: bytes, event_id: bytes | None, now: float) -> None:
        if self.first_at is None:
            self.first_at = now
        if self.resumable:
            if event_id is None:
                raise ProtocolError(f"event without an id from a resumable relay: {name!r}")
            expected = (self.result.last_event_id or 0) + 1
            if int(event_id) != expected:
                raise ProtocolError(f"event id {event_id!r}, expected {expected} ({name!r})")
            self.result.last_event_id = expected
        elif event_id is not None:
            raise ProtocolError(f"event id {event_id!r} with resumption off")
        if self.state == 3:
            raise ProtocolError(f"event after [DONE]: {name!r}")
        if name == b"delta":
            payload = orjson.loads(data)
            if self.state != 1 or payload["type"] != "delta":
                raise ProtocolError(f"delta out of order or mistyped: {data[:80]!r}")
            self.result.token_times.append(now)
            self.result.texts.append(payload["text"])
        elif name is None and data == b"[DONE]":
            if self.state != 2:
                raise ProtocolError("[DONE] before the end event")
            self.state = 3
            self.result.done = True
        elif name == b"thinking":
            payload = orjson.loads(data)
            if self.state != 1 or self.result.texts or payload["type"] != "thinking":
                raise ProtocolError(f"thinking before start, after a delta or mistyped: {data[:80]!r}")
            self.result.thinking.append(payload["text"])
        elif name == b"start":
            payload = orjson.loads(data)
            if self.state != 0 or payload["type"] != "start":
                raise ProtocolError("start event out of order or mistyped")
            if self.resumable:
                self.result.stream_id = payload["stream_id"]
            self.state = 1
            self.result.start_time = now
        elif name == b"end":
            payload = orjson.loads(data)
            if self.state != 1 or payload["type"] != "end":
                raise ProtocolError("end event out of order or mistyped")
            self.state = 2
            self.result.output_tokens = payload["usage"]["output_tokens"]
        elif name == b"error":
            raise ProtocolError(f"error event: {data[:200].decode(errors='replace')}")
        else:
            raise ProtocolError(f"unexpected event {name!r}: {data[:80]!r}")


class _AnthropicEvents:
    """Anthropic's stream: message_start first, thinking from thinking_delta (before any text), text
    from text_delta, the end at message_stop."""

    __slots__ = ("result",)

    def __init__(self, result: Result) -> None:
        self.result = result

    def take(self, name: bytes | None, data: bytes, event_id: bytes | None, now: float) -> None:
        if self.result.done:
            raise ProtocolError(f"event after message_stop: {name!r}")
        if name != b"message_start" and self.result.start_time is None and name != b"error":
            raise ProtocolError(f"{name!r} before message_start")
        if name == b"content_block_delta":
            delta = orjson.loads(data)["delta"]
            if delta["type"] == "text_delta":
                self.result.token_times.append(now)
                self.result.texts.append(delta["text"])
            elif delta["type"] == "thinking_delta":
                if self.result.texts:
                    raise ProtocolError("thinking_delta after a text_delta")
                self.result.thinking.append(delta["thinking"])
        elif name == b"message_start":
            if self.result.start_time is not None:
                raise ProtocolError("a second message_start")
            self.result.start_time = now
        elif name == b"message_delta":
            self.result.output_tokens = orjson.loads(data)["usage"]["output_tokens"]
        elif name == b"message_stop":
            self.result.done = True
        elif name == b"error":
            raise ProtocolError(f"error event: {data[:200].decode(errors='replace')}")


def _parse_head(head: bytes) -> tuple[int, dict[bytes, bytes]]:
    status_line, *lines = head.split(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ProtocolError(f"bad status line {status_line[:80]!r}")
    headers = {}
    for line in lines:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def _json_body(target: Target, raw: bytes, result: Result) -> None:
    message = orjson.loads(raw)
    if target.kind == RELAY:
        if set(message) - RELAY_JSON_OPTIONAL_KEYS != RELAY_JSON_KEYS or message["role"] != "assistant":
            raise ProtocolError(f"unexpected JSON shape: keys {sorted(message)}")
        result.texts.append(message["content"])
    else:
        result.texts.append("".join(block["text"] for block in message["content"] if block["type"] == "text"))
    result.output_tokens = message["usage"]["output_tokens"]
    result.done = True


async def request(
    target: Target,
    stream: bool,
    result: Result | None = None,
    *,
    timeout_s: float = 60.0,
    on_first_token: Callable[[], None] | None = None,
    drop_after: int | None = None,
) -> Result:
    """One request; `result` may be passed in to watch it while it runs. Never raises: a failure
    is recorded in `result.error`. With `drop_after`, the connection is closed as soon as that
    many tokens were read (the rest of that read unread, as when a network drops)."""
    result = Result() if result is None else result
    result.started = time.perf_counter()  # before connecting: set-up counts in time to first token
    events = _RelayEvents(result, target.resumable) if target.kind == RELAY else _AnthropicEvents(result)
    await _exchange(
        target, target.request_bytes(stream), stream, result, events, timeout_s, on_first_token, drop_after
    )
    return result


async def resume(target: Target, result: Result, *, timeout_s: float = 60.0) -> Result:
    """Continues a dropped `result` at once on `GET /chat/streams/{stream_id}` with the last
    event id it read: the rest of its events, which must follow on without a gap or a repeat."""
    if result.stream_id is None or result.last_event_id is None:
        result.error = "dropped before `start` gave a stream id"
        return result
    events = _RelayEvents(result, resumable=True, state=1)
    result.resumed_at = time.perf_counter()
    request_bytes = target.resume_bytes(result.stream_id, result.last_event_id)
    await _exchange(target, request_bytes, True, result, events, timeout_s, None, None)
    result.resume_first_event = events.first_at
    if result.error is not None:
        result.error = f"resumed: {result.error}"
    return result


async def _exchange(
    target: Target,
    request_bytes: bytes,
    stream: bool,
    result: Result,
    events: _RelayEvents | _AnthropicEvents,
    timeout_s: float,
    on_first_token: Callable[[], None] | None,
    drop_after: int | None,
) -> None:
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(target.host, target.port)
            writer.write(request_bytes)
            buf = b""
            now = 0.0
            while (end := buf.find(b"\r\n\r\n")) < 0:
                data = await reader.read(READ_SIZE)
                if not data:
                    raise ProtocolError("connection closed before the response head")
                now = time.perf_counter()
                buf += data
            result.status, headers = _parse_head(buf[:end])
            body = buf[end + 4 :]
            chunked = headers.get(b"transfer-encoding", b"").lower() == b"chunked"
            length = None if chunked else headers.get(b"content-length")
            left = int(length) if length is not None else -1
            dechunker = _Dechunker() if chunked else None

            def complete() -> bool:
                return dechunker.finished if dechunker is not None else left == 0

            def unframe(data: bytes) -> bytes:
                """The body bytes in `data`: de-chunked, or cut at Content-Length."""
                nonlocal left
                if dechunker is not None:
                    return dechunker.feed(data)
                if left >= 0:
                    data = data[:left]
                    left -= len(data)
                return data

            if result.status != 200 or not stream:
                raw = []
                while True:
                    raw.append(unframe(body))
                    if complete():
                        break
                    body = await reader.read(READ_SIZE)
                    if not body:
                        if length is None and dechunker is None:
                            break  # a read-to-close body
                        raise ProtocolError("connection closed inside the body")
                result.token_times.append(time.perf_counter())
                if result.status != 200:
                    raise ProtocolError(
                        f"HTTP {result.status}: {b''.join(raw)[:300].decode(errors='replace')}"
                    )
                _json_body(target, b"".join(raw), result)
                return

            sse = _SseParser()
            take = events.take
            first_seen = False
            while True:
                for name, data, event_id in sse.feed(unframe(body)):
                    take(name, data, event_id, now)
                    if drop_after is not None and len(result.texts) >= drop_after:
                        result.dropped = True
                        return  # the connection closes below, mid-stream
                if on_first_token is not None and not first_seen and result.token_times:
                    first_seen = True
                    on_first_token()
                if complete():
                    break
                body = await reader.read(READ_SIZE)
                now = time.perf_counter()
                if not body:
                    if length is None and dechunker is None:
                        break  # a read-to-close body
                    raise ProtocolError("connection closed inside the body")
            if sse.leftover:
                raise ProtocolError(f"body ended inside an event: {sse.leftover[:80]!r}")
            if not result.done:
                raise ProtocolError("stream ended without its final event")
    except TimeoutError:
        result.error = f"no complete answer within {timeout_s:.0f} s"
    except (OSError, ProtocolError, asyncio.IncompleteReadError, ValueError, KeyError, TypeError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        result.finished = time.perf_counter()
        if writer is not None:
            writer.close()


def selfcheck() -> None:
    """The parsers against a response split at every byte: chunked encoding, CRLF, CR and LF
    line endings, comments, an event split across chunks. Every event must be taken at the read
    that completes it, with nothing held back for a read that may never come: the stream's last
    event (`[DONE]`, whose lines may end with a lone CR) at the read that ends the body, before
    the chunked terminator, and in a body read to its end one byte at a time. Raises
    AssertionError if one is wrong."""
    texts = ['He said "hi"', "back\\slash", "\n", " café 日本語 🙂 e\u0301", "  "]
    thinking = ["", 'Let me "think"\n']

    def check(result: Result, *where: object) -> None:
        assert result.texts == texts, (*where, result)
        assert result.thinking == thinking, (*where, result)
        assert result.done, where
        assert result.output_tokens == 5, where

    for sep in (b"\n", b"\r\n", b"\r"):
        events = [b": ping", b"event: start" + sep + b'data: {"type":"start","id":"m","model":"x"}']
        events += [
            b"event: thinking" + sep + b"data: " + orjson.dumps({"type": "thinking", "text": text})
            for text in thinking
        ]
        events += [b": ping"]
        events += [
            b"event: delta" + sep + b"data: " + orjson.dumps({"type": "delta", "text": text})
            for text in texts
        ]
        events += [
            b'event: end\ndata: {"type":"end","stop_reason":"end_turn","usage":{"output_tokens":5}}'.replace(
                b"\n", sep
            ),
            b"data: [DONE]",
        ]
        stream = b"".join(event + sep + sep for event in events)
        wire = b"".join(
            b"%x\r\n%s\r\n" % (len(part), part) for part in (stream[:7], stream[7:40], stream[40:])
        )
        body_end = len(wire) - len(b"\r\n")  # a read up to here holds the whole stream
        wire += b"0\r\n\r\n"
        for cut in range(len(wire)):
            result = Result()
            dechunker, sse, relay = _Dechunker(), _SseParser(), _RelayEvents(result, resumable=False)
            for piece in (wire[:cut], wire[cut:]):
                for name, data, event_id in sse.feed(dechunker.feed(piece)):
                    relay.take(name, data, event_id, 0.0)
                if piece and cut >= body_end:  # the first read held the whole stream
                    assert result.done, (sep, cut, "[DONE] waited for the next read")
            assert dechunker.finished, (sep, cut)
            assert not sse.leftover, (sep, cut)
            check(result, sep, cut)
        # A body with no chunked framing (Content-Length, or read to close), one byte a read:
        # every CR ends a read, and the last one ends the stream.
        result = Result()
        sse, relay = _SseParser(), _RelayEvents(result, resumable=False)
        for i in range(len(stream)):
            for name, data, event_id in sse.feed(stream[i : i + 1]):
                relay.take(name, data, event_id, 0.0)
        assert not sse.leftover, sep
        check(result, sep, "byte by byte")


async def run_load(
    target: Target,
    *,
    stream: bool,
    concurrency: int,
    total: int,
    deadline_s: float,
    stagger_s: float = 0.0,
    timeout_s: float = 60.0,
    drop_at: Callable[[int], int | None] | None = None,
) -> list[Result]:
    """`total` requests, `concurrency` at a time (a closed loop: each worker starts its next
    request when the last one ends). With `stagger_s`, worker i starts i × stagger_s / concurrency
    late, so that arrivals are spread as in steady traffic instead of coming in one burst. Stops
    starting new requests after `deadline_s`. `drop_at(n)`, for the n-th request (from 0): after
    how many tokens it drops its connection and resumes at once (None: it reads to the end)."""
    results: list[Result] = []
    remaining = total
    stop_at = time.monotonic() + deadline_s

    async def worker(index: int) -> None:
        nonlocal remaining
        if stagger_s:
            await asyncio.sleep(index * stagger_s / concurrency)
        while remaining > 0 and time.monotonic() < stop_at:
            drop_after = drop_at(total - remaining) if drop_at is not None else None
            remaining -= 1
            result = await request(target, stream, timeout_s=timeout_s, drop_after=drop_after)
            if result.dropped:
                await resume(target, result, timeout_s=timeout_s)
            results.append(result)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return results
