"""The `/chat` request and response bodies, as the frontend sees them in /docs."""

from dataclasses import fields as dataclass_fields
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
    model_validator,
)

from app.chat.answer import Usage as UsageCounts
from app.config import Compaction, Effort, ThinkingDisplay


def _no_nul(text: str) -> str:
    # No model input needs NUL, and some stores and proxies on the way choke on it.
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    return text


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty or only whitespace")
    return text


# The validators give the clear messages; the patterns tell /docs and clients the same rules.
Text = Annotated[str, AfterValidator(_no_nul), Field(json_schema_extra={"pattern": "^[^\\u0000]*$"})]
NonBlank = Annotated[
    str,
    AfterValidator(_no_nul),
    AfterValidator(_not_blank),
    Field(min_length=1, json_schema_extra={"pattern": "^[^\\u0000]*\\S[^\\u0000]*$"}),
]


def _system_goes_elsewhere(value: object) -> object:
    if value == "system":
        raise ValueError("messages cannot have the role 'system': put it in the request's `system` field")
    return value


# A message's role on every chat route; "system" is refused with where it goes instead.
Role = Annotated[
    Literal["user", "assistant"],
    BeforeValidator(_system_goes_elsewhere),
    Field(description="Who said it. A system prompt goes in the request's `system` field, not here."),
]


def _is_compaction_block(block: dict[str, Any]) -> dict[str, Any]:
    # The rest of the block is Anthropic's to check (its signature): a tampered one is its 400.
    if block.get("type") != "compaction":
        raise ValueError('must be the `compaction` block of an answer, as it came (`"type": "compaction"`)')
    return block


# Anthropic's compaction block, opaque: sent back exactly as an answer carried it.
CompactionBlock = Annotated[
    dict[str, Any],
    AfterValidator(_is_compaction_block),
    Field(
        description="On an assistant turn only: the `compaction` of the answer it came from, sent "
        "back unchanged. Anthropic then reads the conversation from its summary on.",
        json_schema_extra={"examples": [{"type": "compaction", "content": "…", "encrypted_content": "…"}]},
    ),
]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Role
    content: NonBlank = Field(description="The message text; must not be blank.")
    compaction: CompactionBlock | None = None

    @model_validator(mode="after")
    def _compaction_is_the_assistants(self) -> "ChatMessage":
        if self.compaction is not None and self.role != "assistant":
            raise ValueError("only an assistant turn carries a `compaction` (the answer's, as it came)")
        return self

    def as_turn(self) -> dict[str, Any]:
        turn: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.compaction is not None:
            turn["compaction"] = self.compaction
        return turn


class ChatOptions(BaseModel):
    """How to answer: the options that every chat route takes beside the conversation."""

    # strict: "stream": "yes" or "max_tokens": "5" are mistakes to report, not to guess at.
    model_config = ConfigDict(extra="forbid", strict=True)

    system: Text | None = Field(
        default=None,
        description='A system prompt that replaces the server\'s default for this request; `""` sends none.',
    )
    model: NonBlank | None = Field(
        default=None, description="A Claude model id; the server's configured model if omitted."
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Most tokens to generate, thinking included; the server's default if omitted.",
    )
    thinking: ThinkingDisplay | None = Field(
        default=None,
        description="`summarized`: the model's thinking is streamed as `thinking` events (and returned "
        "as `thinking`); `omitted`: only that it thinks. The server's default if omitted.",
    )
    effort: Effort | None = Field(
        default=None,
        description="How hard the model works on the answer: more effort, more thinking and tokens. "
        "The server's default (else the model's, `high`) if omitted.",
    )
    compaction: Compaction | None = Field(
        default=None,
        description="`auto`: once the conversation passes the server's trigger, Anthropic summarises "
        "its older turns into a `compaction` block that the answer carries (send it back on that "
        "assistant turn); `off`: never. The server's default if omitted.",
    )


