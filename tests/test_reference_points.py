"""Reference points: the committed file of published phone latencies, its validation, and the
comparison of a run's emulated estimates with those figures."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import replace

import pytest
from rich.console import Console

from edge.errors import EdgeError
from edge.farm.emulation.devices import DEFAULT_CATALOG, load_catalog
from edge.garden import REGISTRY
from edge.reference_points import (
    DEFAULT_REFERENCE_POINTS,
    NOT_MEASURED,
    REFERENCE_ONLY_RUNTIMES,
    ReferencePoint,
    ReferencePointError,
    compare_with_records,
    format_table,
    load_reference_points,
    short_source,
)
from edge.variants import VARIANTS

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CATALOG = {"pixel_3": {"tier": "mid"}, "pixel_4": {"tier": "high"}, "host": {"tier": "host"}}


def _committed_catalog():
    text = DEFAULT_CATALOG.read_text(encoding="utf-8")
    descriptors = {p["descriptor"] for p in tomllib.loads(text)["profiles"].values()
                   if p.get("descriptor")}
    return load_catalog(DEFAULT_CATALOG, descriptors=descriptors)


# --- the committed file -------------------------------------------------------------------------


def test_committed_file_loads_against_the_committed_catalog():
    catalog = _committed_catalog()
    points = load_reference_points(DEFAULT_REFERENCE_POINTS, catalog=catalog)
    assert len(points) >= 10
    assert len({p.id for p in points}) == len(points)
    assert sum(p.comparable for p in points) >= 3
    for p in points:
        profile = catalog[p.phone]
        assert not profile.is_host and profile.emulated and profile.descriptor, p.id
    # Without a catalog argument the names come from the same file: the same points.
    assert load_reference_points() == points


def test_every_excerpt_contains_its_figure_as_a_number():
    for p in load_reference_points():
        tokens = [float(t) for t in re.findall(r"\d+(?:\.\d+)?", p.excerpt)]
        assert p.latency_ms in tokens, (p.id, p.latency_ms)
        assert p.latency_ms > 0


def test_committed_points_are_consistent_with_edge_vocabulary():
    points = load_reference_points()
    for p in points:
        assert p.variant in VARIANTS, p.id
        assert p.source_commit in p.source_url, p.id
        assert p.source_url.startswith("https://github.com/"), p.id
        if p.comparable:
            assert p.model in REGISTRY, p.id
            assert p.runtime not in REFERENCE_ONLY_RUNTIMES, p.id
        if p.runtime in REFERENCE_ONLY_RUNTIMES:
            assert not p.comparable and p.threads is None, p.id
    comparable_cells = {(p.model, p.variant, p.runtime, p.phone, p.threads)
                        for p in points if p.comparable}
    assert ("mobilenet_v2", "tflite-fp32", "litert", "pixel_3", 4) in comparable_cells
    assert ("mobilenet_v2", "tfjs-fp32", "tfjs-wasm", "pixel_4", 1) in comparable_cells


# --- validation ---------------------------------------------------------------------------------


def _entry(**overrides) -> dict:
    entry = {
        "id": "src-mobilenet_v2-pixel_3-cpu", "phone": "pixel_3", "phone_label": "Pixel 3",
        "model": "mobilenet_v2", "model_note": "width 1.0, 224x224, float",
        "runtime": "litert", "variant": "tflite-fp32", "threads": 4, "features": "",
        "latency_ms": 17.5, "comparable": True,
        "source_url": f"https://github.com/o/r/blob/{COMMIT}/doc.md", "source_commit": COMMIT,
        "excerpt": "| Model | CPU, 4 threads |\n| MobileNet | 17.5 ms |", "note": "",
    }
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not None}


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    return repr(value)


def _write(tmp_path, *entries, extra: str = "") -> str:
    lines = [extra] if extra else []
    for entry in entries:
        lines.append("[[points]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in entry.items()]
        lines.append("")
    path = tmp_path / "points.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def test_a_valid_file_loads_every_field(tmp_path):
    path = _write(tmp_path, _entry(), _entry(id="b", threads=None, runtime="litert-gpu",
                                             comparable=False, features="fp16-precision"))
    first, second = load_reference_points(path, catalog=CATALOG)
    assert first == ReferencePoint(
        id="src-mobilenet_v2-pixel_3-cpu", phone="pixel_3", phone_label="Pixel 3",
        model="mobilenet_v2", model_note="width 1.0, 224x224, float", runtime="litert",
        variant="tflite-fp32", threads=4, features="", latency_ms=17.5,
        source_url=f"https://github.com/o/r/blob/{COMMIT}/doc.md", source_commit=COMMIT,
        excerpt="| Model | CPU, 4 threads |\n| MobileNet | 17.5 ms |", comparable=True, note="")
    assert second.threads is None and second.runtime == "litert-gpu"
    assert second.features == "fp16-precision"


BAD = [
    ({"latecy_ms": 3.0}, None, "unknown field 'latecy_ms'"),
    ({"excerpt": None}, None, "missing field 'excerpt'"),
    ({"latency_ms": 18.5}, "excerpt", "the figure 18.5 does not appear in the excerpt"),
    ({"latency_ms": 17}, "excerpt", "the figure 17 does not appear"),  # "17.5" is one token
    ({"latency_ms": "17.5"}, "latency_ms", "must be a number > 0, got '17.5'"),
    ({"latency_ms": -1.0}, "latency_ms", "must be a number > 0"),
    ({"phone": "pixel_9"}, "phone", "must be a profile of the device catalog, got 'pixel_9'"),
    ({"phone": "host"}, "phone", "must be a phone, not the host profile"),
    ({"runtime": "onnx"}, "runtime", "must be one of litert"),
    ({"variant": "tflite-int4"}, "variant", "must be one of tflite-fp32"),
    ({"runtime": "tfjs-wasm"}, "variant", "'tflite-fp32' is a tflite variant; runtime "
                                          "'tfjs-wasm' runs tfjs"),
    ({"threads": 0}, "threads", "must be an integer >= 1"),
    ({"threads": True}, "threads", "must be an integer >= 1"),
    ({"threads": 2.5}, "threads", "must be an integer >= 1"),
    ({"comparable": "yes"}, "comparable", "must be true or false"),
    ({"runtime": "litert-gpu", "threads": None}, "comparable",
     "must be false: edge does not measure runtime 'litert-gpu'"),
    ({"model": "mobilenet_v1"}, "comparable", "must be false: the garden has no model "
                                              "'mobilenet_v1'"),
    ({"model": "MobileNet V1", "comparable": False}, "model", "must be a slug"),
    ({"source_commit": "abc123"}, "source_commit", "full 40-digit"),
    ({"source_url": "http://example.com/doc"}, "source_url", "must be an https:// URL"),
    ({"source_url": "https://github.com/o/r/blob/main/doc.md"}, "source_url",
     "does not point at source_commit"),
    ({"model_note": "  "}, "model_note", "must not be empty"),
    ({"note": 3}, "note", "must be a string, got 3"),
    ({"id": "Has Space"}, "id", "must be a slug"),
]


@pytest.mark.parametrize("overrides, field, message", BAD)
def test_validation_errors_name_the_file_the_point_and_the_field(tmp_path, overrides, field,
                                                                 message):
    good = _entry(id="good-one")
    bad = _entry(id="the-bad-one")
    bad.update(overrides)
    bad = {k: v for k, v in bad.items() if v is not None}
    path = _write(tmp_path, good, bad)
    with pytest.raises(ReferencePointError) as info:
        load_reference_points(path, catalog=CATALOG)
    text = str(info.value)
    assert isinstance(info.value, EdgeError)
    assert "points.toml" in text
    assert message in text
    assert info.value.path == path
    assert f"point {bad['id']!r}" in text and info.value.point == repr(bad["id"])
    assert info.value.field == field
    if field:
        assert f"field {field!r}" in text


def test_a_point_without_an_id_is_named_by_its_position(tmp_path):
    path = _write(tmp_path, _entry(), _entry(id=None))
    with pytest.raises(ReferencePointError, match=r"points\.toml: point #2: missing field 'id'"):
        load_reference_points(path, catalog=CATALOG)


def test_duplicate_ids_are_an_error(tmp_path):
    path = _write(tmp_path, _entry(id="same"), _entry(id="same", threads=1))
    with pytest.raises(ReferencePointError, match=r"point 'same': field 'id' is a duplicate"):
        load_reference_points(path, catalog=CATALOG)


def test_file_level_errors_name_the_file(tmp_path):
    path = _write(tmp_path, _entry(), extra="version = 2")
    with pytest.raises(ReferencePointError, match=r"points\.toml: unknown top-level key"):
        load_reference_points(path, catalog=CATALOG)
    path.write_text("[[points]\nid = 'x'\n", encoding="utf-8")
    with pytest.raises(ReferencePointError, match=r"points\.toml: not valid TOML"):
        load_reference_points(path, catalog=CATALOG)
    with pytest.raises(ReferencePointError, match=r"missing\.toml: cannot read"):
        load_reference_points(tmp_path / "missing.toml", catalog=CATALOG)


def test_catalog_profiles_may_be_device_profiles(tmp_path):
    catalog = _committed_catalog()
    path = _write(tmp_path, _entry(phone="pixel_4"))
    assert load_reference_points(path, catalog=catalog)[0].phone == "pixel_4"
    with pytest.raises(ReferencePointError, match="not the host profile"):
        load_reference_points(_write(tmp_path, _entry(phone="host")), catalog=catalog)


# --- comparing with a run -----------------------------------------------------------------------

POINT = ReferencePoint(
    id="p-fp32", phone="pixel_3", phone_label="Pixel 3", model="mobilenet_v2",
    model_note="float", runtime="litert", variant="tflite-fp32", threads=4, features="",
    latency_ms=20.0, source_url=f"https://github.com/o/r/blob/{COMMIT}/a.md",
    source_commit=COMMIT, excerpt="| 20 ms |", comparable=True)


def _record(**overrides) -> dict:
    record = {"run_id": "run-1", "cell_id": "c1", "model": "mobilenet_v2",
              "variant": "tflite-fp32", "runtime": "litert", "device": "pixel_3", "threads": 4,
              "status": "ok",
              "metrics": {"latency": {"p50": 30.0, "ci95": [28.0, 33.0], "n": 40}},
              "emulation": {"method": "cgroup-v2", "target_slowdown": 3.0,
                            "achieved_slowdown": 3.1, "off_target": False}}
    record.update(overrides)
    return record


def test_compare_matches_records_and_computes_the_ratio():
    records = [
        _record(),
        _record(cell_id="other-threads", threads=2, metrics={"latency": {"p50": 99.0}}),
        _record(cell_id="other-device", device="pixel_4"),
        _record(cell_id="other-variant", variant="tflite-fp16"),
        _record(cell_id="other-runtime", runtime="tflite-runtime"),
        _record(cell_id="other-model", model="mobilenet_v3"),
        _record(cell_id="failed", status="failed", metrics=None),
    ]
    (row,) = compare_with_records([POINT], records)
    assert row["cell_id"] == "c1" and row["run_id"] == "run-1"
    assert row["estimate_ms"] == 30.0 and row["reference_ms"] == 20.0
    assert row["ratio"] == pytest.approx(1.5)
    assert row["ci95"] == [28.0, 33.0]
    assert row["method"] == "cgroup-v2" and row["off_target"] is False
    assert row["source"] == POINT.source_url and row["note"] is None
    assert (row["id"], row["phone"], row["threads"]) == ("p-fp32", "pixel_3", 4)


def test_compare_matches_by_model_family_and_any_threads_when_the_point_gives_none():
    point = replace(POINT, id="p-any", model="deeplab_v3", threads=None, latency_ms=40.0)
    records = [
        _record(cell_id="pascal", model="deeplab_v3:head=pascal", threads=1,
                metrics={"latency": {"p50": 20.0}}, emulation=None),
        _record(cell_id="ade", model="deeplab_v3:head=ade20k", threads=2,
                metrics={"latency": {"p50": 80.0, "ci95": None}}),
    ]
    rows = compare_with_records([point], records)
    assert [(r["cell_id"], r["model"], r["threads"]) for r in rows] == [
        ("pascal", "deeplab_v3:head=pascal", 1), ("ade", "deeplab_v3:head=ade20k", 2)]
    assert [r["ratio"] for r in rows] == [pytest.approx(0.5), pytest.approx(2.0)]
    assert rows[0]["method"] is None and rows[0]["ci95"] is None and rows[1]["ci95"] is None


def test_compare_reports_unmatched_and_skips_non_comparable_points():
    unmatched = replace(POINT, id="p-int8", variant="tflite-int8-full")
    only_failed = replace(POINT, id="p-failed", phone="pixel_4")
    reference_only = replace(POINT, id="p-gpu", runtime="litert-gpu", comparable=False)
    records = [_record(), _record(device="pixel_4", status="timeout", metrics=None),
               _record(runtime="litert-gpu")]
    rows = {r["id"]: r for r in compare_with_records(
        [POINT, unmatched, only_failed, reference_only], records)}
    assert set(rows) == {"p-fp32", "p-int8", "p-failed"}
    for key in ("p-int8", "p-failed"):
        assert rows[key]["estimate_ms"] is None and rows[key]["ratio"] is None
        assert rows[key]["note"].startswith(NOT_MEASURED)
        assert rows[key]["reference_ms"] == 20.0 and rows[key]["source"] == POINT.source_url
    assert rows["p-int8"]["note"] == NOT_MEASURED
    assert "timeout" in rows["p-failed"]["note"]
    assert rows["p-fp32"]["ratio"] == pytest.approx(1.5)


def test_compare_with_an_ok_record_without_a_median():
    (row,) = compare_with_records([POINT], [_record(metrics={"latency": {}})])
    assert row["estimate_ms"] is None and row["ratio"] is None
    assert "no latency p50" in row["note"]


def test_compare_against_the_committed_points_reports_each_comparable_point():
    points = load_reference_points()
    rows = compare_with_records(points, [])
    assert [r["id"] for r in rows] == [p.id for p in points if p.comparable]
    assert all(r["note"] == NOT_MEASURED for r in rows)


def test_format_table_shows_ratios_and_notes():
    unmatched = replace(POINT, id="p-int8", variant="tflite-int8-full")
    off = _record(cell_id="c2", threads=4, metrics={"latency": {"p50": 50.0}},
                  emulation={"method": "devtools-main-thread", "off_target": True})
    rows = compare_with_records([POINT, unmatched],
                                [_record(), off])
    table = format_table(rows)
    assert table.row_count == 3
    console = Console(width=400, record=True, color_system=None)
    console.print(table)
    text = console.export_text()
    for cell in ("p-fp32", "p-int8", "1.50x", "2.50x (off target)", "30.0 (28.0-33.0)",
                 "cgroup-v2", "devtools-main-thread", NOT_MEASURED, "20.0",
                 f"o/r a.md@{COMMIT[:8]}"):
        assert cell in text, cell
    assert short_source("https://example.com/x.md") == "https://example.com/x.md"
