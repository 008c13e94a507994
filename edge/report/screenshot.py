"""The README's pictures of the report: a run's ``index.html`` loaded in Chromium (the browser
`edge.environment.find_browser` finds, driven by Playwright) at a fixed viewport, written as
PNGs (`nox -s screenshot`: ``reports/latest/index.html`` to ``docs/img/report.png``, the top of
the page, and ``docs/img/report-phones.png``, its "Best variant per device" card)."""

from __future__ import annotations

from pathlib import Path

from edge.environment import browser_install_hint, find_browser
from edge.errors import EdgeError

#: The fixed viewport of the picture (CSS pixels), so that the picture changes only when the
#: report does.
VIEWPORT = {"width": 1280, "height": 900}
DEFAULT_INDEX = Path("reports") / "latest" / "index.html"
DEFAULT_OUT = Path("docs") / "img" / "report.png"
#: The card with the phones' answer, the second picture (at most one viewport high).
PHONES_CARD = "section.card:has(#best-grid)"

__all__ = ["VIEWPORT", "phones_picture", "screenshot", "main"]


def phones_picture(out: Path) -> Path:
    """Where the picture of the "Best variant per device" card goes, beside `out`."""
    out = Path(out)
    return out.with_name(f"{out.stem}-phones{out.suffix}")


def screenshot(index: Path = DEFAULT_INDEX, out: Path = DEFAULT_OUT, *,
               viewport: dict | None = None, timeout_s: float = 60.0) -> Path:
    """Load the report page `index` (a file; offline, no network) and write the top of it, one
    `viewport` high, to `out` once its charts have rendered, and its "Best variant per device"
    card once filled (at most one viewport high) to `phones_picture(out)`; returns `out`.
    `EdgeError` when the page or a browser is missing."""
    index = Path(index)
    if not index.is_file():
        raise EdgeError(f"{index}: no report there (write one with `edge report`, or run the "
                        "main job)")
    browser_path = find_browser()
    if browser_path is None:
        raise EdgeError(browser_install_hint())
    from playwright.sync_api import sync_playwright

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path,
                                    args=["--disable-background-networking", "--no-first-run"])
        try:
            page = browser.new_page(viewport=viewport or VIEWPORT, device_scale_factor=1)
            # nothing but the report's own files: the picture must show what works offline
            page.route("**/*", lambda route: route.continue_()
                       if route.request.url.startswith("file:") else route.abort())
            page.goto(index.resolve().as_uri(), wait_until="load", timeout=timeout_s * 1000)
            page.wait_for_function(  # plotly draws the heatmaps after load
                "() => [...document.querySelectorAll('.js-plotly-plot')]"
                ".every(el => el.querySelector('.main-svg'))", timeout=timeout_s * 1000)
            page.screenshot(path=str(out))
            card = page.locator(PHONES_CARD).first
            page.wait_for_function(
                "() => document.querySelector('#best-grid')?.children.length > 0",
                timeout=timeout_s * 1000)
            box = card.evaluate("el => { const r = el.getBoundingClientRect(); return {x: "
                                "r.left + scrollX, y: r.top + scrollY, width: r.width, "
                                "height: r.height}; }")  # page coordinates, for the clip
            height = min(box["height"], (viewport or VIEWPORT)["height"])
            page.screenshot(path=str(phones_picture(out)), full_page=True,
                            clip={**box, "height": height})
        finally:
            browser.close()
    return out


def main(argv: list[str] | None = None) -> None:
    """`nox -s screenshot [-- INDEX [OUT]]`."""
    args = list(argv or [])
    index = Path(args[0]) if args else DEFAULT_INDEX
    out = Path(args[1]) if len(args) > 1 else DEFAULT_OUT
    print(f"report pictures: {screenshot(index, out)} ({VIEWPORT['width']}x{VIEWPORT['height']} "
          f"of {index}) and {phones_picture(out)} (its phones' answer)")
