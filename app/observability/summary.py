"""What one chat request did, for its summary log line and the metrics."""

import asyncio
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, Literal

from app.chat.answer import USAGE_FIELDS, Pieces, Text, Usage
from app.chat.errors import ClientDisconnected, UpstreamError

Outcome = Literal[
    "ok", "upstream_error", "client_disconnected", "shutdown", "stopped", "abandoned", "internal_error"
]
# What cancelled an answer, when not its client leaving.
CancelledFor = Literal["shutdown", "stopped", "abandoned"]
INTERNAL_ERROR: Outcome = "internal_error"


def ms_since(start: float) -> float:
    return round((perf_counter() - start) * 1000, 1)


@dataclass(slots=True)
class ChatSummary:
    """What one chat call did. Its fields are written where they happen; its outcome only by
    `ended`, which reads it from how the answer ended."""

    model: str  # the model asked, then the one that answered (or failed last)
    stream: bool
    end_user_id: str | None = None  # for cost attribution in the logs; never a metric label
    started: float = field(default_factory=perf_counter)
    retries: int = 0
    start_ms: float | None = None  # until Anthropic accepted the request (the stream's `start`)
    ttft_ms: float | None = None  # until the first text reached the stream
    usage: Usage | None = None
    stop_reason: str | None = None
    upstream_request_id: str | None = None
    cancelled_for: CancelledFor | None = None  # set by whatever ends the answer, before it does
    outcome: Outcome | None = None
    error_type: str | None = None
    fallbacks: list[str] = field(default_factory=list)  # the models given up on, in turn
    # Anthropic's server-side compactions in the answer, and their own tokens (not in `usage`).
    compactions: int = 0
    compaction_input_tokens: int = 0
    compaction_output_tokens: int = 0
    # Resumption (CHAT_REDIS_URL): the answer was kept for readers that come back, and how many
    # did; it may outlive the request, so the summary line waits for `answer_done`.
    resumable: bool = False
    resumed_readers: int = 0
    answer_done: "asyncio.Future[None] | None" = None

    def note_fallback(self, to_model: str) -> None:
        self.fallbacks.append(self.model)
        self.model = to_model

    def note_compactions(self, count: int, input_tokens: int, output_tokens: int) -> None:
        self.compactions = count
        self.compaction_input_tokens = input_tokens
        self.compaction_output_tokens = output_tokens

    def count_retry(self) -> None:
        self.retries += 1

    def mark_ended_by_shutdown(self) -> None:
        self.mark_cancelled_for("shutdown")

    def mark_cancelled_for(self, reason: CancelledFor) -> None:
        self.cancelled_for = reason

    def still_running(self) -> "asyncio.Future[None] | None":
        """The answer's end, if it goes on after the response (a resumable answer's reader left)."""
        done = self.answer_done
        return done if done is not None and not done.done() else None

    def note_start(self) -> None:
        self.start_ms = ms_since(self.started)

    def note_first_text(self, pieces: Pieces) -> None:
        """Called for each batch until the first text; nothing to do after it."""
        if any(type(piece) is Text for piece in pieces):
            self.ttft_ms = ms_since(self.started)

    def ended(self, how: BaseException | None) -> Outcome:
        """The one place where the request's outcome is decided, from what ended its answer
        (None: the answer was delivered). The first ending counts: a stream that failed, then
        lost its client while saying so, failed."""
        if self.outcome is not None:
            return self.outcome
        if how is None:
            self.outcome = "ok"
        elif isinstance(how, UpstreamError):
            self.outcome = "upstream_error"
            self.error_type = how.kind.value
            self.upstream_request_id = how.request_id or self.upstream_request_id
        elif isinstance(how, ClientDisconnected | asyncio.CancelledError | GeneratorExit):
            self.outcome = self.cancelled_for or "client_disconnected"
        else:
            self.outcome = INTERNAL_ERROR
            self.error_type = INTERNAL_ERROR
        return self.outcome

    def log_fields(self) -> dict[str, Any]:
        usage = self.usage.as_dict() if self.usage else dict.fromkeys(USAGE_FIELDS)
        return {
            "model": self.model,
            "stream": self.stream,
            "end_user_id": self.end_user_id,
            "retries": self.retries,
            "start_ms": self.start_ms,
            "ttft_ms": self.ttft_ms,
            **usage,
            "stop_reason": self.stop_reason,
            "upstream_request_id": self.upstream_request_id,
            "outcome": self.outcome,
            "error_type": self.error_type,
            "fallback_from": self.fallbacks or None,
            "compactions": self.compactions,
            "compaction_input_tokens": self.compaction_input_tokens,
            "compaction_output_tokens": self.compaction_output_tokens,
            "resumable": self.resumable,
            "resumed_readers": self.resumed_readers,
        }


@dataclass(slots=True)
class ResumeSummary:
    """A reader that came back for an answer: which format, and the request that asked for it
    (its summary line has the rest). Never the stream id, which is a secret."""

    format: str
    resumes_request_id: str | None

    def log_fields(self) -> dict[str, Any]:
        return {"resumed_format": self.format, "resumes_request_id": self.resumes_request_id}

    def still_running(self) -> None:
        return None
