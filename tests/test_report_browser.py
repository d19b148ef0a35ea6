"""The HTML report in a real browser: Debian's Chromium, driven by Playwright.

Skipped only on a machine without /usr/bin/chromium that is not CI; in CI (the
CI environment variable is set) a missing browser fails the test, so the report
is always tested there (``.ci/run`` installs chromium). The tests keep their screenshots and the
periodic report's PDF as artifacts in ``build/artifacts/`` (``CLINSUM_ARTIFACTS`` elsewhere);
``make screenshots`` (``CLINSUM_UPDATE_SCREENSHOTS=1``) writes the screenshots to ``docs/`` instead,
where the README shows them: a test run leaves the checkout as it found it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_fixture import FLIPPED_NOTE, fixture_store, in_thread

from clinsum.reporting import content, html
from clinsum.store import Store

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("CLINSUM_ARTIFACTS") or REPO / "build" / "artifacts")
SHOTS = REPO / "docs" if os.environ.get("CLINSUM_UPDATE_SCREENSHOTS") == "1" else ARTIFACTS
SCREENSHOT = SHOTS / "report.png"
PERIODIC_SCREENSHOT = SHOTS / "periodic-report.png"
PERIODIC_PDF = ARTIFACTS / "periodic-report.pdf"
"""Never in git: the PDF's creation date changes every run."""


def _require_browser() -> None:
    if Path(CHROMIUM).exists() and shutil.which(CHROMIUM):
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing in CI: .ci/run must `apt-get install -y chromium`")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium); never skipped in CI")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


