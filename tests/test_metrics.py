"""What Prometheus sees: /metrics after a known mix of requests, whatever worker answers the scrape."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fake_anthropic import FakeAnthropic, Reply, input_tokens
from tests.conftest import CURRENT_MODEL, Service, ServiceContainer
from tests.service_client import chat_body, iter_events, read_stream

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    # A new connection per scrape, so that gunicorn may hand each one to another worker.
    response = httpx.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def run_known_mix(url: str, fake: FakeAnthropic) -> dict[str, int]:
    """JSON answers (one after a retry), streams, an upstream 401, a client gone mid-stream and a
    request refused by validation, each on a connection of its own. Returns the tokens used."""
    fake.enqueue(
        Reply.error(429, "rate_limit_error", headers={"retry-after-ms": "10"}),
        Reply.text(["a", "b", "c"]),
        Reply.text(["d", "e"]),
        Reply.text(["s"] * 4),
        Reply.text(["t"] * 5),
        Reply.text(["u"] * 6),
        Reply.error(401, "authentication_error", "invalid x-api-key"),
        Reply.text(["gone"] * 100, interval=0.05),
    )
    body = chat_body()
    for _ in range(2):
        assert httpx.post(f"{url}/chat", json=body, timeout=10).status_code == 200
    for _ in range(3):
        with httpx.stream("POST", f"{url}/chat", json=chat_body(stream=True), timeout=10) as response:
            assert read_stream(response).done
    assert httpx.post(f"{url}/chat", json=body, timeout=10).status_code == 401
    with httpx.stream("POST", f"{url}/chat", json=chat_body(stream=True), timeout=10) as response:
        next(event for event in iter_events(response) if event.name == "delta")
    assert fake.wait_for(lambda: fake.received[-1].client_gone)
    assert httpx.post(f"{url}/chat", json={"messages": []}, timeout=10).status_code == 422
    # Usage counts for the five answers that completed; each was the same conversation.
    return {"input": input_tokens(fake.received[-1].body) * 5, "output": 3 + 2 + 4 + 5 + 6}


def expected_counts(samples: Samples, tokens: dict[str, int]) -> dict[str, float]:
    return {
        "json ok": value(samples, "chat_requests_total", mode="json", status="200", outcome="ok"),
        "stream ok": value(samples, "chat_requests_total", mode="stream", status="200", outcome="ok"),
        "401": value(samples, "chat_requests_total", mode="json", status="401", outcome="upstream_error"),
        "gone": value(
            samples, "chat_requests_total", mode="stream", status="200", outcome="client_disconnected"
        ),
        "422": value(samples, "chat_requests_total", mode="json", status="422", outcome="none"),
        "auth errors": value(samples, "chat_upstream_errors_total", type="authentication_error"),
        "retries": value(samples, "chat_upstream_retries_total"),
        "json durations": value(samples, "chat_request_duration_seconds_count", mode="json"),
        "stream durations": value(samples, "chat_request_duration_seconds_count", mode="stream"),
        "first tokens": value(samples, "chat_time_to_first_token_seconds_count"),
        "starts": value(samples, "chat_time_to_start_seconds_count"),
        "input tokens": value(samples, "chat_tokens_total", kind="input") - tokens["input"],
        "output tokens": value(samples, "chat_tokens_total", kind="output") - tokens["output"],
    }


MIX_COUNTS = {
    "json ok": 2,
    "stream ok": 3,
    "401": 1,
    "gone": 1,
    "422": 1,
    "auth errors": 1,
    "retries": 1,
    "json durations": 4,
    "stream durations": 4,
    "first tokens": 4,
    "starts": 4,  # every stream, the one its client left included
    "input tokens": 0,
    "output tokens": 0,
}


@pytest.mark.container
def test_every_scrape_shows_the_whole_containers_totals(
    start_container: Callable[..., ServiceContainer], fake: FakeAnthropic
) -> None:
    container = start_container(WEB_CONCURRENCY="2")
    before = scrape(container.url)
    assert value(before, "chat_open_streams") == 0  # exported before any request
    assert value(before, "chat_build_info", version="0.1.0", model=CURRENT_MODEL) == 1

    tokens = run_known_mix(container.url, fake)
    # More requests on connections of their own, at once, so that both workers answer some.
    threads = [
        threading.Thread(target=lambda: httpx.post(f"{container.url}/chat", json=chat_body(), timeout=10))
        for _ in range(12)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = {**MIX_COUNTS, "json ok": 14, "json durations": 16}
    tokens = {"input": tokens["input"] // 5 * 17, "output": tokens["output"] + 12 * 12}

    # Both workers recorded requests (their own files in the multiprocess directory)...
    listing = container.container.exec(["ls", "/tmp/metrics"]).output.decode().split()
    worker_pids = {name.rsplit("_", 1)[1] for name in listing if name.startswith("counter_")} - {"1.db"}
    assert len(worker_pids) == 2, listing
    # ...and every scrape, whichever worker answers it, shows them all.
    for _ in range(6):
        assert expected_counts(scrape(container.url), tokens) == counts


def test_the_service_counts_a_known_mix_of_requests(service: Service, fake: FakeAnthropic) -> None:
    before = scrape(service.url)
    tokens = run_known_mix(service.url, fake)
    after = scrape(service.url)

    counts = expected_counts(after, tokens)
    counts_before = expected_counts(before, {"input": 0, "output": 0})
    assert {name: counts[name] - counts_before[name] for name in counts} == MIX_COUNTS


def test_open_streams_are_counted_while_they_last(service: Service, fake: FakeAnthropic) -> None:
    fake.enqueue(*[Reply.text(["slow"] * 20, interval=0.1) for _ in range(3)])  # 2 s each
    started = threading.Barrier(4)

    def stream() -> None:
        with httpx.stream("POST", f"{service.url}/chat", json=chat_body(stream=True), timeout=10) as response:
            events = iter_events(response)
            next(event for event in events if event.name == "delta")
            started.wait()
            assert list(events)[-1].data == "[DONE]"

    threads = [threading.Thread(target=stream) for _ in range(3)]
    for thread in threads:
        thread.start()
    started.wait(timeout=10)
    during = value(scrape(service.url), "chat_open_streams")
    for thread in threads:
        thread.join()

    assert during == 3
    assert value(scrape(service.url), "chat_open_streams") == 0


def test_probes_and_scrapes_write_no_summary_line(service: Service) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        response = httpx.get(f"{service.url}{path}", headers={"X-Request-ID": f"probe-{path[1:]}"})
        assert response.status_code == 200
    httpx.get(f"{service.url}/docs", headers={"X-Request-ID": "probe-docs"})
    service.log.summary("probe-docs")  # written after the others, so theirs would be there by now

    assert not [line for line in service.log.lines() if str(line.get("request_id")).startswith("probe-h")]
    assert not [
        line for line in service.log.lines() if line.get("request_id") in ("probe-readyz", "probe-metrics")
    ]


def test_cache_tokens_count_under_their_own_kind_when_usage_reports_them() -> None:
    from prometheus_client import REGISTRY

    from app.observability.metrics import record_request

    def tokens(kind: str) -> float:
        return REGISTRY.get_sample_value("chat_tokens_total", {"kind": kind}) or 0.0

    before = {kind: tokens(kind) for kind in ("input", "output", "cache_read", "cache_write")}
    fields = {"stream": True, "outcome": "ok", "input_tokens": 7, "output_tokens": 3}
    record_request("/chat", 200, 0.2, {**fields, "cache_read_input_tokens": 40})
    record_request("/chat", 200, 0.2, {**fields, "cache_creation_input_tokens": 11})
    record_request("/healthz", 200, 0.001, {"input_tokens": 1000})  # not a chat: not counted

    after = {kind: tokens(kind) - before[kind] for kind in before}
    assert after == {"input": 14, "output": 6, "cache_read": 40, "cache_write": 11}
