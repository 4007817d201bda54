"""Odd but legal upstream behaviour, and a client that reads slowly: nothing lost, nothing piled up."""

import time
from pathlib import Path

import httpx

from fake_anthropic import FakeAnthropic, Reply
from tests.conftest import Service, ServiceContainer, ServiceProcess
from tests.service_client import chat_body, iter_events, read_stream
from tests.test_container import LIST_WORKERS


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


def workers_rss_kib(container: ServiceContainer) -> int:
    """The gunicorn workers' RSS together, read inside the container."""
    script = LIST_WORKERS.replace(
        "print(pid)",
        "print([l for l in open(f'/proc/{pid}/status') if l.startswith('VmRSS')][0].split()[1])",
    )
    return sum(int(kib) for kib in container.container.exec(["python", "-c", script]).output.decode().split())


def test_a_client_that_stops_reading_holds_upstream_back_instead_of_filling_memory(
    service: Service, fake: FakeAnthropic
) -> None:
    token = "x" * 199 + " "
    count = 60_000  # 12 MB of answer, far beyond the socket buffers between the three parties
    fake.enqueue(Reply.text([token] * count))
    if isinstance(service, ServiceContainer):
        # Straight to the container's address on the bridge, as a gateway beside it connects.
        # Through the published port (Docker's NAT) the whole answer was read upstream in 2 of 3
        # runs while the client read nothing: buffers on that path, outside the service, took it.
        address = service.docker.attrs["NetworkSettings"]["IPAddress"]
        url, rss = f"http://{address}:8000", lambda: workers_rss_kib(service)
    else:
        assert isinstance(service, ServiceProcess)
        pid = service.process.pid
        url, rss = service.url, lambda: rss_kib(pid)

    with (
        httpx.Client(base_url=url, timeout=15) as client,
        client.stream("POST", "/chat", json=chat_body(stream=True)) as response,
    ):
        events = iter_events(response)
        next(event for event in events if event.name == "delta")
        before = rss()
        time.sleep(2)  # the client reads nothing
        held_back = not fake.received[-1].finished
        grown_mib = (rss() - before) / 1024
        deltas = 1 + sum(event.name == "delta" for event in events)

    assert deltas == count
    assert held_back, "upstream was read to the end while the client read nothing"
    assert grown_mib < 8, f"the service buffered {grown_mib:.0f} MiB for a slow client"
