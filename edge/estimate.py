"""Phone estimates from evidence: measure once on the host, translate to every catalogued phone.

An estimate is the host's measurement of a cell times a factor for (phone, runtime kind,
precision):

    phone p50 ≈ host p50 × factor(phone, kind, precision)

Each factor carries the evidence it rests on and an 80 % interval. Evidence, best first:

``device``
    The user's own real device: ratios measured by ``edge calibrate`` (the same models on the
    device and on the host), stored in a calibrations file (`load_calibrations`).
``published``
    Real-device figures quoted from their sources in ``edge/data/reference_points.toml``, paired
    with the host's measurement of the same model, variant and runtime in this run.
``published-precision``
    The phone's published factor for another precision, times the precision effect seen on the
    other phones that publish both (e.g. int8 against float32): how much int8 pays off differs
    by phone, and this is where the ranking of a phone can differ from the host's.
``index-scaled``
    The benchmark-index ratio (host index / phone index) scaled by how far that ratio is from
    the published figures of the same runtime kind and precision on the other phones.
``index``
    The bare benchmark-index ratio: the last resort, with the widest band.

Intervals. A factor's band (a multiplicative half-width, ``factor × exp(±band)``) comes from the
evidence's own spread, measured on data the factor was not fitted on (leave one out: a phone's
published points predicted from the other phones' for the index levels; one model's ratio from
the others' for a phone's own points), and is never narrower than `MIN_BAND`: the best possible
single factor from a server CPU to a phone (HELP's public latency data, 5,000 architectures timed
on Xeons and six phones) has 80–97 % of models within ±25 %, so an 80 % interval of one factor
is at least ±25 %. Estimates whose intervals overlap cannot be ranked without the device.

This module is pure: records, reference points, calibrations and the catalog in, factors and
rows out. `benchmarks/estimator.py` checks it (leave one out over every published point, and the
coverage of the stated intervals).
"""

from __future__ import annotations

import math
import statistics
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from edge.data import data_path
from edge.errors import EdgeError
from edge.reference_points import ReferencePoint
from edge.text import display_path

DEFAULT_CATALOG = data_path("catalog.toml")

#: The interval's coverage the bands aim at.
COVERAGE = 0.80
#: Narrowest band of any factor: ln(1.25) (one factor's error, HELP's data: see the docstring).
MIN_BAND = math.log(1.25)
#: Band of the bare index ratio when no published point of the runtime kind exists: a factor of 4
#: either way (the index ratio was 4x off on native code against published Pixel 2 figures).
INDEX_BAND = math.log(4.0)

LEVELS = ("device", "published", "published-precision", "index-scaled", "index")
LEVEL_WORDS = {
    "device": "your device (edge calibrate)",
    "published": "published figures for this phone",
    "published-precision": "published figures for this phone, precision effect from other phones",
    "index-scaled": "benchmark index, scaled by other phones' published figures",
    "index": "benchmark index only (no published figure for this runtime kind)",
}

#: Runtime -> the kind of code it runs on a phone's CPU; GPU runtimes are not estimated.
RUNTIME_KIND = {
    "litert": "native", "litert-compiled": "native", "tflite-runtime": "native",
    "benchmark-model": "native", "onnxruntime": "native",
    "litertjs-wasm": "wasm", "tfjs-wasm": "wasm", "tflite-web": "wasm", "ort-wasm": "wasm",
}

#: Variant -> what its arithmetic runs in once loaded (weight-only quantizations are
#: dequantized at load and compute in float32).
PRECISION = {
    "tflite-fp32": "float", "tflite-fp16": "float", "tflite-aiq-int8-weight": "float",
    "tflite-aiq-int4-weight": "float", "tfjs-fp32": "float", "tfjs-fp16": "float",
    "tfjs-uint16": "float", "tfjs-uint8": "float", "onnx-fp32": "float",
    "onnx-fp16": "fp16",
    "tflite-int8-full": "int8", "tflite-int8-full-uint8io": "int8", "onnx-int8": "int8",
    "tflite-int8-dynamic": "dynamic", "tflite-aiq-int8-dynamic": "dynamic",
}

