"""The store's one writer: a thread that commits queued batches, a group per transaction.

Handlers hand over authenticated, parsed batches and await the acknowledgement; while one group
commits, the next one queues up, so a burst of agents costs one fsync per group, not per batch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from slawatch.agent.protocol import Refused

from .store import Conflict, Incoming, Store, Stored

log = logging.getLogger(__name__)

T = TypeVar("T")
GROUP_MAX = 64  # batches per transaction at most
GC_YOUNG = 20_000  # allocations between young-generation collections (Python's default: 700)


def tune_gc() -> None:
    """For the daemon: a group of batches allocates a few objects per reading, which die at its commit.
    Collected every 700 allocations, they outlive two collections and reach the old generation, whose
    full collections walk every cached series and tail: ~15 % of the daemon's CPU under load. Collected
    less often, they die young. (Process-wide, and only ever raised.)"""
    threshold = gc.get_threshold()
    if threshold[0] < GC_YOUNG:
        gc.set_threshold(GC_YOUNG, *threshold[1:])


class Writer:
    """Owns the Store; everything that writes goes through `submit` or `call`."""

    def __init__(self, path: str | Path) -> None:
        self.store = Store(path)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()
        self.groups = 0

    async def submit(self, batch: Incoming) -> Stored:
        """Store `batch`; raise what storing it raised (Conflict for a changed resend).

        A batch is stored even when its sender stops waiting (a resend gets the stored acknowledgement),
        so it needs no cancellable concurrent future: a group's answers go to the event loop at once.
        """
        if not self.alive():
            raise RuntimeError("the store writer has stopped")
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Stored] = loop.create_future()
        self._queue.put((batch, _Waiter(loop, answer)))
        return await answer

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
            if not isinstance(item[0], Incoming):
                self._call(*_claim(item))
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
                if not isinstance(following[0], Incoming):
                    self._commit(group)
                    group = []
                    self._call(*_claim(following))
                    continue
                group.append(following)
            if group:
                self._commit(group)
            if stop:
                return

    def _commit(self, group: list[tuple[Incoming, _Waiter]]) -> None:
        answers: list[tuple[_Waiter, Stored | BaseException]] = []
        kept: list[tuple[Incoming, _Waiter]] = []
        twins: list[_Twin] = []  # refused bodies under the batch id of one earlier in the group
        try:
            for batch, waiter in group:
                if self._parsed(batch, waiter, answers, kept, twins):
                    kept.append((batch, waiter))
            if not kept:
                return
            try:
                results = self.store.store([batch for batch, _ in kept])
            except Exception as exc:  # the whole transaction failed: nothing of the group is stored
                log.exception("event=store-commit-failed batches=%d", len(kept))
                answers += [(waiter, exc) for _, waiter in kept]
                answers += [(twin.waiter, exc) for twin in twins]
                return
            self.groups += 1
            answers += [(waiter, result) for (_, waiter), result in zip(kept, results)]
            for twin in twins:  # as if sent after the original: its acknowledgement, or a conflict
                original = results[twin.index]
                if isinstance(original, Stored):
                    answers.append((twin.waiter, Stored(original.ack, resend=True) if twin.same_body else
                                    Conflict.of(kept[twin.index][0].batch)))
                else:
                    answers.append((twin.waiter, original if isinstance(original, Conflict) else twin.refused))
        except Exception as exc:  # a fault of its own: the group's batches not answered yet get it; the writer goes on
            log.exception("event=store-group-failed batches=%d", len(group))
            answered = {id(waiter) for waiter, _ in answers}
            answers += [(waiter, exc) for _, waiter in group if id(waiter) not in answered]
        finally:
            _answer(answers)

    def _parsed(self, batch: Incoming, waiter: _Waiter, answers: list[tuple[_Waiter, Stored | BaseException]],
                kept: list[tuple[Incoming, _Waiter]], twins: list[_Twin]) -> bool:
        """Parse a batch that came as a body; a refused one is answered (in `answers`, or in `twins`
        when its batch id is `kept` earlier in the group) and left out."""
        if batch.parse is None:
            return True
        try:
            batch.rows, batch.dropped = batch.parse()
        except Exception as exc:
            if not isinstance(exc, Refused):  # a body our parser chokes on is still the sender's problem
                log.exception("event=parse-failed agent=%s batch=%s", batch.agent, batch.batch)
                exc = Refused(422, f"the body could not be read as readings ({type(exc).__name__})")
            # A resend of a stored batch gets its acknowledgement, whatever its body would be refused
            # for now: readings taken "after" a send time that a clock set back since signed anew. Its
            # original may be stored already, or about to be, in this group.
            earlier = next((i for i, (other, _) in enumerate(kept)
                            if (other.agent, other.batch) == (batch.agent, batch.batch)), None)
            if earlier is not None:
                twins.append(_Twin(waiter, earlier, kept[earlier][0].body_sha256 == batch.body_sha256, exc))
                return False
            try:
                stored = self.store.stored_batch(batch.agent, batch.batch)
            except Exception as failed:  # the database: the sender tries again later (503)
                log.exception("event=store-lookup-failed agent=%s batch=%s", batch.agent, batch.batch)
                answers.append((waiter, failed))
                return False
            if stored is None:
                answers.append((waiter, exc))
            elif stored.body_sha256 != batch.body_sha256:  # a conflict, valid or not
                answers.append((waiter, Conflict.of(batch.batch)))
            else:
                answers.append((waiter, stored.answer))
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


@dataclass(frozen=True)
class _Twin:
    """A refused body under the batch id of one kept earlier in the group (`index`): it is answered
    after the group as if sent after that one."""

    waiter: _Waiter
    index: int
    same_body: bool
    refused: BaseException


class _Waiter:
    """Where a batch's outcome goes: a future of the event loop its handler awaits it on."""

    __slots__ = ("loop", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Stored]) -> None:
        self.loop, self.future = loop, future


def _answer(answers: list[tuple[_Waiter, Stored | BaseException]]) -> None:
    """Hand the outcomes to their event loops, one wake-up per loop rather than one per batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Stored], Stored | BaseException]]] = {}
    for waiter, outcome in answers:
        by_loop.setdefault(waiter.loop, []).append((waiter.future, outcome))
    for loop, outcomes in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, outcomes)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass


def _settle(outcomes: list[tuple[asyncio.Future[Stored], Stored | BaseException]]) -> None:
    for future, outcome in outcomes:
        if future.done():
            continue  # its sender stopped waiting; a resend gets the stored acknowledgement
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

