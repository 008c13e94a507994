"""The append-only results store: records, damage tolerance, crash safety, run listing."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from edge.results import (
    SCHEMA_VERSION,
    STATUSES,
    DamagedRecordWarning,
    DuplicateCellError,
    ResultStore,
    cell_id,
    host_metadata,
    latest_run,
    list_runs,
    make_record,
    new_run_id,
)

REPO = Path(__file__).resolve().parents[1]
SHA = "ab" * 32
CELL = {"model": "mobilenet_v2", "variant": "tflite-fp32", "runtime": "litert", "device": "host"}


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def record(i: int, **metrics) -> dict:
    cell = {**CELL, "model": f"m{i}"}
    return make_record(cell=cell, status="ok", run_id="r1", artifact_sha256=SHA,
                       metrics={"mean": 1.5, **metrics})


# -- ids ------------------------------------------------------------------------------------


def test_new_run_id_format_and_order():
    t = datetime(2026, 11, 29, 10, 15, 0, tzinfo=UTC)
    rid = new_run_id(t)
    assert re.fullmatch(r"20261129-101500-[0-9a-f]{4}", rid)
    assert new_run_id(t + timedelta(seconds=1)) > rid
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", new_run_id())
    # Aware times are converted to UTC; naive ones are taken as UTC.
    cet = timezone(timedelta(hours=1))
    assert new_run_id(datetime(2026, 11, 29, 11, 15, tzinfo=cet)).startswith("20261129-101500-")
    assert new_run_id(datetime(2026, 11, 29, 10, 15)).startswith("20261129-101500-")


def test_cell_id():
    assert cell_id("mobilenet_v2", "tflite-fp32", "litert", "host", 2) == \
        "mobilenet_v2|tflite-fp32|litert|host|t2"
    assert cell_id("mobilenet_v2", "tfjs-fp16", "tfjs-webgl", "pixel7") == \
        "mobilenet_v2|tfjs-fp16|tfjs-webgl|pixel7"
    assert cell_id("deeplab_v3:head=pascal", "tfjs-uint8", "tfjs-wasm", "iphone15") == \
        "deeplab_v3:head=pascal|tfjs-uint8|tfjs-wasm|iphone15"


@pytest.mark.parametrize("args", [
    ("", "v", "r", "d"), ("m|x", "v", "r", "d"), ("m", "v\n", "r", "d"), ("m", "v", None, "d"),
    ("m", "v", "r", " d"),
])
def test_cell_id_rejects_ambiguous_parts(args):
    with pytest.raises(ValueError):
        cell_id(*args)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_cell_id_rejects_bad_threads(threads):
    with pytest.raises(ValueError, match="threads"):
        cell_id("m", "v", "r", "d", threads)


# -- make_record ----------------------------------------------------------------------------


def test_make_record_fields():
    rec = make_record(cell={**CELL, "threads": 4}, status="ok", run_id="r1", artifact_sha256=SHA,
                      metrics={"mean": 2.0}, host={"hostname": "h"})
    assert rec["schema_version"] == SCHEMA_VERSION
    assert rec["cell_id"] == "mobilenet_v2|tflite-fp32|litert|host|t4"
    assert {k: rec[k] for k in CELL} == CELL and rec["threads"] == 4
    assert rec["status"] == "ok" and rec["error"] is None
    assert rec["artifact_sha256"] == SHA and rec["run_id"] == "r1"
    assert rec["metrics"] == {"mean": 2.0} and rec["host"] == {"hostname": "h"}
    for key in ("started", "finished"):
        assert datetime.fromisoformat(rec[key]).utcoffset() == timedelta(0)


def test_make_record_defaults_and_extra():
    rec = make_record(cell=CELL, status="failed", run_id="r1", artifact_sha256=None,
                      error=RuntimeError("boom"),
                      extra={"started": "2026-01-01T00:00:00+00:00", "warmup_ms": [5.0]})
    assert rec["threads"] is None and rec["cell_id"] == "mobilenet_v2|tflite-fp32|litert|host"
    assert rec["error"] == "RuntimeError: boom"
    assert rec["metrics"] == {} and rec["host"] == {}
    assert rec["started"] == "2026-01-01T00:00:00+00:00" and rec["warmup_ms"] == [5.0]
    rec = make_record(cell=CELL, status="failed", run_id="r1", artifact_sha256=None,
                      error={"message": "webgl lost"})
    assert rec["error"] == "{'message': 'webgl lost'}"


def test_make_record_statuses():
    for status in STATUSES:
        make_record(cell=CELL, status=status, run_id="r", artifact_sha256=None)
    with pytest.raises(ValueError, match="status 'passed' is not one of ok, failed"):
        make_record(cell=CELL, status="passed", run_id="r", artifact_sha256=None)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"extra": {"status": "ok"}}, "status"),
    ({"extra": {"cell_id": "x", "metrics": {}}}, "cell_id, metrics"),
    ({"cell": {"model": "m", "variant": "v", "runtime": "r"}}, "missing.*device"),
    ({"cell": {**CELL, "browser": "chromium"}}, "unknown.*browser"),
    ({"artifact_sha256": "abc"}, "artifact_sha256"),
    ({"run_id": ""}, "run_id"),
    ({"metrics": [1, 2]}, "metrics"),
])
def test_make_record_rejects(kwargs, match):
    args = {"cell": CELL, "status": "ok", "run_id": "r", "artifact_sha256": None, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_record(**args)


# -- the store --------------------------------------------------------------------------------


def test_round_trip(tmp_path):
    store = ResultStore(tmp_path / "reports" / "run1")
    assert store.path == tmp_path / "reports" / "run1" / "results.jsonl"
    assert store.records() == [] and store.done_cells() == set()
    recs = [record(i, p90=2.0 + i) for i in range(3)]
    for r in recs:
        store.append(r)
    assert store.records() == recs
    assert store.done_cells() == {r["cell_id"] for r in recs}
    lines = store.path.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line) in recs for line in lines)
    assert lines[0] == json.dumps(recs[0], sort_keys=True)  # sorted keys, one line


def test_duplicate_cell_refused(tmp_path):
    store = ResultStore(tmp_path)
    store.append(record(1))
    with pytest.raises(DuplicateCellError, match=re.escape(record(1)["cell_id"])):
        store.append(record(1))
    with pytest.raises(ValueError):  # also from a second writer on the same directory
        ResultStore(tmp_path).append(record(1))
    assert len(store.path.read_text().splitlines()) == 1


def test_duplicate_seen_across_store_instances(tmp_path):
    a, b = ResultStore(tmp_path), ResultStore(tmp_path)
    assert a.done_cells() == set()
    b.append(record(1))
    assert a.done_cells() == {record(1)["cell_id"]}  # incremental read picks it up
    with pytest.raises(DuplicateCellError):
        a.append(record(1))


def test_nan_and_numpy_values_become_json(tmp_path):
    store = ResultStore(tmp_path)
    rec = record(1, mean=float("nan"), std=float("inf"), lo=float("-inf"),
                 n=np.int64(7), p50=np.float32(1.5), samples=np.array([1.0, np.nan]),
                 nested={"x": [float("nan"), 2.0]})
    store.append(rec)
    text = store.path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    (got,) = store.records()
    m = got["metrics"]
    assert m["mean"] is None and m["std"] is None and m["lo"] is None
    assert m["n"] == 7 and m["p50"] == 1.5 and m["samples"] == [1.0, None]
    assert m["nested"] == {"x": [None, 2.0]}
    assert rec["metrics"]["n"] == np.int64(7)  # the caller's record is not modified


def test_append_rejects_bad_records(tmp_path):
    store = ResultStore(tmp_path)
    with pytest.raises(ValueError, match="cell_id"):
        store.append({"status": "ok"})
    with pytest.raises(ValueError, match="not JSON-serializable"):
        store.append({"cell_id": "x", "metrics": {"f": object()}})
    assert store.records() == []


def write_damaged(path: Path, good: list[dict]) -> None:
    """line 1 good, 2 blank, 3 garbage, 4 good, 5 non-object JSON, 6 no cell_id, 7 good,
    8 truncated (no newline)."""
    dump = [json.dumps(r, sort_keys=True) for r in good]
    truncated = json.dumps(record(99), sort_keys=True)[:40]
    path.write_text("\n".join([dump[0], "", "#!garbage{{", dump[1], "[1, 2, 3]",
                               '{"status": "ok"}', dump[2], truncated]))


def test_damaged_file_skips_bad_lines_with_warnings(tmp_path):
    store = ResultStore(tmp_path)
    good = [record(i) for i in range(3)]
    write_damaged(store.path, good)
    with pytest.warns(DamagedRecordWarning) as caught:
        recs = store.records()
    assert recs == good
    messages = [str(w.message) for w in caught]
    assert len(messages) == 4
    for lineno, message in zip([3, 5, 6, 8], messages, strict=True):
        assert message.startswith(f"{store.path}:{lineno}: ")
    assert "truncated" in messages[-1]
    assert store.done_cells() == {r["cell_id"] for r in good}


def test_append_after_damage_starts_a_new_line(tmp_path):
    store = ResultStore(tmp_path)
    good = [record(i) for i in range(3)]
    write_damaged(store.path, good)
    new = record(3)
    store.append(new)  # terminates the truncated line first
    raw = store.path.read_bytes()
    assert raw.endswith(b"\n")
    assert json.loads(raw.splitlines()[-1]) == new
    with pytest.warns(DamagedRecordWarning) as caught:
        recs = store.records()
    assert recs == [*good, new]
    assert [int(str(w.message).split(":")[1]) for w in caught] == [3, 5, 6, 8]
    assert store.done_cells() == {r["cell_id"] for r in [*good, new]}


def test_repair(tmp_path):
    store = ResultStore(tmp_path)
    assert store.repair() == 0  # no file yet
    store.path.write_bytes(b"")
    assert store.repair() == 0
    store.path.write_bytes(b'{"cell_id": "a"}\n{"cell_id": "b", "x": ')
    assert store.repair() == 1
    assert store.repair() == 0
    assert store.path.read_bytes().endswith(b'"x": \n')
    store.append(record(1))
    with pytest.warns(DamagedRecordWarning, match=":2:"):
        assert [r["cell_id"] for r in store.records()] == ["a", record(1)["cell_id"]]


def test_unterminated_but_complete_last_line_counts(tmp_path):
    store = ResultStore(tmp_path)
    store.path.write_text(json.dumps(record(1)))  # e.g. an editor stripped the final newline
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r["cell_id"] for r in store.records()] == [record(1)["cell_id"]]
    assert store.done_cells() == {record(1)["cell_id"]}
    with pytest.raises(DuplicateCellError):
        store.append(record(1))
    store.append(record(2))
    assert len(store.path.read_text().splitlines()) == 2


def test_repeated_cell_in_file_is_reported_once(tmp_path):
    store = ResultStore(tmp_path)
    line = json.dumps(record(1), sort_keys=True)
    store.path.write_text(f"{line}\n{line}\n")  # e.g. two result files concatenated by hand
    with pytest.warns(DamagedRecordWarning, match=":2: .*repeats cell"):
        assert len(store.records()) == 1


def test_done_cells_follows_a_replaced_file(tmp_path):
    store = ResultStore(tmp_path)
    for i in range(3):
        store.append(record(i))
    assert len(store.done_cells()) == 3
    store.path.unlink()
    assert store.done_cells() == set()
    store.append(record(7))
    assert store.done_cells() == {record(7)["cell_id"]}


def test_done_cells_is_cheap_for_thousands(tmp_path):
    store = ResultStore(tmp_path)
    lines = [json.dumps(record(i), sort_keys=True) for i in range(5000)]
    store.path.write_text("\n".join(lines) + "\n")
    assert len(store.done_cells()) == 5000
    t = time.perf_counter()
    for _ in range(200):
        store.done_cells()
    assert (time.perf_counter() - t) / 200 < 0.01  # incremental: no re-parse of the file


KILLED_WRITER = """
import sys
from edge.results.store import ResultStore
store = ResultStore(sys.argv[1])
print("ready", flush=True)
for i in range(2000):
    store.append({"cell_id": f"cell-{i:04d}", "i": i, "pad": "x" * 9000})
