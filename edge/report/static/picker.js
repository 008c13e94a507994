/*
 * edgePicker: which variant to ship on a device, under budgets. The ONE implementation of the
 * ranking rules, used by the report page (a <script> tag: sets window.edgePicker) and by
 * `edge pick` (Node, through pick_cli.mjs: sets globalThis.edgePicker). Plain script, no module
 * syntax, no dependencies.
 *
 * Rows are the tidy table's rows as plain objects (edge/report/table.py: device, model, variant,
 * runtime, threads, status, p90_ms, gzip_bytes, size_mb, memory_mb, fidelity, task, ...), with
 * unknown figures as null (or NaN).
 *
 * Rules:
 *  - candidates: the rows of the device (and of the model, when options.model is given: an
 *    exact model name or a family) whose status is "ok";
 *  - a budget left null/undefined/"" is not applied; p90, size and memory budgets are maxima,
 *    the fidelity budget a minimum, all inclusive (p90 <= max passes);
 *  - an unknown figure fails a budget that is set on it (unknown memory passes only when no
 *    memory budget is set; unknown fidelity fails a min fidelity);
 *  - among the candidates within every budget: p90 ascending, then gzip size ascending, then
 *    fidelity descending, then variant, runtime, threads, cell id (deterministic);
 *  - when nothing fits, the verdict names the binding budget: the one that, if it alone were
 *    dropped, would admit the most candidates (ties: the one that excludes more, then the order
 *    p90, size, memory, fidelity).
 */
