"""Prometheus metrics: defined here, recorded once per request from its summary fields.

Under gunicorn the figures must cover the whole container, whichever worker answers a scrape:
prometheus-client's multiprocess mode, chosen by the library itself at import when
PROMETHEUS_MULTIPROC_DIR is set (gunicorn.conf.py empties that directory at start and marks
dead workers). Under plain uvicorn it is unset and the process's own registry is exposed.

Nothing here runs per token: a request costs a handful of counter and histogram updates when
it is over, and a stream one gauge update when it opens and one when it closes.
"""

from collections.abc import Iterator, Mapping
from dataclasses import fields
from datetime import datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.chat.answer import Usage

# A chat's times: a quick answer's first token in 50 ms, a long non-streaming answer a minute.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)

# The routes whose requests are chats; everything else (health, docs, metrics) is not counted.
CHAT_PATHS = frozenset({"/chat", "/chat/ui", "/chat/count_tokens"})
# The mode label of a path that is not /chat (whose mode is json or stream).
_MODE_OF_PATH = {"/chat/ui": "ui", "/chat/count_tokens": "count_tokens"}

REQUESTS = Counter(
    "chat_requests",
    "Chat requests by mode, HTTP status and outcome, as in the request's summary log line.",
    ["mode", "status", "outcome"],
)
DURATION = Histogram(
    "chat_request_duration_seconds",
    "Time from the request's arrival to the end of its response (a stream's last byte).",
    ["mode"],
    buckets=BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "chat_time_to_first_token_seconds",
    "Streams: time from the request's arrival to the first text from the model.",
    buckets=BUCKETS,
)
TIME_TO_START = Histogram(
    "chat_time_to_start_seconds",
    "Streams: time from the request's arrival to the stream's start (Anthropic's message_start).",
    buckets=BUCKETS,
)
TOKENS = Counter("chat_tokens", "Tokens as Anthropic's usage reports them, by kind.", ["kind"])
RETRIES = Counter("chat_upstream_retries", "Calls to Anthropic retried (each retry counts once).")
UPSTREAM_ERRORS = Counter(
    "chat_upstream_errors", "Requests that failed because of Anthropic, by error type.", ["type"]
)
FALLBACKS = Counter(
    "chat_fallbacks",
    "Requests moved to the next of CHAT_FALLBACK_MODELS because a model was unavailable, by hop.",
    ["from_model", "to_model"],
)
COMPACTIONS = Counter(
    "chat_compactions",
    "Anthropic's server-side compactions of a conversation (CHAT_COMPACTION=auto), by model; their "
    'tokens are chat_tokens{kind="compaction_input"|"compaction_output"}.',
    ["model"],
)
OPEN_STREAMS = Gauge(
    "chat_open_streams",
    "Event streams open now, summed over the container's live workers.",
    multiprocess_mode="livesum",
)
# Resumption (CHAT_REDIS_URL)
RESUME_READERS = Counter(
    "chat_resume_readers",
    "Readers that came back for an answer (GET /chat/streams/{id}, GET /chat/ui/{id}/stream), by format.",
    ["format"],
)
RESUMED_ANSWERS = Counter(
    "chat_resumed_answers", "Answers that at least one reader came back for, counted at their end."
)
ABANDONED_ANSWERS = Counter(
    "chat_abandoned_answers",
    "Answers closed because no reader was attached for CHAT_RESUME_GRACE seconds.",
)
STOPPED_ANSWERS = Counter("chat_stopped_answers", "Answers stopped on purpose (POST .../stop).")
RESUME_STORE_ERRORS = Counter(
    "chat_resume_store_errors",
    "Calls to Redis, the store of resumable answers, that failed or took over a second, by operation.",
    ["operation"],
)
BUILD_INFO = Gauge(
    "chat_build_info",
    "Always 1: the service's version and its configured default model.",
    ["version", "model"],
    multiprocess_mode="max",
)


