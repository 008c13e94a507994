/*
 * edgePicker: which variant to ship on a device, under budgets. The ONE implementation of the
 * ranking rules, used by the report page (a <script> tag: sets window.edgePicker) and by
 * `edge pick` (Node, through pick_cli.mjs: sets globalThis.edgePicker). Plain script, no module
 * syntax, no dependencies.
 *
 * Rows are the tidy table's rows as plain objects (edge/report/table.py: device, model, variant,
 * runtime, threads, status, p50_ms, p90_ms, gzip_bytes, size_mb, memory_mb, memory_metric,
 * fidelity, task, emulated, emulation_method, target_slowdown, achieved_slowdown, off_target,
 * tie_group, gpu_software, ...), with unknown figures as null (or NaN).
 *
 * Rules:
 *  - candidates: the rows of the device (and of the model, when options.model is given: an
 *    exact model name or a family) whose status is "ok", except GPU runtimes (tfjs-webgl,
 *    tfjs-webgpu) on an emulated device: there the GPU is the host's, never the phone's, so
 *    they are never recommended (result.gpuExcluded counts them);
 *  - the latency figure is p90; a cell with too few runs for a p90 is ranked and budgeted by
 *    its p50, and the explanation says so;
 *  - a budget left null/undefined/"" is not applied; p90, size and memory budgets are maxima,
 *    the fidelity budget a minimum, all inclusive (p90 <= max passes); the memory budget
 *    applies to memory_mb, whose memory_metric the explanation names;
 *  - an unknown figure fails a budget that is set on it (unknown memory passes only when no
 *    memory budget is set; unknown fidelity fails a min fidelity);
 *  - among the candidates within every budget: latency ascending, then gzip size ascending,
 *    then fidelity descending, then variant, runtime, threads, cell id (deterministic);
 *  - ties within noise: the fitting cells with the same model, runtime, device, threads and
 *    tie_group as the fastest one cannot be told apart by the measurements; among them the
 *    smaller download, then the higher fidelity, wins, and the others are listed as tied
 *    (result.tied), not as runners-up;
 *  - a legacy runtime yields to its successor (SUCCESSORS: tfjs-tflite's alpha to LiteRT.js):
 *    when the pick runs on the legacy runtime and a fitting cell of the same model, device and
 *    threads on the successor ties with it within noise (their p50 95 % intervals overlap),
 *    the successor's cell is picked and the legacy one listed as tied (result.preferred says
 *    which and why);
 *  - when nothing fits, the verdict names the binding budget: the one that, if it alone were
 *    dropped, would admit the most candidates (ties: the one that excludes more, then the order
 *    p90, size, memory, fidelity);
 *  - estimated rows (``estimated`` true: a phone's figures computed from the host's cell times an
 *    evidence-backed factor, edge/estimate.py) are ranked like measured ones by their central
 *    estimate; two estimated cells tie when each one's central estimate lies inside the other's
 *    80 % interval (ci_lo_ms..ci_hi_ms): the evidence cannot order them, a measurement on the
 *    device can (result.settle says which);
 *  - the accuracy budget (accuracyPass, on by default): a variant that fails its task-accuracy
 *    verdict is not a candidate unless the budget is dropped;
 *  - the cold-start budget (maxColdMs): download on the phone's network + load + first
 *    inference (cold_ms; for a measured cell, load + first inference + the estimated download);
 *  - result.notes: what the figures are worth: "emulated estimate (method, achieved slowdown
 *    x.xx vs target y.yy)" for an emulated device, the emulation error of a published
 *    reference point for that phone, model and runtime (options.references: rows of
 *    edge.reference_points.compare_with_records), software rendering on the host, GPU cells
 *    left out.
 */
