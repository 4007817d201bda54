"""What the service asks Anthropic for, option by option."""

from typing import Any

import pytest

from app.chat.params import ChatParams, ModelChoice
from app.config import Effort, PromptCache, ThinkingDisplay
from app.upstream.request import compaction_trigger, count_tokens_body, request_body, with_compaction

MESSAGES = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def params(**options: Any) -> ChatParams:
    return ChatParams(
        model=ModelChoice("claude-sonnet-5-5", configured=True),
        max_tokens=1024,
        **{"system": None, "messages": MESSAGES, **options},
    )


def test_the_minimal_body_is_a_stream_without_prompt_cache() -> None:
    minimal = params()
    assert minimal.prompt_cache == "off"  # ChatParams' default; the settings' default is 5m
    assert request_body(minimal) == {
        "model": "claude-sonnet-5-5",
        "max_tokens": 1024,
        "messages": MESSAGES,
        "stream": True,
    }


@pytest.mark.parametrize(
    ("prompt_cache", "cache_control"),
    [("5m", {"type": "ephemeral"}), ("1h", {"type": "ephemeral", "ttl": "1h"}), ("off", None)],
)
def test_the_prompt_cache_is_one_top_level_breakpoint(
    prompt_cache: PromptCache, cache_control: dict[str, str] | None
) -> None:
    assert request_body(params(prompt_cache=prompt_cache)).get("cache_control") == cache_control


@pytest.mark.parametrize(("system", "sent"), [(None, False), ("", False), ("Be brief.", True)])
def test_a_system_prompt_is_sent_only_when_there_is_one(system: str | None, sent: bool) -> None:
    body = request_body(params(system=system))
    assert ("system" in body) is sent
    if sent:
        assert body["system"] == system


@pytest.mark.parametrize("display", ["summarized", "omitted"])
def test_thinking_is_adaptive_with_the_display_asked_for(display: ThinkingDisplay) -> None:
    assert request_body(params(thinking=display))["thinking"] == {"type": "adaptive", "display": display}


def test_no_thinking_option_leaves_it_to_the_model() -> None:
    assert "thinking" not in request_body(params())


@pytest.mark.parametrize("effort", ["low", "medium", "high", "xhigh", "max"])
def test_effort_goes_in_output_config(effort: Effort) -> None:
    assert request_body(params(effort=effort))["output_config"] == {"effort": effort}
    assert "output_config" not in request_body(params())


def test_every_option_at_once_and_never_sampling_parameters() -> None:
    body = request_body(params(system="Be brief.", thinking="summarized", effort="high", prompt_cache="1h"))
    assert set(body) == {
        "model",
        "max_tokens",
        "messages",
        "stream",
        "system",
        "thinking",
        "output_config",
        "cache_control",
    }
    assert not {"temperature", "top_p", "top_k"} & set(body)


def test_refusal_fallback_asks_for_the_models_default_through_the_beta() -> None:
    body = request_body(params(refusal_fallback=True))

    assert body["extra_body"] == {"fallbacks": "default"}
    assert body["extra_headers"] == {"anthropic-beta": "server-side-fallback-2026-07-01"}
    assert "extra_body" not in request_body(params())


def test_the_end_user_goes_to_anthropic_as_metadata_user_id() -> None:
    body = request_body(params(end_user_id="tenant-7:user.42"))
    assert body["metadata"] == {"user_id": "tenant-7:user.42"}


def test_no_end_user_sends_no_metadata() -> None:
    assert "metadata" not in request_body(params())


def test_count_tokens_is_asked_for_the_same_prompt_without_what_it_does_not_take() -> None:
    everything = params(
        system="Be brief.",
        thinking="summarized",
        effort="low",
        prompt_cache="5m",
        refusal_fallback=True,
        end_user_id="tenant-7:user.42",
    )
    assert count_tokens_body(everything) == {
        "model": "claude-sonnet-5-5",
        "messages": MESSAGES,
        "system": "Be brief.",
        "thinking": {"type": "adaptive", "display": "summarized"},
        "output_config": {"effort": "low"},
        "cache_control": {"type": "ephemeral"},
    }


BLOCK = {"type": "compaction", "content": "Summary of 3 earlier messages.", "encrypted_content": "e0f1"}


def test_an_assistant_turn_anthropic_compacted_in_goes_back_as_the_block_then_the_text() -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello", "compaction": BLOCK},
        {"role": "user", "content": "More?"},
    ]

    body = request_body(params(messages=messages))

    assert body["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": [BLOCK, {"type": "text", "text": "Hello"}]},
        {"role": "user", "content": "More?"},
    ]
    assert body["extra_headers"] == {"anthropic-beta": "compact-2026-01-12"}
    assert "extra_body" not in body  # no edit asked for: the beta is for the block


def test_the_compaction_edit_goes_with_its_beta_beside_the_refusal_fallbacks() -> None:
    body = with_compaction(request_body(params(refusal_fallback=True)), 60_000)

    assert body["extra_body"] == {
        "fallbacks": "default",
        "context_management": {
            "edits": [{"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 60_000}}]
        },
    }
    assert body["extra_headers"] == {"anthropic-beta": "server-side-fallback-2026-07-01,compact-2026-01-12"}


def test_the_compaction_beta_is_named_once_and_an_unknown_trigger_is_anthropics_default() -> None:
    messages = [
        {"role": "assistant", "content": "Hello", "compaction": BLOCK},
        {"role": "user", "content": "Hi"},
    ]

    body = with_compaction(request_body(params(messages=messages)), None)

    assert body["extra_headers"] == {"anthropic-beta": "compact-2026-01-12"}
    assert body["extra_body"] == {"context_management": {"edits": [{"type": "compact_20260112"}]}}


def test_no_compaction_sends_no_context_management() -> None:
    body = request_body(params())
    assert "extra_body" not in body
    assert "context_management" not in body


@pytest.mark.parametrize(
    ("configured", "window", "trigger"),
    [
        (60_000, 100_000, 60_000),  # the setting wins
        (None, 200_000, 160_000),  # 80 % of the window
        (None, 1_000_000, 800_000),
        (None, 40_000, 50_000),  # never below Anthropic's minimum
        (None, None, None),  # unknown window: Anthropic's own default
    ],
)
def test_the_compaction_trigger(configured: int | None, window: int | None, trigger: int | None) -> None:
    assert compaction_trigger(configured, window) == trigger


def test_count_tokens_of_a_compacted_history_carries_its_beta() -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello", "compaction": BLOCK},
        {"role": "user", "content": "More?"},
    ]

    body = count_tokens_body(params(messages=messages, refusal_fallback=True))

    assert body["messages"][1]["content"][0] == BLOCK
    assert body["extra_headers"] == {"anthropic-beta": "compact-2026-01-12"}  # not the fallback's
    assert "extra_body" not in body
