// PSENet post-processing (progressive scale expansion) in plain JS; the twin of edge/pse.py.
//
// Input: a Float32Array of shape (h, w, n), channels-last sigmoid maps; channel 0 is the
// largest kernel (the full text region) and channel n - 1 the smallest.
//   1. binarize each kernel at `threshold` (strictly greater) and mask it by kernel 0;
//   2. seeds: 4-connected components of the smallest kernel, numbered 1..K in raster order of
//      their first pixel, dropping those with fewer than `minKernelArea` pixels;
//   3. breadth-first expansion through kernels n-2 .. 0, one BFS layer at a time over
//      4-neighbours, first come first served; when several labels reach a pixel in the same
//      layer the smallest label wins;
//   4. per label: pixel area, mean channel-0 score and the axis-aligned bounding box in
//      continuous coordinates (pixel (row, col) covers [col, col + 1) x [row, row + 1)), dropping
//      regions with fewer than `minArea` pixels.
(function (global) {
  'use strict';

  function kernelMask(data, size, n, k, threshold) {
    const mask = new Uint8Array(size);
    for (let p = 0, i = 0; p < size; p++, i += n) {
      mask[p] = data[i] > threshold && data[i + k] > threshold ? 1 : 0;
    }
    return mask;
  }

  // Calls visit(q) for each 4-neighbour q of pixel p.
  function forNeighbours(p, h, w, visit) {
    const row = (p / w) | 0;
    const col = p - row * w;
    if (row > 0) visit(p - w);
    if (row < h - 1) visit(p + w);
    if (col > 0) visit(p - 1);
    if (col < w - 1) visit(p + 1);
  }

  function seedLabels(mask, h, w, minKernelArea) {
    const size = h * w;
    const labels = new Int32Array(size);
    const seen = new Uint8Array(size);
    const queue = new Int32Array(size);
    let next = 1;
    for (let start = 0; start < size; start++) {
      if (!mask[start] || seen[start]) continue;
      let head = 0;
      let tail = 0;
      queue[tail++] = start;
      seen[start] = 1;
      while (head < tail) {
        forNeighbours(queue[head++], h, w, (q) => {
          if (mask[q] && !seen[q]) {
            seen[q] = 1;
            queue[tail++] = q;
          }
        });
      }
      const label = tail >= minKernelArea ? next++ : 0;
      for (let i = 0; i < tail; i++) labels[queue[i]] = label;
    }
    return labels;
  }

  function expandInto(labels, mask, h, w) {
    const size = h * w;
    const pending = new Int32Array(size);
    let frontier = [];
    for (let p = 0; p < size; p++) if (labels[p] > 0) frontier.push(p);
    while (frontier.length > 0) {
      const reached = [];
      for (const p of frontier) {
        const label = labels[p];
        forNeighbours(p, h, w, (q) => {
          if (!mask[q] || labels[q] !== 0) return;
          if (pending[q] === 0) {
            pending[q] = label;
            reached.push(q);
          } else if (label < pending[q]) {
            pending[q] = label;
          }
        });
      }
      for (const q of reached) {
        labels[q] = pending[q];
        pending[q] = 0;
      }
      frontier = reached;
    }
  }

  function regionBoxes(labels, data, h, w, n, minArea) {
    const stats = new Map();
    for (let p = 0; p < h * w; p++) {
      const label = labels[p];
      if (label === 0) continue;
      const row = (p / w) | 0;
      const col = p - row * w;
      let s = stats.get(label);
      if (s === undefined) {
        s = { label, area: 0, score: 0, x0: col, y0: row, x1: col + 1, y1: row + 1 };
        stats.set(label, s);
      }
      s.area += 1;
      s.score += data[p * n];
      if (col < s.x0) s.x0 = col;
      if (col + 1 > s.x1) s.x1 = col + 1;
      if (row + 1 > s.y1) s.y1 = row + 1;
    }
    const boxes = [];
    for (const s of stats.values()) {
      if (s.area < minArea) continue;
      s.score /= s.area;
      boxes.push(s);
    }
    return boxes.sort((a, b) => a.label - b.label);
  }

  function detect(data, h, w, n, opts = {}) {
    const threshold = opts.threshold ?? 0.5;
    const minKernelArea = opts.minKernelArea ?? 5;
    const minArea = opts.minArea ?? 10;
    const size = h * w;
    if (!(n >= 1) || data.length !== size * n) {
      throw new Error(`pse: data has ${data.length} values, expected ${h}x${w}x${n}`);
    }
    const labels = seedLabels(kernelMask(data, size, n, n - 1, threshold), h, w, minKernelArea);
    for (let k = n - 2; k >= 0; k--) {
      expandInto(labels, kernelMask(data, size, n, k, threshold), h, w);
    }
    return { labels, boxes: regionBoxes(labels, data, h, w, n, minArea) };
  }

  global.edgePSE = { detect };
})(typeof window !== 'undefined' ? window : globalThis);
