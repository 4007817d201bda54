"""Traces, as an operator's collector receives them: the service under gunicorn with 2 workers,
exporting OTLP/HTTP to a real receiver that decodes the protobuf payload."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from fake_anthropic import FakeAnthropic, Reply
from tests.conftest import BASE_ENV, CURRENT_MODEL, ROOT, ServiceProcess
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan, span_tree
from tests.service_client import chat_body, read_stream

PROMPT = "Tell me about the lighthouse keeper"
ANSWER = ["The", " keeper", " of", " Skerryvore", "."]
# The SDK's own variables reach it: spans leave within 100 ms instead of 5 s.
TRACED_ENV = {"OTEL_SERVICE_NAME": "chat-under-test", "OTEL_BSP_SCHEDULE_DELAY": "100"}


def new_traceparent() -> tuple[str, str, str]:
    """(trace id, the caller's span id, the `traceparent` header naming them), as a frontend sends."""
    trace_id, parent_id = os.urandom(16).hex(), os.urandom(8).hex()
    return trace_id, parent_id, f"00-{trace_id}-{parent_id}-01"


def start(
    env: dict[str, str], fake: FakeAnthropic, tmp_path: Path, workers: int | None = 2
) -> ServiceProcess:
    return ServiceProcess(
        {**BASE_ENV, "ANTHROPIC_BASE_URL": fake.url, **env}, tmp_path / "service.log", workers=workers
    )


@pytest.fixture(scope="module")
def traced(
    fake: FakeAnthropic, otlp_receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    service = start(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint, **TRACED_ENV},
        fake,
        tmp_path_factory.mktemp("traced"),
    )
    yield service
    service.stop()


@pytest.fixture
def own_receiver() -> Iterator[OtlpReceiver]:
    """A receiver of its own, which the module's service's late batches cannot reach."""
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


def spans_of(receiver: OtlpReceiver, trace_id: str, count: int) -> list[ReceivedSpan]:
    assert receiver.wait_for(lambda spans: sum(span.trace_id == trace_id for span in spans) >= count), (
        receiver.trace(trace_id)
    )
    return receiver.trace(trace_id)


def no_text_in(spans: list[ReceivedSpan], *texts: str) -> bool:
    values = [str(value) for span in spans for value in (span.name, *span.attributes.values())]
    return not any(text in value for text in texts for value in values)


def test_a_stream_continues_the_callers_trace_with_one_client_span_per_attempt(
    traced: ServiceProcess, fake: FakeAnthropic, otlp_receiver: OtlpReceiver
) -> None:
    fake.enqueue(Reply.error(529, "overloaded_error"), Reply.text(ANSWER))
    trace_id, caller_span_id, traceparent = new_traceparent()
    headers = {"traceparent": traceparent, "tracestate": "frontend=7", "X-Request-ID": "req-traced-stream"}

    with (
        httpx.Client(base_url=traced.url, timeout=15) as client,
        client.stream("POST", "/chat", json=chat_body(PROMPT, stream=True), headers=headers) as response,
    ):
        stream = read_stream(response)

    assert stream.done
    spans = spans_of(otlp_receiver, trace_id, 3)
    print(span_tree(spans))  # the trace as a collector received it: `pytest -s` shows it
    [server] = [span for span in spans if span.kind == "server"]
    failed, answered = sorted(
        (span for span in spans if span.kind == "client"), key=lambda span: span.start_ns
    )
    assert len(spans) == 3

    assert server.name == "POST /chat"
    assert server.parent_span_id == caller_span_id  # the caller's trace goes on
    assert server.status == "unset"
    assert server.attributes == {
        "http.request.method": "POST",
        "http.route": "/chat",
        "http.response.status_code": 200,
        "url.path": "/chat",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
    }
    # The span lasts as long as the stream, not just until its headers.
    assert server.start_ns <= failed.start_ns
    assert answered.end_ns <= server.end_ns

    # Retries are siblings under the server span.
    assert failed.parent_span_id == answered.parent_span_id == server.span_id
    assert failed.name == answered.name == f"chat {CURRENT_MODEL}"
    assert failed.kind == answered.kind == "client"
    assert failed.status == "error"
    assert failed.attributes["error.type"] == "overloaded_error"
    assert "gen_ai.response.id" not in failed.attributes
    assert answered.status == "unset"
    assert "error.type" not in answered.attributes
    assert answered.attributes["gen_ai.response.id"] == stream.events[0].json["id"]
    assert (
        0
        < answered.attributes["gen_ai.response.time_to_first_chunk"]
        < (answered.end_ns - answered.start_ns) / 1e9
    )

    # Each attempt's upstream request named its own span, in the caller's trace and trace state.
    assert [request.headers.get("traceparent") for request in fake.received] == [
        f"00-{trace_id}-{failed.span_id}-01",
        f"00-{trace_id}-{answered.span_id}-01",
    ]
    assert [request.headers.get("tracestate") for request in fake.received] == ["frontend=7"] * 2

    # Every line of the request, the retry and the summary included, is one click from its trace.
    lines = traced.log.for_request("req-traced-stream")
    assert {line["event"] for line in lines} >= {"upstream_retry", "request"}
    assert all((line["trace_id"], line["span_id"]) == (trace_id, server.span_id) for line in lines), lines

    assert no_text_in(spans, PROMPT, "".join(ANSWER), "Skerryvore")


def test_probes_and_scrapes_are_not_traced(traced: ServiceProcess, otlp_receiver: OtlpReceiver) -> None:
    probes = {path: new_traceparent() for path in ("/healthz", "/readyz", "/metrics")}
    for path, (_, _, traceparent) in probes.items():
        assert httpx.get(f"{traced.url}{path}", headers={"traceparent": traceparent}).status_code == 200
    trace_id, _, traceparent = new_traceparent()  # and a request after them, which is traced
    assert httpx.get(f"{traced.url}/openapi.json", headers={"traceparent": traceparent}).status_code == 200

    spans_of(otlp_receiver, trace_id, 1)
    probed = {probe_trace for probe_trace, _, _ in probes.values()}
    assert not [span for span in otlp_receiver.spans if span.trace_id in probed]


def test_a_json_answer_is_described_with_the_genai_conventions(
    traced: ServiceProcess, fake: FakeAnthropic, otlp_receiver: OtlpReceiver
) -> None:
    fake.enqueue(Reply.text(ANSWER, stop_reason="max_tokens"))
    trace_id, _, traceparent = new_traceparent()

    response = httpx.post(
        f"{traced.url}/chat",
        json=chat_body(PROMPT, max_tokens=300),
        headers={"traceparent": traceparent, "X-Request-ID": "req-traced-json"},
        timeout=15,
    )

    assert response.status_code == 200
    answer = response.json()
    spans = spans_of(otlp_receiver, trace_id, 2)
    [client] = [span for span in spans if span.kind == "client"]
    usage = answer["usage"]
    assert client.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": CURRENT_MODEL,
        "gen_ai.request.max_tokens": 300,
        "gen_ai.response.id": answer["id"],
        "gen_ai.response.model": CURRENT_MODEL,
        "gen_ai.response.finish_reasons": ["max_tokens"],
        # The whole prompt, as the conventions count it.
        "gen_ai.usage.input_tokens": usage["input_tokens"]
        + usage["cache_read_input_tokens"]
        + usage["cache_creation_input_tokens"],
        "gen_ai.usage.output_tokens": usage["output_tokens"],
        "gen_ai.usage.cache_read.input_tokens": usage["cache_read_input_tokens"],
        "gen_ai.usage.cache_creation.input_tokens": usage["cache_creation_input_tokens"],
        "gen_ai.response.time_to_first_chunk": client.attributes["gen_ai.response.time_to_first_chunk"],
        # What Anthropic's support asks for, as the summary line has it.
        "anthropic.request.id": traced.log.summary("req-traced-json")["upstream_request_id"],
    }
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] == len(ANSWER)
    assert no_text_in(spans, PROMPT, "".join(ANSWER), "Skerryvore")