#: Model families whose published figures are for the garden's architecture (same layers and
#: input size, so the same work per inference whatever the weights).
COMPARABLE_FAMILIES = ("mobilenet_v2", "efficientnet_lite0", "efficientnet_b0")


class EstimateError(EdgeError, ValueError):
    """A calibrations file is unreadable or invalid; the message names the file and field."""


def precision_of(variant: str | None) -> str | None:
    if variant is None:
        return None
    if variant in PRECISION:
        return PRECISION[variant]
    if variant.startswith("tfjs-"):
        return "float"
    return None


def kind_of(runtime: str | None) -> str | None:
    return RUNTIME_KIND.get(runtime or "")


def slot(precision: str, threads: int | None) -> str:
    """A factor's precision and thread class: ``float@1t`` (one thread on both sides) or
    ``float@mt`` (several: the phone's published multi-thread figure against the host's most
    threads). A phone's thread scaling differs from the host's, so the two classes have their
    own factors."""
    return f"{precision}@{'1t' if threads == 1 else 'mt'}"


def slot_parts(name: str) -> tuple[str, str]:
    precision, _, threads = name.partition("@")
    return precision, threads


# --- phones -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phone:
    name: str
    label: str
    benchmark_index: float | None
    network: Mapping[str, float]
    memory_class: float | None
    cores: int | None
    cpu_slowdown: float | None = None  # a profile that fixes the slowdown instead of an index


def catalog_phones(path: Path | str | None = None) -> list[Phone]:
    """The phones of a catalog file (every profile but the host and the real-device ones that
    name no benchmark index nor cores), in file order; read as TOML (no Playwright)."""
    path = Path(path or DEFAULT_CATALOG)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise EstimateError(f"{display_path(path)}: cannot read the device catalog: {exc}") \
            from None
    networks = data.get("networks", {})
    phones = []
    for name, p in (data.get("profiles") or {}).items():
        if not isinstance(p, dict) or p.get("tier") == "host":
            continue
        net = networks.get(p.get("network"), {}) if isinstance(networks, dict) else {}
        phones.append(Phone(name, str(p.get("label", name)), _pos(p.get("benchmark_index")),
                            net if isinstance(net, dict) else {}, _pos(p.get("memory_class")),
                            int(p["cores"]) if isinstance(p.get("cores"), int) else None,
                            _pos(p.get("cpu_slowdown"))))
    return phones


def download_ms(phone: Phone, nbytes: float | None) -> float | None:
    """One request for `nbytes` on the phone's network profile: latency plus transfer (ms); 0
    on an unthrottled network; None when the size is unknown."""
    if nbytes is None or not math.isfinite(nbytes):
        return None
    kbps = float(phone.network.get("download_kbps") or 0)
    latency = float(phone.network.get("latency_ms") or 0)
    if kbps <= 0 and latency <= 0:
        return 0.0
    return latency + (nbytes * 8 / (kbps * 1000) * 1000 if kbps > 0 else 0.0)


def _pos(x: Any) -> float | None:
    if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0:
        return float(x)
    return None


# --- evidence -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """One phone figure paired with the host's figure of the same model, variant and runtime."""

    phone: str
    kind: str  # native | wasm
    precision: str
    model: str
    variant: str
    runtime: str
    threads: int | None  # the phone's
    host_threads: int | None
    phone_ms: float
    host_ms: float
    level: str  # device | published
    source: str  # reference point id, or the calibration's date and file

    @property
    def ratio(self) -> float:
        return self.phone_ms / self.host_ms


