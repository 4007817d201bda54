"""A TCP proxy on the loopback that cuts one response in the middle of an event: a network drop
as a browser meets it (the connection ends, nothing else), with the service behind it none the wiser.

It forwards every connection as it is and records the head of each request. The response to the
first request whose line starts with `Cut.request` is cut right after the `count`-th `marker` in
it, so the client holds part of an event it never completes.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from dataclasses import dataclass, field

from fake_anthropic import free_port


@dataclass
class Cut:
    request: str  # the start of a request line, e.g. "GET /chat/streams/"
    marker: bytes = b"event: delta"
    count: int = 5
    chosen: bool = False  # the request whose response is cut has come
    forwarded: bytearray = field(default_factory=bytearray)  # what the cut response carried
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def last_complete_event_id(self) -> str | None:
        """The `id:` of the last event the client received whole: what it resumes after."""
        complete, _, _ = bytes(self.forwarded).rpartition(b"\n\n")
        ids = re.findall(rb"^id: ?(.*)$", complete, re.MULTILINE)
        return ids[-1].decode() if ids else None


class DroppingProxy:
    def __init__(self, target_port: int, cut: Cut) -> None:
        self.target_port = target_port
        self.cut = cut
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[str] = []  # the head of each request, in order
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def headers_of(self, request: str) -> list[dict[str, str]]:
        """The headers (names in lower case) of each request whose line starts with `request`."""
        return [
            {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines)
            }
            for first, *lines in (head.split("\r\n") for head in self.requests)
            if first.startswith(request)
        ]

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _shut(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets += [client, server]
            connection = _Connection()
            threading.Thread(target=self._upward, args=(client, server, connection), daemon=True).start()
            threading.Thread(target=self._downward, args=(server, client, connection), daemon=True).start()

    def _upward(self, client: socket.socket, server: socket.socket, connection: _Connection) -> None:
        head = b""  # a request's head so far: it may come in more than one read
        while data := _recv(client):
            # One request at a time per connection (no pipelining).
            if head or re.match(rb"[A-Z]+ /", data):
                head += data
                if b"\r\n\r\n" in head:
                    self._record(head.partition(b"\r\n\r\n")[0].decode("latin-1"), connection)
                    head = b""
            try:
                server.sendall(data)
            except OSError:
                break
        _shut(server)

    def _record(self, head: str, connection: _Connection) -> None:
        with self._lock:
            self.requests.append(head)
            if head.startswith(self.cut.request) and not self.cut.chosen:
                self.cut.chosen = connection.cut = True

    def _downward(self, server: socket.socket, client: socket.socket, connection: _Connection) -> None:
        while data := _recv(server):
            if connection.cut:
                data = self._until_the_cut(data)
            try:
                client.sendall(data)
            except OSError:
                break
            if self.cut.done.is_set() and connection.cut:
                _shut(client)
                _shut(server)
                return
        _shut(client)

    def _until_the_cut(self, data: bytes) -> bytes:
        cut = self.cut
        seen = bytes(cut.forwarded) + data
        position = -1
        for _ in range(cut.count):
            position = seen.find(cut.marker, position + 1)
            if position < 0:
                cut.forwarded += data
                return data
        keep = position + len(cut.marker) - len(cut.forwarded)
        cut.forwarded += data[:keep]
        cut.done.set()
        return data[:keep]


class _Connection:
    cut = False  # whether this connection carries the response to cut


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