"""


def test_sigkill_mid_run_leaves_readable_unique_records(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(run_dir)],
                            stdout=subprocess.PIPE, env=child_env())
    try:
        assert proc.stdout.readline() == b"ready\n"
        start = time.monotonic()
        path = run_dir / "results.jsonl"
        # ~0.3 s of writing, or less on a very fast disk: stop well before the 2000th record.
        while time.monotonic() - start < 0.3:
            if path.exists() and path.stat().st_size > 300 * 9000:
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL  # killed mid-run, not finished

    raw = path.read_bytes()
    *complete, tail = raw.split(b"\n")  # tail: b"" or a line cut by the kill
    assert complete, "the writer wrote nothing before it was killed"
    ids = [json.loads(line)["cell_id"] for line in complete]
    assert ids == [f"cell-{i:04d}" for i in range(len(ids))]  # in order, none lost or repeated
    assert len(ids) < 2000

    store = ResultStore(run_dir)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert [r["cell_id"] for r in store.records()] == ids
    assert store.done_cells() == set(ids)
    store.append({"cell_id": "after-crash"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recs = store.records()
    assert [r["cell_id"] for r in recs] == [*ids, "after-crash"]
    assert len(caught) == (1 if tail else 0)  # only the cut line, if any, is damaged


RACING_WRITER = """
import sys
from edge.results.store import DuplicateCellError, ResultStore
store = ResultStore(sys.argv[1])
won = 0
for i in range(int(sys.argv[2]), int(sys.argv[3])):
    try:
        store.append({"cell_id": f"cell-{i}"})
        won += 1
    except DuplicateCellError:
        pass
