"""Stopping a container behind a load balancer: it says it is going before it goes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import ServiceContainer

pytestmark = pytest.mark.container


def test_during_the_drain_pause_readiness_fails_and_connections_close_then_it_stops(
    start_container: Callable[..., ServiceContainer],
) -> None:
    container = start_container(CHAT_DRAIN_PAUSE="2")
    with httpx.Client(base_url=container.url, timeout=2) as client:
        before = client.get("/readyz")
        stopping = threading.Thread(target=container.docker.stop, kwargs={"timeout": 20})
        stopped_at = time.monotonic()
        stopping.start()
        answers = []
        while time.monotonic() - stopped_at < 10:
            try:
                response = client.get("/readyz")
            except httpx.TransportError:
                break
            answers.append((response.status_code, response.headers.get("connection"), time.monotonic()))
            time.sleep(0.1)
        stopping.join(20)

    assert (before.status_code, before.headers.get("connection")) == (200, None)
    draining = [answer for answer in answers if answer[:2] == (503, "close")]
    assert answers[-1][:2] == (503, "close")
    # Served for about the pause (2 s) after the signal, then no more.
    assert draining[-1][2] - stopped_at > 1.5
    assert answers[-1][2] - stopped_at < 4