def test_a_failure_before_the_answer_is_an_error_on_both_spans(
    traced: ServiceProcess, fake: FakeAnthropic, otlp_receiver: OtlpReceiver
) -> None:
    fake.enqueue(Reply.error(400, "invalid_request_error", "messages: something is off"))
    trace_id, _, traceparent = new_traceparent()

    response = httpx.post(
        f"{traced.url}/chat", json=chat_body(PROMPT), headers={"traceparent": traceparent}, timeout=15
    )

    assert response.status_code == 400
    spans = spans_of(otlp_receiver, trace_id, 2)
    [server] = [span for span in spans if span.kind == "server"]
    [client] = [span for span in spans if span.kind == "client"]
    assert server.attributes["http.response.status_code"] == 400
    assert server.status == "unset"  # a 4xx is the caller's, not the server's failure
    assert client.status == "error"
    assert client.attributes["error.type"] == "invalid_request_error"


def test_spans_say_which_worker_sent_them_and_both_workers_export(
    traced: ServiceProcess, fake: FakeAnthropic, otlp_receiver: OtlpReceiver
) -> None:
    """New connections, many at once, until both workers have answered (bounded)."""
    otlp_receiver.clear()

    def ask(_: int) -> int:
        return httpx.post(f"{traced.url}/chat", json=chat_body(PROMPT), timeout=15).status_code

    def workers_seen() -> set[object]:
        return {span.resource["process.pid"] for span in otlp_receiver.spans if span.kind == "server"}

    with ThreadPoolExecutor(8) as pool:
        for _ in range(10):
            fake.enqueue(*[Reply.text(ANSWER, interval=0.02)] * 8)
            assert list(pool.map(ask, range(8))) == [200] * 8
            if otlp_receiver.wait_for(lambda _: len(workers_seen()) == 2, timeout=1):
                break

    servers = [span for span in otlp_receiver.spans if span.kind == "server"]
    assert len(workers_seen()) == 2
    instances = {span.resource["process.pid"]: span.resource["service.instance.id"] for span in servers}
    assert len(set(instances.values())) == 2
    assert {span.resource["service.name"] for span in servers} == {"chat-under-test"}
    # Without a caller's traceparent, each request starts a trace of its own.
    assert all(span.parent_span_id == "" for span in servers)
    assert len({span.trace_id for span in servers}) == len(servers)


