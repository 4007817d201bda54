"""What the service asks Anthropic for: an answer's parameters as the Messages API's request body."""

from typing import Any

from app.chat.params import ChatParams
from app.config import PromptCache

# At the top level, Anthropic puts the breakpoint on the last block it can cache: the whole
# prompt is written, and the next turn, which starts with the same bytes, reads it.
CACHE_CONTROL: dict[PromptCache, dict[str, str] | None] = {
    "5m": {"type": "ephemeral"},
    "1h": {"type": "ephemeral", "ttl": "1h"},
    "off": None,
}


# Server-side fallback is a beta of the Messages API, not a parameter of the SDK's non-beta
# `messages.create`: the field and the beta header go through the SDK's extra_body/extra_headers.
SERVER_SIDE_FALLBACK_BETA = "server-side-fallback-2026-07-01"


def request_body(params: ChatParams) -> dict[str, Any]:
    """Always a stream, in both modes: the read time-out is then the longest silence, so a long
    think (only pings) is never cut, and both modes read the same events."""
    body: dict[str, Any] = {
        "model": params.model.name,
        "max_tokens": params.max_tokens,
        "messages": params.messages,
        "stream": True,
    }
    if params.system:
        body["system"] = params.system
    if params.thinking is not None:
        body["thinking"] = {"type": "adaptive", "display": params.thinking}
    if params.effort is not None:
        body["output_config"] = {"effort": params.effort}
    if (cache_control := CACHE_CONTROL[params.prompt_cache]) is not None:
        body["cache_control"] = cache_control
    if params.refusal_fallback:
        # "default": the model's own fallback, chosen by Anthropic; a model without one answers
        # alone, as if it had not been asked (the API's documented behaviour).
        body["extra_body"] = {"fallbacks": "default"}
        body["extra_headers"] = {"anthropic-beta": SERVER_SIDE_FALLBACK_BETA}
    if params.end_user_id is not None:
        body["metadata"] = {"user_id": params.end_user_id}
    return body


# What `messages.count_tokens` takes of a Messages API body: the prompt and what shapes it
# (system prompt, thinking, effort, cache breakpoint), not how the answer is sent or billed.
COUNTED = frozenset({"model", "messages", "system", "thinking", "output_config", "cache_control"})


def count_tokens_body(params: ChatParams) -> dict[str, Any]:
    """The body of `request_body(params)` as `messages.count_tokens` takes it: the same prompt,
    counted as it would be sent."""
    return {name: value for name, value in request_body(params).items() if name in COUNTED}