(function (root) {
  "use strict";

  var DEFAULT_BUDGETS = Object.freeze({
    maxP90Ms: 200, maxSizeMb: 10, maxMemoryMb: null, minFidelity: 0.9, maxColdMs: null,
    accuracyPass: true,
  });

  /** Budget keys, in the order ties are broken. */
  var BUDGET_KEYS = ["maxP90Ms", "maxSizeMb", "maxMemoryMb", "minFidelity", "maxColdMs",
    "accuracyPass"];

  /** The headline fidelity figure per task (mirrors HEADLINE_METRIC in edge/garden/base.py). */
  var HEADLINE_METRIC = Object.freeze({
    classification: "top1_agreement",
    segmentation: "mean_iou",
    text_detection: "kernel_iou",
  });

  /** Runtimes on the GPU: on an emulated device, the host's GPU. */
  var GPU_RUNTIMES = ["tfjs-webgl", "tfjs-webgpu", "litertjs-webgpu", "ort-webgpu"];

  /** Legacy runtime -> its maintained successor, preferred between cells that tie. */
  var SUCCESSORS = Object.freeze({ "tflite-web": "litertjs-wasm" });

  var LABELS = {
    maxP90Ms: "max p90", maxSizeMb: "max size", maxMemoryMb: "max memory",
    minFidelity: "min fidelity", maxColdMs: "max cold start", accuracyPass: "accuracy verdict",
  };
  var TIMES = "\u00d7";

  var UNITS = { maxP90Ms: " ms", maxSizeMb: " MB", maxMemoryMb: " MB", minFidelity: "",
    maxColdMs: " ms", accuracyPass: "" };

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
      if (key === "accuracyPass") {
        if (typeof b !== "boolean") {
          throw new Error("budget accuracyPass must be true, false or null, got " +
            JSON.stringify(b));
        }
        out[key] = b ? true : null;
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

  function p50(row) { return known(row.p50_ms) ? row.p50_ms : null; }

  /** The latency a row is ranked and budgeted by: p90, else (too few runs) p50. */
  function latency(row) { return p90(row) !== null ? p90(row) : p50(row); }

  function isGpu(row) { return GPU_RUNTIMES.indexOf(row.runtime) >= 0; }

  /** A GPU cell on an emulated device: never a recommendation. */
  function emulatedGpu(row) { return isGpu(row) && row.emulated === true; }

  function softwareRendering(row) { return isGpu(row) && row.gpu_software === true; }

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

  /** Cold start: download on the device's network + load + first inference (ms). */
  function coldMs(row) {
    if (known(row.cold_ms)) return row.cold_ms;
    if (!known(row.load_ms) || !known(row.first_ms)) return null;
    return row.load_ms + row.first_ms + (known(row.download_s) ? row.download_s * 1000 : 0);
  }

  /** The task-accuracy verdict ("pass", "fail") or null when the variant has none. */
  function accuracyVerdict(row) {
    return row.accuracy_verdict === "pass" || row.accuracy_verdict === "fail"
      ? row.accuracy_verdict : null;
  }

  function estimated(row) { return row.estimated === true; }

  var VALUE = { maxP90Ms: latency, maxSizeMb: sizeMb, maxMemoryMb: memoryMb, minFidelity: fidelity,
    maxColdMs: coldMs, accuracyPass: accuracyVerdict };

  /** The budget keys a row misses (an unknown figure misses a budget set on it). */
  function failures(row, budgets) {
    var b = normalizeBudgets(budgets);
    return BUDGET_KEYS.filter(function (key) {
      if (b[key] === null) return false;
      var v = VALUE[key](row);
      if (key === "accuracyPass") return v === "fail"; // no verdict: nothing to fail
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

  function tail(a, b) {
    return cmpText(a.variant, b.variant) ||
      cmpText(a.runtime, b.runtime) ||
      cmpNum(known(a.threads) ? a.threads : null, known(b.threads) ? b.threads : null) ||
      cmpText(a.cell_id, b.cell_id);
  }

  /** The ranking order: latency (p90, else p50) asc, gzip size asc, fidelity desc, variant,
   *  runtime, threads, id. */
  function compareRows(a, b) {
    return cmpNum(latency(a), latency(b)) ||
      cmpNum(gzipBytes(a), gzipBytes(b)) ||
      cmpNum(fidelity(a), fidelity(b), true) ||
      tail(a, b);
  }

  /** Among cells tied within noise: gzip size asc, fidelity desc, then the ranking order. */
  function compareTied(a, b) {
    return cmpNum(gzipBytes(a), gzipBytes(b)) ||
      cmpNum(fidelity(a), fidelity(b), true) ||
      compareRows(a, b);
  }

  function sameThreads(a, b) {
    return (known(a.threads) ? a.threads : null) === (known(b.threads) ? b.threads : null);
  }

  /** The p50 95 % intervals of a and b overlap (both known): the measurements cannot order
   *  them. */
  function intervalsOverlap(a, b) {
    if (![a.ci_lo_ms, a.ci_hi_ms, b.ci_lo_ms, b.ci_hi_ms].every(known)) return false;
    return a.ci_lo_ms <= b.ci_hi_ms && b.ci_lo_ms <= a.ci_hi_ms;
  }

  /** Each estimate's central figure lies inside the other's interval: the evidence cannot
   *  order them. (Overlap alone would let a build with a very wide, index-only interval tie
   *  with every evidenced one and win on download size.) */
  function eachInside(a, b) {
    if (![a.p50_ms, b.p50_ms, a.ci_lo_ms, a.ci_hi_ms, b.ci_lo_ms, b.ci_hi_ms].every(known)) {
      return false;
    }
    return a.ci_lo_ms <= b.p50_ms && b.p50_ms <= a.ci_hi_ms &&
      b.ci_lo_ms <= a.p50_ms && a.p50_ms <= b.ci_hi_ms;
  }

  /** The fastest fitting cell on `best`'s successor runtime (same model, device, threads)
   *  that ties with it within noise, else null. */
  function successorFor(best, fits) {
    var successor = SUCCESSORS[best.runtime];
    if (!successor) return null;
    for (var i = 0; i < fits.length; i++) {
      var r = fits[i];
      if (r.runtime === successor && r.model === best.model && r.device === best.device &&
          sameThreads(r, best) && intervalsOverlap(r, best)) return r;
    }
    return null;
  }

  function fmtInterval(row) {
    return fmtNum(row.ci_lo_ms) + "\u2013" + fmtNum(row.ci_hi_ms) + " ms";
  }

  /** Same model, runtime, device, threads and tie group: indistinguishable by the samples.
   *  Two estimates of one device: each central estimate inside the other's interval. */
  function tiedWith(a, b) {
    if (estimated(a) || estimated(b)) {
      return estimated(a) && estimated(b) && a.model === b.model && a.device === b.device &&
        eachInside(a, b);
    }
    return known(a.tie_group) && a.tie_group === b.tie_group && a.model === b.model &&
      a.runtime === b.runtime && a.device === b.device && sameThreads(a, b);
  }

  // -- words --

  function fmtNum(x) {
    if (!known(x)) return "?";
    if (Math.abs(x) >= 100) return x.toFixed(0);
    return String(Number(x.toPrecision(3)));
  }

  function fmtBudget(key, value) {
    if (key === "accuracyPass") return "accuracy verdict must pass";
    return LABELS[key] + " " + String(value) + UNITS[key];
  }

  function fmtFidelity(row) {
    var f = fidelity(row);
    return fidelityName(row) + " " + (f === null ? "unknown" : f.toFixed(3));
  }

  function fmtLatency(row) {
    if (estimated(row) && p90(row) !== null) {
      return "p90 " + fmtNum(p90(row)) + " ms estimated (p50 80 % interval " +
        fmtInterval(row) + ")";
    }
    if (p90(row) !== null) return "p90 " + fmtNum(p90(row)) + " ms";
    if (p50(row) !== null) {
      return "p50 " + fmtNum(p50(row)) + " ms (no p90: too few runs" +
        (known(row.n_runs) ? ", " + row.n_runs : "") + ")";
    }
    return "p90 unknown";
  }

  function fmtFigure(key, row) {
    if (key === "maxP90Ms") return fmtLatency(row);
    if (key === "maxSizeMb") {
      return sizeMb(row) === null ? "size unknown" : fmtNum(sizeMb(row)) + " MB gzip";
    }
    if (key === "maxMemoryMb") {
      if (memoryMb(row) === null) return "memory unknown";
      return "memory " + fmtNum(memoryMb(row)) + " MB" +
        (row.memory_metric ? " as " + row.memory_metric : "");
    }
    if (key === "maxColdMs") {
      return coldMs(row) === null ? "cold start unknown" : "cold start " + fmtNum(coldMs(row)) +
        " ms" + (row.cold_source ? " (" + row.cold_source + ")" : "");
    }
    if (key === "accuracyPass") {
      var v = accuracyVerdict(row);
      return v === null ? "no accuracy verdict" : "accuracy " + v +
        (known(row.host_accuracy) ? " (" + (row.accuracy_metric || "accuracy") + " " +
          row.host_accuracy.toFixed(3) + ")" : "");
    }
    return fmtFidelity(row);
  }

  function label(row, withModel) {
    var where = row.runtime + (known(row.threads) ? ", " + plural(row.threads, "thread") : "") +
      (softwareRendering(row) ? ", software rendering (host)" : "");
    return (withModel ? row.model + " " : "") + row.variant + " (" + where + ")";
  }

  function fmtRatio(x) { return known(x) ? x.toFixed(2) : "unknown"; }

  /** "emulated estimate (method, achieved slowdown x.xx vs target y.yy)" for an emulated row,
   *  else null. */
  function emulationNote(row) {
    if (row.emulated !== true) return null;
    var parts = [row.emulation_method || "emulation method not recorded"];
    if (known(row.achieved_slowdown) || known(row.target_slowdown)) {
      parts.push("achieved slowdown " + fmtRatio(row.achieved_slowdown) + " vs target " +
        fmtRatio(row.target_slowdown) + (row.off_target === true ? ", off target" : ""));
    }
    return "emulated estimate (" + parts.join(", ") + ")";
  }

  /** The reference point (a row of compare_with_records) for the row's device, model and
   *  runtime: the one of the same variant (and threads) first. */
  function referenceFor(row, references) {
    var matches = (references || []).filter(function (ref) {
      return ref && ref.phone === row.device && ref.runtime === row.runtime &&
        (ref.model === row.model || ref.model === row.family);
    });
    if (!matches.length) return null;
    function score(ref) {
      return (ref.variant === row.variant ? 2 : 0) +
        (ref.threads === undefined || ref.threads === null || ref.threads === row.threads
          ? 1 : 0);
    }
    matches.sort(function (a, b) { return score(b) - score(a); });
    return matches[0];
  }

  /** "estimate: host p50 4.07 ms x factor 6.2 [5.0, 7.8] (evidence: ...)" for an estimated
   *  row, else null. */
  function estimateNote(row) {
    if (!estimated(row)) return null;
    var text = "estimate (" + (row.evidence || "?") + "): the host's cell x factor " +
      fmtNum(row.factor) + " (80 % interval " + fmtNum(row.factor_lo) + "\u2013" +
      fmtNum(row.factor_hi) + ")";
    if (row.evidence_note) text += "; " + row.evidence_note;
    return text;
  }

  function referenceNote(ref) {
    var what = ref.phone + " " + ref.model + (ref.variant ? " " + ref.variant : "") + " on " +
      ref.runtime;
    var text = "reference point (" + what + "): published " + fmtNum(ref.reference_ms) + " ms";
    if (known(ref.estimate_ms) && known(ref.ratio)) {
      text += ", emulated estimate " + fmtNum(ref.estimate_ms) + " ms: emulation error " +
        TIMES + ref.ratio.toFixed(2) + " (estimate / published)";
    } else {
      text += "; not measured in this run, so the emulation error is unknown";
    }
    var source = ref.source_url || ref.source;
    if (source) text += " [" + source + "]";
    return text;
  }

  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  /** The row nearest to passing a budget, and how to say it ("fastest on X: 212 ms" when the
   *  rows are all the candidates, "fastest of those: ..." when only the ones that miss it). */
  function nearest(key, candidates, device, all) {
    if (key === "accuracyPass") {
      return (all ? "every variant on " + device : "those") + " fails its accuracy verdict";
    }
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
        minFidelity: "fidelity figure", maxColdMs: "cold start" }[key];
      return (all ? "no candidate on " + device : "none of those") + " has a known " + what;
    }
    if (key === "maxP90Ms") return "fastest" + on + ": " + fmtNum(best.v) + " ms";
    if (key === "maxSizeMb") return "smallest" + on + ": " + fmtNum(best.v) + " MB";
    if (key === "maxMemoryMb") return "least" + on + ": " + fmtNum(best.v) + " MB";
    if (key === "maxColdMs") return "quickest cold start" + on + ": " + fmtNum(best.v) + " ms";
    return "best" + on + ": " + fmtFidelity(best.row);
  }

  function missVerb(key, all) {
    if (key === "minFidelity") return all ? "is below" : "are below";
    if (key === "accuracyPass") return all ? "fails the" : "fail the";
    return all ? "exceeds" : "exceed";
  }

  // -- the pick --

  function sameModel(row, model) {
    return row.model === model || row.family === model;
  }

  /** What the figures of the pick are worth, in words (result.notes). */
  function notesFor(best, forDevice, options) {
    var notes = [];
    var gpu = forDevice.filter(function (r) { return r.status === "ok" && emulatedGpu(r); });
    if (gpu.length) {
      notes.push(plural(gpu.length, "GPU cell") + " (" + uniqueText(gpu.map(function (r) {
        return r.runtime;
      })) + ") left out: on an emulated device the GPU is the host's, not the phone's");
    }
    if (best) {
      var emu = emulationNote(best);
      if (emu) notes.push(emu);
      var est = estimateNote(best);
      if (est) notes.push(est);
      if (softwareRendering(best)) {
        notes.push("software rendering (host): " + (best.gpu_renderer || "a software " +
          "rasterizer") + " drew these figures, not a GPU");
      }
      var ref = referenceFor(best, options.references);
      if (ref) notes.push(referenceNote(ref));
    }
    return notes;
  }

  function uniqueText(values) {
    var seen = [];
    values.forEach(function (v) { if (seen.indexOf(v) < 0) seen.push(v); });
    return seen.join(", ");
  }

  /**
   * pick(rows, {device, model?, maxP90Ms, maxSizeMb, maxMemoryMb, minFidelity, references?}) ->
   * {device, model, budgets, best, why, runnersUp, tied, excludedBy, gpuExcluded, candidates,
   *  fitting, binding, verdict, notes}
   */
  function pick(rows, options) {
    options = options || {};
    var device = options.device;
    var model = isUnset(options.model) ? null : options.model;
    var budgets = normalizeBudgets(options);
    var applied = BUDGET_KEYS.filter(function (k) { return budgets[k] !== null; });
    var result = {
      device: device, model: model, budgets: budgets, best: null, why: "", runnersUp: [],
      tied: [], excludedBy: {}, gpuExcluded: 0, candidates: 0, fitting: 0, binding: null,
      verdict: "", notes: [], preferred: null, settle: null,
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
    var candidates = forDevice.filter(function (r) {
      return r.status === "ok" && !emulatedGpu(r);
    });
    result.candidates = candidates.length;
    result.gpuExcluded = forDevice.filter(function (r) {
      return r.status === "ok" && emulatedGpu(r);
    }).length;
    if (!candidates.length) {
      result.notes = notesFor(null, forDevice, options);
      var counts = {};
      forDevice.forEach(function (r) {
        var s = r.status === "ok" && emulatedGpu(r) ? "ok on an emulated GPU" : r.status;
        counts[s] = (counts[s] || 0) + 1;
      });
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

    result.notes = notesFor(null, forDevice, options);
    if (fits.length) {
      var tiedSet = fits.filter(function (r) { return r === fits[0] || tiedWith(r, fits[0]); });
      tiedSet.sort(compareTied);
      var best = tiedSet[0];
      var successor = successorFor(best, fits);
      if (successor !== null) {
        result.preferred = {
          runtime: successor.runtime, over: best.runtime,
          why: label(successor, manyModels) + " ties within noise with " +
            label(best, manyModels) + " (p50 95 % intervals " + fmtInterval(successor) +
            " and " + fmtInterval(best) + " overlap); between cells that tie, " +
            successor.runtime + " is preferred: " + best.runtime + " is its unmaintained " +
            "predecessor",
        };
        tiedSet = [successor].concat(tiedSet.filter(function (r) { return r !== successor; }));
        best = successor;
      }
      result.best = best;
      result.tied = tiedSet.slice(1);
      result.runnersUp = fits.filter(function (r) {
        return tiedSet.indexOf(r) < 0;
      }).slice(0, 3);
      var figures = BUDGET_KEYS.map(function (k) {
        if (k === "maxMemoryMb" && budgets[k] === null && memoryMb(best) === null) return null;
        if (k === "maxColdMs" && budgets[k] === null && coldMs(best) === null) return null;
        if (k === "accuracyPass" && accuracyVerdict(best) === null) return null;
        return fmtFigure(k, best) + " (" +
          (budgets[k] === null ? "no budget" : fmtBudget(k, budgets[k])) + ")";
      }).filter(Boolean);
      var within = plural(fits.length, "candidate") + " within budget on " + scope;
      if (result.preferred) {
        result.why = result.preferred.why + "; " + within + ": " + figures.join(", ");
      } else if (result.tied.length && estimated(best)) {
        result.settle = "measure " + [best].concat(result.tied).map(function (r) {
          return label(r, manyModels);
        }).join(" and ") + " on a real " + device + " (edge calibrate): the estimates' " +
          "80 % intervals each hold the other's estimate, so the evidence cannot order them";
        result.why = label(best, manyModels) + " ties with the fastest estimate of " + within +
          ", not resolvable without the device (tied: " + result.tied.map(function (r) {
            return label(r, manyModels);
          }).join(", ") + "; among tied cells the smaller download, then the higher " +
          "fidelity, wins): " + figures.join(", ");
      } else if (result.tied.length) {
        result.why = label(best, manyModels) + " ties within noise for the fastest of " +
          within + " (tied: " + result.tied.map(function (r) {
            return label(r, manyModels);
          }).join(", ") + "; among tied cells the smaller download, then the higher " +
          "fidelity, wins): " + figures.join(", ");
      } else {
        result.why = label(best, manyModels) + " is the fastest of " + within + ": " +
          figures.join(", ");
      }
      result.verdict = "pick " + label(best, manyModels) + " on " + scope;
      result.notes = notesFor(best, forDevice, options);
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
    GPU_RUNTIMES: GPU_RUNTIMES,
    compareRows: compareRows,
    latency: latency,
    coldMs: coldMs,
    emulationNote: emulationNote,
    estimateNote: estimateNote,
    referenceFor: referenceFor,
    pick: pick,
    bestPerDevice: bestPerDevice,
    devices: devices,
  };
  root.edgePicker = api;
  if (typeof window !== "undefined") window.edgePicker = api;
})(typeof globalThis !== "undefined" ? globalThis : typeof window !== "undefined" ? window : this);
