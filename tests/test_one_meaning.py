"""One meaning each: `edge build` with no model builds what the main job builds (the matrix's
[build] models and variants), and "latest" names one run for every command (the most recent
run that has results; `reports/latest` points at it). Fast: no conversion, no browser."""

from __future__ import annotations

import io
import json
import os
import shutil
import warnings
from pathlib import Path

import pytest

from edge.cli import main
from edge.results.store import DamagedRecordWarning, latest_run

FIXTURES = Path(__file__).parent / "fixtures" / "results"
OLD = "20261129-102929-9e7c"  # the committed tiny run: mobilenet_v2 on host and moto_g4
NEW = "20261130-090000-beef"


def _cli(capsys, *argv):
    with pytest.raises(SystemExit) as exc, warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedRecordWarning)
        main(list(argv))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def _built_targets(monkeypatch, tmp_path, *argv):
    """The targets `edge build ARGV` would build (the build itself stubbed out)."""
    from edge import workflow

    seen = []

    def build_step(targets, build_dir, **_):
        seen.extend(targets)
        raise SystemExit(0)

    monkeypatch.setattr(workflow, "build_step", build_step)
    with pytest.raises(SystemExit):
        main(["build", "--build-dir", str(tmp_path / "build"), *argv])
    return seen


# -- (a) what `edge build` builds ---------------------------------------------------------------

def test_build_without_models_builds_the_main_jobs_garden(monkeypatch, tmp_path):
    from edge.farm.scheduling.matrix import load_matrix, shipped_matrix

    monkeypatch.chdir(tmp_path)  # no ./device_matrix.toml here
    matrix = load_matrix(shipped_matrix())
    targets = _built_targets(monkeypatch, tmp_path)
    assert [t.slug for t in targets] == [t.slug for t in _main_job_targets(matrix)]
    assert not any("cityscapes" in t.slug for t in targets)  # not in the default matrix
    for target in targets:  # the matrix's variants (each model's share of them)
        assert set(target.variants) <= set(matrix.variants)
        assert "tflite-fp32" in target.variants


def _main_job_targets(matrix):
    from edge.workflow import run_settings

    return run_settings(matrix).targets()


def test_build_follows_the_local_matrix_and_is_told_otherwise(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "device_matrix.toml").write_text(
        '[build]\nmodels = ["psenet", "mobilenet_v2:alpha=0.5"]\nvariants = ["tflite-fp16"]\n')
    targets = _built_targets(monkeypatch, tmp_path)
    assert [t.slug.split(":")[0] for t in targets] == ["psenet", "mobilenet_v2"]
    assert all(t.variants == ("tflite-fp16",) for t in targets)
    # told otherwise: model arguments, --variants, or another matrix
    assert [t.slug for t in _built_targets(monkeypatch, tmp_path, "efficientnet_b0")] == \
        ["efficientnet_b0"]
    (variants,) = {t.variants for t in _built_targets(monkeypatch, tmp_path, "--variants",
                                                      "tflite-fp32")}
    assert variants == ("tflite-fp32",)
    other = tmp_path / "other.toml"
    other.write_text('[build]\nmodels = ["deeplab_v3:head=cityscapes"]\n')
    (target,) = _built_targets(monkeypatch, tmp_path, "--matrix", str(other))
    assert "cityscapes" in target.slug


def test_build_refuses_models_and_a_matrix_together(capsys, tmp_path):
    matrix = tmp_path / "m.toml"
    matrix.write_text('[build]\nmodels = ["psenet"]\n')
    code, _, err = _cli(capsys, "build", "--matrix", str(matrix), "mobilenet_v2")
    assert code == 2 and "--matrix" in err


# -- (b) "latest" --------------------------------------------------------------------------------

def _reports(tmp_path) -> Path:
    reports = tmp_path / "reports"
    shutil.copytree(FIXTURES / OLD, reports / OLD)
    return reports


def test_latest_is_the_most_recent_run_with_results(tmp_path):
    reports = _reports(tmp_path)
    (reports / "20261201-000000-0000").mkdir()  # started, nothing recorded yet
    (reports / "20261201-000000-0000" / "run.json").write_text("{}")
    (reports / "20261202-000000-0000").mkdir()
    (reports / "20261202-000000-0000" / "results.jsonl").write_text("")
    assert latest_run(reports) == OLD


