"""The fake's own word that a caller left: the tests that a closed answer stops Anthropic rely on it."""

import json
import socket
import struct

from fake_anthropic import FakeAnthropic, Reply
from tests.conftest import API_KEY


def streaming_request(fake: FakeAnthropic) -> bytes:
    body = json.dumps(
        {
            "model": "claude-sonnet-5-5",
            "max_tokens": 100,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
    ).encode()
    host, port = fake.url.removeprefix("http://").split(":")
    return (
        f"POST /v1/messages HTTP/1.1\r\nHost: {host}:{port}\r\nx-api-key: {API_KEY}\r\n"
        f"anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body


def test_a_caller_that_resets_the_connection_mid_answer_is_gone(fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.text(["word "] * 100, interval=0.02))
    host, port = fake.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as caller:
        caller.sendall(streaming_request(fake))
        assert caller.recv(4096).startswith(b"HTTP/1.1 200")
        # Closing with the answer's bytes unread: the kernel sends RST, not FIN, as when the SDK
        # closes a response it stopped reading.
        caller.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    assert fake.wait_for(lambda: fake.received[-1].client_gone, timeout=2)
    assert not fake.received[-1].finished
