"""Readings into the spool by group commit: one transaction for all that arrived meanwhile.

A synchronous (fsync'ed) commit per reading would cost the agent most of its CPU at thousands of
checks a minute; while one commit runs, the next readings gather and go in the next one. A
reading counts as taken only when `record` returns, i.e. after its commit.
"""

from __future__ import annotations

import asyncio
import logging

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
            await asyncio.shield(self._commit())

    async def _commit(self) -> None:
        self._arrived.clear()
        batch, self._waiting = self._waiting, []
        if not batch:
            return
        try:
            await self._spool.call(self._spool.spool.append, [reading for reading, _ in batch])
        except Exception as exc:  # the spool's own error (disk, permissions): reported to each caller
            log.error("event=spool-write-failed readings=%d error=%r", len(batch), exc)
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        self.committed += len(batch)
        for _, done in batch:
            if not done.done():
                done.set_result(None)
