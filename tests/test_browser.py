"""The rendered report in a real browser (headless Chromium via chromedriver) and printed to PDF.

    pytest tests/test_browser.py -s     # -s shows where the screenshot and the PDF were written

Parsing the HTML (test_report_e2e.py) proves the images are embedded; only a browser proves they decode and
that the page loads without console errors. Skips, with the reason, where Chromium, chromedriver, selenium or
poppler-utils are missing; .ci/run installs them and fails on CI rather than skip.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lab.__main__ import main
from lab.experiments import EXPERIMENTS
from lab.pdf import HEADLESS_FLAGS, find_chromium

pytestmark = pytest.mark.slow

SECTION_TITLES = ("Answers at a glance", "Sanity checks", "Part 1", "Part 2", "Part 3", "Reproducibility")
FIRST_SCREEN = (1280, 800)  # what a teacher sees on opening the report
MAIN_BODY_PAGES = 8  # A4 pages before the appendix
WINDOW = (1280, 900)
# Measured with the quick profile on A4: 18 pages, 8 of them the main body (all three parts, no benchmark
# section). The band leaves room
# for wording and figure changes but catches a blank or truncated print (too few) and a layout blow-up, e.g. a
# table one word per line or a figure per page (too many).
PDF_PAGES = range(10, 25)

_PAGE_IMAGES = """return Array.from(document.images, (img, i) => ({
    index: i, alt: img.alt.slice(0, 60), complete: img.complete, width: img.naturalWidth, height: img.naturalHeight}))"""


def _need_chromium() -> str:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("Chromium not installed (apt-get install chromium chromium-driver poppler-utils)")
    return chromium


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = _need_chromium()
    driver_path = shutil.which("chromedriver")
    if driver_path is None:
        pytest.skip("chromedriver not installed (apt-get install chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in HEADLESS_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")  # fresh, no leftovers
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console messages and failed loads
    # An explicit driver path: Selenium Manager (which would try to download a driver) never runs.
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    yield driver
    driver.quit()


def load(driver, page: Path) -> tuple[list[dict], list[str]]:
    """Open a page; return its images (decoded size) and the console errors it logged."""
    driver.get_log("browser")  # drain what an earlier page left behind
    driver.get(page.resolve().as_uri())  # returns after the load event: every image has loaded or failed
    images = driver.execute_script(_PAGE_IMAGES)
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return images, errors


def broken(images: list[dict]) -> list[dict]:
    return [img for img in images if not (img["complete"] and img["width"] > 0 and img["height"] > 0)]


def full_page_screenshot(driver, path: Path) -> Path:
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def test_report_images_decode_without_console_errors(browser, rendered, tmp_path):
    images, errors = load(browser, rendered / "index.html")
    assert len(images) >= 3 * len(EXPERIMENTS), "expected at least three figures for each part"
    assert broken(images) == []
    assert errors == []
    # Nothing wider than the window: a wide table or figure would need sideways scrolling to read.
    assert browser.execute_script("return document.documentElement.scrollWidth") <= WINDOW[0]
    shot = full_page_screenshot(browser, tmp_path / "report.png")
    print(f"\nscreenshot: {shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


_FIRST_SCREEN = """const h1 = document.querySelector('h1').getBoundingClientRect();
const answers = document.querySelector('table.answers');
const rows = answers ? answers.querySelectorAll('tbody tr') : [];
return {h1_top: h1.top, h1_bottom: h1.bottom, table_top: answers ? answers.getBoundingClientRect().top : null,
        second_row_bottom: rows.length > 1 ? rows[1].getBoundingClientRect().bottom : null,
        height: window.innerHeight}"""

_REFERENCES = """const ids = new Set(Array.from(document.querySelectorAll('[id]'), e => e.id));
const links = Array.from(document.querySelectorAll('a[href^="#"]'), a => a.getAttribute('href').slice(1));
const refs = Array.from(document.querySelectorAll('a.ref'), a => [a.getAttribute('href').slice(1), a.textContent]);
const figures = Array.from(document.querySelectorAll('figure'), f => [f.id, f.querySelector('figcaption').textContent]);
const tables = Array.from(document.querySelectorAll('table[id^="tab-"]'),
                          t => [t.id, t.querySelector('caption').textContent]);
