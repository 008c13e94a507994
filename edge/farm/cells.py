"""The per-cell bench context of a run: the records (one JSON Lines record per cell, appended
and fsynced as soon as it is measured), the device targets, the calibrations and cgroups per
device, the run's noise, and the fidelity helpers every runner uses.

Interrupting a run loses nothing already written; `resume` finishes the missing cells of a run
without duplicating any. A cell that cannot run is a record (`failed`, `timeout`,
`unsupported` with the error text), never a crash of the matrix. Where a cell runs is
`edge.farm.runners`; which cells run in what order, `edge.farm.scheduling`.
"""

from __future__ import annotations

import base64
import contextlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.markup import escape

from edge.convert.cache import Store, sha256_file
from edge.convert.reference import load_reference_outputs
from edge.validate.metrics import METRICS, judge
from edge.validate.run import current_thresholds, several_outputs
from edge.variants import explain_failure


@dataclass
class Artifact:
    key: str
    dir: Path
    manifest: dict

    @property
    def main_file(self) -> Path:
        return self.dir / self.manifest["files"][0]["path"]


def verify_artifact(artifact: Artifact) -> str | None:
    """None when every file matches its manifest sha256, else what is wrong."""
    for entry in artifact.manifest["files"]:
        path = artifact.dir / entry["path"]
        if not path.exists():
            return f"artifact corrupt: missing file {entry['path']}"
        if path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            return f"artifact corrupt: {entry['path']} does not match its sha256"
    return None


def failure_status(cell, error: str | None) -> tuple[str, dict | None]:
    """("unsupported", the known issue) when the error matches the signature of a known issue
    of the cell's variant and runtime; else ("failed", None): a new failure is never hidden
    behind an old note."""
    issue = explain_failure(cell.variant, cell.runtime, error)
    if issue is None:
        return "failed", None
    return "unsupported", {"variant": issue.variant, "runtime": issue.runtime,
                           "reason": issue.reason, "signature": issue.signature}


def fidelity_of(outputs: list[np.ndarray], artifact: Artifact, store: Store) -> dict | None:
    """Task metrics of the outputs a runtime returned against the float32 reference's."""
    ref = artifact.manifest.get("reference")
    if not outputs or ref is None:
        return None
    if several_outputs(artifact.manifest):
        return {"status": "n/a", "figures": {}, "reasons": [several_outputs(artifact.manifest)]}
    _, ref_out = load_reference_outputs(store.path("references", ref["key"]))
    k = min(len(outputs), len(ref_out))
    got = np.concatenate([o.reshape((1, *ref_out.shape[1:])) for o in outputs[:k]])
    task = artifact.manifest["model"]["task"]
    figures = METRICS[task](ref_out[:k], got)
    status, reasons = judge(figures, current_thresholds(artifact.manifest),
                            artifact.manifest["quantization"])
    result = {"status": status, "figures": figures, "reasons": reasons, "images": k}
    accuracy = runtime_accuracy(got, ref_out[:k], store.path("references", ref["key"]), task)
    if accuracy is not None:
        result["accuracy"] = accuracy
    return result


def runtime_accuracy(got: np.ndarray, ref_out: np.ndarray, ref_dir, task: str) -> dict | None:
    """Task accuracy of a runtime's outputs on the labelled fidelity images, against the float32
    reference's outputs on the same images (a few images: the interval says how little they
    tell); None where the fidelity images have no labels."""
    from pathlib import Path

    from edge import accuracy as acc

    path = Path(ref_dir) / acc.FIDELITY_TRUTH_FILE
    if not path.exists():
        return None
    truth = acc.load_truth(path)[:len(got)]
    classes = None
    if task == "segmentation":
        classes = acc.segmentation_classes(np.asarray(truth))
    mine = acc.image_stats(task, got, truth, classes)
    reference = acc.image_stats(task, ref_out, truth, classes)
    return acc.compare(task, mine, reference, "fidelity images (labelled)").to_dict()


def decode_outputs(items: list[dict] | None) -> list[np.ndarray]:
    """The first output of each returned image, in image order (little-endian float32)."""
    first = sorted((o for o in items or [] if o.get("output", 0) == 0),
                   key=lambda o: o.get("image", 0))
    return [np.frombuffer(base64.b64decode(o["b64"]), "<f4").reshape(o["shape"]) for o in first]


def safe_fidelity(outputs: list[np.ndarray], artifact: Artifact, store: Store) -> dict | None:
    """Fidelity, or the error that prevented it: never a reason to lose the cell's timings."""
    try:
        return fidelity_of(outputs, artifact, store)
    except Exception as exc:  # noqa: BLE001 - recorded with the cell
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}


