"""The leaderboard page in a real browser: log in through the Airflow login form in headless
Chromium, open the page against the embedded Airflow holding the recorded reference-solution
run, check the table rows, sorting and the plot, and save a screenshot (tests/artifacts/)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def png_is_blank(data: bytes) -> bool:
    """True when a PNG has (almost) one colour: its decompressed scanlines use few byte values."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(idat))) < 16


@pytest.fixture
def browser(tmp_path):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("chromium and chromium-driver (scripts/setup.sh APT_PACKAGES) are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
                 "--window-size=1280,1100"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_plugin_adds_a_nav_entry(evaluated_airflow):
    plugins = evaluated_airflow.airflow.client.request("GET", "/api/v2/plugins")["plugins"]
    mine = [p for p in plugins if p["name"] == "multiplt_leaderboard"]
    assert mine, [p["name"] for p in plugins]
    views = mine[0]["external_views"]
    assert [(v["name"], v["href"], v["destination"]) for v in views] == [("Leaderboard", "/leaderboard/", "nav")]
    assert any(app["url_prefix"] == "/leaderboard" for app in mine[0]["fastapi_apps"])


def test_login_and_see_the_leaderboard(evaluated_airflow, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    airflow = evaluated_airflow.airflow
    browser.get(f"{airflow.base_url}/leaderboard/")
    wait = WebDriverWait(browser, 90)
    wait.until(lambda d: d.find_elements(By.NAME, "username"))  # redirected to the login form
    assert "/leaderboard" not in browser.current_url.split("?")[0]
    browser.find_element(By.NAME, "username").send_keys(airflow.username)
    browser.find_element(By.NAME, "password").send_keys(airflow.password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: d.find_elements(By.ID, "leaderboard"))  # back on the page, signed in

    header = [th.text.strip() for th in browser.find_elements(By.CSS_SELECTOR, "#leaderboard th")]
    langs = sorted(evaluated_airflow.conf["languages"])
    assert header[:4] == ["model", "revision", "experiment", "epoch"]
    assert set(langs) <= set(header[4:])
    rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")]
    ours = [r for r in rows if r[0] == "reference-solutions"]
    assert len(ours) == 1
    assert ours[0][2:4] == ["refsol", "0"]
    assert [ours[0][header.index(lang)] for lang in langs] == ["0.500"] * len(langs)

    svg = browser.find_element(By.ID, "passk-plot")
    labels = [g.get_attribute("data-label") for g in svg.find_elements(By.CSS_SELECTOR, "g.series")]
    assert sorted(labels) == sorted(f"{lang} (refsol)" for lang in langs)
    assert len(svg.find_elements(By.TAG_NAME, "circle")) >= len(langs)

    first_col = browser.find_element(By.CSS_SELECTOR, "#leaderboard th")
    first_col.click()
    assert first_col.get_attribute("aria-sort") == "ascending"
    first_col.click()
    assert first_col.get_attribute("aria-sort") == "descending"

    ARTIFACTS.mkdir(exist_ok=True)
    png = browser.get_screenshot_as_png()
    (ARTIFACTS / "leaderboard.png").write_bytes(png)
    assert not png_is_blank(png)
