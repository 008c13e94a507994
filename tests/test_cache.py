"""Cache keys and the store, without converting anything."""

from __future__ import annotations

import json

import pytest

from edge.convert import pipeline
from edge.convert.cache import Store, files_summary
from edge.convert.targets import garden_target
from edge.garden import REGISTRY, resolve


def tiny(name: str, **overrides):
    spec = REGISTRY[name.split(":")[0]]
    return garden_target(spec.resolve({**spec.tiny, **overrides}),
                         variants=("tflite-fp32", "tfjs-uint8"))


def keys(plan):
    return {j.label: j.key for j in plan.references + plan.artifacts}


def test_keys_are_stable_and_parameter_changes_touch_only_their_model(tmp_path):
    store = Store(tmp_path)
    base = keys(pipeline.plan([tiny("mobilenet_v2"), tiny("deeplab_v3")], store))
    again = keys(pipeline.plan([tiny("mobilenet_v2"), tiny("deeplab_v3")], store))
    assert base == again
    changed = keys(pipeline.plan([tiny("mobilenet_v2"), tiny("deeplab_v3", head="ade20k")],
                                 store))
    for label, key in base.items():
        if label.startswith("mobilenet_v2"):
            assert changed[label] == key, f"{label} rebuilt although it does not depend on it"
    deeplab_before = {k for lbl, k in base.items() if lbl.startswith("deeplab_v3")}
    deeplab_after = {k for lbl, k in changed.items() if lbl.startswith("deeplab_v3")}
    assert deeplab_before.isdisjoint(deeplab_after)


def test_key_covers_seed_weights_and_variant(tmp_path):
    store = Store(tmp_path)
    spec = REGISTRY["mobilenet_v2"]
    config = spec.resolve(spec.tiny)
    ref = {j.key for j in pipeline.plan([garden_target(config)], store).references}
    seeded = {j.key for j in pipeline.plan([garden_target(config, seed=3)], store).references}
    assert ref != seeded
    weights = tmp_path / "w.weights.h5"
    weights.write_bytes(b"one")
    a = pipeline.plan([garden_target(config, weights=str(weights))], store).references[0].key
    weights.write_bytes(b"two")
    b = pipeline.plan([garden_target(config, weights=str(weights))], store).references[0].key
    assert a != b
    plan = pipeline.plan([garden_target(config)], store)
    assert len({j.key for j in plan.artifacts}) == len(plan.artifacts)


def test_unfinished_directory_is_not_a_cache_hit(tmp_path):
    store = Store(tmp_path)
    key = "a" * 64
    staged = store.staging()
    (staged / "model.tflite").write_bytes(b"\x00" * 10)
    # interrupted before commit: nothing under artifacts/ claims to be finished
    assert not store.has("artifacts", key)
    store.commit("artifacts", key, staged, files_summary(staged, ["model.tflite"]))
    assert store.has("artifacts", key)
    manifest = json.loads((store.path("artifacts", key) / "manifest.json").read_text())
    assert manifest["files"][0]["bytes"] == 10 and manifest["key"] == key
    # a manifest for another key (say, a truncated key collision) is not a hit
    assert not store.has("artifacts", "a" * 20 + "b" * 44)


def test_plan_marks_cached_jobs(tmp_path):
    store = Store(tmp_path)
    plan = pipeline.plan([tiny("psenet")], store)
    assert plan.to_convert == 3
    job = plan.artifacts[0]
    staged = store.staging()
    (staged / "f").write_bytes(b"x")
    store.commit("artifacts", job.key, staged, files_summary(staged, ["f"]))
    again = pipeline.plan([tiny("psenet")], store)
    assert again.to_convert == 2
    assert [j.cached for j in again.artifacts].count(True) == 1


def test_default_garden_plans_without_tensorflow(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from edge.workflow import garden_targets; "
            "from edge.convert import pipeline; from edge.convert.cache import Store; "
            f"pipeline.plan(garden_targets(), Store({str(tmp_path)!r})); "
            "assert 'tensorflow' not in sys.modules, 'planning imported tensorflow'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unsupported_variant_for_spec_is_rejected():
    from edge.errors import SpecError

    with pytest.raises(SpecError, match="not supported"):
        garden_target(resolve("mobilenet_v2"), variants=("tflite-as-is",))


def test_key_covers_the_export_batch(tmp_path, monkeypatch):
    """The reference is exported with a static batch (LiteRT.js rejects a -1 batch): changing
    it changes every key of the model, so no artifact of the old export is reused."""
    from edge.convert import targets

    store = Store(tmp_path)
    target = tiny("mobilenet_v2")
    assert target.reference_material("x")["export_batch"] == targets.EXPORT_BATCH == 1
    before = keys(pipeline.plan([target], store))
    monkeypatch.setattr(targets, "EXPORT_BATCH", None)
    after = keys(pipeline.plan([target], store))
    assert set(before) == set(after)
    assert all(before[label] != after[label] for label in before)
