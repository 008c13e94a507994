"""The HTML report of a run: static pages beside the run's results, readable offline.

`write_report` reads ``reports/<run-id>/`` (through `edge.report.table`) and writes there:

- ``index.html``: the best variant per device profile under the picker's default budgets and an
  interactive picker (both computed in the page by ``picker.js``, the same file `edge pick` runs
  under Node, so page and command line agree), a heatmap of warm p50 per runtime, the counts of
  ok/failed/timeout/unsupported cells and the run's provenance (host, packages, browser and
  runtime versions, git commit, protocol, calibration factors per device, emulated or real);
- ``model-<slug>.html``: one page per model family: a sortable, filterable table of every cell,
  latency distributions per runtime, a Pareto chart (p50 against fidelity, marker size ~ gzip
  size) and cold against warm latency;
- ``failures.html``: the cells that did not produce measurements, grouped by their error's
  first line;
- ``cells.parquet`` / ``cells.csv`` (`edge.report.table.write_tidy`);
- the assets: ``plotly.min.js`` (from the installed plotly package: no CDN, the report works
  offline), ``picker.js``, ``report.js``, ``report.css``;

and points ``reports/latest`` at the run (a relative symlink, replaced atomically; a
``latest.txt`` holding the run id where symlinks cannot be made).

Everything that comes from the inputs is escaped: `html.escape` in markup, and JSON embedded in
``<script type="application/json">`` has ``<``, ``>``, ``&`` (and U+2028/U+2029) written as
``\\uXXXX`` so that no text can close the script element. The pages build DOM nodes with
``textContent`` and escape the text they hand to plotly.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
import re
import shutil
import tempfile
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from edge.errors import EdgeError
from edge.report.table import load_run, tidy, write_tidy
from edge.results.store import latest_run

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Assets copied beside the pages (plotly.min.js is written from the plotly package).
STATIC_ASSETS = ("picker.js", "report.js", "report.css")
PLOTLY_JS = "plotly.min.js"
LATEST = "latest"
LATEST_TXT = "latest.txt"
#: Statuses counted on the overview, in this order (any other status is counted too).
STATUSES = ("ok", "failed", "timeout", "unsupported")
DASH = "\u2014"
TIMES = "\u00d7"

__all__ = ["write_report", "script_json", "family_slugs", "error_key", "point_latest"]


# -- escaping -----------------------------------------------------------------------------------

def esc(value: Any) -> str:
    """Text for HTML markup (element content and quoted attribute values)."""
    return html.escape("" if value is None else str(value), quote=True)


_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                  "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _plain(value: Any) -> Any:
    """JSON-ready Python values: NaN, NA and infinities become None, numpy scalars plain."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):  # numpy arrays, scalars
        return _plain(value.tolist())
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def script_json(value: Any) -> str:
    """``value`` as JSON that is safe inside a ``<script>`` element (no ``</script>``, no
    ``<!--``, no HTML entities): ``<``, ``>`` and ``&`` are written as JSON unicode escapes,
    which is only possible because JSON has those characters inside strings alone."""
    text = json.dumps(_plain(value), ensure_ascii=False, allow_nan=False,
                      separators=(",", ":"))
    return re.sub("[<>&\u2028\u2029]", lambda m: _SCRIPT_UNSAFE[m.group(0)], text)


# -- figures ------------------------------------------------------------------------------------

