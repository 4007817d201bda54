"""The one AsyncAnthropic client of a process, as the service configures it."""

import anthropic
import httpx2

from app.config import Settings


def anthropic_client(settings: Settings) -> anthropic.AsyncAnthropic:
    timeout = httpx2.Timeout(
        settings.read_timeout, connect=settings.connect_timeout, pool=settings.connect_timeout
    )
    return anthropic.AsyncAnthropic(
        api_key=settings.anthropic_api_key.get_secret_value(),
        base_url=settings.anthropic_base_url,
        # Retries are ours (tenacity), so that the SDK's would not multiply them.
        max_retries=0,
        timeout=timeout,
        # The SDK's spans stay off, traces on or not. The service reads Anthropic's raw event
        # stream, so the SDK's span (one per attempt, with our retries) records the request and
        # its HTTP status but none of the answer: no id, usage, finish reason or time to first
        # chunk, which upstream/spans.py records. On, it would be a second client span per
        # attempt, replace the attempt's traceparent with its own span's, and cost about 250 µs
        # of CPU per call (measured: 945 -> 1,199 µs per streamed call of 50 tokens).
        open_telemetry=False,
        # aiohttp measured at about half the CPU per streamed token of the default transport.
        # Its pool must be given a size: left unset it holds 100 connections, and the 101st
        # stream waits for a free one.
        http_client=anthropic.DefaultAioHttpClient(
            timeout=timeout, limits=httpx2.Limits(max_connections=settings.max_upstream_connections)
        ),
    )
