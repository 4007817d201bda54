"""Answers that survive the connection (CHAT_REDIS_URL), as a frontend and an operator see them.

A stream cut midway is read again from where it was left, with the standard `Last-Event-ID`, on
this process, another one on the same Redis, or the other gunicorn worker: every event once, one
call to Anthropic. A reader that leaves is not a stop: the answer goes on for the grace period,
then is closed. A stop from anywhere closes the call within a second. Redis trouble never costs
the live reader its answer. All against a real Redis (`redis_server`), over real HTTP.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from fake_anthropic import FakeAnthropic, Reply, default_tokens, free_port
from tests.conftest import BASE_ENV, RedisServer, Service, ServiceProcess, process_backend_only
from tests.service_client import Event, EventStream, chat_body, iter_events, read_stream
from tests.test_metrics import scrape, value

# Resumption needs the service to reach Redis on 127.0.0.1, which a container cannot.
pytestmark = process_backend_only

GRACE = 4.0


def numbered_tokens(count: int) -> list[str]:
    """Tokens that are each unique (a token sent twice shows) and as tricky as real ones."""
    return [f"{token}#{index} " for index, token in enumerate(default_tokens(count))]


@pytest.fixture(scope="module")
def redis_env(redis_server: RedisServer) -> dict[str, str]:
    return {"CHAT_REDIS_URL": redis_server.url, "CHAT_RESUME_GRACE": str(GRACE)}


@pytest.fixture(scope="module")
def resumable(start_service: Callable[..., Service], redis_env: dict[str, str]) -> Service:
    return start_service(**redis_env)


@pytest.fixture(scope="module")
def start_process(
    fake: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., ServiceProcess]]:
    """Another process of the app (uvicorn, or gunicorn with `workers`), stopped with the module."""
    started: list[ServiceProcess] = []

    def start(env: dict[str, str], workers: int | None = None) -> ServiceProcess:
        log = tmp_path_factory.mktemp("replica") / "service.log"
        process = ServiceProcess({**BASE_ENV, "ANTHROPIC_BASE_URL": fake.url, **env}, log, workers=workers)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def replica(
    resumable: Service, start_process: Callable[..., ServiceProcess], redis_env: dict[str, str]
) -> ServiceProcess:
    """A second replica behind the load balancer: the same Redis, nothing else shared."""
    return start_process(redis_env)


@pytest.fixture(scope="module")
def two_workers(
    resumable: Service, start_process: Callable[..., ServiceProcess], redis_env: dict[str, str]
) -> ServiceProcess:
    """gunicorn with two uvicorn workers, as the image runs it."""
    return start_process(redis_env, workers=2)


@dataclass
class Cut:
    """A stream read for a few events, then left: what a phone changing network has."""

    request_id: str
    events: list[Event]
    left_at: float

    @property
    def stream_id(self) -> str:
        return str(self.events[0].json["stream_id"])

    @property
    def last_id(self) -> str:
        assert self.events[-1].id is not None
        return self.events[-1].id

    @property
    def text(self) -> str:
        return "".join(event.json["text"] for event in self.events if event.name == "delta")


def cut_after(url: str, count: int, request_id: str | None = None) -> Cut:
    headers = {"X-Request-ID": request_id} if request_id else {}
    events: list[Event] = []
    with (
        httpx.Client(base_url=url, timeout=15) as http,
        http.stream("POST", "/chat", json=chat_body(stream=True), headers=headers) as response,
    ):
        assert response.status_code == 200
        for event in iter_events(response):
            events.append(event)
            if len(events) == count:
                break
    # Leaving the block closed the connection mid-answer.
    return Cut(response.headers["x-request-id"], events, time.monotonic())


def resume_url(stream_id: str) -> str:
    return f"/chat/streams/{stream_id}"


def resume(url: str, stream_id: str, last_id: str | None = None, **headers: str) -> EventStream:
    if last_id is not None:
        headers["Last-Event-ID"] = last_id
    with httpx.stream("GET", url + resume_url(stream_id), headers=headers, timeout=15) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return read_stream(response)


def ids(events: list[Event]) -> list[int]:
    return [int(event.id) for event in events if event.id is not None]


def assert_whole_answer_once(cut: Cut, rest: EventStream, reply: Reply) -> None:
    """The events before the cut and after it are the answer, each event once, in order."""
    assert cut.text + rest.text == reply.text_value
    every = [*cut.events, *rest.events]
    assert ids(every) == list(range(1, len(every) + 1))  # every event numbered, none twice
    assert [event.name for event in every] == ["start", *["delta"] * len(reply.tokens), "end", None]
    assert rest.events[-2].json["stop_reason"] == "end_turn"
    assert rest.done


# Resuming a cut stream


@pytest.mark.parametrize(
    ("read_before_cut", "interval"),
    [(1, 0.01), (7, 0.01), (7, 0.0)],
    # Paced tokens: the resumed reader reads what was stored, then follows live. Unpaced: the
    # whole answer is stored in a few entries, so the cut falls inside one.
    ids=["after start, live", "after six deltas, live", "inside a stored entry"],
)
def test_a_cut_stream_resumed_with_last_event_id_gives_the_rest_once(
    resumable: Service, fake: FakeAnthropic, read_before_cut: int, interval: float
) -> None:
    reply = Reply.text(numbered_tokens(60), interval=interval)
    fake.enqueue(reply)

    cut = cut_after(resumable.url, read_before_cut)
    rest = resume(resumable.url, cut.stream_id, cut.last_id)

    assert rest.events[0].id == str(read_before_cut + 1)
    assert_whole_answer_once(cut, rest, reply)
    assert len(fake.received) == 1  # one call to Anthropic, however many readers
    assert fake.received[-1].finished


def test_the_stream_id_is_unguessable_and_the_ids_are_consecutive(
    resumable: Service, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text(numbered_tokens(5)))

    with httpx.stream("POST", f"{resumable.url}/chat", json=chat_body(stream=True), timeout=15) as response:
        stream = read_stream(response)

    start = stream.events[0].json
    assert set(start) == {"type", "id", "model", "stream_id"}
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", start["stream_id"])  # 256 random bits, URL-safe
    assert ids(stream.events) == list(range(1, 9))  # start, 5 deltas, end, and [DONE] too
    assert stream.done


def test_resume_without_last_event_id_replays_from_start_then_204_after_the_end(
    resumable: Service, fake: FakeAnthropic
) -> None:
    reply = Reply.text(numbered_tokens(20), interval=0.02)
    fake.enqueue(reply)
    cut = cut_after(resumable.url, 4)

    live = resume(resumable.url, cut.stream_id)  # from start, then live to the end
    replay = resume(resumable.url, cut.stream_id)  # the finished answer, from start
    after_the_end = httpx.get(
        resumable.url + resume_url(cut.stream_id), headers={"Last-Event-ID": live.events[-1].id or ""}
    )

    for stream in (live, replay):
        assert [(event.id, event.name, event.data) for event in stream.events[:4]] == [
            (event.id, event.name, event.data) for event in cut.events
        ]
        assert stream.text == reply.text_value
        assert ids(stream.events) == list(range(1, len(reply.tokens) + 4))
        assert stream.done
    assert [event.data for event in replay.events] == [event.data for event in live.events]
    # 204 is what tells a browser's EventSource to stop reconnecting.
    assert after_the_end.status_code == 204
    assert len(fake.received) == 1


def test_an_unknown_stream_is_404_stream_not_found(resumable: Service) -> None:
    unknown = secrets.token_urlsafe(32)

    for last_id in (None, "3"):
        headers = {"Last-Event-ID": last_id} if last_id else {}
        response = httpx.get(resumable.url + resume_url(unknown), headers=headers)

        assert response.status_code == 404
        assert response.json()["detail"]["type"] == "stream_not_found"


def test_a_stream_resumed_on_another_replica_gives_the_rest_once(
    resumable: Service, replica: ServiceProcess, fake: FakeAnthropic
) -> None:
    reply = Reply.text(numbered_tokens(40), interval=0.02)
    fake.enqueue(reply)

    cut = cut_after(resumable.url, 5)
    rest = resume(replica.url, cut.stream_id, cut.last_id)

    assert_whole_answer_once(cut, rest, reply)
    assert len(fake.received) == 1


def test_a_reader_back_the_moment_it_has_the_stream_id_finds_the_answer(
    resumable: Service, replica: ServiceProcess, fake: FakeAnthropic, redis_server: RedisServer
) -> None:
    reply = Reply.text(numbered_tokens(20), interval=0.02)
    fake.enqueue(reply)
    # Redis holds every write (reads go on) for 300 ms, the answer's first entry among them.
    redis_server.cli("CLIENT", "PAUSE", "300", "WRITE")

    cut = cut_after(resumable.url, 1)  # `start`, with the stream id, and gone at once
    rest = resume(replica.url, cut.stream_id, cut.last_id)

    assert_whole_answer_once(cut, rest, reply)


# gunicorn's workers share one listening socket, so which one accepts a connection is the
# kernel's choice: the tests look it up, to be sure a request reached the other worker.


def _worker_pids(master: int) -> set[int]:
    workers = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # a process that ended meanwhile
        if int(fields[1]) == master:
            workers.add(int(stat.parent.name))
    return workers


def worker_of(service: ServiceProcess, response: httpx.Response) -> int:
    """The PID of the worker holding the connection `response` came on."""
    _, client_port = response.extensions["network_stream"].get_extra_info("client_addr")
    wanted = (f"0100007F:{service.port:04X}", f"0100007F:{client_port:04X}")
    inode = next(
        fields[9]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if tuple((fields := line.split())[1:3]) == wanted
    )
    for pid in _worker_pids(service.process.pid):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            if os.readlink(fd) == f"socket:[{inode}]":
                return pid
    raise AssertionError("no worker holds the connection")


@contextmanager
def client_on_another_worker(service: ServiceProcess, than: int) -> Iterator[httpx.Client]:
    """A client whose kept-alive connection is held by a worker other than `than`."""
    for _ in range(40):
        with httpx.Client(base_url=service.url, timeout=15) as http:
            if worker_of(service, http.get("/healthz")) != than:
                yield http
                return
    raise AssertionError("every connection went to the same worker")


def test_a_stream_resumed_on_the_other_gunicorn_worker_gives_the_rest_once(
    two_workers: ServiceProcess, fake: FakeAnthropic
) -> None:
    reply = Reply.text(numbered_tokens(40), interval=0.02)
    fake.enqueue(reply)

    with (
        httpx.Client(base_url=two_workers.url, timeout=15) as http,
        http.stream("POST", "/chat", json=chat_body(stream=True)) as response,
    ):
        writer = worker_of(two_workers, response)
        events = []
        for event in iter_events(response):
            events.append(event)
            if len(events) == 5:
                break
    cut = Cut(response.headers["x-request-id"], events, time.monotonic())
    with (
        client_on_another_worker(two_workers, writer) as http,
        http.stream("GET", resume_url(cut.stream_id), headers={"Last-Event-ID": cut.last_id}) as response,
    ):
        assert worker_of(two_workers, response) != writer
        rest = read_stream(response)

    assert_whole_answer_once(cut, rest, reply)
    assert len(fake.received) == 1


# A reader that leaves, and the grace period


def test_an_answer_nobody_comes_back_for_is_closed_at_the_grace_periods_end(
    resumable: Service, fake: FakeAnthropic
) -> None:
    reply = Reply.text(numbered_tokens(300), interval=0.05)  # 15 s of answer
    fake.enqueue(reply)
    before = scrape(resumable.url)

    cut = cut_after(resumable.url, 3)

    assert fake.wait_for(lambda: fake.received[-1].client_gone, timeout=GRACE + 3)
    gone_at = fake.received[-1].client_gone_at
    assert gone_at is not None
    assert abs(gone_at - cut.left_at - GRACE) <= 1.0
    assert not fake.received[-1].finished
    summary = resumable.log.summary(cut.request_id)
    assert (summary["outcome"], summary["resumable"], summary["resumed_readers"]) == ("abandoned", True, 0)
    # A reader that comes later gets what was written, and why the rest never came.
    later = resume(resumable.url, cut.stream_id)
    assert later.events[-1].name == "error"
    assert later.events[-1].json["error"]["type"] == "answer_abandoned"
    assert reply.text_value.startswith(later.text)
    # Written while nobody read: about the grace period's tokens, no more.
    assert len(cut.text) < len(later.text) < len(reply.text_value)
    assert ids(later.events) == list(range(1, len(later.events) + 1))
    assert value(scrape(resumable.url), "chat_abandoned_answers_total") == (
        value(before, "chat_abandoned_answers_total") + 1
    )


def test_a_resumed_reader_leaving_starts_the_grace_period_too(
    resumable: Service, replica: ServiceProcess, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text(numbered_tokens(300), interval=0.05))  # 15 s of answer
    cut = cut_after(resumable.url, 3)

    # Back on another replica for a while, then gone again for good.
    with httpx.stream(
        "GET", replica.url + resume_url(cut.stream_id), headers={"Last-Event-ID": cut.last_id}
    ) as response:
        events = iter_events(response)
        for _ in range(30):
            next(events)
    left_again_at = time.monotonic()

    assert fake.wait_for(lambda: fake.received[-1].client_gone, timeout=GRACE + 5)
    gone_at = fake.received[-1].client_gone_at
    assert gone_at is not None
    assert abs(gone_at - left_again_at - GRACE) <= 1.0
    summary = resumable.log.summary(cut.request_id)
    assert (summary["outcome"], summary["resumed_readers"]) == ("abandoned", 1)


def test_a_reader_back_before_the_grace_periods_end_gets_the_whole_answer(
    resumable: Service, fake: FakeAnthropic
) -> None:
    reply = Reply.text(numbered_tokens(130), interval=0.05)  # 6.5 s: on past the grace period
    fake.enqueue(reply)

    cut = cut_after(resumable.url, 3)
    time.sleep(GRACE - 2)
    rest = resume(resumable.url, cut.stream_id, cut.last_id)

    assert_whole_answer_once(cut, rest, reply)
    assert time.monotonic() - cut.left_at > GRACE  # the answer outlived the grace period
    assert fake.received[-1].finished
    assert not fake.received[-1].client_gone
    summary = resumable.log.summary(cut.request_id)
    assert (summary["outcome"], summary["resumed_readers"]) == ("ok", 1)


def test_a_resumed_reader_gets_pings_while_the_model_thinks(resumable: Service, fake: FakeAnthropic) -> None:
    reply = Reply.text(["Well", ", yes."], thinking_seconds=1.5)
    fake.enqueue(reply)

    cut = cut_after(resumable.url, 1)  # the start, then the model thinks
    rest = resume(resumable.url, cut.stream_id, cut.last_id)

    assert rest.pings >= 3  # CHAT_PING_INTERVAL is 0.3 s
    assert rest.text == "Well, yes."
    assert rest.done


# Stopping on purpose


def test_a_stop_through_another_replica_ends_every_reader_and_the_upstream_call(
    resumable: Service, replica: ServiceProcess, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text(numbered_tokens(200), interval=0.05))  # 10 s of answer
    before = scrape(resumable.url)

    with (
        httpx.Client(base_url=resumable.url, timeout=15) as http,
        http.stream("POST", "/chat", json=chat_body(stream=True)) as original,
    ):
        events = iter_events(original)
        first = [next(events) for _ in range(4)]
        stream_id = first[0].json["stream_id"]
        # A second reader, on the replica, from where the first one is.
        with httpx.stream(
            "GET", replica.url + resume_url(stream_id), headers={"Last-Event-ID": first[-1].id or ""}
        ) as second:
            stop = httpx.post(f"{replica.url}/chat/streams/{stream_id}/stop")
            stopped_at = time.monotonic()
            rest = list(events)
            second_reader = read_stream(second)

    assert stop.status_code == 204
    assert fake.wait_for(lambda: fake.received[-1].client_gone, timeout=1.5)
    gone_at = fake.received[-1].client_gone_at
    assert gone_at is not None
    assert gone_at - stopped_at < 1.0
    for ending in (rest, second_reader.events):
        assert [event.name for event in ending[-2:]] == ["end", None]
        assert ending[-2].json["stop_reason"] == "stopped"
        assert ending[-1].data == "[DONE]"
    # The second reader got exactly what the first did after its fourth event.
    assert [(e.id, e.data) for e in second_reader.events] == [(e.id, e.data) for e in rest]
    assert ids([*first, *rest]) == list(range(1, len(first) + len(rest) + 1))
    summary = resumable.log.summary(original.headers["x-request-id"])
    assert summary["outcome"] == "stopped"
    assert value(scrape(resumable.url), "chat_stopped_answers_total") == (
        value(before, "chat_stopped_answers_total") + 1
    )
    # Nothing is in flight any more.
    again = httpx.post(f"{replica.url}/chat/streams/{stream_id}/stop")
    assert again.status_code == 404
    assert again.json()["detail"]["type"] == "stream_not_found"


def test_a_stop_through_the_other_gunicorn_worker_closes_the_upstream_call(
    two_workers: ServiceProcess, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text(numbered_tokens(200), interval=0.05))

    with (
        httpx.Client(base_url=two_workers.url, timeout=15) as http,
        http.stream("POST", "/chat", json=chat_body(stream=True)) as original,
    ):
        writer = worker_of(two_workers, original)
        events = iter_events(original)
        stream_id = next(events).json["stream_id"]
        with client_on_another_worker(two_workers, writer) as other:
            stop = other.post(f"/chat/streams/{stream_id}/stop")
            stopped_at = time.monotonic()
        rest = list(events)

    assert stop.status_code == 204
    assert fake.wait_for(lambda: fake.received[-1].client_gone, timeout=1.5)
    gone_at = fake.received[-1].client_gone_at
    assert gone_at is not None
    assert gone_at - stopped_at < 1.0
    assert rest[-2].json["stop_reason"] == "stopped"
    assert rest[-1].data == "[DONE]"
    assert two_workers.log.summary(original.headers["x-request-id"])["outcome"] == "stopped"


def test_a_stop_of_a_finished_or_unknown_answer_is_404(resumable: Service, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.text(["Done."]))
    with httpx.stream("POST", f"{resumable.url}/chat", json=chat_body(stream=True)) as response:
        finished = read_stream(response).events[0].json["stream_id"]

    for stream_id in (finished, secrets.token_urlsafe(32)):
        response = httpx.post(f"{resumable.url}/chat/streams/{stream_id}/stop")

        assert response.status_code == 404
        assert response.json()["detail"]["type"] == "stream_not_found"


def test_with_resumption_off_there_is_nothing_to_stop_or_resume(
    service: Service, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text(["Hi"]))
    with httpx.stream("POST", f"{service.url}/chat", json=chat_body(stream=True)) as response:
        stream = read_stream(response)
    stream_id = secrets.token_urlsafe(32)

    stop = httpx.post(f"{service.url}/chat/streams/{stream_id}/stop")
    resumed = httpx.get(service.url + resume_url(stream_id))

    assert "stream_id" not in stream.events[0].json
    assert all(event.id is None for event in stream.events)
    assert (stop.status_code, resumed.status_code) == (404, 404)
    assert stop.json()["detail"]["type"] == resumed.json()["detail"]["type"] == "stream_not_found"


# Redis trouble


def store_warnings(service: Service, request_id: str) -> list[dict[str, object]]:
    return [
        line for line in service.log.for_request(request_id) if line["event"] == "resume_store_unavailable"
    ]


def test_redis_killed_mid_stream_costs_the_live_reader_nothing_and_resume_says_503(
    start_service: Callable[..., Service], fake: FakeAnthropic, tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path)
    try:
        service = start_service(CHAT_REDIS_URL=redis.url, CHAT_RESUME_GRACE=str(GRACE))
        reply = Reply.text(numbered_tokens(60), interval=0.03)
        fake.enqueue(reply)

        with httpx.stream("POST", f"{service.url}/chat", json=chat_body(stream=True), timeout=15) as response:
            events = iter_events(response)
            stream = EventStream(response)
            for event in events:
                stream.events.append(event)
                if len(stream.events) == 6:
                    redis.kill()
                    break
            stream.events.extend(events)
        request_id = response.headers["x-request-id"]
        resumed = httpx.get(service.url + resume_url(stream.events[0].json["stream_id"]), timeout=5)

        assert stream.text == reply.text_value
        assert stream.done
        warnings = store_warnings(service, request_id)
        assert len(warnings) == 1
        assert warnings[0]["level"] == "warning"
        summary = service.log.summary(request_id)
        assert (summary["outcome"], summary["resumable"]) == ("ok", False)
        assert resumed.status_code == 503
        assert resumed.json()["detail"]["type"] == "resume_unavailable"
        assert value(scrape(service.url), "chat_resume_store_errors_total", operation="append") == 1

        # Redis back (empty): the next answers are resumable again.
        redis.start()
        fake.enqueue(reply)
        cut = cut_after(service.url, 5)
        assert_whole_answer_once(cut, resume(service.url, cut.stream_id, cut.last_id), reply)
    finally:
        redis.stop()


@pytest.fixture(scope="module")
def redis_unreachable(start_service: Callable[..., Service]) -> Service:
    """Started with nothing listening at CHAT_REDIS_URL."""
    return start_service(CHAT_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")


def test_start_up_with_redis_unreachable_is_a_warning_and_answers_still_stream(
    redis_unreachable: Service, fake: FakeAnthropic
) -> None:
    service = redis_unreachable
    reply = Reply.text(numbered_tokens(8), interval=0.01)
    fake.enqueue(reply)

    with httpx.stream("POST", f"{service.url}/chat", json=chat_body(stream=True), timeout=15) as response:
        stream = read_stream(response)
    resumed = httpx.get(service.url + resume_url(stream.events[0].json["stream_id"]), timeout=5)

    assert httpx.get(f"{service.url}/healthz").status_code == 200
    start_up = [line for line in service.log.lines() if line["event"] == "resume_store_unavailable"]
    assert start_up[0]["level"] == "warning"
    assert start_up[0].get("at") == "start-up"
    assert stream.text == reply.text_value
    assert stream.done
    assert service.log.summary(response.headers["x-request-id"])["resumable"] is False
    assert resumed.status_code == 503
    assert resumed.json()["detail"]["type"] == "resume_unavailable"


def test_without_redis_a_reader_leaving_closes_the_upstream_call_at_once(
    redis_unreachable: Service, fake: FakeAnthropic
) -> None:
    # Nobody could come back for this answer: as without resumption, no grace period.
    service = redis_unreachable
    fake.enqueue(Reply.text(numbered_tokens(200), interval=0.05))

    cut = cut_after(service.url, 4)

    assert fake.wait_for(lambda: fake.received[-1].client_gone, timeout=2)
    gone_at = fake.received[-1].client_gone_at
    assert gone_at is not None
    assert gone_at - cut.left_at < 1.0
    summary = service.log.summary(cut.request_id)
    assert (summary["outcome"], summary["resumable"]) == ("client_disconnected", False)


# What operators see


def test_the_summary_lines_and_metrics_say_who_resumed_what(resumable: Service, fake: FakeAnthropic) -> None:
    reply = Reply.text(numbered_tokens(30), interval=0.02)
    fake.enqueue(reply)
    before = scrape(resumable.url)

    cut = cut_after(resumable.url, 4, request_id="resumed-original-1")
    rest = resume(resumable.url, cut.stream_id, cut.last_id, **{"X-Request-ID": "resumed-reader-1"})

    assert rest.done
    original = resumable.log.summary("resumed-original-1")
    assert (original["path"], original["status"], original["outcome"]) == ("/chat", 200, "ok")
    assert (original["resumable"], original["resumed_readers"]) == (True, 1)
    assert original["output_tokens"] == len(reply.tokens)
    reader = resumable.log.summary("resumed-reader-1")
    assert (reader["path"], reader["status"]) == ("/chat/streams/{stream_id}", 200)
    assert reader["resumes_request_id"] == "resumed-original-1"
    assert cut.stream_id not in resumable.log.text()  # the id is a secret
    after = scrape(resumable.url)
    for name, labels in [
        ("chat_resume_readers_total", {"format": "chat"}),
        ("chat_resumed_answers_total", {}),
    ]:
        assert value(after, name, **labels) == value(before, name, **labels) + 1, name
    exposition = httpx.get(f"{resumable.url}/metrics").text
    for name in (
        "chat_abandoned_answers_total",
        "chat_stopped_answers_total",
        "chat_resume_store_errors_total",
    ):
        assert f"# TYPE {name} counter" in exposition, name
    # A resumed reader is not a chat request of its own: the chat counters count the answer once.
    assert value(after, "chat_requests_total", mode="stream", status="200", outcome="ok") == (
        value(before, "chat_requests_total", mode="stream", status="200", outcome="ok") + 1
    )
