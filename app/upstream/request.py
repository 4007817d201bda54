"""What the service asks Anthropic for: an answer's parameters as the Messages API's request body."""

from typing import Any

from app.chat.params import ChatParams
from app.config import MIN_COMPACTION_TRIGGER, PromptCache

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
# Server-side compaction too: the `compact_20260112` context-management edit, and the compaction
# blocks a client sends back, need this beta.
COMPACTION_BETA = "compact-2026-01-12"


def request_body(params: ChatParams) -> dict[str, Any]:
    """Always a stream, in both modes: the read time-out is then the longest silence, so a long
    think (only pings) is never cut, and both modes read the same events."""
    body: dict[str, Any] = {
        "model": params.model.name,
        "max_tokens": params.max_tokens,
        "messages": [_turn(message) for message in params.messages],
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
        body = _with_beta(body, SERVER_SIDE_FALLBACK_BETA, {"fallbacks": "default"})
    if any("compaction" in message for message in params.messages):
        body = _with_beta(body, COMPACTION_BETA, {})  # the blocks sent back need it too
    if params.end_user_id is not None:
        body["metadata"] = {"user_id": params.end_user_id}
    return body


# What `messages.count_tokens` takes of a Messages API body: the prompt and what shapes it
# (system prompt, thinking, effort, cache breakpoint), not how the answer is sent or billed.
COUNTED = frozenset({"model", "messages", "system", "thinking", "output_config", "cache_control"})


def count_tokens_body(params: ChatParams) -> dict[str, Any]:
    """The body of `request_body(params)` as `messages.count_tokens` takes it: the same prompt,
    counted as it would be sent (compaction blocks sent back need their beta there too)."""
    body = {name: value for name, value in request_body(params).items() if name in COUNTED}
    if any("compaction" in message for message in params.messages):
        body = _with_beta(body, COMPACTION_BETA, {})
    return body


def _turn(message: dict[str, Any]) -> dict[str, Any]:
    """An assistant turn Anthropic compacted in goes back as its blocks: the compaction block,
    then the text. Anthropic then drops everything before the block, which summarises it."""
    if (block := message.get("compaction")) is None:
        return message
    return {"role": message["role"], "content": [block, {"type": "text", "text": message["content"]}]}


def compaction_trigger(configured: int | None, context_window: int | None) -> int | None:
    """The setting, else 80 % of the model's window, never below Anthropic's minimum; None
    (Anthropic's own default) when neither is known."""
    if configured is not None:
        return configured
    if context_window is None:
        return None
    return max(MIN_COMPACTION_TRIGGER, context_window * 4 // 5)


def with_compaction(body: dict[str, Any], trigger: int | None) -> dict[str, Any]:
    """`body` asking Anthropic to compact once the input passes `trigger` tokens."""
    edit: dict[str, Any] = {"type": "compact_20260112"}
    if trigger is not None:
        edit["trigger"] = {"type": "input_tokens", "value": trigger}
    return _with_beta(body, COMPACTION_BETA, {"context_management": {"edits": [edit]}})


def _with_beta(body: dict[str, Any], beta: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A copy of `body` with a beta's fields and its name in `anthropic-beta`, beside any other
    beta's: the non-beta `messages.create` takes them through the SDK's extra_body/extra_headers."""
    headers = body.get("extra_headers", {})
    betas = [name for name in headers.get("anthropic-beta", "").split(",") if name]
    if beta not in betas:
        betas.append(beta)
    asked = {**body, "extra_headers": {**headers, "anthropic-beta": ",".join(betas)}}
    if fields:
        asked["extra_body"] = {**body.get("extra_body", {}), **fields}
    return asked
