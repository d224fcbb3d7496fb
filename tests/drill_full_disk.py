"""Run by test_drills in a mount namespace on a small tmpfs: a spool with a backlog, the disk filled
to `leave` bytes, then the real agent daemon (exec'd, same pid) on that spool.

argv: FOLDER CONFIG AGENT_ID BACKLOG LEAVE_BYTES AGENT_BIN. Prints one JSON line (the spool's seed)
on stdout before the agent starts."""

import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path

from slawatch.agent.spool import Spool
from slawatch.collectors.reading import Reading

folder, config, agent, backlog, leave, agent_bin = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), \
    int(sys.argv[5]), sys.argv[6]
spool = Spool(folder / "spool.db", agent)  # the disk has room: the 4 MB reserve file is made
seed = spool.last_seq()
now = dt.datetime.now(dt.timezone.utc)
spool.append([Reading(agent=agent, check="tick", ts=now - dt.timedelta(seconds=backlog - i), status="up",
                      interval_s=1.0, latency_ms=1.0) for i in range(backlog)])
spool.close()
reserve = (folder / "spool.db.reserve").exists()
with open(folder / "filler", "wb") as filler:
    os.posix_fallocate(filler.fileno(), 0, shutil.disk_usage(folder).free - leave)
print(json.dumps({"seed": seed, "reserve": reserve, "free": shutil.disk_usage(folder).free}), flush=True)
os.execv(agent_bin, [agent_bin, "run", "-c", config])
