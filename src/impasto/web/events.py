"""The event bus: job events from worker threads to the asyncio subscribers behind SSE streams.

Events are plain JSON-ready dicts (full job views, see :mod:`impasto.web.views`). A subscription
follows one job (every progress update) or, with topic ``None``, all jobs (status and queue
changes). Publishing is thread-safe and never blocks: events reach a subscriber's queue through
``loop.call_soon_threadsafe``, and a slow reader loses old events, never the newest state.
:meth:`EventBus.close` ends every stream (server shutdown), so no open browser tab holds the
server up.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["EventBus", "Subscription", "StreamClosed"]

_CLOSE = object()


class StreamClosed(Exception):
    """The bus was closed: the stream must end."""


class Subscription:
    """An asyncio queue of events, filled from any thread.

    Args:
        topic: a job id, or None for the events of all jobs.
        loop: the event loop of the reader.
        maxsize: events kept; the oldest is dropped when full.
    """

    def __init__(self, topic: str | None, loop: asyncio.AbstractEventLoop, maxsize: int = 64):
        self.topic = topic
        self.loop = loop
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=maxsize)

    def push(self, event: Any) -> None:
        """Queue an event (thread-safe; dropped if the loop is gone)."""
        try:
            self.loop.call_soon_threadsafe(self._put, event)
        except RuntimeError:
            pass

    def _put(self, event: Any) -> None:
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(event)

    async def get(self, timeout: float) -> dict[str, Any] | None:
        """The next event, or None after ``timeout`` seconds without one.

        Raises:
            StreamClosed: the bus was closed.
        """
        try:
            event = await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None
        if event is _CLOSE:
            raise StreamClosed
        return event


class EventBus:
    """Publish/subscribe of job events by topic (job id) plus the all-jobs topic ``None``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str | None, set[Subscription]] = {}
        self._closed = False

    def subscribe(self, topic: str | None) -> Subscription:
        """A new subscription; call from the event loop's thread. After :meth:`close` it is
        closed at once."""
        sub = Subscription(topic, asyncio.get_running_loop())
        with self._lock:
            if self._closed:
                sub.push(_CLOSE)
            else:
                self._subs.setdefault(topic, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.get(sub.topic, set()).discard(sub)

    def publish(self, event: dict[str, Any], topics: Iterable[str | None]) -> None:
        """Send ``event`` to the subscribers of each of ``topics`` (thread-safe)."""
        with self._lock:
            subs = [s for t in set(topics) for s in self._subs.get(t, ())]
        for sub in subs:
            sub.push(event)

    def close(self) -> None:
        """End every open stream, and any opened later (thread-safe; signal-handler safe)."""
        with self._lock:
            self._closed = True
            subs = [s for group in self._subs.values() for s in group]
            self._subs.clear()
        for sub in subs:
            sub.push(_CLOSE)

    def reopen(self) -> None:
        """Accept subscriptions again (an app started again after a stop)."""
        with self._lock:
            self._closed = False