def _known(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _fmt(x: Any, unit: str = "") -> str:
    """A figure with about three significant digits, or an em dash when unknown."""
    if not _known(x):
        return DASH
    x = float(x)
    if abs(x) >= 100:
        text = f"{x:.0f}"
    elif abs(x) >= 10:
        text = f"{x:.1f}"
    else:
        text = f"{x:.3g}"
    return text + unit


def _sort_value(x: Any) -> str:
    return repr(float(x)) if _known(x) else ""


# -- structure of a run -------------------------------------------------------------------------

def family_slugs(families: Iterable[str]) -> dict[str, str]:
    """A file-name-safe, unique slug per model family (``[a-z0-9_.-]``; a short hash is added
    when two families would share a slug or a family has no safe characters)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for family in families:
        base = re.sub(r"[^a-z0-9_.-]+", "-", family.lower()).strip("-.") or "model"
        slug = base
        if base != family or base in used:  # lossy or taken: make it unique
            slug = f"{base}-{hashlib.sha256(family.encode()).hexdigest()[:8]}"
        used.add(slug)
        out[family] = slug
    return out


_LOOPBACK_PORT = re.compile(r"(127\.0\.0\.1|localhost|\[::1\]):\d+")


def error_key(error: Any) -> str:
    """How failures are grouped: the error's first non-empty line, stripped, with the port of
    the loopback server (a new one per run) written as ``<port>``."""
    for line in str(error or "").splitlines():
        if line.strip():
            return _LOOPBACK_PORT.sub(r"\1:<port>", line.strip())
    return "(no error text)"


def _devices(df: pd.DataFrame, records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each device profile of the run, in order of appearance, with its calibration."""
    calibration: dict[str, list[dict[str, Any]]] = {}
    network: dict[str, set[str]] = {}
    for record in records:
        device = record.get("device")
        cal = record.get("calibration")
        if isinstance(device, str) and isinstance(cal, Mapping):
            entry = {k: cal.get(k) for k in ("factor", "host_index", "target_index", "clamped",
                                              "warning")}
            known = calibration.setdefault(device, [])
            if entry not in known:
                known.append(entry)
        if isinstance(device, str) and isinstance(record.get("network"), str):
            network.setdefault(device, set()).add(record["network"])
    out = []
    for device, group in df.groupby("device", sort=False, dropna=True):
        labels = [x for x in dict.fromkeys(group["device_label"]) if x]
        out.append({
            "id": device,
            "label": labels[0] if labels else device,
            "emulated": bool(group["emulated"].any()),
            "real": bool((~group["emulated"]).any()),
            "cells": int(len(group)),
            "calibration": calibration.get(device, []),
            "network": sorted(network.get(device, ())),
        })
    return out


def _rows(df: pd.DataFrame, samples: bool) -> list[dict[str, Any]]:
    frame = df if samples else df.drop(columns=["samples"], errors="ignore")
    rows = _plain(frame.to_dict(orient="records"))
    if samples:
        for row in rows:
            row["samples"] = [round(v, 4) for v in row.get("samples") or [] if _known(v)]
    return rows


def _status_counts(df: pd.DataFrame) -> OrderedDict[str, int]:
    counts = Counter(str(s) if s is not None else "unknown" for s in df["status"])
    out: OrderedDict[str, int] = OrderedDict((s, counts.pop(s, 0)) for s in STATUSES)
    out.update(sorted(counts.items()))
    return out


def _version_facts(records: list[Mapping[str, Any]]) -> dict[str, Counter]:
    """Browser, TF.js, native runtime and GPU facts the records report, with cell counts."""
    facts: dict[str, Counter] = {"browser": Counter(), "tfjs": Counter(), "runtime": Counter(),
                                 "gpu": Counter(), "commit": Counter()}
    for record in records:
        metrics = record.get("metrics") if isinstance(record.get("metrics"), Mapping) else {}
        backend = metrics.get("backend") if isinstance(metrics.get("backend"), Mapping) else {}
        agent = backend.get("userAgent")
        if isinstance(agent, str) and not record.get("emulated"):
            # Emulated profiles replace the user agent; the host's names the real browser.
            match = re.search(r"((?:Headless)?Chrom(?:e|ium)/[\d.]+)", agent)
            facts["browser"][match.group(1) if match else agent] += 1
        tfjs = metrics.get("tfjs_version") or backend.get("tfjsVersion")
        if isinstance(tfjs, str):
            facts["tfjs"][tfjs] += 1
        version = metrics.get("runtime_version")
        if isinstance(version, str):
            facts["runtime"][f"{record.get('runtime')} {version}"] += 1
        webgl = backend.get("webgl") if isinstance(backend.get("webgl"), Mapping) else {}
        if isinstance(webgl.get("renderer"), str):
            facts["gpu"][f"WebGL: {webgl['renderer']}"] += 1
        webgpu = backend.get("webgpu") if isinstance(backend.get("webgpu"), Mapping) else {}
        if webgpu.get("available"):
            name = " ".join(str(webgpu[k]) for k in ("vendor", "architecture") if webgpu.get(k))
            fallback = " (fallback adapter)" if webgpu.get("isFallbackAdapter") else ""
            facts["gpu"][f"WebGPU: {name or 'adapter'}{fallback}"] += 1
        host = record.get("host") if isinstance(record.get("host"), Mapping) else {}
        if isinstance(host.get("git_commit"), str):
            facts["commit"][host["git_commit"]] += 1
    return facts


# -- markup -------------------------------------------------------------------------------------

def _page(title: str, kind: str, nav: str, body: str, payload: Any,
          scripts: Iterable[str]) -> str:
    tags = "\n".join(f'<script src="{esc(s)}"></script>' for s in scripts)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<link rel="stylesheet" href="report.css">
</head>
<body data-page="{esc(kind)}">
{nav}
<main>
{body}
</main>
<script id="edge-data" type="application/json">{script_json(payload)}</script>
{tags}
</body>
</html>
"""


def _nav(run_id: str, families: Mapping[str, str], counts: Mapping[str, int],
         current: str) -> str:
    bad = sum(n for s, n in counts.items() if s != "ok")
    links = [f'<a href="index.html"{_cur(current == "index")}>Overview</a>']
    links += [f'<a href="model-{esc(slug)}.html"{_cur(current == slug)}>{esc(family)}</a>'
              for family, slug in families.items()]
    fail_class = "fail-link bad" if bad else "fail-link"
    links.append(f'<a class="{fail_class}" href="failures.html"'
                 f'{_cur(current == "failures")}>Failures ({bad})</a>')
    return (f'<header class="top"><span class="brand">edge report</span>'
            f'<span class="run">run {esc(run_id)}</span><nav>{" ".join(links)}</nav></header>')


def _cur(yes: bool) -> str:
    return ' aria-current="page"' if yes else ""


def _badge(text: str, cls: str) -> str:
    return f'<span class="badge {cls}">{esc(text)}</span>'


def _device_cell(row: Mapping[str, Any]) -> str:
    label = row.get("device_label") or row.get("device")
    badge = _badge("emulated: estimate", "emu") if row.get("emulated") else ""
    return f'<span title="{esc(label)}">{esc(row.get("device"))}</span>{badge}'


def _dl(items: Iterable[tuple[str, str]]) -> str:
    """A definition list; values are markup (escape them before)."""
    return "<dl class=\"facts\">" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>"
                                           for k, v in items) + "</dl>"


def _counter_text(counter: Counter) -> str:
    if not counter:
        return '<span class="muted">not reported</span>'
    return "<br>".join(f"{esc(k)} <span class=\"muted\">({n} cells)</span>"
                       for k, n in counter.most_common())


def _counts_markup(counts: Mapping[str, int]) -> str:
    parts = []
    for status, n in counts.items():
        cls = "ok" if status == "ok" else ("bad" if n else "zero")
        parts.append(f'<span class="count {cls}"><b>{n}</b> {esc(status)}</span>')
    return '<div class="counts">' + "".join(parts) + "</div>"


# -- pages --------------------------------------------------------------------------------------

def _overview(run_id: str, run_dir: Path, df: pd.DataFrame, meta: Mapping[str, Any] | None,
              records: list[Mapping[str, Any]], devices: list[dict[str, Any]],
              families: Mapping[str, str], counts: Mapping[str, int]) -> str:
    meta = meta or {}
    bad = sum(n for s, n in counts.items() if s != "ok")
    if bad:
        parts = ", ".join(f"{n} {esc(s)}" for s, n in counts.items() if s != "ok" and n)
        banner = (f'<p class="banner bad"><a href="failures.html"><b>{bad} of {len(df)} cells '
                  f'produced no measurement</b> ({parts}): see the failures, grouped by error'
                  f' \u2192</a></p>')
    elif len(df):
        banner = f'<p class="banner good">All {len(df)} cells were measured.</p>'
    else:
        banner = '<p class="banner bad">No cells are recorded in this run yet.</p>'

    model_items = []
    for family, slug in families.items():
        group = df[df["family"] == family]
        ok = int((group["status"] == "ok").sum())
        models = ", ".join(esc(m) for m in dict.fromkeys(group["model"]) if m)
        model_items.append(f'<li><a href="model-{esc(slug)}.html">{esc(family)}</a> '
                           f'<span class="muted">{ok}/{len(group)} cells ok \u00b7 '
                           f'{models}</span></li>')

    picker = """
<section id="picker" class="card">
<h2>Pick a variant</h2>
<p class="muted">Budgets apply to the measured cells of the chosen model on the chosen device
(p90 warm latency, gzip size, memory, the task's headline fidelity figure). Leave a budget empty
to drop it. The ranking is <code>picker.js</code>, the same file <code>edge pick</code> runs.</p>
<form id="pick-form" class="pick-form" autocomplete="off" onsubmit="return false">
<label>Model <select id="pick-model"></select></label>
<label>Device <select id="pick-device"></select></label>
<label>Max p90 (ms) <input id="pick-p90" type="number" min="0" step="any"></label>
<label>Max size (MB gzip) <input id="pick-size" type="number" min="0" step="any"></label>
<label>Max memory (MB) <input id="pick-memory" type="number" min="0" step="any"></label>
<label>Min fidelity <input id="pick-fidelity" type="number" min="0" max="1" step="any"></label>
<button type="button" id="pick-reset">Defaults</button>
</form>
<div id="pick-result" class="pick-result" aria-live="polite"></div>
<noscript><p>The picker needs JavaScript.</p></noscript>
</section>"""

    best = """
<section class="card">
<h2>Best variant per device</h2>
<p class="muted" id="best-budgets">Under the picker's default budgets.</p>
<div id="best-grid" class="scroll"></div>
<noscript><p>This table is computed in the page and needs JavaScript.</p></noscript>
</section>"""

    heat = """
<section class="card">
<h2>Warm p50 latency</h2>
<p class="muted">Median of the timed runs, per runtime: variants \u00d7 device profiles (colour
on a log scale; <b>~</b> marks a wide distribution, std \u2265 10 % of mean; blank: not
measured or not ok). Emulated profiles are estimates.</p>
<div id="heatmaps"></div>
</section>"""

    return (f"<h1>Run {esc(run_id)}</h1>\n{banner}\n{_counts_markup(counts)}\n{picker}\n{best}"
            f"\n<section class=\"card\"><h2>Models</h2><ul class=\"models\">"
            f"{''.join(model_items)}</ul></section>\n{heat}\n"
            f"{_provenance(run_id, run_dir, meta, records, devices)}")


def _provenance(run_id: str, run_dir: Path, meta: Mapping[str, Any],
                records: list[Mapping[str, Any]], devices: list[dict[str, Any]]) -> str:
    host = meta.get("host") if isinstance(meta.get("host"), Mapping) else {}
    if not host:
        hosts = [r["host"] for r in records if isinstance(r.get("host"), Mapping)]
        host = hosts[0] if hosts else {}
    packages: dict[str, str] = {}
    for source in [host] + [r.get("host") for r in records]:
        if isinstance(source, Mapping) and isinstance(source.get("packages"), Mapping):
            for name, version in source["packages"].items():
                packages.setdefault(str(name), str(version))
    facts = _version_facts(records)
    commits = Counter(facts["commit"])
    if isinstance(host.get("git_commit"), str) and host["git_commit"] not in commits:
        commits[host["git_commit"]] = 0

    created = meta.get("created")
    created_text = (datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
                    if _known(created) else DASH)
    memory = host.get("memory_total_bytes")
    run_items = [
        ("Run", esc(run_id)),
        ("Created", esc(created_text)),
        ("Preset", esc(meta.get("preset", DASH)) + (" (tiny models)" if meta.get("tiny")
                                                       else "")),
        ("Matrix", esc(meta.get("matrix", DASH))),
        ("Cells", f"{len(records)} recorded" + (f" \u00b7 run.json lists {esc(meta['cells'])}"
                                                 if "cells" in meta else "")),
    ]
    host_items = [
        ("CPU", esc(host.get("cpu_model", DASH))),
        ("Cores", esc(host.get("logical_cores", DASH)) + " logical"),
        ("Memory", esc(_fmt(memory / 1e9, " GB") if _known(memory) else DASH)),
        ("OS", esc(host.get("os", DASH)) + " " + esc(host.get("machine", ""))),
        ("Python", esc(host.get("python", DASH))),
        ("Packages", "<br>".join(f"{esc(k)} {esc(v)}" for k, v in sorted(packages.items()))
         or '<span class="muted">not reported</span>'),
        ("Browser", _counter_text(facts["browser"])),
        ("TF.js", _counter_text(facts["tfjs"])),
        ("Native runtimes", _counter_text(facts["runtime"])),
        ("Graphics", _counter_text(facts["gpu"])),
        ("Git commit", "<br>".join(
            f"<code>{esc(c)}</code>" + (f' <span class="muted">({n} cells)</span>' if n else
                                        ' <span class="muted">(run.json)</span>')
            for c, n in commits.most_common()) or '<span class="muted">not reported</span>'),
    ]
    protocol = meta.get("protocol") if isinstance(meta.get("protocol"), Mapping) else {}
    protocol_text = ", ".join(f"{esc(k)} = {esc(v)}" for k, v in protocol.items()) \
        or '<span class="muted">not recorded</span>'

    device_rows = []
    for device in devices:
        cals = device["calibration"] or [{}]
        for cal in cals:
            kind = (_badge("emulated: estimate", "emu") if device["emulated"]
                    else _badge("real", "real"))
            warning = cal.get("warning")
            device_rows.append(
                f"<tr><td>{esc(device['id'])}</td><td>{esc(device['label'])}</td><td>{kind}</td>"
                f"<td class=\"num\">{esc(_fmt(cal.get('factor'), TIMES))}</td>"
                f"<td class=\"num\">{esc(_fmt(cal.get('host_index')))}</td>"
                f"<td class=\"num\">{esc(_fmt(cal.get('target_index')))}</td>"
                f"<td>{'yes' if cal.get('clamped') else ''}"
                f"{(' ' + esc(warning)) if warning else ''}</td>"
                f"<td>{esc(', '.join(device['network']))}</td>"
                f"<td class=\"num\">{device['cells']}</td></tr>")
    device_table = (
        '<table class="plain"><thead><tr><th>Device</th><th>Profile</th><th>Kind</th>'
        '<th>CPU slowdown</th><th>Host index</th><th>Target index</th><th>Clamped / warning</th>'
        '<th>Network</th><th>Cells</th></tr></thead><tbody>' + "".join(device_rows)
        + "</tbody></table>")

    data_links = " \u00b7 ".join(
        f'<a href="{name}">{name}</a>{note}' for name, note in (
            ("cells.csv", ""), ("cells.parquet", " (with the latency samples)"),
            ("results.jsonl", ""), ("run.json", ""))
        if name.startswith("cells.") or (run_dir / name).is_file())
    return f"""
<section class="card provenance">
<h2>Provenance</h2>
<div class="cols">
<div><h3>Run</h3>{_dl(run_items)}<h3>Protocol</h3><p>{protocol_text}</p></div>
<div><h3>Host</h3>{_dl(host_items)}</div>
</div>
<h3>Device profiles and calibration</h3>
<p class="muted">Emulated phones run in desktop Chromium with the CPU slowed by the factor below
(host benchmark index \u00f7 the profile's) and the profile's viewport, user agent and core
count: their figures are <b>estimates</b>. Chromium throttles the page's main thread only.
Memory is the renderer's USS in the browser and the worker's peak RSS in native runtimes.</p>
<div class="scroll">{device_table}</div>
<p class="muted">Data: {data_links}</p>
</section>"""


#: The model page's table: (header, row key for the sort value, numeric, title).
_TABLE_COLUMNS = (
    ("Model", "model", False, "model and its parameters"),
    ("Variant", "variant", False, "format and quantization"),
    ("Runtime", "runtime", False, "where it ran"),
    ("Threads", "threads", True, "native threads (browser: the profile's core count)"),
    ("Device", "device", False, "device profile"),
    ("Load ms", "load_ms", True, "model load time"),
    ("Cold ms", "first_ms", True, "first inference (cold, shader compilation included)"),
    ("p50 ms", "p50_ms", True, "warm median"),
    ("p90 ms", "p90_ms", True, "warm 90th percentile"),
    ("Runs", "n_runs", True, "timed runs"),
    ("Memory MB", "memory_mb", True, "renderer USS (browser) or worker peak RSS (native)"),
    ("Size MB", "bytes", True, "artifact size on disk"),
    ("Gzip MB", "gzip_bytes", True, "gzip size (the download)"),
    ("Fidelity", "fidelity", True, "the task's headline figure against the float32 reference"),
    ("Status", "status", False, "ok, failed, timeout or unsupported"),
    ("Stable", "wide", False, "~ : wide distribution (std >= 10 % of mean)"),
)


def _cell_row(row: Mapping[str, Any], show_model: bool) -> str:
    def num(value: Any, text: str) -> str:
        return f'<td class="num" data-v="{esc(_sort_value(value))}">{esc(text)}</td>'

    status = row.get("status") or "unknown"
    fid = row.get("fidelity")
    fid_status = row.get("fidelity_status")
    fid_text = _fmt(fid) if _known(fid) else DASH
    if _known(fid):
        fid_text = f"{fid:.3f}"
    fid_badge = (f' <span class="fid {esc(fid_status)}">{esc(fid_status)}</span>'
                 if fid_status else "")
    error = row.get("error")
    title = f' title="{esc(error)}"' if error else ""
    status_cell = (f'<td data-v="{esc(status)}"><span class="status {esc(status)}"{title}>'
                   f"{esc(status)}</span></td>")
    bytes_ = row.get("bytes")
    gzip = row.get("gzip_bytes")
    threads = row.get("threads")
    wide_cell = ('<td data-v="wide"><span class="wide" title="std \u2265 10 % of mean">~ wide'
                 '</span></td>' if row.get("wide") else '<td data-v="stable"></td>')
    cells = []
    if show_model:
        cells.append(f'<td data-v="{esc(row.get("model"))}" class="model">'
                     f"{esc(row.get('model'))}</td>")
    cells += [
        f'<td data-v="{esc(row.get("variant"))}">{esc(row.get("variant"))}</td>',
        f'<td data-v="{esc(row.get("runtime"))}">{esc(row.get("runtime"))}</td>',
        num(threads, str(threads) if _known(threads) else DASH),
        f'<td data-v="{esc(row.get("device"))}">{_device_cell(row)}</td>',
        num(row.get("load_ms"), _fmt(row.get("load_ms"))),
        num(row.get("first_ms"), _fmt(row.get("first_ms"))),
        num(row.get("p50_ms"), _fmt(row.get("p50_ms"))),
        num(row.get("p90_ms"), _fmt(row.get("p90_ms"))),
        num(row.get("n_runs"),
            str(row.get("n_runs")) if _known(row.get("n_runs")) else DASH),
        num(row.get("memory_mb"), _fmt(row.get("memory_mb"))),
        num(bytes_, _fmt(bytes_ / 1e6) if _known(bytes_) else DASH),
        num(gzip, _fmt(gzip / 1e6) if _known(gzip) else DASH),
        f'<td class="num" data-v="{esc(_sort_value(fid))}">{esc(fid_text)}{fid_badge}</td>',
        status_cell,
        wide_cell,
    ]
    emulated = " emulated" if row.get("emulated") else ""
    return f'<tr class="st-{esc(status)}{emulated}">' + "".join(cells) + "</tr>"


def _model_page_body(family: str, group: pd.DataFrame, rows: list[dict[str, Any]]) -> str:
    models = [m for m in dict.fromkeys(group["model"]) if m]
    show_model = len(models) > 1
    columns = [c for c in _TABLE_COLUMNS if show_model or c[1] != "model"]
    head = "".join(
        f'<th scope="col" data-type="{"num" if numeric else "text"}" title="{esc(title)}">'
        f'<button type="button" class="sort">{esc(name)}</button></th>'
        for name, _key, numeric, title in columns)
    body = "".join(_cell_row(r, show_model) for r in rows)
    counts = _status_counts(group)
    tasks = ", ".join(esc(t) for t in dict.fromkeys(group["task"]) if t) or DASH
    emulated = int(group["emulated"].sum())
    emu_note = (f'<p class="note">{_badge("emulated: estimate", "emu")} {emulated} of '
                f"{len(group)} cells ran on emulated phone profiles: their latencies are "
                f"estimates (desktop Chromium with a calibrated CPU slowdown).</p>"
                if emulated else "")
    model_list = "".join(f"<li><code>{esc(m)}</code></li>" for m in models)
    return f"""<h1>{esc(family)}</h1>
<p class="muted">Task: {tasks}. Models:</p><ul class="model-names">{model_list}</ul>
{_counts_markup(counts)}
{emu_note}
<section class="card">
<h2>Every cell</h2>
<p class="filter"><label>Filter <input id="cell-filter" type="search"
placeholder="e.g. wasm moto_g4 int8" data-filter-for="cells"></label>
<span id="cell-count" class="muted"></span> <span class="muted">Click a header to sort.</span></p>
<div class="scroll"><table id="cells" class="cells sortable">
<thead><tr>{head}</tr></thead>
<tbody>{body}</tbody>
</table></div>
</section>
<section class="card">
<h2>Latency distributions</h2>
<p class="muted">Timed warm runs of each cell, per runtime (a log scale when they span
more than a factor of 20).</p>
<div id="boxes"></div>
</section>
<section class="card">
<h2>Latency against fidelity</h2>
<p class="muted">Warm p50 against the task's headline fidelity figure; marker area \u221d gzip
size. The line joins the Pareto front (no other cell is both faster and more faithful) of the
chosen device. <label>Device <select id="pareto-device"></select></label></p>
<div id="pareto" class="plot"></div>
</section>
<section class="card">
<h2>Cold against warm</h2>
<p class="muted">First inference (cold, shader compilation included) against warm p50; the
dashed line is cold = warm.</p>
<div id="coldwarm" class="plot"></div>
</section>"""


def _failures_body(df: pd.DataFrame, families: Mapping[str, str]) -> str:
    bad = df[df["status"] != "ok"]
    if bad.empty:
        return "<h1>Failures</h1><p class=\"banner good\">Every cell was measured.</p>"
    groups: OrderedDict[str, list[Mapping[str, Any]]] = OrderedDict()
    for row in _plain(bad.to_dict(orient="records")):
        groups.setdefault(error_key(row.get("error")), []).append(row)
    # failures and timeouts (something broke) before unsupported combinations (expected), then
    # the biggest groups first
    ordered = sorted(groups.items(), key=lambda kv: (
        all(r.get("status") == "unsupported" for r in kv[1]), -len(kv[1]), kv[0]))
    statuses = Counter(str(s) for s in bad["status"])
    summary = ", ".join(f"{n} {esc(s)}" for s, n in statuses.most_common())
    toc = "".join(f'<li><a href="#err-{i}">{esc(key)}</a> <b>\u00d7{len(rows)}</b></li>'
                  for i, (key, rows) in enumerate(ordered, 1))
    sections = []
    for i, (key, rows) in enumerate(ordered, 1):
        kinds = Counter(r.get("status") or "unknown" for r in rows)
        badges = " ".join(f'<span class="status {esc(s)}">{n} {esc(s)}</span>'
                          for s, n in kinds.most_common())
        lines = []
        for r in rows:
            family = r.get("family")
            slug = families.get(family) if family is not None else None
            link = (f'<a href="model-{esc(slug)}.html">{esc(r.get("model"))}</a>' if slug
                    else esc(r.get("model")))
            full = str(r.get("error") or "")
            detail = (f"<details><summary>full error</summary><pre>{esc(full)}</pre></details>"
                      if full.strip() and full.strip() != key else "")
            lines.append(
                f"<tr><td>{link}</td><td>{esc(r.get('variant'))}</td>"
                f"<td>{esc(r.get('runtime'))}</td><td>{_device_cell(r)}</td>"
                f"<td><span class=\"status {esc(r.get('status'))}\">{esc(r.get('status'))}"
                f"</span></td><td>{detail}</td></tr>")
        sections.append(
            f'<section class="card failure" id="err-{i}"><h2><span class="n">{len(rows)}'
            f'\u00d7</span> <code class="error">{esc(key)}</code></h2><p>{badges}</p>'
            f'<div class="scroll"><table class="plain"><thead><tr><th>Model</th><th>Variant</th>'
            f"<th>Runtime</th><th>Device</th><th>Status</th><th></th></tr></thead><tbody>"
            f'{"".join(lines)}</tbody></table></div></section>')
    return (f"<h1>Failures</h1><p class=\"banner bad\">{len(bad)} of {len(df)} cells produced "
            f"no measurement: {summary}. Grouped by the first line of the error.</p>"
            f"<ol class=\"toc\">{toc}</ol>{''.join(sections)}")


# -- files --------------------------------------------------------------------------------------

def _write_text(path: Path, text: str) -> None:
    """Write atomically (a temporary file in the same directory, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_assets(run_dir: Path) -> None:
    import plotly
    import plotly.offline

    plotly_path = run_dir / PLOTLY_JS
    stamp = f"/* plotly.js from the plotly {plotly.__version__} Python package */\n"
    try:
        current = plotly_path.read_text(encoding="utf-8")[:200]
    except (OSError, UnicodeDecodeError):
        current = ""
    if not current.startswith(stamp):  # written once per plotly version
        _write_text(plotly_path, stamp + plotly.offline.get_plotlyjs())
    for name in STATIC_ASSETS:
        source = STATIC_DIR / name
        target = run_dir / name
        if target.is_file() and target.read_bytes() == source.read_bytes():
            continue
        tmp = run_dir / f".{name}.tmp"
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)


def point_latest(reports_dir: Path, run_id: str) -> Path:
    """Point ``reports_dir/latest`` at the run: a relative symlink, replaced atomically; where a
    symlink cannot be made (or ``latest`` is a real directory) write ``latest.txt`` holding the
    run id instead. Returns the path written."""
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
        _write_text(target, run_id + "\n")
        return target
    (reports_dir / LATEST_TXT).unlink(missing_ok=True)  # stale from a host without symlinks
    return link


def _real_run_id(reports_dir: Path, run_id: str | None) -> str:
    """The run's own directory name: ``latest`` (or any symlink to a run beside it) is followed,
    so that the report never points ``latest`` at itself. None means the latest run."""
    if run_id is None:
        run_id = latest_run(reports_dir)
        if run_id is None:
            raise EdgeError(f"no runs in {reports_dir} (measure one with `edge bench`)")
    path = reports_dir / run_id
    if path.is_symlink():
        real = path.resolve()
        if real.parent == reports_dir.resolve() and real.is_dir():
            return real.name
    return run_id


def write_report(reports_dir: Path, run_id: str | None) -> Path:
    """Write the HTML report of ``reports_dir/run_id`` into that directory (see the module's
    docstring) and point ``reports_dir/latest`` at it; returns the path of ``index.html``.
    ``run_id`` may be ``latest`` (followed to the run it names) or None (the newest run);
    `EdgeError` when the run does not exist."""
    reports_dir = Path(reports_dir)
    run_id = _real_run_id(reports_dir, run_id)
    records, meta = load_run(reports_dir, run_id)
    run_dir = reports_dir / run_id
    df = tidy(records)
    write_tidy(df, run_dir)

    families = family_slugs([f for f in dict.fromkeys(df["family"]) if f is not None])
    counts = _status_counts(df)
    devices = _devices(df, records)
    models = [m for m in dict.fromkeys(df["model"]) if m is not None]
    pages = {family: f"model-{slug}.html" for family, slug in families.items()}
    common = {"run_id": run_id, "devices": devices, "families": pages,
              "statuses": dict(counts)}

    # Overview: rows without samples; the picker and the best-per-device grid run in the page.
    overview = {**common, "page": "overview", "models": models, "rows": _rows(df, False)}
    index = run_dir / "index.html"
    _write_assets(run_dir)
    _write_text(index, _page(
        f"edge report \u00b7 {run_id}", "overview", _nav(run_id, families, counts, "index"),
        _overview(run_id, run_dir, df, meta, records, devices, families, counts), overview,
        (PLOTLY_JS, "picker.js", "report.js")))

    for family, slug in families.items():
        group = df[df["family"] == family]
        rows = _rows(group, True)
        payload = {**common, "page": "model", "family": family, "rows": rows}
        _write_text(run_dir / f"model-{slug}.html", _page(
            f"{family} \u00b7 edge report {run_id}", "model",
            _nav(run_id, families, counts, slug), _model_page_body(family, group, rows),
            payload, (PLOTLY_JS, "report.js")))

    _write_text(run_dir / "failures.html", _page(
        f"Failures \u00b7 edge report {run_id}", "failures",
        _nav(run_id, families, counts, "failures"), _failures_body(df, families),
        {**common, "page": "failures"}, ("report.js",)))

    point_latest(reports_dir, run_id)
    return index
