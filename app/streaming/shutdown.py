"""Shutdown as the streams see it: when the server is asked to stop, open streams get a grace
period to finish; past it they end with an error event instead of being cut silently when the
process manager kills the worker."""

import asyncio
import signal
from types import FrameType


class Draining:
    def __init__(self, grace: float, pause: float = 0.0) -> None:
        self.grace = grace
        # Seconds the worker keeps accepting after the signal (answering Connection: close and
        # /readyz 503) before the server's own handler stops it: time for a load balancer that
        # holds keep-alive connections here to let go of them, so that none is closed under a
        # request it is sending. 0 where the platform stops routing first (a preStop pause).
        self.pause = pause
        self.started = asyncio.Event()

    def watch_signals(self) -> None:
        """Chains onto the server's own SIGTERM/SIGINT handlers (uvicorn's, under gunicorn too),
        which are installed before the app's lifespan starts and keep doing their work."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(signum)

            def handler(sig: int, frame: FrameType | None, previous: object = previous) -> None:
                loop.call_soon_threadsafe(self.started.set)
                if callable(previous) and self.pause:
                    loop.call_soon_threadsafe(loop.call_later, self.pause, previous, sig, frame)
                elif callable(previous):
                    previous(sig, frame)

            try:
                signal.signal(signum, handler)
            except ValueError:  # not the main thread (an embedding server): no draining signal
                return

    async def grace_expired(self) -> None:
        await self.started.wait()
        await asyncio.sleep(self.grace)
