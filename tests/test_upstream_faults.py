"""Odd but legal upstream behaviour, and a client that reads slowly: nothing lost, nothing piled up."""

import time
from pathlib import Path

import httpx

from tests.conftest import Service, ServiceProcess
from tests.fakes.anthropic_api import FakeAnthropic, Reply
from tests.service_client import chat_body, iter_events, read_stream


def test_unknown_event_types_and_pings_are_ignored(client: httpx.Client, fake: FakeAnthropic) -> None:
    fake.enqueue(
        Reply.text(
            ["still", " fine"],
            extra_events=[
                ("content_block_future", '{"type": "content_block_future", "index": 0}'),
                ("ping", '{"type": "ping"}'),
            ],
        )
    )

    with client.stream("POST", "/chat", json=chat_body(stream=True)) as response:
        stream = read_stream(response)

    assert stream.text == "still fine"
    assert stream.done


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


def test_a_client_that_stops_reading_holds_upstream_back_instead_of_filling_memory(
    client: httpx.Client, service: Service, fake: FakeAnthropic
) -> None:
    token = "x" * 199 + " "
    count = 60_000  # 12 MB of answer, far beyond the socket buffers between the three parties
    fake.enqueue(Reply.text([token] * count))
    pid = service.process.pid if isinstance(service, ServiceProcess) else None

    with client.stream("POST", "/chat", json=chat_body(stream=True)) as response:
        events = iter_events(response)
        next(event for event in events if event.name == "delta")
        before = rss_kib(pid) if pid else 0
        time.sleep(2)  # the client reads nothing
        held_back = not fake.received[-1].finished
        grown_mib = (rss_kib(pid) - before) / 1024 if pid else 0
        deltas = 1 + sum(event.name == "delta" for event in events)

    assert deltas == count
    if pid is not None:  # in front of a container, docker-proxy's own buffers hold megabytes more
        assert held_back, "upstream was read to the end while the client read nothing"
        assert grown_mib < 8, f"the service buffered {grown_mib:.0f} MiB for a slow client"
