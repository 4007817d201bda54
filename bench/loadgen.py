"""A low-overhead load generator: raw asyncio HTTP/1.1, SSE parsed as bytes arrive.

Each token is timestamped when the bytes that complete its event are read, so time to first
token and the gaps between tokens are what a browser would see. It speaks to the relays
(`POST /chat`, events `delta`) and straight to the fake Anthropic API (`POST /v1/messages`,
events `content_block_delta`), which gives the floor: what the machine does with no relay.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson


@dataclass
class Target:
    name: str
    port: int
    kind: str  # "relay" or "anthropic"
    host: str = "127.0.0.1"

    @property
    def path(self) -> str:
        return "/chat" if self.kind == "relay" else "/v1/messages"

    def body(self, stream: bool) -> bytes:
        payload: dict[str, object] = {
            "messages": [{"role": "user", "content": "Benchmark"}],
            "stream": stream,
        }
        if self.kind == "anthropic":
            payload |= {"model": "claude-sonnet-4-5", "max_tokens": 1024}
        return orjson.dumps(payload)


@dataclass
class Outcome:
    status: int = 0
    started: float = 0.0
    token_times: list[float] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    done: bool = False
    error: str | None = None

    @property
    def ttft(self) -> float | None:
        return self.token_times[0] - self.started if self.token_times else None

    @property
    def gaps(self) -> list[float]:
        times = self.token_times
        return [b - a for a, b in itertools.pairwise(times)]


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ", 2)[1]), headers


async def _body_chunks(reader: asyncio.StreamReader, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    if headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return
            yield await reader.readexactly(size)
            await reader.readexactly(2)
    elif "content-length" in headers:
        yield await reader.readexactly(int(headers["content-length"]))
    else:
        while chunk := await reader.read(65536):
            yield chunk


def _events(buffer: bytes) -> tuple[list[tuple[bytes | None, bytes]], bytes]:
    """Complete events in the buffer (any SSE line ending), and what is left over."""
    if b"\r" in buffer:
        buffer = buffer.replace(b"\r\n", b"\n")
    *blocks, rest = buffer.split(b"\n\n")
    events = []
    for block in blocks:
        name, data = None, []
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip()
            elif line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
        if data:
            events.append((name, b"\n".join(data)))
    return events, rest


async def request(target: Target, stream: bool, outcome: Outcome | None = None) -> Outcome:
    """One request; `outcome` may be given to watch it while it runs."""
    outcome = outcome or Outcome()
    writer = None
    try:
        reader, writer = await asyncio.open_connection(target.host, target.port, limit=1 << 20)
        body = target.body(stream)
        outcome.started = time.perf_counter()
        writer.write(
            b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nx-api-key: bench\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (target.path.encode(), target.host.encode(), len(body), body)
        )
        outcome.status, headers = await _read_head(reader)
        if outcome.status != 200:
            outcome.error = f"HTTP {outcome.status}"
            return outcome
        if not stream:
            raw = b"".join([chunk async for chunk in _body_chunks(reader, headers)])
            outcome.token_times.append(time.perf_counter())
            message = orjson.loads(raw)
            content = message["content"]
            outcome.text.append(content if isinstance(content, str) else content[0]["text"])
            outcome.done = True
            return outcome
        delta = b"delta" if target.kind == "relay" else b"content_block_delta"
        buffer = b""
        async for chunk in _body_chunks(reader, headers):
            now = time.perf_counter()
            events, buffer = _events(buffer + chunk)
            for name, data in events:
                if name == delta:
                    payload = orjson.loads(data)
                    outcome.token_times.append(now)
                    outcome.text.append(
                        payload["text"] if target.kind == "relay" else payload["delta"]["text"]
                    )
                elif data == b"[DONE]" or name == b"message_stop":
                    outcome.done = True
                elif name == b"error":
                    outcome.error = data.decode()
        return outcome
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
        return outcome
    finally:
        if writer is not None:
            writer.close()


async def run_load(
    target: Target,
    *,
    stream: bool,
    concurrency: int,
    total: int,
    deadline_s: float,
    on_progress: Callable[[Outcome], Awaitable[None]] | None = None,
) -> list[Outcome]:
    """`total` requests, `concurrency` at a time; stops starting new ones after `deadline_s`."""
    outcomes: list[Outcome] = []
    remaining = total
    stop_at = time.monotonic() + deadline_s

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0 and time.monotonic() < stop_at:
            remaining -= 1
            outcome = await request(target, stream)
            outcomes.append(outcome)
            if on_progress is not None:
                await on_progress(outcome)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


async def post_json(port: int, path: str, payload: dict[str, object]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = orjson.dumps(payload)
    writer.write(
        b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n%s" % (path.encode(), len(body), body)
    )
    status, _ = await _read_head(reader)
    writer.close()
    return status
