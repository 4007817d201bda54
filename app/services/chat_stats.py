"""What one chat call did, for the request's summary log line and the metrics."""

from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, Literal

from app.services.errors import UpstreamError
from app.services.models import ModelChoice
from app.services.stream_events import Usage

Outcome = Literal["ok", "upstream_error", "client_disconnected", "shutdown", "internal_error"]


def ms_since(start: float) -> float:
    return round((perf_counter() - start) * 1000, 1)


@dataclass(slots=True)
class ChatStats:
    """What one chat call did, for the request's summary log line."""

    model: ModelChoice
    stream: bool
    started: float = field(default_factory=perf_counter)
    attempts: int = 0
    retries: int = 0
    start_ms: float | None = None  # until Anthropic accepted the request (the stream's `start`)
    ttft_ms: float | None = None  # until the first text
    usage: Usage | None = None
    stop_reason: str | None = None
    upstream_request_id: str | None = None
    outcome: Outcome = "ok"
    error_type: str | None = None

    def count_retry(self) -> None:
        self.retries += 1

    def client_left(self) -> None:
        self.outcome = "client_disconnected"

    def ended_by_shutdown(self) -> None:
        self.outcome = "shutdown"

    def failed(self, error: UpstreamError) -> None:
        self.outcome = "upstream_error"
        self.error_type = error.kind.value
        self.upstream_request_id = error.request_id or self.upstream_request_id

    def log_fields(self) -> dict[str, Any]:
        return {
            "model": self.model.name,
            "stream": self.stream,
            "retries": self.retries,
            "start_ms": self.start_ms,
            "ttft_ms": self.ttft_ms,
            "input_tokens": self.usage.input_tokens if self.usage else None,
            "output_tokens": self.usage.output_tokens if self.usage else None,
            "cache_read_input_tokens": self.usage.cache_read_input_tokens if self.usage else None,
            "cache_creation_input_tokens": self.usage.cache_creation_input_tokens if self.usage else None,
            "stop_reason": self.stop_reason,
            "upstream_request_id": self.upstream_request_id,
            "outcome": self.outcome,
            "error_type": self.error_type,
        }