(function (root) {
  "use strict";

  var DEFAULT_BUDGETS = Object.freeze({
    maxP90Ms: 200, maxSizeMb: 10, maxMemoryMb: null, minFidelity: 0.9,
  });

  /** Budget keys, in the order ties are broken. */
  var BUDGET_KEYS = ["maxP90Ms", "maxSizeMb", "maxMemoryMb", "minFidelity"];

  /** The headline fidelity figure per task (mirrors HEADLINE_METRIC in edge/garden/base.py). */
  var HEADLINE_METRIC = Object.freeze({
    classification: "top1_agreement",
    segmentation: "mean_iou",
    text_detection: "kernel_iou",
  });

  var LABELS = {
    maxP90Ms: "max p90", maxSizeMb: "max size", maxMemoryMb: "max memory",
    minFidelity: "min fidelity",
  };
  var UNITS = { maxP90Ms: " ms", maxSizeMb: " MB", maxMemoryMb: " MB", minFidelity: "" };

  function known(x) {
    return typeof x === "number" && isFinite(x);
  }

  function isUnset(b) {
    return b === null || b === undefined || b === "" || (typeof b === "number" && isNaN(b));
  }

  /** {maxP90Ms, maxSizeMb, maxMemoryMb, minFidelity} as numbers or null (not applied). */
  function normalizeBudgets(options) {
    var out = {};
    options = options || {};
    BUDGET_KEYS.forEach(function (key) {
      var b = options[key];
      if (isUnset(b)) {
        out[key] = null;
        return;
      }
      var n = typeof b === "number" ? b : Number(b);
      if (typeof b === "boolean" || !isFinite(n)) {
        throw new Error("budget " + key + " must be a number or null, got " + JSON.stringify(b));
      }
      out[key] = n;
    });
    return out;
  }

  // -- figures of a row --

  function p90(row) { return known(row.p90_ms) ? row.p90_ms : null; }

  function sizeMb(row) {
    if (known(row.size_mb)) return row.size_mb;
    return known(row.gzip_bytes) ? row.gzip_bytes / 1e6 : null;
  }

  function gzipBytes(row) {
    if (known(row.gzip_bytes)) return row.gzip_bytes;
    return known(row.size_mb) ? row.size_mb * 1e6 : null;
  }

  function memoryMb(row) { return known(row.memory_mb) ? row.memory_mb : null; }

  function fidelity(row) { return known(row.fidelity) ? row.fidelity : null; }

  function fidelityName(row) { return HEADLINE_METRIC[row.task] || "fidelity"; }

  var VALUE = { maxP90Ms: p90, maxSizeMb: sizeMb, maxMemoryMb: memoryMb, minFidelity: fidelity };

  /** The budget keys a row misses (an unknown figure misses a budget set on it). */
  function failures(row, budgets) {
    var b = normalizeBudgets(budgets);
    return BUDGET_KEYS.filter(function (key) {
      if (b[key] === null) return false;
      var v = VALUE[key](row);
      if (v === null) return true;
      return key === "minFidelity" ? v < b[key] : v > b[key];
    });
  }

  // -- ranking --

  function cmpNum(a, b, descending) {
    if (a === null && b === null) return 0;
    if (a === null) return 1; // unknown last either way
    if (b === null) return -1;
    if (a === b) return 0;
    return (a < b) !== Boolean(descending) ? -1 : 1;
  }

  function cmpText(a, b) {
    a = a === null || a === undefined ? "" : String(a);
    b = b === null || b === undefined ? "" : String(b);
    return a < b ? -1 : a > b ? 1 : 0;
  }

  /** The ranking order: p90 asc, gzip size asc, fidelity desc, variant, runtime, threads, id. */
  function compareRows(a, b) {
    return cmpNum(p90(a), p90(b)) ||
      cmpNum(gzipBytes(a), gzipBytes(b)) ||
      cmpNum(fidelity(a), fidelity(b), true) ||
      cmpText(a.variant, b.variant) ||
      cmpText(a.runtime, b.runtime) ||
      cmpNum(known(a.threads) ? a.threads : null, known(b.threads) ? b.threads : null) ||
      cmpText(a.cell_id, b.cell_id);
  }

  // -- words --

  function fmtNum(x) {
    if (!known(x)) return "?";
    if (Math.abs(x) >= 100) return x.toFixed(0);
    return String(Number(x.toPrecision(3)));
  }

  function fmtBudget(key, value) {
    return LABELS[key] + " " + String(value) + UNITS[key];
  }

  function fmtFidelity(row) {
    var f = fidelity(row);
    return fidelityName(row) + " " + (f === null ? "unknown" : f.toFixed(3));
  }

  function fmtFigure(key, row) {
    if (key === "maxP90Ms") {
      return p90(row) === null ? "p90 unknown" : "p90 " + fmtNum(p90(row)) + " ms";
    }
    if (key === "maxSizeMb") {
      return sizeMb(row) === null ? "size unknown" : fmtNum(sizeMb(row)) + " MB gzip";
    }
    if (key === "maxMemoryMb") {
      return "memory " + (memoryMb(row) === null ? "unknown" : fmtNum(memoryMb(row)) + " MB");
    }
    return fmtFidelity(row);
  }

  function label(row, withModel) {
    var where = row.runtime + (known(row.threads) ? ", " + row.threads + " threads" : "");
    return (withModel ? row.model + " " : "") + row.variant + " (" + where + ")";
  }

  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  /** The row nearest to passing a budget, and how to say it ("fastest on X: 212 ms" when the
   *  rows are all the candidates, "fastest of those: ..." when only the ones that miss it). */
  function nearest(key, candidates, device, all) {
    var best = null;
    candidates.forEach(function (row) {
      var v = VALUE[key](row);
      if (v === null) return;
      if (best === null || (key === "minFidelity" ? v > best.v : v < best.v)) {
        best = { v: v, row: row };
      }
    });
    var on = all ? " on " + device : " of those";
    if (best === null) {
      var what = { maxP90Ms: "p90", maxSizeMb: "size", maxMemoryMb: "memory",
        minFidelity: "fidelity figure" }[key];
      return (all ? "no candidate on " + device : "none of those") + " has a known " + what;
    }
    if (key === "maxP90Ms") return "fastest" + on + ": " + fmtNum(best.v) + " ms";
    if (key === "maxSizeMb") return "smallest" + on + ": " + fmtNum(best.v) + " MB";
    if (key === "maxMemoryMb") return "least" + on + ": " + fmtNum(best.v) + " MB";
    return "best" + on + ": " + fmtFidelity(best.row);
  }

  function missVerb(key, all) {
    if (key === "minFidelity") return all ? "is below" : "are below";
    return all ? "exceeds" : "exceed";
  }

  // -- the pick --

  function sameModel(row, model) {
    return row.model === model || row.family === model;
  }

  /**
   * pick(rows, {device, model?, maxP90Ms, maxSizeMb, maxMemoryMb, minFidelity}) ->
   * {device, model, budgets, best, why, runnersUp, excludedBy, candidates, fitting, binding,
   *  verdict}
   */
  function pick(rows, options) {
    options = options || {};
    var device = options.device;
    var model = isUnset(options.model) ? null : options.model;
    var budgets = normalizeBudgets(options);
    var applied = BUDGET_KEYS.filter(function (k) { return budgets[k] !== null; });
    var result = {
      device: device, model: model, budgets: budgets, best: null, why: "", runnersUp: [],
      excludedBy: {}, candidates: 0, fitting: 0, binding: null, verdict: "",
    };
    applied.forEach(function (k) { result.excludedBy[k] = 0; });

    var forDevice = (rows || []).filter(function (r) {
      return r.device === device && (model === null || sameModel(r, model));
    });
    var scope = device + (model === null ? "" : " for " + model);
    if (!forDevice.length) {
      result.why = result.verdict = "no measurements on " + scope;
      return result;
    }
    var candidates = forDevice.filter(function (r) { return r.status === "ok"; });
    result.candidates = candidates.length;
    if (!candidates.length) {
      var counts = {};
      forDevice.forEach(function (r) { counts[r.status] = (counts[r.status] || 0) + 1; });
      var parts = Object.keys(counts).sort().map(function (s) { return counts[s] + " " + s; });
      result.why = result.verdict = "no successful measurement on " + scope + " (" +
        parts.join(", ") + ")";
      return result;
    }

    var missed = candidates.map(function (r) { return failures(r, budgets); });
    var fits = [];
    candidates.forEach(function (r, i) {
      missed[i].forEach(function (k) { result.excludedBy[k] += 1; });
      if (!missed[i].length) fits.push(r);
    });
    fits.sort(compareRows);
    result.fitting = fits.length;
    var manyModels = candidates.some(function (r) { return r.model !== candidates[0].model; });

    if (fits.length) {
      var best = fits[0];
      result.best = best;
      result.runnersUp = fits.slice(1, 4);
      var figures = BUDGET_KEYS.map(function (k) {
        if (k === "maxMemoryMb" && budgets[k] === null && memoryMb(best) === null) return null;
        return fmtFigure(k, best) + " (" +
          (budgets[k] === null ? "no budget" : fmtBudget(k, budgets[k])) + ")";
      }).filter(Boolean);
      result.why = label(best, manyModels) + " is the fastest of " +
        plural(fits.length, "candidate") + " within budget on " + scope + ": " +
        figures.join(", ");
      result.verdict = "pick " + label(best, manyModels) + " on " + scope;
      return result;
    }

    // Nothing fits: which budget rules everything out?
    var binding = null;
    var score = null;
    applied.forEach(function (k) {
      var admitted = missed.filter(function (m) { return m.length === 1 && m[0] === k; }).length;
      var s = [admitted, result.excludedBy[k]];
      if (score === null || s[0] > score[0] || (s[0] === score[0] && s[1] > score[1])) {
        binding = k;
        score = s;
      }
    });
    result.binding = binding;
    var n = candidates.length;
    var failing = result.excludedBy[binding];
    var admitted = score[0];
    var all = failing === n;
    var clause = (all ? "every candidate" : failing + " of " + n + " candidates") + " " +
      missVerb(binding, all) + " " + fmtBudget(binding, budgets[binding]) + " (" +
      nearest(binding, candidates.filter(function (r, i) {
        return missed[i].indexOf(binding) >= 0;
      }), device, all) + ")";
    if (!all) clause += " and the others miss other budgets";
    if (admitted === 0) {
      clause += "; no single budget change is enough";
    } else if (admitted < n) {
      clause += "; without it " + admitted + " would fit";
    }
    result.verdict = clause;
    result.why = "none of " + plural(n, "candidate") + " on " + scope + " fits: " +
      applied.map(function (k) {
        return fmtBudget(k, budgets[k]) + " excludes " + result.excludedBy[k];
      }).join(", ");
    return result;
  }

  /** The devices of the rows, in order of first appearance. */
  function devices(rows) {
    var seen = [];
    (rows || []).forEach(function (r) {
      if (seen.indexOf(r.device) < 0) seen.push(r.device);
    });
    return seen;
  }

  /** pick() for every device of the rows, under the same budgets (and model, if given). */
  function bestPerDevice(rows, budgets) {
    return devices(rows).map(function (device) {
      return pick(rows, Object.assign({}, budgets || {}, { device: device }));
    });
  }

  var api = {
    DEFAULT_BUDGETS: DEFAULT_BUDGETS,
    BUDGET_KEYS: BUDGET_KEYS,
    HEADLINE_METRIC: HEADLINE_METRIC,
    normalizeBudgets: normalizeBudgets,
    failures: failures,
    compareRows: compareRows,
    pick: pick,
    bestPerDevice: bestPerDevice,
    devices: devices,
  };
  root.edgePicker = api;
  if (typeof window !== "undefined") window.edgePicker = api;
})(typeof globalThis !== "undefined" ? globalThis : typeof window !== "undefined" ? window : this);
