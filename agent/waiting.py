"""Waiting for an event with a deadline, safely cancellable."""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set (True) or `seconds` have passed (False).

    asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that comes
    as the event is set, and a daemon's shutdown would then wait for the waiting task forever.
    """
    try:
        async with asyncio.timeout(max(0.0, seconds)):
            await event.wait()
    except TimeoutError:  # the deadline came first: that is the answer, not a failure
        return False
    return True
