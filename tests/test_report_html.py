"""The HTML report from the committed fixture run: files, escaping, failures, the picker's rows,
`reports/latest`, offline assets. Fast: no browser (the picker runs under Node when present)."""

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

FIXTURES = Path(__file__).parent / "fixtures" / "results"
RUN_ID = "20261129-102929-9e7c"
XSS = "<script>alert(1)</script>"
STATIC = Path(report_html.__file__).parent / "static"

needs_node = pytest.mark.skipif(shutil.which(os.environ.get("EDGE_NODE") or "node") is None,
                                reason="Node.js runs picker.js")


def _write(reports: Path) -> Path:
    shutil.copytree(FIXTURES / RUN_ID, reports / RUN_ID)
    with warnings.catch_warnings():  # the fixture ends with a truncated record, on purpose
        warnings.simplefilter("ignore", DamagedRecordWarning)
        return write_report(reports, RUN_ID)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    reports = tmp_path_factory.mktemp("report") / "reports"
    index = _write(reports)
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
    index = _write(tmp_path / "reports")
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
    data = embedded(report["index"])
    rows = data["rows"]
    expected = json.loads(fixture_rows.drop(columns=["samples"]).to_json(orient="records",
                                                                         double_precision=15))
    assert [r["cell_id"] for r in rows] == list(fixture_rows["cell_id"])
    for got, want in zip(rows, expected, strict=True):
        assert "samples" not in got
        assert set(got) == set(want)
        for key in want:
            assert _same(got[key], want[key]), (got["cell_id"], key, got[key], want[key])
    assert data["models"] == list(dict.fromkeys(fixture_rows["model"]))
    devices = {d["id"]: d for d in data["devices"]}
    assert devices["moto_g4"]["emulated"] and not devices["host"]["emulated"]
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
    from edge.report.pick import DEFAULT_BUDGETS, pick, run_picker

    camel = {"max_p90_ms": "maxP90Ms", "max_size_mb": "maxSizeMb",
             "max_memory_mb": "maxMemoryMb", "min_fidelity": "minFidelity"}

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
    assert phone["best"] is None and phone["binding"] == "maxP90Ms"


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
    index = _write(reports)
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
        # error texts may quote URLs; what the page loads or links must be a local file
        for ref in re.findall(r'(?:src|href)="([^"]*)"', text):
            assert "//" not in ref and not ref.startswith("/"), (path.name, ref)
            target = ref.split("#", 1)[0]
            if target:
                assert (run_dir / target).is_file(), (path.name, ref)
        for src in re.findall(r'<script src="([^"]*)"', text):
            assert (run_dir / src).is_file()
    css = (run_dir / "report.css").read_text(encoding="utf-8")
    assert "@import" not in css and "url(" not in css
