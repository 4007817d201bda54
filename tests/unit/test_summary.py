"""The request's outcome, decided in one place from what ended its answer; and its log line."""

import asyncio

import pytest

from app.chat.answer import USAGE_FIELDS, Text, Thinking, Usage
from app.chat.errors import ClientDisconnected, ErrorKind, UpstreamError
from app.observability.summary import ChatSummary


def summary() -> ChatSummary:
    return ChatSummary(model="claude-sonnet-5-5", stream=True)


OVERLOADED = UpstreamError(ErrorKind.OVERLOADED, "Overloaded", retryable=True, request_id="req_9")
GONE = [ClientDisconnected(), asyncio.CancelledError(), GeneratorExit()]


@pytest.mark.parametrize(
    ("how", "outcome", "error_type"),
    [
        pytest.param(None, "ok", None, id="delivered"),
        pytest.param(OVERLOADED, "upstream_error", "overloaded_error", id="upstream error"),
        *[pytest.param(exc, "client_disconnected", None, id=type(exc).__name__) for exc in GONE],
        pytest.param(RuntimeError("a bug"), "internal_error", "internal_error", id="a bug"),
        pytest.param(KeyError("x"), "internal_error", "internal_error", id="another bug"),
    ],
)
def test_the_outcome_of_each_ending(how: BaseException | None, outcome: str, error_type: str | None) -> None:
    chat = summary()
    assert chat.ended(how) == outcome
    assert (chat.outcome, chat.error_type) == (outcome, error_type)


@pytest.mark.parametrize("how", GONE, ids=lambda exc: type(exc).__name__)
def test_a_stream_ended_by_the_shutdown_is_not_a_client_disconnect(how: BaseException) -> None:
    chat = summary()
    chat.mark_ended_by_shutdown()
    assert chat.ended(how) == "shutdown"


def test_a_shutdown_does_not_hide_a_failure() -> None:
    chat = summary()
    chat.mark_ended_by_shutdown()
    assert chat.ended(RuntimeError("a bug")) == "internal_error"


def test_an_upstream_errors_request_id_is_kept_and_only_replaces_a_known_one() -> None:
    chat = summary()
    chat.upstream_request_id = "req_stream"
    chat.ended(OVERLOADED)
    assert chat.upstream_request_id == "req_9"
    chat = summary()
    chat.upstream_request_id = "req_stream"
    chat.ended(UpstreamError(ErrorKind.CONNECTION, "broke off", retryable=True))
    assert chat.upstream_request_id == "req_stream"


def test_the_first_ending_wins() -> None:
    chat = summary()
    assert chat.ended(OVERLOADED) == "upstream_error"
    assert chat.ended(ClientDisconnected()) == "upstream_error"  # lost its client while saying so
    assert chat.ended(None) == "upstream_error"
    assert (chat.outcome, chat.error_type) == ("upstream_error", "overloaded_error")


def test_first_text_is_noted_only_for_text() -> None:
    chat = summary()
    chat.note_first_text([Thinking("hmm"), Thinking("")])
    assert chat.ttft_ms is None
    chat.note_first_text([Thinking("hmm"), Text("Hi")])
    assert chat.ttft_ms is not None
    assert chat.ttft_ms >= 0


def test_retries_are_counted() -> None:
    chat = summary()
    chat.count_retry()
    chat.count_retry()
    assert chat.log_fields()["retries"] == 2


def test_the_log_line_has_every_usage_field_empty_when_there_is_no_usage() -> None:
    fields = summary().log_fields()
    assert set(USAGE_FIELDS) <= set(fields)
    assert [fields[name] for name in USAGE_FIELDS] == [None, None, None, None]
    assert {
        "model",
        "stream",
        "end_user_id",
        "retries",
        "start_ms",
        "ttft_ms",
        "stop_reason",
        "outcome",
        "error_type",
    } <= set(fields)


def test_the_log_line_has_the_usage_and_the_outcome() -> None:
    chat = summary()
    chat.usage = Usage(
        input_tokens=1, output_tokens=2, cache_creation_input_tokens=3, cache_read_input_tokens=4
    )
    chat.stop_reason = "end_turn"
    chat.ended(None)
    fields = chat.log_fields()
    assert {name: fields[name] for name in USAGE_FIELDS} == chat.usage.as_dict()
    assert (fields["model"], fields["stream"], fields["stop_reason"], fields["outcome"]) == (
        "claude-sonnet-5-5",
        True,
        "end_turn",
        "ok",
    )


def test_each_fallback_hop_is_on_the_line_and_counted_once() -> None:
    from prometheus_client import REGISTRY

    from app.observability.metrics import record_request

    def hops(from_model: str, to_model: str) -> float:
        labels = {"from_model": from_model, "to_model": to_model}
        return REGISTRY.get_sample_value("chat_fallbacks_total", labels) or 0.0

    answered = summary()
    answered.note_fallback("claude-haiku-4-5")
    answered.note_fallback("claude-opus-5")
    answered.ended(None)
    before = hops("claude-sonnet-5-5", "claude-haiku-4-5"), hops("claude-haiku-4-5", "claude-opus-5")

    fields = answered.log_fields()
    record_request("/chat", 200, 0.2, fields)

    assert (fields["model"], fields["fallback_from"]) == (
        "claude-opus-5",
        ["claude-sonnet-5-5", "claude-haiku-4-5"],
    )
    after = hops("claude-sonnet-5-5", "claude-haiku-4-5"), hops("claude-haiku-4-5", "claude-opus-5")
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
    assert summary().log_fields()["fallback_from"] is None  # no fallback, no hop


def test_the_log_line_names_the_end_user_when_the_gateway_did() -> None:
    assert summary().log_fields()["end_user_id"] is None
    named = ChatSummary(model="claude-sonnet-5-5", stream=False, end_user_id="u-42")
    assert named.log_fields()["end_user_id"] == "u-42"


def test_the_log_line_counts_the_compactions_and_their_tokens() -> None:
    chat = summary()
    assert (chat.log_fields()["compactions"], chat.log_fields()["compaction_input_tokens"]) == (0, 0)

    chat.note_compactions(1, 95_000, 400)

    fields = chat.log_fields()
    assert (fields["compactions"], fields["compaction_input_tokens"], fields["compaction_output_tokens"]) == (
        1,
        95_000,
        400,
    )
