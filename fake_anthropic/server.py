"""A fake Anthropic Messages API: a real HTTP/1.1 server speaking the real wire format.

Standard library only, so it runs anywhere Python does: in-process for the tests and the
benchmark (`start()` runs it on a thread, `serve()` on the caller's event loop), and as a process
for the compose demo (in the service's image, the package mounted beside it):

    python -m fake_anthropic --host 0.0.0.0 --port 8080 --interval-ms 40

Each request takes the next scripted `Reply` (see `enqueue`), or the default one. What it
received, and whether the caller went away before the answer was over, is recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Pieces that break naive relays: quotes, backslashes, newlines, multi-byte text, an emoji,
# combining marks, a token that is only whitespace, and one that is only a blank line.
TRICKY_TOKENS = (
    "Hello",
    ",",
    ' "quoted"',
    " back\\slash",
    "\n",
    " café",
    " 日本語",
    " 🙂",
    " e\u0301",
    "  ",
    "\n\n",
    " end.",
)

DEMO_THINKING = ("The user says hi. ", "A short, friendly greeting ", "is the right answer.")

# Models Anthropic has retired answer 404, as the real API does.
RETIRED_MODELS = frozenset(
    {"claude-3-5-sonnet-latest", "claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20240620"}
)
# Today's Sonnet's context window, for a model the test did not give one.
DEFAULT_CONTEXT_WINDOW = 200_000
# The fake's own choice of default fallbacks; Anthropic's are its own and may change.
REFUSAL_FALLBACKS = {"claude-sonnet-5-5": "claude-sonnet-4-5"}
SERVER_SIDE_FALLBACK_BETA = "server-side-fallback-2026-07-01"
# Server-side compaction: the beta, Anthropic's least and default triggers, and the fake's own
# secret for the blocks it hands out (Anthropic's are opaque and signed: a changed one is a 400).
COMPACTION_BETA = "compact-2026-01-12"
MIN_COMPACTION_TRIGGER = 50_000
DEFAULT_COMPACTION_TRIGGER = 150_000
_COMPACTION_SECRET = b"fake-anthropic-compaction"
# The API version the SDK sends rejects these.
REJECTED_PARAMS = ("temperature", "top_p", "top_k")

_ids = itertools.count(1)


def default_tokens(count: int) -> list[str]:
    return [TRICKY_TOKENS[i % len(TRICKY_TOKENS)] for i in range(count)]


@dataclass
class Reply:
    """One scripted answer. Built with the class methods below."""

    status: int = 200
    tokens: Sequence[str] = field(default_factory=lambda: default_tokens(12))
    interval: float = 0.0  # seconds between tokens
    headers: dict[str, str] = field(default_factory=dict)
    error_type: str | None = None
    error_message: str = ""
    raw_body: bytes | None = None  # sent as the body, whatever it is
    error_after: int | None = None  # in-band `event: error` after this many tokens
    error_at_start: bool = False  # in-band `event: error` as the first event, before message_start
    stall_after: int | None = None  # stop sending after this many tokens, keep the connection
    reset_after: int | None = None  # reset the connection after this many tokens
    truncate_after: int | None = None  # end the body cleanly after this many tokens
    hang: bool = False  # never answer
    drop: bool = False  # close the connection without answering
    extra_events: Sequence[tuple[str, str]] = ()  # (event, data) sent before the first token
    stop_reason: str = "end_turn"
    # Thinking, as today's models do before the text: a `thinking` block (its summary pieces are
    # sent as thinking_delta only when the request asked for display "summarized"), with pings.
    thinking: Sequence[str] = ()
    thinking_seconds: float = 0.0  # spread over the summary pieces, pinging every `ping_every`
    ping_every: float = 0.25
    redacted_thinking: bool = False  # a `redacted_thinking` block instead
    # A fault halfway through the thinking: "error" (in-band event), "reset", "stall" or "truncate".
    fault_while_thinking: str | None = None
    unknown_block: bool = False  # a block of a type added later, with its own delta type, before the text
    split_text_at: int | None = None  # the text in two blocks, the second from this token on
    # Malformed upstream after this many tokens: "missing_text" (a text_delta without its text)
    # or "not_json" (a data line that is not JSON).
    malformed: str | None = None
    malformed_after: int = 1
    line_ending: str = "\n"  # between the stream's lines: "\n", "\r\n" or "\r", all three valid SSE
    # The model declines for policy reasons after `refused_after` tokens: stop_reason "refusal"
    # with stop_details; or, when the request asked for server-side fallback and the model has
    # one (`FakeAnthropic.refusal_fallbacks`), a `fallback` block and the fallback's answer.
    refused_after: int | None = None
    refusal_category: str | None = "general_harms"

    @classmethod
    def text(cls, tokens: Sequence[str] | None = None, *, interval: float = 0.0, **kw: Any) -> Reply:
        return cls(tokens=list(tokens) if tokens is not None else default_tokens(12), interval=interval, **kw)

    @classmethod
    def error(
        cls, status: int, error_type: str, message: str = "", *, headers: dict[str, str] | None = None
    ) -> Reply:
        return cls(
            status=status, error_type=error_type, error_message=message or error_type, headers=headers or {}
        )

    @property
    def text_value(self) -> str:
        return "".join(self.tokens)

    @property
    def thinks(self) -> bool:
        return bool(self.thinking) or self.thinking_seconds > 0 or self.redacted_thinking

    @property
    def output_tokens(self) -> int:
        return len(self.tokens) + (len(self.thinking) or (8 if self.thinks else 0))


@dataclass
class Received:
    """One request as the fake saw it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    started: float = field(default_factory=time.monotonic)
    finished: bool = False  # the whole answer was written
    client_gone_at: float | None = None  # the caller closed the connection before the end

    @property
    def client_gone(self) -> bool:
        return self.client_gone_at is not None


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return _chunk(
        b"event: %s\ndata: %s\n\n" % (name.encode(), json.dumps(payload, ensure_ascii=False).encode())
    )


