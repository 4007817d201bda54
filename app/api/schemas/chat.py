"""The `/chat` request and response bodies, as the frontend sees them in /docs."""

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator


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


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["user", "assistant"] = Field(
        description="Who said it. A system prompt goes in the request's `system` field, not here."
    )
    content: NonBlank = Field(description="The message text; must not be blank.")

    @field_validator("role", mode="before")
    @classmethod
    def _system_goes_elsewhere(cls, value: object) -> object:
        if value == "system":
            raise ValueError("messages cannot have the role 'system': put it in the request's `system` field")
        return value


class ChatRequest(BaseModel):
    """The whole conversation so far. Nothing is stored on the server: send it all every time."""

    # strict: "stream": "yes" or "max_tokens": "5" are mistakes to report, not to guess at.
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
    system: Text | None = Field(
        default=None, description="A system prompt that replaces the server's default for this request."
    )
    model: NonBlank | None = Field(
        default=None, description="A Claude model id; the server's configured model if omitted."
    )
    max_tokens: int | None = Field(
        default=None, ge=1, description="Most tokens to generate; the server's default if omitted."
    )


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int


class ChatResponse(BaseModel):
    """The whole answer. `role` and `content` can be appended to the history as they are."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                    "model": "claude-sonnet-5",
                    "role": "assistant",
                    "content": "Hello!",
                    "stop_reason": "end_turn",
                    "usage": {"input_tokens": 10, "output_tokens": 3},
                }
            ]
        }
    )

    id: str
    model: str
    role: Literal["assistant"] = "assistant"
    content: str
    stop_reason: str | None
    usage: Usage


class ErrorDetail(BaseModel):
    type: str = Field(description="A stable error type, e.g. `rate_limit_error`.")
    message: str = Field(description="What went wrong, for a person.")


class ErrorResponse(BaseModel):
    detail: ErrorDetail
