"""Broken configurations and the exact messages users get for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from slawatch.config import ConfigError, load_agent, load_contract, load_watchdog

AGENT_HEAD = """\
[agent]
id = "probe"
spool = "spool.db"
key_file = "agent.key"

[watchdog]
url = "http://127.0.0.1:8470"
"""

CONTRACT_HEAD = """\
[contract]
id = "c1"
client = "Client"
provider = "Provider"
timezone = "Europe/Amsterdam"
"""

WATCHDOG_HEAD = """\
[watchdog]
database = "w.db"
contracts = "contracts"
"""

HASH = "scrypt:16384:8:1:4nGTNGoyCgGz1Oe/TheXog==:eXMc/bd9UYosrbed2+yHk85f66qgkQq/ivXkeeh5NRc="

GOOD_CONTRACT = CONTRACT_HEAD + """
[[service]]
id = "web"
checks = ["web"]
"""

# (name, kind, text, expected problem lines with the file shown as F)
CASES = [
    ("syntax: missing value", "agent", "[agent]\nid = \n", ["F:2:6: TOML syntax error: Invalid value"]),
    ("syntax: unclosed table header", "agent", 'a = 1\n[agent\n',
     ["F:2:7: TOML syntax error: Expected ']' at the end of a table declaration"]),
    ("syntax: unterminated string", "contract", '[contract]\nid = "c1\n',
     ["F:2:9: TOML syntax error: Illegal character '\\n'"]),
    ("syntax: table declared twice", "watchdog", "[watchdog]\n[watchdog]\n",
     ["F:2:10: TOML syntax error: Cannot declare ('watchdog',) twice"]),
    ("missing [agent]", "agent", '[watchdog]\nurl = "http://127.0.0.1:1"\n',
     ["F: agent: required key is missing ([agent]: this vantage point)"]),
    ("unknown top-level table", "agent", AGENT_HEAD + "[chek]\n",
     ['F:8: chek: unknown key "chek"; did you mean "check"?']),
    ("unknown key with suggestion", "agent", AGENT_HEAD + '[defaults]\nintervall = "30s"\n',
     ['F:9: defaults.intervall: unknown key "intervall"; did you mean "interval"?']),
    ("unknown key without suggestion", "agent", AGENT_HEAD + 'colour = "red"\n',
     ['F:8: watchdog.colour: unknown key "colour"; known keys here: url, ca_file, batch_size, batch_wait']),
    ("bad duration", "agent", AGENT_HEAD + '[[check]]\nid = "t"\ntype = "tcp"\nhost = "h"\nport = 1\n'
     'interval = "30 seconds"\n',
     ['F:13: check[0].interval: expected a duration like "30s", "5m", "2h", "1d" or "800ms", '
      'found "30 seconds"']),
    ("duration given as a number", "agent", AGENT_HEAD + "[defaults]\ntimeout = 10\n",
     ['F:9: defaults.timeout: expected a duration like "30s", "5m", "2h", "1d" or "800ms" '
      "(a quoted string), found 10"]),
    ("timeout longer than interval", "agent", AGENT_HEAD + '[[check]]\nid = "t"\ntype = "tcp"\n'
     'host = "h"\nport = 1\ninterval = "10s"\ntimeout = "20s"\n',
     ["F:14: check[0].timeout: expected a timeout of at most the check's interval (10s), found 20s"]),
    ("duplicate check ids", "agent", AGENT_HEAD + '[[check]]\nid = "t"\ntype = "tcp"\nhost = "h"\n'
     'port = 1\n[[check]]\nid = "t"\ntype = "tcp"\nhost = "h"\nport = 2\n',
     ['F:14: check[1].id: duplicate check id "t" (also check[0])']),
    ("check named as the agent's own readings", "agent", AGENT_HEAD + '[[check]]\nid = "agent.self"\n'
     'type = "tcp"\nhost = "h"\nport = 1\n',
     ['F:9: check[0].id: "agent.self" is the agent\'s own readings\' id: choose another']),
    ("batch wait over a minute", "agent", AGENT_HEAD + 'batch_wait = "5m"\n',
     ['F:8: watchdog.batch_wait: expected a duration of at most 1m, found "5m"']),
    ("batch wait the watchdog would take for silence", "agent", AGENT_HEAD + 'batch_wait = "30s"\n'
     '[[check]]\nid = "t"\ntype = "tcp"\nhost = "h"\nport = 1\ninterval = "10s"\n',
     ["F:8: watchdog.batch_wait: expected at most twice the quickest check's interval (20s), found 30s: "
      "the watchdog calls an agent silent that sends no batch for 3 of those intervals"]),
    ("HEAD with a body to match", "agent", AGENT_HEAD + '[[check]]\nid = "w"\ntype = "http"\n'
     'url = "http://127.0.0.1/"\nmethod = "HEAD"\nexpect_body = "OK"\n',
     ["F:13: check[0].expect_body: a HEAD response has no body to match: use GET, or leave the body expectation "
      "out"]),
    ("host minimum above its maximum", "agent", AGENT_HEAD + '[[check]]\nid = "h"\ntype = "host"\n'
     'disks = ["/"]\nmax = { "disk./.percent" = 20 }\nmin = { "disk./.percent" = 80 }\n',
     ['F:13: check[0].min."disk./.percent": expected at most max = 20 for disk./.percent (else the check is '
      "never up), found 80"]),
    ("header line given as text", "agent", AGENT_HEAD + '[[check]]\nid = "w"\ntype = "http"\n'
     'url = "http://127.0.0.1/"\nheaders = "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.SECRET"\n',
     ['F:12: check[0].headers: expected a table like { Name = "value" }, found a string']),
    ("bad URL whose password holds a slash", "agent", AGENT_HEAD + '[[check]]\nid = "w"\ntype = "http"\n'
     'url = "https://monitor:s3cr/et@shop.example.com:99999/health"\n',
     ['F:11: check[0].url: expected a URL starting with http:// or https:// and a host (port 1-65535), '
      'found "https://***@shop.example.com:99999/health"']),
    ("unknown check type", "agent", AGENT_HEAD + '[[check]]\nid = "p"\ntype = "icmp"\n',
     ['F:10: check[0].type: unknown check type "icmp"; known types: http, snmp, host, tcp']),
    ("check type typo", "agent", AGENT_HEAD + '[[check]]\nid = "p"\ntype = "htp"\n',
     ['F:10: check[0].type: unknown check type "htp"; did you mean "http"?']),
    ("http key on a tcp check", "agent", AGENT_HEAD + '[[check]]\nid = "t"\ntype = "tcp"\nhost = "h"\n'
     'port = 25\nurl = "http://x"\n',
     ['F:13: check[0].url: unknown key "url"; known keys here: id, type, interval, timeout, host, '
      "port, expect_banner"]),
    ("missing required key", "agent", AGENT_HEAD + '[[check]]\nid = "w"\ntype = "http"\n',
     ["F:8: check[0].url: required key is missing (the URL to request)"]),
    ("bad status range", "agent", AGENT_HEAD + '[[check]]\nid = "w"\ntype = "http"\n'
     'url = "http://127.0.0.1/"\nexpect_status = [200, "2xx"]\n',
     ['F:12: check[0].expect_status[1]: expected an HTTP status like 200 or a range like '
      '"200-299", found "2xx"']),
    ("bad regex", "agent", AGENT_HEAD + '[[check]]\nid = "w"\ntype = "http"\n'
     'url = "http://127.0.0.1/"\nexpect_body = "(OK"\n',
     ['F:12: check[0].expect_body: expected a regular expression, found "(OK": missing ), '
      "unterminated subpattern at position 0"]),
    ("unreadable secret file", "agent", AGENT_HEAD + '[[check]]\nid = "w"\ntype = "http"\n'
     'url = "http://127.0.0.1/"\nusername = "u"\npassword_file = "nope.txt"\n',
     ['F:13: check[0].password_file: cannot read "D/nope.txt": No such file or directory; '
      "create it or fix the path"]),
    ("secret given twice", "agent", AGENT_HEAD + '[[check]]\nid = "s"\ntype = "snmp"\nhost = "h"\n'
     'community = "public"\ncommunity_file = "auth.txt"\n',
     ['F:13: check[0].community_file: give either "community" or "community_file", not both']),
    ("snmp v2c without community", "agent", AGENT_HEAD + '[[check]]\nid = "s"\ntype = "snmp"\nhost = "h"\n',
     ['F:8: check[0].community: SNMP v2c needs "community" or "community_file"']),
    ("snmp v3 key too short", "agent", AGENT_HEAD + '[[check]]\nid = "s"\ntype = "snmp"\nhost = "h"\n'
     'version = "3"\nuser = "u"\nauth_protocol = "SHA"\nauth_key = "short"\n',
     ["F:15: check[0].auth_key: SNMPv3 keys must be at least 8 characters long"]),
    ("snmp bad auth protocol", "agent", AGENT_HEAD + '[[check]]\nid = "s"\ntype = "snmp"\nhost = "h"\n'
     'version = "3"\nuser = "u"\nauth_protocol = "SHA1"\nauth_key = "longenough"\n',
     ['F:14: check[0].auth_protocol: expected one of "MD5", "SHA", "SHA224", "SHA256", "SHA384", '
      '"SHA512", found "SHA1"']),
    ("host threshold on an unlisted disk", "agent", AGENT_HEAD + '[[check]]\nid = "h"\ntype = "host"\n'
     'max = { "disk./data.percent" = 90 }\n',
     ['F:11: check[0].max."disk./data.percent": expected a metric this check reports (cpu.percent, '
      "load1, load5, load15, mem.percent, swap.percent, uptime_s), found \"disk./data.percent\"; "
      "disks, processes and interfaces must be listed to be measured"]),
    ("canary that is no check", "agent", AGENT_HEAD.replace('key_file = "agent.key"\n',
     'key_file = "agent.key"\ncanaries = ["gw"]\n'),
     ['F:5: agent.canaries[0]: expected the id of a [[check]] in this file, found "gw"']),
    ("key file that is no key", "agent", AGENT_HEAD.replace('"agent.key"', '"auth.txt"'),
     ['F:4: agent.key_file: "D/auth.txt" holds no Ed25519 private key in PEM form; create one '
      "with `slawatch-agent keygen`"]),
    ("bad watchdog url", "agent", AGENT_HEAD.replace("http://127.0.0.1:8470", "127.0.0.1:8470"),
     ['F:7: watchdog.url: expected a URL starting with http:// or https:// and a host (port 1-65535), '
      'found "127.0.0.1:8470"']),
    ("bad timezone", "contract", GOOD_CONTRACT.replace("Europe/Amsterdam", "Europe/Amsterdamm"),
     ['F:5: contract.timezone: expected an IANA timezone like "Europe/Amsterdam" or "UTC", '
      'found "Europe/Amsterdamm"']),
    ("bad period", "contract", GOOD_CONTRACT.replace('[[service]]', 'period = "year"\n[[service]]', 1)
     .replace('period = "year"\n[[service]]', '[[service]]').replace('timezone = "Europe/Amsterdam"\n',
     'timezone = "Europe/Amsterdam"\nperiod = "year"\n'),
     ['F:6: contract.period: expected one of "month", "quarter", "week", found "year"']),
    ("two availability objectives", "contract", GOOD_CONTRACT +
     'objectives = [{ kind = "availability", target = 99.0 }, { kind = "availability", target = 99.9 }]\n',
     ["F:10: service[0].objectives[1]: an availability objective is already given (objectives[0]): keep one, "
      "with the contract's figure"]),
    ("timezone file that is no IANA zone", "contract", GOOD_CONTRACT.replace("Europe/Amsterdam",
                                                                              "right/Europe/Amsterdam"),
     ['F:5: contract.timezone: expected an IANA timezone like "Europe/Amsterdam" or "UTC", '
      'found "right/Europe/Amsterdam"']),
    ("maintenance longer than a quarter", "contract", GOOD_CONTRACT +
     '[[maintenance]]\nrrule = "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2"\nduration = "1000000d"\n',
     ['F:12: maintenance[0].duration: expected a duration of at most 92d, found "1000000d"']),
    ("credit tiers without a fee", "contract", GOOD_CONTRACT + '[[credit]]\nbelow = 99.9\npercent = 10\n',
     ["F:1: contract.fee: credits are a percent of the fee: give the fee per period (the figure the contract "
      "states), or no [[credit]] tiers"]),
    ("bad rrule", "contract", GOOD_CONTRACT + '[[maintenance]]\nrrule = "FREQ=FORTNIGHTLY"\nduration = "2h"\n',
     ['F:11: maintenance[0].rrule: expected an RFC 5545 RRULE, found "FREQ=FORTNIGHTLY": '
      "invalid 'FREQ': FORTNIGHTLY"]),
    ("rrule without duration", "contract", GOOD_CONTRACT + '[[maintenance]]\nrrule = "FREQ=DAILY"\n',
     ['F:10: maintenance[0].duration: required key is missing ("rrule" needs "duration")']),
    ("maintenance ending before it starts", "contract", GOOD_CONTRACT +
     '[[maintenance]]\nstart = "2026-11-15T02:00"\nend = "2026-11-14T22:00"\n',
     ["F:12: maintenance[0].end: expected a time after start (2026-11-15T02:00:00), found "
      "2026-11-14T22:00:00"]),
    ("maintenance of an unknown service", "contract", GOOD_CONTRACT +
     '[[maintenance]]\nservices = ["webb"]\nstart = "2026-11-14T22:00"\nend = "2026-11-15T02:00"\n',
     ['F:11: maintenance[0].services[0]: unknown service "webb": not a [[service]] of this '
      'contract; did you mean "web"?']),
    ("credit tier below out of range", "contract", GOOD_CONTRACT + "[[credit]]\nbelow = 100.5\npercent = 10\n",
     ["F:11: credit[0].below: expected a number above 0 up to 100, found 100.5"]),
    ("credit percent out of range", "contract", GOOD_CONTRACT + "[[credit]]\nbelow = 99.9\npercent = 0\n",
     ["F:12: credit[0].percent: expected a number above 0 up to 100, found 0"]),
    ("objective of unknown kind", "contract", GOOD_CONTRACT +
     'objectives = [{ kind = "uptime", target = 99.9 }]\n',
     ['F:10: service[0].objectives[0]: expected "kind" to be "availability" or "latency", found "uptime"']),
    ("latency objective without max", "contract", GOOD_CONTRACT +
     'objectives = [{ kind = "latency", percentile = 95 }]\n',
     ['F:10: service[0].objectives[0].max: required key is missing (e.g. "800ms")']),
    ("unknown check in a contract", "contract", GOOD_CONTRACT.replace('checks = ["web"]', 'checks = ["wbe"]'),
     ['F:9: service[0].checks[0]: unknown check "wbe": no agent runs it; did you mean "web"?']),
    ("duplicate service id", "contract", GOOD_CONTRACT + '[[service]]\nid = "web"\nchecks = ["web"]\n',
     ['F:11: service[1].id: duplicate service id "web" (also service[0])']),
    ("apprise url refused", "contract", GOOD_CONTRACT + '[client]\nnotify = ["slack://nope"]\n',
     ['F:11: client.notify[0]: Apprise does not accept this URL (scheme "slack"; the URL is not '
      "shown because it may hold secrets); see https://github.com/caronc/apprise/wiki for the URL formats"]),
    ("unknown event", "contract", GOOD_CONTRACT + '[provider]\nevents = ["outage", "down"]\n',
     ['F:11: provider.events[1]: expected one of "outage", "recovery", "budget", "breach", '
      '"agent-silent", "agent-back", "tls-expiring", found "down"']),
    ("business hours backwards", "contract", GOOD_CONTRACT +
     '[business_hours]\ndays = ["mon"]\nstart = "18:00"\nend = "08:00"\n',
     ["F:13: business_hours.end: expected a time after start (18:00); hours across midnight are "
      "not supported, split them by day"]),
    ("duplicate agent ids", "watchdog", WATCHDOG_HEAD +
     '[[agent]]\nid = "a"\npublic_key = "ed25519:6Vz/K8fkkNMaEdZmz12fRzuY4R9qTH7kzTQquB0vdPA="\n'
     '[[agent]]\nid = "a"\npublic_key = "ed25519:6Vz/K8fkkNMaEdZmz12fRzuY4R9qTH7kzTQquB0vdPA="\n',
     ['F:8: agent[1].id: duplicate agent id "a" (also agent[0])']),
    ("bad public key", "watchdog", WATCHDOG_HEAD + '[[agent]]\nid = "a"\npublic_key = "ssh-ed25519 AAAA"\n',
     ['F:6: agent[0].public_key: expected "ed25519:" and 32 bytes in base64, as printed by '
      '`slawatch-agent keygen`, found "ssh-ed25519 AAAA"']),
    ("history kept shorter than a period and its grace", "watchdog", WATCHDOG_HEAD + 'history_retention = "30d"\n',
     ["F:4: watchdog.history_retention: expected at least 33d: contract c1's months and their grace of 1d must "
      "be kept until the period is frozen, found 30d"]),
    ("bad listen address", "watchdog", WATCHDOG_HEAD + 'listen = "8470"\n',
     ['F:4: watchdog.listen: expected "host:port" like "127.0.0.1:8470" or "[::1]:8470", found "8470"']),
    ("viewer of an unknown contract", "watchdog", WATCHDOG_HEAD +
     f'[[user]]\nname = "m"\npassword_hash = "{HASH}"\ncontracts = ["c2"]\n',
     ['F:7: user[0].contracts[0]: unknown contract "c2"; the contracts directory has: c1']),
    # Found by review: each of these once gave a traceback, a leaked secret or a hidden error.
    ("check type of the wrong TOML type", "agent", AGENT_HEAD + '[[check]]\nid = "z"\ntype = ["tcp"]\n',
     ['F:10: check[0].type: expected one of http, snmp, host, tcp, found an array']),
    ("timezone that is a zone directory", "contract", GOOD_CONTRACT.replace("Europe/Amsterdam", "Europe"),
     ['F:5: contract.timezone: expected an IANA timezone like "Europe/Amsterdam" or "UTC", found "Europe"']),
    ("NUL in a file path", "agent", AGENT_HEAD.replace('"agent.key"', '"agent.key\\u0000"'),
     ['F:4: agent.key_file: cannot read "D/agent.key\x00": embedded null byte; create it with '
      "`slawatch-agent keygen`"]),
    ("rrule that only fails when used", "contract", GOOD_CONTRACT +
     '[[maintenance]]\nrrule = "FREQ=WEEKLY;INTERVAL=0"\nduration = "2h"\n',
     ['F:11: maintenance[0].rrule: expected an RFC 5545 RRULE, found "FREQ=WEEKLY;INTERVAL=0": '
      "INTERVAL must be 1 or more"]),
    ("notify given as a string is not echoed", "contract", GOOD_CONTRACT +
     '[client]\nnotify = "slack://TOKENA/TOKENB/SECRETC"\n',
     ['F:11: client.notify: expected an array, found a string; put it in brackets: ["..."]']),
    ("secret of the wrong type is not echoed", "agent", AGENT_HEAD + '[[check]]\nid = "w"\ntype = "http"\n'
     'url = "http://127.0.0.1/"\nusername = "u"\npassword = 12345678\n',
     ["F:13: check[0].password: expected a string (quoted), found an integer; the value is not shown"]),
    ("URL credentials are masked", "agent", AGENT_HEAD + '[[check]]\nid = "w"\ntype = "http"\n'
     'url = "http://user:SECRET@127.0.0.1:99999/?token=SECRET"\n',
     ['F:11: check[0].url: expected a URL starting with http:// or https:// and a host (port 1-65535), '
      'found "http://***@127.0.0.1:99999/?***"']),
    ("every problem of one check at once", "agent", AGENT_HEAD + '[[check]]\nid = "w"\ntype = "http"\n'
     'url = "http://127.0.0.1/"\nmethod = "FETCH"\ntls_min_days = 3\nusername = "u"\ninterval = "5s"\n'
     'timeout = "6s"\nexpect_status = [99]\n',
     ['F:8: check[0].password: basic authentication needs both "username" and "password" (or "password_file")',
      'F:12: check[0].method: expected one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, found "FETCH"',
      'F:13: check[0].tls_min_days: only https:// URLs have a certificate to check',
      "F:16: check[0].timeout: expected a timeout of at most the check's interval (5s), found 6s",
      'F:17: check[0].expect_status[0]: expected an HTTP status like 200 or a range like "200-299", found 99']),
    ("lines after a multi-line string", "agent", AGENT_HEAD + '[[check]]\nid = "w"\ntype = "http"\n'
     "url = \"http://127.0.0.1/\"\nmethod = \"POST\"\nbody = \'\'\'\n[[check]]\nport = 5\n\'\'\'\ntimeout = 5\n",
     ['F:17: check[0].timeout: expected a duration like "30s", "5m", "2h", "1d" or "800ms" '
      "(a quoted string), found 5"]),
    ("NaN threshold", "agent", AGENT_HEAD + '[[check]]\nid = "h"\ntype = "host"\nmax = { "cpu.percent" = nan }\n',
     ['F:11: check[0].max."cpu.percent": expected a number, found nan']),
    ("password hash scrypt cannot run", "watchdog", WATCHDOG_HEAD +
     '[[user]]\nname = "m"\npassword_hash = "scrypt:1000:8:1:AAAA:BBBB"\nrole = "admin"\n',
     ['F:6: user[0].password_hash: expected a hash printed by `slawatch-watchdog hash-password` '
      '("scrypt:..."), found a string of another form (not shown)']),
    ("default timeout above default interval, said once", "agent", AGENT_HEAD +
     '[defaults]\ninterval = "10s"\ntimeout = "1m"\n[[check]]\nid = "t"\ntype = "tcp"\nhost = "h"\nport = 1\n'
     '[[check]]\nid = "u"\ntype = "tcp"\nhost = "h"\nport = 2\n',
     ["F:10: defaults.timeout: expected at most the default interval (10s), found 60s"]),
]


def load(kind: str, confdir: Path, text: str) -> Path:
    path = confdir / ("contracts/c.toml" if kind == "contract" else f"{kind}.toml")
    path.write_text(text)
    if kind == "watchdog":
        (confdir / "contracts" / "c1.toml").write_text(GOOD_CONTRACT)
        load_watchdog(path)
    elif kind == "agent":
        load_agent(path)
    else:
        load_contract(path, known_checks={"web", "api"})
    return path


@pytest.mark.parametrize("name,kind,text,expected", CASES, ids=[c[0] for c in CASES])
def test_broken_config_message(confdir: Path, name: str, kind: str, text: str, expected: list[str]) -> None:
    path = confdir / ("contracts/c.toml" if kind == "contract" else f"{kind}.toml")
    with pytest.raises(ConfigError) as caught:
        load(kind, confdir, text)
    lines = [str(p).replace(str(path), "F").replace(str(confdir), "D") for p in caught.value.problems]
    assert lines == expected


def test_at_least_25_cases() -> None:
    assert len(CASES) >= 25


def test_every_problem_of_a_file_is_reported_at_once(confdir: Path) -> None:
    text = AGENT_HEAD.replace("http://127.0.0.1:8470", "ftp://x") + (
        '[defaults]\nintervall = "30s"\n[[check]]\nid = "t"\ntype = "tcp"\nhost = "h"\nport = 70000\n'
    )
    with pytest.raises(ConfigError) as caught:
        load("agent", confdir, text)
    keys = [p.key for p in caught.value.problems]
    assert keys == ["watchdog.url", "defaults.intervall", "check[0].port"]


def test_problems_of_watchdog_and_contract_files_come_together(confdir: Path) -> None:
    (confdir / "contracts" / "bad.toml").write_text(GOOD_CONTRACT.replace('"c1"', '"c2"').replace("Europe/", "Eur/"))
    (confdir / "contracts" / "dup.toml").write_text(GOOD_CONTRACT)
    path = confdir / "watchdog.toml"
    path.write_text(WATCHDOG_HEAD + 'listen = "x"\n')
    (confdir / "contracts" / "c1.toml").write_text(GOOD_CONTRACT)
    with pytest.raises(ConfigError) as caught:
        load_watchdog(path)
    where = [(Path(p.file).name, p.key) for p in caught.value.problems]
    assert where == [("watchdog.toml", "watchdog.listen"), ("bad.toml", "contract.timezone"),
                     ("dup.toml", "contract.id")]


def test_contract_checks_are_cross_checked_against_agents(confdir: Path) -> None:
    (confdir / "contracts" / "c1.toml").write_text(GOOD_CONTRACT)
    path = confdir / "watchdog.toml"
    path.write_text(WATCHDOG_HEAD)
    with pytest.raises(ConfigError) as caught:
        load_watchdog(path, agent_checks={"probe": {"api"}})
    messages = [str(p).replace(str(confdir), "D") for p in caught.value.problems]
    assert messages == [
        'D/watchdog.toml: agent: agent "probe" has a config but no [[agent]] entry here; add its id and public key',
        'D/contracts/c1.toml:9: service[0].checks[0]: unknown check "web": no agent runs it',
    ]


def test_secret_values_never_appear_in_messages(confdir: Path) -> None:
    secret_url = "slack://TOPSECRETTOKEN"
    with pytest.raises(ConfigError) as caught:
        load("contract", confdir, GOOD_CONTRACT + f'[client]\nnotify = ["{secret_url}"]\n')
    assert "TOPSECRETTOKEN" not in str(caught.value)
