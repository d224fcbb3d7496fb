"""Regenerate the snmpsim recordings of tests/test_snmp.py: `python make_recordings.py`.

Each file is one state of a simulated device; its community is the file name without
`.snmprec`. Tests switch the community between polls of one check to make time pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SYS = "1.3.6.1.2.1.1"
IF_TABLE = "1.3.6.1.2.1.2.2.1"
IFX_TABLE = "1.3.6.1.2.1.31.1.1.1"
NIC = "Intel Corporation 82540EM Gigabit Ethernet Controller"
# laLoad.1 is text in UCD-SNMP-MIB; the Cisco temperature is a Gauge32
NAMED = [("1.3.6.1.4.1.2021.10.1.3.1", 4, "0.15"), ("1.3.6.1.4.1.9.9.13.1.3.1.3.1", 66, 42)]


def port(index: int, name: str | None, octets_in: int, octets_out: int, **more: Any) -> dict[str, Any]:
    return {"index": index, "name": name, "descr": more.pop("descr", NIC), "in": octets_in,
            "out": octets_out, **more}


def device(uptime: int, ports: list[dict[str, Any]], extra: list[tuple[str, int, Any]] | None = None,
           descr: str = "slawatch test router") -> str:
    rows: list[tuple[str, int, Any]] = [(f"{SYS}.1.0", 4, descr), (f"{SYS}.3.0", 67, uptime),
                                        ("1.3.6.1.2.1.2.1.0", 2, len(ports))]
    for p in ports:
        i = p["index"]
        rows += [(f"{IF_TABLE}.1.{i}", 2, i), (f"{IF_TABLE}.2.{i}", 4, p["descr"]),
                 (f"{IF_TABLE}.8.{i}", 2, p.get("oper", 1)),
                 (f"{IF_TABLE}.10.{i}", 65, p.get("in32", p["in"] % 2**32)),
                 (f"{IF_TABLE}.14.{i}", 65, p.get("in_errors", 0)),
                 (f"{IF_TABLE}.16.{i}", 65, p.get("out32", p["out"] % 2**32)),
                 (f"{IF_TABLE}.20.{i}", 65, p.get("out_errors", 0))]
        if p["name"] is not None:
            rows.append((f"{IFX_TABLE}.1.{i}", 4, p["name"]))
        if p.get("hc"):
            rows += [(f"{IFX_TABLE}.6.{i}", 70, p["in"]), (f"{IFX_TABLE}.10.{i}", 70, p["out"])]
    rows += extra or []
    rows.sort(key=lambda row: tuple(int(part) for part in row[0].split(".")))
    return "".join(f"{oid}|{tag}|{value}\n" for oid, tag, value in rows)


LO = port(1, "lo", 5000, 5000, descr="lo")
ETH1_DOWN = port(3, "eth1", 0, 0, oper=2)

RECORDINGS = {
    # 32-bit counters only, just below 2**32; eth1 is down(2)
    "router-t0": device(100000, [LO, port(2, "eth0", 2**32 - 296, 2**32 - 7296, in_errors=10), ETH1_DOWN], NAMED),
    # 30 s later both octet counters wrapped: +1000 bytes in (266.67 bit/s), +12296 out (3278.93 bit/s)
    "router-t1": device(103000, [LO, port(2, "eth0", 704, 5000, in_errors=13), ETH1_DOWN], NAMED),
    # 30 s later eth0 was renumbered to ifIndex 7 (no reboot): +3750 in (1000 bit/s), +75000 out (20000 bit/s)
    "router-moved": device(106000, [LO, port(2, "eth9", 0, 0, descr="eth9"), ETH1_DOWN,
                                    port(7, "eth0", 4454, 80000, in_errors=13)], NAMED),
    # rebooted: sysUpTime back to 15 s, counters restarted small, eth0 is ifIndex 5 now
    "router-reboot": device(1500, [LO, port(5, "eth0", 1000, 2000)], NAMED),
    # 30 s after the reboot: +30000 in (8000 bit/s), +3000 out (800 bit/s)
    "router-reboot-t1": device(4500, [LO, port(5, "eth0", 31000, 5000)], NAMED),
    # 64-bit counters beyond 2**32
    "switch-t0": device(200000, [port(1, "eth0", 10_000_000_000, 20_000_000_000, hc=True)],
                        descr="slawatch test switch"),
    # 60 s later: +750000 bytes in (100000 bit/s), +75000 out (10000 bit/s) in the 64-bit columns;
    # the 32-bit columns moved by 1 byte only, so a rate read from them would be plainly wrong
    "switch-t1": device(206000, [port(1, "eth0", 10_000_750_000, 20_000_075_000, hc=True,
                                      in32=10_000_000_001 % 2**32, out32=20_000_000_001 % 2**32)],
                        descr="slawatch test switch"),
    # up for 497 days: sysUpTime is about to wrap past 2**32 ticks
    "old-t0": device(2**32 - 1000, [port(1, "eth0", 10_000_000_000, 20_000_000_000, hc=True)]),
    # 30 s later: sysUpTime wrapped (no reboot); +750000 bytes in (200000 bit/s), +0 out
    "old-t1": device(2000, [port(1, "eth0", 10_000_750_000, 20_000_000_000, hc=True)]),
    # an old agent without ifXTable: its interfaces have an ifDescr and no ifName
    "legacy": device(300000, [port(1, None, 10, 20, descr="GigabitEthernet0/1")], descr="legacy"),
}

if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    for community, text in RECORDINGS.items():
        (here / f"{community}.snmprec").write_text(text)
