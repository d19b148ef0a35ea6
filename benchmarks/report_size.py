"""Size and open time of the HTML report for N summaries (default 1,000).

    .venv/bin/python benchmarks/report_size.py [--summaries 1000] [--repeat 3]

Builds a store in a temporary folder: the 12 ACI-Bench dialogues of fixtures/
repeated under new ids until there are N/2 notes, summarized by the offline
baselines extractive:lead and extractive:centroid and scored with overlap,
length and coverage (so every summary carries its concept evidence). Texts
repeat, so extraction is cached and the build is quicker than real data; the
report's size per summary is that of real dialogues (about 1,000 words each).
Then it renders the report and opens it in Debian's Chromium (Playwright,
/usr/bin/chromium), timing: render (Python), open (navigation start until the
drill-down list is built, from the page's own clock), open a note (click until
its summaries are shown) and re-sort the list by another metric.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clinsum import evaluation  # noqa: E402
from clinsum.config import RunConfig  # noqa: E402
from clinsum.inputs import load_notes  # noqa: E402
from clinsum.records import Note  # noqa: E402
from clinsum.reporting import content, html  # noqa: E402
from clinsum.store import Store  # noqa: E402

DIALOGUES = ROOT / "fixtures" / "aci_dialogues.jsonl"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def build(db: Path, summaries: int) -> str:
    base = load_notes(DIALOGUES).records
    notes = [Note(id=f"{base[i % len(base)].id}-{i:05d}", text=base[i % len(base)].text,
                  reference=base[i % len(base)].reference) for i in range(summaries // 2)]
    config = RunConfig(notes=str(DIALOGUES), providers=["extractive:lead", "extractive:centroid"],  # type: ignore[list-item]
                       metrics=["overlap", "length", "coverage"], offline=True)
    store = Store.open(db)
    try:
        return asyncio.run(evaluation.run(config, store, notes=notes))
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summaries", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "bench.db"
        started = time.perf_counter()
        run_id = build(db, args.summaries)
        built = time.perf_counter() - started
        store = Store.open(db)
        loaded = content.load(store, [run_id])
        store.close()
        started = time.perf_counter()
        page_html = html.render(loaded)
        rendered = time.perf_counter() - started
        path = Path(folder) / "report.html"
        html.write(path, page_html)
        size = path.stat().st_size
        data = json.loads(page_html.split('id="report-data">', 1)[1].split("</script>", 1)[0])
        data_size = len(json.dumps(data, ensure_ascii=False).encode("utf-8"))

        opened, clicked, sorted_ = [], [], []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            for _ in range(args.repeat):
                context = browser.new_context(viewport={"width": 1600, "height": 1000})
                page = context.new_page()
                page.goto(path.as_uri())
                page.wait_for_selector("body[data-ready='1']")
                opened.append(page.evaluate("window.clinsumReadyMs"))
                t0 = time.perf_counter()
                page.click("#list tr:nth-child(7)")
                page.wait_for_selector("#detail .panel.summary")
                clicked.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                page.select_option("#sort-metric", "rouge1")
                page.wait_for_function("document.querySelector('#list tr') !== null")
                sorted_.append((time.perf_counter() - t0) * 1000)
                context.close()
            browser.close()

    n = len(loaded.summaries)
    print(f"summaries: {n} ({len(loaded.notes)} notes x 2 systems); store built in {built:.1f} s")
    print(f"HTML: {size / 1e6:.2f} MB ({size / n / 1000:.1f} kB per summary; embedded data "
          f"{data_size / 1e6:.2f} MB); rendered in {rendered:.1f} s")
    print(f"Chromium, {args.repeat} opens: ready after {statistics.median(opened):.0f} ms (median; "
          f"{min(opened):.0f}-{max(opened):.0f}); open a note {statistics.median(clicked):.0f} ms; "
          f"re-sort {statistics.median(sorted_):.0f} ms")


if __name__ == "__main__":
    main()