#: Milliseconds of work per timed block of a calibration or paired measurement.
PROBE_MS = 200
#: Alternating (unthrottled, throttled) block pairs of an emulated cell's paired slowdown.
PAIRS = 3

#: Outputs bigger than this per image are not sent back from the page (DeepLab ade20k at 257²
#: is 40 MB of float32 per image): fidelity then uses fewer images.
MAX_OUTPUT_BYTES = 64 * 1024 * 1024


class Bench:
    """The context every cell of one run directory is measured in: what the runners record
    through (`record`), and what the run learns as it goes (targets, calibrations, cgroups,
    paired slowdowns, noise)."""

    def __init__(self, matrix, artifacts: dict[tuple[str, str], Artifact], store: Store,
                 results, run_id: str, protocol, catalog: dict, host: dict, console,
                 emulation=None, noise_repeats: int = 0, shard: str | None = None):
        from edge.farm.emulation.methods import Emulation

        self.matrix, self.artifacts, self.store = matrix, artifacts, store
        self.results, self.run_id, self.protocol = results, run_id, protocol
        self.catalog, self.host, self.console = catalog, host, console
        self.emulation = emulation or Emulation("none", None, "not chosen")
        self.data_dir = results.path.parent / "data"
        self.host_cores = os.cpu_count() or 1
        self.targets: dict[str, float] = {}  # device -> target slowdown (benchmark index)
        self.calibrations: dict[tuple, object] = {}  # (device, runtime, threads) -> Calibration
        self.groups: dict[str, object] = {}  # device/kind -> CpuGroup
        self.host_index: float | None = None
        self.host_index_pages: list[float] = []  # each page's median, the index their median
        self.paired: dict[object, dict | str] = {}  # cell -> its paired slowdown measurement
        self.noise: dict[str, dict] = {}  # "browser" | "native" -> the run's between-run spread
        self.noise_repeats = noise_repeats  # fresh pages/workers of the noise probe (< 2: none)
        self._host_p50: dict[str, float] | None = None  # host cell id -> p50, read lazily
        self.shard = shard  # "i/n" of a sharded run (`edge bench --shard`), else None
        #: The cells measured alone, never in a comparison group (`Matrix.alone_cells`, with
        #: the thread counts the run gave them).
        self.alone: frozenset = frozenset()
        #: Cells whose rule sets protocol fields: their protocol (`Matrix.cell_protocols`).
        self.protocols: dict = {}
        #: What each lane (thread) of the run is doing: `held` and `deferred` are per lane.
        self._lane = threading.local()
        #: The run's schedule (`edge.farm.scheduling.lanes.Schedule`): adds each record's
        #: ``schedule`` and flags competing lanes in its ``load`` as it is written; None: as is.
        self.schedule = None

    @property
    def held(self) -> list[dict] | None:
        """While a list: this lane's records are kept here instead of written (a comparison
        group's cells wait for their interleaved latency, `edge.farm.scheduling.interleaved`),
        emulated cells skip their own paired measurement (the group's blocks replace it), and
        a cell is measured with the short `alone_protocol`."""
        return getattr(self._lane, "held", None)

    @held.setter
    def held(self, value: list[dict] | None) -> None:
        self._lane.held = value

    @property
    def deferred(self) -> list[dict] | None:
        """While a list: the records this lane writes go here, not to the results, until its
        scheduler has seen them (a cell that lost its connection is measured again, not
        recorded twice); `commit` writes them."""
        return getattr(self._lane, "deferred", None)

    @deferred.setter
    def deferred(self, value: list[dict] | None) -> None:
        self._lane.deferred = value

    # -- records ----------------------------------------------------------------------------

    def record(self, cell, status: str, artifact: Artifact | None, metrics=None,
               error=None, started=None, extra=None) -> dict:
        from edge.results.store import make_record

        profile = self.catalog.get(cell.device)
        emulated = bool(profile and profile.emulated and not profile.is_host)
        extra = {"started": started, "finished": now(), "emulated": emulated,
                 "device_label": profile.label if profile else cell.device,
                 "provenance": self.provenance(cell), **(extra or {})}
        if getattr(profile, "endpoint", None) or getattr(profile, "adb", None):
            extra.setdefault("real", True)  # a real device elsewhere, never emulated
        if status in ("failed", "unsupported"):
            # `unsupported` only where a known issue's error signature matches: one place.
            status, issue = failure_status(cell, error)
            if issue:
                extra["known_issue"] = issue
        if emulated and "emulation" not in extra:
            extra["emulation"] = self.emulation_field(cell, metrics, status)
            if self.host_index is not None:
                cal = profile.slowdown(self.host_index)
                extra["calibration"] = {"host_index": cal.host_index,
                                        "host_index_pages": self.host_index_pages,
                                        "target_index": cal.target_index, "factor": cal.factor,
                                        "clamped": cal.clamped, "warning": cal.warning}
        if self.host_index is not None:
            extra.setdefault("host_benchmark", {"index": self.host_index,
                                                "pages": self.host_index_pages})
        rule_protocol = getattr(self._lane, "protocol", None)
        if rule_protocol is not None:  # the cell's rule set its protocol (`protocol_for`)
            extra.setdefault("protocol", rule_protocol.to_dict())
        kind = "native" if cell.native else "browser"
        if kind in self.noise and "noise" not in extra:
            extra["noise"] = self.noise[kind]
        on_phone = bool(getattr(profile, "adb", None))  # its threads run on the phone
        if cell.threads and cell.threads > self.host_cores and not on_phone:
            extra["oversubscribed"] = (f"{cell.threads} threads on a host with "
                                       f"{self.host_cores} cores: the figure measures the "
                                       f"host's scheduler as much as the model")
        rec = make_record(cell=cell.as_dict(), status=status, run_id=self.run_id,
                          artifact_sha256=artifact.manifest["sha256"] if artifact else None,
                          metrics=metrics or {}, error=error, host=self.host, extra=extra)
        if self.held is not None:
            self.held.append(rec)
            return rec
        self.write(rec)
        return rec

    def write(self, rec: dict) -> None:
        """Append a record to the run's results (fsynced), or to this lane's `deferred`."""
        if self.deferred is not None:
            self.deferred.append(rec)
            return
        self.commit(rec)

    def commit(self, rec: dict) -> None:
        """Append a record to the run's results (fsynced), with its ``schedule``."""
        if self.schedule is not None:
            self.schedule.annotate(rec)
        self.results.append(rec)
        self._remember_host(rec)

    @contextlib.contextmanager
    def protocol_for(self, cell):
        """While measuring `cell` in this lane, `cell_protocol` starts from its rule's
        protocol (`protocols`) where it has one."""
        self._lane.protocol = self.protocols.get(cell)
        try:
            yield
        finally:
            self._lane.protocol = None

    @property
    def cell_protocol(self):
        """The protocol of the cell being measured in its own page or worker: the run's (or its
        rule's, `protocol_for`), or in a comparison group (its latency comes from the
        interleaved blocks) `alone_protocol` of it."""
        from edge.farm.protocol.protocol import alone_protocol

        base = getattr(self._lane, "protocol", None) or self.protocol
        return base if self.held is None else alone_protocol(base)

    def provenance(self, cell) -> dict:
        """Where the cell was measured: this machine, the profile's endpoint (or "local") and
        the run's shard (`edge.results.store.provenance`)."""
        from edge.results.store import provenance

        profile = self.catalog.get(cell.device)
        return provenance(getattr(profile, "endpoint", None), self.shard)

    def emulation_field(self, cell, metrics, status: str) -> dict:
        """The record's ``emulation``: method, target, what the calibration workload achieved,
        what the cell achieved in paired blocks, and its ratio to the host cell."""
        from edge.farm.emulation.calibration import emulation_record

        threads = cell.threads or 1
        target = self.targets.get(cell.device, 1.0)
        vs_host = None
        lat = (metrics or {}).get("latency") or {}
        if status == "ok" and lat.get("p50"):
            host_p50 = self.host_p50(cell)
            if host_p50:
                vs_host = lat["p50"] / host_p50
        paired = self.paired.pop(cell, None)
        cal = self.calibrations.get((cell.device, cell.runtime, threads))
        notes = []
        if vs_host is None and status == "ok":
            notes.append("no host cell of the same model, variant, runtime and threads")
        if isinstance(paired, str):
            notes.append(f"paired measurement failed: {paired}")
            paired = None
        if self.emulation.reason and not self.emulation.all_threads:
            notes.append(f"fallback: {self.emulation.reason}")
        return emulation_record(self.emulation.method, target, threads,
                                achieved=paired["ratio"] if paired else None,
                                calibration=cal, note="; ".join(notes) or None,
                                vs_host=vs_host, paired=paired)

    def measure_paired(self, cell, set_throttle, time_runs, probe_n) -> None:
        """The cell's own slowdown, throttled against unthrottled blocks of its model in the
        same page or worker (`paired_slowdown`); kept for its record."""
        from edge.farm.emulation.calibration import paired_slowdown

        if self.held is not None:
            return  # a comparison group: its interleaved blocks measure the slowdown
        try:
            ratio, free, slow = paired_slowdown(set_throttle, lambda: time_runs(probe_n),
                                                PAIRS)
            self.paired[cell] = {"ratio": round(ratio, 4), "unthrottled_ms": round(free, 3),
                                 "throttled_ms": round(slow, 3), "pairs": PAIRS,
                                 "runs_per_block": probe_n}
        except Exception as exc:  # noqa: BLE001 - recorded as a note, the timings stand
            self.paired[cell] = f"{type(exc).__name__}: {exc}"

    def host_p50(self, cell) -> float | None:
        """p50 of the host's ok record of the same model, variant, runtime and threads. The
        results file is read once (a resumed run's earlier records count); records appended
        since are added as they are written."""
        from edge.results.store import cell_id

        if self._host_p50 is None:
            self._host_p50 = {}
            for rec in self.results.records():
                self._remember_host(rec)
        return self._host_p50.get(cell_id(cell.model, cell.variant, cell.runtime, "host",
                                          cell.threads))

    def _remember_host(self, rec: dict) -> None:
        if self._host_p50 is not None and rec.get("device") == "host" \
                and rec.get("status") == "ok":
            p50 = ((rec.get("metrics") or {}).get("latency") or {}).get("p50")
            if p50:
                self._host_p50[rec["cell_id"]] = p50

    def artifact_extra(self, artifact: Artifact) -> dict:
        m = artifact.manifest
        return {"format": m["format"], "quantization": m["quantization"], "bytes": m["bytes"],
                "gzip_bytes": m["gzip_bytes"], "task": m["model"]["task"],
                "calibration": m.get("calibration"),
                "host_accuracy": (m.get("fidelity") or {}).get("accuracy")}

    def eval_images(self, artifact: Artifact) -> np.ndarray | None:
        ref = artifact.manifest.get("reference")
        if ref is None:
            return None
        images, _ = load_reference_outputs(self.store.path("references", ref["key"]))
        return images

    # -- emulation ----------------------------------------------------------------------------

    def group(self, device: str, kind: str):
        """The device's cgroup for `kind` ("browser" or "native"); None without cgroups."""
        if self.emulation.controller is None:
            return None
        key = f"{device}-{kind}"
        if key not in self.groups:
            self.groups[key] = self.emulation.controller.group(key)
        return self.groups[key]

    def calibrated(self, cell, group) -> bool:
        """Set the group to the quota calibrated for the cell's device, runtime and threads;
        False when there is none yet."""
        cal = self.calibrations.get((cell.device, cell.runtime, cell.threads or 1))
        if cal is None:
            return False
        group.set_quota(cal.quota_us, cal.period_us)
        return True

    def calibrate(self, cell, time_runs, workload: str, group):
        """Calibrate the group's quota so that the calibration workload (same runtime and
        thread count as the cell) runs `target` times slower than unthrottled; keep it for the
        device's later cells of that runtime and thread count."""
        from edge.farm.emulation.calibration import calibrate_quota

        target = self.targets.get(cell.device, 1.0)
        self.console.print(f"  calibrating {cell.device} {cell.runtime} t{cell.threads or 1}: "
                           f"target slowdown {target:.2f} on {escape(workload)}")
        cal = calibrate_quota(group, time_runs, target, cell.threads or 1, workload=workload)
        self.calibrations[(cell.device, cell.runtime, cell.threads or 1)] = cal
        steps = ", ".join(f"{s['quota_us']}->{s['achieved']:.2f}" for s in cal.steps)
        self.console.print(f"    base {cal.base_ms:.1f} ms; quota -> slowdown: {steps}; kept "
                           f"{cal.quota_us} us / {cal.period_us} us (x{cal.achieved:.2f})"
                           + ("" if cal.converged else ", did not converge"))
        return cal

    def calibration_artifact(self, cell) -> Artifact:
        """The calibration workload of a runtime: the run's MobileNetV2 float32 variant of the
        cell's format (the field's baseline), else the cell's own artifact."""
        fmt = self.artifacts[(cell.model, cell.variant)].manifest["format"]
        variant = {"tfjs": "tfjs-fp32", "onnx": "onnx-fp32"}.get(fmt, "tflite-fp32")
        for (model, v), artifact in sorted(self.artifacts.items()):
            if v == variant and model.split(":")[0] == "mobilenet_v2":
                return artifact
        return self.artifacts[(cell.model, cell.variant)]

    # -- fidelity -------------------------------------------------------------------------------

    def return_outputs(self, artifact: Artifact) -> int:
        """How many images' outputs a cell sends back for its fidelity check."""
        ref = artifact.manifest.get("reference")
        if ref is None:
            return 0
        shape = self.store.read("references", ref["key"])["output_shape"]
        per_image = 4 * int(np.prod(shape))
        return min(self.matrix.fidelity_images, max(0, MAX_OUTPUT_BYTES // per_image))


def workload_name(artifact: Artifact) -> str:
    m = artifact.manifest
    return f"{m.get('target') or m['model']['source']} {m['variant']['name']}"


def now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="milliseconds")