class ChatRequest(ChatOptions):
    """The whole conversation so far. Nothing is stored on the server: send it all every time."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"messages": [{"role": "user", "content": "Say hello"}], "stream": False},
                {
                    "messages": [
                        {"role": "user", "content": "Name a prime."},
                        {"role": "assistant", "content": "7"},
                        {"role": "user", "content": "Another, bigger one?"},
                    ],
                    "system": "Answer in one word.",
                    "stream": True,
                    "thinking": "summarized",
                    "effort": "low",
                },
            ]
        },
    )

    messages: list[ChatMessage] = Field(
        min_length=1,
        description="The conversation, oldest first; Anthropic expects it to start with a user turn.",
    )
    stream: bool = Field(
        default=False, description="Answer as Server-Sent Events, token by token, instead of one JSON body."
    )


class CountTokensRequest(ChatOptions):
    """The conversation `/chat` would send, counted instead of answered."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"messages": [{"role": "user", "content": "Summarise this: …"}]}]},
    )

    messages: list[ChatMessage] = Field(
        min_length=1, description="The conversation, oldest first, as it would be sent to `/chat`."
    )


class CountTokensResponse(BaseModel):
    input_tokens: int = Field(description="The conversation's input tokens, as Anthropic counts them.")
    context_window: int | None = Field(
        description="The model's context window (`max_input_tokens`); null until the service has "
        "looked the model up."
    )


class ContextUse(BaseModel):
    """How full the conversation is after this answer."""

    used: int = Field(
        description="What the next turn starts from: this turn's input (uncached, cache read, cache "
        "write) plus its output."
    )
    window: int | None = Field(
        description="The model's context window (`max_input_tokens`); null until the service has "
        "looked the model up (a model's first answer may carry null)."
    )


# The usage fields as the domain defines them, once: documented here from that definition.
_USAGE_FIELDS: dict[str, Any] = {
    counted.name: (int, Field(description=counted.metadata["description"]))
    for counted in dataclass_fields(UsageCounts)
}
Usage = create_model("Usage", __doc__=UsageCounts.__doc__, **_USAGE_FIELDS)


class ChatResponse(BaseModel):
    """The whole answer. `role` and `content` can be appended to the history as they are."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                    "model": "claude-sonnet-5-5",
                    "role": "assistant",
                    "content": "Hello!",
                    "thinking": None,
                    "stop_reason": "end_turn",
                    "usage": {
                        "input_tokens": 10,
                        "output_tokens": 3,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                    },
                    "context": {"used": 13, "window": 200000},
                }
            ]
        }
    )

    id: str
    model: str
    role: Literal["assistant"] = "assistant"
    content: str
    thinking: str | None = Field(
        description="The model's thinking summary when `thinking` was `summarized`, else null."
    )
    stop_reason: str | None = Field(
        description="`end_turn` when the answer is complete; `max_tokens`: cut at the limit; "
        "`refusal`: the model declined."
    )
    stop_details: dict[str, Any] | None = Field(
        default=None,
        description="With `refusal` only: Anthropic's `stop_details` as it sent them "
        "(`category`, `explanation`, `recommended_model`).",
    )
    usage: Usage
    context: ContextUse | None = Field(description="How full the conversation is: the meter.")
    compaction: dict[str, Any] | None = Field(
        default=None,
        description="When Anthropic compacted the conversation during this answer: the block, "
        "opaque. Keep it on this assistant turn (`compaction`) when you send the history back.",
    )


class ErrorDetail(BaseModel):
    type: str = Field(description="A stable error type, e.g. `rate_limit_error`.")
    message: str = Field(description="What went wrong, for a person.")
    input_tokens: int | None = Field(
        default=None, description="With `context_window_exceeded` only: the conversation's tokens."
    )
    context_window: int | None = Field(
        default=None, description="With `context_window_exceeded` only: the model's context window."
    )


class ErrorResponse(BaseModel):
    detail: ErrorDetail
