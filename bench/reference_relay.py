"""The way most people would write this relay, from the tutorials: the yardstick for the service.

FastAPI + sse-starlette's EventSourceResponse + the SDK's `messages.stream()` and its typed
events, `json.dumps` per token; the same event contract as the service. Configured by the SDK's
own environment variables (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL).

    uvicorn bench.reference_relay:app --port 8001
"""

import json
from collections.abc import AsyncIterator
from typing import Any

from anthropic import AsyncAnthropic
from fastapi import FastAPI
from pydantic import BaseModel
from sse_starlette import EventSourceResponse

MODEL = "claude-sonnet-5-5"

app = FastAPI()
client = AsyncAnthropic(max_retries=0)


class Message(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    messages: list[Message]
    stream: bool = False
    max_tokens: int = 1024


@app.post("/chat", response_model=None)
async def chat(request: ChatRequest) -> dict[str, Any] | EventSourceResponse:
    messages: Any = [m.model_dump() for m in request.messages]
    if not request.stream:
        message = await client.messages.create(model=MODEL, max_tokens=request.max_tokens, messages=messages)
        return {
            "id": message.id,
            "model": message.model,
            "role": "assistant",
            "content": "".join(block.text for block in message.content if block.type == "text"),
            "stop_reason": message.stop_reason,
            "usage": {
                "input_tokens": message.usage.input_tokens,
                "output_tokens": message.usage.output_tokens,
            },
        }

    async def events() -> AsyncIterator[dict[str, str]]:
        async with client.messages.stream(
            model=MODEL, max_tokens=request.max_tokens, messages=messages
        ) as stream:
            async for event in stream:
                if event.type == "message_start":
                    start = {"type": "start", "id": event.message.id, "model": event.message.model}
                    yield {"event": "start", "data": json.dumps(start)}
                elif event.type == "text":
                    yield {"event": "delta", "data": json.dumps({"type": "delta", "text": event.text})}
            final = await stream.get_final_message()
        usage = {"input_tokens": final.usage.input_tokens, "output_tokens": final.usage.output_tokens}
        yield {
            "event": "end",
            "data": json.dumps({"type": "end", "stop_reason": final.stop_reason, "usage": usage}),
        }
        yield {"data": "[DONE]"}

    return EventSourceResponse(events())
