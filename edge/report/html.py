"""The HTML report of a run: static pages beside the run's results, readable offline.

`write_report` reads ``reports/<run-id>/`` (through `edge.report.table`) and writes there:

- ``index.html``: the run's self-checks (`edge.results.checks`, every check with PASS, FAIL or
  N/A, failures highlighted), the best variant per device profile under the picker's default
  budgets and an interactive picker (both computed in the page by ``picker.js``, the same file
  `edge pick` runs under Node, so page and command line agree), the published reference points
  against the run's emulated estimates (the emulation error), a heatmap of warm p50 per
  runtime, the counts of ok/failed/timeout/unsupported cells and the run's provenance (host,
  packages, browser and runtime versions, git commit, protocol, calibration factors, emulation
  method and achieved against target slowdown per device, emulated or real);
- ``model-<slug>.html``: one page per model family: a sortable, filterable table of every cell
  (with the median's confidence interval, tie group, emulation, competing load, and the
  renderer of GPU cells), latency distributions per runtime, a Pareto chart (p50 against
  fidelity, marker size ~ gzip size) and cold against warm latency;
- ``failures.html``: the cells that did not produce measurements, grouped by their error's
  first line;
- ``cells.parquet`` / ``cells.csv`` (`edge.report.table.write_tidy`) and ``checks.json``
  (`edge.results.checks.checks_json`);
- the assets: ``plotly.min.js`` (from the installed plotly package: no CDN, the report works
  offline), ``picker.js``, ``report.js``, ``report.css``;

and points ``reports/latest`` at the latest run, the most recent run that has results
(`edge.results.store.update_latest`: a relative symlink, replaced atomically; a ``latest.txt``
holding the run id where symlinks cannot be made). That is the run reported, unless a newer run
has results: ``latest`` names one run for every command.

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
from edge.report.phones import PhoneAnswer, phone_answer
from edge.report.table import GPU_RUNTIMES, load_run, tidy, write_tidy
from edge.results.checks import FAIL, NA, PASS, checks_json, self_checks
from edge.results.store import (  # noqa: F401  (LATEST, LATEST_TXT: re-exported)
    LATEST,
    LATEST_TXT,
    latest_run,
    point_latest,
    update_latest,
)

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Assets copied beside the pages (plotly.min.js is written from the plotly package).
STATIC_ASSETS = ("picker.js", "report.js", "report.css")
PLOTLY_JS = "plotly.min.js"
CHECKS_NAME = "checks.json"
#: Statuses counted on the overview, in this order (any other status is counted too).
STATUSES = ("ok", "failed", "timeout", "unsupported")
DASH = "\u2014"
TIMES = "\u00d7"

__all__ = ["write_report", "script_json", "family_slugs", "error_key", "point_latest",
           "reference_rows", "CHECKS_NAME"]


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
    emulation: dict[str, dict[str, Any]] = {}
    for record in records:
        device = record.get("device")
        emu = record.get("emulation")
        if isinstance(device, str) and isinstance(emu, Mapping):
            facts = emulation.setdefault(device, {"methods": Counter(), "targets": [],
                                                  "achieved": [], "off_target": 0,
                                                  "calibration": []})
            if isinstance(emu.get("method"), str):
                facts["methods"][emu["method"]] += 1
            for key, out in (("target_slowdown", "targets"),
                             ("calibration_slowdown", "calibration")):
                if _known(emu.get(key)) and emu[key] not in facts[out]:
                    facts[out].append(emu[key])
            if record.get("status") == "ok" and _known(emu.get("achieved_slowdown")):
                facts["achieved"].append(float(emu["achieved_slowdown"]))
                facts["off_target"] += emu.get("off_target") is True
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
            "emulation": _emulation_summary(emulation.get(device)),
        })
    return out


def _emulation_summary(facts: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A device's emulation as the pages show it: methods (with cell counts), target slowdowns,
    the median and range of the achieved slowdowns of its ok cells, how many are off target."""
    if not facts:
        return None
    achieved = sorted(facts["achieved"])
    median = None
    if achieved:
        mid = len(achieved) // 2
        median = achieved[mid] if len(achieved) % 2 else (achieved[mid - 1] + achieved[mid]) / 2
    return {
        "methods": dict(facts["methods"].most_common()),
        "targets": sorted(facts["targets"]),
        "calibration": sorted(facts["calibration"]),
        "achieved_median": median,
        "achieved_min": achieved[0] if achieved else None,
        "achieved_max": achieved[-1] if achieved else None,
        "achieved_cells": len(achieved),
        "off_target": facts["off_target"],
    }


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
        gpu = record.get("gpu") if isinstance(record.get("gpu"), Mapping) else {}
        from_gpu = isinstance(gpu.get("renderer"), str)  # the record's own GPU facts first
        if from_gpu:
            software = " (software rendering)" if gpu.get("software") is True else ""
            facts["gpu"][f"{record.get('runtime')}: {gpu['renderer']}{software}"] += 1
        webgl = backend.get("webgl") if isinstance(backend.get("webgl"), Mapping) else {}
        if not from_gpu and isinstance(webgl.get("renderer"), str):
            facts["gpu"][f"WebGL: {webgl['renderer']}"] += 1
        webgpu = backend.get("webgpu") if isinstance(backend.get("webgpu"), Mapping) else {}
        if not from_gpu and webgpu.get("available"):
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

