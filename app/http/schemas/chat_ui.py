"""The `/chat/ui` request: what the Vercel AI SDK's `DefaultChatTransport` POSTs (AI SDK 5 to 7).

`{id, messages: UIMessage[], trigger, messageId, ...body}`: the transport's `body` option adds
`/chat`'s options (`system`, `model`, `max_tokens`, `thinking`, `effort`) at the top level.
Messages carry `parts`; only text reaches the model (see `UIPart`), and an assistant message's
`data-compaction` part, which goes back to Anthropic as the compaction block it came as.
"""

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.http.schemas.chat import ChatOptions, Role

# The part the UI stream carries Anthropic's compaction block in, and useChat sends back.
COMPACTION_PART = "data-compaction"

# Parts the model does not need back: the thinking signature is not kept, so past reasoning
# cannot be sent again; step boundaries, sources and app data are the UI's own.
_DROPPED = frozenset({"reasoning", "reasoning-file", "step-start", "custom"})
_DROPPED_PREFIXES = ("source-", "data-")


def _check_part(part: dict[str, Any]) -> dict[str, Any]:
    kind = part.get("type")
    if not isinstance(kind, str):
        raise ValueError("a part needs a string `type`")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise ValueError("a text part needs a string `text`")
        if "\x00" in text:
            raise ValueError("must not contain NUL characters")
    elif kind == COMPACTION_PART:
        data = part.get("data")
        if not isinstance(data, dict) or data.get("type") != "compaction":
            raise ValueError(f"a {COMPACTION_PART} part's `data` must be the compaction block, as it came")
    elif kind == "file":
        raise ValueError("images and files are out of scope: this service relays text only")
    elif kind not in _DROPPED and not kind.startswith(_DROPPED_PREFIXES):
        # Tool calls and anything newer: dropping them would change what the conversation says.
        raise ValueError(f"parts of type {kind!r} are not supported: this service relays text only")
    return part


UIPart = Annotated[
    dict[str, Any],
    AfterValidator(_check_part),
    Field(
        description="`text` parts are the message; an assistant's `data-compaction` part goes back to "
        "Anthropic as its compaction block; `reasoning`, `step-start`, `source-*` and other `data-*` "
        "parts are dropped; `file` parts are refused (images and files are out of scope)."
    ),
]


class UIMessage(BaseModel):
    # The SDK's own envelope: fields it may add (metadata and later ones) are not ours to refuse.
    model_config = ConfigDict(extra="ignore")

    id: str = ""
    role: Role
    parts: list[UIPart]

    @model_validator(mode="after")
    def _compaction_is_the_assistants(self) -> "UIMessage":
        if self.role != "assistant" and self.compaction() is not None:
            raise ValueError(f"only an assistant message carries a {COMPACTION_PART} part")
        return self

    def text(self) -> str:
        return "\n\n".join(part["text"] for part in self.parts if part["type"] == "text")

    def compaction(self) -> dict[str, Any] | None:
        """The last compaction block of the message: Anthropic reads on from the last one."""
        blocks = [part["data"] for part in self.parts if part["type"] == COMPACTION_PART]
        return blocks[-1] if blocks else None


class ChatUIRequest(ChatOptions):
    """The conversation as `useChat` keeps it. Nothing is stored on the server."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "k7RnD0mCpYQ2",
                    "messages": [
                        {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Name a prime."}]},
                        {
                            "id": "a1",
                            "role": "assistant",
                            "parts": [{"type": "step-start"}, {"type": "text", "text": "7", "state": "done"}],
                        },
                        {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "A bigger one?"}]},
                    ],
                    "trigger": "submit-message",
                    "thinking": "summarized",
                }
            ]
        },
    )

    id: str | None = Field(
        default=None,
        max_length=256,
        description="The chat's id. With resumption on (CHAT_REDIS_URL), the key to its answer in "
        "flight (GET /chat/ui/{id}/stream, POST /chat/ui/{id}/stop): make it unguessable, as "
        "useChat's generated ids are.",
    )
    messages: list[UIMessage] = Field(min_length=1, description="The conversation, oldest first.")
    trigger: Literal["submit-message", "regenerate-message"] | None = None
    messageId: str | None = Field(default=None, description="The message to regenerate (not used).")

    def chat_messages(self) -> list[dict[str, Any]]:
        """The conversation as `/chat` takes it: messages with no text left are dropped."""
        turns: list[dict[str, Any]] = []
        for message in self.messages:
            if not (text := message.text()).strip():
                continue
            turn: dict[str, Any] = {"role": message.role, "content": text}
            if (compaction := message.compaction()) is not None:
                turn["compaction"] = compaction
            turns.append(turn)
        return turns
