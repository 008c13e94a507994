"""Merging runs: the shards of `edge bench --shard i/n` (or runs measured on several machines
or devices) combined into one run directory that the report and the picker read like any other.

`merge_runs` reads each run's records and ``run.json`` and writes ``reports/<new-id>/`` with
``results.jsonl`` (every record of every run, in run order, unchanged: each keeps its
``run_id`` and ``provenance``, the machine, endpoint and shard that measured it), ``run.json``
(the runs' common settings, plus ``merged_from`` listing each run) and ``checks.json`` (the
self-checks over the merged records). It refuses, with an error naming what clashes:

- a cell id that two runs both recorded (name of the cell and of both runs);
- an artifact, a model and variant, whose sha256 differs between runs (they measured different
  builds under one name);
- runs measured under different protocols (their figures are not comparable);
- a target run id that exists already.

The merged run is written into a temporary directory first and renamed into place, so a failed
merge leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import EdgeError
from edge.results.checks import checks_json, self_checks
from edge.results.store import (
    META_NAME,
    RESULTS_NAME,
    ResultStore,
    _dumps,
    list_runs,
    new_run_id,
    update_latest,
)

CHECKS_NAME = "checks.json"
#: Settings of run.json that the merged run.json has when every run agrees; each run's own
#: value is listed in ``merged_from``.
PER_RUN = ("matrix", "preset", "tiny", "matrix_cells", "emulation")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class MergeError(EdgeError):
    """Runs that cannot be merged: the message names the cell, artifact or setting and the
    runs that disagree."""


@dataclass
class Merged:
    run_id: str
    run_dir: Path
    records: list[dict[str, Any]]
    meta: dict[str, Any]
    checks: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def _short(sha: str | None) -> str:
    return (sha or "none")[:12]


def _read(reports_dir: Path, run_id: str) -> tuple[list[dict], dict]:
    run_dir = reports_dir / run_id
    if not ((run_dir / RESULTS_NAME).is_file() or (run_dir / META_NAME).is_file()):
        runs = list_runs(reports_dir)
        raise MergeError(f"run {run_id!r}: no such run under {reports_dir}; runs there: "
                         f"{', '.join(runs[-10:]) or '(none)'}")
    store = ResultStore(run_dir)
    try:
        meta = store.read_meta() or {}
    except ValueError as exc:
        raise MergeError(f"run {run_id}: {exc}") from None
    return store.records(), meta


def _provenance(record: Mapping[str, Any], meta: Mapping[str, Any], run_id: str) -> dict:
    """The record's provenance; for records written before records carried one, what its host
    metadata and its run's shard say (endpoint unknown)."""
    prov = record.get("provenance")
    if isinstance(prov, Mapping):
        return dict(prov)
    host = record.get("host") if isinstance(record.get("host"), Mapping) else {}
    return {"machine": {"hostname": host.get("hostname"), "platform": host.get("os")},
            "endpoint": None, "shard": meta.get("shard"), "note": f"inferred from run {run_id}"}


def _common(metas: Sequence[tuple[str, Mapping]], key: str) -> tuple[bool, Any]:
    """(True, value) when every run that records `key` records the same value."""
    values = [(run, m[key]) for run, m in metas if key in m]
    if not values:
        return True, None
    first = values[0][1]
    return all(v == first for _, v in values), first


def _union(metas: Sequence[tuple[str, Mapping]], key: str) -> list:
    out: list = []
    for _, m in metas:
        for v in m.get(key) or []:
            if v not in out:
                out.append(v)
    return out


def _merged_meta(run_id: str, metas: Sequence[tuple[str, Mapping]],
                 counts: Mapping[str, int]) -> dict[str, Any]:
    same_protocol, protocol = _common(metas, "protocol")
    if not same_protocol:
        differing = [f"{run} ({json.dumps(m['protocol'], sort_keys=True)})"
                     for run, m in metas if "protocol" in m]
        raise MergeError("the runs were measured under different protocols, so their figures "
                         "do not compare: " + "; ".join(differing))
    meta: dict[str, Any] = {"run_id": run_id, "protocol": protocol, "shard": None}
    for key in PER_RUN:  # the runs' common value; where they differ, each run's is listed
        same, value = _common(metas, key)
        if same and value is not None:
            meta[key] = value
    meta["models"] = _union(metas, "models")
    meta["variants"] = _union(metas, "variants")
    meta["cells"] = sum(int(m.get("cells", counts[run])) for run, m in metas)
    hosts = [m["host"] for _, m in metas if isinstance(m.get("host"), Mapping)]
    if hosts and all(h.get("hostname") == hosts[0].get("hostname") for h in hosts):
        meta["host"] = hosts[0]
    meta["merged_from"] = [
        {"run_id": run, "shard": m.get("shard"), "cells": m.get("cells"),
         "records": counts[run], "created": m.get("created"),
         "hostname": (m.get("host") or {}).get("hostname"),
         **{key: m[key] for key in PER_RUN if key in m}}
        for run, m in metas]
    return meta


