"""Sharded runs and `edge merge`: `--shard i/n` takes a stable slice of the matrix, the shards
together hold every cell once, and merging their runs gives one run that the report and the
picker read like any other, refusing duplicate cells and mismatched artifacts."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from edge.cli import main
from edge.errors import EdgeError
from edge.farm.scheduling.matrix import Cell
from edge.farm.scheduling.shards import Shard, parse_shard, shard_cells, shard_key
from edge.results.merge import MergeError, merge_runs
from edge.results.store import (
    DamagedRecordWarning,
    ResultStore,
    make_record,
    provenance,
    public_endpoint,
)
from tests.conftest import RESULTS_FIXTURE, RESULTS_RUN


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out = capsys.readouterr()
    return exc.value.code, out.out + out.err


# -- --shard ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,shard", [("1/2", Shard(1, 2)), ("2/2", Shard(2, 2)),
                                        (" 3 / 4 ", Shard(3, 4)), ("1/1", Shard(1, 1))])
def test_parse_shard(text, shard):
    assert parse_shard(text) == shard
    assert str(parse_shard(text)) == text.replace(" ", "")


@pytest.mark.parametrize("text", ["0/2", "3/2", "x", "1/0", "-1/2", "1/2/3", "", "1.5/2"])
def test_a_bad_shard_is_an_error_naming_the_flag(text):
    with pytest.raises(EdgeError, match="--shard"):
        parse_shard(text)


@pytest.mark.parametrize("value,message", [
    ("0/2", "between 1 and 2"), ("3/2", "between 1 and 2"), ("x", "expected i/n")])
def test_bench_refuses_a_bad_shard_with_exit_2(capsys, value, message):
    code, out = run(capsys, "bench", "--shard", value)
    assert code == 2
    assert "'--shard'" in out and message in out and "Traceback" not in out


def test_help_of_the_new_command_and_option(capsys):
    code, out = run(capsys, "merge", "--help")
    assert code == 0 and "--into" in out and "RUN_ID..." in out
    code, out = run(capsys, "bench", "--help")
    assert code == 0 and "--shard I/N" in out


class Profile:
    def __init__(self, endpoint=None):
        self.endpoint = endpoint


CATALOG = {"host": Profile(), "moto_g4": Profile(), "pixel_usb": Profile("http://127.0.0.1:9222")}


def _cells():
    cells = []
    for model in ("mobilenet_v2", "deeplab_v3:head=ade20k", "psenet"):
        for variant, runtime in (("tflite-fp32", "litert"), ("tflite-fp16", "litert"),
                                 ("tfjs-fp32", "tfjs-wasm"), ("tfjs-uint8", "tfjs-wasm")):
            for device in ("host", "moto_g4", "pixel_usb"):
                for threads in (None, 1, 2):
                    cells.append(Cell(model, variant, runtime, device, threads))
    return cells


@pytest.mark.parametrize("n", [1, 2, 3, 5, 100])
def test_shards_partition_the_cells(n):
    cells = _cells()
    shards = [shard_cells(cells, Shard(i, n), CATALOG) for i in range(1, n + 1)]
    together = [c for s in shards for c in s]
    assert sorted(together, key=str) == sorted(cells, key=str)  # every cell, none twice
    if n <= 24:
        assert all(shards)  # 24 local groups + remote ones: none empty
    for s in shards:  # a shard keeps the matrix's order
        assert s == [c for c in cells if c in set(s)]


def test_shards_are_stable_whatever_the_order_of_the_cells():
    cells = _cells()
    shuffled = cells[::-1][1::2] + cells[::-1][0::2]
    for i in (1, 2, 3):
        assert set(shard_cells(cells, Shard(i, 3), CATALOG)) == \
            set(shard_cells(shuffled, Shard(i, 3), CATALOG))


def test_a_comparison_group_stays_in_one_shard():
    """Thread counts are resolved per machine, and a model's variants on the host and the
    emulated phones are measured together, interleaved: they share a shard. A remote device's
    cells are dealt on their own."""
    cells = _cells()
    for i in (1, 2, 3, 4):
        mine = shard_cells(cells, Shard(i, 4), CATALOG)
        for c in mine:
            if c.device != "pixel_usb":
                for variant in {v for m, v, r, *_ in [(x.model, x.variant, x.runtime)
                                                       for x in cells]
                                if m == c.model and r == c.runtime}:
                    assert Cell(c.model, variant, c.runtime, "host", 2) in mine
                    assert Cell(c.model, variant, c.runtime, "moto_g4", None) in mine
    assert shard_key(cells[0], {"pixel_usb"}) == "mobilenet_v2|litert"
    remote = Cell("psenet", "tfjs-fp32", "tfjs-wasm", "pixel_usb", None)
    assert shard_key(remote, {"pixel_usb"}) == "psenet|tfjs-fp32|tfjs-wasm|pixel_usb"


def test_no_shard_is_every_cell():
    cells = _cells()
    assert shard_cells(cells, None, CATALOG) == cells


# -- provenance ---------------------------------------------------------------------------------

@pytest.mark.parametrize("endpoint,public", [
    (None, "local"), ("", "local"),
    ("ws://127.0.0.1:3000/abc", "ws://127.0.0.1:3000/abc"),
    ("http://127.0.0.1:9222", "http://127.0.0.1:9222"),
    ("wss://user:s3cret@127.0.0.1:443/playwright?caps=%7B%22key%22%3A%22s3cret%22%7D",
     "wss://127.0.0.1:443/playwright"),
    ("http://[::1]:9222/#frag", "http://[::1]:9222/"),
])
def test_an_endpoint_is_recorded_without_credentials(endpoint, public):
    assert public_endpoint(endpoint) == public
    prov = provenance(endpoint, "1/2")
    assert prov["endpoint"] == public and prov["shard"] == "1/2"
    assert set(prov["machine"]) == {"hostname", "platform"}
    assert "s3cret" not in json.dumps(prov)


# -- merge: the logic, on hand-written records --------------------------------------------------

SHA_A = "a" * 64
SHA_B = "b" * 64
PROTOCOL = {"warmup": 1, "min_runs": 3, "min_seconds": 0.2, "max_runs": 20, "timeout_s": 60.0}


def _write_run(reports: Path, run_id: str, cells, sha=SHA_A, shard=None, protocol=PROTOCOL):
    store = ResultStore(reports / run_id)
    store.write_meta({"run_id": run_id, "preset": "default", "tiny": True, "shard": shard,
                      "cells": len(cells), "models": ["m"], "variants": ["tflite-fp32"],
                      "protocol": protocol, "host": {"hostname": f"machine-{run_id}"}})
    for device, threads in cells:
        store.append(make_record(
            cell={"model": "m", "variant": "tflite-fp32", "runtime": "litert",
                  "device": device, "threads": threads},
            status="ok", run_id=run_id, artifact_sha256=sha,
            metrics={"latency": {"p50": 1.0, "n": 3}},
            extra={"provenance": provenance(None, shard)}))
    return store


def test_merge_combines_runs_and_keeps_provenance(tmp_path):
    _write_run(tmp_path, "a", [("host", 1), ("host", 2)], shard="1/2")
    _write_run(tmp_path, "b", [("host", 3)], shard="2/2")
    merged = merge_runs(tmp_path, ["a", "b"], into="ab")
    assert merged.run_dir == tmp_path / "ab"
    records = ResultStore(tmp_path / "ab").records()
    assert [r["cell_id"][-2:] for r in records] == ["t1", "t2", "t3"]
    assert [r["run_id"] for r in records] == ["a", "a", "b"]  # the run that measured each
    assert [r["provenance"]["shard"] for r in records] == ["1/2", "1/2", "2/2"]
    meta = json.loads((tmp_path / "ab" / "run.json").read_text())
    assert meta["run_id"] == "ab" and meta["cells"] == 3 and meta["protocol"] == PROTOCOL
    assert [m["run_id"] for m in meta["merged_from"]] == ["a", "b"]
    assert [m["shard"] for m in meta["merged_from"]] == ["1/2", "2/2"]
    assert "host" not in meta  # two machines: each record says which
    assert meta["preset"] == "default" and meta["tiny"] is True  # common to both runs
    assert json.loads((tmp_path / "ab" / "checks.json").read_text())["checks"]
    assert merged.notes == []


def test_settings_the_runs_disagree_on_are_listed_per_run(tmp_path):
    _write_run(tmp_path, "a", [("host", 1)])
    store = _write_run(tmp_path, "b", [("host", 2)])
    store.write_meta({**store.read_meta(), "preset": "smoke"})
    meta = merge_runs(tmp_path, ["a", "b"], into="ab").meta
    assert "preset" not in meta and meta["tiny"] is True
    assert [m["preset"] for m in meta["merged_from"]] == ["default", "smoke"]


def test_a_merge_in_progress_is_not_a_run(tmp_path):
    from edge.results.store import list_runs

    _write_run(tmp_path, "a", [("host", 1)])
    _write_run(tmp_path, ".merge-x.tmp", [("host", 1)])
    assert list_runs(tmp_path) == ["a"]


def test_merge_notes_a_missing_shard(tmp_path):
    _write_run(tmp_path, "a", [("host", 1)], shard="1/3")
    _write_run(tmp_path, "c", [("host", 3)], shard="3/3")
    assert "2/3" in merge_runs(tmp_path, ["a", "c"]).notes[0]


def test_merge_refuses_a_cell_in_two_runs_naming_the_cell_and_both_runs(tmp_path):
    _write_run(tmp_path, "first", [("host", 1), ("host", 2)])
    _write_run(tmp_path, "second", [("host", 2)])
    with pytest.raises(MergeError) as exc:
        merge_runs(tmp_path, ["first", "second"], into="both")
    text = str(exc.value)
    assert "m|tflite-fp32|litert|host|t2" in text and "first" in text and "second" in text
    assert {p.name for p in tmp_path.iterdir()} == {"first", "second"}  # nothing left over


def test_merge_refuses_an_artifact_whose_sha256_differs(tmp_path):
    _write_run(tmp_path, "one", [("host", 1)], sha=SHA_A)
    _write_run(tmp_path, "two", [("host", 2)], sha=SHA_B)
    with pytest.raises(MergeError) as exc:
        merge_runs(tmp_path, ["one", "two"], into="both")
    text = str(exc.value)
    assert "artifact m tflite-fp32" in text and "one" in text and "two" in text
    assert SHA_A[:12] in text and SHA_B[:12] in text
    assert {p.name for p in tmp_path.iterdir()} == {"one", "two"}


def test_merge_refuses_different_protocols(tmp_path):
    _write_run(tmp_path, "one", [("host", 1)])
    _write_run(tmp_path, "two", [("host", 2)], protocol={**PROTOCOL, "min_runs": 50})
    with pytest.raises(MergeError, match="different protocols"):
        merge_runs(tmp_path, ["one", "two"])


def test_merge_cli_errors_exit_2_with_one_line(capsys, tmp_path):
    _write_run(tmp_path, "one", [("host", 1)])
    _write_run(tmp_path, "two", [("host", 1)])
    reports = ["--reports-dir", str(tmp_path)]
    code, out = run(capsys, "merge", "one", "two", *reports)
    assert code == 2 and "error: cell m|tflite-fp32|litert|host|t1 is in run one and in " \
        "run two" in out and "Traceback" not in out
    code, out = run(capsys, "merge", "one", "nosuch", *reports)
    assert code == 2 and "run 'nosuch': no such run" in out
    code, out = run(capsys, "merge", "one", "one", *reports)
    assert code == 2 and "more than once: one" in out
    code, out = run(capsys, "merge", "one", "--into", "two", *reports)
    assert code == 2 and "--into two" in out and "exists already" in out
    code, out = run(capsys, "merge", "one", "--into", "../x", *reports)
    assert code == 2 and "--into '../x'" in out
    code, out = run(capsys, "merge", *reports)
    assert code == 2 and "RUN_ID" in out


# -- merge: a real run split in two and put back together ---------------------------------------

def _fixture_records():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedRecordWarning)
        return ResultStore(RESULTS_FIXTURE / RESULTS_RUN).records()


@pytest.mark.filterwarnings("ignore::edge.results.store.DamagedRecordWarning")
def test_a_run_split_and_merged_reports_and_picks_like_the_original(capsys, tmp_path):
    """The committed tiny run's records dealt into two runs as shards would deal them (host and
    emulated cells of one model, variant and runtime together), merged: the merged run has the
    original's cells, the report reads it, and `edge pick` picks what it picks on the original."""
    records = _fixture_records()
    meta = json.loads((RESULTS_FIXTURE / RESULTS_RUN / "run.json").read_text())
    cells = {r["cell_id"]: Cell(r["model"], r["variant"], r["runtime"], r["device"],
                                r["threads"]) for r in records}
    reports = tmp_path / "reports"
    shutil.copytree(RESULTS_FIXTURE / RESULTS_RUN, reports / RESULTS_RUN)
    for i in (1, 2):
        mine = set(shard_cells(list(cells.values()), Shard(i, 2)))
        store = ResultStore(reports / f"shard{i}")
        store.write_meta({**meta, "run_id": f"shard{i}", "shard": f"{i}/2"})
        for r in records:
            if cells[r["cell_id"]] in mine:
                store.append({**r, "run_id": f"shard{i}",
                              "provenance": provenance(None, f"{i}/2")})
    code, out = run(capsys, "merge", "shard1", "shard2", "--into", "merged",
                    "--reports-dir", str(reports))
    assert code == 0, out
    assert f"merged {len(records)} records from 2 runs" in out
    merged = ResultStore(reports / "merged").records()
    assert sorted(r["cell_id"] for r in merged) == sorted(cells)
    assert {r["provenance"]["shard"] for r in merged} == {"1/2", "2/2"}

    code, out = run(capsys, "report", "--run", "merged", "--reports-dir", str(reports))
    assert code == 0, out
    page = (reports / "merged" / "index.html").read_text()
    assert "Merged from" in page and "<code>shard1</code> shard 1/2" in page
    assert "<code>shard2</code> shard 2/2" in page and "Machines" in page
    picks = []
    for run_id in (RESULTS_RUN, "merged"):
        code, out = run(capsys, "pick", "--run", run_id, "--reports-dir", str(reports),
                        "--device", "host", "--model", "mobilenet_v2", "--json")
        assert code == 0, out
        best = json.loads(out)["best"]
        picks.append((best["variant"], best["runtime"]))
    assert picks[0] == picks[1]


