"""Traces' pure parts: the switch, the attempt span's attributes and its propagated header."""

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, Tracer
from pydantic import ValidationError

from app.chat.answer import Usage
from app.chat.errors import ErrorKind, UpstreamError
from app.upstream.spans import AttemptSpan, error_type, request_attributes, response_attributes
from tests.unit.conftest import SettingsFactory

BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 512,
    "messages": [{"role": "user", "content": "a secret prompt"}],
    "system": "a secret system prompt",
}


@pytest.mark.parametrize(
    ("base", "traces", "url"),
    [
        (None, None, None),
        ("http://collector:4318", None, "http://collector:4318/v1/traces"),
        ("http://collector:4318/", None, "http://collector:4318/v1/traces"),
        ("http://collector:4318", "https://traces.example/in", "https://traces.example/in"),
        (None, "https://traces.example/in", "https://traces.example/in"),
        ("", "", None),  # Compose's `${OTEL_EXPORTER_OTLP_ENDPOINT:-}`
    ],
)
def test_traces_are_on_where_an_otlp_endpoint_is_set(
    make_settings: SettingsFactory, base: str | None, traces: str | None, url: str | None
) -> None:
    settings = make_settings(otel_exporter_otlp_endpoint=base, otel_exporter_otlp_traces_endpoint=traces)
    assert settings.otlp_traces_url == url


def test_the_standard_variables_are_read(
    monkeypatch: pytest.MonkeyPatch, make_settings: SettingsFactory
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "chat-eu")
    settings = make_settings()
    assert settings.otlp_traces_url == "http://collector:4318/v1/traces"
    assert settings.otel_service_name == "chat-eu"


def test_opentelemetrys_off_switch_wins_over_an_endpoint(make_settings: SettingsFactory) -> None:
    settings = make_settings(otel_exporter_otlp_endpoint="http://collector:4318", otel_sdk_disabled="true")
    assert settings.otlp_traces_url is None


def test_an_endpoint_that_is_not_http_is_refused(make_settings: SettingsFactory) -> None:
    with pytest.raises(ValidationError, match="not an http:// or https:// URL"):
        make_settings(otel_exporter_otlp_endpoint="collector:4317")


def test_the_service_name_defaults_to_chat_service(make_settings: SettingsFactory) -> None:
    assert make_settings().otel_service_name == "chat-service"


def test_request_attributes_come_from_the_body_sent_and_carry_no_text() -> None:
    assert request_attributes(BODY) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-haiku-4-5",
        "gen_ai.request.max_tokens": 512,
    }


def test_response_attributes_count_the_whole_prompt_as_input() -> None:
    usage = Usage(
        input_tokens=10, output_tokens=7, cache_creation_input_tokens=100, cache_read_input_tokens=1000
    )
    assert response_attributes("end_turn", usage) == {
        "gen_ai.response.finish_reasons": ["end_turn"],
        "gen_ai.usage.input_tokens": 1110,
        "gen_ai.usage.output_tokens": 7,
        "gen_ai.usage.cache_read.input_tokens": 1000,
        "gen_ai.usage.cache_creation.input_tokens": 100,
    }
    assert response_attributes(None, Usage())["gen_ai.response.finish_reasons"] == []


def test_error_type_is_the_service_error_kind_else_the_exception_class() -> None:
    assert error_type(UpstreamError(ErrorKind.TIMEOUT, "slow")) == "upstream_timeout"
    assert error_type(GeneratorExit()) == "GeneratorExit"


@pytest.fixture
def exported() -> Iterator[tuple[Tracer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test"), exporter
    provider.shutdown()


def only(exporter: InMemorySpanExporter) -> ReadableSpan:
    [span] = exporter.get_finished_spans()
    return span


def test_an_attempt_span_is_a_client_span_named_after_the_model_its_header_names(
    exported: tuple[Tracer, InMemorySpanExporter],
) -> None:
    tracer, exporter = exported
    with AttemptSpan(tracer, BODY) as span:
        span.started("msg_1", "claude-haiku-4-5-20251001", "req_1")
        span.first_token()
        span.answered("end_turn", Usage(input_tokens=3, output_tokens=2))
        header = span.headers["traceparent"]

    finished = only(exporter)
    context = finished.get_span_context()
    assert finished.name == "chat claude-haiku-4-5"
    assert finished.kind is SpanKind.CLIENT
    assert header == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    attributes = dict(finished.attributes or {})
    assert attributes["gen_ai.response.id"] == "msg_1"
    assert attributes["gen_ai.response.model"] == "claude-haiku-4-5-20251001"
    assert attributes["anthropic.request.id"] == "req_1"
    assert attributes["gen_ai.usage.input_tokens"] == 3
    assert 0 < attributes["gen_ai.response.time_to_first_chunk"] < 1  # type: ignore[operator]
    assert finished.status.status_code is StatusCode.UNSET
    assert not any("secret" in str(value) for value in attributes.values())


def test_an_attempt_that_fails_ends_its_span_with_the_error_kind(
    exported: tuple[Tracer, InMemorySpanExporter],
) -> None:
    tracer, exporter = exported
    with pytest.raises(UpstreamError), AttemptSpan(tracer, BODY):
        raise UpstreamError(ErrorKind.OVERLOADED, "Anthropic is overloaded.", request_id="req_9")

    finished = only(exporter)
    assert finished.status.status_code is StatusCode.ERROR
    assert finished.attributes is not None
    assert finished.attributes["error.type"] == "overloaded_error"
    assert finished.attributes["anthropic.request.id"] == "req_9"
    assert "gen_ai.response.id" not in finished.attributes
