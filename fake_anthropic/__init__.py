"""A fake Anthropic Messages API (real HTTP, real wire format, standard library only).

Shared by the tests, the benchmark and the compose demo (`python -m fake_anthropic`); see
`fake_anthropic.server`.
"""

from fake_anthropic.ports import free_port
from fake_anthropic.server import (
    CACHE_MIN_TOKENS,
    DEMO_THINKING,
    TRICKY_TOKENS,
    FakeAnthropic,
    PromptCache,
    Received,
    Reply,
    default_tokens,
    input_tokens,
    main,
)

__all__ = [
    "CACHE_MIN_TOKENS",
    "DEMO_THINKING",
    "TRICKY_TOKENS",
    "FakeAnthropic",
    "PromptCache",
    "Received",
    "Reply",
    "default_tokens",
    "free_port",
    "input_tokens",
    "main",
]
