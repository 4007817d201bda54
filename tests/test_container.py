"""What only the image can show: its user, health, logs from every process, and its lifecycle."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from fake_anthropic import FakeAnthropic, Reply
from tests.conftest import API_KEY, ServiceContainer
from tests.service_client import chat_body, iter_events, read_stream

pytestmark = pytest.mark.container

# Lists the gunicorn workers (children of PID 1) from inside the container, which has no ps.
LIST_WORKERS = (
    "import os\n"
    "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "    stat = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()\n"
    "    if stat[1] == '1': print(pid)\n"
)


def workers(container: ServiceContainer) -> set[str]:
    result = container.container.exec(["python", "-c", LIST_WORKERS])
    return set(result.output.decode().split())


def test_runs_as_a_non_root_user_and_becomes_healthy(
    start_container: Callable[..., ServiceContainer],
) -> None:
    container = start_container()

    uid = container.container.exec(["python", "-c", "import os; print(os.getuid())"]).output.decode().strip()
    master_uid = container.container.exec(
        ["python", "-c", "print(open('/proc/1/status').read())"]
    ).output.decode()
    assert uid != "0"
    assert "Uid:\t0" not in master_uid

    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        container.docker.reload()
        if container.docker.attrs["State"]["Health"]["Status"] == "healthy":
            break
        time.sleep(1)
    assert container.docker.attrs["State"]["Health"]["Status"] == "healthy"


def test_every_output_line_is_json_with_request_ids_and_no_key(
    start_container: Callable[..., ServiceContainer], fake: FakeAnthropic
) -> None:
    container = start_container()
    fake.enqueue(Reply.error(429, "rate_limit_error", headers={"retry-after-ms": "10"}), Reply.text(["ok"]))
    with httpx.Client(base_url=container.url) as client:
        client.post("/chat", json=chat_body(stream=True), headers={"X-Request-ID": "ctr-1"})
        client.post("/chat", json=chat_body(), headers={"X-Request-ID": "ctr-2"})
    container.log.summary("ctr-2")

    stdout, stderr = (part.decode() for part in container.container.get_logs())
    lines = [line for line in (stdout + stderr).splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line, gunicorn's and uvicorn's included

    assert any(record.get("logger", "").startswith("gunicorn") for record in records)
    request_lines = [r for r in records if r["event"] in ("request", "upstream_retry")]
    assert {r["request_id"] for r in request_lines} >= {"ctr-1", "ctr-2"}
    assert all("request_id" in r for r in request_lines)
    assert API_KEY not in stdout + stderr


def test_sigterm_lets_a_stream_in_flight_finish_then_exits_cleanly(
    start_container: Callable[..., ServiceContainer], fake: FakeAnthropic
) -> None:
    container = start_container(GRACEFUL_TIMEOUT="20")
    fake.enqueue(Reply.text(["tick"] * 20, interval=0.1))  # two seconds of answer

    with (
        httpx.Client(base_url=container.url, timeout=30) as client,
        client.stream("POST", "/chat", json=chat_body(stream=True)) as response,
    ):
        events = iter_events(response)
        next(event for event in events if event.name == "delta")
        stopping = threading.Thread(target=container.docker.stop, kwargs={"timeout": 30})
        stopped_at = time.monotonic()
        stopping.start()
        rest = list(events)
    stopping.join(35)

    assert rest[-1].data == "[DONE]"
    assert sum(event.name == "delta" for event in rest) == 19
    container.docker.reload()
    assert container.docker.attrs["State"]["ExitCode"] == 0
    assert time.monotonic() - stopped_at < 20


def test_a_killed_worker_is_replaced_and_requests_keep_succeeding(
    start_container: Callable[..., ServiceContainer],
) -> None:
    container = start_container()
    before = workers(container)
    assert len(before) == 2
    victim = sorted(before)[0]

    container.container.exec(["python", "-c", f"import os, signal; os.kill({victim}, signal.SIGKILL)"])

    with httpx.Client(base_url=container.url, timeout=10) as client:
        for _ in range(10):
            with client.stream("POST", "/chat", json=chat_body(stream=True)) as response:
                assert read_stream(response).done
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(workers(container)) < 2:
        time.sleep(0.2)
    after = workers(container)
    assert len(after) == 2
    assert victim not in after


def test_a_short_placeholder_key_leaves_the_workers_lines_intact(
    start_container: Callable[..., ServiceContainer],
) -> None:
    # Measured before: ANTHROPIC_API_KEY=x logged "Worker e[REDACTED]iting". On this gunicorn and
    # uvicorn-worker a stopped worker ends by its signal, without that line, so the placeholder
    # is a letter that the workers' own start and stop lines do contain.
    container = start_container(ANTHROPIC_API_KEY="e")

    container.docker.stop(timeout=30)

    text = container.log.text()
    assert "Application startup complete." in text
    assert "Finished server process" in text
    assert "[REDACTED]" not in text