class ModelRetirements(Collector):
    """chat_model_retirement_timestamp_seconds{model}: when Anthropic retires each configured
    model, with no series for a model that has no retirement scheduled.

    A collector of this worker's own knowledge rather than a Gauge: in multiprocess mode a Gauge's
    series lives in its worker's file, and prometheus-client can neither remove it there (`remove`
    only warns) nor forget a dead worker's file of a non-`live` mode, so a schedule Anthropic
    withdrew, or a dead worker's, would be reported forever. Every worker checks the same models
    on the same schedule, so whichever answers the scrape knows what the others know.
    """

    def __init__(self) -> None:
        self._retires_at: dict[str, float] = {}

    def update(self, model: str, retires_at: datetime | None) -> None:
        if retires_at is None:
            self._retires_at.pop(model, None)
        else:
            self._retires_at[model] = retires_at.timestamp()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "chat_model_retirement_timestamp_seconds",
            "When Anthropic retires the model (Unix time), per configured or fallback model; "
            "no series while none is scheduled.",
            labels=["model"],
        )
        for model, timestamp in sorted(self._retires_at.items()):
            family.add_metric([model], timestamp)
        yield family


MODEL_RETIREMENTS = ModelRetirements()
REGISTRY.register(MODEL_RETIREMENTS)

# Each usage field's `kind` label, from the one definition of the fields.
_TOKEN_KINDS = (
    *((usage_field.name, usage_field.metadata["kind"]) for usage_field in fields(Usage)),
    ("compaction_input_tokens", "compaction_input"),
    ("compaction_output_tokens", "compaction_output"),
)


def record_request(path: str, status: int, duration: float, summary: Mapping[str, Any]) -> None:
    """One finished request, from the fields of its summary log line."""
    if (resumed_format := summary.get("resumed_format")) is not None:
        RESUME_READERS.labels(resumed_format).inc()
        return
    if path not in CHAT_PATHS:
        return
    mode = _MODE_OF_PATH.get(path) or ("stream" if summary.get("stream") else "json")
    # A request refused before it reached the chat service (422, 413, 415) has no outcome.
    REQUESTS.labels(mode, str(status), summary.get("outcome") or "none").inc()
    DURATION.labels(mode).observe(duration)
    if (ttft_ms := summary.get("ttft_ms")) is not None and mode != "json":
        TIME_TO_FIRST_TOKEN.observe(ttft_ms / 1000)
    if (start_ms := summary.get("start_ms")) is not None:
        TIME_TO_START.observe(start_ms / 1000)
    for name, kind in _TOKEN_KINDS:
        if tokens := summary.get(name):
            TOKENS.labels(kind).inc(tokens)
    if compactions := summary.get("compactions"):
        COMPACTIONS.labels(summary["model"]).inc(compactions)
    if retries := summary.get("retries"):
        RETRIES.inc(retries)
    if error_type := summary.get("error_type"):
        UPSTREAM_ERRORS.labels(error_type).inc()
    if summary.get("resumed_readers"):
        RESUMED_ANSWERS.inc()
    if (outcome := summary.get("outcome")) == "abandoned":
        ABANDONED_ANSWERS.inc()
    elif outcome == "stopped":
        STOPPED_ANSWERS.inc()
    if fallback_from := summary.get("fallback_from"):
        for from_model, to_model in zip(fallback_from, [*fallback_from[1:], summary["model"]], strict=True):
            FALLBACKS.labels(from_model, to_model).inc()


def set_build_info(version: str, model: str) -> None:
    BUILD_INFO.labels(version, model).set(1)


def exposition(multiprocess_dir: str | None) -> tuple[bytes, str]:
    """The scrape's body and content type: the whole container's figures in multiprocess mode."""
    if multiprocess_dir is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
    registry.register(MODEL_RETIREMENTS)
    return generate_latest(registry), CONTENT_TYPE_LATEST
