"""Long runs against the container: a soak with clients that leave, and shutdown under load.

Marked `slow`: about 2 minutes together on 2 cores (measured: the soak 100 s, the shutdown 10 s,
plus their containers). `uv run pytest` (and so `.ci/run`) runs them with the rest;
`-m "not slow"` leaves them out for a quick run. Every loop is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from fake_anthropic import FakeAnthropic, Reply
from tests.conftest import ServiceContainer
from tests.service_client import chat_body, raw_stream, read_stream
from tests.test_container import LIST_WORKERS

pytestmark = [pytest.mark.slow, pytest.mark.container]

SOAK_REQUESTS = 5000
SOAK_CONCURRENCY = 40
LEAVING_SHARE = 5  # one client in five leaves after its first token
STREAM_TIMEOUT = 60.0  # seconds for one whole stream


def worker_rss_mib(container: ServiceContainer) -> list[float]:
    script = LIST_WORKERS.replace(
        "print(pid)",
        "print([l for l in open(f'/proc/{pid}/status') if l.startswith('VmRSS')][0].split()[1])",
    )
    output = container.container.exec(["python", "-c", script]).output.decode().split()
    return sorted(round(int(kib) / 1024, 1) for kib in output)


async def leave_after_first_token(port: int) -> bool:
    """Reads the stream up to its first token, then closes the connection mid-answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps(chat_body("hi", stream=True)).encode()
    writer.write(
        b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body)
    )
    seen = b""
    try:
        while b"event: delta" not in seen:
            chunk = await reader.read(4096)
            if not chunk:
                return False
            seen += chunk
        return True
    finally:
        writer.close()


async def stream_to_the_end(port: int, text: str) -> bool:
    """One whole stream: HTTP 200, the events in order (start, delta..., end, [DONE], nothing
    after) and exactly `text`. Never raises: a failure is False."""
    try:
        async with asyncio.timeout(STREAM_TIMEOUT):
            status, stream = await raw_stream(port, chat_body("Benchmark", stream=True))
        names = stream.names
        return (
            status == 200
            and names[:1] == ["start"]
            and names[-2:] == ["end", None]
            and set(names[1:-2]) <= {"delta"}
            and all(event.json["type"] == event.name for event in stream.events[:-1])
            and stream.done
            and stream.text == text
        )
    except (OSError, TimeoutError, ValueError, KeyError, TypeError, IndexError):
        return False


def test_soak_with_clients_leaving_leaves_nothing_open(
    start_container: Callable[..., ServiceContainer], fake: FakeAnthropic
) -> None:
    container = start_container()
    port = int(container.url.rsplit(":", 1)[1])
    fake.default = Reply.text(["t"] * 20, interval=0.01)
    rss: dict[str, list[float]] = {"start": worker_rss_mib(container)}
    completed: list[bool] = []
    left: list[bool] = []

    async def soak() -> None:
        queue = iter(range(SOAK_REQUESTS))
        deadline = time.monotonic() + 240

        async def client() -> None:
            for n in queue:
                if time.monotonic() > deadline:
                    return
                if n == SOAK_REQUESTS // 2:
                    rss["middle"] = await asyncio.to_thread(worker_rss_mib, container)
                if n % LEAVING_SHARE == 0:
                    left.append(await leave_after_first_token(port))
                else:
                    completed.append(await stream_to_the_end(port, "t" * 20))

        # Every request on a connection of its own; a client that leaves closes it mid-stream.
        await asyncio.gather(*(client() for _ in range(SOAK_CONCURRENCY)))

    try:
        asyncio.run(soak())
        assert fake.wait_for(lambda: fake.open_streams == 0, timeout=5), (
            f"{fake.open_streams} upstream streams open"
        )
        time.sleep(1)
        rss["end"] = worker_rss_mib(container)
    finally:
        fake.default = Reply.text()

    print(f"soak: {len(completed)} completed, {len(left)} left early, worker RSS MiB {rss}")
    assert len(completed) + len(left) == SOAK_REQUESTS
    assert all(completed), f"{completed.count(False)} completed streams were wrong or had no [DONE]"
    assert all(left)
    # Settled: after thousands of requests the workers hold no more than a little over the middle.
    assert max(rss["end"]) < max(rss["middle"]) + 10


def test_shutdown_under_load_finishes_or_says_goodbye_to_every_stream(
    start_container: Callable[..., ServiceContainer], fake: FakeAnthropic
) -> None:
    container = start_container(GRACEFUL_TIMEOUT="10", CHAT_SHUTDOWN_GRACE="3")
    short, long = Reply.text(["s"] * 15, interval=0.1), Reply.text(["l"] * 150, interval=0.1)
    fake.enqueue(*[short, long] * 10)
    first_tokens = 0

    def one_stream() -> tuple[str, str | None, str | None]:
        nonlocal first_tokens
        with (
            httpx.Client(base_url=container.url, timeout=30) as client,
            client.stream("POST", "/chat", json=chat_body(stream=True)) as response,
        ):
            stream = read_stream(response)
        last = stream.events[-1]
        kind = last.data if last.name is None else last.json["error"]["type"]
        return stream.text[:1], kind, None

    with ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(one_stream) for _ in range(20)]
        assert fake.wait_for(lambda: len(fake.received) == 20, timeout=10)
        time.sleep(0.5)  # every stream has its first tokens
        stopped_at = time.monotonic()
        container.docker.stop(timeout=30)
        results = [future.result(timeout=40) for future in futures]
    stop_took = time.monotonic() - stopped_at

    endings = {(first, kind) for first, kind, _ in results}
    assert endings == {("s", "[DONE]"), ("l", "service_restarting")}, results
    assert sum(kind == "[DONE]" for _, kind, _ in results) == 10
    container.docker.reload()
    assert container.docker.attrs["State"]["ExitCode"] == 0
    assert stop_took < 10
    assert fake.wait_for(lambda: fake.open_streams == 0, timeout=3)
    summaries = [line for line in container.log.lines() if line["event"] == "request"]
    outcomes = [line["outcome"] for line in summaries if line["path"] == "/chat"]
    assert sorted(outcomes) == ["ok"] * 10 + ["shutdown"] * 10
