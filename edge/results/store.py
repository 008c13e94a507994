"""Append-only measurement results: one JSON Lines record per measured cell.

A run lives in ``reports/<run-id>/``: ``results.jsonl`` (one record per cell, appended as cells
finish, so an interrupted run keeps everything measured so far and resumes by skipping
`ResultStore.done_cells`) and ``run.json`` (the run's matrix, protocol, host and creation time,
written atomically).

Durability: each record is one ``os.write`` of one complete line on an ``O_APPEND`` descriptor,
followed by ``fsync``, under an exclusive ``flock`` (so concurrent writers in other processes
neither interleave nor duplicate cells; threads of one process share a store object and take
its lock, which also guards the cell-id cache). A process killed mid-write can leave at most one
unterminated line at the end of the file; the next `ResultStore.append` first terminates it
(`ResultStore.repair`) so its own record starts on a line of its own, and readers skip the
damaged line with a `DamagedRecordWarning`.

Nothing here imports TensorFlow: package versions are read from installed metadata.
"""

from __future__ import annotations

import json
import math
import os
import platform
import secrets
import socket
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePath
from typing import Any

try:  # POSIX only; elsewhere writers in one process are still safe, across processes not.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed", "timeout", "unsupported")
RESULTS_NAME = "results.jsonl"
META_NAME = "run.json"

#: The keys of a cell: the four required ones, then the optional thread count.
CELL_KEYS = ("model", "variant", "runtime", "device")
OPTIONAL_CELL_KEYS = ("threads",)

#: Distributions whose versions `host_metadata` records ("missing" when not installed).
PACKAGES = ("tensorflow", "tensorflowjs", "ai-edge-litert", "playwright", "numpy")

#: Record keys that ``extra`` may set (all the others are `make_record`'s own).
_OVERRIDABLE = frozenset({"started", "finished"})


class DamagedRecordWarning(UserWarning):
    """A line of a results file could not be read as a record and was skipped."""


class DuplicateCellError(ValueError):
    """A record for this cell is already in the results file."""


# -- identifiers and timestamps -------------------------------------------------------------

def utc_now() -> str:
    """The current time as ISO-8601 UTC with milliseconds, e.g. 2026-11-29T10:15:00.123+00:00."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_run_id(now: datetime | None = None) -> str:
    """A new run id: UTC time to the second plus 4 random hex digits, e.g.
    ``20261129-101500-ab12``; ids sort by creation time. A naive ``now`` is taken as UTC."""
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is not None:
        now = now.astimezone(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def cell_id(model: str, variant: str, runtime: str, device: str,
            threads: int | None = None) -> str:
    """The stable, readable id of one cell, e.g. ``mobilenet_v2|tflite-fp32|litert|host|t2``
    (no ``|t<n>`` part when ``threads`` is None, i.e. the runtime's default)."""
    parts = {"model": model, "variant": variant, "runtime": runtime, "device": device}
    for name, value in parts.items():
        if not isinstance(value, str) or not value or value != value.strip():
            raise ValueError(f"cell {name} must be a non-empty string without surrounding "
                             f"spaces, got {value!r}")
        if "|" in value or any(c in value for c in "\r\n"):
            raise ValueError(f"cell {name} must not contain '|' or line breaks, got {value!r}")
    cid = "|".join(parts.values())
    if threads is None:
        return cid
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"cell threads must be a positive integer or None, got {threads!r}")
    return f"{cid}|t{threads}"