def _checks_section(checks: list[Mapping[str, Any]]) -> str:
    """Every self-check with PASS/FAIL/N/A and its summary; failed ones highlighted, with their
    details."""
    failed = [c for c in checks if c.get("status") == FAIL]
    rows = []
    for check in checks:
        status = str(check.get("status"))
        cls = {PASS: "pass", FAIL: "fail", NA: "na"}.get(status, "na")
        details = [str(d) for d in check.get("details") or []]
        detail = ""
        if details:
            items = "".join(f"<li>{esc(d)}</li>" for d in details)
            opened = " open" if status == FAIL else ""
            detail = (f"<details{opened}><summary>{len(details)} "
                      f"{'detail' if len(details) == 1 else 'details'}</summary>"
                      f'<ul class="check-details">{items}</ul></details>')
        rows.append(
            f'<tr class="check {cls}" data-check="{esc(check.get("name"))}">'
            f'<td><span class="check-status {cls}">{esc(status.upper())}</span></td>'
            f'<td><code>{esc(check.get("name"))}</code></td>'
            f'<td>{esc(check.get("summary"))}{detail}</td></tr>')
    if failed:
        head = (f'<p class="banner bad"><b>{len(failed)} of {len(checks)} self-checks '
                f"failed</b> ({esc(', '.join(str(c.get('name')) for c in failed))}): read the "
                f"figures below with that in mind.</p>")
    else:
        passed = sum(1 for c in checks if c.get("status") == PASS)
        head = (f'<p class="muted">{passed} of {len(checks)} self-checks passed, none failed '
                f"(N/A: nothing in this run to check).</p>")
    cls = "card checks has-fail" if failed else "card checks"
    return f"""
<section id="self-checks" class="{cls}">
<h2>Self-checks</h2>
{head}
<div class="scroll"><table class="plain checks"><thead><tr><th>Result</th><th>Check</th>
<th>Summary</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>
<p class="muted">Also in <a href="{CHECKS_NAME}">{CHECKS_NAME}</a>.</p>
</section>"""


def _source_link(url: Any) -> str:
    """A link to a published source (http or https only; anything else as text)."""
    if not isinstance(url, str) or not url.strip():
        return DASH
    url = url.strip()
    if re.match(r"https?://", url, re.I):
        return (f'<a class="ext" href="{esc(url)}" rel="noopener noreferrer" '
                f'title="{esc(url)}">{esc(_short_url(url))}</a>')
    return esc(url)


def _short_url(url: str) -> str:
    """``host/owner/repo \u2026 file`` for a long URL (the full one is the link's title)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    path = [p for p in parts.path.split("/") if p]
    if len(path) <= 3:
        return parts.netloc + parts.path
    return f"{parts.netloc}/{'/'.join(path[:2])} \u2026 {path[-1]}"


def _reference_note(note: Any) -> str:
    """The row's note, without the bare "not measured" that the estimate column already says."""
    text = str(note or "")
    return "" if text.strip() == "not measured in this run" else text