def host_cells(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The run's ok host records with a p50."""
    out = []
    for r in records:
        if not isinstance(r, Mapping) or r.get("device") != "host" or r.get("status") != "ok":
            continue
        if _p50(r) is not None:
            out.append(r)
    return out


def _p50(record: Mapping[str, Any]) -> float | None:
    lat = ((record.get("metrics") or {}).get("latency") or {})
    return _pos(lat.get("p50"))


def _family(model: Any) -> str:
    return str(model).split(":", 1)[0]


def host_match(host: Sequence[Mapping[str, Any]], model: str, variant: str, runtime: str,
               threads: int | None) -> Mapping[str, Any] | None:
    """The host record for a phone figure: same model family, variant and runtime; the same
    thread count when the host has it, else the most threads the host ran."""
    same = [r for r in host if _family(r.get("model")) == model and r.get("variant") == variant
            and r.get("runtime") == runtime]
    if not same:
        return None
    exact = [r for r in same if threads is not None and r.get("threads") == threads]
    pool = exact or same
    return max(pool, key=lambda r: (r.get("threads") or 0, -(_p50(r) or 0)))


def published_evidence(points: Iterable[ReferencePoint],
                       records: Iterable[Mapping[str, Any]]) -> list[Evidence]:
    """The published points this run can pair with a host measurement: a garden family with the
    published architecture, a CPU runtime edge runs (WASM points only with SIMD, as edge's
    browser always runs it), a variant the host measured."""
    host = host_cells(records)
    points = list(points)
    out = []
    for p in points:
        kind, precision = kind_of(p.runtime), precision_of(p.variant)
        if kind is None or precision is None or p.model not in COMPARABLE_FAMILIES:
            continue
        if kind == "wasm" and "simd" not in (p.features or ""):
            continue
        rec = host_match(host, p.model, p.variant, p.runtime, p.threads)
        if rec is None:
            continue
        host_threads = rec.get("threads")
        one = p.threads == 1 and host_threads == 1
        out.append(Evidence(p.phone, kind, slot(precision, 1 if one else None), p.model,
                            p.variant, p.runtime, p.threads, host_threads, p.latency_ms,
                            _p50(rec), "published", p.id))
    # A phone published in several eras (TFLite's 2018 kernels, 2020's, XNNPACK): where the
    # same phone, model, precision and threads have an XNNPACK figure, today's LiteRT default
    # CPU kernels, it alone stands for them.
    xnnpack = {p.id for p in points if "xnnpack" in (p.features or "")}
    modern = {(e.phone, e.kind, e.precision, e.model, e.threads) for e in out
              if e.source in xnnpack}
    return [e for e in out if (e.phone, e.kind, e.precision, e.model, e.threads) not in modern
            or e.source in xnnpack]


# --- calibrations (evidence from the user's own devices) ----------------------------------------


def load_calibrations(path: Path | str | None) -> list[dict[str, Any]]:
    """The entries of a calibrations file written by ``edge calibrate`` ([[calibrations]]: phone,
    model, variant, runtime, threads, phone_ms, host_ms, date, ...); [] when there is none."""
    if path is None:
        return []
    path = Path(path)
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise EstimateError(f"{display_path(path)}: cannot read the calibrations: {exc}") \
            from None
    entries = data.get("calibrations", [])
    if not isinstance(entries, list):
        raise EstimateError(f"{display_path(path)}: 'calibrations' must be an array of tables")
    for i, e in enumerate(entries):
        for key in ("phone", "model", "variant", "runtime", "phone_ms", "host_ms", "date"):
            if key not in e:
                raise EstimateError(f"{display_path(path)}: calibration #{i + 1} has no "
                                    f"field {key!r}")
        for key in ("phone_ms", "host_ms"):
            if _pos(e[key]) is None:
                raise EstimateError(f"{display_path(path)}: calibration #{i + 1}: field "
                                    f"{key!r} must be a positive number, got {e[key]!r}")
    return entries


def device_evidence(entries: Iterable[Mapping[str, Any]]) -> list[Evidence]:
    out = []
    for e in entries:
        kind, precision = kind_of(e["runtime"]), precision_of(e["variant"])
        if kind is None or precision is None:
            continue
        one = e.get("threads") == 1 and e.get("host_threads") == 1
        out.append(Evidence(e["phone"], kind, slot(precision, 1 if one else None),
                            _family(e["model"]), e["variant"],
                            e["runtime"], e.get("threads"), e.get("host_threads"),
                            float(e["phone_ms"]), float(e["host_ms"]), "device",
                            f"edge calibrate {e['date']}"))
    return out


def write_calibrations(path: Path | str, entries: Sequence[Mapping[str, Any]]) -> Path:
    """Merge `entries` into the calibrations file at `path` (an entry of the same phone, model,
    variant, runtime and threads replaces the older one), atomically."""
    path = Path(path)
    old = load_calibrations(path)

    def key(e: Mapping[str, Any]) -> tuple:
        return (e["phone"], e["model"], e["variant"], e["runtime"], e.get("threads"))

    merged = {key(e): dict(e) for e in old}
    for e in entries:
        merged[key(e)] = dict(e)
    lines = ["# Phone factors measured by `edge calibrate`: the same models timed on a real",
             "# device and on this host. Later runs use them as the best evidence for that",
             "# phone (edge/estimate.py).", ""]
    for e in merged.values():
        lines.append("[[calibrations]]")
        for k, v in e.items():
            if v is None:
                continue
            lines.append(f"{k} = {_toml(v)}")
        lines.append("")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    tmp.replace(path)
    return path


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(float(v)) if isinstance(v, float) else str(v)
    text = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


# --- factors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Factor:
    """phone ≈ host × value, 80 % interval value × exp(±band)."""

    phone: str
    kind: str
    precision: str
    value: float
    band: float
    level: str
    n: int  # evidence points behind it
    sources: tuple[str, ...] = ()
    note: str = ""

    @property
    def lo(self) -> float:
        return self.value * math.exp(-self.band)

    @property
    def hi(self) -> float:
        return self.value * math.exp(self.band)

    def as_dict(self) -> dict[str, Any]:
        return {"phone": self.phone, "kind": self.kind, "precision": self.precision,
                "value": self.value, "lo": self.lo, "hi": self.hi, "band": self.band,
                "level": self.level, "n": self.n, "sources": list(self.sources),
                "note": self.note}


def _gmean(xs: Iterable[float]) -> float:
    xs = list(xs)
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def _quantile(xs: Sequence[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return math.nan
    pos = q * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass
class Estimator:
    """Factors for every (phone, runtime kind, precision) from the evidence, given the host's
    benchmark index (None: no index levels) and the phones' indices."""

    evidence: list[Evidence]
    phones: dict[str, Phone]
    host_index: float | None
    _cache: dict = field(default_factory=dict, repr=False)

    # -- the spreads the bands come from --

    def _own_band(self, pts: Sequence[Evidence]) -> float:
        """Leave one out among one phone's own ratios (different models): the 80 % quantile of
        |log(ratio_i / gmean(others))|; with one point, the pooled figure of every phone."""
        if len(pts) >= 2:
            errs = [abs(math.log(p.ratio / _gmean(q.ratio for q in pts if q is not p)))
                    for p in pts]
            return max(MIN_BAND, _quantile(errs, COVERAGE))
        return max(MIN_BAND, self._pooled_own_band())

    def _pooled_own_band(self) -> float:
        if "pooled" not in self._cache:
            errs = []
            groups: dict[tuple, list[Evidence]] = {}
            for e in self.evidence:
                groups.setdefault((e.phone, e.kind, e.precision, e.level), []).append(e)
            for pts in groups.values():
                if len(pts) >= 2:
                    errs += [abs(math.log(p.ratio / _gmean(q.ratio for q in pts if q is not p)))
                             for p in pts]
            self._cache["pooled"] = _quantile(errs, COVERAGE) if errs else MIN_BAND
        return self._cache["pooled"]

    def _index_ratio(self, phone: str) -> float | None:
        """host index / phone index; a profile with a fixed `cpu_slowdown` gives that."""
        p = self.phones.get(phone)
        if p is not None and p.benchmark_index is None and p.cpu_slowdown is not None:
            return p.cpu_slowdown
        if p is None or p.benchmark_index is None or self.host_index is None:
            return None
        return self.host_index / p.benchmark_index

    def _index_bias(self, kind: str, precision: str, exclude_phone: str | None
                    ) -> tuple[float, list[Evidence]] | None:
        """gmean over other phones' published points of ratio / index ratio: of the same
        precision and thread class, else of the same precision, else of the runtime kind."""
        usable = [e for e in self.evidence if e.kind == kind and e.phone != exclude_phone
                  and self._index_ratio(e.phone) is not None]
        want = slot_parts(precision)[0]
        pts = ([e for e in usable if e.precision == precision]
               or [e for e in usable if slot_parts(e.precision)[0] == want] or usable)
        if not pts:
            return None
        return _gmean(e.ratio / self._index_ratio(e.phone) for e in pts), pts

    def _index_band(self, kind: str, precision: str) -> float:
        """Leave one phone out: each phone's points predicted from the others' bias."""
        key = ("index-band", kind, precision)
        if key not in self._cache:
            pts = [e for e in self.evidence if e.kind == kind and e.precision == precision
                   and self._index_ratio(e.phone) is not None]
            errs = []
            for e in pts:
                other = self._index_bias(kind, precision, e.phone)
                if other is None:
                    continue
                pred = self._index_ratio(e.phone) * other[0]
                errs.append(abs(math.log(pred / e.ratio)))
            band = _quantile(errs, COVERAGE) if len(errs) >= 2 else INDEX_BAND / 2
            self._cache[key] = max(MIN_BAND, band)
        return self._cache[key]

    def _precision_effect(self, kind: str, frm: str, to: str, exclude_phone: str | None
                          ) -> tuple[float, float, int] | None:
        """Across phones with both precisions: gmean of f(to)/f(from), its leave-one-phone-out
        band, and how many phones."""
        effects = {}
        for phone in {e.phone for e in self.evidence}:
            if phone == exclude_phone:
                continue
            a = [e.ratio for e in self.evidence if e.phone == phone and e.kind == kind
                 and e.precision == frm]
            b = [e.ratio for e in self.evidence if e.phone == phone and e.kind == kind
                 and e.precision == to]
            if a and b:
                effects[phone] = _gmean(b) / _gmean(a)
        if not effects:
            return None
        value = _gmean(effects.values())
        if len(effects) >= 2:
            errs = [abs(math.log(v / _gmean(w for q, w in effects.items() if q != p)))
                    for p, v in effects.items()]
            band = _quantile(errs, COVERAGE)
        else:
            band = MIN_BAND
        return value, max(MIN_BAND, band), len(effects)

    # -- the factor --

    def factor(self, phone: str, kind: str, precision: str, *,
               exclude: Evidence | None = None) -> Factor:
        """The best-evidenced factor for (phone, kind, precision). `exclude`: leave one
        evidence point out (for the benchmark)."""
        ev = [e for e in self.evidence if e is not exclude]
        if exclude is not None:
            sub = Estimator(ev, self.phones, self.host_index)
            return sub.factor(phone, kind, precision)
        key = (phone, kind, precision)
        if key in self._cache:
            return self._cache[key]
        own = [e for e in ev if e.phone == phone and e.kind == kind and e.precision == precision]
        result = None
        for level in ("device", "published"):
            pts = [e for e in own if e.level == level]
            if pts:
                result = Factor(phone, kind, precision, _gmean(e.ratio for e in pts),
                                self._own_band(pts), level, len(pts),
                                tuple(e.source for e in pts),
                                _models_note(pts))
                break
        if result is None:
            result = self._from_other_precision(phone, kind, precision, ev)
        if result is None:
            result = self._from_index(phone, kind, precision)
        self._cache[key] = result
        return result

    def _from_other_precision(self, phone: str, kind: str, precision: str,
                              ev: list[Evidence]) -> Factor | None:
        want, threads = slot_parts(precision)
        other = "mt" if threads == "1t" else "1t"
        order = [f"{want}@{other}"] + [f"{p}@{t}" for t in (threads, other)
                                       for p in ("float", "int8", "dynamic", "fp16") if p != want]
        for frm in order:
            pts = [e for e in ev if e.phone == phone and e.kind == kind and e.precision == frm]
            if not pts:
                continue
            effect = self._precision_effect(kind, frm, precision, phone)
            if effect is None:
                continue
            value, band, phones = effect
            base = _gmean(e.ratio for e in pts)
            own_band = self._own_band(pts)
            return Factor(phone, kind, precision, base * value,
                          math.hypot(own_band, band), "published-precision", len(pts),
                          tuple(e.source for e in pts),
                          f"{frm} factor × {precision}/{frm} effect {value:.2f} "
                          f"(from {phones} other phone{'s' if phones != 1 else ''})")
        return None

    def _from_index(self, phone: str, kind: str, precision: str) -> Factor:
        ratio = self._index_ratio(phone)
        if ratio is None:
            p = self.phones.get(phone)
            why = ("the host's benchmark index was not measured in this run"
                   if self.host_index is None else
                   f"{phone} has no benchmark index in the catalog"
                   if p is not None else f"{phone} is not in the catalog")
            return Factor(phone, kind, precision, math.nan, math.inf, "none", 0, (),
                          f"no evidence: {why}")
        bias = self._index_bias(kind, precision, phone)
        if bias is not None:
            value, pts = bias
            return Factor(phone, kind, precision, ratio * value,
                          self._index_band(kind, precision), "index-scaled", len(pts),
                          tuple(e.source for e in pts),
                          f"index ratio {ratio:.2f} × {value:.2f}, the published/index ratio "
                          f"of {len({e.phone for e in pts})} other phone(s)")
        p = self.phones[phone]
        basis = (f"the profile's fixed CPU slowdown {p.cpu_slowdown:g}"
                 if p.benchmark_index is None else
                 f"host index {self.host_index:g} / phone index {p.benchmark_index:g}")
        return Factor(phone, kind, precision, ratio, INDEX_BAND, "index", 0, (),
                      f"{basis}; no published figure for {kind} {precision} on any phone")


def _models_note(pts: Sequence[Evidence]) -> str:
    parts = []
    for e in pts:
        t = f", {e.threads} thread{'s' if e.threads != 1 else ''}" if e.threads else ""
        parts.append(f"{e.model} {e.variant} on {e.runtime}{t}: {e.phone_ms:g} ms / host "
                     f"{e.host_ms:.3g} ms = ×{e.ratio:.2f}")
    return "; ".join(parts)


def host_index_of(records: Iterable[Mapping[str, Any]]) -> float | None:
    """The host's benchmark index as the run measured it (the median over the run's records)."""
    values = []
    for r in records:
        if not isinstance(r, Mapping):
            continue
        v = _pos((r.get("host_benchmark") or {}).get("index")) \
            or _pos((r.get("calibration") or {}).get("host_index"))
        if v is not None:
            values.append(v)
    return statistics.median(values) if values else None


def make_estimator(records: Sequence[Mapping[str, Any]], points: Iterable[ReferencePoint],
                   phones: Iterable[Phone], calibrations: Iterable[Mapping[str, Any]] = ()
                   ) -> Estimator:
    evidence = device_evidence(calibrations) + published_evidence(points, records)
    return Estimator(evidence, {p.name: p for p in phones}, host_index_of(records))


# --- estimated rows -----------------------------------------------------------------------------


def estimate_rows(rows: Sequence[Mapping[str, Any]], estimator: Estimator,
                  phones: Sequence[Phone]) -> list[dict[str, Any]]:
    """For every ok host row (tidy table rows) on a CPU runtime and every phone: the row as the
    phone would measure it, estimated. Latency figures are the host's times the factor
    (``p50_ms``, ``p90_ms``), ``ci_lo_ms``/``ci_hi_ms`` the 80 % estimate interval (host interval
    times the factor's interval); cold start = the download on the phone's network + the
    host's load and first inference times the factor. Rows carry ``estimated`` True, the
    evidence level, the factor and its interval."""
    out = []
    for row in rows:
        if row.get("device") != "host" or row.get("status") != "ok":
            continue
        kind, precision = kind_of(row.get("runtime")), precision_of(row.get("variant"))
        if kind is None or precision is None or _num(row.get("p50_ms")) is None:
            continue
        precision = slot(precision, row.get("threads"))
        for phone in phones:
            f = estimator.factor(phone.name, kind, precision)
            if not math.isfinite(f.value):
                continue
            est = dict(row)
            p50, p90 = _num(row.get("p50_ms")), _num(row.get("p90_ms"))
            lo = _num(row.get("ci_lo_ms")) or p50
            hi = _num(row.get("ci_hi_ms")) or p50
            load, first = _num(row.get("load_ms")), _num(row.get("first_ms"))
            dl = download_ms(phone, _num(row.get("gzip_bytes")))
            cold = None
            if load is not None and first is not None and dl is not None:
                cold = dl + (load + first) * f.value
            est.update({
                "cell_id": f"{row.get('cell_id')}~{phone.name}",
                "device": phone.name, "device_label": phone.label, "emulated": False,
                "estimated": True, "host_cell_id": row.get("cell_id"),
                "p50_ms": p50 * f.value, "p90_ms": p90 * f.value if p90 else None,
                "p99_ms": None, "mean_ms": None, "std_ms": None,
                "ci_lo_ms": lo * f.lo, "ci_hi_ms": hi * f.hi, "interval_level": COVERAGE,
                "load_ms": load * f.value if load is not None else None,
                "first_ms": first * f.value if first is not None else None,
                "download_ms": dl, "cold_ms": cold, "cold_source": "estimated",
                "memory_mb": None, "memory_metric": None, "tie_group": None,
                "factor": f.value, "factor_lo": f.lo, "factor_hi": f.hi,
                "evidence": f.level, "evidence_n": f.n, "evidence_note": f.note,
                "evidence_sources": list(f.sources), "precision": precision,
                "runtime_kind": kind, "samples": [],
            })
            out.append(est)
    return out


def attach_emulated_cold_start(estimates: list[dict[str, Any]],
                               rows: Sequence[Mapping[str, Any]]) -> None:
    """Where the run measured the phone's cell in an emulated browser (throttled CPU and
    network), its load, first inference and memory replace the arithmetic: applied emulation
    measures compile, download and memory better than a factor does."""
    emulated = {}
    for r in rows:
        if r.get("emulated") and r.get("status") == "ok":
            emulated[(r.get("model"), r.get("variant"), r.get("runtime"), r.get("device"))] = r
    for est in estimates:
        r = emulated.get((est.get("model"), est.get("variant"), est.get("runtime"),
                          est.get("device")))
        if r is None:
            continue
        load, first = _num(r.get("load_ms")), _num(r.get("first_ms"))
        if load is not None and first is not None:
            # load and compile timed under the phone's CPU throttle; the download (loopback
            # here) is the network profile's arithmetic
            dl = est.get("download_ms") or 0.0
            est.update(load_ms=load, first_ms=first, cold_ms=dl + load + first,
                       cold_source="emulated", cold_cell_id=r.get("cell_id"))
        if _num(r.get("memory_mb")) is not None:
            est.update(memory_mb=r.get("memory_mb"), memory_metric=r.get("memory_metric"))


def _num(x: Any) -> float | None:
    if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


def today() -> str:
    return date.today().isoformat()