print(won)
"""


def test_concurrent_writers_never_duplicate(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", RACING_WRITER, str(tmp_path), lo, hi],
                              stdout=subprocess.PIPE, text=True, env=child_env())
             for lo, hi in (("0", "80"), ("40", "120"))]
    won = sum(int(p.communicate(timeout=60)[0]) for p in procs)
    assert all(p.returncode == 0 for p in procs)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    ids = [json.loads(line)["cell_id"] for line in lines]
    assert sorted(ids) == sorted(f"cell-{i}" for i in range(120))
    assert won == 120


# -- run metadata and listing -----------------------------------------------------------------


def test_meta_round_trip(tmp_path):
    store = ResultStore(tmp_path / "r")
    assert store.read_meta() is None
    meta = {"matrix": {"models": ["mobilenet_v2"]}, "protocol": {"min_runs": 10},
            "host": {"hostname": "h"}, "bad": float("nan")}
    store.write_meta(meta)
    got = store.read_meta()
    assert got["matrix"] == meta["matrix"] and got["protocol"] == meta["protocol"]
    assert got["bad"] is None and got["schema_version"] == SCHEMA_VERSION
    created = got["created"]
    datetime.fromisoformat(created)
    store.write_meta({**meta, "note": "resumed"})  # a rewrite keeps the original creation time
    assert store.read_meta()["created"] == created and store.read_meta()["note"] == "resumed"
    assert sorted(p.name for p in store.run_dir.iterdir()) == ["run.json"]  # no temp files


def test_read_meta_damaged(tmp_path):
    store = ResultStore(tmp_path)
    store.meta_path.write_text("{not json")
    with pytest.raises(ValueError, match="run.json"):
        store.read_meta()
    store.meta_path.write_text("[1]")
    with pytest.raises(ValueError, match="JSON object"):
        store.read_meta()


def test_list_runs_and_latest(tmp_path):
    reports = tmp_path / "reports"
    assert list_runs(reports) == [] and latest_run(reports) is None
    ids = [new_run_id(datetime(2026, 1, d, tzinfo=UTC)) for d in (3, 1, 2)]
    ResultStore(reports / ids[0]).append(record(1))
    ResultStore(reports / ids[1]).write_meta({"matrix": {}})
    ResultStore(reports / ids[2])  # an empty directory is not a run (yet)
    (reports / "notes.txt").write_text("x")
    assert list_runs(reports) == sorted(ids[:2])
    assert latest_run(reports) == ids[0]
    ResultStore(reports / ids[2]).append(record(1))
    assert latest_run(reports) == ids[0] and len(list_runs(reports)) == 3


# -- host ---------------------------------------------------------------------------------------


def test_host_metadata_keys():
    h = host_metadata()
    for key in ("cpu_model", "logical_cores", "memory_total_bytes", "os", "python", "packages",
                "git_commit", "hostname"):
        assert key in h
    assert isinstance(h["cpu_model"], str) and h["cpu_model"]
    assert h["logical_cores"] >= 1 and h["memory_total_bytes"] > 0
    assert set(h["packages"]) == {"tensorflow", "tensorflowjs", "ai-edge-litert", "playwright",
                                  "numpy"}
    assert h["packages"]["numpy"] == np.__version__
    assert all(isinstance(v, str) and v for v in h["packages"].values())
    json.dumps(h, allow_nan=False)


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(),
                    reason="needs git and edge as a git checkout")
def test_host_metadata_git_commit_is_the_code_that_runs(tmp_path, monkeypatch):
    """The commit of edge's own checkout, not of the working directory (a user's project may
    be a repository of its own)."""
    edge_head = subprocess.run(["git", "rev-parse", "HEAD"], check=True, capture_output=True,
                               text=True, cwd=REPO).stdout.strip()
    monkeypatch.chdir(tmp_path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    theirs = subprocess.run(["git", "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    assert host_metadata()["git_commit"] == edge_head != theirs


def test_host_metadata_does_not_import_tensorflow(tmp_path):
    code = ("import json, sys\n"
            "from edge.results import host_metadata\n"
            "host_metadata()\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'tensorflowjs', 'keras', 'ai_edge_litert', 'playwright'))\n"
            "print(json.dumps(heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env=child_env(), timeout=60, check=True)
    assert json.loads(out.stdout) == []