def _references_section(references: Mapping[str, Any]) -> str:
    rows = references.get("rows") or []
    error = references.get("error")
    if error:
        body = f'<p class="banner bad">{esc(error)}</p>'
    elif not rows:
        body = '<p class="muted">No reference points are recorded.</p>'
    else:
        lines = []
        for ref in rows:
            estimate = ref.get("estimate_ms")
            ratio = ref.get("ratio")
            interval = ref.get("ci95")
            if _known(estimate):
                ci = (f' <span class="muted">[{esc(_fmt(interval[0]))}, '
                      f'{esc(_fmt(interval[1]))}]</span>'
                      if isinstance(interval, list | tuple) and len(interval) == 2
                      and all(_known(v) for v in interval) else "")
                est = f"{esc(_fmt(estimate))}{ci}"
                err = f"{TIMES}{ratio:.2f}" if _known(ratio) else DASH
                cls = ""
            else:
                est = '<span class="muted">not measured</span>'
                err = DASH
                cls = ' class="unmeasured"'
            threads = ref.get("threads")
            phone = esc(ref.get("phone"))
            if ref.get("phone_label"):
                phone += f' <span class="muted">({esc(ref.get("phone_label"))})</span>'
            lines.append(
                f"<tr{cls}><td>{phone}</td><td>{esc(ref.get('model'))}</td>"
                f"<td>{esc(ref.get('variant') or DASH)}</td><td>{esc(ref.get('runtime'))}</td>"
                f'<td class="num">{esc(threads if _known(threads) else DASH)}</td>'
                f'<td class="num">{esc(_fmt(ref.get("reference_ms")))}</td>'
                f"<td>{_source_link(ref.get('source_url') or ref.get('source'))}</td>"
                f'<td class="num">{est}</td><td class="num ratio">{esc(err)}</td>'
                f"<td>{esc(ref.get('method') or DASH)}</td>"
                f"<td>{esc(_reference_note(ref.get('note')))}</td></tr>")
        body = ('<div class="scroll"><table class="plain refs"><thead><tr><th>Phone</th>'
                '<th>Model</th><th>Variant</th><th>Runtime</th><th>Threads</th>'
                '<th>Published ms</th><th>Source</th><th>Emulated estimate ms [95 % CI]</th>'
                '<th>Ratio (emulation error)</th><th>Emulation</th><th>Note</th></tr></thead>'
                f'<tbody>{"".join(lines)}</tbody></table></div>')
    return f"""
<section id="reference-points" class="card">
<h2>Reference points</h2>
<p class="muted">Latencies published for real phones against this run's emulated estimate of
the same phone, model and runtime. Ratio = estimate ÷ published: the emulation error
(×1.00 is exact; above 1 the emulation is slower than the phone).</p>
{body}
</section>"""


