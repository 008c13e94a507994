"""Content-addressed artifact cache.

Every artifact lives in a directory named by the hash of everything it depends on (spec and
parameters, weights, evaluation inputs, variant options, converter versions). A directory is
complete when its `manifest.json` exists: builds are written to a temporary directory and renamed
into place, so an interrupted build leaves nothing that looks finished.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from edge.garden.base import canonical_json

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
KEY_CHARS = 20

_TOOLS = ("tensorflow", "keras", "tensorflowjs", "ai-edge-litert", "ai-edge-quantizer", "numpy",
          "tf2onnx", "onnx", "onnxruntime", "onnxconverter-common", "edge")
#: The converters an ONNX variant's key covers (beside TensorFlow's).
ONNX_TOOLS = ("tf2onnx", "onnx", "onnxruntime", "onnxconverter-common")


def tool_versions() -> dict[str, str]:
    """Versions of the converters and runtimes, read from package metadata (no heavy imports)."""
    versions = {}
    for name in _TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def hash_key(material: Any) -> str:
    return hashlib.sha256(canonical_json(material).encode()).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_tree(path: Path) -> str:
    """Hash of a file, or of every file in a directory (relative names and contents)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def file_entry(root: Path, path: Path) -> dict:
    data = path.read_bytes()
    return {
        "path": str(path.relative_to(root)),
        "bytes": len(data),
        "gzip_bytes": len(gzip.compress(data, compresslevel=9, mtime=0)),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def files_summary(root: Path, names: list[str]) -> dict:
    entries = [file_entry(root, root / n) for n in names]
    combined = hashlib.sha256("".join(e["sha256"] for e in entries).encode()).hexdigest()
    return {
        "files": entries,
        "bytes": sum(e["bytes"] for e in entries),
        "gzip_bytes": sum(e["gzip_bytes"] for e in entries),
        "sha256": combined,
    }


@dataclass(frozen=True)
class Store:
    """The build directory: `references/<key>/` and `artifacts/<key>/`."""

    root: Path

    def path(self, kind: str, key: str) -> Path:
        return Path(self.root) / kind / key[:KEY_CHARS]

    def manifest_path(self, kind: str, key: str) -> Path:
        return self.path(kind, key) / MANIFEST

    def has(self, kind: str, key: str) -> bool:
        path = self.manifest_path(kind, key)
        if not path.exists():
            return False
        try:
            return json.loads(path.read_text()).get("key") == key
        except (OSError, json.JSONDecodeError):
            return False

    def read(self, kind: str, key: str) -> dict:
        return json.loads(self.manifest_path(kind, key).read_text())

    def staging(self) -> Path:
        tmp = Path(self.root) / ".tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=tmp))

    def commit(self, kind: str, key: str, staged: Path, manifest: dict) -> Path:
        """Write the manifest into `staged` and move it into place atomically."""
        manifest = {"schema_version": SCHEMA_VERSION, "key": key, **manifest}
        write_json(staged / MANIFEST, manifest)
        final = self.path(kind, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():  # an incomplete or stale directory with the same key
            shutil.rmtree(final)
        os.replace(staged, final)
        return final

    def update_manifest(self, kind: str, key: str, **fields) -> dict:
        manifest = self.read(kind, key)
        manifest.update(fields)
        write_json(self.manifest_path(kind, key), manifest)
        return manifest


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temporary file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
