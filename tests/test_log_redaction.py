"""The API key never reaches the logs, however it was pasted; a placeholder key mangles nothing."""

import subprocess
import sys
from collections.abc import Callable

import httpx

from fake_anthropic import FakeAnthropic
from tests.conftest import ROOT, Service
from tests.service_client import chat_body

KEY = "sk-ant-api03-Zq8vN2xW5cR7tY1uI4oP6aS9dF3gH0jK-redaction-probe"


def test_a_key_pasted_with_a_trailing_newline_is_not_logged_even_at_debug_level(
    start_service: Callable[..., Service],
) -> None:
    # The SDK refuses the header; its DEBUG line printed the failing call's locals: the key, with
    # its newline escaped, and the request options with the prompt.
    service = start_service(ANTHROPIC_API_KEY=KEY + "\n", CHAT_LOG_LEVEL="DEBUG", CHAT_RETRY_ATTEMPTS="1")

    response = httpx.post(f"{service.url}/chat", json=chat_body("my secret prompt"), timeout=10)

    assert response.status_code == 502
    text = service.log.text()
    assert service.log.lines()
    assert KEY not in text
    assert "my secret prompt" not in text


# Logs the SDK's own error for a key with a trailing newline (its default transport puts the key
# in the message), through the service's logging set-up.
_SDK_ERROR_LOGGED = """
import asyncio, logging, sys
import anthropic
from app.observability.log import configure_logging

key, url = sys.argv[1] + "\\n", sys.argv[2]
configure_logging("INFO", "json", key)

async def main():
    client = anthropic.AsyncAnthropic(api_key=key, base_url=url, max_retries=0)
    try:
        await client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    except anthropic.APIConnectionError:
        logging.getLogger("app").exception("upstream failed")

asyncio.run(main())
"""


def test_the_key_is_scrubbed_from_an_sdk_error_that_quotes_it(fake: FakeAnthropic) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SDK_ERROR_LOGGED, KEY, fake.url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert "Illegal header value" in result.stdout, result.stdout + result.stderr
    assert "[REDACTED]" in result.stdout
    assert KEY not in result.stdout + result.stderr


def test_a_short_placeholder_key_mangles_no_log_line(start_service: Callable[..., Service]) -> None:
    service = start_service(ANTHROPIC_API_KEY="x")

    httpx.post(f"{service.url}/chat", json=chat_body(), headers={"X-Request-ID": "req-x-1"}, timeout=10)

    assert service.log.summary("req-x-1")["status"] == 401
    assert "[REDACTED]" not in service.log.text()
