"""`seqkit serve` in a real browser: Debian's headless Chromium, driven by Selenium, its fake
microphone playing a WAV that `seqkit data synth` spoke. The page must show the keyword
detected, must not detect an unknown word, must analyse an uploaded WAV (gates drawn), and must
play a generated music sample (the audio element has a duration) with its piano roll.

Screenshots go to $SEQKIT_TEST_ARTIFACTS (default: the test's tmp_path). Skips, saying why,
only where /usr/bin/chromium or /usr/bin/chromedriver is missing (.ci/run installs them).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from test_serve_fixtures import clips, kws_setup, live_server, music_run

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(
        "the browser tests need Debian's chromium and chromium-driver (/usr/bin/chromium, "
        "/usr/bin/chromedriver): apt-get install chromium chromium-driver",
        allow_module_level=True,
    )
os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download a browser or driver
webdriver = pytest.importorskip("selenium.webdriver", reason="pip install -e '.[serve]'")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    setup = kws_setup(tmp_path_factory)
    music_run(tmp_path_factory, setup["root"])
    made = clips(tmp_path_factory)
    server = live_server(setup["root"])
    yield server, made
    server.close()


@pytest.fixture
def artifacts(tmp_path):
    folder = Path(os.environ.get("SEQKIT_TEST_ARTIFACTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium(tmp_path, audio=None):
    """Headless Chromium with a fake microphone playing ``audio`` (looped)."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1200,1500",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"):  # fmt: skip
        options.add_argument(flag)
    if audio is not None:
        options.add_argument(f"--use-file-for-fake-audio-capture={audio}")
    return webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))


def wait_for(driver, script, timeout=45.0, what=""):
    """Poll ``script`` (JavaScript returning a value) until it is truthy; its value."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(
            lambda d: d.execute_script(script)
        )
    except Exception:
        state = driver.execute_script("return JSON.stringify(window.seqkit || {}).slice(0, 2000)")
        raise AssertionError(
            f"timed out waiting for {what or script}; page state: {state}"
        ) from None


def listen(driver, url, threshold):
    driver.get(url)
    wait_for(driver, "return !document.getElementById('kws').hidden", what="the kws page")
    driver.execute_script(
        "const t = document.getElementById('threshold'); t.value = arguments[0];"
        "t.dispatchEvent(new Event('input'));", threshold)  # fmt: skip
    driver.find_element(By.ID, "listen").click()


def test_the_page_detects_the_spoken_keyword_and_analyses_an_upload(site, tmp_path, artifacts):
    server, made = site
    driver = chromium(tmp_path, made["keyword"])
    try:
        listen(driver, f"{server.url}/run?id=kws", made["threshold"])
        label = wait_for(
            driver,
            "const li = document.querySelector('#log li'); return li && li.dataset.label;",
            what="a detection on the page",
        )
        assert label == made["word"]
        assert made["word"] in driver.find_element(By.ID, "detected").text
        # ten results more, so that the latency line has figures
        n = driver.execute_script("return window.seqkit.results")
        wait_for(driver, f"return window.seqkit.results >= {n + 20}", what="more results")
        time.sleep(0.3)
        latency = driver.find_element(By.ID, "latency").text
        assert "server median" in latency and "end to end median" in latency, latency
        assert driver.execute_script("return window.seqkit.errors") == []
        labels = driver.execute_script("return window.seqkit.detections.map(d => d.label)")
        assert set(labels) == {made["word"]}, labels
        driver.save_screenshot(str(artifacts / "serve-kws-live.png"))

        driver.find_element(By.ID, "listen").click()  # stop
        driver.find_element(By.ID, "wav").send_keys(str(made["keyword"]))
        driver.find_element(By.ID, "analyse").click()
        wait_for(driver, "return document.querySelectorAll('#gates canvas').length === 2",
                 what="the gate heatmaps")  # fmt: skip
        top = driver.find_element(By.CSS_SELECTOR, "#top tbody tr td").text
        assert top == made["word"]
        assert made["word"] in driver.find_element(By.ID, "track-detections").text
        driver.save_screenshot(str(artifacts / "serve-kws-upload.png"))
    finally:
        driver.quit()


def test_the_page_does_not_detect_an_unknown_word(site, tmp_path, artifacts):
    server, made = site
    driver = chromium(tmp_path, made["unknown"])
    try:
        # rate=native: the page's fallback, the AudioWorklet resampling 48 kHz to 16 kHz itself
        # (the keyword test above runs the default: a 16 kHz AudioContext, Chromium resampling)
        listen(driver, f"{server.url}/run?id=kws&rate=native", made["threshold"])
        # 120 messages of 40 ms: 4.8 s of audio, more than one whole pass of the 3.5 s file
        wait_for(driver, "return window.seqkit.results >= 120 && window.seqkit.ready && "
                 "document.getElementById('plot')", what="4.8 s of results")  # fmt: skip
        frames = driver.execute_script("return window.seqkit.e2e.length")
        assert frames > 0
        assert driver.execute_script("return window.seqkit.detections") == []
        assert driver.find_element(By.ID, "detected").text == ""
        assert driver.execute_script("return window.seqkit.errors") == []
        driver.save_screenshot(str(artifacts / "serve-kws-unknown.png"))
    finally:
        driver.quit()


def test_the_music_page_plays_a_generated_sample_and_shows_its_roll(site, tmp_path, artifacts):
    server, _ = site
    driver = chromium(tmp_path)
    try:
        driver.get(f"{server.url}/run?id=music")
        wait_for(driver, "return !document.getElementById('music').hidden", what="the music page")
        driver.find_element(By.ID, "steps").clear()
        driver.find_element(By.ID, "steps").send_keys("24")
        driver.find_element(By.ID, "generate").click()
        duration = wait_for(
            driver,
            "const a = document.getElementById('player');"
            "return a.readyState >= 1 && a.duration > 0 ? a.duration : null;",
            what="the audio element's duration",
        )
        assert duration > 0
        assert wait_for(driver, "const i = document.getElementById('roll');"
                        "return i.complete && i.naturalWidth > 0 && i.naturalWidth;")  # fmt: skip
        href = driver.find_element(By.ID, "dl-mid").get_attribute("href")
        assert href.endswith("/sample-1.mid")
        driver.save_screenshot(str(artifacts / "serve-music.png"))
    finally:
        driver.quit()


def test_the_runs_list_links_every_run(site, tmp_path):
    server, _ = site
    driver = chromium(tmp_path)
    try:
        driver.get(f"{server.url}/")
        wait_for(driver, "return document.querySelectorAll('#runs tbody tr').length >= 2")
        links = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#runs tbody a")]
        assert "kws" in links and "music" in links
    finally:
        driver.quit()
