"""Size and render time of the periodic production report, and its PDF, on the tests' six weeks.

    .venv/bin/python benchmarks/periodic_report.py [--repeat 3]

Builds the store of ``tests/periodic_fixture.py`` in a temporary folder (102 production
summaries of the ACI-Bench visit notes over 6 ISO weeks scored with `clinsum score`, a
model_version change, planted flips, 48 imported reviews), then renders
`clinsum report --since 2025-03-03 --until 2025-04-14` in-process ``--repeat`` times (the
store read, the windows' statistics and the templates; CPU time and wall time), and prints
it once to PDF in Debian's Chromium (Playwright, /usr/bin/chromium): pages and size.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from periodic_fixture import SINCE, UNTIL, build  # noqa: E402

from clinsum.monitoring.windows import parse_time  # noqa: E402
from clinsum.reporting import periodic  # noqa: E402
from clinsum.store import Store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        fixture = build(Path(folder))
        since, until = parse_time(SINCE), parse_time(UNTIL)
        assert since is not None and until is not None
        walls, cpus = [], []
        page = ""
        for _ in range(args.repeat):
            wall, cpu = time.perf_counter(), time.process_time()
            store = Store.open(fixture.db)
            try:
                report = periodic.build(store, since, until, periodic.load_settings({}))
            finally:
                store.close()
            page = periodic.render_html(report)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        path = Path(folder) / "periodic.html"
        path.write_text(page, "utf-8")
        print(f"summaries {report.summaries}, windows {len(report.windows)}, metrics {len(report.series)}, "
              f"alerts {len(report.alerts)}, reviewed {report.period_feedback['n_reviewed']}")
        print(f"HTML {len(page.encode('utf-8')) / 1e3:.1f} kB")
        print(f"render (store read + statistics + templates): median wall {statistics.median(walls):.2f} s, "
              f"median CPU {statistics.median(cpus):.2f} s over {args.repeat}")
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                 args=["--headless", "--no-sandbox"])
            tab = browser.new_page()
            tab.goto(path.as_uri())
            tab.wait_for_selector("body[data-ready='1']")
            started = time.perf_counter()
            pdf = tab.pdf(format="A4")
            printed = time.perf_counter() - started
            browser.close()
        pages = len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))
        print(f"PDF (A4, print media) {len(pdf) / 1e3:.1f} kB, {pages} pages, page.pdf {printed:.2f} s")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"load average {os.getloadavg()[0]:.1f}; max RSS {rss} MB")


if __name__ == "__main__":
    main()