def _delta(text: str, index: int = 0) -> bytes:
    return _event(
        "content_block_delta",
        {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}},
    )


def _block_start(index: int, block: dict[str, Any]) -> bytes:
    return _event(
        "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
    )


def _block_stop(index: int) -> bytes:
    return _event("content_block_stop", {"type": "content_block_stop", "index": index})


PING = _event("ping", {"type": "ping"})
SIGNATURE = "EqQBCkgIARABGAIiQL2fake0signature0for0tests"


class _LineEndings:
    """A stream writer that sends the SSE lines inside each chunk with another line ending.

    Every frame the fake writes is whole chunks (`_chunk`) and its JSON never holds a raw
    newline, so each `\n` inside a chunk's data ends a line of the event stream."""

    def __init__(self, writer: asyncio.StreamWriter, ending: bytes) -> None:
        self._writer = writer
        self._ending = ending

    def write(self, frames: bytes) -> None:
        out = []
        while frames:
            size_end = frames.index(b"\r\n")
            size = int(frames[:size_end], 16)
            data = frames[size_end + 2 : size_end + 2 + size]
            frames = frames[size_end + 4 + size :]
            out.append(_chunk(data.replace(b"\n", self._ending)) if size else b"0\r\n\r\n")
        self._writer.write(b"".join(out))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


class _ClientGone(Exception):
    pass