def _overview(run_id: str, run_dir: Path, df: pd.DataFrame, meta: Mapping[str, Any] | None,
              records: list[Mapping[str, Any]], devices: list[dict[str, Any]],
              families: Mapping[str, str], counts: Mapping[str, int],
              checks: list[Mapping[str, Any]], references: Mapping[str, Any],
              answer: PhoneAnswer | None = None) -> str:
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
(p90 warm latency, or p50 for a cell with too few runs for a p90; gzip size; memory, the resident
set size its metric names; the task's headline fidelity figure). Leave a budget empty to drop
it. Cells the measurements cannot tell apart (one tie group) count as tied: the smaller download
wins. GPU runtimes are never recommended for an emulated phone. The ranking is
<code>picker.js</code>, the same file <code>edge pick</code> runs.</p>
<form id="pick-form" class="pick-form" autocomplete="off" onsubmit="return false">
<label>Model <select id="pick-model"></select></label>
<label>Device <select id="pick-device"></select></label>
<label>Max p90 (ms) <input id="pick-p90" type="number" min="0" step="any"></label>
<label>Max size (MB gzip) <input id="pick-size" type="number" min="0" step="any"></label>
<label>Max memory (MB) <input id="pick-memory" type="number" min="0" step="any"></label>
<label>Min fidelity <input id="pick-fidelity" type="number" min="0" max="1" step="any"></label>
<label>Max cold start (ms) <input id="pick-cold" type="number" min="0" step="any"></label>
<label><input id="pick-accuracy" type="checkbox"> Accuracy verdict must pass</label>
<button type="button" id="pick-reset">Defaults</button>
</form>
<div id="pick-result" class="pick-result" aria-live="polite"></div>
<noscript><p>The picker needs JavaScript.</p></noscript>
</section>"""

    best = """
<section class="card">
<h2>Best variant per device</h2>
<p class="muted" id="best-budgets">Under the picker's default budgets.</p>
<p class="muted">Phones are <b>estimates</b>: the host's measurement times a factor for the
phone, runtime kind and precision, with its 80 % interval and the evidence it rests on (your
device, published figures, the benchmark index); see "Phone factors" below. Builds whose
intervals hold each other's estimate cannot be ranked without the device: the pick says
what to measure.</p>
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

    return (f"<h1>Run {esc(run_id)}</h1>\n{banner}\n{_counts_markup(counts)}\n"
            f"{_checks_section(checks)}\n{picker}\n{best}"
            f"\n<section class=\"card\"><h2>Models</h2><ul class=\"models\">"
            f"{''.join(model_items)}</ul></section>\n{_factors_section(answer)}\n"
            f"{_references_section(references)}\n"
            f"{heat}\n{_provenance(run_id, run_dir, meta, records, devices)}")


def _answer_devices(devices: list[dict[str, Any]], answer: PhoneAnswer) -> list[dict[str, Any]]:
    """The overview's devices: the host and real devices as measured, then every catalogued
    phone, estimated (with its emulation facts where the run also emulated it)."""
    by_id = {d["id"]: d for d in devices}
    out = [d for d in devices if d["real"] and d["id"] not in {p.name for p in answer.phones}]
    for phone in answer.phones:
        d = dict(by_id.get(phone.name) or {"id": phone.name, "label": phone.label,
                                            "cells": 0, "calibration": [], "network": []})
        d.update(emulated=False, real=False, estimated=True)
        out.append(d)
    return out


_LEVEL_CLASS = {"device": "good", "published": "good", "published-precision": "",
                "index-scaled": "warn", "index": "bad", "none": "bad"}


def _factors_section(answer: PhoneAnswer | None) -> str:
    """The factors behind the phone estimates: value, 80 % interval, evidence level, n."""
    if answer is None:
        return ""
    head = ('<section class="card" id="phone-factors"><h2>Phone factors</h2>'
            '<p class="muted">phone \u2248 host \u00d7 factor, per phone, runtime kind (native '
            'code, WASM in the browser) and precision (what the arithmetic runs in once loaded:'
            ' float for float32, float16 and weight-only builds; int8; dynamic-range). The '
            'interval is the 80 % band from the evidence\'s own spread, left one out, never '
            'narrower than \u00b125 % (one factor\'s error on HELP\'s public data). Levels, '
            'best first: device (your own, edge calibrate), published (figures for this phone),'
            ' published-precision (this phone\'s figure for another precision \u00d7 the '
            'precision effect of other phones), index-scaled (benchmark index ratio scaled by '
            'other phones\' published figures), index (the bare ratio, widest band).')
    if answer.host_index is not None:
        head += f" Host benchmark index this run: {esc(_fmt(answer.host_index))}."
    if answer.calibrations:
        head += f" Device calibrations: <code>{esc(answer.calibrations)}</code>."
    head += "</p>"
    if answer.error:
        return head + f'<p class="banner bad">{esc(answer.error)}</p></section>'
    if not answer.factors:
        return head + "<p>No estimate: the run has no host cell on a CPU runtime.</p></section>"
    rows = []
    for f in answer.factors:
        cls = _LEVEL_CLASS.get(f["level"], "")
        rows.append(
            f"<tr class=\"factor\"><td>{esc(f['phone'])}</td><td>{esc(f['kind'])}</td>"
            f"<td>{esc(f['precision'])}</td><td class=\"num\">{esc(_fmt(f['value']))}</td>"
            f"<td class=\"num\">{esc(_fmt(f['lo']))}\u2013{esc(_fmt(f['hi']))}</td>"
            f"<td>{_badge(f['level'], cls)}</td><td class=\"num\">{f['n']}</td>"
            f"<td class=\"note\">{esc(f['note'])}</td></tr>")
    return (head + '<div class="scroll"><table class="plain" id="factors-table"><thead><tr>'
            "<th>phone</th><th>runtime kind</th><th>precision</th><th>factor</th>"
            "<th>80 % interval</th><th>evidence</th><th>n</th><th>basis</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div></section>")


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
        *_sources(meta, records),
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
        method, achieved = _emulation_cells(device.get("emulation"), device["emulated"])
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
                f"<td class=\"emu-method\">{method}</td><td class=\"emu-achieved\">{achieved}</td>"
                f"<td>{esc(', '.join(device['network']))}</td>"
                f"<td class=\"num\">{device['cells']}</td></tr>")
    device_table = (
        '<table class="plain devices"><thead><tr><th>Device</th><th>Profile</th><th>Kind</th>'
        '<th>CPU slowdown</th><th>Host index</th><th>Target index</th><th>Clamped / warning</th>'
        '<th>Emulation method</th><th>Achieved vs target slowdown</th>'
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
<p class="muted">Emulated phones run on this host with the CPU slowed by the target slowdown
(host benchmark index \u00f7 the profile's) and the profile's viewport, user agent and core
count: their figures are <b>estimates</b>. The emulation method says what was slowed: a CPU
bandwidth cgroup (<code>cgroup-v1</code>/<code>cgroup-v2</code>) slows every thread of the
measured processes; <code>devtools-main-thread</code> slows the page's main thread only (so
those cells run single-threaded). The achieved slowdown is each cell's p50 \u00f7 the host p50 of
the same model, variant, runtime and threads. Memory is a resident set size: the page renderer's
peak in the browser, the worker's peak in native runtimes (older runs: the renderer's RSS after
the runs).</p>
<div class="scroll">{device_table}</div>
<p class="muted">Data: {data_links}</p>
</section>"""


def _sources(meta: Mapping[str, Any], records: list[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Provenance rows of a sharded or merged run: its shard, the runs it was merged from, and
    the machines and endpoints its records say they were measured on."""
    items = []
    if meta.get("shard"):
        items.append(("Shard", esc(meta["shard"])))
    merged = meta.get("merged_from")
    if isinstance(merged, list) and merged:
        items.append(("Merged from", "<br>".join(
            f"<code>{esc(m.get('run_id'))}</code>"
            + (f" shard {esc(m['shard'])}" if m.get("shard") else "")
            + (f' <span class="muted">({esc(m["hostname"])})</span>' if m.get("hostname")
               else "")
            for m in merged if isinstance(m, Mapping))))
    machines: Counter = Counter()
    endpoints: Counter = Counter()
    for r in records:
        prov = r.get("provenance")
        if isinstance(prov, Mapping):
            machine = prov.get("machine") if isinstance(prov.get("machine"), Mapping) else {}
            machines[str(machine.get("hostname") or DASH)] += 1
            endpoints[str(prov.get("endpoint") or DASH)] += 1
    if len(machines) > 1 or merged:
        items.append(("Machines", _counter_text(machines)))
    if len(endpoints) > 1 or any(e != "local" for e in endpoints):
        items.append(("Endpoints", _counter_text(endpoints)))
    return items


