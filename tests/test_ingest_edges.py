"""Ingest at its edges: a body aiohttp cannot decode is refused with a reason, not a 500; a batch
resent (or replayed altered) while its original waits in the same writer group is answered as if it
came after it."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from slawatch.agent.protocol import INGEST_PATH, Refused, new_batch_id, sign
from slawatch.watchdog.store import Conflict, Reader, Row, Stored
from slawatch.watchdog.writer import Writer

from .test_store import incoming, row
from .test_watchdog_ingest import counts
from .watchdog_peers import AGENT, KEY, Served, serving, write_config


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(write_config(tmp_path_factory.mktemp("edges"), settings='max_batch_size = "64KiB"')) as s:
        yield s


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_body_is_refused_with_a_reason(served: Served, encoding: str) -> None:
    """The signature is over the body as sent; aiohttp would decompress it first (and answer 500
    for one that is not compressed). Any signature will do: this comes before it is checked."""
    body = b"this is not compressed data" * 4
    headers = sign(KEY, AGENT, new_batch_id(), INGEST_PATH, body)
    headers["Slawatch-Signature"] = base64.b64encode(bytes(64)).decode()
    before = counts(served.database)
    answer = served.client.post(INGEST_PATH, body, headers | {"Content-Encoding": encoding})
    assert (answer.status, answer.body.get("code")) == (415, "unsupported-encoding"), (answer.status, answer.body)
    assert f"Content-Encoding '{encoding}' is not accepted" in answer.body["error"]
    assert counts(served.database) == before


async def _answers_of_one_group(path: Path, same_body: bool) -> list[Stored | BaseException]:
    """A batch and, right behind it in the writer's queue (so in one group), a second body under its
    batch id that the parser refuses, as when the agent resends it with its clock set back since."""
    writer = Writer(path)
    try:
        release = threading.Event()
        held = asyncio.ensure_future(writer.call(lambda store: release.wait(30)))  # the group forms behind it
        original = incoming([row(1, 0)], batch="b-1")

        def refuse() -> tuple[list[Row], list[tuple[int, int]]]:
            raise Refused(422, "readings[0]: taken after the batch was sent")

        twin = dataclasses.replace(original, body=original.body if same_body else original.body + b" ",
                                   body_sha256=b"", rows=(), parse=refuse)
        answers = [asyncio.ensure_future(writer.submit(original)), asyncio.ensure_future(writer.submit(twin))]
        await asyncio.sleep(0.05)
        release.set()
        await held
        return list(await asyncio.gather(*answers, return_exceptions=True))
    finally:
        writer.close()


async def test_a_resend_in_its_originals_group_gets_its_acknowledgement(tmp_path: Path) -> None:
    """Its readings now "taken after it was sent" (a clock set back), the resend is refused by the
    parser; its original, in the same group, is stored by it: the resend gets its acknowledgement,
    as a resend of a batch stored in an earlier group does."""
    first, again = await _answers_of_one_group(tmp_path / "w.db", same_body=True)
    assert isinstance(first, Stored) and first.ack["stored"] == 1, first
    assert again == Stored(first.ack, resend=True)


async def test_an_altered_replay_in_its_originals_group_is_a_conflict(tmp_path: Path) -> None:
    first, again = await _answers_of_one_group(tmp_path / "w.db", same_body=False)
    assert isinstance(first, Stored) and not first.resend, first
    assert isinstance(again, Conflict), again
    with Reader(tmp_path / "w.db") as reader:
        assert reader.count("evidence") == 1 and reader.count("readings") == 1


async def test_a_database_failure_while_answering_a_refused_body_fails_that_batch_not_the_writer(
        tmp_path: Path) -> None:
    """A refused body is looked up among the stored batches (a resend gets its acknowledgement):
    that look-up failing (disk I/O) answers the batch with the failure (503 to the agent), and the
    writer goes on; were it to stop, later batches would get an error at once, not wait forever."""
    writer = Writer(tmp_path / "w.db")
    try:
        def refuse() -> tuple[list[Row], list[tuple[int, int]]]:
            raise Refused(422, "readings[0]: taken after the batch was sent")

        def broken(*_: object) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        stored_batch, writer.store.stored_batch = writer.store.stored_batch, broken  # type: ignore[method-assign]
        refused = dataclasses.replace(incoming([row(1, 0)], batch="b-1"), rows=(), parse=refuse)
        answer = await asyncio.wait_for(asyncio.gather(writer.submit(refused), return_exceptions=True), 10)
        assert isinstance(answer[0], sqlite3.OperationalError)
        writer.store.stored_batch = stored_batch  # type: ignore[method-assign]
        later = await asyncio.wait_for(writer.submit(incoming([row(2, 30_000)], batch="b-2")), 10)
        assert isinstance(later, Stored) and later.ack["stored"] == 1
    finally:
        writer.close()
    stopped = Writer(tmp_path / "w.db")
    stopped.close()
    with pytest.raises(RuntimeError, match="the store writer has stopped"):
        await asyncio.wait_for(stopped.submit(incoming([row(3, 60_000)], batch="b-3")), 10)
