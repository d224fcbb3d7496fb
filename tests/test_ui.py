"""The web UI in headless Chromium against the running watchdog, with an imported month of readings:
a viewer logs in, reads the overview, the contract page and the report; figures equal the report
JSON; every page is valid HTML and loads nothing from elsewhere."""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import html5lib
import pytest

from slawatch.watchdog.passwords import hash_password

from .browser import chromium
from .conftest import free_port
from .test_report_cli import CONTRACT, month_of_readings, watchdog
from .watchdog_peers import PUBLIC, start_daemon, write_config

PASSWORDS = {"alice": "alice-password-1", "root": "root-password-1"}
SHOTS = Path(os.environ.get("SLAWATCH_SCREENSHOTS", tempfile.gettempdir())) / "slawatch-screenshots"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """The watchdog daemon with October 2026 imported; (base URL, config, folder)."""
    folder = tmp_path_factory.mktemp("ui")
    port = free_port()
    other = CONTRACT.replace('id = "shop-2026"', 'id = "other-2026"').replace('client = "Example Corp"',
                                                                             'client = "Someone Else"')
    users = (f'[[user]]\nname = "alice"\npassword_hash = "{hash_password(PASSWORDS["alice"])}"\nrole = "viewer"\n'
             'contracts = ["shop-2026"]\n'
             f'[[user]]\nname = "root"\npassword_hash = "{hash_password(PASSWORDS["root"])}"\nrole = "admin"\n')
    config = write_config(folder, port=port, agents=[("ams-probe", PUBLIC)],
                          contracts={"shop.toml": CONTRACT, "other.toml": other})
    config.write_text(config.read_text() + users)
    data = folder / "october.jsonl"
    data.write_text("\n".join(month_of_readings()) + "\n")
    assert watchdog("import", "-c", str(config), str(data)).returncode == 0
    daemon = start_daemon(config, port)
    try:
        yield f"http://127.0.0.1:{port}", config, folder
    finally:
        daemon.process.terminate()
        daemon.process.wait(30)


def fetch(url: str, user: str) -> tuple[int, str]:
    token = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_a_viewer_reads_overview_contract_and_report_in_chromium(running: tuple[str, Path, Path]) -> None:
    base, config, _ = running
    expected = json.loads(watchdog("report", "-c", str(config), "--contract", "shop-2026", "--period", "2026-10",
                                   "--recompute").stdout)
    [service] = expected["services"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    requested: list[str] = []
    with chromium() as browser:
        page = browser.new_page()
        page.set_viewport_size({"width": 1200, "height": 900})
        page.on("request", lambda request: requested.append(request.url))
        page.goto(base + "/")
        assert page.url.startswith(base + "/login")          # not logged in: the login form
        page.fill("#login-name", "alice")
        page.fill("#login-password", PASSWORDS["alice"])
        page.click("button[type=submit]")
        page.wait_for_url(base + "/")
        assert page.locator("#contract-shop-2026").count() == 1
        assert page.locator("#contract-other-2026").count() == 0    # another client's contract: never shown
        row = page.locator("#contract-shop-2026 tr.service")
        assert row.locator(".state").inner_text() in {"up", "down", "unknown", "maintenance", "off-hours"}
        page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)

        page.goto(base + "/contracts/shop-2026?period=2026-10")
        section = page.locator("#service-shop")
        assert section.locator(".availability").inner_text() == f"{service['availability_percent']:.3f} %"
        assert section.locator(".down").inner_text() == "01:00:00"
        assert section.locator(".eligible").inner_text() == "30d 23:00:00"      # 745 h less 2 h maintenance
        assert page.locator("#credit").inner_text() == f"{expected['credit']:.2f} EUR"
        assert section.locator("table.incidents tbody tr").count() == len(service["incidents"]) == 1
        assert section.locator("svg.uptime rect").count() == 90
        assert section.locator("svg.chart polyline").count() >= 1             # the budget burn-down
        page.screenshot(path=str(SHOTS / "contract.png"), full_page=True)

        page.goto(base + "/contracts/shop-2026/services/shop")
        assert page.locator("#state").inner_text() in {"up", "down", "unknown", "maintenance", "off-hours"}
        page.screenshot(path=str(SHOTS / "service.png"), full_page=True)

        page.goto(base + "/contracts/shop-2026/report?period=2026-10")
        assert page.locator("#credit").inner_text() == f"{expected['credit']:.2f} EUR"
        assert page.locator("#chain-head").inner_text() == expected["evidence"]["head"]
        page.screenshot(path=str(SHOTS / "report.png"), full_page=True)
        with page.expect_download() as download:
            page.click("text=CSV")
        assert download.value.suggested_filename == "shop-2026-2026-10.csv"

        page.set_viewport_size({"width": 390, "height": 844})             # a phone
        page.goto(base + "/")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390 + 1, f"the overview scrolls sideways on a phone ({width}px)"
        page.screenshot(path=str(SHOTS / "overview-phone.png"), full_page=True)
    assert requested and all(url.startswith(base) for url in requested), [u for u in requested
                                                                         if not u.startswith(base)]
    assert (SHOTS / "contract.png").stat().st_size > 10_000


PAGES = ["/", "/contracts/shop-2026", "/contracts/shop-2026?period=2026-10", "/contracts/shop-2026/services/shop",
         "/contracts/shop-2026/report?period=2026-10", "/agents", "/alerts", "/login"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_valid_html_without_external_resources(running: tuple[str, Path, Path], path: str) -> None:
    base, _, _ = running
    status, text = fetch(base + path, "root")
    assert status == 200, text[:500]
    parser = html5lib.HTMLParser(strict=True)
    parser.parse(text)  # raises on any parse error
    assert not parser.errors
    for url in re.findall(r'(?:src|href)="([^"]+)"', text):
        assert not re.match(r"^(https?:)?//", url), f"{path} loads {url}"


def test_a_viewer_gets_404_for_another_contract_and_for_admin_pages(running: tuple[str, Path, Path]) -> None:
    base, _, _ = running
    for path in ("/contracts/other-2026", "/contracts/other-2026/services/shop", "/contracts/other-2026/report",
                 "/alerts"):
        status, text = fetch(base + path, "alice")
        assert status == 404, (path, status)
        assert "Someone Else" not in text
    status, text = fetch(base + "/", "alice")
    assert status == 200 and "other-2026" not in text and "Someone Else" not in text
