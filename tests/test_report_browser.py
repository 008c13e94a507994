"""The HTML report in real Chromium, from file:// with the network blocked: no console or page
errors, no alert from the hostile model name, the picker recommends what `edge pick` does and
reacts to its budgets, the model table sorts and filters. Saves test-artifacts/report.png."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from edge.errors import EdgeError
from edge.farm.runners.browser import resolve_browser
from edge.report.html import write_report
from edge.results.store import DamagedRecordWarning

from .conftest import write_fixture_report

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "results"
RUN_ID = "20261129-102929-9e7c"
ARTIFACTS = REPO / "test-artifacts"
MOBILENET = "mobilenet_v2:size=64,alpha=0.35,classes=6"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return write_fixture_report(tmp_path_factory.mktemp("report") / "reports").parent


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    try:
        info = resolve_browser()
    except EdgeError as exc:
        pytest.skip(str(exc))
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=info.path,
                                     args=["--disable-background-networking", "--no-first-run"])
        yield chromium
        chromium.close()


class Watched:
    """A page whose console errors, page errors, dialogs and non-file requests are recorded."""

    def __init__(self, browser, width: int = 1280):
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type == "error"
                     and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"pageerror: {e}"))
        self.page.on("dialog", self._dialog)
        self.page.route("**/*", self._route)

    def _dialog(self, dialog):
        self.problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    def _route(self, route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:  # the report must not need the network
            self.problems.append(f"request: {route.request.url}")
            route.abort()

    def open(self, path: Path):
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("body[data-ready]", timeout=30_000)
        return self.page

    def close(self):
        self.page.close()


def test_overview_picker_reacts_to_budgets(browser, run_dir):
    watched = Watched(browser)
    page = watched.open(run_dir / "index.html")

    # the default selection is the first model on the first device: what `edge pick` says
    assert page.input_value("#pick-model") == MOBILENET
    assert page.input_value("#pick-device") == "host"
    assert page.input_value("#pick-p90") == "200"
    best = page.locator("#pick-best")
    best.wait_for()
    before = page.inner_text("#pick-result")
    cell = best.get_attribute("data-cell")
    assert "tflite-fp32" in before and "tflite-runtime" in before and "Why:" in before
    if shutil.which("node"):
        from edge.report.pick import DEFAULT_BUDGETS, pick
        from edge.report.table import load_run, tidy

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DamagedRecordWarning)
            df = tidy(load_run(run_dir.parent, RUN_ID)[0])
        assert cell == pick(df, "host", **DEFAULT_BUDGETS, model=MOBILENET)["best"]["cell_id"]

    # the rest of the overview rendered: best-per-device grid, heatmaps, provenance
    assert page.locator("#best-table tbody tr").count() == 4
    assert page.locator("#best-table td[data-cell]").count() >= 1
    assert page.locator("#heatmaps .plot .main-svg").count() >= 5
    assert "emulated: estimate" in page.inner_text("body")
    page.wait_for_timeout(300)  # let plotly settle before the picture
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)

    # a max p90 just under the best one's p90 excludes it: the recommendation changes
    p90 = page.evaluate("""cell => JSON.parse(document.getElementById('edge-data').textContent)
        .rows.find(r => r.cell_id === cell).p90_ms""", cell)
    page.fill("#pick-p90", f"{p90 * 0.99:.6f}")
    page.wait_for_function("before => document.getElementById('pick-result').innerText "
                           "!== before", arg=before)
    after = page.inner_text("#pick-result")
    assert after != before
    assert page.locator("#pick-verdict").count() == 1  # nothing else is that fast
    assert "max p90" in after

    # dropping the budget, then the defaults button, bring the first answer back
    page.fill("#pick-p90", "")
    assert page.locator("#pick-best").get_attribute("data-cell") == cell
    page.click("#pick-reset")
    assert page.inner_text("#pick-result") == before

    # another device: a catalogued phone gets an estimate, with its evidence
    page.select_option("#pick-device", "moto_g4")
    page.wait_for_function("() => document.getElementById('pick-result').innerText"
                           ".includes('estimated')")
    phone = page.inner_text("#pick-result")
    assert "estimate (" in phone and "80 % interval" in phone
    assert watched.problems == []
    watched.close()


def test_model_page_sorts_and_filters(browser, run_dir):
    watched = Watched(browser)
    page = watched.open(run_dir / "model-mobilenet_v2.html")
    rows = page.locator("#cells tbody tr")
    assert rows.count() == 14
    headers = page.locator("#cells thead th")
    names = [t.strip() for t in headers.all_inner_texts()]
    p50 = next(i for i, n in enumerate(names) if n.startswith("p50"))

    def column() -> list[str]:
        return page.eval_on_selector_all(
            "#cells tbody tr:not([hidden])",
            f"rows => rows.map(r => r.cells[{p50}].getAttribute('data-v'))")

    page.locator("#cells thead th").nth(p50).locator("button").click()
    values = column()
    known = [float(v) for v in values if v]
    assert known == sorted(known) and len(known) == 11
    assert all(values[: len(known)]) and not any(values[len(known):])  # unknown last
    assert headers.nth(p50).get_attribute("aria-sort") == "ascending"
    page.locator("#cells thead th").nth(p50).locator("button").click()
    known = [float(v) for v in column() if v]
    assert known == sorted(known, reverse=True)
    assert headers.nth(p50).get_attribute("aria-sort") == "descending"

    page.fill("#cell-filter", "moto_g4 wasm")
    visible = page.locator("#cells tbody tr:not([hidden])")
    assert visible.count() == 2
    assert all("moto_g4" in t and "tfjs-wasm" in t for t in visible.all_inner_texts())
    assert page.inner_text("#cell-count") == "2 of 14 cells."

    # charts: a box plot per runtime with samples, the Pareto chart, cold against warm
    assert page.locator("#boxes .plot .main-svg").count() >= 5
    assert page.locator("#pareto .main-svg").count() >= 1
    assert page.locator("#coldwarm .main-svg").count() >= 1
    page.select_option("#pareto-device", "moto_g4")
    page.wait_for_timeout(200)
    page.screenshot(path=str(ARTIFACTS / "report-model.png"), full_page=True)
    assert watched.problems == []
    watched.close()


def test_other_pages_load_cleanly(browser, run_dir):
    watched = Watched(browser)
    for path in sorted(run_dir.glob("*.html")):
        page = watched.open(path)
        assert page.locator("h1").count() == 1, path.name
        if path.name.startswith("model-"):
            assert page.locator("#cells tbody tr").count() >= 1
    page = watched.open(run_dir / "failures.html")
    assert page.locator("section.failure").count() == 3
    assert "<script>alert(1)</script>" in page.inner_text("header")  # shown as text
    assert watched.problems == []
    watched.close()


def test_overview_of_a_run_with_the_quality_fields(browser, tmp_path):
    """The hand-made second fixture: failed self-checks stand out, the picker leaves the GPU cell
    of the emulated phone out, lists the tied variants and says what the figures are worth."""
    run = "20270110-090000-5e1f"
    reports = tmp_path / "reports"
    shutil.copytree(FIXTURES.parent / "results-v2" / run, reports / run)
    write_report(reports, run)
    watched = Watched(browser)
    page = watched.open(reports / run / "index.html")
    assert page.locator("#self-checks tr.check").count() == 5
    assert page.locator("#self-checks tr.check.fail").count() == 3
    assert page.locator("#self-checks tr.check.fail td").first.evaluate(
        "td => getComputedStyle(td).backgroundColor") != "rgba(0, 0, 0, 0)"

    page.select_option("#pick-model", MOBILENET)
    page.select_option("#pick-device", "pixel_5")
    best = page.locator("#pick-best")
    best.wait_for()
    assert "tfjs-uint8" in best.inner_text() and "tfjs-webgl" not in best.inner_text()
    tied = page.inner_text("#pick-tied")
    assert "tfjs-fp16" in tied and "tfjs-fp32" in tied
    notes = page.inner_text("#pick-notes")
    assert "emulated estimate (cgroup-v2, achieved slowdown 5.00 vs target 5.00)" in notes
    assert "1 GPU cell (tfjs-webgl) left out" in notes

    page.select_option("#pick-device", "moto_g4")
    assert "no p90: too few runs" in page.inner_text("#pick-result")
    page.wait_for_timeout(300)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-quality.png"), full_page=True)
    assert watched.problems == []
    watched.close()
