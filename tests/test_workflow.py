"""The one orchestration path (edge.workflow): the CLI and the nox job share its build step,
`edge build --strict` fails on fidelity, and a resumed run builds what it recorded."""

from __future__ import annotations

import json

import pytest

from edge.cli import main
from edge.validate.run import Fidelity

MATRIX = """
[build]
models = ["mobilenet_v2", "psenet"]
variants = ["tflite-fp32", "tflite-int8-full"]
build_dir = "{build_dir}"

[bench]
devices = ["host"]
reports_dir = "{reports}"

[[bench.cells]]
runtimes = ["litert"]
threads = [1]
"""

FAILED = Fidelity("psenet:size=64", "tflite-int8-full", "fail", {"kernel_iou": 0.21},
                  ["kernel IoU 0.210 < 0.500"], 0.21, "litert")
PASSED = Fidelity("psenet:size=64", "tflite-fp32", "pass", {"kernel_iou": 0.99}, [], 0.99,
                  "litert")


def _workflow():
    import edge.workflow

    return edge.workflow


@pytest.fixture
def fake_build(monkeypatch):
    """The build step's conversions and host checks replaced by fixed outcomes: one variant
    passes, one fails its fidelity thresholds."""
    from rich.table import Table

    workflow = _workflow()
    calls = []

    def build(targets, build_dir, jobs=1, console=None):
        calls.append([(t.slug, t.variants) for t in targets])
        return workflow.BuildSummary([], 0.0)

    monkeypatch.setattr(workflow, "build", build)
    monkeypatch.setattr(workflow, "artifact_keys", lambda summary: ["k-fp32", "k-int8"])
    monkeypatch.setattr(workflow, "validate", lambda keys, build_dir, force=False,
                        console=None: [PASSED, FAILED])
    monkeypatch.setattr(workflow, "variants_table", lambda keys, build_dir: Table())
    monkeypatch.setattr(workflow, "accuracy_table", lambda keys, build_dir: None)
    return calls


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out = capsys.readouterr()
    return exc.value.code, out.out + out.err


def test_build_reports_fidelity_failures_and_exits_0_by_default(fake_build, capsys, tmp_path):
    code, out = run(capsys, "build", "--tiny", "psenet", "--build-dir", str(tmp_path))
    assert code == 0, out
    assert "psenet:size=64 tflite-int8-full" in out and "kernel IoU 0.210 < 0.500" in out
    assert "tflite-fp32" not in out  # a passing variant is not reported as a failure
    assert fake_build  # the build step ran


def test_build_strict_exits_1_on_a_fidelity_failure(fake_build, capsys, tmp_path):
    code, out = run(capsys, "build", "--strict", "--tiny", "psenet", "--build-dir",
                    str(tmp_path))
    assert code == 1, out
    assert "tflite-int8-full" in out and "kernel IoU 0.210 < 0.500" in out


def test_build_strict_exits_0_when_every_variant_passes(fake_build, monkeypatch, capsys,
                                                        tmp_path):
    monkeypatch.setattr(_workflow(), "validate", lambda keys, build_dir, force=False,
                        console=None: [PASSED])
    code, out = run(capsys, "build", "--strict", "--tiny", "psenet", "--build-dir",
                    str(tmp_path))
    assert code == 0, out


def test_the_cli_and_the_nox_job_share_one_build_step(fake_build, capsys, tmp_path):
    workflow = _workflow()
    matrix = tmp_path / "m.toml"
    matrix.write_text(MATRIX.format(build_dir=tmp_path / "build", reports=tmp_path / "r"))
    _, cli_out = run(capsys, "build", "--tiny", "mobilenet_v2", "psenet", "--variants",
                     "tflite-fp32,tflite-int8-full", "--build-dir", str(tmp_path / "build"))
    workflow.device_matrix(["--matrix", str(matrix), "--tiny", "--no-measure"])
    nox_out = capsys.readouterr().out
    assert len(fake_build) == 2 and fake_build[0] == fake_build[1]  # same flags, same targets
    line = "fidelity fail psenet:size=64 tflite-int8-full: kernel IoU 0.210 < 0.500"
    assert line in cli_out and line in nox_out  # reported the same way by both
    assert "host fidelity: 1 pass, 0 warn, 1 fail" in cli_out
    assert "host fidelity: 1 pass, 0 warn, 1 fail" in nox_out


def test_edge_jobs_is_gone_and_workflow_owns_every_step():
    import importlib.util

    assert importlib.util.find_spec("edge.jobs") is None
    workflow = _workflow()
    for step in ("garden_targets", "build", "validate", "build_step", "measure", "report",
                 "device_matrix", "run_settings"):
        assert callable(getattr(workflow, step)), step


