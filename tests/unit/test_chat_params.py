"""A request's options with the server's defaults filled in and its limits checked."""

from dataclasses import dataclass

import pytest

from app.chat.params import ChatParams, InvalidOptions, ModelChoice, OptionProblem
from app.config import Compaction, Effort, ThinkingDisplay
from app.upstream.request import request_body
from tests.unit.conftest import SettingsFactory

MESSAGES = [{"role": "user", "content": "Hi"}]


@dataclass(frozen=True)
class Options:
    model: str | None = None
    max_tokens: int | None = None
    system: str | None = None
    thinking: ThinkingDisplay | None = None
    effort: Effort | None = None
    compaction: Compaction | None = None


@pytest.fixture
def settings_kwargs() -> dict[str, object]:
    return {
        "model": "claude-sonnet-5-5",
        "allowed_models": ["claude-sonnet-5-5", "claude-haiku-4-5"],
        "system_prompt": "You are the default assistant.",
        "max_tokens_default": 256,
        "max_tokens_ceiling": 4096,
        "thinking": "omitted",
        "effort": "medium",
        "prompt_cache": "1h",
    }


def test_the_servers_defaults_fill_what_the_request_leaves_out(
    make_settings: SettingsFactory, settings_kwargs: dict[str, object]
) -> None:
    assert ChatParams.with_defaults(make_settings(**settings_kwargs), MESSAGES, Options()) == ChatParams(
        model=ModelChoice("claude-sonnet-5-5", configured=True),
        messages=MESSAGES,
        max_tokens=256,
        system="You are the default assistant.",
        thinking="omitted",
        effort="medium",
        prompt_cache="1h",
    )


def test_the_requests_choices_win(make_settings: SettingsFactory, settings_kwargs: dict[str, object]) -> None:
    options = Options(
        model="claude-haiku-4-5", max_tokens=4096, system="Be brief.", thinking="summarized", effort="low"
    )
    assert ChatParams.with_defaults(make_settings(**settings_kwargs), MESSAGES, options) == ChatParams(
        model=ModelChoice("claude-haiku-4-5", configured=False),
        messages=MESSAGES,
        max_tokens=4096,
        system="Be brief.",
        thinking="summarized",
        effort="low",
        prompt_cache="1h",
    )


def test_a_model_the_request_names_is_its_own_choice_even_if_it_is_the_default(
    make_settings: SettingsFactory,
) -> None:
    params = ChatParams.with_defaults(
        make_settings(model="claude-sonnet-5-5"), MESSAGES, Options(model="claude-sonnet-5-5")
    )
    assert params.model == ModelChoice("claude-sonnet-5-5", configured=False)


def test_an_empty_system_prompt_means_none_at_all(
    make_settings: SettingsFactory, settings_kwargs: dict[str, object]
) -> None:
    params = ChatParams.with_defaults(make_settings(**settings_kwargs), MESSAGES, Options(system=""))
    assert params.system == ""  # not replaced by the server's default
    assert "system" not in request_body(params)


def test_the_plain_defaults(make_settings: SettingsFactory) -> None:
    params = ChatParams.with_defaults(make_settings(), MESSAGES, Options())
    assert (params.system, params.thinking, params.effort, params.prompt_cache) == (None, None, None, "5m")
    assert params.max_tokens == 16000


def test_the_end_user_is_the_gateways_and_has_no_server_default(make_settings: SettingsFactory) -> None:
    assert ChatParams.with_defaults(make_settings(), MESSAGES, Options()).end_user_id is None
    named = ChatParams.with_defaults(make_settings(), MESSAGES, Options(), end_user_id="u-42")
    assert named.end_user_id == "u-42"


def test_any_model_is_allowed_when_no_list_is_set(make_settings: SettingsFactory) -> None:
    assert (
        ChatParams.with_defaults(make_settings(), MESSAGES, Options(model="claude-anything")).model.name
        == "claude-anything"
    )


def test_a_model_off_the_list_is_refused(
    make_settings: SettingsFactory, settings_kwargs: dict[str, object]
) -> None:
    with pytest.raises(InvalidOptions) as raised:
        ChatParams.with_defaults(make_settings(**settings_kwargs), MESSAGES, Options(model="claude-opus-9"))
    assert raised.value.problems == [
        OptionProblem(
            "model",
            "value_error",
            "Value error, model must be one of: claude-sonnet-5-5, claude-haiku-4-5",
            "claude-opus-9",
        )
    ]


def test_max_tokens_over_the_ceiling_is_refused(
    make_settings: SettingsFactory, settings_kwargs: dict[str, object]
) -> None:
    with pytest.raises(InvalidOptions) as raised:
        ChatParams.with_defaults(make_settings(**settings_kwargs), MESSAGES, Options(max_tokens=4097))
    assert raised.value.problems == [
        OptionProblem(
            "max_tokens", "less_than_equal", "Input should be less than or equal to 4096", 4097, {"le": 4096}
        )
    ]


def test_both_problems_are_reported_at_once(
    make_settings: SettingsFactory, settings_kwargs: dict[str, object]
) -> None:
    with pytest.raises(InvalidOptions) as raised:
        ChatParams.with_defaults(
            make_settings(**settings_kwargs), MESSAGES, Options(model="gpt-9", max_tokens=10**6)
        )
    assert [problem.option for problem in raised.value.problems] == ["model", "max_tokens"]
    assert str(raised.value) == "; ".join(problem.message for problem in raised.value.problems)


def test_the_fallback_models_follow_the_configured_one(make_settings: SettingsFactory) -> None:
    settings = make_settings(model="claude-sonnet-5-5", fallback_models="claude-haiku-4-5, claude-sonnet-5-5")

    params = ChatParams.with_defaults(settings, MESSAGES, Options())

    assert params.models == [
        ModelChoice("claude-sonnet-5-5", configured=True),
        # The configured model is not tried twice; a fallback's problems name its own setting.
        ModelChoice("claude-haiku-4-5", configured=True, setting="CHAT_FALLBACK_MODELS"),
    ]


def test_a_request_that_names_its_model_has_no_fallback(make_settings: SettingsFactory) -> None:
    settings = make_settings(fallback_models="claude-haiku-4-5")

    params = ChatParams.with_defaults(settings, MESSAGES, Options(model="claude-sonnet-5-5"))

    assert params.models == [ModelChoice("claude-sonnet-5-5", configured=False)]