class FakeAnthropic:
    def __init__(
        self,
        host: str | Sequence[str] = "127.0.0.1",
        port: int = 0,
        *,
        default: Reply | None = None,
        api_key: str | None = None,
        record: int = 10_000,
    ) -> None:
        self.hosts = [host] if isinstance(host, str) else list(host)
        self.host = self.hosts[0]
        self.port = port
        self.default = default or Reply.text()
        self.api_key = api_key  # if set, other keys get 401 like the real API
        self.received: deque[Received] = deque(maxlen=record)
        self.model_lookups: deque[str] = deque(maxlen=record)
        # The Models API's answer per model: (lifecycle, retires_at as RFC 3339, or None).
        # Others are active with no retirement scheduled.
        self.model_lifecycles: dict[str, tuple[str, str | None]] = {}
        self._arrivals = threading.Condition()  # notified on each request received
        self.open_streams = 0
        self.connections = 0  # accepted in all: a relay that reuses connections keeps this low
        self._script: deque[Reply] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._delta_cache: dict[str, bytes] = {}
        self.prompt_cache = PromptCache()
        # Models that answer every Messages call with 529 overloaded_error, as Anthropic does
        # when a model has no capacity; scripted replies are kept for the other models.
        self.overloaded_models: set[str] = set()
        # The Models API's max_input_tokens per model, and the models that cannot compact.
        self.context_windows: dict[str, int] = {}
        self.models_without_compaction: set[str] = set()
        # Each model's server-defined default fallback (`"fallbacks": "default"`); a model not
        # listed has none, so that a refusal stays a refusal, as Anthropic documents.
        self.refusal_fallbacks: dict[str, str] = dict(REFUSAL_FALLBACKS)

    # -- scripting, from any thread ------------------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        self._script.extend(replies)

    def reset(self) -> None:
        self._script.clear()
        self.overloaded_models.clear()
        self.context_windows.clear()
        self.models_without_compaction.clear()
        self.refusal_fallbacks = dict(REFUSAL_FALLBACKS)
        self.received.clear()
        self.prompt_cache.clear()
        self.model_lifecycles.clear()

    @property
    def url(self) -> str:
        return self.url_for(self.host)

    def url_for(self, host: str) -> str:
        """The URL on one of the addresses it listens on (containers reach it on the bridge's)."""
        return f"http://{host}:{self.port}"

    def wait_for_requests(self, count: int, timeout: float) -> bool:
        """Waits until `count` requests have been received in all (since `reset`); False on time-out."""
        with self._arrivals:
            return self._arrivals.wait_for(lambda: len(self.received) >= count, timeout)

    def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.01)
        return condition()

    # -- running -----------------------------------------------------------------------------

    async def serve(self) -> asyncio.Server:
        if self.port == 0 and len(self.hosts) > 1:
            with socket.socket() as probe:  # one port for every address
                probe.bind((self.host, 0))
                self.port = probe.getsockname()[1]
        self._server = await asyncio.start_server(self._connection, self.hosts, self.port, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]
        return self._server

    def start(self) -> FakeAnthropic:
        """Serves on a thread of its own; returns once it listens."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.serve())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-anthropic", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return

        async def shutdown() -> None:
            if self._server:
                self._server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    # -- HTTP ----------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                _method, target, _version = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                keep_open = await self._respond(target, headers, body, reader, writer)
                if not keep_open:
                    return
        except (ConnectionError, _ClientGone):
            pass
        finally:
            writer.close()

    async def _respond(
        self,
        target: str,
        headers: dict[str, str],
        raw: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        if (
            target == "/_fake/default"
        ):  # sets the default answer: {"tokens": n, "interval_ms": x, "thinking_ms": t}
            thinking_ms = float(body.get("thinking_ms", 0))
            self.default = Reply.text(
                default_tokens(int(body.get("tokens", 12))),
                interval=float(body.get("interval_ms", 0)) / 1000,
                thinking=DEMO_THINKING if thinking_ms else (),
                thinking_seconds=thinking_ms / 1000,
            )
            self._send(writer, 204, "application/json", b"", "control")
            return True
        request_id = f"req_fake{next(_ids):06d}"
        if target.startswith("/v1/models/"):
            # Services look their model up as they start: kept apart from the Messages calls that
            # tests script and count.
            model = target.removeprefix("/v1/models/").split("?")[0]
            self.model_lookups.append(model)
            return self._model_info(writer, model, request_id)
        received = Received(path=target, headers=headers, body=body)
        with self._arrivals:
            self.received.append(received)
            self._arrivals.notify_all()
        if body.get("model") in self.overloaded_models:
            self._send_error(writer, 529, "overloaded_error", "Overloaded", request_id)
            return True
        reply = self._script.popleft() if self._script else self.default
        if not target.startswith("/v1/messages"):
            self._send_error(writer, 404, "not_found_error", f"Not found: {target}", request_id)
            return True
        if self.api_key is not None and self.api_key not in (
            headers.get("x-api-key"),
            headers.get("authorization", "").removeprefix("Bearer "),
        ):
            self._send_error(writer, 401, "authentication_error", "invalid x-api-key", request_id)
            return True
        if rejected := [name for name in REJECTED_PARAMS if name in body]:
            self._send_error(
                writer,
                400,
                "invalid_request_error",
                f"{rejected[0]}: Extra inputs are not permitted",
                request_id,
            )
            return True
        if body.get("model") in RETIRED_MODELS:
            self._send_error(writer, 404, "not_found_error", f"model: {body['model']}", request_id)
            return True
        if problem := (
            _thinking_problem(body) or _metadata_problem(body) or self._compaction_problem(body, headers)
        ):
            self._send_error(writer, 400, "invalid_request_error", problem, request_id)
            return True
        if target.split("?")[0] == "/v1/messages/count_tokens":
            return self._count_tokens(reply, body, writer, request_id)
        # Counted above whatever its length; answered only within the model's window.
        window = self.context_windows.get(body.get("model", ""), DEFAULT_CONTEXT_WINDOW)
        if problem := _overflow_problem(body, window):
            self._send_error(writer, 400, "invalid_request_error", problem, request_id)
            return True

        if reply.drop:
            return False
        gone = asyncio.ensure_future(reader.read(1))  # b"" once the caller closes its end
        gone.add_done_callback(lambda read: self._note_gone(received, read))
        try:
            if reply.hang:
                await gone
                return False
            if reply.status == 200 and reply.raw_body is not None:
                self._send(writer, 200, "text/html", reply.raw_body, request_id, reply.headers)
                await writer.drain()
                received.finished = True
                return True
            if reply.status != 200:
                if reply.raw_body is not None:
                    self._send(writer, reply.status, "text/html", reply.raw_body, request_id, reply.headers)
                else:
                    self._send_scripted_error(writer, reply, request_id)
                await writer.drain()
                received.finished = True
                return True
            if body.get("stream"):
                return await self._stream(reply, body, request_id, writer, gone, received)
            text = reply.text_value
            compaction = _compaction_of(body, headers)
            usage_body = _compacted(body, compaction) if compaction else body
            payload = {
                "id": f"msg_fake{request_id[8:]}",
                "type": "message",
                "role": "assistant",
                "model": body.get("model", ""),
                "content": [
                    *([compaction] if compaction else []),
                    *_thinking_blocks(reply, body),
                    {"type": "text", "text": text},
                ],
                "stop_reason": reply.stop_reason,
                "stop_sequence": None,
                "usage": {
                    **self.prompt_cache.input_usage(usage_body),
                    "output_tokens": reply.output_tokens,
                    **_iterations(body, compaction, reply),
                },
            }
            if reply.interval:
                await asyncio.sleep(reply.interval * len(reply.tokens))
            self._send(
                writer, 200, "application/json", json.dumps(payload).encode(), request_id, reply.headers
            )
            await writer.drain()
            received.finished = True
            return True
        except ConnectionError:
            # A write found the connection reset before the read above did: gone all the same.
            if not received.finished and received.client_gone_at is None:
                received.client_gone_at = time.monotonic()
            raise
        finally:
            if not gone.done():
                gone.cancel()
                # The reader accepts the next request only once this read has let go of it.
                with contextlib.suppress(asyncio.CancelledError):
                    await gone

    def _send_scripted_error(self, writer: asyncio.StreamWriter, reply: Reply, request_id: str) -> None:
        self._send_error(
            writer,
            reply.status,
            reply.error_type or "api_error",
            reply.error_message,
            request_id,
            reply.headers,
        )

    def _count_tokens(
        self, reply: Reply, body: dict[str, Any], writer: asyncio.StreamWriter, request_id: str
    ) -> bool:
        """The Token Counting API: the estimate the Messages API bills, or a scripted error."""
        if reply.status != 200:
            self._send_scripted_error(writer, reply, request_id)
        else:
            counted = json.dumps({"input_tokens": input_tokens(body)}).encode()
            self._send(writer, 200, "application/json", counted, request_id)
        return True

    @staticmethod
    def _note_gone(received: Received, read: asyncio.Future[bytes]) -> None:
        # A caller that closes with bytes of the answer still unread in its socket resets the
        # connection (RST rather than FIN): the read fails instead of returning b"".
        if read.cancelled() or received.finished:
            return
        if read.exception() is None or isinstance(read.exception(), ConnectionError):
            received.client_gone_at = time.monotonic()

    def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        content_type: str,
        body: bytes,
        request_id: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        head = [
            f"HTTP/1.1 {status} X",
            f"content-type: {content_type}",
            f"content-length: {len(body)}",
            f"request-id: {request_id}",
        ]
        head += [f"{name}: {value}" for name, value in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    def _send_error(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        error_type: str,
        message: str,
        request_id: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        payload = {
            "type": "error",
            "error": {"type": error_type, "message": message},
            "request_id": request_id,
        }
        self._send(writer, status, "application/json", json.dumps(payload).encode(), request_id, extra)

    def _cached_delta(self, text: str) -> bytes:
        frame = self._delta_cache.get(text)
        if frame is None:
            frame = self._delta_cache[text] = _delta(text)
        return frame

    async def _stream(
        self,
        reply: Reply,
        body: dict[str, Any],
        request_id: str,
        writer: asyncio.StreamWriter,
        gone: asyncio.Future[bytes],
        received: Received,
    ) -> bool:
        head = [
            "HTTP/1.1 200 OK",
            "content-type: text/event-stream; charset=utf-8",
            "cache-control: no-cache",
            "transfer-encoding: chunked",
            f"request-id: {request_id}",
        ] + [f"{name}: {value}" for name, value in reply.headers.items()]
        # Compaction comes first: the answer is then written from the summary, and billed so.
        compaction = _compaction_of(body, received.headers)
        usage_body = _compacted(body, compaction) if compaction else body
        message = {
            "id": f"msg_fake{request_id[8:]}",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": body.get("model", ""),
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**self.prompt_cache.input_usage(usage_body), "output_tokens": 1},
        }
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        if reply.line_ending != "\n":
            writer = _LineEndings(writer, reply.line_ending.encode())  # type: ignore[assignment]
        if reply.error_at_start:
            return await self._fault("error", reply, writer, gone, received)
        writer.write(_event("message_start", {"type": "message_start", "message": message}))
        self.open_streams += 1
        try:
            index = 0
            if compaction:
                writer.write(_block_start(index, {"type": "compaction"}))
                delta = {"type": "compaction_delta", **{k: v for k, v in compaction.items() if k != "type"}}
                writer.write(
                    _event(
                        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
                    )
                )
                writer.write(_block_stop(index))
                index += 1
            if reply.thinks:
                fault = await self._think(reply, body, writer, gone, index)
                if fault is not None:
                    return await self._fault(fault, reply, writer, gone, received)
                index += 1
            if reply.unknown_block:
                writer.write(_block_start(index, {"type": "mystery_block", "payload": {"x": 1}}))
                writer.write(
                    _event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": {"type": "mystery_delta"}},
                    )
                )
                writer.write(_block_stop(index))
                index += 1
            writer.write(_block_start(index, {"type": "text", "text": ""}))
            writer.write(PING)
            for name, data in reply.extra_events:
                writer.write(_chunk(f"event: {name}\ndata: {data}\n\n".encode()))
            for sent, token in enumerate(reply.tokens):
                if sent == reply.refused_after:
                    fallback = self._refusal_fallback(body, received.headers)
                    if fallback is None:
                        writer.write(_block_stop(index))
                        return await self._refuse(reply, writer, received)
                    writer.write(_block_stop(index))
                    hop = {
                        "type": "fallback",
                        "from": {"model": body.get("model", "")},
                        "to": {"model": fallback},
                        "trigger": {"type": "refusal", "category": reply.refusal_category},
                    }
                    writer.write(_block_start(index + 1, hop) + _block_stop(index + 1))
                    index += 2
                    writer.write(_block_start(index, {"type": "text", "text": ""}))
                if sent == reply.error_after:
                    return await self._fault("error", reply, writer, gone, received)
                if sent == reply.stall_after:
                    return await self._fault("stall", reply, writer, gone, received)
                if sent == reply.reset_after:
                    return await self._fault("reset", reply, writer, gone, received)
                if sent == reply.truncate_after:
                    return await self._fault("truncate", reply, writer, gone, received)
                if reply.malformed and sent == reply.malformed_after:
                    if reply.malformed == "missing_text":
                        bad = {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta"}}
                        writer.write(_event("content_block_delta", bad))
                    else:
                        writer.write(_chunk(b"event: content_block_delta\ndata: {not json\n\n"))
                if sent and sent == reply.split_text_at:
                    writer.write(_block_stop(index))
                    index += 1
                    writer.write(_block_start(index, {"type": "text", "text": ""}))
                if reply.interval and sent:
                    await asyncio.sleep(reply.interval)
                    if gone.done():
                        raise _ClientGone
                writer.write(self._cached_delta(token) if index == 0 else _delta(token, index))
                if reply.interval or sent % 16 == 15:
                    await writer.drain()
            writer.write(_block_stop(index))
            if reply.refused_after == len(reply.tokens):  # declined at the very end
                return await self._refuse(reply, writer, received)
            writer.write(
                _event(
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                        "usage": {
                            "output_tokens": reply.output_tokens,
                            **_iterations(body, compaction, reply),
                        },
                    },
                )
            )
            writer.write(_event("message_stop", {"type": "message_stop"}))
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            received.finished = True
            return True
        finally:
            self.open_streams -= 1

    def _refusal_fallback(self, body: dict[str, Any], headers: dict[str, str]) -> str | None:
        asked = body.get("fallbacks") == "default" and SERVER_SIDE_FALLBACK_BETA in headers.get(
            "anthropic-beta", ""
        )
        return self.refusal_fallbacks.get(body.get("model", "")) if asked else None

    async def _refuse(self, reply: Reply, writer: asyncio.StreamWriter, received: Received) -> bool:
        details = {
            "type": "refusal",
            "category": reply.refusal_category,
            "explanation": "The request was declined for policy reasons.",
            "fallback_credit_token": None,
            "fallback_has_prefill_claim": None,
            "recommended_model": None,
        }
        delta = {"stop_reason": "refusal", "stop_sequence": None, "stop_details": details}
        usage = {"output_tokens": reply.refused_after or 1}
        writer.write(_event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        writer.write(_event("message_stop", {"type": "message_stop"}))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        received.finished = True
        return True

    async def _think(
        self,
        reply: Reply,
        body: dict[str, Any],
        writer: asyncio.StreamWriter,
        gone: asyncio.Future[bytes],
        index: int = 0,
    ) -> str | None:
        """The thinking block at `index`, as the real API streams it; a scripted fault halfway
        through it is returned instead of finishing it."""
        if reply.redacted_thinking:
            writer.write(
                _block_start(index, {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/fake"})
            )
        else:
            writer.write(_block_start(index, {"type": "thinking", "thinking": "", "signature": ""}))
        await writer.drain()
        summarized = (body.get("thinking") or {}).get("display") == "summarized"
        pieces = list(reply.thinking) if summarized and not reply.redacted_thinking else []
        steps = max(len(reply.thinking), 1)
        for step in range(steps):
            await self._pause_with_pings(reply.thinking_seconds / steps, reply.ping_every, writer, gone)
            if reply.fault_while_thinking and step >= steps // 2:
                return reply.fault_while_thinking  # with the first half of the summary sent
            if step < len(pieces):
                delta = {"type": "thinking_delta", "thinking": pieces[step]}
                writer.write(
                    _event(
                        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
                    )
                )
                await writer.drain()
        if not reply.redacted_thinking:
            writer.write(
                _event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "signature_delta", "signature": SIGNATURE},
                    },
                )
            )
        writer.write(_block_stop(index))
        return None

    async def _pause_with_pings(
        self, seconds: float, every: float, writer: asyncio.StreamWriter, gone: asyncio.Future[bytes]
    ) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(every, left))
            if gone.done():
                raise _ClientGone
            if deadline - time.monotonic() > 0:
                writer.write(PING)
                await writer.drain()

    async def _fault(
        self,
        fault: str,
        reply: Reply,
        writer: asyncio.StreamWriter,
        gone: asyncio.Future[bytes],
        received: Received,
    ) -> bool:
        if fault == "error":
            # Apart from what came before, as a failure midway arrives: tests can then tell a
            # failure before the answer started from one after.
            await writer.drain()
            await asyncio.sleep(0.01)
            error = {
                "type": reply.error_type or "overloaded_error",
                "message": reply.error_message or "Overloaded",
            }
            writer.write(_event("error", {"type": "error", "error": error}))
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            received.finished = True
            return True
        await writer.drain()
        if fault == "stall":
            await gone
            return False
        if fault == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        writer.write(b"0\r\n\r\n")  # truncated: a clean end with no message_stop
        await writer.drain()
        received.finished = True
        return True

    def _compaction_problem(self, body: dict[str, Any], headers: dict[str, str]) -> str | None:
        """What the API answers 400 to about compaction: its edit or blocks without the beta, a
        trigger under the minimum, a model that cannot compact, a block changed since it was sent."""
        beta = COMPACTION_BETA in headers.get("anthropic-beta", "")
        edit = _compaction_edit(body)
        if edit is not None:
            if not beta:
                return "context_management: Extra inputs are not permitted"
            value = (edit.get("trigger") or {}).get("value", DEFAULT_COMPACTION_TRIGGER)
            if not isinstance(value, int) or value < MIN_COMPACTION_TRIGGER:
                return f"context_management.edits.0.trigger.value: must be at least {MIN_COMPACTION_TRIGGER}"
            if body.get("model") in self.models_without_compaction:
                return f"context_management.edits.0: compact_20260112 is not supported by {body.get('model')}"
        for number, message in enumerate(body.get("messages") or ()):
            for place, block in enumerate(_blocks(message)):
                if block.get("type") != "compaction":
                    continue
                where = f"messages.{number}.content.{place}"
                if not beta:
                    return f"{where}.type: compaction blocks need the {COMPACTION_BETA} beta"
                content = block.get("content")
                if content is not None and block.get("encrypted_content") != _seal(str(content)):
                    return f"{where}: the compaction block does not match its encrypted_content"
        return None

    def _model_info(self, writer: asyncio.StreamWriter, model: str, request_id: str) -> bool:
        if model in RETIRED_MODELS:
            self._send_error(writer, 404, "not_found_error", f"model: {model}", request_id)
            return True
        lifecycle, retires_at = self.model_lifecycles.get(model, ("active", None))
        info = {
            "type": "model",
            "id": model,
            "display_name": model.replace("-", " ").title(),
            "created_at": "2026-01-01T00:00:00Z",
            "lifecycle": lifecycle,
            "deprecated_at": None if lifecycle == "active" else "2026-06-01T00:00:00Z",
            "retires_at": retires_at,
            "max_input_tokens": self.context_windows.get(model, DEFAULT_CONTEXT_WINDOW),
            "max_tokens": 64000,
            "capabilities": _capabilities(compaction=model not in self.models_without_compaction),
        }
        self._send(writer, 200, "application/json", json.dumps(info).encode(), request_id)
        return True


def _capabilities(*, compaction: bool) -> dict[str, Any]:
    """The Models API's `capabilities`, as today's models report them."""

    def support(supported: bool = True) -> dict[str, bool]:
        return {"supported": supported}

    return {
        "batch": support(),
        "citations": support(),
        "code_execution": support(),
        "context_management": {
            "supported": True,
            "clear_thinking_20251015": support(),
            "clear_tool_uses_20250919": support(),
            "compact_20260112": support(compaction),
        },
        "effort": {"supported": True, **{level: support() for level in ("low", "medium", "high", "max")}},
        "image_input": support(),
        "pdf_input": support(),
        "server_tools": support(),
        "structured_outputs": support(),
        "thinking": {"supported": True, "types": {"adaptive": support(), "enabled": support(False)}},
    }


def _thinking_blocks(reply: Reply, body: dict[str, Any]) -> list[dict[str, Any]]:
    if not reply.thinks:
        return []
    if reply.redacted_thinking:
        return [{"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/fake"}]
    summarized = (body.get("thinking") or {}).get("display") == "summarized"
    text = "".join(reply.thinking) if summarized else ""
    return [{"type": "thinking", "thinking": text, "signature": SIGNATURE}]


def _thinking_problem(body: dict[str, Any]) -> str | None:
    """What today's models answer 400 to: manual thinking budgets, thinking disabled, prefill."""
    thinking = body.get("thinking")
    if isinstance(thinking, dict):
        if thinking.get("type") == "enabled" or "budget_tokens" in thinking:
            return "thinking.type.enabled: not supported for this model; use thinking.type.adaptive"
        if thinking.get("type") == "disabled":
            return "thinking.type.disabled: not supported for this model"
    messages = body.get("messages") or []
    if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
        return "This model does not support assistant message prefill."
    return None


