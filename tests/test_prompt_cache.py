"""Prompt caching: a long chat stops paying for its whole history on every turn."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from fake_anthropic import FakeAnthropic, Reply
from tests.conftest import Service, process_backend_only
from tests.service_client import chat_body, read_stream

# About 1,100 tokens of system prompt (over the cache's minimum), as product instructions often are.
LONG_SYSTEM_PROMPT = " ".join(f"rule{i}" for i in range(1100))
TURNS = 12


def billed_input(usage: dict[str, int]) -> float:
    """Input cost in tokens at the 5-minute cache's prices: writes 1.25×, reads 0.1×."""
    return (
        usage["input_tokens"]
        + 1.25 * usage["cache_creation_input_tokens"]
        + 0.1 * usage["cache_read_input_tokens"]
    )


def converse(url: str, fake: FakeAnthropic, turns: int) -> list[dict[str, int]]:
    """A chat as a frontend holds it: each turn sends the whole history back. Usage per turn."""
    history: list[dict[str, str]] = []
    usages = []
    with httpx.Client(base_url=url, timeout=15) as client:
        for turn in range(turns):
            history.append({"role": "user", "content": f"Question number {turn}: tell me more."})
            fake.enqueue(Reply.text([f"Answer {turn}", " with", " a", " few", " words."]))
            response = client.post("/chat", json={"messages": history, "system": LONG_SYSTEM_PROMPT})
            assert response.status_code == 200
            body = response.json()
            usages.append(body["usage"])
            history.append({"role": "assistant", "content": body["content"]})
    return usages


@pytest.fixture
def uncached(start_service: Callable[..., Service]) -> Service:
    return start_service(CHAT_PROMPT_CACHE="off")


def test_a_long_chat_reads_its_history_from_the_cache_and_costs_under_half(
    service: Service, uncached: Service, fake: FakeAnthropic
) -> None:
    cached_usage = converse(service.url, fake, TURNS)
    fake.prompt_cache.clear()
    uncached_usage = converse(uncached.url, fake, TURNS)

    assert cached_usage[0]["cache_read_input_tokens"] == 0
    assert cached_usage[0]["cache_creation_input_tokens"] > 1000
    assert all(usage["cache_read_input_tokens"] > 1000 for usage in cached_usage[1:])
    cached_cost = sum(billed_input(usage) for usage in cached_usage)
    uncached_cost = sum(billed_input(usage) for usage in uncached_usage)
    print(f"\n12-turn chat, input tokens billed: {cached_cost:.0f} cached, {uncached_cost:.0f} uncached")
    assert cached_cost < uncached_cost / 2
    assert all(usage["cache_read_input_tokens"] == 0 for usage in uncached_usage)


@process_backend_only  # a service per setting; the body for each is a unit test (test_request_body.py)
@pytest.mark.parametrize(
    ("setting", "sent"),
    [("5m", {"type": "ephemeral"}), ("1h", {"type": "ephemeral", "ttl": "1h"}), ("off", None)],
)
def test_the_cache_setting_reaches_upstream(
    start_service: Callable[..., Service], fake: FakeAnthropic, setting: str, sent: dict[str, Any] | None
) -> None:
    service = start_service(CHAT_PROMPT_CACHE=setting)

    httpx.post(f"{service.url}/chat", json=chat_body(), timeout=15)

    assert fake.received[-1].body.get("cache_control") == sent


def test_the_stream_end_and_the_log_carry_the_cache_figures(service: Service, fake: FakeAnthropic) -> None:
    history = [{"role": "user", "content": "Hello"}]
    body = {"messages": history, "system": LONG_SYSTEM_PROMPT, "stream": True}
    with httpx.Client(base_url=service.url, timeout=15) as client:
        written = client.post("/chat", json={**body, "stream": False}).json()["usage"]  # the cache write
        with client.stream("POST", "/chat", json=body) as response:
            stream = read_stream(response)
            request_id = response.headers["x-request-id"]

    usage = stream.events[-2].json["usage"]
    assert written["cache_creation_input_tokens"] > 1000
    assert usage["cache_read_input_tokens"] == written["cache_creation_input_tokens"]  # the same prompt
    assert usage["cache_creation_input_tokens"] == 0
    summary = service.log.summary(request_id)
    assert summary["cache_read_input_tokens"] == usage["cache_read_input_tokens"]
    assert summary["cache_creation_input_tokens"] == usage["cache_creation_input_tokens"]


def test_turn_after_turn_the_prompt_starts_with_the_same_bytes(
    client: httpx.Client, fake: FakeAnthropic
) -> None:
    first = [{"role": "user", "content": "  Spaces  and\ttabs stay as they are.  "}]
    client.post("/chat", json={"messages": first, "system": " Be brief. "})
    second = [*first, {"role": "assistant", "content": "Ok."}, {"role": "user", "content": "More?"}]
    client.post("/chat", json={"messages": second, "system": " Be brief. "})

    earlier, later = fake.received[-2].body, fake.received[-1].body
    assert later["system"] == earlier["system"] == " Be brief. "
    assert later["messages"][: len(first)] == earlier["messages"] == first