def test_resume_builds_the_models_the_run_recorded(monkeypatch, tmp_path):
    """A run recorded with tiny models, resumed without --tiny, plans the tiny targets."""
    from edge.convert import pipeline

    workflow = _workflow()
    matrix = tmp_path / "m.toml"
    reports = tmp_path / "reports"
    matrix.write_text(MATRIX.format(build_dir=tmp_path / "build", reports=reports))
    run_id = "20261201-101500-ab12"
    (reports / run_id).mkdir(parents=True)
    (reports / run_id / "run.json").write_text(json.dumps({
        "run_id": run_id, "matrix": str(matrix), "preset": "default", "tiny": True,
        "models": ["mobilenet_v2", "psenet"], "variants": ["tflite-fp32"],
        "protocol": {"warmup": 1, "min_runs": 5, "max_runs": 10}}))

    planned: list[list[str]] = []

    class Planned(Exception):
        pass

    def spy(targets, store):
        planned.append([t.slug for t in targets])
        raise Planned

    monkeypatch.setattr(pipeline, "plan", spy)
    with pytest.raises(Planned):
        workflow.device_matrix(["--matrix", str(matrix), "--resume", run_id])
    tiny = [t.slug for t in workflow.garden_targets(["mobilenet_v2", "psenet"], tiny=True,
                                                    variants=["tflite-fp32"])]
    assert planned == [tiny]
    assert all(":" in slug and "size=" in slug for slug in planned[0])


def test_resume_of_an_older_run_keeps_its_tiny_flag(monkeypatch, tmp_path):
    """run.json written before models were recorded: the matrix's models, the run's tiny."""
    from edge.convert import pipeline

    workflow = _workflow()
    matrix = tmp_path / "m.toml"
    reports = tmp_path / "reports"
    matrix.write_text(MATRIX.format(build_dir=tmp_path / "build", reports=reports))
    run_id = "20261201-101500-cd34"
    (reports / run_id).mkdir(parents=True)
    (reports / run_id / "run.json").write_text(json.dumps({
        "run_id": run_id, "preset": "default", "tiny": True, "protocol": {}}))
    planned = []

    class Planned(Exception):
        pass

    def spy(targets, store):
        planned.append(sorted(t.slug for t in targets))
        raise Planned

    monkeypatch.setattr(pipeline, "plan", spy)
    with pytest.raises(Planned):
        workflow.device_matrix(["--matrix", str(matrix), "--resume", run_id])
    tiny = workflow.garden_targets(["mobilenet_v2", "psenet"], tiny=True)
    assert planned == [sorted(t.slug for t in tiny)]


def test_resume_of_an_unknown_run_is_a_user_mistake(tmp_path, capsys):
    matrix = tmp_path / "m.toml"
    matrix.write_text(MATRIX.format(build_dir=tmp_path / "build", reports=tmp_path / "r"))
    with pytest.raises(SystemExit) as exc:
        _workflow().device_matrix(["--matrix", str(matrix), "--resume", "nope"])
    assert exc.value.code == 2
    assert "--resume nope: no such run" in capsys.readouterr().out


def test_resume_measures_with_the_same_recorded_settings(monkeypatch, tmp_path):
    workflow = _workflow()
    matrix = tmp_path / "m.toml"
    reports = tmp_path / "reports"
    matrix.write_text(MATRIX.format(build_dir=tmp_path / "build", reports=reports))
    run_id = "20261201-101500-ef56"
    (reports / run_id).mkdir(parents=True)
    (reports / run_id / "run.json").write_text(json.dumps({
        "run_id": run_id, "preset": "smoke", "tiny": True, "models": ["psenet"],
        "variants": ["tflite-fp32"], "protocol": {"min_runs": 7}}))
    built, measured = [], []
    monkeypatch.setattr(workflow, "build_step", lambda targets, build_dir, **kw: built.append(
        [t.slug for t in targets]) or workflow.BuildResult(workflow.BuildSummary([], 0.0), []))
    monkeypatch.setattr(workflow, "measure", lambda matrix, settings, console: measured.append(
        settings) or tmp_path)
    monkeypatch.setattr(workflow, "report", lambda run_dir, console: None)
    workflow.device_matrix(["--matrix", str(matrix), "--preset", "full", "--resume", run_id])
    (settings,) = measured
    assert (settings.run_id, settings.preset, settings.tiny) == (run_id, "smoke", True)
    assert settings.protocol.min_runs == 7
    assert built == [[t.slug for t in settings.targets()]]
    assert built[0][0].startswith("psenet:") and len(built[0]) == 1