def _emulation_cells(emu: Mapping[str, Any] | None, emulated: bool) -> tuple[str, str]:
    """Markup for a device's emulation method(s) and achieved against target slowdown."""
    if not emulated:
        return "", ""
    if not emu:
        return '<span class="muted">not recorded</span>', '<span class="muted">not recorded</span>'
    methods = emu.get("methods") or {}
    method = "<br>".join(f"<code>{esc(m)}</code> <span class=\"muted\">({n} cells)</span>"
                         for m, n in methods.items()) or '<span class="muted">not recorded</span>'
    targets = ", ".join(_fmt(t, TIMES) for t in emu.get("targets") or []) or DASH
    if emu.get("achieved_cells"):
        spread = (f" (range {_fmt(emu.get('achieved_min'), TIMES)}\u2013"
                  f"{_fmt(emu.get('achieved_max'), TIMES)}, {emu['achieved_cells']} cells)"
                  if emu["achieved_cells"] > 1 else "")
        off = emu.get("off_target") or 0
        off_text = (f' <span class="off-target">{off} off target</span>' if off else "")
        achieved = (f"median {esc(_fmt(emu.get('achieved_median'), TIMES))}{esc(spread)} vs "
                    f"target {esc(targets)}{off_text}")
    else:
        achieved = (f'<span class="muted">not measured (no host cell)</span> vs target '
                    f"{esc(targets)}")
    calibration = emu.get("calibration") or []
    if calibration:
        achieved += (f'<br><span class="muted">calibration workload: '
                     f'{esc(", ".join(_fmt(c, TIMES) for c in calibration))}</span>')
    return method, achieved