def _overflow_problem(body: dict[str, Any], window: int) -> str | None:
    """A prompt that does not fit the model's context window, in Anthropic's words."""
    if (tokens := input_tokens(body)) > window:
        return f"prompt is too long: {tokens} tokens > {window} maximum"
    return None


# Anthropic's limit on metadata.user_id.
USER_ID_MAX_LENGTH = 256


def _metadata_problem(body: dict[str, Any]) -> str | None:
    """What the real API answers 400 to in `metadata`: another key, or a user_id that is not a
    string of at most 256 characters."""
    if "metadata" not in body:
        return None
    metadata = body["metadata"]
    if not isinstance(metadata, dict):
        return "metadata: Input should be a valid dictionary"
    if extra := sorted(set(metadata) - {"user_id"}):
        return f"metadata.{extra[0]}: Extra inputs are not permitted"
    user_id = metadata.get("user_id")
    if user_id is not None and not isinstance(user_id, str):
        return "metadata.user_id: Input should be a valid string"
    if user_id is not None and len(user_id) > USER_ID_MAX_LENGTH:
        return f"metadata.user_id: String should have at most {USER_ID_MAX_LENGTH} characters"
    return None


# Prompts shorter than this are not cached, as with Anthropic's models (about 1024 tokens).
CACHE_MIN_TOKENS = 1024
_CACHE_TTL = {"5m": 300.0, "1h": 3600.0}