# A stdlib logger's line (the SDK's, a warning's) written during a request, through the
# service's logging set-up, with the ids the server span's middleware binds.
_STDLIB_LINE_IN_A_REQUEST = """
import logging, structlog
from app.observability.log import configure_logging

configure_logging("INFO", "json")
structlog.contextvars.bind_contextvars(request_id="req-1", trace_id="ab" * 16, span_id="cd" * 8)
logging.getLogger("anthropic").warning("a line of the SDK's")
"""


def test_stdlib_lines_written_during_a_request_carry_its_trace() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _STDLIB_LINE_IN_A_REQUEST],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )

    line = json.loads(result.stdout)
    assert line["event"] == "a line of the SDK's"
    assert (line["request_id"], line["trace_id"], line["span_id"]) == ("req-1", "ab" * 16, "cd" * 8)


def test_with_no_collector_configured_nothing_is_traced_or_exported(
    fake: FakeAnthropic, own_receiver: OtlpReceiver, tmp_path: Path
) -> None:
    """Other OpenTelemetry variables set, even FastAPI's own switch, but no traces endpoint."""
    service = start(
        {
            **TRACED_ENV,
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"{own_receiver.endpoint}/v1/metrics",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"{own_receiver.endpoint}/v1/logs",
            "FASTAPI_OTEL_AUTO_CONFIGURE": "true",
        },
        fake,
        tmp_path,
    )
    _, _, traceparent = new_traceparent()
    try:
        response = httpx.post(
            f"{service.url}/chat",
            json=chat_body(PROMPT),
            headers={"traceparent": traceparent, "X-Request-ID": "req-untraced"},
            timeout=15,
        )
        assert response.status_code == 200
        lines = service.log.for_request("req-untraced")
    finally:
        service.stop()  # whatever a worker held would be flushed now

    assert lines
    assert not any("trace_id" in line or "span_id" in line for line in lines)
    assert "traceparent" not in fake.received[-1].headers
    assert own_receiver.posts == []