# -- host ---------------------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _git_commit() -> str | None:
    """The commit of the edge code that runs (its checkout, not the working directory's: a
    user's project may be a repository of its own); None when edge is not a git checkout."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=False, cwd=root)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "missing"


def host_metadata() -> dict[str, Any]:
    """What was measured on: CPU, cores, memory, OS, Python, package versions (from installed
    metadata, never by importing them), the git commit of the current directory's repository
    (None outside one) and the host name."""
    import psutil

    return {
        "cpu_model": _cpu_model(),
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "memory_total_bytes": int(psutil.virtual_memory().total),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {dist: _version(dist) for dist in PACKAGES},
        "git_commit": _git_commit(),
        "hostname": socket.gethostname(),
    }


def public_endpoint(endpoint: str | None) -> str:
    """What a record says about where a cell ran: ``"local"`` for this machine's own browser or
    worker, else the endpoint URL without user name, password, query or fragment (a cloud
    farm's credentials and capabilities travel there and never reach a record)."""
    if not endpoint:
        return "local"
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "remote"
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = host + (f":{port}" if port else "")
    return f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else "remote"


def provenance(endpoint: str | None = None, shard: str | None = None) -> dict[str, Any]:
    """A record's ``provenance``: the machine that measured it (host name and platform), the
    endpoint it ran on (`public_endpoint`) and the shard of the run (``"i/n"``, None when the
    run was not sharded). `edge merge` keeps it, so a merged run says where each cell came
    from."""
    return {"machine": {"hostname": socket.gethostname(), "platform": platform.platform()},
            "endpoint": public_endpoint(endpoint), "shard": shard}


# -- records --------------------------------------------------------------------------------

def make_record(*, cell: Mapping[str, Any], status: str, run_id: str,
                artifact_sha256: str | None, metrics: Mapping[str, Any] | None = None,
                error: Any = None, host: Mapping[str, Any] | None = None,
                extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One result record. ``cell`` holds model, variant, runtime, device and optionally threads;
    ``started``/``finished`` default to now and may be given in ``extra``, whose other keys are
    added at the top level but may not replace the record's own. ``host`` defaults to ``{}``
    (pass `host_metadata()`, computed once per run). An exception given as ``error`` is stored
    as ``"Type: message"``, any other non-string as its `str`."""
    if not isinstance(cell, Mapping):
        raise ValueError(f"cell must be a mapping, got {type(cell).__name__}")
    missing = [k for k in CELL_KEYS if k not in cell]
    unknown = sorted(str(k) for k in cell if k not in CELL_KEYS + OPTIONAL_CELL_KEYS)
    if missing or unknown:
        raise ValueError(f"cell {dict(cell)!r}: missing key(s) {missing}, unknown key(s) "
                         f"{unknown}; a cell has {', '.join(CELL_KEYS + OPTIONAL_CELL_KEYS)} "
                         f"(put anything else in extra)")
    threads = cell.get("threads")
    cid = cell_id(*(cell[k] for k in CELL_KEYS), threads=threads)
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    if not isinstance(run_id, str) or not run_id:
        raise ValueError(f"run_id must be a non-empty string, got {run_id!r}")
    if isinstance(error, BaseException):
        error = f"{type(error).__name__}: {error}"
    elif error is not None and not isinstance(error, str):  # e.g. a harness's error object
        error = str(error)
    if artifact_sha256 is not None:
        if (not isinstance(artifact_sha256, str) or len(artifact_sha256) != 64
                or any(c not in "0123456789abcdef" for c in artifact_sha256.lower())):
            raise ValueError(f"artifact_sha256 must be 64 hex digits or None, "
                             f"got {artifact_sha256!r}")
        artifact_sha256 = artifact_sha256.lower()
    for name, value in (("metrics", metrics), ("host", host), ("extra", extra)):
        if value is not None and not isinstance(value, Mapping):
            raise ValueError(f"{name} must be a mapping or None, got {type(value).__name__}")
    now = utc_now()
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "cell_id": cid,
        **{k: cell[k] for k in CELL_KEYS},
        "threads": threads,
        "status": status,
        "error": error,
        "artifact_sha256": artifact_sha256,
        "started": now,
        "finished": now,
        "metrics": dict(metrics or {}),
        "host": dict(host or {}),
    }
    if extra:
        clash = sorted(str(k) for k in extra if k in record and k not in _OVERRIDABLE)
        if clash:
            raise ValueError(f"extra must not override the record's own key(s): "
                             f"{', '.join(clash)}")
        record.update(extra)
    return record


def _jsonable(value: Any, where: str) -> Any:
    """A copy of ``value`` that `json.dumps(allow_nan=False)` accepts: NaN/inf become None,
    numpy scalars and arrays become Python values and lists, paths become strings."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if isinstance(k, int) and not isinstance(k, bool):
                k = str(k)
            if not isinstance(k, str):
                raise ValueError(f"{where}: key {k!r} is not a string")
            out[k] = _jsonable(v, f"{where}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "dtype") and hasattr(value, "tolist"):  # numpy scalar or array
        return _jsonable(value.tolist(), where)
    if isinstance(value, PurePath):
        return str(value)
    raise ValueError(f"{where}: {type(value).__name__} is not JSON-serializable")


def _dumps(record: Mapping[str, Any], where: str) -> str:
    return json.dumps(_jsonable(record, where), sort_keys=True, allow_nan=False)


def _parse_line(raw: bytes) -> tuple[dict | None, str]:
    """(record, "") for a good line, else (None, why it is damaged)."""
    try:
        rec = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not UTF-8"
    except json.JSONDecodeError as exc:
        return None, f"not JSON: {exc.msg} at column {exc.colno}"
    if not isinstance(rec, dict):
        return None, f"a JSON {type(rec).__name__}, not an object"
    cid = rec.get("cell_id")
    if not isinstance(cid, str) or not cid:
        return None, "no cell_id"
    return rec, ""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


class ResultStore:
    """The results of one run: ``run_dir/results.jsonl`` (append-only) and ``run_dir/run.json``.

    `done_cells` is incremental: each call reads only the bytes appended since the previous
    one, so checking thousands of records before each cell stays cheap."""

    def __init__(self, run_dir: Path | str):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / RESULTS_NAME
        self.meta_path = self.run_dir / META_NAME
        self._ids: set[str] = set()  # cell ids of the complete lines before _offset
        self._offset = 0
        self._file: tuple[int, int] | None = None  # (st_dev, st_ino) the cache describes
        #: Threads writing through this object (concurrent lanes of a run) take turns: flock
        #: excludes other processes, this lock the cache's readers and writers here.
        self._lock_here = threading.RLock()

    def __repr__(self) -> str:
        return f"ResultStore({str(self.run_dir)!r})"

    # -- low level, on an open descriptor --

    def _scan(self, fd: int) -> set[str]:
        """Bring the cell-id cache up to date with the file; return the id of an unterminated
        last line that nonetheless parses (it counts as done, but is not cached: once
        terminated it is read again as a complete line)."""
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != self._file or st.st_size < self._offset:
            self._ids, self._offset, self._file = set(), 0, (st.st_dev, st.st_ino)
        data = os.pread(fd, st.st_size - self._offset, self._offset) \
            if st.st_size > self._offset else b""
        end = data.rfind(b"\n") + 1
        for raw in data[:end].split(b"\n")[:-1]:
            if raw.strip():
                rec, _ = _parse_line(raw)
                if rec is not None:
                    self._ids.add(rec["cell_id"])
        self._offset += end
        tail, _ = _parse_line(data[end:]) if data[end:].strip() else (None, "")
        return {tail["cell_id"]} if tail is not None else set()

    @staticmethod
    def _terminate(fd: int) -> int:
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return 0
        os.write(fd, b"\n")
        os.fsync(fd)
        return 1

    @staticmethod
    def _lock(fd: int) -> None:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed

    # -- public --

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record as one line (see the module docstring for the guarantees). Refuses
        (`DuplicateCellError`, a `ValueError`) a record whose cell_id is already present, and
        (`ValueError`) one that is not a mapping with a cell_id or not JSON-serializable;
        NaN and infinities are stored as null."""
        if not isinstance(record, Mapping):
            raise ValueError(f"a record must be a mapping, got {type(record).__name__}")
        cid = record.get("cell_id")
        if not isinstance(cid, str) or not cid:
            raise ValueError(f"a record needs a non-empty string cell_id, got {cid!r}")
        data = (_dumps(record, f"record {cid}") + "\n").encode("utf-8")
        with self._lock_here:
            self._append(cid, data)

    def _append(self, cid: str, data: bytes) -> None:
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            self._lock(fd)
            self._terminate(fd)  # a writer killed mid-line must not swallow this record
            self._scan(fd)
            if cid in self._ids:
                raise DuplicateCellError(f"{self.path}: cell {cid!r} already has a record")
            written = os.write(fd, data)
            if written != len(data):  # e.g. disk full; the partial line is repaired next time
                raise OSError(f"{self.path}: short write ({written} of {len(data)} bytes) "
                              f"for cell {cid!r}")
            os.fsync(fd)
            self._ids.add(cid)  # _offset stays: the next scan reads this line back
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.run_dir)

    def repair(self) -> int:
        """Terminate an unterminated last line (a write interrupted mid-line) so the next record
        starts on its own line. Returns the number of bytes added (0 or 1)."""
        with self._lock_here:
            return self._repair()

    def _repair(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:
            return 0
        try:
            self._lock(fd)
            return self._terminate(fd)
        finally:
            os.close(fd)

    def records(self) -> list[dict[str, Any]]:
        """Every readable record, in file order. Damaged lines (truncated, not JSON, not an
        object, no cell_id) and repeated cell ids are skipped, each with a
        `DamagedRecordWarning` naming the file and the 1-based line number; blank lines are
        skipped silently. Never raises for damage."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        for lineno, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            rec, why = _parse_line(raw)
            if rec is None and lineno == len(lines) and not data.endswith(b"\n"):
                why = f"truncated last line ({why})"
            elif rec is not None and rec["cell_id"] in seen:
                rec, why = None, f"repeats cell {rec['cell_id']!r}"
            if rec is None:
                warnings.warn(f"{self.path}:{lineno}: skipped damaged record: {why}",
                              DamagedRecordWarning, stacklevel=2)
                continue
            seen.add(rec["cell_id"])
            out.append(rec)
        return out

    def done_cells(self) -> set[str]:
        """The cell ids that have a readable record (silently ignoring damaged lines, whose
        cells are therefore measured again on resume)."""
        with self._lock_here:
            return self._done_cells()

    def _done_cells(self) -> set[str]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._ids, self._offset, self._file = set(), 0, None
            return set()
        try:
            tail = self._scan(fd)  # may replace self._ids: read it afterwards
            return self._ids | tail
        finally:
            os.close(fd)

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        """Write ``run.json`` atomically (temporary file, fsync, `os.replace`). Adds
        ``schema_version`` and ``created`` (kept from an earlier run.json when rewriting)
        unless given."""
        if not isinstance(meta, Mapping):
            raise ValueError(f"run metadata must be a mapping, got {type(meta).__name__}")
        meta = dict(meta)
        if "created" not in meta:
            try:
                previous = self.read_meta()
            except ValueError:
                previous = None
            meta["created"] = (previous or {}).get("created") or utc_now()
        meta.setdefault("schema_version", SCHEMA_VERSION)
        text = json.dumps(_jsonable(meta, "run metadata"), sort_keys=True, indent=2,
                          allow_nan=False) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=f".{META_NAME}.", suffix=".tmp", dir=self.run_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.meta_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.run_dir)

    def read_meta(self) -> dict[str, Any] | None:
        """``run.json``'s contents, or None when there is none; `ValueError` naming the file
        when it is not a JSON object."""
        try:
            raw = self.meta_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            meta = json.loads(raw.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{self.meta_path}: not valid JSON: {exc}") from None
        if not isinstance(meta, dict):
            raise ValueError(f"{self.meta_path}: expected a JSON object, "
                             f"got {type(meta).__name__}")
        return meta


def list_runs(reports_dir: Path | str) -> list[str]:
    """The run ids under ``reports_dir`` (directories holding results.jsonl or run.json),
    sorted; ids from `new_run_id` sort oldest first."""
    root = Path(reports_dir)
    if not root.is_dir():
        return []
    # `reports/latest` is a symlink to a run, not a run of its own; a hidden directory is work
    # in progress (`edge merge` writes its run there before renaming it into place)
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
                  and ((p / RESULTS_NAME).is_file() or (p / META_NAME).is_file()))


#: `reports/latest`: a link to the latest run (`latest_run`); `latest.txt` holds its id where
#: symlinks cannot be made.
LATEST = "latest"
LATEST_TXT = "latest.txt"


def has_results(run_dir: Path | str) -> bool:
    """Whether the run has recorded anything: a non-empty results.jsonl."""
    try:
        return (Path(run_dir) / RESULTS_NAME).stat().st_size > 0
    except OSError:
        return False


def latest_run(reports_dir: Path | str) -> str | None:
    """"latest", the one meaning every command gives it: the most recent run that has results
    (the last in `list_runs` order with a non-empty results.jsonl; run ids sort by creation
    time), or None when no run has any. A run that recorded nothing yet (an interrupted start, a
    merge in progress) is never "latest"."""
    root = Path(reports_dir)
    runs = [r for r in list_runs(root) if has_results(root / r)]
    return runs[-1] if runs else None


def point_latest(reports_dir: Path | str, run_id: str) -> Path:
    """Point ``reports_dir/latest`` at the run: a relative symlink, replaced atomically; where a
    symlink cannot be made (or ``latest`` is a real directory) write ``latest.txt`` holding the
    run id instead. Returns the path written."""
    reports_dir = Path(reports_dir)
    link = reports_dir / LATEST
    tmp = reports_dir / f".{LATEST}.{os.getpid()}.tmp"
    try:
        tmp.unlink(missing_ok=True)
        os.symlink(run_id, tmp, target_is_directory=True)
        if link.is_dir() and not link.is_symlink():
            raise IsADirectoryError(str(link))
        os.replace(tmp, link)
    except (OSError, NotImplementedError):
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        target = reports_dir / LATEST_TXT
        fd, part = tempfile.mkstemp(prefix=f".{LATEST_TXT}.", suffix=".tmp", dir=reports_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(run_id + "\n")
            os.chmod(part, 0o644)
            os.replace(part, target)
        except BaseException:
            Path(part).unlink(missing_ok=True)
            raise
        return target
    (reports_dir / LATEST_TXT).unlink(missing_ok=True)  # stale from a host without symlinks
    return link


def update_latest(reports_dir: Path | str) -> str | None:
    """Point ``reports_dir/latest`` at `latest_run` (when a run has recorded results, a report
    is written or runs are merged), so that the link and ``--run latest`` name one run;
    returns its id (None, and nothing changed, when no run has results)."""
    run_id = latest_run(reports_dir)
    if run_id is not None:
        point_latest(reports_dir, run_id)
    return run_id
