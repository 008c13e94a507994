"""Reference points: published phone latencies, and how a run's emulated estimates compare.

`edge/data/reference_points.toml` quotes inference latencies measured on real phones (the TF.js
WASM backend's README, the TensorFlow Lite documentation, the EfficientNet-Lite README), each
with the verbatim excerpt it comes from. A point is *comparable* when edge can measure the same
model family, variant, runtime and thread count on the phone's catalog profile;
`compare_with_records` then pairs it with a run's records and reports the emulation's error as
the ratio estimate / reference (> 1: the emulation is pessimistic).

`load_reference_points` validates every field and raises `ReferencePointError` naming the file,
the point's id and the field.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.data import data_path
from edge.errors import EdgeError
from edge.text import display_path as _display
from edge.text import show_value as _show

DEFAULT_REFERENCE_POINTS = data_path("reference_points.toml")
DEFAULT_CATALOG = data_path("catalog.toml")

#: Runtimes a published figure may name that edge does not measure (always `comparable = false`).
REFERENCE_ONLY_RUNTIMES: dict[str, str] = {
    "litert-gpu": "tflite",  # the TFLite GPU delegate on the phone's GPU
    "tfjs-cpu": "tfjs",  # TF.js's plain-JavaScript CPU backend
}

NOT_MEASURED = "not measured in this run"

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")

_REQUIRED = ("id", "phone", "phone_label", "model", "model_note", "runtime", "variant",
             "latency_ms", "source_url", "source_commit", "excerpt", "comparable")
_OPTIONAL = ("threads", "features", "note")
_FIELDS = _REQUIRED + _OPTIONAL


class ReferencePointError(EdgeError, ValueError):
    """The reference-point file is unreadable or invalid; the message names the file, the
    point's id (or its position) and the field."""

    def __init__(self, message: str, *, path: Path | str | None = None,
                 point: str | None = None, field: str | None = None):
        super().__init__(message)
        self.path = path
        self.point = point
        self.field = field


@dataclass(frozen=True)
class ReferencePoint:
    id: str
    phone: str  # a catalog profile name
    phone_label: str  # the phone as the source names it
    model: str  # garden family, or a descriptive slug for a model the garden does not hold
    model_note: str
    runtime: str
    variant: str
    threads: int | None
    features: str
    latency_ms: float
    source_url: str
    source_commit: str
    excerpt: str
    comparable: bool
    note: str = ""


# --- loading --------------------------------------------------------------------------------


def excerpt_numbers(excerpt: str) -> list[float]:
    """The number tokens of an excerpt (`"| 17.5 ms |"` -> [17.5], `"37ms*"` -> [37.0])."""
    return [float(token) for token in _NUMBER.findall(excerpt)]


