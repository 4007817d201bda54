"""The client span of one upstream attempt, with OpenTelemetry's GenAI conventions.

Made only when traces are on: one per attempt (retries are its siblings under the server span),
never current in the context (an attempt is a generator, suspended between reads), so the
request's log lines keep the server span's id. No prompt or answer text goes in.
"""

from collections.abc import Mapping
from time import perf_counter
from types import TracebackType
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import AttributeValue

from app.chat.answer import Usage
from app.chat.errors import UpstreamError


def request_attributes(body: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """What the request asked for, from the body sent (the model this attempt asked for)."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": body["model"],
        "gen_ai.request.max_tokens": body["max_tokens"],
    }


def response_attributes(stop_reason: str | None, usage: Usage) -> dict[str, AttributeValue]:
    """How the answer ended. `gen_ai.usage.input_tokens` is the whole prompt, cache reads and
    writes included, as the conventions define it (Anthropic's `input_tokens` leaves them out)."""
    return {
        "gen_ai.response.finish_reasons": [stop_reason] if stop_reason else [],
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": usage.cache_read_input_tokens,
        "gen_ai.usage.cache_creation.input_tokens": usage.cache_creation_input_tokens,
    }


def error_type(exc: BaseException) -> str:
    """The service's error kind (`overloaded_error`, `upstream_timeout` ...), else the exception's
    class: `CancelledError` or `GeneratorExit` when the reader left."""
    return exc.kind.value if isinstance(exc, UpstreamError) else type(exc).__qualname__


class AttemptSpan:
    """A context manager around one attempt: the span starts with it and ends with it, failed if
    an exception leaves it."""

    __slots__ = ("_span", "_started", "headers")

    def __init__(self, tracer: trace.Tracer, body: Mapping[str, Any]) -> None:
        self._span = tracer.start_span(
            f"chat {body['model']}", kind=SpanKind.CLIENT, attributes=request_attributes(body)
        )
        self._started = perf_counter()
        # `traceparent` (and `tracestate`) for this attempt's HTTP request, naming this span.
        self.headers: dict[str, str] = {}
        propagate.inject(self.headers, context=trace.set_span_in_context(self._span))

    def __enter__(self) -> "AttemptSpan":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            self._span.set_attribute("error.type", error_type(exc))
            if isinstance(exc, UpstreamError):
                self._request_id(exc.request_id)
                self._span.set_status(StatusCode.ERROR, exc.message)  # the service's words, no prompt
            else:
                self._span.set_status(StatusCode.ERROR)
        self._span.end()

    def started(self, message_id: str, model: str, request_id: str | None) -> None:
        """At `message_start`: known even when the attempt fails midway."""
        self._span.set_attributes({"gen_ai.response.id": message_id, "gen_ai.response.model": model})
        self._request_id(request_id)

    def handed_over(self, model: str) -> None:
        """Anthropic's server-side fallback: another model wrote the rest of the answer."""
        self._span.set_attribute("gen_ai.response.model", model)

    def _request_id(self, request_id: str | None) -> None:
        # What Anthropic's support asks for.
        if request_id:
            self._span.set_attribute("anthropic.request.id", request_id)

    def first_token(self) -> None:
        """Once, at the attempt's first text or thinking piece."""
        self._span.set_attribute(
            "gen_ai.response.time_to_first_chunk", round(perf_counter() - self._started, 6)
        )

    def answered(self, stop_reason: str | None, usage: Usage) -> None:
        self._span.set_attributes(response_attributes(stop_reason, usage))
