"""The /chat and /chat/ui suites once more, with resumption on (CHAT_REDIS_URL): a resumable answer
must behave as any other for a client that never drops.

The tests are test_chat.py's and test_chat_ui.py's own, collected here again with the services
started against the session's Redis.
"""

from collections.abc import Callable

import httpx
import pytest

from fake_anthropic import FakeAnthropic, Reply
from tests.conftest import FRONTEND_ENV, RedisServer, Service, process_backend_only
from tests.service_client import read_stream
from tests.test_chat import *  # noqa: F403
from tests.test_chat_ui import *  # noqa: F403
from tests.test_chat_ui import ui_body

# Resumption needs the service to reach Redis on 127.0.0.1, which a container cannot.
pytestmark = process_backend_only


@pytest.fixture(scope="module")
def start_service(start_service: Callable[..., Service], redis_server: RedisServer) -> Callable[..., Service]:
    def start(**overrides: str | None) -> Service:
        return start_service(**{"CHAT_REDIS_URL": redis_server.url, **overrides})

    return start


@pytest.fixture(scope="module")
def service(start_service: Callable[..., Service]) -> Service:
    return start_service()


@pytest.fixture(scope="module")
def frontend_service(start_service: Callable[..., Service]) -> Service:
    return start_service(**FRONTEND_ENV)


@pytest.fixture(scope="module")
def resumption_on() -> bool:
    return True


def test_these_suites_ran_with_resumption_on(client: httpx.Client, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.text(["Kept", " for", " later"]))
    with client.stream("POST", "/chat/ui", json=ui_body(id="suites-check")) as response:
        answer = read_stream(response)

    with client.stream("GET", "/chat/ui/suites-check/stream") as response:
        assert response.status_code == 200
        replayed = read_stream(response)

    assert [event.data for event in replayed.events] == [event.data for event in answer.events]