class PromptCache:
    """Anthropic's prompt cache, modelled on what a client can observe.

    A request with a top-level `cache_control` has its whole prompt (system, then messages)
    written to the cache, if it is long enough. A later prompt that starts with a remembered
    prompt, at a message boundary, reads those tokens from the cache; the rest is written. The
    prompt is what the model reads: after a compaction, it starts at the compaction block, so the
    first turn after it writes the new prefix and the next ones read it.
    """

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(body: dict[str, Any], messages: int) -> str:
        return json.dumps([body.get("model"), body.get("system"), body.get("messages", [])[:messages]])

    def input_usage(self, body: dict[str, Any]) -> dict[str, int]:
        body = {**body, "messages": _read_from_compaction(body)}
        total = input_tokens(body)
        control = body.get("cache_control")
        if not isinstance(control, dict) or control.get("type") != "ephemeral":
            return {"input_tokens": total, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        now = time.monotonic()
        messages = body.get("messages", [])
        with self._lock:
            read = 0
            for count in range(len(messages), 0, -1):
                key = self._key(body, count)
                if self._expiry.get(key, 0.0) > now:
                    read = input_tokens({**body, "messages": messages[:count]})
                    self._expiry[key] = now + _CACHE_TTL.get(control.get("ttl", "5m"), 300.0)
                    break
            if total < CACHE_MIN_TOKENS:
                return {"input_tokens": total, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
            self._expiry[self._key(body, len(messages))] = now + _CACHE_TTL.get(
                control.get("ttl", "5m"), 300.0
            )
        return {
            "input_tokens": 0,
            "cache_creation_input_tokens": total - read,
            "cache_read_input_tokens": read,
        }

    def clear(self) -> None:
        with self._lock:
            self._expiry.clear()


def input_tokens(body: dict[str, Any]) -> int:
    """The fake's estimate of a prompt's tokens: a word (whitespace-separated) of the system prompt
    or of the messages the model reads is a token; those start at the last compaction block (its
    summary counts, what it summarises does not), as the API drops what comes before it. The one
    count: the Messages API's usage bills it, the Token Counting API answers it, and a prompt over
    the model's window is refused by it."""
    words = sum(len(_block_text(block).split()) for m in _read_from_compaction(body) for block in _blocks(m))
    return words + len(str(body.get("system", "")).split())


def _blocks(message: Any) -> list[dict[str, Any]]:
    if not isinstance(message, dict):
        return []
    content = message.get("content", "")
    if isinstance(content, list):
        return [block for block in content if isinstance(block, dict)]
    return [{"type": "text", "text": str(content)}]


def _block_text(block: dict[str, Any]) -> str:
    if block.get("type") == "compaction":
        return str(block.get("content") or "")
    return str(block.get("text") or block.get("thinking") or "")


def _read_from_compaction(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages as the model reads them: from the last compaction block on."""
    messages = list(body.get("messages") or ())
    for number in range(len(messages) - 1, -1, -1):
        blocks = _blocks(messages[number])
        places = [place for place, block in enumerate(blocks) if block.get("type") == "compaction"]
        if places:
            return [{**messages[number], "content": blocks[places[-1] :]}, *messages[number + 1 :]]
    return messages


def _seal(content: str) -> str:
    return hmac.new(_COMPACTION_SECRET, content.encode(), hashlib.sha256).hexdigest()


def _compaction_edit(body: dict[str, Any]) -> dict[str, Any] | None:
    edits = (body.get("context_management") or {}).get("edits") or ()
    return next(
        (edit for edit in edits if isinstance(edit, dict) and edit.get("type") == "compact_20260112"), None
    )


def _compaction_of(body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any] | None:
    """The compaction block this request gets: with the edit (and its beta) and the input over
    its trigger, a summary of the messages the model would have read."""
    edit = _compaction_edit(body)
    if edit is None or COMPACTION_BETA not in headers.get("anthropic-beta", ""):
        return None
    trigger = (edit.get("trigger") or {}).get("value", DEFAULT_COMPACTION_TRIGGER)
    if input_tokens(body) <= trigger:
        return None
    summary = f"Summary of {len(_read_from_compaction(body))} earlier messages."
    return {"type": "compaction", "content": summary, "encrypted_content": _seal(summary)}


def _compacted(body: dict[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    """The prompt the answer is written from once compacted: the system prompt and the summary."""
    return {**body, "messages": [{"role": "user", "content": [block]}]}


def _iterations(body: dict[str, Any], compaction: dict[str, Any] | None, reply: Reply) -> dict[str, Any]:
    """`usage.iterations` after a compaction: its own tokens (the prompt it summarised, the
    summary it wrote), then the answer's, which the top-level figures repeat."""
    if compaction is None:
        return {}
    summary_tokens = len(str(compaction["content"]).split())
    answer_input = input_tokens(_compacted(body, compaction))
    return {
        "iterations": [
            {
                "type": "compaction",
                "input_tokens": input_tokens(body),
                "output_tokens": summary_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
            {
                "type": "message",
                "input_tokens": answer_input,
                "output_tokens": reply.output_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        ]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--tokens", type=int, default=60, help="tokens per answer")
    parser.add_argument("--interval-ms", type=float, default=30.0, help="pause between tokens")
    parser.add_argument("--api-key", default=None, help="accept only this x-api-key")
    parser.add_argument("--thinking-ms", type=float, default=0.0, help="think this long before the text")
    args = parser.parse_args()
    fake = FakeAnthropic(
        args.host,
        args.port,
        default=Reply.text(
            default_tokens(args.tokens),
            interval=args.interval_ms / 1000,
            thinking=DEMO_THINKING if args.thinking_ms else (),
            thinking_seconds=args.thinking_ms / 1000,
        ),
        api_key=args.api_key,
        record=0,
    )

    async def run() -> None:
        server = await fake.serve()
        print(json.dumps({"event": "fake_anthropic_listening", "url": fake.url}), flush=True)
        await server.serve_forever()

    asyncio.run(run())


if __name__ == "__main__":
    main()
