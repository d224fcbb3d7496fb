"""The HTML report in headless Chromium: what a client manager sees, and that it prints."""

from __future__ import annotations

from pathlib import Path

from slawatch.watchdog.store import Reader

from .browser import chromium
from .test_report_cli import imported, watchdog  # noqa: F401  (the fixture)


def test_the_report_page_shows_the_figures_and_prints(imported: Path, tmp_path: Path) -> None:  # noqa: F811
    done = watchdog("report", "-c", str(imported), "--contract", "shop-2026", "--period", "2026-10",
                    "--format", "html", "--recompute")
    assert done.returncode == 0, done.stderr
    page_file = tmp_path / "report.html"
    page_file.write_text(done.stdout)
    with Reader(tmp_path / "watchdog.db") as reader:
        _, head = reader.head()
    with chromium() as browser:
        page = browser.new_page()
        page.goto(page_file.as_uri())
        assert page.title() == "SLA report shop-2026 2026-10"
        assert page.locator("#credit").inner_text() == "100.00 EUR"
        services = page.locator("#services tr").all_inner_texts()
        assert len(services) == 2 and "99.865 %" in services[1] and "Web shop" in services[1]
        objectives = page.locator("#objectives tr")
        assert objectives.nth(1).locator(".missed").inner_text() == "missed"    # availability 99.865 < 99.9
        assert objectives.nth(2).locator(".met").inner_text() == "met"          # p95 latency ~122 ms <= 800
        assert page.locator(".missed").evaluate("e => getComputedStyle(e).color") == "rgb(176, 0, 32)"
        incident = page.locator("#incidents tr").nth(1).all_inner_texts()[0]
        assert "2026-10-05T12:00:00+02:00" in incident and "01:00:00" in incident and "ams-probe" in incident
        assert page.locator("#chain-head").inner_text() == head.hex()
        pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
