"""The neutral answer: usage fields listed once, and JSON mode's assembled completion."""

import pytest

from app.chat.answer import USAGE_FIELDS, Completion, End, Start, Text, Thinking, Usage

ANTHROPIC_USAGE_NAMES = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


def test_usage_fields_are_anthropics_names() -> None:
    assert USAGE_FIELDS == ANTHROPIC_USAGE_NAMES
    usage = Usage(input_tokens=1, output_tokens=2, cache_creation_input_tokens=3, cache_read_input_tokens=4)
    assert usage.as_dict() == {
        "input_tokens": 1,
        "output_tokens": 2,
        "cache_creation_input_tokens": 3,
        "cache_read_input_tokens": 4,
    }
    assert tuple(usage.as_dict()) == USAGE_FIELDS
    assert Usage().as_dict() == dict.fromkeys(USAGE_FIELDS, 0)


def test_the_prompt_is_input_plus_cache_writes_plus_cache_reads() -> None:
    usage = Usage(
        input_tokens=10, output_tokens=500, cache_creation_input_tokens=200, cache_read_input_tokens=3000
    )
    assert usage.prompt_tokens == 3210


PIECES = [Thinking("Let me "), Thinking("see."), Text("Hello"), Text(", world")]


@pytest.mark.parametrize(("summarized", "thinking"), [(True, "Let me see."), (False, None)])
def test_a_completion_joins_the_text_and_keeps_thinking_only_when_summarized(
    summarized: bool, thinking: str | None
) -> None:
    usage = Usage(input_tokens=5, output_tokens=7)
    completion = Completion.of(
        Start("msg_1", "claude-sonnet-5-5"), PIECES, End("end_turn", usage), summarized=summarized
    )
    assert completion == Completion(
        "msg_1", "claude-sonnet-5-5", "Hello, world", thinking, End("end_turn", usage)
    )


def test_a_summarized_completion_without_thinking_has_empty_thinking() -> None:
    completion = Completion.of(
        Start("m", "x"), [Thinking(""), Text("Hi")], End(None, Usage()), summarized=True
    )
    assert (completion.text, completion.thinking, completion.end.stop_reason) == ("Hi", "", None)