def _catalog_names(catalog: Mapping[str, Any] | None) -> dict[str, bool]:
    """Profile name -> is the host profile. Without a catalog, read the names from the default
    catalog file (TOML only: no Playwright)."""
    if catalog is None:
        try:
            data = tomllib.loads(DEFAULT_CATALOG.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ReferencePointError(f"{_display(DEFAULT_CATALOG)}: cannot read the device "
                                      f"catalog: {exc}", path=DEFAULT_CATALOG) from None
        profiles = data.get("profiles", {})
        return {name: isinstance(p, dict) and p.get("tier") == "host"
                for name, p in profiles.items()}
    names = {}
    for name, profile in catalog.items():
        tier = (profile.get("tier") if isinstance(profile, Mapping)
                else getattr(profile, "tier", None))
        names[name] = tier == "host"
    return names


class _Checker:
    def __init__(self, path: Path):
        self.path = path
        self.file = _display(path)

    def fail(self, message: str, point: str | None = None, field: str | None = None):
        prefix = self.file
        if point is not None:
            prefix += f": point {point}"
        if field is not None:
            prefix += f": field {field!r}"
        raise ReferencePointError(f"{prefix} {message}" if field else f"{prefix}: {message}",
                                  path=self.path, point=point, field=field)


def _load_point(check: _Checker, where: str, table: Any, names: dict[str, bool],
                garden: Iterable[str], runtimes: Mapping[str, str],
                variants: Mapping[str, Any]) -> ReferencePoint:
    if not isinstance(table, dict):
        check.fail(f"must be a table [[points]], got {_show(table)}", where)
    raw_id = table.get("id")
    if isinstance(raw_id, str) and raw_id:
        where = repr(raw_id)
    for key in table:
        if key not in _FIELDS:
            check.fail(f"unknown field {key!r} (allowed: {', '.join(_FIELDS)})", where)
    for key in _REQUIRED:
        if key not in table:
            check.fail(f"missing field {key!r} (required: {', '.join(_REQUIRED)})", where)

    def string(key: str, default: str | None = None, *, empty: bool = False) -> str:
        value = table.get(key, default)
        if not isinstance(value, str):
            check.fail(f"must be a string, got {_show(value)}", where, key)
        if not empty and not value.strip():
            check.fail("must not be empty", where, key)
        return value

    pid = string("id")
    if not _ID.match(pid):
        check.fail(f"must be a slug (lowercase letters, digits, '_', '-', '.'), got {pid!r}",
                   where, "id")
    phone = string("phone")
    if phone not in names:
        check.fail(f"must be a profile of the device catalog, got {phone!r} (profiles: "
                   f"{', '.join(names)})", where, "phone")
    if names[phone]:
        check.fail(f"must be a phone, not the host profile {phone!r}", where, "phone")
    model = string("model")
    if not _ID.match(model):
        check.fail(f"must be a slug (a garden family such as mobilenet_v2), got {model!r}",
                   where, "model")
    runtime = string("runtime")
    known = {**runtimes, **REFERENCE_ONLY_RUNTIMES}
    if runtime not in known:
        check.fail(f"must be one of {', '.join(known)}, got {runtime!r}", where, "runtime")
    variant = string("variant")
    if variant not in variants:
        check.fail(f"must be one of {', '.join(variants)}, got {variant!r}", where, "variant")
    fmt = getattr(variants[variant], "format", None)
    if fmt is not None and fmt != known[runtime]:
        check.fail(f"{variant!r} is a {fmt} variant; runtime {runtime!r} runs {known[runtime]}",
                   where, "variant")

    threads = table.get("threads")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool)
                                or threads < 1):
        check.fail(f"must be an integer >= 1 (or omitted), got {_show(threads)}", where,
                   "threads")
    latency = table["latency_ms"]
    if not (isinstance(latency, int | float) and not isinstance(latency, bool)
            and math.isfinite(latency) and latency > 0):
        check.fail(f"must be a number > 0, got {_show(latency)}", where, "latency_ms")
    excerpt = string("excerpt")
    if float(latency) not in excerpt_numbers(excerpt):
        check.fail(f"the figure {latency:g} does not appear in the excerpt as a number",
                   where, "excerpt")
    url = string("source_url")
    if not url.startswith("https://"):
        check.fail(f"must be an https:// URL, got {url!r}", where, "source_url")
    commit = string("source_commit")
    if not _COMMIT.match(commit):
        check.fail(f"must be a full 40-digit lowercase hex commit, got {commit!r}", where,
                   "source_commit")
    if "github.com/" in url and commit not in url:
        check.fail(f"{url!r} does not point at source_commit {commit}", where, "source_url")
    comparable = table["comparable"]
    if not isinstance(comparable, bool):
        check.fail(f"must be true or false, got {_show(comparable)}", where, "comparable")
    if comparable:
        if runtime in REFERENCE_ONLY_RUNTIMES:
            check.fail(f"must be false: edge does not measure runtime {runtime!r}", where,
                       "comparable")
        garden = list(garden)
        if model not in garden:
            check.fail(f"must be false: the garden has no model {model!r} (garden: "
                       f"{', '.join(garden)})", where, "comparable")
    return ReferencePoint(
        id=pid, phone=phone, phone_label=string("phone_label"), model=model,
        model_note=string("model_note"), runtime=runtime, variant=variant, threads=threads,
        features=string("features", "", empty=True), latency_ms=float(latency),
        source_url=url, source_commit=commit, excerpt=excerpt, comparable=comparable,
        note=string("note", "", empty=True))


