// Runs edge/data/web/stopping.js over tests/data/stopping_vectors.json and prints what it computes
// as one JSON object on stdout; tests/test_stopping.py compares it with the expected values.
//
//   node tests/js/stopping.test.js [vectors.json]
'use strict';

const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const stopping = require(path.join(root, 'edge', 'data', 'web', 'stopping.js'));
const vectorsPath = process.argv[2] || path.join(root, 'tests', 'data', 'stopping_vectors.json');
const vectors = JSON.parse(fs.readFileSync(vectorsPath, 'utf8'));

const camel = (key) => key.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

function camelCfg(cfg) {
  const out = {};
  for (const [key, value] of Object.entries(cfg)) out[camel(key)] = value;
  return out;
}

// The loops of harness.js: warm up until warmupDone, then time runs until samplingDone.
function simulate(samples, cfg) {
  let n = 0;
  let warm;
  for (;;) {
    warm = stopping.warmupDone(samples.slice(0, n), cfg);
    if (warm[0]) break;
    n += 1;
    if (n > samples.length) return { error: 'sequence too short for the warm-up' };
  }
  let m = 0;
  let sampled;
  for (;;) {
    sampled = stopping.samplingDone(samples.slice(n, n + m), cfg);
    if (sampled[0]) break;
    m += 1;
    if (n + m > samples.length) return { error: 'sequence too short for the sampling' };
  }
  const timed = samples.slice(n, n + m);
  return {
    warmup_runs: n, steady: warm[1], timed_runs: m, reason: sampled[1],
    median: stopping.median(timed), ci95: stopping.medianCi95(timed),
  };
}

const out = {
  defaults: stopping.DEFAULTS,
  window: stopping.WINDOW,
  min_runs_floor: stopping.MIN_RUNS_FLOOR,
  reasons: stopping.REASONS,
  cells: vectors.cells.map((c) => ({ name: c.name, ...simulate(c.samples, camelCfg(c.cfg)) })),
  median_ci95: vectors.median_ci95.map((c) => ({
    ranks: stopping.ci95Ranks(c.samples.length),
    ci95: stopping.medianCi95(c.samples),
    median: stopping.median(c.samples),
  })),
  percentile_ok: vectors.percentile_ok.map((c) => stopping.percentileOk(c.n, c.q)),
};
process.stdout.write(JSON.stringify(out) + '\n');
