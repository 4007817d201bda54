"""What a wire format is: one encoder over the answer's neutral sequence."""

from typing import Protocol

from app.chat.answer import Compacted, End, Handover, Pieces, Start


class StreamEncoder(Protocol):
    """One wire format. One instance per stream, so it may keep state (open parts, ids).

    `error` must not depend on that state being consistent: its frames are also prepared up
    front, as the farewell sent when shutdown's grace period ends a stream."""

    headers: dict[str, str]

    def start(self, start: Start) -> bytes: ...

    def pieces(self, pieces: Pieces) -> bytes: ...

    def handover(self, handover: Handover) -> bytes: ...

    def compaction(self, compacted: Compacted) -> bytes: ...

    def end(self, end: End) -> bytes: ...

    def error(self, error_type: str, message: str) -> bytes: ...
