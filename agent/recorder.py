"""Readings into the spool by group commit: one transaction for all that arrived meanwhile.

A synchronous (fsync'ed) commit per reading would cost the agent most of its CPU at thousands of
checks a minute; while one commit runs, the next readings gather and go in the next one. A
reading counts as taken only when `record` returns, i.e. after its commit.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slawatch.collectors.reading import Reading

from .shipper import SpoolAccess

log = logging.getLogger(__name__)

# At most ten synchronous commits a second, each with whatever arrived in the meantime.
GATHER_S = 0.1
GATHER_MAX = 500


class Recorder:
    """The single writer of the spool."""

    def __init__(self, spool: SpoolAccess) -> None:
        self._spool = spool
        self._waiting: list[tuple[Reading, asyncio.Future[None]]] = []
        self._arrived = asyncio.Event()
        self.committed = 0

    async def record(self, reading: Reading) -> None:
        """Return once the reading is committed; raise if the spool could not store it."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((reading, done))
        self._arrived.set()
        await asyncio.shield(done)  # a cancelled caller must not cancel the commit of others

    async def run(self) -> None:
        """Commit whatever has arrived, until cancelled; then commit what is left."""
        try:
            while True:
                await self._arrived.wait()
                if len(self._waiting) < GATHER_MAX:
                    await asyncio.sleep(GATHER_S)  # let the next readings join this commit
                await self._commit()
        finally:
            await asyncio.shield(self._last_commit())

    async def _last_commit(self) -> None:
        """At shutdown: one attempt for what still waits; a failure is logged with the count."""
        batch, self._waiting = self._waiting, []
        if not batch:
            return
        job = asyncio.ensure_future(self._spool.call(self._spool.spool.append, [r for r, _ in batch]))
        await asyncio.wait([job])
        self._settle(batch, job)

    async def _commit(self) -> None:
        self._arrived.clear()
        batch, self._waiting = self._waiting, []
        if not batch:
            return
        readings = [reading for reading, _ in batch]
        pause = 1.0
        while True:
            job = asyncio.ensure_future(self._spool.call(self._spool.spool.append, readings))
            try:
                await asyncio.shield(job)  # a shutdown must not cancel a commit under way
                break
            except asyncio.CancelledError:
                await asyncio.wait([job])
                self._settle(batch, job)
                raise
            except Exception as exc:  # locked or full: the readings stay here and are tried again
                log.error("event=spool-write-failed readings=%d error=%r retry_in_s=%g", len(batch), exc, pause)
                try:
                    await asyncio.sleep(pause)
                except asyncio.CancelledError:
                    self._waiting[:0] = batch  # the last commit at shutdown tries them once more
                    raise
                pause = min(30.0, pause * 2)
        self._settle(batch, job)

    def _settle(self, batch: list[tuple[Reading, asyncio.Future[None]]], job: asyncio.Future[Any]) -> None:
        """Tell each waiting caller how its commit went."""
        failure = job.exception() if not job.cancelled() else asyncio.CancelledError()
        if failure is None:
            self.committed += len(batch)
        else:
            log.error("event=readings-lost readings=%d error=%r", len(batch), failure)
        for _, done in batch:
            if done.done():
                continue
            if failure is None:
                done.set_result(None)
            else:
                done.set_exception(failure)