def test_latest_is_one_run_for_report_pick_and_the_link(capsys, tmp_path):
    """After a report of one run, a newer run with results (here made by `edge merge`, as a
    bench or a merge makes one) is "latest" for `edge pick`, `edge report` and the link."""
    reports = _reports(tmp_path)
    code, _, _ = _cli(capsys, "report", "--reports-dir", str(reports))
    assert code == 0 and os.readlink(reports / "latest") == OLD

    code, _, _ = _cli(capsys, "merge", OLD, "--into", NEW, "--reports-dir", str(reports))
    assert code in (0, None)
    assert latest_run(reports) == NEW and os.readlink(reports / "latest") == NEW
    # the newer run measured LiteRT on the host only (as `edge bench --model X` with its own
    # rules); the older one had tflite-runtime too, which its moto_g4 answer picks
    results = reports / NEW / "results.jsonl"
    results.write_text("".join(line + "\n" for line in results.read_text().splitlines()
                               if json.loads(line)["device"] == "host"
                               and json.loads(line)["runtime"] == "litert"))
    for argv in ((), ("--run", "latest")):
        # the phone's answer comes from the newer run's host cells, estimated (the Pixel 2
        # from its published figures: this run has no host benchmark index)
        code, out, err = _pick(capsys, reports, "pixel_2", "--json", *argv)
        assert code == 0, (out, err)
        result = json.loads(out)
        assert result["best"]["estimated"] is True
        assert {r["runtime"] for r in [result["best"], *result["runnersUp"], *result["tied"]]} \
            == {"litert"}
        newer = result["candidates"]
        code, out, _ = _pick(capsys, reports, "host", *argv)
        assert code == 0, out
    code, out, _ = _pick(capsys, reports, "pixel_2", "--json", "--run", OLD)
    assert code == 0 and json.loads(out)["candidates"] > newer, out  # every runtime it had

    # reporting an older run leaves "latest" where it is
    code, out, _ = _cli(capsys, "report", "--reports-dir", str(reports), "--run", OLD)
    assert code == 0 and str(reports / OLD / "index.html") in out
    assert os.readlink(reports / "latest") == NEW
    code, out, _ = _cli(capsys, "report", "--reports-dir", str(reports))
    assert str(reports / NEW / "index.html") in out and os.readlink(reports / "latest") == NEW


def _pick(capsys, reports, device, *argv):
    return _cli(capsys, "pick", "--reports-dir", str(reports), "--device", device,
                "--model", "mobilenet_v2", *argv)


def test_a_measured_run_becomes_latest(monkeypatch, tmp_path):
    """`edge bench` (workflow.measure) points `reports/latest` at its run once it has results,
    so `edge pick` after `edge bench --model X` and the link name the same run."""
    from rich.console import Console

    from edge.convert import pipeline
    from edge.farm.emulation import methods
    from edge.farm.scheduling import run as scheduling
    from edge.farm.scheduling.matrix import load_matrix
    from edge.workflow import measure

    monkeypatch.chdir(tmp_path)
    reports = _reports(tmp_path)
    (reports / "latest").symlink_to(OLD)
    record = json.loads((FIXTURES / OLD / "results.jsonl").read_text().splitlines()[0])

    class Emulation:
        method, reason = "none", "stubbed"

        def close(self):
            pass

    def run_matrix(matrix, cells, artifacts, store, results, run_id, *args, **kwargs):
        results.append({**record, "run_id": run_id})
        return {"ok": 1}

    monkeypatch.setattr(methods, "choose_emulation", lambda *a, **k: Emulation())
    monkeypatch.setattr(scheduling, "run_matrix", run_matrix)
    monkeypatch.setattr(pipeline, "artifacts_for", lambda *a, **k: {})
    (tmp_path / "m.toml").write_text(
        '[build]\nmodels = ["mobilenet_v2"]\nvariants = ["tflite-fp32"]\n'
        '[bench]\ndevices = ["host"]\n[[bench.cells]]\nruntimes = ["litert"]\n')
    run_dir = measure(load_matrix(tmp_path / "m.toml"), tiny=True, run_id=NEW,
                      console=Console(file=io.StringIO()))
    assert run_dir.name == NEW
    assert os.readlink(reports / "latest") == NEW == latest_run(reports)