def test_a_stopping_worker_sends_its_last_spans(
    fake: FakeAnthropic, own_receiver: OtlpReceiver, tmp_path: Path
) -> None:
    service = start(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": own_receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "60000"},
        fake,
        tmp_path,
        workers=None,
    )
    trace_id, _, traceparent = new_traceparent()
    try:
        response = httpx.post(
            f"{service.url}/chat", json=chat_body(PROMPT), headers={"traceparent": traceparent}, timeout=15
        )
        assert response.status_code == 200
        assert not own_receiver.wait_for(lambda spans: bool(spans), timeout=0.5)  # still batched
    finally:
        service.stop()

    assert len(own_receiver.trace(trace_id)) == 2


def test_a_collector_that_never_answers_does_not_hold_a_stopping_worker(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    with socket.socket() as collector:  # accepts connections (the kernel's backlog), never answers
        collector.bind(("127.0.0.1", 0))
        collector.listen(16)
        service = start(
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{collector.getsockname()[1]}/v1/traces",
                "OTEL_BSP_SCHEDULE_DELAY": "60000",
            },
            fake,
            tmp_path,
            workers=None,
        )
        response = httpx.post(f"{service.url}/chat", json=chat_body(PROMPT), timeout=15)
        assert response.status_code == 200

        stopping = time.monotonic()
        service.stop()
        stopped_in = time.monotonic() - stopping

    # The exporter alone would wait 10 s (OTEL_EXPORTER_OTLP_TIMEOUT) and the SDK's shutdown 30 s.
    assert stopped_in < 6, stopped_in
    events = [line["event"] for line in service.log.lines()]
    assert events.index("trace_flush_timed_out") < events.index("stopped")  # the lifespan ran to its end


def test_fallbacks_are_attempt_spans_named_by_their_model_and_the_beta_header_keeps_its_place(
    fake: FakeAnthropic, otlp_receiver: OtlpReceiver, tmp_path: Path
) -> None:
    fallback = "claude-haiku-4-5"
    service = start(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint,
            **TRACED_ENV,
            "CHAT_FALLBACK_MODELS": fallback,
            "CHAT_REFUSAL_FALLBACK": "default",
        },
        fake,
        tmp_path,
        workers=None,
    )
    try:
        fake.overloaded_models.add(CURRENT_MODEL)
        fake.enqueue(Reply.text(ANSWER))
        trace_id, _, traceparent = new_traceparent()

        response = httpx.post(
            f"{service.url}/chat", json=chat_body(PROMPT), headers={"traceparent": traceparent}, timeout=15
        )

        assert (response.status_code, response.json()["model"]) == (200, fallback)
        attempts = [span for span in spans_of(otlp_receiver, trace_id, 5) if span.kind == "client"]
        assert [(span.name, span.attributes.get("error.type")) for span in attempts] == [
            (f"chat {CURRENT_MODEL}", "overloaded_error"),
            (f"chat {CURRENT_MODEL}", "overloaded_error"),
            (f"chat {CURRENT_MODEL}", "overloaded_error"),
            (f"chat {fallback}", None),
        ]
        assert attempts[-1].attributes["gen_ai.response.model"] == fallback
        # Each call carried both its own traceparent and the server-side fallback's beta header.
        for received, span in zip(fake.received, attempts, strict=True):
            assert received.headers["traceparent"] == f"00-{trace_id}-{span.span_id}-01"
            assert "server-side-fallback-2026-07-01" in received.headers["anthropic-beta"]
    finally:
        service.stop()
