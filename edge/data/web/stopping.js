// The measurement protocol's rules: when to stop warming up, when to stop sampling, and which
// percentiles a sample can support. A line-for-line port of edge/stopping.py (read its
// docstring for the rules); both are checked against tests/data/stopping_vectors.json and must
// agree exactly, so every computation keeps the Python operation order: left-to-right sums,
// medians of sorted copies, the mean of the two middle values for an even count.
//
// Browser: window.edgeStopping; Node: module.exports. Same functions as the Python module, in
// camelCase: warmupDone(samplesMs, cfg) -> [done, steady], samplingDone(samplesMs, cfg) ->
// [done, reason], medianCi95(samples) -> [lo, hi], ci95Ranks(n), median(samples),
// percentileOk(n, q), and DEFAULTS (camelCase keys). Times are milliseconds.
(function (root) {
  'use strict';

  const DEFAULTS = Object.freeze({
    warmup: 3,
    maxWarmup: 50,
    maxWarmupSeconds: 10.0,
    steadyTol: 0.05,
    minRuns: 10,
    minSeconds: 0.5,
    maxRuns: 300,
    maxSeconds: 15.0,
    targetCi: 0.03,
    timeoutS: 120.0,
  });
  const WINDOW = 5;
  const MIN_RUNS_FLOOR = 3;
  const CI_Z_HALF = 0.98;
  const REASONS = Object.freeze(['ci', 'max_runs', 'max_seconds']);

  function param(cfg, name) {
    const value = cfg ? cfg[name] : undefined;
    return value === undefined || value === null ? DEFAULTS[name] : value;
  }

  function total(samples) {
    let sum = 0.0;
    for (const s of samples) sum += s;
    return sum;
  }

  const sorted = (samples) => Array.from(samples).sort((a, b) => a - b);

  function medianSorted(xs) {
    const n = xs.length;
    const mid = Math.floor(n / 2);
    if (n % 2) return xs[mid];
    return (xs[mid - 1] + xs[mid]) / 2;
  }

  function median(samples) {
    if (!samples.length) throw new Error('median of no samples');
    return medianSorted(sorted(samples));
  }

  function ci95Ranks(n) {
    if (n < 1) throw new Error('confidence interval of no samples');
    const spread = CI_Z_HALF * Math.sqrt(n);
    const lo = Math.floor(n / 2 - spread);
    const hi = Math.ceil(n / 2 + spread);
    return [Math.max(0, Math.min(n - 1, lo)), Math.max(0, Math.min(n - 1, hi))];
  }

  function medianCi95(samples) {
    const xs = sorted(samples);
    const [lo, hi] = ci95Ranks(xs.length);
    return [xs[lo], xs[hi]];
  }

  function warmupDone(samplesMs, cfg) {
    const n = samplesMs.length;
    if (n >= param(cfg, 'warmup') && n >= 2 * WINDOW) {
      const last = medianSorted(sorted(samplesMs.slice(n - WINDOW)));
      const before = medianSorted(sorted(samplesMs.slice(n - 2 * WINDOW, n - WINDOW)));
      if (Math.abs(last - before) <= param(cfg, 'steadyTol') * before) return [true, true];
    }
    if (n >= param(cfg, 'warmup') && (
      n >= param(cfg, 'maxWarmup') ||
      total(samplesMs) >= param(cfg, 'maxWarmupSeconds') * 1000)) {
      return [true, false];
    }
    return [false, false];
  }

  function samplingDone(samplesMs, cfg) {
    const n = samplesMs.length;
    if (n === 0) return [false, ''];
    const sum = total(samplesMs);
    if (n >= param(cfg, 'minRuns') && sum >= param(cfg, 'minSeconds') * 1000) {
      const xs = sorted(samplesMs);
      const [lo, hi] = ci95Ranks(n);
      if ((xs[hi] - xs[lo]) / 2 <= param(cfg, 'targetCi') * medianSorted(xs)) return [true, 'ci'];
    }
    if (n >= param(cfg, 'maxRuns')) return [true, 'max_runs'];
    if (n >= MIN_RUNS_FLOOR && sum >= param(cfg, 'maxSeconds') * 1000) return [true, 'max_seconds'];
    return [false, ''];
  }

  function percentileOk(n, q) {
    return n * (1 - q) + 1e-9 >= 2;
  }

  const api = Object.freeze({
    DEFAULTS, WINDOW, MIN_RUNS_FLOOR, REASONS,
    warmupDone, samplingDone, median, medianCi95, ci95Ranks, percentileOk,
  });
  if (typeof module !== 'undefined' && module.exports) module.exports = api;
  if (root) root.edgeStopping = api;
})(typeof window !== 'undefined' ? window : null);