class Page:
    """A page that records console errors, page errors and every request, and blocks all but the report."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.url = path.resolve().as_uri()
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.context = browser.new_context(viewport={"width": 1600, "height": 1000})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: None if r.url == self.url else self.outside.append(r.url))
        self.page.goto(self.url)
        self.page.wait_for_selector("body[data-ready='1']")

    def _route(self, route: Any) -> None:
        if route.request.url == self.url:
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def close(self) -> None:
        self.context.close()


def _render(tmp_path: Path, db: Path, run_ids: list[str]) -> tuple[Path, content.Content]:
    store = Store.open(db)
    try:
        loaded = content.load(store, run_ids)
    finally:
        store.close()
    path = tmp_path / "report.html"
    html.write(path, html.render(loaded))
    return path, loaded


def _list_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all("#list tr", "rows => rows.map(r => r.dataset.note)")


def test_report_in_chromium(browser: Any, tmp_path: Path) -> None:
    db, run_ids = fixture_store()
    path, loaded = _render(tmp_path, db, run_ids)
    view = Page(browser, path)
    page = view.page
    try:
        # every note of both runs is listed
        assert sorted(_list_ids(page)) == sorted(n.id for n in loaded.notes)

        # clicking a note shows the source and each system's summary, concepts highlighted in both
        page.click(f"#list tr[data-note='{FLIPPED_NOTE}']")
        panels = page.eval_on_selector_all("#detail .panel.summary", "ps => ps.map(p => p.dataset.system)")
        assert panels == ["extractive:centroid", "extractive:lead", "production"]
        production = page.locator("#detail .panel.summary[data-system='production']")
        assert production.locator("mark.flipped").first.inner_text() == "shortness of breath"
        unsupported = [t.strip() for t in production.locator("mark.unsupported").all_inner_texts()]
        assert "metformin" in unsupported and "500 mg" in unsupported  # a concept and a fact (dose)
        assert "physician ratings" in production.inner_text()
        lead = page.locator("#detail .panel.summary[data-system='extractive:lead']")
        assert lead.locator("mark.captured").count() >= 1
        assert lead.locator("mark.quote").count() >= 1  # the judge's quote, highlighted in the summary
        page.select_option("#source-system", "production")
        assert page.locator("#detail .panel.source mark.flipped").count() >= 1
        page.select_option("#source-system", "extractive:lead")
        assert page.locator("#detail .panel.source mark.missed").count() >= 1
        page.select_option("#source-system", "production")
        page.select_option("#sort-metric", "critical_flips")  # worst first: the flipped note leads
        assert _list_ids(page)[0] == FLIPPED_NOTE
        page.locator("#notes").scroll_into_view_if_needed()
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))

        # sorting by a metric changes the order: worst concept recall of extractive:lead first, then best first
        page.select_option("#sort-metric", "concept_recall")
        page.select_option("#sort-system", "extractive:lead")
        worst = _list_ids(page)
        recall = {s.note_id: s.value for s in loaded.scores
                  if s.system == "extractive:lead" and s.metric == "concept_recall"}
        assert worst[: len(recall)] == sorted(recall, key=lambda n: (recall[n], n))
        page.select_option("#sort-order", "best")
        assert _list_ids(page) != worst

        # search narrows the list
        page.fill("#search", "D2N071")
        assert _list_ids(page) == ["acibench-valid-D2N071"]
        assert view.errors == [] and view.outside == []
    finally:
        view.close()


def test_hostile_note_text_is_shown_as_text_and_requests_nothing(browser: Any, tmp_path: Path) -> None:
    import asyncio

    from clinsum import evaluation
    from clinsum.config import RunConfig
    from clinsum.records import Note, Summary

    hostile = ('</script><script>document.title="owned"</script><img src="http://198.51.100.7/x.png" '
               'onerror="document.title=\'owned\'"><link rel=stylesheet href="https://example.org/a.css">')
    db = tmp_path / "hostile.db"
    store = Store.open(db)
    try:
        note = Note(id="<b>n1</b>", text=f"Patient denies fever. {hostile}")
        summary = Summary(note_id=note.id, system="<i>sys</i>", text=f"No fever. {hostile}")
        run_id = in_thread(asyncio.run, evaluation.score(RunConfig(metrics=["length"]), store, [note], [summary]))
    finally:
        store.close()
    path, _ = _render(tmp_path, db, [run_id])
    view = Page(browser, path)
    try:
        view.page.click("#list tr")
        assert hostile in view.page.locator("#detail .panel.source").inner_text()
        assert hostile in view.page.locator("#detail .panel.summary").inner_text()
        assert view.page.title() != "owned"
        assert view.outside == [] and view.errors == []
    finally:
        view.close()


def test_periodic_report_in_chromium_prints_to_a_multi_page_pdf(browser: Any, tmp_path: Path) -> None:
    """The periodic report (six weeks of production) opens offline, filters, and prints: in print media the
    controls are gone, every metric is shown, and ``page.pdf`` makes a real PDF of several pages."""
    import re
    import zlib
    from datetime import UTC, datetime

    from periodic_fixture import SINCE, UNTIL, production

    from clinsum.monitoring.windows import parse_time
    from clinsum.reporting import periodic

    store = Store.open(production().db)
    try:
        since, until = parse_time(SINCE), parse_time(UNTIL)
        assert since is not None and until is not None
        built = periodic.build(store, since, until, periodic.load_settings({}),
                               now=datetime(2025, 4, 14, 8, tzinfo=UTC))  # a fixed time: a stable screenshot
    finally:
        store.close()
    path = tmp_path / "periodic.html"
    path.write_text(periodic.render_html(built), "utf-8")
    view = Page(browser, path)
    page = view.page
    try:
        for section in ("glance", "metrics", "alerts", "feedback", "versions", "validity", "settings"):
            assert page.locator(f"section#{section} h2").is_visible(), section
        assert page.locator("section#alerts table.alerts tbody tr").count() == len(built.alerts) > 0
        assert "changed from v1 to v2" in page.locator("ul.changes").inner_text()
        metrics = page.locator("section.metric")
        assert metrics.count() == len(built.series) > 1
        assert metrics.first.locator("svg.chart").count() == 1

        page.locator("#glance").scroll_into_view_if_needed()
        PERIODIC_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        PERIODIC_PDF.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(PERIODIC_SCREENSHOT))

        page.select_option("#metric-filter", "has_critical_flip")  # the screen shows one metric...
        assert [m.get_attribute("data-metric") for m in metrics.all() if m.is_visible()] == ["has_critical_flip"]

        page.emulate_media(media="print")  # ...print shows them all, and no control
        for control in ("nav", ".controls", "#metric-filter", "#print"):
            assert not page.locator(control).is_visible(), control
        assert all(m.is_visible() for m in metrics.all())
        assert page.locator(".print-header").is_visible()
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
        pdf = page.pdf(path=str(PERIODIC_PDF), format="A4")
        assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
        pages = len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))
        assert pages > 1, f"{pages} page(s)"
        # the page header (period, generation time) and page numbers are CSS page margin boxes: with the
        # body hidden, a page still carries text, and only they can have put it there
        page.evaluate("for (const e of document.body.children) e.style.display = 'none'")
        margins = page.pdf(format="A4")
        streams = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", margins, re.S)
        texts = sum(len(re.findall(rb"\bT[jJ]\b", zlib.decompress(s))) for s in streams if s[:2] == b"x\x9c")
        assert texts >= 2, "no page header or page number in the printed margins"
        assert view.errors == [] and view.outside == []
    finally:
        view.close()
