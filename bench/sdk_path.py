"""What the SDK's request path costs, per call, beside the same call made on aiohttp directly.

    uv run --group bench python -m bench.sdk_path

Both send the service's non-streaming request to the fake Anthropic API, in-process, one at a
time on one pinned core: through `AsyncAnthropic.messages.with_raw_response.create` as the
service does (aiohttp transport, retries off), and as a bare `aiohttp` POST of the same bytes
and headers built once. The difference is the CPU a bypass of the SDK's request machinery would
save per request; the fake's own share (same for both) is in both figures. Every answer is
checked. Informs a design decision; the service itself keeps the SDK.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
from collections.abc import Awaitable, Callable

import aiohttp
import anthropic
import httpx2
import orjson

from fake_anthropic import FakeAnthropic, Reply, default_tokens

CALLS = 3000
BODY = {
    "model": "claude-sonnet-5-5",
    "max_tokens": 256,
    "messages": [{"role": "user", "content": "Benchmark"}],
}
EXPECTED = "".join(default_tokens(50))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _per_call_us(call: Callable[[], Awaitable[bytes]]) -> float:
    for _ in range(200):  # warm-up: connections, caches, lazy imports
        await call()
    before = _cpu()
    for _ in range(CALLS):
        raw = await call()
        if orjson.loads(raw)["content"][0]["text"] != EXPECTED:
            raise SystemExit("bench.sdk_path: wrong answer")
    return (_cpu() - before) * 1e6 / CALLS


async def main() -> None:
    fake = FakeAnthropic("127.0.0.1", 0, record=0, default=Reply.text(default_tokens(50)))
    server = await fake.serve()
    client = anthropic.AsyncAnthropic(
        api_key="bench-key",
        base_url=fake.url,
        max_retries=0,
        open_telemetry=False,
        http_client=anthropic.DefaultAioHttpClient(timeout=httpx2.Timeout(30.0)),
    )
    session = aiohttp.ClientSession()
    url = f"{fake.url}/v1/messages"
    headers = {
        "x-api-key": "bench-key",
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
    }
    body = orjson.dumps(BODY)

    async def through_sdk() -> bytes:
        response = await client.messages.with_raw_response.create(**BODY)  # type: ignore[call-overload]
        return await response.read()

    async def on_aiohttp() -> bytes:
        async with session.post(url, data=body, headers=headers) as response:
            return await response.read()

    try:
        sdk = await _per_call_us(through_sdk)
        bare = await _per_call_us(on_aiohttp)
    finally:
        await client.close()
        await session.close()
        server.close()
    print(f"CPU per call, fake included ({CALLS} calls each, one at a time, one core):")
    print(f"  through the SDK (as the service):  {sdk:7.0f} µs")
    print(f"  bare aiohttp, request built once:  {bare:7.0f} µs")
    print(f"  the SDK's request path costs       {sdk - bare:7.0f} µs per call")


if __name__ == "__main__":
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
    sys.exit(0)
