"""Open a built report in headless Chromium: every image must load, the console must stay clean, and the page
must fit a 1280-pixel window (a wide table scrolling in its box with its first column in view).

Usage: python -m reports.browser_check REPORT_DIR [--page index.html] [--screenshot PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


def check(report_dir: Path, screenshot: Path, page_name: str = "index.html") -> list[str]:
    """Load report_dir/PAGE_NAME, save a full-page screenshot, and return the problems found (empty if none)."""
    try:
        from playwright.sync_api import sync_playwright  # optional dependency, only needed here
    except ImportError:
        return ["playwright is not installed (pip install playwright; never `playwright install`)"]
    index = (report_dir / page_name).resolve()
    if not Path(CHROMIUM).is_file():
        return [f"{CHROMIUM} not found (apt-get install chromium)"]
    if not index.is_file():
        return [f"{index}: no such file"]
    problems: list[str] = []

    def on_console(message) -> None:
        if message.type == "error":
            problems.append(f"console error: {message.text}")

    with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="report-chromium-") as profile:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=ARGS, viewport={"width": 1280, "height": 900}
        )
        try:
            page = context.new_page()
            page.on("console", on_console)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"failed to load {r.url}: {r.failure}"))
            page.goto(index.as_uri(), wait_until="load")
            broken = page.evaluate(
                "[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'))"
            )
            problems += [f"image did not load: {src}" for src in broken]
            problems += page.evaluate(FITS_THE_WINDOW)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            context.close()
    return problems


FITS_THE_WINDOW = """() => {
  const problems = [];
  if (document.documentElement.scrollWidth > innerWidth)
    problems.push(`the page is ${document.documentElement.scrollWidth} px wide in a ${innerWidth}-px window`);
  for (const box of document.querySelectorAll('.scroll')) {
    box.scrollLeft = box.scrollWidth;
    const first = box.querySelector('tr:last-child td, tr:last-child th');
    if (first && first.getBoundingClientRect().left < box.getBoundingClientRect().left - 1)
      problems.push('a scrolled table loses its first column from view');
    box.scrollLeft = 0;
  }
  return problems;
}"""
"""In the window's width: the page does not overflow it, and a table wider than its box keeps its first column (the
student's name) in view when scrolled to its end."""


def main(argv: list[str] | None = None) -> int:
    """Run the check; exit 1 listing the problems, 0 when the page is fine."""
    parser = argparse.ArgumentParser(prog="python -m reports.browser_check", description=__doc__.splitlines()[0])
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("--page", default="index.html", help="the page to open (class.html: the class table)")
    parser.add_argument("--screenshot", type=Path, help="where to save the PNG (default: REPORT_DIR/screenshot.png)")
    args = parser.parse_args(argv)
    screenshot = args.screenshot or args.report_dir / "screenshot.png"
    problems = check(args.report_dir, screenshot, args.page)
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)
    print(
        f"{'FAILED' if problems else 'ok'}: {args.report_dir / args.page} ({len(problems)} problems); "
        f"screenshot {screenshot}"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