def load_reference_points(path: Path | str = DEFAULT_REFERENCE_POINTS,
                          catalog: Mapping[str, Any] | None = None) -> list[ReferencePoint]:
    """Read and validate a reference-point file, in file order.

    `catalog` maps profile names to profiles (`load_catalog()`'s result, or raw TOML tables);
    every point's `phone` must be one of its phones. None reads the names from the default
    catalog file."""
    from edge.garden import REGISTRY
    from edge.variants import RUNTIMES, VARIANTS

    path = Path(path)
    check = _Checker(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        check.fail(f"cannot read: {exc.strerror or exc}")
    except tomllib.TOMLDecodeError as exc:
        check.fail(f"not valid TOML: {exc}")
    unknown = [key for key in data if key != "points"]
    if unknown:
        check.fail(f"unknown top-level key(s) {', '.join(map(repr, unknown))} (allowed: "
                   "[[points]])")
    entries = data.get("points", [])
    if not isinstance(entries, list):
        check.fail(f"'points' must be an array of tables [[points]], got {_show(entries)}")
    names = _catalog_names(catalog)
    points: list[ReferencePoint] = []
    seen: set[str] = set()
    for i, table in enumerate(entries):
        point = _load_point(check, f"#{i + 1}", table, names, REGISTRY, RUNTIMES, VARIANTS)
        if point.id in seen:
            check.fail("is a duplicate", repr(point.id), "id")
        seen.add(point.id)
        points.append(point)
    return points


# --- comparing with a run -------------------------------------------------------------------


def _matches(point: ReferencePoint, record: Mapping[str, Any]) -> bool:
    model = record.get("model")
    if not isinstance(model, str) or model.split(":")[0] != point.model:
        return False
    if (record.get("device"), record.get("variant"), record.get("runtime")) != (
            point.phone, point.variant, point.runtime):
        return False
    return point.threads is None or record.get("threads") == point.threads


def _base_row(point: ReferencePoint) -> dict[str, Any]:
    return {"id": point.id, "phone": point.phone, "phone_label": point.phone_label,
            "model": point.model, "variant": point.variant, "runtime": point.runtime,
            "threads": point.threads, "features": point.features,
            "reference_ms": point.latency_ms, "estimate_ms": None, "ci95": None, "ratio": None,
            "method": None, "off_target": None, "cell_id": None, "run_id": None,
            "source": point.source_url, "note": None}


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def compare_with_records(points: Iterable[ReferencePoint],
                         records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (comparable point, matching ok record): the run's estimate next to the
    published figure. A record matches when its device is the point's phone, its model family
    (`model` before any `:`), variant and runtime are the point's, and its threads equal the
    point's when the point gives them. ratio = estimate_ms / reference_ms (> 1: the emulation
    is pessimistic). A point without a match gives one row with estimate_ms None and a note
    starting "not measured in this run". Points with comparable = false are skipped."""
    records = [r for r in records if isinstance(r, Mapping)]
    rows: list[dict[str, Any]] = []
    for point in points:
        if not point.comparable:
            continue
        candidates = [r for r in records if _matches(point, r)]
        ok = [r for r in candidates if r.get("status") == "ok"]
        if not ok:
            row = _base_row(point)
            statuses = sorted({str(r.get("status")) for r in candidates})
            row["note"] = NOT_MEASURED + (f" (cell status: {', '.join(statuses)})"
                                          if statuses else "")
            rows.append(row)
            continue
        for record in ok:
            row = _base_row(point)
            latency = ((record.get("metrics") or {}).get("latency") or {})
            estimate = _number(latency.get("p50"))
            ci = latency.get("ci95")
            if (isinstance(ci, list | tuple) and len(ci) == 2
                    and all(_number(v) is not None for v in ci)):
                row["ci95"] = [float(ci[0]), float(ci[1])]
            emulation = record.get("emulation")
            if isinstance(emulation, Mapping):
                row["method"] = emulation.get("method")
                row["off_target"] = emulation.get("off_target")
            row.update(threads=record.get("threads"), model=record.get("model"),
                       cell_id=record.get("cell_id"), run_id=record.get("run_id"),
                       estimate_ms=estimate)
            if estimate is None:
                row["note"] = "the record has no latency p50"
            else:
                row["ratio"] = estimate / point.latency_ms
            rows.append(row)
    return rows


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def short_source(url: str) -> str:
    """`https://github.com/o/r/blob/<commit>/a/b.md` -> `o/r b.md@<commit[:8]>`; other URLs as
    they are."""
    match = re.match(r"^https://github\.com/([^/]+/[^/]+)/blob/([0-9a-f]{40})/(.+)$", url)
    if not match:
        return url
    repo, commit, path = match.groups()
    return f"{repo} {path.rsplit('/', 1)[-1]}@{commit[:8]}"


def format_table(rows: Iterable[Mapping[str, Any]]):
    """A rich Table of `compare_with_records` rows."""
    from rich.table import Table

    table = Table(title="Emulated estimates vs published phone latencies",
                  caption="ratio = estimate / published (> 1: the emulation is pessimistic)")
    for name, justify in (("point", "left"), ("phone", "left"), ("model", "left"),
                          ("variant", "left"), ("runtime", "left"), ("threads", "right"),
                          ("published ms", "right"), ("estimate ms (95% CI)", "right"),
                          ("ratio", "right"), ("method", "left"), ("source / note", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for row in rows:
        estimate = _ms(row.get("estimate_ms"))
        ci = row.get("ci95")
        if row.get("estimate_ms") is not None and ci:
            estimate += f" ({_ms(ci[0])}-{_ms(ci[1])})"
        ratio = row.get("ratio")
        ratio_text = "-" if ratio is None else f"{ratio:.2f}x"
        if row.get("off_target"):
            ratio_text += " (off target)"
        threads = row.get("threads")
        table.add_row(str(row.get("id", "")), f"{row.get('phone', '')}",
                      str(row.get("model", "")), str(row.get("variant", "")),
                      str(row.get("runtime", "")), "-" if threads is None else str(threads),
                      _ms(row.get("reference_ms")), estimate, ratio_text,
                      str(row.get("method") or "-"),
                      str(row.get("note") or short_source(str(row.get("source") or ""))))
    return table
