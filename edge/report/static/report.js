/*
 * The edge report pages (edge/report/html.py writes them). Plain script, no dependencies beyond
 * plotly.min.js and picker.js, which sit beside the pages: everything works offline from file://.
 *
 * The page's data is the JSON in <script id="edge-data" type="application/json">. Text from the
 * data reaches the DOM through textContent only, and plotly (which reads a little HTML in its
 * labels) gets it with &, < and > written as entities.
 */
(function () {
  "use strict";

  // -- helpers --------------------------------------------------------------------------------

  function readData() {
    var el = document.getElementById("edge-data");
    if (!el) return null;
    try {
      return JSON.parse(el.textContent);
    } catch (err) {
      console.error("edge report: unreadable page data", err);
      return null;
    }
  }

  /** h("td", {className: "num", title: t}, [child | "text", ...]) */
  function h(tag, props, children) {
    var el = document.createElement(tag);
    Object.keys(props || {}).forEach(function (key) {
      var v = props[key];
      if (v === null || v === undefined || v === false) return;
      if (key === "className") el.className = v;
      else if (key === "text") el.textContent = v;
      else if (key.slice(0, 2) === "on") el.addEventListener(key.slice(2), v);
      else el.setAttribute(key, v === true ? "" : String(v));
    });
    (children || []).forEach(function (c) {
      if (c === null || c === undefined || c === false) return;
      el.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return el;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  function known(x) {
    return typeof x === "number" && isFinite(x);
  }

  /** Text for plotly labels: it understands a few tags and decodes entities after parsing. */
  function pe(s) {
    return String(s === null || s === undefined ? "" : s)
      .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function fmt(x, unit) {
    if (!known(x)) return "\u2014";
    var t;
    if (Math.abs(x) >= 100) t = x.toFixed(0);
    else if (Math.abs(x) >= 10) t = x.toFixed(1);
    else t = String(Number(x.toPrecision(3)));
    return t + (unit || "");
  }

  function mb(bytes) {
    return known(bytes) ? fmt(bytes / 1e6, " MB") : "\u2014";
  }

  function unique(values) {
    var seen = [];
    values.forEach(function (v) { if (seen.indexOf(v) < 0) seen.push(v); });
    return seen;
  }

  function byKey(rows, key) {
    var out = {};
    rows.forEach(function (r) { (out[r[key]] = out[r[key]] || []).push(r); });
    return out;
  }

  function deviceInfo(data) {
    var out = {};
    (data.devices || []).forEach(function (d) { out[d.id] = d; });
    return out;
  }

  function emuBadge() {
    return h("span", { className: "badge emu", text: "emulated: estimate" });
  }

  function estBadge() {
    return h("span", { className: "badge est", text: "estimated" });
  }

  /** "4.1 ms (3.2–5.3)" for an estimate's p50 and 80 % interval. */
  function estimateText(row) {
    return "p50 " + fmt(row.p50_ms, " ms") + " (" + fmt(row.ci_lo_ms, "") + "\u2013" +
      fmt(row.ci_hi_ms, " ms") + ", " + (row.evidence || "?") + ")";
  }

  function runtimeText(row) {
    return row.runtime + (known(row.threads) ? ", " + row.threads + " thread" +
      (row.threads === 1 ? "" : "s") : "") +
      (row.gpu_software === true ? ", software rendering (host)" : "");
  }

  /** A model's parameters (after the ':'), or the name when it has none. */
  function shortModel(model) {
    var i = String(model).indexOf(":");
    return i < 0 ? String(model) : String(model).slice(i + 1);
  }

  var PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22"];

  function colorFor(list, value) {
    var i = list.indexOf(value);
    return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
  }

  var PLOT_CONFIG = {
    displaylogo: false, responsive: true,
    modeBarButtonsToRemove: ["lasso2d", "select2d", "autoScale2d"],
  };

  function baseLayout(extra) {
    var layout = {
      font: { family: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", size: 12 },
      margin: { l: 60, r: 20, t: 30, b: 50 },
      paper_bgcolor: "#fff", plot_bgcolor: "#fff",
      hovermode: "closest",
      legend: { orientation: "h", y: -0.2 },
    };
    Object.keys(extra || {}).forEach(function (k) { layout[k] = extra[k]; });
    return layout;
  }

  /** A latency axis: log with 1-2-5 ticks labelled in full when the values span more than a
   * factor of 20, linear otherwise (plotly's own log ticks label 0.2 as "2"). */
  function msAxis(values, title, extra) {
    var vs = values.filter(function (v) { return known(v) && v > 0; });
    var axis = { title: { text: title }, automargin: true };
    if (vs.length) {
      var lo = Math.min.apply(null, vs);
      var hi = Math.max.apply(null, vs);
      if (hi / lo > 20) {
        var ticks = [];
        for (var e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
          [1, 2, 5].forEach(function (m) {
            var t = m * Math.pow(10, e);
            if (t >= lo / 1.5 && t <= hi * 1.5) ticks.push(t);
          });
        }
        if (ticks.length > 12) ticks = ticks.filter(function (t) {
          return Math.abs(Math.log10(t) - Math.round(Math.log10(t))) < 1e-9;
        });
        axis.type = "log";
        axis.tickvals = ticks;
        axis.ticktext = ticks.map(function (t) { return String(Number(t.toPrecision(3))); });
      }
    }
    Object.keys(extra || {}).forEach(function (k) { axis[k] = extra[k]; });
    return axis;
  }

  function plotly() {
    return typeof window.Plotly !== "undefined" ? window.Plotly : null;
  }

  function noPlotly(el) {
    el.appendChild(h("p", { className: "muted",
      text: "Charts need plotly.min.js beside the page." }));
  }

  // -- sortable, filterable tables ---------------------------------------------------------------

  function sortValue(cell, numeric) {
    var v = cell ? cell.getAttribute("data-v") : null;
    if (v === null) v = cell ? cell.textContent.trim() : "";
    if (numeric) {
      var n = v === "" ? NaN : Number(v);
      return isFinite(n) ? n : null;
    }
    return v.toLowerCase();
  }

  function makeSortable(table) {
    var headers = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(headers, function (th, index) {
      var button = th.querySelector("button.sort") || th;
      button.addEventListener("click", function () {
        var numeric = th.getAttribute("data-type") === "num";
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(headers, function (other) {
          other.removeAttribute("aria-sort");
        });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var keyed = rows.map(function (row, i) {
          return { row: row, key: sortValue(row.cells[index], numeric), i: i };
        });
        keyed.sort(function (a, b) {
          if (a.key === null && b.key === null) return a.i - b.i;
          if (a.key === null) return 1; // unknown last, either direction
          if (b.key === null) return -1;
          if (a.key === b.key) return a.i - b.i;
          var less = numeric ? a.key < b.key : a.key.localeCompare(b.key) < 0;
          return (less === ascending) ? -1 : 1;
        });
        keyed.forEach(function (k) { body.appendChild(k.row); });
      });
    });
  }

  function makeFilter(input) {
    var table = document.getElementById(input.getAttribute("data-filter-for"));
    if (!table) return;
    var counter = document.getElementById("cell-count");
    function apply() {
      var terms = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      var rows = table.tBodies[0].rows;
      var shown = 0;
      Array.prototype.forEach.call(rows, function (row) {
        var text = row.textContent.toLowerCase();
        var ok = terms.every(function (t) { return text.indexOf(t) >= 0; });
        row.hidden = !ok;
        if (ok) shown += 1;
      });
      if (counter) counter.textContent = shown + " of " + rows.length + " cells.";
    }
    input.addEventListener("input", apply);
    apply();
  }

  // -- overview: the picker ----------------------------------------------------------------------

  var BUDGET_INPUTS = { maxP90Ms: "pick-p90", maxSizeMb: "pick-size", maxMemoryMb: "pick-memory",
    minFidelity: "pick-fidelity", maxColdMs: "pick-cold" };
  var BUDGET_WORDS = { maxP90Ms: "max p90", maxSizeMb: "max size", maxMemoryMb: "max memory",
    minFidelity: "min fidelity", maxColdMs: "max cold start", accuracyPass: "accuracy verdict" };

  function figures(row) {
    var cold = window.edgePicker ? window.edgePicker.coldMs(row) : null;
    var tail = (known(cold) ? " \u00b7 cold start " + fmt(cold, " ms") : "") +
      (row.accuracy_verdict ? " \u00b7 accuracy " + row.accuracy_verdict : "");
    if (row.estimated === true) {
      return "estimated " + estimateText(row) + " \u00b7 p90 " + fmt(row.p90_ms, " ms") +
        " \u00b7 " + fmt(row.size_mb, " MB") + " gzip \u00b7 fidelity " +
        (known(row.fidelity) ? row.fidelity.toFixed(3) : "unknown") + tail;
    }
    return tail.length ? figures0(row) + tail : figures0(row);
  }

  function figures0(row) {
    return "p50 " + fmt(row.p50_ms, " ms") + " \u00b7 p90 " +
      (known(row.p90_ms) ? fmt(row.p90_ms, " ms") : "\u2014 (too few runs)") + " \u00b7 " +
      fmt(row.size_mb, " MB") + " gzip \u00b7 memory " + fmt(row.memory_mb, " MB") +
      (row.memory_metric && known(row.memory_mb) ? " (" + row.memory_metric + ")" : "") +
      " \u00b7 fidelity " + (known(row.fidelity) ? row.fidelity.toFixed(3) : "unknown");
  }

  function notesList(result) {
    if (!result.notes || !result.notes.length) return null;
    return h("ul", { className: "notes", id: "pick-notes" }, result.notes.map(function (n) {
      return h("li", { text: n });
    }));
  }

  function renderPick(out, result, devices) {
    clear(out);
    var dev = devices[result.device] || {};
    if (result.best) {
      var b = result.best;
      out.appendChild(h("p", { className: "recommend", id: "pick-best",
        "data-cell": b.cell_id }, [
        "Recommended: ", h("strong", { text: b.variant }), " on ",
        h("strong", { text: runtimeText(b) }),
        " \u2014 " + (b.model || ""), dev.emulated ? " " : "", dev.emulated ? emuBadge() : null,
        b.estimated === true ? " " : "", b.estimated === true ? estBadge() : null,
      ]));
      out.appendChild(h("p", { className: "figures", text: figures(b) }));
      out.appendChild(h("p", { className: "why" }, [h("b", { text: "Why: " }), result.why]));
      var notes = notesList(result);
      if (notes) out.appendChild(notes);
      if (result.settle) {
        out.appendChild(h("p", { className: "sub", id: "pick-settle" }, [
          h("b", { text: "To settle it: " }), result.settle]));
      }
      if (result.tied && result.tied.length) {
        out.appendChild(h("p", { className: "sub",
          text: b.estimated === true ? "Tied (each estimate inside the other's interval: " +
            "not resolvable without the device):" : "Tied within noise (the measurements cannot tell them " +
            "apart):" }));
        out.appendChild(h("ul", { className: "tied", id: "pick-tied" },
          result.tied.map(function (r) {
            return h("li", {}, [h("b", { text: r.variant + " (" + runtimeText(r) + ")" }),
              ": " + figures(r)]);
          })));
      }
      if (result.runnersUp && result.runnersUp.length) {
        out.appendChild(h("p", { className: "sub", text: "Runners-up:" }));
        out.appendChild(h("ol", { className: "runners", start: 2 },
          result.runnersUp.map(function (r) {
            return h("li", {}, [h("b", { text: r.variant + " (" + runtimeText(r) + ")" }),
              ": " + figures(r)]);
          })));
      }
    } else {
      out.appendChild(h("p", { className: "verdict", id: "pick-verdict" }, [
        h("b", { text: "Nothing fits: " }), result.verdict]));
      if (result.why && result.why !== result.verdict) {
        out.appendChild(h("p", { className: "why", text: result.why }));
      }
      var none = notesList(result);
      if (none) out.appendChild(none);
    }
    var excluded = Object.keys(result.excludedBy || {}).filter(function (k) {
      return result.excludedBy[k] > 0;
    });
    if (excluded.length) {
      out.appendChild(h("p", { className: "muted", text: "Of " + result.candidates +
        " successful cells, excluded: " + excluded.map(function (k) {
          return result.excludedBy[k] + " by " + BUDGET_WORDS[k];
        }).join(", ") + " (a cell can miss several budgets)." }));
    }
  }

  function initPicker(data) {
    var picker = window.edgePicker;
    var out = document.getElementById("pick-result");
    if (!out) return;
    if (!picker) {
      out.textContent = "picker.js did not load: no recommendation.";
      return;
    }
    var devices = deviceInfo(data);
    var modelSel = document.getElementById("pick-model");
    var deviceSel = document.getElementById("pick-device");
    (data.models || []).forEach(function (m) {
      modelSel.appendChild(h("option", { value: m, text: m }));
    });
    (data.devices || []).forEach(function (d) {
      deviceSel.appendChild(h("option", { value: d.id,
        text: d.id + " \u2014 " + d.label + (d.emulated ? " (emulated)" : "") +
          (d.estimated ? " (estimated)" : "") }));
    });
    function setDefaults() {
      Object.keys(BUDGET_INPUTS).forEach(function (k) {
        var v = picker.DEFAULT_BUDGETS[k];
        document.getElementById(BUDGET_INPUTS[k]).value = v === null || v === undefined ? "" : v;
      });
      document.getElementById("pick-accuracy").checked = picker.DEFAULT_BUDGETS.accuracyPass;
    }
    function update() {
      var options = { device: deviceSel.value, model: modelSel.value || null,
        references: data.references || [] };
      Object.keys(BUDGET_INPUTS).forEach(function (k) {
        var raw = document.getElementById(BUDGET_INPUTS[k]).value.trim();
        var n = raw === "" ? null : Number(raw);
        options[k] = n === null || isFinite(n) ? n : null;
      });
      options.accuracyPass = document.getElementById("pick-accuracy").checked ? true : null;
      var result;
      try {
        result = picker.pick(data.rows, options);
      } catch (err) {
        clear(out);
        out.appendChild(h("p", { className: "verdict", text: String(err.message || err) }));
        return;
      }
      renderPick(out, result, devices);
    }
    setDefaults();
    document.getElementById("pick-form").addEventListener("input", update);
    document.getElementById("pick-form").addEventListener("change", update);
    document.getElementById("pick-reset").addEventListener("click", function () {
      setDefaults();
      update();
    });
    update();
  }

  function initBestGrid(data) {
    var picker = window.edgePicker;
    var host = document.getElementById("best-grid");
    if (!host || !picker) return;
    var budgets = picker.DEFAULT_BUDGETS;
    var words = Object.keys(BUDGET_WORDS).filter(function (k) {
      return budgets[k] !== null && budgets[k] !== undefined;
    }).map(function (k) {
      if (k === "accuracyPass") return "accuracy verdict must pass";
      return BUDGET_WORDS[k] + " " + budgets[k] + ({ maxP90Ms: " ms", maxSizeMb: " MB",
        maxMemoryMb: " MB", maxColdMs: " ms" }[k] || "");
    });
    document.getElementById("best-budgets").textContent = "Under the picker's default " +
      "budgets (" + words.join(", ") + "): the fastest cell (by p90) that fits, per model " +
      "and device profile. Hover a cell for the reason.";
    var devices = data.devices || [];
    var head = h("tr", {}, [h("th", { text: "Model" })].concat(devices.map(function (d) {
      return h("th", { title: d.label }, [d.id, d.emulated || d.estimated ? h("br") : null,
        d.emulated ? emuBadge() : null, d.estimated ? estBadge() : null]);
    })));
    var body = (data.models || []).map(function (model) {
      var results = picker.bestPerDevice(data.rows, Object.assign({}, budgets,
        { model: model, references: data.references || [] }));
      var byDevice = {};
      results.forEach(function (r) { byDevice[r.device] = r; });
      var page = null;
      var first = data.rows.filter(function (r) { return r.model === model; })[0];
      if (first && data.families) page = data.families[first.family];
      var name = page ? h("a", { href: page, text: model }) : document.createTextNode(model);
      return h("tr", {}, [h("th", { scope: "row", className: "model" }, [name])]
        .concat(devices.map(function (d) {
          var r = byDevice[d.id];
          if (!r) return h("td", { className: "none", text: "\u2014" });
          if (!r.best) {
            var none = r.candidates === 0 ? "not measured" : "nothing fits";
            return h("td", { className: "none", title: r.verdict }, [none,
              r.binding ? h("br") : null,
              r.binding ? h("small", { text: BUDGET_WORDS[r.binding] }) : null]);
          }
          var title = [r.why].concat(r.notes || []).concat(r.settle ? [r.settle] : [])
            .join("\n");
          var est = r.best.estimated === true;
          var what = est ? estimateText(r.best) : (known(r.best.p90_ms)
            ? "p90 " + fmt(r.best.p90_ms, " ms") : "p50 " + fmt(r.best.p50_ms, " ms"));
          var tie = r.tied && r.tied.length ? (est ? " \u00b7 tie with " + r.tied.length +
            ": not resolvable without the device" : " \u00b7 tied with " + r.tied.length) : "";
          return h("td", { className: "best", title: title, "data-cell": r.best.cell_id }, [
            h("b", { text: r.best.variant }), h("br"),
            h("small", { text: runtimeText(r.best) + " \u00b7 " + what + tie +
              (known(picker.coldMs(r.best)) ? " \u00b7 cold start " +
                fmt(picker.coldMs(r.best), " ms") : "") }),
          ]);
        })));
    });
    clear(host);
    host.appendChild(h("table", { className: "plain best", id: "best-table" }, [
      h("thead", {}, [head]), h("tbody", {}, body)]));
  }

  function initHeatmaps(data) {
    var host = document.getElementById("heatmaps");
    if (!host) return;
    var P = plotly();
    if (!P) return noPlotly(host);
    var rows = data.rows || [];
    var devices = deviceInfo(data);
    var deviceOrder = (data.devices || []).map(function (d) { return d.id; });
    var manyModels = unique(rows.map(function (r) { return r.model; })).length > 1;
    var runtimes = unique(rows.map(function (r) { return r.runtime; }));
    runtimes.forEach(function (runtime) {
      var rs = rows.filter(function (r) { return r.runtime === runtime; });
      var xs = deviceOrder.filter(function (d) {
        return rs.some(function (r) { return r.device === d; });
      });
      var yKey = function (r) {
        return (manyModels ? r.model + " \u00b7 " : "") + r.variant +
          (known(r.threads) && runtime.indexOf("tfjs") < 0 && runtime !== "tflite-web" && runtime.indexOf("litertjs") < 0 && runtime !== "ort-wasm"
            ? " \u00b7 " + r.threads + "t" : "");
      };
      var ys = unique(rs.map(yKey)).sort();
      var z = ys.map(function () { return xs.map(function () { return null; }); });
      var text = ys.map(function () { return xs.map(function () { return ""; }); });
      var hover = ys.map(function (y) {
        return xs.map(function (x) { return pe(y) + "<br>" + pe(x) + ": not measured"; });
      });
      var values = [];
      rs.forEach(function (r) {
        var yi = ys.indexOf(yKey(r));
        var xi = xs.indexOf(r.device);
        var emu = devices[r.device] && devices[r.device].emulated ? " (emulated estimate)" : "";
        if (r.status === "ok" && known(r.p50_ms) && r.p50_ms > 0) {
          z[yi][xi] = Math.log10(r.p50_ms);
          values.push(r.p50_ms);
          text[yi][xi] = fmt(r.p50_ms) + (r.wide ? "~" : "");
          hover[yi][xi] = pe(r.model) + "<br>" + pe(r.variant) + " \u00b7 " + pe(runtimeText(r)) +
            "<br>" + pe(r.device) + pe(emu) + "<br>p50 " + fmt(r.p50_ms, " ms") + ", p90 " +
            fmt(r.p90_ms, " ms") + (r.wide ? " (wide)" : "");
        } else {
          text[yi][xi] = r.status === "ok" ? "" : "\u00d7 " + pe(r.status);
          hover[yi][xi] = pe(r.model) + "<br>" + pe(r.variant) + " \u00b7 " + pe(r.device) +
            "<br>" + pe(r.status) + (r.error ? ": " + pe(String(r.error).split("\n")[0]
              .slice(0, 120)) : "");
        }
      });
      var lo = values.length ? Math.floor(Math.log10(Math.min.apply(null, values))) : 0;
      var hi = values.length ? Math.ceil(Math.log10(Math.max.apply(null, values))) : 1;
      if (hi === lo) hi = lo + 1;
      var ticks = [];
      for (var e = lo; e <= hi; e++) ticks.push(e);
      var div = h("div", { className: "plot heat", "data-runtime": runtime });
      host.appendChild(h("h3", { text: runtime }));
      host.appendChild(div);
      P.newPlot(div, [{
        type: "heatmap", x: xs.map(pe), y: ys.map(pe), z: z, text: text, customdata: hover,
        texttemplate: "%{text}", hovertemplate: "%{customdata}<extra></extra>",
        colorscale: "YlOrRd", reversescale: true, zmin: lo, zmax: hi, xgap: 2, ygap: 2,
        hoverongaps: false,
        colorbar: { title: { text: "p50" }, tickvals: ticks, ticktext: ticks.map(function (t) {
          return fmt(Math.pow(10, t), " ms");
        }) },
      }], baseLayout({
        height: Math.max(180, 90 + 28 * ys.length),
        margin: { l: 10, r: 10, t: 10, b: 40 },
        xaxis: { automargin: true, side: "bottom", type: "category" },
        yaxis: { automargin: true, autorange: "reversed", type: "category" },
      }), PLOT_CONFIG);
    });
  }

  // -- model pages ------------------------------------------------------------------------------

  function cellName(r, manyModels) {
    return (manyModels ? shortModel(r.model) + " \u00b7 " : "") + r.variant +
      (known(r.threads) && r.runtime.indexOf("tfjs") < 0 && r.runtime !== "tflite-web" && r.runtime.indexOf("litertjs") < 0 && r.runtime !== "ort-wasm"
        ? " \u00b7 " + r.threads + "t" : "") + " @ " + r.device + (r.emulated ? "*" : "");
  }

  function initBoxes(data) {
    var host = document.getElementById("boxes");
    if (!host) return;
    var P = plotly();
    if (!P) return noPlotly(host);
    var rows = (data.rows || []).filter(function (r) {
      return r.samples && r.samples.length;
    });
    if (!rows.length) {
      host.appendChild(h("p", { className: "muted", text: "No timed runs." }));
      return;
    }
    var manyModels = unique(rows.map(function (r) { return r.model; })).length > 1;
    var deviceOrder = (data.devices || []).map(function (d) { return d.id; });
    var runtimes = unique(rows.map(function (r) { return r.runtime; }));
    runtimes.forEach(function (runtime) {
      var rs = rows.filter(function (r) { return r.runtime === runtime; });
      rs.sort(function (a, b) {
        return deviceOrder.indexOf(a.device) - deviceOrder.indexOf(b.device) ||
          String(a.model).localeCompare(String(b.model)) ||
          String(a.variant).localeCompare(String(b.variant)) ||
          (a.threads || 0) - (b.threads || 0);
      });
      var div = h("div", { className: "plot box", "data-runtime": runtime });
      host.appendChild(h("h3", { text: runtime }));
      host.appendChild(div);
      var traces = rs.map(function (r) {
        var name = cellName(r, manyModels);
        var color = colorFor(deviceOrder, r.device);
        return {
          type: "box", y: r.samples, name: pe(name), boxpoints: "outliers",
          marker: { color: color, size: 4 }, line: { width: 1.5, color: color },
          hovertemplate: pe(r.model) + "<br>" + pe(name) + (r.emulated ? " (emulated estimate)"
            : "") + "<br>%{y:.3~g} ms<extra></extra>",
        };
      });
      var all = [];
      rs.forEach(function (r) { all = all.concat(r.samples); });
      P.newPlot(div, traces, baseLayout({
        height: 340, showlegend: false,
        margin: { l: 60, r: 20, t: 10, b: 10 },
        yaxis: msAxis(all, "warm latency (ms)"),
        xaxis: { automargin: true, tickangle: -30 },
      }), PLOT_CONFIG);
    });
    if (rows.some(function (r) { return r.emulated; })) {
      host.appendChild(h("p", { className: "muted",
        text: "* emulated phone profile: an estimate." }));
    }
  }

  function paretoFront(points) {
    var sorted = points.slice().sort(function (a, b) {
      return a.p50_ms - b.p50_ms || b.fidelity - a.fidelity;
    });
    var front = [];
    var best = -Infinity;
    sorted.forEach(function (p) {
      if (p.fidelity > best) {
        front.push(p);
        best = p.fidelity;
      }
    });
    return front;
  }

  /** Fidelity figures lie in [0, 1]: pad the range, never past a little above 1. */
  function fidelityAxis(values) {
    var axis = { title: { text: "fidelity (headline figure)" } };
    if (values.length) {
      var lo = Math.min.apply(null, values);
      var hi = Math.max.apply(null, values);
      var pad = Math.max(0.02, (hi - lo) * 0.08);
      axis.range = [lo - pad, Math.max(hi + pad, Math.min(hi, 1) + 0.02)];
    }
    return axis;
  }

  function initPareto(data) {
    var host = document.getElementById("pareto");
    var select = document.getElementById("pareto-device");
    if (!host) return;
    var P = plotly();
    if (!P) return noPlotly(host);
    var all = (data.rows || []).filter(function (r) {
      return r.status === "ok" && known(r.p50_ms) && r.p50_ms > 0;
    });
    var manyModels = unique(all.map(function (r) { return r.model; })).length > 1;
    var runtimes = unique((data.rows || []).map(function (r) { return r.runtime; }));
    var devices = (data.devices || []).filter(function (d) {
      return all.some(function (r) { return r.device === d.id && known(r.fidelity); });
    });
    var maxGzip = Math.max.apply(null, all.map(function (r) {
      return known(r.gzip_bytes) ? r.gzip_bytes : 0;
    }).concat([1]));
    devices.forEach(function (d) {
      select.appendChild(h("option", { value: d.id,
        text: d.id + (d.emulated ? " (emulated)" : "") }));
    });
    select.appendChild(h("option", { value: "", text: "all devices" }));
    var note = h("p", { className: "muted" });
    host.parentNode.appendChild(note);
    function draw() {
      var device = select.value;
      var rs = all.filter(function (r) { return !device || r.device === device; });
      var withFid = rs.filter(function (r) { return known(r.fidelity); });
      var traces = runtimes.map(function (runtime) {
        var pts = withFid.filter(function (r) { return r.runtime === runtime; });
        return {
          type: "scatter", mode: "markers", name: pe(runtime),
          x: pts.map(function (r) { return r.p50_ms; }),
          y: pts.map(function (r) { return r.fidelity; }),
          text: pts.map(function (r) {
            return pe(cellName(r, manyModels)) + "<br>" + pe(runtimeText(r)) + "<br>p50 " +
              fmt(r.p50_ms, " ms") + ", fidelity " + r.fidelity.toFixed(3) + "<br>gzip " +
              mb(r.gzip_bytes) + (r.emulated ? "<br>emulated estimate" : "");
          }),
          hovertemplate: "%{text}<extra></extra>",
          marker: {
            color: colorFor(runtimes, runtime), opacity: 0.75, line: { width: 1, color: "#333" },
            size: pts.map(function (r) {
              return 8 + 30 * Math.sqrt((known(r.gzip_bytes) ? r.gzip_bytes : 0) / maxGzip);
            }),
          },
        };
      }).filter(function (t) { return t.x.length; });
      if (device && withFid.length) {
        var front = paretoFront(withFid);
        traces.push({
          type: "scatter", mode: "lines", name: "Pareto front", hoverinfo: "skip",
          x: front.map(function (r) { return r.p50_ms; }),
          y: front.map(function (r) { return r.fidelity; }),
          line: { color: "#444", dash: "dot", width: 1.5, shape: "hv" },
        });
      }
      P.react(host, traces, baseLayout({
        height: 420,
        xaxis: msAxis(withFid.map(function (r) { return r.p50_ms; }), "warm p50 (ms)"),
        yaxis: fidelityAxis(withFid.map(function (r) { return r.fidelity; })),
      }), PLOT_CONFIG);
      var missing = rs.length - withFid.length;
      note.textContent = missing ? missing + " measured cell(s) without a fidelity figure are " +
        "not drawn." : "";
    }
    select.addEventListener("change", draw);
    draw();
  }

  function initColdWarm(data) {
    var host = document.getElementById("coldwarm");
    if (!host) return;
    var P = plotly();
    if (!P) return noPlotly(host);
    var rs = (data.rows || []).filter(function (r) {
      return r.status === "ok" && known(r.p50_ms) && known(r.first_ms) && r.p50_ms > 0 &&
        r.first_ms > 0;
    });
    var manyModels = unique(rs.map(function (r) { return r.model; })).length > 1;
    var runtimes = unique((data.rows || []).map(function (r) { return r.runtime; }));
    var traces = runtimes.map(function (runtime) {
      var pts = rs.filter(function (r) { return r.runtime === runtime; });
      return {
        type: "scatter", mode: "markers", name: pe(runtime),
        x: pts.map(function (r) { return r.p50_ms; }),
        y: pts.map(function (r) { return r.first_ms; }),
        text: pts.map(function (r) {
          return pe(cellName(r, manyModels)) + "<br>" + pe(runtimeText(r)) + "<br>cold " +
            fmt(r.first_ms, " ms") + ", warm p50 " + fmt(r.p50_ms, " ms") +
            (r.emulated ? "<br>emulated estimate" : "");
        }),
        hovertemplate: "%{text}<extra></extra>",
        marker: { color: colorFor(runtimes, runtime), size: 10, opacity: 0.8,
          symbol: pts.map(function (r) { return r.emulated ? "diamond" : "circle"; }),
          line: { width: 1, color: "#333" } },
      };
    }).filter(function (t) { return t.x.length; });
    var both = rs.map(function (r) { return r.p50_ms; }).concat(rs.map(function (r) {
      return r.first_ms;
    }));
    if (rs.length) {
      var lo = Math.min.apply(null, both);
      var hi = Math.max.apply(null, both);
      traces.push({ type: "scatter", mode: "lines", name: "cold = warm", hoverinfo: "skip",
        x: [lo, hi], y: [lo, hi], line: { color: "#888", dash: "dash", width: 1 } });
    }
    P.newPlot(host, traces, baseLayout({
      height: 420,
      xaxis: msAxis(both, "warm p50 (ms)"),
      yaxis: msAxis(both, "cold: first inference (ms)"),
      annotations: [{ text: "\u25c6 emulated profile", xref: "paper", yref: "paper", x: 1,
        y: 1.06, showarrow: false, xanchor: "right", font: { size: 11, color: "#666" } }],
    }), PLOT_CONFIG);
  }

  // -- start ------------------------------------------------------------------------------------

  function start() {
    var data = readData() || {};
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), makeSortable);
    Array.prototype.forEach.call(document.querySelectorAll("input[data-filter-for]"), makeFilter);
    var page = document.body.getAttribute("data-page");
    var steps = page === "overview" ? [initPicker, initBestGrid, initHeatmaps]
      : page === "model" ? [initBoxes, initPareto, initColdWarm] : [];
    steps.forEach(function (step) {
      try {
        step(data);
      } catch (err) {
        console.error("edge report: " + step.name + " failed", err);
      }
    });
    document.body.setAttribute("data-ready", "1");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
