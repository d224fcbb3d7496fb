"""Run by test_spool in a mount namespace on a tiny tmpfs: fills the disk through the spool, again
and again (argv[2] readings), then forms a batch."""

import datetime as dt
import json
import sys

from slawatch.agent.spool import Spool
from slawatch.collectors.reading import Reading

folder = sys.argv[1]
spool = Spool(f"{folder}/spool.db", "probe", reserve_bytes=1536 * 1024)
t0 = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
seqs = []
for i in range(int(sys.argv[2])):
    reading = Reading(agent="probe", check="web", ts=t0 + dt.timedelta(seconds=i), status="down",
                      interval_s=30.0, error="x" * 1000)
    seqs += [r.seq for r in spool.append([reading])]
batch = spool.next_batch(100)  # the full disk left a spool that still ships
kept = {row[0] for row in spool._db.execute("SELECT seq FROM reading")}
ranges = spool._db.execute("SELECT first_seq, last_seq FROM dropped").fetchall()
lost = {seq for first, last in ranges for seq in range(first, last + 1)}
print(json.dumps({"appended": len(seqs), "kept": len(kept), "lost": len(lost), "oldest_lost": min(lost, default=0),
                  "first": seqs[0], "complete": kept | lost == set(seqs), "disjoint": not kept & lost,
                  "batch": batch is not None and batch.count == 100}))
