// Runs edge/data/web/pse.js on kernel maps read as JSON from stdin and prints its results as JSON
// on stdout; tests/test_pse.py compares them with edge/pse.py on the same maps.
//
//   node tests/js/pse_cli.js < cases.json
//
// Input: { "cases": [{ "h", "w", "n", "maps": [h*w*n numbers, channels-last], "opts": {...} }],
//          "pointSets": [[[x, y], ...], ...] (optional) }
// Output: { "page": bool, "results": [{ "labels": [h*w ints], "boxes": [box, ...] }],
//           "rects": [minAreaRect(points) for each point set] }, where "page" tells whether
// loading pse.js as the page does (a plain script with a `window`, no `module`) defines
// window.edgePSE with the same results.
'use strict';

const fs = require('fs');
const path = require('path');
const vm = require('vm');

const root = path.resolve(__dirname, '..', '..');
const source = path.join(root, 'edge', 'data', 'web', 'pse.js');
const pse = require(source);

const sandbox = { window: {} };
vm.runInNewContext(fs.readFileSync(source, 'utf8'), sandbox, { filename: source });
const pagePse = sandbox.window.edgePSE;

const input = JSON.parse(fs.readFileSync(0, 'utf8'));
let page = typeof (pagePse && pagePse.detect) === 'function';
const results = input.cases.map(({ h, w, n, maps, opts }) => {
  const data = Float32Array.from(maps);
  const found = pse.detect(data, h, w, n, opts || {});
  if (page) {
    const again = pagePse.detect(data, h, w, n, opts || {});
    page = JSON.stringify(again.boxes) === JSON.stringify(found.boxes)
      && again.labels.every((v, i) => v === found.labels[i]);
  }
  return { labels: Array.from(found.labels), boxes: found.boxes };
});
const rects = (input.pointSets || []).map((points) => pse.minAreaRect(points));
process.stdout.write(JSON.stringify({ page, results, rects }));
