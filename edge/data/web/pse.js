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
//   4. per label: pixel area, mean channel-0 score, the minimum-area rotated rectangle and the
//      axis-aligned bounding box, dropping regions with fewer than `minArea` pixels or a mean
//      score below `minScore`.
//
// Coordinates are continuous map coordinates (x, y): pixel (row, col) covers
// [col, col + 1) x [row, row + 1). The rotated rectangle encloses the region's pixel squares,
// the same point set as edge/pse.py (cv2.minAreaRect over the corners of the pixel squares of
// the region's convex hull). It is computed exactly: the hull's vertices are integers, every
// hull edge direction is a candidate (a minimum-area rectangle has a side on a hull edge) and
// candidate areas are compared as exact integer ratios. The rectangle is reported without cv2's
// conventions: cv2.minAreaRect's angle range and corner order differ between OpenCV versions and
// it works in float32, so the two are compared through the corner points as a set (within a small
// tolerance). When the minimum is not unique (some mirror-symmetric regions; every edge of an
// acute triangle), the first hull edge in order wins here, clockwise on screen from the leftmost,
// topmost hull vertex; cv2 may pick another rectangle of the same area.
//
// detect(data, h, w, n, opts) -> { labels: Int32Array(h * w), boxes: [box] }, boxes by label:
//   { label, area, score, cx, cy, w, h, angle, points: [[x, y] x 4], x0, y0, x1, y1 }
//   w >= h are the side lengths, angle (degrees, in (-90, 90]) the direction of the w side from
//   +x towards +y (clockwise on screen; (-45, 45] for squares), (cx, cy) the centre, points the
//   corners centre -/+ half w along angle -/+ half h across it, in the order (-, -), (+, -),
//   (+, +), (-, +) (for angle 0: top-left, top-right, bottom-right, bottom-left);
//   x0, y0, x1, y1 the axis-aligned bounds of the region's pixel squares.
// opts: threshold (0.5), minKernelArea (5), minArea (10), minScore (0).
// minAreaRect(points) -> { cx, cy, w, h, angle, points }: the same rectangle for integer points.
//
// Loaded by the page (global edgePSE) and by Node (module.exports).
(function (root) {
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

  // ---- minimum-area rectangle ----------------------------------------------------------------

  function cross(o, a, b) {
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  }

  // Convex hull of integer points (monotone chain), collinear points dropped; starts at the
  // leftmost, topmost point and runs clockwise on screen (y down).
  function convexHull(points) {
    const pts = points.slice().sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    if (pts.length < 3) return pts;
    const chain = (from, to, step) => {
      const out = [];
      for (let i = from; i !== to; i += step) {
        const p = pts[i];
        while (out.length >= 2 && cross(out[out.length - 2], out[out.length - 1], p) <= 0) out.pop();
        out.push(p);
      }
      out.pop();
      return out;
    };
    return chain(0, pts.length, 1).concat(chain(pts.length - 1, -1, -1));
  }

  // With |x|, |y| <= 2^25 every dot and cross product below is an exact double (< 2^53).
  const MAX_COORD = 2 ** 25;

  // The minimum-area rectangle enclosing an integer convex polygon (>= 3 vertices), over every
  // hull edge direction (the first of equal minima wins). A candidate's area is
  // (dot range) * (cross range) / |edge|^2, all integers, compared exactly.
  function minAreaRect(hull) {
    const m = hull.length;
    let best = null;
    for (let i = 0; i < m; i++) {
      const a = hull[i];
      const b = hull[(i + 1) % m];
      const dx = b[0] - a[0];
      const dy = b[1] - a[1];
      let dMin = Infinity;
      let dMax = -Infinity;
      let cMin = Infinity;
      let cMax = -Infinity;
      for (const [x, y] of hull) {
        const d = x * dx + y * dy;
        const c = y * dx - x * dy;
        if (d < dMin) dMin = d;
        if (d > dMax) dMax = d;
        if (c < cMin) cMin = c;
        if (c > cMax) cMax = c;
      }
      const cand = { dx, dy, len2: dx * dx + dy * dy, dMin, dMax, cMin, cMax };
      if (best === null || smaller(cand, best)) best = cand;
    }
    return best;
  }

  // Whether candidate a's area is strictly below b's: (dMax - dMin) * (cMax - cMin) / len2.
  function smaller(a, b) {
    const an = (a.dMax - a.dMin) * (a.cMax - a.cMin);
    const bn = (b.dMax - b.dMin) * (b.cMax - b.cMin);
    const left = an * b.len2;
    const right = bn * a.len2;
    if (Number.isSafeInteger(an) && Number.isSafeInteger(bn)
        && Number.isSafeInteger(left) && Number.isSafeInteger(right)) {
      return left < right;
    }
    const big = (r, len2) => BigInt(r.dMax - r.dMin) * BigInt(r.cMax - r.cMin) * BigInt(len2);
    return big(a, b.len2) < big(b, a.len2);
  }

  // { cx, cy, w, h, angle, points } of the rectangle spanned by edge direction (dx, dy) and the
  // dot / cross ranges; see the header for the conventions. Corners and centre are exact
  // rationals rounded once; only the angle goes through trigonometry.
  function describeRect(r) {
    const { dx, dy, len2 } = r;
    const len = Math.sqrt(len2);
    // The point with dot d and cross c is (d * (dx, dy) + c * (-dy, dx)) / len2.
    const at = (d, c) => [(d * dx - c * dy) / len2, (d * dy + c * dx) / len2];
    const along = (r.dMax - r.dMin) / len;
    const across = (r.cMax - r.cMin) / len;
    const edgeAngle = Math.atan2(dy, dx) * 180 / Math.PI;
    // The w side runs along the edge or across it; turn by half turns (quarter turns for a
    // square) into (-90, 90] (into (-45, 45]).
    const step = along === across ? 90 : 180;
    let angle = across > along ? edgeAngle + 90 : edgeAngle;
    while (angle > step / 2) angle -= step;
    while (angle <= -step / 2) angle += step;
    // The w side's direction is (dx, dy) turned by k quarter turns (clockwise on screen).
    const k = ((Math.round((angle - edgeAngle) / 90) % 4) + 4) % 4;
    const w = k % 2 === 0 ? along : across;
    const h = k % 2 === 0 ? across : along;
    // Corner (a, b), a and b in {-1, +1}: centre + a * w / 2 along angle + b * h / 2 across.
    const pick = (sign, lo, hi) => (sign > 0 ? hi : lo);
    const corner = (a, b) => {
      const [sd, sc] = [[a, b], [-b, a], [-a, -b], [b, -a]][k];
      return at(pick(sd, r.dMin, r.dMax), pick(sc, r.cMin, r.cMax));
    };
    const [cx, cy] = at((r.dMin + r.dMax) / 2, (r.cMin + r.cMax) / 2);
    const points = [corner(-1, -1), corner(1, -1), corner(1, 1), corner(-1, 1)];
    return { cx, cy, w, h, angle, points };
  }

  // ---- regions -------------------------------------------------------------------------------

  function regionBoxes(labels, data, h, w, n, minArea, minScore) {
    const stats = new Map();
    for (let p = 0; p < h * w; p++) {
      const label = labels[p];
      if (label === 0) continue;
      const row = (p / w) | 0;
      const col = p - row * w;
      let s = stats.get(label);
      if (s === undefined) {
        s = { label, area: 0, score: 0, x0: col, y0: row, x1: col + 1, y1: row + 1, rows: new Map() };
        stats.set(label, s);
      }
      s.area += 1;
      s.score += data[p * n];
      if (col < s.x0) s.x0 = col;
      if (col + 1 > s.x1) s.x1 = col + 1;
      if (row + 1 > s.y1) s.y1 = row + 1;
      // Pixels are visited in raster order: the first of a row is its leftmost, the last its
      // rightmost; only these can be hull vertices.
      const span = s.rows.get(row);
      if (span === undefined) s.rows.set(row, [col, col]);
      else span[1] = col;
    }
    const boxes = [];
    for (const s of [...stats.values()].sort((a, b) => a.label - b.label)) {
      const score = s.score / s.area;
      if (s.area < minArea || score < minScore) continue;
      const corners = [];
      for (const [row, [lo, hi]] of s.rows) {
        corners.push([lo, row], [lo, row + 1], [hi + 1, row], [hi + 1, row + 1]);
      }
      const rect = describeRect(minAreaRect(convexHull(corners)));
      boxes.push({
        label: s.label, area: s.area, score,
        cx: rect.cx, cy: rect.cy, w: rect.w, h: rect.h, angle: rect.angle, points: rect.points,
        x0: s.x0, y0: s.y0, x1: s.x1, y1: s.y1,
      });
    }
    return boxes;
  }

  function detect(data, h, w, n, opts = {}) {
    const threshold = opts.threshold ?? 0.5;
    const minKernelArea = opts.minKernelArea ?? 5;
    const minArea = opts.minArea ?? 10;
    const minScore = opts.minScore ?? 0;
    const size = h * w;
    if (!(n >= 1) || data.length !== size * n) {
      throw new Error(`pse: data has ${data.length} values, expected ${h}x${w}x${n}`);
    }
    const labels = seedLabels(kernelMask(data, size, n, n - 1, threshold), h, w, minKernelArea);
    for (let k = n - 2; k >= 0; k--) {
      expandInto(labels, kernelMask(data, size, n, k, threshold), h, w);
    }
    return { labels, boxes: regionBoxes(labels, data, h, w, n, minArea, minScore) };
  }

  // The minimum-area rectangle enclosing integer points [[x, y], ...] (not all collinear,
  // |x|, |y| <= MAX_COORD), as { cx, cy, w, h, angle, points } in the conventions above.
  function minAreaRectOf(points) {
    if (!points.every(([x, y]) => Number.isInteger(x) && Number.isInteger(y)
        && Math.abs(x) <= MAX_COORD && Math.abs(y) <= MAX_COORD)) {
      throw new Error(`pse: minAreaRect needs integer coordinates within +-${MAX_COORD}`);
    }
    const hull = convexHull(points);
    if (hull.length < 3) throw new Error('pse: minAreaRect needs points that are not all collinear');
    return describeRect(minAreaRect(hull));
  }

  const api = { detect, minAreaRect: minAreaRectOf };
  if (typeof module !== 'undefined' && module.exports) module.exports = api;
  if (root) root.edgePSE = api;
})(typeof window !== 'undefined' ? window : null);
