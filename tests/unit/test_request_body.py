"""What the service asks Anthropic for, option by option."""

from typing import Any

import pytest

from app.chat.params import ChatParams, ModelChoice
from app.config import Effort, PromptCache, ThinkingDisplay
from app.upstream.request import count_tokens_body, request_body

MESSAGES = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def params(**options: Any) -> ChatParams:
    return ChatParams(
        model=ModelChoice("claude-sonnet-5-5", configured=True),
        messages=MESSAGES,
        max_tokens=1024,
        **{"system": None, **options},
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