#: The model page's table: (header, row key for the sort value, numeric, title).
_TABLE_COLUMNS = (
    ("Model", "model", False, "model and its parameters"),
    ("Variant", "variant", False, "format and quantization"),
    ("Runtime", "runtime", False, "where it ran"),
    ("Threads", "threads", True, "native threads or WASM threads"),
    ("Device", "device", False, "device profile"),
    ("Load ms", "load_ms", True, "model load time"),
    ("Cold ms", "first_ms", True, "first inference (cold, shader compilation included)"),
    ("p50 ms", "p50_ms", True, "warm median"),
    ("95 % CI ms", "ci_rel", True, "95 % confidence interval of the median (sorts by its "
     "half-width relative to the median)"),
    ("p90 ms", "p90_ms", True, "warm 90th percentile (blank: too few runs)"),
    ("Runs", "n_runs", True, "timed runs"),
    ("Tie", "tie_group", True, "tie group within the model, runtime, device and threads: "
     "1 = indistinguishable from the fastest"),
    ("Emulation", "achieved_slowdown", True, "emulation method and achieved \u00f7 target "
     "slowdown (emulated profiles)"),
    ("Load", "other_cores", True, "CPU cores other processes used during the cell; busy above "
     "0.25"),
    ("Memory MB", "memory_mb", True, "resident set size: the metric is in the cell's tooltip"),
    ("Size MB", "bytes", True, "artifact size on disk"),
    ("Gzip MB", "gzip_bytes", True, "gzip size (the download)"),
    ("Fidelity", "fidelity", True, "the task's headline figure against the float32 reference"),
    ("Status", "status", False, "ok, failed, timeout or unsupported"),
    ("Stable", "wide", False, "~ : wide distribution (std >= 10 % of mean); not steady: the "
     "warm-up did not settle"),
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
    stable = []
    if row.get("wide"):
        stable.append('<span class="wide" title="std \u2265 10 % of mean">~ wide</span>')
    if row.get("steady") is False:
        stable.append('<span class="wide" title="the warm-up stopped before the latency was '
                      'steady">not steady</span>')
    wide_cell = (f'<td data-v="{"wide" if row.get("wide") else "stable"}">'
                 f'{" ".join(stable)}</td>')
    ci_lo, ci_hi, ci_rel = row.get("ci_lo_ms"), row.get("ci_hi_ms"), row.get("ci_rel")
    ci_text = f"{_fmt(ci_lo)}\u2013{_fmt(ci_hi)}" if _known(ci_lo) and _known(ci_hi) else ""
    ci_title = f' title="\u00b1{ci_rel:.1%} of the median"' if _known(ci_rel) else ""
    ci_cell = (f'<td class="num" data-v="{esc(_sort_value(ci_rel))}"{ci_title}>'
               f"{esc(ci_text)}</td>")
    tie = row.get("tie_group")
    tie_cell = num(tie, str(tie) if _known(tie) else "")
    memory_metric = row.get("memory_metric")
    memory_title = f' title="{esc(memory_metric)}"' if memory_metric else ""
    memory_cell = (f'<td class="num" data-v="{esc(_sort_value(row.get("memory_mb")))}"'
                   f'{memory_title}>{esc(_fmt(row.get("memory_mb")))}</td>')
    cells = []
    if show_model:
        cells.append(f'<td data-v="{esc(row.get("model"))}" class="model">'
                     f"{esc(row.get('model'))}</td>")
    cells += [
        f'<td data-v="{esc(row.get("variant"))}">{esc(row.get("variant"))}</td>',
        f'<td data-v="{esc(row.get("runtime"))}">{_runtime_cell(row)}</td>',
        num(threads, str(threads) if _known(threads) else DASH),
        f'<td data-v="{esc(row.get("device"))}">{_device_cell(row)}</td>',
        num(row.get("load_ms"), _fmt(row.get("load_ms"))),
        num(row.get("first_ms"), _fmt(row.get("first_ms"))),
        num(row.get("p50_ms"), _fmt(row.get("p50_ms"))),
        ci_cell,
        num(row.get("p90_ms"), _fmt(row.get("p90_ms")) if _known(row.get("p90_ms")) else ""),
        num(row.get("n_runs"),
            str(row.get("n_runs")) if _known(row.get("n_runs")) else DASH),
        tie_cell,
        _emulation_cell(row),
        _load_cell(row),
        memory_cell,
        num(bytes_, _fmt(bytes_ / 1e6) if _known(bytes_) else DASH),
        num(gzip, _fmt(gzip / 1e6) if _known(gzip) else DASH),
        f'<td class="num" data-v="{esc(_sort_value(fid))}">{esc(fid_text)}{fid_badge}</td>',
        status_cell,
        wide_cell,
    ]
    emulated = " emulated" if row.get("emulated") else ""
    return f'<tr class="st-{esc(status)}{emulated}">' + "".join(cells) + "</tr>"


def _runtime_cell(row: Mapping[str, Any]) -> str:
    """The runtime; for a GPU runtime also the renderer, and "software" for a software
    rasterizer (the host's, never a phone's GPU)."""
    text = esc(row.get("runtime"))
    if row.get("runtime") not in GPU_RUNTIMES:
        return text
    renderer = row.get("gpu_renderer")
    if renderer:
        text += f'<br><small class="renderer">{esc(renderer)}</small>'
    if row.get("gpu_software") is True:
        text += _badge("software", "soft")
    return text


def _emulation_cell(row: Mapping[str, Any]) -> str:
    achieved = row.get("achieved_slowdown")
    if not row.get("emulated"):
        return f'<td data-v="{esc(_sort_value(achieved))}"></td>'
    method = row.get("emulation_method")
    target = row.get("target_slowdown")
    parts = [esc(method) if method else '<span class="muted">method not recorded</span>']
    if _known(achieved) or _known(target):
        parts.append(f"{esc(_fmt(achieved, TIMES))} / {esc(_fmt(target, TIMES))}")
    if row.get("off_target") is True:
        parts.append('<span class="off-target">off target</span>')
    return (f'<td class="emu" data-v="{esc(_sort_value(achieved))}" title="achieved / target '
            f'slowdown">{"<br>".join(parts)}</td>')


def _load_cell(row: Mapping[str, Any]) -> str:
    cores = row.get("other_cores")
    text = _fmt(cores) if _known(cores) else ""
    if row.get("busy") is True:
        return (f'<td class="num busy" data-v="{esc(_sort_value(cores))}"><span class="busy" '
                f'title="measured under competing load">busy {esc(text)}</span></td>')
    return f'<td class="num" data-v="{esc(_sort_value(cores))}">{esc(text)}</td>'


#: Runtime pairs the model pages show side by side: (newer, older or other API, what the pair is).
RUNTIME_PAIRS = (
    ("litertjs-wasm", "tflite-web", "LiteRT.js against its legacy predecessor tfjs-tflite"),
    ("litert-compiled", "litert", "LiteRT's CompiledModel API against its Interpreter"),
)


def _pair_cell(row: Mapping[str, Any] | None) -> str:
    if row is None:
        return f"<td>{DASH}</td>"
    if row.get("status") != "ok":
        return f"<td>{_badge(str(row.get('status')), 'status')}</td>"
    ci = (f" [{_fmt(row.get('ci_lo_ms'))}, {_fmt(row.get('ci_hi_ms'))}]"
          if _known(row.get("ci_lo_ms")) else "")
    fid = row.get("fidelity_status") or DASH
    return f"<td>{_fmt(row.get('p50_ms'), ' ms')}{ci} · fidelity {esc(fid)}</td>"


def _runtime_pairs_section(group: pd.DataFrame) -> str:
    """Each runtime pair measured on the same model, device and threads: per variant, both
    cells' p50 with its 95 % interval and fidelity status, what each could run, and the p50
    ratio (only where both ran)."""
    parts = []
    threads = group["threads"].astype(object).where(group["threads"].notna(), None)
    frame = group.assign(_threads=threads)
    for new, old, what in RUNTIME_PAIRS:
        sub = frame[frame["runtime"].isin((new, old))]
        for (model, device, n), cells in sub.groupby(["model", "device", "_threads"],
                                                    dropna=False, sort=False):
            if set(cells["runtime"]) != {new, old}:
                continue
            by = {(r["variant"], r["runtime"]): r for r in cells.to_dict("records")}
            rows = []
            for variant in dict.fromkeys(cells["variant"]):
                a, b = by.get((variant, new)), by.get((variant, old))
                ratio = DASH
                if a and b and a.get("status") == b.get("status") == "ok" and _known(
                        a.get("p50_ms")) and _known(b.get("p50_ms")) and b["p50_ms"] > 0:
                    ratio = f"{a['p50_ms'] / b['p50_ms']:.2f}"
                rows.append(f"<tr><td><code>{esc(variant)}</code></td>{_pair_cell(a)}"
                            f"{_pair_cell(b)}<td>{ratio}</td></tr>")
            where = f"{device}" + (f", {int(n)} thread{'' if n == 1 else 's'}"
                                   if _known(n) else "")
            parts.append(
                f"<h3>{esc(what)}: <code>{esc(model)}</code> on {esc(where)}</h3>"
                f'<table class="pairs"><thead><tr><th scope="col">variant</th>'
                f'<th scope="col">{esc(new)}: p50 [95 % CI]</th>'
                f'<th scope="col">{esc(old)}: p50 [95 % CI]</th>'
                f'<th scope="col">p50 {esc(new)} / {esc(old)}</th></tr></thead>'
                f"<tbody>{''.join(rows)}</tbody></table>")
    if not parts:
        return ""
    return ("<section class=\"card\" id=\"runtime-pairs\">\n<h2>Runtimes side by side</h2>\n"
            "<p class=\"muted\">The same variants in two runtimes on the same device and "
            "threads: what each can run, p50 with its 95 % interval, fidelity, and the ratio "
            "where both ran.</p>\n" + "\n".join(parts) + "\n</section>")


def _accuracy_section(group: pd.DataFrame) -> str:
    """Task accuracy per variant: on the host over the labelled held-out set (figure, drop
    against float32 with its paired 95 % interval, verdict, data), the int8 calibration set,
    and per runtime the accuracy of its returned outputs on the labelled fidelity images."""
    if "accuracy_metric" not in group or not group["accuracy_metric"].notna().any():
        return ""
    rows = []
    for (model, variant), cells in group.groupby(["model", "variant"], sort=False):
        first = cells.iloc[0]
        if not _known(first.get("host_accuracy")) and not cells["accuracy"].notna().any():
            continue
        host = DASH
        if _known(first.get("host_accuracy")):
            host = (f"{first['host_accuracy']:.3f} (float32 {first['host_accuracy_ref']:.3f}; "
                    f"drop {100 * first['host_drop']:+.1f} points, 95 % CI "
                    f"{100 * first['host_drop_lo']:+.1f} to {100 * first['host_drop_hi']:+.1f}; "
                    f"n = {first['accuracy_n']})")
        verdict = first.get("accuracy_verdict") or DASH
        runtimes = "; ".join(
            f"{esc(r['runtime'])} on {esc(r['device'])}: {r['accuracy']:.3f} "
            f"(drop {100 * r['accuracy_drop']:+.1f}, n = {r['accuracy_images']})"
            for r in cells.to_dict("records") if _known(r.get("accuracy"))) or DASH
        rows.append(f"<tr><td><code>{esc(model)}</code></td><td><code>{esc(variant)}</code>"
                    f"</td><td>{esc(first.get('accuracy_metric'))}</td><td>{host}</td>"
                    f"<td>{esc(verdict)}</td><td>{runtimes}</td>"
                    f"<td>{esc(first.get('calibration') or DASH)}</td>"
                    f"<td>{esc(first.get('accuracy_data') or DASH)}</td></tr>")
    if not rows:
        return ""
    return ("<section class=\"card\" id=\"accuracy\">\n<h2>Task accuracy</h2>\n"
            "<p class=\"muted\">Against labels, not against float32: on the host over the "
            "held-out set (the verdict: a variant keeps a fixed fraction of float32's figure), "
            "and in each runtime over the few labelled fidelity images its outputs came back "
            "for (a diagnostic: see n). Calibration: the images that set an int8 variant's "
            "ranges.</p>\n<div class=\"scroll\"><table class=\"accuracy\"><thead><tr>"
            "<th scope=\"col\">model</th><th scope=\"col\">variant</th>"
            "<th scope=\"col\">metric</th><th scope=\"col\">host, held-out</th>"
            "<th scope=\"col\">verdict</th><th scope=\"col\">in the runtimes</th>"
            "<th scope=\"col\">int8 calibration</th><th scope=\"col\">data</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table></div>\n</section>")


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
{_accuracy_section(group)}
{_runtime_pairs_section(group)}
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


# -- reference points ----------------------------------------------------------------------------

def reference_rows(records: list[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"rows": [...], "error": str | None}``: the published reference points against the
    run's estimates (`edge.reference_points.compare_with_records`). When the reference points
    cannot be read the rows are empty and ``error`` says why: the report is still written."""
    from edge.reference_points import compare_with_records, load_reference_points

    try:
        rows = [dict(r) for r in compare_with_records(load_reference_points(), records)]
    except (EdgeError, OSError, ValueError) as exc:
        return {"rows": [], "error": f"the reference points could not be read: {exc}"}
    return {"rows": _plain(rows), "error": None}


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
    docstring) and point ``reports_dir/latest`` at the latest run (`update_latest`: this one,
    unless a newer run has results); returns the path of ``index.html``. ``run_id`` may be
    ``latest`` (followed to the run it names) or None (the latest run: `latest_run`);
    `EdgeError` when the run does not exist."""
    reports_dir = Path(reports_dir)
    run_id = _real_run_id(reports_dir, run_id)
    records, meta = load_run(reports_dir, run_id)
    run_dir = reports_dir / run_id
    df = tidy(records)
    write_tidy(df, run_dir)
    checks = self_checks(records)
    _write_text(run_dir / CHECKS_NAME, checks_json(checks))
    references = reference_rows(records)
    answer = phone_answer(df, records, meta)

    families = family_slugs([f for f in dict.fromkeys(df["family"]) if f is not None])
    counts = _status_counts(df)
    devices = _devices(df, records)
    models = [m for m in dict.fromkeys(df["model"]) if m is not None]
    pages = {family: f"model-{slug}.html" for family, slug in families.items()}
    common = {"run_id": run_id, "devices": devices, "families": pages,
              "statuses": dict(counts)}

    # Overview: rows without samples; the picker and the best-per-device grid run in the page.
    overview = {**common, "page": "overview", "models": models,
                "rows": _rows(answer.rows, False), "devices": _answer_devices(devices, answer),
                "references": references["rows"], "checks": checks}
    index = run_dir / "index.html"
    _write_assets(run_dir)
    _write_text(index, _page(
        f"edge report \u00b7 {run_id}", "overview", _nav(run_id, families, counts, "index"),
        _overview(run_id, run_dir, df, meta, records, devices, families, counts, checks,
                  references, answer), overview,
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

    update_latest(reports_dir)
    return index
