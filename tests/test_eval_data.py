"""The user's labelled data (`--eval-data DIR`): layouts, clear errors naming the file, a split
where no image both calibrates and scores, and a build that reports accuracy from it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from edge.cli import main
from edge.convert.cache import Store
from edge.errors import EvalDataError
from edge.garden import labelled
from edge.garden.datasets import classification_set, segmentation_set, text_set
from edge.garden.labels import SHAPE_CLASSES


def _classification_folder(root, n=12):
    data = classification_set(n=n, size=(48, 48), seed=5)
    for i, (image, label) in enumerate(zip(data.images, data.labels, strict=True)):
        folder = root / SHAPE_CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"img{i:02d}.png")
    return data


def test_classification_folders_split_without_overlap(tmp_path):
    data = _classification_folder(tmp_path, n=12)
    loaded = labelled.load(tmp_path, "classification", (32, 32))
    assert len(loaded.calibration) == 2 and len(loaded.holdout) == 10  # 20 %, the rest
    assert loaded.holdout.images.shape == (10, 32, 32, 3)
    cal = {im.tobytes() for im in loaded.calibration.images}
    assert not cal & {im.tobytes() for im in loaded.holdout.images}
    # Folder names are the shape classes' names: sorted order gives their indices here.
    assert sorted(loaded.classes) == sorted(set(SHAPE_CLASSES[i] for i in data.labels))
    # With the model's label names, folders map by name.
    by_name = labelled.load(tmp_path, "classification", (32, 32), list(SHAPE_CLASSES))
    counts = np.bincount(np.concatenate([by_name.calibration.labels, by_name.holdout.labels]),
                         minlength=6)
    assert counts.tolist() == np.bincount(data.labels, minlength=6).tolist()


def test_segmentation_and_text_layouts_load(tmp_path):
    seg = segmentation_set(n=4, size=(40, 40), seed=3)
    (tmp_path / "seg" / "images").mkdir(parents=True)
    (tmp_path / "seg" / "masks").mkdir()
    for i, (image, mask) in enumerate(zip(seg.images, seg.masks, strict=True)):
        Image.fromarray(image).save(tmp_path / "seg" / "images" / f"{i}.png")
        Image.fromarray(mask).save(tmp_path / "seg" / "masks" / f"{i}.png")
    loaded = labelled.load(tmp_path / "seg", "segmentation", (40, 40))
    assert len(loaded.holdout) == 3 and loaded.holdout.masks.max() <= 6

    text = text_set(n=3, size=(96, 96), seed=4)
    (tmp_path / "txt" / "images").mkdir(parents=True)
    (tmp_path / "txt" / "boxes").mkdir()
    for i, (image, quads) in enumerate(zip(text.images, text.boxes, strict=True)):
        Image.fromarray(image).save(tmp_path / "txt" / "images" / f"{i}.png")
        lines = [",".join(f"{v:.1f}" for v in q.reshape(-1)) + ",word" for q in quads]
        (tmp_path / "txt" / "boxes" / f"{i}.txt").write_text("\n".join(lines))
    loaded = labelled.load(tmp_path / "txt", "text_detection", (48, 48))  # half size
    held = {len(b) for b in loaded.holdout.boxes}
    assert held and loaded.holdout.boxes[0].max() <= 48.5  # boxes scaled with the image


def test_a_broken_box_file_is_named_with_its_line(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "boxes").mkdir()
    for i in range(3):
        Image.new("RGB", (32, 32)).save(tmp_path / "images" / f"{i}.png")
        (tmp_path / "boxes" / f"{i}.txt").write_text("1,1,10,1,10,5,1,5,ok\n")
    (tmp_path / "boxes" / "1.txt").write_text("1,1,10,1,10,5,1,5,ok\n1,2,three,4\n")
    with pytest.raises(EvalDataError, match=r"boxes/1\.txt:2: expected x1,y1"):
        labelled.load(tmp_path, "text_detection", (32, 32))


@pytest.mark.parametrize("damage,message", [
    ("missing_mask", r"images/b\.png: no label file masks/b\.png"),
    ("rgb_mask", r"masks/[ab]\.png: a mask must be a single-channel image"),
    ("size", r"masks/[ab]\.png: mask is 8x8, its image 16x16"),
    ("no_masks_dir", r"masks/ is missing"),
])
def test_segmentation_errors_name_the_file(tmp_path, damage, message):
    (tmp_path / "images").mkdir()
    if damage != "no_masks_dir":
        (tmp_path / "masks").mkdir()
    for name in "ab":
        Image.new("RGB", (16, 16)).save(tmp_path / "images" / f"{name}.png")
        if damage == "no_masks_dir" or (damage == "missing_mask" and name == "b"):
            continue
        size = (8, 8) if damage == "size" else (16, 16)
        mode = "RGB" if damage == "rgb_mask" else "L"
        Image.new(mode, size).save(tmp_path / "masks" / f"{name}.png")
    with pytest.raises(EvalDataError, match=message):
        labelled.load(tmp_path, "segmentation", (16, 16))


def test_unreadable_image_and_too_few_classes(tmp_path):
    (tmp_path / "only").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "only" / "a.png")
    with pytest.raises(EvalDataError, match="one folder per class"):
        labelled.load(tmp_path, "classification", (8, 8))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "b.png").write_bytes(b"not a png")
    with pytest.raises(EvalDataError, match=r"other/b\.png: not a readable image"):
        labelled.load(tmp_path, "classification", (8, 8))


def _run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.mark.slow
def test_build_with_eval_data_reports_accuracy_from_it(tmp_path, capsys):
    data_dir = tmp_path / "shapes"
    _classification_folder(data_dir, n=20)
    build_dir = tmp_path / "build"
    code, out, err = _run(capsys, "build", "mobilenet_v2", "--tiny", "--eval-data",
                          str(data_dir), "--variants", "tflite-fp32,tflite-int8-full",
                          "--build-dir", str(build_dir))
    assert code == 0, err
    assert "task accuracy" in out and "--eval-data" in out
    store = Store(build_dir)
    refs = [json.loads(p.read_text()) for p in (build_dir / "references").glob("*/manifest.json")]
    (ref,) = refs
    assert ref["accuracy"]["images"] == 16 and "--eval-data" in ref["accuracy"]["data"]
    int8 = [json.loads(p.read_text()) for p in (build_dir / "artifacts").glob("*/manifest.json")
            if json.loads(p.read_text())["variant"]["name"] == "tflite-int8-full"]
    assert int8[0]["calibration"]["images"] == 4
    assert "calibration part" in int8[0]["calibration"]["source"]
    assert int8[0]["fidelity"]["accuracy"]["images"] == 16
    assert store.has("references", ref["key"])


def test_build_with_a_broken_label_file_stops_with_its_name(tmp_path, capsys):
    data_dir = tmp_path / "words"
    (data_dir / "images").mkdir(parents=True)
    (data_dir / "boxes").mkdir()
    for i in range(3):
        Image.new("RGB", (64, 64)).save(data_dir / "images" / f"w{i}.png")
        (data_dir / "boxes" / f"w{i}.txt").write_text("1,1,30,1,30,9,1,9,hi\n")
    (data_dir / "boxes" / "w2.txt").write_text("1,1,30,1\n")
    code, _, err = _run(capsys, "build", "psenet", "--tiny", "--eval-data", str(data_dir),
                        "--variants", "tflite-fp32", "--build-dir", str(tmp_path / "b"))
    assert code == 2
    assert "w2.txt:1: expected x1,y1,x2,y2,x3,y3,x4,y4" in err