# -- the real thing: `edge bench --shard` on the tiny garden, then `edge merge` ------------------

MATRIX = """
[build]
models = ["mobilenet_v2", "efficientnet_lite0"]
variants = ["tflite-fp32"]
build_dir = "{build_dir}"

[bench]
devices = ["host"]
protocol = {{warmup = 1, min_runs = 3, min_seconds = 0.05, max_runs = 10, timeout_s = 60}}
reports_dir = "{reports}"

[[bench.cells]]
runtimes = ["litert"]
threads = [1, 2]
"""


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    """The tiny MobileNetV2 and EfficientNet-Lite0, float32 TFLite (a few seconds each)."""
    from edge import workflow

    build_dir = tmp_path_factory.mktemp("shards-build")
    summary = workflow.build(workflow.garden_targets(["mobilenet_v2", "efficientnet_lite0"],
                                                     tiny=True, variants=["tflite-fp32"]),
                             build_dir)
    assert not summary.failures, summary.failures
    return build_dir


def _run_ids(reports: Path) -> set[str]:
    return {p.name for p in reports.iterdir() if p.is_dir() and not p.is_symlink()}


@pytest.mark.slow
def test_two_shards_merged_are_the_unsharded_run(tiny_build, tmp_path, capsys):
    reports = tmp_path / "reports"
    matrix = tmp_path / "matrix.toml"
    matrix.write_text(MATRIX.format(build_dir=tiny_build, reports=reports))
    bench = ["bench", "--matrix", str(matrix), "--tiny"]
    runs = {}
    for shard in (None, "1/2", "2/2"):
        before = _run_ids(reports) if reports.exists() else set()
        code, out = run(capsys, *bench, *(["--shard", shard] if shard else []))
        assert code == 0, out
        (runs[shard],) = _run_ids(reports) - before  # each shard is a run of its own
    whole = ResultStore(reports / runs[None]).records()
    assert len(whole) == 4 and {r["status"] for r in whole} == {"ok"}
    shards = {s: ResultStore(reports / runs[s]).records() for s in ("1/2", "2/2")}
    assert all(shards.values())  # two model-runtime groups: one per shard
    for shard, records in shards.items():
        meta = ResultStore(reports / runs[shard]).read_meta()
        assert meta["shard"] == shard and meta["cells"] == len(records)
        assert meta["matrix_cells"] == 4

    code, out = run(capsys, "merge", runs["1/2"], runs["2/2"], "--into", "merged",
                    "--reports-dir", str(reports))
    assert code == 0, out
    merged = ResultStore(reports / "merged").records()
    ids = [r["cell_id"] for r in merged]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(r["cell_id"] for r in whole)
    for r in merged:
        prov = r["provenance"]
        shard = next(s for s, recs in shards.items() if r["cell_id"] in
                     {x["cell_id"] for x in recs})
        assert prov["shard"] == shard and r["run_id"] == runs[shard]
        assert prov["endpoint"] == "local"
        assert prov["machine"]["hostname"] and prov["machine"]["platform"]
    assert all(r["provenance"]["shard"] is None for r in whole)

    code, out = run(capsys, "report", "--run", "merged", "--reports-dir", str(reports))
    assert code == 0, out
    code, out = run(capsys, "pick", "--run", "merged", "--reports-dir", str(reports),
                    "--device", "host", "--model", "mobilenet_v2", "--json")
    assert code == 0, out
    assert json.loads(out)["best"]["runtime"] == "litert"

    # a shard resumes as itself; another --shard for it is refused
    code, out = run(capsys, *bench, "--resume", runs["1/2"])
    assert code == 0 and "all 2 cells already measured" in out, out
    code, out = run(capsys, *bench, "--resume", runs["1/2"], "--shard", "2/2")
    assert code == 2 and "--shard 2/2" in out and "shard 1/2" in out
