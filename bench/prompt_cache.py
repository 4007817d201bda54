"""What prompt caching saves on a long chat, in input tokens billed.

    uv run python -m bench.prompt_cache            # prints the table
    uv run python -m bench.prompt_cache --write    # and puts it in docs/benchmarks.md

A 20-turn chat as a frontend holds it (the whole history sent back on every turn, a 1,100-token
system prompt, answers of about 60 tokens) through the real service, in front of the fake
Anthropic API, whose prompt cache works as Anthropic documents it (written at the top-level
breakpoint, read by a later prompt that starts with the same bytes, nothing under 1,024 tokens).
Billed input is input + 1.25 × cache writes + 0.1 × cache reads (2 × writes with the 1-hour TTL),
in tokens: Anthropic's prices relative to one uncached input token.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.report import KEPT_BEGIN as BEGIN
from bench.report import KEPT_END as END
from fake_anthropic import FakeAnthropic, Reply, default_tokens, free_port

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
TURNS = 20
SYSTEM_PROMPT = " ".join(f"rule{i}" for i in range(1100))
WRITE_PRICE = {"5m": 1.25, "1h": 2.0, "off": 1.25}


def _billed(usage: dict[str, int], setting: str) -> float:
    return (
        usage["input_tokens"]
        + WRITE_PRICE[setting] * usage["cache_creation_input_tokens"]
        + 0.1 * usage["cache_read_input_tokens"]
    )


def chat(fake: FakeAnthropic, setting: str) -> tuple[float, int]:
    """Billed input tokens over the chat, and the prompt tokens it sent in all."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CHAT_"))}
    env |= {
        "ANTHROPIC_API_KEY": "bench-key-0123456789abcdef",
        "ANTHROPIC_BASE_URL": fake.url,
        "CHAT_PROMPT_CACHE": setting,
        "CHAT_LOG_LEVEL": "WARNING",
    }
    with tempfile.TemporaryDirectory() as cwd:  # away from any .env
        service = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)],
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.1)
            fake.prompt_cache.clear()
            history: list[dict[str, str]] = []
            billed, prompt = 0.0, 0
            with httpx.Client(base_url=url, timeout=30) as client:
                for turn in range(TURNS):
                    history.append({"role": "user", "content": f"Turn {turn}: and then what happened?"})
                    response = client.post("/chat", json={"messages": history, "system": SYSTEM_PROMPT})
                    response.raise_for_status()
                    body = response.json()
                    usage = body["usage"]
                    billed += _billed(usage, setting)
                    prompt += (
                        usage["input_tokens"]
                        + usage["cache_creation_input_tokens"]
                        + usage["cache_read_input_tokens"]
                    )
                    history.append({"role": "assistant", "content": body["content"]})
            return billed, prompt
        finally:
            service.terminate()
            service.wait(10)


def table() -> str:
    fake = FakeAnthropic(default=Reply.text(default_tokens(60)), record=0).start()
    try:
        rows = {setting: chat(fake, setting) for setting in ("off", "5m", "1h")}
    finally:
        fake.stop()
    off = rows["off"][0]
    lines = [
        f"### Prompt caching: a {TURNS}-turn chat",
        "",
        f"{TURNS} turns, a 1,100-token system prompt, answers of 60 tokens, the whole history sent on "
        "every turn (`python -m bench.prompt_cache`). Input tokens billed = input + cache writes × "
        "1.25 (× 2 for `1h`) + cache reads × 0.1.",
        "",
        "| `CHAT_PROMPT_CACHE` | prompt tokens sent | input tokens billed | vs off |",
        "|---|---:|---:|---:|",
    ]
    for setting, (billed, prompt) in rows.items():
        lines.append(f"| `{setting}` | {prompt:,} | {billed:,.0f} | {billed / off:.2f}× |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help="put the table in docs/benchmarks.md")
    args = parser.parse_args()
    text = table()
    print(text)
    if args.write:
        doc = DOC.read_text(encoding="utf-8")
        block = f"{BEGIN}\n{text}{END}\n"
        if BEGIN in doc:
            doc = doc[: doc.index(BEGIN)] + block + doc[doc.index(END) + len(END) + 1 :]
        else:
            doc = doc.rstrip("\n") + "\n\n" + block
        DOC.write_text(doc, encoding="utf-8")


if __name__ == "__main__":
    main()
