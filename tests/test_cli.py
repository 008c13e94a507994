"""The command line: help text everywhere, and one clear line for each user mistake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.mark.parametrize("command", [[], ["garden"], ["build"], ["validate"]])
def test_help_on_every_command(capsys, command):
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0 and "Usage: edge" in out


def test_help_does_not_import_tensorflow():
    code = ("import sys; from edge.cli import main\n"
            "try:\n    main(['build', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_garden_json_lists_models_and_known_issues(capsys):
    code, out, _ = run(capsys, "garden", "--json")
    assert code == 0
    data = json.loads(out)
    names = [m["name"] for m in data["models"]]
    assert names == ["mobilenet_v2", "efficientnet_b0", "efficientnet_lite0", "deeplab_v3",
                     "psenet"]
    issues = data["models"][0]["known_issues"]
    assert any(i["variant"] == "tflite-int8-dynamic" and i["runtime"] == "tflite-web"
               for i in issues)


@pytest.mark.parametrize("argv,message", [
    (["build", "nosuch"], "unknown model 'nosuch'; garden models: mobilenet_v2"),
    (["build", "psenet:kernels=1"], "kernels=1"),
    (["build", "deeplab_v3:colour=red"], "valid parameters: head, size"),
    (["build", "--model", "missing.keras"], "model file not found: missing.keras"),
    (["build", "--model", "model.onnx"], "unknown model format '.onnx'"),
    (["build", "--images", "no/such/dir", "mobilenet_v2"], "folder not found"),
    (["validate", "--weights", "nope.h5", "mobilenet_v2"], "weights file not found: nope.h5"),
])
def test_user_mistakes_exit_2_with_one_line(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_bad_flag_values_name_the_flag(capsys):
    code, _, err = run(capsys, "build", "--variants", "tflite-int9", "mobilenet_v2")
    assert code == 2 and "--variants" in err and "tflite-int9" in err
    code, _, err = run(capsys, "build", "--model", "x.keras", "--input-size", "big")
    assert code == 2 and "--input-size" in err


def test_corrupt_model_files_are_named(capsys, tmp_path):
    bad_tflite = tmp_path / "broken.tflite"
    bad_tflite.write_bytes(b"definitely not a flatbuffer")
    code, _, err = run(capsys, "build", "--model", str(bad_tflite))
    assert code == 2 and "broken.tflite" in err and "cannot load" in err
    bad_keras = tmp_path / "broken.keras"
    bad_keras.write_bytes(b"PK\x03\x04 truncated zip")
    code, _, err = run(capsys, "build", "--model", str(bad_keras))
    assert code == 2 and "broken.keras" in err and "Traceback" not in err


def test_validate_before_build_says_what_is_missing(capsys, tmp_path):
    code, _, err = run(capsys, "validate", "--tiny", "psenet", "--build-dir", str(tmp_path))
    assert code == 2 and "not built yet" in err and "psenet" in err


def test_python_dash_m_edge_runs_the_cli(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ok = subprocess.run([sys.executable, "-m", "edge", "--help"], capture_output=True,
                        text=True, cwd=tmp_path, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "Usage: edge" in ok.stdout and "build" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "edge", "build", "nosuch"], capture_output=True,
                         text=True, cwd=tmp_path, env=env, timeout=120)
    assert bad.returncode == 2
    assert "unknown model 'nosuch'" in bad.stderr and "Traceback" not in bad.stderr


def test_exit_code_follows_the_error_type_not_its_name(monkeypatch, capsys):
    """A conversion or fidelity failure (or any subclass) exits 1; other user errors exit 2."""
    import edge.cli as cli
    from edge.errors import ConversionError, SpecError

    class LiteRTConversionError(ConversionError):
        pass

    class ConversionErrorLookalike(SpecError):  # the name alone must not decide
        pass

    for error, code in ((LiteRTConversionError("mobilenet_v2 tflite-fp16: converter died"), 1),
                        (ConversionErrorLookalike("not a conversion"), 2)):
        def garden(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(cli.cli, "main", garden)
        with pytest.raises(SystemExit) as exc:
            main(["garden"])
        assert exc.value.code == code, error
    assert "converter died" in capsys.readouterr().err