return {dangling: links.filter(id => !ids.has(id)), refs: refs, figures: figures, tables: tables}"""


def test_answers_table_is_on_the_first_screen(browser, rendered):
    browser.set_window_size(*FIRST_SCREEN)
    try:
        load(browser, rendered / "index.html")
        box = browser.execute_script(_FIRST_SCREEN)
    finally:
        browser.set_window_size(*WINDOW)
    assert box["h1_top"] >= 0 and box["h1_bottom"] <= box["height"]
    assert box["table_top"] is not None and box["table_top"] < box["height"] / 2, box
    # the table's header and its first question are readable without scrolling
    assert box["second_row_bottom"] is not None and box["second_row_bottom"] <= box["height"], box


def test_every_figure_and_table_is_numbered_and_every_reference_resolves(browser, rendered):
    load(browser, rendered / "index.html")
    found = browser.execute_script(_REFERENCES)
    assert found["dangling"] == []
    numbered = {}
    for kind, items in (("Figure", found["figures"]), ("Table", found["tables"])):
        assert items, kind
        for n, (anchor, caption) in enumerate(items, 1):
            assert caption.strip().startswith(f"{kind} {n}."), (anchor, caption[:60])
            numbered[anchor] = f"{kind} {n}"
    referenced = {}
    for anchor, text in found["refs"]:
        assert numbered.get(anchor) == text, (anchor, text)  # the link's words name the item it points at
        referenced[anchor] = True
    # every figure and table is referred to from the text
    unreferenced = sorted(set(numbered) - set(referenced))
    assert unreferenced == []


def test_the_check_catches_a_broken_page(browser, tmp_path):
    """The same checks on a page with a missing file, an undecodable image and a script error must flag all three."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><body>"
        "<img alt='missing' src='figures/missing.png'>"
        "<img alt='corrupt' src='data:image/png;base64,iVBORw0KGgoAAAAA'>"
        "<script>console.error('boom')</script></body></html>"
    )
    images, errors = load(browser, page)
    assert [img["alt"] for img in broken(images)] == ["missing", "corrupt"]
    assert any("boom" in e for e in errors)
    assert any("missing.png" in e for e in errors)  # the failed file load is logged as an error too


@pytest.fixture(scope="module")
def pdf(rendered) -> Path:
    _need_chromium()
    for tool in ("pdfinfo", "pdftotext"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install poppler-utils)")
    assert main(["pdf", "--out", str(rendered)]) == 0
    return rendered / "report.pdf"


def test_pdf_has_every_section_and_a_sensible_page_count(pdf):
    print(f"\npdf: {pdf}")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    pages = int(fields["Pages"])
    print(f"pdf pages: {pages}")
    assert pages in PDF_PAGES, f"{pages} pages"
    assert "A4" in fields["Page size"]  # the report's @page rule, not the locale's default paper
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    for title in SECTION_TITLES:
        assert title in text, title
    # Page numbers on every page; the main body (before Appendix A) fits MAIN_BODY_PAGES pages.
    per_page = text.split("\f")
    assert all(f"Page {i} of {pages}" in page for i, page in enumerate(per_page[:pages], 1))
    appendix = next(i for i, page in enumerate(per_page, 1) if "Appendix A \u2014 Sanity checks" in page)
    print(f"main body: {appendix - 1} pages")
    assert appendix - 1 <= MAIN_BODY_PAGES
    # "Figure n" / "Table n" links survive printing: each link's named destination is defined in the PDF
    raw = pdf.read_bytes()
    used = set(re.findall(rb"/Dest /([A-Za-z0-9_.-]+)", raw))
    defined = set(re.findall(rb"/([A-Za-z0-9_.-]+) \[\d+ 0 R /XYZ", raw))
    assert any(u.startswith(b"fig-") for u in used) and any(u.startswith(b"tab-") for u in used)
    assert used <= defined, sorted(used - defined)[:5]
    # The part headings ("Part N — title", unlike the contents line) come in the report's order.
    starts = [text.find(f"Part {n} \u2014") for n in (1, 2, 3)]
    assert -1 not in starts and starts == sorted(starts), starts


def test_pdf_without_a_report_is_one_clear_error(tmp_path, capsys):
    assert main(["pdf", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no report at") and err.count("\n") == 1
    assert not (tmp_path / "report.pdf").exists()


def test_a_failed_print_keeps_the_previous_pdf(tmp_path, monkeypatch, capsys):
    (tmp_path / "index.html").write_text("<p>report</p>")
    (tmp_path / "report.pdf").write_bytes(b"%PDF-previous")
    monkeypatch.setenv("CHROMIUM", shutil.which("false"))  # a "browser" that exits 1 and prints nothing
    assert main(["pdf", "--out", str(tmp_path)]) == 2
    assert "Chromium failed to print" in capsys.readouterr().err
    assert (tmp_path / "report.pdf").read_bytes() == b"%PDF-previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "report.pdf"]  # no temp file left
