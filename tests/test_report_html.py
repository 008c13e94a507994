"""The HTML report from the committed fixture runs: files, escaping, failures, the picker's rows,
self-checks, reference points, emulation and quality columns, `reports/latest`, offline assets.
Fast: no browser (the picker runs under Node when present)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import warnings
from html import escape
from pathlib import Path

import pytest

from edge.report import html as report_html
from edge.report.html import error_key, family_slugs, point_latest, script_json, write_report
from edge.report.table import load_run, tidy
from edge.results.store import DamagedRecordWarning

from .conftest import write_fixture_report

FIXTURES = Path(__file__).parent / "fixtures" / "results"
RUN_ID = "20261129-102929-9e7c"
XSS = "<script>alert(1)</script>"
DASH = "\u2014"
STATIC = Path(report_html.__file__).parent / "static"

needs_node = pytest.mark.skipif(shutil.which(os.environ.get("EDGE_NODE") or "node") is None,
                                reason="Node.js runs picker.js")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    reports = tmp_path_factory.mktemp("report") / "reports"
    index = write_fixture_report(reports)
    return {"reports": reports, "run_dir": reports / RUN_ID, "index": index}


@pytest.fixture(scope="module")
def fixture_rows():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedRecordWarning)
        records, _meta = load_run(FIXTURES, RUN_ID)
    return tidy(records)


def embedded(page: Path) -> dict:
    """The JSON a page embeds in <script id="edge-data">."""
    text = page.read_text(encoding="utf-8")
    match = re.search(r'<script id="edge-data" type="application/json">(.*?)</script>', text,
                      re.S)
    assert match, f"{page.name} embeds no data"
    return json.loads(match.group(1))


def pages(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("*.html"))


# -- files --------------------------------------------------------------------------------------

def test_returns_index_and_writes_every_file(report, fixture_rows):
    run_dir = report["run_dir"]
    assert report["index"] == run_dir / "index.html"
    families = list(dict.fromkeys(fixture_rows["family"]))
    slugs = family_slugs(families)
    assert len(families) == 4
    for name in ["index.html", "failures.html", "cells.parquet", "cells.csv", "plotly.min.js",
                 "picker.js", "report.js", "report.css"] + \
            [f"model-{slugs[f]}.html" for f in families]:
        assert (run_dir / name).is_file(), name
    assert {p.name for p in pages(run_dir)} == \
        {"index.html", "failures.html"} | {f"model-{s}.html" for s in slugs.values()}
    # the page uses the picker's own file, byte for byte (the CLI runs the same one)
    assert (run_dir / "picker.js").read_bytes() == (STATIC / "picker.js").read_bytes()
    import pandas as pd

    assert len(pd.read_parquet(run_dir / "cells.parquet")) == len(fixture_rows) == 17


def test_model_slugs_are_safe_and_unique():
    slugs = family_slugs(["mobilenet_v2", XSS, "a b", "a-b", "../x", ""])
    assert slugs["mobilenet_v2"] == "mobilenet_v2"
    assert len(set(slugs.values())) == len(slugs)
    assert all(re.fullmatch(r"[a-z0-9_.-]+", s) and not s.startswith(".") for s in
               slugs.values())


def test_writing_twice_is_fine(tmp_path):
    index = write_fixture_report(tmp_path / "reports")
    first = index.read_text(encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedRecordWarning)
        assert write_report(tmp_path / "reports", RUN_ID) == index
    assert index.read_text(encoding="utf-8") == first
    assert not list((tmp_path / "reports" / RUN_ID).glob(".*tmp"))


# -- escaping -----------------------------------------------------------------------------------

def test_script_json_cannot_close_the_script_element():
    value = {"a": "</script><!-- & \u2028\u2029", "n": float("nan"), "i": float("inf")}
    text = script_json(value)
    assert not set("<>&\u2028\u2029") & set(text)
    assert json.loads(text) == {"a": value["a"], "n": None, "i": None}


def test_hostile_model_name_is_escaped_everywhere(report):
    run_dir = report["run_dir"]
    written = pages(run_dir) + [run_dir / n for n in ("report.js", "picker.js", "report.css")]
    for path in written:
        assert XSS not in path.read_text(encoding="utf-8"), f"raw model name in {path.name}"
    index = (run_dir / "index.html").read_text(encoding="utf-8")
    assert escape(XSS) in index  # the nav and the model list, as text
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in index  # the embedded rows
    assert any(r["model"] == XSS for r in embedded(run_dir / "index.html")["rows"])
    # the only script elements are the report's own
    for path in pages(run_dir):
        for tag in re.findall(r"<script\b[^>]*>", path.read_text(encoding="utf-8")):
            assert tag == '<script id="edge-data" type="application/json">' or re.fullmatch(
                r'<script src="(plotly\.min|picker|report)\.js"></script>', tag + "</script>"), \
                (path.name, tag)
    slug = family_slugs([XSS])[XSS]
    hostile = (run_dir / f"model-{slug}.html").read_text(encoding="utf-8")
    assert f"<h1>{escape(XSS)}</h1>" in hostile


# -- failures -----------------------------------------------------------------------------------

def test_failures_page_lists_each_error_with_its_cells(report, fixture_rows):
    text = (report["run_dir"] / "failures.html").read_text(encoding="utf-8")
    bad = fixture_rows[fixture_rows["status"] != "ok"]
    assert sorted(bad["status"]) == ["failed", "unsupported", "unsupported"]
    for error in bad["error"]:
        assert escape(error_key(error)) in text
    assert escape("ValueError: Didn't find op for builtin opcode 'FULLY_CONNECTED'") in text
    assert "browser: Target page, context or browser has been closed" in text
    assert "127.0.0.1:&lt;port&gt;" in text  # the loopback port does not split a group
    assert text.count('class="card failure"') == 3
    # what broke comes before what is merely unsupported
    first = re.search(r'<section class="card failure" id="err-1">(.*?)</section>', text, re.S)
    assert "browser: Target page, context or browser has been closed" in first.group(1)
    assert "3 of 17 cells produced no measurement" in text
    for variant, runtime in zip(bad["variant"], bad["runtime"], strict=True):
        assert f"<td>{variant}</td><td>{runtime}</td>" in text


def test_error_key_is_the_first_line():
    assert error_key("boom\n  at x\n") == "boom"
    assert error_key("\n\n  second  \nthird") == "second"
    assert error_key(None) == error_key("") == "(no error text)"
    assert error_key("GET http://127.0.0.1:40113/a failed") == \
        error_key("GET http://127.0.0.1:39789/a failed")


def test_overview_links_failures_with_counts(report):
    text = report["index"].read_text(encoding="utf-8")
    banner = re.search(r'<p class="banner bad"><a href="failures.html">(.*?)</a></p>', text, re.S)
    assert banner and "3 of 17 cells" in banner.group(1)
    assert "1 failed" in banner.group(1) and "2 unsupported" in banner.group(1)
    for n, status in ((14, "ok"), (1, "failed"), (0, "timeout"), (2, "unsupported")):
        assert f"<b>{n}</b> {status}</span>" in text
    assert 'href="failures.html">Failures (3)</a>' in text


# -- the picker's rows --------------------------------------------------------------------------

def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def test_overview_embeds_the_tidy_rows_without_samples(report, fixture_rows):
    """The picker's rows: the measured (not emulated) cells as the tidy table has them, then
    every catalogued phone's estimates of the host's CPU cells."""
    from edge.estimate import catalog_phones

    data = embedded(report["index"])
    rows = data["rows"]
    measured = fixture_rows[~fixture_rows["emulated"]]
    expected = json.loads(measured.drop(columns=["samples"]).to_json(orient="records",
                                                                     double_precision=15))
    got_measured = [r for r in rows if r.get("estimated") is not True]
    assert [r["cell_id"] for r in got_measured] == list(measured["cell_id"])
    for got, want in zip(got_measured, expected, strict=True):
        assert "samples" not in got
        for key in want:
            assert _same(got[key], want[key]), (got["cell_id"], key, got[key], want[key])
    estimates = [r for r in rows if r.get("estimated") is True]
    phones = {p.name for p in catalog_phones()}
    assert {r["device"] for r in estimates} == phones  # every catalogued phone is answered
    host_cpu = measured[(measured["device"] == "host") & (measured["status"] == "ok")
                        & measured["runtime"].isin(["litert", "tfjs-wasm", "tflite-web",
                                                    "tflite-runtime", "litertjs-wasm"])]
    assert len(estimates) == len(host_cpu) * len(phones)
    for r in estimates:
        assert r["ci_lo_ms"] < r["p50_ms"] < r["ci_hi_ms"] and r["evidence"]
    assert data["models"] == list(dict.fromkeys(fixture_rows["model"]))
    devices = {d["id"]: d for d in data["devices"]}
    assert devices["moto_g4"]["estimated"] and not devices["host"]["emulated"]
    assert devices["moto_g4"]["calibration"][0]["factor"] == pytest.approx(3.7575)


def test_model_pages_embed_samples(report, fixture_rows):
    page = report["run_dir"] / "model-mobilenet_v2.html"
    rows = embedded(page)["rows"]
    want = fixture_rows[fixture_rows["family"] == "mobilenet_v2"]
    assert [r["cell_id"] for r in rows] == list(want["cell_id"])
    for got, samples in zip(rows, want["samples"], strict=True):
        assert got["samples"] == pytest.approx(samples, abs=1e-4)
    text = page.read_text(encoding="utf-8")
    assert text.count("<tr class=\"st-") == len(want) == 14
    assert "emulated: estimate" in text


@needs_node
def test_page_rows_and_picker_js_give_the_cli_pick(report, fixture_rows):
    """The page runs picker.js on its embedded rows; run the same file (through the CLI's
    wrapper) on those rows and on the tidy table: same answers, and the expected ones."""
    from edge.report.phones import phone_answer
    from edge.report.pick import DEFAULT_BUDGETS, pick, run_picker

    camel = {"max_p90_ms": "maxP90Ms", "max_size_mb": "maxSizeMb",
             "max_memory_mb": "maxMemoryMb", "min_fidelity": "minFidelity",
             "max_cold_ms": "maxColdMs", "accuracy_pass": "accuracyPass"}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records, meta = load_run(FIXTURES, RUN_ID)
    fixture_rows = phone_answer(fixture_rows, records, meta).rows
    rows = embedded(report["index"])["rows"]
    page_rows = json.dumps(rows)
    for model in dict.fromkeys(fixture_rows["model"]):
        for device in dict.fromkeys(fixture_rows["device"]):
            cli = pick(fixture_rows, device, **DEFAULT_BUDGETS, model=model) \
                if ((fixture_rows["model"] == model) & (fixture_rows["device"] == device)).any() \
                else None
            budgets = {camel[k]: v for k, v in DEFAULT_BUDGETS.items()} | {"model": model}
            page = run_picker(page_rows, budgets, device)
            if cli is None:
                assert page["best"] is None and page["candidates"] == 0
                continue
            assert (page["best"] or {}).get("cell_id") == (cli["best"] or {}).get("cell_id")
            assert page["verdict"] == cli["verdict"]
    mobilenet = "mobilenet_v2:size=64,alpha=0.35,classes=6"
    host = pick(fixture_rows, "host", **DEFAULT_BUDGETS, model=mobilenet)
    assert (host["best"]["variant"], host["best"]["runtime"]) == ("tflite-fp32", "tflite-runtime")
    phone = pick(fixture_rows, "moto_g4", **DEFAULT_BUDGETS, model=mobilenet)
    assert phone["best"]["estimated"] is True and phone["best"]["device"] == "moto_g4"


# -- latest, offline ----------------------------------------------------------------------------

def test_latest_points_at_the_run(report):
    latest = report["reports"] / "latest"
    assert latest.is_symlink() and os.readlink(latest) == RUN_ID  # relative
    assert latest.resolve() == report["run_dir"].resolve()
    assert (latest / "index.html").is_file()


def test_latest_is_replaced_and_falls_back_to_a_text_file(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    point_latest(tmp_path, "a")
    point_latest(tmp_path, "b")
    assert os.readlink(tmp_path / "latest") == "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "latest"]

    def no_symlinks(*args, **kwargs):
        raise OSError("symlinks are not supported here")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    assert point_latest(tmp_path, "a") == tmp_path / "latest.txt"
    assert (tmp_path / "latest.txt").read_text() == "a\n"
    assert not list(tmp_path.glob(".latest*"))


def test_latest_as_run_id_is_followed(tmp_path):
    reports = tmp_path / "reports"
    index = write_fixture_report(reports)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedRecordWarning)
        assert write_report(reports, "latest") == index  # never a link to itself
        assert write_report(reports, None) == index
    assert os.readlink(reports / "latest") == RUN_ID
    assert embedded(index)["run_id"] == RUN_ID


def test_a_run_without_records_still_renders(tmp_path):
    run_dir = tmp_path / "reports" / "empty"
    run_dir.mkdir(parents=True)
    shutil.copy(FIXTURES / RUN_ID / "run.json", run_dir / "run.json")
    index = write_report(tmp_path / "reports", "empty")
    assert "No cells are recorded" in index.read_text(encoding="utf-8")
    assert embedded(index)["rows"] == []
    assert (run_dir / "failures.html").is_file() and (run_dir / "cells.csv").is_file()


def test_report_works_offline(report):
    run_dir = report["run_dir"]
    plotly_js = (run_dir / "plotly.min.js").read_text(encoding="utf-8")
    assert len(plotly_js) > 1_000_000 and "Plotly" in plotly_js[:5000]
    for path in pages(run_dir):
        text = path.read_text(encoding="utf-8")
        assert "cdn.plot.ly" not in text
        # error texts may quote URLs, and published sources are cited with external links
        # (class "ext", never loaded); what the page loads or links otherwise must be local
        cited = re.findall(r'<a class="ext" href="([^"]*)" rel="noopener noreferrer"', text)
        assert all(url.startswith("https://") for url in cited)
        text = re.sub(r'<a class="ext" href="[^"]*"', "<a", text)
        for ref in re.findall(r'(?:src|href)="([^"]*)"', text):
            assert "//" not in ref and not ref.startswith("/"), (path.name, ref)
            target = ref.split("#", 1)[0]
            if target:
                assert (run_dir / target).is_file(), (path.name, ref)
        for src in re.findall(r'<script src="([^"]*)"', text):
            assert (run_dir / src).is_file()
    css = (run_dir / "report.css").read_text(encoding="utf-8")
    assert "@import" not in css and "url(" not in css


# -- what the figures are worth -----------------------------------------------------------------

V2 = FIXTURES.parent / "results-v2"
V2_RUN = "20270110-090000-5e1f"
MOBILENET = "mobilenet_v2:size=64,alpha=0.35,classes=6"


@pytest.fixture(scope="module")
def report_v2(tmp_path_factory):
    reports = tmp_path_factory.mktemp("report-v2") / "reports"
    shutil.copytree(V2 / V2_RUN, reports / V2_RUN)
    index = write_report(reports, V2_RUN)
    return {"reports": reports, "run_dir": reports / V2_RUN, "index": index}


def check_rows(text: str) -> dict[str, tuple[str, str]]:
    """Self-check name -> (row class, status text) from the overview."""
    section = re.search(r'<section id="self-checks".*?</section>', text, re.S).group(0)
    return {name: (cls, status) for cls, name, status in re.findall(
        r'<tr class="check (\w+)" data-check="([^"]+)"><td><span class="check-status \w+">'
        r"([A-Z/]+)</span>", section)}


def test_self_checks_of_old_records_are_listed_and_written(report):
    from edge.results.checks import CHECK_NAMES, self_checks

    text = report["index"].read_text(encoding="utf-8")
    rows = check_rows(text)
    assert list(rows) == list(CHECK_NAMES)
    assert rows == {"emulated-not-faster": ("pass", "PASS"),
                    "weight-variants-tie": ("pass", "PASS"),
                    "slowdown-on-target": ("na", "N/A"), "competing-load": ("na", "N/A"),
                    "no-emulated-gpu": ("pass", "PASS")}
    assert '<section id="self-checks" class="card checks">' in text  # nothing highlighted
    assert "3 of 5 self-checks passed, none failed" in text
    assert escape("no cell measured the load of other processes") in text

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedRecordWarning)
        records, _ = load_run(FIXTURES, RUN_ID)
    written = json.loads((report["run_dir"] / "checks.json").read_text(encoding="utf-8"))
    assert written["checks"] == self_checks(records) and written["passed"] is True
    assert embedded(report["index"])["checks"] == written["checks"]


def test_failed_self_checks_are_highlighted_with_their_details(report_v2):
    text = report_v2["index"].read_text(encoding="utf-8")
    rows = check_rows(text)
    assert {k: v[1] for k, v in rows.items()} == {
        "emulated-not-faster": "PASS", "weight-variants-tie": "PASS",
        "slowdown-on-target": "FAIL", "competing-load": "FAIL", "no-emulated-gpu": "FAIL"}
    assert rows["competing-load"][0] == "fail"
    assert '<section id="self-checks" class="card checks has-fail">' in text
    assert ("<b>3 of 5 self-checks failed</b> (slowdown-on-target, competing-load, "
            "no-emulated-gpu)") in text
    assert (f"<li>{escape(MOBILENET)} tfjs-fp16 tfjs-wasm pixel_5 t2: other processes used "
            f"0.62 cores</li>") in text
    assert "<details open><summary>1 detail</summary>" in text
    checks = json.loads((report_v2["run_dir"] / "checks.json").read_text(encoding="utf-8"))
    assert checks["passed"] is False and checks["counts"] == {"pass": 2, "fail": 3, "n/a": 0}


def test_provenance_shows_the_emulation_per_device(report, report_v2):
    text = report_v2["index"].read_text(encoding="utf-8")
    table = re.search(r'<table class="plain devices">.*?</table>', text, re.S).group(0)
    pixel = re.search(r"<tr><td>pixel_5</td>.*?</tr>", table, re.S).group(0)
    assert "<code>cgroup-v2</code>" in pixel and "(5 cells)" in pixel
    # achieved: 4.92, 4.95, 5.00, 5.03 and the webgl cell's 1.27
    assert "median 4.95\u00d7 (range 1.27\u00d7\u20135.03\u00d7, 5 cells) vs target 5\u00d7" \
        in pixel
    assert '<span class="off-target">1 off target</span>' in pixel
    assert "calibration workload: 4.93\u00d7" in pixel
    moto = re.search(r"<tr><td>moto_g4</td>.*?</tr>", table, re.S).group(0)
    assert "<code>devtools-main-thread</code>" in moto and "not measured (no host cell)" in moto
    assert ("tfjs-webgl: ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero) "
            "(0x0000C0DE)), SwiftShader driver) (software rendering) "
            '<span class="muted">(2 cells)</span>') in text  # Graphics, from the gpu field
    host = re.search(r"<tr><td>host</td>.*?</tr>", table, re.S).group(0)
    assert "code" not in host  # not emulated: no method
    devices = {d["id"]: d for d in embedded(report_v2["index"])["devices"]}
    assert devices["pixel_5"]["emulation"]["achieved_median"] == pytest.approx(4.9531)
    assert devices["host"]["emulation"] is None

    old = report["index"].read_text(encoding="utf-8")
    old_moto = re.search(r"<tr><td>moto_g4</td>.*?</tr>", old, re.S).group(0)
    assert old_moto.count("not recorded") == 2  # emulated, but the records predate the fields


def test_model_tables_show_interval_tie_group_emulation_load_and_gpu(report, report_v2):
    page = (report_v2["run_dir"] / "model-mobilenet_v2.html").read_text(encoding="utf-8")
    for header in ("95 % CI ms", "Tie", "Emulation", "Load", "Memory MB"):
        assert f'<button type="button" class="sort">{header}</button>' in page
    rows = re.findall(r'<tr class="st-[^"]*">.*?</tr>', page, re.S)

    def row(*words):
        found = [r for r in rows if all(w in r for w in words)]
        assert len(found) == 1, words
        return found[0]

    busy = row(">tfjs-fp16<", "pixel_5")
    assert '<span class="busy" title="measured under competing load">busy 0.62</span>' in busy
    assert "cgroup-v2<br>5.03\u00d7 / 5\u00d7" in busy
    assert "not steady" in busy
    assert re.search(r'title="\u00b1\d\.\d%[^"]*">39\.9\u201340\.9</td>', busy)
    assert 'title="renderer-peak-rss">287</td>' in busy
    gpu = row(">tfjs-webgl<", "pixel_5")
    assert '<span class="off-target">off target</span>' in gpu
    host_gpu = row(">tfjs-webgl<", ">host<")
    assert '<small class="renderer">ANGLE (Google, Vulkan 1.3.0 (SwiftShader' in host_gpu
    assert '<span class="badge soft">software</span>' in host_gpu
    few = row(">tfjs-uint8<", "moto_g4")
    assert "devtools-main-thread<br>\u2014 / 8\u00d7" in few
    tie = re.findall(r'<td class="num" data-v="([^"]*)">1</td>', row(">tfjs-uint8<", ">host<"))
    assert tie == ["1.0"]

    old = (report["run_dir"] / "model-mobilenet_v2.html").read_text(encoding="utf-8")
    body = re.search(r'<table id="cells".*?<tbody>(.*?)</tbody>', old, re.S).group(1)
    assert "busy" not in body and "off target" not in body  # nothing to say for old records
    assert "method not recorded" in body  # emulated rows without an emulation record
    assert "not steady" not in body and "\u2013" not in body  # no steadiness, no interval


def test_reference_points_table(report, report_v2, monkeypatch, tmp_path):
    import edge.reference_points as reference_points

    # the committed points: their phones are not in the fixture runs, so "not measured" rows
    text = report["index"].read_text(encoding="utf-8")
    section = re.search(r'<section id="reference-points".*?</section>', text, re.S).group(0)
    assert section.count('<tr class="unmeasured">') >= 1
    assert '<a class="ext" href="https://github.com/' in section
    assert embedded(report["index"])["references"]

    rows = [{"phone": "pixel_5", "phone_label": "Pixel 5", "model": MOBILENET,
             "variant": "tfjs-fp32", "runtime": "tfjs-wasm", "threads": 2,
             "reference_ms": 30.0, "estimate_ms": 39.7298, "ci95": [39.2619, 40.2379],
             "ratio": 39.7298 / 30.0, "method": "cgroup-v2",
             "source": "https://example.org/published", "note": None},
            {"phone": "pixel_5", "model": MOBILENET, "variant": "tfjs-uint8",
             "runtime": "tfjs-wasm", "threads": 2, "reference_ms": 31.0, "estimate_ms": 39.7652,
             "ci95": None, "ratio": 39.7652 / 31.0, "method": "cgroup-v2",
             "source": "https://github.com/owner/repo/blob/0123abc/docs/README.md",
             "note": "<b>quoted</b>"},
            {"phone": "moto_g4", "model": "mobilenet_v2", "variant": "tfjs-fp32",
             "runtime": "tfjs-wasm", "threads": None, "reference_ms": 120.0,
             "estimate_ms": None, "ci95": None, "ratio": None, "method": None,
             "source": "javascript:alert(1)", "note": "not measured in this run"}]
    monkeypatch.setattr(reference_points, "compare_with_records", lambda points, records: rows)
    reports = tmp_path / "reports"
    shutil.copytree(V2 / V2_RUN, reports / V2_RUN)
    index = write_report(reports, V2_RUN)
    text = index.read_text(encoding="utf-8")
    section = re.search(r'<section id="reference-points".*?</section>', text, re.S).group(0)
    measured, long_url, unmeasured = re.findall(r"<tr( class=\"unmeasured\")?>(.*?)</tr>",
                                                section, re.S)[1:]
    assert measured[0] == "" and unmeasured[0] == ' class="unmeasured"'
    cells = re.findall(r"<td[^>]*>(.*?)</td>", measured[1], re.S)
    assert cells[0] == 'pixel_5 <span class="muted">(Pixel 5)</span>'
    assert cells[5] == "30.0"
    assert cells[6] == ('<a class="ext" href="https://example.org/published" '
                        'rel="noopener noreferrer" title="https://example.org/published">'
                        'example.org/published</a>')
    assert cells[7] == '39.7 <span class="muted">[39.3, 40.2]</span>'
    assert cells[8] == "\u00d71.32"
    cells = re.findall(r"<td[^>]*>(.*?)</td>", long_url[1], re.S)
    assert cells[6].endswith('>github.com/owner/repo \u2026 README.md</a>')
    assert cells[7] == "39.8"  # no interval recorded
    assert cells[-1] == "&lt;b&gt;quoted&lt;/b&gt;"
    cells = re.findall(r"<td[^>]*>(.*?)</td>", unmeasured[1], re.S)
    assert cells[-1] == ""  # "not measured" is said once, in the estimate column
    assert cells[6] == "javascript:alert(1)"  # not an http(s) URL: text, not a link
    assert cells[7] == '<span class="muted">not measured</span>' and cells[8] == DASH
    assert embedded(index)["references"][0]["ratio"] == pytest.approx(1.324327)

    def broken(*args, **kwargs):
        raise reference_points.ReferencePointError("devices/reference_points.toml: boom")

    monkeypatch.setattr(reference_points, "load_reference_points", broken)
    index = write_report(reports, V2_RUN)  # still written
    text = index.read_text(encoding="utf-8")
    assert "the reference points could not be read: devices/reference_points.toml: boom" in text
    assert embedded(index)["references"] == []


@needs_node
def test_page_picker_gets_the_references(report_v2):
    from edge.report.pick import run_picker

    data = embedded(report_v2["index"])
    budgets = {"maxP90Ms": 200, "maxSizeMb": 10, "minFidelity": 0.9, "model": "mobilenet_v2"}
    result = run_picker(json.dumps(data["rows"]), budgets, "pixel_5", data["references"])
    assert result["best"]["variant"] == "tfjs-uint8" and result["gpuExcluded"] == 1
    assert len(result["tied"]) == 2


def test_report_command_prints_the_self_checks(tmp_path, capsys):
    from edge.cli import main

    reports = tmp_path / "reports"
    shutil.copytree(V2 / V2_RUN, reports / V2_RUN)
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--reports-dir", str(reports), "--run", V2_RUN])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "Self-checks" in out and f"report: {reports / V2_RUN / 'index.html'}" in out
    for status, name in (("PASS", "emulated-not-faster"), ("FAIL", "competing-load"),
                         ("FAIL", "no-emulated-gpu")):
        assert re.search(rf"{status}\s*\S\s*{name}", out), (status, name)


def test_model_pages_show_runtime_pairs_side_by_side():
    import pandas as pd

    from edge.report.html import _runtime_pairs_section

    def row(variant, runtime, status="ok", p50=None, lo=None, hi=None, fid="pass",
            device="host", threads=2.0):
        return {"model": "m", "variant": variant, "runtime": runtime, "status": status,
                "p50_ms": p50, "ci_lo_ms": lo, "ci_hi_ms": hi, "fidelity_status": fid,
                "device": device, "threads": threads}

    group = pd.DataFrame([
        row("tflite-fp32", "litertjs-wasm", p50=14.3, lo=14.0, hi=14.7),
        row("tflite-fp32", "tflite-web", p50=14.2, lo=13.4, hi=14.8),
        row("tflite-int8-dynamic", "litertjs-wasm", p50=93.9, lo=92.0, hi=99.9, fid="warn"),
        row("tflite-int8-dynamic", "tflite-web", status="unsupported", fid=None),
        # on another device only one of the pair ran: no table for it
        row("tflite-fp32", "litertjs-wasm", p50=30.0, lo=29.0, hi=31.0, device="pixel_5"),
        row("tflite-fp32", "litert", p50=4.1, lo=4.0, hi=4.2),
    ])
    html = _runtime_pairs_section(group)
    assert html.count("<table") == 1 and "pixel_5" not in html
    assert "LiteRT.js against its legacy predecessor tfjs-tflite" in html
    assert "14.3 ms [14.0, 14.7] · fidelity pass" in html and "<td>1.01</td>" in html
    assert "unsupported" in html  # what the legacy runtime cannot run, with no ratio
    assert _runtime_pairs_section(group[group["runtime"] == "litert"]) == ""
