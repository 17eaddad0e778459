"""The leaderboard pages in a real browser: log in through the Airflow login form in headless
Chromium, open the leaderboard against the embedded Airflow holding the recorded
reference-solution run (table rows, sorting, the plot), click a score for that run's per-problem
results, open the Datasets page over hand-written stage folders under the data root, and save
screenshots (tests/artifacts/)."""

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
    assert sorted(labels) == sorted(f"{lang} (refsol) · reference-solutions" for lang in langs)
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

    # a click on a score: that run's per-problem results (reference solution ok, the other bad)
    lang = langs[0]
    cell = browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")[
        [r[0] for r in rows].index("reference-solutions")].find_elements(By.TAG_NAME, "td")[header.index(lang)]
    cell.find_element(By.TAG_NAME, "a").click()
    wait.until(lambda d: d.find_elements(By.ID, "problems"))
    problems = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                for tr in browser.find_elements(By.CSS_SELECTOR, "#problems tbody tr")]
    assert sorted(p[0] for p in problems) == sorted(evaluated_airflow.problems)
    assert all(p[1:4] == ["2", "1", "0.500"] for p in problems), problems
    facts = {tr.find_element(By.TAG_NAME, "th").text: tr.find_element(By.TAG_NAME, "td").text
             for tr in browser.find_elements(By.CSS_SELECTOR, "table.facts tr")}
    assert facts["language"] == lang and facts["model"] == "reference-solutions"
    assert facts["pass@1"].startswith("0.500")
    (ARTIFACTS / "leaderboard_run.png").write_bytes(browser.get_screenshot_as_png())


def test_datasets_page(evaluated_airflow, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.support.chain_folders import write_chain

    airflow = evaluated_airflow.airflow
    write_chain(f"file://{airflow.data_dir}/runs/ui-e2e")  # under [multiplt] data_uri
    browser.get(f"{airflow.base_url}/leaderboard/datasets")
    wait = WebDriverWait(browser, 90)
    wait.until(lambda d: d.find_elements(By.NAME, "username"))
    browser.find_element(By.NAME, "username").send_keys(airflow.username)
    browser.find_element(By.NAME, "password").send_keys(airflow.password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    try:
        wait.until(lambda d: d.find_elements(By.ID, "datasets"))
    except Exception:
        api_log = airflow.log_dir / "api-server.log"
        pytest.fail(f"no Datasets page at {browser.current_url}:\n{browser.page_source[:3000]}\n"
                    + (api_log.read_text()[-4000:] if api_log.exists() else ""))

    titles = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#datasets tbody td:first-child a")]
    assert titles == ["corpus (stdlib)", "tests (testgen)", "translation lua", "translation racket"]
    assert not browser.find_elements(By.CSS_SELECTOR, ".error"), "the runs or a dataset could not be read"
    racket = browser.find_elements(By.CSS_SELECTOR, "section.dataset")[3]
    steps = [(g.get_attribute("data-name"), g.get_attribute("data-in"), g.get_attribute("data-out"))
             for g in racket.find_elements(By.CSS_SELECTOR, "svg.funnel g.step")]
    assert steps == [("build", "3", "3"), ("validate", "6", "4"), ("clean", "4", "4"), ("dedup", "4", "2")]
    assert racket.find_element(By.CSS_SELECTOR, "a.hub").get_attribute("href").endswith("/datasets/me/multiplt-data")
    assert "(no run announced this folder)" in racket.text
    assert racket.find_element(By.CSS_SELECTOR, "a[href='/dags/multiplt_translate']")
    ARTIFACTS.mkdir(exist_ok=True)
    png = browser.get_screenshot_as_png()
    (ARTIFACTS / "datasets.png").write_bytes(png)
    assert not png_is_blank(png)
