"""The store's one writer: a thread that commits queued batches, a group per transaction.

Handlers hand over authenticated, parsed batches and await the acknowledgement; while one group
commits, the next one queues up, so a burst of agents costs one fsync per group, not per batch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from slawatch.agent.protocol import Refused

from .store import Conflict, Incoming, Store, Stored

log = logging.getLogger(__name__)

T = TypeVar("T")
GROUP_MAX = 64  # batches per transaction at most


class Writer:
    """Owns the Store; everything that writes goes through `submit` or `call`."""

    def __init__(self, path: str | Path) -> None:
        self.store = Store(path)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()
        self.groups = 0

    async def submit(self, batch: Incoming) -> Stored:
        """Store `batch`; raise what storing it raised (Conflict for a changed resend)."""
        future: concurrent.futures.Future[Stored] = concurrent.futures.Future()
        self._queue.put((batch, future))
        return await asyncio.wrap_future(future)

    async def call(self, function: Callable[[Store], T]) -> T:
        """Run `function(store)` on the writer thread, between groups."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((function, future))
        return await asyncio.wrap_future(future)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        """Store what is queued, then stop and close the database."""
        self._queue.put(None)
        self._thread.join()
        self.store.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            item = _claim(item)
            if not isinstance(item[0], Incoming):
                self._call(*item)
                continue
            group = [item]
            stop = False
            while len(group) < GROUP_MAX:
                try:
                    following = self._queue.get_nowait()
                except queue.Empty:
                    break
                if following is None:
                    stop = True
                    break
                following = _claim(following)
                if not isinstance(following[0], Incoming):
                    self._commit(group)
                    group = []
                    self._call(*following)
                    continue
                group.append(following)
            if group:
                self._commit(group)
            if stop:
                return

    def _commit(self, group: list[tuple[Incoming, concurrent.futures.Future[Stored] | None]]) -> None:
        group = [item for item in group if self._parsed(*item)]
        if not group:
            return
        try:
            results = self.store.store([batch for batch, _ in group])
        except Exception as exc:  # the whole transaction failed: nothing of the group is stored
            log.exception("event=store-commit-failed batches=%d", len(group))
            for _, future in group:
                if future is not None:
                    future.set_exception(exc)
            return
        self.groups += 1
        for (_, future), result in zip(group, results):
            if future is None:
                continue  # its sender stopped waiting; a resend gets the stored acknowledgement
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    def _parsed(self, batch: Incoming, future: concurrent.futures.Future[Stored] | None) -> bool:
        """Parse a batch that came as a body; a refused one is answered here and left out."""
        if batch.parse is None:
            return True
        try:
            batch.rows, batch.dropped = batch.parse()
        except Exception as exc:
            if not isinstance(exc, Refused):  # a body our parser chokes on is still the sender's problem
                log.exception("event=parse-failed agent=%s batch=%s", batch.agent, batch.batch)
                exc = Refused(422, f"the body could not be read as readings ({type(exc).__name__})")
            stored = self.store.stored_body(batch.agent, batch.batch)
            if stored is not None and stored != batch.body_sha256:  # a replay is a conflict, valid or not
                exc = Conflict(f"batch {batch.batch} was already stored with another body")
            if future is not None:
                future.set_exception(exc)
            return False
        batch.parse = None
        return True

    def _call(self, function: Callable[[Store], Any], future: concurrent.futures.Future[Any] | None) -> None:
        if future is None:
            return  # nobody waits for it any more
        try:
            future.set_result(function(self.store))
        except Exception as exc:
            log.exception("event=store-task-failed task=%s", getattr(function, "__name__", function))
            future.set_exception(exc)


def _claim(item: tuple[Any, concurrent.futures.Future[Any]]) -> tuple[Any, concurrent.futures.Future[Any] | None]:
    """Mark the item's future running (so it can no longer be cancelled); None if it already was."""
    work, future = item
    return work, future if future.set_running_or_notify_cancel() else None