def _shard_notes(metas: Sequence[tuple[str, Mapping]]) -> list[str]:
    shards = [m.get("shard") for _, m in metas]
    if not shards or any(not s for s in shards):
        return []
    counts = {s.split("/")[1] for s in shards}
    if len(counts) != 1:
        return [f"the runs are shards of different splits ({', '.join(shards)})"]
    n = int(counts.pop())
    missing = [f"{i}/{n}" for i in range(1, n + 1) if f"{i}/{n}" not in shards]
    return [f"shard(s) {', '.join(missing)} not merged: the merged run covers part of the "
            "matrix"] if missing else []


def merge_runs(reports_dir: Path | str, run_ids: Sequence[str],
               into: str | None = None) -> Merged:
    """Merge `run_ids` (under `reports_dir`) into the new run `into` (default: a new id); see
    the module docstring. `MergeError` when they cannot be merged; nothing is written then."""
    reports_dir = Path(reports_dir)
    run_ids = list(run_ids)
    if not run_ids:
        raise MergeError("give the runs to merge (RUN_ID...)")
    repeated = sorted({r for r in run_ids if run_ids.count(r) > 1})
    if repeated:
        raise MergeError(f"run(s) given more than once: {', '.join(repeated)}")
    new_id = into or new_run_id()
    if not _RUN_ID.match(new_id):
        raise MergeError(f"--into {new_id!r}: a run id is letters, digits, '.', '_' and '-', "
                         "starting with a letter or digit")
    if (reports_dir / new_id).exists():
        raise MergeError(f"--into {new_id}: {reports_dir / new_id} exists already; choose "
                         "another id")

    records: list[dict[str, Any]] = []
    metas: list[tuple[str, dict]] = []
    counts: dict[str, int] = {}
    owner: dict[str, str] = {}  # cell id -> run
    builds: dict[tuple[str, str], tuple[str, str]] = {}  # (model, variant) -> (sha, run)
    for run in run_ids:
        run_records, meta = _read(reports_dir, run)
        metas.append((run, meta))
        counts[run] = len(run_records)
        for rec in run_records:
            cid = rec["cell_id"]
            if cid in owner:
                raise MergeError(f"cell {cid} is in run {owner[cid]} and in run {run}: merge "
                                 "each cell once (drop one of the runs, or re-measure the "
                                 "cell in one of them)")
            owner[cid] = run
            sha = rec.get("artifact_sha256")
            key = (str(rec.get("model")), str(rec.get("variant")))
            if sha:
                seen = builds.setdefault(key, (sha, run))
                if seen[0] != sha:
                    raise MergeError(
                        f"artifact {key[0]} {key[1]} differs between runs: sha256 "
                        f"{_short(seen[0])}… in run {seen[1]}, {_short(sha)}… in run {run} "
                        f"(cell {cid}); the runs measured different builds, rebuild on one "
                        "machine (or share its build directory) and measure again")
            records.append({**rec, "provenance": _provenance(rec, meta, run)})

    meta = _merged_meta(new_id, metas, counts)
    checks = self_checks(records)
    reports_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".merge-{new_id}.", dir=reports_dir))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide the run from other readers
        with open(tmp / RESULTS_NAME, "w", encoding="utf-8") as f:
            for rec in records:
                f.write(_dumps(rec, f"record {rec['cell_id']}") + "\n")
            f.flush()
            os.fsync(f.fileno())
        ResultStore(tmp).write_meta(meta)
        (tmp / CHECKS_NAME).write_text(checks_json(checks), encoding="utf-8")
        try:
            os.rename(tmp, reports_dir / new_id)
        except OSError:  # created meanwhile
            raise MergeError(f"--into {new_id}: {reports_dir / new_id} exists already") \
                from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    update_latest(reports_dir)
    return Merged(new_id, reports_dir / new_id, records, meta, checks, _shard_notes(metas))
